//! BTF for the kernel: the object's raw `.BTF` section with libbpf's two rewrites applied
//! before `BPF_BTF_LOAD`:
//!
//! - DATASEC fix-up (`btf_fixup_datasec`): clang leaves a DATASEC's size and its
//!   variables' offsets 0 in an object file; they are taken from the ELF section size
//!   and the symbols' values, and the variables sorted by offset;
//! - sanitisation (`bpf_object__sanitize_btf`): kinds the running kernel does not know
//!   are rewritten in place into kinds it does (VAR/DECL_TAG → INT, DATASEC → STRUCT,
//!   FUNC → TYPEDEF, FUNC_PROTO → ENUM, FLOAT → empty STRUCT, TYPE_TAG → CONST, ENUM64
//!   → UNION of a placeholder INT, global FUNC → static), decided by [`BtfFeatures`],
//!   which probes the kernel by loading one tiny BTF blob per kind, as libbpf does.

use crate::error::{Error, Result};
use crate::sys;
use std::collections::HashMap;
use std::os::fd::{FromRawFd, OwnedFd};
use std::sync::OnceLock;

pub const BTF_MAGIC: u16 = 0xeb9f;
const HDR_LEN: usize = 24;

/// Kind numbers (`BTF_KIND_*`).
pub mod kind {
    pub const INT: u32 = 1;
    pub const PTR: u32 = 2;
    pub const ARRAY: u32 = 3;
    pub const STRUCT: u32 = 4;
    pub const UNION: u32 = 5;
    pub const ENUM: u32 = 6;
    pub const FWD: u32 = 7;
    pub const TYPEDEF: u32 = 8;
    pub const CONST: u32 = 10;
    pub const FUNC: u32 = 12;
    pub const FUNC_PROTO: u32 = 13;
    pub const VAR: u32 = 14;
    pub const DATASEC: u32 = 15;
    pub const FLOAT: u32 = 16;
    pub const DECL_TAG: u32 = 17;
    pub const TYPE_TAG: u32 = 18;
    pub const ENUM64: u32 = 19;
}

fn info(kind: u32, kflag: bool, vlen: u32) -> u32 {
    (kind << 24) | ((kflag as u32) << 31) | (vlen & 0xffff)
}

/// Which BTF kinds the kernel accepts (libbpf's `FEAT_BTF_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BtfFeatures {
    pub func: bool,
    pub func_global: bool,
    pub datasec: bool,
    pub float: bool,
    pub decl_tag: bool,
    pub type_tag: bool,
    pub enum64: bool,
}

impl BtfFeatures {
    /// Everything supported: no rewriting.
    pub const ALL: BtfFeatures = BtfFeatures {
        func: true,
        func_global: true,
        datasec: true,
        float: true,
        decl_tag: true,
        type_tag: true,
        enum64: true,
    };
    /// Nothing beyond the original BTF kinds (forces every rewrite; for tests).
    pub const NONE: BtfFeatures = BtfFeatures {
        func: false,
        func_global: false,
        datasec: false,
        float: false,
        decl_tag: false,
        type_tag: false,
        enum64: false,
    };

    /// Probes the running kernel once (cached): loads a minimal BTF blob using each kind.
    pub fn probe() -> BtfFeatures {
        static CACHE: OnceLock<BtfFeatures> = OnceLock::new();
        *CACHE.get_or_init(|| {
            let accepts = |b: BtfBuilder| load_raw(&b.build(), false).is_ok();
            BtfFeatures {
                func: accepts({
                    let mut b = BtfBuilder::new();
                    let int = b.int("int", 4, 1);
                    let proto = b.func_proto(0, &[("a", int)]);
                    b.func("f", proto, 0);
                    b
                }),
                func_global: accepts({
                    let mut b = BtfBuilder::new();
                    let int = b.int("int", 4, 1);
                    let proto = b.func_proto(0, &[("a", int)]);
                    b.func("f", proto, 1);
                    b
                }),
                datasec: accepts({
                    let mut b = BtfBuilder::new();
                    let int = b.int("int", 4, 1);
                    let var = b.var("x", int, 1);
                    b.datasec(".data", 4, &[(var, 0, 4)]);
                    b
                }),
                float: accepts({
                    let mut b = BtfBuilder::new();
                    b.float("float", 4);
                    b
                }),
                decl_tag: accepts({
                    let mut b = BtfBuilder::new();
                    let int = b.int("int", 4, 1);
                    let var = b.var("x", int, 1);
                    b.decl_tag("tag", var, -1);
                    b
                }),
                type_tag: accepts({
                    let mut b = BtfBuilder::new();
                    let int = b.int("int", 4, 1);
                    let tag = b.type_tag("tag", int);
                    b.ptr(tag);
                    b
                }),
                enum64: accepts({
                    let mut b = BtfBuilder::new();
                    b.enum64("e", 8, &[("v", 1u64 << 40)]);
                    b
                }),
            }
        })
    }
}

/// Little writer of BTF blobs (probes, tests).
#[derive(Debug, Clone)]
pub struct BtfBuilder {
    types: Vec<u8>,
    strings: Vec<u8>,
    next_id: u32,
}

impl Default for BtfBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl BtfBuilder {
    pub fn new() -> Self {
        BtfBuilder {
            types: Vec::new(),
            strings: vec![0],
            next_id: 1,
        }
    }
    fn str(&mut self, s: &str) -> u32 {
        if s.is_empty() {
            return 0;
        }
        let off = self.strings.len() as u32;
        self.strings.extend_from_slice(s.as_bytes());
        self.strings.push(0);
        off
    }
    fn words(&mut self, w: &[u32]) {
        for x in w {
            self.types.extend_from_slice(&x.to_le_bytes());
        }
    }
    fn head(&mut self, name: &str, info: u32, size_or_type: u32) -> u32 {
        let n = self.str(name);
        self.words(&[n, info, size_or_type]);
        self.next_id += 1;
        self.next_id - 1
    }
    /// `encoding`: 1 signed, 2 char, 4 bool.
    pub fn int(&mut self, name: &str, size: u32, encoding: u32) -> u32 {
        let id = self.head(name, info(kind::INT, false, 0), size);
        self.words(&[(encoding << 24) | (size * 8)]);
        id
    }
    pub fn float(&mut self, name: &str, size: u32) -> u32 {
        self.head(name, info(kind::FLOAT, false, 0), size)
    }
    pub fn ptr(&mut self, to: u32) -> u32 {
        self.head("", info(kind::PTR, false, 0), to)
    }
    pub fn type_tag(&mut self, name: &str, to: u32) -> u32 {
        self.head(name, info(kind::TYPE_TAG, false, 0), to)
    }
    pub fn decl_tag(&mut self, name: &str, to: u32, component_idx: i32) -> u32 {
        let id = self.head(name, info(kind::DECL_TAG, false, 0), to);
        self.words(&[component_idx as u32]);
        id
    }
    pub fn var(&mut self, name: &str, ty: u32, linkage: u32) -> u32 {
        let id = self.head(name, info(kind::VAR, false, 0), ty);
        self.words(&[linkage]);
        id
    }
    /// `vars`: (VAR id, offset, size).
    pub fn datasec(&mut self, name: &str, size: u32, vars: &[(u32, u32, u32)]) -> u32 {
        let id = self.head(name, info(kind::DATASEC, false, vars.len() as u32), size);
        for &(t, off, sz) in vars {
            self.words(&[t, off, sz]);
        }
        id
    }
    pub fn func_proto(&mut self, ret: u32, params: &[(&str, u32)]) -> u32 {
        let id = self.head("", info(kind::FUNC_PROTO, false, params.len() as u32), ret);
        for (n, t) in params {
            let n = self.str(n);
            self.words(&[n, *t]);
        }
        id
    }
    /// `linkage`: 0 static, 1 global.
    pub fn func(&mut self, name: &str, proto: u32, linkage: u32) -> u32 {
        self.head(name, info(kind::FUNC, false, linkage), proto)
    }
    /// `members`: (name, type, bit offset).
    pub fn structure(&mut self, name: &str, size: u32, members: &[(&str, u32, u32)]) -> u32 {
        let id = self.head(name, info(kind::STRUCT, false, members.len() as u32), size);
        for (n, t, off) in members {
            let n = self.str(n);
            self.words(&[n, *t, *off]);
        }
        id
    }
    pub fn enum64(&mut self, name: &str, size: u32, values: &[(&str, u64)]) -> u32 {
        let id = self.head(name, info(kind::ENUM64, false, values.len() as u32), size);
        for (n, v) in values {
            let n = self.str(n);
            self.words(&[n, *v as u32, (*v >> 32) as u32]);
        }
        id
    }
    /// The BTF blob: header, types, strings.
    pub fn build(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HDR_LEN + self.types.len() + self.strings.len());
        out.extend_from_slice(&BTF_MAGIC.to_le_bytes());
        out.push(1);
        out.push(0);
        for w in [
            HDR_LEN as u32,
            0,
            self.types.len() as u32,
            self.types.len() as u32,
            self.strings.len() as u32,
        ] {
            out.extend_from_slice(&w.to_le_bytes());
        }
        out.extend_from_slice(&self.types);
        out.extend_from_slice(&self.strings);
        out
    }
}

/// A raw BTF blob being rewritten: header fields and the offset of every type record.
pub struct RawBtf {
    pub data: Vec<u8>,
    hdr_len: usize,
    type_off: usize,
    type_len: usize,
    str_off: usize,
    str_len: usize,
    /// Byte offset (in `data`) of type id `i` at index `i - 1`.
    offsets: Vec<usize>,
}

fn bad(off: usize, field: &str, why: impl std::fmt::Display) -> Error {
    Error::Invalid(format!(".BTF at offset {off:#x}, {field}: {why}"))
}

impl RawBtf {
    pub fn parse(data: Vec<u8>) -> Result<RawBtf> {
        let u32_at = |d: &[u8], off: usize, field: &str| -> Result<u32> {
            d.get(off..off + 4)
                .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .ok_or_else(|| bad(off, field, format!("truncated ({} bytes)", d.len())))
        };
        if data.len() < HDR_LEN {
            return Err(bad(
                0,
                "header",
                format!("truncated ({} bytes)", data.len()),
            ));
        }
        let magic = u16::from_le_bytes([data[0], data[1]]);
        if magic != BTF_MAGIC {
            return Err(bad(
                0,
                "magic",
                format!("{magic:#x}, expected {BTF_MAGIC:#x}"),
            ));
        }
        let hdr_len = u32_at(&data, 4, "hdr_len")? as usize;
        let type_off = u32_at(&data, 8, "type_off")? as usize;
        let type_len = u32_at(&data, 12, "type_len")? as usize;
        let str_off = u32_at(&data, 16, "str_off")? as usize;
        let str_len = u32_at(&data, 20, "str_len")? as usize;
        let tstart = hdr_len + type_off;
        let tend = tstart + type_len;
        if tend > data.len() || hdr_len + str_off + str_len > data.len() {
            return Err(bad(8, "type_off/str_off", "sections run past the end"));
        }
        let mut offsets = Vec::new();
        let mut off = tstart;
        while off < tend {
            let inf = u32_at(&data, off + 4, "info")?;
            let k = (inf >> 24) & 0x1f;
            let vlen = (inf & 0xffff) as usize;
            let extra = match k {
                kind::INT | kind::VAR | kind::DECL_TAG => 4,
                kind::ARRAY => 12,
                kind::STRUCT | kind::UNION | kind::DATASEC | kind::ENUM64 => 12 * vlen,
                kind::ENUM | kind::FUNC_PROTO => 8 * vlen,
                0..=19 => 0,
                _ => return Err(bad(off + 4, "info", format!("unknown BTF kind {k}"))),
            };
            offsets.push(off);
            off += 12 + extra;
        }
        if off != tend {
            return Err(bad(off, "type record", "runs past type_len"));
        }
        Ok(RawBtf {
            data,
            hdr_len,
            type_off,
            type_len,
            str_off,
            str_len,
            offsets,
        })
    }

    pub fn type_count(&self) -> u32 {
        self.offsets.len() as u32 + 1
    }
    fn rd(&self, off: usize) -> u32 {
        u32::from_le_bytes(self.data[off..off + 4].try_into().expect("4 bytes"))
    }
    fn wr(&mut self, off: usize, v: u32) {
        self.data[off..off + 4].copy_from_slice(&v.to_le_bytes());
    }
    /// Kind of type `id`.
    pub fn kind(&self, id: u32) -> u32 {
        (self.rd(self.offsets[id as usize - 1] + 4) >> 24) & 0x1f
    }
    fn vlen(&self, id: u32) -> usize {
        (self.rd(self.offsets[id as usize - 1] + 4) & 0xffff) as usize
    }
    /// The string at `off` of the string section.
    pub fn string(&self, off: u32) -> String {
        let start = self.hdr_len + self.str_off + off as usize;
        let end = self.hdr_len + self.str_off + self.str_len;
        let s = &self.data[start.min(end)..end];
        let n = s.iter().position(|&b| b == 0).unwrap_or(s.len());
        String::from_utf8_lossy(&s[..n]).into_owned()
    }
    pub fn name(&self, id: u32) -> String {
        self.string(self.rd(self.offsets[id as usize - 1]))
    }

    /// libbpf's `btf_fixup_datasec`: DATASEC sizes from `section_sizes`, variable
    /// offsets from `symbols` (name → value) when the size was 0, variables sorted by
    /// offset. `.kconfig`/`.ksyms` are left alone.
    pub fn fixup_datasecs(
        &mut self,
        section_sizes: &HashMap<String, u64>,
        symbols: &HashMap<String, u64>,
    ) -> Result<()> {
        for id in 1..self.type_count() {
            if self.kind(id) != kind::DATASEC {
                continue;
            }
            let name = self.name(id);
            if name == ".kconfig" || name == ".ksyms" {
                continue;
            }
            let off = self.offsets[id as usize - 1];
            let vlen = self.vlen(id);
            let mut fix_offsets = false;
            if self.rd(off + 8) == 0 {
                let size = section_sizes.get(&name).copied().unwrap_or(0);
                if size == 0 {
                    return Err(bad(
                        off,
                        "DATASEC size",
                        format!(
                            "DATASEC `{name}` (type {id}) has size 0 and no ELF section gives one"
                        ),
                    ));
                }
                self.wr(off + 8, size as u32);
                fix_offsets = true;
            }
            let mut vars = Vec::with_capacity(vlen);
            for v in 0..vlen {
                let voff = off + 12 + 12 * v;
                let (t, mut o, s) = (self.rd(voff), self.rd(voff + 4), self.rd(voff + 8));
                if fix_offsets {
                    if t == 0 || t >= self.type_count() {
                        return Err(bad(
                            voff,
                            "DATASEC var type",
                            format!("type id {t} out of range"),
                        ));
                    }
                    let vname = self.name(t);
                    o = *symbols.get(&vname).ok_or_else(|| {
                        bad(
                            voff,
                            "DATASEC var",
                            format!("variable `{vname}` of `{name}` has no ELF symbol"),
                        )
                    })? as u32;
                }
                vars.push((t, o, s));
            }
            vars.sort_by_key(|v| v.1);
            for (v, (t, o, s)) in vars.into_iter().enumerate() {
                let voff = off + 12 + 12 * v;
                self.wr(voff, t);
                self.wr(voff + 4, o);
                self.wr(voff + 8, s);
            }
        }
        Ok(())
    }

    fn append_string(&mut self, s: &str) -> u32 {
        let off = self.str_len as u32;
        let at = self.hdr_len + self.str_off + self.str_len;
        let mut bytes = s.as_bytes().to_vec();
        bytes.push(0);
        self.data.splice(at..at, bytes.iter().copied());
        self.str_len += bytes.len();
        self.wr(20, self.str_len as u32);
        off
    }

    /// Appends an INT type (placed at the end of the type section) and returns its id.
    fn append_int(&mut self, name: &str, size: u32) -> u32 {
        let name_off = self.append_string(name);
        self.append_type(&[name_off, info(kind::INT, false, 0), size, size * 8])
    }

    /// Appends a type record (words) at the end of the type section; returns its id.
    fn append_type(&mut self, words: &[u32]) -> u32 {
        let at = self.hdr_len + self.type_off + self.type_len;
        let mut rec = Vec::new();
        for w in words {
            rec.extend_from_slice(&w.to_le_bytes());
        }
        self.data.splice(at..at, rec.iter().copied());
        self.type_len += rec.len();
        self.wr(12, self.type_len as u32);
        // Strings follow types in every BTF clang or this builder writes; move them.
        if self.str_off >= self.type_off + self.type_len - rec.len() {
            self.str_off += rec.len();
            self.wr(16, self.str_off as u32);
        }
        self.offsets.push(at);
        self.type_count() - 1
    }

    /// libbpf's treatment of the `.ksyms` DATASEC (`bpf_object__collect_externs`): the
    /// kernel accepts only allocated VARs in a DATASEC and no extern FUNC, so each extern
    /// becomes a 4-byte slot. A variable gets `int` type and global-allocated linkage; a
    /// function becomes global and its slot points at a dummy `int` VAR (`dummy_ksym`),
    /// whose name also fills unnamed parameters. Returns whether there was a `.ksyms`.
    pub fn fixup_ksyms(&mut self) -> Result<bool> {
        let Some(sec) = (1..self.type_count())
            .find(|&id| self.kind(id) == kind::DATASEC && self.name(id) == ".ksyms")
        else {
            return Ok(false);
        };
        let int_id = match (1..self.type_count()).find(|&id| {
            self.kind(id) == kind::INT && self.rd(self.offsets[id as usize - 1] + 8) == 4
        }) {
            Some(id) => id,
            None => self.append_int("int", 4),
        };
        let dummy_name = self.append_string("dummy_ksym");
        let dummy = self.append_type(&[dummy_name, info(kind::VAR, false, 0), int_id, 1]);
        let n = self.vlen(sec);
        for i in 0..n {
            let voff = self.offsets[sec as usize - 1] + 12 + 12 * i;
            let t = self.rd(voff);
            if t == 0 || t >= self.type_count() {
                return Err(bad(
                    voff,
                    ".ksyms var type",
                    format!("type id {t} out of range"),
                ));
            }
            let toff = self.offsets[t as usize - 1];
            match self.kind(t) {
                kind::FUNC => {
                    let proto = self.rd(toff + 8);
                    if proto != 0
                        && proto < self.type_count()
                        && self.kind(proto) == kind::FUNC_PROTO
                    {
                        let poff = self.offsets[proto as usize - 1];
                        for j in 0..self.vlen(proto) {
                            let a = poff + 12 + 8 * j;
                            if self.rd(a + 4) != 0 && self.rd(a) == 0 {
                                self.wr(a, dummy_name);
                            }
                        }
                    }
                    self.wr(voff, dummy);
                    let inf = self.rd(toff + 4);
                    self.wr(toff + 4, (inf & !0xffff) | 1); // BTF_FUNC_GLOBAL
                }
                kind::VAR => {
                    self.wr(toff + 8, int_id);
                    self.wr(toff + 12, 1); // BTF_VAR_GLOBAL_ALLOCATED
                }
                k => {
                    return Err(bad(
                        voff,
                        ".ksyms var type",
                        format!("kind {k}, not a VAR or FUNC"),
                    ));
                }
            }
            self.wr(voff + 4, (i * 4) as u32);
            self.wr(voff + 8, 4);
        }
        let soff = self.offsets[sec as usize - 1];
        self.wr(soff + 8, (n * 4) as u32);
        Ok(true)
    }

    /// libbpf's `bpf_object__sanitize_btf`: rewrites kinds `feats` says the kernel lacks.
    /// Returns how many types were rewritten.
    pub fn sanitize(&mut self, feats: &BtfFeatures) -> Result<usize> {
        let mut changed = 0;
        let mut enum64_placeholder = 0;
        let count = self.type_count();
        for id in 1..count {
            let off = self.offsets[id as usize - 1];
            let k = self.kind(id);
            let vlen = self.vlen(id);
            let inf = self.rd(off + 4);
            if (!feats.datasec && k == kind::VAR) || (!feats.decl_tag && k == kind::DECL_TAG) {
                self.wr(off + 4, info(kind::INT, false, 0));
                self.wr(off + 8, 1);
                self.wr(off + 12, 8);
            } else if !feats.datasec && k == kind::DATASEC {
                // A STRUCT of the same size whose members are the variables, renamed
                // to something the kernel accepts as a member/struct name.
                // libbpf renames in place: '.' and '?' become '_'.
                let start = self.hdr_len + self.str_off + self.rd(off) as usize;
                let mut i = start;
                while i < self.data.len() && self.data[i] != 0 {
                    if matches!(self.data[i], b'.' | b'?') {
                        self.data[i] = b'_';
                    }
                    i += 1;
                }
                let off = self.offsets[id as usize - 1];
                self.wr(off + 4, info(kind::STRUCT, false, vlen as u32));
                for v in 0..vlen {
                    let m = off + 12 + 12 * v;
                    let (t, o) = (self.rd(m), self.rd(m + 4));
                    let vname_off = self.rd(self.offsets[t as usize - 1]);
                    self.wr(m, vname_off);
                    self.wr(m + 4, t);
                    self.wr(m + 8, o * 8);
                }
            } else if !feats.func && k == kind::FUNC_PROTO {
                self.wr(off + 4, info(kind::ENUM, false, vlen as u32));
                self.wr(off + 8, 4);
            } else if !feats.func && k == kind::FUNC {
                self.wr(off + 4, info(kind::TYPEDEF, false, 0));
            } else if !feats.func_global && k == kind::FUNC {
                self.wr(off + 4, info(kind::FUNC, false, 0));
            } else if !feats.float && k == kind::FLOAT {
                self.wr(off, 0);
                self.wr(off + 4, info(kind::STRUCT, false, 0));
            } else if !feats.type_tag && k == kind::TYPE_TAG {
                self.wr(off, 0);
                self.wr(off + 4, info(kind::CONST, false, 0));
            } else if !feats.enum64 && k == kind::ENUM {
                self.wr(off + 4, inf & !(1 << 31));
            } else if !feats.enum64 && k == kind::ENUM64 {
                if enum64_placeholder == 0 {
                    enum64_placeholder = self.append_int("enum64_placeholder", 1);
                }
                let off = self.offsets[id as usize - 1];
                self.wr(off + 4, info(kind::UNION, false, vlen as u32));
                for v in 0..vlen {
                    let m = off + 12 + 12 * v;
                    self.wr(m + 4, enum64_placeholder);
                    self.wr(m + 8, 0);
                }
            } else {
                continue;
            }
            changed += 1;
        }
        Ok(changed)
    }
}

/// `union bpf_attr` for `BPF_BTF_LOAD`.
#[repr(C)]
#[derive(Default)]
struct BtfLoadAttr {
    btf: u64,
    btf_log_buf: u64,
    btf_size: u32,
    btf_log_size: u32,
    btf_log_level: u32,
    btf_log_true_size: u32,
}

pub const BPF_BTF_LOAD: u32 = 18;

/// `BPF_BTF_LOAD` of a blob; with `want_log`, a refusal is retried with a log, which the
/// error carries.
pub fn load_raw(data: &[u8], want_log: bool) -> Result<OwnedFd> {
    let attempt = |log: Option<&mut Vec<u8>>| {
        let mut attr = BtfLoadAttr {
            btf: data.as_ptr() as u64,
            btf_size: data.len() as u32,
            ..Default::default()
        };
        if let Some(l) = log {
            attr.btf_log_buf = l.as_mut_ptr() as u64;
            attr.btf_log_size = l.len() as u32;
            attr.btf_log_level = 1;
        }
        // SAFETY: btf points to btf_size readable bytes, btf_log_buf (if set) to
        // btf_log_size writable bytes; both outlive the call.
        unsafe { sys::sys_bpf(BPF_BTF_LOAD, &mut attr) }
    };
    let r = match attempt(None) {
        Ok(fd) => Ok(fd),
        Err(e) if !want_log => Err((e, String::new())),
        Err(_) => {
            let mut log = vec![0u8; 1 << 20];
            attempt(Some(&mut log)).map_err(|e| {
                let n = log.iter().position(|&b| b == 0).unwrap_or(log.len());
                (e, String::from_utf8_lossy(&log[..n]).into_owned())
            })
        }
    };
    match r {
        // SAFETY: the kernel just returned this fd; nobody else owns it.
        Ok(fd) => Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) }),
        Err((e, log)) => Err(Error::Sys {
            cmd: "BPF_BTF_LOAD",
            what: if log.trim().is_empty() {
                format!("{} bytes of BTF", data.len())
            } else {
                format!(
                    "{} bytes of BTF; kernel BTF log: {}",
                    data.len(),
                    log.trim()
                        .lines()
                        .rev()
                        .take(4)
                        .collect::<Vec<_>>()
                        .join(" | ")
                )
            },
            source: e,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        let mut b = BtfBuilder::new();
        let int = b.int("int", 4, 1);
        let f = b.float("float", 4);
        let tag = b.type_tag("user", int);
        let p = b.ptr(tag);
        let e = b.enum64("big", 8, &[("A", 1 << 40), ("B", 3)]);
        let s = b.structure(
            "s",
            32,
            &[("a", int, 0), ("f", f, 32), ("p", p, 64), ("e", e, 128)],
        );
        b.decl_tag("k", s, 1);
        let v = b.var("g", s, 1);
        b.datasec(".data", 32, &[(v, 0, 32)]);
        b.build()
    }

    #[test]
    fn parse_walks_every_record() {
        let r = RawBtf::parse(sample()).unwrap();
        assert_eq!(r.type_count(), 10);
        assert_eq!(r.kind(5), kind::ENUM64);
        assert_eq!(r.name(9), ".data");
    }

    #[test]
    fn sanitize_none_leaves_no_new_kind() {
        let mut r = RawBtf::parse(sample()).unwrap();
        let n = r.sanitize(&BtfFeatures::NONE).unwrap();
        assert!(n >= 6, "{n} rewritten");
        let r = RawBtf::parse(r.data).unwrap();
        assert_eq!(r.type_count(), 11, "placeholder INT appended");
        for id in 1..r.type_count() {
            let k = r.kind(id);
            assert!(
                !matches!(
                    k,
                    kind::FLOAT
                        | kind::DECL_TAG
                        | kind::TYPE_TAG
                        | kind::ENUM64
                        | kind::VAR
                        | kind::DATASEC
                ),
                "type {id} still kind {k}"
            );
        }
        assert_eq!(r.name(10), "enum64_placeholder");
        assert_eq!(r.name(9), "_data");
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(RawBtf::parse(vec![1, 2, 3]).is_err());
        let mut s = sample();
        s.truncate(40);
        assert!(RawBtf::parse(s).is_err());
    }
}
