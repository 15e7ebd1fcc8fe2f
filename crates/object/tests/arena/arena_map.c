/* An arena map as libbpf's selftests declare it: map_extra (the user-space address
 * hint) is a 64-bit __ulong, i.e. an ENUM64 member in BTF. Built by build.sh. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#ifndef __ulong
#define __ulong(name, val) enum { ___bpf_concat(__unique_value, __COUNTER__) = val } name
#endif

struct {
	__uint(type, 33 /* BPF_MAP_TYPE_ARENA, newer than the system headers */);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, 100);
	__ulong(map_extra, 0x1ull << 44);
} arena SEC(".maps");

struct {
	__uint(type, 33 /* BPF_MAP_TYPE_ARENA, newer than the system headers */);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, 1);
	__uint(map_extra, 4096);
} small_arena SEC(".maps");

SEC("?xdp")
int arena_prog(struct xdp_md *ctx)
{
	return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
