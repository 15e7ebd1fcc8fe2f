// SPDX-License-Identifier: GPL-2.0
/* xdp_meta: hand a classification mark to the next stage in XDP metadata.
 *
 * Reserves 8 bytes of metadata in front of the packet with
 * bpf_xdp_adjust_meta (negative delta), writes a magic word and a class
 * (1 = TCP, 2 = UDP, 3 = ICMP, 0 = other; 0xff for non-IPv4), then checks it
 * can read it back.  Frames shorter than 60 bytes get no metadata.
 * Exercises: bpf_xdp_adjust_meta, ctx->data_meta, the data_meta <= data
 * bounds check the verifier requires; BPF_PROG_TEST_RUN returns the
 * metadata in front of data_out (see corpus/README.md).
 */
#include "corpus.h"

#define META_MAGIC 0x6b66706bU /* "kpfk" read little-endian */

struct meta {
	__u32 magic;
	__u32 class;
};

SEC("xdp")
int xdp_meta(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *iph = (void *)(eth + 1);
	struct meta *m;
	__u32 class = 0xff;

	if (data + 60 > data_end)
		return XDP_PASS;
	if (eth->h_proto == bpf_htons(ETH_P_IP) && PKT_HAS(iph, sizeof(*iph), data_end)) {
		switch (iph->protocol) {
		case IPPROTO_TCP:
			class = 1;
			break;
		case IPPROTO_UDP:
			class = 2;
			break;
		case IPPROTO_ICMP:
			class = 3;
			break;
		default:
			class = 0;
		}
	}

	if (bpf_xdp_adjust_meta(ctx, -(int)sizeof(struct meta)))
		return XDP_ABORTED;

	data = (void *)(long)ctx->data;
	m = (void *)(long)ctx->data_meta;
	if ((void *)(m + 1) > data)
		return XDP_ABORTED;
	m->magic = META_MAGIC;
	m->class = class;
	return m->class == class ? XDP_PASS : XDP_ABORTED;
}

char _license[] SEC("license") = "GPL";
