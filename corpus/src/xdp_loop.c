// SPDX-License-Identifier: GPL-2.0
/* xdp_loop: bounded loops the verifier has to walk.
 *
 * xdp_vlan_depth skips up to MAX_VLAN stacked VLAN tags in a loop that clang
 * is told not to unroll, then walks up to MAX_EXT IPv6 extension headers
 * (hop-by-hop, routing, destination options, fragment) to find the upper
 * protocol, which it counts.  xdp_bpf_loop does a byte-sum over the first
 * 64 bytes through bpf_loop() with a callback and a context on the stack.
 * Exercises: back-edges (jumps with negative offsets), variable packet
 * offsets, bpf_loop with a static callback (an ld_imm64 of the callback's
 * address, which the loader turns into BPF_PSEUDO_FUNC, src=4).
 */
#include "corpus.h"

#define MAX_VLAN 4
#define MAX_EXT 6

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 256);
	__type(key, __u32);   /* upper-layer protocol after extension headers */
	__type(value, __u64);
} l4_proto SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);   /* 0: last byte sum, 1: number of runs */
	__type(value, __u64);
} checksum SEC(".maps");

struct ext_hdr {
	__u8 nexthdr;
	__u8 hdrlen; /* in 8-byte units, not counting the first 8 */
};

static __always_inline int is_ext_header(__u8 nh)
{
	return nh == IPPROTO_HOPOPTS || nh == IPPROTO_ROUTING ||
	       nh == IPPROTO_DSTOPTS || nh == IPPROTO_FRAGMENT;
}

SEC("xdp")
int xdp_vlan_depth(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct ipv6hdr *ip6h;
	void *cursor;
	__u16 proto;
	__u32 key;
	__u8 nh;
	__u64 *cnt;
	int i;

	if (!PKT_HAS(eth, sizeof(*eth), data_end))
		return XDP_DROP;
	proto = eth->h_proto;
	cursor = eth + 1;

#pragma clang loop unroll(disable)
	for (i = 0; i < MAX_VLAN; i++) {
		struct vlan_hdr *vh = cursor;

		if (proto != bpf_htons(ETH_P_8021Q) && proto != bpf_htons(ETH_P_8021AD))
			break;
		if (!PKT_HAS(vh, sizeof(*vh), data_end))
			return XDP_DROP;
		proto = vh->h_vlan_encapsulated_proto;
		cursor = vh + 1;
	}

	if (proto != bpf_htons(ETH_P_IPV6))
		return XDP_PASS;
	ip6h = cursor;
	if (!PKT_HAS(ip6h, sizeof(*ip6h), data_end))
		return XDP_DROP;
	nh = ip6h->nexthdr;
	cursor = ip6h + 1;

#pragma clang loop unroll(disable)
	for (i = 0; i < MAX_EXT; i++) {
		struct ext_hdr *opt = cursor;

		if (!is_ext_header(nh))
			break;
		if (!PKT_HAS(opt, sizeof(*opt), data_end))
			return XDP_DROP;
		nh = opt->nexthdr;
		/* The fragment header has a fixed size of 8 bytes. */
		if (nh == IPPROTO_FRAGMENT)
			cursor += 8;
		else
			cursor += (opt->hdrlen + 1) * 8;
	}
	if (is_ext_header(nh))
		return XDP_DROP; /* too many extension headers */

	key = nh;
	cnt = bpf_map_lookup_elem(&l4_proto, &key);
	if (cnt)
		__sync_fetch_and_add(cnt, 1);
	return XDP_PASS;
}

struct sum_ctx {
	struct xdp_md *xdp;
	__u64 sum;
};

static long sum_byte(__u64 index, void *arg)
{
	struct sum_ctx *c = arg;
	void *data = (void *)(long)c->xdp->data;
	void *data_end = (void *)(long)c->xdp->data_end;
	__u8 *p = data + (index & 63);

	if (!PKT_HAS(p, 1, data_end))
		return 1; /* stop: packet shorter than 64 bytes */
	c->sum += *p;
	return 0;
}

SEC("xdp")
int xdp_bpf_loop(struct xdp_md *ctx)
{
	struct sum_ctx c = { .xdp = ctx, .sum = 0 };
	__u32 key = 0;
	__u64 *slot;
	long iters;

	iters = bpf_loop(64, sum_byte, &c, 0);
	slot = bpf_map_lookup_elem(&checksum, &key);
	if (slot)
		*slot = c.sum;
	key = 1;
	slot = bpf_map_lookup_elem(&checksum, &key);
	if (slot)
		__sync_fetch_and_add(slot, 1);
	return iters == 64 ? XDP_PASS : XDP_DROP;
}

char _license[] SEC("license") = "GPL";
