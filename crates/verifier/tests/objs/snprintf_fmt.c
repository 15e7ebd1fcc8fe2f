// expect: accept
/* bpf_snprintf with a format from .rodata (BPF_SNPRINTF packs the arguments). */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

char out[64];

SEC("xdp")
int snprintf_fmt(struct xdp_md *ctx)
{
	__u64 args[2] = { ctx->data_end - ctx->data, ctx->ingress_ifindex };
	static const char fmt[] = "len %llu on %u";

	bpf_snprintf(out, sizeof(out), fmt, args, sizeof(args));
	return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
