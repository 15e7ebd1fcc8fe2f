// expect: accept
/* A bpf_spin_lock in global data (its own .bss.* section, as the kernel selftests'
 * `private()` macro does): the DATASEC value of the map holds the lock. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#define private(name) SEC(".bss." #name) __attribute__((visibility("hidden"), aligned(8)))

private(A) struct bpf_spin_lock glock;
private(A) __u64 counter;

SEC("xdp")
int global_lock(struct xdp_md *ctx)
{
	bpf_spin_lock(&glock);
	counter++;
	bpf_spin_unlock(&glock);
	return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
