// SPDX-License-Identifier: GPL-2.0
/* xdp_tailcall: dispatch on EtherType to per-protocol programs by tail call.
 *
 * The PROG_ARRAY is filled at load time from its `.values` initializer
 * (libbpf's declarative prog-array init).  Slot 3 is left empty on purpose:
 * a tail call to it falls through and the dispatcher's default runs.
 * Exercises: PROG_ARRAY with relocated initial values (.rel.maps), several
 * programs in separate sections, bpf_tail_call, a shared ARRAY counter.
 */
#include "corpus.h"

enum { SLOT_IPV4, SLOT_IPV6, SLOT_ARP, SLOT_EMPTY, NSLOTS };

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, NSLOTS + 1);
	__type(key, __u32);
	__type(value, __u64);
} hits SEC(".maps");

static __always_inline void hit(__u32 slot)
{
	__u64 *cnt = bpf_map_lookup_elem(&hits, &slot);

	if (cnt)
		__sync_fetch_and_add(cnt, 1);
}

SEC("xdp")
int handle_ipv4(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct iphdr *iph = data + sizeof(struct ethhdr);

	hit(SLOT_IPV4);
	if (!PKT_HAS(iph, sizeof(*iph), data_end))
		return XDP_DROP;
	/* Drop IPv4 packets whose TTL would expire at the next hop. */
	return iph->ttl <= 1 ? XDP_DROP : XDP_PASS;
}

SEC("xdp")
int handle_ipv6(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ipv6hdr *ip6h = data + sizeof(struct ethhdr);

	hit(SLOT_IPV6);
	if (!PKT_HAS(ip6h, sizeof(*ip6h), data_end))
		return XDP_DROP;
	return ip6h->hop_limit <= 1 ? XDP_DROP : XDP_PASS;
}

SEC("xdp")
int handle_arp(struct xdp_md *ctx)
{
	hit(SLOT_ARP);
	return XDP_PASS;
}

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, NSLOTS);
	__type(key, __u32);
	__array(values, int(void *));
} jmp_table SEC(".maps") = {
	.values = {
		[SLOT_IPV4] = (void *)&handle_ipv4,
		[SLOT_IPV6] = (void *)&handle_ipv6,
		[SLOT_ARP] = (void *)&handle_arp,
	},
};

SEC("xdp")
int xdp_dispatch(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	__u32 slot;

	if (!PKT_HAS(eth, sizeof(*eth), data_end))
		return XDP_DROP;

	switch (bpf_ntohs(eth->h_proto)) {
	case ETH_P_IP:
		slot = SLOT_IPV4;
		break;
	case ETH_P_IPV6:
		slot = SLOT_IPV6;
		break;
	case ETH_P_ARP:
		slot = SLOT_ARP;
		break;
	default:
		slot = SLOT_EMPTY; /* no program there: the tail call fails */
		break;
	}
	bpf_tail_call(ctx, &jmp_table, slot);

	/* Only reached when the slot is empty. */
	hit(NSLOTS);
	return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
