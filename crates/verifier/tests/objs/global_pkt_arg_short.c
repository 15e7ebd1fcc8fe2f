// expect: reject Caller passes invalid args into func#1 ('is_magic')
/* As global_pkt_arg.c, but the caller proved only 2 packet bytes for a `__u32 *`
 * argument: the call site's 4-byte access check fails. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

__noinline int is_magic(__u32 *w)
{
	if (!w)
		return 0;
	return *w == 0x12345678;
}

SEC("xdp")
int global_pkt_arg_short(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;

	if (data + 2 > end)
		return XDP_PASS;
	return is_magic(data) ? XDP_DROP : XDP_PASS;
}

char _license[] SEC("license") = "GPL";
