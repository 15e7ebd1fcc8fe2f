// SPDX-License-Identifier: GPL-2.0
/* xdp_counter: count packets and bytes per IP protocol and per EtherType.
 *
 * Exercises: PERCPU_ARRAY lookups with in-place updates (no atomics needed,
 * each CPU owns its slot), a HASH map with insert-if-absent (BPF_NOEXIST) and
 * atomic adds, and an ARRAY of verdict counters updated with
 * __sync_fetch_and_add (BPF_ATOMIC | BPF_ADD).
 */
#include "corpus.h"

struct datarec {
	__u64 packets;
	__u64 bytes;
};

/* Per IP protocol number (IPv4 protocol / IPv6 next header). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 256);
	__type(key, __u32);
	__type(value, struct datarec);
} proto_stats SEC(".maps");

/* Per EtherType, created on first sight. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u16);
	__type(value, struct datarec);
} ethertype_stats SEC(".maps");

/* Per XDP action returned (XDP_ABORTED .. XDP_REDIRECT). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 5);
	__type(key, __u32);
	__type(value, __u64);
} verdicts SEC(".maps");

static __always_inline void count_ethertype(__u16 proto, __u64 bytes)
{
	struct datarec *rec, fresh = {};

	rec = bpf_map_lookup_elem(&ethertype_stats, &proto);
	if (!rec) {
		/* Another CPU may win the race; BPF_NOEXIST keeps its entry. */
		bpf_map_update_elem(&ethertype_stats, &proto, &fresh, BPF_NOEXIST);
		rec = bpf_map_lookup_elem(&ethertype_stats, &proto);
		if (!rec)
			return;
	}
	__sync_fetch_and_add(&rec->packets, 1);
	__sync_fetch_and_add(&rec->bytes, bytes);
}

static __always_inline __u32 verdict(__u32 action)
{
	__u64 *cnt = bpf_map_lookup_elem(&verdicts, &action);

	if (cnt)
		__sync_fetch_and_add(cnt, 1);
	return action;
}

SEC("xdp")
int xdp_count(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u64 bytes = data_end - data;
	struct ethhdr *eth = data;
	struct datarec *rec;
	__u32 ipproto;
	__u16 h_proto;

	if (!PKT_HAS(eth, sizeof(*eth), data_end))
		return verdict(XDP_DROP);

	h_proto = bpf_ntohs(eth->h_proto);
	count_ethertype(h_proto, bytes);

	if (h_proto == ETH_P_IP) {
		struct iphdr *iph = (void *)(eth + 1);

		if (!PKT_HAS(iph, sizeof(*iph), data_end))
			return verdict(XDP_DROP);
		ipproto = iph->protocol;
	} else if (h_proto == ETH_P_IPV6) {
		struct ipv6hdr *ip6h = (void *)(eth + 1);

		if (!PKT_HAS(ip6h, sizeof(*ip6h), data_end))
			return verdict(XDP_DROP);
		ipproto = ip6h->nexthdr;
	} else {
		return verdict(XDP_PASS);
	}

	rec = bpf_map_lookup_elem(&proto_stats, &ipproto);
	if (!rec)
		return verdict(XDP_ABORTED);
	rec->packets++;
	rec->bytes += bytes;
	return verdict(XDP_PASS);
}

char _license[] SEC("license") = "GPL";
