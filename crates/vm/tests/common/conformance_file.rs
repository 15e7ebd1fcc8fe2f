//! The bpf_conformance file format (`-- asm`, `-- mem`, `-- result`) and the suite's
//! location, shared by the interpreter's and the JIT's conformance tests
//! (`#[path]`-included; see `../shared/conformance/README.md`).

use std::path::{Path, PathBuf};

/// The sections of one test file.
pub struct Case {
    pub asm: String,
    pub mem: Vec<u8>,
    pub result: Option<u64>,
}

pub fn parse(text: &str) -> Result<Case, String> {
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

pub fn suite_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/conformance/tests")
}

/// Every `.data` file of the suite, sorted; `None` (after printing `SKIPPED: ...`) when
/// the suite is not beside the checkout, as on a fresh clone with nothing next to it.
pub fn files() -> Option<Vec<PathBuf>> {
    let dir = suite_dir();
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) => {
            eprintln!(
                "\n*** SKIPPED: the bpf_conformance suite is expected at {} ({e}): put the project's shared/ folder (shared/conformance/tests, from the bpf_conformance repository) beside the checkout to run it ***\n",
                dir.display()
            );
            return None;
        }
    };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "data"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no .data files in {}", dir.display());
    Some(files)
}

/// bpfkit's own tests in the suite's format (`crates/vm/tests/data/conformance`), for what
/// the suite does not cover (load-acquire and store-release, 6.15); always there.
pub fn own_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../vm/tests/data/conformance");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "data"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no .data files in {}", dir.display());
    files
}

/// The suite's files when it is there, then bpfkit's own.
pub fn all_files() -> Vec<PathBuf> {
    let mut v = files().unwrap_or_default();
    v.extend(own_files());
    v
}
