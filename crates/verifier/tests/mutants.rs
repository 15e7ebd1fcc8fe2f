//! A small seeded sample of the mutation campaign (`examples/mutprobe.rs`, issue 14
//! item 7): mutants of corpus objects (one or two changed instructions: registers,
//! offsets, immediates, opcode bits, deleted instructions, inverted / deleted / moved /
//! retargeted conditional jumps), verified by bpfkit and, when bpfkit accepts, loaded
//! whole into the running kernel. Fails on a mutant bpfkit accepts and the kernel
//! rejects (an unsafe accept), printing it; mutants the kernel refuses for a helper its
//! build does not offer are skipped, as are objects whose unmutated form the kernel does
//! not load. Without the kernel: SKIPPED.
//! `BPFKIT_VERIFIER_MUTANTS=N` sets the mutants per object (default 60).

#[path = "common/mutate.rs"]
mod mutate;

use bpfkit_object::Object;
use bpfkit_verifier::Verdict;
use mutate::{is_lddw, mutate, mutate_random, Rng};
use std::path::PathBuf;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// bpfkit's verdict on every program: Some(true) all accepted, None undecided.
fn bpfkit(obj: &Object) -> Option<bool> {
    let linked = obj.link().ok()?;
    let opts = bpfkit_verifier::Options {
        map_fields: Some(bpfkit_verifier::btf_fields::from_btf(
            obj.btf.as_ref(),
            &linked.maps,
        )),
        funcs: bpfkit_verifier::btf_funcs::from_object(obj, &linked),
        ..Default::default()
    };
    let mut all = true;
    for p in &linked.programs {
        match bpfkit_verifier::verify(p, &linked.maps, &opts).verdict {
            Verdict::Accepted => {}
            Verdict::Rejected(_) => all = false,
            Verdict::Unsupported { .. } => return None,
        }
    }
    Some(all)
}

/// The kernel's verdict and the last lines of its log.
fn kernel(obj: &Object) -> (bool, String) {
    match bpfkit_loader::LoadedObject::load(obj, &Default::default()) {
        Ok(_) => (true, String::new()),
        Err(e) => {
            let log = e.verifier_log().unwrap_or("").to_string();
            let tail: Vec<&str> = log.lines().rev().take(4).collect();
            (false, format!("{e}: {}", tail.join(" // ")))
        }
    }
}

#[test]
fn seeded_mutants_agree_with_the_kernel_on_acceptance() {
    if let Err(why) = bpfkit_loader::probe::kernel_available() {
        eprintln!("SKIPPED: verifier mutants against the kernel: {why}");
        return;
    }
    let per_object: usize = std::env::var("BPFKIT_VERIFIER_MUTANTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60);
    let mut unsafe_accepts = vec![];
    let (mut total, mut accepted, mut objects) = (0, 0, 0);
    for (name, seed) in [
        ("xdp_atomics.o", 1u64),
        ("xdp_csum.o", 2),
        ("xdp_firewall.o", 3),
        ("xdp_v4.o", 4),
        ("xdp_calls.o", 5),
        ("xdp_icmp_echo.o", 6),
    ] {
        let bytes = std::fs::read(root().join("corpus/obj").join(name)).unwrap();
        let base = Object::parse(&bytes).unwrap();
        if bpfkit(&base) != Some(true) {
            panic!("{name}: bpfkit does not accept the unmutated object");
        }
        let (ok, why) = kernel(&base);
        if !ok {
            eprintln!("SKIPPED: {name}: the kernel does not load it here: {why}");
            continue;
        }
        objects += 1;
        let mut r = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let secs: Vec<usize> = (0..base.sections.len())
            .filter(|&i| {
                !base.sections[i].insns.is_empty()
                    && matches!(
                        base.sections[i].kind,
                        bpfkit_object::SectionKind::Program | bpfkit_object::SectionKind::Text
                    )
            })
            .collect();
        let mut made = 0;
        while made < per_object {
            let mut obj = base.clone();
            let si = secs[r.below(secs.len() as u64) as usize];
            let insns = &mut obj.sections[si].insns;
            let before = insns.clone();
            let Some((k, kind)) = mutate_random(&mut r, insns) else {
                continue;
            };
            if r.below(4) == 0 {
                let j = r.below(insns.len() as u64) as usize;
                if !is_lddw(insns, j) {
                    mutate(&mut r, insns, j);
                }
            }
            if *insns == before {
                continue;
            }
            made += 1;
            total += 1;
            if bpfkit(&obj) != Some(true) {
                continue;
            }
            accepted += 1;
            let (ok, why) = kernel(&obj);
            let helper_gap = ["invalid func", "unknown func", "cannot use helper"]
                .iter()
                .any(|m| why.contains(m));
            if !ok && !helper_gap {
                unsafe_accepts.push(format!(
                    "{name} section {} {kind} at insn {k}: kernel: {why}",
                    obj.sections[si].name
                ));
            }
        }
    }
    println!(
        "{total} mutants of {objects} objects, {accepted} accepted by bpfkit and loaded into the kernel, {} rejected there",
        unsafe_accepts.len()
    );
    assert!(
        unsafe_accepts.is_empty(),
        "bpfkit accepts what the kernel rejects:\n{}",
        unsafe_accepts.join("\n")
    );
    assert!(objects == 0 || accepted > 0, "no mutant was accepted");
}
