// SPDX-License-Identifier: GPL-2.0
/* xdp_frags: a multi-buffer aware program (section "xdp.frags").
 *
 * The section name makes libbpf load it with BPF_F_XDP_HAS_FRAGS, so frames
 * larger than one buffer arrive as a linear part plus fragments.  The program
 * reads the full frame length with bpf_xdp_get_buff_len, copies the last 8
 * bytes of the frame (wherever they live) with bpf_xdp_load_bytes, records
 * both, and stamps a marker into the frame's last 4 bytes with
 * bpf_xdp_store_bytes.  Frames of 2000 bytes or more are dropped, as an MTU
 * policy would.
 * Exercises: prog_flags from the section name, bpf_xdp_get_buff_len,
 * bpf_xdp_load_bytes/bpf_xdp_store_bytes on offsets past the linear part.
 */
#include "corpus.h"

struct frag_info {
	__u64 buff_len;   /* total frame length (linear + fragments) */
	__u64 linear_len; /* data_end - data */
	__u8 tail[8];     /* last 8 bytes of the frame */
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct frag_info);
} last_frame SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);   /* 0: single buffer, 1: had fragments */
	__type(value, __u64);
} frag_count SEC(".maps");

#define MARK 0x4b504642U /* "BFPK" read big-endian */
#define MTU_LIMIT 2000

SEC("xdp.frags")
int xdp_frags(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u64 linear = data_end - data;
	__u64 total = bpf_xdp_get_buff_len(ctx);
	struct frag_info *fi;
	__u32 key = 0, mark = bpf_htonl(MARK);
	__u64 *cnt;

	key = total > linear;
	cnt = bpf_map_lookup_elem(&frag_count, &key);
	if (cnt)
		__sync_fetch_and_add(cnt, 1);

	key = 0;
	fi = bpf_map_lookup_elem(&last_frame, &key);
	if (!fi)
		return XDP_ABORTED;
	fi->buff_len = total;
	fi->linear_len = linear;
	if (total < 8 || total > 0xffff)
		return XDP_PASS;
	if (bpf_xdp_load_bytes(ctx, total - 8, fi->tail, sizeof(fi->tail)))
		return XDP_ABORTED;
	if (bpf_xdp_store_bytes(ctx, total - 4, &mark, sizeof(mark)))
		return XDP_ABORTED;
	return total >= MTU_LIMIT ? XDP_DROP : XDP_PASS;
}

char _license[] SEC("license") = "GPL";
