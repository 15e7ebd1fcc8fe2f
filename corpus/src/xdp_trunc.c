// SPDX-License-Identifier: GPL-2.0
/* xdp_trunc: cut frames down to a snap length with bpf_xdp_adjust_tail.
 *
 * Like a packet sampler: frames longer than SNAPLEN bytes are truncated to
 * SNAPLEN and the original length is written into the last 4 bytes kept
 * (big-endian), so the receiver knows what was cut.  Frames of 1000 bytes or
 * more instead grow by 4 bytes and get the trailer appended after the data
 * (for a multi-buffer frame the kernel grows the last fragment, while the
 * trailer is written over the last 4 bytes of the linear part).
 * Exercises: bpf_xdp_adjust_tail with negative and positive deltas, packet
 * pointer reloads, stores at the packet end.
 */
#include "corpus.h"

#define SNAPLEN 96
#define GROW_FROM 1000

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 3);
	__type(key, __u32);   /* 0: untouched, 1: truncated, 2: grown */
	__type(value, __u64);
} trunc_stats SEC(".maps");

static __always_inline void stat(__u32 key)
{
	__u64 *cnt = bpf_map_lookup_elem(&trunc_stats, &key);

	if (cnt)
		__sync_fetch_and_add(cnt, 1);
}

SEC("xdp")
int xdp_trunc(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u32 len = data_end - data;
	__u32 *trailer, off;
	int delta;

	if (len <= SNAPLEN) {
		stat(0);
		return XDP_PASS;
	}

	if (len >= GROW_FROM) {
		if (bpf_xdp_adjust_tail(ctx, 4))
			return XDP_ABORTED;
		stat(2);
	} else {
		delta = (int)SNAPLEN - (int)len;
		if (bpf_xdp_adjust_tail(ctx, delta))
			return XDP_ABORTED;
		stat(1);
	}

	/* Pointer arithmetic on data_end is not allowed: index from data. */
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	off = (__u32)(data_end - data) - 4;
	if (off > 4096)
		return XDP_ABORTED;
	trailer = data + off;
	if (!PKT_HAS(trailer, 4, data_end))
		return XDP_ABORTED;
	*trailer = bpf_htonl(len);
	return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
