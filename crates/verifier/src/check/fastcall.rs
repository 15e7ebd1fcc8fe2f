//! `bpf_fastcall` spill/fill removal and its effect on the stack depth, as 6.18's
//! `mark_fastcall_patterns`, `check_fastcall_stack_contract` and
//! `remove_fastcall_spills_fills` (kernel/bpf/verifier.c).
//!
//! Around a call to a helper the kernel inlines without clobbering the caller-saved
//! registers it does not use (`bpf_get_smp_processor_id` on x86-64 with the JIT), clang
//! spills those registers to the bottom of the stack and fills them after the call. When
//! every access to those slots comes from such a spill or fill, the kernel removes the
//! pairs and the sub-program's stack depth no longer counts them: a program whose
//! combined stack is over 512 bytes only because of them is accepted. bpfkit keeps the
//! instructions (its runtime gives every frame 512 bytes) and takes the smaller depth
//! for `check_max_stack_depth`, as the kernel does.
//!
//! Kfuncs with `KF_FASTCALL` (`bpf_cast_to_kern_ctx`, `bpf_rdonly_cast`) are not
//! matched: their spills and fills count as ordinary stack accesses, which can only make
//! bpfkit's depth larger than the kernel's, never smaller.

use super::*;

/// Per-instruction and per-sub-program `bpf_fastcall` bookkeeping.
#[derive(Debug, Default)]
pub(crate) struct Fastcall {
    /// `insn_aux_data[i].fastcall_pattern`: a spill or fill of a pattern.
    pattern: Vec<bool>,
    /// `insn_aux_data[i].fastcall_spills_num`: pairs the kernel removes around call i.
    spills: Vec<u8>,
    /// Per sub-program: `fastcall_stack_off` (i32::MIN once the contract is broken).
    stack_off: Vec<i32>,
    /// Per sub-program: `keep_fastcall_stack`.
    keep: Vec<bool>,
    /// Sub-program starts, and the program's length.
    starts: Vec<usize>,
    len: usize,
}

const ALL_CALLER_SAVED: u32 = 0x3f;

/// `helper_fastcall_clobber_mask` and whether the kernel inlines the helper
/// (`allow_fastcall` and `verifier_inlines_helper_call`); `None` for an unknown helper.
fn helper_fastcall(id: i32) -> Option<(u32, bool)> {
    let p = helpers::proto(id)?;
    let mut mask = 0;
    if p.ret != Ret::Void {
        mask |= 1;
    }
    for (i, a) in p.args.iter().enumerate() {
        if *a != Arg::DontCare {
            mask |= 1 << (i + 1);
        }
    }
    // bpf_get_smp_processor_id: the only helper with allow_fastcall, inlined on x86-64
    Some((mask, id == 8))
}

impl Fastcall {
    /// `mark_fastcall_patterns` over the whole program.
    pub(crate) fn mark(insns: &[RawInsn], cfg: &Cfg) -> Fastcall {
        let n = insns.len();
        let mut f = Fastcall {
            pattern: vec![false; n],
            spills: vec![0; n],
            stack_off: vec![0; cfg.subprogs.len()],
            keep: vec![false; cfg.subprogs.len()],
            starts: cfg.subprogs.clone(),
            len: n,
        };
        // bpf_is_jump_target: targets of jumps and of calls to sub-programs
        let mut target = vec![false; n + 1];
        for (i, x) in insns.iter().enumerate() {
            if cfg.is_lddw_hi[i] {
                continue;
            }
            let class = x.code & 0x07;
            if class != BPF_JMP && class != BPF_JMP32 {
                continue;
            }
            let op = x.code & 0xf0;
            let t = if x.code == BPF_JMP | BPF_CALL {
                if x.src != BPF_PSEUDO_CALL {
                    continue;
                }
                i as i64 + x.imm as i64 + 1
            } else if op == 0x90 {
                // exit
                continue;
            } else if class == BPF_JMP32 && op == 0x00 {
                i as i64 + x.imm as i64 + 1
            } else {
                i as i64 + x.off as i64 + 1
            };
            if (0..=n as i64).contains(&t) {
                target[t as usize] = true;
            }
        }
        const STX_DW: u8 = 0x7b;
        const LDX_DW: u8 = 0x79;
        for s in 0..f.starts.len() {
            let (start, end) = f.range(s);
            let lowest = insns[start..end]
                .iter()
                .filter(|x| x.code == STX_DW && x.dst == 10)
                .map(|x| x.off as i32)
                .min()
                .unwrap_or(0)
                .min(0);
            for i in start..end {
                let call = &insns[i];
                if cfg.is_lddw_hi[i] || call.code != BPF_JMP | BPF_CALL || call.src != 0 {
                    continue;
                }
                let Some((clobbered, inlined)) = helper_fastcall(call.imm) else {
                    continue;
                };
                if clobbered == ALL_CALLER_SAVED {
                    continue;
                }
                let mut expected = !clobbered & ALL_CALLER_SAVED;
                let mut off = lowest;
                let mut k = 1;
                while k <= 6 {
                    if i < k || i + k >= n || target[i - k + 1] || target[i + k] {
                        break;
                    }
                    let (stx, ldx) = (&insns[i - k], &insns[i + k]);
                    if stx.code != STX_DW || ldx.code != LDX_DW || stx.dst != 10 || ldx.src != 10 {
                        break;
                    }
                    if stx.src != ldx.dst || (1u32 << stx.src) & expected == 0 {
                        break;
                    }
                    if stx.off as i32 != off || ldx.off as i32 != off {
                        break;
                    }
                    expected &= !(1u32 << stx.src);
                    f.pattern[i - k] = true;
                    f.pattern[i + k] = true;
                    k += 1;
                    off += 8;
                }
                if k == 1 {
                    continue;
                }
                if inlined {
                    f.spills[i] = (k - 1) as u8;
                } else {
                    f.keep[s] = true;
                }
                f.stack_off[s] = f.stack_off[s].min(off);
            }
        }
        f
    }

    fn range(&self, s: usize) -> (usize, usize) {
        let end = self.starts.get(s + 1).copied().unwrap_or(self.len);
        (self.starts[s], end)
    }

    /// `check_fastcall_stack_contract`: an access at stack offset `off` of the frame of
    /// the sub-program starting at instruction `start`, by instruction `idx`.
    pub(crate) fn contract(&mut self, start: usize, idx: usize, off: i32) {
        let Some(sub) = self.starts.iter().position(|&s| s == start) else {
            return;
        };
        if self.stack_off[sub] <= off || self.pattern.get(idx).copied().unwrap_or(false) {
            return;
        }
        self.stack_off[sub] = i32::MIN;
        let (start, end) = self.range(sub);
        for i in start..end {
            self.spills[i] = 0;
            self.pattern[i] = false;
        }
    }

    /// `remove_fastcall_spills_fills`: the stack depth of each sub-program after the
    /// kernel removed its fastcall spills and fills.
    pub(crate) fn depths(&self, depth: &[i32]) -> Vec<i32> {
        let mut out = depth.to_vec();
        for (s, d) in out.iter_mut().enumerate() {
            let (start, end) = self.range(s);
            let modified = self.spills[start..end].iter().any(|&k| k > 0);
            if modified && !self.keep[s] {
                *d = self.stack_off[s].saturating_neg();
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use bpfkit_object::model::{prog_type, InsnOrigin, LinkedProgram};

    /// fastcall_stack.case's program: 512 bytes in the caller, a callee whose only stack
    /// is a fastcall spill/fill pair around bpf_get_smp_processor_id.
    fn verify_for(jit_enable: Option<i64>) -> crate::Verdict {
        let insns = bpfkit_asm::assemble(
            "r1 = 42\n*(u64 *)(r10 - 512) = r1\ncall f\nr0 = 2\nexit\n\
             f: *(u64 *)(r10 - 8) = r1\ncall 8\nr1 = *(u64 *)(r10 - 8)\nexit\n",
        )
        .expect("assembles");
        let prog = LinkedProgram {
            name: "t".into(),
            section: "xdp".into(),
            prog_type: prog_type::XDP,
            expected_attach_type: None,
            prog_flags: 0,
            origins: (0..insns.len())
                .map(|i| InsnOrigin {
                    section: "xdp".into(),
                    function: "t".into(),
                    insn_index: i,
                    line: None,
                })
                .collect(),
            insns,
        };
        let mut t = bpfkit_target::KernelTarget::release(bpfkit_target::MODELLED).expect("6.18");
        t.jit_enable = jit_enable;
        let opts = crate::Options {
            target: Some(std::sync::Arc::new(t)),
            ..Default::default()
        };
        crate::verify(&prog, &[], &opts).verdict
    }

    #[test]
    fn fastcall_spills_do_not_count_with_the_jit_only() {
        assert!(verify_for(None).is_accepted());
        assert!(verify_for(Some(1)).is_accepted());
        // the interpreter keeps the spill and rounds frames to 32 bytes: 512 + 32
        match verify_for(Some(0)) {
            crate::Verdict::Rejected(r) => assert!(
                r.kernel_message
                    .contains("combined stack size of 2 calls is 544. Too large"),
                "{}",
                r.kernel_message
            ),
            v => panic!("expected a rejection, got {v:?}"),
        }
    }
}
