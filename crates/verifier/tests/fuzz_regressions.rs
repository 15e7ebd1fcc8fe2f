//! Inputs the fuzz targets found (fuzz/regressions/), kept as tests of what the verifier
//! answers for them.

use bpfkit_isa::RawInsn;
use bpfkit_verifier::{verify, Options, Verdict};

fn program(path: &str, skip: usize) -> Vec<RawInsn> {
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/regressions");
    let bytes = std::fs::read(root.join(path)).unwrap();
    bytes[skip..]
        .chunks_exact(8)
        .map(|c| RawInsn::from_bytes(c.try_into().unwrap()))
        .collect()
}

fn message(v: &Verdict) -> String {
    match v {
        Verdict::Rejected(r) => r.kernel_message.clone(),
        other => format!("{other:?}"),
    }
}

/// `verifier` target, a 10 s timeout under AddressSanitizer: a loop adding 2^24 to r2
/// until it passes r1 = 0xffffffff8d000043 never converges, so the verifier walks it
/// until the kernel's budget of 1,000,000 processed instructions and rejects it as the
/// kernel does (the fuzz target now gives it a smaller budget, see fuzz/README.md). Its
/// last instruction is an `exit` with a non-zero imm, which the CFG pass must not reach
/// first: the walk starts at instruction 0.
#[test]
fn verifier_timeout_is_the_complexity_limit() {
    let insns = program(
        "verifier/timeout-4587359e35f309baf1f7bfe46c390ffd961e8898",
        0,
    );
    let obj = bpfkit_testgen::harness::linked_object(vec![insns]);
    let rep = verify(&obj.programs[0], &obj.maps, &Options::default());
    let m = message(&rep.verdict);
    assert!(
        m.starts_with("BPF program is too large. Processed 1000001 insn"),
        "{m}"
    );
}

/// `interp_vs_jit` target: `*(u64 *)(r10 - 8) = r1; r0 = *(u64 *)(r10 - 8); exit`
/// returns the context pointer. A privileged loader may (the kernel allows pointer leaks
/// with CAP_PERFMON), and the value is an address that differs between the interpreter
/// and the JIT by design; for an unprivileged one it is "R0 leaks addr as return value".
/// The fuzz target now verifies as unprivileged, so results it compares are defined.
#[test]
fn pointer_return_is_accepted_only_with_pointer_leaks_allowed() {
    // [packet length][packet][program]
    let data = std::fs::read(std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(
        "../../fuzz/regressions/interp_vs_jit/crash-074fc128a1e8dc6dcbefdd2f7b3ec0ec69874e08",
    ))
    .unwrap();
    let plen = (data[0] as usize).max(14).min(data.len() - 1);
    let insns = program(
        "interp_vs_jit/crash-074fc128a1e8dc6dcbefdd2f7b3ec0ec69874e08",
        1 + plen,
    );
    assert_eq!(insns.len(), 3);
    let obj = bpfkit_testgen::harness::linked_object(vec![insns]);
    let privileged = verify(&obj.programs[0], &obj.maps, &Options::default());
    assert!(
        privileged.verdict.is_accepted(),
        "{}",
        message(&privileged.verdict)
    );
    let unpriv = verify(
        &obj.programs[0],
        &obj.maps,
        &Options {
            caps: bpfkit_verifier::Caps::BPF_NET_ADMIN,
            ..Options::default()
        },
    );
    let m = message(&unpriv.verdict);
    assert!(m.contains("R0 leaks addr as return value"), "{m}");
}

/// `interp_vs_jit` target, a timeout: `w3 += 0x82` until `w3 == 4`, starting at 1,
/// never ends (an even step cannot reach an odd difference). The verifier walks it until
/// the 1,000,000-instruction budget and rejects it; with the JIT's and interpreter's set-up
/// under AddressSanitizer that exceeded the 10 s limit (the target now gives the verifier
/// 200,000 instructions).
#[test]
fn endless_32_bit_loop_is_the_complexity_limit() {
    let data = std::fs::read(std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(
        "../../fuzz/regressions/interp_vs_jit/timeout-eef976e05b8e068022807ce58c5d3087b8c41c75",
    ))
    .unwrap();
    let plen = (data[0] as usize).max(14).min(data.len() - 1);
    let insns = program(
        "interp_vs_jit/timeout-eef976e05b8e068022807ce58c5d3087b8c41c75",
        1 + plen,
    );
    let obj = bpfkit_testgen::harness::linked_object(vec![insns]);
    let rep = verify(&obj.programs[0], &obj.maps, &Options::default());
    let m = message(&rep.verdict);
    assert!(
        m.starts_with("BPF program is too large. Processed 1000001 insn"),
        "{m}"
    );
}
