//! `--caps` against the kernel: every corpus object (`corpus/obj`, `corpus/obj/rejected`)
//! and every C test object (`tests/objs`) is verified by bpfkit for a loader with a
//! given capability set, and loaded whole into the running kernel from a thread that has
//! exactly those capabilities (`bpfkit_loader::caps::with_caps`). The verdicts must be
//! equal: the kernel loads the object iff bpfkit accepts every program, and a program
//! the kernel refuses is refused by bpfkit with the kernel's message.
//!
//! Skips (printing `SKIPPED: <reason>`) where this process cannot act as such a loader:
//! no usable kernel, capabilities it does not have (non-root), a kernel booted with
//! `mitigations=off` (its Spectre rules are off), helpers this kernel build refuses.

use bpfkit_loader::caps;
use bpfkit_object::Object;
use bpfkit_verifier::{verify, Caps, Options, Verdict};
use std::path::{Path, PathBuf};

fn objects() -> Vec<PathBuf> {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut v = vec![];
    for d in [
        here.join("../../corpus/obj"),
        here.join("../../corpus/obj/rejected"),
        here.join("tests/objs"),
    ] {
        let mut files: Vec<_> = std::fs::read_dir(&d)
            .unwrap_or_else(|e| panic!("{}: {e}", d.display()))
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "o"))
            .collect();
        files.sort();
        v.extend(files);
    }
    v
}

/// What the kernel answers for the whole object: `None` accepted, else (program, text).
/// The outer error: this process could not lower its capabilities (skip); the inner:
/// the load failed without a verdict.
#[allow(clippy::type_complexity)]
fn kernel(path: &Path, set: Caps) -> Result<Result<Option<(String, String)>, String>, String> {
    let p = path.to_path_buf();
    caps::with_caps(set, move || {
        match bpfkit_loader::LoadedObject::open(&p, &Default::default()) {
            Ok(_) => Ok(None),
            Err(e) => {
                let prog = match &e {
                    bpfkit_loader::Error::Rejected { prog, .. } => prog.clone(),
                    _ => String::new(),
                };
                match (e.errno(), e.verifier_log()) {
                    (_, Some(log)) if !log.trim().is_empty() => Ok(Some((prog, log.to_string()))),
                    (Some(libc::EPERM), _) => {
                        Ok(Some((prog, bpfkit_target::caps::EPERM_MESSAGE.into())))
                    }
                    _ => Err(format!(
                        "{}: load failed without a verdict: {e}",
                        p.display()
                    )),
                }
            }
        }
    })
}

fn check_set(set: Caps) {
    // compared with the kernel as booted: with mitigations=off, the same set without
    // the Spectre rules
    let set = Caps {
        mitigations_off: caps::mitigations_off(),
        ..set
    };
    let test = format!("caps_agree_with_kernel({set})");
    if !bpfkit_loader::kernel_or_skip(&test) {
        return;
    }
    if let Some(why) = caps::cannot_emulate(set) {
        eprintln!("SKIPPED: {test}: {why}");
        return;
    }
    if let Some(why) = caps::kernel_not_comparable(set) {
        eprintln!("SKIPPED: {test}: {why}");
        return;
    }
    let (mut agree, mut total) = (0, 0);
    let mut failures = vec![];
    for path in objects() {
        let shown = path.display().to_string();
        let bytes = std::fs::read(&path).unwrap();
        let name = bpfkit_object::object_name_from_path(&path);
        let obj = Object::parse_named(&bytes, &name).expect("test object parses");
        let linked = obj.link().expect("test object links");
        if !bpfkit_loader::object_or_skip(&test, &shown, &linked) {
            continue;
        }
        let opts = Options {
            caps: set,
            ..bpfkit_verifier::Options::for_object(&obj, &linked)
        };
        let reports: Vec<_> = linked
            .programs
            .iter()
            .map(|p| (p.name.clone(), verify(p, &linked.maps, &opts).verdict))
            .collect();
        let k = match kernel(&path, set) {
            Ok(Ok(k)) => k,
            Ok(Err(e)) => {
                failures.push(e);
                continue;
            }
            Err(why) => {
                eprintln!("SKIPPED: {test}: {why}");
                return;
            }
        };
        total += 1;
        let ok = match &k {
            None => reports.iter().all(|(_, v)| v.is_accepted()),
            Some((prog, log)) => reports.iter().any(|(n, v)| {
                (prog.is_empty() || n == prog)
                    && matches!(v, Verdict::Rejected(r)
                        if log.contains(r.kernel_message.lines().last().unwrap_or("")))
            }),
        };
        if ok {
            agree += 1;
        } else {
            let ours: Vec<String> = reports
                .iter()
                .map(|(n, v)| format!("{n}: {}", serde_json::to_string(v).unwrap()))
                .collect();
            let theirs = match &k {
                None => "accepted".to_string(),
                Some((p, log)) => format!(
                    "rejected {p}: {}",
                    log.lines().rev().take(3).collect::<Vec<_>>().join(" | ")
                ),
            };
            failures.push(format!(
                "{shown}: kernel {theirs}; bpfkit {}",
                ours.join("; ")
            ));
        }
    }
    eprintln!("--caps {set}: bpfkit agrees with the kernel on {agree} of {total} objects");
    assert!(
        failures.is_empty(),
        "--caps {set}: {} disagreements:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn caps_bpf_net_admin_agrees_with_kernel() {
    check_set(Caps::BPF_NET_ADMIN);
}

#[test]
fn caps_bpf_perfmon_net_admin_agrees_with_kernel() {
    check_set(Caps::parse("bpf,perfmon,net_admin").unwrap());
}

#[test]
fn caps_without_net_admin_is_eperm() {
    check_set(Caps::parse("bpf").unwrap());
}
