//! Static checks before the abstract interpretation (the kernel's
//! `resolve_pseudo_ldimm64`, `check_subprogs`, `check_cfg`), plus the prune points
//! and a static register liveness used by state pruning.

use crate::Fail;
use bpfkit_isa::opcode::*;
use bpfkit_isa::RawInsn;

pub struct Cfg {
    /// Sorted entry slots of sub-programs (`[0]` is the main program).
    pub subprogs: Vec<usize>,
    pub prune_point: Vec<bool>,
    /// Registers live on entry to each instruction (bit i = r_i).
    pub live_in: Vec<u16>,
    /// Second slots of `lddw`.
    pub is_lddw_hi: Vec<bool>,
    /// Helper calls that run a synchronous callback (bpf_loop).
    pub calls_callback: Vec<bool>,
    /// Successors of each instruction (a sub-program call: the next instruction and
    /// the callee's entry); empty for `lddw` second slots and exits.
    pub succ: Vec<Vec<usize>>,
    /// The program takes the address of a sub-program (`lddw src=4`: callbacks).
    pub has_func_ptr: bool,
}

/// `bpf_opcode_in_insntable`: is `code` an opcode the kernel knows?
pub fn opcode_known(code: u8) -> bool {
    let class = class(code);
    match class {
        BPF_ALU | BPF_ALU64 => {
            let op = op(code);
            match op {
                BPF_ADD | BPF_SUB | BPF_MUL | BPF_DIV | BPF_OR | BPF_AND | BPF_LSH | BPF_RSH
                | BPF_MOD | BPF_XOR | BPF_MOV | BPF_ARSH => true,
                BPF_NEG => source(code) == BPF_K,
                BPF_END => class == BPF_ALU || source(code) == BPF_K,
                _ => false,
            }
        }
        BPF_JMP | BPF_JMP32 => {
            let op = op(code);
            match op {
                BPF_JA => source(code) == BPF_K,
                // `INSN_2(JMP, CALL)` only: no `callx` (BPF_X) in 6.18
                BPF_CALL => class == BPF_JMP && source(code) == BPF_K,
                BPF_EXIT => class == BPF_JMP && source(code) == BPF_K,
                BPF_JCOND => class == BPF_JMP && source(code) == BPF_K, // may_goto (6.9)
                BPF_JEQ | BPF_JGT | BPF_JGE | BPF_JSET | BPF_JNE | BPF_JSGT | BPF_JSGE
                | BPF_JLT | BPF_JLE | BPF_JSLT | BPF_JSLE => true,
                _ => false,
            }
        }
        BPF_LD => code == LDDW || matches!(mode(code), BPF_ABS | BPF_IND) && size(code) != BPF_DW,
        BPF_LDX => {
            matches!(mode(code), BPF_MEM) || (mode(code) == BPF_MEMSX && size(code) != BPF_DW)
        }
        BPF_ST => mode(code) == BPF_MEM,
        BPF_STX => {
            mode(code) == BPF_MEM
                // B and H too since 6.15 (load-acquire and store-release)
                || mode(code) == BPF_ATOMIC
        }
        _ => false,
    }
}

fn is_pseudo_call(i: &RawInsn) -> bool {
    i.code == BPF_JMP | BPF_CALL && i.src == BPF_PSEUDO_CALL
}

/// Jump offset of a jump instruction (JMP32|JA keeps it in `imm`).
pub fn jump_off(i: &RawInsn) -> i64 {
    if i.code == BPF_JMP32 | BPF_JA {
        i.imm as i64
    } else {
        i.off as i64
    }
}

pub(crate) fn analyze(insns: &[RawInsn]) -> Result<Cfg, Fail> {
    let n = insns.len();
    if n == 0 {
        return Err(Fail::reject(0, "program has no instructions".into()));
    }
    // check_subprogs
    let mut subprogs = vec![0usize];
    for (i, insn) in insns.iter().enumerate() {
        let target = if is_pseudo_call(insn) || (insn.code == LDDW && insn.src == BPF_PSEUDO_FUNC) {
            Some(i as i64 + insn.imm as i64 + 1)
        } else {
            None
        };
        if let Some(t) = target {
            if t < 0 || t >= n as i64 {
                return Err(Fail::reject(
                    i,
                    format!("jump out of range from insn {} to {}", i, t),
                ));
            }
            if !subprogs.contains(&(t as usize)) {
                subprogs.push(t as usize);
            }
        }
    }
    subprogs.sort_unstable();
    for (k, &start) in subprogs.iter().enumerate() {
        let end = subprogs.get(k + 1).copied().unwrap_or(n);
        for (i, insn) in insns.iter().enumerate().take(end).skip(start) {
            let c = class(insn.code);
            if c != BPF_JMP && c != BPF_JMP32 {
                continue;
            }
            let o = op(insn.code);
            if o == BPF_EXIT || o == BPF_CALL {
                continue;
            }
            let t = i as i64 + jump_off(insn) + 1;
            if t < start as i64 || t >= end as i64 {
                return Err(Fail::reject(
                    i,
                    format!("jump out of range from insn {} to {}", i, t),
                ));
            }
        }
        let last = &insns[end - 1];
        let lc = class(last.code);
        let ok = (lc == BPF_JMP || lc == BPF_JMP32) && matches!(op(last.code), BPF_EXIT | BPF_JA);
        if !ok {
            return Err(Fail::reject(
                end - 1,
                "last insn is not an exit or jmp".into(),
            ));
        }
    }
    let mut is_lddw_hi = vec![false; n];
    // resolve_pseudo_ldimm64: opcodes and lddw pairs.
    let mut i = 0;
    while i < n {
        let insn = &insns[i];
        // resolve_pseudo_ldimm64 checks every LDX first, reachable or not
        if class(insn.code) == BPF_LDX
            && (!matches!(mode(insn.code), BPF_MEM | BPF_MEMSX) || insn.imm != 0)
        {
            return Err(Fail::reject(i, "BPF_LDX uses reserved fields".into()));
        }
        if !opcode_known(insn.code) {
            return Err(Fail::reject(i, format!("unknown opcode {:02x}", insn.code)));
        }
        if insn.code == LDDW {
            if i + 1 >= n
                || insns[i + 1].code != 0
                || insns[i + 1].dst != 0
                || insns[i + 1].src != 0
                || insns[i + 1].off != 0
            {
                return Err(Fail::reject(i, "invalid bpf_ld_imm64 insn".into()));
            }
            if insn.src == 0 {
                // plain 64-bit constant
            } else if matches!(insn.src, BPF_PSEUDO_MAP_FD | BPF_PSEUDO_MAP_IDX)
                && insns[i + 1].imm != 0
            {
                // a map pointer has no offset (the kernel's `insn[1].imm == 0` rule)
                return Err(Fail::reject(i, "unrecognized bpf_ld_imm64 insn".into()));
            } else if matches!(insn.src, BPF_PSEUDO_MAP_FD | BPF_PSEUDO_MAP_VALUE) {
                // A linked program names maps by index (src 5/6); a raw file descriptor
                // is never relocated, so the kernel would resolve whatever the loading
                // process has open at that number: never a map of this object.
                return Err(Fail::reject(
                    i,
                    format!("fd {} is not pointing to valid bpf_map", insn.imm),
                ));
            } else if matches!(
                insn.src,
                BPF_PSEUDO_MAP_FD
                    | BPF_PSEUDO_MAP_VALUE
                    | BPF_PSEUDO_MAP_IDX
                    | BPF_PSEUDO_MAP_IDX_VALUE
                    | BPF_PSEUDO_FUNC
                    | BPF_PSEUDO_BTF_ID
            ) {
            } else {
                return Err(Fail::reject(i, "unrecognized bpf_ld_imm64 insn".into()));
            }
            is_lddw_hi[i + 1] = true;
            i += 2;
            continue;
        }
        i += 1;
    }
    // check_cfg: reachability (calls are followed into callees and fall through).
    let mut prune_point = vec![false; n];
    let succ = |i: usize| -> Vec<usize> {
        let insn = &insns[i];
        let c = class(insn.code);
        if insn.code == LDDW {
            return vec![i + 2];
        }
        if c == BPF_JMP || c == BPF_JMP32 {
            match op(insn.code) {
                BPF_EXIT => vec![],
                BPF_CALL => {
                    let mut v = vec![i + 1];
                    if is_pseudo_call(insn) {
                        v.push((i as i64 + insn.imm as i64 + 1) as usize);
                    }
                    v
                }
                BPF_JA => vec![(i as i64 + jump_off(insn) + 1) as usize],
                _ => vec![i + 1, (i as i64 + insn.off as i64 + 1) as usize],
            }
        } else {
            vec![i + 1]
        }
    };
    let mut seen = vec![false; n];
    // from the main program; callbacks are reached through their `lddw` below
    let mut work = vec![0usize];
    while let Some(i) = work.pop() {
        if seen[i] {
            continue;
        }
        seen[i] = true;
        let insn = &insns[i];
        if insn.code == LDDW && insn.src == BPF_PSEUDO_FUNC {
            work.push((i as i64 + insn.imm as i64 + 1) as usize);
        }
        for t in succ(i) {
            if t >= n {
                return Err(Fail::reject(
                    i,
                    format!("jump out of range from insn {} to {}", i, t),
                ));
            }
            if is_lddw_hi[t] {
                return Err(Fail::reject(
                    i,
                    format!("jump into the middle of ldimm64 insn {}", t - 1),
                ));
            }
            work.push(t);
        }
        let c = class(insn.code);
        if (c == BPF_JMP || c == BPF_JMP32) && insn.code != LDDW {
            match op(insn.code) {
                BPF_EXIT => {}
                BPF_CALL => {
                    if i + 1 < n {
                        prune_point[i + 1] = true;
                    }
                    if is_pseudo_call(insn) {
                        prune_point[i] = true;
                        let t = (i as i64 + insn.imm as i64 + 1) as usize;
                        if t < n {
                            prune_point[t] = true;
                        }
                    }
                }
                BPF_JA => {
                    let t = (i as i64 + jump_off(insn) + 1) as usize;
                    if t < n {
                        prune_point[t] = true;
                    }
                }
                _ => {
                    // the conditional jump and its branch target (push_insn BRANCH)
                    prune_point[i] = true;
                    let t = (i as i64 + insn.off as i64 + 1) as usize;
                    if t < n {
                        prune_point[t] = true;
                    }
                }
            }
        }
    }
    for i in 0..n {
        if !seen[i] && !is_lddw_hi[i] {
            return Err(Fail::reject(i, format!("unreachable insn {}", i)));
        }
    }
    let live_in = liveness(insns, &is_lddw_hi, &succ);
    let calls_callback: Vec<bool> = insns
        .iter()
        .enumerate()
        .map(|(i, x)| {
            !is_lddw_hi[i]
                && x.code == BPF_JMP | BPF_CALL
                && x.src == 0
                && matches!(x.imm, 164 | 180 | 181 | 209)
        })
        .collect();
    for (i, &c) in calls_callback.iter().enumerate() {
        if c {
            prune_point[i] = true;
        }
    }
    let succs: Vec<Vec<usize>> = (0..n)
        .map(|i| {
            if is_lddw_hi[i] {
                vec![]
            } else {
                succ(i).into_iter().filter(|&t| t < n).collect()
            }
        })
        .collect();
    let has_func_ptr = insns
        .iter()
        .enumerate()
        .any(|(i, x)| !is_lddw_hi[i] && x.code == LDDW && x.src == BPF_PSEUDO_FUNC);
    Ok(Cfg {
        subprogs,
        prune_point,
        live_in,
        is_lddw_hi,
        calls_callback,
        succ: succs,
        has_func_ptr,
    })
}

/// Registers read and written by one instruction (bit masks).
fn use_def(i: &RawInsn) -> (u16, u16) {
    let b = |r: u8| 1u16 << (r & 0x0f);
    let c = class(i.code);
    match c {
        BPF_ALU | BPF_ALU64 => {
            let o = op(i.code);
            if o == BPF_MOV {
                let u = if source(i.code) == BPF_X { b(i.src) } else { 0 };
                (u, b(i.dst))
            } else {
                let mut u = b(i.dst);
                if source(i.code) == BPF_X && o != BPF_NEG && o != BPF_END {
                    u |= b(i.src);
                }
                (u, b(i.dst))
            }
        }
        BPF_LDX => (b(i.src), b(i.dst)),
        BPF_ST => (b(i.dst), 0),
        BPF_STX => {
            let mut d = 0;
            if mode(i.code) == BPF_ATOMIC {
                // compute_live_registers: a load-acquire reads only its address
                // register and writes dst; a store-release is a plain store
                if i.imm == BPF_LOAD_ACQ {
                    return (b(i.src), b(i.dst));
                }
                if i.imm == BPF_CMPXCHG {
                    return (b(i.dst) | b(i.src) | 1, 1);
                }
                if i.imm & BPF_FETCH != 0 {
                    d = b(i.src);
                }
            }
            (b(i.dst) | b(i.src), d)
        }
        BPF_LD => {
            if i.code == LDDW {
                (0, b(i.dst))
            } else {
                // LD_ABS/IND: implicit r6, clobbers r0-r5
                let u = 1 << 6 | if mode(i.code) == BPF_IND { b(i.src) } else { 0 };
                (u, 0x3f)
            }
        }
        BPF_JMP | BPF_JMP32 => match op(i.code) {
            BPF_CALL => {
                // `compute_live_registers` / `get_call_summary`: a helper reads only
                // its declared parameters; sub-program and unknown calls read r1-r5.
                let params = if i.src == 0 {
                    crate::helpers::proto(i.imm).map(|p| {
                        p.args
                            .iter()
                            .take_while(|a| **a != crate::helpers::Arg::DontCare)
                            .count()
                    })
                } else {
                    None
                };
                match params {
                    Some(n) => (((1u16 << (n + 1)) - 1) & !1, 0x3f),
                    None => (0x3e, 0x3f),
                }
            }
            BPF_EXIT => (1, 0),
            // may_goto reads no register (`compute_insn_live_regs`)
            BPF_JA | BPF_JCOND => (0, 0),
            _ => {
                let mut u = b(i.dst);
                if source(i.code) == BPF_X {
                    u |= b(i.src);
                }
                (u, 0)
            }
        },
        _ => (0, 0),
    }
}

fn liveness(insns: &[RawInsn], hi: &[bool], succ: &dyn Fn(usize) -> Vec<usize>) -> Vec<u16> {
    let n = insns.len();
    let mut live = vec![0u16; n];
    let ud: Vec<(u16, u16)> = insns.iter().map(use_def).collect();
    let mut changed = true;
    while changed {
        changed = false;
        for i in (0..n).rev() {
            if hi[i] {
                continue;
            }
            let insn = &insns[i];
            let mut out = 0u16;
            let is_call = insn.code == BPF_JMP | BPF_CALL;
            for t in succ(i) {
                if t >= n {
                    continue;
                }
                if is_call && is_pseudo_call(insn) && t != i + 1 {
                    // callee entry: arguments r1-r5 flow in
                    out |= live[t] & 0x3e;
                } else {
                    out |= live[t];
                }
            }
            let (u, d) = ud[i];
            let v = (out & !d) | u | (1 << 10);
            if v != live[i] {
                live[i] = v;
                changed = true;
            }
        }
    }
    live
}
