//! What the loader's capabilities change (`Options::caps`, `--caps`), beyond the
//! `allow_ptr_leaks` / `allow_uninit_stack` / `bpf_capable` switches read where they
//! apply:
//!
//! - whether an XDP program loads at all (`bpf_prog_load`: CAP_BPF and CAP_NET_ADMIN, or
//!   CAP_SYS_ADMIN; otherwise EPERM before the verifier runs);
//! - helpers `bpf_base_func_proto` gives only to a loader with CAP_PERFMON;
//! - the Spectre v1 rules for pointer arithmetic of a loader without CAP_PERFMON
//!   (`!env->bypass_spec_v1`): `sanitize_ptr_alu`, `retrieve_ptr_limit`,
//!   `update_alu_sanitation_state`, `sanitize_val_alu`, `sanitize_check_bounds`,
//!   `check_stack_access_for_ptr_arithmetic`, `sanitize_err`, and the exact scalar
//!   comparison in pruning once a pointer was moved by an unknown scalar
//!   (`env->explore_alu_limits`).
//!
//! - the Spectre v4 barrier after some stack stores (`nospec_result`), which ends a
//!   speculative path there;
//! - the speculative paths the kernel walks for such a loader: the direction of a
//!   decided branch not taken (`sanitize_speculative_path`, compared registers
//!   unknown) and a pointer moved by an unknown register as if the masked offset were
//!   0 (`sanitize_ptr_alu`'s do_sim). In 6.18 an error on such a path only puts a
//!   barrier before the instruction (`error_recoverable_with_nospec`: `nospec`, which
//!   also ends later speculative paths there and turns off ALU sanitation of that
//!   instruction), but the paths count as processed instructions, can end in
//!   `infinite loop detected` or too many pending jumps, and reach functions (a global
//!   function called only speculatively is verified, as libxdp's dispatcher shows).

use super::*;

/// Helper ids `bpf_base_func_proto` (6.18) offers XDP only with CAP_PERFMON (or
/// CAP_SYS_ADMIN), measured on the running kernel with `examples/helper_probe.rs
/// --caps bpf,net_admin` against a root load: `program of this type cannot use helper`.
pub(crate) const NEEDS_PERFMON: &[u32] = &[
    6,   // bpf_trace_printk
    16,  // bpf_get_current_comm
    22,  // bpf_perf_event_read
    35,  // bpf_get_current_task
    55,  // bpf_perf_event_read_value
    109, // bpf_send_signal
    112, // bpf_probe_read_user
    113, // bpf_probe_read_kernel
    114, // bpf_probe_read_user_str
    115, // bpf_probe_read_kernel_str
    117, // bpf_send_signal_thread
    136, // bpf_skc_to_tcp6_sock
    137, // bpf_skc_to_tcp_sock
    138, // bpf_skc_to_tcp_timewait_sock
    139, // bpf_skc_to_tcp_request_sock
    140, // bpf_skc_to_udp6_sock
    141, // bpf_get_task_stack
    148, // bpf_copy_from_user
    149, // bpf_snprintf_btf
    153, // bpf_per_cpu_ptr
    154, // bpf_this_cpu_ptr
    158, // bpf_get_current_task_btf
    165, // bpf_snprintf
    175, // bpf_task_pt_regs
    176, // bpf_get_branch_snapshot
    177, // bpf_trace_vprintk
    178, // bpf_skc_to_unix_sock
    180, // bpf_find_vma
    191, // bpf_copy_from_user_task
    196, // bpf_skc_to_mptcp_sock
];

/// `BPF_ALU_*` sanitation states of `struct bpf_insn_aux_data`.
const BPF_ALU_SANITIZE_SRC: u32 = 1 << 0;
const BPF_ALU_SANITIZE_DST: u32 = 1 << 1;
const BPF_ALU_NEG_VALUE: u32 = 1 << 2;
const BPF_ALU_NON_POINTER: u32 = 1 << 3;
const BPF_ALU_IMMEDIATE: u32 = 1 << 4;

/// `REASON_*` of `sanitize_err`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Reason {
    Bounds,
    Type,
    Paths,
    Limit,
}

/// `struct bpf_sanitize_info`: what the first `sanitize_ptr_alu` call (before the
/// arithmetic) hands to the second (after it).
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct SanitizeInfo {
    /// The first call ran (the instruction is sanitized at all).
    active: bool,
    alu_state: u32,
    alu_limit: u32,
    mask_to_left: bool,
}

const MAX_BPF_STACK_U32: u32 = 512;

/// `retrieve_ptr_limit`.
fn retrieve_ptr_limit(maps: &[MapDef], ptr: &Reg, mask_to_left: bool) -> Result<u32, Reason> {
    let (max, limit) = match ptr.ty {
        RegType::Stack => (
            MAX_BPF_STACK_U32 + mask_to_left as u32,
            (ptr.b.var_off.value as i64 as i32)
                .wrapping_add(ptr.off)
                .wrapping_neg() as u32,
        ),
        RegType::MapValue => {
            let vs = ptr.map.map(|m| maps[m].value_size).unwrap_or(0);
            let base = if mask_to_left {
                ptr.b.smin as u32
            } else {
                ptr.b.umax as u32
            };
            (vs, base.wrapping_add(ptr.off as u32))
        }
        _ => return Err(Reason::Type),
    };
    if limit >= max {
        return Err(Reason::Limit);
    }
    Ok(limit)
}

/// `error_recoverable_with_nospec`: an error on a speculative path that only puts a
/// barrier before the instruction (EPERM, EACCES, EINVAL: every message of the
/// per-instruction checks), not one that ends verification (too many pending jumps is
/// E2BIG; an undecided program stays undecided).
pub(super) fn recoverable_with_nospec(f: &Fail) -> bool {
    match f {
        Fail::Reject(r) => !r.kernel_message.starts_with("The sequence of "),
        Fail::Unsupported { .. } => false,
    }
}

/// `is_spillable_regtype`: the pointer types a stack store keeps as a spilled register
/// (6.18 leaves `CONST_PTR_TO_DYNPTR` out: stored, it is plain data).
pub(super) fn kernel_spillable(ty: RegType) -> bool {
    ty.is_pointer() && ty != RegType::ConstDynptr
}

/// `bpf_prog_load`'s capability checks for XDP (a "net admin" program type): they
/// fail with EPERM before the verifier runs.
pub(super) fn caps_load_refusal(opts: &Options) -> Option<Fail> {
    let missing = opts.caps.net_prog_load_refusal()?;
    Some(Fail::Reject(Rejection {
        insn: 0,
        kernel_message: bpfkit_target::caps::EPERM_MESSAGE.into(),
        hint: Some(format!(
            "loading an XDP program needs {missing}; the loader runs with --caps {} (XDP needs CAP_BPF and CAP_NET_ADMIN, or CAP_SYS_ADMIN)",
            opts.caps
        )),
        regs: vec![],
        path: vec![],
    }))
}

impl<'a> V<'a> {
    /// `bpf_base_func_proto` returns NULL for these helpers without CAP_PERFMON.
    pub(super) fn helper_needs_perfmon(&self, func: i32) -> bool {
        !self.opts.caps.perfmon_capable() && NEEDS_PERFMON.contains(&(func as u32))
    }

    fn can_skip_alu_sanitation(&self, insn: &RawInsn) -> bool {
        self.opts.caps.bypass_spec_v1() || source(insn.code) == BPF_K || self.nospec[self.idx]
    }

    /// `check_stack_write_fixed_off` without `bypass_spec_v4`: a store of a pointer, or
    /// over stack bytes that are not MISC or ZERO (the kernel looks at the slot's first
    /// `size` type bytes), gets a barrier after it (`nospec_result`).
    pub(super) fn note_spec_v4_store(
        &mut self,
        st: &State,
        fno: usize,
        spi: usize,
        size: usize,
        value: Option<&Reg>,
    ) {
        if self.opts.caps.bypass_spec_v4() {
            return;
        }
        let slot = st.frames[fno].slot(spi);
        let sanitize = value.is_some_and(|r| kernel_spillable(r.ty))
            || slot.ty[..size.min(REG_SIZE)]
                .iter()
                .any(|t| !matches!(t, Slot::Misc | Slot::Zero));
        if sanitize {
            self.nospec_result[self.idx] = true;
        }
    }

    /// `sanitize_speculative_path` for a decided branch: the other direction is walked
    /// as a speculative path, with the compared registers unknown.
    pub(super) fn push_speculative_branch(
        &mut self,
        st: &State,
        idx: usize,
        insn: &RawInsn,
        next: usize,
    ) -> R<()> {
        if self.opts.caps.bypass_spec_v1() {
            return Ok(());
        }
        let mut spec = st.clone();
        spec.speculative = true;
        push_decision(&mut spec, idx, next != idx + 1);
        let regs = &mut spec.cur_mut().regs;
        regs[insn.dst as usize] = Reg::unknown();
        if source(insn.code) == BPF_X {
            regs[insn.src as usize] = Reg::unknown();
        }
        self.push_branch(&spec, next)
    }

    /// `update_alu_sanitation_state` on the instruction's aux data.
    fn update_alu_state(&mut self, state: u32, limit: u32) -> Result<(), Reason> {
        let a = &mut self.alu_aux[self.idx];
        if a.0 != 0 && (a.0 != state || a.1 != limit) {
            return Err(Reason::Paths);
        }
        *a = (state, limit);
        Ok(())
    }

    /// `sanitize_val_alu`: a scalar ADD/SUB by register marks its instruction, so that
    /// the same instruction moving a pointer on another path is refused.
    pub(super) fn sanitize_val_alu(&mut self, st: &State, insn: &RawInsn) -> R<()> {
        let opc = op(insn.code);
        if !(opc == BPF_ADD || opc == BPF_SUB) || self.can_skip_alu_sanitation(insn) {
            return Ok(());
        }
        self.update_alu_state(BPF_ALU_NON_POINTER, 0)
            .map_err(|r| self.sanitize_err(st, insn, r, false))
    }

    /// `sanitize_ptr_alu(..., commit_window = false)`, before the arithmetic.
    /// `swapped`: the pointer is the source register (`scalar += pointer`).
    pub(super) fn sanitize_ptr_alu_first(
        &mut self,
        st: &State,
        insn: &RawInsn,
        ptr: &Reg,
        off_reg: &Reg,
        swapped: bool,
    ) -> R<SanitizeInfo> {
        let opc = op(insn.code);
        if !(opc == BPF_ADD || opc == BPF_SUB) || self.can_skip_alu_sanitation(insn) {
            return Ok(SanitizeInfo::default());
        }
        let ob = &off_reg.b;
        let off_is_imm = ob.is_const();
        if st.speculative {
            // the masking was recorded from the non-speculative paths: only simulate
            if !off_is_imm {
                self.push_truncated_offset(st, insn, ptr)?;
            }
            return Ok(SanitizeInfo::default());
        }
        let off_is_neg = ob.smin < 0;
        if !off_is_imm && (ob.smin < 0) != (ob.smax < 0) {
            return Err(self.sanitize_err(st, insn, Reason::Bounds, swapped));
        }
        let mask_to_left = (opc == BPF_ADD && off_is_neg) || (opc == BPF_SUB && !off_is_neg);
        let limit = retrieve_ptr_limit(&self.maps, ptr, mask_to_left)
            .map_err(|r| self.sanitize_err(st, insn, r, swapped))?;
        let mut state = if off_is_neg { BPF_ALU_NEG_VALUE } else { 0 };
        if off_is_imm {
            state |= BPF_ALU_IMMEDIATE;
        }
        state |= if swapped {
            BPF_ALU_SANITIZE_DST
        } else {
            BPF_ALU_SANITIZE_SRC
        };
        if !off_is_imm {
            self.explore_alu_limits = true;
            self.push_truncated_offset(st, insn, ptr)?;
        }
        Ok(SanitizeInfo {
            active: true,
            alu_state: state,
            alu_limit: limit,
            mask_to_left,
        })
    }

    /// The do_sim part of `sanitize_ptr_alu`: a speculative path continues after the
    /// instruction as if the masked offset were 0 (the destination is the unmoved
    /// pointer).
    fn push_truncated_offset(&mut self, st: &State, insn: &RawInsn, ptr: &Reg) -> R<()> {
        let mut spec = st.clone();
        spec.speculative = true;
        spec.cur_mut().regs[insn.dst as usize] = ptr.clone();
        self.push_branch(&spec, self.idx + 1)
    }

    /// After the arithmetic: `sanitize_check_bounds`, then `sanitize_ptr_alu(...,
    /// commit_window = true)`, which records the masking window on the instruction.
    pub(super) fn sanitize_ptr_alu_commit(
        &mut self,
        st: &State,
        insn: &RawInsn,
        res: &Reg,
        info: SanitizeInfo,
        swapped: bool,
    ) -> R<()> {
        self.sanitize_check_bounds(st, insn, res)?;
        if !info.active {
            return Ok(());
        }
        let limit = retrieve_ptr_limit(&self.maps, res, info.mask_to_left)
            .map_err(|r| self.sanitize_err(st, insn, r, swapped))?;
        let window = (info.alu_limit as i64 - limit as i64).unsigned_abs() as u32;
        self.update_alu_state(info.alu_state, window)
            .map_err(|r| self.sanitize_err(st, insn, r, swapped))
    }

    /// `sanitize_check_bounds`: the moved pointer must stay inside its object.
    fn sanitize_check_bounds(&self, st: &State, insn: &RawInsn, r: &Reg) -> R<()> {
        let opc = op(insn.code);
        if self.opts.caps.bypass_spec_v1() || !(opc == BPF_ADD || opc == BPF_SUB) {
            return Ok(());
        }
        let dst = insn.dst;
        match r.ty {
            RegType::Stack => {
                // check_stack_access_for_ptr_arithmetic
                let off = r.off.wrapping_add(r.b.var_off.value as i64 as i32);
                if !r.b.var_off.is_const() {
                    return Err(Self::hint(
                        self.err_regs(
                            st,
                            format!(
                                "R{} variable stack access prohibited for !root, var_off={} off={}",
                                dst, r.b.var_off, off
                            ),
                            &[dst],
                        ),
                        "without CAP_PERFMON a stack pointer may only move by constants; index a map value or copy to a fixed slot instead".into(),
                    ));
                }
                if !(-MAX_BPF_STACK..0).contains(&off) {
                    return Err(self.err_regs(
                        st,
                        format!(
                            "R{} stack pointer arithmetic goes out of range, prohibited for !root; off={}",
                            dst, off
                        ),
                        &[dst],
                    ));
                }
            }
            RegType::MapValue => {
                // check_map_access(.., ACCESS_HELPER): the value's bounds, then its
                // special fields (a moved pointer may not overlap a lock or timer)
                let vs = r.map.map(|m| self.maps[m].value_size).unwrap_or(0) as i64;
                let res = self
                    .check_mem_region_access(st, dst, r, r.off, 1, vs, false)
                    .and_then(|_| self.check_map_fields(st, r, r.off, 1));
                if let Err(Fail::Reject(mut rej)) = res {
                    rej.kernel_message = format!(
                        "{}\nR{} pointer arithmetic of map value goes out of range, prohibited for !root",
                        rej.kernel_message, dst
                    );
                    rej.hint = Some(
                        "without CAP_PERFMON a map value pointer must stay inside the value after every addition; check the index before adding it".into(),
                    );
                    return Err(Fail::Reject(rej));
                }
                res?;
            }
            _ => {}
        }
        Ok(())
    }

    /// `sanitize_err`.
    fn sanitize_err(&self, st: &State, insn: &RawInsn, reason: Reason, _swapped: bool) -> Fail {
        const ERR: &str = "pointer arithmetic with it prohibited for !root";
        let op = if op(insn.code) == BPF_ADD {
            "add"
        } else {
            "sub"
        };
        let (dst, src) = (insn.dst, insn.src);
        let (msg, reg, hint) = match reason {
            // 6.18 names the source register for mixed bounds and the destination
            // for an unsupported pointer type, whichever of them holds the pointer
            // (measured: `r4 += r2` with r2 a packet pointer says R4)
            Reason::Bounds => {
                let r = src;
                (
                    format!("R{r} has unknown scalar with mixed signed bounds, {ERR}"),
                    r,
                    "without CAP_PERFMON the offset must be known to be non-negative (or negative): check `off >= 0` or use an unsigned type",
                )
            }
            Reason::Type => {
                let r = dst;
                (
                    format!("R{r} has pointer with unsupported alu operation, {ERR}"),
                    r,
                    "without CAP_PERFMON only stack and map value pointers may move by a register; add a constant instead, or load with CAP_PERFMON",
                )
            }
            Reason::Paths => (
                format!("R{dst} tried to {op} from different maps, paths or scalars, {ERR}"),
                dst,
                "without CAP_PERFMON one instruction must move the same kind of pointer by the same masking window on every path",
            ),
            Reason::Limit => (
                format!("R{dst} tried to {op} beyond pointer bounds, {ERR}"),
                dst,
                "without CAP_PERFMON the pointer must stay inside its object before and after the arithmetic",
            ),
        };
        Self::hint(self.err_regs(st, msg, &[reg]), hint.into())
    }
}
