// expect: reject R1 unbounded memory access
/* The caller sees the return value of a global function as an unknown scalar: the
 * callee returns `x & 3`, which would bound the index inlined, but here the caller's
 * unchecked table[r] is rejected. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

int table[4] = { 1, 2, 3, 4 };

__noinline unsigned int low2(unsigned int x)
{
	return x & 3;
}

SEC("xdp")
int global_ret_unknown(struct xdp_md *ctx)
{
	return table[low2(ctx->rx_queue_index)] == 3 ? XDP_DROP : XDP_PASS;
}

char _license[] SEC("license") = "GPL";
