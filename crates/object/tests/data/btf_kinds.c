#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
enum color { RED, GREEN = 5, BLUE = -3 };
enum big { HUGE = 0x1ffffffffULL, SMALL = 1 };
enum ucolor { U1 = 1, U2 = 0xffffffff };
struct bits { unsigned a:3, b:5; int c; union { int x; float f; } u; double d; };
struct fwd_only;
#define __tag(x) __attribute__((btf_decl_tag(x)))
#define __ttag(x) __attribute__((btf_type_tag(x)))
struct tagged { int v __tag("member_tag"); int __ttag("tt") *p; } __tag("struct_tag");
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct bits);
	__type(value, struct tagged);
	__uint(max_entries, 4);
} m SEC(".maps");
volatile enum color gc = GREEN;
volatile enum big gb = HUGE;
volatile enum ucolor gu = U2;
struct fwd_only *restrict gp;
volatile float gf;
float *gfp = (float *)&gf;
int __tag("func_tag") helper(struct bits *restrict b __tag("param_tag")) { return b->a + b->c; }
SEC("tc")
int cls(struct __sk_buff *skb) { struct bits b = {}; b.c = skb->len; return helper(&b) + gc + (int)gb + gu + (gp != 0) + sizeof(gf); }
SEC("xdp/devmap") int devm(struct xdp_md *ctx) { return XDP_PASS; }
SEC("xdp.frags/cpumap") int cpum(struct xdp_md *ctx) { return XDP_PASS; }
SEC("kprobe/do_sys_open") int kp(void *ctx) { return 0; }
SEC("tracepoint/syscalls/sys_enter_open") int tp(void *ctx) { return 0; }
SEC("socket") int sock(void *ctx) { return 0; }
SEC("classifier") int clsf(void *ctx) { return 0; }
char _license[] SEC("license") = "Dual BSD/GPL";
__u32 _version SEC("version") = 0x061200;
