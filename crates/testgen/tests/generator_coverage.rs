//! The generator reaches what the differential tests are meant to compare: packet
//! writes that land, map values that change, every instruction family. A generator that
//! drifted into dead code (bounds checks that always fail, lookups that always miss)
//! would make the differential tests pass vacuously; this test fails instead.

use bpfkit_isa::opcode::*;
use bpfkit_testgen::harness::{self, case_object, run_xdp};
use bpfkit_testgen::{xdp_case, Features};
use bpfkit_vm::{Config, Interpreter};
use proptest::strategy::{Strategy, ValueTree};
use std::collections::BTreeSet;

#[test]
fn generated_cases_exercise_state_changes_and_all_families() {
    let mut runner = harness::runner(1);
    let strat = xdp_case(Features::xdp(), 2);
    let n = 300;
    let (mut pkt_changed, mut map_changed, mut r0_values) = (0, 0, BTreeSet::new());
    let mut opcodes = BTreeSet::new();
    let (mut local_calls, mut helpers, mut len_changed) = (0, BTreeSet::new(), 0);
    let mut fragmented = 0;
    for _ in 0..n {
        let case = strat.new_tree(&mut runner).unwrap().current();
        let insns: Vec<_> = case.programs.iter().flat_map(|p| p.render()).collect();
        for i in &insns {
            opcodes.insert(i.code);
            if i.code == BPF_JMP | BPF_CALL {
                if i.src == BPF_PSEUDO_CALL {
                    local_calls += 1;
                } else {
                    helpers.insert(i.imm);
                }
            }
        }
        let mut interp = Interpreter::new(
            &case_object(&case),
            Config {
                ncpus: 2,
                ..Config::default()
            },
        )
        .unwrap();
        let out = run_xdp(&mut interp, &case).unwrap();
        pkt_changed += (out.packet != case.packet) as u32;
        len_changed += (out.packet.len() != case.packet.len()) as u32;
        fragmented +=
            (case.frags && case.packet.len() > bpfkit_testgen::strategy::MAX_LINEAR) as u32;
        let mut init: Vec<Vec<(Vec<u8>, Vec<u8>)>> = vec![Vec::new(), Vec::new()];
        // ARRAY entries exist from the start (zeroed).
        init[0] = (0u32..4)
            .map(|k| (k.to_ne_bytes().to_vec(), vec![0u8; 16]))
            .collect();
        for (m, k, v) in case.map_init.iter().filter(|(m, _, _)| *m < 2) {
            let e = &mut init[*m];
            e.retain(|(kk, _)| kk != k);
            e.push((k.clone(), v.clone()));
            e.sort();
        }
        map_changed += (out.maps[0] != init[0] || out.maps[1] != init[1]) as u32;
        r0_values.insert(out.retval);
    }
    eprintln!(
        "{n} cases: packet changed in {pkt_changed}, arr/hsh changed in {map_changed}, {} distinct r0, {} distinct opcodes",
        r0_values.len(),
        opcodes.len()
    );
    eprintln!("{local_calls} bpf-to-bpf calls, helpers {helpers:?}, packet length changed in {len_changed}");
    eprintln!("{fragmented} cases with a fragmented packet");
    assert!(
        fragmented * 20 >= n,
        "fragmented packets too rare: {fragmented}/{n}"
    );
    assert!(
        local_calls >= n / 4,
        "bpf-to-bpf calls too rare: {local_calls}"
    );
    for h in [1, 2, 3, 8, 12, 44, 54, 65, 188, 189, 190] {
        assert!(helpers.contains(&h), "helper {h} never called");
    }
    assert!(
        len_changed * 10 >= n,
        "packet length changes too rare: {len_changed}/{n}"
    );
    assert!(
        pkt_changed * 5 >= n,
        "packet writes too rare: {pkt_changed}/{n}"
    );
    assert!(
        map_changed * 5 >= n,
        "map changes too rare: {map_changed}/{n}"
    );
    assert!(
        r0_values.len() * 4 >= n as usize,
        "r0 too uniform: {} distinct",
        r0_values.len()
    );
    // Every family: ALU32/64 ops incl. signed forms, byte swaps, JMP32, memsx, atomics.
    for code in [
        BPF_ALU64 | BPF_DIV | BPF_X,
        BPF_ALU | BPF_MOD | BPF_K,
        BPF_ALU64 | BPF_ARSH | BPF_X,
        BPF_ALU | BPF_NEG,
        BPF_ALU | BPF_END | BPF_TO_BE,
        BPF_ALU64 | BPF_END,
        BPF_JMP32 | BPF_JSLT | BPF_X,
        BPF_JMP | BPF_JSET | BPF_K,
        BPF_LDX | BPF_MEMSX | BPF_B,
        BPF_STX | BPF_ATOMIC | BPF_DW,
        BPF_STX | BPF_ATOMIC | BPF_W,
        BPF_ST | BPF_MEM | BPF_H,
        LDDW,
    ] {
        assert!(
            opcodes.contains(&code),
            "opcode {code:#04x} never generated"
        );
    }
}
