//! bpfkit's numbers for the kfuncs it knows. A kfunc call (`BPF_PSEUDO_KFUNC_CALL`) in a
//! relocatable object has no id: the kernel's vmlinux BTF gives one, which the loader
//! puts in at load time. In a program linked by bpfkit, the call's `imm` is the number
//! below (index + 1), or 0 for a kfunc bpfkit does not know, so that the verifier and
//! the VM can tell which kfunc a call is without the object.

/// The kfuncs bpfkit models (verifier) and emulates (VM), by bpfkit number - 1.
pub const NAMES: &[&str] = &[
    "bpf_dynptr_from_xdp",
    "bpf_dynptr_slice",
    "bpf_dynptr_slice_rdwr",
    "bpf_dynptr_adjust",
    "bpf_dynptr_is_null",
    "bpf_dynptr_is_rdonly",
    "bpf_dynptr_size",
    "bpf_dynptr_clone",
    "bpf_xdp_pull_data",
];

/// bpfkit's number for kfunc `name` (0: not known).
pub fn number(name: &str) -> i32 {
    NAMES
        .iter()
        .position(|&n| n == name)
        .map_or(0, |i| i as i32 + 1)
}

/// The kfunc with bpfkit number `n`.
pub fn name(n: i32) -> Option<&'static str> {
    usize::try_from(n)
        .ok()
        .and_then(|n| n.checked_sub(1))
        .and_then(|i| NAMES.get(i).copied())
}

#[cfg(test)]
mod tests {
    #[test]
    fn numbers_round_trip() {
        for n in super::NAMES {
            assert_eq!(super::name(super::number(n)), Some(*n));
        }
        assert_eq!(super::number("bpf_rcu_read_lock"), 0);
        assert_eq!(super::name(0), None);
        assert_eq!(super::name(-1), None);
    }
}
