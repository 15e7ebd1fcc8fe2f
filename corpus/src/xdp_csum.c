// corpus-cflags: -mcpu=v3
// SPDX-License-Identifier: GPL-2.0
/* xdp_csum: destination NAT for IPv4/UDP using bpf_csum_diff.
 *
 * Packets to a virtual address found in the `nat` HASH get their destination
 * address (and UDP port) replaced by the backend's.  The IPv4 header checksum
 * and the UDP checksum (pseudo-header covers the address) are fixed with
 * bpf_csum_diff over the changed 4-byte words, folded to 16 bits.
 * Exercises: bpf_csum_diff with stack buffers, checksum folding, 16-bit
 * stores into the packet, a UDP zero-checksum special case.
 */
// corpus-map-setup: nat 0a0000fe0035 0a0000051435
#include "corpus.h"

struct nat_key {
	__u32 vaddr; /* network order */
	__u16 vport; /* network order */
} __attribute__((packed));

struct nat_val {
	__u32 raddr;
	__u16 rport;
} __attribute__((packed));

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, struct nat_key);
	__type(value, struct nat_val);
} nat SEC(".maps");

static __always_inline __u16 csum_fold(__u32 csum)
{
	csum = (csum & 0xffff) + (csum >> 16);
	csum = (csum & 0xffff) + (csum >> 16);
	return (__u16)~csum;
}

SEC("xdp")
int xdp_csum(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *iph = (void *)(eth + 1);
	struct udphdr *uh = (void *)(iph + 1);
	struct nat_key key = {};
	struct nat_val *val;
	__be32 from[2], to[2];
	__s64 diff;

	if (!PKT_HAS(uh, sizeof(*uh), data_end))
		return XDP_PASS;
	if (eth->h_proto != bpf_htons(ETH_P_IP) || iph->ihl != 5 ||
	    iph->protocol != IPPROTO_UDP)
		return XDP_PASS;

	key.vaddr = iph->daddr;
	key.vport = uh->dest;
	val = bpf_map_lookup_elem(&nat, &key);
	if (!val)
		return XDP_PASS;

	/* IP header: only the destination address word changes. */
	from[0] = iph->daddr;
	to[0] = val->raddr;
	diff = bpf_csum_diff(from, 4, to, 4, ~(__u32)iph->check & 0xffff);
	if (diff < 0)
		return XDP_ABORTED;
	iph->check = csum_fold((__u32)diff);
	iph->daddr = val->raddr;

	/* UDP: address (pseudo-header) and port change; 0 means "no checksum". */
	if (uh->check) {
		from[1] = uh->dest;
		to[1] = val->rport;
		diff = bpf_csum_diff(from, 8, to, 8, ~(__u32)uh->check & 0xffff);
		if (diff < 0)
			return XDP_ABORTED;
		uh->check = csum_fold((__u32)diff);
		if (!uh->check)
			uh->check = 0xffff;
	}
	uh->dest = val->rport;
	return XDP_TX;
}

char _license[] SEC("license") = "GPL";
