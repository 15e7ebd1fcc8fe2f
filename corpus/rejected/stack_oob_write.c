// SPDX-License-Identifier: GPL-2.0
/* REJECTED on purpose: stores above the frame pointer (r10 + 8); the stack
 * is the 512 bytes below r10.  Written in inline assembly since C cannot.
 * Expected verifier complaint: invalid write to stack R10 off=8 size=8.
 */
#include "../src/corpus.h"

SEC("xdp")
int stack_oob_write(struct xdp_md *ctx)
{
	asm volatile("r1 = 0\n\t"
		     "*(u64 *)(r10 + 8) = r1" ::: "r1");
	return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
