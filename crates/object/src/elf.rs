//! Low-level ELF reading on top of goblin, with every offset checked before use.

use crate::error::{ObjectError, Result};
use crate::{Relocation, Section, SectionKind, Symbol};
use goblin::container::{Container, Ctx};
use goblin::elf::header::{self, Header};
use goblin::elf::section_header::{self as sh, SectionHeader};
use goblin::elf::sym::Sym;

pub const EM_BPF: u16 = 247;
const SHDR_SIZE: usize = 64;

pub(crate) struct RawElf {
    pub sections: Vec<Section>,
    pub symbols: Vec<Symbol>,
    pub relocations: Vec<Relocation>,
}

pub(crate) fn sht_name(t: u32) -> &'static str {
    match t {
        sh::SHT_NULL => "NULL",
        sh::SHT_PROGBITS => "PROGBITS",
        sh::SHT_SYMTAB => "SYMTAB",
        sh::SHT_STRTAB => "STRTAB",
        sh::SHT_RELA => "RELA",
        sh::SHT_NOBITS => "NOBITS",
        sh::SHT_REL => "REL",
        0x6fff4c03 => "LLVM_ADDRSIG",
        _ => "UNKNOWN",
    }
}

fn hdr_err(offset: u64, field: &'static str, reason: impl Into<String>) -> ObjectError {
    ObjectError::Header {
        offset,
        field,
        reason: reason.into(),
    }
}

fn cstr(table: &[u8], off: usize) -> std::result::Result<String, String> {
    let rest = table.get(off..).ok_or_else(|| {
        format!(
            "name offset {off:#x} past the string table ({:#x} bytes)",
            table.len()
        )
    })?;
    let end = rest
        .iter()
        .position(|&b| b == 0)
        .ok_or_else(|| format!("name at {off:#x} is not NUL-terminated"))?;
    Ok(String::from_utf8_lossy(&rest[..end]).into_owned())
}

fn classify(name: &str, sh_type: u32, flags: u64, size: u64) -> SectionKind {
    let exec = flags & sh::SHF_EXECINSTR as u64 != 0;
    match sh_type {
        sh::SHT_NULL => SectionKind::Null,
        sh::SHT_SYMTAB => SectionKind::Symtab,
        sh::SHT_STRTAB => SectionKind::Strtab,
        sh::SHT_REL | sh::SHT_RELA => SectionKind::Reloc,
        sh::SHT_NOBITS if name == ".bss" || name.starts_with(".bss.") => SectionKind::Bss,
        sh::SHT_PROGBITS => {
            if exec {
                if name == ".text" {
                    SectionKind::Text
                } else {
                    SectionKind::Program
                }
            } else if name == ".maps" {
                SectionKind::Maps
            } else if name == "maps" {
                SectionKind::LegacyMaps
            } else if name == "license" {
                SectionKind::License
            } else if name == "version" {
                SectionKind::Version
            } else if name == ".BTF" {
                SectionKind::Btf
            } else if name == ".BTF.ext" {
                SectionKind::BtfExt
            } else if size > 0 && (name == ".data" || name.starts_with(".data.")) {
                SectionKind::Data
            } else if size > 0 && (name == ".rodata" || name.starts_with(".rodata.")) {
                SectionKind::Rodata
            } else {
                SectionKind::Other
            }
        }
        _ => SectionKind::Other,
    }
}

pub(crate) fn read(bytes: &[u8]) -> Result<RawElf> {
    if bytes.len() < 64 {
        return Err(hdr_err(
            0,
            "e_ident",
            format!("file is {} bytes, an ELF64 header needs 64", bytes.len()),
        ));
    }
    if &bytes[0..4] != b"\x7fELF" {
        return Err(hdr_err(
            0,
            "e_ident[EI_MAG]",
            format!("bad magic {:02x?}, not an ELF file", &bytes[0..4]),
        ));
    }
    if bytes[header::EI_CLASS] != header::ELFCLASS64 {
        return Err(hdr_err(
            4,
            "e_ident[EI_CLASS]",
            format!("class {} is not ELFCLASS64", bytes[header::EI_CLASS]),
        ));
    }
    if bytes[header::EI_DATA] != header::ELFDATA2LSB {
        return Err(hdr_err(
            5,
            "e_ident[EI_DATA]",
            format!("data encoding {} is not little-endian (ELFDATA2LSB); big-endian BPF is not supported", bytes[header::EI_DATA]),
        ));
    }
    let hdr: Header =
        goblin::elf::Elf::parse_header(bytes).map_err(|e| hdr_err(0, "header", e.to_string()))?;
    if hdr.e_machine != EM_BPF {
        return Err(hdr_err(
            0x12,
            "e_machine",
            format!("machine {} is not EM_BPF (247)", hdr.e_machine),
        ));
    }
    if hdr.e_type != header::ET_REL {
        return Err(hdr_err(
            0x10,
            "e_type",
            format!("type {} is not ET_REL (a relocatable object)", hdr.e_type),
        ));
    }
    let ctx = Ctx::new(Container::Big, goblin::container::Endian::Little);
    let shoff = hdr.e_shoff;
    if hdr.e_shentsize as usize != SHDR_SIZE && !(hdr.e_shnum == 0 && shoff == 0) {
        return Err(hdr_err(
            0x3a,
            "e_shentsize",
            format!("{} (expected {})", hdr.e_shentsize, SHDR_SIZE),
        ));
    }
    if shoff == 0 {
        return Err(hdr_err(0x28, "e_shoff", "no section header table"));
    }
    let shoff_us = usize::try_from(shoff)
        .map_err(|_| hdr_err(0x28, "e_shoff", format!("{shoff:#x} out of range")))?;
    let sh_at = |i: usize, field: &'static str| -> Result<SectionHeader> {
        let off = i
            .checked_mul(SHDR_SIZE)
            .and_then(|o| o.checked_add(shoff_us));
        match off.and_then(|o| o.checked_add(SHDR_SIZE).map(|e| (o, e))) {
            Some((o, e)) if e <= bytes.len() => SectionHeader::parse(bytes, o, 1, ctx)
                .map_err(|err| hdr_err(o as u64, field, err.to_string()))?
                .pop()
                .ok_or_else(|| hdr_err(o as u64, field, "empty section header")),
            _ => Err(hdr_err(
                0x28,
                field,
                format!("section header {i} at e_shoff {shoff:#x} runs past the end of the file ({:#x} bytes)", bytes.len()),
            )),
        }
    };
    // Extended numbering: e_shnum == 0 / e_shstrndx == SHN_XINDEX keep the real values in
    // section header 0.
    let mut shnum = hdr.e_shnum as usize;
    let mut shstrndx = hdr.e_shstrndx as usize;
    if shnum == 0 || shstrndx == sh::SHN_XINDEX as usize {
        let sh0 = sh_at(0, "e_shoff")?;
        if shnum == 0 {
            shnum = usize::try_from(sh0.sh_size).unwrap_or(usize::MAX);
        }
        if shstrndx == sh::SHN_XINDEX as usize {
            shstrndx = sh0.sh_link as usize;
        }
    }
    let table_end = shnum
        .checked_mul(SHDR_SIZE)
        .and_then(|n| n.checked_add(shoff_us));
    if table_end.is_none_or(|e| e > bytes.len()) {
        return Err(hdr_err(
            0x28,
            "e_shoff/e_shnum",
            format!(
                "section header table ({shnum} entries at {shoff:#x}) runs past the end of the file ({:#x} bytes)",
                bytes.len()
            ),
        ));
    }
    let headers = SectionHeader::parse(bytes, shoff_us, shnum, ctx)
        .map_err(|e| hdr_err(shoff, "section headers", e.to_string()))?;
    if shstrndx >= headers.len() {
        return Err(hdr_err(
            0x3e,
            "e_shstrndx",
            format!("{shstrndx} is not a section (there are {})", headers.len()),
        ));
    }
    // Section data ranges.
    let data_of = |i: usize, h: &SectionHeader, name: &str| -> Result<Vec<u8>> {
        if h.sh_type == sh::SHT_NOBITS || h.sh_type == sh::SHT_NULL {
            return Ok(Vec::new());
        }
        let start = usize::try_from(h.sh_offset).ok();
        let end = start.and_then(|s| {
            usize::try_from(h.sh_size)
                .ok()
                .and_then(|n| s.checked_add(n))
        });
        match (start, end) {
            (Some(s), Some(e)) if e <= bytes.len() => Ok(bytes[s..e].to_vec()),
            _ => Err(ObjectError::section(
                name,
                i,
                h.sh_offset,
                "sh_offset/sh_size",
                format!(
                    "data [{:#x}, +{:#x}) runs past the end of the file ({:#x} bytes)",
                    h.sh_offset,
                    h.sh_size,
                    bytes.len()
                ),
            )),
        }
    };
    let shstr_h = &headers[shstrndx];
    let shstrtab = data_of(shstrndx, shstr_h, "<section names>")?;
    let mut sections = Vec::with_capacity(headers.len());
    for (i, h) in headers.iter().enumerate() {
        let name = if i == 0 && h.sh_type == sh::SHT_NULL {
            String::new()
        } else {
            cstr(&shstrtab, h.sh_name)
                .map_err(|r| ObjectError::section(&format!("#{i}"), i, 0, "sh_name", r))?
        };
        let data = data_of(i, h, &name)?;
        let kind = classify(&name, h.sh_type, h.sh_flags, h.sh_size);
        let insns = if matches!(kind, SectionKind::Program | SectionKind::Text) {
            bpfkit_isa::parse_raw(&data).map_err(|e| {
                ObjectError::section(
                    &name,
                    i,
                    e.offset as u64,
                    "sh_size",
                    format!(
                        "{} bytes is not a whole number of 8-byte instructions",
                        e.len
                    ),
                )
            })?
        } else {
            Vec::new()
        };
        sections.push(Section {
            index: i,
            name,
            kind,
            sh_type: h.sh_type,
            flags: h.sh_flags,
            offset: h.sh_offset,
            size: h.sh_size,
            link: h.sh_link,
            info: h.sh_info,
            entsize: h.sh_entsize,
            data,
            insns,
        });
    }
    // Symbol table.
    let symtabs: Vec<usize> = sections
        .iter()
        .filter(|s| s.kind == SectionKind::Symtab)
        .map(|s| s.index)
        .collect();
    if symtabs.len() > 1 {
        let s = &sections[symtabs[1]];
        return Err(ObjectError::section(
            &s.name,
            s.index,
            0,
            "sh_type",
            "more than one SHT_SYMTAB section",
        ));
    }
    let mut symbols = Vec::new();
    if let Some(&si) = symtabs.first() {
        let st = &sections[si];
        if st.data.len() % Sym::size(Container::Big) != 0 {
            return Err(ObjectError::section(
                &st.name,
                si,
                0,
                "sh_size",
                format!("{} is not a multiple of the symbol size 24", st.data.len()),
            ));
        }
        let strtab = sections
            .get(st.link as usize)
            .filter(|s| s.kind == SectionKind::Strtab)
            .ok_or_else(|| {
                ObjectError::section(
                    &st.name,
                    si,
                    0,
                    "sh_link",
                    format!("{} is not a string table", st.link),
                )
            })?;
        let count = st.data.len() / 24;
        let syms = Sym::parse(&st.data, 0, count, ctx)
            .map_err(|e| ObjectError::section(&st.name, si, 0, "symbols", e.to_string()))?;
        for (i, s) in syms.iter().enumerate() {
            let name = cstr(&strtab.data, s.st_name)
                .map_err(|r| ObjectError::section(&st.name, si, (i * 24) as u64, "st_name", r))?;
            let sym_type = s.st_type();
            let shndx = s.st_shndx;
            // A section symbol is named after its section.
            let name = if sym_type == crate::STT_SECTION && name.is_empty() {
                sections
                    .get(shndx)
                    .map(|x| x.name.clone())
                    .unwrap_or_default()
            } else {
                name
            };
            symbols.push(Symbol {
                index: i,
                name,
                value: s.st_value,
                size: s.st_size,
                sym_type,
                bind: s.st_bind(),
                shndx,
            });
        }
    }
    // Relocations.
    let mut relocations = Vec::new();
    for rs in sections.iter().filter(|s| s.kind == SectionKind::Reloc) {
        let is_rela = rs.sh_type == sh::SHT_RELA;
        let entsize = if is_rela { 24 } else { 16 };
        if rs.data.len() % entsize != 0 {
            return Err(ObjectError::section(
                &rs.name,
                rs.index,
                0,
                "sh_size",
                format!(
                    "{} is not a multiple of the entry size {entsize}",
                    rs.data.len()
                ),
            ));
        }
        let target = sections.get(rs.info as usize).ok_or_else(|| {
            ObjectError::section(
                &rs.name,
                rs.index,
                0,
                "sh_info",
                format!("{} is not a section", rs.info),
            )
        })?;
        for (k, e) in rs.data.chunks_exact(entsize).enumerate() {
            let u64_at = |o: usize| u64::from_le_bytes(e[o..o + 8].try_into().unwrap_or([0; 8]));
            let r_offset = u64_at(0);
            let r_info = u64_at(8);
            let addend = if is_rela {
                Some(u64_at(16) as i64)
            } else {
                None
            };
            let sym_idx = (r_info >> 32) as usize;
            let r_type = (r_info & 0xffff_ffff) as u32;
            let sym = symbols.get(sym_idx).ok_or_else(|| {
                ObjectError::section(
                    &rs.name,
                    rs.index,
                    (k * entsize + 8) as u64,
                    "r_info",
                    format!(
                        "symbol index {sym_idx} out of range ({} symbols)",
                        symbols.len()
                    ),
                )
            })?;
            if r_offset >= target.size.max(target.data.len() as u64)
                && target.sh_type != sh::SHT_NOBITS
            {
                return Err(ObjectError::section(
                    &rs.name,
                    rs.index,
                    (k * entsize) as u64,
                    "r_offset",
                    format!(
                        "{r_offset:#x} is past the end of `{}` ({:#x} bytes)",
                        target.name, target.size
                    ),
                ));
            }
            relocations.push(Relocation {
                rel_section: rs.index,
                rel_section_name: rs.name.clone(),
                section: target.index,
                section_name: target.name.clone(),
                offset: r_offset,
                r_type,
                symbol_index: sym_idx,
                symbol: sym.name.clone(),
                symbol_value: sym.value,
                symbol_section: sym.shndx,
                addend,
            });
        }
    }
    Ok(RawElf {
        sections,
        symbols,
        relocations,
    })
}
