// SPDX-License-Identifier: GPL-2.0
/* xdp_fib: bpf_fib_lookup driven by the frame.
 *
 * Frames with EtherType 0x88b6 carry a struct bpf_fib_lookup (64 bytes) and
 * the lookup flags (u32) after the Ethernet header; the program calls
 * bpf_fib_lookup on them, writes the struct back into the frame followed by
 * the return value (s64) and returns XDP_TX, so data_out shows exactly what
 * the kernel wrote. Other frames (all sample packets) pass untouched. The
 * VM's fib test runs it in a network namespace with routes and neighbours
 * and compares the kernel's answers with the emulator's table.
 * Exercises: bpf_fib_lookup (found, no neighbour, blackhole, unreachable,
 * prohibit, MTU exceeded, unknown family, bad flags).
 */
#include "corpus.h"

struct fib_cmd {
	struct bpf_fib_lookup params;
	__u32 flags;
	__u32 pad;
	__s64 ret;
};

SEC("xdp")
int xdp_fib(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct bpf_fib_lookup params;
	struct fib_cmd *c;

	if (!PKT_HAS(eth, sizeof(*eth), end) || eth->h_proto != bpf_htons(0x88b6))
		return XDP_PASS;
	c = (void *)(eth + 1);
	if (!PKT_HAS(c, sizeof(*c), end))
		return XDP_DROP;
	__builtin_memcpy(&params, &c->params, sizeof(params));
	c->ret = bpf_fib_lookup(ctx, &params, sizeof(params), c->flags);
	__builtin_memcpy(&c->params, &params, sizeof(params));
	return XDP_TX;
}

char _license[] SEC("license") = "GPL";
