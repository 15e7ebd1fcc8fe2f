// SPDX-License-Identifier: GPL-2.0
/* xdp_ringbuf: report TCP connection attempts through a ring buffer.
 *
 * For every IPv4 TCP SYN (without ACK) an event with the addresses, ports,
 * frame length and the first 16 bytes of the frame is reserved in a
 * RINGBUF, filled and submitted.  Frames of other kinds are sent with
 * bpf_ringbuf_output (a copy from the stack) when they are ARP.
 * Exercises: RINGBUF map, bpf_ringbuf_reserve/submit (a reference the
 * verifier tracks), bpf_ringbuf_output, bpf_xdp_load_bytes.
 */
#include "corpus.h"

#define TCP_FLAG_SYN 0x02
#define TCP_FLAG_ACK 0x10

struct syn_event {
	__u32 saddr;
	__u32 daddr;
	__u16 sport;
	__u16 dport;
	__u32 frame_len;
	__u8 head[16];
};

struct arp_event {
	__u32 frame_len;
	__u8 kind; /* 1 = ARP */
	__u8 pad[3];
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096);
} events SEC(".maps");

SEC("xdp")
int xdp_ringbuf(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *iph = (void *)(eth + 1);
	struct tcphdr *th;
	struct syn_event *ev;
	__u8 flags;

	if (!PKT_HAS(eth, sizeof(*eth), data_end))
		return XDP_PASS;

	if (eth->h_proto == bpf_htons(ETH_P_ARP)) {
		struct arp_event ae = { .frame_len = data_end - data, .kind = 1 };

		bpf_ringbuf_output(&events, &ae, sizeof(ae), 0);
		return XDP_PASS;
	}

	if (eth->h_proto != bpf_htons(ETH_P_IP) || !PKT_HAS(iph, sizeof(*iph), data_end))
		return XDP_PASS;
	if (iph->protocol != IPPROTO_TCP || iph->ihl != 5)
		return XDP_PASS;
	th = (void *)(iph + 1);
	if (!PKT_HAS(th, sizeof(*th), data_end))
		return XDP_PASS;
	flags = ((__u8 *)th)[13];
	if ((flags & (TCP_FLAG_SYN | TCP_FLAG_ACK)) != TCP_FLAG_SYN)
		return XDP_PASS;

	ev = bpf_ringbuf_reserve(&events, sizeof(*ev), 0);
	if (!ev)
		return XDP_PASS;
	ev->saddr = iph->saddr;
	ev->daddr = iph->daddr;
	ev->sport = bpf_ntohs(th->source);
	ev->dport = bpf_ntohs(th->dest);
	ev->frame_len = data_end - data;
	if (bpf_xdp_load_bytes(ctx, 0, ev->head, sizeof(ev->head)))
		__builtin_memset(ev->head, 0, sizeof(ev->head));
	bpf_ringbuf_submit(ev, 0);
	return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
