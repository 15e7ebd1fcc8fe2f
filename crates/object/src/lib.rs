//! eBPF ELF object reader (see `docs/object.md`).
//!
//! [`Object::parse`] reads a relocatable eBPF ELF object the way libbpf does: sections,
//! function symbols, programs (typed from the section name), maps (BTF-defined `.maps`,
//! legacy `maps`, global data sections), relocations, BTF and `.BTF.ext` line info.
//! [`Object::link`] then produces a [`model::LinkedObject`]: every program linked the
//! way libbpf links it, plus the object's map table — the contract between this crate
//! and its consumers (VM, JIT, verifier, loader, replay).
//!
//! No input makes this crate panic: every read is bounds-checked and every problem is an
//! [`ObjectError`] naming the section, offset and field.

// `u64::is_multiple_of` needs Rust 1.87; the workspace's rust-version is 1.85.
#![allow(clippy::manual_is_multiple_of)]

pub mod btf;
pub mod btf_ext;
mod elf;
pub mod error;
pub mod kernel_btf;
mod link;
mod maps;
pub mod model;
pub mod secdef;

pub use btf::Btf;
pub use btf_ext::BtfExt;
pub use error::ObjectError;
pub use model::{InsnOrigin, LinkedObject, LinkedProgram, MapDef, MapInit, MapOrigin, SourceLine};

use bpfkit_isa::RawInsn;

/// What libbpf makes of a section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SectionKind {
    /// Index 0.
    Null,
    /// Executable section other than `.text`: its functions are programs.
    Program,
    /// `.text`: sub-programs.
    Text,
    /// `.maps`: BTF-defined maps.
    Maps,
    /// `maps`: legacy `struct bpf_map_def` maps.
    LegacyMaps,
    /// `.data`, `.data.*`.
    Data,
    /// `.rodata`, `.rodata.*`.
    Rodata,
    /// `.bss`, `.bss.*`.
    Bss,
    License,
    Version,
    Btf,
    BtfExt,
    Symtab,
    Strtab,
    /// `SHT_REL` / `SHT_RELA`.
    Reloc,
    /// Anything else (DWARF, `.llvm_addrsig`, ...).
    Other,
}

/// One ELF section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    pub index: usize,
    pub name: String,
    pub kind: SectionKind,
    pub sh_type: u32,
    pub flags: u64,
    /// File offset of the data.
    pub offset: u64,
    pub size: u64,
    pub link: u32,
    pub info: u32,
    pub entsize: u64,
    /// Section contents (empty for `SHT_NOBITS`).
    pub data: Vec<u8>,
    /// Instruction slots, for executable sections.
    pub insns: Vec<RawInsn>,
}

impl Section {
    pub fn is_executable(&self) -> bool {
        matches!(self.kind, SectionKind::Program | SectionKind::Text)
    }
    /// `SHT_*` name as readelf prints it.
    pub fn type_name(&self) -> &'static str {
        elf::sht_name(self.sh_type)
    }
}

/// An ELF symbol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Symbol {
    pub index: usize,
    pub name: String,
    pub value: u64,
    pub size: u64,
    /// `STT_*`.
    pub sym_type: u8,
    /// `STB_*`.
    pub bind: u8,
    /// Section index (`st_shndx`), 0 for undefined.
    pub shndx: usize,
}

pub const STT_NOTYPE: u8 = 0;
pub const STT_OBJECT: u8 = 1;
pub const STT_FUNC: u8 = 2;
pub const STT_SECTION: u8 = 3;
pub const STB_LOCAL: u8 = 0;
pub const STB_GLOBAL: u8 = 1;
pub const STB_WEAK: u8 = 2;

/// A function symbol in an executable section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Function {
    pub name: String,
    /// ELF section index.
    pub section: usize,
    pub section_name: String,
    /// First slot within the section.
    pub offset: usize,
    /// Number of slots.
    pub len: usize,
    /// `STB_GLOBAL`/`STB_WEAK` (true) or `STB_LOCAL` (false).
    pub global: bool,
}

/// ELF relocation types for BPF.
pub mod reloc_type {
    pub const R_BPF_NONE: u32 = 0;
    pub const R_BPF_64_64: u32 = 1;
    pub const R_BPF_64_ABS64: u32 = 2;
    pub const R_BPF_64_ABS32: u32 = 3;
    pub const R_BPF_64_NODYLD32: u32 = 4;
    pub const R_BPF_64_32: u32 = 10;

    /// Name as llvm-readelf prints it.
    pub fn name(t: u32) -> &'static str {
        match t {
            R_BPF_NONE => "R_BPF_NONE",
            R_BPF_64_64 => "R_BPF_64_64",
            R_BPF_64_ABS64 => "R_BPF_64_ABS64",
            R_BPF_64_ABS32 => "R_BPF_64_ABS32",
            R_BPF_64_NODYLD32 => "R_BPF_64_NODYLD32",
            R_BPF_64_32 => "R_BPF_64_32",
            _ => "unknown",
        }
    }
}

/// One relocation entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relocation {
    /// Index of the `SHT_REL` section holding the entry.
    pub rel_section: usize,
    pub rel_section_name: String,
    /// Index of the section being relocated (`sh_info`).
    pub section: usize,
    pub section_name: String,
    /// `r_offset`: byte offset in the relocated section.
    pub offset: u64,
    /// `r_type` (see [`reloc_type`]).
    pub r_type: u32,
    /// Symbol table index and the symbol's name, value and section.
    pub symbol_index: usize,
    pub symbol: String,
    pub symbol_value: u64,
    pub symbol_section: usize,
    /// `r_addend` for `SHT_RELA` (never emitted for BPF).
    pub addend: Option<i64>,
}

impl Relocation {
    /// Slot index in the relocated section (`offset / 8`).
    pub fn insn_index(&self) -> u64 {
        self.offset / 8
    }
    pub fn type_name(&self) -> &'static str {
        reloc_type::name(self.r_type)
    }
}

/// One program: an entry function of an executable section other than `.text`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Program {
    pub name: String,
    pub section: String,
    pub section_index: usize,
    /// Index into [`Object::functions`].
    pub function: usize,
    /// `enum bpf_prog_type`; 0 (unspec) when libbpf would not recognise the section.
    pub prog_type: u32,
    pub expected_attach_type: Option<u32>,
    pub prog_flags: u32,
    /// First slot within the section and number of slots.
    pub offset: usize,
    pub len: usize,
    /// Sub-programs the program calls (directly or not), in link order.
    pub subprograms: Vec<String>,
}

/// An eBPF ELF object, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Object {
    /// Object name (file name up to the first `.`), used to name global-data maps.
    pub name: String,
    pub sections: Vec<Section>,
    pub symbols: Vec<Symbol>,
    pub functions: Vec<Function>,
    pub relocations: Vec<Relocation>,
    pub programs: Vec<Program>,
    /// The map table, in libbpf's order: legacy maps, BTF maps, global data.
    pub maps: Vec<MapDef>,
    /// Where each map lives: (section index, offset in section) — parallel to `maps`.
    pub map_locations: Vec<(usize, u64)>,
    pub license: String,
    pub kernel_version: Option<u32>,
    pub btf: Option<Btf>,
    pub btf_ext: Option<BtfExt>,
    /// What bpfkit read although libbpf would refuse or read it differently (iproute2 and
    /// Cilium map definitions, pinning values, static programs), each saying what libbpf
    /// would do.
    pub warnings: Vec<String>,
    /// iproute2's `struct bpf_elf_map` fields beyond libbpf's 20-byte `bpf_map_def`, by
    /// map name, for legacy definitions longer than 20 bytes.
    pub elf_map_extra: std::collections::BTreeMap<String, ElfMapExtra>,
    /// (section index, r_offset) -> index into `relocations`.
    reloc_index: std::collections::HashMap<(usize, u64), usize>,
    /// Section name -> indices into `btf_ext.line_info`, sorted by slot.
    line_index: std::collections::HashMap<String, Vec<usize>>,
}

/// The fields iproute2's (and Cilium's) `struct bpf_elf_map` adds after libbpf's
/// `bpf_map_def`: `id`, `pinning` (`PIN_NONE` 0, `PIN_OBJECT_NS` 1, `PIN_GLOBAL_NS` 2),
/// `inner_id`, `inner_idx`. Absent fields (a 28-byte definition has no `inner_*`) are 0.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ElfMapExtra {
    pub def_size: u32,
    pub id: u32,
    pub pinning: u32,
    pub inner_id: u32,
    pub inner_idx: u32,
}

/// libbpf's object name for a path: the file name up to its first `.`.
pub fn object_name_from_path(path: &std::path::Path) -> String {
    let base = path
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    match base.find('.') {
        Some(i) => base[..i].to_string(),
        None => base,
    }
}

impl Object {
    /// Reads an object with an empty object name (global-data maps are then named
    /// `.data`, `.rodata`, ...). See [`Object::parse_named`].
    pub fn parse(bytes: &[u8]) -> Result<Object, ObjectError> {
        Self::parse_named(bytes, "")
    }

    /// Reads an object; `name` is the object name libbpf would use (the file name up to
    /// its first `.`, see [`object_name_from_path`]), which prefixes global-data map names.
    pub fn parse_named(bytes: &[u8], name: &str) -> Result<Object, ObjectError> {
        let raw = elf::read(bytes)?;
        let mut obj = Object {
            name: name.to_string(),
            sections: raw.sections,
            symbols: raw.symbols,
            functions: Vec::new(),
            relocations: raw.relocations,
            programs: Vec::new(),
            maps: Vec::new(),
            map_locations: Vec::new(),
            license: String::new(),
            kernel_version: None,
            btf: None,
            btf_ext: None,
            warnings: Vec::new(),
            elf_map_extra: Default::default(),
            reloc_index: Default::default(),
            line_index: Default::default(),
        };
        for (i, r) in obj.relocations.iter().enumerate() {
            obj.reloc_index.entry((r.section, r.offset)).or_insert(i);
        }
        obj.read_special_sections()?;
        if let Some(ext) = &obj.btf_ext {
            for (i, l) in ext.line_info.iter().enumerate() {
                obj.line_index.entry(l.section.clone()).or_default().push(i);
            }
            for v in obj.line_index.values_mut() {
                v.sort_by_key(|&i| ext.line_info[i].insn_index);
            }
        }
        obj.collect_functions()?;
        obj.check_program_relocations()?;
        maps::collect(&mut obj)?;
        obj.collect_programs()?;
        Ok(obj)
    }

    /// Gives programs in sections libbpf does not recognise (type 0) type `prog_type`, as
    /// libxdp-based loaders and `bpftool prog load ... type xdp` do for
    /// `SEC("xdp_foo")`. Returns one warning per program so typed.
    pub fn set_unknown_prog_type(&mut self, prog_type: u32) -> Vec<String> {
        let mut out = Vec::new();
        for p in self.programs.iter_mut().filter(|p| p.prog_type == 0) {
            p.prog_type = prog_type;
            out.push(format!(
                "program `{}` in section `{}`, which libbpf does not recognise, is loaded as type {} (--prog-type)",
                p.name,
                p.section,
                secdef::prog_type_name(prog_type)
            ));
        }
        out
    }

    /// Sets a map's `max_entries` before linking, as libbpf's `bpf_map__set_max_entries`
    /// does before load (maps declared with `max_entries = 0` and sized at load time).
    /// `name` is the map's name (libbpf's or the real one).
    pub fn set_max_entries(&mut self, name: &str, max_entries: u32) -> Result<(), String> {
        let obj_name = self.name.clone();
        let m = self
            .maps
            .iter_mut()
            .find(|m| m.name == name || maps::internal_map_name(&obj_name, &m.name) == name)
            .ok_or_else(|| format!("no map named `{name}`"))?;
        if max_entries == 0 {
            return Err(format!("map `{name}`: max_entries must be at least 1"));
        }
        m.max_entries = max_entries;
        Ok(())
    }

    /// Section by name.
    pub fn section(&self, name: &str) -> Option<&Section> {
        self.sections.iter().find(|s| s.name == name)
    }

    /// Program by name.
    pub fn program(&self, name: &str) -> Option<&Program> {
        self.programs.iter().find(|p| p.name == name)
    }

    /// Relocations applying to section `index`.
    pub fn relocations_for(&self, index: usize) -> impl Iterator<Item = &Relocation> {
        self.relocations.iter().filter(move |r| r.section == index)
    }

    /// The relocation at slot `slot` of section `index`, if any.
    pub fn relocation_at(&self, index: usize, slot: usize) -> Option<&Relocation> {
        let i = *self
            .reloc_index
            .get(&(index, (slot as u64).checked_mul(8)?))?;
        self.relocations.get(i)
    }

    /// The function containing slot `slot` of section `index`.
    pub fn function_at(&self, index: usize, slot: usize) -> Option<&Function> {
        // `functions` is sorted by (section, offset).
        let n = self
            .functions
            .partition_point(|f| (f.section, f.offset) <= (index, slot));
        self.functions[..n]
            .iter()
            .rev()
            .take_while(|f| f.section == index)
            .find(|f| slot < f.offset + f.len)
    }

    /// The line-info record that starts exactly at `slot` of section `section` (what
    /// `llvm-objdump -S` prints before that instruction).
    pub fn line_info_at(&self, section: &str, slot: usize) -> Option<SourceLine> {
        let ext = self.btf_ext.as_ref()?;
        let idx = self.line_index.get(section)?;
        let n = idx.partition_point(|&i| ext.line_info[i].insn_index < slot);
        idx.get(n)
            .map(|&i| &ext.line_info[i])
            .filter(|l| l.insn_index == slot)
            .map(to_source_line)
    }

    /// The source position of `slot` of section `section`: the last line-info record at
    /// or before it within the same function.
    pub fn source_line(&self, section: &str, slot: usize) -> Option<SourceLine> {
        let ext = self.btf_ext.as_ref()?;
        let sec_idx = self.section(section)?.index;
        let lo = self
            .function_at(sec_idx, slot)
            .map(|f| f.offset)
            .unwrap_or(0);
        let idx = self.line_index.get(section)?;
        let n = idx.partition_point(|&i| ext.line_info[i].insn_index <= slot);
        let l = &ext.line_info[*idx.get(n.checked_sub(1)?)?];
        (l.insn_index >= lo).then(|| to_source_line(l))
    }

    /// Links every program (see [`model`] for the conventions of the result).
    pub fn link(&self) -> Result<LinkedObject, ObjectError> {
        link::link(self)
    }

    /// The kfunc calls of a linked program: (linked index, extern function name) of
    /// every `call` the linker emitted as `BPF_PSEUDO_KFUNC_CALL` (a call to an
    /// extern function, whose BTF id only the kernel's BTF can give).
    pub fn kfunc_calls(&self, prog: &LinkedProgram) -> Vec<(usize, String)> {
        let mut out = Vec::new();
        for (i, insn) in prog.insns.iter().enumerate() {
            if insn.code != link::CALL_OPCODE || insn.src != link::KFUNC_CALL {
                continue;
            }
            let Some(o) = prog.origins.get(i) else {
                continue;
            };
            let name = self
                .sections
                .iter()
                .find(|s| s.name == o.section)
                .and_then(|s| self.relocation_at(s.index, o.insn_index))
                .map(|r| r.symbol.clone())
                .unwrap_or_default();
            out.push((i, name));
        }
        out
    }

    fn read_special_sections(&mut self) -> Result<(), ObjectError> {
        let mut btf_idx = None;
        let mut ext_idx = None;
        for s in &self.sections {
            match s.kind {
                SectionKind::License => {
                    let end = s.data.iter().position(|&b| b == 0).unwrap_or(s.data.len());
                    self.license = String::from_utf8_lossy(&s.data[..end]).into_owned();
                }
                SectionKind::Version => {
                    if s.data.len() != 4 {
                        return Err(ObjectError::section(
                            &s.name,
                            s.index,
                            0,
                            "version",
                            format!("size {} (expected 4 bytes)", s.data.len()),
                        ));
                    }
                    self.kernel_version = Some(u32::from_le_bytes([
                        s.data[0], s.data[1], s.data[2], s.data[3],
                    ]));
                }
                SectionKind::Btf => btf_idx = Some(s.index),
                SectionKind::BtfExt => ext_idx = Some(s.index),
                _ => {}
            }
        }
        if let Some(i) = btf_idx {
            let btf = Btf::parse(&self.sections[i].data, i)?;
            if let Some(j) = ext_idx {
                self.btf_ext = Some(BtfExt::parse(&self.sections[j].data, j, &btf)?);
            }
            self.btf = Some(btf);
        }
        Ok(())
    }

    fn collect_functions(&mut self) -> Result<(), ObjectError> {
        let mut funcs = Vec::new();
        for sym in &self.symbols {
            if sym.sym_type != STT_FUNC {
                continue;
            }
            let Some(sec) = self.sections.get(sym.shndx) else {
                continue;
            };
            if !sec.is_executable() {
                continue;
            }
            let err = |field: &str, reason: String| {
                ObjectError::section(
                    &sec.name,
                    sec.index,
                    sym.value,
                    field,
                    format!("function `{}`: {reason}", sym.name),
                )
            };
            if sym.value % 8 != 0 || sym.size % 8 != 0 {
                return Err(err(
                    "st_value/st_size",
                    format!(
                        "offset {:#x} / size {:#x} not a multiple of 8",
                        sym.value, sym.size
                    ),
                ));
            }
            let end = sym.value.checked_add(sym.size);
            if end.is_none_or(|e| e > sec.data.len() as u64) {
                return Err(err(
                    "st_value/st_size",
                    format!(
                        "[{:#x}, +{:#x}) runs past the section end ({:#x})",
                        sym.value,
                        sym.size,
                        sec.data.len()
                    ),
                ));
            }
            funcs.push(Function {
                name: sym.name.clone(),
                section: sec.index,
                section_name: sec.name.clone(),
                offset: (sym.value / 8) as usize,
                len: (sym.size / 8) as usize,
                global: sym.bind != STB_LOCAL,
            });
        }
        // A program section without any function symbol (old clang output, iproute2-era
        // samples): iproute2 loads a section by name, libbpf finds no program in it.
        // The whole section becomes one program named after it.
        let mut unnamed = Vec::new();
        for sec in &self.sections {
            if sec.kind == SectionKind::Program
                && !sec.insns.is_empty()
                && !funcs.iter().any(|f| f.section == sec.index)
            {
                unnamed.push(sec.name.clone());
                funcs.push(Function {
                    name: sec.name.clone(),
                    section: sec.index,
                    section_name: sec.name.clone(),
                    offset: 0,
                    len: sec.insns.len(),
                    global: true,
                });
            }
        }
        if !unnamed.is_empty() {
            self.warnings.push(format!(
                "section{} {} ha{} no function symbol: each is one program named after its section, as iproute2 loads a section by name (libbpf finds no program there)",
                if unnamed.len() == 1 { "" } else { "s" },
                unnamed.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", "),
                if unnamed.len() == 1 { "s" } else { "ve" }
            ));
        }
        funcs.sort_by_key(|f| (f.section, f.offset));
        self.functions = funcs;
        Ok(())
    }

    /// Checks every relocation in an executable section: aligned, inside the section, on
    /// an `lddw` (R_BPF_64_64) or a BPF-to-BPF call (R_BPF_64_32).
    fn check_program_relocations(&self) -> Result<(), ObjectError> {
        for r in &self.relocations {
            let Some(sec) = self.sections.get(r.section) else {
                continue;
            };
            if !sec.is_executable() {
                continue;
            }
            let err = |reason: String| ObjectError::Reloc {
                rel_section: r.rel_section_name.clone(),
                section: r.section_name.clone(),
                offset: r.offset,
                insn_index: r.insn_index(),
                symbol: r.symbol.clone(),
                reason,
            };
            if r.offset % 8 != 0 {
                return Err(err(
                    "offset is not a multiple of 8 (not on an instruction boundary)".into(),
                ));
            }
            let Some(insn) = sec.insns.get(r.insn_index() as usize) else {
                return Err(err(format!(
                    "offset past the end of the section ({} instructions)",
                    sec.insns.len()
                )));
            };
            match r.r_type {
                reloc_type::R_BPF_64_64 => {
                    if !insn.is_lddw() {
                        return Err(err(format!(
                            "R_BPF_64_64 must point at an lddw (opcode 0x18), found opcode {:#04x}",
                            insn.code
                        )));
                    }
                    if sec.insns.get(r.insn_index() as usize + 1).is_none() {
                        return Err(err(
                            "lddw is missing its second slot at the section end".into()
                        ));
                    }
                }
                reloc_type::R_BPF_64_32 => {
                    if insn.code != link::CALL_OPCODE || insn.src != 1 {
                        return Err(err(format!(
                            "R_BPF_64_32 must point at a BPF-to-BPF call (opcode 0x85, src 1), found opcode {:#04x} src {}",
                            insn.code, insn.src
                        )));
                    }
                }
                t => {
                    return Err(err(format!(
                        "relocation type {} ({t}) is not supported in a program section",
                        reloc_type::name(t)
                    )))
                }
            }
        }
        Ok(())
    }

    fn collect_programs(&mut self) -> Result<(), ObjectError> {
        let mut progs = Vec::new();
        let mut static_progs = Vec::new();
        for (fi, f) in self.functions.iter().enumerate() {
            let sec = &self.sections[f.section];
            if sec.kind != SectionKind::Program {
                continue;
            }
            if !f.global {
                static_progs.push(format!("`{}` (section `{}`)", f.name, sec.name));
            }
            let def = secdef::lookup(&sec.name);
            progs.push(Program {
                name: f.name.clone(),
                section: sec.name.clone(),
                section_index: sec.index,
                function: fi,
                prog_type: def.map_or(0, |d| d.prog_type),
                expected_attach_type: def.and_then(|d| d.expected_attach_type),
                prog_flags: def.map_or(0, |d| d.prog_flags),
                offset: f.offset,
                len: f.len,
                subprograms: Vec::new(),
            });
        }
        self.programs = progs;
        if !static_progs.is_empty() {
            let n = static_progs.len();
            let shown: Vec<&str> = static_progs.iter().take(5).map(String::as_str).collect();
            self.warnings.push(format!(
                "{n} static program{} outside .text ({}{}): libbpf refuses them (it only accepts global programs there); iproute2 and Cilium's loader load them",
                if n == 1 { "" } else { "s" },
                shown.join(", "),
                if n > 5 { format!(" and {} more", n - 5) } else { String::new() }
            ));
        }
        for i in 0..self.programs.len() {
            // The call graph as the linker walks it; errors show up again in `link`.
            let subs = link::subprogram_order(self, self.programs[i].function).unwrap_or_default();
            self.programs[i].subprograms = subs
                .into_iter()
                .map(|fi| self.functions[fi].name.clone())
                .collect();
        }
        Ok(())
    }
}

fn to_source_line(l: &btf_ext::LineInfo) -> SourceLine {
    SourceLine {
        file: l.file.clone(),
        line: l.line,
        column: l.column,
        text: l.text.clone(),
    }
}
