// SPDX-License-Identifier: GPL-2.0
/* xdp_firewall: drop IPv4 packets from blocked sources.
 *
 * A HASH blocklist holds exact source addresses (value: per-address drop
 * count), an LPM_TRIE holds blocked prefixes, and a PERCPU_ARRAY counts the
 * verdicts.  Exercises: hash lookup keyed by a packet field, LPM_TRIE lookup
 * with a stack-built key, BPF_F_NO_PREALLOC map flags, atomic add on a map
 * value.
 */
// corpus-map-setup: blocklist 0a000042 0000000000000000
// corpus-map-setup: blocklist c0a80107 0000000000000000
// corpus-map-setup: prefix_blocklist 18000000cb007100 01
// corpus-map-setup: prefix_blocklist 10000000ac100000 02
#include "corpus.h"

struct lpm_v4_key {
	__u32 prefixlen;
	__u32 addr; /* network byte order */
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);   /* IPv4 source, network byte order */
	__type(value, __u64); /* packets dropped from it */
} blocklist SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 256);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct lpm_v4_key);
	__type(value, __u8); /* rule id */
} prefix_blocklist SEC(".maps");

enum fw_stat { FW_PASS, FW_DROP_EXACT, FW_DROP_PREFIX, FW_MALFORMED, FW_NSTATS };

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, FW_NSTATS);
	__type(key, __u32);
	__type(value, __u64);
} fw_stats SEC(".maps");

static __always_inline int account(__u32 stat, int action)
{
	__u64 *cnt = bpf_map_lookup_elem(&fw_stats, &stat);

	if (cnt)
		*cnt += 1;
	return action;
}

SEC("xdp")
int xdp_firewall(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *iph;
	struct lpm_v4_key key;
	__u64 *drops;
	__u32 saddr;

	if (!PKT_HAS(eth, sizeof(*eth), data_end))
		return account(FW_MALFORMED, XDP_DROP);
	if (eth->h_proto != bpf_htons(ETH_P_IP))
		return account(FW_PASS, XDP_PASS);

	iph = (void *)(eth + 1);
	if (!PKT_HAS(iph, sizeof(*iph), data_end))
		return account(FW_MALFORMED, XDP_DROP);

	saddr = iph->saddr;
	drops = bpf_map_lookup_elem(&blocklist, &saddr);
	if (drops) {
		__sync_fetch_and_add(drops, 1);
		return account(FW_DROP_EXACT, XDP_DROP);
	}

	key.prefixlen = 32;
	key.addr = saddr;
	if (bpf_map_lookup_elem(&prefix_blocklist, &key))
		return account(FW_DROP_PREFIX, XDP_DROP);

	return account(FW_PASS, XDP_PASS);
}

char _license[] SEC("license") = "GPL";
