// expect: reject Unreleased reference
/* The dynptr is submitted on one path only. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096);
} events SEC(".maps");

SEC("xdp")
int ringbuf_dynptr_leak(struct xdp_md *ctx)
{
	struct bpf_dynptr d;

	bpf_ringbuf_reserve_dynptr(&events, 16, 0, &d);
	if (ctx->ingress_ifindex == 1)
		return XDP_DROP;
	bpf_ringbuf_submit_dynptr(&d, 0);
	return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
