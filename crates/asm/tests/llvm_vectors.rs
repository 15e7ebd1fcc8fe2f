//! File test against llvm-objdump-19: `tests/data/llvm-objdump.txt` holds encodings of every
//! instruction form with what llvm-objdump-19 prints for them (generated once by
//! `gen_llvm_vectors.py`; no LLVM needed here). For each line:
//! * the same with `--alu32` against `llvm-objdump --mattr=+alu32`;
//! * bpfkit's LLVM-syntax text equals llvm-objdump's, unless the encoding is listed in
//!   `tests/data/bpfkit-forms.txt` (where LLVM's text is ambiguous or `<unknown>`), in which
//!   case it equals the text listed there;
//! * that text, the ubpf-syntax text, LLVM's text (when not lossy) and LLVM's `+alu32`
//!   text (when not lossy) all assemble back to the same bytes.
//!
//! Adding a case needs no Rust: add a line to either data file.

use bpfkit_asm::disasm::{differs_from_llvm, differs_from_llvm_alu32, llvm, llvm_alu32, ubpf};
use bpfkit_isa::{decode, parse_raw, to_bytes};
use std::collections::HashMap;

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn data(name: &str) -> String {
    std::fs::read_to_string(format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

fn rows(text: &str) -> Vec<Vec<String>> {
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| l.split(" | ").map(|c| c.trim_end().to_string()).collect())
        .collect()
}

#[test]
fn disassembly_matches_llvm_objdump() {
    let forms: HashMap<String, String> = rows(&data("bpfkit-forms.txt"))
        .into_iter()
        .map(|r| (r[0].clone(), r[1].clone()))
        .collect();
    let print = std::env::var_os("BPFKIT_PRINT_DEVIATIONS").is_some();
    let mut failures = Vec::new();
    let mut used_forms = 0;
    let vectors = rows(&data("llvm-objdump.txt"));
    assert!(vectors.len() > 500);
    for r in &vectors {
        let (bytes_hex, plain, alu32) = (&r[0], &r[1], &r[2]);
        let bytes = hex(bytes_hex);
        let raw = parse_raw(&bytes).unwrap();
        let (insn, n) = match decode(&raw, 0) {
            Ok(x) => x,
            Err(e) => {
                failures.push(format!("{bytes_hex}: does not decode: {e}"));
                continue;
            }
        };
        assert_eq!(n, raw.len(), "{bytes_hex}");
        let ours = llvm(&insn);
        if forms.contains_key(bytes_hex) != differs_from_llvm(&insn) {
            failures.push(format!(
                "{bytes_hex}: differs_from_llvm disagrees with bpfkit-forms.txt"
            ));
        }
        let lossy = match forms.get(bytes_hex) {
            Some(want) => {
                used_forms += 1;
                if &ours != want {
                    failures.push(format!(
                        "{bytes_hex}: bpfkit form `{ours}`, expected `{want}`"
                    ));
                }
                if ours == *plain {
                    failures.push(format!(
                        "{bytes_hex}: listed in bpfkit-forms.txt but equals LLVM"
                    ));
                }
                true
            }
            None => {
                if &ours != plain {
                    if print {
                        println!("{bytes_hex} | {ours} | llvm: {plain}");
                    }
                    failures.push(format!(
                        "{bytes_hex}: bpfkit `{ours}`, llvm-objdump `{plain}`"
                    ));
                }
                false
            }
        };
        // --alu32: equal to llvm-objdump --mattr=+alu32, or the same bpfkit form.
        let ours32 = llvm_alu32(&insn);
        if differs_from_llvm_alu32(&insn) {
            if Some(&ours32) != forms.get(bytes_hex) {
                failures.push(format!(
                    "{bytes_hex}: alu32 bpfkit form `{ours32}` differs from bpfkit-forms.txt"
                ));
            }
        } else if &ours32 != alu32 {
            failures.push(format!(
                "{bytes_hex}: bpfkit --alu32 `{ours32}`, llvm-objdump +alu32 `{alu32}`"
            ));
        }
        let mut texts = vec![
            ("bpfkit llvm", ours.clone()),
            ("bpfkit alu32", ours32),
            ("ubpf", ubpf(&insn)),
        ];
        if !lossy {
            texts.push(("llvm-objdump", plain.clone()));
        }
        if alu32 != "<unknown>" && (!lossy || forms.get(bytes_hex) == Some(alu32)) {
            texts.push(("llvm-objdump +alu32", alu32.clone()));
        }
        for (what, text) in texts {
            match bpfkit_asm::assemble(&text) {
                Ok(back) if to_bytes(&back) == bytes => {}
                Ok(back) => failures.push(format!(
                    "{bytes_hex}: {what} text `{text}` assembles to {}",
                    to_bytes(&back)
                        .iter()
                        .map(|b| format!("{b:02x}"))
                        .collect::<String>()
                )),
                Err(e) => failures.push(format!("{bytes_hex}: {what} text `{text}`: {e}")),
            }
        }
    }
    assert_eq!(
        used_forms,
        forms.len(),
        "bpfkit-forms.txt has entries not in llvm-objdump.txt"
    );
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
