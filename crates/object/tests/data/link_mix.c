#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, 1024);
	__uint(map_flags, BPF_F_NO_COMMON_LRU);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} counts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 4);
	__uint(key_size, sizeof(__u32));
	__array(values, int (void *));
} jmp SEC(".maps");

struct inner { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 8); __type(key, __u32); __type(value, __u32); } inner1 SEC(".maps");
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 2);
	__type(key, __u32);
	__array(values, struct inner);
} outer SEC(".maps") = { .values = { [1] = &inner1 } };

int gcount = 5;
const volatile int cfg = 7;
static int scount;
char buf[16] SEC(".data.custom");

static __attribute__((noinline)) int helper_static(int x) { return x * 3 + scount; }
__attribute__((noinline)) int helper_global(int x) { return x + gcount + cfg + buf[2]; }

SEC("xdp")
int prog_a(struct xdp_md *ctx)
{
	__u32 k = 1; __u64 *v = bpf_map_lookup_elem(&counts, &k);
	if (v) *v += 1;
	scount++;
	bpf_tail_call(ctx, &jmp, 0);
	return helper_static(ctx->ingress_ifindex) + helper_global(2);
}

SEC("xdp")
int prog_b(struct xdp_md *ctx) { return helper_global(ctx->rx_queue_index) ? XDP_PASS : XDP_DROP; }

SEC("xdp.frags")
int prog_c(struct xdp_md *ctx) { bpf_printk("hi %d", 1); return XDP_PASS; }

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 4);
	__uint(key_size, sizeof(__u32));
	__array(values, int (void *));
} jmp2 SEC(".maps") = { .values = { [2] = (void *)&prog_b, [0] = (void*)&prog_c } };

char _license[] SEC("license") = "GPL";
