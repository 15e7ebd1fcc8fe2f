//! What `BPF_BTF_LOAD` and `BPF_PROG_LOAD` need from the object's BTF, prepared the way
//! libbpf prepares it: the `.BTF` blob with DATASEC sizes and variable offsets filled in
//! (`btf_fixup_datasec`), and per linked program the `func_info` / `line_info` records
//! re-based on the linked instruction stream.

use crate::btf::{BtfKind, VAR_GLOBAL_EXTERN, VAR_STATIC};
use crate::error::ObjectError;
use crate::model::LinkedProgram;
use crate::{Object, STB_GLOBAL, STB_WEAK, STT_OBJECT};

/// One `struct bpf_func_info` (insn index in the linked program, BTF FUNC type id).
pub type FuncInfoRecord = [u32; 2];
/// One `struct bpf_line_info` (insn index, file_name_off, line_off, line << 10 | col).
pub type LineInfoRecord = [u32; 4];

/// `BTF_FUNC_*` linkage of a BTF FUNC (`enum btf_func_linkage`).
pub const FUNC_STATIC: u32 = 0;
pub const FUNC_GLOBAL: u32 = 1;
pub const FUNC_EXTERN: u32 = 2;

/// One function (sub-program) of a linked program as its `func_info` describes it: what
/// the kernel's verifier knows of it (`subprog_aux(env, i)->linkage`, the FUNC_PROTO
/// `btf_prepare_func_args` reads).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkedFunc {
    /// Linked index of the function's first instruction.
    pub insn: usize,
    /// Name of the BTF FUNC.
    pub name: String,
    /// BTF id of the FUNC type (in the object's `.BTF`).
    pub func_type_id: u32,
    /// [`FUNC_STATIC`], [`FUNC_GLOBAL`] or [`FUNC_EXTERN`].
    pub linkage: u32,
    /// BTF id of the FUNC's FUNC_PROTO (its parameters and return type).
    pub proto_type_id: u32,
}

impl Object {
    /// The `.BTF` section as the kernel should get it: clang leaves DATASEC sizes and the
    /// offsets of global variables 0, so, as libbpf's `btf_fixup_datasec` does, a DATASEC
    /// of size 0 gets its ELF section's size, each non-static variable its symbol's value,
    /// and the variables are sorted by offset. `.kconfig`/`.ksyms` are left alone.
    /// `None` when the object has no BTF.
    pub fn kernel_btf(&self) -> Result<Option<Vec<u8>>, ObjectError> {
        let Some(btf) = &self.btf else {
            return Ok(None);
        };
        let Some(sec) = self
            .sections
            .iter()
            .find(|s| s.kind == crate::SectionKind::Btf)
        else {
            return Ok(None);
        };
        let mut out = sec.data.clone();
        let err = |off: usize, field: &str, reason: String| {
            ObjectError::section(".BTF", sec.index, off as u64, field, reason)
        };
        for t in &btf.types {
            let BtfKind::Datasec { size, vars } = &t.kind else {
                continue;
            };
            if t.name == ".kconfig" || t.name == ".ksyms" {
                continue;
            }
            let rec = btf
                .record_offset(t.id)
                .ok_or_else(|| err(0, "DATASEC", format!("type [{}] missing", t.id)))?;
            let mut vars = vars.clone();
            if *size == 0 {
                let elf_size = self.section(&t.name).map(|s| s.size).unwrap_or(0);
                if elf_size == 0 || elf_size > u32::MAX as u64 {
                    return Err(err(
                        rec,
                        "DATASEC.size",
                        format!("DATASEC `{}`: cannot take its size from the ELF section (size {elf_size})", t.name),
                    ));
                }
                put(&mut out, rec + 8, elf_size as u32);
                for v in vars.iter_mut() {
                    let Some(var) = btf.get(v.type_id) else {
                        continue;
                    };
                    let BtfKind::Var { linkage, .. } = var.kind else {
                        return Err(err(
                            rec,
                            "DATASEC",
                            format!("`{}` entry [{}] is not a VAR", t.name, v.type_id),
                        ));
                    };
                    if linkage == VAR_STATIC || linkage == VAR_GLOBAL_EXTERN {
                        continue;
                    }
                    let sym = self
                        .symbols
                        .iter()
                        .find(|s| {
                            s.sym_type == STT_OBJECT
                                && (s.bind == STB_GLOBAL || s.bind == STB_WEAK)
                                && s.name == var.name
                        })
                        .ok_or_else(|| {
                            err(
                                rec,
                                "DATASEC",
                                format!("no symbol for variable `{}` of `{}`", var.name, t.name),
                            )
                        })?;
                    v.offset = u32::try_from(sym.value).map_err(|_| {
                        err(
                            rec,
                            "DATASEC",
                            format!("symbol `{}` offset out of range", var.name),
                        )
                    })?;
                }
            }
            vars.sort_by_key(|v| v.offset);
            for (i, v) in vars.iter().enumerate() {
                let at = rec + 12 + 12 * i;
                put(&mut out, at, v.type_id);
                put(&mut out, at + 4, v.offset);
                put(&mut out, at + 8, v.size);
            }
        }
        Ok(Some(out))
    }

    /// `func_info` for `BPF_PROG_LOAD`: one record per function in the linked program, at
    /// the linked index of its first instruction, with its BTF FUNC type.
    pub fn linked_func_info(&self, prog: &LinkedProgram) -> Vec<FuncInfoRecord> {
        let Some(ext) = &self.btf_ext else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (i, o) in prog.origins.iter().enumerate() {
            if let Some(f) = ext
                .func_info
                .iter()
                .find(|f| f.section == o.section && f.insn_index == o.insn_index)
            {
                let starts_function = i == 0 || prog.origins[i - 1].function != o.function;
                if starts_function {
                    out.push([i as u32, f.type_id]);
                }
            }
        }
        out
    }

    /// The functions of a linked program with their BTF linkage and prototype, in
    /// instruction order (one per [`Object::linked_func_info`] record whose type is a
    /// BTF FUNC). Empty when the object has no `.BTF`/`.BTF.ext`.
    pub fn linked_funcs(&self, prog: &LinkedProgram) -> Vec<LinkedFunc> {
        let Some(btf) = &self.btf else {
            return Vec::new();
        };
        self.linked_func_info(prog)
            .into_iter()
            .filter_map(|[insn, type_id]| {
                let t = btf.get(type_id)?;
                let BtfKind::Func { proto, linkage } = t.kind else {
                    return None;
                };
                Some(LinkedFunc {
                    insn: insn as usize,
                    name: t.name.clone(),
                    func_type_id: type_id,
                    linkage,
                    proto_type_id: proto,
                })
            })
            .collect()
    }

    /// `line_info` for `BPF_PROG_LOAD`: every record of every function in the linked
    /// program, at the linked index of the instruction it describes.
    pub fn linked_line_info(&self, prog: &LinkedProgram) -> Vec<LineInfoRecord> {
        let Some(ext) = &self.btf_ext else {
            return Vec::new();
        };
        let mut by_slot: std::collections::HashMap<(&str, usize), &crate::btf_ext::LineInfo> =
            Default::default();
        for l in &ext.line_info {
            by_slot
                .entry((l.section.as_str(), l.insn_index))
                .or_insert(l);
        }
        prog.origins
            .iter()
            .enumerate()
            .filter_map(|(i, o)| {
                by_slot
                    .get(&(o.section.as_str(), o.insn_index))
                    .map(|l| [i as u32, l.file_name_off, l.line_off, l.line_col])
            })
            .collect()
    }
}

fn put(buf: &mut [u8], at: usize, v: u32) {
    if let Some(b) = buf.get_mut(at..at + 4) {
        b.copy_from_slice(&v.to_le_bytes());
    }
}
