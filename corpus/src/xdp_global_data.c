// SPDX-License-Identifier: GPL-2.0
/* xdp_global_data: configuration and state in global variables.
 *
 * .rodata holds `const volatile` configuration (libbpf freezes the map, the
 * verifier then knows the values and prunes dead branches), .data holds
 * initialized mutable state, .bss zero-initialized counters.
 * Exercises: ld_imm64 against section symbols with offsets (global data
 * relocations, BPF_PSEUDO_MAP_VALUE), atomic adds on global variables,
 * reading frozen read-only data.
 */
#include "corpus.h"

/* Configuration (.rodata). */
const volatile __u16 cfg_drop_port = 9;       /* UDP "discard" port */
const volatile __u32 cfg_min_len = 60;        /* shorter frames are counted */
const volatile __u8 cfg_drop_ttl_below = 2;

/* Mutable state with initial values (.data). */
__u64 pass_budget = 1000;  /* pass at most this many IP packets, then drop */
__u32 last_saddr = 0xffffffff;

/* Counters (.bss). */
__u64 nr_packets;
__u64 nr_short;
__u64 nr_port_drops;
__u64 nr_ttl_drops;
__u64 nr_budget_drops;

SEC("xdp")
int xdp_global_data(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *iph = (void *)(eth + 1);
	struct udphdr *uh;

	__sync_fetch_and_add(&nr_packets, 1);
	if (data + cfg_min_len > data_end)
		__sync_fetch_and_add(&nr_short, 1);

	if (!PKT_HAS(iph, sizeof(*iph), data_end) || eth->h_proto != bpf_htons(ETH_P_IP))
		return XDP_PASS;
	last_saddr = iph->saddr;

	if (iph->ttl < cfg_drop_ttl_below) {
		__sync_fetch_and_add(&nr_ttl_drops, 1);
		return XDP_DROP;
	}

	if (iph->protocol == IPPROTO_UDP && iph->ihl == 5) {
		uh = (void *)(iph + 1);
		if (PKT_HAS(uh, sizeof(*uh), data_end) && uh->dest == bpf_htons(cfg_drop_port)) {
			__sync_fetch_and_add(&nr_port_drops, 1);
			return XDP_DROP;
		}
	}

	if (pass_budget == 0) {
		__sync_fetch_and_add(&nr_budget_drops, 1);
		return XDP_DROP;
	}
	pass_budget--;
	return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
