// expect: reject R1 invalid mem access 'mem_or_null'
/* A global function dereferences its pointer argument without a NULL check. Inlined (as
 * a static function) the access would be fine: the caller passes its stack. But a global
 * function is verified alone, for any argument matching `int *`, which includes NULL:
 * R1 is `mem_or_null` there. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

__noinline int read_val(int *p)
{
	return *p + 1;
}

SEC("xdp")
int global_null_deref(struct xdp_md *ctx)
{
	int v = ctx->rx_queue_index;

	return read_val(&v) == 3 ? XDP_DROP : XDP_PASS;
}

char _license[] SEC("license") = "GPL";
