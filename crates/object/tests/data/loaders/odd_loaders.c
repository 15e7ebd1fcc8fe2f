// Shapes other loaders accept and libbpf refuses: a BTF map with Cilium's pinning value
// 16, a static program outside .text, and a PROG_ARRAY whose .values name functions in
// .text. Rebuild: ./build.sh
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, 1);
	__uint(pinning, 16);
} pinned16 SEC(".maps");

__attribute__((noinline)) int in_text(struct xdp_md *ctx)
{
	return XDP_PASS;
}

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__array(values, int(struct xdp_md *));
} jumps SEC(".maps") = {
	.values = { [1] = in_text },
};

SEC("xdp")
static __attribute__((used)) int xdp_static(struct xdp_md *ctx)
{
	__u32 k = 0;
	__u64 *v = bpf_map_lookup_elem(&pinned16, &k);
	if (v)
		*v += 1;
	bpf_tail_call(ctx, &jumps, 1);
	return in_text(ctx);
}

char LICENSE[] SEC("license") = "GPL";
