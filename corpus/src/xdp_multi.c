// SPDX-License-Identifier: GPL-2.0
/* xdp_multi: three programs in the same "xdp" section.
 *
 * clang places all three functions one after the other in one section; the
 * loader must split them by symbol (offset and size).  Each program keeps
 * its own counter in one shared ARRAY.
 * Exercises: several entry points per section, relocations whose offsets
 * lie in the second and third function, a shared map.
 */
#include "corpus.h"

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 3);
	__type(key, __u32);
	__type(value, __u64);
} seen SEC(".maps");

static __always_inline void bump(__u32 key)
{
	__u64 *cnt = bpf_map_lookup_elem(&seen, &key);

	if (cnt)
		__sync_fetch_and_add(cnt, 1);
}

/* Pass only IPv4 and ARP. */
SEC("xdp")
int xdp_ipv4_only(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;

	bump(0);
	if (!PKT_HAS(eth, sizeof(*eth), data_end))
		return XDP_DROP;
	if (eth->h_proto == bpf_htons(ETH_P_IP) || eth->h_proto == bpf_htons(ETH_P_ARP))
		return XDP_PASS;
	return XDP_DROP;
}

/* Drop UDP over IPv4, pass everything else. */
SEC("xdp")
int xdp_drop_udp(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *iph = (void *)(eth + 1);

	bump(1);
	if (!PKT_HAS(iph, sizeof(*iph), data_end))
		return XDP_PASS;
	if (eth->h_proto == bpf_htons(ETH_P_IP) && iph->protocol == IPPROTO_UDP)
		return XDP_DROP;
	return XDP_PASS;
}

/* Return the packet length modulo 5 as the action (exercises every verdict). */
SEC("xdp")
int xdp_len_verdict(struct xdp_md *ctx)
{
	__u32 len = ctx->data_end - ctx->data;

	bump(2);
	return len % 5;
}

char _license[] SEC("license") = "GPL";
