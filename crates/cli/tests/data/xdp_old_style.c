// As xdp-tutorial and older projects write XDP programs: a section libbpf does not know
// (SEC("xdp_stats")), and a map sized by the loader at load time (max_entries = 0), as
// xdp-bench and xdp-trafficgen do. Used by tests/kernel_targets.rs. Rebuild: ./build.sh
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, 0);
} rx_count SEC(".maps");

SEC("xdp_stats")
int xdp_stats_func(struct xdp_md *ctx)
{
	__u32 key = ctx->rx_queue_index;
	__u64 *v = bpf_map_lookup_elem(&rx_count, &key);
	if (v)
		__sync_fetch_and_add(v, 1);
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
