//! Shared by the corpus tests and the kernel expectation recorder
//! (`examples/record_kernel.rs`): corpus discovery, directives, and the per-packet
//! expectation format of `corpus/expected/replay/`.
#![allow(dead_code)]

use bpfkit_object::model::LinkedObject;
use bpfkit_object::{object_name_from_path, Object};
use bpfkit_replay::engines::EngineKind;
use bpfkit_replay::{replay, Options};
use serde_json::{json, Map, Value};
use std::path::{Path, PathBuf};

/// The repository root (two levels above this crate).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Every corpus object (`corpus/obj/*.o`, not the rejected samples), sorted.
pub fn objects() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(root().join("corpus/obj"))
        .expect("corpus/obj")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "o"))
        .collect();
    v.sort();
    v
}

/// Every corpus capture (`corpus/pcap/*.pcap|*.pcapng`), sorted.
pub fn captures() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(root().join("corpus/pcap"))
        .expect("corpus/pcap")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "pcap" || e == "pcapng"))
        .collect();
    v.sort();
    v
}

pub fn load(path: &Path) -> LinkedObject {
    let bytes = std::fs::read(path).expect("read object");
    Object::parse_named(&bytes, &object_name_from_path(path))
        .and_then(|o| o.link())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `// corpus-map-setup: MAP KEY VALUE` entries of the object's source as a `--maps-in`
/// document, and the maps named by `// corpus-nondeterministic: MAP ...`.
pub fn directives(obj_path: &Path) -> (Value, Vec<String>) {
    let name = object_name_from_path(obj_path);
    let src = root().join(format!("corpus/src/{name}.c"));
    let text = std::fs::read_to_string(&src).unwrap_or_default();
    let mut maps: Map<String, Value> = Map::new();
    let mut nondet = Vec::new();
    for line in text.lines() {
        let l = line.trim();
        if let Some(rest) = l.strip_prefix("// corpus-map-setup:") {
            let f: Vec<&str> = rest.split_whitespace().collect();
            if f.len() == 3 {
                maps.entry(f[0].to_string())
                    .or_insert_with(|| Value::Array(Vec::new()))
                    .as_array_mut()
                    .expect("array")
                    .push(json!([f[1], f[2]]));
            }
        } else if let Some(rest) = l.strip_prefix("// corpus-nondeterministic:") {
            if let Some(m) = rest.split_whitespace().next() {
                nondet.push(m.to_string());
            }
        }
    }
    (Value::Object(maps), nondet)
}

/// The result of replaying one capture: per-packet entries and final maps, in the
/// expectation format: `[index, retval]`, `[index, retval, "data_out hex"]` (when the
/// packet changed) or `[index, "skipped"]`; `maps_after` leaves out reference-valued maps
/// and nondeterministic ones.
pub struct Run {
    pub packets: Vec<Value>,
    pub maps_after: Value,
    /// Every dumped map, QUEUE/STACK included (the kernel engine cannot list those).
    pub all_maps: Value,
    /// Helper side effects per packet record (`events` of the trace; empty when none).
    pub events: Vec<Value>,
    pub damaged: Option<String>,
}

pub fn run(
    obj: &LinkedObject,
    obj_path: &Path,
    prog: &str,
    capture: &Path,
    engine: EngineKind,
    cpus: u32,
    tmp: &Path,
) -> Result<Run, String> {
    let (setup, nondet) = directives(obj_path);
    std::fs::create_dir_all(tmp).map_err(|e| e.to_string())?;
    let maps_in = tmp.join("maps-in.json");
    std::fs::write(&maps_in, setup.to_string()).map_err(|e| e.to_string())?;
    let trace = tmp.join("trace.jsonl");
    let maps_out = tmp.join("maps-out.json");
    let opts = Options {
        prog: Some(prog.to_string()),
        engine,
        cpus: Some(cpus),
        maps_in: Some(maps_in),
        trace: Some(trace.clone()),
        maps_out: Some(maps_out.clone()),
        object_path: Some(obj_path.to_path_buf()),
        ..Options::default()
    };
    // Messages name the capture by file name only, so expectations do not depend on where
    // the repository is checked out.
    let cname = capture
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let rel = |m: String| m.replace(&capture.display().to_string(), &cname);
    let s = replay(obj, capture, &opts, None).map_err(|e| rel(e.to_string()))?;
    let text = std::fs::read_to_string(&trace).map_err(|e| e.to_string())?;
    let mut packets = Vec::new();
    let mut events = Vec::new();
    for line in text.lines() {
        let v: Value = serde_json::from_str(line).map_err(|e| e.to_string())?;
        events.push(v.get("events").cloned().unwrap_or_else(|| json!([])));
        let i = v["index"].clone();
        if v.get("retval").is_some() {
            match v.get("data_out") {
                Some(d) => packets.push(json!([i, v["retval"], d])),
                None => packets.push(json!([i, v["retval"]])),
            }
        } else if v.get("fault").is_some() {
            packets.push(json!([i, "fault", v["fault"]]));
        } else {
            packets.push(json!([i, "skipped"]));
        }
    }
    let mut maps: Value =
        serde_json::from_str(&std::fs::read_to_string(&maps_out).map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
    let all_maps = maps.clone();
    if let Value::Object(m) = &mut maps {
        for def in &obj.maps {
            if bpfkit_replay::state::is_fd_map(def)
                || bpfkit_replay::state::is_fifo(def)
                || nondet.iter().any(|n| n == def.real_name())
            {
                m.remove(def.real_name());
            }
        }
    }
    Ok(Run {
        packets,
        maps_after: maps,
        all_maps,
        events,
        damaged: s.damaged.map(rel),
    })
}

/// Path of the expectation file of program `prog` of object `obj`.
pub fn expectation_path(obj_path: &Path, prog: &str) -> PathBuf {
    let name = object_name_from_path(obj_path);
    root().join(format!("corpus/expected/replay/{name}.{prog}.json"))
}

// Scratch directories (shared with the CLI's tests by path).
mod scratch;
#[allow(unused_imports)]
pub use scratch::{scratch, scratch_dir};
