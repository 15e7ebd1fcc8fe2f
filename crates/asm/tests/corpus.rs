//! Disassembly of every corpus object equals `llvm-objdump-19` (the committed
//! `corpus/expected/<name>.objdump*.txt`), except on instructions whose LLVM text is
//! ambiguous or lossy (`bpfkit_asm::disasm::differs_from_llvm`, documented in
//! docs/disasm.md); and the listing of every executable section assembles back to the
//! section's bytes, in both syntaxes. New objects are picked up by globbing corpus/obj.

use bpfkit_asm::disasm::{differs_from_llvm, differs_from_llvm_alu32};
use bpfkit_asm::listing::{list_object, Options, Select};
use bpfkit_asm::Syntax;
use bpfkit_object::Object;
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Every corpus object, named by its path under corpus/obj without `.o`
/// (`xdp_calls`, `rejected/infinite_loop`).
fn objects() -> Vec<(String, Object)> {
    let mut v: Vec<(String, PathBuf)> = Vec::new();
    for sub in ["", "rejected/"] {
        let dir = repo().join("corpus/obj").join(sub);
        let Ok(rd) = std::fs::read_dir(&dir) else {
            assert!(!sub.is_empty(), "{}: missing", dir.display());
            continue;
        };
        for e in rd {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|e| e == "o") {
                let stem = p.file_stem().unwrap().to_string_lossy().into_owned();
                v.push((format!("{sub}{stem}"), p));
            }
        }
    }
    v.sort();
    v.into_iter()
        .map(|(name, p)| {
            let bytes = std::fs::read(&p).unwrap();
            let stem = p.file_stem().unwrap().to_string_lossy().into_owned();
            let obj = Object::parse_named(&bytes, &stem).unwrap_or_else(|e| panic!("{name}: {e}"));
            (name, obj)
        })
        .collect()
}

/// `INDEX:\t...TEXT` → (index, text after the last tab).
fn insn_line(l: &str) -> Option<(&str, &str)> {
    let (idx, rest) = l.split_once(":\t")?;
    let idx = idx.trim();
    if idx.is_empty() || !idx.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((idx, rest.rsplit('\t').next().unwrap_or(rest)))
}

fn strip_annotation(t: &str) -> &str {
    match t.rfind(" <") {
        Some(i) if t.ends_with('>') => &t[..i],
        _ => t,
    }
}

/// Compares two listings line by line; returns the number of tolerated (documented)
/// differences, panics on any other difference. Where bpfkit prints a 32-bit atomic in
/// LLVM's `+alu32` syntax, it must equal that line of `alu32` (when given).
fn compare(what: &str, ours: &str, llvm: &str, alu32: Option<&str>) -> usize {
    let tolerate: fn(&bpfkit_isa::Insn) -> bool = if what.ends_with("alu32") {
        differs_from_llvm_alu32
    } else {
        differs_from_llvm
    };
    let alu32_lines: Option<Vec<&str>> = alu32.map(|t| t.lines().collect());
    let (a, b): (Vec<&str>, Vec<&str>) = (ours.lines().collect(), llvm.lines().collect());
    assert_eq!(
        a.len(),
        b.len(),
        "{what}: {} lines from bpfkit, {} from llvm-objdump\n--- bpfkit:\n{ours}",
        a.len(),
        b.len()
    );
    let mut tolerated = 0;
    for (n, (x, y)) in a.iter().zip(&b).enumerate() {
        if x == y {
            continue;
        }
        let (Some((ix, tx)), Some((iy, _))) = (insn_line(x), insn_line(y)) else {
            panic!("{what} line {}: bpfkit `{x}`, llvm-objdump `{y}`", n + 1);
        };
        assert_eq!(ix, iy, "{what} line {}", n + 1);
        let insns = bpfkit_asm::assemble_insns(strip_annotation(tx))
            .unwrap_or_else(|e| panic!("{what} line {}: `{tx}`: {e}", n + 1));
        assert!(
            insns.len() == 1 && tolerate(&insns[0]),
            "{what} line {}: bpfkit `{x}`, llvm-objdump `{y}`",
            n + 1
        );
        if let (Some(lines), bpfkit_isa::Insn::Atomic { .. }) = (&alu32_lines, &insns[0]) {
            let z = lines.get(n).copied().unwrap_or("");
            assert_eq!(
                *x,
                z,
                "{what} line {}: bpfkit vs llvm-objdump --mattr=+alu32",
                n + 1
            );
        }
        tolerated += 1;
    }
    tolerated
}

#[test]
fn disassembly_equals_llvm_objdump() {
    let objs = objects();
    assert!(!objs.is_empty(), "no corpus objects");
    let (mut compared, mut tolerated) = (0, 0);
    for (name, obj) in &objs {
        let path = format!("corpus/obj/{name}.o");
        for (suffix, opts) in [
            (
                "objdump",
                Options {
                    annotate: true,
                    ..Default::default()
                },
            ),
            (
                "objdump-r",
                Options {
                    annotate: true,
                    reloc: true,
                    ..Default::default()
                },
            ),
            (
                "objdump-raw",
                Options {
                    annotate: true,
                    raw: true,
                    ..Default::default()
                },
            ),
            (
                "objdump-alu32",
                Options {
                    annotate: true,
                    syntax: Syntax::LlvmAlu32,
                    ..Default::default()
                },
            ),
        ] {
            let exp = repo().join(format!("corpus/expected/{name}.{suffix}.txt"));
            let Ok(want) = std::fs::read_to_string(&exp) else {
                // Every object has its objdump.txt (corpus/README.md); -r/-raw are optional.
                assert_ne!(suffix, "objdump", "{} is missing", exp.display());
                continue;
            };
            let got = list_object(obj, &path, &Select::All, &opts).unwrap();
            let alu32 = match suffix {
                "objdump" => std::fs::read_to_string(
                    repo().join(format!("corpus/expected/{name}.objdump-alu32.txt")),
                )
                .ok(),
                _ => None,
            };
            tolerated += compare(&format!("{name}.{suffix}"), &got, &want, alu32.as_deref());
            compared += 1;
        }
    }
    assert!(
        compared >= objs.len(),
        "only {compared} expectation files for {} objects",
        objs.len()
    );
    eprintln!("{compared} listings equal llvm-objdump-19 ({tolerated} documented bpfkit forms)");
}

#[test]
fn every_section_round_trips_through_the_assembler() {
    let mut sections = 0;
    for (name, obj) in objects() {
        for sec in obj
            .sections
            .iter()
            .filter(|s| s.is_executable() && !s.insns.is_empty())
        {
            for syntax in [Syntax::Llvm, Syntax::LlvmAlu32, Syntax::Ubpf] {
                for reloc in [false, true] {
                    let opts = Options {
                        syntax,
                        annotate: true,
                        reloc,
                        raw: reloc,
                        ..Default::default()
                    };
                    let text = list_object(&obj, "x.o", &Select::Section(sec.name.clone()), &opts)
                        .unwrap();
                    let back = bpfkit_asm::assemble(&text)
                        .unwrap_or_else(|e| panic!("{name} {} {syntax:?}: {e}\n{text}", sec.name));
                    assert!(
                        back == sec.insns,
                        "{name} section {} ({syntax:?}) does not round-trip",
                        sec.name
                    );
                }
            }
            sections += 1;
        }
        // Per program, too (`--prog`): the program's slots.
        for p in &obj.programs {
            let text = list_object(
                &obj,
                "x.o",
                &Select::Function(p.name.clone()),
                &Options::default(),
            )
            .unwrap();
            let back = bpfkit_asm::assemble(&text).unwrap();
            let sec = &obj.sections[p.section_index];
            assert_eq!(
                back,
                sec.insns[p.offset..p.offset + p.len],
                "{name} program {}",
                p.name
            );
        }
    }
    assert!(sections > 0);
    let _ = Path::new("");
}
