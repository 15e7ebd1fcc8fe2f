//! `xdp_helper_available` on the running kernel: a helper whose one-call probe the
//! verifier rejects for its (zero) arguments with EACCES is still available; only the
//! kernel's refusal of the helper itself, or a missing privilege, makes it unavailable.

#[test]
fn helpers_rejected_for_their_arguments_are_available() {
    if let Err(why) = bpfkit_loader::probe::kernel_available() {
        eprintln!("SKIPPED: helpers_rejected_for_their_arguments_are_available: {why}");
        return;
    }
    // r1 = 0 is not a map pointer: the verifier answers EACCES for this probe.
    for h in [
        "bpf_map_lookup_elem",
        "bpf_redirect_map",
        "bpf_xdp_adjust_head",
    ] {
        match bpfkit_loader::xdp_helper_available(h) {
            Ok(()) => {}
            Err(why) if why.contains("this kernel refuses") => {
                eprintln!("SKIPPED: {h}: {why}")
            }
            Err(why) => panic!("{h} reported unavailable as root: {why}"),
        }
    }
    assert!(bpfkit_loader::xdp_helper_available("bpf_no_such_helper").is_err());
}
