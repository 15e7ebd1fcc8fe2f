// expect: accept
/* `void *` tagged `arg:ctx` is the context for every program type
 * (btf_validate_prog_ctx_type): the callee passes it on to a helper that takes the
 * XDP context. The counterpart of global_ctx_tag_u64. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

__attribute__((noinline)) int grow(void *ctx __attribute__((btf_decl_tag("arg:ctx"))))
{
	return bpf_xdp_adjust_head(ctx, 0);
}

SEC("xdp")
int global_ctx_tag_void(struct xdp_md *ctx)
{
	return grow(ctx) ? XDP_DROP : XDP_PASS;
}

char _license[] SEC("license") = "GPL";
