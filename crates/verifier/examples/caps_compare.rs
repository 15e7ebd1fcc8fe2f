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

use bpfkit_loader::caps;
use bpfkit_object::Object;
use bpfkit_verifier::{verify, Caps, Options, Verdict};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
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
        obj.set_unknown_prog_type(bpfkit_object::model::prog_type::XDP);
        let zero: Vec<String> = obj
            .maps
            .iter()
            .filter(|m| m.max_entries == 0)
            .map(|m| m.name.clone())
            .collect();
        for m in zero {
            let _ = obj.set_max_entries(&m, 64);
        }
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
            gpl_compatible: bpfkit_verifier::license_is_gpl_compatible(&linked.license),
            map_fields: Some(bpfkit_verifier::btf_fields::from_btf(
                obj.btf.as_ref(),
                &linked.maps,
            )),
            funcs: bpfkit_verifier::btf_funcs::from_object(&obj, &linked),
            ..Default::default()
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
