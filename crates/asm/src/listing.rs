//! Disassembly listings in the layout of `llvm-objdump -d` (for ELF objects) and a plain
//! `INDEX: TEXT` listing for raw instruction bytes.

use crate::disasm::{format_insn, Syntax};
use bpfkit_isa::{decode, DecodeError, Insn, RawInsn};
use bpfkit_object::{Object, Section, STT_FUNC, STT_NOTYPE, STT_OBJECT};
use std::fmt::Write;

/// What to print.
#[derive(Clone, Debug, Default)]
pub struct Options {
    pub syntax: Syntax,
    /// Raw bytes before each instruction (`llvm-objdump -d` without `--no-show-raw-insn`).
    pub raw: bool,
    /// Relocation lines after relocated instructions (`llvm-objdump -r`).
    pub reloc: bool,
    /// Interleave source lines from BTF line info (like `llvm-objdump -S`).
    pub source: bool,
    /// `<symbol+offset>` annotations after jump targets (ELF only), as llvm-objdump prints.
    pub annotate: bool,
}

/// A listing error: the instruction that does not decode, with where it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ListingError {
    #[error("section {section}, {location} (byte offset {offset:#x}): {error}")]
    Decode {
        section: String,
        /// `function+0xoff` of the bad slot, as llvm-objdump names addresses.
        location: String,
        /// Byte offset of the bad slot in the section.
        offset: u64,
        error: DecodeError,
    },
    #[error("no section named `{0}` with instructions")]
    NoSection(String),
    #[error("no program or function named `{0}`")]
    NoProgram(String),
}

fn raw_bytes(insns: &[RawInsn]) -> String {
    let mut s = String::new();
    for (i, b) in insns.iter().flat_map(|i| i.to_bytes()).enumerate() {
        if i > 0 {
            s.push(' ');
        }
        write!(s, "{b:02x}").unwrap();
    }
    s
}

fn insn_line(out: &mut String, index: usize, raw: &[RawInsn], text: &str, opts: &Options) {
    if opts.raw {
        writeln!(out, "{index:>8}:\t{}\t{text}", raw_bytes(raw)).unwrap();
    } else {
        writeln!(out, "{index:>8}:\t{text}").unwrap();
    }
}

/// What llvm-objdump prints for an instruction it cannot decode.
pub const UNKNOWN: &str = "<unknown>";

/// Lists raw instruction slots (a `.bin` file): one `INDEX:\tTEXT` line per instruction.
pub fn list_raw(insns: &[RawInsn], opts: &Options) -> Result<String, DecodeError> {
    let (out, errors) = list_raw_lossy(insns, opts);
    match errors.into_iter().next() {
        Some(e) => Err(e),
        None => Ok(out),
    }
}

/// [`list_raw`] that never refuses: a slot that does not decode is listed as
/// `<unknown>`, as llvm-objdump does, the listing goes on, and the decode errors are
/// returned beside it.
pub fn list_raw_lossy(insns: &[RawInsn], opts: &Options) -> (String, Vec<DecodeError>) {
    let mut out = String::new();
    let mut errors = Vec::new();
    let mut i = 0;
    while i < insns.len() {
        let (insn, n) = match decode(insns, i) {
            Ok(x) => x,
            Err(e) => {
                insn_line(&mut out, i, &insns[i..i + 1], UNKNOWN, opts);
                errors.push(e);
                i += 1;
                continue;
            }
        };
        insn_line(
            &mut out,
            i,
            &insns[i..i + n],
            &format_insn(&insn, opts.syntax),
            opts,
        );
        i += n;
    }
    (out, errors)
}

/// Symbols that label code in a section, as llvm-objdump uses them: (slot, name).
fn code_symbols(obj: &Object, sec: &Section) -> Vec<(u64, String)> {
    let mut v: Vec<(u64, String)> = obj
        .symbols
        .iter()
        .filter(|s| {
            s.shndx == sec.index
                && !s.name.is_empty()
                && matches!(s.sym_type, STT_FUNC | STT_NOTYPE | STT_OBJECT)
        })
        .map(|s| (s.value, s.name.clone()))
        .collect();
    v.sort();
    v.dedup();
    // One label per address, as llvm-objdump prints them: the last in (address, name)
    // order (falco's probe.o has two local labels at one address).
    let mut one: Vec<(u64, String)> = Vec::with_capacity(v.len());
    for s in v {
        match one.last_mut() {
            Some(l) if l.0 == s.0 => *l = s,
            _ => one.push(s),
        }
    }
    one
}

/// Which part of an object to list.
#[derive(Clone, Debug, Default)]
pub enum Select {
    /// Every executable section.
    #[default]
    All,
    /// One section by name.
    Section(String),
    /// One program or function by name (only its instructions).
    Function(String),
}

/// Lists an ELF object like `llvm-objdump -d` (`path` is printed in the header).
pub fn list_object(
    obj: &Object,
    path: &str,
    select: &Select,
    opts: &Options,
) -> Result<String, ListingError> {
    let (out, errors) = list_object_lossy(obj, path, select, opts)?;
    match errors.into_iter().next() {
        Some(e) => Err(e),
        None => Ok(out),
    }
}

/// [`list_object`] that never refuses an instruction stream: slots that do not decode
/// are listed as `<unknown>` (as llvm-objdump does) and returned as errors beside the
/// listing. Only a selection that names nothing is an error.
pub fn list_object_lossy(
    obj: &Object,
    path: &str,
    select: &Select,
    opts: &Options,
) -> Result<(String, Vec<ListingError>), ListingError> {
    let mut errors = Vec::new();
    let mut out = String::new();
    write!(out, "\n{path}:\tfile format elf64-bpf\n\n").unwrap();
    let sections: Vec<&Section> = match select {
        Select::All => obj.sections.iter().filter(|s| s.is_executable()).collect(),
        Select::Section(name) => {
            let s = obj
                .sections
                .iter()
                .find(|s| &s.name == name && s.is_executable())
                .ok_or_else(|| ListingError::NoSection(name.clone()))?;
            vec![s]
        }
        Select::Function(name) => {
            let f = obj
                .functions
                .iter()
                .find(|f| &f.name == name)
                .ok_or_else(|| ListingError::NoProgram(name.clone()))?;
            vec![&obj.sections[f.section]]
        }
    };
    let range = match select {
        Select::Function(name) => obj
            .functions
            .iter()
            .find(|f| &f.name == name)
            .map(|f| (f.offset, f.offset + f.len)),
        _ => None,
    };
    // llvm-objdump skips executable sections without instructions and separates
    // sections by one blank line.
    let mut first = true;
    for sec in sections.into_iter().filter(|s| !s.insns.is_empty()) {
        if !first {
            out.push('\n');
        }
        first = false;
        list_section(&mut out, obj, sec, range, opts, &mut errors);
    }
    Ok((out, errors))
}

fn list_section(
    out: &mut String,
    obj: &Object,
    sec: &Section,
    range: Option<(usize, usize)>,
    opts: &Options,
    errors: &mut Vec<ListingError>,
) {
    writeln!(out, "Disassembly of section {}:", sec.name).unwrap();
    let syms = code_symbols(obj, sec);
    let insns = &sec.insns;
    let (start, end) = range.unwrap_or((0, insns.len()));
    let end = end.min(insns.len());
    let mut i = start;
    if !syms.iter().any(|(v, _)| *v == start as u64 * 8) {
        write!(out, "\n{:016x} <{}>:\n", start * 8, sec.name).unwrap();
    }
    let mut last_line: Option<(String, u32)> = None;
    while i < end {
        for (_, name) in syms.iter().filter(|(v, _)| *v == i as u64 * 8) {
            write!(out, "\n{:016x} <{name}>:\n", i * 8).unwrap();
        }
        if opts.source {
            if let Some(l) = obj.line_info_at(&sec.name, i) {
                let key = (l.file.clone(), l.line);
                if last_line.as_ref() != Some(&key) && !l.text.is_empty() {
                    writeln!(out, "; {}", l.text).unwrap();
                }
                last_line = Some(key);
            }
        }
        let (insn, n) = match decode(insns, i) {
            Ok(x) => x,
            Err(error) => {
                // llvm-objdump prints the slot's bytes and `<unknown>`, and goes on.
                let offset = error.index as u64 * 8;
                errors.push(ListingError::Decode {
                    section: sec.name.clone(),
                    location: symbolize(&syms, &sec.name, offset),
                    offset,
                    error,
                });
                insn_line(out, i, &insns[i..i + 1], UNKNOWN, opts);
                i += 1;
                continue;
            }
        };
        let n = n.min(end - i).max(1);
        let mut text = format_insn(&insn, opts.syntax);
        if opts.annotate && opts.syntax != Syntax::Ubpf {
            if let Some(target) = jump_target(&insn, i) {
                let addr = target.wrapping_mul(8) as u64;
                write!(text, " <{}>", symbolize(&syms, &sec.name, addr)).unwrap();
            }
        }
        insn_line(out, i, &insns[i..i + n], &text, opts);
        if opts.reloc {
            for slot in i..i + n {
                if let Some(r) = obj.relocation_at(sec.index, slot) {
                    writeln!(
                        out,
                        "\t\t{:016x}:  {}\t{}",
                        r.offset,
                        r.type_name(),
                        r.symbol
                    )
                    .unwrap();
                }
            }
        }
        i += n;
    }
}

/// Slot a jump lands on (`None` for non-jumps).
fn jump_target(insn: &Insn, index: usize) -> Option<i64> {
    let rel = match *insn {
        Insn::Ja { off } | Insn::MayGoto { off } | Insn::Jmp { off, .. } => off as i64,
        Insn::Gotol { imm } => imm as i64,
        _ => return None,
    };
    Some(index as i64 + 1 + rel)
}

/// `name+0xoff` for the last symbol at or before `addr`, else `section+0xaddr`.
fn symbolize(syms: &[(u64, String)], section: &str, addr: u64) -> String {
    match syms.iter().rev().find(|(v, _)| *v <= addr) {
        Some((v, name)) if *v == addr => name.clone(),
        Some((v, name)) => format!("{name}+{:#x}", addr - v),
        None if addr == 0 => section.to_string(),
        None => format!("{section}+{addr:#x}"),
    }
}

#[cfg(test)]
mod unknown_tests {
    use super::*;

    /// An instruction that does not decode is listed as llvm-objdump lists it, and the
    /// listing goes on.
    #[test]
    fn bad_instructions_are_unknown_and_the_listing_goes_on() {
        let insns = [
            RawInsn::new(0xb7, 0, 0, 0, 0),
            RawInsn::new(0x18, 15, 15, -1, -1), // lddw with r15
            RawInsn::new(0xff, 0, 0, 0, 0),     // no such opcode
            RawInsn::new(0x95, 0, 0, 0, 0),
        ];
        let (out, errors) = list_raw_lossy(&insns, &Options::default());
        assert_eq!(errors.len(), 2);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 4, "{out}");
        assert!(lines[1].ends_with("<unknown>"), "{out}");
        assert!(lines[2].ends_with("<unknown>"), "{out}");
        assert!(lines[3].ends_with("exit"), "{out}");
    }
}
