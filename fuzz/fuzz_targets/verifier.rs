//! Fuzzes the verifier on arbitrary instruction bytes (an XDP program of the testgen
//! object, with its ARRAY, HASH, PROG_ARRAY and PERCPU_ARRAY maps): every input gets a
//! verdict, never a panic. Time: libFuzzer's -timeout (fuzz/run sets 10 s) turns a run
//! longer than that into a reported hang; the verifier's own budget is set to 200,000
//! processed instructions (see below).
#![no_main]

use bpfkit_isa::RawInsn;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let insns: Vec<RawInsn> = data
        .chunks_exact(8)
        .take(4096)
        .map(|c| RawInsn::from_bytes(c.try_into().unwrap()))
        .collect();
    let obj = bpfkit_testgen::harness::linked_object(vec![insns]);
    // A budget of 200,000 processed instructions: a bounded loop that exhausts the
    // kernel's 1,000,000 takes ~4.5 s under AddressSanitizer (the first finding,
    // fuzz/regressions/verifier/), too close to the 10 s hang limit on a shared host.
    // Every path the full budget reaches is also reached under this one, only shorter.
    let opts = bpfkit_verifier::Options {
        gpl_compatible: data.first().is_some_and(|b| b & 1 == 1),
        insn_limit: 200_000,
        ..Default::default()
    };
    let rep = bpfkit_verifier::verify(&obj.programs[0], &obj.maps, &opts);
    let _ = format!("{:?}", rep.verdict);
});
