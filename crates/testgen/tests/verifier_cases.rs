//! `mutate::verifier_cases`, the ready-made set for verifier tests, agrees with the
//! running kernel: accepted cases load, rejected ones fail with their message.

use bpfkit_loader::{kernel_or_skip, KernelEngine};
use bpfkit_testgen::mutate::{verifier_cases, Verdict};

#[test]
fn verifier_cases_have_the_kernels_verdict() {
    let cases = verifier_cases(5, 42);
    assert_eq!(cases.len(), 5 * 15);
    // Deterministic for a seed.
    let again = verifier_cases(5, 42);
    assert!(cases
        .iter()
        .zip(&again)
        .all(|(a, b)| a.object == b.object && a.verdict == b.verdict));
    if !kernel_or_skip("verifier_cases_have_the_kernels_verdict") {
        return;
    }
    for c in &cases {
        match (c.verdict, KernelEngine::new(&c.object)) {
            (Verdict::Accept, Ok(_)) => {}
            (Verdict::Reject(msg), Err(e)) => {
                let log = e.verifier_log().unwrap_or("");
                assert!(log.contains(msg), "{}: expected {msg:?} in:\n{log}", c.name);
            }
            (v, r) => panic!("{}: verdict {v:?}, kernel {:?}", c.name, r.err()),
        }
    }
}
