// SPDX-License-Identifier: GPL-2.0
/* REJECTED on purpose: reads the EtherType without checking data_end first.
 * Expected verifier complaint: invalid access to packet.
 */
#include "../src/corpus.h"

SEC("xdp")
int unchecked_access(struct xdp_md *ctx)
{
	struct ethhdr *eth = (void *)(long)ctx->data;

	/* Missing: if ((void *)(eth + 1) > (void *)(long)ctx->data_end) return XDP_PASS; */
	if (eth->h_proto == bpf_htons(ETH_P_IP))
		return XDP_DROP;
	return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
