//! `.BTF.ext`: function info, line info and CO-RE relocation records.
//!
//! In an object file the `insn_off` of every record is a byte offset into the section the
//! record belongs to; this module converts it to a slot index.

use crate::btf::Btf;
use crate::error::{ObjectError, Result};

/// `bpf_func_info`: the BTF FUNC describing the function that starts at `insn_index`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FuncInfo {
    pub section: String,
    pub insn_index: usize,
    pub type_id: u32,
}

/// `bpf_line_info`: source position of the instructions from `insn_index` on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineInfo {
    pub section: String,
    pub insn_index: usize,
    pub file: String,
    /// The source line's text as recorded in BTF.
    pub text: String,
    pub line: u32,
    pub column: u32,
    /// The raw record fields (string offsets into `.BTF`'s string section and the packed
    /// `line << 10 | column`), as `BPF_PROG_LOAD` wants them.
    pub file_name_off: u32,
    pub line_off: u32,
    pub line_col: u32,
}

/// `enum bpf_core_relo_kind`, named as libbpf prints it (`bpf_core_relo_kind_str`).
pub fn core_relo_kind_name(kind: u32) -> &'static str {
    match kind {
        0 => "byte_off",
        1 => "byte_sz",
        2 => "field_exists",
        3 => "signed",
        4 => "lshift_u64",
        5 => "rshift_u64",
        6 => "local_type_id",
        7 => "target_type_id",
        8 => "type_exists",
        9 => "type_size",
        10 => "enumval_exists",
        11 => "enumval_value",
        12 => "type_matches",
        _ => "unknown",
    }
}

/// `bpf_core_relo`: a CO-RE relocation record (read and shown, not applied).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoreRelo {
    pub section: String,
    pub insn_index: usize,
    pub type_id: u32,
    /// Access string, e.g. `0:1:2`.
    pub access: String,
    /// `enum bpf_core_relo_kind` (see [`core_relo_kind_name`]).
    pub kind: u32,
}

/// Parsed `.BTF.ext` section.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BtfExt {
    pub func_info: Vec<FuncInfo>,
    pub line_info: Vec<LineInfo>,
    pub core_relos: Vec<CoreRelo>,
}

struct R<'a> {
    data: &'a [u8],
    index: usize,
}

impl R<'_> {
    fn err(&self, off: usize, field: &str, reason: impl Into<String>) -> ObjectError {
        ObjectError::section(".BTF.ext", self.index, off as u64, field, reason)
    }
    fn u32(&self, off: usize, field: &str) -> Result<u32> {
        off.checked_add(4)
            .and_then(|e| self.data.get(off..e))
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .ok_or_else(|| {
                self.err(
                    off,
                    field,
                    format!("truncated: section is {} bytes", self.data.len()),
                )
            })
    }
}

impl BtfExt {
    /// Parses `.BTF.ext` data; strings are looked up in `btf`. `index` is the ELF section index.
    pub fn parse(data: &[u8], index: usize, btf: &Btf) -> Result<BtfExt> {
        let r = R { data, index };
        if data.len() < 24 {
            return Err(r.err(
                0,
                "header",
                format!("truncated: {} bytes, header needs at least 24", data.len()),
            ));
        }
        let magic = u16::from_le_bytes([data[0], data[1]]);
        if magic != crate::btf::BTF_MAGIC {
            return Err(r.err(0, "magic", format!("{magic:#06x}, expected 0xeb9f")));
        }
        if data[2] != 1 {
            return Err(r.err(
                2,
                "version",
                format!("{} is not supported (expected 1)", data[2]),
            ));
        }
        let hdr_len = r.u32(4, "hdr_len")? as usize;
        if hdr_len < 24 || hdr_len > data.len() {
            return Err(r.err(
                4,
                "hdr_len",
                format!("{hdr_len} out of range (24..={})", data.len()),
            ));
        }
        let mut ext = BtfExt::default();
        let sub = |off_at: usize, name: &str| -> Result<Option<(usize, usize)>> {
            let off = r.u32(off_at, &format!("{name}_off"))? as usize;
            let len = r.u32(off_at + 4, &format!("{name}_len"))? as usize;
            if len == 0 {
                return Ok(None);
            }
            let start = hdr_len.checked_add(off);
            match start.and_then(|s| s.checked_add(len)) {
                Some(end) if end <= data.len() => Ok(Some((start.unwrap_or(0), end))),
                _ => Err(r.err(
                    off_at,
                    &format!("{name}_off/{name}_len"),
                    format!(
                        "[{off:#x}, +{len:#x}) after the header runs past the section end ({:#x})",
                        data.len()
                    ),
                )),
            }
        };
        if let Some((s, e)) = sub(8, "func_info")? {
            Self::records(
                &r,
                s,
                e,
                8,
                "func_info",
                |p, sec| {
                    let insn_off = r.u32(p, "func_info.insn_off")?;
                    ext.func_info.push(FuncInfo {
                        section: sec.to_string(),
                        insn_index: slot(&r, p, insn_off, "func_info.insn_off")?,
                        type_id: r.u32(p + 4, "func_info.type_id")?,
                    });
                    Ok(())
                },
                btf,
            )?;
        }
        if let Some((s, e)) = sub(16, "line_info")? {
            Self::records(
                &r,
                s,
                e,
                16,
                "line_info",
                |p, sec| {
                    let insn_off = r.u32(p, "line_info.insn_off")?;
                    let file_name_off = r.u32(p + 4, "line_info.file_name_off")?;
                    let line_off = r.u32(p + 8, "line_info.line_off")?;
                    let file = btf
                        .string_at(file_name_off)
                        .map_err(|m| r.err(p + 4, "line_info.file_name_off", m))?;
                    let text = btf
                        .string_at(line_off)
                        .map_err(|m| r.err(p + 8, "line_info.line_off", m))?;
                    let lc = r.u32(p + 12, "line_info.line_col")?;
                    ext.line_info.push(LineInfo {
                        section: sec.to_string(),
                        insn_index: slot(&r, p, insn_off, "line_info.insn_off")?,
                        file,
                        text,
                        line: lc >> 10,
                        column: lc & 0x3ff,
                        file_name_off,
                        line_off,
                        line_col: lc,
                    });
                    Ok(())
                },
                btf,
            )?;
        }
        if hdr_len >= 32 {
            if let Some((s, e)) = sub(24, "core_relo")? {
                Self::records(
                    &r,
                    s,
                    e,
                    16,
                    "core_relo",
                    |p, sec| {
                        let insn_off = r.u32(p, "core_relo.insn_off")?;
                        let access = btf
                            .string_at(r.u32(p + 8, "core_relo.access_str_off")?)
                            .map_err(|m| r.err(p + 8, "core_relo.access_str_off", m))?;
                        ext.core_relos.push(CoreRelo {
                            section: sec.to_string(),
                            insn_index: slot(&r, p, insn_off, "core_relo.insn_off")?,
                            type_id: r.u32(p + 4, "core_relo.type_id")?,
                            access,
                            kind: r.u32(p + 12, "core_relo.kind")?,
                        });
                        Ok(())
                    },
                    btf,
                )?;
            }
        }
        Ok(ext)
    }

    /// Walks one info subsection: `rec_size`, then per ELF section `sec_name_off`,
    /// `num_info` and `num_info` records of `rec_size` bytes (at least `min_rec`).
    fn records(
        r: &R<'_>,
        start: usize,
        end: usize,
        min_rec: usize,
        what: &str,
        mut f: impl FnMut(usize, &str) -> Result<()>,
        btf: &Btf,
    ) -> Result<()> {
        let rec_size = r.u32(start, &format!("{what}.rec_size"))? as usize;
        if rec_size < min_rec || rec_size % 4 != 0 {
            return Err(r.err(
                start,
                &format!("{what}.rec_size"),
                format!("{rec_size} (must be >= {min_rec} and a multiple of 4)"),
            ));
        }
        let mut p = start + 4;
        while p < end {
            if p + 8 > end {
                return Err(r.err(
                    p,
                    &format!("{what}.sec_name_off"),
                    "truncated section header",
                ));
            }
            let sec = btf
                .string_at(r.u32(p, &format!("{what}.sec_name_off"))?)
                .map_err(|m| r.err(p, &format!("{what}.sec_name_off"), m))?;
            let num = r.u32(p + 4, &format!("{what}.num_info"))? as usize;
            p += 8;
            let bytes = num.checked_mul(rec_size).and_then(|b| b.checked_add(p));
            match bytes {
                Some(e) if e <= end => {}
                _ => {
                    return Err(r.err(
                        p - 4,
                        &format!("{what}.num_info"),
                        format!("{num} records of {rec_size} bytes for `{sec}` run past the subsection end ({end:#x})"),
                    ))
                }
            }
            for _ in 0..num {
                f(p, &sec)?;
                p += rec_size;
            }
        }
        Ok(())
    }
}

fn slot(r: &R<'_>, p: usize, insn_off: u32, field: &str) -> Result<usize> {
    if insn_off % 8 != 0 {
        return Err(r.err(p, field, format!("{insn_off:#x} is not a multiple of 8")));
    }
    Ok(insn_off as usize / 8)
}
