//! Every `-- asm` section of the bpf_conformance suite (../shared/conformance/tests)
//! assembles; where a file has a `-- raw` section, the bytes match it.

use std::path::PathBuf;

fn conformance_dir() -> Option<PathBuf> {
    let d = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/conformance/tests");
    d.is_dir().then_some(d)
}

/// Splits a conformance file into its `-- NAME` sections.
fn sections(text: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        if let Some(name) = line.strip_prefix("-- ") {
            out.push((name.trim().to_string(), String::new()));
        } else if let Some((_, body)) = out.last_mut() {
            body.push_str(line);
            body.push('\n');
        }
    }
    out
}

#[test]
fn all_conformance_programs_assemble() {
    let Some(dir) = conformance_dir() else {
        eprintln!("SKIPPED: conformance suite not found next to the repository (../shared/conformance/tests)");
        return;
    };
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "data"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 300,
        "expected the 313 conformance files, found {}",
        files.len()
    );
    let (mut ok, mut raw_checked) = (0, 0);
    let mut failures = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        let secs = sections(&text);
        let Some((_, asm)) = secs.iter().find(|(n, _)| n == "asm") else {
            failures.push(format!("{}: no -- asm section", f.display()));
            continue;
        };
        match bpfkit_asm::assemble(asm) {
            Ok(insns) => {
                ok += 1;
                if let Some((_, raw)) = secs.iter().find(|(n, _)| n == "raw") {
                    let want: Vec<u64> = raw
                        .split_whitespace()
                        .map(|w| u64::from_str_radix(w.trim_start_matches("0x"), 16).unwrap())
                        .collect();
                    let got: Vec<u64> = insns
                        .iter()
                        .map(|i| u64::from_le_bytes(i.to_bytes()))
                        .collect();
                    assert_eq!(got, want, "{}: bytes differ from -- raw", f.display());
                    raw_checked += 1;
                }
            }
            Err(e) => failures.push(format!("{}: {e}", f.display())),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} failed:\n{}",
        failures.len(),
        files.len(),
        failures.join("\n")
    );
    assert!(raw_checked >= 1);
    eprintln!("assembled {ok} conformance programs, {raw_checked} checked against -- raw");
}
