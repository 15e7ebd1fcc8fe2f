// Pure compute: a header parser. Ethernet, up to two VLAN tags, IPv4 (with options) or
// IPv6 (with up to four extension headers), then TCP/UDP ports; returns an action derived
// from a flow hash so that the whole parse is needed. No helpers, no maps.
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/in.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

struct vlan_hdr {
	__be16 tci;
	__be16 proto;
};

struct ext_hdr {
	__u8 next;
	__u8 len;
};

static __always_inline __u32 mix(__u32 h, __u32 v)
{
	h ^= v;
	h *= 0x01000193;
	return h;
}

SEC("xdp")
int bench_parse(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	__u32 h = 0x811c9dc5;
	if ((void *)(eth + 1) > data_end)
		return XDP_ABORTED;
	__u16 proto = eth->h_proto;
	void *cur = eth + 1;
#pragma unroll
	for (int i = 0; i < 2; i++) {
		if (proto != bpf_htons(ETH_P_8021Q) && proto != bpf_htons(ETH_P_8021AD))
			break;
		struct vlan_hdr *v = cur;
		if ((void *)(v + 1) > data_end)
			return XDP_ABORTED;
		h = mix(h, bpf_ntohs(v->tci) & 0xfff);
		proto = v->proto;
		cur = v + 1;
	}
	__u8 l4;
	if (proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = cur;
		if ((void *)(ip + 1) > data_end)
			return XDP_ABORTED;
		if (ip->ihl < 5)
			return XDP_DROP;
		h = mix(h, ip->saddr);
		h = mix(h, ip->daddr);
		l4 = ip->protocol;
		cur = (void *)ip + ip->ihl * 4;
	} else if (proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = cur;
		if ((void *)(ip6 + 1) > data_end)
			return XDP_ABORTED;
#pragma unroll
		for (int i = 0; i < 4; i++)
			h = mix(h, ip6->saddr.in6_u.u6_addr32[i] ^ ip6->daddr.in6_u.u6_addr32[i]);
		l4 = ip6->nexthdr;
		cur = ip6 + 1;
#pragma unroll
		for (int i = 0; i < 4; i++) {
			if (l4 != 0 && l4 != 43 && l4 != 60)
				break;
			struct ext_hdr *e = cur;
			if ((void *)(e + 1) > data_end)
				return XDP_ABORTED;
			l4 = e->next;
			cur += (e->len + 1) * 8;
		}
	} else {
		return XDP_PASS;
	}
	if (l4 == IPPROTO_TCP) {
		struct tcphdr *tcp = cur;
		if ((void *)(tcp + 1) > data_end)
			return XDP_ABORTED;
		h = mix(h, ((__u32)tcp->source << 16) | tcp->dest);
		h = mix(h, tcp->syn | (tcp->ack << 1) | (tcp->fin << 2) | (tcp->rst << 3));
	} else if (l4 == IPPROTO_UDP) {
		struct udphdr *udp = cur;
		if ((void *)(udp + 1) > data_end)
			return XDP_ABORTED;
		h = mix(h, ((__u32)udp->source << 16) | udp->dest);
	}
	return (h & 3) == 0 ? XDP_DROP : XDP_PASS;
}

char _license[] SEC("license") = "GPL";
