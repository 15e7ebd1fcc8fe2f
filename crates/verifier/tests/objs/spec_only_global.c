// expect: accept
/* A global function called only on a branch that a frozen .rodata constant decides
 * against (the shape of libxdp's dispatcher stubs). Root never reaches the call; a
 * loader without CAP_PERFMON walks the other direction speculatively, reaches it, and
 * then verifies the function, whose `!ctx` test is a pointer comparison such a loader
 * may not make: `R1 pointer comparison prohibited` (tests/caps.rs). */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

static volatile const int enabled = 0;

__noinline int stub(struct xdp_md *ctx)
{
	volatile int ret = XDP_PASS;

	if (!ctx)
		return XDP_ABORTED;
	return ret;
}

SEC("xdp")
int spec_only_global(struct xdp_md *ctx)
{
	if (enabled)
		return stub(ctx);
	return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
