// expect: reject arg#0 should be `struct xdp_md *`
/* A global function whose argument is tagged `arg:ctx` (libbpf's __arg_ctx) but typed
 * `__u64 *`: only tracing program types take that as their context. For XDP the
 * kernel accepts `void *` or `struct xdp_md *` and refuses the call
 * (btf_validate_prog_ctx_type). Found by the kernel's verifier_global_subprogs
 * selftest converted to XDP (docs/verifier.md). */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

__attribute__((noinline)) int takes_u64_ctx(__u64 *ctx __attribute__((btf_decl_tag("arg:ctx"))))
{
	return ctx != 0;
}

SEC("xdp")
int global_ctx_tag_u64(struct xdp_md *ctx)
{
	return takes_u64_ctx((__u64 *)ctx) ? XDP_PASS : XDP_DROP;
}

char _license[] SEC("license") = "GPL";
