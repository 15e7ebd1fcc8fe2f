//! Differential test: the bpfkit interpreter against the running kernel
//! (`BPF_PROG_TEST_RUN`) on random XDP programs the verifier accepts, comparing r0, the
//! packet, every map (including the result map holding every register and the stack).
//!
//! `BPFKIT_DIFF_CASES=N` sets the number of programs (default 300),
//! `BPFKIT_DIFF_SEED=S` the seed.

use bpfkit_loader::{kernel_or_skip, pin_current_thread, KernelEngine};
use bpfkit_testgen::harness::{self, case_object, compare_xdp, describe_xdp, run_xdp};
use bpfkit_testgen::{xdp_case, Features};
use bpfkit_vm::{Config, Interpreter};
use proptest::test_runner::TestCaseError;
use std::cell::Cell;

/// The generator's features. `BPFKIT_DIFF_NO=a,b` turns families off while hunting
/// several disagreements (`odd_flags`, `v4`, `atomics`, `loops`, `packet`, `maps`,
/// `ctx`, `helpers`, `calls`, `tail_calls`, `percpu`, `frags`).
fn features() -> Features {
    let mut f = Features::xdp();
    for w in std::env::var("BPFKIT_DIFF_NO")
        .unwrap_or_default()
        .split(',')
    {
        match w.trim() {
            "odd_flags" => f.odd_update_flags = false,
            "v4" => f.v4 = false,
            "atomics" => f.atomics = false,
            "loops" => f.loops = false,
            "packet" => f.packet = false,
            "maps" => f.maps = false,
            "ctx" => f.ctx = false,
            "helpers" => f.xdp_helpers = false,
            "calls" => f.calls = false,
            "tail_calls" => f.tail_calls = false,
            "percpu" => f.percpu = false,
            "frags" => f.frags = false,
            "bpf_loop" => f.bpf_loop = false,
            "" => {}
            other => panic!("BPFKIT_DIFF_NO: unknown family {other:?}"),
        }
    }
    bpfkit_testgen::harness::for_running_kernel("diff_kernel", f)
}

/// Found by this generator (and since fixed in the interpreter):
/// `bpf_map_update_elem(&map, &key, &value, BPF_F_LOCK)` on a map whose value has no
/// `bpf_spin_lock` is `-EINVAL` in the kernel (`array_map_update_elem`,
/// `htab_map_update_elem`); the interpreter used to accept it and return 0.
#[test]
fn bpf_f_lock_on_a_map_without_spin_lock() {
    if !kernel_or_skip("bpf_f_lock_on_a_map_without_spin_lock") {
        return;
    }
    use bpfkit_testgen::ir::{Item, Operand, Program, Target, MAP_ARR, MAP_HSH};
    for map in [MAP_ARR, MAP_HSH] {
        let p = Program {
            target: Target::Xdp,
            subprogs: vec![],
            callbacks: vec![],
            init_regs: [0; 9],
            init_stack: [0; 8],
            items: vec![Item::MapUpdate {
                map,
                key: Operand::Imm(0),
                value: [Operand::Imm(1), Operand::Imm(2)],
                flags: 4,
                reinit: [0; 5],
            }],
        };
        let case = bpfkit_testgen::XdpCase {
            programs: vec![p],
            frags: false,
            packet: vec![0; 14],
            map_init: vec![],
        };
        let obj = case_object(&case);
        let k = run_xdp(&mut KernelEngine::new(&obj).unwrap(), &case).unwrap();
        assert_eq!(k.retval as i32, -22, "kernel: -EINVAL");
        let i = run_xdp(
            &mut Interpreter::new(
                &obj,
                Config {
                    ncpus: 2,
                    ..Config::default()
                },
            )
            .unwrap(),
            &case,
        )
        .unwrap();
        compare_xdp("interp", &i, "kernel", &k).unwrap_or_else(|d| panic!("map {map}:\n{d}"));
    }
}

#[test]
fn interpreter_agrees_with_kernel() {
    if !kernel_or_skip("interpreter_agrees_with_kernel") {
        return;
    }
    // Runs happen on CPU 0 in both engines (per-CPU maps, bpf_get_smp_processor_id).
    pin_current_thread(0).expect("pin to CPU 0");
    let ncpus = bpfkit_loader::map::possible_cpus().expect("possible CPUs");
    let cases = harness::case_count(300);
    let compared = Cell::new(0u64);
    let insns_total = Cell::new(0u64);
    let mut runner = harness::runner(cases);
    let result = runner.run(&xdp_case(features(), ncpus), |case| {
        let obj = case_object(&case);
        let n = obj
            .programs
            .iter()
            .map(|p| p.insns.len() as u64)
            .sum::<u64>();
        let mut kernel = KernelEngine::new(&obj).map_err(|e| {
            TestCaseError::fail(format!(
                "generator bug: the kernel refused a generated program: {e}\nfull log:\n{}",
                e.verifier_log().unwrap_or("")
            ))
        })?;
        let mut interp = Interpreter::new(
            &obj,
            Config {
                ncpus: ncpus as u32,
                ..Config::default()
            },
        )
        .map_err(|e| TestCaseError::fail(format!("interpreter setup: {e}")))?;
        let k = run_xdp(&mut kernel, &case).map_err(TestCaseError::fail)?;
        let i = run_xdp(&mut interp, &case).map_err(TestCaseError::fail)?;
        compare_xdp("interp", &i, "kernel", &k)
            .map_err(|d| TestCaseError::fail(format!("interpreter and kernel disagree:\n{d}")))?;
        compared.set(compared.get() + 1);
        insns_total.set(insns_total.get() + n);
        Ok(())
    });
    eprintln!(
        "interpreter vs kernel: {} programs compared ({} instructions in all), {} requested",
        compared.get(),
        insns_total.get(),
        cases
    );
    if let Err(e) = result {
        let detail = match &e {
            proptest::test_runner::TestError::Fail(_, case) => describe_xdp(case),
            _ => String::new(),
        };
        panic!("{e}\nminimal case:\n{detail}");
    }
}

/// `bpf_map_update_elem` from a program with every flag combination on every generated
/// map kind, keys in and out of range: the error the kernel picks depends on the order
/// of its checks (`array_map_update_elem`: unknown flags → -EINVAL, index ≥ max_entries
/// → -E2BIG, `BPF_NOEXIST` → -EEXIST, `BPF_F_LOCK` without a spin lock → -EINVAL;
/// `htab_map_update_elem` checks `BPF_F_LOCK` first).
///
/// Found by the generator (seed 401): the interpreter checks `BPF_F_LOCK` before the
/// index of an array (PERCPU_ARRAY key 3520, flags `BPF_F_LOCK`: kernel -E2BIG,
/// interpreter -EINVAL). Fixed in crates/vm (`array_map_update_elem`'s order).
#[test]
fn map_update_flag_checks_follow_the_kernels_order() {
    if !kernel_or_skip("map_update_flag_checks_follow_the_kernels_order") {
        return;
    }
    use bpfkit_testgen::ir::{Item, Operand, Program, Target, MAP_ARR, MAP_HSH, MAP_PCP};
    pin_current_thread(0).expect("pin to CPU 0");
    let ncpus = bpfkit_loader::map::possible_cpus().unwrap() as u32;
    let mut mismatches = Vec::new();
    let mut checked = 0;
    for map in [MAP_ARR, MAP_HSH, MAP_PCP] {
        for key in [0, 3, 4, 3520] {
            for flags in 0..=8 {
                let p = Program {
                    target: Target::Xdp,
                    subprogs: vec![],
                    callbacks: vec![],
                    init_regs: [0; 9],
                    init_stack: [0; 8],
                    items: vec![Item::MapUpdate {
                        map,
                        key: Operand::Imm(key),
                        value: [Operand::Imm(1), Operand::Imm(2)],
                        flags,
                        reinit: [0; 5],
                    }],
                };
                let case = bpfkit_testgen::XdpCase {
                    programs: vec![p],
                    frags: false,
                    packet: vec![0; 14],
                    map_init: vec![],
                };
                let obj = case_object(&case);
                let k = run_xdp(&mut KernelEngine::new(&obj).unwrap(), &case).unwrap();
                let mut interp = Interpreter::new(
                    &obj,
                    Config {
                        ncpus,
                        ..Config::default()
                    },
                )
                .unwrap();
                let i = run_xdp(&mut interp, &case).unwrap();
                checked += 1;
                if let Err(d) = compare_xdp("interp", &i, "kernel", &k) {
                    mismatches.push(format!(
                        "map {map} key {key} flags {flags}: kernel {} interp {}\n{d}",
                        k.retval as i32, i.retval as i32
                    ));
                }
            }
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} of {checked} differ:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
}
