// SPDX-License-Identifier: GPL-2.0
/* xdp_calls: a packet parser split into bpf-to-bpf functions.
 *
 * The helpers live in .text as real (__noinline) functions and are called
 * from the program in section "xdp": calls across sections, argument passing
 * in r1-r5, pointers to the caller's stack, nested calls (parse_l4 calls
 * fold_ports), and a global (non-static) function the verifier checks on its
 * own.  The program sums a 5-tuple hash into an ARRAY bucket counter.
 */
#include "corpus.h"

#define NBUCKETS 16

struct tuple {
	__u32 saddr;
	__u32 daddr;
	__u16 sport;
	__u16 dport;
	__u8 proto;
	__u8 pad[3];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, NBUCKETS);
	__type(key, __u32);
	__type(value, __u64);
} buckets SEC(".maps");

/* Returns the EtherType and stores the L3 offset, or 0 when too short. */
static __noinline int parse_eth(void *data, void *data_end, __u32 *l3_off)
{
	struct ethhdr *eth = data;

	if (!PKT_HAS(eth, sizeof(*eth), data_end))
		return 0;
	*l3_off = sizeof(*eth);
	return bpf_ntohs(eth->h_proto);
}

static __noinline __u32 fold_ports(__u16 sport, __u16 dport)
{
	return ((__u32)sport << 16 | dport) * 2654435761u;
}

/* Fills ports of t for TCP/UDP; returns the port hash (0 without ports). */
static __noinline __u32 parse_l4(struct xdp_md *ctx, __u32 l4_off, struct tuple *t)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct udphdr *uh;

	if (t->proto != IPPROTO_TCP && t->proto != IPPROTO_UDP)
		return 0;
	if (l4_off > 60 + sizeof(struct ethhdr))
		return 0;
	/* TCP and UDP both start with the two ports. */
	uh = data + l4_off;
	if (!PKT_HAS(uh, sizeof(*uh), data_end))
		return 0;
	t->sport = bpf_ntohs(uh->source);
	t->dport = bpf_ntohs(uh->dest);
	return fold_ports(t->sport, t->dport);
}

/* A global function: verified independently, arguments are checked by type. */
__noinline int tuple_bucket(struct tuple *t, __u32 port_hash)
{
	__u32 h;

	if (!t)
		return 0;
	h = t->saddr ^ t->daddr ^ port_hash ^ t->proto;
	h ^= h >> 16;
	h ^= h >> 8;
	return h % NBUCKETS;
}

SEC("xdp")
int xdp_calls(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct tuple t = {};
	__u32 l3_off = 0, port_hash, key;
	struct iphdr *iph;
	__u64 *cnt;
	int proto;

	proto = parse_eth(data, data_end, &l3_off);
	if (proto != ETH_P_IP)
		return proto ? XDP_PASS : XDP_DROP;

	iph = data + sizeof(struct ethhdr);
	if (!PKT_HAS(iph, sizeof(*iph), data_end))
		return XDP_DROP;
	t.saddr = iph->saddr;
	t.daddr = iph->daddr;
	t.proto = iph->protocol;

	port_hash = parse_l4(ctx, l3_off + iph->ihl * 4, &t);
	key = tuple_bucket(&t, port_hash);
	cnt = bpf_map_lookup_elem(&buckets, &key);
	if (cnt)
		__sync_fetch_and_add(cnt, 1);
	return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
