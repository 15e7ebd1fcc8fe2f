// SPDX-License-Identifier: GPL-2.0
/* xdp_map_errors: the error codes of map helpers, frame after frame.
 *
 * Each frame inserts its length into a 4-entry HASH with BPF_NOEXIST and
 * BPF_EXIST, deletes another key, pushes into a 2-entry QUEUE without
 * BPF_EXIST and pops from it every third frame, updates and deletes ARRAY
 * slots in and out of range, and passes invalid flags.  All return codes go
 * to one ring buffer record per frame, so the record shows how the maps
 * filled up (-E2BIG), which keys existed (-EEXIST/-ENOENT) and which calls
 * are refused outright (-EINVAL).
 * Exercises: bpf_map_update_elem/delete_elem/push/pop error returns for HASH,
 * ARRAY and QUEUE, map fullness, flag validation.
 */
#include "corpus.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u32);
} small_hash SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u32);
} small_array SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_QUEUE);
	__uint(max_entries, 2);
	__type(value, __u32);
} small_queue SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} frame_no SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 16384);
} codes SEC(".maps");

struct report {
	__u32 frame;
	__u32 len;
	__s32 hash_noexist;   /* insert len, BPF_NOEXIST */
	__s32 hash_exist;     /* update len + 1 (usually absent), BPF_EXIST */
	__s32 hash_any;       /* upsert len, BPF_ANY */
	__s32 hash_delete;    /* delete len - 1 */
	__s32 hash_badflags;  /* flags 4 */
	__s32 array_update;   /* slot frame % 6 (4 and 5 out of range) */
	__s32 array_noexist;  /* slot 0 with BPF_NOEXIST: arrays always exist */
	__s32 array_delete;   /* arrays cannot delete */
	__s32 queue_push;     /* push without BPF_EXIST */
	__s32 queue_pop;      /* pop every third frame, else 1 */
	__u32 popped;
	__u32 pad;
};

SEC("xdp")
int xdp_map_errors(struct xdp_md *ctx)
{
	struct report r = {};
	__u32 zero = 0, key, val, *n;

	n = bpf_map_lookup_elem(&frame_no, &zero);
	if (!n)
		return XDP_ABORTED;
	r.frame = *n;
	*n += 1;
	r.len = ctx->data_end - ctx->data;

	key = r.len;
	val = r.frame;
	r.hash_noexist = bpf_map_update_elem(&small_hash, &key, &val, BPF_NOEXIST);
	key = r.len + 1;
	r.hash_exist = bpf_map_update_elem(&small_hash, &key, &val, BPF_EXIST);
	key = r.len;
	r.hash_any = bpf_map_update_elem(&small_hash, &key, &val, BPF_ANY);
	key = r.len - 1;
	r.hash_delete = bpf_map_delete_elem(&small_hash, &key);
	r.hash_badflags = bpf_map_update_elem(&small_hash, &key, &val, 4);

	key = r.frame % 6;
	r.array_update = bpf_map_update_elem(&small_array, &key, &val, BPF_ANY);
	key = 0;
	r.array_noexist = bpf_map_update_elem(&small_array, &key, &val, BPF_NOEXIST);
	r.array_delete = bpf_map_delete_elem(&small_array, &key);

	val = r.len;
	r.queue_push = bpf_map_push_elem(&small_queue, &val, 0);
	r.queue_pop = 1;
	if (r.frame % 3 == 2)
		r.queue_pop = bpf_map_pop_elem(&small_queue, &r.popped);

	bpf_ringbuf_output(&codes, &r, sizeof(r), 0);
	return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
