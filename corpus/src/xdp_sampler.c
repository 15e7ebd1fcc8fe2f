// corpus-cflags: -mcpu=v2
// SPDX-License-Identifier: GPL-2.0
/* xdp_sampler: traffic summaries in the less common map types.
 *
 * - dport_packets (PERCPU_HASH): packets per TCP/UDP destination port;
 * - src_bytes (LRU_PERCPU_HASH): bytes per IPv4 source;
 * - seen_src (BLOOM_FILTER, BPF_F_ZERO_SEED so its hashing is reproducible):
 *   sources seen before; a source the filter does not know is pushed to
 *   - new_sources (QUEUE of 8, oldest dropped when full: BPF_EXIST);
 * - recent_lens (STACK of 4): the lengths of the latest frames.
 * Exercises: per-CPU hash updates, LRU per-CPU hash, bloom filter
 * peek/push, queue/stack push with BPF_EXIST, bpf_map_peek_elem on a stack.
 */
#include "corpus.h"

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 128);
	__type(key, __u16);
	__type(value, __u64);
} dport_packets SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_PERCPU_HASH);
	__uint(max_entries, 128);
	__type(key, __u32);
	__type(value, __u64);
} src_bytes SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_BLOOM_FILTER);
	__uint(max_entries, 256);
	__uint(map_flags, BPF_F_ZERO_SEED);
	__uint(map_extra, 3); /* number of hash functions */
	__type(value, __u32);
} seen_src SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_QUEUE);
	__uint(max_entries, 8);
	__type(value, __u32);
} new_sources SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_STACK);
	__uint(max_entries, 4);
	__type(value, __u16);
} recent_lens SEC(".maps");

SEC("xdp")
int xdp_sampler(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *iph = (void *)(eth + 1);
	struct udphdr *uh;
	__u16 len = data_end - data, dport, last = 0;
	__u64 one = 1, bytes = len, *v;
	__u32 saddr;

	/* The previous frame's length is on top of the stack. */
	bpf_map_peek_elem(&recent_lens, &last);
	bpf_map_push_elem(&recent_lens, &len, BPF_EXIST);

	if (!PKT_HAS(iph, sizeof(*iph), data_end) || eth->h_proto != bpf_htons(ETH_P_IP))
		return XDP_PASS;
	saddr = iph->saddr;

	v = bpf_map_lookup_elem(&src_bytes, &saddr);
	if (v)
		*v += bytes;
	else
		bpf_map_update_elem(&src_bytes, &saddr, &bytes, BPF_NOEXIST);

	if (bpf_map_peek_elem(&seen_src, &saddr) != 0) {
		bpf_map_push_elem(&seen_src, &saddr, 0);
		bpf_map_push_elem(&new_sources, &saddr, BPF_EXIST);
	}

	if ((iph->protocol == IPPROTO_TCP || iph->protocol == IPPROTO_UDP) && iph->ihl == 5) {
		uh = (void *)(iph + 1);
		if (!PKT_HAS(uh, sizeof(*uh), data_end))
			return XDP_PASS;
		dport = bpf_ntohs(uh->dest);
		v = bpf_map_lookup_elem(&dport_packets, &dport);
		if (v)
			*v += 1;
		else
			bpf_map_update_elem(&dport_packets, &dport, &one, BPF_NOEXIST);
	}
	/* Equal consecutive lengths look like a retransmission or a flood. */
	return last == len ? XDP_DROP : XDP_PASS;
}

char _license[] SEC("license") = "GPL";
