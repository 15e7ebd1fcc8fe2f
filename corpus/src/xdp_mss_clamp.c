// corpus-cflags: -mcpu=v2
// SPDX-License-Identifier: GPL-2.0
/* xdp_mss_clamp: clamp the TCP MSS option of SYN packets to 1360 bytes.
 *
 * Walks the TCP options of IPv4 and IPv6 SYNs (at most 10 options, unrolling
 * disabled) looking for kind 2 (MSS); when the advertised MSS is larger than
 * MSS_MAX it is rewritten and the TCP checksum patched incrementally
 * (RFC 1624).  NOP (1) and END (0) are honoured; a malformed option length
 * stops the walk.  Counts clamped and seen SYNs.
 * Exercises: a loop with a packet offset that depends on packet data (the
 * verifier needs explicit bounds on it), 16-bit unaligned packet accesses,
 * incremental checksum update, IPv4 and IPv6 header parsing.
 */
#include "corpus.h"

#define MSS_MAX 1360
#define MAX_OPTS 10
#define TCPOPT_EOL 0
#define TCPOPT_NOP 1
#define TCPOPT_MSS 2

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);   /* 0: SYNs seen, 1: MSS clamped */
	__type(value, __u64);
} mss_stats SEC(".maps");

static __always_inline void bump(__u32 key)
{
	__u64 *v = bpf_map_lookup_elem(&mss_stats, &key);

	if (v)
		__sync_fetch_and_add(v, 1);
}

static __always_inline __u16 csum_replace2(__u16 check, __u16 old, __u16 new)
{
	__u32 sum = (__u16)~check + (__u16)~old + new;

	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return ~sum;
}

SEC("xdp")
int xdp_mss_clamp(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct tcphdr *th;
	__u32 opt_off, opt_end;
	int i;

	if (!PKT_HAS(eth, sizeof(*eth), data_end))
		return XDP_PASS;
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *iph = (void *)(eth + 1);

		if (!PKT_HAS(iph, sizeof(*iph), data_end) || iph->protocol != IPPROTO_TCP)
			return XDP_PASS;
		th = (void *)iph + iph->ihl * 4;
	} else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6h = (void *)(eth + 1);

		if (!PKT_HAS(ip6h, sizeof(*ip6h), data_end) || ip6h->nexthdr != IPPROTO_TCP)
			return XDP_PASS;
		th = (void *)(ip6h + 1);
	} else {
		return XDP_PASS;
	}
	if (!PKT_HAS(th, sizeof(*th), data_end) || !th->syn)
		return XDP_PASS;
	bump(0);

	/* Option offsets are relative to the TCP header, bounded by doff. */
	opt_off = sizeof(*th);
	opt_end = th->doff * 4;

#pragma clang loop unroll(disable)
	for (i = 0; i < MAX_OPTS; i++) {
		__u8 *opt = (__u8 *)th + (opt_off & 0x3f);
		__u8 kind, len;

		if (opt_off >= opt_end || !PKT_HAS(opt, 1, data_end))
			break;
		kind = opt[0];
		if (kind == TCPOPT_EOL)
			break;
		if (kind == TCPOPT_NOP) {
			opt_off++;
			continue;
		}
		if (!PKT_HAS(opt, 2, data_end))
			break;
		len = opt[1];
		if (len < 2)
			break; /* malformed */
		if (kind == TCPOPT_MSS && len == 4) {
			__u16 *mssp = (__u16 *)(opt + 2);
			__u16 old;

			if (!PKT_HAS(mssp, 2, data_end))
				break;
			old = *mssp;
			if (bpf_ntohs(old) > MSS_MAX) {
				*mssp = bpf_htons(MSS_MAX);
				th->check = csum_replace2(th->check, old, *mssp);
				bump(1);
			}
			break;
		}
		opt_off += len;
	}
	return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
