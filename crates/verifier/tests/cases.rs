//! Runs every data-file case under `tests/cases/`: bpfkit's verdict must equal the
//! expected one (and its message contain the expected kernel text); when the kernel is
//! usable, the kernel's verdict must equal the expected one too (and its log contain
//! the text), so every case is checked against the reference.

mod common;
use bpfkit_verifier::Verdict;
use common::{case::Case, kernel};
use std::path::{Path, PathBuf};

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).expect("cases dir") {
        let p = e.expect("dir entry").path();
        if p.is_dir() {
            collect(&p, out);
        } else if p.extension().is_some_and(|x| x == "case") {
            out.push(p);
        }
    }
}

#[test]
fn cases_match_expectations_and_kernel() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cases");
    let mut files = vec![];
    collect(&root, &mut files);
    files.sort();
    assert!(!files.is_empty(), "no cases found under {}", root.display());
    let no_kernel = kernel::unavailable();
    if let Some(why) = &no_kernel {
        eprintln!("\n!!!! SKIPPING the kernel half of the verifier cases: {why} !!!!\n");
    }
    let mut failures = vec![];
    let (mut n_accept, mut n_reject, mut n_kernel) = (0, 0, 0);
    for f in &files {
        let rel = f.strip_prefix(&root).unwrap().display().to_string();
        let c = match Case::load(f) {
            Ok(c) => c,
            Err(e) => {
                failures.push(format!("{rel}: cannot load: {e}"));
                continue;
            }
        };
        if c.accept {
            n_accept += 1
        } else {
            n_reject += 1
        }
        let prog = c.program();
        let t0 = std::time::Instant::now();
        let rep = bpfkit_verifier::verify(&prog, &c.maps, &c.options());
        let el = t0.elapsed();
        if el.as_millis() > 500 {
            eprintln!(
                "slow case {rel}: {el:?}, {} insns processed",
                rep.stats.processed_insns
            );
        }
        match (&rep.verdict, c.accept) {
            (Verdict::Accepted, true) => {}
            (Verdict::Rejected(r), false) if r.kernel_message.contains(&c.message) => {}
            (v, _) => failures.push(format!(
                "{rel}: bpfkit says {}, expected {} {}",
                serde_json::to_string(v).unwrap(),
                if c.accept { "accept" } else { "reject" },
                c.message
            )),
        }
        if let Some(why) = &c.no_kernel {
            eprintln!("!!!! {rel}: NOT checked against the kernel: {why}");
        }
        let kfunc_gap = if no_kernel.is_none() {
            kernel::kfuncs_unavailable(&c.kfuncs)
        } else {
            None
        };
        if let Some(why) = &kfunc_gap {
            eprintln!("SKIPPED: {rel}: kernel half: {why}");
        }
        // a case for a loader with fewer capabilities is loaded from a thread that has
        // exactly those; skipped (with the reason) where this process cannot do that
        let caps_skip = if c.caps == bpfkit_verifier::Caps::ROOT {
            None
        } else {
            bpfkit_loader::caps::kernel_not_comparable(c.caps)
                .or_else(|| bpfkit_loader::caps::cannot_emulate(c.caps))
        };
        if let (None, Some(why)) = (&no_kernel, &caps_skip) {
            eprintln!("SKIPPED: {rel}: kernel half with --caps {}: {why}", c.caps);
        }
        if no_kernel.is_none()
            && caps_skip.is_none()
            && c.no_kernel.is_none()
            && kfunc_gap.is_none()
            && bpfkit_loader::program_or_skip(
                "cases_match_expectations_and_kernel",
                &rel,
                &prog.insns,
            )
        {
            n_kernel += 1;
            let load = || kernel::load_xdp_ext(&prog.insns, &c.maps, &c.extra());
            let res = if c.caps == bpfkit_verifier::Caps::ROOT {
                load()
            } else {
                match bpfkit_loader::caps::with_caps(c.caps, load) {
                    Ok(r) => r,
                    Err(why) => {
                        // capset refused (e.g. a kernel without CAP_BPF/CAP_PERFMON)
                        eprintln!("SKIPPED: {rel}: kernel half with --caps {}: {why}", c.caps);
                        continue;
                    }
                }
            };
            match res {
                Ok(k) => {
                    if let Some(why) = kernel::kfunc_refused(&k, &c.kfuncs) {
                        eprintln!("SKIPPED: {rel}: kernel half: {why}");
                        continue;
                    }
                    if let Some(r) = c.max_ratio {
                        // the kernel's count, as its log states it
                        let kn = k.log.lines().rev().find_map(|l| {
                            l.strip_prefix("processed ")?
                                .split(' ')
                                .next()?
                                .parse::<u64>()
                                .ok()
                        });
                        let ours = rep.stats.processed_insns;
                        match kn {
                            Some(kn) if ours as f64 > r * kn as f64 => failures.push(format!(
                                "{rel}: bpfkit processed {ours} instructions, over {r}x the kernel's {kn}"
                            )),
                            Some(kn) => eprintln!("{rel}: processed {ours}, kernel {kn}"),
                            None => failures.push(format!(
                                "{rel}: no `processed N insns` in the kernel's log"
                            )),
                        }
                    }
                    // EPERM before the verifier (a loader without CAP_BPF/CAP_NET_ADMIN)
                    // leaves no log: the errno is the kernel's whole answer
                    let ktext = if k.errno == libc::EPERM && k.log.trim().is_empty() {
                        "bpf(BPF_PROG_LOAD) fails with EPERM (Operation not permitted)".to_string()
                    } else {
                        kernel::error_text(&k.log)
                    };
                    if k.accepted != c.accept || (!k.accepted && !ktext.contains(&c.message)) {
                        failures.push(format!(
                            "{rel}: KERNEL says {} (errno {}), case expects {} {:?}; kernel log tail:\n{}",
                            if k.accepted { "accept" } else { "reject" },
                            k.errno,
                            if c.accept { "accept" } else { "reject" },
                            c.message,
                            ktext.lines().rev().take(4).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n")
                        ));
                    }
                }
                Err(e) => failures.push(format!("{rel}: kernel load failed to run: {e}")),
            }
        }
    }
    eprintln!(
        "verifier cases: {} files ({} accept, {} reject), {} checked against the kernel, {} failures",
        files.len(), n_accept, n_reject, n_kernel, failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} case failures:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}
