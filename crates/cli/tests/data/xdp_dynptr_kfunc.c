// An XDP program that reads the Ethernet header through the kfunc bpf_dynptr_from_xdp
// (Linux 6.4) and bpf_dynptr_slice. Used by tests/kernel_targets.rs: a version target
// below 6.4 must refuse it. Rebuild with ./build.sh (clang-19).
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <bpf/bpf_helpers.h>

extern int bpf_dynptr_from_xdp(struct xdp_md *xdp, __u64 flags,
			       struct bpf_dynptr *ptr__uninit) __ksym;
extern void *bpf_dynptr_slice(const struct bpf_dynptr *ptr, __u32 offset,
			      void *buffer__opt, __u32 buffer__szk) __ksym;

SEC("xdp")
int xdp_dynptr_eth(struct xdp_md *ctx)
{
	struct bpf_dynptr ptr;
	struct ethhdr buf, *eth;

	if (bpf_dynptr_from_xdp(ctx, 0, &ptr))
		return XDP_ABORTED;
	eth = bpf_dynptr_slice(&ptr, 0, &buf, sizeof(buf));
	if (!eth)
		return XDP_DROP;
	return eth->h_proto == __builtin_bswap16(ETH_P_IP) ? XDP_PASS : XDP_DROP;
}

char LICENSE[] SEC("license") = "GPL";
