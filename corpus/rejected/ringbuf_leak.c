// SPDX-License-Identifier: GPL-2.0
/* REJECTED on purpose: a ring buffer reservation that is neither submitted nor
 * discarded on one path.  The verifier tracks the reference it returned.
 * Expected verifier complaint: Unreleased reference id=N alloc_insn=M.
 */
#include "../src/corpus.h"
#include "legacy_maps.h"

struct bpf_map_def SEC("maps") rb = {
	.type = BPF_MAP_TYPE_RINGBUF,
	.max_entries = 4096,
};

SEC("xdp")
int ringbuf_leak(struct xdp_md *ctx)
{
	__u32 *slot = bpf_ringbuf_reserve(&rb, sizeof(*slot), 0);

	if (!slot)
		return XDP_PASS;
	*slot = ctx->rx_queue_index;
	if (ctx->ingress_ifindex == 1)
		return XDP_DROP; /* leaks the reservation */
	bpf_ringbuf_submit(slot, 0);
	return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
