// expect: accept
/* bpf_for_each_map_elem over a hash map, summing values into a stack context. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16);
	__type(key, __u32);
	__type(value, __u64);
} counts SEC(".maps");

struct sum_ctx {
	__u64 sum;
};

static long add_one(void *map, __u32 *key, __u64 *val, struct sum_ctx *c)
{
	c->sum += *val;
	return *key == 7;
}

SEC("xdp")
int for_each_sum(struct xdp_md *ctx)
{
	struct sum_ctx c = {};

	bpf_for_each_map_elem(&counts, add_one, &c, 0);
	return c.sum > 1000 ? XDP_DROP : XDP_PASS;
}

char _license[] SEC("license") = "GPL";
