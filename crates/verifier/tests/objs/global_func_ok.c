// expect: accept
/* A global (non-static) function with a scalar argument: the kernel verifies it once, on
 * its own ("Validating add_one() func#1..."), and the call site only checks R1 is a
 * scalar ("Func#1 ('add_one') is global and assumed valid."). */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

__noinline int add_one(int x)
{
	return x + 1;
}

SEC("xdp")
int global_func_ok(struct xdp_md *ctx)
{
	return add_one(ctx->ingress_ifindex) > 1 ? XDP_PASS : XDP_DROP;
}

char _license[] SEC("license") = "GPL";
