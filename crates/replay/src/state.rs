//! Map state as JSON (`--maps-in`, `--maps-out`), in the layout of the corpus's
//! `maps_after`/`fd_maps_after`: map name -> list of `[key_hex, value]`, where `value` is a
//! hex string, `{"program": NAME}` (PROG_ARRAY), `{"map": NAME}` (map-in-map) or
//! `{"ifindex": N}` (DEVMAP, `--maps-in` only).

use crate::engines::ReplayEngine;
use crate::hex;
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

/// The contents of every map as JSON. ARRAY-like maps leave out all-zero values (every
/// index exists), as the corpus's `maps_after` does. `fd_value` names program/map slots
/// (bpfkit engines store indices; kernel ids are shown as `{"id": N}`).
pub fn dump(engine: &dyn ReplayEngine, obj: &LinkedObject) -> Result<Value, String> {
    let mut out = JsonMap::new();
    for (i, def) in obj.maps.iter().enumerate() {
        if is_undumpable(def) || (is_fifo(def) && engine.name() == "kernel") {
            continue;
        }
        let entries = engine
            .map_entries(i)
            .map_err(|e| format!("map `{}`: {e}", def.real_name()))?;
        let arrayish = matches!(def.map_type, map_type::ARRAY | map_type::PERCPU_ARRAY);
        let mut list = Vec::with_capacity(entries.len());
        for (k, v) in entries {
            if arrayish && v.iter().all(|b| *b == 0) {
                continue;
            }
            let value = if is_fd_map(def) && v.len() >= 4 {
                let n = u32::from_le_bytes([v[0], v[1], v[2], v[3]]) as usize;
                if engine.name() == "kernel" {
                    json!({ "id": n })
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
                }
            } else {
                Value::String(hex::encode(&v))
            };
            list.push(json!([hex::encode(&k), value]));
        }
        out.insert(def.real_name().to_string(), Value::Array(list));
    }
    Ok(Value::Object(out))
}

/// Fills maps from a `--maps-in` document (`BPF_ANY` updates, in document order).
/// `ncpus` expands a single per-CPU value to every CPU.
pub fn load(
    engine: &mut dyn ReplayEngine,
    obj: &LinkedObject,
    doc: &Value,
    ncpus: u32,
) -> Result<usize, String> {
    let Value::Object(maps) = doc else {
        return Err("maps file: expected an object {\"map name\": [[key, value], ...]}".into());
    };
    let mut n = 0;
    for (name, entries) in maps {
        let idx = obj
            .map_index(name)
            .ok_or_else(|| format!("maps file: the object has no map `{name}`"))?;
        let def = &obj.maps[idx];
        let Value::Array(entries) = entries else {
            return Err(format!(
                "maps file: `{name}` must be a list of [key, value]"
            ));
        };
        for (j, e) in entries.iter().enumerate() {
            let at = format!("maps file: `{name}` entry {j}");
            let (k, v) = match e {
                Value::Array(kv) if kv.len() == 2 => (&kv[0], &kv[1]),
                Value::Object(o) if o.contains_key("key") && o.contains_key("value") => {
                    (&o["key"], &o["value"])
                }
                _ => return Err(format!("{at}: expected [key, value]")),
            };
            let key = match k {
                Value::String(s) => hex::decode(s).map_err(|m| format!("{at}: key: {m}"))?,
                Value::Number(num) => match num.as_u64().map(u32::try_from) {
                    Some(Ok(v)) => v.to_le_bytes().to_vec(),
                    _ => {
                        return Err(format!(
                            "{at}: key: {num} is not an index (0 to {})",
                            u32::MAX
                        ))
                    }
                },
                _ => return Err(format!("{at}: key must be a hex string or an index")),
            };
            let value =
                value_bytes(engine, obj, def, v, ncpus).map_err(|m| format!("{at}: {m}"))?;
            engine
                .map_update(idx, &key, &value)
                .map_err(|m| format!("{at}: update failed: {m}"))?;
            n += 1;
        }
    }
    Ok(n)
}

fn value_bytes(
    engine: &dyn ReplayEngine,
    obj: &LinkedObject,
    def: &MapDef,
    v: &Value,
    ncpus: u32,
) -> Result<Vec<u8>, String> {
    match v {
        Value::String(s) => {
            let b = hex::decode(s).map_err(|m| format!("value: {m}"))?;
            if is_percpu(def) && b.len() == def.value_size as usize && ncpus > 1 {
                let stride = (def.value_size as usize).div_ceil(8) * 8;
                let mut all = vec![0u8; stride * ncpus as usize];
                for c in 0..ncpus as usize {
                    all[c * stride..c * stride + b.len()].copy_from_slice(&b);
                }
                return Ok(all);
            }
            Ok(b)
        }
        Value::Object(o) => {
            if let Some(Value::String(p)) = o.get("program") {
                let i = obj
                    .programs
                    .iter()
                    .position(|q| &q.name == p)
                    .ok_or_else(|| format!("no program named `{p}`"))?;
                return Ok(engine.prog_slot_value(i)?.to_le_bytes().to_vec());
            }
            if let Some(Value::String(m)) = o.get("map") {
                let i = obj
                    .map_index(m)
                    .ok_or_else(|| format!("no map named `{m}`"))?;
                return Ok(engine.map_slot_value(i)?.to_le_bytes().to_vec());
            }
            if let Some(ifx) = o.get("ifindex") {
                let ifx = ifx
                    .as_u64()
                    .and_then(|n| u32::try_from(n).ok())
                    .ok_or_else(|| {
                        format!(
                            "value: ifindex {ifx} is not a number from 0 to {}",
                            u32::MAX
                        )
                    })?;
                let mut b = ifx.to_le_bytes().to_vec();
                b.resize(def.value_size.max(4) as usize, 0);
                return Ok(b);
            }
            Err(
                "value object must be {\"program\": NAME}, {\"map\": NAME} or {\"ifindex\": N}"
                    .into(),
            )
        }
        _ => Err("value must be a hex string or an object".into()),
    }
}
