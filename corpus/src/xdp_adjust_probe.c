// SPDX-License-Identifier: GPL-2.0
/* xdp_adjust_probe: where do bpf_xdp_adjust_head/tail/meta start failing?
 *
 * For every frame, tries a fixed list of deltas on each of the three helpers
 * and reports the return codes in one ring buffer record per frame.  Every
 * successful adjustment is undone right away, so the frame leaves unchanged.
 * The deltas straddle the kernel's limits: the headroom left after the
 * struct xdp_frame reserved at the buffer start, ETH_HLEN as the minimum
 * frame, the tailroom before skb_shared_info, and the metadata rules
 * (multiple of 4, at most 32 bytes, -EACCES otherwise).
 * Exercises: helper error returns and packet geometry an emulator must copy
 * exactly; ring buffer output of a stack struct.
 */
#include "corpus.h"

#define NHEAD 10
#define NTAIL 8
#define NMETA 10

struct probe {
	__u32 len;          /* frame length on entry (linear part) */
	__u32 len_after;    /* after undoing everything: must equal len */
	__s32 head[NHEAD];
	__s32 tail[NTAIL];
	__s32 meta[NMETA];
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 16384);
} probes SEC(".maps");

static __always_inline __s32 try_head(struct xdp_md *ctx, int delta)
{
	long ret = bpf_xdp_adjust_head(ctx, delta);

	if (ret == 0 && bpf_xdp_adjust_head(ctx, -delta))
		return 1000; /* could not undo: reported as a distinct code */
	return ret;
}

static __always_inline __s32 try_tail(struct xdp_md *ctx, int delta)
{
	long ret = bpf_xdp_adjust_tail(ctx, delta);

	if (ret == 0 && bpf_xdp_adjust_tail(ctx, -delta))
		return 1000;
	return ret;
}

static __always_inline __s32 try_meta(struct xdp_md *ctx, int delta)
{
	long ret = bpf_xdp_adjust_meta(ctx, delta);

	if (ret == 0 && bpf_xdp_adjust_meta(ctx, -delta))
		return 1000;
	return ret;
}

SEC("xdp")
int xdp_adjust_probe(struct xdp_md *ctx)
{
	struct probe p = {};
	int len = ctx->data_end - ctx->data;

	p.len = len;

	/* Head: growing into the headroom (negative), shrinking (positive). */
	p.head[0] = try_head(ctx, -8);
	p.head[1] = try_head(ctx, -192);
	p.head[2] = try_head(ctx, -208);
	p.head[3] = try_head(ctx, -216);
	p.head[4] = try_head(ctx, -217);
	p.head[5] = try_head(ctx, -224);
	p.head[6] = try_head(ctx, -256);
	p.head[7] = try_head(ctx, len - 14);	/* leaves exactly ETH_HLEN */
	p.head[8] = try_head(ctx, len - 13);	/* would leave 13 bytes */
	p.head[9] = try_head(ctx, 0);

	/* Tail: shrinking to ETH_HLEN and below, growing towards the tailroom. */
	p.tail[0] = try_tail(ctx, -(len - 14));
	p.tail[1] = try_tail(ctx, -(len - 13));
	p.tail[2] = try_tail(ctx, 16);
	p.tail[3] = try_tail(ctx, 3520 - len);	/* up to 3520 bytes of data */
	p.tail[4] = try_tail(ctx, 3521 - len);
	p.tail[5] = try_tail(ctx, 4096);
	p.tail[6] = try_tail(ctx, -4096);
	p.tail[7] = try_tail(ctx, 0);

	/* Meta: 4-byte multiples up to 32 bytes; moving past data. */
	p.meta[0] = try_meta(ctx, -4);
	p.meta[1] = try_meta(ctx, -32);
	p.meta[2] = try_meta(ctx, -36);
	p.meta[3] = try_meta(ctx, -212);
	p.meta[4] = try_meta(ctx, -216);
	p.meta[5] = try_meta(ctx, -220);
	p.meta[6] = try_meta(ctx, -256);
	p.meta[7] = try_meta(ctx, -3);
	p.meta[8] = try_meta(ctx, 4);
	p.meta[9] = try_meta(ctx, 0);

	p.len_after = ctx->data_end - ctx->data;
	bpf_ringbuf_output(&probes, &p, sizeof(p), 0);
	return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
