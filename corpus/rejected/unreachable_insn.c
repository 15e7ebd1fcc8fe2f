// SPDX-License-Identifier: GPL-2.0
/* REJECTED on purpose: an instruction no path reaches (jumped over).
 * The verifier's CFG check refuses dead code.
 * Expected verifier complaint: unreachable insn N.
 */
#include "../src/corpus.h"

SEC("xdp")
int unreachable_insn(struct xdp_md *ctx)
{
	asm volatile("goto +1\n\t"
		     "r0 = 1" ::: "r0");
	return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
