// SPDX-License-Identifier: GPL-2.0
/* xdp_printk: debug output with bpf_printk.
 *
 * Prints one line per frame: its length and EtherType, and for IPv4 the
 * protocol, addresses (%pI4) and TTL.  bpf_printk with up to 3 arguments
 * compiles to bpf_trace_printk (format string in .rodata.str1.1 or a
 * static .rodata array), with more to bpf_trace_vprintk (arguments in a u64
 * array on the stack).  The recorder reads the lines back from tracefs.
 * Exercises: .rodata string constants referenced by ld_imm64, trace_printk
 * and trace_vprintk, %d %u %x %llu %pI4 formats.
 */
#include "corpus.h"

SEC("xdp")
int xdp_printk(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *iph = (void *)(eth + 1);
	__u64 len = data_end - data;

	if (!PKT_HAS(eth, sizeof(*eth), data_end))
		return XDP_PASS;
	bpf_printk("len %llu proto 0x%x", len, bpf_ntohs(eth->h_proto));
	if (eth->h_proto != bpf_htons(ETH_P_IP) || !PKT_HAS(iph, sizeof(*iph), data_end))
		return XDP_PASS;
	bpf_printk("ipv4 %pI4 -> %pI4 proto %u ttl %d", &iph->saddr, &iph->daddr,
		   iph->protocol, iph->ttl);
	return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
