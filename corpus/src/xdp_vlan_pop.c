// SPDX-License-Identifier: GPL-2.0
/* xdp_vlan_pop: strip the outer 802.1Q/802.1ad tag with bpf_xdp_adjust_head.
 *
 * The MAC addresses are moved 4 bytes forward over the tag, then the packet
 * start is advanced by 4 bytes.  The popped VLAN id is counted in a HASH.
 * Exercises: bpf_xdp_adjust_head (positive delta), re-deriving packet
 * pointers after a helper that invalidates them, overlapping copies done
 * with explicit loads/stores.
 */
#include "corpus.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u16);   /* VLAN id */
	__type(value, __u64); /* packets popped */
} vlan_popped SEC(".maps");

SEC("xdp")
int xdp_vlan_pop(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct vlan_hdr *vh;
	struct ethhdr copy;
	__u64 one = 1, *cnt;
	__u16 vid;

	if (!PKT_HAS(eth, sizeof(*eth) + sizeof(*vh), data_end))
		return XDP_PASS;
	if (eth->h_proto != bpf_htons(ETH_P_8021Q) &&
	    eth->h_proto != bpf_htons(ETH_P_8021AD))
		return XDP_PASS;

	vh = (void *)(eth + 1);
	vid = bpf_ntohs(vh->h_vlan_TCI) & 0x0fff;

	/* New header: same addresses, the tag's encapsulated protocol. */
	__builtin_memcpy(copy.h_dest, eth->h_dest, ETH_ALEN);
	__builtin_memcpy(copy.h_source, eth->h_source, ETH_ALEN);
	copy.h_proto = vh->h_vlan_encapsulated_proto;

	if (bpf_xdp_adjust_head(ctx, (int)sizeof(*vh)))
		return XDP_ABORTED;

	/* Packet pointers are invalid after adjust_head: load them again. */
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	eth = data;
	if (!PKT_HAS(eth, sizeof(*eth), data_end))
		return XDP_ABORTED;
	__builtin_memcpy(eth, &copy, sizeof(copy));

	cnt = bpf_map_lookup_elem(&vlan_popped, &vid);
	if (cnt)
		__sync_fetch_and_add(cnt, 1);
	else
		bpf_map_update_elem(&vlan_popped, &vid, &one, BPF_ANY);
	return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
