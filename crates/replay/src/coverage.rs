//! Source coverage from the interpreter's instruction counts: lcov tracefiles (line,
//! function and branch records) from the object's `.BTF.ext` line info, and a summary.
//!
//! Every linked program carries its own copy of the sub-programs it calls, so a source
//! line may stand for instructions in several programs; its count is the sum over them.
//! A line's count is the largest count among its instructions (the line was reached that
//! many times). Each conditional jump gives one lcov branch block with two branches:
//! 0 = taken, 1 = fell through.

use bpfkit_isa::opcode;
use bpfkit_object::model::LinkedObject;
use bpfkit_vm::runtime::Coverage;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Percentages printed by `--coverage-summary`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CoverageSummary {
    /// Instructions (lddw counts once) of the programs considered, and how many ran.
    pub insns: u64,
    pub insns_hit: u64,
    /// Distinct source lines with instructions, and how many ran.
    pub lines: u64,
    pub lines_hit: u64,
    /// Branch outcomes (two per conditional jump), and how many happened.
    pub branches: u64,
    pub branches_hit: u64,
}

fn pct(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 * 100.0 / b as f64
    }
}

impl CoverageSummary {
    pub fn insn_pct(&self) -> f64 {
        pct(self.insns_hit, self.insns)
    }
    pub fn line_pct(&self) -> f64 {
        pct(self.lines_hit, self.lines)
    }
    pub fn branch_pct(&self) -> f64 {
        pct(self.branches_hit, self.branches)
    }
}

fn is_cond_jump(code: u8) -> bool {
    let class = code & 0x07;
    let op = code & 0xf0;
    (class == opcode::BPF_JMP || class == opcode::BPF_JMP32) && !matches!(op, 0x00 | 0x80 | 0x90)
    // JA, CALL, EXIT
}

fn get(v: &[Vec<u64>], prog: usize, pc: usize) -> u64 {
    v.get(prog).and_then(|p| p.get(pc)).copied().unwrap_or(0)
}

/// The instruction slots (start of each instruction) of program `p`.
fn insn_starts(obj: &LinkedObject, p: usize) -> Vec<usize> {
    let insns = &obj.programs[p].insns;
    let mut out = Vec::with_capacity(insns.len());
    let mut i = 0;
    while i < insns.len() {
        out.push(i);
        i += if insns[i].is_lddw() { 2 } else { 1 };
    }
    out
}

/// Programs to report: `entry`, plus every program that ran (tail-call targets).
pub fn programs_of_interest(cov: &Coverage, entry: usize, nprogs: usize) -> Vec<usize> {
    (0..nprogs)
        .filter(|&p| p == entry || cov.hits.get(p).is_some_and(|h| h.iter().any(|&c| c > 0)))
        .collect()
}

#[derive(Default)]
struct LineAcc {
    count: u64,
    /// (block id, taken, not taken, line reached)
    branches: Vec<(usize, u64, u64, bool)>,
}

/// Builds the summary and the lcov text for `programs`.
/// `resolve` turns a file name of the line info into the path written to `SF:`.
pub fn report(
    obj: &LinkedObject,
    cov: &Coverage,
    programs: &[usize],
    resolve: &dyn Fn(&str) -> String,
) -> (CoverageSummary, String) {
    let mut s = CoverageSummary::default();
    // file -> line -> acc
    let mut files: BTreeMap<String, BTreeMap<u32, LineAcc>> = BTreeMap::new();
    // file -> function -> (first line, count)
    let mut funcs: BTreeMap<String, BTreeMap<String, (u32, u64)>> = BTreeMap::new();
    let mut block = 0usize;
    for &p in programs {
        let prog = &obj.programs[p];
        let mut func_entry_seen: BTreeMap<&str, ()> = BTreeMap::new();
        for pc in insn_starts(obj, p) {
            let hits = get(&cov.hits, p, pc);
            s.insns += 1;
            if hits > 0 {
                s.insns_hit += 1;
            }
            let insn = prog.insns[pc];
            let cond = is_cond_jump(insn.code);
            let (taken, not_taken) = (get(&cov.taken, p, pc), get(&cov.not_taken, p, pc));
            if cond {
                s.branches += 2;
                s.branches_hit += (taken > 0) as u64 + (not_taken > 0) as u64;
            }
            let Some(origin) = prog.origins.get(pc) else {
                continue;
            };
            // A function's entry count: the count of its first instruction.
            if func_entry_seen
                .insert(origin.function.as_str(), ())
                .is_none()
            {
                if let Some(l) = &origin.line {
                    let e = funcs
                        .entry(l.file.clone())
                        .or_default()
                        .entry(origin.function.clone())
                        .or_insert((l.line, 0));
                    e.1 += hits;
                    e.0 = e.0.min(l.line);
                }
            }
            let Some(l) = &origin.line else { continue };
            let acc = files
                .entry(l.file.clone())
                .or_default()
                .entry(l.line)
                .or_default();
            acc.count = acc.count.max(hits);
            if cond {
                acc.branches.push((block, taken, not_taken, hits > 0));
                block += 1;
            }
        }
    }
    // Lines hit in one program copy and not in another: sum of per-program maxima would
    // need per-program grouping; the max above is per (file, line) over all copies, which
    // keeps "reached or not" exact.
    let mut out = String::new();
    out.push_str("TN:bpfkit_replay\n");
    for (file, lines) in &files {
        let _ = writeln!(out, "SF:{}", resolve(file));
        let fns = funcs.get(file);
        if let Some(fns) = fns {
            for (name, (line, _)) in fns {
                let _ = writeln!(out, "FN:{line},{name}");
            }
            for (name, (_, count)) in fns {
                let _ = writeln!(out, "FNDA:{count},{name}");
            }
            let _ = writeln!(out, "FNF:{}", fns.len());
            let _ = writeln!(out, "FNH:{}", fns.values().filter(|f| f.1 > 0).count());
        }
        let (mut brf, mut brh) = (0, 0);
        for (line, acc) in lines {
            for (b, t, nt, reached) in &acc.branches {
                for (i, c) in [(0, *t), (1, *nt)] {
                    brf += 1;
                    if c > 0 {
                        brh += 1;
                    }
                    if *reached {
                        let _ = writeln!(out, "BRDA:{line},{b},{i},{c}");
                    } else {
                        let _ = writeln!(out, "BRDA:{line},{b},{i},-");
                    }
                }
            }
        }
        if brf > 0 {
            let _ = writeln!(out, "BRF:{brf}");
            let _ = writeln!(out, "BRH:{brh}");
        }
        let mut lh = 0;
        for (line, acc) in lines {
            let _ = writeln!(out, "DA:{line},{}", acc.count);
            if acc.count > 0 {
                lh += 1;
            }
        }
        let _ = writeln!(out, "LF:{}", lines.len());
        let _ = writeln!(out, "LH:{lh}");
        out.push_str("end_of_record\n");
        s.lines += lines.len() as u64;
        s.lines_hit += lh;
    }
    (s, out)
}
