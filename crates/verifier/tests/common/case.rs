//! Verifier test cases as data files (`tests/cases/**/*.case`). Format:
//!
//! ```text
//! # free text: what the case checks
//! -- maps                  (optional; one map per line, referenced by index)
//! counters array key=4 value=8 entries=4 [flags=0x80]
//! -- asm                   (bpfkit assembler text, LLVM or ubpf syntax), or
//! -- raw                   (hex bytes, 8 per instruction, for encodings asm refuses)
//! ...
//! -- expect
//! accept                   or   reject <substring of the kernel's error message>
//! ```
//! In `-- asm`, `ld_pseudo rX, 5, N` loads the address of map N. `-- options` may say
//! `caps=SET` (the loader's capabilities, as `--caps`: e.g. `caps=bpf,net_admin`; bpfkit
//! verifies with them and the kernel half loads from a thread with exactly those
//! capabilities; `unprivileged` means `caps=bpf,net_admin`), or `btf-func-info` (the
//! harness gives the program BTF func_info, one FUNC per sub-program, as the kernel
//! demands for callbacks).
//! `call kfunc NAME` calls the kernel function NAME (`BPF_PSEUDO_KFUNC_CALL`): bpfkit
//! gets the name, the kernel harness the BTF id NAME has in the running vmlinux.
//! Map attributes beyond sizes: `lock=OFF` / `timer=OFF` (the map value gets BTF with a
//! `struct bpf_spin_lock` / `struct bpf_timer` at OFF), `btf` (value BTF without special
//! fields), `init=HEX` (value of key 0; maps with flags=0x80 are then frozen),
//! `inner=TYPE/KEY/VALUE/ENTRIES` (the inner map template of a map-in-map).
//! `-- processed` with `within R` bounds bpfkit's processed instructions to R times
//! the kernel's (`processed N insns` of its log), checked when the kernel is used.

#![allow(dead_code)]

use bpfkit_isa::RawInsn;
use bpfkit_object::model::{
    map_type, prog_type, InsnOrigin, LinkedProgram, MapDef, MapInit, MapOrigin,
};

pub struct Case {
    pub name: String,
    pub maps: Vec<MapDef>,
    pub insns: Vec<RawInsn>,
    pub accept: bool,
    pub message: String,
    /// The loader's capabilities (`caps=` option; root by default).
    pub caps: bpfkit_verifier::Caps,
    /// Why this case cannot be loaded into the kernel by the test harness (if so).
    pub no_kernel: Option<String>,
    /// Per map: BTF value fields (None: the map has no BTF).
    pub fields: Vec<Option<super::btf::ValueFields>>,
    /// Per map: initial value of key 0.
    pub init: Vec<Option<Vec<u8>>>,
    /// The program is loaded with BTF func_info.
    pub func_info: bool,
    /// (instruction, name) of each `call kfunc NAME`.
    pub kfuncs: Vec<(usize, String)>,
    /// `-- processed within R`: bpfkit's processed instructions at most R times the
    /// kernel's.
    pub max_ratio: Option<f64>,
}

/// Placeholder immediates for `call kfunc NAME` (resolved after assembling).
const KFUNC_PLACEHOLDER: i32 = 0x7ff0_0000;

/// Rewrites `call kfunc NAME` into `call kfunc PLACEHOLDER+k`; returns the names.
fn kfunc_names(body: &str) -> (String, Vec<String>) {
    let mut names = vec![];
    let mut out = String::new();
    for line in body.lines() {
        let code = line.split('#').next().unwrap_or("");
        let (label, rest) = match code.split_once(':') {
            Some((l, r)) if !l.contains(' ') => (Some(l), r),
            _ => (None, code),
        };
        let toks: Vec<&str> = rest.split_whitespace().collect();
        if toks.len() == 3
            && toks[0] == "call"
            && toks[1] == "kfunc"
            && toks[2].starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        {
            if let Some(l) = label {
                out.push_str(l);
                out.push_str(": ");
            }
            out.push_str(&format!(
                "call kfunc {}\n",
                KFUNC_PLACEHOLDER + names.len() as i32
            ));
            names.push(toks[2].to_string());
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    (out, names)
}

fn parse_num(s: &str) -> Result<u32, String> {
    let r = if let Some(h) = s.strip_prefix("0x") {
        u32::from_str_radix(h, 16)
    } else {
        s.parse()
    };
    r.map_err(|_| format!("bad number {s:?}"))
}

type MapExtra = (Option<super::btf::ValueFields>, Option<Vec<u8>>);

fn parse_hex(v: &str) -> Result<Vec<u8>, String> {
    if !v.len().is_multiple_of(2) {
        return Err(format!("odd hex string {v:?}"));
    }
    (0..v.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&v[i..i + 2], 16).map_err(|e| format!("{v:?}: {e}")))
        .collect()
}

fn parse_map(line: &str) -> Result<(MapDef, MapExtra), String> {
    let mut it = line.split_whitespace();
    let name = it.next().ok_or("map line without a name")?.to_string();
    let ty = it.next().ok_or("map line without a type")?;
    let want = format!("BPF_MAP_TYPE_{}", ty.to_uppercase());
    let map_type = (0..64)
        .find(|&t| map_type::name(t) == Some(want.as_str()))
        .ok_or(format!("unknown map type {ty}"))?;
    let mut m = MapDef {
        name,
        map_type,
        key_size: 0,
        value_size: 0,
        max_entries: 0,
        map_flags: 0,
        pinning: 0,
        inner: None,
        init: MapInit::None,
        origin: MapOrigin::Btf,
        section: ".maps".into(),
        btf_key_type_id: 0,
        btf_value_type_id: 0,
    };
    let mut fields: Option<super::btf::ValueFields> = None;
    let mut init = None;
    for kv in it {
        if kv == "btf" {
            fields.get_or_insert_with(Default::default);
            continue;
        }
        let (k, v) = kv
            .split_once('=')
            .ok_or(format!("expected key=value, got {kv:?}"))?;
        if k == "inner" {
            // inner=TYPE/KEY/VALUE/ENTRIES: the template of a map-in-map
            let f: Vec<&str> = v.split('/').collect();
            if f.len() != 4 {
                return Err(format!("inner= wants TYPE/KEY/VALUE/ENTRIES, got {v:?}"));
            }
            let (inner, _) = parse_map(&format!(
                "{}_inner {} key={} value={} entries={}",
                m.name, f[0], f[1], f[2], f[3]
            ))?;
            m.inner = Some(Box::new(inner));
            continue;
        }
        if k == "init" {
            let b = parse_hex(v)?;
            m.init = MapInit::Data(b.clone());
            init = Some(b);
            continue;
        }
        let n = parse_num(v)?;
        match k {
            "key" => m.key_size = n,
            "value" => m.value_size = n,
            "entries" => m.max_entries = n,
            "flags" => m.map_flags = n,
            "lock" => fields.get_or_insert_with(Default::default).lock = Some(n),
            "timer" => fields.get_or_insert_with(Default::default).timer = Some(n),
            _ => return Err(format!("unknown map attribute {k}")),
        }
    }
    Ok((m, (fields, init)))
}

impl Case {
    pub fn load(path: &std::path::Path) -> Result<Case, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Case::parse(&path.file_stem().unwrap().to_string_lossy(), &text)
            .map_err(|e| format!("{}: {e}", path.display()))
    }

    pub fn parse(name: &str, text: &str) -> Result<Case, String> {
        let mut sections: Vec<(String, String)> = vec![];
        for line in text.lines() {
            if let Some(s) = line.strip_prefix("-- ") {
                sections.push((s.trim().to_string(), String::new()));
            } else if let Some((_, body)) = sections.last_mut() {
                body.push_str(line);
                body.push('\n');
            }
        }
        let mut c = Case {
            name: name.into(),
            maps: vec![],
            insns: vec![],
            accept: true,
            message: String::new(),
            caps: bpfkit_verifier::Caps::ROOT,
            no_kernel: None,
            fields: vec![],
            init: vec![],
            func_info: false,
            kfuncs: vec![],
            max_ratio: None,
        };
        let mut have_expect = false;
        for (sec, body) in &sections {
            match sec.as_str() {
                "maps" => {
                    for l in body
                        .lines()
                        .map(|l| l.split('#').next().unwrap().trim())
                        .filter(|l| !l.is_empty())
                    {
                        let (m, (f, init)) = parse_map(l)?;
                        c.maps.push(m);
                        c.fields.push(f);
                        c.init.push(init);
                    }
                }
                "asm" => {
                    let (text, names) = kfunc_names(body);
                    c.insns = bpfkit_asm::assemble(&text).map_err(|e| format!("asm: {e}"))?;
                    for (i, insn) in c.insns.iter_mut().enumerate() {
                        let k = insn.imm.wrapping_sub(KFUNC_PLACEHOLDER);
                        if insn.code == 0x85
                            && insn.src == 2
                            && (0..names.len() as i32).contains(&k)
                        {
                            insn.imm = 0;
                            c.kfuncs.push((i, names[k as usize].clone()));
                        }
                    }
                }
                "raw" => {
                    let bytes: Result<Vec<u8>, _> = body
                        .lines()
                        .map(|l| l.split('#').next().unwrap())
                        .flat_map(|l| l.split_whitespace().map(str::to_string).collect::<Vec<_>>())
                        .map(|t| u8::from_str_radix(&t, 16))
                        .collect();
                    let bytes = bytes.map_err(|e| format!("raw: {e}"))?;
                    c.insns = bpfkit_isa::parse_raw(&bytes).map_err(|e| e.to_string())?;
                }
                "expect" => {
                    let l = body.trim();
                    have_expect = true;
                    if l == "accept" {
                        c.accept = true;
                    } else if let Some(m) = l.strip_prefix("reject") {
                        c.accept = false;
                        c.message = m.trim().to_string();
                    } else {
                        return Err(format!("bad expect line {l:?}"));
                    }
                }
                "processed" => {
                    let l = body.trim();
                    let r = l
                        .strip_prefix("within ")
                        .and_then(|r| r.trim().parse::<f64>().ok())
                        .filter(|r| *r >= 1.0)
                        .ok_or(format!(
                            "bad processed line {l:?} (expected `within R`, R >= 1)"
                        ))?;
                    c.max_ratio = Some(r);
                }
                "options" => {
                    for w in body.split_whitespace() {
                        if w == "unprivileged" {
                            c.caps = bpfkit_verifier::Caps::BPF_NET_ADMIN;
                        } else if let Some(set) = w.strip_prefix("caps=") {
                            c.caps = bpfkit_verifier::Caps::parse(set)?;
                        }
                    }
                    c.func_info = body.contains("btf-func-info");
                }
                s => return Err(format!("unknown section -- {s}")),
            }
        }
        if !have_expect {
            return Err("no -- expect section".into());
        }
        if c.insns.is_empty() {
            return Err("no program".into());
        }
        Ok(c)
    }

    pub fn program(&self) -> LinkedProgram {
        LinkedProgram {
            name: self.name.clone(),
            section: "xdp".into(),
            prog_type: prog_type::XDP,
            expected_attach_type: None,
            prog_flags: 0,
            insns: self.insns.clone(),
            origins: (0..self.insns.len())
                .map(|i| InsnOrigin {
                    section: "xdp".into(),
                    function: self.name.clone(),
                    insn_index: i,
                    line: None,
                })
                .collect(),
        }
    }

    pub fn options(&self) -> bpfkit_verifier::Options {
        use bpfkit_verifier::btf_fields::MapFields;
        bpfkit_verifier::Options {
            caps: self.caps,
            map_fields: Some(
                self.fields
                    .iter()
                    .map(|f| match f {
                        None => MapFields::default(),
                        Some(f) => MapFields {
                            has_btf: true,
                            spin_lock: f.lock,
                            timer: f.timer,
                            unmodelled: None,
                        },
                    })
                    .collect(),
            ),
            kfuncs: self.kfuncs.clone(),
            ..Default::default()
        }
    }

    /// What the kernel harness needs beyond instructions and maps.
    pub fn extra(&self) -> super::kernel::Extra {
        super::kernel::Extra {
            license: String::new(),
            fields: self.fields.clone(),
            init: self.init.clone(),
            func_info: self.func_info,
            kfuncs: self.kfuncs.clone(),
        }
    }
}
