// SPDX-License-Identifier: GPL-2.0
/* REJECTED on purpose: dereferences a map lookup result without a NULL check.
 * Expected verifier complaint: R0 invalid mem access 'map_value_or_null'.
 * Uses a legacy map definition so it loads without BTF.
 */
#include "../src/corpus.h"

struct bpf_map_def {
	unsigned int type;
	unsigned int key_size;
	unsigned int value_size;
	unsigned int max_entries;
	unsigned int map_flags;
};

struct bpf_map_def SEC("maps") counters = {
	.type = BPF_MAP_TYPE_ARRAY,
	.key_size = sizeof(__u32),
	.value_size = sizeof(__u64),
	.max_entries = 4,
};

SEC("xdp")
int null_map_value(struct xdp_md *ctx)
{
	__u32 key = ctx->rx_queue_index & 3;
	__u64 *cnt = bpf_map_lookup_elem(&counters, &key);

	*cnt += 1; /* cnt may be NULL */
	return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
