// Pure compute: the 16-bit ones' complement sum of the whole packet (a checksum loop, up
// to 1536 bytes), folded; XDP_PASS if the folded sum has its low bit clear, else XDP_DROP.
// No helpers, no maps: runs on every engine (rbpf too, after its context rewrite).
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("xdp")
int bench_csum(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u64 sum = 0;
	for (int i = 0; i < 768; i++) {
		__u16 *p = data + 2 * i;
		if ((void *)(p + 1) > data_end)
			break;
		sum += *p;
	}
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (sum & 1) ? XDP_DROP : XDP_PASS;
}

char _license[] SEC("license") = "GPL";
