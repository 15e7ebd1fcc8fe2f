// expect: reject arg#0 reference type('UNKNOWN ') size cannot be determined: -22
/* A global function with a `void *` argument: the kernel cannot size the memory. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

__noinline int nonzero(void *p)
{
	return p != 0;
}

SEC("xdp")
int global_void_ptr(struct xdp_md *ctx)
{
	int v = 1;

	return nonzero(&v) ? XDP_DROP : XDP_PASS;
}

char _license[] SEC("license") = "GPL";
