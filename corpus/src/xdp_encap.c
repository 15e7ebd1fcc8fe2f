// corpus-cflags: -mcpu=v3
// SPDX-License-Identifier: GPL-2.0
/* xdp_encap: IP-in-IP encapsulation towards a backend, Katran style.
 *
 * IPv4 UDP packets to the virtual service 10.0.0.254:53 are wrapped in an
 * outer IPv4 header (protocol 4, IPIP) addressed to the backend found in
 * `backends` (by hashing the source port), then sent back out with XDP_TX.
 * The frame grows by 20 bytes at the front: bpf_xdp_adjust_head with a
 * negative delta uses the headroom.  The outer header checksum is computed
 * with a fixed 10-word loop.
 * Exercises: bpf_xdp_adjust_head(-20), writing a whole header, header
 * checksum, ARRAY lookup with a computed index, XDP_TX.
 */
// corpus-map-setup: backends 00000000 0a000a01
// corpus-map-setup: backends 01000000 0a000a02
// corpus-map-setup: backends 02000000 0a000a03
#include "corpus.h"

#define NBACKENDS 3
#define VIP 0x0a0000feU /* 10.0.0.254 */
#define VPORT 53
#define LOCAL_ADDR 0x0a000a00U /* 10.0.10.0, the encapsulating host */

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, NBACKENDS);
	__type(key, __u32);
	__type(value, __u32); /* backend IPv4 address, network order */
} backends SEC(".maps");

static __always_inline __u16 ip_checksum(struct iphdr *iph)
{
	__u16 *w = (__u16 *)iph;
	__u32 sum = 0;
	int i;

	for (i = 0; i < (int)(sizeof(*iph) / 2); i++)
		sum += w[i];
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return ~sum;
}

SEC("xdp")
int xdp_encap(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data, *new_eth;
	struct iphdr *iph = (void *)(eth + 1), *outer;
	struct udphdr *uh = (void *)(iph + 1);
	struct ethhdr eth_copy;
	__u32 key, *backend;
	__u16 inner_len;

	if (!PKT_HAS(uh, sizeof(*uh), data_end))
		return XDP_PASS;
	if (eth->h_proto != bpf_htons(ETH_P_IP) || iph->ihl != 5 || iph->protocol != IPPROTO_UDP)
		return XDP_PASS;
	if (iph->daddr != bpf_htonl(VIP) || uh->dest != bpf_htons(VPORT))
		return XDP_PASS;

	key = bpf_ntohs(uh->source) % NBACKENDS;
	backend = bpf_map_lookup_elem(&backends, &key);
	if (!backend || !*backend)
		return XDP_DROP;

	inner_len = bpf_ntohs(iph->tot_len);
	__builtin_memcpy(&eth_copy, eth, sizeof(eth_copy));

	if (bpf_xdp_adjust_head(ctx, -(int)sizeof(struct iphdr)))
		return XDP_ABORTED;

	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	new_eth = data;
	outer = (void *)(new_eth + 1);
	if (!PKT_HAS(outer, sizeof(*outer), data_end))
		return XDP_ABORTED;

	/* Ethernet: reply through the port it came in on, swap the addresses. */
	__builtin_memcpy(new_eth->h_dest, eth_copy.h_source, ETH_ALEN);
	__builtin_memcpy(new_eth->h_source, eth_copy.h_dest, ETH_ALEN);
	new_eth->h_proto = bpf_htons(ETH_P_IP);

	outer->version = 4;
	outer->ihl = 5;
	outer->tos = 0;
	outer->tot_len = bpf_htons(inner_len + sizeof(*outer));
	outer->id = 0;
	outer->frag_off = bpf_htons(0x4000); /* DF */
	outer->ttl = 64;
	outer->protocol = IPPROTO_IPIP;
	outer->check = 0;
	outer->saddr = bpf_htonl(LOCAL_ADDR | (key + 1));
	outer->daddr = *backend;
	outer->check = ip_checksum(outer);
	return XDP_TX;
}

char _license[] SEC("license") = "GPL";
