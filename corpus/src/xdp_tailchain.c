// SPDX-License-Identifier: GPL-2.0
/* xdp_tailchain: multi-hop tail calls, a tail call from a sub-program, and
 * the kernel's tail-call limit.
 *
 * xdp_chain_entry -> (tail call, slot 0) chain_parse -> (tail call made
 * inside the __noinline sub-program forward(), slot 1) chain_verdict, which
 * drops UDP to port 9 and passes the rest.  Each stage bumps its counter.
 * xdp_tail_self tail-calls itself through slot 2 until the kernel refuses
 * (at most 33 tail calls per run, MAX_TAIL_CALL_CNT), counting invocations:
 * 34 per frame.
 * Exercises: tail-call chains, tail calls from a bpf-to-bpf callee (mixed
 * calls), PROG_ARRAY `.values` with a program referring to its own table,
 * the tail-call counter.
 */
#include "corpus.h"

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);   /* 0: entry, 1: parse, 2: verdict, 3: self invocations */
	__type(value, __u64);
} stage_hits SEC(".maps");

/* The programs are defined below; the table refers to them (and they to it). */
int chain_parse(struct xdp_md *ctx);
int chain_verdict(struct xdp_md *ctx);
int xdp_tail_self(struct xdp_md *ctx);

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 3);
	__type(key, __u32);
	__array(values, int(void *));
} chain SEC(".maps") = {
	.values = {
		[0] = (void *)&chain_parse,
		[1] = (void *)&chain_verdict,
		[2] = (void *)&xdp_tail_self,
	},
};

static __always_inline void hit(__u32 stage)
{
	__u64 *v = bpf_map_lookup_elem(&stage_hits, &stage);

	if (v)
		__sync_fetch_and_add(v, 1);
}

SEC("xdp")
int chain_verdict(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *iph = (void *)(eth + 1);
	struct udphdr *uh = (void *)(iph + 1);

	hit(2);
	if (PKT_HAS(uh, sizeof(*uh), data_end) && eth->h_proto == bpf_htons(ETH_P_IP) &&
	    iph->ihl == 5 && iph->protocol == IPPROTO_UDP && uh->dest == bpf_htons(9))
		return XDP_DROP;
	return XDP_PASS;
}

/* A tail call made from a sub-program.  On success the target replaces this
 * sub-program's frame and its return value comes back to the caller as
 * forward()'s; on failure XDP_ABORTED is returned.  That fallback is hidden
 * from clang (an empty asm), which would otherwise fold the constant into the
 * caller and drop the real return value; it cannot be the helper's result
 * either: the verifier treats bpf_tail_call as returning nothing (reading r0
 * after it fails with "R0 !read_ok").
 */
static __noinline int forward(struct xdp_md *ctx, __u32 slot)
{
	int fallback = XDP_ABORTED;

	bpf_tail_call(ctx, &chain, slot);
	asm volatile("" : "+r"(fallback));
	return fallback;
}

SEC("xdp")
int chain_parse(struct xdp_md *ctx)
{
	hit(1);
	if (ctx->data + sizeof(struct ethhdr) > ctx->data_end)
		return XDP_DROP;
	return forward(ctx, 1);
}

SEC("xdp")
int xdp_tail_self(struct xdp_md *ctx)
{
	hit(3);
	bpf_tail_call(ctx, &chain, 2);
	return XDP_PASS; /* reached once the tail-call budget is used up */
}

SEC("xdp")
int xdp_chain_entry(struct xdp_md *ctx)
{
	hit(0);
	bpf_tail_call(ctx, &chain, 0);
	return XDP_ABORTED;
}

char _license[] SEC("license") = "GPL";
