/* Legacy `maps` definitions bigger than libbpf's 20-byte struct bpf_map_def
 * (iproute2's struct bpf_elf_map layout: id, pinning, inner_id, inner_idx follow),
 * with the extra fields zero as libbpf requires. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct elf_map_def {
	__u32 type, key_size, value_size, max_entries, flags;
	__u32 id, pinning, inner_id, inner_idx;
};

struct elf_map_def counters SEC("maps") = {
	.type = BPF_MAP_TYPE_PERCPU_ARRAY, .key_size = 4, .value_size = 8, .max_entries = 16,
};
struct elf_map_def flows SEC("maps") = {
	.type = BPF_MAP_TYPE_LRU_HASH, .key_size = 8, .value_size = 16, .max_entries = 1024,
	.flags = 0,
};

SEC("xdp")
int legacy_ext(struct xdp_md *ctx)
{
	__u32 k = 1;
	__u64 fk = ctx->rx_queue_index;
	__u64 *c = bpf_map_lookup_elem(&counters, &k);

	if (c)
		*c += 1;
	return bpf_map_lookup_elem(&flows, &fk) ? XDP_DROP : XDP_PASS;
}

char _license[] SEC("license") = "GPL";
