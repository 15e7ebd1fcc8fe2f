// SPDX-License-Identifier: GPL-2.0
/* REJECTED on purpose: uses the "result" of bpf_tail_call.  The helper is
 * declared as returning a long, but the kernel treats it as returning nothing
 * (on success it never returns), so r0 is unreadable after the call.
 * Expected verifier complaint: R0 !read_ok.
 */
#include "../src/corpus.h"
#include "legacy_maps.h"

struct bpf_map_def SEC("maps") jmp = {
	.type = BPF_MAP_TYPE_PROG_ARRAY,
	.key_size = sizeof(__u32),
	.value_size = sizeof(__u32),
	.max_entries = 2,
};

SEC("xdp")
int tail_call_result(struct xdp_md *ctx)
{
	return bpf_tail_call(ctx, &jmp, 1) ? XDP_ABORTED : XDP_PASS;
}

char _license[] SEC("license") = "GPL";
