//! The one JSON layout of map contents, shared by `replay --maps-out` (written by
//! [`crate::state::dump`]), `replay --maps-in` (read by [`crate::state::load`]) and
//! `bpfkit map dump --json` (a kernel map):
//!
//! ```json
//! {"MAP NAME": [
//!     {"key": "0008", "value": "0300…", "formatted": {"key": 2048, "value": {"packets": 3, "bytes": 192}}},
//!     ["04000000", "63000000"],
//!     ["00000000", {"program": "handle_ipv4"}]
//! ]}
//! ```
//!
//! Keys and values are hex in memory order (per-CPU maps: the values of every CPU, each
//! padded to 8 bytes, one after the other, as `BPF_MAP_LOOKUP_ELEM` returns them). With
//! the map's BTF key and value types, an entry is an object and carries the decoded key
//! and value beside the hex (`formatted`, as `bpftool map dump` shows it; per-CPU values
//! as `[{"cpu": N, "value": ..}]`); without them it is `[key, value]`. Program-array and
//! map-in-map values name what the slot holds (`{"program": NAME}`, `{"map": NAME}`).
//! All-zero entries of ARRAY and PERCPU_ARRAY maps are left out: every index exists, and
//! a map starts zeroed.

use bpfkit_object::btf::Btf;
use serde_json::{json, Value};

/// What the layout needs to know of a map: its type and sizes, and its BTF key and value
/// type ids (0: none).
#[derive(Clone, Copy, Debug)]
pub struct Shape {
    pub map_type: u32,
    pub value_size: u32,
    pub btf_key_type_id: u32,
    pub btf_value_type_id: u32,
}

impl Shape {
    pub fn of(def: &bpfkit_object::model::MapDef) -> Shape {
        Shape {
            map_type: def.map_type,
            value_size: def.value_size,
            btf_key_type_id: def.btf_key_type_id,
            btf_value_type_id: def.btf_value_type_id,
        }
    }

    /// One value per CPU.
    pub fn is_percpu(&self) -> bool {
        use bpfkit_object::model::map_type::*;
        matches!(self.map_type, PERCPU_ARRAY | PERCPU_HASH | LRU_PERCPU_HASH)
    }

    /// Values are program or map references, not data.
    pub fn is_fd_map(&self) -> bool {
        use bpfkit_object::model::map_type::*;
        matches!(self.map_type, PROG_ARRAY | ARRAY_OF_MAPS | HASH_OF_MAPS)
    }

    /// Every index exists (ARRAY, PERCPU_ARRAY): all-zero entries are left out.
    pub fn is_arrayish(&self) -> bool {
        use bpfkit_object::model::map_type::*;
        matches!(self.map_type, ARRAY | PERCPU_ARRAY)
    }

    /// The distance between two CPUs' values in a per-CPU value.
    pub fn percpu_stride(&self) -> usize {
        (self.value_size as usize).div_ceil(8) * 8
    }
}

/// True when the entry is left out of a dump: an all-zero value of an array-like map.
pub fn left_out(shape: &Shape, value: &[u8]) -> bool {
    shape.is_arrayish() && value.iter().all(|b| *b == 0)
}

/// The decoded key and value of one entry (per-CPU values: one per CPU), when the map's
/// BTF key and value types are known and decode the bytes.
pub fn formatted(btf: &Btf, shape: &Shape, key: &[u8], value: &[u8]) -> Option<Value> {
    if shape.btf_key_type_id == 0 || shape.btf_value_type_id == 0 || shape.is_fd_map() {
        return None;
    }
    let k = crate::btf_value::decode(btf, shape.btf_key_type_id, key)?;
    let v = if shape.is_percpu() {
        let mut cpus = Vec::new();
        for (cpu, chunk) in value.chunks(shape.percpu_stride().max(1)).enumerate() {
            let d = crate::btf_value::decode(btf, shape.btf_value_type_id, chunk)?;
            cpus.push(json!({"cpu": cpu, "value": d}));
        }
        Value::Array(cpus)
    } else {
        crate::btf_value::decode(btf, shape.btf_value_type_id, value)?
    };
    Some(json!({"key": k, "value": v}))
}

/// One entry: `{"key": HEX, "value": VALUE, "formatted": ..}` when decoded, else
/// `[HEX, VALUE]`. `value` is the hex string of the value, or the reference object of a
/// program-array or map-in-map slot.
pub fn entry(key: &[u8], value: Value, formatted: Option<Value>) -> Value {
    match formatted {
        Some(f) => json!({"key": crate::hex::encode(key), "value": value, "formatted": f}),
        None => json!([crate::hex::encode(key), value]),
    }
}

/// One entry of a data map (hex value), decoded with `btf` when it can be.
pub fn data_entry(btf: Option<&Btf>, shape: &Shape, key: &[u8], value: &[u8]) -> Value {
    let f = btf.and_then(|b| formatted(b, shape, key, value));
    entry(key, Value::String(crate::hex::encode(value)), f)
}
