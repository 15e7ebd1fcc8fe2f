// SPDX-License-Identifier: GPL-2.0
/* xdp_user_ringbuf: draining samples that user space produced.
 *
 * Every frame calls bpf_user_ringbuf_drain on a USER_RINGBUF with invalid
 * flags (-EINVAL), then with 0 and with BPF_RB_NO_WAKEUP, and reports the
 * return codes and what the callbacks saw in one ring buffer record. Each
 * callback reads the first 8 bytes of its sample through the dynptr
 * (-E2BIG for shorter samples), tries a nested drain of the same ring
 * (-EBUSY) and emits a record; frames with EtherType 0x88b5 say after how
 * many samples the callback returns 1 (byte 14; 0 = never). Under
 * BPF_PROG_TEST_RUN nobody produces samples, so the kernel's ring is empty;
 * the VM's tests push samples with Interpreter::user_ringbuf_push.
 * Exercises: BPF_MAP_TYPE_USER_RINGBUF, bpf_user_ringbuf_drain, dynptr
 * callbacks, bpf_dynptr_read on a user sample.
 */
#include "corpus.h"

#define BPF_RB_NO_WAKEUP_ 1

struct {
	__uint(type, BPF_MAP_TYPE_USER_RINGBUF);
	__uint(max_entries, 4096);
} urb SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 16384);
} seen SEC(".maps");

struct drain_ctx {
	__u64 n;
	__u64 stop_after;
};

struct sample_rec {
	__u64 n;
	__s64 read;
	__s64 nested;
	__u8 head[8];
};

struct report {
	__s64 badflags;
	__s64 drain;
	__s64 drain_nowakeup;
	__u64 callbacks;
};

static long inner_cb(struct bpf_dynptr *d, void *ctx)
{
	return 0;
}

static long sample_cb(struct bpf_dynptr *d, void *ctx)
{
	struct drain_ctx *c = ctx;
	struct sample_rec r = {};

	r.n = c->n;
	r.read = bpf_dynptr_read(r.head, sizeof(r.head), d, 0, 0);
	r.nested = bpf_user_ringbuf_drain(&urb, inner_cb, ctx, 0);
	bpf_ringbuf_output(&seen, &r, sizeof(r), 0);
	c->n++;
	return c->stop_after && c->n >= c->stop_after;
}

SEC("xdp")
int xdp_user_ringbuf(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct drain_ctx c = {};
	struct report r = {};

	if (PKT_HAS(eth, sizeof(*eth) + 1, end) && eth->h_proto == bpf_htons(0x88b5))
		c.stop_after = *(__u8 *)(eth + 1);
	r.badflags = bpf_user_ringbuf_drain(&urb, sample_cb, &c, 4);
	r.drain = bpf_user_ringbuf_drain(&urb, sample_cb, &c, 0);
	r.drain_nowakeup = bpf_user_ringbuf_drain(&urb, sample_cb, &c, BPF_RB_NO_WAKEUP_);
	r.callbacks = c.n;
	bpf_ringbuf_output(&seen, &r, sizeof(r), 0);
	return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
