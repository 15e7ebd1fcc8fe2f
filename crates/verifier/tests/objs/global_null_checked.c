// expect: accept
/* Same as global_null_deref.c with the NULL check the kernel wants: the `int *`
 * argument is `mem_or_null` (4 bytes) in the callee, `mem` after the check. The caller
 * passes an initialized stack slot (checked like a 4-byte helper read and write). */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

__noinline int read_val(int *p)
{
	if (!p)
		return 0;
	*p += 1;
	return *p;
}

SEC("xdp")
int global_null_checked(struct xdp_md *ctx)
{
	int v = ctx->rx_queue_index;

	return read_val(&v) == 3 ? XDP_DROP : XDP_PASS;
}

char _license[] SEC("license") = "GPL";
