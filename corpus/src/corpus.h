/* Shared definitions for the bpfkit corpus programs.
 *
 * Only uapi headers and libbpf's bpf_helpers.h are used, like programs in
 * xdp-tools or the kernel's samples/bpf.  Header structs that the uapi does
 * not export (VLAN header) are defined here.
 */
#ifndef BPFKIT_CORPUS_H
#define BPFKIT_CORPUS_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#ifndef ETH_P_8021Q
#define ETH_P_8021Q 0x8100
#endif
#ifndef ETH_P_8021AD
#define ETH_P_8021AD 0x88A8
#endif

/* 802.1Q tag as it follows the MAC addresses (the kernel keeps this one private). */
struct vlan_hdr {
	__be16 h_vlan_TCI;
	__be16 h_vlan_encapsulated_proto;
};

/* ICMP header (linux/icmp.h pulls in libc headers that do not build for BPF). */
struct icmphdr {
	__u8 type;
	__u8 code;
	__sum16 checksum;
	union {
		struct {
			__be16 id;
			__be16 sequence;
		} echo;
		__be32 gateway;
	} un;
};

/* Bounds check helper: true when [ptr, ptr + len) lies inside the packet. */
#define PKT_HAS(ptr, len, end) ((void *)(ptr) + (len) <= (void *)(end))

#endif
