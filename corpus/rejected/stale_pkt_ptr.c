// SPDX-License-Identifier: GPL-2.0
/* REJECTED on purpose: uses a packet pointer after bpf_xdp_adjust_head, which
 * invalidates every packet pointer (they must be re-derived from ctx).
 * Expected verifier complaint: R? invalid mem access 'scalar'.
 */
#include "../src/corpus.h"

SEC("xdp")
int stale_pkt_ptr(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;

	if ((void *)(eth + 1) > data_end)
		return XDP_PASS;
	if (bpf_xdp_adjust_head(ctx, 0))
		return XDP_ABORTED;
	return eth->h_proto == bpf_htons(ETH_P_IP) ? XDP_DROP : XDP_PASS;
}

char _license[] SEC("license") = "GPL";
