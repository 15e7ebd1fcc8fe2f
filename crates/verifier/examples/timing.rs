//! Benchmark: bpfkit's verifier against the kernel's, for every corpus program.
//!
//! ```text
//! cargo run --release -p bpfkit-verifier --example timing [-- RUNS [FILTER]]
//! ```
//!
//! For each object of `corpus/obj/*.o` the whole object is loaded into the running
//! kernel as libbpf would (`bpfkit_loader::LoadedObject::load`: BTF, maps, func and line
//! info) with log level `BPF_LOG_STATS` (4), RUNS times; from each program's log we
//! read `verification time N usec` and `processed N insns`. bpfkit's verifier runs the
//! same linked program RUNS times. The table shows medians. Needs root (CAP_BPF); without
//! the kernel the kernel columns print `-`.
//!
//! `BPFKIT_KERNEL_LOG=PROG` writes the kernel's level-2 log of PROG to
//! `target/tmp/PROG.kernel.log` (for comparing the exploration step by step).

use bpfkit_loader::{LoadOptions, LoadedObject};
use bpfkit_object::Object;
use std::path::Path;
use std::time::Instant;

fn median(v: &mut [u64]) -> u64 {
    if v.is_empty() {
        return 0;
    }
    v.sort_unstable();
    v[v.len() / 2]
}

/// The number after `key` in a verifier log, e.g. `verification time 123 usec`.
fn log_number(log: &str, key: &str) -> Option<u64> {
    let at = log.find(key)? + key.len();
    log[at..]
        .split_whitespace()
        .next()
        .and_then(|w| w.parse().ok())
}

fn main() {
    let mut args = std::env::args().skip(1);
    let runs: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(5);
    let filter = args.next();
    let dump = std::env::var("BPFKIT_KERNEL_LOG").ok();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../corpus/obj");
    let mut files: Vec<_> = std::fs::read_dir(&root)
        .expect("corpus/obj")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "o"))
        .collect();
    files.sort();
    let mut load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    load.truncate(load.trim_end().len());
    println!("# runs per program: {runs} (medians); load average at start: {load}");
    println!(
        "{:<40} {:>10} {:>10} {:>9} {:>10} {:>10} {:>7}",
        "program", "kernel_us", "bpfkit_us", "time_x", "kern_insns", "bpfk_insns", "insn_x"
    );
    let (mut slower, mut total) = (0, 0);
    for path in &files {
        let stem = path.file_stem().unwrap().to_string_lossy().to_string();
        let bytes = std::fs::read(path).expect("read object");
        let Ok(obj) = Object::parse_named(&bytes, &stem) else {
            eprintln!("{stem}: does not parse");
            continue;
        };
        let Ok(linked) = obj.link() else {
            eprintln!("{stem}: does not link");
            continue;
        };
        // kernel: RUNS loads of the whole object
        let mut ktimes: std::collections::HashMap<String, (Vec<u64>, Option<u64>)> =
            Default::default();
        let mut kernel_err = None;
        for _ in 0..runs {
            let opts = LoadOptions {
                log_level: 4,
                ..Default::default()
            };
            match LoadedObject::load(&obj, &opts) {
                Ok(lo) => {
                    for p in &lo.programs {
                        let e = ktimes.entry(p.linked.name.clone()).or_default();
                        if let Some(t) = log_number(&p.program.log, "verification time ") {
                            e.0.push(t);
                        }
                        e.1 = log_number(&p.program.log, "processed ");
                    }
                }
                Err(e) => {
                    kernel_err = Some(e.to_string());
                    break;
                }
            }
        }
        if let (Some(d), Some(e)) = (&dump, &kernel_err) {
            let _ = d;
            eprintln!(
                "{stem}: kernel load failed: {}",
                e.lines().next().unwrap_or("")
            );
        }
        for prog in &linked.programs {
            if filter
                .as_ref()
                .is_some_and(|f| !prog.name.contains(f.as_str()))
            {
                continue;
            }
            if dump.as_deref() == Some(prog.name.as_str()) {
                let opts = LoadOptions {
                    log_level: 2 | 4,
                    ..Default::default()
                };
                if let Ok(lo) = LoadedObject::load(&obj, &opts) {
                    if let Some(p) = lo.program(&prog.name) {
                        let out = Path::new(env!("CARGO_MANIFEST_DIR"))
                            .join(format!("../../target/tmp/{}.kernel.log", prog.name));
                        let _ = std::fs::create_dir_all(out.parent().unwrap());
                        std::fs::write(&out, &p.program.log).expect("write log");
                        eprintln!("wrote {}", out.display());
                    }
                }
            }
            let vopts = bpfkit_verifier::Options {
                ..bpfkit_verifier::Options::for_object(&obj, &linked)
            };
            let mut ours = vec![];
            let mut insns = 0;
            let mut verdict = String::new();
            for _ in 0..runs {
                let t = Instant::now();
                let rep = bpfkit_verifier::verify(prog, &linked.maps, &vopts);
                ours.push(t.elapsed().as_micros() as u64);
                insns = rep.stats.processed_insns;
                verdict = match rep.verdict {
                    bpfkit_verifier::Verdict::Accepted => String::new(),
                    bpfkit_verifier::Verdict::Rejected(_) => " (bpfkit: rejected)".into(),
                    bpfkit_verifier::Verdict::Unsupported { .. } => " (bpfkit: undecided)".into(),
                };
            }
            let ours = median(&mut ours);
            let name = format!("{stem}/{}", prog.name);
            match ktimes.get_mut(&prog.name) {
                Some((kt, kinsns)) if !kt.is_empty() => {
                    let k = median(kt);
                    let kin = kinsns.unwrap_or(0);
                    total += 1;
                    if ours > k {
                        slower += 1;
                    }
                    println!(
                        "{:<40} {:>10} {:>10} {:>9.2} {:>10} {:>10} {:>7.2}{verdict}",
                        name,
                        k,
                        ours,
                        ours as f64 / k.max(1) as f64,
                        kin,
                        insns,
                        insns as f64 / kin.max(1) as f64
                    );
                }
                _ => println!(
                    "{:<40} {:>10} {:>10} {:>9} {:>10} {:>10} {:>7}{verdict}",
                    name, "-", ours, "-", "-", insns, "-"
                ),
            }
        }
        if let Some(e) = kernel_err {
            println!(
                "# {stem}: kernel load failed: {}",
                e.lines().next().unwrap_or("")
            );
        }
    }
    let mut load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    load.truncate(load.trim_end().len());
    println!("# bpfkit slower than the kernel on {slower} of {total} programs; load average at end: {load}");
}
