// SPDX-License-Identifier: GPL-2.0
/* xdp_time: helpers whose results vary from run to run.
 *
 * Keeps, per IPv4 source, the number of packets (deterministic) and the time
 * and a random tag of the last one (not deterministic: bpf_ktime_get_ns,
 * bpf_ktime_get_boot_ns, bpf_get_prandom_u32), plus the CPU that ran the
 * program (bpf_get_smp_processor_id: 0 in the recorded runs).  The verdict
 * depends only on the packet, so retval and data_out are exact.
 * Exercises: time/random/CPU helpers, recorded as nondeterministic values.
 */
// corpus-nondeterministic: last_seen values hold bpf_ktime_get_ns/bpf_ktime_get_boot_ns/bpf_get_prandom_u32 results
#include "corpus.h"

struct seen {
	__u64 mono_ns;
	__u64 boot_ns;
	__u32 rand;
	__u32 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 256);
	__type(key, __u32);
	__type(value, struct seen);
} last_seen SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 256);
	__type(key, __u32);
	__type(value, __u64);
} per_source SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} last_cpu SEC(".maps");

SEC("xdp")
int xdp_time(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *iph = (void *)(eth + 1);
	struct seen s = {};
	__u64 one = 1, *cnt;
	__u32 key = 0, cpu, saddr;
	__u32 *slot;

	cpu = bpf_get_smp_processor_id();
	slot = bpf_map_lookup_elem(&last_cpu, &key);
	if (slot)
		*slot = cpu + 1; /* +1 so CPU 0 shows as a non-zero entry */

	if (!PKT_HAS(iph, sizeof(*iph), data_end) || eth->h_proto != bpf_htons(ETH_P_IP))
		return XDP_PASS;
	saddr = iph->saddr;

	s.mono_ns = bpf_ktime_get_ns();
	s.boot_ns = bpf_ktime_get_boot_ns();
	s.rand = bpf_get_prandom_u32();
	bpf_map_update_elem(&last_seen, &saddr, &s, BPF_ANY);

	cnt = bpf_map_lookup_elem(&per_source, &saddr);
	if (cnt)
		__sync_fetch_and_add(cnt, 1);
	else
		bpf_map_update_elem(&per_source, &saddr, &one, BPF_NOEXIST);
	return iph->ttl > 1 ? XDP_PASS : XDP_DROP;
}

char _license[] SEC("license") = "GPL";
