// SPDX-License-Identifier: GPL-2.0
/* xdp_devmap_prog: an egress program attached to DEVMAP entries.
 *
 * Section "xdp/devmap" makes libbpf load it with expected_attach_type
 * BPF_XDP_DEVMAP; such programs run after a redirect into a DEVMAP slot whose
 * value (struct bpf_devmap_val) names them, and may read ctx->egress_ifindex.
 * The plain "xdp" program here redirects everything to slot 0.  The kernel's
 * BPF_PROG_TEST_RUN refuses to run devmap programs directly (see the run.json
 * errors), which the VM must reproduce.
 * Exercises: expected_attach_type from the section name, ctx->egress_ifindex
 * (only readable in devmap programs), DEVMAP with struct bpf_devmap_val values.
 */
// corpus-map-setup: egress_map 00000000 0100000000000000
#include "corpus.h"

struct {
	__uint(type, BPF_MAP_TYPE_DEVMAP);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, struct bpf_devmap_val);
} egress_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64); /* egress ifindex seen last */
} egress_seen SEC(".maps");

SEC("xdp/devmap")
int xdp_egress(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	__u32 key = 0;
	__u64 *seen;

	seen = bpf_map_lookup_elem(&egress_seen, &key);
	if (seen)
		*seen = ctx->egress_ifindex;
	if (!PKT_HAS(eth, sizeof(*eth), data_end))
		return XDP_DROP;
	/* Mark the frame as locally administered from the egress port. */
	eth->h_source[0] = 0x02;
	eth->h_source[5] = (__u8)ctx->egress_ifindex;
	return XDP_PASS;
}

SEC("xdp")
int xdp_to_devmap(struct xdp_md *ctx)
{
	return bpf_redirect_map(&egress_map, 0, XDP_DROP);
}

char _license[] SEC("license") = "GPL";
