/* Three XDP programs in one object: one calls the kfunc bpf_dynptr_from_xdp (modelled),
 * one bpf_rcu_read_lock (not modelled: undecided), the third calls nothing unusual. A
 * kfunc must not keep the other programs from being verified (issue 14). Built by
 * tests/objs/build.sh. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

extern int bpf_dynptr_from_xdp(struct xdp_md *x, __u64 flags, struct bpf_dynptr *ptr) __ksym;
extern void bpf_rcu_read_lock(void) __ksym;
extern void bpf_rcu_read_unlock(void) __ksym;

SEC("xdp")
int uses_kfunc(struct xdp_md *ctx)
{
	struct bpf_dynptr ptr;

	if (bpf_dynptr_from_xdp(ctx, 0, &ptr))
		return XDP_DROP;
	return XDP_PASS;
}

SEC("xdp")
int uses_rcu(struct xdp_md *ctx)
{
	bpf_rcu_read_lock();
	bpf_rcu_read_unlock();
	return XDP_PASS;
}

SEC("xdp")
int plain(struct xdp_md *ctx)
{
	unsigned char *data = (unsigned char *)(long)ctx->data;
	unsigned char *end = (unsigned char *)(long)ctx->data_end;

	if (data + 14 > end)
		return XDP_DROP;
	return data[12] == 8 ? XDP_PASS : XDP_DROP;
}

char _license[] SEC("license") = "GPL";
