// SPDX-License-Identifier: GPL-2.0
/* xdp_legacy_maps: maps declared the pre-BTF way, in section "maps".
 *
 * `struct bpf_map_def` was removed from libbpf's headers (and libbpf >= 1.0
 * refuses to load such objects), so it is defined here with the historical
 * layout.  There is no BTF for the maps, only symbols pointing into "maps".
 * The program counts packets per L4 protocol in a HASH and keeps the size of
 * the largest packet seen in an ARRAY.
 * Exercises: legacy map definitions (5 x u32 each, 20 bytes per map),
 * relocations against the "maps" section, map value comparisons.
 */
#include "corpus.h"

struct bpf_map_def {
	unsigned int type;
	unsigned int key_size;
	unsigned int value_size;
	unsigned int max_entries;
	unsigned int map_flags;
};

struct bpf_map_def SEC("maps") proto_count = {
	.type = BPF_MAP_TYPE_HASH,
	.key_size = sizeof(__u32),
	.value_size = sizeof(__u64),
	.max_entries = 32,
};

struct bpf_map_def SEC("maps") max_len = {
	.type = BPF_MAP_TYPE_ARRAY,
	.key_size = sizeof(__u32),
	.value_size = sizeof(__u64),
	.max_entries = 1,
};

SEC("xdp")
int xdp_legacy(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *iph = (void *)(eth + 1);
	__u64 len = data_end - data, one = 1, *val;
	__u32 key = 0, proto;

	val = bpf_map_lookup_elem(&max_len, &key);
	if (val && *val < len)
		*val = len;

	if (!PKT_HAS(iph, sizeof(*iph), data_end) || eth->h_proto != bpf_htons(ETH_P_IP))
		return XDP_PASS;
	proto = iph->protocol;
	val = bpf_map_lookup_elem(&proto_count, &proto);
	if (val)
		__sync_fetch_and_add(val, 1);
	else
		bpf_map_update_elem(&proto_count, &proto, &one, BPF_NOEXIST);
	return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
