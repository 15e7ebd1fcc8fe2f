//! The map table: legacy `maps`, BTF-defined `.maps`, then global data sections — in
//! libbpf's order (`bpf_object__init_maps`).

use std::collections::HashMap;

use crate::btf::{Btf, BtfKind};
use crate::error::{ObjectError, Result};
use crate::model::{map_type, MapDef, MapInit, MapOrigin};
use crate::{reloc_type, Object, SectionKind, STT_SECTION};

/// `BPF_F_RDONLY_PROG`.
pub const BPF_F_RDONLY_PROG: u32 = 1 << 7;
/// `BPF_F_MMAPABLE`.
pub const BPF_F_MMAPABLE: u32 = 1 << 10;
/// Size of libbpf 0.x's `struct bpf_map_def` (type, key_size, value_size, max_entries, map_flags).
const LEGACY_DEF_SIZE: usize = 20;
/// Largest array map value the kernel accepts (`array_map_alloc_check`: KMALLOC_MAX_SIZE,
/// 4 MiB on x86-64 and arm64 with 4 KiB pages).
pub const MAX_VALUE_SIZE: u64 = 4 << 20;
/// `BPF_OBJ_NAME_LEN`.
const OBJ_NAME_LEN: usize = 16;

pub(crate) fn collect(obj: &mut Object) -> Result<()> {
    legacy_maps(obj)?;
    btf_maps(obj)?;
    global_data_maps(obj)?;
    Ok(())
}

fn legacy_maps(obj: &mut Object) -> Result<()> {
    let Some(sec) = obj
        .sections
        .iter()
        .find(|s| s.kind == SectionKind::LegacyMaps)
    else {
        return Ok(());
    };
    let syms: Vec<_> = obj
        .symbols
        .iter()
        .filter(|s| s.shndx == sec.index && s.sym_type != STT_SECTION)
        .collect();
    if syms.is_empty() {
        return Ok(());
    }
    let n = syms.len();
    let size = sec.data.len();
    if size == 0 || size % n != 0 {
        return Err(ObjectError::section(
            &sec.name,
            sec.index,
            0,
            "sh_size",
            format!("cannot determine the map definition size: {n} maps in {size} bytes"),
        ));
    }
    let def_sz = size / n;
    let mut found = Vec::new();
    let mut extra_warnings = Vec::new();
    let mut extras = Vec::new();
    for s in syms {
        let err = |field: &str, reason: String| ObjectError::Map {
            section: sec.name.clone(),
            map: s.name.clone(),
            field: field.to_string(),
            reason,
        };
        let off = usize::try_from(s.value)
            .ok()
            .filter(|o| o.checked_add(def_sz).is_some_and(|e| e <= size));
        let Some(off) = off else {
            return Err(err(
                "st_value",
                format!(
                    "definition at {:#x} (+{def_sz} bytes) runs past the section end ({size:#x})",
                    s.value
                ),
            ));
        };
        let def = &sec.data[off..off + def_sz];
        let mut words = [0u32; 5];
        let copy = def_sz.min(LEGACY_DEF_SIZE);
        let mut buf = [0u8; LEGACY_DEF_SIZE];
        buf[..copy].copy_from_slice(&def[..copy]);
        for (i, w) in words.iter_mut().enumerate() {
            *w = u32::from_le_bytes([buf[i * 4], buf[i * 4 + 1], buf[i * 4 + 2], buf[i * 4 + 3]]);
        }
        if def_sz > LEGACY_DEF_SIZE {
            if let Some(p) = def[LEGACY_DEF_SIZE..].iter().position(|&b| b != 0) {
                // iproute2's and Cilium's `struct bpf_elf_map`: id, pinning, inner_id,
                // inner_idx after libbpf's five fields.
                let word = |i: usize| {
                    def.get(i..i + 4)
                        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                        .unwrap_or(0)
                };
                let extra = crate::ElfMapExtra {
                    def_size: def_sz as u32,
                    id: word(20),
                    pinning: word(24),
                    inner_id: word(28),
                    inner_idx: word(32),
                };
                extra_warnings.push(format!(
                    "map `{}` in section `{}`: {def_sz}-byte iproute2/Cilium definition (struct bpf_elf_map: id {}, pinning {}, inner_id {}, inner_idx {}); libbpf refuses it (non-zero data at byte {} beyond its 20-byte bpf_map_def); iproute2 and Cilium's loader read it",
                    s.name,
                    sec.name,
                    extra.id,
                    extra.pinning,
                    extra.inner_id,
                    extra.inner_idx,
                    LEGACY_DEF_SIZE + p
                ));
                extras.push((s.name.clone(), extra));
            }
        }
        found.push((
            MapDef {
                name: s.name.clone(),
                map_type: words[0],
                key_size: words[1],
                value_size: words[2],
                max_entries: words[3],
                map_flags: words[4],
                pinning: 0,
                inner: None,
                init: MapInit::None,
                origin: MapOrigin::Legacy,
                section: sec.name.clone(),
                btf_key_type_id: 0,
                btf_value_type_id: 0,
            },
            (sec.index, s.value),
        ));
    }
    // iproute2 links a map-in-map to its inner map template by id: the outer map's
    // `inner_id` is the template's `id` (its fd becomes the outer map's inner_map_fd)
    for (outer, e) in &extras {
        if e.inner_id == 0 {
            continue;
        }
        let Some((tname, _)) = extras.iter().find(|(_, t)| t.id == e.inner_id) else {
            continue;
        };
        let Some(tdef) = found
            .iter()
            .find(|(m, _)| &m.name == tname)
            .map(|(m, _)| m.clone())
        else {
            continue;
        };
        if let Some((m, _)) = found.iter_mut().find(|(m, _)| &m.name == outer) {
            if matches!(m.map_type, map_type::ARRAY_OF_MAPS | map_type::HASH_OF_MAPS)
                && m.inner.is_none()
            {
                m.inner = Some(Box::new(tdef));
            }
        }
    }
    for (m, loc) in found {
        obj.maps.push(m);
        obj.map_locations.push(loc);
    }
    obj.warnings.extend(extra_warnings);
    obj.elf_map_extra.extend(extras);
    Ok(())
}

/// A map definition parsed from a BTF struct (`parse_btf_map_def`).
fn parse_map_def(
    btf: &Btf,
    name: &str,
    section: &str,
    def_type: u32,
    is_inner: bool,
) -> Result<(MapDef, Option<u32>)> {
    let err = |field: &str, reason: String| ObjectError::Map {
        section: section.to_string(),
        map: name.to_string(),
        field: field.to_string(),
        reason,
    };
    let sid = btf
        .skip_mods_and_typedefs(def_type)
        .ok_or_else(|| err("type", format!("bad BTF type [{def_type}]")))?;
    let st = btf
        .get(sid)
        .ok_or_else(|| err("type", format!("bad BTF type [{sid}]")))?;
    let BtfKind::Struct { members, .. } = &st.kind else {
        return Err(err(
            "type",
            format!("map definition is a {}, not a struct", st.kind_name()),
        ));
    };
    let mut m = MapDef {
        name: name.to_string(),
        map_type: 0,
        key_size: 0,
        value_size: 0,
        max_entries: 0,
        map_flags: 0,
        pinning: 0,
        inner: None,
        init: MapInit::None,
        origin: MapOrigin::Btf,
        section: section.to_string(),
        btf_key_type_id: 0,
        btf_value_type_id: 0,
    };
    let mut values_off = None;
    let mut inner_def: Option<MapDef> = None;
    let mut has_values = false;
    // `__uint(name, val)` is `int (*name)[val]`: PTR -> ARRAY with nelems = val.
    let int_field = |mname: &str, tid: u32| -> Result<u32> {
        let p = btf.skip_mods_and_typedefs(tid).and_then(|i| btf.get(i));
        let Some(BtfKind::Ptr { type_id }) = p.map(|t| &t.kind) else {
            return Err(err(
                mname,
                "expected __uint() (a pointer to an array)".into(),
            ));
        };
        match btf.get(*type_id).map(|t| &t.kind) {
            Some(BtfKind::Array { nelems, .. }) => Ok(*nelems),
            _ => Err(err(
                mname,
                "expected __uint() (a pointer to an array)".into(),
            )),
        }
    };
    let ptr_target = |mname: &str, tid: u32| -> Result<u32> {
        let p = btf.skip_mods_and_typedefs(tid).and_then(|i| btf.get(i));
        match p.map(|t| &t.kind) {
            Some(BtfKind::Ptr { type_id }) => Ok(*type_id),
            _ => Err(err(mname, "expected __type() (a pointer)".into())),
        }
    };
    for (i, mem) in members.iter().enumerate() {
        match mem.name.as_str() {
            "type" => m.map_type = int_field("type", mem.type_id)?,
            "max_entries" => m.max_entries = int_field("max_entries", mem.type_id)?,
            "map_flags" => m.map_flags = int_field("map_flags", mem.type_id)?,
            "numa_node" => {
                int_field("numa_node", mem.type_id)?;
            }
            "map_extra" => {
                // libbpf's get_map_field_long: `__uint(map_extra, v)` (a pointer to
                // an array) or `__ulong(map_extra, v)` (an enum with one value, 64-bit
                // for an arena's address hint). Parsed and checked, not kept:
                // `MapDef` has no field for it (0 lets the kernel choose the address).
                let t = btf
                    .skip_mods_and_typedefs(mem.type_id)
                    .and_then(|i| btf.get(i));
                match t.map(|t| &t.kind) {
                    Some(BtfKind::Ptr { .. }) => {
                        int_field("map_extra", mem.type_id)?;
                    }
                    Some(BtfKind::Enum { values, .. } | BtfKind::Enum64 { values, .. }) => {
                        if values.len() != 1 {
                            return Err(err(
                                "map_extra",
                                format!("invalid __ulong: {} enum values", values.len()),
                            ));
                        }
                    }
                    _ => {
                        return Err(err(
                            "map_extra",
                            "expected __uint() or __ulong() (an enum)".into(),
                        ))
                    }
                }
            }
            "key_size" => {
                let v = int_field("key_size", mem.type_id)?;
                if m.key_size != 0 && m.key_size != v {
                    return Err(err(
                        "key_size",
                        format!("conflicting key size {} != {v}", m.key_size),
                    ));
                }
                m.key_size = v;
            }
            "value_size" => {
                let v = int_field("value_size", mem.type_id)?;
                if m.value_size != 0 && m.value_size != v {
                    return Err(err(
                        "value_size",
                        format!("conflicting value size {} != {v}", m.value_size),
                    ));
                }
                m.value_size = v;
            }
            "key" => {
                let t = ptr_target("key", mem.type_id)?;
                let sz = btf
                    .resolve_size(t)
                    .ok_or_else(|| err("key", format!("cannot size key type [{t}]")))?
                    as u32;
                if m.key_size != 0 && m.key_size != sz {
                    return Err(err(
                        "key",
                        format!("conflicting key size {} != {sz}", m.key_size),
                    ));
                }
                m.key_size = sz;
                m.btf_key_type_id = t;
            }
            "value" => {
                let t = ptr_target("value", mem.type_id)?;
                let sz = btf
                    .resolve_size(t)
                    .ok_or_else(|| err("value", format!("cannot size value type [{t}]")))?
                    as u32;
                if m.value_size != 0 && m.value_size != sz {
                    return Err(err(
                        "value",
                        format!("conflicting value size {} != {sz}", m.value_size),
                    ));
                }
                m.value_size = sz;
                m.btf_value_type_id = t;
            }
            "values" => {
                if is_inner {
                    return Err(err(
                        "values",
                        "multi-level inner maps are not supported".into(),
                    ));
                }
                if i != members.len() - 1 {
                    return Err(err("values", "`values` must be the last member".into()));
                }
                let arr = btf
                    .skip_mods_and_typedefs(mem.type_id)
                    .and_then(|i| btf.get(i));
                let Some(BtfKind::Array {
                    elem_type, nelems, ..
                }) = arr.map(|t| &t.kind)
                else {
                    return Err(err("values", "expected an array of pointers".into()));
                };
                if *nelems != 0 {
                    return Err(err(
                        "values",
                        format!("array must be zero-sized, has {nelems} elements"),
                    ));
                }
                let ptr = btf
                    .skip_mods_and_typedefs(*elem_type)
                    .and_then(|i| btf.get(i));
                let Some(BtfKind::Ptr { type_id }) = ptr.map(|t| &t.kind) else {
                    return Err(err("values", "expected an array of pointers".into()));
                };
                let target = btf
                    .skip_mods_and_typedefs(*type_id)
                    .and_then(|i| btf.get(i));
                match target.map(|t| &t.kind) {
                    Some(BtfKind::Struct { .. }) => {
                        let (inner, _) =
                            parse_map_def(btf, &format!("{name}.inner"), section, *type_id, true)?;
                        inner_def = Some(inner);
                    }
                    Some(BtfKind::FuncProto { .. }) => {}
                    _ => {
                        return Err(err(
                            "values",
                            "elements must point to a map definition or a function".into(),
                        ))
                    }
                }
                if m.value_size != 0 && m.value_size != 4 {
                    return Err(err(
                        "values",
                        format!("conflicting value size {} != 4", m.value_size),
                    ));
                }
                m.value_size = 4;
                has_values = true;
                values_off = Some(mem.bit_offset / 8);
            }
            "pinning" => {
                if is_inner {
                    return Err(err(
                        "pinning",
                        "inner map definitions cannot be pinned".into(),
                    ));
                }
                let v = int_field("pinning", mem.type_id)?;
                // Values other than 0 and 1 (Cilium writes 16): see btf_maps.
                m.pinning = v;
            }
            other => return Err(err(other, "unknown field".into())),
        }
    }
    if m.map_type == 0 {
        return Err(err("type", "map type is not set".into()));
    }
    if has_values {
        match m.map_type {
            map_type::ARRAY_OF_MAPS | map_type::HASH_OF_MAPS => {
                if inner_def.is_none() {
                    return Err(err(
                        "values",
                        "map-in-map needs an inner map definition".into(),
                    ));
                }
                m.inner = inner_def.map(Box::new);
            }
            map_type::PROG_ARRAY => {
                if inner_def.is_some() {
                    return Err(err(
                        "values",
                        "a PROG_ARRAY's values must be functions".into(),
                    ));
                }
            }
            t => {
                return Err(err(
                    "values",
                    format!(
                        "`values` is only valid for map-in-map and prog array, not {}",
                        map_type::name(t).unwrap_or("?")
                    ),
                ))
            }
        }
    }
    Ok((m, values_off))
}

fn btf_maps(obj: &mut Object) -> Result<()> {
    let Some(sec) = obj.sections.iter().find(|s| s.kind == SectionKind::Maps) else {
        return Ok(());
    };
    let sec_index = sec.index;
    let sec_name = sec.name.clone();
    let sec_size = sec.data.len() as u64;
    let Some(btf) = obj.btf.as_ref() else {
        return Err(ObjectError::section(
            &sec_name,
            sec_index,
            0,
            ".maps",
            "BTF-defined maps need a .BTF section, none found",
        ));
    };
    let Some(ds) = btf.find(".maps", "DATASEC") else {
        return Err(ObjectError::section(
            ".BTF",
            btf.section_index(),
            0,
            "DATASEC .maps",
            "object has a .maps section but BTF has no DATASEC `.maps`",
        ));
    };
    let BtfKind::Datasec { vars, .. } = &ds.kind else {
        return Ok(());
    };
    // Symbols of `.maps`: name -> offset, and all offsets sorted (to find where the next
    // map starts).
    let mut sym_off: HashMap<&str, u64> = HashMap::new();
    let mut starts: Vec<u64> = Vec::new();
    for s in obj
        .symbols
        .iter()
        .filter(|s| s.shndx == sec_index && s.sym_type != STT_SECTION)
    {
        sym_off.entry(s.name.as_str()).or_insert(s.value);
        starts.push(s.value);
    }
    starts.extend(vars.iter().map(|v| v.offset as u64));
    starts.sort_unstable();
    starts.dedup();
    let map_relocs: Vec<&crate::Relocation> = obj
        .relocations
        .iter()
        .filter(|r| r.section == sec_index)
        .collect();
    let mut new_maps = Vec::new();
    for vi in vars {
        let var = btf.get(vi.type_id);
        let Some((vname, BtfKind::Var { type_id, .. })) =
            var.map(|v| (v.name.clone(), v.kind.clone()))
        else {
            return Err(ObjectError::section(
                ".BTF",
                btf.section_index(),
                0,
                "DATASEC .maps",
                format!("entry type [{}] is not a VAR", vi.type_id),
            ));
        };
        // libbpf takes the offset from the symbol (btf_fixup_datasec); fall back to BTF.
        let off = sym_off
            .get(vname.as_str())
            .copied()
            .unwrap_or(vi.offset as u64);
        let size = btf.resolve_size(type_id).unwrap_or(vi.size as u64);
        if off.checked_add(size).is_none_or(|e| e > sec_size) {
            return Err(ObjectError::Map {
                section: sec_name.clone(),
                map: vname.clone(),
                field: "offset".into(),
                reason: format!(
                    "definition at {off:#x} (+{size:#x}) runs past the section end ({sec_size:#x})"
                ),
            });
        }
        let (mut m, values_off) = parse_map_def(btf, &vname, &sec_name, type_id, false)?;
        if m.pinning > 1 {
            obj.warnings.push(format!(
                "map `{vname}`: pinning value {} is not one libbpf knows (0 LIBBPF_PIN_NONE, 1 LIBBPF_PIN_BY_NAME): libbpf refuses the object; Cilium's loader reads it; bpfkit does not pin it",
                m.pinning
            ));
            m.pinning = 0;
        }
        // `.values` initialisers come from relocations in `.rel.maps`.
        if let Some(voff) = values_off {
            let mut slots: Vec<(u32, String)> = Vec::new();
            let next_map_start = starts
                .iter()
                .copied()
                .find(|&o| o > off)
                .unwrap_or(sec_size);
            for r in map_relocs.iter().copied() {
                // The relocation belongs to this map if it lies between the start of its
                // `values` member and the start of the next map.
                let start = off + voff as u64;
                if r.offset < start {
                    continue;
                }
                let rel = r.offset - start;
                if r.offset >= next_map_start {
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
                // Older clang writes R_BPF_64_64 here; libbpf takes both.
                if r.r_type != reloc_type::R_BPF_64_ABS64 && r.r_type != reloc_type::R_BPF_64_64 {
                    return Err(err(format!(
                        "`.values` of map `{vname}` needs R_BPF_64_ABS64 (or older clang's R_BPF_64_64), found {}",
                        r.type_name()
                    )));
                }
                if rel % 8 != 0 {
                    return Err(err(format!(
                        "`.values` slot offset {rel:#x} of map `{vname}` is not a multiple of 8"
                    )));
                }
                slots.push(((rel / 8) as u32, r.symbol.clone()));
            }
            slots.sort();
            if !slots.is_empty() {
                // libbpf (bpf_object__collect_map_relos) keeps max_entries as declared;
                // a slot past it fails at map update time, in the kernel.
                if m.map_type == map_type::HASH_OF_MAPS && m.key_size != 4 {
                    return Err(ObjectError::Map {
                        section: sec_name.clone(),
                        map: vname.clone(),
                        field: "values".into(),
                        reason: format!(
                            "a hash-of-maps with `.values` must have key size 4, has {}",
                            m.key_size
                        ),
                    });
                }
                m.init = if m.inner.is_some() {
                    MapInit::Maps(slots)
                } else {
                    MapInit::Programs(slots)
                };
            }
        }
        new_maps.push((m, (sec_index, off)));
    }
    for (m, loc) in new_maps {
        obj.maps.push(m);
        obj.map_locations.push(loc);
    }
    // Check `.values` targets exist. A program slot naming a function that is not a
    // program (e.g. one in .text) is dropped with a warning: libbpf refuses such an
    // object, the map is then loaded with that slot empty.
    let mut dropped = Vec::new();
    for (mi, m) in obj.maps.iter().enumerate() {
        let (targets, want_prog) = match &m.init {
            MapInit::Programs(v) => (v, true),
            MapInit::Maps(v) => (v, false),
            _ => continue,
        };
        for (slot, t) in targets {
            let ok = if want_prog {
                obj.functions
                    .iter()
                    .any(|f| &f.name == t && obj.sections[f.section].kind == SectionKind::Program)
            } else {
                obj.maps
                    .iter()
                    .any(|x| &x.name == t && x.origin == MapOrigin::Btf)
            };
            if ok {
                continue;
            }
            let is_func = obj.functions.iter().any(|f| &f.name == t);
            if want_prog && is_func {
                dropped.push((mi, *slot, t.clone()));
                continue;
            }
            return Err(ObjectError::Map {
                section: m.section.clone(),
                map: m.name.clone(),
                field: format!("values[{slot}]"),
                reason: format!(
                    "`{t}` is not a {}",
                    if want_prog {
                        "program of this object"
                    } else {
                        "BTF-defined map of this object"
                    }
                ),
            });
        }
    }
    for (mi, slot, t) in dropped {
        let m = &mut obj.maps[mi];
        if let MapInit::Programs(v) = &mut m.init {
            v.retain(|(s, _)| *s != slot);
        }
        obj.warnings.push(format!(
            "map `{}`: slot {slot} names `{t}`, a function that is not a program (it is not in a program section): libbpf refuses the object; bpfkit leaves the slot empty",
            m.name
        ));
    }
    Ok(())
}

/// libbpf's `internal_map_name`.
pub fn internal_map_name(obj_name: &str, real_name: &str) -> String {
    let mut sfx_len = real_name.len().max(7);
    if sfx_len >= OBJ_NAME_LEN {
        sfx_len = OBJ_NAME_LEN - 1;
    }
    let custom = real_name.get(1..).is_some_and(|r| r.contains('.'));
    let pfx_len = if custom {
        0
    } else {
        (OBJ_NAME_LEN - sfx_len - 1).min(obj_name.len())
    };
    let pfx: String = obj_name.bytes().take(pfx_len).map(|b| b as char).collect();
    let sfx: String = real_name.bytes().take(sfx_len).map(|b| b as char).collect();
    format!("{pfx}{sfx}")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn global_data_maps(obj: &mut Object) -> Result<()> {
    let mut new_maps = Vec::new();
    for s in &obj.sections {
        let (is_ro, init) = match s.kind {
            SectionKind::Data => (false, s.data.clone()),
            SectionKind::Rodata => (true, s.data.clone()),
            SectionKind::Bss => {
                // SHT_NOBITS occupies no file space, so its size is not bounded by the
                // input: refuse what the kernel would refuse before allocating it.
                let n = usize::try_from(s.size).ok().filter(|&n| n as u64 <= MAX_VALUE_SIZE).ok_or_else(|| {
                    ObjectError::section(
                        &s.name,
                        s.index,
                        0,
                        "sh_size",
                        format!(
                            "{:#x} bytes exceeds the kernel's largest array map value ({MAX_VALUE_SIZE:#x}, KMALLOC_MAX_SIZE)",
                            s.size
                        ),
                    )
                })?;
                (false, vec![0u8; n])
            }
            _ => continue,
        };
        if init.is_empty() {
            continue;
        }
        if init.len() > u32::MAX as usize {
            return Err(ObjectError::section(
                &s.name,
                s.index,
                0,
                "sh_size",
                "too large for a map value",
            ));
        }
        // libbpf 1.1 (the reference here: Debian's bpftool 7.1) marks every internal map
        // BPF_F_MMAPABLE; newer libbpf leaves it off when the DATASEC holds only static
        // variables (`map_is_mmapable`). The kernel reports whatever the loader asked for.
        let flags = if is_ro { BPF_F_RDONLY_PROG } else { 0 } | BPF_F_MMAPABLE;
        let value_type = obj
            .btf
            .as_ref()
            .and_then(|b| b.find(&s.name, "DATASEC"))
            .map_or(0, |ds| ds.id);
        new_maps.push((
            MapDef {
                name: internal_map_name(&obj.name, &s.name),
                map_type: map_type::ARRAY,
                key_size: 4,
                value_size: init.len() as u32,
                max_entries: 1,
                map_flags: flags,
                pinning: 0,
                inner: None,
                init: MapInit::Data(init),
                origin: MapOrigin::GlobalData,
                section: s.name.clone(),
                btf_key_type_id: 0,
                btf_value_type_id: value_type,
            },
            (s.index, 0u64),
        ));
    }
    for (m, loc) in new_maps {
        obj.maps.push(m);
        obj.map_locations.push(loc);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::internal_map_name;

    #[test]
    fn libbpf_internal_names() {
        assert_eq!(internal_map_name("xdp_counter", ".data"), "xdp_coun.data");
        assert_eq!(
            internal_map_name("xdp_counter", ".rodata"),
            "xdp_coun.rodata"
        );
        assert_eq!(internal_map_name("t1", ".bss"), "t1.bss");
        assert_eq!(internal_map_name("t1", ".data.custom"), ".data.custom");
        assert_eq!(internal_map_name("t1", ".rodata.str1.1"), ".rodata.str1.1");
        assert_eq!(internal_map_name("", ".data"), ".data");
    }
}
