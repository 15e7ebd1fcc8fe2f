// SPDX-License-Identifier: GPL-2.0
/* REJECTED on purpose: pointer arithmetic on data_end (pkt_end).
 * Expected verifier complaint: R? pointer arithmetic on pkt_end prohibited.
 * (An early version of src/xdp_trunc.c did exactly this.)
 */
#include "../src/corpus.h"

SEC("xdp")
int pkt_end_arith(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u32 *trailer = data_end - 4;

	if ((void *)trailer < data)
		return XDP_PASS;
	*trailer = 0;
	return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
