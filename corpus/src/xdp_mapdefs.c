// SPDX-License-Identifier: GPL-2.0
/* xdp_mapdefs: the different ways a BTF map definition can be spelled.
 *
 * - pinned_stats: pinned by name (LIBBPF_PIN_BY_NAME), as xdp-tools does to
 *   share maps between programs; libbpf pins it under /sys/fs/bpf and reuses
 *   a map already pinned there (the recorder removes that pin around loads);
 * - sized_only: key and value given by size (__uint(key_size/value_size))
 *   instead of by type, so the map has no BTF key/value types;
 * - mmapable: an ARRAY with BPF_F_MMAPABLE;
 * - lru_nocommon: an LRU_HASH with BPF_F_NO_COMMON_LRU (per-CPU LRU lists);
 * - typed_key: key and value types given through typedefs and a union.
 * The program counts frames per EtherType class into each of them.
 * Exercises: map definition parsing (pinning, key_size/value_size, map_flags),
 * kernel.json has_btf for sized maps.
 */
// corpus-pinned-maps: bpfkit_corpus_pinned
#include "corpus.h"

typedef __u32 class_id_t;

union class_value {
	__u64 packets;
	__u8 bytes[8];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} bpfkit_corpus_pinned SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u64));
} sized_only SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, __u64);
} mmapable SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 64);
	__uint(map_flags, BPF_F_NO_COMMON_LRU);
	__type(key, __u32);
	__type(value, __u64);
} lru_nocommon SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16);
	__type(key, class_id_t);
	__type(value, union class_value);
} typed_key SEC(".maps");

static __always_inline void bump_array(void *map, __u32 key)
{
	__u64 *v = bpf_map_lookup_elem(map, &key);

	if (v)
		__sync_fetch_and_add(v, 1);
}

static __always_inline void bump_hash(void *map, __u32 key)
{
	__u64 one = 1, *v = bpf_map_lookup_elem(map, &key);

	if (v)
		__sync_fetch_and_add(v, 1);
	else
		bpf_map_update_elem(map, &key, &one, BPF_NOEXIST);
}

SEC("xdp")
int xdp_mapdefs(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	__u32 class = 3;

	if (PKT_HAS(eth, sizeof(*eth), data_end)) {
		if (eth->h_proto == bpf_htons(ETH_P_IP))
			class = 0;
		else if (eth->h_proto == bpf_htons(ETH_P_IPV6))
			class = 1;
		else if (eth->h_proto == bpf_htons(ETH_P_8021Q) || eth->h_proto == bpf_htons(ETH_P_8021AD))
			class = 2;
	}
	bump_array(&bpfkit_corpus_pinned, class);
	bump_array(&mmapable, class);
	bump_hash(&sized_only, class);
	bump_hash(&lru_nocommon, class);
	bump_hash(&typed_key, class);
	return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
