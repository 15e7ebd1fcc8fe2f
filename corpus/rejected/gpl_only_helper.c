// SPDX-License-Identifier: MIT
/* REJECTED on purpose: a non-GPL program calling a GPL-only helper
 * (bpf_trace_printk).  The format string is built on the stack so the object
 * needs no .rodata.
 * Expected verifier complaint: cannot call GPL-restricted function from non-GPL compatible program.
 */
#include "../src/corpus.h"

SEC("xdp")
int gpl_only_helper(struct xdp_md *ctx)
{
	char fmt[4];

	fmt[0] = 'h';
	fmt[1] = 'i';
	fmt[2] = '\n';
	fmt[3] = 0;
	bpf_trace_printk(fmt, sizeof(fmt));
	return XDP_PASS;
}

char _license[] SEC("license") = "Proprietary";
