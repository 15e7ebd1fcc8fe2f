// corpus-cflags: -mcpu=v3
// SPDX-License-Identifier: GPL-2.0
/* xdp_atomics: every BPF atomic operation on shared state.
 *
 * A per-ingress "port state" record in an ARRAY is updated with each atomic
 * the instruction set has (cpu v3): add/and/or/xor with and without fetch,
 * exchange and compare-and-exchange, on 64- and 32-bit fields.  The fetched
 * old values feed the verdict, so a wrong fetch shows up in retval too.
 * Exercises: BPF_ATOMIC with BPF_ADD/AND/OR/XOR (| BPF_FETCH), BPF_XCHG,
 * BPF_CMPXCHG (r0 implicit), W and DW sizes.
 */
#include "corpus.h"

struct port_state {
	__u64 packets;     /* atomic add */
	__u64 bytes;       /* atomic fetch-add */
	__u64 proto_mask;  /* fetch-or: bit per IP protocol (mod 64) */
	__u64 parity;      /* xor of frame lengths */
	__u64 last_len;    /* exchange */
	__u64 max_len;     /* compare-and-exchange loop */
	__u32 flags32;     /* 32-bit or / and */
	__u32 xor32;       /* 32-bit fetch-xor */
	__u32 first_len32; /* 32-bit cmpxchg from 0 */
	__u32 swaps32;     /* 32-bit exchange */
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct port_state);
} state SEC(".maps");

SEC("xdp")
int xdp_atomics(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *iph = (void *)(eth + 1);
	__u64 len = data_end - data, old, seen, prev_len;
	struct port_state *st;
	__u32 key = 0, proto = 255, old32;
	int i;

	st = bpf_map_lookup_elem(&state, &key);
	if (!st)
		return XDP_ABORTED;
	if (PKT_HAS(iph, sizeof(*iph), data_end) && eth->h_proto == bpf_htons(ETH_P_IP))
		proto = iph->protocol;

	__sync_fetch_and_add(&st->packets, 1);                 /* add (no fetch) */
	old = __sync_fetch_and_add(&st->bytes, len);           /* fetch-add */
	seen = __sync_fetch_and_or(&st->proto_mask, 1ULL << (proto & 63));
	__sync_fetch_and_xor(&st->parity, len);
	prev_len = __sync_lock_test_and_set(&st->last_len, len); /* xchg */

	/* Lock-free maximum: retry compare-and-exchange a bounded number of times. */
	for (i = 0; i < 4; i++) {
		__u64 cur = st->max_len;

		if (cur >= len || __sync_val_compare_and_swap(&st->max_len, cur, len) == cur)
			break;
	}

	__sync_fetch_and_or(&st->flags32, 1U << (len & 31));
	__sync_fetch_and_and(&st->flags32, ~(1U << ((len + 16) & 31)));
	old32 = __sync_fetch_and_xor(&st->xor32, (__u32)len * 2654435761U);
	__sync_val_compare_and_swap(&st->first_len32, 0, (__u32)len);
	__sync_lock_test_and_set(&st->swaps32, old32);

	/* Drop a protocol seen before whose frame has the same length as the last one. */
	if ((seen & (1ULL << (proto & 63))) && prev_len == len)
		return XDP_DROP;
	return old > 100000 ? XDP_ABORTED : XDP_PASS;
}

char _license[] SEC("license") = "GPL";
