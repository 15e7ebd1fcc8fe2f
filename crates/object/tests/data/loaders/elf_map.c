// iproute2's (and Cilium's) 36-byte struct bpf_elf_map in SEC("maps"): libbpf refuses the
// non-zero fields after its 20-byte bpf_map_def; iproute2 loads it. Rebuild: ./build.sh
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct bpf_elf_map {
	__u32 type, size_key, size_value, max_elem, flags, id, pinning, inner_id, inner_idx;
};

#define PIN_GLOBAL_NS 2

struct bpf_elf_map SEC("maps") counters = {
	.type = BPF_MAP_TYPE_ARRAY,
	.size_key = 4,
	.size_value = 8,
	.max_elem = 4,
	.id = 7,
	.pinning = PIN_GLOBAL_NS,
};

SEC("xdp")
int xdp_elf_map(struct xdp_md *ctx)
{
	__u32 k = 0;
	__u64 *v = bpf_map_lookup_elem(&counters, &k);
	if (v)
		__sync_fetch_and_add(v, 1);
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
