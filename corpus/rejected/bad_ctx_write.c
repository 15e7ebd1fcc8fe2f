// SPDX-License-Identifier: GPL-2.0
/* REJECTED on purpose: writes a read-only field of struct xdp_md.
 * Expected verifier complaint: invalid bpf_context access off=16 size=4.
 */
#include "../src/corpus.h"

SEC("xdp")
int bad_ctx_write(struct xdp_md *ctx)
{
	ctx->rx_queue_index = 7;
	return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
