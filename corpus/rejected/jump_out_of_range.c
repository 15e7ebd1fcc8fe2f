// SPDX-License-Identifier: GPL-2.0
/* REJECTED on purpose: a jump whose target lies past the program's end.
 * Expected verifier complaint: jump out of range from insn N to M.
 */
#include "../src/corpus.h"

SEC("xdp")
int jump_out_of_range(struct xdp_md *ctx)
{
	asm volatile("if r1 == 0 goto +100" ::: "memory");
	return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
