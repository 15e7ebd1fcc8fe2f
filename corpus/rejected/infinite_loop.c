// SPDX-License-Identifier: GPL-2.0
/* REJECTED on purpose: a loop that never changes any state.
 * Each trip around the loop reaches the loop head in exactly the state it had
 * before, so the verifier reports: infinite loop detected at insn N.
 */
#include "../src/corpus.h"

SEC("xdp")
int infinite_loop(struct xdp_md *ctx)
{
	volatile __u32 spin = ctx->rx_queue_index;

	while (spin != 12345)
		;
	return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
