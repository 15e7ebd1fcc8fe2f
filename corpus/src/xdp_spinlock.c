// SPDX-License-Identifier: GPL-2.0
/* xdp_spinlock: per-source token accounting guarded by bpf_spin_lock.
 *
 * Each IPv4 source gets a HASH entry holding a struct bpf_spin_lock next to
 * a byte budget and counters; the budget is checked and charged under the
 * lock (as a real rate limiter would with a refill timer).  A source whose
 * budget runs out is dropped.
 * Exercises: bpf_spin_lock/bpf_spin_unlock (map value with a lock field,
 * which requires BTF for the map value), the verifier's lock discipline
 * (no helper calls or exits while holding the lock).
 */
#include "corpus.h"

#define BUDGET 400 /* bytes per source */

struct bucket {
	struct bpf_spin_lock lock;
	__u32 pad;
	__u64 budget;
	__u64 passed;
	__u64 dropped;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, struct bucket);
} buckets SEC(".maps");

SEC("xdp")
int xdp_spinlock(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *iph = (void *)(eth + 1);
	struct bucket *b, fresh = { .budget = BUDGET };
	__u64 len = data_end - data;
	__u32 saddr;
	int allow;

	if (!PKT_HAS(iph, sizeof(*iph), data_end) || eth->h_proto != bpf_htons(ETH_P_IP))
		return XDP_PASS;
	saddr = iph->saddr;

	b = bpf_map_lookup_elem(&buckets, &saddr);
	if (!b) {
		bpf_map_update_elem(&buckets, &saddr, &fresh, BPF_NOEXIST);
		b = bpf_map_lookup_elem(&buckets, &saddr);
		if (!b)
			return XDP_PASS;
	}

	bpf_spin_lock(&b->lock);
	allow = b->budget >= len;
	if (allow) {
		b->budget -= len;
		b->passed++;
	} else {
		b->dropped++;
	}
	bpf_spin_unlock(&b->lock);
	return allow ? XDP_PASS : XDP_DROP;
}

char _license[] SEC("license") = "GPL";
