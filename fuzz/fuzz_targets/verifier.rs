//! Fuzzes the verifier on arbitrary instruction bytes (an XDP program of the testgen
//! object, with its ARRAY, HASH, PROG_ARRAY and PERCPU_ARRAY maps): every input gets a
//! verdict, never a panic. Time: libFuzzer's -timeout (fuzz/run sets 10 s) turns a run
//! longer than that into a reported hang; the verifier's own budget is the kernel's
//! 1,000,000 processed instructions.
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
    let opts = bpfkit_verifier::Options {
        gpl_compatible: data.first().is_some_and(|b| b & 1 == 1),
        ..Default::default()
    };
    let rep = bpfkit_verifier::verify(&obj.programs[0], &obj.maps, &opts);
    let _ = format!("{:?}", rep.verdict);
});
