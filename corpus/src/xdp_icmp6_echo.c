// corpus-cflags: -mcpu=v3
// SPDX-License-Identifier: GPL-2.0
/* xdp_icmp6_echo: answer ICMPv6 echo requests with XDP_TX.
 *
 * Swaps MAC and IPv6 addresses, sets the hop limit to 64 and turns type 128
 * (echo request) into 129 (echo reply).  The ICMPv6 checksum covers a
 * pseudo-header with both addresses, which a swap leaves unchanged, so only
 * the type word needs an incremental fix; it is done with bpf_csum_diff over
 * the old and new first 4 bytes of the ICMPv6 header, folded.
 * Exercises: 16-byte address copies through the stack, bpf_csum_diff with a
 * seed, IPv6 next-header check, XDP_TX.
 */
#include "corpus.h"

#define ICMPV6_ECHO_REQUEST 128
#define ICMPV6_ECHO_REPLY 129

struct icmp6_head {
	__u8 type;
	__u8 code;
	__sum16 checksum;
};

static __always_inline __u16 csum_fold(__u32 csum)
{
	csum = (csum & 0xffff) + (csum >> 16);
	csum = (csum & 0xffff) + (csum >> 16);
	return (__u16)~csum;
}

SEC("xdp")
int xdp_icmp6_echo(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct ipv6hdr *ip6h = (void *)(eth + 1);
	struct icmp6_head *icmp = (void *)(ip6h + 1);
	struct in6_addr tmp_addr;
	unsigned char tmp_mac[ETH_ALEN];
	__u32 old_word, new_word;
	__s64 sum;

	if (!PKT_HAS(icmp, sizeof(*icmp), data_end))
		return XDP_PASS;
	if (eth->h_proto != bpf_htons(ETH_P_IPV6) || ip6h->nexthdr != IPPROTO_ICMPV6)
		return XDP_PASS;
	if (icmp->type != ICMPV6_ECHO_REQUEST || icmp->code != 0)
		return XDP_PASS;

	__builtin_memcpy(tmp_mac, eth->h_source, ETH_ALEN);
	__builtin_memcpy(eth->h_source, eth->h_dest, ETH_ALEN);
	__builtin_memcpy(eth->h_dest, tmp_mac, ETH_ALEN);

	__builtin_memcpy(&tmp_addr, &ip6h->saddr, sizeof(tmp_addr));
	__builtin_memcpy(&ip6h->saddr, &ip6h->daddr, sizeof(tmp_addr));
	__builtin_memcpy(&ip6h->daddr, &tmp_addr, sizeof(tmp_addr));
	ip6h->hop_limit = 64;

	/* Checksum field zeroed in both words: only type/code contribute. */
	old_word = *(__u32 *)icmp & bpf_htonl(0xffff0000);
	icmp->type = ICMPV6_ECHO_REPLY;
	new_word = *(__u32 *)icmp & bpf_htonl(0xffff0000);
	sum = bpf_csum_diff(&old_word, 4, &new_word, 4, (__u16)~icmp->checksum);
	if (sum < 0)
		return XDP_ABORTED;
	icmp->checksum = csum_fold((__u32)sum);
	return XDP_TX;
}

char _license[] SEC("license") = "GPL";
