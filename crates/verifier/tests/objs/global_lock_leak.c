// expect: reject BPF_EXIT instruction in main prog cannot be used inside bpf_spin_lock-ed region
/* Returning on one path while the global lock is held. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#define private(name) SEC(".bss." #name) __attribute__((visibility("hidden"), aligned(8)))

private(A) struct bpf_spin_lock glock;
private(A) __u64 counter;

SEC("xdp")
int global_lock_leak(struct xdp_md *ctx)
{
	bpf_spin_lock(&glock);
	if (counter++ > 100)
		return XDP_DROP;
	bpf_spin_unlock(&glock);
	return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
