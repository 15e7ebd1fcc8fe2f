/* CO-RE relocation records of each common kind, on a kernel type (struct ethhdr). */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

SEC("xdp")
int core_prog(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;

	if ((void *)(eth + 1) > end)
		return XDP_DROP;
	int off = bpf_core_field_offset(struct ethhdr, h_proto);
	int exists = bpf_core_field_exists(struct ethhdr, h_source);
	int sz = bpf_core_type_size(struct ethhdr);
	int fsz = bpf_core_field_size(struct ethhdr, h_dest);
	return (off + exists + sz + fsz) > 0 ? XDP_PASS : XDP_DROP;
}

char _license[] SEC("license") = "GPL";
