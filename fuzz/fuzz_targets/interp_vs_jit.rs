//! Differential fuzzing of the engines: an XDP program from arbitrary instruction bytes
//! that bpfkit's verifier accepts runs on the interpreter and on the checked JIT with the
//! same packet; both must give the same action, output packet and map contents (or the
//! same fault). Inputs the verifier does not accept are skipped.
#![no_main]

use bpfkit_isa::RawInsn;
use bpfkit_vm::{Config, Engine, Interpreter, XdpInput};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // [packet length byte][packet bytes][instructions]
    let Some((&plen, rest)) = data.split_first() else {
        return;
    };
    let plen = (plen as usize).max(14).min(rest.len());
    if rest.len() < plen {
        return;
    }
    let (packet, code) = rest.split_at(plen);
    let insns: Vec<RawInsn> = code
        .chunks_exact(8)
        .take(512)
        .map(|c| RawInsn::from_bytes(c.try_into().unwrap()))
        .collect();
    if insns.is_empty() {
        return;
    }
    let obj = bpfkit_testgen::harness::linked_object(vec![insns]);
    // Verified as for an unprivileged loader: no pointer may leak into r0 or a map, so
    // every result is defined and must be equal. (Privileged, the kernel lets a program
    // return a pointer, e.g. the context through the stack, whose value differs between
    // engines by design: the first finding, fuzz/regressions/interp_vs_jit/.)
    // A budget of 200,000 processed instructions, as in the verifier target: programs
    // that exhaust the kernel's 1,000,000 are rejected either way, only later (the
    // second finding, a timeout, fuzz/regressions/interp_vs_jit/).
    let opts = bpfkit_verifier::Options {
        gpl_compatible: true,
        caps: bpfkit_verifier::Caps::BPF_NET_ADMIN,
        insn_limit: 200_000,
        ..Default::default()
    };
    let rep = bpfkit_verifier::verify(&obj.programs[0], &obj.maps, &opts);
    if !matches!(rep.verdict, bpfkit_verifier::Verdict::Accepted) {
        return;
    }
    let config = || Config {
        insn_limit: 1 << 20,
        ..Config::default()
    };
    let mut vm = Interpreter::new(&obj, config()).expect("interpreter");
    let mut jit = bpfkit_jit::Jit::new(&obj, config()).expect("checked JIT");
    let input = XdpInput {
        packet,
        ingress_ifindex: 1,
        rx_queue_index: 0,
        time_ns: 1_000,
        cpu: 0,
    };
    let a = vm.run_xdp(0, &input).map_err(|e| e.to_string());
    let b = jit.run_xdp(0, &input).map_err(|e| e.to_string());
    match (&a, &b) {
        (Ok(x), Ok(y)) => {
            assert_eq!(x.retval, y.retval, "retval");
            assert_eq!(x.packet, y.packet, "output packet");
            assert_eq!(x.redirect, y.redirect, "redirect");
        }
        (Err(x), Err(y)) => assert_eq!(x, y, "faults differ"),
        _ => panic!("interpreter {a:?} vs checked JIT {b:?}"),
    }
    for m in 0..obj.maps.len() {
        assert_eq!(
            vm.map_entries(m).map_err(|e| e.to_string()),
            jit.map_entries(m).map_err(|e| e.to_string()),
            "map {m}"
        );
    }
});
