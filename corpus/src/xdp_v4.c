// corpus-cflags: -mcpu=v4
// SPDX-License-Identifier: GPL-2.0
/* xdp_v4: arithmetic built for cpu v4 (kernel 6.6+ instruction set).
 *
 * Computes a signed "score" from packet fields: signed division and modulo
 * (sdiv/smod), sign-extending moves from 8/16/32-bit values (movsx),
 * sign-extending loads (ldxsb/ldxsh/ldxsw, "memsx"), unconditional byte swaps
 * (bswap16/32/64, from bpf_ntoh*) and alu32 operations.  The results go to an
 * ARRAY so that every instruction's result is observable.  clang only emits
 * gotol (JA with a 32-bit offset in imm) for jumps beyond 32767 slots, so one
 * is written in inline assembly.
 */
#include "corpus.h"

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 9);
	__type(key, __u32);
	__type(value, __s64);
} results SEC(".maps");

static __always_inline void store(__u32 key, __s64 val)
{
	__s64 *slot = bpf_map_lookup_elem(&results, &key);

	if (slot)
		*slot = val;
}

SEC("xdp")
int xdp_v4(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__s8 *sb = data + 14;    /* signed views of the first IP header bytes */
	__s16 *sh = data + 16;
	__s32 *sw = data + 20;
	__u64 *qw = data + 24;
	__s64 a, b, q, r;
	__s32 q32, r32;

	if (!PKT_HAS(data, 32, data_end))
		return XDP_PASS;

	a = *sb;           /* ldxsb: sign-extending byte load */
	b = *sh;           /* ldxsh */
	store(0, a);
	store(1, b);
	store(2, *sw);     /* ldxsw */

	/* Signed 64-bit division and modulo by a packet-derived, non-zero divisor. */
	b = (b | 1) - 1000;
	q = (a * 1000 - 77777) / b;     /* sdiv */
	r = (a * 1000 - 77777) % b;     /* smod */
	store(3, q);
	store(4, r);

	/* 32-bit signed variants and movsx from narrower registers. */
	q32 = (__s32)(*sw) / (__s32)(__s8)(a | 1);
	r32 = (__s32)(*sw) % (__s32)(__s16)(b | 3);
	store(5, (__s64)q32 + r32);

	/* Unconditional byte swaps (bswap16/32/64) on v4. */
	store(6, (__s64)(bpf_ntohs(*(__u16 *)sh) ^ bpf_ntohl(*(__u32 *)sw) ^
			 __builtin_bswap64(*qw)));

	/* Division by zero is defined in BPF: x / 0 == 0, x % 0 == x. */
	store(7, (a * 3) / (__s64)(ctx->rx_queue_index) + (a % (__s64)ctx->rx_queue_index));

	/* gotol: with rx_queue_index 0 the long jump skips the assignment. */
	{
		__s64 r8 = 5;
		__u32 qi = ctx->rx_queue_index;

		asm volatile("if %[qi] != 0 goto +1\n\t"
			     "gotol +1\n\t"
			     "%[r8] = 7"
			     : [r8] "+r"(r8)
			     : [qi] "r"(qi));
		store(8, r8);
	}

	return q < 0 ? XDP_DROP : XDP_PASS;
}

char _license[] SEC("license") = "GPL";
