// SPDX-License-Identifier: GPL-2.0
/* REJECTED on purpose: calls helper number 999, which does not exist.
 * Expected verifier complaint: invalid func unknown#999.
 */
#include "../src/corpus.h"

static long (*const bpf_no_such_helper)(void) = (void *)999;

SEC("xdp")
int unknown_helper(struct xdp_md *ctx)
{
	return bpf_no_such_helper() ? XDP_DROP : XDP_PASS;
}

char _license[] SEC("license") = "GPL";
