//! The tail-call graph of an object: which program may tail-call which, from the
//! tail-call sites found during verification and the PROG_ARRAY contents of the object
//! (`.values` initialisers, [`MapInit::Programs`]) plus, optionally, a maps file in the
//! `bpfkit replay --maps-in` layout ([`prog_arrays_from_json`]). Reports cycles and
//! chains longer than the runtime limit of 34 programs (the first plus
//! `MAX_TAIL_CALL_CNT` = 33 tail calls; a program tail-calling itself runs 34 times, as
//! measured on the kernel, see docs/loader.md).

use crate::Report;
use bpfkit_object::model::{map_type, LinkedObject, MapInit};
use serde::Serialize;

/// `MAX_TAIL_CALL_CNT`.
pub const MAX_TAIL_CALL_CNT: usize = 33;

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct TailCallLint {
    pub kind: &'static str,
    /// Programs involved, in call order.
    pub programs: Vec<String>,
    pub message: String,
}

/// Contents of PROG_ARRAY maps beyond the object's `.values`: per map index, the slots
/// (slot, program name) set by a maps file, applied on top of `.values` like `BPF_ANY`
/// updates.
pub type ProgArrays = Vec<(usize, Vec<(u32, String)>)>;

/// PROG_ARRAY slots from a maps file in the `bpfkit replay --maps-in` layout:
/// `{"map name": [[key, value], ...]}` with `key` a hex string (little-endian u32) or an
/// integer, and `value` `{"program": NAME}` (or `{"index": N}`, a program index).
/// Maps of other types are skipped. Returns the slots and the names of the file's maps
/// that this object does not have.
pub fn prog_arrays_from_json(
    obj: &LinkedObject,
    doc: &serde_json::Value,
) -> Result<(ProgArrays, Vec<String>), String> {
    use serde_json::Value;
    let Value::Object(maps) = doc else {
        return Err("maps file: expected an object {\"map name\": [[key, value], ...]}".into());
    };
    let mut out: ProgArrays = vec![];
    let mut missing = vec![];
    for (name, entries) in maps {
        let Some(idx) = obj.map_index(name) else {
            missing.push(name.clone());
            continue;
        };
        if obj.maps[idx].map_type != map_type::PROG_ARRAY {
            continue;
        }
        let Value::Array(entries) = entries else {
            return Err(format!(
                "maps file: `{name}` must be a list of [key, value]"
            ));
        };
        let mut slots = vec![];
        for (j, e) in entries.iter().enumerate() {
            let at = format!("maps file: `{name}` entry {j}");
            let (k, v) = match e {
                Value::Array(kv) if kv.len() == 2 => (&kv[0], &kv[1]),
                Value::Object(o) if o.contains_key("key") && o.contains_key("value") => {
                    (&o["key"], &o["value"])
                }
                _ => return Err(format!("{at}: expected [key, value]")),
            };
            let slot = match k {
                Value::Number(n) => n
                    .as_u64()
                    .and_then(|n| u32::try_from(n).ok())
                    .ok_or_else(|| format!("{at}: key {n} is not a u32 index"))?,
                Value::String(s) => {
                    let b = decode_hex(s).ok_or_else(|| format!("{at}: key {s:?} is not hex"))?;
                    if b.len() != 4 {
                        return Err(format!(
                            "{at}: a PROG_ARRAY key is 4 bytes, {s:?} has {}",
                            b.len()
                        ));
                    }
                    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
                }
                _ => return Err(format!("{at}: key must be a hex string or an index")),
            };
            let prog = match v {
                Value::Object(o) if o.get("program").is_some_and(|p| p.is_string()) => {
                    let p = o["program"].as_str().unwrap_or_default().to_string();
                    if obj.program(&p).is_none() {
                        return Err(format!("{at}: the object has no program `{p}`"));
                    }
                    p
                }
                Value::Object(o) if o.get("index").is_some_and(|i| i.is_u64()) => {
                    let i = o["index"].as_u64().unwrap_or(u64::MAX) as usize;
                    obj.programs
                        .get(i)
                        .map(|p| p.name.clone())
                        .ok_or_else(|| format!("{at}: no program with index {i}"))?
                }
                _ => {
                    return Err(format!(
                        "{at}: a PROG_ARRAY value must name a program: {{\"program\": NAME}}"
                    ))
                }
            };
            slots.retain(|(s, _)| *s != slot);
            slots.push((slot, prog));
        }
        out.push((idx, slots));
    }
    Ok((out, missing))
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    hex::decode(s.strip_prefix("0x").unwrap_or(s)).ok()
}

/// The effective contents of PROG_ARRAY map `m`: `.values`, then `extra` on top.
fn contents(obj: &LinkedObject, extra: &ProgArrays, m: usize) -> Vec<(u32, String)> {
    let mut v: Vec<(u32, String)> = match obj.maps.get(m).map(|d| &d.init) {
        Some(MapInit::Programs(entries)) => entries.clone(),
        _ => vec![],
    };
    for (em, slots) in extra {
        if *em == m {
            for (s, p) in slots {
                v.retain(|(x, _)| x != s);
                v.push((*s, p.clone()));
            }
        }
    }
    v
}

/// Edges program -> programs it may tail-call.
pub fn graph(obj: &LinkedObject, reports: &[Report]) -> Vec<(String, Vec<String>)> {
    graph_with(obj, reports, &vec![])
}

/// [`graph`] with PROG_ARRAY contents from a maps file on top of `.values`.
pub fn graph_with(
    obj: &LinkedObject,
    reports: &[Report],
    extra: &ProgArrays,
) -> Vec<(String, Vec<String>)> {
    let mut g = vec![];
    for rep in reports {
        let mut targets: Vec<String> = vec![];
        for &(m, slot) in &rep.stats.tail_calls {
            for (s, name) in contents(obj, extra, m) {
                if slot.is_none_or(|k| k == s as u64) && !targets.contains(&name) {
                    targets.push(name);
                }
            }
        }
        g.push((rep.program.clone(), targets));
    }
    g
}

/// Cycles and over-long chains in the tail-call graph.
pub fn lints(obj: &LinkedObject, reports: &[Report]) -> Vec<TailCallLint> {
    lints_with(obj, reports, &vec![])
}

/// [`lints`] with PROG_ARRAY contents from a maps file on top of `.values`.
pub fn lints_with(obj: &LinkedObject, reports: &[Report], extra: &ProgArrays) -> Vec<TailCallLint> {
    let g = graph_with(obj, reports, extra);
    let idx = |n: &str| g.iter().position(|(p, _)| p == n);
    let mut out = vec![];
    let mut seen_cycles: Vec<Vec<String>> = vec![];
    // longest chain (in programs) from each node, with cycle detection
    fn dfs(
        v: usize,
        g: &[(String, Vec<String>)],
        idx: &dyn Fn(&str) -> Option<usize>,
        stack: &mut Vec<usize>,
        cycles: &mut Vec<Vec<String>>,
        best: &mut Vec<usize>,
    ) -> usize {
        if let Some(p) = stack.iter().position(|&x| x == v) {
            let mut c: Vec<String> = stack[p..].iter().map(|&i| g[i].0.clone()).collect();
            c.push(g[v].0.clone());
            let mut key = c[..c.len() - 1].to_vec();
            key.sort();
            if !cycles.iter().any(|k| {
                let mut kk = k[..k.len() - 1].to_vec();
                kk.sort();
                kk == key
            }) {
                cycles.push(c);
            }
            return usize::MAX;
        }
        if best[v] != 0 {
            return best[v];
        }
        stack.push(v);
        let mut longest = 1usize;
        for t in &g[v].1 {
            if let Some(u) = idx(t) {
                let l = dfs(u, g, idx, stack, cycles, best);
                longest = if l == usize::MAX {
                    usize::MAX
                } else {
                    longest.max(l.saturating_add(1))
                };
                if longest == usize::MAX {
                    break;
                }
            }
        }
        stack.pop();
        if longest != usize::MAX {
            best[v] = longest;
        }
        longest
    }
    let mut best = vec![0usize; g.len()];
    for v in 0..g.len() {
        let l = dfs(v, &g, &idx, &mut vec![], &mut seen_cycles, &mut best);
        // The first program plus MAX_TAIL_CALL_CNT tail calls run; more are not reached.
        if l != usize::MAX && l > MAX_TAIL_CALL_CNT + 1 {
            out.push(TailCallLint {
                kind: "chain-too-long",
                programs: vec![g[v].0.clone()],
                message: format!(
                    "a tail-call chain starting at `{}` runs {} programs; the kernel stops after {} tail calls ({} programs)",
                    g[v].0,
                    l,
                    MAX_TAIL_CALL_CNT,
                    MAX_TAIL_CALL_CNT + 1
                ),
            });
        }
    }
    for c in seen_cycles {
        out.push(TailCallLint {
            kind: "cycle",
            message: format!(
                "tail-call cycle {}: at run time it stops after {} tail calls",
                c.join(" -> "),
                MAX_TAIL_CALL_CNT
            ),
            programs: c,
        });
    }
    out
}
