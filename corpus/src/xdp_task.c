// SPDX-License-Identifier: GPL-2.0
/* xdp_task: what the "current task" helpers say during BPF_PROG_TEST_RUN.
 *
 * Frames with EtherType 0x88b7 carry a pid namespace (dev, ino) after the
 * Ethernet header; the program answers in the same frame (XDP_TX) with
 * bpf_get_current_cgroup_id, bpf_get_current_ancestor_cgroup_id for levels
 * 0-3, -1 and 1000, bpf_get_cgroup_classid (the task's net_cls class),
 * bpf_get_current_pid_tgid, and bpf_get_ns_current_pid_tgid with that
 * namespace, with a 4-byte buffer (-EINVAL), a wrong inode (-EINVAL) and a
 * dev that does not fit dev_t (-EINVAL). Under BPF_PROG_TEST_RUN the current
 * task is the caller, so the values depend on who runs it: the sample
 * packets (other EtherTypes) pass untouched, and the VM's tests/task.rs runs
 * the frames through bpftool and compares with the emulator configured with
 * bpftool's cgroup and pid namespace.
 * Exercises: task identity helpers from bpf_base_func_proto (6.18).
 */
#include "corpus.h"

struct task_cmd {
	__u64 dev;
	__u64 ino;
	__u64 cgroup_id;
	__u64 ancestors[4];
	__u64 ancestor_neg;
	__u64 ancestor_big;
	__u64 classid;
	__u64 pid_tgid;
	__s64 ns_ret;
	struct bpf_pidns_info ns;
	__s64 small_ret;
	struct bpf_pidns_info small;
	__s64 bad_ino_ret;
	struct bpf_pidns_info bad_ino;
	__s64 bad_dev_ret;
	struct bpf_pidns_info bad_dev;
};

SEC("xdp")
int xdp_task(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct bpf_pidns_info ns = {}, small = {}, bad_ino = {}, bad_dev = {};
	struct task_cmd *c;
	__u64 dev, ino;

	if (!PKT_HAS(eth, sizeof(*eth), end) || eth->h_proto != bpf_htons(0x88b7))
		return XDP_PASS;
	c = (void *)(eth + 1);
	if (!PKT_HAS(c, sizeof(*c), end))
		return XDP_DROP;
	dev = c->dev;
	ino = c->ino;
	c->cgroup_id = bpf_get_current_cgroup_id();
	c->ancestors[0] = bpf_get_current_ancestor_cgroup_id(0);
	c->ancestors[1] = bpf_get_current_ancestor_cgroup_id(1);
	c->ancestors[2] = bpf_get_current_ancestor_cgroup_id(2);
	c->ancestors[3] = bpf_get_current_ancestor_cgroup_id(3);
	c->ancestor_neg = bpf_get_current_ancestor_cgroup_id(-1);
	c->ancestor_big = bpf_get_current_ancestor_cgroup_id(1000);
	c->classid = bpf_get_cgroup_classid((void *)0);
	c->pid_tgid = bpf_get_current_pid_tgid();
	small.tgid = 0x77;
	bad_ino.pid = 0x66;
	c->ns_ret = bpf_get_ns_current_pid_tgid(dev, ino, &ns, sizeof(ns));
	c->small_ret = bpf_get_ns_current_pid_tgid(dev, ino, &small, 4);
	c->bad_ino_ret = bpf_get_ns_current_pid_tgid(dev, ino + 1, &bad_ino, sizeof(bad_ino));
	c->bad_dev_ret = bpf_get_ns_current_pid_tgid(dev | (1ULL << 40), ino, &bad_dev, sizeof(bad_dev));
	c->ns = ns;
	c->small = small;
	c->bad_ino = bad_ino;
	c->bad_dev = bad_dev;
	return XDP_TX;
}

char _license[] SEC("license") = "GPL";
