//! JIT vs interpreter, differentially:
//!
//! - random XDP programs from crates/testgen (verifier-accepted by construction, with
//!   maps, helpers, local calls, tail calls, atomics, packet access): r0, output packet and
//!   every compared map must agree between the interpreter, the checked JIT and the fast
//!   JIT;
//! - random raw-memory programs (testgen `raw_case`): r0 and memory;
//! - every corpus program on its sample packets (`corpus/expected/*.run.json`), packet by
//!   packet on the same engines, then every map's contents.
//!
//! Faults must agree too (same program, instruction index and fault kind; host addresses
//! in messages are masked since each engine has its own buffers).
//!
//! `BPFKIT_DIFF_CASES` sets the number of random cases (default 400 XDP + 400 raw).

use bpfkit_jit::Jit;
use bpfkit_object::Object;
use bpfkit_testgen::harness::{
    self, case_object, compare_xdp, describe_raw, describe_xdp, run_xdp,
};
use bpfkit_testgen::{raw_case, xdp_case, Features};
use bpfkit_vm::{Config, Engine, FaultKind, Interpreter, VmError, XdpInput, XdpOutput};
use proptest::test_runner::TestCaseError;
use serde_json::Value;
use std::cell::Cell;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// An error with host addresses (which differ between engines) masked.
fn normalized(e: &VmError) -> String {
    let s = match e {
        VmError::Fault(f) => match &f.kind {
            // Outside every region, the region named is the nearest one, which depends on
            // where each engine's buffers were allocated.
            FaultKind::Memory(m) => format!(
                "fault at {} pc {}: {}-byte {} inside {} {:?}",
                f.prog,
                f.pc,
                m.size,
                if m.write { "write" } else { "read" },
                m.inside,
                m.region.filter(|_| m.inside).map(|r| r.kind)
            ),
            k => format!("fault at {} pc {}: {k}", f.prog, f.pc),
        },
        other => other.to_string(),
    };
    let mut out = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '0' && chars.peek() == Some(&'x') {
            chars.next();
            while chars.peek().is_some_and(|c| c.is_ascii_hexdigit()) {
                chars.next();
            }
            out.push_str("0x?");
        } else {
            out.push(c);
        }
    }
    out
}

#[test]
fn generated_xdp_programs_agree() {
    let cases = harness::case_count(400);
    let compared = Cell::new(0u64);
    let mut runner = harness::runner(cases);
    let config = Config {
        ncpus: 2,
        ..Config::default()
    };
    let result = runner.run(&xdp_case(Features::xdp(), 2), |case| {
        let obj = case_object(&case);
        let mut interp = Interpreter::new(&obj, config.clone())
            .map_err(|e| TestCaseError::fail(format!("setup: {e}")))?;
        let mut jit = Jit::new(&obj, config.clone())
            .map_err(|e| TestCaseError::fail(format!("jit setup: {e}")))?;
        // SAFETY: testgen only generates programs the kernel's verifier accepts (its
        // kernel differential test loads them), so fast mode's unchecked accesses are
        // the ones the verifier proved in bounds.
        let mut fast = unsafe { Jit::new_unchecked(&obj, config.clone()) }
            .map_err(|e| TestCaseError::fail(format!("jit setup: {e}")))?;
        let a = run_xdp(&mut interp, &case).map_err(TestCaseError::fail)?;
        let b = run_xdp(&mut jit, &case).map_err(TestCaseError::fail)?;
        let c = run_xdp(&mut fast, &case).map_err(TestCaseError::fail)?;
        compare_xdp("interp", &a, "jit", &b).map_err(TestCaseError::fail)?;
        compare_xdp("interp", &a, "jit-fast", &c).map_err(TestCaseError::fail)?;
        compared.set(compared.get() + 1);
        Ok(())
    });
    if let Err(e) = result {
        let detail = match &e {
            proptest::test_runner::TestError::Fail(_, case) => describe_xdp(case),
            _ => String::new(),
        };
        panic!("{e}\nminimal case:\n{detail}");
    }
    eprintln!(
        "JIT vs interpreter: {} generated XDP programs compared (checked and fast)",
        compared.get()
    );
    assert_eq!(compared.get(), cases as u64);
}

#[test]
fn generated_raw_programs_agree() {
    let cases = harness::case_count(400);
    let compared = Cell::new(0u64);
    let mut runner = harness::runner(cases);
    let result = runner.run(&raw_case(Features::raw_full()), |case| {
        let insns = case.program.render();
        let a = Interpreter::from_insns(insns.clone()).run_raw(0, &case.mem);
        let b = Jit::from_insns(insns.clone()).and_then(|mut j| j.run_raw(0, &case.mem));
        match (&a, &b) {
            (Ok(x), Ok(y)) if x.r0 == y.r0 && x.mem == y.mem => {}
            (Err(x), Err(y)) if normalized(x) == normalized(y) => {}
            _ => {
                return Err(TestCaseError::fail(format!(
                    "interp {:?}\njit    {:?}",
                    a.as_ref().map(|o| (o.r0, &o.mem)).map_err(normalized),
                    b.as_ref().map(|o| (o.r0, &o.mem)).map_err(normalized)
                )))
            }
        }
        if let Ok(x) = &a {
            // SAFETY: the program ran to completion on the checked interpreter; testgen
            // programs are verifier-accepted for raw memory of MEM_LEN bytes.
            let c = unsafe { Jit::from_insns_unchecked(insns) }
                .and_then(|mut j| j.run_raw(0, &case.mem));
            let y = c.map_err(|e| TestCaseError::fail(format!("jit-fast: {e}")))?;
            if x.r0 != y.r0 || x.mem != y.mem {
                return Err(TestCaseError::fail(format!(
                    "interp r0 {:#x} jit-fast r0 {:#x}\n{}",
                    x.r0,
                    y.r0,
                    harness::diff_result("interp", &x.mem, "jit-fast", &y.mem)
                )));
            }
        }
        compared.set(compared.get() + 1);
        Ok(())
    });
    if let Err(e) = result {
        let detail = match &e {
            proptest::test_runner::TestError::Fail(_, case) => describe_raw(case),
            _ => String::new(),
        };
        panic!("{e}\nminimal case:\n{detail}");
    }
    eprintln!(
        "JIT vs interpreter: {} generated raw programs compared",
        compared.get()
    );
    assert_eq!(compared.get(), cases as u64);
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).expect("hex"))
        .collect()
}

fn same_output(a: &Result<XdpOutput, VmError>, b: &Result<XdpOutput, VmError>) -> bool {
    match (a, b) {
        (Ok(x), Ok(y)) => x == y,
        (Err(x), Err(y)) => normalized(x) == normalized(y),
        _ => false,
    }
}

/// Replays one run.json on the interpreter and both JIT modes; returns the differences
/// and the number of (packet runs, maps) compared.
fn replay(path: &Path) -> (Vec<String>, usize, usize) {
    let j: Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("read run.json")).expect("json");
    let obj_name = j["object"].as_str().expect("object");
    let prog_name = j["program"].as_str().expect("program");
    let bytes = std::fs::read(root().join("corpus/obj").join(format!("{obj_name}.o")))
        .expect("object file");
    let linked = Object::parse(&bytes)
        .and_then(|o| o.link())
        .unwrap_or_else(|e| panic!("{obj_name}: {e}"));
    let prog = linked
        .programs
        .iter()
        .position(|p| p.name == prog_name)
        .expect("program in object");
    let config = Config {
        ncpus: j["num_possible_cpus"].as_u64().unwrap_or(1) as u32,
        ..Config::default()
    };
    let mut interp =
        Interpreter::new(&linked, config.clone()).unwrap_or_else(|e| panic!("{obj_name}: {e}"));
    let mut jit = Jit::new(&linked, config.clone()).unwrap_or_else(|e| panic!("{obj_name}: {e}"));
    // SAFETY: every corpus program with a run.json was loaded by the kernel (the corpus
    // helper recorded these runs with BPF_PROG_TEST_RUN), so its verifier accepted it.
    let mut fast = unsafe { Jit::new_unchecked(&linked, config) }
        .unwrap_or_else(|e| panic!("{obj_name}: {e}"));
    let map_idx = |name: &str| {
        linked
            .maps
            .iter()
            .position(|m| m.name == name)
            .unwrap_or_else(|| panic!("{obj_name}: no map {name}"))
    };
    for s in j["map_setup"].as_array().into_iter().flatten() {
        let m = map_idx(s["map"].as_str().expect("map"));
        let (k, v) = (
            hex(s["key"].as_str().unwrap()),
            hex(s["value"].as_str().unwrap()),
        );
        interp.map_update(m, &k, &v, 0).expect("map_setup");
        jit.map_update(m, &k, &v, 0).expect("map_setup");
        fast.map_update(m, &k, &v, 0).expect("map_setup");
    }
    let cpu = j["cpu"].as_u64().unwrap_or(0) as u32;
    let (mut diffs, mut runs) = (Vec::new(), 0);
    for p in j["packets"].as_array().expect("packets") {
        let name = p["name"].as_str().unwrap();
        let data = std::fs::read(
            root()
                .join("corpus/packets")
                .join(p["file"].as_str().unwrap()),
        )
        .expect("packet");
        let input = XdpInput {
            packet: &data,
            ingress_ifindex: j["ingress_ifindex"].as_u64().unwrap_or(1) as u32,
            rx_queue_index: j["rx_queue_index"].as_u64().unwrap_or(0) as u32,
            time_ns: 1_000_000,
            cpu,
        };
        let a = interp.run_xdp(prog, &input);
        let b = jit.run_xdp(prog, &input);
        let c = fast.run_xdp(prog, &input);
        let tag = format!("{obj_name}.{prog_name} packet {name}");
        for (label, r) in [("jit", &b), ("jit-fast", &c)] {
            if !same_output(&a, r) {
                diffs.push(format!(
                    "{tag}: {label} differs\n  interp {a:?}\n  {label} {r:?}"
                ));
            }
        }
        runs += 1;
    }
    let mut maps = 0;
    for m in 0..linked.maps.len() {
        let a = interp.map_entries(m).map_err(|e| normalized(&e));
        for (label, e) in [("jit", &jit), ("jit-fast", &fast)] {
            let b = e.map_entries(m).map_err(|e| normalized(&e));
            if a != b {
                diffs.push(format!("{obj_name}.{prog_name}: map {} after the run: {label} differs\n  interp {a:?}\n  {label} {b:?}", linked.maps[m].name));
            }
        }
        maps += 1;
    }
    (diffs, runs, maps)
}

#[test]
fn corpus_programs_agree_on_their_sample_packets() {
    let dir = root().join("corpus/expected");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus expectations missing at {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".run.json"))
        .collect();
    files.sort();
    assert!(
        !files.is_empty(),
        "no run.json files under {}",
        dir.display()
    );
    let (mut all, mut runs, mut maps) = (Vec::new(), 0, 0);
    for f in &files {
        let (d, r, m) = replay(f);
        runs += r;
        maps += m;
        all.extend(d);
    }
    eprintln!(
        "JIT vs interpreter on the corpus: {} run files, {runs} packet runs x 3 engines, {maps} maps compared",
        files.len()
    );
    for d in &all {
        eprintln!("{d}");
    }
    assert!(
        all.is_empty(),
        "{} differences between the JIT and the interpreter",
        all.len()
    );
    assert!(runs > 0);
}
