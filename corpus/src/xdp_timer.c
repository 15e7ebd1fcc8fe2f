// SPDX-License-Identifier: GPL-2.0
/* xdp_timer: BPF timers in map values, their error codes and their callbacks.
 *
 * xdp_timer calls bpf_timer_init/set_callback/start/cancel on ARRAY and HASH
 * elements in an order that hits every error the helpers return (-EBUSY,
 * -EINVAL for bad clocks, bad flags, a missing callback or an uninitialised
 * timer, cancel dropping the callback, the timer freed by a map update or
 * delete) and sends all return codes in one ring buffer record per frame.
 * Timers are started one hour ahead (or at an absolute time near 2^62 ns),
 * so under BPF_PROG_TEST_RUN nothing fires while the frames run and the
 * codes are deterministic.
 *
 * xdp_timer_clock only acts on frames with EtherType 0x88b5 (none of the
 * sample packets): a command (op, key, ns, flags) after the Ethernet header
 * drives timers in clock_timers; the callback counts firings, records the
 * time it ran, its key and the result of cancelling its own timer (-EDEADLK),
 * emits a ring buffer record and re-arms itself `rearm` times. The VM's tests
 * use it to check callbacks on the virtual clock (an element evicted from the
 * 2-entry LRU map clock_lru loses its timer).
 * Exercises: struct bpf_timer in ARRAY/HASH values (BTF), bpf_timer_* helpers,
 * callbacks with (map, key, value), free on update/delete.
 */
#include "corpus.h"

#define CLOCK_REALTIME 0
#define CLOCK_MONOTONIC 1
#define BPF_F_TIMER_ABS_ (1ULL << 0)
#define BPF_F_TIMER_CPU_PIN_ (1ULL << 1)
#define HOUR 3600000000000ULL

struct elem {
	struct bpf_timer t;
	__u64 fired;
	__u64 fired_at;
	__u64 key_seen;
	__s64 self_cancel;
	__u64 rearm;
	__u64 period;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, struct elem);
} timers SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 8);
	__type(key, __u32);
	__type(value, struct elem);
} htimers SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 8);
	__type(key, __u32);
	__type(value, struct elem);
} clock_timers SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 8);
	__type(key, __u32);
	__type(value, struct elem);
} clock_htimers SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, struct elem);
} clock_lru SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 16384);
} codes SEC(".maps");

struct report {
	__s32 init;           /* array slot 0: 0 on the first frame, then -EBUSY */
	__s32 init_badclock;  /* clock 3: -EINVAL */
	__s32 init_badflags;  /* flags 0x11: -EINVAL */
	__s32 start_badflags; /* flags 4: -EINVAL */
	__s32 cancel_first;   /* 0 on the first frame, then 1 (still armed) */
	__s32 start_nocb;     /* after cancel the callback is gone: -EINVAL */
	__s32 set_cb;
	__s32 start_rel;
	__s32 start_abs;
	__s32 cancel_armed;   /* 1 */
	__s32 cancel_idle;    /* 0 */
	__s32 set_cb2;
	__s32 start_pin;
	__s32 uninit_set_cb;  /* slot 1 never initialised: -EINVAL */
	__s32 uninit_start;
	__s32 uninit_cancel;
	__s32 upd_array;      /* update slot 2 from the program */
	__s32 init_after_upd; /* 0: the update freed the timer */
	__s32 init_twice;     /* -EBUSY */
	__s32 hash_upd;       /* replace key 7 */
	__s32 hash_init;      /* 0 every frame: the replaced element had the timer */
	__s32 hash_keep_init; /* key 8 created once: 0, then -EBUSY */
	__s32 hash_del;       /* delete key 8 every second frame */
	__s32 realtime_init;  /* slot 3 with CLOCK_REALTIME: 0, then -EBUSY */
};

static int timer_cb(void *map, __u32 *key, struct elem *v)
{
	v->fired++;
	v->fired_at = bpf_ktime_get_ns();
	v->key_seen = *key;
	v->self_cancel = bpf_timer_cancel(&v->t);
	if (v->rearm) {
		v->rearm--;
		bpf_timer_start(&v->t, v->period, 0);
	}
	__u64 rec[3] = { *key, v->fired_at, v->fired };
	bpf_ringbuf_output(&codes, rec, sizeof(rec), 0);
	return 0;
}

SEC("xdp")
int xdp_timer(struct xdp_md *ctx)
{
	struct report r = {};
	struct elem zero = {}, *e;
	__u32 k = 0;
	static __u32 frame;

	frame++;
	e = bpf_map_lookup_elem(&timers, &k);
	if (!e)
		return XDP_ABORTED;
	r.init = bpf_timer_init(&e->t, &timers, CLOCK_MONOTONIC);
	r.init_badclock = bpf_timer_init(&e->t, &timers, 3);
	r.init_badflags = bpf_timer_init(&e->t, &timers, 0x11);
	r.start_badflags = bpf_timer_start(&e->t, HOUR, 4);
	r.cancel_first = bpf_timer_cancel(&e->t);
	r.start_nocb = bpf_timer_start(&e->t, HOUR, 0);
	r.set_cb = bpf_timer_set_callback(&e->t, timer_cb);
	r.start_rel = bpf_timer_start(&e->t, HOUR, 0);
	r.start_abs = bpf_timer_start(&e->t, 1ULL << 62, BPF_F_TIMER_ABS_);
	r.cancel_armed = bpf_timer_cancel(&e->t);
	r.cancel_idle = bpf_timer_cancel(&e->t);
	r.set_cb2 = bpf_timer_set_callback(&e->t, timer_cb);
	r.start_pin = bpf_timer_start(&e->t, HOUR, BPF_F_TIMER_CPU_PIN_);

	k = 1;
	e = bpf_map_lookup_elem(&timers, &k);
	if (!e)
		return XDP_ABORTED;
	r.uninit_set_cb = bpf_timer_set_callback(&e->t, timer_cb);
	r.uninit_start = bpf_timer_start(&e->t, HOUR, 0);
	r.uninit_cancel = bpf_timer_cancel(&e->t);

	k = 2;
	e = bpf_map_lookup_elem(&timers, &k);
	if (!e)
		return XDP_ABORTED;
	bpf_timer_init(&e->t, &timers, CLOCK_MONOTONIC);
	r.upd_array = bpf_map_update_elem(&timers, &k, &zero, BPF_ANY);
	r.init_after_upd = bpf_timer_init(&e->t, &timers, CLOCK_MONOTONIC);
	r.init_twice = bpf_timer_init(&e->t, &timers, CLOCK_MONOTONIC);

	k = 7;
	r.hash_upd = bpf_map_update_elem(&htimers, &k, &zero, BPF_ANY);
	e = bpf_map_lookup_elem(&htimers, &k);
	if (e) {
		r.hash_init = bpf_timer_init(&e->t, &htimers, CLOCK_MONOTONIC);
		bpf_timer_set_callback(&e->t, timer_cb);
		bpf_timer_start(&e->t, HOUR, 0);
	}
	k = 8;
	bpf_map_update_elem(&htimers, &k, &zero, BPF_NOEXIST);
	e = bpf_map_lookup_elem(&htimers, &k);
	if (e)
		r.hash_keep_init = bpf_timer_init(&e->t, &htimers, CLOCK_MONOTONIC);
	r.hash_del = 1;
	if (frame % 2 == 0)
		r.hash_del = bpf_map_delete_elem(&htimers, &k);

	k = 3;
	e = bpf_map_lookup_elem(&timers, &k);
	if (e)
		r.realtime_init = bpf_timer_init(&e->t, &timers, CLOCK_REALTIME);

	bpf_ringbuf_output(&codes, &r, sizeof(r), 0);
	return XDP_PASS;
}

struct cmd {
	__u32 op;
	__u32 key;
	__u64 ns;
	__u64 flags;
	__s64 ret;
};

enum { OP_INIT = 1, OP_START, OP_CANCEL, OP_REARM, OP_UPDATE, OP_HASH_INIT, OP_HASH_DELETE, OP_LRU_INIT };

SEC("xdp")
int xdp_timer_clock(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct elem zero = {}, *e;
	struct cmd *c;
	__u32 k;

	if (!PKT_HAS(eth, sizeof(*eth), end) || eth->h_proto != bpf_htons(0x88b5))
		return XDP_PASS;
	c = (void *)(eth + 1);
	if (!PKT_HAS(c, sizeof(*c), end))
		return XDP_DROP;
	k = c->key;
	if (c->op == OP_HASH_INIT) {
		bpf_map_update_elem(&clock_htimers, &k, &zero, BPF_NOEXIST);
		e = bpf_map_lookup_elem(&clock_htimers, &k);
		if (!e)
			return XDP_ABORTED;
		c->ret = bpf_timer_init(&e->t, &clock_htimers, CLOCK_MONOTONIC);
		if (c->ret == 0)
			c->ret = bpf_timer_set_callback(&e->t, timer_cb);
		if (c->ret == 0)
			c->ret = bpf_timer_start(&e->t, c->ns, c->flags);
		return XDP_TX;
	}
	if (c->op == OP_LRU_INIT) {
		bpf_map_update_elem(&clock_lru, &k, &zero, BPF_NOEXIST);
		e = bpf_map_lookup_elem(&clock_lru, &k);
		if (!e)
			return XDP_ABORTED;
		c->ret = bpf_timer_init(&e->t, &clock_lru, CLOCK_MONOTONIC);
		if (c->ret == 0)
			c->ret = bpf_timer_set_callback(&e->t, timer_cb);
		if (c->ret == 0)
			c->ret = bpf_timer_start(&e->t, c->ns, c->flags);
		return XDP_TX;
	}
	if (c->op == OP_HASH_DELETE) {
		c->ret = bpf_map_delete_elem(&clock_htimers, &k);
		return XDP_TX;
	}
	e = bpf_map_lookup_elem(&clock_timers, &k);
	if (!e)
		return XDP_ABORTED;
	switch (c->op) {
	case OP_INIT:
		c->ret = bpf_timer_init(&e->t, &clock_timers, CLOCK_MONOTONIC);
		if (c->ret == 0)
			c->ret = bpf_timer_set_callback(&e->t, timer_cb);
		break;
	case OP_START:
		c->ret = bpf_timer_start(&e->t, c->ns, c->flags);
		break;
	case OP_CANCEL:
		c->ret = bpf_timer_cancel(&e->t);
		break;
	case OP_REARM:
		e->rearm = c->ns;
		e->period = c->flags;
		c->ret = 0;
		break;
	case OP_UPDATE:
		c->ret = bpf_map_update_elem(&clock_timers, &k, &zero, BPF_ANY);
		break;
	default:
		return XDP_DROP;
	}
	return XDP_TX;
}

char _license[] SEC("license") = "GPL";
