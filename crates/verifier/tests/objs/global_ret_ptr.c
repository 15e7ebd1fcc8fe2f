// expect: reject At subprogram exit the register R0 is not a scalar value
/* A global function returning a pointer cast to `long`: its R0 must be a scalar. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

__noinline long data_addr(struct xdp_md *ctx)
{
	return ctx->data;
}

SEC("xdp")
int global_ret_ptr(struct xdp_md *ctx)
{
	return data_addr(ctx) ? XDP_PASS : XDP_DROP;
}

char _license[] SEC("license") = "GPL";
