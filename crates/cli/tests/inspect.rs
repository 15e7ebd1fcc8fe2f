//! `bpfkit inspect` end to end: every corpus object, JSON shape, exit statuses.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn bpfkit(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_bpfkit"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn corpus_objects() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(root().join("corpus/obj"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "o"))
        .collect();
    v.sort();
    assert!(!v.is_empty());
    v
}

#[test]
fn every_corpus_object_inspects_like_the_kernel_saw_it() {
    for obj in corpus_objects() {
        let p = obj.to_str().unwrap();
        let (code, out, err) = bpfkit(&["inspect", "--json", p]);
        assert_eq!(code, 0, "{p}: {err}");
        let j: serde_json::Value = serde_json::from_str(&out).unwrap();
        let name = obj.file_stem().unwrap().to_str().unwrap();
        let kpath = root().join(format!("corpus/expected/{name}.kernel.json"));
        let Ok(ktext) = std::fs::read_to_string(&kpath) else {
            continue;
        };
        let k: serde_json::Value = serde_json::from_str(&ktext).unwrap();
        // Programs: name, section, type.
        let mut ours: Vec<(String, String, u64)> = j["programs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p["name"].as_str().unwrap().into(),
                    p["section"].as_str().unwrap().into(),
                    p["type_id"].as_u64().unwrap(),
                )
            })
            .collect();
        let mut theirs: Vec<(String, String, u64)> = k["programs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p["name"].as_str().unwrap().into(),
                    p["section"].as_str().unwrap().into(),
                    p["type"].as_u64().unwrap(),
                )
            })
            .collect();
        ours.sort();
        theirs.sort();
        assert_eq!(ours, theirs, "{p}: programs");
        for prog in j["programs"].as_array().unwrap() {
            assert!(prog["insns"].as_u64().unwrap() > 0, "{p}: {prog}");
        }
        // Maps: kernel name, type, sizes, max_entries (flags are compared in the object
        // crate's tests, with the kernel's own additions).
        let mut ours: Vec<(String, u64, u64, u64, u64)> = j["maps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                let n: String = m["name"].as_str().unwrap().chars().take(15).collect();
                (
                    n,
                    m["type_id"].as_u64().unwrap(),
                    m["key_size"].as_u64().unwrap(),
                    m["value_size"].as_u64().unwrap(),
                    m["max_entries"].as_u64().unwrap(),
                )
            })
            .collect();
        let mut theirs: Vec<(String, u64, u64, u64, u64)> = k["maps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                (
                    m["kernel_name"].as_str().unwrap().into(),
                    m["type"].as_u64().unwrap(),
                    m["key_size"].as_u64().unwrap(),
                    m["value_size"].as_u64().unwrap(),
                    m["max_entries"].as_u64().unwrap(),
                )
            })
            .collect();
        ours.sort();
        theirs.sort();
        assert_eq!(ours, theirs, "{p}: maps");
        for m in j["maps"].as_array().unwrap() {
            for key in [
                "name",
                "type",
                "key_size",
                "value_size",
                "max_entries",
                "flags",
            ] {
                assert!(!m[key].is_null(), "{p}: map lacks {key}");
            }
        }
        assert!(j["relocations"].is_array());

        // The text form names map types the kernel's way.
        let (code, text, _) = bpfkit(&["inspect", p]);
        assert_eq!(code, 0);
        for m in k["maps"].as_array().unwrap() {
            let t = m["type_name"].as_str().unwrap().to_ascii_uppercase();
            assert!(
                text.contains(&format!("BPF_MAP_TYPE_{t}")),
                "{p}: text lacks BPF_MAP_TYPE_{t}"
            );
        }
    }
}

#[test]
fn relocations_in_json_match_readelf_for_program_sections() {
    for obj in corpus_objects() {
        let p = obj.to_str().unwrap();
        let name = obj.file_stem().unwrap().to_str().unwrap();
        let Ok(re) =
            std::fs::read_to_string(root().join(format!("corpus/expected/{name}.readelf.txt")))
        else {
            continue;
        };
        let (code, out, err) = bpfkit(&["inspect", "--json", "--all-relocations", p]);
        assert_eq!(code, 0, "{err}");
        let j: serde_json::Value = serde_json::from_str(&out).unwrap();
        // readelf: "Relocation section '.relxdp' at offset 0x.. contains N entries:"
        let mut want = 0;
        for line in re.lines() {
            if let Some(rest) = line.strip_prefix("Relocation section '") {
                let n: usize = rest
                    .rsplit("contains ")
                    .next()
                    .unwrap()
                    .split(' ')
                    .next()
                    .unwrap()
                    .parse()
                    .unwrap();
                want += n;
            }
        }
        assert_eq!(
            j["relocations"].as_array().unwrap().len(),
            want,
            "{p}: relocation count"
        );
    }
}

#[test]
fn malformed_object_exits_1_with_the_field() {
    let obj = &corpus_objects()[0];
    let mut b = std::fs::read(obj).unwrap();
    b[0x12] = 62; // e_machine = EM_X86_64
    let dir = common::scratch_dir("inspect");
    let bad = dir.join("bad.o");
    std::fs::write(&bad, &b).unwrap();
    let (code, _, err) = bpfkit(&["inspect", bad.to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("e_machine") && err.contains("0x12"), "{err}");

    std::fs::write(&bad, &b[..40]).unwrap();
    let (code, _, err) = bpfkit(&["inspect", "--json", bad.to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");

    let (code, _, _) = bpfkit(&["inspect", dir.join("missing.o").to_str().unwrap()]);
    assert_eq!(code, 2);
    let (code, _, _) = bpfkit(&["inspect"]);
    assert_eq!(code, 2);
    let _ = std::fs::remove_dir_all(&dir);
}
