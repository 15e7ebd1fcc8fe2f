// corpus-cflags: -mcpu=v3
// SPDX-License-Identifier: GPL-2.0
/* xdp_flowtable: per-flow packet/byte accounting in an LRU hash.
 *
 * The 5-tuple of IPv4 and IPv6 TCP/UDP packets keys an LRU_HASH (old flows
 * are evicted when full); the first packet of a flow inserts it with
 * BPF_NOEXIST, later packets update it with atomic adds.  TCP flags are
 * OR-ed into the entry with __sync_fetch_and_or.
 * Exercises: LRU_HASH, a 40-byte struct key built on the stack (must be
 * fully initialized, padding included), IPv6 address copies, atomic add/or;
 * built with -mcpu=v3 (32-bit jumps, 32-bit atomic or).
 */
#include "corpus.h"

struct flow_key {
	__u32 src[4]; /* IPv4 uses src[0] */
	__u32 dst[4];
	__u16 sport;
	__u16 dport;
	__u8 proto;
	__u8 family;  /* 4 or 6 */
	__u16 pad;
};

struct flow_stats {
	__u64 packets;
	__u64 bytes;
	__u32 tcp_flags; /* OR of all flag bytes seen */
	__u32 first_len;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 8192);
	__type(key, struct flow_key);
	__type(value, struct flow_stats);
} flows SEC(".maps");

SEC("xdp")
int xdp_flowtable(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u32 len = data_end - data;
	struct ethhdr *eth = data;
	struct flow_key key;
	struct flow_stats *st, init = {};
	void *l4;
	__u8 flags = 0;

	__builtin_memset(&key, 0, sizeof(key));
	if (!PKT_HAS(eth, sizeof(*eth), data_end))
		return XDP_PASS;

	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *iph = (void *)(eth + 1);

		if (!PKT_HAS(iph, sizeof(*iph), data_end))
			return XDP_PASS;
		key.family = 4;
		key.proto = iph->protocol;
		key.src[0] = iph->saddr;
		key.dst[0] = iph->daddr;
		l4 = (void *)iph + iph->ihl * 4;
	} else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6h = (void *)(eth + 1);

		if (!PKT_HAS(ip6h, sizeof(*ip6h), data_end))
			return XDP_PASS;
		key.family = 6;
		key.proto = ip6h->nexthdr;
		__builtin_memcpy(key.src, &ip6h->saddr, 16);
		__builtin_memcpy(key.dst, &ip6h->daddr, 16);
		l4 = ip6h + 1;
	} else {
		return XDP_PASS;
	}

	if (key.proto == IPPROTO_TCP) {
		struct tcphdr *th = l4;

		if (!PKT_HAS(th, sizeof(*th), data_end))
			return XDP_PASS;
		key.sport = th->source;
		key.dport = th->dest;
		flags = ((__u8 *)th)[13];
	} else if (key.proto == IPPROTO_UDP) {
		struct udphdr *uh = l4;

		if (!PKT_HAS(uh, sizeof(*uh), data_end))
			return XDP_PASS;
		key.sport = uh->source;
		key.dport = uh->dest;
	} else {
		return XDP_PASS;
	}

	st = bpf_map_lookup_elem(&flows, &key);
	if (!st) {
		init.first_len = len;
		bpf_map_update_elem(&flows, &key, &init, BPF_NOEXIST);
		st = bpf_map_lookup_elem(&flows, &key);
		if (!st)
			return XDP_PASS;
	}
	__sync_fetch_and_add(&st->packets, 1);
	__sync_fetch_and_add(&st->bytes, len);
	if (flags)
		__sync_fetch_and_or(&st->tcp_flags, flags);
	return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
