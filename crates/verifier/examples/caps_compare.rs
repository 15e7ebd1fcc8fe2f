//! Developer tool: `bpfkit verify --caps SET` against the kernel for any objects.
//!
//! ```text
//! cargo run -p bpfkit-verifier --release --example caps_compare -- bpf,net_admin a.o b.o ...
//! ```
//!
//! Each object is verified by bpfkit for a loader with the capability set SET and loaded
//! whole into the running kernel from a thread that has exactly those capabilities
//! (`bpfkit_loader::caps::with_caps`; needs root). Programs in sections libbpf does not
//! know are taken as XDP (like `--prog-type xdp`) and maps declared with
//! `max_entries = 0` are given 64 entries (as loaders size them at run time). Prints one
//! line per object (`agree`/`DIFF`, both verdicts and messages) and the count; objects
//! with no program or with programs of other types than XDP are listed, not counted.
//!
//! ```text
//! cargo run -p bpfkit-verifier --release --example caps_compare -- --per-prog SET [--only LIST] a.o ...
//! ```
//!
//! `--per-prog` compares program by program, as a converted test suite needs (the
//! kernel's `verifier_*.c` selftests, docs/verifier.md): every program of every section
//! is made XDP (flags and attach type cleared) and loaded alone; programs whose section
//! needs an attach target in BTF (`fentry/`, `lsm/`, `iter/`, `struct_ops`, ...) are
//! dropped and counted. `--only LIST` keeps only the `OBJECT PROGRAM` pairs listed in
//! the file LIST (one a line). One tab-separated line per program: class (`same`,
//! `UNSAFE` = bpfkit accepts and the kernel rejects, `FALSEREJ`, `UNDEC`, `DROP`),
//! object, program, the kernel's verdict and last message, bpfkit's.

#[path = "common/prepare.rs"]
mod prepare;

use bpfkit_loader::caps;
use bpfkit_object::Object;
use bpfkit_verifier::{verify, Caps, Options, Verdict};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--per-prog") {
        return per_prog(&args[1..]);
    }
    let Some((set, files)) = args.split_first() else {
        eprintln!("usage: caps_compare SET FILE.o...");
        std::process::exit(2);
    };
    let mut set = Caps::parse(set).unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(2)
    });
    // the kernel's Spectre rules follow its boot option, whatever the loader's caps
    set.mitigations_off = caps::mitigations_off();
    if let Some(why) = caps::kernel_not_comparable(set) {
        eprintln!("warning: {why}");
    }
    if let Some(why) = caps::cannot_emulate(set) {
        eprintln!("cannot load as --caps {set}: {why}");
        std::process::exit(2);
    }
    let (mut agree, mut counted, mut skipped) = (0, 0, 0);
    for f in files {
        let bytes = match std::fs::read(f) {
            Ok(b) => b,
            Err(e) => {
                println!("skip  {f}: {e}");
                skipped += 1;
                continue;
            }
        };
        let mut obj =
            match Object::parse_named(&bytes, &bpfkit_object::object_name_from_path(f.as_ref())) {
                Ok(o) => o,
                Err(e) => {
                    println!("skip  {f}: malformed: {e}");
                    skipped += 1;
                    continue;
                }
            };
        prepare::as_loaders_do(&mut obj);
        let linked = match obj.link() {
            Ok(l) => l,
            Err(e) => {
                println!("skip  {f}: does not link: {e}");
                skipped += 1;
                continue;
            }
        };
        if linked.programs.is_empty() {
            println!("skip  {f}: no programs");
            skipped += 1;
            continue;
        }
        if linked
            .programs
            .iter()
            .any(|p| p.prog_type != bpfkit_object::model::prog_type::XDP)
        {
            println!("skip  {f}: has programs other than XDP");
            skipped += 1;
            continue;
        }
        let opts = Options {
            caps: set,
            ..bpfkit_verifier::Options::for_object(&obj, &linked)
        };
        let ours: Vec<(String, Verdict)> = linked
            .programs
            .iter()
            .map(|p| (p.name.clone(), verify(p, &linked.maps, &opts).verdict))
            .collect();
        let kernel = caps::with_caps(set, || {
            bpfkit_loader::LoadedObject::load(&obj, &Default::default())
                .map(|_| ())
                .map_err(|e| {
                    let prog = match &e {
                        bpfkit_loader::Error::Rejected { prog, .. } => prog.clone(),
                        _ => String::new(),
                    };
                    let text = match e.verifier_log() {
                        Some(l) if !l.trim().is_empty() => l.to_string(),
                        _ if e.errno() == Some(libc::EPERM) => {
                            bpfkit_target::caps::EPERM_MESSAGE.to_string()
                        }
                        _ => e.to_string(),
                    };
                    (prog, text)
                })
        });
        let kernel = match kernel {
            Ok(k) => k,
            Err(e) => {
                println!("skip  {f}: {e}");
                skipped += 1;
                continue;
            }
        };
        counted += 1;
        let undecided = ours
            .iter()
            .find(|(_, v)| matches!(v, Verdict::Unsupported { .. }));
        let ok = match &kernel {
            Ok(()) => ours.iter().all(|(_, v)| v.is_accepted()),
            Err((prog, log)) => ours.iter().any(|(n, v)| {
                (prog.is_empty() || n == prog)
                    && matches!(v, Verdict::Rejected(r)
                        if log.contains(r.kernel_message.lines().last().unwrap_or("")))
            }),
        };
        agree += ok as u32;
        let k = match &kernel {
            Ok(()) => "accepted".to_string(),
            Err((p, log)) => format!(
                "rejected {p}: {}",
                log.lines()
                    .rev()
                    .find(|l| !l.trim().is_empty()
                        && !l.starts_with("processed ")
                        && !l.contains(" state: "))
                    .unwrap_or("")
                    .trim()
            ),
        };
        let b = match ours.iter().find(|(_, v)| !v.is_accepted()) {
            None => "accepted".to_string(),
            Some((n, Verdict::Rejected(r))) => format!(
                "rejected {n}: {}",
                r.kernel_message.lines().last().unwrap_or("")
            ),
            Some((n, Verdict::Unsupported { what, .. })) => format!("undecided {n}: {what}"),
            Some((n, Verdict::Accepted)) => format!("accepted {n}"),
        };
        let tag = if ok {
            "agree"
        } else if undecided.is_some() {
            "UNDEC"
        } else {
            "DIFF "
        };
        println!("{tag} {f} | kernel {k} | bpfkit {b}");
    }
    println!(
        "--caps {set}: bpfkit agrees with the kernel on {agree} of {counted} objects ({skipped} not comparable)"
    );
}

/// Sections whose programs need an attach target in BTF (or are not programs a loader
/// could give another type): dropped by `--per-prog`.
fn needs_btf_target(section: &str) -> bool {
    let s = section.trim_start_matches('?');
    [
        "fentry",
        "fexit",
        "fmod_ret",
        "lsm",
        "lsm.s",
        "lsm_cgroup",
        "tp_btf",
        "iter",
        "iter.s",
        "struct_ops",
        "struct_ops.s",
        "freplace",
        "fentry.s",
        "fexit.s",
        "fmod_ret.s",
    ]
    .iter()
    .any(|p| s == *p || s.strip_prefix(p).is_some_and(|r| r.starts_with('/')))
}

fn last_line(log: &str) -> String {
    log.lines()
        .rev()
        .find(|l| {
            !l.trim().is_empty()
                && !l.starts_with("processed ")
                && !l.starts_with("bpfkit: ")
                && !l.contains(" state: ")
        })
        .unwrap_or("")
        .trim()
        .to_string()
}

fn per_prog(args: &[String]) {
    let usage = || -> ! {
        eprintln!("usage: caps_compare --per-prog SET [--only LIST] FILE.o...");
        std::process::exit(2)
    };
    let Some((set, mut files)) = args.split_first() else {
        usage()
    };
    let set = Caps::parse(set).unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(2)
    });
    let mut only: Option<std::collections::HashSet<(String, String)>> = None;
    if files.first().map(String::as_str) == Some("--only") {
        let Some(list) = files.get(1) else { usage() };
        let text = std::fs::read_to_string(list).unwrap_or_else(|e| {
            eprintln!("{list}: {e}");
            std::process::exit(2)
        });
        only = Some(
            text.lines()
                .filter_map(|l| l.split_once(char::is_whitespace))
                .map(|(o, p)| (o.trim().to_string(), p.trim().to_string()))
                .collect(),
        );
        files = &files[2..];
    }
    if let Some(why) = caps::cannot_emulate(set) {
        eprintln!("cannot load as --caps {set}: {why}");
        std::process::exit(2);
    }
    let mut count: std::collections::BTreeMap<&str, u32> = Default::default();
    for f in files {
        let oname = bpfkit_object::object_name_from_path(f.as_ref());
        let obj = std::fs::read(f)
            .map_err(|e| e.to_string())
            .and_then(|b| Object::parse_named(&b, &oname).map_err(|e| e.to_string()));
        let mut obj = match obj {
            Ok(o) => o,
            Err(e) => {
                println!("DROP\t{oname}\t-\tunreadable: {e}");
                *count.entry("DROP").or_default() += 1;
                continue;
            }
        };
        let listed = |name: &str| {
            only.as_ref()
                .is_none_or(|o| o.contains(&(oname.clone(), name.to_string())))
        };
        obj.programs.retain(|p| {
            if !needs_btf_target(&p.section) {
                return true;
            }
            if listed(&p.name) {
                println!(
                    "DROP\t{oname}\t{}\tsection {} needs a BTF attach target",
                    p.name, p.section
                );
                *count.entry("DROP").or_default() += 1;
            }
            false
        });
        for p in &mut obj.programs {
            p.prog_type = bpfkit_object::model::prog_type::XDP;
            p.expected_attach_type = None;
            p.prog_flags = 0;
        }
        // As libbpf sizes maps: local storages keep 0 entries, ring buffers are
        // rounded up to whole pages, other maps declared with 0 get 64.
        use bpfkit_object::model::map_type as mt;
        for m in &mut obj.maps {
            match m.map_type {
                mt::SK_STORAGE | mt::CGROUP_STORAGE | mt::PERCPU_CGROUP_STORAGE | 28 | 29 | 32 => {}
                mt::RINGBUF | mt::USER_RINGBUF => {
                    m.max_entries = m.max_entries.max(4096).next_power_of_two()
                }
                _ if m.max_entries == 0 => m.max_entries = 64,
                _ => {}
            }
        }
        // Programs that fill a program array's slots are loaded with each program.
        let slot_progs: Vec<String> = obj
            .maps
            .iter()
            .flat_map(|m| match &m.init {
                bpfkit_object::model::MapInit::Programs(s) => {
                    s.iter().map(|(_, n)| n.clone()).collect()
                }
                _ => Vec::new(),
            })
            .collect();
        let names: Vec<String> = obj
            .programs
            .iter()
            .map(|p| p.name.clone())
            .filter(|n| listed(n))
            .collect();
        for name in names {
            let mut one = obj.clone();
            one.programs
                .retain(|p| p.name == name || slot_progs.contains(&p.name));
            let linked = match one.link() {
                Ok(l) => l,
                Err(e) => {
                    println!("DROP\t{oname}\t{name}\tdoes not link: {e}");
                    *count.entry("DROP").or_default() += 1;
                    continue;
                }
            };
            let opts = Options {
                caps: set,
                ..bpfkit_verifier::Options::for_object(&one, &linked)
            };
            let ours = linked
                .programs
                .iter()
                .find(|p| p.name == name)
                .map(|p| verify(p, &linked.maps, &opts).verdict);
            let kernel = caps::with_caps(set, || {
                bpfkit_loader::LoadedObject::load(&one, &Default::default())
                    .map(|_| ())
                    .map_err(|e| match e.verifier_log() {
                        Some(l) if !l.trim().is_empty() => (true, last_line(l)),
                        _ if e.errno() == Some(libc::EPERM) => {
                            (true, bpfkit_target::caps::EPERM_MESSAGE.to_string())
                        }
                        _ => (
                            matches!(e, bpfkit_loader::Error::Rejected { .. }),
                            e.to_string(),
                        ),
                    })
            });
            let (k, kmsg) = match kernel {
                Err(e) => ("error", e),
                Ok(Ok(())) => ("accepted", String::new()),
                Ok(Err((true, m))) => ("rejected", m),
                Ok(Err((false, m))) => ("error", m),
            };
            let (b, bmsg) = match &ours {
                None => ("missing", String::new()),
                Some(Verdict::Accepted) => ("accepted", String::new()),
                Some(Verdict::Rejected(r)) => (
                    "rejected",
                    r.kernel_message.lines().last().unwrap_or("").to_string(),
                ),
                Some(Verdict::Unsupported { what, .. }) => ("undecided", what.clone()),
            };
            let class = match (k, b) {
                ("error", _) | (_, "missing") => "DROP",
                (_, "undecided") => "UNDEC",
                ("accepted", "accepted") => "same",
                ("rejected", "rejected") if kmsg.contains(bmsg.as_str()) => "same",
                ("rejected", "rejected") => "samemsg?",
                ("rejected", "accepted") => "UNSAFE",
                _ => "FALSEREJ",
            };
            *count.entry(class).or_default() += 1;
            println!("{class}\t{oname}\t{name}\tkernel {k}: {kmsg}\tbpfkit {b}: {bmsg}");
        }
    }
    let summary: Vec<String> = count.iter().map(|(k, v)| format!("{k} {v}")).collect();
    println!("--caps {set} per program: {}", summary.join(", "));
}
