// expect: accept
/* A `struct xdp_md *` argument of a global function is PTR_TO_CTX in the callee: it
 * reads data/data_end and bounds-checks the packet on its own. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

__noinline int first_byte(struct xdp_md *ctx)
{
	unsigned char *data = (void *)(long)ctx->data;
	unsigned char *end = (void *)(long)ctx->data_end;

	if (data + 1 > end)
		return -1;
	return data[0];
}

SEC("xdp")
int global_ctx_arg(struct xdp_md *ctx)
{
	return first_byte(ctx) == 0x45 ? XDP_DROP : XDP_PASS;
}

char _license[] SEC("license") = "GPL";
