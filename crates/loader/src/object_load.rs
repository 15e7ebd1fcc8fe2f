//! Loading a whole ELF object into the kernel as libbpf does: BTF (DATASEC fix-up,
//! sanitised for the running kernel), maps with BTF key/value type ids (retried
//! without BTF if the kernel refuses them), global data with initial values, `.rodata`
//! frozen, `LIBBPF_PIN_BY_NAME` maps reused or pinned, programs with func_info and
//! line_info, PROG_ARRAYs and map-in-maps filled from `.values`.
//!
//! A failed load leaves nothing behind: every fd is closed and every pin this load made
//! is removed before the error is returned.

use crate::btf_load::{self, BtfFeatures, RawBtf};
use crate::engine::{map_spec, resolve_map_refs};
use crate::error::{Error, Result};
use crate::map::{Map, MapSpec};
use crate::pin;
use crate::prog::Program;
use crate::sys::{self, MapCreateAttr, ProgLoadAttr};
use bpfkit_object::model::{map_type, LinkedProgram, MapDef, MapInit, MapOrigin};
use bpfkit_object::{LinkedObject, Object};
use std::collections::HashMap;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

/// `LIBBPF_PIN_BY_NAME`.
pub const LIBBPF_PIN_BY_NAME: u32 = 1;

/// Options of [`LoadedObject::load`].
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// Directory (on bpffs) for `LIBBPF_PIN_BY_NAME` maps; libbpf's default is
    /// `/sys/fs/bpf`. `None`: such maps are created and not pinned.
    pub pin_root: Option<PathBuf>,
    /// BTF kinds to assume the kernel has; `None` probes the kernel.
    pub btf_features: Option<BtfFeatures>,
    /// Verifier log level for successful loads too (0: log only on rejection).
    pub log_level: u32,
}

/// One map of a loaded object.
#[derive(Debug)]
pub struct LoadedMap {
    pub def: MapDef,
    pub map: Map,
    /// Created with BTF key/value type ids.
    pub with_btf: bool,
    /// Taken over from an existing pin (`LIBBPF_PIN_BY_NAME`).
    pub reused: bool,
    /// Where this load pinned it.
    pub pinned: Option<PathBuf>,
}

/// One program of a loaded object.
#[derive(Debug)]
pub struct LoadedProgram {
    pub linked: LinkedProgram,
    pub program: Program,
    /// Number of func_info / line_info records passed to the kernel.
    pub func_info: usize,
    pub line_info: usize,
}

/// An object in the kernel. Dropping it closes every fd (the kernel frees what no pin
/// or attachment holds).
#[derive(Debug)]
pub struct LoadedObject {
    pub name: String,
    pub btf: Option<OwnedFd>,
    /// Why the object's BTF was not loaded, if it was not.
    pub btf_error: Option<String>,
    /// Number of BTF types rewritten for the running kernel.
    pub btf_sanitized: usize,
    pub maps: Vec<LoadedMap>,
    pub programs: Vec<LoadedProgram>,
    /// Pins made by [`LoadedObject::pin_all`] and by-name pinning.
    pins: Vec<PathBuf>,
}

/// Removes the pins in the list unless disarmed (a failed load leaves no pin).
struct PinGuard(Vec<PathBuf>);
impl Drop for PinGuard {
    fn drop(&mut self) {
        for p in &self.0 {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// The object's BTF prepared for `BPF_BTF_LOAD`: DATASECs fixed, kinds sanitised.
pub fn prepare_btf(obj: &Object, feats: &BtfFeatures) -> Result<Option<(Vec<u8>, usize)>> {
    let Some(sec) = obj.section(".BTF") else {
        return Ok(None);
    };
    let mut raw = RawBtf::parse(sec.data.clone())?;
    let sizes: HashMap<String, u64> = obj
        .sections
        .iter()
        .map(|s| (s.name.clone(), s.size))
        .collect();
    let syms: HashMap<String, u64> = obj
        .symbols
        .iter()
        .filter(|s| {
            s.shndx != 0
                && matches!(
                    s.sym_type,
                    bpfkit_object::STT_OBJECT | bpfkit_object::STT_NOTYPE
                )
        })
        .map(|s| (s.name.clone(), s.value))
        .collect();
    raw.fixup_datasecs(&sizes, &syms)?;
    raw.fixup_ksyms()?;
    let n = raw.sanitize(feats)?;
    Ok(Some((raw.data, n)))
}

fn create_map(
    def: &MapDef,
    inner: Option<BorrowedFd<'_>>,
    btf: Option<BorrowedFd<'_>>,
) -> Result<(Map, bool)> {
    let spec = map_spec(def);
    let value_id = def.btf_value_type_id;
    let use_btf = btf.is_some() && value_id != 0;
    let attempt = |with_btf: bool| {
        let mut attr = MapCreateAttr {
            map_type: spec.map_type,
            key_size: spec.key_size,
            value_size: spec.value_size,
            max_entries: spec.max_entries,
            map_flags: spec.map_flags,
            inner_map_fd: inner.map_or(0, |f| f.as_raw_fd() as u32),
            map_name: sys::obj_name(&spec.name),
            ..Default::default()
        };
        if with_btf {
            attr.btf_fd = btf.map_or(0, |f| f.as_raw_fd() as u32);
            attr.btf_key_type_id = def.btf_key_type_id;
            attr.btf_value_type_id = value_id;
        }
        // SAFETY: MapCreateAttr carries no pointers.
        unsafe { sys::sys_bpf(sys::BPF_MAP_CREATE, &mut attr) }
    };
    let mut with_btf = use_btf;
    let mut r = attempt(with_btf);
    if r.is_err() && with_btf {
        // libbpf retries without BTF when the kernel refuses the map's BTF.
        with_btf = false;
        r = attempt(false);
    }
    let fd = r.map_err(|e| {
        Error::sys(
            sys::BPF_MAP_CREATE,
            format!(
                "map `{}`: type {} key {} value {} entries {} flags {:#x}",
                spec.name,
                map_type::name(spec.map_type).unwrap_or("?"),
                spec.key_size,
                spec.value_size,
                spec.max_entries,
                spec.map_flags
            ),
            e,
        )
    })?;
    // SAFETY: the kernel just returned this fd; nobody else owns it.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    Ok((Map::from_fd(fd, spec)?, with_btf))
}

/// Whether a pinned map can stand in for `def` (libbpf's `map_is_reuse_compat`).
fn compatible(m: &Map, def: &MapDef) -> Result<bool> {
    let i = m.info()?;
    Ok(i.map_type == def.map_type
        && i.key_size == def.key_size
        && i.value_size == def.value_size
        && i.max_entries == def.max_entries
        && i.map_flags == def.kernel_flags())
}

/// func_info and line_info records of a linked program (insn offsets in the linked
/// stream), from the object's `.BTF.ext`.
fn ext_records(obj: &Object, p: &LinkedProgram) -> (Vec<u32>, Vec<u32>) {
    let Some(ext) = &obj.btf_ext else {
        return (Vec::new(), Vec::new());
    };
    let funcs: HashMap<(&str, usize), u32> = ext
        .func_info
        .iter()
        .map(|f| ((f.section.as_str(), f.insn_index), f.type_id))
        .collect();
    let lines: HashMap<(&str, usize), &bpfkit_object::btf_ext::LineInfo> = ext
        .line_info
        .iter()
        .map(|l| ((l.section.as_str(), l.insn_index), l))
        .collect();
    let (mut fi, mut li) = (Vec::new(), Vec::new());
    for (j, o) in p.origins.iter().enumerate() {
        let key = (o.section.as_str(), o.insn_index);
        if let Some(t) = funcs.get(&key) {
            fi.extend_from_slice(&[j as u32, *t]);
        }
        if let Some(l) = lines.get(&key) {
            li.extend_from_slice(&[j as u32, l.file_name_off, l.line_off, l.line_col]);
        }
    }
    (fi, li)
}

/// The instruction the verifier stopped at: the index of the last `N: (..)` line.
pub fn failing_insn(log: &str) -> Option<usize> {
    log.lines().rev().find_map(|l| {
        let (n, rest) = l.split_once(": ")?;
        if rest.starts_with('(') {
            n.trim().parse().ok()
        } else {
            None
        }
    })
}

/// The verifier log with a leading summary naming the C source line of the failing
/// instruction, from the program's line info.
pub fn map_log_to_source(p: &LinkedProgram, log: &str) -> (Option<usize>, Option<String>) {
    let Some(i) = failing_insn(log) else {
        return (None, None);
    };
    let at = p.origins.get(i).and_then(|o| {
        o.line
            .as_ref()
            .map(|l| format!("{}:{}:{}: {}", l.file, l.line, l.column, l.text.trim()))
    });
    (Some(i), at)
}

/// Each kfunc call takes the BTF id its extern's name has in the running kernel's
/// vmlinux BTF (`engine::kfunc_btf_id`).
fn resolve_kfuncs(
    obj: &Object,
    p: &LinkedProgram,
    insns: &mut [bpfkit_isa::RawInsn],
) -> Result<()> {
    for (at, name) in obj.kfunc_calls(p) {
        let id = crate::engine::kfunc_btf_id(&p.name, &name)?;
        if let Some(insn) = insns.get_mut(at) {
            insn.imm = id;
            insn.off = 0;
        }
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)] // one call site; the attr's inputs, spelled out
fn load_program(
    p: &LinkedProgram,
    insns: &[bpfkit_isa::RawInsn],
    license: &str,
    kern_version: u32,
    btf: Option<BorrowedFd<'_>>,
    fi: &[u32],
    li: &[u32],
    log_level: u32,
) -> Result<Program> {
    let license_c = std::ffi::CString::new(license)
        .map_err(|_| Error::Invalid(format!("program `{}`: license contains NUL", p.name)))?;
    let bytes = bpfkit_isa::to_bytes(insns);
    let attempt = |log: Option<&mut Vec<u8>>, level: u32| {
        let mut attr = ProgLoadAttr {
            prog_type: p.prog_type,
            insn_cnt: insns.len() as u32,
            insns: bytes.as_ptr() as u64,
            license: license_c.as_ptr() as u64,
            kern_version,
            prog_flags: p.prog_flags,
            prog_name: sys::obj_name(&p.name),
            expected_attach_type: p.expected_attach_type.unwrap_or(0),
            ..Default::default()
        };
        if let Some(b) = btf {
            attr.prog_btf_fd = b.as_raw_fd() as u32;
            if !fi.is_empty() {
                attr.func_info_rec_size = 8;
                attr.func_info = fi.as_ptr() as u64;
                attr.func_info_cnt = (fi.len() / 2) as u32;
            }
            if !li.is_empty() {
                attr.line_info_rec_size = 16;
                attr.line_info = li.as_ptr() as u64;
                attr.line_info_cnt = (li.len() / 4) as u32;
            }
        }
        if let Some(buf) = log {
            attr.log_level = level;
            attr.log_size = buf.len() as u32;
            attr.log_buf = buf.as_mut_ptr() as u64;
        }
        // SAFETY: insns, license, func_info, line_info point to buffers of the stated
        // counts and record sizes, log_buf (if set) to log_size writable bytes; all
        // outlive the call.
        let r = unsafe { sys::prog_load(&mut attr) };
        (r, attr.log_true_size)
    };
    let mut result = if log_level == 0 {
        Some(attempt(None, 0).0)
    } else {
        None
    };
    let mut log = Vec::new();
    if !matches!(result, Some(Ok(_))) {
        let mut size = 1usize << 20;
        loop {
            log = vec![0u8; size];
            let (r, true_size) = attempt(Some(&mut log), log_level.max(1));
            match r {
                Err(e) if e.raw_os_error() == Some(libc::ENOSPC) && size < (256 << 20) => {
                    size = (true_size as usize).max(size * 4).min(256 << 20);
                }
                r => {
                    result = Some(r);
                    break;
                }
            }
        }
    }
    let n = log.iter().position(|&b| b == 0).unwrap_or(log.len());
    let log = String::from_utf8_lossy(&log[..n]).into_owned();
    match result.expect("an attempt was made") {
        // SAFETY: the kernel just returned this fd; nobody else owns it.
        Ok(fd) => Ok(Program::from_fd(
            unsafe { OwnedFd::from_raw_fd(fd as i32) },
            &p.name,
            p.prog_type,
            if log_level > 0 { log } else { String::new() },
        )),
        Err(e) => {
            let (insn, at) = map_log_to_source(p, &log);
            let mut log = log;
            match (insn, at) {
                (Some(i), Some(at)) => {
                    log.push_str(&format!("\nbpfkit: rejected at instruction {i}, {at}"))
                }
                (Some(i), None) => log.push_str(&format!(
                    "\nbpfkit: rejected at instruction {i} (no line info)"
                )),
                _ => {}
            }
            Err(Error::Rejected {
                prog: p.name.clone(),
                source: e,
                log,
            })
        }
    }
}

impl LoadedObject {
    /// Reads, links and loads the object at `path`.
    pub fn open(path: &Path, opts: &LoadOptions) -> Result<LoadedObject> {
        let bytes = std::fs::read(path)
            .map_err(|e| Error::Invalid(format!("cannot read {}: {e}", path.display())))?;
        let name = bpfkit_object::object_name_from_path(path);
        let obj = Object::parse_named(&bytes, &name)
            .map_err(|e| Error::Invalid(format!("{}: {e}", path.display())))?;
        Self::load(&obj, opts)
    }

    /// Loads a parsed object.
    pub fn load(obj: &Object, opts: &LoadOptions) -> Result<LoadedObject> {
        if let Some((map, e)) = obj.elf_map_extra.iter().next() {
            return Err(Error::Invalid(format!(
                "map `{map}` uses iproute2's {}-byte struct bpf_elf_map (id {}, pinning {}, inner_id {}, inner_idx {}): bpfkit load, like libbpf, does not load that layout (pinning into iproute2's namespaces, maps linked by id); load it with iproute2 (`ip link set dev IF xdp obj FILE sec SEC`) or Cilium's loader",
                e.def_size, e.id, e.pinning, e.inner_id, e.inner_idx
            )));
        }
        let linked: LinkedObject = obj
            .link()
            .map_err(|e| Error::Invalid(format!("object `{}`: {e}", obj.name)))?;
        let feats = opts.btf_features.unwrap_or_else(BtfFeatures::probe);
        let mut btf_error = None;
        let mut btf_sanitized = 0;
        let btf = match prepare_btf(obj, &feats) {
            Ok(Some((data, n))) => {
                btf_sanitized = n;
                match btf_load::load_raw(&data, true) {
                    Ok(fd) => Some(fd),
                    Err(e) => {
                        btf_error = Some(e.to_string());
                        None
                    }
                }
            }
            Ok(None) => None,
            Err(e) => {
                btf_error = Some(e.to_string());
                None
            }
        };
        let mut guard = PinGuard(Vec::new());

        let mut maps: Vec<LoadedMap> = Vec::with_capacity(linked.maps.len());
        for def in &linked.maps {
            let pin_path = match (&opts.pin_root, def.pinning) {
                (Some(root), LIBBPF_PIN_BY_NAME) => Some(root.join(pin::pin_name(&def.name))),
                _ => None,
            };
            if let Some(path) = &pin_path {
                if path.exists() {
                    let fd = pin::get_pinned(path)?;
                    let m = Map::from_fd(fd, map_spec(def))?;
                    if !compatible(&m, def)? {
                        return Err(Error::Invalid(format!(
                            "map `{}`: the map pinned at {} is not compatible (type, key/value \
                             size, max_entries or flags differ): remove the pin or fix the definition",
                            def.name,
                            path.display()
                        )));
                    }
                    maps.push(LoadedMap {
                        def: def.clone(),
                        map: m,
                        with_btf: false,
                        reused: true,
                        pinned: None,
                    });
                    continue;
                }
            }
            let inner = match &def.inner {
                Some(inner) => Some(create_map(inner, None, None)?.0),
                None if matches!(
                    def.map_type,
                    map_type::ARRAY_OF_MAPS | map_type::HASH_OF_MAPS
                ) =>
                {
                    return Err(Error::Invalid(format!(
                        "map `{}`: map-in-map without an inner map definition",
                        def.name
                    )))
                }
                None => None,
            };
            let (map, with_btf) = create_map(
                def,
                inner.as_ref().map(|m| m.as_fd()),
                btf.as_ref().map(|b| b.as_fd()),
            )?;
            if let MapInit::Data(data) = &def.init {
                if data.len() > def.value_size as usize {
                    return Err(Error::Invalid(format!(
                        "map `{}`: initial data is {} bytes, value_size is {}",
                        def.name,
                        data.len(),
                        def.value_size
                    )));
                }
                let mut value = data.clone();
                value.resize(map.value_len(), 0);
                map.update(&0u32.to_ne_bytes(), &value, 0)?;
            }
            if def.origin == MapOrigin::GlobalData
                && (def.section.starts_with(".rodata") || def.section == ".kconfig")
            {
                map.freeze()?;
            }
            let mut pinned = None;
            if let Some(path) = pin_path {
                pin::pin(map.as_fd(), &path)?;
                guard.0.push(path.clone());
                pinned = Some(path);
            }
            maps.push(LoadedMap {
                def: def.clone(),
                map,
                with_btf,
                reused: false,
                pinned,
            });
        }
        let fds: Vec<i32> = maps.iter().map(|m| m.map.as_fd().as_raw_fd()).collect();

        let license = if linked.license.is_empty() {
            "GPL"
        } else {
            linked.license.as_str()
        };
        let mut programs = Vec::with_capacity(linked.programs.len());
        for p in &linked.programs {
            let mut insns = resolve_map_refs(p, &fds)?;
            resolve_kfuncs(obj, p, &mut insns)?;
            // Without BTF_KIND_FUNC support libbpf passes no func/line info either.
            let (fi, li) = if btf.is_some() && feats.func {
                ext_records(obj, p)
            } else {
                (Vec::new(), Vec::new())
            };
            let program = load_program(
                p,
                &insns,
                license,
                linked.kernel_version.unwrap_or(0),
                btf.as_ref().map(|b| b.as_fd()),
                &fi,
                &li,
                opts.log_level,
            )?;
            programs.push(LoadedProgram {
                linked: p.clone(),
                program,
                func_info: fi.len() / 2,
                line_info: li.len() / 4,
            });
        }

        for m in &maps {
            if m.reused {
                continue;
            }
            let slots: Vec<(u32, i32)> = match &m.def.init {
                MapInit::Programs(slots) => slots
                    .iter()
                    .map(|(slot, name)| {
                        let p = programs
                            .iter()
                            .find(|p| &p.linked.name == name)
                            .ok_or_else(|| {
                                Error::Invalid(format!(
                                    "map `{}` slot {slot}: no program named `{name}`",
                                    m.def.name
                                ))
                            })?;
                        Ok((*slot, p.program.as_fd().as_raw_fd()))
                    })
                    .collect::<Result<_>>()?,
                MapInit::Maps(slots) => slots
                    .iter()
                    .map(|(slot, name)| {
                        let i = linked.map_index(name).ok_or_else(|| {
                            Error::Invalid(format!(
                                "map `{}` slot {slot}: no map named `{name}`",
                                m.def.name
                            ))
                        })?;
                        Ok((*slot, fds[i]))
                    })
                    .collect::<Result<_>>()?,
                _ => continue,
            };
            for (slot, fd) in slots {
                m.map
                    .update(&slot.to_ne_bytes(), &(fd as u32).to_ne_bytes(), 0)?;
            }
        }
        let pins = std::mem::take(&mut guard.0);
        Ok(LoadedObject {
            name: obj.name.clone(),
            btf,
            btf_error,
            btf_sanitized,
            maps,
            programs,
            pins,
        })
    }

    pub fn program(&self, name: &str) -> Option<&LoadedProgram> {
        self.programs.iter().find(|p| p.linked.name == name)
    }

    pub fn map(&self, name: &str) -> Option<&LoadedMap> {
        self.maps
            .iter()
            .find(|m| m.def.name == name || m.def.real_name() == name)
    }

    /// Pins every program at `dir/<program>` and every map not pinned yet at
    /// `dir/<map>` (creating `dir`; `.` in names becomes `_`, as bpffs wants). On error, the pins made by this call are removed.
    pub fn pin_all(&mut self, dir: &Path) -> Result<Vec<PathBuf>> {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::Invalid(format!("cannot create {}: {e}", dir.display())))?;
        let mut guard = PinGuard(Vec::new());
        for p in &self.programs {
            let path = dir.join(pin::pin_name(&p.linked.name));
            pin::pin(p.program.as_fd(), &path)?;
            guard.0.push(path);
        }
        for m in &mut self.maps {
            if m.pinned.is_some() || m.reused {
                continue;
            }
            let path = dir.join(pin::pin_name(&m.def.name));
            pin::pin(m.map.as_fd(), &path)?;
            guard.0.push(path.clone());
            m.pinned = Some(path);
        }
        let made = std::mem::take(&mut guard.0);
        self.pins.extend(made.iter().cloned());
        Ok(made)
    }

    /// Pins made so far (by-name maps and [`LoadedObject::pin_all`]).
    pub fn pins(&self) -> &[PathBuf] {
        &self.pins
    }

    /// Removes every pin this object made.
    pub fn unpin_all(&mut self) {
        for p in self.pins.drain(..) {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// A spec for a map found by id or pin (from the kernel's info).
pub fn spec_from_info(info: &crate::map::MapInfo) -> MapSpec {
    MapSpec {
        name: info.name.clone(),
        map_type: info.map_type,
        key_size: info.key_size,
        value_size: info.value_size,
        max_entries: info.max_entries,
        map_flags: info.map_flags,
    }
}
