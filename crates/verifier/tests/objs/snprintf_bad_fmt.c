// expect: reject Invalid format string
/* A %s conversion followed by a letter is refused by bpf_bprintf_prepare. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

char out[64];

SEC("xdp")
int snprintf_bad_fmt(struct xdp_md *ctx)
{
	__u64 args[1] = { 0 };
	static const char fmt[] = "name %sx";

	bpf_snprintf(out, sizeof(out), fmt, args, sizeof(args));
	return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
