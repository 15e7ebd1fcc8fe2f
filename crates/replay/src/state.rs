//! Map state as JSON (`--maps-in`, `--maps-out`), in the layout of the corpus's
//! `maps_after`/`fd_maps_after`: map name -> list of `[key_hex, value]`, where `value` is a
//! hex string, `{"program": NAME}` (PROG_ARRAY), `{"map": NAME}` (map-in-map) or
//! `{"ifindex": N}` (DEVMAP, `--maps-in` only).

use crate::engines::ReplayEngine;
use crate::{hex, maps_json};
use bpfkit_object::model::{map_type, LinkedObject, MapDef};
use serde_json::{json, Map as JsonMap, Value};

/// True for maps whose values are references (program or map) rather than data.
pub fn is_fd_map(def: &MapDef) -> bool {
    matches!(
        def.map_type,
        map_type::PROG_ARRAY | map_type::ARRAY_OF_MAPS | map_type::HASH_OF_MAPS
    )
}

/// True for maps with one value per CPU.
pub fn is_percpu(def: &MapDef) -> bool {
    matches!(
        def.map_type,
        map_type::PERCPU_ARRAY | map_type::PERCPU_HASH | map_type::LRU_PERCPU_HASH
    )
}

/// Maps that have no key/value contents to dump (no keys to iterate: ring buffers,
/// bloom filters).
pub fn is_undumpable(def: &MapDef) -> bool {
    matches!(
        def.map_type,
        map_type::RINGBUF
            | map_type::USER_RINGBUF
            | map_type::PERF_EVENT_ARRAY
            | map_type::BLOOM_FILTER
            | map_type::ARENA
    )
}

/// QUEUE and STACK maps: bpfkit's engines list their items (empty keys, in pop order, as
/// the corpus recorder shows them); the kernel can only pop them, so the kernel engine
/// leaves them out.
pub fn is_fifo(def: &MapDef) -> bool {
    matches!(def.map_type, map_type::QUEUE | map_type::STACK)
}

/// The contents of every map as JSON, in the layout of [`crate::maps_json`] (shared with
/// `bpfkit map dump --json`): ARRAY-like maps leave out all-zero values (every index
/// exists), as the corpus's `maps_after` does. Program/map slots are named
/// (`{"program": NAME}`, `{"map": NAME}`: bpfkit engines store indices, the kernel ids,
/// shown as `{"id": N}` when the id is none of the object's).
/// With `btf` (the object's BTF), each entry of a map whose key and value types are known
/// is `{"key": HEX, "value": HEX, "formatted": {"key": .., "value": ..}}`, the decoded form
/// beside the hex as `bpftool map dump` shows it; otherwise `[HEX, HEX]`.
pub fn dump(
    engine: &dyn ReplayEngine,
    obj: &LinkedObject,
    btf: Option<&bpfkit_object::btf::Btf>,
) -> Result<Value, String> {
    let mut out = JsonMap::new();
    for (i, def) in obj.maps.iter().enumerate() {
        if is_undumpable(def) || (is_fifo(def) && engine.name() == "kernel") {
            continue;
        }
        let entries = engine
            .map_entries(i)
            .map_err(|e| format!("map `{}`: {e}", def.real_name()))?;
        let shape = maps_json::Shape::of(def);
        let mut list = Vec::with_capacity(entries.len());
        for (k, v) in entries {
            if maps_json::left_out(&shape, &v) {
                continue;
            }
            if is_fd_map(def) && v.len() >= 4 {
                let n = u32::from_le_bytes([v[0], v[1], v[2], v[3]]) as usize;
                let value = if engine.name() == "kernel" {
                    kernel_slot(obj, def, n as u32)
                } else if def.map_type == map_type::PROG_ARRAY {
                    match obj.programs.get(n) {
                        Some(p) => json!({ "program": p.name }),
                        None => json!({ "index": n }),
                    }
                } else {
                    match obj.maps.get(n) {
                        Some(m) => json!({ "map": m.real_name() }),
                        None => json!({ "index": n }),
                    }
                };
                list.push(maps_json::entry(&k, value, None));
            } else {
                list.push(maps_json::data_entry(btf, &shape, &k, &v));
            }
        }
        out.insert(def.real_name().to_string(), Value::Array(list));
    }
    Ok(Value::Object(out))
}

/// A PROG_ARRAY or map-in-map slot of the kernel engine, which holds a kernel id: named by
/// the object's program or map that the kernel object with that id is (its kernel name,
/// cut to 15 bytes, stands for one name), so `--maps-in` takes it back; `{"id": N}` when
/// it is none of the object's.
fn kernel_slot(obj: &LinkedObject, def: &MapDef, id: u32) -> Value {
    use bpfkit_loader::pin::{name_of, ObjKind};
    if def.map_type == map_type::PROG_ARRAY {
        if let Some(i) = name_of(ObjKind::Prog, id).and_then(|n| program_named(obj, &n)) {
            return json!({ "program": obj.programs[i].name });
        }
    } else if let Some(i) = name_of(ObjKind::Map, id).and_then(|n| map_named(obj, &n)) {
        return json!({ "map": obj.maps[i].real_name() });
    }
    json!({ "id": id })
}

/// A decoded (`formatted`) key or value turned into hex with the map's BTF type, so the
/// checks below apply to it as to hex.
fn decoded_to_hex(
    btf: Option<&bpfkit_object::btf::Btf>,
    def: &MapDef,
    is_key: bool,
    v: &Value,
) -> Result<Value, String> {
    let what = if is_key { "key" } else { "value" };
    let id = if is_key {
        def.btf_key_type_id
    } else {
        def.btf_value_type_id
    };
    let Some(btf) = btf.filter(|_| id != 0) else {
        return Err(format!(
            "{what}: a decoded {what} needs the map's BTF types (the object has none for `{}`); give hex",
            def.real_name()
        ));
    };
    if !is_key && is_percpu(def) {
        if let Value::Array(cpus) = v {
            let stride = (def.value_size as usize).div_ceil(8) * 8;
            let mut all = Vec::new();
            for (i, c) in cpus.iter().enumerate() {
                let inner = c.get("value").unwrap_or(c);
                let mut b = crate::btf_value::encode(btf, id, inner)
                    .map_err(|e| format!("value (CPU {i}): {e}"))?;
                b.resize(stride, 0);
                all.extend(b);
            }
            return Ok(Value::String(hex::encode(&all)));
        }
    }
    let b = crate::btf_value::encode(btf, id, v).map_err(|e| format!("{what}: {e}"))?;
    Ok(Value::String(hex::encode(&b)))
}

/// Fills maps from a `--maps-in` document (`BPF_ANY` updates, in document order).
/// `ncpus` expands a single per-CPU value to every CPU.
///
/// Every entry is first checked the way the kernel checks `BPF_MAP_UPDATE_ELEM`, for every
/// engine alike (the kernel engine would refuse the same entries with an errno): the key
/// is `key_size` bytes (a number key needs `key_size` 4 and must fit in 32 bits), the
/// value `value_size` bytes (per-CPU maps: one value, or one 8-byte-rounded value per
/// CPU); PROG_ARRAY values name programs compatible with the programs using the map
/// (`bpf_prog_map_compatible`: program type, expected attach type, `xdp.frags`);
/// map-in-map values name maps that match the inner-map template (`bpf_map_meta_equal`:
/// -EINVAL otherwise); DEVMAP `ifindex` fits its 32-bit field and is not 0. Errors name
/// the map, the entry and the field.
///
/// Keys and values may also be given decoded, as `dump` writes them under `formatted`
/// (`{"formatted": {"key": 6, "value": {"packets": 1, "bytes": 64}}}`, or decoded values
/// in place of the hex), encoded with the map's BTF types from `btf`.
pub fn load(
    engine: &mut dyn ReplayEngine,
    obj: &LinkedObject,
    doc: &Value,
    ncpus: u32,
    btf: Option<&bpfkit_object::btf::Btf>,
) -> Result<usize, String> {
    let Value::Object(maps) = doc else {
        return Err("maps file: expected an object {\"map name\": [[key, value], ...]}".into());
    };
    let mut n = 0;
    for (name, entries) in maps {
        let idx = map_named(obj, name)
            .ok_or_else(|| format!("maps file: the object has no map `{name}`"))?;
        let def = &obj.maps[idx];
        let Value::Array(entries) = entries else {
            return Err(format!(
                "maps file: `{name}` must be a list of [key, value]"
            ));
        };
        // PROG_ARRAY: the programs already in it or using it fix the type of the others
        // (the kernel's map "owner").
        let mut owner = prog_array_owner(obj, idx);
        for (j, e) in entries.iter().enumerate() {
            let at = format!("maps file: `{name}` entry {j}");
            let (k, v) = match e {
                Value::Array(kv) if kv.len() == 2 => (kv[0].clone(), kv[1].clone()),
                Value::Object(o) if o.contains_key("key") && o.contains_key("value") => {
                    (o["key"].clone(), o["value"].clone())
                }
                Value::Object(o)
                    if o.get("formatted")
                        .is_some_and(|f| f.get("key").is_some() && f.get("value").is_some()) =>
                {
                    let f = &o["formatted"];
                    (
                        decoded_to_hex(btf, def, true, &f["key"])
                            .map_err(|m| format!("{at}: {m}"))?,
                        decoded_to_hex(btf, def, false, &f["value"])
                            .map_err(|m| format!("{at}: {m}"))?,
                    )
                }
                _ => return Err(format!("{at}: expected [key, value]")),
            };
            // Decoded forms in place of hex: objects, lists and booleans as keys; the same
            // and numbers as values of data maps.
            let k = match &k {
                Value::Object(_) | Value::Array(_) | Value::Bool(_) => {
                    decoded_to_hex(btf, def, true, &k).map_err(|m| format!("{at}: {m}"))?
                }
                _ => k,
            };
            let decoded_value = !is_fd_map(def)
                && match &v {
                    Value::Object(o) => !(o.len() == 1 && o.contains_key("ifindex")),
                    Value::Array(_) | Value::Bool(_) | Value::Number(_) => true,
                    _ => false,
                };
            let v = if decoded_value {
                decoded_to_hex(btf, def, false, &v).map_err(|m| format!("{at}: {m}"))?
            } else {
                v
            };
            let (k, v) = (&k, &v);
            let key = key_bytes(def, k).map_err(|m| format!("{at}: key: {m}"))?;
            let value = value_bytes(engine, obj, def, v, ncpus, &mut owner)
                .map_err(|m| format!("{at}: {m}"))?;
            engine
                .map_update(idx, &key, &value)
                .map_err(|m| format!("{at}: update failed: {m}"))?;
            n += 1;
        }
    }
    Ok(n)
}

/// The kernel keeps `BPF_OBJ_NAME_LEN` - 1 = 15 bytes of a map's or program's name, so
/// `bpfkit map dump` of a loaded map shows names cut there: a name of exactly 15 bytes
/// that matches nothing else stands for the one name it begins.
const KERNEL_NAME_LEN: usize = 15;

fn truncated_match<'a>(
    name: &str,
    mut names: impl Iterator<Item = (usize, &'a str)>,
) -> Option<usize> {
    if name.len() != KERNEL_NAME_LEN {
        return None;
    }
    let first = names.find(|(_, n)| n.starts_with(name))?;
    match names.find(|(_, n)| n.starts_with(name)) {
        Some(_) => None,
        None => Some(first.0),
    }
}

/// The map named `name` (libbpf's name, its "real name", or the kernel's 15-byte cut).
pub fn map_named(obj: &LinkedObject, name: &str) -> Option<usize> {
    obj.map_index(name)
        .or_else(|| truncated_match(name, obj.maps.iter().map(|m| m.name.as_str()).enumerate()))
}

/// The program named `name` (or the kernel's 15-byte cut of it).
pub fn program_named(obj: &LinkedObject, name: &str) -> Option<usize> {
    obj.programs
        .iter()
        .position(|q| q.name == name)
        .or_else(|| {
            truncated_match(
                name,
                obj.programs.iter().map(|p| p.name.as_str()).enumerate(),
            )
        })
}

/// The key of an entry, `key_size` bytes.
fn key_bytes(def: &MapDef, k: &Value) -> Result<Vec<u8>, String> {
    let key = match k {
        Value::String(s) => hex::decode(s)?,
        Value::Number(num) => {
            let Some(v) = num.as_u64().and_then(|v| u32::try_from(v).ok()) else {
                return Err(format!("{num} is not an index (0 to 4294967295)"));
            };
            if def.key_size != 4 {
                return Err(format!(
                    "an index needs 4-byte keys; this map's keys are {} bytes (give them in hex)",
                    def.key_size
                ));
            }
            v.to_le_bytes().to_vec()
        }
        _ => return Err("must be a hex string or an index".into()),
    };
    if key.len() != def.key_size as usize {
        return Err(format!(
            "{} bytes, the map's keys are {} bytes",
            key.len(),
            def.key_size
        ));
    }
    Ok(key)
}

/// (program type, expected attach type, `xdp.frags`) of a program, as
/// `bpf_prog_map_compatible` compares them.
type ProgKind = (u32, Option<u32>, bool);

fn prog_kind(p: &bpfkit_object::model::LinkedProgram) -> ProgKind {
    const BPF_F_XDP_HAS_FRAGS: u32 = 1 << 5;
    (
        p.prog_type,
        p.expected_attach_type,
        p.prog_flags & BPF_F_XDP_HAS_FRAGS != 0,
    )
}

/// The kind of the first program of `obj` that uses map `idx` (an `lddw` of it), which
/// the kernel makes the PROG_ARRAY's owner when it loads the object.
fn prog_array_owner(obj: &LinkedObject, idx: usize) -> Option<(ProgKind, String)> {
    use bpfkit_isa::opcode::{BPF_PSEUDO_MAP_FD, BPF_PSEUDO_MAP_IDX, LDDW};
    if obj.maps[idx].map_type != map_type::PROG_ARRAY {
        return None;
    }
    obj.programs
        .iter()
        .find(|p| {
            p.insns.iter().any(|i| {
                i.code == LDDW
                    && matches!(i.src, BPF_PSEUDO_MAP_FD | BPF_PSEUDO_MAP_IDX)
                    && i.imm as usize == idx
            })
        })
        .map(|p| (prog_kind(p), p.name.clone()))
}

fn kind_text(k: &ProgKind) -> String {
    format!(
        "program type {}, expected attach type {}, {}",
        k.0,
        k.1.map_or("none".to_string(), |a| a.to_string()),
        if k.2 { "xdp.frags" } else { "no xdp.frags" }
    )
}

fn value_bytes(
    engine: &dyn ReplayEngine,
    obj: &LinkedObject,
    def: &MapDef,
    v: &Value,
    ncpus: u32,
    owner: &mut Option<(ProgKind, String)>,
) -> Result<Vec<u8>, String> {
    match v {
        Value::String(s) => {
            if is_fd_map(def) {
                let want = if def.map_type == map_type::PROG_ARRAY {
                    "{\"program\": NAME}"
                } else {
                    "{\"map\": NAME}"
                };
                return Err(format!(
                    "value: this map holds references; give the value as {want}"
                ));
            }
            let b = hex::decode(s).map_err(|m| format!("value: {m}"))?;
            let vs = def.value_size as usize;
            if is_percpu(def) {
                let stride = vs.div_ceil(8) * 8;
                if b.len() == vs && ncpus <= 1 {
                    return Ok(b);
                }
                if b.len() == vs {
                    let mut all = vec![0u8; stride * ncpus.max(1) as usize];
                    for c in 0..ncpus.max(1) as usize {
                        all[c * stride..c * stride + b.len()].copy_from_slice(&b);
                    }
                    return Ok(all);
                }
                if b.len() != stride * ncpus.max(1) as usize {
                    return Err(format!(
                        "value: {} bytes; a per-CPU value is {vs} bytes (for every CPU) or {} ({} CPUs x {stride})",
                        b.len(),
                        stride * ncpus.max(1) as usize,
                        ncpus.max(1)
                    ));
                }
                return Ok(b);
            }
            if b.len() != vs {
                return Err(format!(
                    "value: {} bytes, the map's values are {vs} bytes",
                    b.len()
                ));
            }
            Ok(b)
        }
        Value::Object(o) => {
            let field = o.keys().next().map(String::as_str).unwrap_or("");
            if o.len() != 1 || !matches!(field, "program" | "map" | "ifindex") {
                return Err(
                    "value object must be {\"program\": NAME}, {\"map\": NAME} or {\"ifindex\": N}"
                        .into(),
                );
            }
            let f = &o[field];
            match field {
                "program" => {
                    let Value::String(p) = f else {
                        return Err("field `program`: must be a program name".into());
                    };
                    if def.map_type != map_type::PROG_ARRAY {
                        return Err(format!(
                            "field `program`: only PROG_ARRAY values name programs (this map's type is {})",
                            def.map_type
                        ));
                    }
                    let i = program_named(obj, p)
                        .ok_or_else(|| format!("field `program`: no program named `{p}`"))?;
                    let kind = prog_kind(&obj.programs[i]);
                    match owner {
                        Some((k, by)) if *k != kind => {
                            return Err(format!(
                                "field `program`: `{p}` ({}) is not compatible with `{by}` ({}), which owns this PROG_ARRAY; the kernel refuses it (EINVAL)",
                                kind_text(&kind),
                                kind_text(k)
                            ));
                        }
                        Some(_) => {}
                        None => *owner = Some((kind, p.clone())),
                    }
                    Ok(engine.prog_slot_value(i)?.to_le_bytes().to_vec())
                }
                "map" => {
                    let Value::String(m) = f else {
                        return Err("field `map`: must be a map name".into());
                    };
                    if !matches!(
                        def.map_type,
                        map_type::ARRAY_OF_MAPS | map_type::HASH_OF_MAPS
                    ) {
                        return Err(format!(
                            "field `map`: only ARRAY_OF_MAPS/HASH_OF_MAPS values name maps (this map's type is {})",
                            def.map_type
                        ));
                    }
                    let i = map_named(obj, m)
                        .ok_or_else(|| format!("field `map`: no map named `{m}`"))?;
                    if let Some(t) = &def.inner {
                        if let Some(why) = bpfkit_vm::maps::inner_map_mismatch(t, &obj.maps[i]) {
                            return Err(format!(
                                "field `map`: `{m}` does not match the inner-map template: {why}; the kernel refuses it (EINVAL)"
                            ));
                        }
                    }
                    Ok(engine.map_slot_value(i)?.to_le_bytes().to_vec())
                }
                _ => {
                    if !matches!(def.map_type, map_type::DEVMAP | map_type::DEVMAP_HASH) {
                        return Err(format!(
                            "field `ifindex`: only DEVMAP/DEVMAP_HASH values hold an ifindex (this map's type is {})",
                            def.map_type
                        ));
                    }
                    let ifx =
                        match f.as_u64() {
                            Some(0) => return Err(
                                "field `ifindex`: 0 is no device; the kernel refuses it (EINVAL)"
                                    .into(),
                            ),
                            Some(x) => u32::try_from(x).map_err(|_| {
                                format!("field `ifindex`: {x} does not fit in its 32 bits")
                            })?,
                            None => {
                                return Err(format!(
                                "field `ifindex`: {f} is not an interface index (1 to 4294967295)"
                            ))
                            }
                        };
                    let mut b = ifx.to_le_bytes().to_vec();
                    b.resize(def.value_size.max(4) as usize, 0);
                    Ok(b)
                }
            }
        }
        _ => Err("value must be a hex string or an object".into()),
    }
}
