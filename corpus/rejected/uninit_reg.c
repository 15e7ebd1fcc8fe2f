// SPDX-License-Identifier: GPL-2.0
/* REJECTED on purpose: returns a callee-saved register (r7) that was never
 * written.  Only r1 (ctx) and r10 (frame pointer) are readable on entry.
 * Expected verifier complaint: R7 !read_ok.
 *
 * (An uninitialized *stack* read would be the C-level version of this bug, but
 * the kernel allows those for privileged loaders - env->allow_uninit_stack -
 * so it cannot serve as a rejected sample when loading as root.)
 */
#include "../src/corpus.h"

SEC("xdp")
int uninit_reg(struct xdp_md *ctx)
{
	long r;

	asm volatile("%[r] = r7" : [r] "=r"(r));
	return r;
}

char _license[] SEC("license") = "GPL";
