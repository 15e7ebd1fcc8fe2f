// expect: reject tail_call is only allowed in functions that return 'int'.
/* A static sub-program with a void return type that tail-calls: the kernel refuses it
 * from BTF before verifying anything (check_btf_func), since a sub-program whose
 * return value is not a scalar cannot hand back what the tail call would leave. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u32);
} jt SEC(".maps");

static __attribute__((noinline)) void jump(struct xdp_md *ctx)
{
	bpf_tail_call(ctx, &jt, 0);
}

SEC("xdp")
int tail_call_void_sub(struct xdp_md *ctx)
{
	jump(ctx);
	return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
