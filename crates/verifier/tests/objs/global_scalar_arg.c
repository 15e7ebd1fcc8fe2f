// expect: reject R2 unbounded memory access
/* The scalar argument of a global function has unknown bounds inside it, whatever the
 * caller passes (here the constant 2, which would be fine inlined): indexing a 4-entry
 * global array with it is rejected. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

int table[4] = { 1, 2, 3, 4 };

__noinline int get(unsigned int i)
{
	return table[i];
}

SEC("xdp")
int global_scalar_arg(struct xdp_md *ctx)
{
	return get(2) == 3 ? XDP_DROP : XDP_PASS;
}

char _license[] SEC("license") = "GPL";
