// An XDP program that decrements the IPv4 TTL through a writable slice of an XDP dynptr
// (bpf_dynptr_slice_rdwr, Linux 6.4). Upstream 6.18 accepts it; some kernel builds
// refuse the kfunc to XDP programs ("bpf_dynptr_slice_rdwr() is not allowed"), and
// `verify --kernel live` must then say what `bpfkit load` says (tests/kernel_targets.rs).
// Rebuild with ./build.sh (clang-19).
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <bpf/bpf_helpers.h>

extern int bpf_dynptr_from_xdp(struct xdp_md *xdp, __u64 flags,
			       struct bpf_dynptr *ptr__uninit) __ksym;
extern void *bpf_dynptr_slice_rdwr(const struct bpf_dynptr *ptr, __u32 offset,
				   void *buffer__opt, __u32 buffer__szk) __ksym;

SEC("xdp")
int xdp_dynptr_ttl(struct xdp_md *ctx)
{
	struct bpf_dynptr ptr;
	struct iphdr *ip;

	if (bpf_dynptr_from_xdp(ctx, 0, &ptr))
		return XDP_ABORTED;
	ip = bpf_dynptr_slice_rdwr(&ptr, sizeof(struct ethhdr), NULL, sizeof(*ip));
	if (!ip)
		return XDP_PASS;
	if (ip->ttl <= 1)
		return XDP_DROP;
	ip->ttl--;
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
