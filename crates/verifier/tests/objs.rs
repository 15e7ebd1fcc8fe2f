//! Small C objects (`tests/objs/*.c`, built by `tests/objs/build.sh` with clang-19, the
//! objects committed) for what the `.case` format cannot express as naturally: global
//! spin locks (DATASEC BTF), `bpf_snprintf` formats in .rodata, callbacks and dynptrs
//! as clang emits them. Each object's first line says the expected verdict; bpfkit
//! (with the object's BTF) and the kernel (the whole object loaded like libbpf does,
//! through `bpfkit-loader`) must both give it.

use bpfkit_object::Object;
use bpfkit_verifier::{verify, Options, Verdict};
use std::path::Path;

fn kernel_usable() -> Option<String> {
    if std::env::var_os("BPFKIT_NO_KERNEL").is_some() {
        return Some("BPFKIT_NO_KERNEL is set".into());
    }
    // a small object that every kernel with CAP_BPF loads
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/objs/global_lock.o");
    match bpfkit_loader::LoadedObject::open(&p, &Default::default()) {
        Ok(_) => None,
        Err(e) if e.errno() == Some(libc::EPERM) => Some(format!("no CAP_BPF: {e}")),
        Err(_) => None,
    }
}

#[test]
fn c_objects_match_expectations_and_kernel() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/objs");
    let mut objs: Vec<_> = std::fs::read_dir(&dir)
        .expect("tests/objs")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "o"))
        .collect();
    objs.sort();
    assert!(!objs.is_empty());
    let no_kernel = kernel_usable();
    if let Some(why) = &no_kernel {
        eprintln!("\n!!!! SKIPPING the kernel half of the C object tests: {why} !!!!\n");
    }
    let mut failures = vec![];
    for o in &objs {
        let stem = o.file_stem().unwrap().to_string_lossy().to_string();
        let src = std::fs::read_to_string(o.with_extension("c")).expect("source next to object");
        let first = src.lines().next().unwrap_or_default();
        let expect = first
            .strip_prefix("// expect: ")
            .unwrap_or_else(|| panic!("{stem}.c: first line must be `// expect: ...`"));
        let (accept, msg) = match expect.strip_prefix("reject ") {
            Some(m) => (false, m.trim().to_string()),
            None => (expect.trim() == "accept", String::new()),
        };
        let obj = Object::parse_named(&std::fs::read(o).unwrap(), &stem).expect("parses");
        let linked = obj.link().expect("links");
        let opts = Options {
            ..bpfkit_verifier::Options::for_object(&obj, &linked)
        };
        assert_eq!(linked.programs.len(), 1, "{stem}: one program per object");
        let rep = verify(&linked.programs[0], &linked.maps, &opts);
        let ours_ok = match (&rep.verdict, accept) {
            (Verdict::Accepted, true) => true,
            (Verdict::Rejected(r), false) => r.kernel_message.contains(&msg),
            _ => false,
        };
        eprintln!(
            "{stem}: bpfkit {}",
            serde_json::to_string(&rep.verdict).unwrap()
        );
        if !ours_ok {
            failures.push(format!(
                "{stem}: bpfkit says {}, expected {expect}",
                serde_json::to_string(&rep.verdict).unwrap()
            ));
        }
        if no_kernel.is_some() {
            continue;
        }
        match bpfkit_loader::LoadedObject::open(o, &Default::default()) {
            Ok(lo) if accept => {
                // the processed-instruction count, as the corpus test bounds it
                match lo.programs[0].program.info() {
                    Ok(info) => {
                        let (ours, kernel) = (rep.stats.processed_insns, info.verified_insns);
                        eprintln!("{stem}: processed {ours}, kernel verified_insns {kernel}");
                        if kernel > 0 && (ours as f64 / kernel as f64) > 1.5 {
                            failures.push(format!(
                                "{stem}: bpfkit processed {ours} instructions, over 1.5x the kernel's {kernel}"
                            ));
                        }
                    }
                    Err(e) => failures.push(format!("{stem}: BPF_OBJ_GET_INFO_BY_FD: {e}")),
                }
            }
            Err(e) if !accept => {
                let log = e.verifier_log().unwrap_or_default();
                if !log.contains(&msg) {
                    failures.push(format!("{stem}: kernel rejects, but not with {msg:?}: {e}"));
                }
                if let Verdict::Rejected(r) = &rep.verdict {
                    if !r.kernel_message.lines().all(|l| log.contains(l)) {
                        failures.push(format!(
                            "{stem}: our message {:?} is not in the kernel log",
                            r.kernel_message
                        ));
                    }
                }
            }
            Ok(_) => failures.push(format!("{stem}: KERNEL accepts, expected {expect}")),
            Err(e) => failures.push(format!("{stem}: KERNEL rejects, expected accept: {e}")),
        }
    }
    eprintln!(
        "C objects: {} checked, {} failures",
        objs.len(),
        failures.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
