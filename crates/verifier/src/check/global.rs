//! Global functions (`subprog_is_global`): calls check the arguments against the BTF
//! prototype (`btf_check_subprog_call`) and return an unknown scalar; each called
//! global function is then verified once on its own (`do_check_subprogs`).

use super::*;
use crate::btf_funcs::ArgType;

impl V<'_> {
    /// Index of the sub-program starting at `start` (the kernel's `func#N`).
    fn subprog_no(&self, start: usize) -> usize {
        self.cfg
            .subprogs
            .iter()
            .position(|&s| s == start)
            .unwrap_or(0)
    }

    /// Per sub-program: it calls a helper that changes packet data, directly or through
    /// the functions it calls (`subprog_info[].changes_pkt_data`).
    pub(super) fn subprogs_changing_pkt(&self) -> Vec<bool> {
        let subs = &self.cfg.subprogs;
        let sub_of = |i: usize| subs.iter().rposition(|&s| s <= i).unwrap_or(0);
        let mut changes = vec![false; subs.len()];
        let mut calls: Vec<(usize, usize)> = vec![];
        for (i, insn) in self.insns.iter().enumerate() {
            if self.cfg.is_lddw_hi[i] || insn.code != BPF_JMP | BPF_CALL {
                continue;
            }
            if insn.src == BPF_PSEUDO_CALL {
                let t = (i as i64 + insn.imm as i64 + 1) as usize;
                if t < self.insns.len() {
                    calls.push((sub_of(i), sub_of(t)));
                }
            } else if (insn.src == 0
                && helpers::proto(insn.imm).is_some_and(|p| p.changes_pkt_data))
                || (insn.src == BPF_PSEUDO_KFUNC_CALL
                    && self
                        .kfunc_name(i)
                        .is_some_and(super::kfunc::changes_pkt_data))
            {
                changes[sub_of(i)] = true;
            }
        }
        loop {
            let mut more = false;
            for &(from, to) in &calls {
                if changes[to] && !changes[from] {
                    changes[from] = true;
                    more = true;
                }
            }
            if !more {
                return changes;
            }
        }
    }

    /// Frame 0 of a global function verified on its own: arguments from its prototype.
    pub(super) fn global_initial_state(&mut self, start: usize) -> State {
        let mut f = Frame::new(0, 0, start);
        let args = match self.globals.get(&start).map(|g| &g.args) {
            Some(Ok(a)) => a.clone(),
            _ => vec![],
        };
        for (i, a) in args.iter().enumerate() {
            f.regs[i + 1] = match *a {
                ArgType::Ctx => Reg::ptr(RegType::Ctx),
                ArgType::Scalar => Reg::unknown(),
                ArgType::Mem { size, nullable } => {
                    let mut r = Reg::ptr(if nullable {
                        RegType::MemOrNull
                    } else {
                        RegType::Mem
                    });
                    r.mem_size = size;
                    if nullable {
                        r.id = self.new_id();
                    }
                    r
                }
            };
        }
        State::entry(f)
    }

    /// `do_check_subprogs`: every global function some verified path called, in
    /// sub-program order, again while verifying them calls more.
    pub(super) fn check_globals(&mut self) -> R<()> {
        loop {
            let mut todo: Vec<usize> = self
                .globals_called
                .iter()
                .copied()
                .filter(|s| !self.globals_verified.contains(s))
                .collect();
            if todo.is_empty() {
                return Ok(());
            }
            todo.sort_unstable();
            todo.dedup();
            let start = todo[0];
            // free_states: nothing explored in another function prunes this one
            for e in self.explored.iter_mut() {
                e.clear();
            }
            self.pending.clear();
            self.cur_states = 0;
            self.path_jumps = 0;
            self.use_stack_liveness = false;
            self.cur_global = Some(start);
            let name = self.globals[&start].name.clone();
            let no = self.subprog_no(start);
            if let Err(f) = self.do_check(Some(start)) {
                return Err(match f {
                    Fail::Reject(mut r) => {
                        let h = format!(
                            "in global function {name}() (func#{no}), which the kernel verifies \
                             once on its own, for any arguments its BTF prototype allows \
                             (pointers may be NULL unless tagged __arg_nonnull; scalars have \
                             unknown bounds)"
                        );
                        r.hint = Some(match r.hint {
                            Some(old) => format!("{h}; {old}"),
                            None => h,
                        });
                        Fail::Reject(r)
                    }
                    u => u,
                });
            }
            self.globals_verified.push(start);
            self.cur_global = None;
        }
    }

    /// `check_func_call` of a global function: arguments checked against the BTF
    /// prototype, the call itself assumed valid (R0 an unknown scalar, R1-R5 clobbered).
    pub(super) fn check_global_call(
        &mut self,
        st: &mut State,
        idx: usize,
        target: usize,
    ) -> R<Flow> {
        let no = self.subprog_no(target);
        let (name, args, unsupported) = {
            let g = &self.globals[&target];
            (g.name.clone(), g.args.clone(), g.unsupported.clone())
        };
        if let Some(what) = unsupported {
            return Err(self.unsupported(what));
        }
        let invalid = format!("Caller passes invalid args into func#{no} ('{name}')");
        let args = match args {
            Ok(a) => a,
            Err(m) => return Err(self.err(st, format!("{m}\n{invalid}"))),
        };
        if let Err(f) = self.check_global_args(st, &args) {
            return Err(match f {
                Fail::Reject(mut r) => {
                    r.kernel_message = format!("{}\n{invalid}", r.kernel_message);
                    Fail::Reject(r)
                }
                u => u,
            });
        }
        if st.lock.is_some() {
            return Err(self.err(
                st,
                "global function calls are not allowed while holding a lock,\n\
                 use static function instead"
                    .into(),
            ));
        }
        if self.changes_pkt.get(no).copied().unwrap_or(false) {
            self.clear_all_pkt_pointers(st);
        }
        if !self.globals_called.contains(&target) {
            self.globals_called.push(target);
        }
        let caller = st.cur_mut();
        for r in 1..=5 {
            caller.regs[r] = Reg::not_init();
        }
        caller.regs[0] = Reg::unknown();
        Ok(Flow::Next(idx + 1))
    }

    /// `btf_check_func_arg_match`.
    fn check_global_args(&mut self, st: &mut State, args: &[ArgType]) -> R<()> {
        for (i, a) in args.iter().enumerate() {
            let regno = i as u8 + 1;
            let reg = st.cur().regs[regno as usize].clone();
            match *a {
                ArgType::Scalar => {
                    if !reg.is_scalar() {
                        return Err(self.err(st, format!("R{regno} is not a scalar")));
                    }
                }
                ArgType::Ctx => {
                    self.check_func_arg_reg_off(st, &reg, regno)?;
                    if reg.ty != RegType::Ctx {
                        return Err(self.err(st, format!("arg#{i} expects pointer to ctx")));
                    }
                }
                ArgType::Mem { size, nullable } => {
                    self.check_func_arg_reg_off(st, &reg, regno)?;
                    // check_mem_reg: NULL passes; otherwise a read and a write of
                    // `size` bytes must be allowed (as if not NULL)
                    if !reg.is_const_zero() {
                        let mut r = reg.clone();
                        r.ty = r.ty.non_null();
                        self.check_helper_mem_access(st, regno, &r, size as i64, false, true)?;
                        self.check_helper_mem_access(st, regno, &r, size as i64, true, true)?;
                    }
                    if !nullable && reg.ty.may_be_null() {
                        return Err(self.err(st, format!("arg#{i} is expected to be non-NULL")));
                    }
                }
            }
        }
        Ok(())
    }

    /// `check_func_arg_reg_off` with `ARG_DONTCARE`: pointers into memory may carry an
    /// offset, others (ctx...) must be unmodified.
    fn check_func_arg_reg_off(&self, st: &State, reg: &Reg, regno: u8) -> R<()> {
        match reg.ty {
            RegType::Stack
            | RegType::Packet
            | RegType::PacketMeta
            | RegType::MapKey
            | RegType::MapValue
            | RegType::Mem
            | RegType::RingbufMem
            | RegType::Scalar
            | RegType::NotInit => Ok(()),
            _ => self.check_ptr_off_reg(st, reg, regno),
        }
    }
}
