// SPDX-License-Identifier: GPL-2.0
/* xdp_redirect: forward packets to other interfaces.
 *
 * IPv4 packets are redirected through a DEVMAP chosen by the low bit of the
 * destination address (slot 0 or 1, with XDP_PASS as the fallback action
 * when the slot is empty), IPv6 packets with bpf_redirect() to a fixed
 * ifindex; MAC addresses are rewritten from a HASH of next hops first.
 * Under BPF_PROG_TEST_RUN a redirect only returns XDP_REDIRECT (4).
 * Exercises: bpf_redirect_map with a flags fallback, bpf_redirect,
 * DEVMAP values (struct bpf_devmap_val), MAC rewrite from a map value.
 */
// corpus-map-setup: tx_port 00000000 01000000
// corpus-map-setup: next_hop 0a000001 02000000000b02000000000a
#include "corpus.h"

#define IPV6_EGRESS_IFINDEX 1

struct {
	__uint(type, BPF_MAP_TYPE_DEVMAP);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u32); /* ifindex */
} tx_port SEC(".maps");

struct mac_pair {
	unsigned char dst[ETH_ALEN];
	unsigned char src[ETH_ALEN];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 128);
	__type(key, __u32);            /* IPv4 destination, network order */
	__type(value, struct mac_pair);
} next_hop SEC(".maps");

SEC("xdp")
int xdp_redirect(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct mac_pair *mp;
	struct iphdr *iph;
	__u32 daddr;

	if (!PKT_HAS(eth, sizeof(*eth), data_end))
		return XDP_DROP;

	if (eth->h_proto == bpf_htons(ETH_P_IPV6))
		return bpf_redirect(IPV6_EGRESS_IFINDEX, 0);
	if (eth->h_proto != bpf_htons(ETH_P_IP))
		return XDP_PASS;

	iph = (void *)(eth + 1);
	if (!PKT_HAS(iph, sizeof(*iph), data_end))
		return XDP_DROP;
	daddr = iph->daddr;

	mp = bpf_map_lookup_elem(&next_hop, &daddr);
	if (mp) {
		__builtin_memcpy(eth->h_dest, mp->dst, ETH_ALEN);
		__builtin_memcpy(eth->h_source, mp->src, ETH_ALEN);
	}
	/* Lower bits of flags: the action when the slot holds no device. */
	return bpf_redirect_map(&tx_port, bpf_ntohl(daddr) & 1, XDP_PASS);
}

char _license[] SEC("license") = "GPL";
