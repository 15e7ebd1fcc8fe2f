//! BTF (`.BTF` section): the type graph clang emits, with every kind the kernel knows.
//!
//! Format reference: the kernel's `include/uapi/linux/btf.h` and
//! `Documentation/bpf/btf.rst`. Only little-endian BTF is accepted (eBPF objects for
//! x86/arm hosts); a byte-swapped magic is reported as such.

use crate::error::{ObjectError, Result};

pub const BTF_MAGIC: u16 = 0xeb9f;

/// Kind numbers (`BTF_KIND_*`).
pub mod kind {
    pub const UNKN: u8 = 0;
    pub const INT: u8 = 1;
    pub const PTR: u8 = 2;
    pub const ARRAY: u8 = 3;
    pub const STRUCT: u8 = 4;
    pub const UNION: u8 = 5;
    pub const ENUM: u8 = 6;
    pub const FWD: u8 = 7;
    pub const TYPEDEF: u8 = 8;
    pub const VOLATILE: u8 = 9;
    pub const CONST: u8 = 10;
    pub const RESTRICT: u8 = 11;
    pub const FUNC: u8 = 12;
    pub const FUNC_PROTO: u8 = 13;
    pub const VAR: u8 = 14;
    pub const DATASEC: u8 = 15;
    pub const FLOAT: u8 = 16;
    pub const DECL_TAG: u8 = 17;
    pub const TYPE_TAG: u8 = 18;
    pub const ENUM64: u8 = 19;
}

/// `BTF_VAR_*` linkage of a VAR.
pub const VAR_STATIC: u32 = 0;
pub const VAR_GLOBAL_ALLOCATED: u32 = 1;
pub const VAR_GLOBAL_EXTERN: u32 = 2;

/// A member of a STRUCT or UNION.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub name: String,
    pub type_id: u32,
    /// Offset in bits from the start of the struct.
    pub bit_offset: u32,
    /// Width of a bitfield (0 when not a bitfield).
    pub bitfield_size: u32,
}

/// A parameter of a FUNC_PROTO.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Param {
    pub name: String,
    pub type_id: u32,
}

/// One entry of a DATASEC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VarSecinfo {
    pub type_id: u32,
    pub offset: u32,
    pub size: u32,
}

/// The kind-specific part of a BTF type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BtfKind {
    /// Type id 0.
    Void,
    /// `encoding`: bit 0 signed, bit 1 char, bit 2 bool.
    Int {
        size: u32,
        encoding: u8,
        offset: u8,
        bits: u8,
    },
    Ptr {
        type_id: u32,
    },
    Array {
        elem_type: u32,
        index_type: u32,
        nelems: u32,
    },
    Struct {
        size: u32,
        members: Vec<Member>,
    },
    Union {
        size: u32,
        members: Vec<Member>,
    },
    Enum {
        size: u32,
        signed: bool,
        values: Vec<(String, i64)>,
    },
    Enum64 {
        size: u32,
        signed: bool,
        values: Vec<(String, i64)>,
    },
    Fwd {
        is_union: bool,
    },
    Typedef {
        type_id: u32,
    },
    Volatile {
        type_id: u32,
    },
    Const {
        type_id: u32,
    },
    Restrict {
        type_id: u32,
    },
    /// `linkage`: 0 static, 1 global, 2 extern.
    Func {
        proto: u32,
        linkage: u32,
    },
    FuncProto {
        ret: u32,
        params: Vec<Param>,
    },
    Var {
        type_id: u32,
        linkage: u32,
    },
    Datasec {
        size: u32,
        vars: Vec<VarSecinfo>,
    },
    Float {
        size: u32,
    },
    /// `component_idx` -1 tags the type itself, otherwise a member/parameter index.
    DeclTag {
        type_id: u32,
        component_idx: i32,
    },
    TypeTag {
        type_id: u32,
    },
}

/// One BTF type with its id and name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BtfType {
    pub id: u32,
    pub name: String,
    pub kind: BtfKind,
    /// Offset of the type record within the type section (relative to `type_off`).
    pub offset: u32,
}

impl BtfType {
    /// The `BTF_KIND_*` name as bpftool prints it (`INT`, `STRUCT`, ...).
    pub fn kind_name(&self) -> &'static str {
        match &self.kind {
            BtfKind::Void => "VOID",
            BtfKind::Int { .. } => "INT",
            BtfKind::Ptr { .. } => "PTR",
            BtfKind::Array { .. } => "ARRAY",
            BtfKind::Struct { .. } => "STRUCT",
            BtfKind::Union { .. } => "UNION",
            BtfKind::Enum { .. } => "ENUM",
            BtfKind::Enum64 { .. } => "ENUM64",
            BtfKind::Fwd { .. } => "FWD",
            BtfKind::Typedef { .. } => "TYPEDEF",
            BtfKind::Volatile { .. } => "VOLATILE",
            BtfKind::Const { .. } => "CONST",
            BtfKind::Restrict { .. } => "RESTRICT",
            BtfKind::Func { .. } => "FUNC",
            BtfKind::FuncProto { .. } => "FUNC_PROTO",
            BtfKind::Var { .. } => "VAR",
            BtfKind::Datasec { .. } => "DATASEC",
            BtfKind::Float { .. } => "FLOAT",
            BtfKind::DeclTag { .. } => "DECL_TAG",
            BtfKind::TypeTag { .. } => "TYPE_TAG",
        }
    }

    /// The type this one refers to (PTR, TYPEDEF, modifiers, VAR, FUNC, tags), if any.
    pub fn ref_type(&self) -> Option<u32> {
        match self.kind {
            BtfKind::Ptr { type_id }
            | BtfKind::Typedef { type_id }
            | BtfKind::Volatile { type_id }
            | BtfKind::Const { type_id }
            | BtfKind::Restrict { type_id }
            | BtfKind::Var { type_id, .. }
            | BtfKind::DeclTag { type_id, .. }
            | BtfKind::TypeTag { type_id } => Some(type_id),
            BtfKind::Func { proto, .. } => Some(proto),
            _ => None,
        }
    }
}

/// Parsed `.BTF` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Btf {
    /// Index = type id; entry 0 is `Void`.
    pub types: Vec<BtfType>,
    strings: Vec<u8>,
    /// ELF section index of `.BTF` (for error messages).
    section_index: usize,
    /// Offset of the first type record within the section data.
    types_start: usize,
}

/// Limit on chains of TYPEDEF/modifier/array references (libbpf's `MAX_RESOLVE_DEPTH`).
const MAX_RESOLVE_DEPTH: usize = 32;

struct Reader<'a> {
    data: &'a [u8],
    section: &'static str,
    index: usize,
}

impl<'a> Reader<'a> {
    fn u32(&self, off: usize, field: &str) -> Result<u32> {
        let b = off
            .checked_add(4)
            .and_then(|end| self.data.get(off..end))
            .ok_or_else(|| {
                self.err(
                    off,
                    field,
                    format!("needs 4 bytes, section has {}", self.data.len()),
                )
            })?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn err(&self, off: usize, field: &str, reason: impl Into<String>) -> ObjectError {
        ObjectError::section(self.section, self.index, off as u64, field, reason)
    }
}

impl Btf {
    /// Parses the `.BTF` section data. `index` is its ELF section index.
    pub fn parse(data: &[u8], index: usize) -> Result<Btf> {
        let r = Reader {
            data,
            section: ".BTF",
            index,
        };
        if data.len() < 24 {
            return Err(r.err(
                0,
                "header",
                format!("truncated: {} bytes, header needs 24", data.len()),
            ));
        }
        let magic = u16::from_le_bytes([data[0], data[1]]);
        if magic == BTF_MAGIC.swap_bytes() {
            return Err(r.err(0, "magic", "big-endian BTF is not supported"));
        }
        if magic != BTF_MAGIC {
            return Err(r.err(
                0,
                "magic",
                format!("{magic:#06x}, expected {BTF_MAGIC:#06x}"),
            ));
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
        let type_off = r.u32(8, "type_off")? as usize;
        let type_len = r.u32(12, "type_len")? as usize;
        let str_off = r.u32(16, "str_off")? as usize;
        let str_len = r.u32(20, "str_len")? as usize;
        let range = |off: usize,
                     len: usize,
                     field: &str,
                     at: usize|
         -> Result<std::ops::Range<usize>> {
            let start = hdr_len.checked_add(off);
            let end = start.and_then(|s| s.checked_add(len));
            match (start, end) {
                (Some(s), Some(e)) if e <= data.len() => Ok(s..e),
                _ => Err(r.err(
                    at,
                    field,
                    format!("[{off:#x}, +{len:#x}) after the {hdr_len}-byte header runs past the section end ({:#x})", data.len()),
                )),
            }
        };
        let types_range = range(type_off, type_len, "type_off/type_len", 8)?;
        let str_range = range(str_off, str_len, "str_off/str_len", 16)?;
        let strings = data[str_range.clone()].to_vec();
        if !strings.is_empty() && strings[0] != 0 {
            return Err(r.err(
                str_range.start,
                "strings",
                "string section does not start with NUL",
            ));
        }
        let mut btf = Btf {
            types: vec![BtfType {
                id: 0,
                name: String::new(),
                kind: BtfKind::Void,
                offset: 0,
            }],
            strings,
            section_index: index,
            types_start: types_range.start,
        };
        let tdata = &data[types_range.clone()];
        let tr = Reader {
            data: tdata,
            section: ".BTF",
            index,
        };
        let base = types_range.start;
        let mut off = 0usize;
        while off < tdata.len() {
            let abs = base + off;
            let at = |o: usize| base + o;
            let name_off = tr
                .u32(off, "btf_type.name_off")
                .map_err(|_| r.err(abs, "btf_type", "truncated type record"))?;
            let info = tr
                .u32(off + 4, "btf_type.info")
                .map_err(|_| r.err(abs, "btf_type", "truncated type record"))?;
            let size_or_type = tr
                .u32(off + 8, "btf_type.size")
                .map_err(|_| r.err(abs, "btf_type", "truncated type record"))?;
            let vlen = (info & 0xffff) as usize;
            let k = ((info >> 24) & 0x1f) as u8;
            let kflag = info >> 31 != 0;
            let id = btf.types.len() as u32;
            let name = btf
                .string_at(name_off)
                .map_err(|reason| r.err(abs, "btf_type.name_off", reason))?;
            let mut p = off + 12;
            let need = |p: usize, n: usize| -> Result<()> {
                match n.checked_mul(1).and_then(|n| p.checked_add(n)) {
                    Some(end) if end <= tdata.len() => Ok(()),
                    _ => Err(r.err(
                        at(p),
                        "btf_type",
                        format!(
                            "type [{id}] needs {n} more bytes, type section ends at {:#x}",
                            base + tdata.len()
                        ),
                    )),
                }
            };
            let kind = match k {
                kind::INT => {
                    need(p, 4)?;
                    let v = tr.u32(p, "int")?;
                    p += 4;
                    BtfKind::Int {
                        size: size_or_type,
                        encoding: ((v >> 24) & 0x0f) as u8,
                        offset: ((v >> 16) & 0xff) as u8,
                        bits: (v & 0xff) as u8,
                    }
                }
                kind::PTR => BtfKind::Ptr {
                    type_id: size_or_type,
                },
                kind::ARRAY => {
                    need(p, 12)?;
                    let a = BtfKind::Array {
                        elem_type: tr.u32(p, "array.type")?,
                        index_type: tr.u32(p + 4, "array.index_type")?,
                        nelems: tr.u32(p + 8, "array.nelems")?,
                    };
                    p += 12;
                    a
                }
                kind::STRUCT | kind::UNION => {
                    need(p, vlen * 12)?;
                    let mut members = Vec::with_capacity(vlen);
                    for _ in 0..vlen {
                        let mname_off = tr.u32(p, "member.name_off")?;
                        let mname = btf
                            .string_at(mname_off)
                            .map_err(|reason| r.err(at(p), "member.name_off", reason))?;
                        let type_id = tr.u32(p + 4, "member.type")?;
                        let moff = tr.u32(p + 8, "member.offset")?;
                        let (bit_offset, bitfield_size) = if kflag {
                            (moff & 0x00ff_ffff, moff >> 24)
                        } else {
                            (moff, 0)
                        };
                        members.push(Member {
                            name: mname,
                            type_id,
                            bit_offset,
                            bitfield_size,
                        });
                        p += 12;
                    }
                    if k == kind::STRUCT {
                        BtfKind::Struct {
                            size: size_or_type,
                            members,
                        }
                    } else {
                        BtfKind::Union {
                            size: size_or_type,
                            members,
                        }
                    }
                }
                kind::ENUM => {
                    need(p, vlen * 8)?;
                    let mut values = Vec::with_capacity(vlen);
                    for _ in 0..vlen {
                        let n = btf
                            .string_at(tr.u32(p, "enum.name_off")?)
                            .map_err(|reason| r.err(at(p), "enum.name_off", reason))?;
                        let v = tr.u32(p + 4, "enum.val")?;
                        let v = if kflag { v as i32 as i64 } else { v as i64 };
                        values.push((n, v));
                        p += 8;
                    }
                    BtfKind::Enum {
                        size: size_or_type,
                        signed: kflag,
                        values,
                    }
                }
                kind::ENUM64 => {
                    need(p, vlen * 12)?;
                    let mut values = Vec::with_capacity(vlen);
                    for _ in 0..vlen {
                        let n = btf
                            .string_at(tr.u32(p, "enum64.name_off")?)
                            .map_err(|reason| r.err(at(p), "enum64.name_off", reason))?;
                        let lo = tr.u32(p + 4, "enum64.val_lo32")? as u64;
                        let hi = tr.u32(p + 8, "enum64.val_hi32")? as u64;
                        values.push((n, ((hi << 32) | lo) as i64));
                        p += 12;
                    }
                    BtfKind::Enum64 {
                        size: size_or_type,
                        signed: kflag,
                        values,
                    }
                }
                kind::FWD => BtfKind::Fwd { is_union: kflag },
                kind::TYPEDEF => BtfKind::Typedef {
                    type_id: size_or_type,
                },
                kind::VOLATILE => BtfKind::Volatile {
                    type_id: size_or_type,
                },
                kind::CONST => BtfKind::Const {
                    type_id: size_or_type,
                },
                kind::RESTRICT => BtfKind::Restrict {
                    type_id: size_or_type,
                },
                kind::FUNC => BtfKind::Func {
                    proto: size_or_type,
                    linkage: vlen as u32,
                },
                kind::FUNC_PROTO => {
                    need(p, vlen * 8)?;
                    let mut params = Vec::with_capacity(vlen);
                    for _ in 0..vlen {
                        let n = btf
                            .string_at(tr.u32(p, "param.name_off")?)
                            .map_err(|reason| r.err(at(p), "param.name_off", reason))?;
                        params.push(Param {
                            name: n,
                            type_id: tr.u32(p + 4, "param.type")?,
                        });
                        p += 8;
                    }
                    BtfKind::FuncProto {
                        ret: size_or_type,
                        params,
                    }
                }
                kind::VAR => {
                    need(p, 4)?;
                    let linkage = tr.u32(p, "var.linkage")?;
                    p += 4;
                    BtfKind::Var {
                        type_id: size_or_type,
                        linkage,
                    }
                }
                kind::DATASEC => {
                    need(p, vlen * 12)?;
                    let mut vars = Vec::with_capacity(vlen);
                    for _ in 0..vlen {
                        vars.push(VarSecinfo {
                            type_id: tr.u32(p, "var_secinfo.type")?,
                            offset: tr.u32(p + 4, "var_secinfo.offset")?,
                            size: tr.u32(p + 8, "var_secinfo.size")?,
                        });
                        p += 12;
                    }
                    BtfKind::Datasec {
                        size: size_or_type,
                        vars,
                    }
                }
                kind::FLOAT => BtfKind::Float { size: size_or_type },
                kind::DECL_TAG => {
                    need(p, 4)?;
                    let c = tr.u32(p, "decl_tag.component_idx")? as i32;
                    p += 4;
                    BtfKind::DeclTag {
                        type_id: size_or_type,
                        component_idx: c,
                    }
                }
                kind::TYPE_TAG => BtfKind::TypeTag {
                    type_id: size_or_type,
                },
                other => {
                    return Err(r.err(
                        abs,
                        "btf_type.info",
                        format!("type [{id}] has unknown kind {other}"),
                    ));
                }
            };
            btf.types.push(BtfType {
                id,
                name,
                kind,
                offset: off as u32,
            });
            off = p;
        }
        // Every reference must point at an existing type.
        let n = btf.types.len() as u32;
        for t in &btf.types {
            let mut refs: Vec<u32> = Vec::new();
            match &t.kind {
                BtfKind::Array {
                    elem_type,
                    index_type,
                    ..
                } => refs.extend([*elem_type, *index_type]),
                BtfKind::Struct { members, .. } | BtfKind::Union { members, .. } => {
                    refs.extend(members.iter().map(|m| m.type_id))
                }
                BtfKind::FuncProto { ret, params } => {
                    refs.push(*ret);
                    refs.extend(params.iter().map(|p| p.type_id));
                }
                BtfKind::Datasec { vars, .. } => refs.extend(vars.iter().map(|v| v.type_id)),
                _ => refs.extend(t.ref_type()),
            }
            if let Some(bad) = refs.into_iter().find(|&r| r >= n) {
                return Err(r.err(
                    base + t.offset as usize,
                    "btf_type",
                    format!(
                        "type [{}] `{}` refers to type [{bad}], but there are only {n} types",
                        t.id, t.name
                    ),
                ));
            }
        }
        Ok(btf)
    }

    /// The string at `off` in the string section.
    pub fn string_at(&self, off: u32) -> std::result::Result<String, String> {
        let off = off as usize;
        let rest = self.strings.get(off..).ok_or_else(|| {
            format!(
                "string offset {off:#x} past the string section ({:#x} bytes)",
                self.strings.len()
            )
        })?;
        let end = rest
            .iter()
            .position(|&b| b == 0)
            .ok_or_else(|| format!("string at offset {off:#x} is not NUL-terminated"))?;
        Ok(String::from_utf8_lossy(&rest[..end]).into_owned())
    }

    pub(crate) fn section_index(&self) -> usize {
        self.section_index
    }

    /// Offset of type `id`'s record within the `.BTF` section data.
    pub fn record_offset(&self, id: u32) -> Option<usize> {
        self.get(id).map(|t| self.types_start + t.offset as usize)
    }

    /// Type by id.
    pub fn get(&self, id: u32) -> Option<&BtfType> {
        self.types.get(id as usize)
    }

    /// Number of types including `void` (id 0).
    pub fn len(&self) -> usize {
        self.types.len()
    }

    pub fn is_empty(&self) -> bool {
        self.types.len() <= 1
    }

    /// Follows TYPEDEF, VOLATILE, CONST, RESTRICT and TYPE_TAG to the underlying type id.
    pub fn skip_mods_and_typedefs(&self, mut id: u32) -> Option<u32> {
        for _ in 0..MAX_RESOLVE_DEPTH {
            let t = self.get(id)?;
            match t.kind {
                BtfKind::Typedef { type_id }
                | BtfKind::Volatile { type_id }
                | BtfKind::Const { type_id }
                | BtfKind::Restrict { type_id }
                | BtfKind::TypeTag { type_id } => id = type_id,
                _ => return Some(id),
            }
        }
        None
    }

    /// Size in bytes of a type, as `btf__resolve_size` computes it. `None` for types
    /// without a size (void, FUNC, FWD) or chains deeper than 32.
    pub fn resolve_size(&self, id: u32) -> Option<u64> {
        let mut id = id;
        let mut nelems: u64 = 1;
        for _ in 0..MAX_RESOLVE_DEPTH {
            let t = self.get(id)?;
            let size: u64 = match &t.kind {
                BtfKind::Int { size, .. }
                | BtfKind::Struct { size, .. }
                | BtfKind::Union { size, .. }
                | BtfKind::Enum { size, .. }
                | BtfKind::Enum64 { size, .. }
                | BtfKind::Datasec { size, .. }
                | BtfKind::Float { size } => *size as u64,
                BtfKind::Ptr { .. } => 8,
                BtfKind::Typedef { type_id }
                | BtfKind::Volatile { type_id }
                | BtfKind::Const { type_id }
                | BtfKind::Restrict { type_id }
                | BtfKind::TypeTag { type_id }
                | BtfKind::Var { type_id, .. }
                | BtfKind::DeclTag { type_id, .. } => {
                    id = *type_id;
                    continue;
                }
                BtfKind::Array {
                    elem_type,
                    nelems: n,
                    ..
                } => {
                    nelems = nelems.checked_mul(*n as u64)?;
                    id = *elem_type;
                    continue;
                }
                BtfKind::Void
                | BtfKind::Fwd { .. }
                | BtfKind::Func { .. }
                | BtfKind::FuncProto { .. } => return None,
            };
            return nelems.checked_mul(size).filter(|&s| s <= u32::MAX as u64);
        }
        None
    }

    /// First type with this name and kind name (e.g. `"DATASEC"`).
    pub fn find(&self, name: &str, kind_name: &str) -> Option<&BtfType> {
        self.types
            .iter()
            .find(|t| t.name == name && t.kind_name() == kind_name)
    }

    /// A C-like rendering of a type reference, for display (`struct foo`, `__u32 *`, ...).
    pub fn type_name(&self, id: u32) -> String {
        self.type_name_depth(id, 0)
    }

    fn type_name_depth(&self, id: u32, depth: usize) -> String {
        if depth > MAX_RESOLVE_DEPTH {
            return "...".into();
        }
        let Some(t) = self.get(id) else {
            return format!("<bad type {id}>");
        };
        let anon = |n: &str| {
            if n.is_empty() {
                "(anon)".to_string()
            } else {
                n.to_string()
            }
        };
        match &t.kind {
            BtfKind::Void => "void".into(),
            BtfKind::Int { .. } | BtfKind::Float { .. } | BtfKind::Typedef { .. } => t.name.clone(),
            BtfKind::Struct { .. } => format!("struct {}", anon(&t.name)),
            BtfKind::Union { .. } => format!("union {}", anon(&t.name)),
            BtfKind::Enum { .. } | BtfKind::Enum64 { .. } => format!("enum {}", anon(&t.name)),
            BtfKind::Fwd { is_union } => {
                format!("{} {}", if *is_union { "union" } else { "struct" }, t.name)
            }
            BtfKind::Ptr { type_id } => format!("{} *", self.type_name_depth(*type_id, depth + 1)),
            BtfKind::Array {
                elem_type, nelems, ..
            } => {
                format!(
                    "{}[{}]",
                    self.type_name_depth(*elem_type, depth + 1),
                    nelems
                )
            }
            BtfKind::Volatile { type_id } => {
                format!("volatile {}", self.type_name_depth(*type_id, depth + 1))
            }
            BtfKind::Const { type_id } => {
                format!("const {}", self.type_name_depth(*type_id, depth + 1))
            }
            BtfKind::Restrict { type_id } => {
                format!("{} restrict", self.type_name_depth(*type_id, depth + 1))
            }
            BtfKind::TypeTag { type_id } => {
                format!(
                    "{} __tag({})",
                    self.type_name_depth(*type_id, depth + 1),
                    t.name
                )
            }
            BtfKind::FuncProto { .. } => "fn".into(),
            BtfKind::Func { .. }
            | BtfKind::Var { .. }
            | BtfKind::Datasec { .. }
            | BtfKind::DeclTag { .. } => t.name.clone(),
        }
    }

    /// Number of types of each kind, in kind-number order, for summaries.
    pub fn kind_counts(&self) -> Vec<(&'static str, usize)> {
        let mut counts: Vec<(&'static str, usize)> = Vec::new();
        for t in self.types.iter().skip(1) {
            let k = t.kind_name();
            match counts.iter_mut().find(|(n, _)| *n == k) {
                Some(c) => c.1 += 1,
                None => counts.push((k, 1)),
            }
        }
        counts
    }
}

impl Btf {
    /// Renders every type the way `bpftool btf dump file X` (raw format) prints it, one
    /// type per line with members on tab-indented continuation lines.
    pub fn dump(&self) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        let q = |n: &str| {
            if n.is_empty() {
                "(anon)".to_string()
            } else {
                n.to_string()
            }
        };
        let linkage = |l: u32| match l {
            0 => "static",
            1 => "global",
            2 => "extern",
            _ => "(unknown)",
        };
        for t in self.types.iter().skip(1) {
            let _ = write!(out, "[{}] {} '{}'", t.id, t.kind_name(), q(&t.name));
            match &t.kind {
                BtfKind::Void => {}
                BtfKind::Int {
                    size,
                    encoding,
                    offset,
                    bits,
                } => {
                    let enc = match encoding {
                        1 => "SIGNED",
                        2 => "CHAR",
                        4 => "BOOL",
                        _ => "(none)",
                    };
                    let _ = write!(
                        out,
                        " size={size} bits_offset={offset} nr_bits={bits} encoding={enc}"
                    );
                }
                BtfKind::Ptr { type_id }
                | BtfKind::Typedef { type_id }
                | BtfKind::Volatile { type_id }
                | BtfKind::Const { type_id }
                | BtfKind::Restrict { type_id }
                | BtfKind::TypeTag { type_id } => {
                    let _ = write!(out, " type_id={type_id}");
                }
                BtfKind::Array {
                    elem_type,
                    index_type,
                    nelems,
                } => {
                    let _ = write!(
                        out,
                        " type_id={elem_type} index_type_id={index_type} nr_elems={nelems}"
                    );
                }
                BtfKind::Struct { size, members } | BtfKind::Union { size, members } => {
                    let _ = write!(out, " size={size} vlen={}", members.len());
                    for m in members {
                        let _ = write!(
                            out,
                            "\n\t'{}' type_id={} bits_offset={}",
                            q(&m.name),
                            m.type_id,
                            m.bit_offset
                        );
                        if m.bitfield_size != 0 {
                            let _ = write!(out, " bitfield_size={}", m.bitfield_size);
                        }
                    }
                }
                BtfKind::Enum {
                    size,
                    signed,
                    values,
                }
                | BtfKind::Enum64 {
                    size,
                    signed,
                    values,
                } => {
                    let enc = if *signed { "SIGNED" } else { "UNSIGNED" };
                    let _ = write!(out, " encoding={enc} size={size} vlen={}", values.len());
                    let is64 = matches!(t.kind, BtfKind::Enum64 { .. });
                    for (n, v) in values {
                        let _ = match (is64, signed) {
                            (false, true) => write!(out, "\n\t'{}' val={}", q(n), v),
                            (false, false) => write!(out, "\n\t'{}' val={}", q(n), *v as u32),
                            (true, true) => write!(out, "\n\t'{}' val={}LL", q(n), v),
                            (true, false) => write!(out, "\n\t'{}' val={}ULL", q(n), *v as u64),
                        };
                    }
                }
                BtfKind::Fwd { is_union } => {
                    let _ = write!(
                        out,
                        " fwd_kind={}",
                        if *is_union { "union" } else { "struct" }
                    );
                }
                BtfKind::Func { proto, linkage: l } => {
                    let _ = write!(out, " type_id={proto} linkage={}", linkage(*l));
                }
                BtfKind::FuncProto { ret, params } => {
                    let _ = write!(out, " ret_type_id={ret} vlen={}", params.len());
                    for p in params {
                        let _ = write!(out, "\n\t'{}' type_id={}", q(&p.name), p.type_id);
                    }
                }
                BtfKind::Var {
                    type_id,
                    linkage: l,
                } => {
                    let _ = write!(out, " type_id={type_id}, linkage={}", linkage(*l));
                }
                BtfKind::Datasec { size, vars } => {
                    let _ = write!(out, " size={size} vlen={}", vars.len());
                    for v in vars {
                        let (k, n) = self
                            .get(v.type_id)
                            .map(|x| (x.kind_name(), q(&x.name)))
                            .unwrap_or(("?", String::new()));
                        let _ = write!(
                            out,
                            "\n\ttype_id={} offset={} size={} ({k} '{n}')",
                            v.type_id, v.offset, v.size
                        );
                    }
                }
                BtfKind::Float { size } => {
                    let _ = write!(out, " size={size}");
                }
                BtfKind::DeclTag {
                    type_id,
                    component_idx,
                } => {
                    let _ = write!(out, " type_id={type_id} component_idx={component_idx}");
                }
            }
            out.push('\n');
        }
        out
    }
}
