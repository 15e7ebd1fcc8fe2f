// may_goto (Linux 6.9) through the `can_loop` macro of the kernel's
// bpf_experimental.h: loops bounded only by the kernel's may_goto budget.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#define can_loop                                                        \
	({ __label__ l_break, l_continue;                               \
	   int ret = 1;                                                  \
	   asm volatile goto("may_goto %l[l_break]" :::: l_break);      \
	   goto l_continue;                                              \
	l_break: ret = 0;                                                \
	l_continue:;                                                     \
	   ret; })

// Hashes 0..n-1, n the first byte of the EtherType: the result depends on every
// iteration, and the loop ends long before the budget.
SEC("xdp")
int xdp_may_goto_hash(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	__u32 h = 7, i = 0, n;

	if (data + 14 > end)
		return XDP_ABORTED;
	n = ((__u8 *)data)[12];
	while (can_loop) {
		if (i >= n)
			break;
		h = h * 31 + i;
		i++;
	}
	return h & 0xffff;
}

// Spins until the budget is exhausted: the interpreter and the JIT stop after
// BPF_MAX_LOOPS iterations, the x86-64 kernel after its time budget (timed
// may_goto), so only termination and the verdict are compared. The count goes to
// a global without a branch on it: a branch would make it precise on the first
// path (n = 0), and the verifier would then unroll the loop until its
// 1,000,000-instruction budget, as 6.18 does.
__u64 spins;

SEC("xdp")
int xdp_may_goto_spin(struct xdp_md *ctx)
{
	__u64 n = 0;

	while (can_loop)
		n++;
	spins = n;
	return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
