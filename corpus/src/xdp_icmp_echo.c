// SPDX-License-Identifier: GPL-2.0
/* xdp_icmp_echo: answer ICMP echo requests from XDP with XDP_TX.
 *
 * Swaps the MAC and IPv4 addresses, turns type 8 (echo request) into type 0
 * (echo reply) and patches the ICMP checksum incrementally (RFC 1624); the IP
 * checksum does not change because swapping addresses keeps the sum; for
 * option-less headers the TTL is reset to 64 and the checksum recomputed.
 * Exercises: packet writes, byte-wise MAC swap, 16-bit one's complement
 * arithmetic, XDP_TX.  Everything else passes; IPv4 options are honoured.
 */
#include "corpus.h"

#define ICMP_ECHO_REQUEST 8
#define ICMP_ECHO_REPLY 0

static __always_inline void swap_mac(struct ethhdr *eth)
{
	unsigned char tmp[ETH_ALEN];

	__builtin_memcpy(tmp, eth->h_source, ETH_ALEN);
	__builtin_memcpy(eth->h_source, eth->h_dest, ETH_ALEN);
	__builtin_memcpy(eth->h_dest, tmp, ETH_ALEN);
}

/* RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m'), for one 16-bit word m -> m'. */
static __always_inline __u16 csum_replace2(__u16 check, __u16 old, __u16 new)
{
	__u32 sum = (__u16)~check + (__u16)~old + new;

	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return ~sum;
}

SEC("xdp")
int xdp_icmp_echo(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *iph;
	struct icmphdr *icmph;
	__u16 old_word, new_word;
	__u32 tmp_ip;
	__u32 ihl;

	if (!PKT_HAS(eth, sizeof(*eth), data_end))
		return XDP_PASS;
	if (eth->h_proto != bpf_htons(ETH_P_IP))
		return XDP_PASS;

	iph = (void *)(eth + 1);
	if (!PKT_HAS(iph, sizeof(*iph), data_end))
		return XDP_PASS;
	ihl = iph->ihl * 4;
	if (ihl < sizeof(*iph) || iph->protocol != IPPROTO_ICMP)
		return XDP_PASS;
	/* Fragments other than the first carry no ICMP header. */
	if (iph->frag_off & bpf_htons(0x1fff))
		return XDP_PASS;

	icmph = (void *)iph + ihl;
	if (!PKT_HAS(icmph, sizeof(*icmph), data_end))
		return XDP_PASS;
	if (icmph->type != ICMP_ECHO_REQUEST || icmph->code != 0)
		return XDP_PASS;

	swap_mac(eth);
	tmp_ip = iph->saddr;
	iph->saddr = iph->daddr;
	iph->daddr = tmp_ip;
	if (ihl == sizeof(*iph)) {
		/* Reset the TTL and recompute the (option-less) header checksum. */
		__u16 *w = (__u16 *)iph;
		__u32 sum = 0;
		int i;

		iph->ttl = 64;
		iph->check = 0;
		for (i = 0; i < (int)(sizeof(*iph) / 2); i++)
			sum += w[i];
		sum = (sum & 0xffff) + (sum >> 16);
		sum = (sum & 0xffff) + (sum >> 16);
		iph->check = ~sum;
	}

	old_word = *(__u16 *)icmph; /* type and code */
	icmph->type = ICMP_ECHO_REPLY;
	new_word = *(__u16 *)icmph;
	icmph->checksum = csum_replace2(icmph->checksum, old_word, new_word);

	return XDP_TX;
}

char _license[] SEC("license") = "GPL";
