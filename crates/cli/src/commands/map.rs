//! `bpfkit map`: dump, look up, update and delete entries of a kernel map.

use std::path::PathBuf;

use bpfkit_loader::map::is_per_cpu;
use bpfkit_loader::object_load::spec_from_info;
use bpfkit_loader::pin::{self, ObjKind};
use bpfkit_loader::{Map, MapSpec};

use bpfkit_replay::maps_json::{self, Shape};

use super::load::loader_error;
use crate::{CliError, CliResult, Status};

const AFTER_HELP: &str = "\
Examples:
  bpfkit map dump /sys/fs/bpf/fw/fw_stats
  bpfkit map dump --id 42 --json > maps.json   # then: bpfkit replay --maps-in maps.json ...
  bpfkit map dump --id 42 --format bpftool
  bpfkit map lookup /sys/fs/bpf/fw/blocklist --key 0a000042
  bpfkit map update /sys/fs/bpf/fw/blocklist --key '0a 00 00 42' --value 0000000000000000
  bpfkit map delete /sys/fs/bpf/fw/blocklist --key 0a000042

The map is a pinned path (bpffs) or --id N. Keys and values are hex bytes in memory
order (spaces optional). For per-CPU maps an update writes the value to every CPU, and
lookups/dumps show one value per possible CPU.

--json (= --format json) writes the layout of `bpfkit replay --maps-in`/`--maps-out`, so
a dump is directly a maps file: {\"MAP NAME\": [ENTRY, ...]}, each entry
{\"key\": HEX, \"value\": HEX, \"formatted\": {\"key\": .., \"value\": ..}} when the map has
BTF (decoded as bpftool's `formatted`), else [HEX, HEX]; per-CPU values are the values of
every CPU, each padded to 8 bytes, in one hex string (`formatted`: one per CPU); program
arrays and map-in-maps name what their slots hold ({\"program\": NAME}, {\"map\": NAME},
kernel names); all-zero entries of ARRAY/PERCPU_ARRAY maps are left out. The map is
named by its kernel name (15 bytes at most), or --name. --format bpftool is shaped like
`bpftool -j map dump`: a list of entries, keys and values as arrays of \"0x..\" byte
strings, per-CPU values as {\"cpu\": N, \"value\": [..]}, every entry, plus `formatted`.

Exit status: 0 done (lookup/delete: the key exists); 1 the key is absent, or a key/value
of the wrong size or refused by the kernel; 2 usage or I/O error (--key/--value not hex,
no such pin or id, permission).";

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Action {
    Dump,
    Lookup,
    Update,
    Delete,
}

#[derive(clap::Args)]
#[command(after_help = AFTER_HELP)]
pub struct Args {
    #[arg(value_enum)]
    pub action: Action,
    /// Pinned map (path on bpffs).
    #[arg(required_unless_present = "id", conflicts_with = "id")]
    pub path: Option<PathBuf>,
    /// Map id (see `bpftool map list`).
    #[arg(long)]
    pub id: Option<u32>,
    /// Key, hex bytes.
    #[arg(long)]
    pub key: Option<String>,
    /// Value, hex bytes (update).
    #[arg(long)]
    pub value: Option<String>,
    /// JSON output in the `replay --maps-in` layout (= --format json).
    #[arg(long, conflicts_with = "format")]
    pub json: bool,
    /// Output: text, json (the `replay --maps-in`/`--maps-out` layout) or bpftool
    /// (`bpftool -j map dump`'s layout).
    #[arg(long, value_enum)]
    pub format: Option<Format>,
    /// The map's name in the JSON layout (default: its kernel name), e.g. the object's
    /// name for it when the kernel cut it to 15 bytes.
    #[arg(long)]
    pub name: Option<String>,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
    Bpftool,
}

/// Hex bytes of `--key`/`--value` (whitespace and `0x` prefixes ignored). A syntax error
/// is a usage error (2) naming the option and the first character that is not hex.
fn parse_hex(s: &str, what: &str) -> Result<Vec<u8>, CliError> {
    super::parse_hex_arg(&format!("--{what} `{s}`"), s)
}

fn open(a: &Args) -> Result<Map, CliError> {
    let usage = |e: bpfkit_loader::Error| {
        let mut e = loader_error(e);
        e.status = Status::Usage;
        e
    };
    let fd = match (&a.path, a.id) {
        (Some(p), _) => pin::get_pinned(p).map_err(usage)?,
        (None, Some(id)) => pin::fd_by_id(ObjKind::Map, id).map_err(usage)?,
        (None, None) => return Err(CliError::usage("give a pinned path or --id")),
    };
    let dup = fd
        .try_clone()
        .map_err(|e| CliError::usage(format!("dup: {e}")))?;
    let probe = Map::from_fd(dup, MapSpec::default()).map_err(usage)?;
    let info = probe.info().map_err(usage)?;
    Map::from_fd(fd, spec_from_info(&info)).map_err(usage)
}

/// The map's BTF and its key and value types, when the map has BTF (as every map a
/// modern object creates does): entries then also show decoded, as bpftool's
/// `formatted`.
struct Types {
    btf: bpfkit_object::btf::Btf,
    key: u32,
    value: u32,
}

fn types(m: &Map) -> Option<Types> {
    let info = m.info().ok()?;
    if info.btf_id == 0 || info.btf_key_type_id == 0 || info.btf_value_type_id == 0 {
        return None;
    }
    let data = pin::btf_data_by_id(info.btf_id).ok()?;
    let btf = bpfkit_object::btf::Btf::parse(&data, 0).ok()?;
    Some(Types {
        btf,
        key: info.btf_key_type_id,
        value: info.btf_value_type_id,
    })
}

/// `{"key": .., "value": ..}` decoded with the map's BTF (per-CPU values: one per CPU).
fn formatted(m: &Map, t: &Types, key: &[u8], value: &[u8]) -> Option<serde_json::Value> {
    use bpfkit_replay::btf_value::decode;
    let spec = m.spec();
    let k = decode(&t.btf, t.key, key)?;
    let v = if is_per_cpu(spec.map_type) {
        let stride = (spec.value_size as usize).div_ceil(8) * 8;
        let mut cpus = Vec::new();
        for (cpu, c) in value.chunks(stride).enumerate() {
            cpus.push(serde_json::json!({"cpu": cpu, "value": decode(&t.btf, t.value, c)?}));
        }
        serde_json::Value::Array(cpus)
    } else {
        decode(&t.btf, t.value, value)?
    };
    Some(serde_json::json!({"key": k, "value": v}))
}

/// The map as the shared JSON layout sees it (`bpfkit_replay::maps_json`).
fn shape(m: &Map, t: Option<&Types>) -> Shape {
    let spec = m.spec();
    Shape {
        map_type: spec.map_type,
        value_size: spec.value_size,
        btf_key_type_id: t.map_or(0, |t| t.key),
        btf_value_type_id: t.map_or(0, |t| t.value),
    }
}

/// One entry in the `replay --maps-in` layout: program-array and map-in-map slots name
/// the program or map whose id they hold (by its kernel name; `{"id": N}` when it has
/// none or is gone).
fn layout_entry(shape: &Shape, t: Option<&Types>, key: &[u8], value: &[u8]) -> serde_json::Value {
    if shape.is_fd_map() && value.len() >= 4 {
        use bpfkit_object::model::map_type::PROG_ARRAY;
        let id = u32::from_le_bytes([value[0], value[1], value[2], value[3]]);
        let (kind, field) = if shape.map_type == PROG_ARRAY {
            (ObjKind::Prog, "program")
        } else {
            (ObjKind::Map, "map")
        };
        let v = match pin::name_of(kind, id).filter(|n| !n.is_empty()) {
            Some(n) => serde_json::json!({ field: n }),
            None => serde_json::json!({ "id": id }),
        };
        return maps_json::entry(key, v, None);
    }
    maps_json::data_entry(t.map(|t| &t.btf), shape, key, value)
}

fn hex_json(b: &[u8]) -> serde_json::Value {
    b.iter().map(|x| format!("0x{x:02x}")).collect()
}

fn hex_text(b: &[u8]) -> String {
    b.iter()
        .map(|x| format!("{x:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// One entry as bpftool -j shows it.
fn entry_json(m: &Map, key: &[u8], value: &[u8]) -> serde_json::Value {
    let spec = m.spec();
    if is_per_cpu(spec.map_type) {
        let stride = (spec.value_size as usize).div_ceil(8) * 8;
        let values: Vec<_> = value
            .chunks(stride)
            .enumerate()
            .map(|(cpu, v)| serde_json::json!({"cpu": cpu, "value": hex_json(&v[..spec.value_size as usize])}))
            .collect();
        serde_json::json!({"key": hex_json(key), "values": values})
    } else {
        serde_json::json!({"key": hex_json(key), "value": hex_json(value)})
    }
}

fn entry_text(m: &Map, key: &[u8], value: &[u8]) -> String {
    let spec = m.spec();
    if is_per_cpu(spec.map_type) {
        let stride = (spec.value_size as usize).div_ceil(8) * 8;
        let mut s = format!("key: {}\n", hex_text(key));
        for (cpu, v) in value.chunks(stride).enumerate() {
            s.push_str(&format!(
                " value (CPU {cpu:02}): {}\n",
                hex_text(&v[..spec.value_size as usize])
            ));
        }
        s.truncate(s.trim_end().len());
        s
    } else {
        format!("key: {}  value: {}", hex_text(key), hex_text(value))
    }
}

pub fn run(a: Args) -> CliResult {
    let format = match (a.format, a.json) {
        (Some(f), _) => f,
        (None, true) => Format::Json,
        (None, false) => Format::Text,
    };
    let m = open(&a)?;
    let bad = |e: bpfkit_loader::Error| CliError::bad(e.to_string());
    let key = || -> Result<Vec<u8>, CliError> {
        let k = a
            .key
            .as_deref()
            .ok_or_else(|| CliError::usage("this action needs --key"))?;
        parse_hex(k, "key")
    };
    match a.action {
        Action::Dump => {
            let entries = m.entries().map_err(bad)?;
            let t = types(&m);
            match format {
                Format::Json => {
                    let sh = shape(&m, t.as_ref());
                    let list: Vec<_> = entries
                        .iter()
                        .filter(|(_, v)| !maps_json::left_out(&sh, v))
                        .map(|(k, v)| layout_entry(&sh, t.as_ref(), k, v))
                        .collect();
                    let name = a.name.clone().unwrap_or_else(|| m.name().to_string());
                    let mut doc = serde_json::Map::new();
                    doc.insert(name, serde_json::Value::Array(list));
                    crate::outln!("{}", serde_json::to_string_pretty(&doc).expect("json"));
                }
                Format::Bpftool => {
                    let v: Vec<_> = entries
                        .iter()
                        .map(|(k, v)| {
                            let mut e = entry_json(&m, k, v);
                            if let Some(f) = t.as_ref().and_then(|t| formatted(&m, t, k, v)) {
                                e["formatted"] = f;
                            }
                            e
                        })
                        .collect();
                    crate::outln!("{}", serde_json::to_string(&v).expect("json"));
                }
                Format::Text => {
                    for (k, v) in &entries {
                        crate::outln!("{}", entry_text(&m, k, v));
                        if let Some(f) = t.as_ref().and_then(|t| formatted(&m, t, k, v)) {
                            crate::outln!("  = {}", serde_json::to_string(&f).expect("json"));
                        }
                    }
                    crate::outln!("Found {} elements", entries.len());
                }
            }
        }
        Action::Lookup => {
            let k = key()?;
            match m.lookup(&k).map_err(bad)? {
                Some(v) => {
                    let t = types(&m);
                    let f = t.as_ref().and_then(|t| formatted(&m, t, &k, &v));
                    match format {
                        Format::Json => {
                            let sh = shape(&m, t.as_ref());
                            crate::outln!("{}", layout_entry(&sh, t.as_ref(), &k, &v));
                        }
                        Format::Bpftool => {
                            let mut e = entry_json(&m, &k, &v);
                            if let Some(f) = f {
                                e["formatted"] = f;
                            }
                            crate::outln!("{e}");
                        }
                        Format::Text => {
                            crate::outln!("{}", entry_text(&m, &k, &v));
                            if let Some(f) = f {
                                crate::outln!("  = {}", serde_json::to_string(&f).expect("json"));
                            }
                        }
                    }
                }
                None => return Err(CliError::bad(format!("key {} not found", hex_text(&k)))),
            }
        }
        Action::Update => {
            let k = key()?;
            let v = parse_hex(
                a.value
                    .as_deref()
                    .ok_or_else(|| CliError::usage("update needs --value"))?,
                "value",
            )?;
            let spec = m.spec();
            if v.len() != spec.value_size as usize {
                return Err(CliError::bad(format!(
                    "value is {} bytes, the map's value_size is {}",
                    v.len(),
                    spec.value_size
                )));
            }
            let full = if is_per_cpu(spec.map_type) {
                let stride = (spec.value_size as usize).div_ceil(8) * 8;
                let mut full = vec![0u8; m.value_len()];
                for chunk in full.chunks_mut(stride) {
                    chunk[..v.len()].copy_from_slice(&v);
                }
                full
            } else {
                v
            };
            m.update(&k, &full, 0).map_err(bad)?;
            if format != Format::Text {
                crate::outln!("null");
            }
        }
        Action::Delete => {
            let k = key()?;
            if !m.delete(&k).map_err(bad)? {
                return Err(CliError::bad(format!("key {} not found", hex_text(&k))));
            }
            if format != Format::Text {
                crate::outln!("null");
            }
        }
    }
    Ok(Status::Ok)
}
