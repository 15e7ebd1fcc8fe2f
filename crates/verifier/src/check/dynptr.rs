//! Dynptrs (kernel/bpf/verifier.c `process_dynptr_func`, `mark_stack_slots_dynptr`,
//! `destroy_if_dynptr_stack_slot`, `unmark_stack_slots_dynptr`): a `struct bpf_dynptr`
//! lives in two 8-byte stack slots marked `STACK_DYNPTR`; ring buffer dynptrs hold a
//! reference that `bpf_ringbuf_submit_dynptr` / `_discard_dynptr` release; slices from
//! `bpf_dynptr_data` are `PTR_TO_MEM` tied to their dynptr.
//!
//! Slot metadata is kept in the slot's `spilled` register: `id` (the dynptr's id),
//! `ref_obj_id`, `dynptr_id` (the kind: [`LOCAL`] or [`RINGBUF`]) and `off` (1 on the
//! first, i.e. lower-addressed, slot).

use super::*;

/// `BPF_DYNPTR_TYPE_LOCAL`, `BPF_DYNPTR_TYPE_RINGBUF` (as stored in `Reg::dynptr_id`).
pub(super) const LOCAL: u32 = 1;
pub(super) const RINGBUF: u32 = 2;
/// `BPF_DYNPTR_TYPE_XDP` (from the kfunc `bpf_dynptr_from_xdp`).
pub(super) const XDP: u32 = 3;

fn kind_name(k: u32) -> &'static str {
    match k {
        LOCAL => "local",
        RINGBUF => "ringbuf",
        XDP => "xdp",
        _ => "?",
    }
}

/// What a helper's dynptr argument is: (MEM_UNINIT: creates one, OBJ_RELEASE, the
/// dynptr kind it requires or creates).
pub(super) type Flavour = (bool, bool, Option<u32>);

fn flavour(func: i32) -> Flavour {
    match func {
        197 => (true, false, Some(LOCAL)),
        198 => (true, false, Some(RINGBUF)),
        199 | 200 => (false, true, Some(RINGBUF)),
        _ => (false, false, None),
    }
}

/// The dynptr a helper call used: (its id, its reference).
#[derive(Clone, Copy, Default)]
pub(super) struct DynArg {
    pub id: u32,
    pub ref_obj_id: u32,
    pub release: bool,
    /// The dynptr's kind ([`LOCAL`], [`RINGBUF`], [`XDP`]).
    pub kind: u32,
}

/// `stacksafe` for `STACK_DYNPTR` slots.
pub(super) fn slot_safe(old: &StackSlot, cur: &StackSlot, idmap: &mut Vec<(u32, u32)>) -> bool {
    cur.ty[0] == Slot::Dynptr
        && old.spilled.dynptr_id == cur.spilled.dynptr_id
        && old.spilled.off == cur.spilled.off
        && check_ids(old.spilled.ref_obj_id, cur.spilled.ref_obj_id, idmap)
}

impl V<'_> {
    /// `stack_slot_obj_get_spi` for a dynptr: Err(message) when the pointer cannot point
    /// at a dynptr.
    fn dynptr_spi(reg: &Reg) -> Result<usize, String> {
        if !reg.b.is_const() {
            return Err("dynptr has to be at a constant offset".into());
        }
        let off = reg.off as i64 + reg.b.var_off.value as i64;
        if off % REG_SIZE as i64 != 0 || off >= 0 {
            return Err(format!("cannot pass in dynptr at an offset={}", off));
        }
        let spi = ((-off - 1) / REG_SIZE as i64) as usize;
        if spi < 1 {
            return Err(format!("cannot pass in dynptr at an offset={}", off));
        }
        Ok(spi)
    }

    /// `destroy_if_dynptr_stack_slot`: a write into a dynptr's slot destroys it (and the
    /// slices taken from it); referenced dynptrs may not be overwritten.
    pub(super) fn destroy_dynptr(&mut self, st: &mut State, fno: usize, spi: usize) -> R<()> {
        let fr = &st.frames[fno];
        if fr.slot(spi).ty[0] != Slot::Dynptr {
            return Ok(());
        }
        let first = if fr.slot(spi).spilled.off == 1 {
            spi
        } else {
            spi + 1
        };
        let meta = fr.slot(first).spilled.clone();
        if meta.dynptr_id == RINGBUF {
            return Err(Self::hint(
                self.err(st, "cannot overwrite referenced dynptr".into()),
                "submit or discard the ring buffer dynptr before reusing its stack slots".into(),
            ));
        }
        for s in [first, first - 1] {
            let sl = st.frames[fno].slot_mut(s);
            sl.ty = [Slot::Invalid; REG_SIZE];
            sl.spilled = Reg::not_init();
        }
        let allow = self.allow_ptr_leaks;
        st.for_each_reg(|r| {
            // only plain PTR_TO_MEM (`bpf_dynptr_data`); kfunc slices carry type flags
            if matches!(r.ty, RegType::Mem | RegType::MemOrNull)
                && r.mem_flags == 0
                && r.dynptr_id == meta.id
            {
                *r = if allow {
                    Reg::unknown()
                } else {
                    Reg::not_init()
                };
            }
        });
        Ok(())
    }

    /// A variable-offset write: every slot it may touch loses its dynptr.
    pub(super) fn destroy_dynptrs_in(
        &mut self,
        st: &mut State,
        fno: usize,
        lo: i32,
        hi: i32,
    ) -> R<()> {
        for a in lo..hi {
            if a < 0 {
                self.destroy_dynptr(st, fno, ((-a - 1) as usize) / REG_SIZE)?;
            }
        }
        Ok(())
    }

    /// `process_dynptr_func` (plus the OBJ_RELEASE check of `check_func_arg`).
    pub(super) fn dynptr_arg(
        &mut self,
        st: &mut State,
        func: i32,
        regno: u8,
        reg: &Reg,
    ) -> R<DynArg> {
        self.dynptr_arg_as(st, flavour(func), regno, reg)
    }

    /// `process_dynptr_func` for an argument of the given flavour (helpers and kfuncs).
    pub(super) fn dynptr_arg_as(
        &mut self,
        st: &mut State,
        (uninit, release, want): Flavour,
        regno: u8,
        reg: &Reg,
    ) -> R<DynArg> {
        let argno = regno - 1;
        if reg.ty == RegType::ConstDynptr {
            if release {
                return Err(self.err(st, "cannot release unowned const bpf_dynptr".into()));
            }
            if uninit {
                return Err(self.err(st, "Dynptr has to be an uninitialized dynptr".into()));
            }
            if want.is_some_and(|k| k != reg.dynptr_id) {
                return Err(self.err(
                    st,
                    format!(
                        "Expected a dynptr of type {} as arg #{}",
                        kind_name(want.unwrap_or(0)),
                        argno
                    ),
                ));
            }
            return Ok(DynArg {
                id: reg.id,
                kind: reg.dynptr_id,
                ..Default::default()
            });
        }
        let fno = reg.frameno as usize;
        let spi = Self::dynptr_spi(reg);
        if release {
            let ok = match &spi {
                Ok(s) => st.frames[fno].slot(*s).spilled.ref_obj_id != 0,
                Err(_) => false,
            };
            if !ok {
                let mut m = spi.clone().err().map(|e| e + "\n").unwrap_or_default();
                m.push_str(&format!("arg {} is an unacquired reference", regno));
                return Err(self.err(st, m));
            }
        }
        if uninit {
            let spi = match spi {
                Ok(s) => s,
                Err(e) => {
                    return Err(
                        self.err(st, format!("{e}\nDynptr has to be an uninitialized dynptr"))
                    )
                }
            };
            // check_mem_access(..., BPF_WRITE, value_regno = -1): plain data writes,
            // which assign no scalar ids
            for i in [0, 8] {
                self.check_mem_access(st, regno, i, 8, true, Some(Reg::konst(0)), Some(0), false)?;
            }
            self.destroy_dynptr(st, fno, spi)?;
            self.destroy_dynptr(st, fno, spi - 1)?;
            let kind = want.expect("uninit dynptr args have a kind");
            let id = self.new_id();
            let ref_obj_id = if kind == RINGBUF {
                let r = self.new_id();
                st.refs.push(RefState {
                    id: r,
                    insn: self.idx,
                });
                r
            } else {
                0
            };
            for (s, first) in [(spi, 1), (spi - 1, 0)] {
                let sl = st.frames[fno].slot_mut(s);
                sl.ty = [Slot::Dynptr; REG_SIZE];
                sl.spilled = Reg {
                    id,
                    ref_obj_id,
                    dynptr_id: kind,
                    off: first,
                    ..Reg::not_init()
                };
            }
            return Ok(DynArg {
                id,
                ref_obj_id,
                release: false,
                kind,
            });
        }
        let valid = match &spi {
            Ok(s) => {
                let fr = &st.frames[fno];
                fr.slot(*s).ty == [Slot::Dynptr; REG_SIZE]
                    && fr.slot(*s - 1).ty == [Slot::Dynptr; REG_SIZE]
                    && fr.slot(*s).spilled.off == 1
            }
            Err(_) => false,
        };
        if !valid {
            let mut m = spi.clone().err().map(|e| e + "\n").unwrap_or_default();
            m.push_str(&format!("Expected an initialized dynptr as arg #{}", argno));
            return Err(Self::hint(
                self.err(st, m),
                "create the dynptr first (bpf_dynptr_from_mem / bpf_ringbuf_reserve_dynptr) in these 16 stack bytes".into(),
            ));
        }
        let meta = st.frames[fno].slot(spi.expect("valid")).spilled.clone();
        if want.is_some_and(|k| k != meta.dynptr_id) {
            return Err(self.err(
                st,
                format!(
                    "Expected a dynptr of type {} as arg #{}",
                    kind_name(want.unwrap_or(0)),
                    argno
                ),
            ));
        }
        Ok(DynArg {
            id: meta.id,
            ref_obj_id: meta.ref_obj_id,
            release,
            kind: meta.dynptr_id,
        })
    }

    /// `unmark_stack_slots_dynptr` for a released ring buffer dynptr: the reference,
    /// its slices and every slot holding it go.
    pub(super) fn dynptr_release(&mut self, st: &mut State, ref_id: u32) {
        st.refs.retain(|r| r.id != ref_id);
        let allow = self.allow_ptr_leaks;
        st.for_each_reg(|r| {
            if r.ref_obj_id == ref_id {
                *r = if allow {
                    Reg::unknown()
                } else {
                    Reg::not_init()
                };
            }
        });
        for fr in st.frames.iter_mut() {
            for sl in fr.stack.iter_mut() {
                if sl.ty[0] == Slot::Dynptr && sl.spilled.ref_obj_id == ref_id {
                    sl.ty = [Slot::Invalid; REG_SIZE];
                    sl.spilled = Reg::not_init();
                }
            }
        }
    }
}
