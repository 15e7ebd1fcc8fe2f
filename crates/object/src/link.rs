//! Linking, as libbpf does it (`bpf_object__relocate`): for each program, the entry
//! function followed by every sub-program it reaches (appended depth-first in order of
//! first call, `bpf_object__reloc_code`), call and callback offsets fixed, map and
//! global-variable references resolved to indices into the object's map table.

use std::collections::HashMap;

use crate::error::{ObjectError, Result};
use crate::model::{InsnOrigin, LinkedObject, LinkedProgram, MapOrigin, SourceLine};
use crate::{reloc_type, Object, Program, SectionKind, STT_SECTION};
use bpfkit_isa::{opcode, RawInsn};

/// `BPF_PSEUDO_CALL` / `BPF_PSEUDO_FUNC` / `BPF_PSEUDO_MAP_IDX` / `BPF_PSEUDO_MAP_IDX_VALUE`.
pub const PSEUDO_CALL: u8 = 1;
/// `BPF_JMP | BPF_CALL`.
pub const CALL_OPCODE: u8 = opcode::BPF_JMP | opcode::BPF_CALL;
pub const PSEUDO_FUNC: u8 = 4;
/// `BPF_PSEUDO_KFUNC_CALL`: the linker's form of a call to an extern function.
pub const KFUNC_CALL: u8 = opcode::BPF_PSEUDO_KFUNC_CALL;
pub const PSEUDO_MAP_IDX: u8 = 5;
pub const PSEUDO_MAP_IDX_VALUE: u8 = 6;

pub(crate) fn link(obj: &Object) -> Result<LinkedObject> {
    let lines = LineIndex::new(obj);
    let mut programs = Vec::with_capacity(obj.programs.len());
    for p in &obj.programs {
        let out = link_program(obj, p.function, true, Some(&lines), Some(p))?;
        programs.push(LinkedProgram {
            name: p.name.clone(),
            section: p.section.clone(),
            prog_type: p.prog_type,
            expected_attach_type: p.expected_attach_type,
            prog_flags: p.prog_flags,
            insns: out.insns,
            origins: out.origins,
        });
    }
    Ok(LinkedObject {
        programs,
        maps: obj.maps.clone(),
        license: obj.license.clone(),
        kernel_version: obj.kernel_version,
    })
}

/// Sub-programs (function indices) reached from `entry`, in the order they are appended.
pub(crate) fn subprogram_order(obj: &Object, entry: usize) -> Result<Vec<usize>> {
    Ok(link_program(obj, entry, false, None, None)?.order)
}

struct Linked {
    insns: Vec<RawInsn>,
    origins: Vec<InsnOrigin>,
    order: Vec<usize>,
}

/// Line info per section, sorted by slot.
struct LineIndex<'a> {
    by_section: HashMap<&'a str, Vec<&'a crate::btf_ext::LineInfo>>,
}

impl<'a> LineIndex<'a> {
    fn new(obj: &'a Object) -> Self {
        let mut by_section: HashMap<&str, Vec<_>> = HashMap::new();
        if let Some(ext) = &obj.btf_ext {
            for l in &ext.line_info {
                by_section.entry(l.section.as_str()).or_default().push(l);
            }
        }
        for v in by_section.values_mut() {
            v.sort_by_key(|l| l.insn_index);
        }
        LineIndex { by_section }
    }

    /// Last record at or before `slot` and not before `lo`.
    fn get(&self, section: &str, lo: usize, slot: usize) -> Option<SourceLine> {
        let v = self.by_section.get(section)?;
        let n = v.partition_point(|l| l.insn_index <= slot);
        let l = v.get(n.checked_sub(1)?)?;
        (l.insn_index >= lo).then(|| SourceLine {
            file: l.file.clone(),
            line: l.line,
            column: l.column,
            text: l.text.clone(),
        })
    }
}

struct Frame {
    func: usize,
    base: usize,
    next: usize,
}

fn link_program(
    obj: &Object,
    entry: usize,
    resolve_data: bool,
    lines: Option<&LineIndex<'_>>,
    prog: Option<&Program>,
) -> Result<Linked> {
    let mut insns: Vec<RawInsn> = Vec::new();
    let mut origins: Vec<InsnOrigin> = Vec::new();
    let mut placed: HashMap<usize, usize> = HashMap::new();
    let mut order = Vec::new();
    let entry_f = &obj.functions[entry];
    let prog_name = prog.map_or(entry_f.name.as_str(), |p| p.name.as_str());
    let append = |f: usize, insns: &mut Vec<RawInsn>, origins: &mut Vec<InsnOrigin>| -> usize {
        let func = &obj.functions[f];
        let sec = &obj.sections[func.section];
        let base = insns.len();
        let body = sec
            .insns
            .get(func.offset..func.offset + func.len)
            .unwrap_or(&[]);
        insns.extend_from_slice(body);
        if resolve_data {
            for i in 0..body.len() {
                let slot = func.offset + i;
                origins.push(InsnOrigin {
                    section: sec.name.clone(),
                    function: func.name.clone(),
                    insn_index: slot,
                    line: lines.and_then(|l| l.get(&sec.name, func.offset, slot)),
                });
            }
        }
        base
    };
    let base = append(entry, &mut insns, &mut origins);
    placed.insert(entry, base);
    let mut stack = vec![Frame {
        func: entry,
        base,
        next: 0,
    }];
    while let Some(top) = stack.last_mut() {
        let func = &obj.functions[top.func];
        if top.next >= func.len {
            stack.pop();
            continue;
        }
        let i = top.next;
        let out = top.base + i;
        let sec = &obj.sections[func.section];
        let slot = func.offset + i;
        let insn = insns[out];
        top.next += if insn.is_lddw() { 2 } else { 1 };
        let lerr = |reason: String| ObjectError::Link {
            program: prog_name.to_string(),
            section: sec.name.clone(),
            insn_index: slot,
            reason,
        };
        let relo = obj.relocation_at(func.section, slot);
        let is_call = insn.code == CALL_OPCODE && insn.src == PSEUDO_CALL;
        let sym_in_exec = relo
            .and_then(|r| obj.sections.get(r.symbol_section))
            .is_some_and(|s| s.is_executable());
        let is_func_ref =
            insn.is_lddw() && (insn.src == PSEUDO_FUNC || (relo.is_some() && sym_in_exec));
        if is_call && relo.is_some_and(|r| r.symbol_section == 0) {
            // A call to an extern function: a kfunc (libbpf resolves it against the
            // kernel's BTF). Emit BPF_PSEUDO_KFUNC_CALL with bpfkit's number for the
            // kfunc (`bpfkit_isa::kfunc`, 0 when unknown) in place of the BTF id the
            // loader puts in; `Object::kfunc_calls` names it. The verifier answers
            // "undecided" for what it cannot check, and the other programs of the
            // object are unaffected.
            let name = relo.map(|r| r.symbol.as_str()).unwrap_or("");
            let o = &mut insns[out];
            o.src = KFUNC_CALL;
            o.imm = bpfkit_isa::kfunc::number(name);
            o.off = 0;
            continue;
        }
        if is_call || is_func_ref {
            // Target slot in some section, as libbpf computes `sub_insn_idx`.
            let (tsec, tslot): (usize, i64) = match relo {
                Some(r) => {
                    if r.symbol_section == 0 {
                        return Err(lerr(format!(
                            "call to extern function `{}` (a kfunc or another object's function) is not supported",
                            r.symbol
                        )));
                    }
                    let ts = obj.sections.get(r.symbol_section).filter(|s| s.is_executable()).ok_or_else(|| {
                        lerr(format!("call/function reference relocated against `{}`, which is not in a code section", r.symbol))
                    })?;
                    if is_call && r.r_type != reloc_type::R_BPF_64_32 {
                        return Err(lerr(format!(
                            "call relocated with {}, expected R_BPF_64_32",
                            r.type_name()
                        )));
                    }
                    // clang emits src 0 for a function address; libbpf marks it
                    // BPF_PSEUDO_FUNC. Any other pseudo source is a contradiction.
                    if is_func_ref && insn.src != 0 && insn.src != PSEUDO_FUNC {
                        return Err(lerr(format!(
                            "lddw relocated against function `{}` has src_reg {} (expected 0 or BPF_PSEUDO_FUNC)",
                            r.symbol, insn.src
                        )));
                    }
                    if is_call && ts.kind != SectionKind::Text {
                        return Err(lerr(format!(
                            "call to `{}` in section `{}`: sub-programs must be in .text (as libbpf requires)",
                            r.symbol, ts.name
                        )));
                    }
                    let sym_slot = (r.symbol_value / 8) as i64;
                    let t = if is_call {
                        sym_slot + insn.imm as i64 + 1
                    } else {
                        (r.symbol_value as i64 + insn.imm as i64) / 8
                    };
                    (ts.index, t)
                }
                None => (func.section, slot as i64 + insn.imm as i64 + 1),
            };
            let tf = usize::try_from(tslot)
                .ok()
                .and_then(|ts| {
                    obj.functions
                        .iter()
                        .position(|f| f.section == tsec && f.offset <= ts && ts < f.offset + f.len)
                })
                .ok_or_else(|| {
                    lerr(format!(
                        "{} target slot {tslot} of section `{}` is not inside any function",
                        if is_call {
                            "call"
                        } else {
                            "function reference"
                        },
                        obj.sections[tsec].name
                    ))
                })?;
            let tbase = match placed.get(&tf) {
                Some(&b) => b,
                None => {
                    let b = append(tf, &mut insns, &mut origins);
                    placed.insert(tf, b);
                    order.push(tf);
                    stack.push(Frame {
                        func: tf,
                        base: b,
                        next: 0,
                    });
                    b
                }
            };
            let target_out = tbase as i64 + (tslot - obj.functions[tf].offset as i64);
            let imm = i32::try_from(target_out - out as i64 - 1)
                .map_err(|_| lerr("linked call offset does not fit in 32 bits".into()))?;
            insns[out].imm = imm;
            if is_func_ref {
                insns[out].src = PSEUDO_FUNC;
            }
            continue;
        }
        let Some(r) = relo else { continue };
        if !resolve_data {
            continue;
        }
        if !insn.is_lddw() || r.r_type != reloc_type::R_BPF_64_64 {
            return Err(lerr(format!(
                "{} relocation on opcode {:#04x} is not supported",
                r.type_name(),
                insn.code
            )));
        }
        if out + 1 >= insns.len() {
            return Err(lerr("lddw is missing its second slot".into()));
        }
        let Some(ssec) = obj
            .sections
            .get(r.symbol_section)
            .filter(|_| r.symbol_section != 0)
        else {
            return Err(lerr(format!(
                "reference to undefined (extern) symbol `{}` is not supported",
                r.symbol
            )));
        };
        let sym_is_section = obj
            .symbols
            .get(r.symbol_index)
            .is_some_and(|s| s.sym_type == STT_SECTION);
        match ssec.kind {
            SectionKind::Maps | SectionKind::LegacyMaps => {
                let off = if sym_is_section { r.symbol_value.wrapping_add(insn.imm as i64 as u64) } else { r.symbol_value };
                let idx = obj
                    .maps
                    .iter()
                    .zip(&obj.map_locations)
                    .position(|(m, &(s, o))| s == ssec.index && o == off && m.origin != MapOrigin::GlobalData)
                    .ok_or_else(|| lerr(format!("`{}` at offset {off:#x} of `{}` is not a map", r.symbol, ssec.name)))?;
                insns[out].src = PSEUDO_MAP_IDX;
                insns[out].imm = idx as i32;
                insns[out + 1].imm = 0;
            }
            SectionKind::Data | SectionKind::Rodata | SectionKind::Bss => {
                let idx = obj
                    .maps
                    .iter()
                    .zip(&obj.map_locations)
                    .position(|(m, &(s, _))| s == ssec.index && m.origin == MapOrigin::GlobalData)
                    .ok_or_else(|| lerr(format!("no map for global data section `{}`", ssec.name)))?;
                let off = (insn.imm as i64).wrapping_add(r.symbol_value as i64);
                let size = obj.maps[idx].value_size as i64;
                if off < 0 || off >= size.max(1) {
                    return Err(lerr(format!(
                        "global variable `{}` offset {off} is outside `{}` ({size} bytes)",
                        r.symbol, ssec.name
                    )));
                }
                insns[out].src = PSEUDO_MAP_IDX_VALUE;
                insns[out].imm = idx as i32;
                insns[out + 1].imm = off as i32;
            }
            _ => {
                return Err(lerr(format!(
                    "lddw relocated against `{}` in section `{}`, which is neither a map nor global data",
                    r.symbol, ssec.name
                )))
            }
        }
    }
    Ok(Linked {
        insns,
        origins,
        order,
    })
}
