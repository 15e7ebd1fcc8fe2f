//! Precision tracking as 6.18 does it (kernel/bpf/verifier.c `__mark_chain_precision`,
//! `backtrack_insn`, `bt_sync_linked_regs`, `propagate_precision`,
//! `mark_all_scalars_precise`).
//!
//! A scalar is *precise* in an explored state when some check after it depended on
//! its value; only precise scalars of an explored state constrain pruning
//! (`regsafe`). When a check depends on registers or spilled scalars of the current
//! state, the instructions executed since each ancestor checkpoint are walked
//! backwards, newest first, with one register mask and one stack-slot mask per frame
//! (`struct backtrack_state`), and the sources of the value are marked precise in
//! every ancestor checkpoint the walk reaches, across bpf-to-bpf calls and returns
//! and callback frames as the kernel follows them. Precision is not marked in the
//! current state itself: it is never compared as an explored state; the checkpoint
//! made later from it starts with every scalar imprecise, as in the kernel.
//!
//! Where the kernel gives up (`-ENOTSUPP`: a scalar used as the base of a store, an
//! unknown call) or finds requests it cannot place, every scalar of every ancestor
//! becomes precise (`mark_all_scalars_precise`): sound, prunes less.

use super::*;

/// `struct backtrack_state`: what is still looked for, per frame.
#[derive(Clone, Default, Debug)]
pub(super) struct Bt {
    /// Frame the walk is in (`bt->frame`).
    pub frame: usize,
    pub regs: [u16; crate::MAX_CALL_FRAMES],
    /// Bit = stack slot index (spi) of the frame.
    pub slots: [u64; crate::MAX_CALL_FRAMES],
}

impl Bt {
    pub fn new(frame: usize) -> Bt {
        Bt {
            frame,
            ..Default::default()
        }
    }
    fn empty(&self) -> bool {
        self.regs.iter().all(|&r| r == 0) && self.slots.iter().all(|&s| s == 0)
    }
    fn set_reg(&mut self, r: u8) {
        if r < 10 {
            self.regs[self.frame] |= 1 << r;
        }
    }
    fn clear_reg(&mut self, r: u8) {
        self.regs[self.frame] &= !(1u16 << r);
    }
    fn is_reg_set(&self, r: u8) -> bool {
        self.regs[self.frame] & (1 << r) != 0
    }
    fn set_slot(&mut self, f: usize, spi: usize) {
        if f < crate::MAX_CALL_FRAMES && spi < 64 {
            self.slots[f] |= 1 << spi;
        }
    }
    fn is_slot_set(&self, f: usize, spi: usize) -> bool {
        f < crate::MAX_CALL_FRAMES && spi < 64 && self.slots[f] & (1 << spi) != 0
    }
    fn clear_slot(&mut self, f: usize, spi: usize) {
        if f < crate::MAX_CALL_FRAMES && spi < 64 {
            self.slots[f] &= !(1u64 << spi);
        }
    }
}

/// Registers r1-r5.
const ARGS: u16 = 0x3e;

/// One register or spilled scalar that shared a scalar id with an operand of a
/// conditional jump (`struct linked_reg`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct LinkedReg {
    pub frame: u8,
    /// Register number, or stack slot index when `!is_reg`.
    pub idx: u8,
    pub is_reg: bool,
}

/// Why a walk stopped without placing every request.
struct GiveUp;

impl<'a> V<'a> {
    /// `mark_chain_precision` for registers `regs` of the current frame and the
    /// spilled scalars `slots` ((frame, spi)), requested while the current
    /// instruction (the last history entry) is being checked: the walk starts
    /// before it, as the kernel's `skip_first`.
    pub(super) fn mark_precise(&mut self, st: &mut State, regs: u16, slots: Vec<(u8, u8)>) {
        let mut bt = Bt::new(st.curframe());
        for r in 0..10u8 {
            if regs & (1 << r) != 0 && st.cur().regs[r as usize].is_scalar() {
                bt.set_reg(r);
            }
        }
        for (f, spi) in slots {
            bt.set_slot(f as usize, spi as usize);
        }
        self.mark_chain(st, bt, true);
    }

    /// `__mark_chain_precision` from the current state `st` with the requests in
    /// `bt`. `skip_current`: the last history entry is the instruction being checked.
    pub(super) fn mark_chain(&mut self, st: &State, mut bt: Bt, skip_current: bool) {
        if bt.empty() {
            return;
        }
        // the current state's own segment
        let mut subseq: Option<u32> = if skip_current {
            None
        } else {
            Some(self.idx as u32)
        };
        let hist: &[Hist] = if skip_current && !st.hist.is_empty() {
            subseq = st.hist.last().map(|h| h.insn);
            &st.hist[..st.hist.len() - 1]
        } else {
            &st.hist
        };
        match self.backtrack_segment(hist, subseq, &mut bt) {
            Ok(s) => subseq = s,
            Err(GiveUp) => {
                self.all_precise(st.parent);
                return;
            }
        }
        let mut parent = st.parent;
        while let Some(p) = parent {
            if bt.empty() {
                return;
            }
            let ps = &mut self.arena[p].state;
            if ps.curframe() != bt.frame {
                // the walk lost track of the frames; be conservative
                self.all_precise(Some(p));
                return;
            }
            for fr in 0..=bt.frame {
                let f = &mut ps.frames[fr];
                for r in 0..10 {
                    if bt.regs[fr] & (1 << r) == 0 {
                        continue;
                    }
                    let reg = &mut f.regs[r];
                    if !reg.is_scalar() || reg.precise {
                        bt.regs[fr] &= !(1 << r);
                    } else {
                        reg.precise = true;
                    }
                }
                let mut m = bt.slots[fr];
                while m != 0 {
                    let spi = m.trailing_zeros() as usize;
                    m &= m - 1;
                    match f.stack.get_mut(spi) {
                        Some(s) if s.is_spilled() && s.spilled.is_scalar() => {
                            if s.spilled.precise {
                                bt.slots[fr] &= !(1 << spi);
                            } else {
                                s.spilled.precise = true;
                            }
                        }
                        _ => bt.slots[fr] &= !(1 << spi),
                    }
                }
            }
            if bt.empty() {
                return;
            }
            let hist = std::mem::take(&mut self.arena[p].state.hist);
            let r = self.backtrack_segment(&hist, subseq, &mut bt);
            self.arena[p].state.hist = hist;
            match r {
                Ok(s) => subseq = s,
                Err(GiveUp) => {
                    let gp = self.arena[p].state.parent;
                    self.all_precise(gp);
                    return;
                }
            }
            parent = self.arena[p].state.parent;
        }
        if bt.empty() {
            return;
        }
        // Requests left at the root: a global function's arguments (r1-r5, set by
        // the caller) are expected; anything else was missed (kernel: mark all).
        let args_only = self.cur_global.is_some()
            && bt.frame == 0
            && bt.regs[0] & !ARGS == 0
            && bt.slots.iter().all(|&s| s == 0)
            && bt.regs[1..].iter().all(|&r| r == 0);
        if !args_only {
            self.all_precise(st.parent);
        }
    }

    /// Walks one history segment backwards. Returns the first instruction of the
    /// segment (the `subseq_idx` of the segment before it).
    fn backtrack_segment(
        &self,
        hist: &[Hist],
        mut subseq: Option<u32>,
        bt: &mut Bt,
    ) -> Result<Option<u32>, GiveUp> {
        for h in hist.iter().rev() {
            if bt.empty() {
                return Ok(Some(h.insn));
            }
            // the frame the walk must be in: an exit ran in the callee the walk
            // enters; a call that entered a sub-program or callback ran in the
            // caller the walk returns to
            let insn = self.insns[h.insn as usize];
            let hf = h.frame as usize;
            let expect = if insn.code == BPF_JMP | BPF_EXIT {
                hf.checked_sub(1)
            } else if insn.code == BPF_JMP | BPF_CALL
                && ((insn.src == BPF_PSEUDO_CALL
                    && !self
                        .globals
                        .contains_key(&((h.insn as i64 + insn.imm as i64 + 1) as usize)))
                    || (self.cfg.calls_callback[h.insn as usize] && subseq != Some(h.insn + 1)))
            {
                Some(hf + 1)
            } else {
                Some(hf)
            };
            if expect != Some(bt.frame) {
                return Err(GiveUp);
            }
            self.backtrack_insn(h, subseq, bt)?;
            subseq = Some(h.insn);
        }
        Ok(subseq)
    }

    /// `bt_sync_linked_regs`: when one of the registers linked at a conditional
    /// jump is looked for, all of them are.
    fn sync_linked(&self, h: &Hist, bt: &mut Bt) {
        if h.linked == 0 {
            return;
        }
        let set = &self.linked_sets[h.linked as usize - 1];
        let any = set.iter().any(|e| {
            let f = e.frame as usize;
            if e.is_reg {
                bt.regs[f] & (1 << e.idx) != 0
            } else {
                bt.is_slot_set(f, e.idx as usize)
            }
        });
        if !any {
            return;
        }
        for e in set {
            if e.is_reg {
                bt.regs[e.frame as usize] |= 1 << e.idx;
            } else {
                bt.set_slot(e.frame as usize, e.idx as usize);
            }
        }
    }

    /// `backtrack_insn`: what the instruction `h` needs precise before it, given
    /// what is needed after it. `subseq` is the instruction executed after it.
    fn backtrack_insn(&self, h: &Hist, subseq: Option<u32>, bt: &mut Bt) -> Result<(), GiveUp> {
        let idx = h.insn as usize;
        let insn = self.insns[idx];
        let (d, s) = (insn.dst & 0xf, insn.src & 0xf);
        self.sync_linked(h, bt);
        match insn.class() {
            BPF_ALU | BPF_ALU64 => {
                if !bt.is_reg_set(d) {
                    return Ok(());
                }
                let opc = op(insn.code);
                let x = source(insn.code) == BPF_X;
                if opc == BPF_END || opc == BPF_NEG {
                    // dst still needs precision before
                } else if opc == BPF_MOV {
                    bt.clear_reg(d);
                    if x && s != 10 {
                        bt.set_reg(s);
                    }
                } else if x && s != 10 {
                    bt.set_reg(s);
                }
            }
            BPF_LDX => {
                if !bt.is_reg_set(d) {
                    return Ok(());
                }
                bt.clear_reg(d);
                // a fill restores the spilled scalar: the slot needs precision
                if let Some((f, spi)) = h.slot {
                    bt.set_slot(f as usize, spi as usize);
                }
            }
            // backtrack_insn: a load-acquire is a load (`is_atomic_load_insn`)
            BPF_STX if mode(insn.code) == BPF_ATOMIC && insn.imm == BPF_LOAD_ACQ => {
                if !bt.is_reg_set(d) {
                    return Ok(());
                }
                bt.clear_reg(d);
                if let Some((f, spi)) = h.slot {
                    bt.set_slot(f as usize, spi as usize);
                }
            }
            BPF_STX | BPF_ST => {
                if bt.is_reg_set(d) {
                    // a scalar used as the base of a store (pointer subtraction)
                    return Err(GiveUp);
                }
                if mode(insn.code) == BPF_ATOMIC && insn.imm != BPF_STORE_REL {
                    // the kernel leaves a fetched register set: its earlier value
                    // stays looked for (a store-release is a plain store: a spill)
                    return Ok(());
                }
                if let Some((f, spi)) = h.slot {
                    if bt.is_slot_set(f as usize, spi as usize) {
                        bt.clear_slot(f as usize, spi as usize);
                        if insn.class() == BPF_STX {
                            bt.set_reg(s);
                        }
                    }
                }
            }
            BPF_LD => {
                if !bt.is_reg_set(d) {
                    return Ok(());
                }
                bt.clear_reg(d);
                if insn.code != LDDW {
                    return Err(GiveUp);
                }
            }
            _ => match op(insn.code) {
                BPF_CALL => {
                    let f = bt.frame;
                    if insn.src == BPF_PSEUDO_CALL {
                        let target = (idx as i64 + insn.imm as i64 + 1) as usize;
                        if self.globals.contains_key(&target) {
                            // a global function: r1-r5 were consumed, R0 is its result
                            if bt.regs[f] & ARGS != 0 {
                                return Err(GiveUp);
                            }
                            bt.clear_reg(0);
                            return Ok(());
                        }
                        // back from a static sub-program's entry to its call: r1-r5
                        // were the caller's; nothing else may be left in the callee
                        if bt.regs[f] & !ARGS != 0 || bt.slots[f] != 0 || f == 0 {
                            return Err(GiveUp);
                        }
                        let args = bt.regs[f] & ARGS;
                        bt.regs[f] = 0;
                        bt.frame -= 1;
                        bt.regs[f - 1] |= args;
                        return Ok(());
                    }
                    if insn.src == BPF_PSEUDO_KFUNC_CALL {
                        return Err(GiveUp);
                    }
                    if self.cfg.calls_callback[idx] && subseq != Some(h.insn + 1) {
                        // back from a callback's entry to the helper that calls it:
                        // its r1-r5 come from the helper, not from the caller
                        if bt.regs[f] & !ARGS != 0 || bt.slots[f] != 0 || f == 0 {
                            return Err(GiveUp);
                        }
                        bt.regs[f] = 0;
                        bt.frame -= 1;
                        return Ok(());
                    }
                    // a helper sets R0 and consumed r1-r5
                    bt.clear_reg(0);
                    if bt.regs[f] & ARGS != 0 {
                        return Err(GiveUp);
                    }
                }
                BPF_EXIT => {
                    // back into the callee that returned here
                    let Some(next) = subseq else {
                        return Err(GiveUp);
                    };
                    let next = next as usize;
                    let f = bt.frame;
                    if self.cfg.calls_callback.get(next).copied().unwrap_or(false) {
                        bt.regs[f] &= !ARGS;
                    }
                    if bt.regs[f] & ARGS != 0 || f + 1 >= crate::MAX_CALL_FRAMES {
                        return Err(GiveUp);
                    }
                    let r0 = next >= 1
                        && self.insns.get(next - 1).is_some_and(|c| {
                            c.code == BPF_JMP | BPF_CALL && c.src == BPF_PSEUDO_CALL
                        })
                        && bt.is_reg_set(0);
                    bt.clear_reg(0);
                    bt.frame += 1;
                    bt.regs[bt.frame] = 0;
                    bt.slots[bt.frame] = 0;
                    if r0 {
                        bt.set_reg(0);
                    }
                }
                BPF_JA => {}
                _ => {
                    if source(insn.code) == BPF_X && (bt.is_reg_set(d) || bt.is_reg_set(s)) {
                        bt.set_reg(d);
                        bt.set_reg(s);
                    }
                }
            },
        }
        self.sync_linked(h, bt);
        Ok(())
    }

    /// Conservative fallback (`mark_all_scalars_precise`): every scalar of `p` and
    /// its ancestors becomes precise.
    pub(super) fn all_precise(&mut self, p: Option<usize>) {
        self.all_precise_until(p, usize::MAX)
    }

    /// [`Self::all_precise`] for `p` and its ancestors newer than checkpoint `stop`.
    pub(super) fn all_precise_until(&mut self, mut p: Option<usize>, stop: usize) {
        while let Some(i) = p.filter(|&i| i != stop) {
            let s = &mut self.arena[i].state;
            for fr in s.frames.iter_mut() {
                for r in fr.regs.iter_mut() {
                    if r.is_scalar() {
                        r.precise = true;
                    }
                }
                for sl in fr.stack.iter_mut() {
                    if sl.is_spilled() && sl.spilled.is_scalar() {
                        sl.spilled.precise = true;
                    }
                }
            }
            p = s.parent;
        }
    }

    /// `propagate_precision`: the explored state `ai` that pruned this path needed
    /// some scalars precise (the live ones: the kernel cleaned dead registers and
    /// slots out of it before comparing); this path's ancestors need them too.
    pub(super) fn propagate_precision(&mut self, st: &mut State, ai: usize) {
        let old = &self.arena[ai].state;
        let mut bt = Bt::new(old.curframe());
        for (fi, fr) in old.frames.iter().enumerate() {
            let live = self.frame_live(old, fi, self.idx);
            for (r, reg) in fr.regs.iter().enumerate().take(10) {
                if reg.is_scalar() && reg.precise && live & (1 << r) != 0 {
                    bt.regs[fi] |= 1 << r;
                }
            }
            for (spi, s) in fr.stack.iter().enumerate() {
                let live = old.frames.len() > 1 || self.cur_stack_live & (1u64 << spi) != 0;
                if s.is_spilled() && s.spilled.is_scalar() && s.spilled.precise && live {
                    bt.set_slot(fi, spi);
                }
            }
        }
        self.mark_chain(st, bt, false);
    }

    /// Registers and spilled scalars that share the scalar id of an operand of the
    /// conditional jump being checked (`collect_linked_regs`): registers live here
    /// (or after the call, in caller frames) and spilled scalars of every frame.
    /// Returns the history tag (0: none, else index + 1 in `linked_sets`).
    pub(super) fn collect_linked(&mut self, st: &State, ids: &[u32]) -> u32 {
        let mut set: Vec<LinkedReg> = vec![];
        for &id in ids {
            if id == 0 {
                continue;
            }
            for (fi, fr) in st.frames.iter().enumerate() {
                let live = self.frame_live(st, fi, self.idx);
                for (r, reg) in fr.regs.iter().enumerate().take(10) {
                    if live & (1 << r) != 0 && reg.is_scalar() && reg.id == id {
                        let e = LinkedReg {
                            frame: fi as u8,
                            idx: r as u8,
                            is_reg: true,
                        };
                        if !set.contains(&e) {
                            set.push(e);
                        }
                    }
                }
                for (spi, s) in fr.stack.iter().enumerate() {
                    if s.is_spilled() && s.spilled.is_scalar() && s.spilled.id == id {
                        let e = LinkedReg {
                            frame: fi as u8,
                            idx: spi as u8,
                            is_reg: false,
                        };
                        if !set.contains(&e) {
                            set.push(e);
                        }
                    }
                }
            }
        }
        if set.len() < 2 {
            return 0;
        }
        self.linked_sets.push(set);
        self.linked_sets.len() as u32
    }
}
