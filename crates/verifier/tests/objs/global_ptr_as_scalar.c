// expect: reject R1 is not a scalar
/* A pointer passed where the global function's prototype says `long`: the call site
 * requires a scalar. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

__noinline int low_bits(long x)
{
	return x & 7;
}

SEC("xdp")
int global_ptr_as_scalar(struct xdp_md *ctx)
{
	return low_bits((long)ctx->data) ? XDP_DROP : XDP_PASS;
}

char _license[] SEC("license") = "GPL";
