// expect: reject invalid access to packet
/* SEC("?xdp"): libbpf does not load it by default, but it is an XDP program all the
 * same (libbpf strips the '?' before matching the section name), so the gate must
 * verify it. The packet read has no bounds check. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("?xdp")
int not_autoloaded(struct xdp_md *ctx)
{
	unsigned char *data = (unsigned char *)(long)ctx->data;
	return data[12] == 8 ? XDP_PASS : XDP_DROP;
}

char _license[] SEC("license") = "GPL";
