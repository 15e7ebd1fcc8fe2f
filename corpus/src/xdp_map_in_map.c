// SPDX-License-Identifier: GPL-2.0
/* xdp_map_in_map: per-tenant policy tables selected through map-in-map.
 *
 * An ARRAY_OF_MAPS picks a tenant's port policy table by the low bit of the
 * IPv4 destination's last byte; a HASH_OF_MAPS keyed by VLAN id (0 = untagged)
 * picks a per-VLAN counter array.  Both outer maps are filled at load time
 * from `.values`, with inner maps declared as ordinary maps.  VLANs other
 * than 0 and 100 have no table: their lookup fails and the frame passes.
 * Exercises: ARRAY_OF_MAPS and HASH_OF_MAPS with `__array(values, ...)`
 * inner-map templates, `.values` initializers naming maps (relocations in
 * .rel.maps), two-level lookups.
 */
// corpus-map-setup: tenant_a_ports 0050 01
// corpus-map-setup: tenant_b_ports 14e9 01
#include "corpus.h"

struct port_table {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u16);  /* destination port, network order */
	__type(value, __u8); /* 1 = drop */
};

struct port_table tenant_a_ports SEC(".maps");
struct port_table tenant_b_ports SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 2);
	__type(key, __u32);
	__array(values, struct port_table);
} tenants SEC(".maps") = {
	.values = { &tenant_a_ports, &tenant_b_ports },
};

struct vlan_counters {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);   /* 0: packets, 1: bytes, 2: dropped, 3: no table */
	__type(value, __u64);
};

struct vlan_counters untagged_counters SEC(".maps");
struct vlan_counters vlan100_counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH_OF_MAPS);
	__uint(max_entries, 8);
	__type(key, __u32); /* VLAN id, 0 = untagged */
	__array(values, struct vlan_counters);
} per_vlan SEC(".maps") = {
	.values = { [0] = &untagged_counters, [100] = &vlan100_counters },
};

static __always_inline void count(void *table, __u32 idx, __u64 n)
{
	__u64 *v = bpf_map_lookup_elem(table, &idx);

	if (v)
		__sync_fetch_and_add(v, n);
}

SEC("xdp")
int xdp_map_in_map(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *iph;
	struct udphdr *uh;
	void *counters, *ports;
	__u32 vid = 0, tenant;
	__u16 proto;
	__u8 *verdict;
	int off = sizeof(*eth);

	if (!PKT_HAS(eth, sizeof(*eth), data_end))
		return XDP_PASS;
	proto = eth->h_proto;
	if (proto == bpf_htons(ETH_P_8021Q)) {
		struct vlan_hdr *vh = (void *)(eth + 1);

		if (!PKT_HAS(vh, sizeof(*vh), data_end))
			return XDP_PASS;
		vid = bpf_ntohs(vh->h_vlan_TCI) & 0x0fff;
		proto = vh->h_vlan_encapsulated_proto;
		off += sizeof(*vh);
	}

	counters = bpf_map_lookup_elem(&per_vlan, &vid);
	if (!counters)
		return XDP_PASS; /* VLAN without a table */
	count(counters, 0, 1);
	count(counters, 1, data_end - data);

	if (proto != bpf_htons(ETH_P_IP))
		return XDP_PASS;
	iph = data + off;
	if (!PKT_HAS(iph, sizeof(*iph), data_end) || iph->ihl != 5)
		return XDP_PASS;
	if (iph->protocol != IPPROTO_UDP && iph->protocol != IPPROTO_TCP)
		return XDP_PASS;
	uh = (void *)(iph + 1);
	if (!PKT_HAS(uh, sizeof(*uh), data_end))
		return XDP_PASS;

	tenant = (bpf_ntohl(iph->daddr) & 0xff) & 1;
	ports = bpf_map_lookup_elem(&tenants, &tenant);
	if (!ports) {
		count(counters, 3, 1);
		return XDP_PASS;
	}
	verdict = bpf_map_lookup_elem(ports, &uh->dest);
	if (verdict && *verdict == 1) {
		count(counters, 2, 1);
		return XDP_DROP;
	}
	return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
