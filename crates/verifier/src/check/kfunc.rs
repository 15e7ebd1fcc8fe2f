//! kfunc calls (kernel/bpf/verifier.c `check_kfunc_call`, `check_kfunc_args`) for the
//! kfuncs XDP programs use on packets: the XDP dynptr (`bpf_dynptr_from_xdp`, Linux
//! 6.4), its slices (`bpf_dynptr_slice`, `bpf_dynptr_slice_rdwr`), the generic dynptr
//! kfuncs (`bpf_dynptr_adjust`, `_is_null`, `_is_rdonly`, `_size`, `_clone`) and
//! `bpf_xdp_pull_data` (6.18). Prototypes follow vmlinux BTF (`net/core/filter.c`,
//! `kernel/bpf/helpers.c`); `tests/kfunc.rs` compares them with the running kernel's
//! BTF when it has them. The XDP metadata kfuncs (`bpf_xdp_metadata_rx_*`) need a
//! device-bound program, which bpfkit does not model: they are refused as the kernel
//! refuses them for a program that is not. Any other kfunc leaves the program
//! undecided.
//!
//! A slice is `PTR_TO_MEM` of the constant `buffer__szk` bytes, `MEM_RDONLY` from
//! `bpf_dynptr_slice`, `PTR_MAYBE_NULL` (`KF_RET_NULL`), tied to its dynptr
//! (`dynptr_id`); a slice of an XDP dynptr is a packet slice ([`MEM_PKT`]) and dies
//! with packet pointers when a call changes packet data.

use super::dynptr::{self, DynArg};
use super::*;

/// How a kfunc argument is checked (`enum kfunc_ptr_arg_type`, reduced to what the
/// modelled kfuncs take).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum KArg {
    /// The program's context (`KF_ARG_PTR_TO_CTX`: `struct xdp_md *`).
    Ctx,
    /// An integer.
    Scalar,
    /// `struct bpf_dynptr *ptr__uninit`: creates a dynptr of this kind (None: of the
    /// kind of the dynptr argument before it, as `bpf_dynptr_clone`).
    NewDynptr(Option<u32>),
    /// `const struct bpf_dynptr *`: an initialised dynptr of any kind.
    Dynptr,
    /// `void *buffer__opt, u64 buffer__szk` (`KF_ARG_PTR_TO_MEM_SIZE` with a constant
    /// size): NULL, or memory of that many bytes. Takes two registers.
    OptBufConstSize,
}

/// What a kfunc returns.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum KRet {
    /// An integer (unknown scalar).
    Int,
    /// A dynptr slice: `PTR_TO_MEM | PTR_MAYBE_NULL`, read-only or not.
    Slice { rdonly: bool },
}

/// A modelled kfunc.
#[derive(Debug)]
pub(crate) struct Kfunc {
    pub name: &'static str,
    pub args: &'static [KArg],
    pub ret: KRet,
    /// `is_kfunc_pkt_changing`.
    pub changes_pkt: bool,
}

use KArg::*;

/// The kfuncs bpfkit models, with their prototypes.
pub(crate) const KFUNCS: &[Kfunc] = &[
    Kfunc {
        name: "bpf_dynptr_from_xdp",
        args: &[Ctx, Scalar, NewDynptr(Some(dynptr::XDP))],
        ret: KRet::Int,
        changes_pkt: false,
    },
    Kfunc {
        name: "bpf_dynptr_slice",
        args: &[Dynptr, Scalar, OptBufConstSize],
        ret: KRet::Slice { rdonly: true },
        changes_pkt: false,
    },
    Kfunc {
        name: "bpf_dynptr_slice_rdwr",
        args: &[Dynptr, Scalar, OptBufConstSize],
        ret: KRet::Slice { rdonly: false },
        changes_pkt: false,
    },
    Kfunc {
        name: "bpf_dynptr_adjust",
        args: &[Dynptr, Scalar, Scalar],
        ret: KRet::Int,
        changes_pkt: false,
    },
    Kfunc {
        name: "bpf_dynptr_is_null",
        args: &[Dynptr],
        ret: KRet::Int,
        changes_pkt: false,
    },
    Kfunc {
        name: "bpf_dynptr_is_rdonly",
        args: &[Dynptr],
        ret: KRet::Int,
        changes_pkt: false,
    },
    Kfunc {
        name: "bpf_dynptr_size",
        args: &[Dynptr],
        ret: KRet::Int,
        changes_pkt: false,
    },
    Kfunc {
        name: "bpf_dynptr_clone",
        args: &[Dynptr, NewDynptr(None)],
        ret: KRet::Int,
        changes_pkt: false,
    },
    Kfunc {
        name: "bpf_xdp_pull_data",
        args: &[Ctx, Scalar],
        ret: KRet::Int,
        changes_pkt: true,
    },
];

/// The model of kfunc `name`, if bpfkit has one.
pub(crate) fn lookup(name: &str) -> Option<&'static Kfunc> {
    KFUNCS.iter().find(|k| k.name == name)
}

/// The table as prototypes, for checks against vmlinux BTF.
pub(crate) fn models() -> Vec<crate::KfuncModel> {
    KFUNCS
        .iter()
        .map(|k| crate::KfuncModel {
            name: k.name,
            params: k
                .args
                .iter()
                .flat_map(|a| match a {
                    Ctx => vec!["ctx"],
                    Scalar => vec!["scalar"],
                    Dynptr => vec!["dynptr"],
                    NewDynptr(_) => vec!["dynptr__uninit"],
                    OptBufConstSize => vec!["mem__opt", "size__szk"],
                })
                .collect(),
            ret: match k.ret {
                KRet::Int => "int",
                KRet::Slice { .. } => "ptr",
            },
        })
        .collect()
}

/// `is_kfunc_pkt_changing`.
pub(crate) fn changes_pkt_data(name: &str) -> bool {
    lookup(name).is_some_and(|k| k.changes_pkt)
}

/// The device-bound XDP metadata kfuncs (`bpf_dev_bound_kfunc_id`).
fn is_dev_bound(name: &str) -> bool {
    name.starts_with("bpf_xdp_metadata_rx_")
}

impl V<'_> {
    /// The kfunc a `BPF_PSEUDO_KFUNC_CALL` at `idx` calls: from the object's BTF
    /// (`Options::funcs`), from `Options::kfuncs`, or from bpfkit's kfunc number in the
    /// call's `imm` (`bpfkit_isa::kfunc`, as `link()` sets it).
    pub(super) fn kfunc_name(&self, idx: usize) -> Option<&str> {
        self.opts
            .funcs
            .as_ref()
            .and_then(|f| f.kfunc_name(&self.prog.name, idx))
            .or_else(|| {
                self.opts
                    .kfuncs
                    .iter()
                    .find(|(i, _)| *i == idx)
                    .map(|(_, n)| n.as_str())
            })
            .or_else(|| bpfkit_isa::kfunc::name(self.insns.get(idx)?.imm))
    }

    /// `check_kfunc_call` for a modelled kfunc; the others are undecided.
    pub(super) fn check_kfunc_call(&mut self, st: &mut State, idx: usize, insn: &RawInsn) -> R<()> {
        let Some(name) = self.kfunc_name(idx).map(str::to_string) else {
            return Err(self.unsupported(format!(
                "kfunc calls (BTF id {} with no name: the object's `.ksyms` externs are not known)",
                insn.imm
            )));
        };
        if let Some(t) = self.opts.target.as_deref() {
            if let Some((msg, h)) = crate::target::kfunc_refusal(t, &name) {
                return Err(Self::hint(self.err(st, msg), h));
            }
        }
        if !self.opts.gpl_compatible {
            return Err(self.err(
                st,
                "cannot call kernel function from non-GPL compatible program".into(),
            ));
        }
        if is_dev_bound(&name) {
            return Err(Self::hint(
                self.err(st, "metadata kfuncs require device-bound program".into()),
                format!(
                    "`{name}` only works in a program loaded for one device \
                     (BPF_F_XDP_DEV_BOUND_ONLY with prog_ifindex), which bpfkit does not model"
                ),
            ));
        }
        let Some(k) = lookup(&name) else {
            return Err(self.unsupported(format!("kfunc call `{name}`")));
        };
        if st.lock.is_some() {
            return Err(self.err(
                st,
                "function calls are not allowed while holding a lock".into(),
            ));
        }
        let mut dyn_in: Option<DynArg> = None;
        let mut const_size: Option<u32> = None;
        let mut regno = 1u8;
        for a in k.args {
            let argno = regno - 1;
            let reg = st.cur().regs[regno as usize].clone();
            if matches!(*a, Ctx | Dynptr | NewDynptr(_))
                && (reg.is_const_zero() || reg.ty.may_be_null())
            {
                return Err(self.err_regs(
                    st,
                    format!("Possibly NULL pointer passed to trusted arg{argno}"),
                    &[regno],
                ));
            }
            match *a {
                Scalar => {
                    if reg.ty != RegType::Scalar {
                        return Err(self.err_regs(
                            st,
                            format!("R{regno} is not a scalar"),
                            &[regno],
                        ));
                    }
                }
                Ctx => {
                    // check_func_arg_reg_off first: the unmodified pointer
                    if reg.ty == RegType::Ctx {
                        self.check_ptr_off_reg(st, &reg, regno)?;
                    }
                    if reg.ty != RegType::Ctx {
                        return Err(self.err_regs(
                            st,
                            format!(
                                "arg#{argno} expected pointer to ctx, but got {}",
                                reg.type_str()
                            ),
                            &[regno],
                        ));
                    }
                }
                Dynptr | NewDynptr(_) => {
                    if !matches!(reg.ty, RegType::Stack | RegType::ConstDynptr) {
                        return Err(self.err_regs(
                            st,
                            format!(
                                "arg#{argno} expected pointer to stack or const struct bpf_dynptr"
                            ),
                            &[regno],
                        ));
                    }
                    let fl: dynptr::Flavour = match *a {
                        NewDynptr(Some(kind)) => (true, false, Some(kind)),
                        NewDynptr(None) => {
                            let kind = dyn_in.map(|d| d.kind).unwrap_or(dynptr::LOCAL);
                            if kind == dynptr::RINGBUF {
                                return Err(self.unsupported(
                                    "bpf_dynptr_clone of a ring buffer dynptr (shared reference)",
                                ));
                            }
                            (true, false, Some(kind))
                        }
                        _ => (false, false, None),
                    };
                    let d = self.dynptr_arg_as(st, fl, regno, &reg)?;
                    if *a == Dynptr {
                        dyn_in = Some(d);
                    }
                }
                OptBufConstSize => {
                    let sregno = regno + 1;
                    let size = st.cur().regs[sregno as usize].clone();
                    if size.ty != RegType::Scalar {
                        return Err(self.unsupported(format!(
                            "a non-scalar size R{sregno} for `{name}`'s buffer"
                        )));
                    }
                    if !reg.is_const_zero() {
                        self.kfunc_mem_size(st, regno, &reg, &size)
                            .map_err(|mut f| {
                                if let Fail::Reject(r) = &mut f {
                                    r.kernel_message.push_str(&format!(
                                        "\narg#{} arg#{} memory, len pair leads to invalid memory access",
                                        argno,
                                        argno + 1
                                    ));
                                }
                                f
                            })?;
                    }
                    if !size.b.is_const() {
                        return Err(self.err_regs(
                            st,
                            format!("R{sregno} must be a known constant"),
                            &[sregno],
                        ));
                    }
                    self.mark_precise(st, 1 << sregno, vec![]);
                    const_size = Some(size.b.var_off.value as u32);
                    regno += 1;
                }
            }
            regno += 1;
        }
        if k.changes_pkt {
            self.clear_all_pkt_pointers(st);
        }
        for r in 1..=5 {
            st.cur_mut().regs[r] = Reg::not_init();
        }
        let r0 = match k.ret {
            KRet::Int => Reg::unknown(),
            KRet::Slice { rdonly } => {
                let d = dyn_in.expect("slice kfuncs take a dynptr");
                let mut r = Reg::ptr(RegType::MemOrNull);
                r.mem_size = const_size.expect("slice kfuncs take a constant size");
                r.id = self.new_id();
                r.dynptr_id = d.id;
                r.mem_flags = MEM_DYNPTR_TYPED
                    | if rdonly { MEM_RDONLY } else { 0 }
                    | if d.kind == dynptr::XDP { MEM_PKT } else { 0 };
                r
            }
        };
        st.cur_mut().regs[0] = r0;
        Ok(())
    }

    /// `check_kfunc_mem_size_reg`: the buffer must allow a read and a write of the
    /// size's maximum (a NULL-able buffer is checked as if not NULL).
    fn kfunc_mem_size(&mut self, st: &mut State, regno: u8, mem: &Reg, size: &Reg) -> R<()> {
        let sregno = regno + 1;
        if size.b.smin < 0 {
            return Err(self.err_regs(
                st,
                format!("R{sregno} min value is negative, either use unsigned or 'var &= const'"),
                &[sregno],
            ));
        }
        if size.b.umax >= BPF_MAX_VAR_SIZ {
            return Err(self.err_regs(
                st,
                format!(
                    "R{sregno} unbounded memory access, use 'var &= const' or 'if (var < const)'"
                ),
                &[sregno],
            ));
        }
        let mut m = mem.clone();
        m.ty = m.ty.non_null();
        self.check_helper_mem_access(st, regno, &m, size.b.umax as i64, false, true)?;
        self.check_helper_mem_access(st, regno, &m, size.b.umax as i64, true, true)
    }
}
