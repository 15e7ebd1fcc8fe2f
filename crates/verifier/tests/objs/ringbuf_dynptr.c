// expect: accept
/* A ring buffer record through a dynptr: reserve, write a slice, submit. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096);
} events SEC(".maps");

SEC("xdp")
int ringbuf_dynptr(struct xdp_md *ctx)
{
	struct bpf_dynptr d;
	__u64 *rec;

	bpf_ringbuf_reserve_dynptr(&events, 16, 0, &d);
	rec = bpf_dynptr_data(&d, 0, 16);
	if (rec) {
		rec[0] = ctx->data_end - ctx->data;
		rec[1] = ctx->ingress_ifindex;
	}
	bpf_ringbuf_submit_dynptr(&d, 0);
	return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
