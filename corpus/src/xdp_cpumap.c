// SPDX-License-Identifier: GPL-2.0
/* xdp_cpumap: software RSS, spreading IPv4 flows over CPUs with a CPUMAP.
 *
 * The entry program hashes the IPv4 source and destination addresses and
 * redirects the frame into the CPUMAP slot of the chosen CPU (slots 0 and 1
 * are populated, 64-frame queues); frames that are not IPv4 pass.  A second
 * program, in section "xdp/cpumap", is the kind that runs on the remote CPU
 * after the redirect (it counts frames per protocol); BPF_PROG_TEST_RUN
 * refuses to run it directly.
 * Exercises: CPUMAP with struct bpf_cpumap_val values, bpf_redirect_map into
 * a CPUMAP, section "xdp/cpumap" (expected_attach_type BPF_XDP_CPUMAP).
 */
// corpus-map-setup: cpu_map 00000000 4000000000000000
// corpus-map-setup: cpu_map 01000000 4000000000000000
#include "corpus.h"

#define NCPUS 2

struct {
	__uint(type, BPF_MAP_TYPE_CPUMAP);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, struct bpf_cpumap_val);
} cpu_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, NCPUS);
	__type(key, __u32);
	__type(value, __u64);
} steered SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 256);
	__type(key, __u32);
	__type(value, __u64);
} remote_proto SEC(".maps");

SEC("xdp")
int xdp_cpumap_rss(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *iph = (void *)(eth + 1);
	__u32 h, cpu;
	__u64 *cnt;

	if (!PKT_HAS(iph, sizeof(*iph), data_end) || eth->h_proto != bpf_htons(ETH_P_IP))
		return XDP_PASS;

	h = iph->saddr ^ iph->daddr;
	h ^= h >> 16;
	h ^= h >> 8;
	cpu = h % NCPUS;
	cnt = bpf_map_lookup_elem(&steered, &cpu);
	if (cnt)
		__sync_fetch_and_add(cnt, 1);
	return bpf_redirect_map(&cpu_map, cpu, XDP_PASS);
}

SEC("xdp/cpumap")
int xdp_cpumap_remote(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *iph = (void *)(eth + 1);
	__u32 proto;
	__u64 *cnt;

	if (!PKT_HAS(iph, sizeof(*iph), data_end))
		return XDP_PASS;
	proto = iph->protocol;
	cnt = bpf_map_lookup_elem(&remote_proto, &proto);
	if (cnt)
		*cnt += 1;
	return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
