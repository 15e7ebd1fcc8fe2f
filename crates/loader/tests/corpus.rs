//! Loads every corpus object (`corpus/obj/<name>.o`, read with `bpfkit_object`) into the
//! kernel with `KernelEngine` and compares with what `bpftool prog loadall` (libbpf)
//! made of it (`corpus/expected/<name>.kernel.json`): each program's kernel tag (a hash
//! of the instructions as loaded, map fds masked: equal tags mean bpfkit linked and
//! relocated the program exactly like libbpf), type, and each map's type, sizes,
//! max_entries and flags.
//!
//! Objects the kernel refuses for want of BTF (bpfkit does not load BTF yet: callbacks,
//! spin locks) are listed, not failed; any other refusal fails.

use bpfkit_loader::{kernel_or_skip, KernelEngine};
use serde_json::Value;
use std::path::PathBuf;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn hex(tag: &[u8]) -> String {
    tag.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn corpus_objects_load_like_libbpf() {
    if !kernel_or_skip("corpus_objects_load_like_libbpf") {
        return;
    }
    let mut paths: Vec<PathBuf> = std::fs::read_dir(root().join("corpus/expected"))
        .expect("corpus/expected")
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".kernel.json"))
        .collect();
    paths.sort();
    assert!(!paths.is_empty(), "no corpus/expected/*.kernel.json");
    let (mut loaded, mut tags_equal, mut needs_btf, mut failures) = (0, 0, Vec::new(), Vec::new());
    for path in &paths {
        let want: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let name = want["object"].as_str().unwrap().to_string();
        let Ok(bytes) = std::fs::read(root().join("corpus/obj").join(format!("{name}.o"))) else {
            failures.push(format!("{name}: corpus/obj/{name}.o is missing"));
            continue;
        };
        let obj = match bpfkit_object::Object::parse_named(&bytes, &name).and_then(|o| o.link()) {
            Ok(o) => o,
            Err(e) => {
                failures.push(format!("{name}: object: {e}"));
                continue;
            }
        };
        if !bpfkit_loader::object_or_skip("corpus_objects_load_like_libbpf", &name, &obj) {
            continue;
        }
        let engine = match KernelEngine::new(&obj) {
            Ok(k) => k,
            Err(e) => {
                let log = e.verifier_log().unwrap_or("").to_lowercase();
                if log.contains("btf") {
                    needs_btf.push(format!(
                        "{name}: {}",
                        log.lines().rev().find(|l| l.contains("btf")).unwrap_or("")
                    ));
                } else {
                    failures.push(format!("{name}: {e}"));
                }
                continue;
            }
        };
        loaded += 1;
        for wp in want["programs"].as_array().unwrap() {
            if wp["accepted"] != Value::Bool(true) {
                continue;
            }
            let pname = wp["name"].as_str().unwrap();
            let Some(i) = obj.programs.iter().position(|p| p.name == pname) else {
                failures.push(format!(
                    "{name}: program {pname} missing from the linked object"
                ));
                continue;
            };
            let info = engine.program(i).unwrap().info().unwrap();
            if info.prog_type as u64 != wp["type"].as_u64().unwrap() {
                failures.push(format!(
                    "{name}/{pname}: type {} want {}",
                    info.prog_type, wp["type"]
                ));
            }
            let tag = hex(&info.tag);
            if tag == wp["tag"].as_str().unwrap() {
                tags_equal += 1;
            } else {
                failures.push(format!(
                    "{name}/{pname}: kernel tag {tag}, libbpf's {} ({} insns loaded, libbpf's program {} xlated insns)",
                    wp["tag"].as_str().unwrap(),
                    obj.programs[i].insns.len(),
                    wp["xlated_insns"]
                ));
            }
        }
        for wm in want["maps"].as_array().unwrap() {
            let mname = wm["name"].as_str().unwrap();
            let Some(i) = obj.map_index(mname) else {
                failures.push(format!(
                    "{name}: map {mname} missing from the linked object"
                ));
                continue;
            };
            let info = engine.map(i).unwrap().info().unwrap();
            let got = [
                info.map_type,
                info.key_size,
                info.value_size,
                info.max_entries,
                info.map_flags,
            ];
            let exp = ["type", "key_size", "value_size", "max_entries", "flags"]
                .map(|f| wm[f].as_u64().unwrap() as u32);
            if got != exp {
                failures.push(format!(
                    "{name}: map {mname} (type, key, value, entries, flags) = {got:?}, libbpf's {exp:?}"
                ));
            }
        }
    }
    eprintln!(
        "{} corpus objects: {loaded} loaded, {tags_equal} programs with libbpf's exact tag; {} need BTF (not loaded yet):",
        paths.len(),
        needs_btf.len()
    );
    for n in &needs_btf {
        eprintln!("  {n}");
    }
    assert!(
        failures.is_empty(),
        "{} problems:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
