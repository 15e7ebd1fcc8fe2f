//! The abstract interpreter (`do_check` and what it calls in kernel/bpf/verifier.c).

use crate::bounds::{self, Bounds};
use crate::cfg::{self, Cfg};
use crate::helpers::{self, Arg, Ret};
use crate::state::*;
use crate::tnum::Tnum;
use crate::{Fail, Options, RegDump, Rejection, Stats, Verdict};
use bpfkit_isa::opcode::*;
use bpfkit_isa::RawInsn;
use bpfkit_object::model::{map_type as mt, prog_type, LinkedProgram, MapDef, MapInit};
use std::collections::HashMap;

mod dynptr;
mod ext;
mod fastcall;
mod global;
mod kfunc;
mod precision;
mod spectre;

const BPF_MAX_VAR_OFF: i64 = 1 << 29;
const BPF_MAX_VAR_SIZ: u64 = 1 << 29;
const MAX_PACKET_OFF: u64 = 0xffff;
const BPF_F_RDONLY_PROG: u32 = 1 << 7;
const BPF_F_WRONLY_PROG: u32 = 1 << 8;
/// `sizeof(struct xdp_md)`.
const XDP_MD_SIZE: i32 = 24;
/// `BPF_XDP_DEVMAP` in `enum bpf_attach_type`.
const BPF_XDP_DEVMAP: u32 = 33;

struct Explored {
    state: State,
    branches: u32,
    miss: u32,
    hit: u32,
}

type R<T> = Result<T, Fail>;

struct V<'a> {
    insns: &'a [RawInsn],
    /// The object's maps, then inner-map templates of map-in-map maps.
    maps: Vec<MapDef>,
    /// For a map-in-map at index i, the index of its inner template.
    inner_of: Vec<Option<usize>>,
    prog: &'a LinkedProgram,
    opts: &'a Options,
    cfg: Cfg,
    arena: Vec<Explored>,
    /// Per instruction: indices into `arena`.
    explored: Vec<Vec<usize>>,
    /// Pending branches: (state, insn to resume at).
    pending: Vec<(State, usize)>,
    id_gen: u32,
    processed: u64,
    jmps_processed: u64,
    prev_jmps: u64,
    prev_insns: u64,
    /// Per sub-program max stack depth.
    stack_depth: Vec<i32>,
    /// `bpf_fastcall` patterns and their stack contract (check/fastcall.rs).
    fastcall: fastcall::Fastcall,
    max_states_per_insn: u64,
    /// Tail-call sites seen: (prog-array map index, constant slot if known).
    tail_calls: Vec<(usize, Option<u64>)>,
    /// Source register of the store being checked (for scalar spill ids).
    value_reg: Option<u8>,
    /// `insn_aux_data[].ptr_type`: the pointer type each load/store went through, on any
    /// path (`save_aux_ptr_type`).
    aux_ptr_type: HashMap<usize, RegType>,
    idx: usize,
    /// States currently kept in `explored` lists, and the maximum of that.
    cur_states: u64,
    peak_states: u64,
    /// Jumps since this path's last checkpoint.
    path_jumps: u32,
    allow_ptr_leaks: bool,
    /// Per instruction: the Spectre v1 masking state recorded by pointer arithmetic
    /// (`insn_aux_data` `alu_state`, `alu_limit`; see `check/spectre.rs`).
    alu_aux: Vec<(u32, u32)>,
    /// `env->explore_alu_limits`: scalars compare exactly when pruning.
    explore_alu_limits: bool,
    /// Per instruction: a speculative path failed there (`insn_aux_data.nospec`): the
    /// kernel puts a barrier before it, and sanitizes no ALU there any more.
    nospec: Vec<bool>,
    /// Per instruction: a stack store the kernel follows with a barrier against
    /// Spectre v4 (`insn_aux_data.nospec_result`); a speculative path ends after it.
    nospec_result: Vec<bool>,
    /// Stack liveness of the main frame (6.18's `liveness.c`, simplified): per
    /// instruction, the frame-0 stack slots (bit = spi) some explored execution of it
    /// read; `stack_live` is the backward closure over the CFG (a slot is live at an
    /// instruction when some path from it may read the slot). Only used where it is
    /// sound without per-callchain bookkeeping: single-frame states, no callbacks, root.
    stack_reads: Vec<u64>,
    /// Per instruction: the frame-0 slots every explored execution of it wrote whole
    /// (8 aligned bytes: `must_write`, the intersection over executions; None: not
    /// executed yet). A slot written there is not live before it unless read there.
    stack_must_write: Vec<Option<u64>>,
    /// Whole frame-0 slots the instruction being checked wrote so far.
    write_acc: u64,
    stack_live: Vec<u64>,
    stack_live_dirty: bool,
    use_stack_liveness: bool,
    /// `live_stack` of the instruction being checked in `is_state_visited`.
    cur_stack_live: u64,
    /// Global sub-programs (BTF linkage global, not the entry) by first instruction,
    /// when `opts.funcs` describes this program.
    globals: HashMap<usize, crate::btf_funcs::GlobalFunc>,
    /// Global sub-programs some verified path called (`subprog_aux->called`), and the
    /// ones already verified on their own.
    globals_called: Vec<usize>,
    globals_verified: Vec<usize>,
    /// Per sub-program: it or something it calls changes packet data.
    changes_pkt: Vec<bool>,
    /// The global function being verified on its own (its first instruction).
    cur_global: Option<usize>,
    /// Registers linked at conditional jumps, for precision (`Hist::linked`).
    linked_sets: Vec<Vec<precision::LinkedReg>>,
}

pub(crate) fn kfunc_models() -> Vec<crate::KfuncModel> {
    kfunc::models()
}

pub fn run(prog: &LinkedProgram, maps: &[MapDef], opts: &Options) -> (Verdict, Stats) {
    let mut stats = Stats::default();
    if prog.prog_type == prog_type::XDP {
        if let Some(f) = spectre::caps_load_refusal(opts) {
            return (to_verdict(f), stats);
        }
    }
    if let Some(t) = opts.target.as_deref() {
        if let Some(f) = crate::target::map_refusal(t, maps) {
            return (to_verdict(f), stats);
        }
        if let Err(f) = crate::target::check_attach_type(t, prog.expected_attach_type)
            .and_then(|_| crate::target::check_insns(t, &prog.insns))
        {
            return (to_verdict(f), stats);
        }
    }
    let cfg = match cfg::analyze(&prog.insns) {
        Ok(c) => c,
        Err(f) => return (to_verdict(f), stats),
    };
    if let Some(t) = opts.target.as_deref() {
        if let Err(f) = crate::target::check_loops(t, &prog.insns, &cfg.succ) {
            return (to_verdict(f), stats);
        }
    }
    if prog.prog_type != prog_type::XDP {
        return (
            Verdict::Unsupported {
                insn: 0,
                what: format!(
                    "program type {} (only XDP is modelled so far)",
                    prog.prog_type
                ),
            },
            stats,
        );
    }
    let n = prog.insns.len();
    let nsub = cfg.subprogs.len();
    let mut all = maps.to_vec();
    let mut inner_of = vec![None; maps.len()];
    for (i, m) in maps.iter().enumerate() {
        if let Some(inner) = &m.inner {
            all.push((**inner).clone());
            inner_of[i] = Some(all.len() - 1);
        }
    }
    // dev_map_alloc sets BPF_F_RDONLY_PROG itself: programs never write devmap values
    for m in all.iter_mut() {
        if matches!(m.map_type, mt::DEVMAP | mt::DEVMAP_HASH) {
            m.map_flags |= BPF_F_RDONLY_PROG;
        }
    }
    let fastcall = fastcall::Fastcall::mark(&prog.insns, &cfg);
    let mut v = V {
        insns: &prog.insns,
        maps: all,
        inner_of,
        prog,
        opts,
        cfg,
        arena: vec![],
        explored: vec![vec![]; n],
        pending: vec![],
        id_gen: 0,
        processed: 0,
        jmps_processed: 0,
        prev_jmps: 0,
        prev_insns: 0,
        stack_depth: vec![0; nsub],
        fastcall,
        max_states_per_insn: 0,
        value_reg: None,
        aux_ptr_type: HashMap::new(),
        tail_calls: vec![],
        idx: 0,
        cur_states: 0,
        peak_states: 0,
        path_jumps: 0,
        allow_ptr_leaks: opts.caps.allow_ptr_leaks(),
        alu_aux: vec![(0, 0); n],
        explore_alu_limits: false,
        nospec: vec![false; n],
        nospec_result: vec![false; n],
        stack_reads: vec![0; n],
        stack_must_write: vec![None; n],
        write_acc: 0,
        stack_live: vec![0; n],
        stack_live_dirty: false,
        use_stack_liveness: false,
        cur_stack_live: u64::MAX,
        globals: HashMap::new(),
        globals_called: vec![],
        globals_verified: vec![],
        changes_pkt: vec![],
        cur_global: None,
        linked_sets: Vec::new(),
    };
    if let Some(funcs) = &opts.funcs {
        v.globals = funcs
            .globals(&prog.name, &v.cfg.subprogs)
            .unwrap_or_default();
    }
    v.changes_pkt = v.subprogs_changing_pkt();
    v.use_stack_liveness = opts.caps.allow_ptr_leaks()
        && opts.caps.allow_uninit_stack()
        && !v.cfg.has_func_ptr
        && !v.cfg.calls_callback.iter().any(|&c| c);
    let early = opts
        .funcs
        .as_ref()
        .and_then(|f| f.check_returns(&prog.name, &v.cfg.subprogs, &prog.insns))
        .map(|(at, m)| Fail::reject(at, m));
    let res = match early {
        Some(f) => Err(f),
        None => Ok(()),
    }
    .and_then(|_| v.do_check(None))
    .and_then(|_| v.check_globals())
    .and_then(|_| v.check_max_stack_depth());
    stats.processed_insns = v.processed;
    stats.total_states = v.arena.len() as u64;
    stats.peak_states = v.peak_states;
    stats.max_states_per_insn = v.max_states_per_insn;
    stats.stack_depth = v.stack_depth.iter().map(|&d| d as u32).collect();
    stats.tail_calls = v.tail_calls.clone();
    match res {
        Ok(()) => (Verdict::Accepted, stats),
        Err(f) => (to_verdict(f), stats),
    }
}

fn to_verdict(f: Fail) -> Verdict {
    match f {
        Fail::Reject(r) => Verdict::Rejected(r),
        Fail::Unsupported { insn, what } => Verdict::Unsupported { insn, what },
    }
}

enum Flow {
    Next(usize),
    /// The path ended (exit of the main program, or pruned).
    End,
}

fn round_up(x: i32, a: i32) -> i32 {
    (x + a - 1) / a * a
}

impl<'a> V<'a> {
    // ---------------------------------------------------------------- errors
    fn err(&self, st: &State, msg: String) -> Fail {
        self.err_regs(st, msg, &[])
    }
    fn err_regs(&self, st: &State, msg: String, regs: &[u8]) -> Fail {
        let fr = st.cur();
        let dumps = regs
            .iter()
            .filter(|&&r| (r as usize) < 11)
            .map(|&r| RegDump {
                reg: r,
                state: fr.regs[r as usize].describe(&self.maps),
            })
            .collect();
        Fail::Reject(Rejection {
            insn: self.idx,
            kernel_message: msg,
            hint: None,
            regs: dumps,
            path: st.path.clone(),
        })
    }
    fn hint(mut f: Fail, h: String) -> Fail {
        if let Fail::Reject(r) = &mut f {
            r.hint = Some(h);
        }
        f
    }
    fn unsupported(&self, what: impl Into<String>) -> Fail {
        Fail::Unsupported {
            insn: self.idx,
            what: what.into(),
        }
    }

    fn new_id(&mut self) -> u32 {
        self.id_gen += 1;
        self.id_gen
    }

    // ---------------------------------------------------------------- main loop
    fn initial_state(&self) -> State {
        let mut f = Frame::new(0, 0, 0);
        f.regs[1] = Reg::ptr(RegType::Ctx);
        State::entry(f)
    }

    /// Verifies the program from its entry (`global` None) or the global function
    /// starting at `global`, on its own with BTF-typed arguments (`do_check_common`).
    fn do_check(&mut self, global: Option<usize>) -> R<()> {
        let (mut st, mut idx) = match global {
            None => (self.initial_state(), 0usize),
            Some(start) => (self.global_initial_state(start), start),
        };
        // The processed-instruction budget: ours, or the target's when smaller.
        let limit = self
            .opts
            .target
            .as_deref()
            .map_or(self.opts.insn_limit, |t| {
                self.opts.insn_limit.min(t.limits.complexity_insns)
            });
        loop {
            self.idx = idx;
            self.processed += 1;
            if self.processed > limit {
                return Err(self.err(
                    &st,
                    format!(
                        "BPF program is too large. Processed {} insn",
                        self.processed
                    ),
                ));
            }
            if self.cfg.prune_point[idx] && self.is_state_visited(&mut st, idx)? {
                self.finish_path(&st);
                match self.pending.pop() {
                    Some((s, i)) => {
                        st = s;
                        idx = i;
                        self.path_jumps = 0;
                        continue;
                    }
                    None => return Ok(()),
                }
            }
            let insn = self.insns[idx];
            let c = insn.class();
            if c == BPF_JMP || c == BPF_JMP32 {
                self.jmps_processed += 1;
                self.path_jumps += 1;
            }
            self.write_acc = 0;
            // a speculative path stops at a barrier; an error on it only puts one there
            let flow = if st.speculative && self.nospec[idx] {
                Flow::End
            } else {
                match self.step(&mut st, idx) {
                    Ok(_) if st.speculative && self.nospec_result[idx] => Flow::End,
                    Ok(f) => f,
                    Err(f) if st.speculative && spectre::recoverable_with_nospec(&f) => {
                        self.nospec[idx] = true;
                        self.alu_aux[idx].0 = 0;
                        Flow::End
                    }
                    Err(f) => return Err(f),
                }
            };
            if self.use_stack_liveness {
                self.commit_stack_writes(idx);
            }
            match flow {
                Flow::Next(n) => idx = n,
                Flow::End => {
                    self.finish_path(&st);
                    match self.pending.pop() {
                        Some((s, i)) => {
                            st = s;
                            idx = i;
                            self.path_jumps = 0;
                        }
                        None => return Ok(()),
                    }
                }
            }
        }
    }

    /// `update_branch_counts`.
    fn finish_path(&mut self, st: &State) {
        let mut p = st.parent;
        while let Some(i) = p {
            let e = &mut self.arena[i];
            e.branches -= 1;
            if e.branches > 0 {
                break;
            }
            p = e.state.parent;
        }
    }

    fn push_branch(&mut self, st: &State, target: usize) -> R<()> {
        if let Some(p) = st.parent {
            self.arena[p].branches += 1;
        }
        self.pending.push((st.clone(), target));
        if self.pending.len() > crate::BPF_COMPLEXITY_LIMIT_JMP_SEQ {
            return Err(self.err(
                st,
                format!(
                    "The sequence of {} jumps is too complex.",
                    self.pending.len()
                ),
            ));
        }
        Ok(())
    }

    /// `is_state_visited`: Ok(true) when an equivalent explored state makes this path safe.
    fn is_state_visited(&mut self, st: &mut State, idx: usize) -> R<bool> {
        self.cur_stack_live = if self.use_stack_liveness && st.frames.len() == 1 {
            self.live_stack(idx)
        } else {
            u64::MAX
        };
        let may_goto = self.insns[idx].code == BPF_JMP | BPF_JCOND;
        // `is_force_checkpoint`: callback calls and may_goto (`mark_force_checkpoint`)
        let force = self.path_jumps > 40 || self.cfg.calls_callback[idx] || may_goto;
        let mut add = force
            || (self.jmps_processed - self.prev_jmps >= 2 && self.processed - self.prev_insns >= 8);
        // newest first, as the kernel keeps its list (new states at the head)
        let mut k = self.explored[idx].len();
        // The kernel's `max_states_per_insn` is the number of states it walked without
        // finding an equal one (`states_cnt`), counted before a new state is added: 0
        // while no instruction ever held two states.
        let walked = k as u64;
        while k > 0 {
            k -= 1;
            let ai = self.explored[idx][k];
            let e = &self.arena[ai];
            if e.branches > 0
                && may_goto
                && e.state.may_goto_depth != st.may_goto_depth
                && same_callsites(&e.state, st)
                && self.states_equal_mode(&e.state, st, idx, Mode::RangeWithin)
            {
                // a may_goto iteration within the range of an earlier one on this path:
                // the loop converged. The kernel then re-propagates the precision its
                // loop (SCC) finds later over this backedge; bpfkit makes every scalar
                // of the checkpoints of this iteration (newer than `ai`) precise instead
                // (sound, prunes less; `ai` and older keep widening their imprecise
                // scalars, so other visits of the loop still converge).
                self.arena[ai].hit += 1;
                self.propagate_precision(st, ai);
                self.all_precise_until(st.parent, ai);
                return Ok(true);
            } else if e.branches > 0 && self.cfg.calls_callback[idx] {
                // a callback iteration that brings nothing new: converged
                if same_callsites(&e.state, st)
                    && self.states_equal_mode(&e.state, st, idx, Mode::RangeWithin)
                {
                    self.arena[ai].hit += 1;
                    self.propagate_precision(st, ai);
                    return Ok(true);
                }
            } else if e.branches > 0 {
                // still being explored: only useful for loop detection
                if same_callsites(&e.state, st)
                    && e.state.cb_unroll == st.cb_unroll
                    && e.state.may_goto_depth == st.may_goto_depth
                    && self.states_equal(&e.state, st, idx, true)
                {
                    return Err(self.err(st, format!("infinite loop detected at insn {}", idx)));
                }
                if !force
                    && self.jmps_processed - self.prev_jmps < 20
                    && self.processed - self.prev_insns < 100
                {
                    add = false;
                }
            } else if self.states_equal(&e.state, st, idx, false) {
                self.arena[ai].hit += 1;
                self.propagate_precision(st, ai);
                return Ok(true);
            }
            // miss: evict states that keep missing (the kernel's heuristic). As in
            // the kernel, a miss only counts when a new state is going to be added,
            // so loop iterations do not evict the states of earlier iterations.
            let force_cp = self.cfg.calls_callback[idx];
            let e = &mut self.arena[ai];
            if add {
                e.miss += 1;
            }
            let n = if force_cp && e.branches > 0 { 64 } else { 3 };
            if e.miss > e.hit * n + n {
                self.explored[idx].remove(k);
                self.cur_states -= 1;
            }
        }
        self.max_states_per_insn = self.max_states_per_insn.max(walked);
        if !add {
            return Ok(false);
        }
        self.prev_jmps = self.jmps_processed;
        self.prev_insns = self.processed;
        self.path_jumps = 0;
        let mut copy = st.clone();
        copy.path = vec![];
        st.hist.clear();
        for fr in st.frames.iter_mut() {
            for r in fr.regs.iter_mut() {
                r.precise = false;
            }
            for s in fr.stack.iter_mut() {
                s.spilled.precise = false;
            }
        }
        self.arena.push(Explored {
            state: copy,
            branches: 1,
            miss: 0,
            hit: 0,
        });
        let ai = self.arena.len() - 1;
        self.explored[idx].push(ai);
        self.cur_states += 1;
        self.peak_states = self.peak_states.max(self.cur_states);
        st.parent = Some(ai);
        Ok(false)
    }

    // ---------------------------------------------------------------- equivalence
    fn states_equal(&self, old: &State, cur: &State, idx: usize, exact: bool) -> bool {
        self.states_equal_mode(
            old,
            cur,
            idx,
            if exact { Mode::Exact } else { Mode::NotExact },
        )
    }

    /// Registers of frame `fi` of `st` that are live when the top frame is at `idx`
    /// (a caller frame: live after its call returns).
    fn frame_live(&self, st: &State, fi: usize, idx: usize) -> u16 {
        if fi + 1 == st.frames.len() {
            self.cfg.live_in[idx]
        } else if st.frames[fi + 1].in_callback {
            // the callback returns to its call instruction, which reads r1-r5 again
            self.cfg
                .live_in
                .get(st.frames[fi + 1].callsite)
                .copied()
                .unwrap_or(0xffff)
        } else {
            let cs = st.frames[fi + 1].callsite;
            self.cfg.live_in.get(cs + 1).copied().unwrap_or(0xffff) & !1
        }
    }

    fn states_equal_mode(&self, old: &State, cur: &State, idx: usize, mode: Mode) -> bool {
        let exact = mode == Mode::Exact;
        if old.frames.len() != cur.frames.len() || (old.speculative && !cur.speculative) {
            return false;
        }
        let mut idmap: Vec<(u32, u32)> = vec![];
        for (fi, (fo, fc)) in old.frames.iter().zip(cur.frames.iter()).enumerate() {
            // func_states_equal: a state that simulated more callback iterations does
            // not cover one that simulated fewer
            if fo.callsite != fc.callsite || fo.callback_depth > fc.callback_depth {
                return false;
            }
            let live = self.frame_live(old, fi, idx);
            for r in 0..11 {
                if !exact && live & (1 << r) == 0 {
                    continue;
                }
                let ok = if mode == Mode::RangeWithin {
                    let mut o = fo.regs[r].clone();
                    o.precise = true;
                    regsafe(&o, &fc.regs[r], false, self.explore_alu_limits, &mut idmap)
                } else {
                    regsafe(
                        &fo.regs[r],
                        &fc.regs[r],
                        exact,
                        self.explore_alu_limits,
                        &mut idmap,
                    )
                };
                if !ok {
                    return false;
                }
            }
            let live_slots = if mode == Mode::NotExact && old.frames.len() == 1 {
                self.cur_stack_live
            } else {
                u64::MAX
            };
            if !self.stacksafe(fo, fc, exact, live_slots, &mut idmap) {
                return false;
            }
        }
        if old.refs.len() != cur.refs.len() {
            return false;
        }
        match (old.lock, cur.lock) {
            (None, None) => {}
            (Some((om, oid)), Some((cm, cid))) if om == cm => {
                if !check_ids(oid, cid, &mut idmap) {
                    return false;
                }
            }
            _ => return false,
        }
        for (a, b) in old.refs.iter().zip(cur.refs.iter()) {
            if !check_ids(a.id, b.id, &mut idmap) {
                return false;
            }
        }
        true
    }

    fn stacksafe(
        &self,
        old: &Frame,
        cur: &Frame,
        exact: bool,
        live_slots: u64,
        idmap: &mut Vec<(u32, u32)>,
    ) -> bool {
        let allow_uninit = self.opts.caps.allow_uninit_stack();
        for spi in 0..old.stack.len().max(cur.stack.len()) {
            if live_slots & (1u64 << spi) == 0 {
                // no path from here reads this slot (as clean_live_states leaves it)
                continue;
            }
            let so = old.slot(spi);
            let sc = cur.slot(spi);
            for i in 0..REG_SIZE {
                let (to, tc) = (so.ty[i], sc.ty[i]);
                if exact {
                    if to != tc {
                        return false;
                    }
                    continue;
                }
                if to == Slot::Invalid {
                    continue;
                }
                if allow_uninit && to == Slot::Misc {
                    continue;
                }
                if to == Slot::Misc && tc == Slot::Zero {
                    continue;
                }
                if to != tc {
                    return false;
                }
            }
            if so.is_spilled()
                && !regsafe(
                    &so.spilled,
                    &sc.spilled,
                    exact,
                    self.explore_alu_limits,
                    idmap,
                )
            {
                return false;
            }
            if so.ty[0] == Slot::Dynptr && !dynptr::slot_safe(so, sc, idmap) {
                return false;
            }
        }
        true
    }

    // ---------------------------------------------------------------- registers
    fn check_reg_read(&self, st: &State, r: u8) -> R<()> {
        if r > 10 {
            return Err(self.err(st, format!("R{} is invalid", r)));
        }
        if st.cur().regs[r as usize].ty == RegType::NotInit {
            return Err(self.err(st, format!("R{} !read_ok", r)));
        }
        Ok(())
    }
    fn check_reg_write(&self, st: &State, r: u8) -> R<()> {
        if r > 10 {
            return Err(self.err(st, format!("R{} is invalid", r)));
        }
        if r == 10 {
            return Err(self.err(st, "frame pointer is read only".into()));
        }
        Ok(())
    }
    fn is_pointer_value(&self, reg: &Reg) -> bool {
        !self.allow_ptr_leaks && reg.ty.is_pointer()
    }

    // ---------------------------------------------------------------- step
    fn step(&mut self, st: &mut State, idx: usize) -> R<Flow> {
        let insn = self.insns[idx];
        st.hist.push(Hist {
            insn: idx as u32,
            frame: st.curframe() as u8,
            slot: None,
            linked: 0,
        });
        match insn.class() {
            BPF_ALU | BPF_ALU64 => {
                self.check_alu(st, &insn)?;
                Ok(Flow::Next(idx + 1))
            }
            BPF_LDX => {
                self.check_ldx(st, &insn)?;
                Ok(Flow::Next(idx + 1))
            }
            BPF_STX => {
                if mode(insn.code) == BPF_ATOMIC {
                    self.check_atomic(st, &insn)?;
                } else {
                    if insn.imm != 0 {
                        return Err(self.err(st, "BPF_STX uses reserved fields".into()));
                    }
                    self.check_reg_read(st, insn.src)?;
                    self.check_reg_read(st, insn.dst)?;
                    let val = st.cur().regs[insn.src as usize].clone();
                    let dst_ty = st.cur().regs[insn.dst as usize].ty;
                    self.value_reg = Some(insn.src);
                    self.check_mem_access(
                        st,
                        insn.dst,
                        insn.off as i32,
                        size_bytes(insn.code),
                        true,
                        Some(val),
                        None,
                        false,
                    )?;
                    self.save_aux_ptr_type(st, dst_ty)?;
                }
                Ok(Flow::Next(idx + 1))
            }
            BPF_ST => {
                if insn.src != 0 {
                    return Err(self.err(st, "BPF_ST uses reserved fields".into()));
                }
                self.check_reg_read(st, insn.dst)?;
                let val = Reg::konst(insn.imm as i64 as u64);
                let dst_ty = st.cur().regs[insn.dst as usize].ty;
                self.check_mem_access(
                    st,
                    insn.dst,
                    insn.off as i32,
                    size_bytes(insn.code),
                    true,
                    Some(val),
                    Some(insn.imm),
                    false,
                )?;
                self.save_aux_ptr_type(st, dst_ty)?;
                Ok(Flow::Next(idx + 1))
            }
            BPF_LD => {
                if insn.code == LDDW {
                    self.check_ld_imm(st, idx)?;
                    Ok(Flow::Next(idx + 2))
                } else {
                    Err(self.err(
                        st,
                        "BPF_LD_[ABS|IND] instructions not allowed for this program type".into(),
                    ))
                }
            }
            BPF_JMP | BPF_JMP32 => self.check_jmp(st, idx, &insn),
            _ => Err(self.err(st, format!("unknown opcode {:02x}", insn.code))),
        }
    }

    fn check_ld_imm(&mut self, st: &mut State, idx: usize) -> R<()> {
        let insn = self.insns[idx];
        let hi = self.insns[idx + 1];
        if insn.off != 0 {
            return Err(self.err(st, "BPF_LD_IMM64 uses reserved fields".into()));
        }
        self.check_reg_write(st, insn.dst)?;
        let reg = match insn.src {
            0 => Reg::konst((insn.imm as u32 as u64) | ((hi.imm as u32 as u64) << 32)),
            BPF_PSEUDO_MAP_IDX | BPF_PSEUDO_MAP_FD => {
                let m = insn.imm as usize;
                if m >= self.maps.len() {
                    return Err(self.err(
                        st,
                        format!("fd {} is not pointing to valid bpf_map", insn.imm),
                    ));
                }
                let mut r = Reg::ptr(RegType::MapPtr);
                r.map = Some(m);
                r
            }
            BPF_PSEUDO_MAP_IDX_VALUE | BPF_PSEUDO_MAP_VALUE => {
                let m = insn.imm as usize;
                let Some(md) = self.maps.get(m) else {
                    return Err(self.err(
                        st,
                        format!("fd {} is not pointing to valid bpf_map", insn.imm),
                    ));
                };
                let off = hi.imm as u32;
                if !matches!(md.map_type, mt::ARRAY) || md.max_entries != 1 {
                    return Err(self.unsupported("direct map value access on a non-array map"));
                }
                if off >= md.value_size {
                    return Err(self.err(
                        st,
                        format!(
                            "invalid access to map value pointer, value_size={} off={}",
                            md.value_size, off
                        ),
                    ));
                }
                let mut r = Reg::ptr(RegType::MapValue);
                r.map = Some(m);
                r.off = off as i32;
                r
            }
            BPF_PSEUDO_FUNC => {
                let mut r = Reg::ptr(RegType::Func);
                r.subprog = (idx as i64 + insn.imm as i64 + 1) as usize;
                r
            }
            _ => return Err(self.unsupported("lddw of a BTF id (kernel variable)")),
        };
        st.cur_mut().regs[insn.dst as usize] = reg;
        Ok(())
    }

    // ---------------------------------------------------------------- ALU
    fn check_alu(&mut self, st: &mut State, insn: &RawInsn) -> R<()> {
        let opc = op(insn.code);
        let is64 = insn.class() == BPF_ALU64;
        let x = source(insn.code) == BPF_X;
        if opc == BPF_NEG || opc == BPF_END {
            if opc == BPF_NEG {
                if x || insn.src != 0 || insn.off != 0 || insn.imm != 0 {
                    return Err(self.err(st, "BPF_NEG uses reserved fields".into()));
                }
            } else if insn.src != 0
                || insn.off != 0
                || !matches!(insn.imm, 16 | 32 | 64)
                || (is64 && x)
            {
                return Err(self.err(st, "BPF_END uses reserved fields".into()));
            }
            self.check_reg_read(st, insn.dst)?;
            let d = &st.cur().regs[insn.dst as usize];
            if self.is_pointer_value(d) {
                return Err(self.err(st, format!("R{} pointer arithmetic prohibited", insn.dst)));
            }
            self.check_reg_write(st, insn.dst)?;
            let d = &mut st.cur_mut().regs[insn.dst as usize];
            if opc == BPF_NEG && d.is_scalar() {
                let mut b = d.b;
                bounds::alu(BPF_NEG, &mut b, &Bounds::konst(0), is64);
                *d = Reg {
                    b,
                    ..Reg::unknown()
                };
            } else if opc == BPF_END && d.is_scalar() && d.b.is_const() {
                let v = d.b.var_off.value;
                let r = byte_swap(v, insn.imm, is64, x);
                *d = Reg::konst(r);
            } else if opc == BPF_END && d.is_scalar() {
                // scalar_byte_swap (6.18): swap the tnum when the bytes move (bswap,
                // or to_be on this little-endian machine), truncate for 16/32 bits,
                // then derive the ranges again; no zero extension afterwards
                let need_bswap = is64 || x;
                let mut b = d.b;
                if need_bswap || insn.imm != 64 {
                    d.id = 0;
                }
                if need_bswap {
                    let (v, m) = (b.var_off.value, b.var_off.mask);
                    b = Bounds::unknown();
                    b.var_off = match insn.imm {
                        16 => Tnum::new(
                            (v as u16).swap_bytes() as u64,
                            (m as u16).swap_bytes() as u64,
                        ),
                        32 => Tnum::new(
                            (v as u32).swap_bytes() as u64,
                            (m as u32).swap_bytes() as u64,
                        ),
                        _ => Tnum::new(v.swap_bytes(), m.swap_bytes()),
                    };
                }
                if insn.imm != 64 {
                    coerce_to_size(&mut b, insn.imm as u32 / 8);
                }
                b.sync();
                d.b = b;
            } else {
                *d = Reg::unknown();
            }
            return Ok(());
        }
        if opc == BPF_MOV {
            if x {
                let ok_off = if is64 {
                    matches!(insn.off, 0 | 8 | 16 | 32)
                } else {
                    matches!(insn.off, 0 | 8 | 16)
                };
                if !ok_off || insn.imm != 0 {
                    return Err(self.err(st, "BPF_MOV uses reserved fields".into()));
                }
                self.check_reg_read(st, insn.src)?;
            } else if insn.src != 0 || insn.off != 0 {
                return Err(self.err(st, "BPF_MOV uses reserved fields".into()));
            }
            self.check_reg_write(st, insn.dst)?;
            if !x {
                let v = if is64 {
                    insn.imm as i64 as u64
                } else {
                    insn.imm as u32 as u64
                };
                st.cur_mut().regs[insn.dst as usize] = Reg::konst(v);
                return Ok(());
            }
            let src = st.cur().regs[insn.src as usize].clone();
            if is64 {
                if insn.off == 0 {
                    let mut s = src;
                    if s.is_scalar() && s.id == 0 && !s.b.is_const() {
                        s.id = self.new_id();
                        st.cur_mut().regs[insn.src as usize].id = s.id;
                    }
                    st.cur_mut().regs[insn.dst as usize] = s;
                } else {
                    if self.is_pointer_value(&src) {
                        return Err(
                            self.err(st, format!("R{} sign-extension part of pointer", insn.src))
                        );
                    }
                    let r = if src.is_scalar() {
                        self.movsx_scalar(st, insn, &src, true)
                    } else {
                        Reg::unknown()
                    };
                    st.cur_mut().regs[insn.dst as usize] = r;
                }
            } else {
                if self.is_pointer_value(&src) {
                    return Err(self.err(st, format!("R{} partial copy of pointer", insn.src)));
                }
                let mut r = if src.is_scalar() {
                    if insn.off == 0 {
                        let mut s = src.clone();
                        if bounds::reg_width(&s.b) <= 32 {
                            if s.id == 0 && !s.b.is_const() {
                                s.id = self.new_id();
                                st.cur_mut().regs[insn.src as usize].id = s.id;
                            }
                        } else {
                            s.id = 0;
                        }
                        s
                    } else {
                        self.movsx_scalar(st, insn, &src, false)
                    }
                } else {
                    Reg::unknown()
                };
                r.b.zext_32_to_64();
                r.b.sync();
                st.cur_mut().regs[insn.dst as usize] = r;
            }
            return Ok(());
        }
        if opc > BPF_END {
            return Err(self.err(st, format!("invalid BPF_ALU opcode {:x}", opc)));
        }
        let bad_off =
            (insn.off != 0 && insn.off != 1) || (insn.off == 1 && opc != BPF_MOD && opc != BPF_DIV);
        if x {
            if insn.imm != 0 || bad_off {
                return Err(self.err(st, "BPF_ALU uses reserved fields".into()));
            }
            self.check_reg_read(st, insn.src)?;
        } else if insn.src != 0 || bad_off {
            return Err(self.err(st, "BPF_ALU uses reserved fields".into()));
        }
        self.check_reg_read(st, insn.dst)?;
        if (opc == BPF_MOD || opc == BPF_DIV) && !x && insn.imm == 0 {
            return Err(self.err(st, "div by zero".into()));
        }
        if matches!(opc, BPF_LSH | BPF_RSH | BPF_ARSH) && !x {
            let size = if is64 { 64 } else { 32 };
            if insn.imm < 0 || insn.imm >= size {
                return Err(self.err(st, format!("invalid shift {}", insn.imm)));
            }
        }
        self.check_reg_write(st, insn.dst)?;
        self.adjust_reg_min_max_vals(st, insn)
    }

    fn adjust_reg_min_max_vals(&mut self, st: &mut State, insn: &RawInsn) -> R<()> {
        let opc = op(insn.code);
        let is64 = insn.class() == BPF_ALU64;
        let d = insn.dst as usize;
        let dst = st.cur().regs[d].clone();
        let src = if source(insn.code) == BPF_X {
            st.cur().regs[insn.src as usize].clone()
        } else {
            Reg::konst(insn.imm as i64 as u64)
        };
        if source(insn.code) == BPF_X && !src.is_scalar() {
            if !dst.is_scalar() {
                if opc == BPF_SUB && self.allow_ptr_leaks {
                    st.cur_mut().regs[d] = Reg::unknown();
                    return Ok(());
                }
                return Err(self.err_regs(
                    st,
                    format!("R{} pointer {} pointer prohibited", insn.dst, alu_str(opc)),
                    &[insn.dst, insn.src],
                ));
            }
            // scalar += pointer
            self.mark_precise(st, 1 << insn.dst, vec![]);
            let r = self.adjust_ptr(st, insn, &src, &dst, true)?;
            st.cur_mut().regs[d] = r;
            return Ok(());
        }
        if !dst.is_scalar() {
            if source(insn.code) == BPF_X {
                self.mark_precise(st, 1 << insn.src, vec![]);
            }
            let r = self.adjust_ptr(st, insn, &dst, &src, false)?;
            st.cur_mut().regs[d] = r;
            return Ok(());
        }
        self.sanitize_val_alu(st, insn)?;
        let mut b = dst.b;
        bounds::alu(opc, &mut b, &src.b, is64);
        st.cur_mut().regs[d] = Reg {
            b,
            ..Reg::unknown()
        };
        Ok(())
    }

    /// `adjust_ptr_min_max_vals`.
    fn adjust_ptr(
        &mut self,
        st: &State,
        insn: &RawInsn,
        ptr: &Reg,
        off_reg: &Reg,
        swapped: bool,
    ) -> R<Reg> {
        let opc = op(insn.code);
        let dst = insn.dst;
        let ob = &off_reg.b;
        let known = ob.is_const();
        if (known && (ob.smin != ob.smax || ob.umin != ob.umax))
            || ob.smin > ob.smax
            || ob.umin > ob.umax
        {
            return Ok(Reg::unknown());
        }
        if insn.class() != BPF_ALU64 {
            if opc == BPF_SUB && self.allow_ptr_leaks {
                return Ok(Reg::unknown());
            }
            return Err(self.err_regs(
                st,
                format!("R{} 32-bit pointer arithmetic prohibited", dst),
                &[dst],
            ));
        }
        if ptr.ty.may_be_null() {
            return Err(Self::hint(
                self.err_regs(
                    st,
                    format!(
                        "R{} pointer arithmetic on {} prohibited, null-check it first",
                        dst,
                        ptr.type_str()
                    ),
                    &[dst],
                ),
                "compare the pointer against 0 (NULL) before doing arithmetic on it".into(),
            ));
        }
        match ptr.ty {
            RegType::Ctx
            | RegType::MapValue
            | RegType::MapKey
            | RegType::Stack
            | RegType::PacketMeta
            | RegType::Packet
            | RegType::RingbufMem
            | RegType::Mem
            | RegType::Func => {}
            RegType::MapPtr if known && ob.smin == 0 && opc == BPF_ADD => {}
            RegType::BtfId(_) => {
                return Err(self.unsupported("pointer arithmetic on a BTF-typed pointer"));
            }
            _ => {
                return Err(self.err_regs(
                    st,
                    format!(
                        "R{} pointer arithmetic on {} prohibited",
                        dst,
                        ptr.type_str()
                    ),
                    &[dst],
                ));
            }
        }
        let mut r = ptr.clone();
        self.check_reg_sane_offset(st, off_reg, ptr.ty)?;
        self.check_reg_sane_offset(st, ptr, ptr.ty)?;
        r.b.mark32_unbounded();
        let sanitize = self.sanitize_ptr_alu_first(st, insn, ptr, off_reg, swapped)?;
        let (smin_val, smax_val, umin_val, umax_val) = (ob.smin, ob.smax, ob.umin, ob.umax);
        let pb = &ptr.b;
        match opc {
            BPF_ADD => {
                let noff = ptr.off as i64 + smin_val;
                if known && noff == noff as i32 as i64 {
                    r.off = noff as i32;
                } else {
                    match (pb.smin.checked_add(smin_val), pb.smax.checked_add(smax_val)) {
                        (Some(a), Some(b)) => {
                            r.b.smin = a;
                            r.b.smax = b;
                        }
                        _ => {
                            r.b.smin = i64::MIN;
                            r.b.smax = i64::MAX;
                        }
                    }
                    match (pb.umin.checked_add(umin_val), pb.umax.checked_add(umax_val)) {
                        (Some(a), Some(b)) => {
                            r.b.umin = a;
                            r.b.umax = b;
                        }
                        _ => {
                            r.b.umin = 0;
                            r.b.umax = u64::MAX;
                        }
                    }
                    r.b.var_off = pb.var_off.add(ob.var_off);
                    if ptr.ty.is_pkt() {
                        r.id = self.new_id();
                        r.range = 0;
                    }
                }
            }
            BPF_SUB => {
                if swapped {
                    return Err(self.err_regs(
                        st,
                        format!("R{} tried to subtract pointer from scalar", dst),
                        &[dst],
                    ));
                }
                if ptr.ty == RegType::Stack {
                    return Err(self.err_regs(
                        st,
                        format!("R{} subtraction from stack pointer prohibited", dst),
                        &[dst],
                    ));
                }
                let noff = ptr.off as i64 - smin_val;
                if known && noff == noff as i32 as i64 {
                    r.off = noff as i32;
                } else {
                    match (pb.smin.checked_sub(smax_val), pb.smax.checked_sub(smin_val)) {
                        (Some(a), Some(b)) => {
                            r.b.smin = a;
                            r.b.smax = b;
                        }
                        _ => {
                            r.b.smin = i64::MIN;
                            r.b.smax = i64::MAX;
                        }
                    }
                    if pb.umin < umax_val {
                        r.b.umin = 0;
                        r.b.umax = u64::MAX;
                    } else {
                        r.b.umin = pb.umin - umax_val;
                        r.b.umax = pb.umax - umin_val;
                    }
                    r.b.var_off = pb.var_off.sub(ob.var_off);
                    if ptr.ty.is_pkt() {
                        r.id = self.new_id();
                        if smin_val < 0 {
                            r.range = 0;
                        }
                    }
                }
            }
            BPF_AND | BPF_OR | BPF_XOR => {
                return Err(self.err_regs(
                    st,
                    format!(
                        "R{} bitwise operator {} on pointer prohibited",
                        dst,
                        alu_str(opc)
                    ),
                    &[dst],
                ));
            }
            _ => {
                return Err(self.err_regs(
                    st,
                    format!(
                        "R{} pointer arithmetic with {} operator prohibited",
                        dst,
                        alu_str(opc)
                    ),
                    &[dst],
                ));
            }
        }
        if r.ty.is_pkt() && r.range < 0 {
            // AT_PKT_END / BEYOND_PKT_END describe the pointer they were proved for:
            // 6.18 drops them on any arithmetic (`r2 = r9; r2 += 8` after `r9 > pkt_end`
            // shows r=0, even `+= 0`), so a later comparison with data_end is not decided
            // from them (after `r9 -= 8` the pointer may well be below data_end)
            r.range = 0;
        }
        self.check_reg_sane_offset(st, &r, ptr.ty)?;
        r.b.sync();
        self.sanitize_ptr_alu_commit(st, insn, &r, sanitize, swapped)?;
        Ok(r)
    }

    fn check_reg_sane_offset(&self, st: &State, reg: &Reg, ty: RegType) -> R<()> {
        let known = reg.b.is_const();
        let val = reg.b.var_off.value as i64;
        let smin = reg.b.smin;
        let tn = ty.name();
        if known && (val >= BPF_MAX_VAR_OFF || val <= -BPF_MAX_VAR_OFF) {
            return Err(self.err(
                st,
                format!("math between {} pointer and {} is not allowed", tn, val),
            ));
        }
        if reg.off as i64 >= BPF_MAX_VAR_OFF || reg.off as i64 <= -BPF_MAX_VAR_OFF {
            return Err(self.err(
                st,
                format!("{} pointer offset {} is not allowed", tn, reg.off),
            ));
        }
        if smin == i64::MIN {
            let f = self.err(
                st,
                format!(
                    "math between {} pointer and register with unbounded min value is not allowed",
                    tn
                ),
            );
            return Err(Self::hint(
                f,
                "bound the offset first, e.g. `if (off > LIMIT) return XDP_DROP;` or `off &= MASK`"
                    .into(),
            ));
        }
        if smin >= BPF_MAX_VAR_OFF || smin <= -BPF_MAX_VAR_OFF {
            return Err(self.err(
                st,
                format!("value {} makes {} pointer be out of bounds", smin, tn),
            ));
        }
        Ok(())
    }

    // ---------------------------------------------------------------- memory
    /// `save_aux_ptr_type`: one instruction may not access memory through a context
    /// or socket pointer on one path and another pointer type on another (the kernel
    /// rewrites context accesses per instruction): `same insn cannot be used with
    /// different pointers`. Called after the access was checked, as 6.18 does.
    fn save_aux_ptr_type(&mut self, st: &State, ty: RegType) -> R<()> {
        let mismatch_ok = |t: RegType| {
            !matches!(
                t,
                RegType::Ctx
                    | RegType::Socket
                    | RegType::SockCommon
                    | RegType::XdpSock
                    | RegType::BtfId(_)
            )
        };
        match self.aux_ptr_type.get(&self.idx) {
            None => {
                self.aux_ptr_type.insert(self.idx, ty);
                Ok(())
            }
            Some(&prev) if prev != ty && (!mismatch_ok(ty) || !mismatch_ok(prev)) => Err(self.err(
                st,
                "same insn cannot be used with different pointers".into(),
            )),
            Some(_) => Ok(()),
        }
    }

    fn check_ldx(&mut self, st: &mut State, insn: &RawInsn) -> R<()> {
        if insn.imm != 0 {
            return Err(self.err(st, "BPF_LDX uses reserved fields".into()));
        }
        self.check_reg_read(st, insn.src)?;
        self.check_reg_write(st, insn.dst)?;
        let sx = mode(insn.code) == BPF_MEMSX;
        let src_ty = st.cur().regs[insn.src as usize].ty;
        let r = self.check_mem_access(
            st,
            insn.src,
            insn.off as i32,
            size_bytes(insn.code),
            false,
            None,
            None,
            sx,
        )?;
        self.save_aux_ptr_type(st, src_ty)?;
        st.cur_mut().regs[insn.dst as usize] = r.expect("read yields a value");
        Ok(())
    }

    fn check_atomic(&mut self, st: &mut State, insn: &RawInsn) -> R<()> {
        let aop = insn.imm;
        if aop == BPF_LOAD_ACQ || aop == BPF_STORE_REL {
            if let Some(t) = self.opts.target.as_deref() {
                if !t.has_load_acquire_store_release() {
                    return Err(Self::hint(
                        self.err(st, format!("BPF_ATOMIC uses invalid atomic opcode {:02x}", aop)),
                        format!(
                            "load-acquire and store-release came in Linux {}; {} does not have them",
                            bpfkit_target::feature_since("load_acquire_store_release")
                                .map_or("?".into(), |v| v.to_string()),
                            t.describe()
                        ),
                    ));
                }
            }
            return if aop == BPF_LOAD_ACQ {
                self.check_atomic_load(st, insn)
            } else {
                self.check_atomic_store(st, insn)
            };
        }
        let ok = matches!(aop & !BPF_FETCH, 0x00 | 0x40 | 0x50 | 0xa0)
            || aop == BPF_XCHG
            || aop == BPF_CMPXCHG;
        if !ok {
            return Err(self.err(
                st,
                format!("BPF_ATOMIC uses invalid atomic opcode {:02x}", aop),
            ));
        }
        if !matches!(size(insn.code), BPF_W | BPF_DW) {
            return Err(self.err(st, "invalid atomic operand size".into()));
        }
        self.check_reg_read(st, insn.src)?;
        self.check_reg_read(st, insn.dst)?;
        if aop == BPF_CMPXCHG {
            self.check_reg_read(st, 0)?;
        }
        let src = st.cur().regs[insn.src as usize].clone();
        if self.is_pointer_value(&src) {
            return Err(self.err(st, format!("R{} leaks addr into mem", insn.src)));
        }
        let dty = st.cur().regs[insn.dst as usize].ty;
        self.refuse_atomic_ptr_type(st, "stores into", insn.dst, dty)?;
        // `check_reg_arg(load_reg, DST_OP)` comes before the memory checks: the register
        // that receives the old value is unknown from here on, so a fetch into the
        // pointer register itself is checked as an access through a scalar
        if aop == BPF_CMPXCHG || aop & BPF_FETCH != 0 {
            let load_reg = if aop == BPF_CMPXCHG { 0 } else { insn.src };
            self.check_reg_write(st, load_reg)?;
            st.cur_mut().regs[load_reg as usize] = Reg::unknown();
        }
        let sz = size_bytes(insn.code);
        self.check_atomic_alignment(st, insn.dst, insn.off as i32, sz)?;
        let ptr = st.cur().regs[insn.dst as usize].clone();
        let old =
            self.check_mem_access(st, insn.dst, insn.off as i32, sz, false, None, None, false)?;
        // check_atomic_rmw reads with dst_regno = -1, asking whether the old value may
        // be used as a scalar: a spilled pointer may not without allow_ptr_leaks
        if ptr.ty == RegType::Stack
            && ptr.b.is_const()
            && !self.allow_ptr_leaks
            && old.as_ref().is_some_and(|o| self.is_pointer_value(o))
        {
            let off = insn.off as i32 + ptr.off + ptr.b.var_off.value as i64 as i32;
            return Err(self.err(st, format!("leaking pointer from stack off {}", off)));
        }
        self.check_mem_access(
            st,
            insn.dst,
            insn.off as i32,
            sz,
            true,
            Some(Reg::unknown()),
            None,
            false,
        )?;
        let mut res = Reg::unknown();
        if sz == 4 {
            res.b = Bounds::unknown();
            res.b.umax = u32::MAX as u64;
            res.b.sync();
        }
        if aop == BPF_CMPXCHG {
            st.cur_mut().regs[0] = res;
        } else if aop & BPF_FETCH != 0 {
            self.check_reg_write(st, insn.src)?;
            st.cur_mut().regs[insn.src as usize] = res;
        }
        Ok(())
    }

    /// `atomic_ptr_type_ok` failed for register `regno` of type `ty`: the kernel's
    /// `BPF_ATOMIC {stores into|loads from} R{regno} {type} is not allowed`.
    fn refuse_atomic_ptr_type(&self, st: &State, what: &str, regno: u8, ty: RegType) -> R<()> {
        if atomic_ptr_type_refused(ty) {
            return Err(self.err(
                st,
                format!("BPF_ATOMIC {what} R{regno} {} is not allowed", ty.name()),
            ));
        }
        Ok(())
    }

    /// `check_atomic_load` (6.15, BPF_LOAD_ACQ): as 6.18, the pointer type first (the
    /// source register is read as it is, even when it is not initialised), then
    /// `check_load_mem` with strict alignment: a plain load otherwise (a fill from the
    /// stack, zero-extended B/H/W values).
    fn check_atomic_load(&mut self, st: &mut State, insn: &RawInsn) -> R<()> {
        if insn.src > 10 {
            self.check_reg_read(st, insn.src)?;
        }
        let sty = st.cur().regs[insn.src as usize].ty;
        self.refuse_atomic_ptr_type(st, "loads from", insn.src, sty)?;
        self.check_reg_read(st, insn.src)?;
        self.check_reg_write(st, insn.dst)?;
        let sz = size_bytes(insn.code);
        self.check_atomic_alignment(st, insn.src, insn.off as i32, sz)?;
        let r =
            self.check_mem_access(st, insn.src, insn.off as i32, sz, false, None, None, false)?;
        self.save_aux_ptr_type(st, sty)?;
        st.cur_mut().regs[insn.dst as usize] = r.expect("read yields a value");
        Ok(())
    }

    /// `check_atomic_store` (6.15, BPF_STORE_REL): as 6.18, `check_store_reg` with
    /// strict alignment first (a plain store otherwise: a spill to the stack), then the
    /// pointer type.
    fn check_atomic_store(&mut self, st: &mut State, insn: &RawInsn) -> R<()> {
        self.check_reg_read(st, insn.src)?;
        self.check_reg_read(st, insn.dst)?;
        let sz = size_bytes(insn.code);
        self.check_atomic_alignment(st, insn.dst, insn.off as i32, sz)?;
        let val = st.cur().regs[insn.src as usize].clone();
        self.value_reg = Some(insn.src);
        self.check_mem_access(
            st,
            insn.dst,
            insn.off as i32,
            sz,
            true,
            Some(val),
            None,
            false,
        )?;
        let dty = st.cur().regs[insn.dst as usize].ty;
        self.save_aux_ptr_type(st, dty)?;
        self.refuse_atomic_ptr_type(st, "stores into", insn.dst, dty)?;
        Ok(())
    }

    /// `check_ptr_alignment` with `strict_alignment_once`, as atomics call
    /// `check_mem_access`: every pointer type is checked as if the architecture
    /// demanded alignment (stack accesses are strict anyway, in `check_mem_access`).
    fn check_atomic_alignment(&self, st: &State, regno: u8, insn_off: i32, size: i32) -> R<()> {
        let reg = &st.cur().regs[regno as usize];
        let desc = match reg.ty {
            RegType::MapValue => "value ",
            RegType::MapKey => "key ",
            RegType::Socket => "sock ",
            RegType::SockCommon => "sock_common ",
            RegType::XdpSock => "xdp_sock ",
            // read-modify-write atomics refuse ctx and packet pointers before this;
            // a store-release checks the access first
            RegType::Ctx => "context ",
            RegType::Packet | RegType::PacketMeta => {
                // check_pkt_ptr_alignment: NET_IP_ALIGN forced to 2
                return self.check_aligned(st, regno, "packet ", 2, insn_off, size);
            }
            // stack: strict in check_mem_access
            RegType::Stack => return Ok(()),
            // a scalar (e.g. the fetch's own destination register, already clobbered)
            // goes to check_generic_ptr_alignment with no description
            RegType::RingbufMem | RegType::Mem | RegType::Scalar => "",
            _ => return Ok(()),
        };
        self.check_aligned(st, regno, desc, 0, insn_off, size)
    }

    /// The alignment test of `check_generic_ptr_alignment`/`check_pkt_ptr_alignment`:
    /// register `regno`'s variable and fixed offsets plus `ip_align` (NET_IP_ALIGN for
    /// packets, else 0) plus `insn_off` must be a multiple of `size`, else the kernel's
    /// `misaligned {desc}access off ...` (the `ip_align+` part only when it is not 0).
    fn check_aligned(
        &self,
        st: &State,
        regno: u8,
        desc: &str,
        ip_align: i32,
        insn_off: i32,
        size: i32,
    ) -> R<()> {
        let reg = &st.cur().regs[regno as usize];
        let roff = reg
            .b
            .var_off
            .add(Tnum::konst((ip_align + reg.off + insn_off) as i64 as u64));
        if size == 1 || roff.is_aligned(size as u64) {
            return Ok(());
        }
        let vo = if reg.b.is_const() {
            format!("{}", reg.b.var_off.value as i64)
        } else {
            reg.b.var_off.to_string()
        };
        let ip = if ip_align != 0 {
            format!("{ip_align}+")
        } else {
            String::new()
        };
        Err(self.err_regs(
            st,
            format!(
                "misaligned {desc}access off {ip}{vo}+{}+{insn_off} size {size}",
                reg.off
            ),
            &[regno],
        ))
    }

    /// `check_mem_access`. For reads returns the loaded value's register state.
    #[allow(clippy::too_many_arguments)]
    fn check_mem_access(
        &mut self,
        st: &mut State,
        regno: u8,
        insn_off: i32,
        size: i32,
        write: bool,
        value: Option<Reg>,
        st_imm: Option<i32>,
        sx: bool,
    ) -> R<Option<Reg>> {
        let reg = st.cur().regs[regno as usize].clone();
        let off = insn_off + reg.off;
        let mut out: Option<Reg> = None;
        let value_reg = self.value_reg.take();
        match reg.ty {
            RegType::Stack => {
                // check_ptr_alignment: stack accesses are always strict
                self.check_aligned(st, regno, "stack ", 0, insn_off, size)?;
                self.check_stack_access_within_bounds(st, regno, &reg, off, size, write, false)?;
                let fno = reg.frameno as usize;
                let lowest = if reg.b.is_const() {
                    off + reg.b.var_off.value as i64 as i32
                } else {
                    (reg.b.smin + off as i64) as i32
                };
                let sp = st.frames[fno].subprog;
                self.fastcall.contract(sp, self.idx, lowest);
                if reg.b.is_const() {
                    let aoff = off + reg.b.var_off.value as i64 as i32;
                    self.grow_stack(st, fno, aoff);
                    let spi = ((-aoff - 1) / REG_SIZE as i32) as usize;
                    // a spill or a fill is recorded for precision backtracking
                    // (INSN_F_STACK_ACCESS); other stack accesses are not
                    let spill_fill = if write {
                        if size == REG_SIZE as i32 && aoff % REG_SIZE as i32 == 0 {
                            self.note_stack_write(fno, 1u64 << spi);
                        }
                        self.stack_write_fixed(
                            st,
                            value_reg,
                            fno,
                            aoff,
                            size,
                            value.as_ref(),
                            st_imm,
                        )?;
                        st.frames[fno].slot(spi).is_spilled()
                    } else {
                        self.note_stack_read(fno, aoff, aoff + size);
                        let (r, fill) = self.stack_read_fixed(st, fno, aoff, size)?;
                        out = Some(r);
                        fill
                    };
                    if let Some(h) = st.hist.last_mut() {
                        let c = self.insns[h.insn as usize].code;
                        // (load-acquire and store-release are a plain load and store
                        // here, as 6.18's check_load_mem/check_store_reg)
                        let imm = self.insns[h.insn as usize].imm;
                        let plain = matches!(c & 0x07, BPF_LDX | BPF_STX | BPF_ST)
                            && (mode(c) != BPF_ATOMIC
                                || imm == BPF_LOAD_ACQ
                                || imm == BPF_STORE_REL);
                        if spill_fill && plain {
                            h.slot = Some((fno as u8, spi as u8));
                        }
                    }
                } else {
                    let min_off = (reg.b.smin + off as i64) as i32;
                    let max_off = (reg.b.smax + off as i64) as i32;
                    self.grow_stack(st, fno, min_off);
                    if !self.opts.caps.bypass_spec_v1() {
                        return Err(self.err_regs(
                            st,
                            format!(
                                "R{} variable offset stack access prohibited for !root, var_off={} off={}",
                                regno, reg.b.var_off, off
                            ),
                            &[regno],
                        ));
                    }
                    if write {
                        self.destroy_dynptrs_in(st, fno, min_off, max_off + size)?;
                    }
                    let fr = &mut st.frames[fno];
                    for a in min_off..(max_off + size) {
                        let b = (-a - 1) as usize;
                        let (spi, bi) = (b / REG_SIZE, b % REG_SIZE);
                        if write {
                            let slot = fr.slot_mut(spi);
                            if slot.is_spilled() {
                                slot.spilled = Reg::not_init();
                                for t in slot.ty.iter_mut() {
                                    *t = Slot::Misc;
                                }
                            }
                            let zero = value.as_ref().is_some_and(|v| v.is_const_zero());
                            if !(zero && slot.ty[bi] == Slot::Zero) {
                                slot.ty[bi] = Slot::Misc;
                            }
                        }
                    }
                    if !write {
                        self.note_stack_read(fno, min_off, max_off + size);
                        out = Some(Reg::unknown());
                    }
                }
            }
            RegType::Ctx => {
                // check_mem_access: a pointer stored into the context leaks, checked
                // before the offset is
                if let (true, Some(v), Some(vr)) = (write, &value, value_reg) {
                    if self.is_pointer_value(v) {
                        return Err(self.err(st, format!("R{} leaks addr into ctx", vr)));
                    }
                }
                if write && st_imm.is_some() {
                    // BPF_ST into ctx is rejected by check_ctx_access below for XDP anyway
                }
                self.check_ptr_off_reg(st, &reg, regno)?;
                let md_off = off;
                let ok = (0..XDP_MD_SIZE).contains(&md_off)
                    && size == 4
                    && md_off % size == 0
                    && !write
                    && !(md_off == 20 && self.prog.expected_attach_type != Some(BPF_XDP_DEVMAP))
                    // the kernel refuses sign-extending loads of the fields it turns
                    // into pointers (data, data_end, data_meta), same message
                    && !(sx && matches!(md_off, 0 | 4 | 8));
                if !ok {
                    let f = self.err_regs(
                        st,
                        format!("invalid bpf_context access off={} size={}", md_off, size),
                        &[regno],
                    );
                    let h = if write {
                        "the XDP context (struct xdp_md) is read-only".to_string()
                    } else if sx && size == 4 {
                        "data, data_end and data_meta become pointers: read them with an unsigned 4-byte load (`*(u32 *)`), not a sign-extending one".to_string()
                    } else {
                        "struct xdp_md fields are __u32: read them with 4-byte loads at offsets 0 (data), 4 (data_end), 8 (data_meta), 12, 16 (and 20 for devmap programs)".to_string()
                    };
                    return Err(Self::hint(f, h));
                }
                if !write {
                    out = Some(match md_off {
                        0 => Reg::ptr(RegType::Packet),
                        4 => Reg::ptr(RegType::PacketEnd),
                        8 => Reg::ptr(RegType::PacketMeta),
                        _ => {
                            let mut r = Reg::unknown();
                            coerce_to_size(&mut r.b, 4);
                            r
                        }
                    });
                }
            }
            RegType::Packet | RegType::PacketMeta => {
                if write {
                    if let Some(v) = &value {
                        if self.is_pointer_value(v) {
                            let vr = value_reg.unwrap_or(regno);
                            return Err(self.err(st, format!("R{} leaks addr into packet", vr)));
                        }
                    }
                }
                self.check_packet_access(st, regno, &reg, off, size, false)?;
                if !write {
                    out = Some(Reg::unknown());
                }
            }
            RegType::MapValue => {
                let md = &self.maps[reg.map.expect("map value has a map")];
                let rdonly = md.map_flags & BPF_F_RDONLY_PROG != 0;
                // the leak is checked before the map's access flags (check_mem_access)
                if let (true, Some(v), Some(vr)) = (write, &value, value_reg) {
                    if self.is_pointer_value(v) {
                        return Err(self.err(st, format!("R{} leaks addr into map", vr)));
                    }
                }
                if write && rdonly {
                    return Err(self.err_regs(
                        st,
                        format!(
                            "write into map forbidden, value_size={} off={} size={}",
                            md.value_size, off, size
                        ),
                        &[regno],
                    ));
                }
                if !write && md.map_flags & BPF_F_WRONLY_PROG != 0 {
                    return Err(self.err_regs(
                        st,
                        format!(
                            "read from map forbidden, value_size={} off={} size={}",
                            md.value_size, off, size
                        ),
                        &[regno],
                    ));
                }
                if write {
                    if let Some(v) = &value {
                        if self.is_pointer_value(v) {
                            return Err(self.err(st, format!("R{} leaks addr into map", regno)));
                        }
                    }
                }
                let vs = md.value_size as i64;
                self.check_mem_region_access(st, regno, &reg, off, size, vs, false)?;
                self.check_map_fields(st, &reg, off, size)?;
                if !write {
                    // direct read of a frozen read-only map: the kernel knows the value
                    let mut r = Reg::unknown();
                    if rdonly && reg.b.is_const() && md.map_type == mt::ARRAY {
                        if let MapInit::Data(bytes) = &md.init {
                            let a = (off as i64 + reg.b.var_off.value as i64) as usize;
                            if a + size as usize <= bytes.len() {
                                let mut v = 0u64;
                                for k in 0..size as usize {
                                    v |= (bytes[a + k] as u64) << (8 * k);
                                }
                                r = Reg::konst(v);
                            }
                        }
                    }
                    out = Some(r);
                }
            }
            RegType::RingbufMem | RegType::Mem => {
                if write && reg.mem_flags & MEM_RDONLY != 0 {
                    return Err(self.err_regs(
                        st,
                        format!("R{} cannot write into {}", regno, reg.type_str()),
                        &[regno],
                    ));
                }
                self.check_mem_region_access(
                    st,
                    regno,
                    &reg,
                    off,
                    size,
                    reg.mem_size as i64,
                    false,
                )?;
                if !write {
                    out = Some(Reg::unknown());
                }
            }
            RegType::MapKey => {
                if write {
                    return Err(self.err_regs(
                        st,
                        format!("write to change key R{} not allowed", regno),
                        &[regno],
                    ));
                }
                self.check_mem_region_access(
                    st,
                    regno,
                    &reg,
                    off,
                    size,
                    reg.mem_size as i64,
                    false,
                )?;
                out = Some(Reg::unknown());
            }
            RegType::XdpSock => {
                // check_sock_access with bpf_xdp_sock_is_valid_access: only the u32
                // queue_id at offset 0 may be read
                if write {
                    return Err(self.err_regs(
                        st,
                        format!("R{} cannot write into xdp_sock", regno),
                        &[regno],
                    ));
                }
                if reg.b.smin < 0 {
                    return Err(self.err_regs(
                        st,
                        format!(
                            "R{} min value is negative, either use unsigned index or do a if (index >=0) check.",
                            regno
                        ),
                        &[regno],
                    ));
                }
                if !(off == 0 && size == 4) {
                    return Err(self.err_regs(
                        st,
                        format!(
                            "R{} invalid xdp_sock access off={} size={}",
                            regno, off, size
                        ),
                        &[regno],
                    ));
                }
                let mut r = Reg::unknown();
                coerce_to_size(&mut r.b, 4);
                out = Some(r);
            }
            RegType::BtfId(_) => {
                return Err(self.unsupported("access to fields of a BTF-typed kernel object"));
            }
            RegType::NotInit => return Err(self.err(st, format!("R{} !read_ok", regno))),
            t => {
                let f = self.err_regs(
                    st,
                    format!("R{} invalid mem access '{}'", regno, reg.type_str()),
                    &[regno],
                );
                let f = match t {
                    RegType::MapValueOrNull => Self::hint(f, format!("check the map lookup result for NULL before using it: `if (!R{}) return ...;`", regno)),
                    RegType::RingbufMemOrNull => Self::hint(f, "check the bpf_ringbuf_reserve() result for NULL before writing to it".into()),
                    RegType::Scalar => Self::hint(f, format!("R{} holds a number, not a pointer the program may dereference", regno)),
                    RegType::PacketEnd => Self::hint(f, "data_end marks the end of the packet; it must only be compared against, never dereferenced".into()),
                    _ => f,
                };
                if matches!(t, RegType::MapPtr) {
                    return Err(self.unsupported(
                        "access to struct bpf_map fields through a map pointer (needs kernel BTF)",
                    ));
                }
                if matches!(t, RegType::Socket | RegType::SockCommon) {
                    return Err(self.unsupported("access to socket fields"));
                }
                return Err(f);
            }
        }
        if let Some(r) = out.as_mut() {
            if r.is_scalar() && size < 8 {
                if sx {
                    r.b = sext(&r.b, size as u32, true);
                } else {
                    coerce_to_size(&mut r.b, size as u32);
                }
            }
        }
        Ok(out)
    }

    fn check_ptr_off_reg(&self, st: &State, reg: &Reg, regno: u8) -> R<()> {
        if reg.off < 0 {
            return Err(self.err_regs(
                st,
                format!(
                    "negative offset {} ptr R{} off={} disallowed",
                    reg.type_str(),
                    regno,
                    reg.off
                ),
                &[regno],
            ));
        }
        if reg.off != 0 {
            return Err(self.err_regs(
                st,
                format!(
                    "dereference of modified {} ptr R{} off={} disallowed",
                    reg.type_str(),
                    regno,
                    reg.off
                ),
                &[regno],
            ));
        }
        if !reg.b.is_const() || reg.b.var_off.value != 0 {
            return Err(self.err_regs(
                st,
                format!(
                    "variable {} access var_off={} disallowed",
                    reg.type_str(),
                    reg.b.var_off
                ),
                &[regno],
            ));
        }
        Ok(())
    }

    fn check_packet_access(
        &self,
        st: &State,
        regno: u8,
        reg: &Reg,
        off: i32,
        size: i32,
        zero_ok: bool,
    ) -> R<()> {
        if reg.b.smin < 0 {
            return Err(self.err_regs(
                st,
                format!("R{} min value is negative, either use unsigned index or do a if (index >=0) check.", regno),
                &[regno],
            ));
        }
        let size_ok = size > 0 || (size == 0 && zero_ok);
        let ok =
            reg.range >= 0 && off >= 0 && size_ok && (off as i64 + size as i64) <= reg.range as i64;
        if !ok {
            let f = self.err_regs(
                st,
                format!(
                    "invalid access to packet, off={} size={}, R{}(id={},off={},r={})\nR{} offset is outside of the packet",
                    off, size, regno, reg.id, off, reg.range, regno
                ),
                &[regno],
            );
            let need = off as i64 + size as i64;
            let h = if reg.b.is_const() {
                format!(
                    "compare `data + {}` against `data_end` before this access (the verified range of R{} is {} bytes)",
                    need, regno, reg.range.max(0)
                )
            } else {
                format!(
                    "R{} has a variable offset; after adding it, compare `R{} + {}` against `data_end` before this access",
                    regno, regno, need
                )
            };
            return Err(Self::hint(f, h));
        }
        Ok(())
    }

    /// `check_mem_region_access` (map values, ring buffer memory).
    #[allow(clippy::too_many_arguments)]
    fn check_mem_region_access(
        &self,
        st: &State,
        regno: u8,
        reg: &Reg,
        off: i32,
        size: i32,
        mem_size: i64,
        zero_ok: bool,
    ) -> R<()> {
        let b = &reg.b;
        if b.smin < 0
            && (b.smin == i64::MIN
                || (off as i64 + b.smin) != (off as i64 + b.smin) as i32 as i64
                || b.smin + (off as i64) < 0)
        {
            return Err(Self::hint(
                self.err_regs(st, format!("R{} min value is negative, either use unsigned index or do a if (index >=0) check.", regno), &[regno]),
                "make the index unsigned, or check `index >= 0` before using it".into(),
            ));
        }
        if let Err(m) = mem_msg(reg, b.smin + off as i64, size, mem_size, zero_ok) {
            return Err(self.err_regs(
                st,
                format!(
                    "{}\nR{} min value is outside of the allowed memory range",
                    m, regno
                ),
                &[regno],
            ));
        }
        if b.umax >= BPF_MAX_VAR_OFF as u64 {
            return Err(Self::hint(
                self.err_regs(
                    st,
                    format!(
                        "R{} unbounded memory access, make sure to bounds check any such access",
                        regno
                    ),
                    &[regno],
                ),
                format!(
                    "bound the index before adding it, e.g. `if (idx >= {}) return ...;`",
                    mem_size
                ),
            ));
        }
        if let Err(m) = mem_msg(reg, b.umax as i64 + off as i64, size, mem_size, zero_ok) {
            return Err(Self::hint(
                self.err_regs(
                    st,
                    format!(
                        "{}\nR{} max value is outside of the allowed memory range",
                        m, regno
                    ),
                    &[regno],
                ),
                format!(
                    "the access may reach offset {} of a {}-byte object; tighten the bounds check",
                    b.umax as i64 + off as i64 + size as i64,
                    mem_size
                ),
            ));
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn check_stack_access_within_bounds(
        &self,
        st: &State,
        regno: u8,
        reg: &Reg,
        off: i32,
        size: i32,
        write: bool,
        helper: bool,
    ) -> R<()> {
        let _ = helper;
        let extra = if write { " write to" } else { " read from" };
        let (min_off, max_off) = if reg.b.is_const() {
            let m = reg.b.var_off.value as i64 + off as i64;
            (m, m + size as i64)
        } else {
            if reg.b.smax >= BPF_MAX_VAR_OFF || reg.b.smin <= -BPF_MAX_VAR_OFF {
                return Err(self.err_regs(
                    st,
                    format!(
                        "invalid unbounded variable-offset{} stack R{}",
                        extra, regno
                    ),
                    &[regno],
                ));
            }
            (
                reg.b.smin + off as i64,
                reg.b.smax + off as i64 + size as i64,
            )
        };
        let min_valid = if write || self.opts.caps.allow_uninit_stack() {
            -(MAX_BPF_STACK as i64)
        } else {
            -(st.frames[reg.frameno as usize].allocated as i64)
        };
        let bad = min_off < min_valid || min_off > -1 || max_off > 0 || size < 0;
        if bad {
            let m = if reg.b.is_const() {
                format!(
                    "invalid{} stack R{} off={} size={}",
                    extra, regno, off, size
                )
            } else {
                format!(
                    "invalid variable-offset{} stack R{} var_off={} off={} size={}",
                    extra, regno, reg.b.var_off, off, size
                )
            };
            return Err(Self::hint(
                self.err_regs(st, m, &[regno]),
                "the BPF stack is 512 bytes per frame: valid accesses are within [r10-512, r10-1]"
                    .into(),
            ));
        }
        Ok(())
    }

    /// Records that the current instruction reads bytes `[lo, hi)` (negative offsets
    /// from the frame pointer) of frame `fno`.
    fn note_stack_read(&mut self, fno: usize, lo: i32, hi: i32) {
        if fno != 0 || !self.use_stack_liveness {
            return;
        }
        let mut mask = 0u64;
        for a in lo.max(-MAX_BPF_STACK)..hi.min(0) {
            mask |= 1u64 << ((-a - 1) as usize / REG_SIZE);
        }
        if lo < -MAX_BPF_STACK || hi > 0 || lo >= hi {
            // out of the frame (rejected right after) or empty: nothing to refine
            mask |= if lo >= hi { 0 } else { u64::MAX };
        }
        let r = &mut self.stack_reads[self.idx];
        if *r | mask != *r {
            *r |= mask;
            self.stack_live_dirty = true;
        }
    }

    /// Records that the current instruction wrote whole frame-0 slots `mask`
    /// (`bpf_mark_stack_write`: 8 aligned bytes at a fixed offset).
    fn note_stack_write(&mut self, fno: usize, mask: u64) {
        if fno == 0 {
            self.write_acc |= mask;
        }
    }

    /// `bpf_commit_stack_write_marks`: the instruction's whole-slot writes of this
    /// execution, intersected with those of its earlier executions.
    fn commit_stack_writes(&mut self, idx: usize) {
        let m = &mut self.stack_must_write[idx];
        let new = match *m {
            None => self.write_acc,
            Some(old) => old & self.write_acc,
        };
        if *m != Some(new) {
            *m = Some(new);
            self.stack_live_dirty = true;
        }
    }

    /// Frame-0 stack slots live at `idx` (recomputed after new reads were recorded).
    fn live_stack(&mut self, idx: usize) -> u64 {
        if self.stack_live_dirty {
            self.stack_live_dirty = false;
            let n = self.insns.len();
            let mut live = self.stack_reads.clone();
            let mut changed = true;
            while changed {
                changed = false;
                for i in (0..n).rev() {
                    let mut after = 0;
                    for &t in &self.cfg.succ[i] {
                        after |= live[t];
                    }
                    let v = self.stack_reads[i] | (after & !self.stack_must_write[i].unwrap_or(0));
                    if v != live[i] {
                        live[i] = v;
                        changed = true;
                    }
                }
            }
            self.stack_live = live;
        }
        self.stack_live[idx]
    }

    pub(super) fn grow_stack(&mut self, st: &mut State, fno: usize, off: i32) {
        let need = round_up(-off, 8);
        let fr = &mut st.frames[fno];
        if need > fr.allocated {
            fr.allocated = need;
        }
        let sp = fr.subprog;
        let sub = self.cfg.subprogs.iter().position(|&s| s == sp).unwrap_or(0);
        if need > self.stack_depth[sub] {
            self.stack_depth[sub] = need;
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn stack_write_fixed(
        &mut self,
        st: &mut State,
        src_reg: Option<u8>,
        fno: usize,
        off: i32,
        size: i32,
        value: Option<&Reg>,
        st_imm: Option<i32>,
    ) -> R<()> {
        let b = (-off - 1) as usize;
        let spi = b / REG_SIZE;
        let size_u = size as usize;
        let cur_frame = st.curframe();
        let allow_leaks = self.allow_ptr_leaks;
        {
            let slot = st.frames[fno].slot(spi);
            if !allow_leaks && slot.is_spilled() && !slot.spilled.is_scalar() && size_u != REG_SIZE
            {
                return Err(self.err(st, "attempt to corrupt spilled pointer on stack".into()));
            }
        }
        self.note_spec_v4_store(st, fno, spi, size_u, value.filter(|_| st_imm.is_none()));
        self.destroy_dynptr(st, fno, spi)?;
        let aligned = off % (REG_SIZE as i32) == 0;
        let is_reg = st_imm.is_none();
        let val = value.cloned().unwrap_or_else(Reg::unknown);
        if is_reg && aligned && val.is_scalar() && self.opts.caps.bpf_capable() {
            let fits = bounds::reg_width(&val.b) <= 8 * size as u32;
            let mut sp = val.clone();
            if fits && sp.id == 0 && !sp.b.is_const() {
                // assign_scalar_id_before_mov: the spill and the register stay linked
                sp.id = self.new_id();
                if let Some(r) = src_reg {
                    st.cur_mut().regs[r as usize].id = sp.id;
                }
            }
            if !fits {
                sp.id = 0;
            }
            save_register_state(st.frames[fno].slot_mut(spi), sp, size_u);
        } else if !is_reg && aligned && self.opts.caps.bpf_capable() {
            let sp = Reg::konst(st_imm.unwrap() as i64 as u64);
            save_register_state(st.frames[fno].slot_mut(spi), sp, size_u);
        } else if is_reg && spectre::kernel_spillable(val.ty) {
            // (a CONST_PTR_TO_DYNPTR is not spillable: stored, it is STACK_MISC, and a
            // fill gives an unknown scalar, as in 6.18)
            if size_u != REG_SIZE {
                return Err(self.err(st, "invalid size of register spill".into()));
            }
            if fno != cur_frame && val.ty == RegType::Stack {
                return Err(self.err(
                    st,
                    "cannot spill pointers to stack into stack frame of the caller".into(),
                ));
            }
            save_register_state(st.frames[fno].slot_mut(spi), val, size_u);
        } else {
            let zero = (is_reg && val.is_const_zero()) || st_imm == Some(0);
            if zero && is_reg {
                // the STACK_ZERO bytes stand for the register's value: the kernel
                // makes it precise (mark_chain_precision(value_regno)), so a path
                // with another value there is not pruned against this one
                if let Some(r) = src_reg {
                    self.mark_precise(st, 1 << r, vec![]);
                }
            }
            let slot = st.frames[fno].slot_mut(spi);
            slot.spilled = Reg::not_init();
            if slot.is_spilled() {
                // is_stack_slot_special + scrub_spilled_slot: every initialised byte
                // of a slot holding a spill becomes STACK_MISC (zeros too)
                for t in slot.ty.iter_mut() {
                    if *t != Slot::Invalid {
                        *t = Slot::Misc;
                    }
                }
            } else if slot.ty.contains(&Slot::Spill) {
                for t in slot.ty.iter_mut() {
                    if *t == Slot::Spill {
                        *t = Slot::Misc;
                    }
                }
            }
            let ty = if zero { Slot::Zero } else { Slot::Misc };
            for i in 0..size_u {
                slot.ty[(b - i) % REG_SIZE] = ty;
            }
        }
        Ok(())
    }

    /// The register a fixed-offset stack read gives, and whether it restores a
    /// spilled register (a fill, as the kernel keeps `insn_flags`).
    fn stack_read_fixed(&self, st: &State, fno: usize, off: i32, size: i32) -> R<(Reg, bool)> {
        let b = (-off - 1) as usize;
        let spi = b / REG_SIZE;
        let slot = st.frames[fno].slot(spi);
        let allow_uninit = self.opts.caps.allow_uninit_stack();
        let size_u = size as usize;
        if slot.is_spilled() {
            let mut spill_size = 1;
            let mut i = REG_SIZE - 1;
            while i > 0 && slot.ty[i - 1] == Slot::Spill {
                spill_size += 1;
                i -= 1;
            }
            let sp = &slot.spilled;
            if size_u != REG_SIZE || spill_size != REG_SIZE {
                if !sp.is_scalar() {
                    return Err(Self::hint(
                        self.err(st, "invalid size of register fill".into()),
                        "a spilled pointer must be reloaded with an 8-byte load of the same slot"
                            .into(),
                    ));
                }
                // narrow fill of a spilled scalar (bpf_stack_narrow_access_ok: little-endian => off % 8 == 0)
                if size_u <= spill_size && (off % REG_SIZE as i32) == 0 {
                    let mut r = sp.clone();
                    if bounds::reg_width(&r.b) > 8 * size as u32 {
                        r.id = 0;
                    }
                    return Ok((r, true));
                }
                let (mut spill_cnt, mut zero_cnt) = (0, 0);
                for i in 0..size_u {
                    match slot.ty[(b - i) % REG_SIZE] {
                        Slot::Spill => spill_cnt += 1,
                        Slot::Misc => {}
                        Slot::Zero => zero_cnt += 1,
                        Slot::Invalid if allow_uninit => {}
                        Slot::Invalid | Slot::Dynptr => {
                            return Err(self.err(
                                st,
                                format!("invalid read from stack off {}+{} size {}", off, i, size),
                            ));
                        }
                    }
                }
                if spill_cnt == size_u && sp.is_const_zero() {
                    return Ok((Reg::konst(0), true));
                }
                if zero_cnt == size_u {
                    return Ok((Reg::konst(0), false));
                }
                return Ok((Reg::unknown(), false));
            }
            return Ok((sp.clone(), true));
        }
        let mut zeros = 0;
        for i in 0..size_u {
            match slot.ty[(b - i) % REG_SIZE] {
                Slot::Misc => {}
                Slot::Zero => zeros += 1,
                Slot::Invalid if allow_uninit => {}
                _ => {
                    return Err(Self::hint(
                        self.err(
                            st,
                            format!("invalid read from stack off {}+{} size {}", off, i, size),
                        ),
                        "initialise the stack bytes before reading them (e.g. `= {}` or memset)"
                            .into(),
                    ));
                }
            }
        }
        if zeros == size_u {
            return Ok((Reg::konst(0), false));
        }
        Ok((Reg::unknown(), false))
    }

    // ---------------------------------------------------------------- jumps
    fn check_jmp(&mut self, st: &mut State, idx: usize, insn: &RawInsn) -> R<Flow> {
        let opc = op(insn.code);
        let is32 = insn.class() == BPF_JMP32;
        let x = source(insn.code) == BPF_X;
        match opc {
            BPF_JA => {
                if insn.src != 0
                    || insn.dst != 0
                    || (!is32 && insn.imm != 0)
                    || (is32 && insn.off != 0)
                {
                    return Err(self.err(st, "BPF_JA uses reserved fields".into()));
                }
                Ok(Flow::Next((idx as i64 + cfg::jump_off(insn) + 1) as usize))
            }
            BPF_CALL => {
                if x || (insn.src != 0
                    && insn.src != BPF_PSEUDO_CALL
                    && insn.src != BPF_PSEUDO_KFUNC_CALL)
                    || insn.dst != 0
                    || is32
                    || (insn.off != 0 && insn.src != BPF_PSEUDO_KFUNC_CALL)
                {
                    return Err(self.err(st, "BPF_CALL uses reserved fields".into()));
                }
                match insn.src {
                    BPF_PSEUDO_CALL => self.check_func_call(st, idx, insn),
                    BPF_PSEUDO_KFUNC_CALL => {
                        self.check_kfunc_call(st, idx, insn)?;
                        Ok(Flow::Next(idx + 1))
                    }
                    _ => {
                        self.check_helper_call(st, insn.imm)?;
                        Ok(Flow::Next(idx + 1))
                    }
                }
            }
            BPF_EXIT => {
                if x || insn.imm != 0 || insn.src != 0 || insn.dst != 0 || is32 {
                    return Err(self.err(st, "BPF_EXIT uses reserved fields".into()));
                }
                self.check_exit(st)
            }
            BPF_JCOND => self.check_may_goto(st, idx, insn),
            _ => self.check_cond_jmp(st, idx, insn),
        }
    }

    /// `may_goto +off` (`check_cond_jmp_op`, BPF_JCOND): this path takes the jump (the
    /// budget is exhausted), the fallthrough (one more iteration) is pushed with
    /// `may_goto_depth + 1` and its imprecise scalars that changed since the previous
    /// visit of this instruction on the path widened to unknown
    /// (`widen_imprecise_scalars`).
    fn check_may_goto(&mut self, st: &mut State, idx: usize, insn: &RawInsn) -> R<Flow> {
        if insn.code != BPF_JMP | BPF_JCOND
            || insn.src != BPF_MAY_GOTO
            || insn.dst != 0
            || insn.imm != 0
        {
            return Err(self.err(st, format!("invalid may_goto imm {}", insn.imm)));
        }
        if let Some(t) = self.opts.target.as_deref() {
            if insn.off == 0 && !t.allows_may_goto_zero() {
                return Err(Self::hint(
                    self.err(st, "invalid may_goto off 0 imm 0".into()),
                    format!(
                        "`may_goto +0` is accepted from Linux {} on; {} refuses it",
                        bpfkit_target::feature_since("may_goto_zero")
                            .map_or("?".into(), |v| v.to_string()),
                        t.describe()
                    ),
                ));
            }
        }
        let prev = self.find_prev_entry(st, idx);
        let mut other = st.clone();
        push_decision(&mut other, idx, false);
        push_decision(st, idx, true);
        other.may_goto_depth += 1;
        if let Some(p) = prev {
            widen_imprecise_scalars(&self.arena[p].state, &mut other);
        }
        self.push_branch(&other, idx + 1)?;
        Ok(Flow::Next((idx as i64 + insn.off as i64 + 1) as usize))
    }

    /// `find_prev_entry`: the newest checkpoint at `idx` still being explored on this
    /// path before the current one (the previous iteration of a loop).
    fn find_prev_entry(&self, st: &State, idx: usize) -> Option<usize> {
        // the checkpoint this visit just added (force checkpoint) is the parent
        let mut p = st.parent.and_then(|a| self.arena[a].state.parent);
        while let Some(a) = p {
            let e = &self.arena[a];
            if e.branches > 0 && self.explored[idx].contains(&a) && same_callsites(&e.state, st) {
                return Some(a);
            }
            p = e.state.parent;
        }
        None
    }

    fn check_exit(&mut self, st: &mut State) -> R<Flow> {
        self.check_exit_in_lock(st)?;
        if st.curframe() == 0 && !st.refs.is_empty() {
            let mut msg = String::new();
            for r in &st.refs {
                msg.push_str(&format!(
                    "Unreleased reference id={} alloc_insn={}\n",
                    r.id, r.insn
                ));
            }
            msg.push_str("BPF_EXIT instruction in main prog would lead to reference leak");
            let f = self.err(st, msg);
            return Err(Self::hint(f, "every path must release what it acquired (bpf_ringbuf_submit/discard, bpf_sk_release) before returning".into()));
        }
        if st.curframe() > 0 && st.cur().in_callback {
            // prepare_func_exit: an unset R0 is "not a scalar value" (no read check)
            let r0 = st.cur().regs[0].clone();
            if !r0.is_scalar() {
                return Err(self.err(st, "R0 not a scalar value".into()));
            }
            self.mark_precise(st, 1, vec![]);
            if r0.b.smax > 1 || r0.b.smin < 0 {
                return Err(self.err_regs(
                    st,
                    format!(
                        "At callback return the register R0 has{} should have been in [0, 1]",
                        ext::smin_smax(&r0.b)
                    ),
                    &[0],
                ));
            }
            let callee = st.frames.pop().expect("callback frame");
            return Ok(Flow::Next(callee.callsite));
        }
        if st.curframe() > 0 {
            // prepare_func_exit: R0 goes back to the caller as it is, even NOT_INIT
            // (the caller fails only if it reads it)
            let r0 = st.cur().regs[0].clone();
            if r0.ty == RegType::Stack {
                return Err(self.err(st, "cannot return stack pointer to the caller".into()));
            }
            let callee = st.frames.pop().expect("callee frame");
            let caller = st.cur_mut();
            caller.regs[0] = r0;
            return Ok(Flow::Next(callee.callsite + 1));
        }
        if st.frames[0].async_cb {
            self.check_async_exit(st)?;
            return Ok(Flow::End);
        }
        self.check_reg_read(st, 0)?;
        let r0 = &st.cur().regs[0];
        if self.is_pointer_value(r0) {
            return Err(self.err(st, "R0 leaks addr as return value".into()));
        }
        if self.cur_global.is_some() && !r0.is_scalar() {
            // check_return_code of a (global) sub-program
            return Err(self.err_regs(
                st,
                format!(
                    "At subprogram exit the register R0 is not a scalar value ({})",
                    r0.type_str()
                ),
                &[0],
            ));
        }
        Ok(Flow::End)
    }

    fn check_func_call(&mut self, st: &mut State, idx: usize, insn: &RawInsn) -> R<Flow> {
        if st.frames.len() >= crate::MAX_CALL_FRAMES {
            return Err(self.err(
                st,
                format!(
                    "the call stack of {} frames is too deep",
                    st.frames.len() + 1
                ),
            ));
        }
        let target = (idx as i64 + insn.imm as i64 + 1) as usize;
        if self.globals.contains_key(&target) {
            return self.check_global_call(st, idx, target);
        }
        let fno = st.frames.len() as u8;
        let mut callee = Frame::new(fno, idx, target);
        for r in 1..=5 {
            callee.regs[r] = st.cur().regs[r].clone();
        }
        let caller = st.cur_mut();
        for r in 0..=5 {
            caller.regs[r] = Reg::not_init();
        }
        st.frames.push(callee);
        Ok(Flow::Next(target))
    }

    fn check_cond_jmp(&mut self, st: &mut State, idx: usize, insn: &RawInsn) -> R<Flow> {
        let opc = op(insn.code);
        let is32 = insn.class() == BPF_JMP32;
        let x = source(insn.code) == BPF_X;
        if opc > BPF_JSLE {
            return Err(self.err(st, format!("invalid BPF_JMP/JMP32 opcode {:x}", opc)));
        }
        if (x && insn.imm != 0) || (!x && insn.src != 0) {
            return Err(self.err(st, "BPF_JMP/JMP32 uses reserved fields".into()));
        }
        if x {
            self.check_reg_read(st, insn.src)?;
        }
        self.check_reg_read(st, insn.dst)?;
        let d = insn.dst as usize;
        let s = insn.src as usize;
        let dst = st.cur().regs[d].clone();
        let src = if x {
            st.cur().regs[s].clone()
        } else {
            Reg::konst(if is32 {
                insn.imm as u32 as u64
            } else {
                insn.imm as i64 as u64
            })
        };
        if x && !(dst.ty.is_pkt_any() && src.ty.is_pkt_any()) && self.is_pointer_value(&src) {
            return Err(self.err(st, format!("R{} pointer comparison prohibited", insn.src)));
        }
        let target = (idx as i64 + insn.off as i64 + 1) as usize;
        let ids = [
            if x && src.is_scalar() { src.id } else { 0 },
            if dst.is_scalar() { dst.id } else { 0 },
        ];
        let linked = self.collect_linked(st, &ids);
        if let Some(h) = st.hist.last_mut() {
            h.linked = linked;
        }
        let pred = is_branch_taken(&dst, &src, opc, is32);
        if pred.is_some() && dst.is_scalar() {
            let mut m = 1u16 << d;
            if x && src.is_scalar() {
                m |= 1 << s;
            }
            self.mark_precise(st, m, vec![]);
        }
        if let Some(taken) = pred {
            // sanitize_speculative_path: the direction not taken may still run
            // speculatively (with the compared registers unknown)
            self.push_speculative_branch(st, idx, insn, if taken { idx + 1 } else { target })?;
            push_decision(st, idx, taken);
            return Ok(Flow::Next(if taken { target } else { idx + 1 }));
        }
        let mut other = st.clone();
        push_decision(&mut other, idx, true);
        push_decision(st, idx, false);

        if dst.is_scalar() && src.is_scalar() {
            let (mut t1, mut t2) = (dst.b, src.b);
            let (mut f1, mut f2) = (dst.b, src.b);
            bounds::refine(&mut f1, &mut f2, bounds::rev_opcode(opc), is32);
            f1.sync();
            f2.sync();
            bounds::refine(&mut t1, &mut t2, opc, is32);
            t1.sync();
            t2.sync();
            set_bounds(&mut other, d, t1);
            set_bounds(st, d, f1);
            if x {
                set_bounds(&mut other, s, t2);
                set_bounds(st, s, f2);
            }
            // a contradiction means the branch is dead
            let t_dead = t1.is_inconsistent() || (x && t2.is_inconsistent());
            let f_dead = f1.is_inconsistent() || (x && f2.is_inconsistent());
            if t_dead != f_dead {
                let m = (1u16 << d) | if x { 1 << s } else { 0 };
                if t_dead {
                    self.mark_precise(st, m, vec![]);
                    return Ok(Flow::Next(idx + 1));
                }
                self.mark_precise(&mut other, m, vec![]);
                *st = other;
                return Ok(Flow::Next(target));
            }
        }
        // Pointer equality with a non-NULL pointer: in the equal branch the maybe-NULL
        // side is not NULL either (only that register: mark_ptr_not_null_reg).
        if !is32
            && x
            && (opc == BPF_JEQ || opc == BPF_JNE)
            && dst.ty.is_pointer()
            && src.ty.is_pointer()
            && dst.ty.may_be_null() != src.ty.may_be_null()
            && !matches!(dst.ty, RegType::BtfId(_) | RegType::BtfIdOrNull(_))
            && !matches!(src.ty, RegType::BtfId(_) | RegType::BtfIdOrNull(_))
        {
            let eq = if opc == BPF_JEQ { &mut other } else { &mut *st };
            let r = if src.ty.may_be_null() { s } else { d };
            let reg = &mut eq.cur_mut().regs[r];
            reg.ty = reg.ty.non_null();
        }
        if !is32
            && !x
            && insn.imm == 0
            && (opc == BPF_JEQ || opc == BPF_JNE)
            && dst.ty.may_be_null()
        {
            let keep = dst.ty == RegType::MapValueOrNull && self.map_has_lock(dst.map);
            mark_ptr_or_null_regs(st, d, opc == BPF_JNE, keep);
            mark_ptr_or_null_regs(&mut other, d, opc == BPF_JEQ, keep);
        } else if !(x && try_match_pkt_pointers(insn, &dst, &src, st, &mut other))
            && self.is_pointer_value(&dst)
        {
            return Err(self.err(st, format!("R{} pointer comparison prohibited", insn.dst)));
        }
        self.push_branch(&other, target)?;
        Ok(Flow::Next(idx + 1))
    }

    // ---------------------------------------------------------------- helpers
    /// `movsx` of a scalar (`insn.off` = 8, 16 or 32 bits), 64-bit or 32-bit: when the
    /// value cannot change (no sign bit reachable), dst and src stay linked by id.
    fn movsx_scalar(&mut self, st: &mut State, insn: &RawInsn, src: &Reg, is64: bool) -> Reg {
        let no_sext = src.b.umax < (1u64 << (insn.off - 1));
        let mut s = src.clone();
        if no_sext && s.id == 0 && !s.b.is_const() {
            s.id = self.new_id();
            st.cur_mut().regs[insn.src as usize].id = s.id;
        }
        if !no_sext {
            s.id = 0;
        }
        s.b = sext(&src.b, insn.off as u32 / 8, is64);
        s
    }

    fn check_helper_call(&mut self, st: &mut State, func: i32) -> R<()> {
        if let Some(t) = self.opts.target.as_deref() {
            if let Some((msg, h)) = crate::target::helper_refusal(t, func) {
                return Err(Self::hint(self.err(st, msg), h));
            }
        }
        self.check_call_in_lock(st, func)?;
        let Some(pr) = helpers::proto(func) else {
            if !(0..helpers::FUNC_MAX_ID).contains(&func) {
                return Err(self.err(st, format!("invalid func {}#{}", helpers::name(func), func)));
            }
            if helpers::KNOWN_UNMODELED.contains(&(func as u32)) {
                return Err(self.unsupported(format!("helper {}#{}", helpers::name(func), func)));
            }
            return Err(self.err(
                st,
                format!(
                    "program of this type cannot use helper {}#{}",
                    helpers::name(func),
                    func
                ),
            ));
        };
        if self.helper_needs_perfmon(func) {
            return Err(Self::hint(
                self.err(
                    st,
                    format!(
                        "program of this type cannot use helper {}#{}",
                        helpers::name(func),
                        func
                    ),
                ),
                format!(
                    "{} needs CAP_PERFMON (or CAP_SYS_ADMIN); the loader runs with --caps {}",
                    helpers::name(func),
                    self.opts.caps
                ),
            ));
        }
        let fname = helpers::name(func);
        if !self.opts.gpl_compatible && helpers::GPL_ONLY.contains(&(func as u32)) {
            return Err(self.err(
                st,
                "cannot call GPL-restricted function from non-GPL compatible program".into(),
            ));
        }
        if pr.might_sleep {
            return Err(self.err(st, "helper call might sleep in a non-sleepable prog".into()));
        }
        let mut ext = ext::ExtArgs::default();
        let mut map: Option<usize> = None;
        let mut release_ref: Option<u32> = None;
        let mut const_key: Option<u64> = None;
        let mut alloc_size: u32 = 0;
        let mut callback: Option<usize> = None;
        for i in 0..5 {
            let a = pr.args[i];
            let regno = (i + 1) as u8;
            if a == Arg::DontCare {
                continue;
            }
            self.check_reg_read(st, regno)?;
            let reg = st.cur().regs[regno as usize].clone();
            if self.check_ext_arg(st, func, a, regno, &reg, map, &mut ext)? {
                continue;
            }
            match a {
                Arg::DontCare => {}
                Arg::Anything => {
                    if self.is_pointer_value(&reg) {
                        return Err(
                            self.err(st, format!("R{} leaks addr into helper function", regno))
                        );
                    }
                }
                Arg::Ctx => {
                    if reg.ty != RegType::Ctx {
                        return Err(self.type_err(st, regno, &reg, "ctx"));
                    }
                    self.check_ptr_off_reg(st, &reg, regno)?;
                }
                Arg::ConstMapPtr => {
                    if reg.ty != RegType::MapPtr {
                        return Err(self.type_err(st, regno, &reg, "map_ptr"));
                    }
                    map = reg.map;
                }
                Arg::MapKey | Arg::MapValue | Arg::UninitMapValue => {
                    let Some(m) = map else {
                        return Err(self.err(st, "invalid map_ptr to access map->key".into()));
                    };
                    let md = &self.maps[m];
                    // resolve_map_arg_type: a sockmap/sockhash update takes a socket,
                    // not memory (ARG_PTR_TO_BTF_ID_SOCK_COMMON); pop/peek make no sense
                    if a == Arg::UninitMapValue && matches!(md.map_type, mt::SOCKMAP | mt::SOCKHASH)
                    {
                        return Err(self.err(st, "invalid arg_type for sockmap/sockhash".into()));
                    }
                    if a == Arg::MapValue && matches!(md.map_type, mt::SOCKMAP | mt::SOCKHASH) {
                        match reg.ty {
                            RegType::Socket | RegType::SockCommon => continue,
                            RegType::BtfId(_) => {
                                return Err(self.unsupported(
                                    "a BTF-typed socket as the value of a sockmap update",
                                ))
                            }
                            _ => {
                                return Err(self.type_err(
                                    st,
                                    regno,
                                    &reg,
                                    "sock_common, sock, tcp_sock, xdp_sock, ptr_, trusted_ptr_",
                                ))
                            }
                        }
                    }
                    let (sz, write) = match a {
                        Arg::MapKey => (md.key_size, false),
                        Arg::MapValue => (md.value_size, false),
                        _ => (md.value_size, true),
                    };
                    if !is_mem_type(reg.ty) {
                        return Err(self.type_err(st, regno, &reg, MEM_TYPES));
                    }
                    // `get_constant_map_key`, only where a constant key can elide the
                    // NULL check (`can_elide_value_nullness`): the key becomes precise
                    if a == Arg::MapKey
                        && reg.ty == RegType::Stack
                        && reg.b.is_const()
                        && matches!(md.map_type, mt::ARRAY | mt::PERCPU_ARRAY)
                    {
                        let koff = reg.off + reg.b.var_off.value as i64 as i32;
                        self.note_stack_read(reg.frameno as usize, koff, koff + sz as i32);
                        const_key = self.stack_const(st, &reg, sz as i32);
                        if const_key.is_some() {
                            let off = reg.off + reg.b.var_off.value as i64 as i32;
                            let spi = ((-off - 1) / REG_SIZE as i32) as u8;
                            self.mark_precise(st, 0, vec![(reg.frameno, spi)]);
                        }
                    }
                    if sz == 0 && reg.ty == RegType::Stack {
                        // check_helper_mem_access without zero_size_allowed (maps whose
                        // key or value size is 0: queues, stacks, ring buffers, ...)
                        return Err(self.err(st, "invalid zero-sized read".into()));
                    }
                    self.check_helper_mem_access(st, regno, &reg, sz as i64, write, false)?;
                }
                Arg::Mem
                | Arg::MemOrNull
                | Arg::UninitMem
                | Arg::MemWrite
                | Arg::MemOrNullWrite => {
                    if matches!(a, Arg::MemOrNull | Arg::MemOrNullWrite) && reg.is_const_zero() {
                        continue;
                    }
                    if !is_mem_type(reg.ty) {
                        return Err(self.type_err(st, regno, &reg, MEM_TYPES));
                    }
                    // checked together with the size argument
                }
                Arg::ConstSize | Arg::ConstSizeOrZero => {
                    if !reg.is_scalar() {
                        return Err(self.type_err(st, regno, &reg, "scalar"));
                    }
                    let zero_ok = a == Arg::ConstSizeOrZero;
                    let prev = pr.args[i - 1];
                    let mem = st.cur().regs[i].clone();
                    self.mark_precise(st, 1 << regno, vec![]);
                    if reg.b.smin < 0 {
                        return Err(self.err_regs(
                            st,
                            format!(
                                "R{} min value is negative, either use unsigned or 'var &= const'",
                                regno
                            ),
                            &[regno],
                        ));
                    }
                    if reg.b.umin == 0 && !zero_ok {
                        return Err(self.err_regs(
                            st,
                            format!(
                                "R{} invalid zero-sized read: u64=[{},{}]",
                                regno, reg.b.umin as i64, reg.b.umax as i64
                            ),
                            &[regno],
                        ));
                    }
                    if reg.b.umax >= BPF_MAX_VAR_SIZ {
                        return Err(self.err_regs(st, format!("R{} unbounded memory access, use 'var &= const' or 'if (var < const)'", regno), &[regno]));
                    }
                    if matches!(prev, Arg::MemOrNull | Arg::MemOrNullWrite) && mem.is_const_zero() {
                        // check_helper_mem_access: only a zero-byte access may use NULL
                        if zero_ok && reg.b.umax == 0 {
                            continue;
                        }
                        return Err(self.type_err(st, i as u8, &mem, "fp"));
                    }
                    let write =
                        matches!(prev, Arg::UninitMem | Arg::MemWrite | Arg::MemOrNullWrite);
                    if matches!(prev, Arg::MemWrite | Arg::MemOrNullWrite)
                        && mem.ty != RegType::MapValue
                    {
                        // MEM_WRITE without MEM_UNINIT: the memory must be initialised too
                        // (the kernel checks such an argument as a BPF_WRITE only, so a
                        // map value of a BPF_F_WRONLY_PROG map is fine)
                        self.check_helper_mem_access(
                            st,
                            i as u8,
                            &mem,
                            reg.b.umax as i64,
                            false,
                            zero_ok,
                        )?;
                    }
                    self.check_helper_mem_access(
                        st,
                        i as u8,
                        &mem,
                        reg.b.umax as i64,
                        write,
                        zero_ok,
                    )?;
                }
                Arg::AllocSizeOrZero => {
                    if !reg.is_scalar() {
                        return Err(self.type_err(st, regno, &reg, "scalar"));
                    }
                    if !reg.b.is_const() {
                        return Err(self.err_regs(
                            st,
                            format!("R{} is not a known constant'", regno),
                            &[regno],
                        ));
                    }
                    alloc_size = reg.b.var_off.value as u32;
                    self.mark_precise(st, 1 << regno, vec![]);
                }
                Arg::RingbufMemRelease => {
                    if reg.ty != RegType::RingbufMem {
                        let f = self.type_err(st, regno, &reg, "ringbuf_mem");
                        return Err(if reg.ty == RegType::RingbufMemOrNull {
                            Self::hint(
                                f,
                                "check the bpf_ringbuf_reserve() result for NULL first".into(),
                            )
                        } else {
                            f
                        });
                    }
                    if reg.off != 0 || !reg.b.is_const() || reg.b.var_off.value != 0 {
                        return Err(self.err_regs(
                            st,
                            format!(
                                "R{} must have zero offset when passed to release func",
                                regno
                            ),
                            &[regno],
                        ));
                    }
                    release_ref = Some(reg.ref_obj_id);
                }
                Arg::Func => {
                    if reg.ty != RegType::Func {
                        return Err(self.type_err(st, regno, &reg, "func"));
                    }
                    callback = Some(reg.subprog);
                }
                Arg::StackOrNull => {
                    if !(reg.ty == RegType::Stack || reg.is_const_zero()) {
                        return Err(self.type_err(st, regno, &reg, "fp"));
                    }
                }
                Arg::SockRelease => {
                    if reg.ty == RegType::XdpSock {
                        return Err(self.unsupported("bpf_sk_release of an XDP socket"));
                    }
                    if !matches!(reg.ty, RegType::Socket | RegType::SockCommon) {
                        return Err(self.type_err(
                            st,
                            regno,
                            &reg,
                            "sock_common, sock, tcp_sock, xdp_sock, ptr_, trusted_ptr_",
                        ));
                    }
                    release_ref = Some(reg.ref_obj_id);
                }
                // checked by `check_ext_arg`
                Arg::MapValueOrNull
                | Arg::ConstStr
                | Arg::SpinLock
                | Arg::Timer
                | Arg::BtfIdSockCommon { .. }
                | Arg::BtfIdTask { .. }
                | Arg::BtfIdCgroup { .. }
                | Arg::PercpuBtfId
                | Arg::KptrXchgDest
                | Arg::Dynptr
                | Arg::FixedMem(_)
                | Arg::FixedUninitMemAligned(_)
                | Arg::FixedMemWriteAligned(_) => {}
            }
        }
        // record_func_map: a BPF_F_RDONLY_PROG map (and devmaps) may not be changed
        // through the map helpers
        if let Some(m) = map {
            if self.maps[m].map_flags & BPF_F_RDONLY_PROG != 0 && matches!(func, 2 | 3 | 87 | 88) {
                return Err(self.err(st, "write into map forbidden".into()));
            }
        }
        self.after_ext_args(st, func, &ext)?;
        if let Some(m) = map {
            let t = self.maps[m].map_type;
            if func == 12 && t != mt::PROG_ARRAY {
                return Err(self.err(st, "expected prog array map for tail call".into()));
            }
            if !helpers::map_func_compatible(t, func as u32) {
                return Err(self.err(
                    st,
                    format!("cannot pass map_type {} into func {}#{}", t, fname, func),
                ));
            }
        }
        if let Some(id) = release_ref {
            if id == 0 || !st.refs.iter().any(|r| r.id == id) {
                return Err(self.err(
                    st,
                    format!(
                        "release kernel function {} expects refcounted PTR_TO_BTF_ID",
                        fname
                    ),
                ));
            }
            st.refs.retain(|r| r.id != id);
            let allow = self.allow_ptr_leaks;
            st.for_each_reg(|r| {
                if r.ref_obj_id == id {
                    *r = if allow {
                        Reg::unknown()
                    } else {
                        Reg::not_init()
                    };
                }
            });
        }
        if func == 12 {
            // remember the tail-call site for the object's tail-call graph
            let r3 = &st.cur().regs[3];
            let idx = if r3.is_scalar() && r3.b.is_const() {
                Some(r3.b.var_off.value)
            } else {
                None
            };
            if let Some(m) = map {
                if !self.tail_calls.contains(&(m, idx)) {
                    self.tail_calls.push((m, idx));
                }
            }
        }
        if func == 12 && !st.refs.is_empty() {
            let mut msg = String::new();
            for r in &st.refs {
                msg.push_str(&format!(
                    "Unreleased reference id={} alloc_insn={}\n",
                    r.id, r.insn
                ));
            }
            msg.push_str("tail_call would lead to reference leak");
            return Err(self.err(st, msg));
        }
        if let Some(target) = callback {
            // push_callback_call: explore the callback in a new frame as a branch; its
            // exit returns to this call instruction, which runs it again until the
            // states converge. This path continues as if it ran zero times.
            if st.frames.len() >= crate::MAX_CALL_FRAMES {
                return Err(self.err(
                    st,
                    format!(
                        "the call stack of {} frames is too deep",
                        st.frames.len() + 1
                    ),
                ));
            }
            if func == 170 {
                let m = ext.timer_map.expect("timer argument checked");
                self.push_timer_callback(st, target, m)?;
            } else if func == 181 && {
                // bpf_loop: R1 (nr_loops) bounds the iterations simulated; it is made
                // precise, and once callback_depth reaches its umax the path goes on
                // without another iteration ("bpf_loop iteration limit reached")
                self.mark_precise(st, 1 << 1, vec![]);
                st.cur().callback_depth as u64 >= st.cur().regs[1].b.umax
            } {
                st.cur_mut().callback_depth = 0;
            } else {
                let mut cb = st.clone();
                cb.cb_unroll += 1;
                cb.cur_mut().callback_depth += 1;
                let fno = cb.frames.len() as u8;
                let mut f = Frame::new(fno, self.idx, target);
                f.in_callback = true;
                self.callback_regs(st, func, &mut f, map)?;
                cb.frames.push(f);
                self.push_branch(&cb, target)?;
            }
        }
        // clobber caller-saved registers
        for r in 1..=5 {
            st.cur_mut().regs[r] = Reg::not_init();
        }
        let r0 = match pr.ret {
            Ret::Integer => Reg::unknown(),
            // RET_VOID: the kernel leaves R0 uninitialised
            Ret::Void => Reg::not_init(),
            Ret::MapValueOrNull
                if map.is_some_and(|m| {
                    matches!(self.maps[m].map_type, mt::ARRAY_OF_MAPS | mt::HASH_OF_MAPS)
                }) =>
            {
                let m = map.expect("checked");
                let Some(inner) = self.inner_of.get(m).copied().flatten() else {
                    return Err(self.unsupported("map-in-map without an inner map template"));
                };
                let mut r = Reg::ptr(RegType::MapPtrOrNull);
                r.map = Some(inner);
                r.id = self.new_id();
                r
            }
            Ret::MapValueOrNull
                if func == 1
                    && map.is_some_and(|m| {
                        matches!(
                            self.maps[m].map_type,
                            mt::SOCKMAP | mt::SOCKHASH | mt::XSKMAP
                        )
                    }) =>
            {
                // a sockmap/sockhash lookup is `sock_or_null` and acquires a reference
                // (is_acquire_function); an XSKMAP one becomes an XDP socket after the
                // NULL check (mark_ptr_not_null_reg)
                let m = map.expect("checked");
                let sock = self.maps[m].map_type != mt::XSKMAP;
                let mut r = Reg::ptr(if sock {
                    RegType::SocketOrNull
                } else {
                    RegType::MapXskOrNull
                });
                r.map = Some(m);
                if sock {
                    let id = self.new_id();
                    r.id = id;
                    r.ref_obj_id = id;
                    st.refs.push(RefState { id, insn: self.idx });
                } else {
                    r.id = self.new_id();
                }
                r
            }
            Ret::MapValueOrNull => {
                let m = map.expect("map helper has a map argument");
                let md = &self.maps[m];
                let non_null = matches!(md.map_type, mt::ARRAY | mt::PERCPU_ARRAY)
                    && func == 1
                    && const_key.is_some_and(|k| k < md.max_entries as u64);
                let mut r = Reg::ptr(if non_null {
                    RegType::MapValue
                } else {
                    RegType::MapValueOrNull
                });
                r.map = Some(m);
                if !non_null || self.map_has_lock(Some(m)) {
                    r.id = self.new_id();
                }
                r
            }
            Ret::SockBtfIdOrNull => {
                let mut r = Reg::ptr(RegType::BtfIdOrNull(BtfObj::Sock));
                r.id = self.new_id();
                r.ref_obj_id = ext.cast_ref;
                r
            }
            Ret::TaskBtfId => Reg::ptr(RegType::BtfId(BtfObj::Task)),
            Ret::DynptrMemOrNull => {
                let d = ext.dynptr.unwrap_or_default();
                let mut r = Reg::ptr(RegType::MemOrNull);
                r.mem_size = alloc_size;
                r.id = self.new_id();
                r.dynptr_id = d.id;
                r.ref_obj_id = d.ref_obj_id;
                r
            }
            Ret::PtRegsBtfId => Reg::ptr(RegType::BtfId(BtfObj::PtRegs)),
            Ret::RingbufMemOrNull => {
                let mut r = Reg::ptr(RegType::RingbufMemOrNull);
                r.mem_size = alloc_size;
                r.id = self.new_id();
                r
            }
            Ret::SocketOrNull => {
                let mut r = Reg::ptr(RegType::SocketOrNull);
                r.id = self.new_id();
                r
            }
            Ret::SockCommonOrNull => {
                let mut r = Reg::ptr(RegType::SockCommonOrNull);
                r.id = self.new_id();
                r
            }
        };
        let mut r0 = r0;
        if pr.acquires {
            // acquire_reference() takes a fresh id after the maybe-null id
            let id = self.new_id();
            r0.id = id;
            r0.ref_obj_id = id;
            st.refs.push(RefState { id, insn: self.idx });
        }
        st.cur_mut().regs[0] = r0;
        if pr.changes_pkt_data {
            self.clear_all_pkt_pointers(st);
        }
        Ok(())
    }

    /// `clear_all_pkt_pointers`: after a call that may move the packet (a helper or a
    /// global function that changes packet data), no register or spilled slot of any
    /// frame may keep a packet pointer (unknown scalars when pointer leaks are allowed).
    pub(crate) fn clear_all_pkt_pointers(&self, st: &mut State) {
        let allow = self.allow_ptr_leaks;
        st.for_each_reg(|r| {
            if r.ty.is_pkt_any()
                || (matches!(r.ty, RegType::Mem | RegType::MemOrNull) && r.mem_flags & MEM_PKT != 0)
            {
                *r = if allow {
                    Reg::unknown()
                } else {
                    Reg::not_init()
                };
            }
        });
    }

    fn type_err(&self, st: &State, regno: u8, reg: &Reg, expected: &str) -> Fail {
        self.err_regs(
            st,
            format!("R{} type={} expected={}", regno, reg.type_str(), expected),
            &[regno],
        )
    }

    /// Value of `size` constant bytes on the stack at `reg` (for array-map keys).
    fn stack_const(&self, st: &State, reg: &Reg, size: i32) -> Option<u64> {
        // `get_constant_map_key`, to the byte: only bytes of the key's first 8-byte
        // slot count (from the key's lowest byte up to the slot's top), zeros first,
        // then a scalar spill that starts at the slot's bottom and whose spilled
        // bytes from the key up number exactly the key size. The key is then the
        // whole spilled register value, as the kernel takes it.
        if !self.opts.caps.bpf_capable() {
            return None; // !env->bpf_capable
        }
        let off = reg.off + reg.b.var_off.value as i64 as i32;
        if off >= 0 {
            return None;
        }
        let fr = &st.frames[reg.frameno as usize];
        let b = (-off - 1) as usize;
        let (spi, boff) = (b / REG_SIZE, b % REG_SIZE);
        if spi >= SLOTS {
            return None;
        }
        let slot = fr.slot(spi);
        let run = |t: Slot| (0..=boff).rev().take_while(|&i| slot.ty[i] == t).count() as i32;
        if run(Slot::Zero) >= size {
            return Some(0);
        }
        if !(slot.is_spilled() && slot.spilled.is_scalar()) {
            return None;
        }
        if run(Slot::Spill) != size || !slot.spilled.b.is_const() {
            return None;
        }
        Some(slot.spilled.b.var_off.value)
    }

    /// `check_helper_mem_access`.
    fn check_helper_mem_access(
        &mut self,
        st: &mut State,
        regno: u8,
        reg: &Reg,
        size: i64,
        write: bool,
        zero_ok: bool,
    ) -> R<()> {
        let size = size as i32;
        match reg.ty {
            RegType::Packet | RegType::PacketMeta => {
                self.check_packet_access(st, regno, reg, reg.off, size, zero_ok)
            }
            RegType::MapValue => {
                let md = &self.maps[reg.map.expect("map")];
                if write && md.map_flags & BPF_F_RDONLY_PROG != 0 {
                    return Err(self.err(
                        st,
                        format!(
                            "write into map forbidden, value_size={} off={} size={}",
                            md.value_size, reg.off, size
                        ),
                    ));
                }
                // check_map_access_type: helpers that read the value (every memory
                // argument without MEM_WRITE) may not take a BPF_F_WRONLY_PROG value
                if !write && md.map_flags & BPF_F_WRONLY_PROG != 0 {
                    return Err(self.err(
                        st,
                        format!(
                            "read from map forbidden, value_size={} off={} size={}",
                            md.value_size, reg.off, size
                        ),
                    ));
                }
                self.check_mem_region_access(
                    st,
                    regno,
                    reg,
                    reg.off,
                    size,
                    md.value_size as i64,
                    zero_ok,
                )?;
                self.check_map_fields(st, reg, reg.off, size)
            }
            RegType::MapKey => {
                if write {
                    return Err(self.err(
                        st,
                        format!("R{} cannot write into {}", regno, reg.type_str()),
                    ));
                }
                self.check_mem_region_access(
                    st,
                    regno,
                    reg,
                    reg.off,
                    size,
                    reg.mem_size as i64,
                    false,
                )
            }
            RegType::RingbufMem | RegType::Mem => self.check_mem_region_access(
                st,
                regno,
                reg,
                reg.off,
                size,
                reg.mem_size as i64,
                zero_ok,
            ),
            RegType::Stack => {
                if size == 0 && zero_ok {
                    return Ok(());
                }
                self.check_stack_access_within_bounds(st, regno, reg, reg.off, size, write, true)?;
                let fno = reg.frameno as usize;
                let (min_off, max_off) = if reg.b.is_const() {
                    let m = reg.off + reg.b.var_off.value as i64 as i32;
                    (m, m + size)
                } else {
                    (
                        (reg.b.smin + reg.off as i64) as i32,
                        (reg.b.smax + reg.off as i64) as i32 + size,
                    )
                };
                self.grow_stack(st, fno, min_off);
                let sp = st.frames[fno].subprog;
                self.fastcall.contract(sp, self.idx, min_off);
                if !write {
                    self.note_stack_read(fno, min_off, max_off);
                }
                let allow_uninit = self.opts.caps.allow_uninit_stack();
                let allow_leaks = self.allow_ptr_leaks;
                for a in min_off..max_off {
                    let b = (-a - 1) as usize;
                    let (spi, bi) = (b / REG_SIZE, b % REG_SIZE);
                    if write && st.frames[fno].slot(spi).ty[bi] == Slot::Dynptr {
                        return Err(self.err(
                            st,
                            format!("potential write to dynptr at off={} disallowed", a),
                        ));
                    }
                    if write && !allow_leaks && {
                        let sl = st.frames[fno].slot(spi);
                        sl.is_spilled() && spectre::kernel_spillable(sl.spilled.ty)
                    } {
                        // the kernel simulates a helper's raw write byte by byte
                        // (check_stack_write_fixed_off, size 1)
                        return Err(
                            self.err(st, "attempt to corrupt spilled pointer on stack".into())
                        );
                    }
                    let slot = st.frames[fno].slot_mut(spi);
                    if write {
                        if slot.is_spilled() {
                            slot.spilled = Reg::not_init();
                            for t in slot.ty.iter_mut() {
                                if *t == Slot::Spill {
                                    *t = Slot::Misc;
                                }
                            }
                        }
                        slot.ty[bi] = Slot::Misc;
                        continue;
                    }
                    let t = slot.ty[bi];
                    let ok = match t {
                        Slot::Misc | Slot::Zero => true,
                        Slot::Invalid => allow_uninit,
                        Slot::Spill => slot.spilled.is_scalar() || allow_leaks,
                        Slot::Dynptr => false,
                    };
                    if !ok {
                        let f = if reg.b.is_const() {
                            format!(
                                "invalid read from stack R{} off {}+{} size {}",
                                regno,
                                min_off,
                                a - min_off,
                                size
                            )
                        } else {
                            format!(
                                "invalid read from stack R{} var_off {}+{} size {}",
                                regno,
                                reg.b.var_off,
                                a - min_off,
                                size
                            )
                        };
                        return Err(Self::hint(self.err(st, f), "initialise the whole buffer on the stack before passing it to the helper".into()));
                    }
                }
                Ok(())
            }
            _ => Err(self.type_err(st, regno, reg, MEM_TYPES)),
        }
    }

    /// `check_max_stack_depth`: combined stack of call chains.
    fn check_max_stack_depth(&self) -> R<()> {
        // static call graph over sub-programs
        let subs = &self.cfg.subprogs;
        let n = self.insns.len();
        let sub_of = |i: usize| subs.iter().rposition(|&s| s <= i).unwrap_or(0);
        let mut calls: Vec<Vec<(usize, usize)>> = vec![vec![]; subs.len()];
        for (i, insn) in self.insns.iter().enumerate() {
            if self.cfg.is_lddw_hi[i] {
                continue;
            }
            if insn.code == BPF_JMP | BPF_CALL && insn.src == BPF_PSEUDO_CALL {
                let t = (i as i64 + insn.imm as i64 + 1) as usize;
                if t < n {
                    calls[sub_of(i)].push((i, sub_of(t)));
                }
            }
        }
        fn dfs(
            s: usize,
            depth: i32,
            frames: usize,
            calls: &[Vec<(usize, usize)>],
            sd: &[i32],
            at: usize,
        ) -> Result<(), (usize, String)> {
            // `sd` is already rounded (round_up_stack_depth)
            let d = depth + sd[s];
            if frames > crate::MAX_CALL_FRAMES {
                return Err((
                    at,
                    // check_max_stack_depth_subprog counts the frame index (0-based)
                    format!("the call stack of {} frames is too deep !", frames - 1),
                ));
            }
            if d > MAX_BPF_STACK {
                return Err((
                    at,
                    format!(
                        "combined stack size of {} calls is {}. Too large",
                        frames, d
                    ),
                ));
            }
            for &(ci, t) in &calls[s] {
                if frames > 64 {
                    break;
                }
                dfs(t, d, frames + 1, calls, sd, ci)?;
            }
            Ok(())
        }
        // jit_requested: the JIT is on (bpfkit models x86-64 kernels with the JIT; a
        // probed target with bpf_jit_enable=0 runs the interpreter). With the JIT,
        // remove_fastcall_spills_fills runs before check_max_stack_depth and
        // round_up_stack_depth rounds to 16 bytes; the interpreter keeps the spills
        // and rounds to 32, at least one
        let jit = self.opts.target.as_deref().and_then(|t| t.jit_enable) != Some(0);
        let depth: Vec<i32> = if jit {
            self.fastcall
                .depths(&self.stack_depth)
                .iter()
                .map(|&d| round_up(d, 16))
                .collect()
        } else {
            self.stack_depth
                .iter()
                .map(|&d| round_up(d.max(1), 32))
                .collect()
        };
        if let Err((at, m)) = dfs(0, 0, 1, &calls, &depth, 0) {
            return Err(Fail::reject(at, m));
        }
        Ok(())
    }
}

const MEM_TYPES: &str =
    "fp, pkt, pkt_meta, map_key, map_value, mem, ringbuf_mem, buf, trusted_ptr_";

fn is_mem_type(t: RegType) -> bool {
    matches!(
        t,
        RegType::Stack
            | RegType::Packet
            | RegType::PacketMeta
            | RegType::MapKey
            | RegType::MapValue
            | RegType::RingbufMem
            | RegType::Mem
    )
}

fn mem_msg(reg: &Reg, off: i64, size: i32, mem_size: i64, zero_ok: bool) -> Result<(), String> {
    let size_ok = size > 0 || (size == 0 && zero_ok);
    if off >= 0 && size_ok && off + size as i64 <= mem_size {
        return Ok(());
    }
    Err(match reg.ty {
        RegType::MapValue => format!(
            "invalid access to map value, value_size={} off={} size={}",
            mem_size, off, size
        ),
        RegType::MapKey => format!(
            "invalid access to map key, key_size={} off={} size={}",
            mem_size, off, size
        ),
        _ => format!(
            "invalid access to memory, mem_size={} off={} size={}",
            mem_size, off, size
        ),
    })
}

fn save_register_state(slot: &mut StackSlot, reg: Reg, size: usize) {
    slot.spilled = reg;
    for i in (REG_SIZE - size)..REG_SIZE {
        slot.ty[i] = Slot::Spill;
    }
    for i in 0..(REG_SIZE - size) {
        if slot.ty[i] != Slot::Zero && slot.ty[i] != Slot::Invalid {
            slot.ty[i] = Slot::Misc;
        } else if slot.ty[i] == Slot::Invalid {
            // mark_stack_slot_misc keeps STACK_INVALID when pointer leaks are allowed
        }
    }
}

fn set_bounds(st: &mut State, r: usize, b: Bounds) {
    let reg = &mut st.cur_mut().regs[r];
    reg.b = b;
    let id = reg.id;
    if id != 0 && reg.is_scalar() {
        // sync_linked_regs
        st.for_each_reg(|x| {
            if x.is_scalar() && x.id == id {
                x.b = b;
            }
        });
    }
}

/// Branch decisions kept per path (the most recent ones).
const PATH_KEEP: usize = 48;

/// `widen_imprecise_scalars` / `maybe_widen_reg`: a scalar that is imprecise in both
/// states and differs becomes unknown in `cur`, so loop iterations converge.
fn widen_imprecise_scalars(old: &State, cur: &mut State) {
    let mut idmap = vec![];
    let top = old.curframe().min(cur.curframe());
    for fr in (0..=top).rev() {
        let (fo, fc) = (&old.frames[fr], &mut cur.frames[fr]);
        let widen = |o: &Reg, c: &mut Reg, idmap: &mut Vec<(u32, u32)>| {
            if !o.is_scalar() || !c.is_scalar() || o.precise || c.precise {
                return;
            }
            if regsafe(o, c, true, false, idmap) {
                return;
            }
            *c = Reg::unknown();
        };
        for r in 0..11 {
            widen(&fo.regs[r], &mut fc.regs[r], &mut idmap);
        }
        for (so, sc) in fo.stack.iter().zip(fc.stack.iter_mut()) {
            if so.is_spilled() && sc.is_spilled() {
                widen(&so.spilled, &mut sc.spilled, &mut idmap);
            }
        }
    }
}

fn push_decision(st: &mut State, insn: usize, taken: bool) {
    if st.path.len() >= 2 * PATH_KEEP {
        st.path.drain(..PATH_KEEP);
    }
    st.path.push(Decision { insn, taken });
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    NotExact,
    RangeWithin,
    Exact,
}

fn same_callsites(a: &State, b: &State) -> bool {
    a.frames.len() == b.frames.len()
        && a.frames
            .iter()
            .zip(b.frames.iter())
            .all(|(x, y)| x.callsite == y.callsite)
}

fn check_ids(old: u32, cur: u32, map: &mut Vec<(u32, u32)>) -> bool {
    // either both ids are set or both are zero
    if (old == 0) != (cur == 0) {
        return false;
    }
    if old == 0 {
        return true;
    }
    for &(o, c) in map.iter() {
        if o == old {
            return c == cur;
        }
        if c == cur {
            return false;
        }
    }
    map.push((old, cur));
    true
}

/// Temporary ids handed to scalars without an id during one comparison (above any
/// id the verifier allocates).
const TMP_ID_BASE: u32 = 1 << 31;

/// `check_scalar_ids`: a scalar without an id gets a fresh temporary one.
fn check_scalar_ids(old: u32, cur: u32, idmap: &mut Vec<(u32, u32)>) -> bool {
    let old = if old != 0 {
        old
    } else {
        TMP_ID_BASE + 2 * idmap.len() as u32
    };
    let cur = if cur != 0 {
        cur
    } else {
        TMP_ID_BASE + 2 * idmap.len() as u32 + 1
    };
    check_ids(old, cur, idmap)
}

/// `regsafe`.
/// `explore_alu_limits`: `env->explore_alu_limits`, scalars must be equal (their
/// bounds and offset; ids as `check_scalar_ids`), precise or not.
fn regsafe(
    old: &Reg,
    cur: &Reg,
    exact: bool,
    explore_alu_limits: bool,
    idmap: &mut Vec<(u32, u32)>,
) -> bool {
    if old.ty == RegType::NotInit && (!exact || cur.ty == RegType::NotInit) {
        return true;
    }
    if old.ty != cur.ty || old.mem_flags != cur.mem_flags {
        return false;
    }
    if exact {
        return old.b == cur.b
            && old.off == cur.off
            && old.range == cur.range
            && old.map == cur.map
            && old.frameno == cur.frameno
            && old.mem_size == cur.mem_size
            && old.dynptr_id == cur.dynptr_id
            && check_ids(old.id, cur.id, idmap)
            && check_ids(old.ref_obj_id, cur.ref_obj_id, idmap);
    }
    match old.ty {
        RegType::Scalar => {
            if explore_alu_limits {
                return old.b == cur.b
                    && old.off == cur.off
                    && check_scalar_ids(old.id, cur.id, idmap);
            }
            if !old.precise {
                return true;
            }
            if !(old.b.range_within(&cur.b) && old.b.var_off.contains(cur.b.var_off)) {
                return false;
            }
            // `check_scalar_ids`: an old id constrains; a current scalar without an
            // id is unique, so it gets a fresh temporary id
            if old.id == 0 {
                return true;
            }
            let cur_id = if cur.id != 0 {
                cur.id
            } else {
                TMP_ID_BASE + idmap.len() as u32
            };
            check_ids(old.id, cur_id, idmap)
        }
        RegType::MapValue
        | RegType::MapValueOrNull
        | RegType::RingbufMem
        | RegType::RingbufMemOrNull
        | RegType::Mem
        | RegType::MemOrNull
        | RegType::MapKey => {
            old.off == cur.off
                && old.map == cur.map
                && old.mem_size == cur.mem_size
                && old.dynptr_id == cur.dynptr_id
                && old.b.range_within(&cur.b)
                && old.b.var_off.contains(cur.b.var_off)
                && check_ids(old.id, cur.id, idmap)
                && check_ids(old.ref_obj_id, cur.ref_obj_id, idmap)
        }
        RegType::Packet | RegType::PacketMeta => {
            if old.range < 0 || cur.range < 0 {
                // AT_PKT_END / BEYOND_PKT_END markers must match exactly
                if old.range != cur.range {
                    return false;
                }
            } else if old.range > cur.range {
                return false;
            }
            if old.off != cur.off {
                return false;
            }
            if !check_ids(old.id, cur.id, idmap) {
                return false;
            }
            old.b.range_within(&cur.b) && old.b.var_off.contains(cur.b.var_off)
        }
        _ => {
            old.b == cur.b
                && old.off == cur.off
                && old.range == cur.range
                && old.map == cur.map
                && old.frameno == cur.frameno
                && old.subprog == cur.subprog
                && check_ids(old.id, cur.id, idmap)
                && check_ids(old.ref_obj_id, cur.ref_obj_id, idmap)
        }
    }
}

/// `is_branch_taken`.
fn is_branch_taken(r1: &Reg, r2: &Reg, opc: u8, is32: bool) -> Option<bool> {
    if r1.ty.is_pkt_any() && r2.ty.is_pkt_any() && !is32 {
        return pkt_ptr_branch_taken(r1, r2, opc);
    }
    if r1.ty.is_pointer() || r2.ty.is_pointer() {
        if is32 {
            // measured on 6.18: `if w0 == 0` with R0 a non-NULL map value is not
            // decided (without CAP_PERFMON it is `R0 pointer comparison prohibited`)
            return None;
        }
        let (p, k, opc) = if !r2.b.is_const_w(is32) || r2.ty.is_pointer() {
            (r2, r1, bounds::flip_opcode(opc))
        } else {
            (r1, r2, opc)
        };
        if k.ty.is_pointer() || !k.b.is_const_w(is32) {
            return None;
        }
        if !p.ty.not_null() {
            return None;
        }
        if k.b.const_val(is32) != 0 {
            return None;
        }
        return match opc {
            BPF_JEQ => Some(false),
            BPF_JNE => Some(true),
            _ => None,
        };
    }
    bounds::branch_taken(&r1.b, &r2.b, opc, is32)
}

fn pkt_ptr_branch_taken(dst: &Reg, src: &Reg, opc: u8) -> Option<bool> {
    let (pkt, opc) = if src.ty == RegType::PacketEnd {
        (dst, opc)
    } else if dst.ty == RegType::PacketEnd {
        (src, bounds::flip_opcode(opc))
    } else {
        return None;
    };
    if pkt.range >= 0 {
        return None;
    }
    match opc {
        BPF_JLE | BPF_JGT if pkt.range == BEYOND_PKT_END => Some(opc == BPF_JGT),
        BPF_JLT | BPF_JGE if pkt.range == BEYOND_PKT_END || pkt.range == AT_PKT_END => {
            Some(opc == BPF_JGE)
        }
        _ => None,
    }
}

/// `keep_id`: the value holds a `bpf_spin_lock`, whose identity is the pointer's id.
fn mark_ptr_or_null_regs(st: &mut State, regno: usize, is_null: bool, keep_id: bool) {
    let reg = &st.cur().regs[regno];
    let id = reg.id;
    let ref_id = reg.ref_obj_id;
    if id == 0 {
        return;
    }
    if is_null && ref_id != 0 && ref_id == id {
        st.refs.retain(|r| r.id != id);
    }
    st.for_each_reg(|r| {
        if r.ty.may_be_null() && r.id == id {
            if is_null {
                *r = Reg::konst(0);
            } else {
                r.ty = r.ty.non_null();
                if !keep_id {
                    r.id = 0;
                }
            }
        }
    });
}

fn find_good_pkt_pointers(st: &mut State, dst: &Reg, ty: RegType, right_open: bool) {
    if dst.off < 0 || (dst.off == 0 && right_open) {
        return;
    }
    if dst.b.umax > MAX_PACKET_OFF || dst.b.umax + dst.off as u64 > MAX_PACKET_OFF {
        return;
    }
    let mut new_range = dst.off;
    if right_open {
        new_range += 1;
    }
    let id = dst.id;
    st.for_each_reg(|r| {
        if r.ty == ty && r.id == id {
            r.range = r.range.max(new_range);
        }
    });
}

fn mark_pkt_end(st: &mut State, regno: usize, range_open: bool) {
    let r = &mut st.cur_mut().regs[regno];
    r.range = if range_open {
        BEYOND_PKT_END
    } else {
        AT_PKT_END
    };
}

fn is_init_pkt(r: &Reg) -> bool {
    r.ty == RegType::Packet && r.off == 0 && r.b.is_const() && r.b.var_off.value == 0
}

/// `try_match_pkt_pointers`. `this` is the fall-through state, `other` the jump target.
fn try_match_pkt_pointers(
    insn: &RawInsn,
    dst: &Reg,
    src: &Reg,
    this: &mut State,
    other: &mut State,
) -> bool {
    if insn.class() == BPF_JMP32 {
        return false;
    }
    let (d, s) = (insn.dst as usize, insn.src as usize);
    let fwd = (dst.ty == RegType::Packet && src.ty == RegType::PacketEnd)
        || (dst.ty == RegType::PacketMeta && is_init_pkt(src));
    let rev = (dst.ty == RegType::PacketEnd && src.ty == RegType::Packet)
        || (is_init_pkt(dst) && src.ty == RegType::PacketMeta);
    match op(insn.code) {
        BPF_JGT => {
            if fwd {
                find_good_pkt_pointers(this, dst, dst.ty, false);
                mark_pkt_end(other, d, true);
            } else if rev {
                find_good_pkt_pointers(other, src, src.ty, true);
                mark_pkt_end(this, s, false);
            } else {
                return false;
            }
        }
        BPF_JLT => {
            if fwd {
                find_good_pkt_pointers(other, dst, dst.ty, true);
                mark_pkt_end(this, d, false);
            } else if rev {
                find_good_pkt_pointers(this, src, src.ty, false);
                mark_pkt_end(other, s, true);
            } else {
                return false;
            }
        }
        BPF_JGE => {
            if fwd {
                find_good_pkt_pointers(this, dst, dst.ty, true);
                mark_pkt_end(other, d, false);
            } else if rev {
                find_good_pkt_pointers(other, src, src.ty, false);
                mark_pkt_end(this, s, true);
            } else {
                return false;
            }
        }
        BPF_JLE => {
            if fwd {
                find_good_pkt_pointers(other, dst, dst.ty, false);
                mark_pkt_end(this, d, true);
            } else if rev {
                find_good_pkt_pointers(this, src, src.ty, true);
                mark_pkt_end(other, s, false);
            } else {
                return false;
            }
        }
        _ => return false,
    }
    true
}

fn size_bytes(code: u8) -> i32 {
    match size(code) {
        BPF_B => 1,
        BPF_H => 2,
        BPF_W => 4,
        _ => 8,
    }
}

fn alu_str(opc: u8) -> &'static str {
    match opc {
        BPF_ADD => "+=",
        BPF_SUB => "-=",
        BPF_MUL => "*=",
        BPF_DIV => "/=",
        BPF_OR => "|=",
        BPF_AND => "&=",
        BPF_LSH => "<<=",
        BPF_RSH => ">>=",
        BPF_NEG => "neg",
        BPF_MOD => "%=",
        BPF_XOR => "^=",
        BPF_MOV => "=",
        BPF_ARSH => "s>>=",
        _ => "?",
    }
}

/// `coerce_reg_to_size`.
fn coerce_to_size(b: &mut Bounds, size: u32) {
    b.var_off = b.var_off.cast(size);
    let mask = (1u64 << (size * 8)) - 1;
    if (b.umin & !mask) == (b.umax & !mask) {
        b.umin &= mask;
        b.umax &= mask;
    } else {
        b.umin = 0;
        b.umax = mask;
    }
    b.smin = b.umin as i64;
    b.smax = b.umax as i64;
    if size < 4 {
        b.mark32_unbounded();
    }
    b.sync();
}

/// Sign extension of the low `size` bytes (a sound simplification of
/// `coerce_reg_to_size_sx`: exact for constants, otherwise the full signed range).
/// `coerce_reg_to_size_sx` (is64, BPF_MOVSX / BPF_MEMSX) or `coerce_subreg_to_size_sx`
/// (32-bit BPF_MOVSX; the caller then zero-extends and syncs), as in 6.18.
fn sext(b: &Bounds, size: u32, is64: bool) -> Bounds {
    let bits = size * 8;
    let sx = |v: u64| -> i64 { ((v << (64 - bits)) as i64) >> (64 - bits) };
    let mut r = *b;
    if b.var_off.is_const() {
        let v = sx(b.var_off.value) as u64;
        r.var_off = Tnum::konst(v);
        if is64 {
            r.smin = v as i64;
            r.smax = v as i64;
            r.umin = v;
            r.umax = v;
        }
        r.s32_min = v as i32;
        r.s32_max = v as i32;
        r.u32_min = v as u32;
        r.u32_max = v as u32;
        return r;
    }
    if is64 {
        let top_max = ((b.smax as u64) >> bits) << bits;
        let top_min = ((b.smin as u64) >> bits) << bits;
        if top_max == top_min {
            let (a, c) = (sx(b.smax as u64), sx(b.smin as u64));
            let (hi, lo) = (a.max(c), a.min(c));
            if (hi >= 0) == (lo >= 0) {
                r.smin = lo;
                r.smax = hi;
                r.s32_min = lo as i32;
                r.s32_max = hi as i32;
                r.umin = lo as u64;
                r.umax = hi as u64;
                r.u32_min = lo as u32;
                r.u32_max = hi as u32;
                r.var_off = Tnum::range(lo as u64, hi as u64);
                return r;
            }
        }
        // set_sext64_default_val
        let half = 1i64 << (bits - 1);
        r.smin = -half;
        r.smax = half - 1;
        r.s32_min = (-half) as i32;
        r.s32_max = (half - 1) as i32;
        r.umin = 0;
        r.u32_min = 0;
        r.umax = u64::MAX;
        r.u32_max = u32::MAX;
        r.var_off = Tnum::UNKNOWN;
        return r;
    }
    let top_max = ((b.s32_max as u32) >> bits) << bits;
    let top_min = ((b.s32_min as u32) >> bits) << bits;
    if top_max == top_min {
        let sx32 = |v: i32| -> i32 { sx(v as u32 as u64) as i32 };
        let (a, c) = (sx32(b.s32_max), sx32(b.s32_min));
        let (hi, lo) = (a.max(c), a.min(c));
        if (lo >= 0) == (hi >= 0) {
            r.s32_min = lo;
            r.s32_max = hi;
            r.u32_min = lo as u32;
            r.u32_max = hi as u32;
            r.var_off = Tnum::range(lo as i64 as u64, hi as i64 as u64).subreg();
            return r;
        }
    }
    // set_sext32_default_val
    let half = 1i32 << (bits - 1);
    r.s32_min = -half;
    r.s32_max = half - 1;
    r.u32_min = 0;
    r.u32_max = u32::MAX;
    r.var_off = Tnum::UNKNOWN.subreg();
    r
}

fn byte_swap(v: u64, imm: i32, is64: bool, to_be: bool) -> u64 {
    let bits = imm as u32;
    if is64 || to_be {
        match bits {
            16 => (v as u16).swap_bytes() as u64,
            32 => (v as u32).swap_bytes() as u64,
            _ => v.swap_bytes(),
        }
    } else {
        match bits {
            16 => v as u16 as u64,
            32 => v as u32 as u64,
            _ => v,
        }
    }
}

/// `atomic_ptr_type_ok`: atomics never go through context, packet or socket pointers.
fn atomic_ptr_type_refused(ty: RegType) -> bool {
    matches!(
        ty,
        RegType::Ctx
            | RegType::Packet
            | RegType::PacketMeta
            | RegType::Socket
            | RegType::SockCommon
            | RegType::XdpSock
    )
}
