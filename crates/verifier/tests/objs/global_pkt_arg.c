// expect: accept
/* A packet pointer passed as a global function's `__u32 *` argument: the call site
 * checks it like a 4-byte helper read and write (the caller proved 4 bytes); in the
 * callee it is plain memory of 4 bytes, maybe NULL. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

__noinline int is_magic(__u32 *w)
{
	if (!w)
		return 0;
	return *w == 0x12345678;
}

SEC("xdp")
int global_pkt_arg(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;

	if (data + 4 > end)
		return XDP_PASS;
	return is_magic(data) ? XDP_DROP : XDP_PASS;
}

char _license[] SEC("license") = "GPL";
