//! The tail-call graph of an object: which program may tail-call which, from the
//! tail-call sites found during verification and the PROG_ARRAY contents of the object
//! (`.values` initialisers, [`MapInit::Programs`]). Reports cycles and chains longer
//! than the runtime limit of 33 programs (32 tail calls, `MAX_TAIL_CALL_CNT`).

use crate::Report;
use bpfkit_object::model::{LinkedObject, MapInit};
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

/// Edges program -> programs it may tail-call.
pub fn graph(obj: &LinkedObject, reports: &[Report]) -> Vec<(String, Vec<String>)> {
    let mut g = vec![];
    for rep in reports {
        let mut targets: Vec<String> = vec![];
        for &(m, slot) in &rep.stats.tail_calls {
            if let Some(MapInit::Programs(entries)) = obj.maps.get(m).map(|d| &d.init) {
                for (s, name) in entries {
                    if slot.is_none_or(|k| k == *s as u64) && !targets.contains(name) {
                        targets.push(name.clone());
                    }
                }
            }
        }
        g.push((rep.program.clone(), targets));
    }
    g
}

/// Cycles and over-long chains in the tail-call graph.
pub fn lints(obj: &LinkedObject, reports: &[Report]) -> Vec<TailCallLint> {
    let g = graph(obj, reports);
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
        if l != usize::MAX && l > MAX_TAIL_CALL_CNT {
            out.push(TailCallLint {
                kind: "chain-too-long",
                programs: vec![g[v].0.clone()],
                message: format!(
                    "a tail-call chain starting at `{}` runs {} programs; the kernel stops after {} tail calls",
                    g[v].0,
                    l,
                    MAX_TAIL_CALL_CNT - 1
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
                MAX_TAIL_CALL_CNT - 1
            ),
            programs: c,
        });
    }
    out
}
