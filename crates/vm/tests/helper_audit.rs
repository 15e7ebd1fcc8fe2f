//! The helper audit, kept true: every helper the 6.18 kernel lets an XDP program call
//! (`corpus/expected/xdp_helpers.json`, recorded by `corpus/tools/helper_probe.py`) is
//! either implemented (`helpers::SUPPORTED`) or listed with a reason in
//! `audit::NOT_EMULATED`, and calling a listed one fails the run naming the helper.

use bpfkit_vm::{audit, helpers, Engine, Interpreter, Program, XdpInput};
use std::collections::BTreeSet;
use std::path::PathBuf;

fn kernel_lists() -> (BTreeSet<i32>, BTreeSet<i32>) {
    let p =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../corpus/expected/xdp_helpers.json");
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let v: serde_json::Value = serde_json::from_str(&text).expect("json");
    let ids = |k: &str| -> BTreeSet<i32> {
        v[k].as_array()
            .expect(k)
            .iter()
            .map(|x| x.as_i64().unwrap() as i32)
            .collect()
    };
    (ids("available"), ids("sleepable_only"))
}

#[test]
fn every_xdp_helper_is_implemented_or_explained() {
    let (available, sleepable) = kernel_lists();
    let supported: BTreeSet<i32> = helpers::SUPPORTED.iter().map(|(i, _)| *i).collect();
    let not: BTreeSet<i32> = audit::NOT_EMULATED.iter().map(|(i, _)| *i).collect();
    assert!(
        supported.is_disjoint(&not),
        "listed as both: {:?}",
        supported.intersection(&not).collect::<Vec<_>>()
    );
    let missing: Vec<String> = available
        .iter()
        .filter(|i| !supported.contains(i) && !not.contains(i))
        .map(|i| format!("{i} (bpf_{})", helpers::name(*i).unwrap_or("?")))
        .collect();
    assert!(
        missing.is_empty(),
        "available to XDP on the kernel but neither implemented nor explained: {missing:?}"
    );
    let stale: Vec<i32> = supported
        .union(&not)
        .copied()
        .filter(|i| !available.contains(i))
        .collect();
    assert!(
        stale.is_empty(),
        "listed but not available to XDP programs on the kernel: {stale:?}"
    );
    assert!(sleepable.iter().all(|i| !supported.contains(i)));
    println!(
        "{} helpers available to XDP: {} emulated, {} not (with reasons); {} sleepable-only",
        available.len(),
        supported.len(),
        not.len(),
        sleepable.len()
    );
}

#[test]
fn calling_a_helper_that_is_not_emulated_names_it() {
    for (id, _) in audit::NOT_EMULATED {
        let insns = bpfkit_asm::assemble(&format!("call {id}\nexit\n")).expect("asm");
        let prog = Program {
            name: "p".into(),
            insns,
            origins: Vec::new(),
            prog_type: 6,
            expected_attach_type: None,
        };
        let mut vm = Interpreter::with_programs(vec![prog], &[], Default::default()).expect("vm");
        let e = vm
            .run_xdp(
                0,
                &XdpInput {
                    packet: &[0; 64],
                    ..Default::default()
                },
            )
            .unwrap_err()
            .to_string();
        let name = helpers::name(*id).expect("name");
        assert!(
            e.contains(&format!("bpf_{name}")) && e.contains("not supported"),
            "{id}: {e}"
        );
    }
}
