//! Differential test on real programs: every deterministic XDP program of the corpus
//! (`corpus/obj/*.o`), run on the interpreter and on the kernel with sample packets
//! (`corpus/packets/*.bin`) mutated at random (bytes changed, truncated, extended).
//! Compares the return value, the packet out and the contents of every map whose
//! contents both sides can list (arrays, hashes, their per-CPU and LRU forms, LPM tries).
//!
//! Skipped, and listed: objects the loader cannot load yet (they need BTF), programs
//! that read the clock or random numbers, programs for a devmap/cpumap attach point.
//! `BPFKIT_DIFF_CASES=N` sets the cases per program (default 20; fewer for objects the
//! verifier takes long to load, also listed). Every case loads the object afresh, so
//! map state never leaks from one case to the next.

use bpfkit_loader::{kernel_or_skip, pin_current_thread, KernelEngine};
use bpfkit_object::model::{map_type, prog_type, LinkedObject};
use bpfkit_testgen::harness;
use bpfkit_vm::engine::{Engine, XdpInput};
use bpfkit_vm::{Config, Interpreter};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use std::path::PathBuf;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Helpers whose results differ from run to run.
const NONDETERMINISTIC: [i32; 5] = [5, 7, 125, 160, 208];

fn comparable(t: u32) -> bool {
    matches!(
        t,
        map_type::HASH
            | map_type::ARRAY
            | map_type::PERCPU_HASH
            | map_type::PERCPU_ARRAY
            | map_type::LRU_HASH
            | map_type::LRU_PERCPU_HASH
            | map_type::LPM_TRIE
    )
}

/// A packet: a sample with mutations.
fn packet(samples: Vec<Vec<u8>>) -> BoxedStrategy<Vec<u8>> {
    let n = samples.len();
    (
        0..n,
        prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..6),
        0u8..8,
        any::<prop::sample::Index>(),
    )
        .prop_map(move |(i, muts, shape, cut)| {
            let mut p = samples[i].clone();
            for (at, v) in muts {
                let k = at.index(p.len());
                p[k] = v;
            }
            match shape {
                0 => p.truncate((14 + cut.index(p.len().saturating_sub(14).max(1))).min(p.len())),
                1 => p.extend(std::iter::repeat_n(0xab, cut.index(64))),
                _ => {}
            }
            p
        })
        .boxed()
}

/// A map's entries, sorted by key.
type Entries = Vec<(Vec<u8>, Vec<u8>)>;

struct Observed {
    retval: u32,
    packet: Vec<u8>,
    maps: Vec<(usize, Entries)>,
}

fn observe<E: Engine>(
    e: &mut E,
    obj: &LinkedObject,
    prog: usize,
    pkt: &[u8],
) -> Result<Observed, String> {
    let input = XdpInput {
        packet: pkt,
        ingress_ifindex: 1,
        ..Default::default()
    };
    let out = e
        .run_xdp(prog, &input)
        .map_err(|err| format!("{}: run: {err}", e.name()))?;
    let mut maps = Vec::new();
    for (i, m) in obj.maps.iter().enumerate() {
        if comparable(m.map_type) {
            maps.push((
                i,
                e.map_entries(i)
                    .map_err(|err| format!("{}: map {}: {err}", e.name(), m.name))?,
            ));
        }
    }
    Ok(Observed {
        retval: out.retval as u32,
        packet: out.packet,
        maps,
    })
}

#[test]
fn corpus_programs_agree_with_kernel_on_mutated_packets() {
    if !kernel_or_skip("corpus_programs_agree_with_kernel_on_mutated_packets") {
        return;
    }
    pin_current_thread(0).expect("pin to CPU 0");
    let ncpus = bpfkit_loader::map::possible_cpus().unwrap() as u32;
    let mut samples = Vec::new();
    let mut dir: Vec<_> = std::fs::read_dir(root().join("corpus/packets"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    dir.sort();
    for p in dir {
        if p.extension().is_some_and(|e| e == "bin") {
            let b = std::fs::read(&p).unwrap();
            if b.len() >= 14 {
                samples.push(b);
            }
        }
    }
    assert!(!samples.is_empty(), "no corpus/packets/*.bin");
    let mut objs: Vec<PathBuf> = std::fs::read_dir(root().join("corpus/obj"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "o"))
        .collect();
    objs.sort();
    let cases = harness::case_count(20);
    let compared = std::cell::Cell::new(0u64);
    let refused = std::cell::RefCell::new(Vec::<String>::new());
    let (mut programs, mut skipped) = (0, Vec::new());
    for path in &objs {
        let name = path.file_stem().unwrap().to_string_lossy().to_string();
        let bytes = std::fs::read(path).unwrap();
        let obj = bpfkit_object::Object::parse_named(&bytes, &name)
            .and_then(|o| o.link())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let t0 = std::time::Instant::now();
        if !bpfkit_loader::object_or_skip(
            "corpus_programs_agree_with_kernel_on_mutated_packets",
            &name,
            &obj,
        ) {
            skipped.push(format!(
                "{name}: the running kernel refuses a helper it calls"
            ));
            continue;
        }
        if let Err(e) = KernelEngine::new(&obj) {
            let log = e.verifier_log().unwrap_or("").to_lowercase();
            assert!(
                log.contains("btf"),
                "{name}: kernel refused it for another reason than BTF: {e}"
            );
            skipped.push(format!("{name}: needs BTF"));
            continue;
        }
        // Some programs take the verifier seconds (xdp_adjust_probe: 779k verified
        // instructions); keep each object's share of the run near 0.1 s per case asked.
        let setup = t0.elapsed().as_secs_f64();
        let budget = 0.1 * cases as f64;
        let obj_cases = cases.min((budget / setup.max(1e-6)) as u32).max(1);
        if obj_cases < cases {
            skipped.push(format!(
                "{name}: {setup:.1} s to load, {obj_cases} cases per program instead of {cases}"
            ));
        }
        for (pi, p) in obj.programs.iter().enumerate() {
            // BPF_XDP_DEVMAP (33) and BPF_XDP_CPUMAP (35) programs run after a redirect;
            // BPF_PROG_TEST_RUN refuses them.
            if p.prog_type != prog_type::XDP || matches!(p.expected_attach_type, Some(33 | 35)) {
                skipped.push(format!("{name}/{}: not a plain XDP program", p.name));
                continue;
            }
            if p.insns
                .iter()
                .any(|i| i.code == 0x85 && i.src == 0 && NONDETERMINISTIC.contains(&i.imm))
            {
                skipped.push(format!(
                    "{name}/{}: reads the clock or random numbers",
                    p.name
                ));
                continue;
            }
            programs += 1;
            let mut runner = harness::runner(obj_cases);
            let result = runner.run(&packet(samples.clone()), |pkt| {
                let mut k = KernelEngine::new(&obj)
                    .map_err(|e| TestCaseError::fail(format!("kernel: {e}")))?;
                let mut i = Interpreter::new(
                    &obj,
                    Config {
                        ncpus,
                        ..Config::default()
                    },
                )
                .map_err(|e| TestCaseError::fail(format!("interp: {e}")))?;
                let ko = observe(&mut k, &obj, pi, &pkt);
                let io = observe(&mut i, &obj, pi, &pkt);
                let (ko, io) = match (ko, io) {
                    (Ok(ko), Ok(io)) => (ko, io),
                    (Err(ke), Err(ie)) if ke.contains("os error") => {
                        // Both refuse the input (e.g. the kernel's EINVAL for a packet
                        // beyond the frame without frags).
                        refused.borrow_mut().push(format!(
                            "{name}/{} ({} bytes): kernel: {ke}; interp: {ie}",
                            p.name,
                            pkt.len()
                        ));
                        return Ok(());
                    }
                    (ko, io) => {
                        return Err(TestCaseError::fail(format!(
                            "one side failed: kernel {:?} interp {:?}",
                            ko.err(),
                            io.err()
                        )))
                    }
                };
                let mut diff = String::new();
                if ko.retval != io.retval {
                    diff += &format!("retval: interp {:#x} kernel {:#x}\n", io.retval, ko.retval);
                }
                if ko.packet != io.packet {
                    diff += &format!(
                        "packet:\n  interp {:02x?}\n  kernel {:02x?}\n",
                        io.packet, ko.packet
                    );
                }
                for ((m, km), (_, im)) in ko.maps.iter().zip(&io.maps) {
                    if km != im {
                        diff += &format!(
                            "map {}:\n  interp {:02x?}\n  kernel {:02x?}\n",
                            obj.maps[*m].name, im, km
                        );
                    }
                }
                if diff.is_empty() {
                    compared.set(compared.get() + 1);
                    Ok(())
                } else {
                    Err(TestCaseError::fail(format!(
                        "{name}/{}: interpreter and kernel disagree:\n{diff}",
                        p.name
                    )))
                }
            });
            if let Err(e) = result {
                panic!("{e}");
            }
        }
    }
    eprintln!(
        "corpus: {programs} programs, {} runs compared with the kernel; skipped:",
        compared.get()
    );
    for s in &skipped {
        eprintln!("  {s}");
    }
    let refused = refused.into_inner();
    eprintln!("{} runs refused by both engines, e.g.:", refused.len());
    for r in refused.iter().take(3) {
        eprintln!("  {r}");
    }
    assert!(programs > 0 && compared.get() > 0);
}
