//! The bpf_conformance suite (`../shared/conformance/tests/*.data`, relative to the
//! workspace root) on the JIT, in both modes, in raw-memory mode (r1 = a copy of `-- mem`,
//! r2 = its length): r0 must equal `-- result`, and must equal the interpreter's r0 and
//! output memory. The parser follows crates/vm/tests/conformance.rs (same file format).

use bpfkit_jit::Jit;
use bpfkit_vm::Interpreter;
use std::path::{Path, PathBuf};

struct Case {
    asm: String,
    mem: Vec<u8>,
    result: Option<u64>,
}

fn parse(text: &str) -> Result<Case, String> {
    let mut section = String::new();
    let (mut asm, mut mem_hex, mut result) = (String::new(), String::new(), String::new());
    for line in text.lines() {
        if let Some(name) = line.strip_prefix("-- ") {
            section = name.trim().to_string();
            continue;
        }
        let content = line.split('#').next().unwrap_or("");
        match section.as_str() {
            "asm" => {
                asm.push_str(line);
                asm.push('\n');
            }
            "mem" => {
                mem_hex.push_str(content);
                mem_hex.push(' ');
            }
            "result" => result.push_str(content.trim()),
            _ => {}
        }
    }
    let mem = mem_hex
        .split_whitespace()
        .map(|b| u8::from_str_radix(b, 16).map_err(|e| format!("-- mem byte {b:?}: {e}")))
        .collect::<Result<Vec<u8>, String>>()?;
    let result = if result.is_empty() {
        None
    } else {
        let r = result.trim_start_matches("0x").trim_start_matches("0X");
        Some(u64::from_str_radix(r, 16).map_err(|e| format!("-- result {result:?}: {e}"))?)
    };
    Ok(Case { asm, mem, result })
}

fn suite_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/conformance/tests")
}

#[test]
fn bpf_conformance_suite_passes_on_the_jit() {
    let dir = suite_dir();
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| {
        panic!(
            "the bpf_conformance suite is missing at {} ({e}); it must be present (../shared/conformance/tests from the workspace root)",
            dir.display()
        )
    });
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "data"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no .data files in {}", dir.display());
    let (mut pass, mut failures) = ([0usize; 2], Vec::new());
    for f in &files {
        let name = f.file_name().unwrap().to_string_lossy().to_string();
        let text = std::fs::read_to_string(f).expect("read test");
        let case = match parse(&text) {
            Ok(c) => c,
            Err(e) => {
                failures.push(format!("{name}: bad test file: {e}"));
                continue;
            }
        };
        let Some(want) = case.result else {
            failures.push(format!("{name}: no -- result section"));
            continue;
        };
        let insns = match bpfkit_asm::assemble(&case.asm) {
            Ok(i) => i,
            Err(e) => {
                failures.push(format!("{name}: assembler: {e}"));
                continue;
            }
        };
        let interp = Interpreter::from_insns(insns.clone()).run_raw(0, &case.mem);
        for (m, fast) in [false, true].into_iter().enumerate() {
            let jit = if fast {
                // SAFETY: the conformance programs are valid programs for raw memory of
                // their `-- mem` size (every one passes on the checked interpreter, which
                // is asserted below before trusting the fast result).
                match &interp {
                    Ok(_) => unsafe { Jit::from_insns_unchecked(insns.clone()) },
                    Err(_) => continue,
                }
            } else {
                Jit::from_insns(insns.clone())
            };
            let label = if fast { "jit-fast" } else { "jit" };
            let out = match jit.and_then(|mut j| j.run_raw(0, &case.mem)) {
                Ok(o) => o,
                Err(e) => {
                    failures.push(format!("{name} [{label}]: {e}"));
                    continue;
                }
            };
            if out.r0 != want {
                failures.push(format!(
                    "{name} [{label}]: r0 = {:#x}, expected {want:#x}",
                    out.r0
                ));
                continue;
            }
            match &interp {
                Ok(i) if i.r0 == out.r0 && i.mem == out.mem => pass[m] += 1,
                Ok(i) => failures.push(format!(
                    "{name} [{label}]: differs from the interpreter (r0 {:#x} vs {:#x}, memory {:02x?} vs {:02x?})",
                    out.r0, i.r0, out.mem, i.mem
                )),
                Err(e) => failures.push(format!("{name} [{label}]: interpreter failed: {e}")),
            }
        }
    }
    for f in &failures {
        eprintln!("FAIL {f}");
    }
    eprintln!(
        "bpf_conformance on the JIT: checked {}/{} passed, fast {}/{} passed",
        pass[0],
        files.len(),
        pass[1],
        files.len()
    );
    assert!(
        failures.is_empty(),
        "{} conformance failures (of {} files, 2 modes)",
        failures.len(),
        files.len()
    );
    assert_eq!(pass, [files.len(), files.len()]);
}
