//! The helpers Linux 6.18 offers XDP programs that the VM does not emulate, each with the
//! reason (see docs/vm.md, "Helper audit"). `tests/helper_audit.rs` checks, against the
//! kernel's list recorded by `corpus/tools/helper_probe.py`, that every helper an XDP
//! program may call is either in [`crate::helpers::SUPPORTED`] or here, and that calling
//! one of these fails the run with an error naming it.

/// (helper id, why it cannot be emulated deterministically).
pub const NOT_EMULATED: &[(i32, &str)] = &[
    (22, "reads a hardware perf counter"),
    (35, "returns the kernel's task_struct pointer"),
    (37, "needs a CGROUP_ARRAY map of cgroup file descriptors"),
    (55, "reads a hardware perf counter"),
    (84, "needs kernel sockets"),
    (85, "needs kernel sockets"),
    (86, "needs kernel sockets"),
    (99, "needs kernel sockets"),
    (100, "SYN cookies use the kernel's random per-boot secret"),
    (109, "signals the calling task (a host side effect)"),
    (110, "SYN cookies use the kernel's random per-boot secret"),
    (112, "reads user memory of the calling task"),
    (113, "reads kernel memory"),
    (114, "reads user memory of the calling task"),
    (115, "reads kernel memory"),
    (117, "signals the calling thread (a host side effect)"),
    (136, "needs kernel sockets"),
    (137, "needs kernel sockets"),
    (138, "needs kernel sockets"),
    (139, "needs kernel sockets"),
    (140, "needs kernel sockets"),
    (141, "needs a kernel task_struct"),
    (149, "formats kernel BTF types"),
    (
        153,
        "needs per-CPU kernel symbols (__ksym from vmlinux BTF)",
    ),
    (
        154,
        "needs per-CPU kernel symbols (__ksym from vmlinux BTF)",
    ),
    (156, "needs a kernel task_struct"),
    (157, "needs a kernel task_struct"),
    (158, "returns the kernel's task_struct pointer"),
    (175, "needs a kernel task_struct"),
    (176, "reads the CPU's last branch records"),
    (178, "needs kernel sockets"),
    (180, "needs a kernel task_struct"),
    (
        194,
        "kptrs point to kernel-allocated objects (bpf_obj_new and other kfuncs)",
    ),
    (196, "needs kernel sockets"),
    (204, "SYN cookies use the kernel's random per-boot secret"),
    (205, "SYN cookies use the kernel's random per-boot secret"),
    (206, "SYN cookies use the kernel's random per-boot secret"),
    (207, "SYN cookies use the kernel's random per-boot secret"),
    (210, "needs a kernel cgroup"),
    (211, "needs a kernel cgroup"),
];

/// Why helper `id` is not emulated, if it is one of [`NOT_EMULATED`].
pub fn reason(id: i32) -> Option<&'static str> {
    NOT_EMULATED.iter().find(|(i, _)| *i == id).map(|(_, r)| *r)
}
