// SPDX-License-Identifier: GPL-2.0
/* REJECTED on purpose: reads 8 bytes past the end of an 8-byte map value.
 * Expected verifier complaint: invalid access to map value, value_size=8 off=8 size=8.
 */
#include "../src/corpus.h"
#include "legacy_maps.h"

struct bpf_map_def SEC("maps") values = {
	.type = BPF_MAP_TYPE_ARRAY,
	.key_size = sizeof(__u32),
	.value_size = sizeof(__u64),
	.max_entries = 1,
};

SEC("xdp")
int map_value_oob(struct xdp_md *ctx)
{
	__u32 key = 0;
	__u64 *val = bpf_map_lookup_elem(&values, &key);

	if (!val)
		return XDP_PASS;
	return val[1] ? XDP_DROP : XDP_PASS; /* val[1] is outside the value */
}

char _license[] SEC("license") = "GPL";
