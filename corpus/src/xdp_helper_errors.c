// SPDX-License-Identifier: GPL-2.0
/* xdp_helper_errors: return values of helpers at and past their limits.
 *
 * Per frame, one ring buffer record with the results of: bpf_xdp_load_bytes
 * and bpf_xdp_store_bytes at the end of the frame and one byte past it,
 * bpf_csum_diff with sizes that are not multiples of 4 or too large,
 * bpf_loop with too many iterations or non-zero flags, bpf_redirect with
 * invalid flags, bpf_redirect_map on an out-of-range slot with a fallback
 * action, bpf_ringbuf_output of a record larger than the ring, and a tail
 * call to an out-of-range index (falls through).
 * Exercises: helper argument validation done at run time (not by the
 * verifier), which an emulator has to reproduce bit for bit.
 */
#include "corpus.h"

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 16384);
} results SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096);
} tiny_ring SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_DEVMAP);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u32);
} ports SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u32);
} no_progs SEC(".maps");

struct report {
	__u32 len;
	__s32 load_last4;      /* load 4 bytes ending at the frame end */
	__s32 load_past;       /* load 4 bytes ending one byte past it */
	__s32 load_huge_off;   /* offset 0xffffffff */
	__s32 store_last4;
	__s32 store_past;
	__s64 csum_ok;         /* 8 bytes from, 4 bytes to */
	__s64 csum_odd;        /* 6 bytes */
	__s64 csum_none;       /* no buffers, seed returned */
	__s64 loop_too_many;   /* 1 << 24 iterations */
	__s64 loop_flags;      /* flags 1 */
	__s64 redirect_flags;  /* bpf_redirect(1, 1) */
	__s64 redirect_map_oob;/* slot 7 of 2, fallback XDP_DROP */
	__s64 redirect_map_bad;/* slot 0 with flag bits above the action */
	__s64 ringbuf_huge;    /* 8000-byte record into a 4096-byte ring */
	__s32 tail_call_fell;  /* 1 when the tail call fell through */
	__u32 pad;
};

static long nothing(__u64 i, void *ctx)
{
	return 0;
}

SEC("xdp")
int xdp_helper_errors(struct xdp_md *ctx)
{
	struct report r = {};
	__u8 buf[8] = {1, 2, 3, 4, 5, 6, 7, 8};
	__u32 from[2] = {0x01020304, 0x05060708}, to[1] = {0x0a0b0c0d};
	int len = ctx->data_end - ctx->data;

	r.len = len;
	r.load_last4 = bpf_xdp_load_bytes(ctx, len - 4, buf, 4);
	r.load_past = bpf_xdp_load_bytes(ctx, len - 3, buf, 4);
	r.load_huge_off = bpf_xdp_load_bytes(ctx, 0xffffffff, buf, 4);
	r.store_last4 = bpf_xdp_store_bytes(ctx, len - 4, buf, 4);
	r.store_past = bpf_xdp_store_bytes(ctx, len - 3, buf, 4);

	r.csum_ok = bpf_csum_diff(from, 8, to, 4, 0);
	r.csum_odd = bpf_csum_diff(from, 6, to, 4, 0);
	r.csum_none = bpf_csum_diff(0, 0, 0, 0, 0x1234);

	r.loop_too_many = bpf_loop(1 << 24, nothing, 0, 0);
	r.loop_flags = bpf_loop(1, nothing, 0, 1);

	r.redirect_flags = bpf_redirect(1, 1);
	r.redirect_map_oob = bpf_redirect_map(&ports, 7, XDP_DROP);
	r.redirect_map_bad = bpf_redirect_map(&ports, 0, 0x100 | XDP_PASS);

	{
		/* A record that can never fit: the ring holds 4096 bytes. */
		static __u8 big[8000];

		r.ringbuf_huge = bpf_ringbuf_output(&tiny_ring, big, sizeof(big), 0);
	}

	bpf_tail_call(ctx, &no_progs, 5);
	r.tail_call_fell = 1;

	bpf_ringbuf_output(&results, &r, sizeof(r), 0);
	return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
