//! The code generator: eBPF slots to x86-64 with `dynasmrt`.
//!
//! Register map (one to one, as arch/x86/net/bpf_jit_comp.c): r0 rax, r1 rdi, r2 rsi,
//! r3 rdx, r4 rcx, r5 r8, r6 rbx, r7 r13, r8 r14, r9 r15, r10 rbp. Scratch: r9, r10, r11
//! (the kernel's AUX_REG is r11 too). `r12` holds the [`JitCtx`](crate::tramp::JitCtx).
//!
//! r1..r5 are exactly the SysV argument registers 1..5, so a helper call passes them
//! without any move, the context going in the sixth argument register (r9).
//!
//! Frames: every BPF function (the entry function too) is entered with `call` through a
//! prologue that pushes rbp, rbx, r13, r14, r15 (the caller's r10, r6..r9: after the
//! return address this keeps `rsp` 16-byte aligned), increments the depth and moves
//! rbp 512 bytes up to the next stack frame of the runtime's frame area. `exit` undoes it
//! and returns. A tail call jumps to the target program's first instruction on the same
//! frame, like the interpreter.

// `Rq(r)` operands expand to `.into()` calls on values that already have the type.
#![allow(clippy::useless_conversion)]

use crate::tramp::*;
use bpfkit_isa::opcode::*;
use bpfkit_isa::RawInsn;
use bpfkit_vm::error::FaultKind;
use bpfkit_vm::fastpath;
use bpfkit_vm::helpers;
use bpfkit_vm::interp;
use bpfkit_vm::maps::map_handle;
use bpfkit_vm::runtime::{func_handle, Runtime, MAX_CALL_FRAMES};
use dynasmrt::x64::Assembler;
use dynasmrt::{dynasm, AssemblyOffset, DynamicLabel, DynasmApi, DynasmLabelApi};
use std::collections::{BTreeSet, HashMap, HashSet};

macro_rules! asm {
    ($ops:expr ; $($t:tt)*) => {
        dynasm!($ops ; .arch x64 ; $($t)*)
    };
}

/// x86 register number of each eBPF register.
pub const REG: [u8; 11] = [0, 7, 6, 2, 1, 8, 3, 13, 14, 15, 5];
const RAX: u8 = 0;
const RCX: u8 = 1;
const RDX: u8 = 2;
const R9: u8 = 9;
const R10: u8 = 10;
const R11: u8 = 11;

/// Code generation mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// No per-access checks: only for programs a verifier accepted.
    Fast,
    /// Every memory access goes through the interpreter's region checks.
    Checked,
}

/// A fault known at compile time, raised when its instruction executes.
pub struct StaticFault {
    pub prog: usize,
    pub pc: usize,
    pub kind: FaultKind,
}

/// What the compiler produced for one program.
pub struct ProgLabels {
    /// Start and end offsets of each slot's inline code (for listings).
    pub ranges: Vec<(AssemblyOffset, AssemblyOffset)>,
    /// Function prologues: slot -> label.
    pub prologues: Vec<(usize, DynamicLabel)>,
    /// Where the program's code starts (tail calls jump there; for an empty program, its
    /// "ran past the last instruction" fault).
    pub body: DynamicLabel,
}

pub struct Compiled {
    pub ops: Assembler,
    pub entry: AssemblyOffset,
    pub progs: Vec<ProgLabels>,
    pub static_faults: Vec<StaticFault>,
    /// Out-of-line code ranges (stubs), for listings: (start, end, description).
    pub stubs: Vec<(AssemblyOffset, AssemblyOffset, String)>,
    /// The callback shim (`callback.rs`): the entry trampoline calls it in place of a
    /// function prologue; it loads r3..r5 and jumps to the prologue.
    pub cb_shim: AssemblyOffset,
    /// Fast mode: the repeat loop (see [`compile`]), `None` in checked mode.
    pub rep_entry: Option<AssemblyOffset>,
    /// Prologues and `exit`s count the call depth in the run context (`JitCtx::depth`):
    /// checked mode, or an object that may enter a function frame ([`may_enter_a_frame`]).
    /// Otherwise every run stays at depth 0 and the entries set it so.
    pub depth_counted: bool,
}

/// Out-of-line code emitted after the program bodies.
enum Stub {
    /// Raise static fault `idx` (jumped to).
    Fault { label: DynamicLabel, idx: usize },
    /// Checked back edge: charge `n` instructions, then jump to `target`.
    BackEdge {
        label: DynamicLabel,
        n: i32,
        target: DynamicLabel,
        limit_fault: DynamicLabel,
    },
    /// Fast mode: a 4-byte load that hit the context.
    CtxLoad {
        label: DynamicLabel,
        back: DynamicLabel,
        dst: u8,
        loc: u64,
        sx: bool,
    },
    /// Fast mode: the general 4-byte load (memory or context) behind an inline read of
    /// a context field, for when `base` is not the context's address.
    Load4 {
        label: DynamicLabel,
        back: DynamicLabel,
        dst: u8,
        base: u8,
        off: i32,
        loc: u64,
        sx: bool,
    },
    /// Fast mode: a load, store or atomic outside the engines' memory (`r11` = its
    /// address minus the range's base): report the fault.
    Confine {
        label: DynamicLabel,
        loc: u64,
        meta: u32,
        base: u8,
        off: i32,
    },
    /// Fast mode: a 1-, 2- or 8-byte load whose address `r11` fell into the context:
    /// the checked load (which faults as the interpreter does).
    CtxOther {
        label: DynamicLabel,
        back: DynamicLabel,
        dst: u8,
        loc: u64,
        meta: u32,
    },
    /// The prologue of a function starting at `slot`.
    Prologue {
        label: DynamicLabel,
        body: DynamicLabel,
    },
    /// Fast mode: the generic call of helper `id` when r1 is not the map the inline
    /// path was compiled for; continues at `back`.
    Helper {
        label: DynamicLabel,
        back: DynamicLabel,
        prog: usize,
        pc: usize,
        id: i32,
    },
    /// Fast mode: the generic tail call (another map in r2, or a slot the jump table
    /// cannot serve); falls through to `back`.
    TailCall {
        label: DynamicLabel,
        back: DynamicLabel,
        prog: usize,
        pc: usize,
    },
}

/// What fast mode knows about one map when it compiles a call site naming it.
#[derive(Debug, Clone, Default)]
pub struct FastMap {
    pub map_type: u32,
    /// ARRAY / PERCPU_ARRAY: the value layout, and for per-CPU arrays the address of the
    /// per-CPU base table (owned by the `Jit`, never moved).
    pub array: Option<(fastpath::ArrayLayout, u64)>,
    /// PROG_ARRAY: (address of the jump table owned by the `Jit`, number of slots). Each
    /// entry is 0 (empty slot: fall through), 1 (use the generic helper) or the address
    /// of the target program's body.
    pub jump_table: Option<(u64, u32)>,
}

struct Gen<'a> {
    ops: Assembler,
    mode: Mode,
    /// The host has BMI2 (`shlx`/`shrx`/`sarx`: shifts by a register without rcx).
    bmi2: bool,
    rt: &'a Runtime,
    stubs: Vec<(Stub, String)>,
    static_faults: Vec<StaticFault>,
    fault_exit: DynamicLabel,
    prologues: HashMap<(usize, usize), DynamicLabel>,
    /// Fast mode: per map, what call sites may inline (empty in checked mode).
    fast_maps: &'a [FastMap],
    /// Fast mode, program being compiled: the map whose handle r1 / r2 hold before each
    /// slot, when a straight-line `lddw` says so (a guess: generated code checks it).
    known: Vec<[Option<usize>; 2]>,
    /// Fast mode, program being compiled: per slot, the registers (bit n = rn) that may
    /// hold a pointer into the context before it; a 4-byte load through any other register
    /// needs no context check (the kernel knows this from its verifier).
    may_ctx: Vec<u16>,
    /// Fast mode, code being compiled: per x86 register, the offsets `[lo, hi)` around its
    /// current value already proved inside the engines' memory since the last jump target
    /// (the range is one interval and never shrinks, so every byte between two checked
    /// accesses is inside it too): an access within needs no second comparison.
    confined: [Option<(i64, i64)>; 16],
    /// Fast mode, program being compiled: its slots and which are jump targets (for
    /// [`Gen::group_span`]; `None` while stubs are emitted).
    cur_insns: Option<Vec<RawInsn>>,
    cur_targets: Vec<bool>,
    /// Some program uses `may_goto`: function entries and tail calls set the frame's
    /// counter.
    has_may_goto: bool,
    /// See [`Compiled::depth_counted`].
    depth_counted: bool,
    /// Fast mode, program being compiled: counted loops ([`counted_loops`]) by back-edge
    /// slot.
    counted: HashMap<usize, CountedLoop>,
    /// The same by loop head: the back-edge slot.
    counted_heads: HashMap<usize, usize>,
    /// Prologues emitted in line before their function (`compile_prog`): no stub.
    inline_prologues: HashSet<(usize, usize)>,
    /// Their code, for the listing (with the stubs').
    inline_ranges: Vec<(AssemblyOffset, AssemblyOffset, String)>,
    /// Program being compiled: per slot, its strongly connected component in the graph
    /// of every way control may pass between slots ([`cycle_components`]); a backward
    /// jump between two components lies on no cycle and is not charged. Empty: charge
    /// every backward jump.
    components: Vec<u32>,
    /// Program being compiled: the slots its functions start at (0 and every local call
    /// or `lddw` of a function target inside it), sorted; a local call charges its
    /// callee's length against the budget ([`Gen::callee_charge`]).
    func_starts: Vec<usize>,
    /// While the unchecked copy of a counted loop is compiled ([`Gen::loop_copy`]):
    /// per slot, an x86 register whose span becomes proved after that slot.
    prove_after: HashMap<usize, (u8, (i64, i64))>,
}

fn rq(r: u8) -> u8 {
    REG[r as usize]
}

impl Gen<'_> {
    fn static_fault(&mut self, prog: usize, pc: usize, kind: FaultKind) -> DynamicLabel {
        let label = self.ops.new_dynamic_label();
        let idx = self.static_faults.len();
        let what = format!("fault stub: {kind}");
        self.static_faults.push(StaticFault { prog, pc, kind });
        self.stubs.push((Stub::Fault { label, idx }, what));
        label
    }

    /// Saves r0..r5 in the context.
    fn save_regs(&mut self, from: usize) {
        for (i, &r) in REG[..6].iter().enumerate().skip(from) {
            let off = OFF_SAVED + 8 * i as i32;
            asm!(self.ops ; mov QWORD [r12 + off], Rq(r));
        }
    }

    fn restore_regs(&mut self, from: usize, except: Option<u8>) {
        for (i, &r) in REG[..6].iter().enumerate().skip(from) {
            if Some(r) == except {
                continue;
            }
            let off = OFF_SAVED + 8 * i as i32;
            asm!(self.ops ; mov Rq(r), QWORD [r12 + off]);
        }
    }

    fn call_abs(&mut self, f: u64) {
        self.mark_touched();
        asm!(self.ops ; mov r11, QWORD f as i64 ; call r11);
        if self.mode == Mode::Fast {
            // Rust may have allocated (map updates, ring buffer records): reload the
            // confinement limit. r10 is caller-saved scratch.
            let l = bpfkit_vm::arena::limit_addr();
            let pad = bpfkit_vm::arena::jit_limit_offset() as i32;
            asm!(self.ops
                ; mov r10, QWORD l as i64
                ; mov r10, QWORD [r10]
                ; add r10, pad
                ; mov QWORD [r12 + OFF_ARENA_LIMIT], r10
            );
        }
    }

    /// Fast mode: what a proved span becomes through `insn` when it moves a pointer
    /// instead of forgetting it: `rX += K` / `rX -= K` shift rX's span, `rX = rY` copies
    /// rY's (r10's: any 16-bit offset, see [`Gen::confine`]). Returns false when `insn`
    /// is none of these (the caller then forgets what it writes).
    fn carry_confined(&mut self, insn: &RawInsn) -> bool {
        if self.mode != Mode::Fast || insn.code & 0x07 != BPF_ALU64 || insn.dst >= 10 {
            return false;
        }
        let d = REG[insn.dst as usize] as usize;
        let o = insn.code & 0xf0;
        let k = insn.code & 0x08 == 0;
        match (o, k) {
            (BPF_ADD, true) | (BPF_SUB, true) if insn.src == 0 && insn.off == 0 => {
                let sh = if o == BPF_ADD {
                    insn.imm as i64
                } else {
                    -(insn.imm as i64)
                };
                self.confined[d] = self.confined[d].map(|(a, b)| (a - sh, b - sh));
                true
            }
            (BPF_MOV, false) if insn.off == 0 && insn.imm == 0 && insn.src <= 10 => {
                self.confined[d] = if insn.src == 10 {
                    Some((-(1 << 15), (1 << 15) + 8))
                } else {
                    self.confined[REG[insn.src as usize] as usize]
                };
                true
            }
            _ => false,
        }
    }

    /// Whether slot `pc` is an `lddw` of the address of a global-data value (map value
    /// pseudo source) inside that value: its register then points into an allocated
    /// buffer that lives as long as the engine.
    fn points_into_a_value(&self, insns: &[RawInsn], pc: usize) -> bool {
        let i = insns[pc];
        if i.code != LDDW || !matches!(i.src, BPF_PSEUDO_MAP_VALUE | BPF_PSEUDO_MAP_IDX_VALUE) {
            return false;
        }
        let Some(hi) = insns.get(pc + 1) else {
            return false;
        };
        let m = self.rt.maps.maps.get(i.imm.max(0) as usize);
        m.is_some_and(|m| {
            m.direct_value_addr().is_some() && (hi.imm as u32) < m.def.value_size.max(1)
        })
    }

    /// A call into Rust that allocates nothing (fast mode keeps its confinement limit).
    fn call_abs_no_reload(&mut self, f: u64) {
        self.mark_touched();
        asm!(self.ops ; mov r11, QWORD f as i64 ; call r11);
    }

    /// Fast mode, before every call into Rust: tells the repeat loop (`rep_entry` in
    /// [`compile`]) that the runtime's per-run state may have changed, so the next run
    /// starts with the per-run reset (`tr_rerun`).
    fn mark_touched(&mut self) {
        if self.mode == Mode::Fast {
            asm!(self.ops ; mov QWORD [r12 + OFF_TOUCHED], 1);
        }
    }

    /// Fast mode: confines the `size`-byte access at `[base + off]` to the engines' address
    /// range ([`bpfkit_vm::arena`]) with one comparison; outside it, the access faults
    /// (the interpreter's fault for that address). Clobbers r11.
    ///
    /// The comparison covers the *group* of accesses through `base` from this slot on
    /// while `base` keeps its value and no other code joins in ([`Gen::group_span`]): it
    /// checks the group's highest 8-byte window against [`bpfkit_vm::arena::jit_limit`],
    /// and the read-write pad and slack around the range (`arena::jit_base`) make every
    /// byte of the group safe to touch. For a valid program this never faults (its first
    /// access is inside a buffer, so the window stays inside the slack); for a wrong one,
    /// it faults here or leaves the accesses inside the range. Later accesses within a
    /// proved span need no comparison.
    ///
    /// A register known to point into an allocated buffer needs no comparison at all for
    /// any 16-bit offset (the pad and slack again): r10, which only the prologue and
    /// `exit` write (fast mode refuses every instruction that writes r10; the call depth
    /// stays below `MAX_CALL_FRAMES`; the frames lie back to back in one buffer), and a
    /// register loaded by `lddw` with the address of a global-data value (see
    /// `compile_prog`, which records it in `confined`).
    #[allow(clippy::too_many_arguments)]
    fn confine(&mut self, prog: usize, pc: usize, base: u8, off: i32, size: u64, write: bool) {
        if base == REG[10] {
            return;
        }
        let (lo, hi) = (off as i64, off as i64 + size as i64);
        if let Some((a, b)) = self.confined[base as usize & 15] {
            if a <= lo && hi <= b {
                return;
            }
        }
        let (glo, ghi) = self.group_span(pc, base, lo, hi);
        let slot = &mut self.confined[base as usize & 15];
        *slot = Some(match *slot {
            Some((a, b)) => (a.min(glo), b.max(ghi)),
            None => (glo, ghi),
        });
        let label = self.ops.new_dynamic_label();
        let window = (ghi - 8) as i32;
        asm!(self.ops
            ; lea r11, [Rq(base) + window]
            ; sub r11, QWORD [r12 + OFF_ARENA_BASE]
            ; cmp r11, QWORD [r12 + OFF_ARENA_LIMIT]
            ; jae =>label
        );
        let loc = ((prog as u64) << 32) | pc as u64;
        let meta = size as u32 | if write { 0x100 } else { 0 };
        self.stubs.push((
            Stub::Confine {
                label,
                loc,
                meta,
                base,
                off,
            },
            format!("slot {pc}: access outside the engines' memory"),
        ));
    }

    /// Fast mode: `[lo, hi)` widened by the accesses through x86 register `x` in the
    /// slots after `pc` that run only after slot `pc` did and see the same value of `x`
    /// (up to the next jump target, `exit`, `ja`, or the instruction that writes `x`),
    /// as long as the whole span stays within what one register can reach (16-bit offsets).
    fn group_span(&self, pc: usize, x: u8, mut lo: i64, mut hi: i64) -> (i64, i64) {
        const MAX_SPAN: i64 = (1 << 16) + 8;
        let (Some(r), Some(insns)) = (REG.iter().position(|&q| q == x), self.cur_insns.as_ref())
        else {
            return (lo, hi);
        };
        let mut k = pc;
        loop {
            if k >= insns.len() {
                break;
            }
            let i = insns[k];
            if k > pc {
                if self.cur_targets.get(k).copied().unwrap_or(true) {
                    break;
                }
                if let Some((b, o, sz)) = access_of(&i) {
                    if b as usize == r && r != 10 {
                        let (nl, nh) = (lo.min(o), hi.max(o + sz));
                        if nh - nl <= MAX_SPAN {
                            (lo, hi) = (nl, nh);
                        }
                    }
                }
            }
            if written_regs(&i) & (1 << r) != 0 {
                break;
            }
            let c = i.code & 0x07;
            if (c == BPF_JMP || c == BPF_JMP32) && matches!(i.code & 0xf0, BPF_JA | BPF_EXIT) {
                break;
            }
            k += if i.code == LDDW { 2 } else { 1 };
        }
        (lo, hi)
    }

    fn check_fault(&mut self) {
        let fe = self.fault_exit;
        asm!(self.ops ; cmp QWORD [r12 + OFF_FAULTED], 0 ; jne =>fe);
    }

    /// Sets the current frame's may_goto counter to `BPF_MAX_LOOPS` (the kernel's
    /// per-subprogram initialisation of its hidden stack slot).
    fn reset_may_goto(&mut self) {
        if self.has_may_goto {
            asm!(self.ops
                ; mov r11, QWORD [r12 + OFF_DEPTH]
                ; and r11d, 7
                ; mov QWORD [r12 + r11 * 8 + OFF_MAY_GOTO], BPF_MAX_LOOPS as i32
            );
        }
    }

    fn set_loc(&mut self, prog: usize, pc: usize) {
        let loc = ((prog as u64) << 32) | pc as u64;
        asm!(self.ops ; mov r11, QWORD loc as i64 ; mov QWORD [r12 + OFF_LOC], r11);
    }

    fn target(
        &mut self,
        prog: usize,
        pc: usize,
        rel: i64,
        len: usize,
        labels: &[DynamicLabel],
    ) -> DynamicLabel {
        let t = pc as i64 + rel + 1;
        if t < 0 || t as usize >= len {
            return self.static_fault(prog, pc, FaultKind::JumpOutOfRange { target: t, len });
        }
        let target = labels[t as usize];
        // A counted loop's back edge: charged once on entering the loop (`compile_prog`).
        if self.counted.get(&pc).is_some_and(|c| c.head == t as usize) {
            return target;
        }
        // A backward jump on no cycle (clang lays out shared tails before the code that
        // jumps to them) can run at most once per pass through its slot: no loop, no
        // charge. Every jump is charged when the components are not known.
        let on_cycle = |c: &[u32]| c.is_empty() || c.get(pc) == c.get(t as usize);
        // Both modes charge back edges against the budget (`Config::insn_limit`): a
        // loop the verifier wrongly accepted ends in `InsnLimit`, not a hang.
        if t as usize <= pc && on_cycle(&self.components) {
            let label = self.ops.new_dynamic_label();
            let limit = self.rt.config.insn_limit;
            let limit_fault = self.static_fault(prog, pc, FaultKind::InsnLimit(limit));
            let n = (pc - t as usize + 1) as i32;
            self.stubs.push((
                Stub::BackEdge {
                    label,
                    n,
                    target,
                    limit_fault,
                },
                format!("back edge of slot {pc}: instruction budget"),
            ));
            return label;
        }
        target
    }

    fn emit_stubs(&mut self) -> Vec<(AssemblyOffset, AssemblyOffset, String)> {
        let mut ranges = Vec::new();
        // Stubs may add stubs (a confined load inside a stub): until none is left.
        while !self.stubs.is_empty() {
            self.confined = [None; 16];
            let stubs = std::mem::take(&mut self.stubs);
            ranges.extend(self.emit_stub_batch(stubs));
        }
        ranges
    }

    fn emit_stub_batch(
        &mut self,
        stubs: Vec<(Stub, String)>,
    ) -> Vec<(AssemblyOffset, AssemblyOffset, String)> {
        let mut ranges = Vec::new();
        for (s, what) in stubs {
            let start = self.ops.offset();
            match s {
                Stub::Fault { label, idx } => {
                    let fe = self.fault_exit;
                    asm!(self.ops
                        ; =>label
                        ; mov QWORD [r12 + OFF_STATIC_FAULT], (idx + 1) as i32
                        ; jmp =>fe
                    );
                }
                Stub::BackEdge {
                    label,
                    n,
                    target,
                    limit_fault,
                } => {
                    asm!(self.ops
                        ; =>label
                        ; sub QWORD [r12 + OFF_BUDGET], n
                        ; js =>limit_fault
                        ; jmp =>target
                    );
                }
                Stub::CtxLoad {
                    label,
                    back,
                    dst,
                    loc,
                    sx,
                } => self.ctx_load_stub(label, back, dst, loc, sx),
                Stub::Load4 {
                    label,
                    back,
                    dst,
                    base,
                    off,
                    loc,
                    sx,
                } => {
                    // The general 4-byte load: memory, or the context at another offset.
                    let ctx = self.ops.new_dynamic_label();
                    asm!(self.ops
                        ; =>label
                        ; lea r11, [Rq(base) + off]
                        ; mov r10, r11
                        ; sub r10, QWORD [r12 + OFF_CTX_BASE]
                        ; cmp r10, 24
                        ; jb =>ctx
                    );
                    let (prog, pc) = ((loc >> 32) as usize, (loc & 0xffff_ffff) as usize);
                    self.confined = [None; 16];
                    self.confine(prog, pc, base, off, 4, false);
                    if sx {
                        asm!(self.ops ; movsxd Rq(dst), DWORD [Rq(base) + off]);
                    } else {
                        asm!(self.ops ; mov Rd(dst), DWORD [Rq(base) + off]);
                    }
                    asm!(self.ops ; jmp =>back);
                    self.ctx_load_stub(ctx, back, dst, loc, sx);
                }
                Stub::Helper {
                    label,
                    back,
                    prog,
                    pc,
                    id,
                } => {
                    asm!(self.ops ; =>label);
                    self.helper_with(prog, pc, id, tr_map_dyn as *const () as u64);
                    asm!(self.ops ; jmp =>back);
                }
                Stub::TailCall {
                    label,
                    back,
                    prog,
                    pc,
                } => {
                    asm!(self.ops ; =>label);
                    self.tail_call(prog, pc);
                    asm!(self.ops ; jmp =>back);
                }
                Stub::Confine {
                    label,
                    loc,
                    meta,
                    base,
                    off,
                } => {
                    let fe = self.fault_exit;
                    asm!(self.ops
                        ; =>label
                        ; lea r11, [Rq(base) + off]
                        ; mov r10, QWORD loc as i64
                        ; mov QWORD [r12 + OFF_LOC], r10
                        ; mov rdi, r12
                        ; mov rsi, r11
                        ; mov edx, meta as i32
                    );
                    self.call_abs(tr_confine_fault as *const () as u64);
                    asm!(self.ops ; jmp =>fe);
                }
                Stub::CtxOther {
                    label,
                    back,
                    dst,
                    loc,
                    meta,
                } => {
                    asm!(self.ops ; =>label);
                    self.save_regs(0);
                    asm!(self.ops
                        ; mov r10, QWORD loc as i64
                        ; mov QWORD [r12 + OFF_LOC], r10
                        ; mov rdi, r12
                        ; mov rsi, r11
                        ; mov edx, meta as i32
                    );
                    self.call_abs(tr_load as *const () as u64);
                    self.check_fault();
                    asm!(self.ops ; mov r11, rax);
                    self.restore_regs(0, None);
                    asm!(self.ops ; mov Rq(dst), r11 ; jmp =>back);
                }
                Stub::Prologue { label, body } => {
                    asm!(self.ops ; =>label);
                    self.prologue_code();
                    asm!(self.ops ; jmp =>body);
                }
            }
            ranges.push((start, self.ops.offset(), what));
        }
        ranges
    }

    /// A function's prologue (without the jump to its first slot): saves the registers
    /// its `exit` restores, counts the call depth, moves r10 to the new frame.
    fn prologue_code(&mut self) {
        asm!(self.ops
            ; push rbp
            ; push rbx
            ; push r13
            ; push r14
            ; push r15
        );
        if self.depth_counted {
            asm!(self.ops ; add QWORD [r12 + OFF_DEPTH], 1);
        }
        asm!(self.ops ; add rbp, 512);
        self.reset_may_goto();
        if self.mode == Mode::Checked {
            self.save_regs(0);
            asm!(self.ops ; mov rdi, r12);
            self.call_abs(tr_enter_frame as *const () as u64);
            self.check_fault();
            self.restore_regs(0, None);
        }
    }

    /// Fast mode: a 4-byte load whose address `r11` fell into the context (`r10` = offset).
    fn ctx_load_stub(
        &mut self,
        label: DynamicLabel,
        back: DynamicLabel,
        dst: u8,
        loc: u64,
        sx: bool,
    ) {
        // Aligned fields below egress_ifindex come from the context's copy; anything
        // else, and every sign-extending load (an invalid context access, as the
        // interpreter reports it), takes the checked path.
        let slow = self.ops.new_dynamic_label();
        asm!(self.ops ; =>label);
        if !sx {
            asm!(self.ops
                ; test r10d, 3
                ; jnz =>slow
                ; cmp r10d, 20
                ; jae =>slow
                ; mov Rq(dst), QWORD [r12 + r10 * 2 + OFF_XDP_MD]
                ; jmp =>back
            );
        }
        asm!(self.ops ; =>slow);
        self.save_regs(0);
        let meta = 4u64 | if sx { 0x100 } else { 0 };
        asm!(self.ops
            ; mov r10, QWORD loc as i64
            ; mov QWORD [r12 + OFF_LOC], r10
            ; mov rdi, r12
            ; mov rsi, r11
            ; mov edx, meta as i32
        );
        self.call_abs(tr_load as *const () as u64);
        self.check_fault();
        asm!(self.ops ; mov r11, rax);
        self.restore_regs(0, None);
        asm!(self.ops ; mov Rq(dst), r11 ; jmp =>back);
    }

    fn compile_prog(
        &mut self,
        prog: usize,
        labels: &ProgLabelsBuilder,
    ) -> (DynamicLabel, Vec<(AssemblyOffset, AssemblyOffset)>) {
        if self.mode == Mode::Fast {
            // The entry function's prologue falls into the program (every run passes
            // here: no jump); a tail call enters at `body`, after it. The prologue's
            // may_goto reset is repeated at `body` (harmless).
            if let Some(&l) = self.prologues.get(&(prog, 0)) {
                let start = self.ops.offset();
                asm!(self.ops ; =>l);
                self.prologue_code();
                self.inline_prologues.insert((prog, 0));
                let what = "prologue of the function at slot 0 (in line, before it)".to_string();
                self.inline_ranges.push((start, self.ops.offset(), what));
            }
        }
        let body = self.ops.new_dynamic_label();
        asm!(self.ops ; =>body);
        // a tail call enters here: the program starts with a full may_goto budget
        self.reset_may_goto();
        let insns: &[RawInsn] = &self.rt.programs[prog].insns;
        let insns = insns.to_vec();
        let len = insns.len();
        let slots = labels.slots.clone();
        self.may_ctx = if self.mode == Mode::Fast {
            may_hold_ctx(&insns)
        } else {
            Vec::new()
        };
        self.known = if self.mode == Mode::Fast {
            known_maps(&insns)
        } else {
            Vec::new()
        };
        let mut ranges = vec![(AssemblyOffset(0), AssemblyOffset(0)); len];
        let mut pc = 0;
        // Slots never reached as instructions (second halves of lddw) get fault stubs.
        let mut covered = vec![false; len];
        let targets = jump_targets(&insns);
        self.confined = [None; 16];
        self.cur_insns = Some(insns.clone());
        self.cur_targets = targets.clone();
        self.components = cycle_components(&insns);
        self.func_starts = function_starts(&insns);
        self.counted = if self.mode == Mode::Fast {
            counted_loops(&insns)
        } else {
            HashMap::new()
        };
        self.counted_heads = self.counted.iter().map(|(&pc, c)| (c.head, pc)).collect();
        let mut fused_next = false;
        while pc < len {
            let start = self.ops.offset();
            if let Some(&back) = self.counted_heads.get(&pc) {
                // Entering a counted loop (only from the slot before): its whole budget,
                // before the head's label, which only its own back edge jumps to.
                let c = self.counted[&back];
                let limit = self.rt.config.insn_limit;
                let limit_fault = self.static_fault(prog, pc, FaultKind::InsnLimit(limit));
                asm!(self.ops
                    ; sub QWORD [r12 + OFF_BUDGET], c.charge as i32
                    ; js =>limit_fault
                );
                self.loop_copy(prog, &insns, &slots, &targets, c, back);
            }
            let l = slots[pc];
            asm!(self.ops ; =>l);
            covered[pc] = true;
            let width = self.compile_slot(prog, pc, &insns, &slots, &targets, &mut fused_next);
            ranges[pc] = (start, self.ops.offset());
            pc += width;
        }
        self.cur_insns = None;
        self.components = Vec::new();
        self.func_starts = Vec::new();
        // Falling off the end.
        let f = self.static_fault(prog, len, FaultKind::FellOffEnd);
        asm!(self.ops ; jmp =>f);
        for (i, c) in covered.iter().enumerate() {
            if !c {
                // Jumping into the second half of lddw executes it as an instruction.
                let k = slot_fault(&insns[i]);
                let label = slots[i];
                let idx = self.static_faults.len();
                self.static_faults.push(StaticFault {
                    prog,
                    pc: i,
                    kind: k,
                });
                let what = format!("slot {i} (second half of lddw) as an instruction");
                self.stubs.push((Stub::Fault { label, idx }, what));
            }
        }
        (body, ranges)
    }

    /// One slot of a program body (with its confinement bookkeeping); returns how many
    /// slots it used. `labels` are the slots' labels jumps use.
    fn compile_slot(
        &mut self,
        prog: usize,
        pc: usize,
        insns: &[RawInsn],
        labels: &[DynamicLabel],
        targets: &[bool],
        fused_next: &mut bool,
    ) -> usize {
        if targets[pc] {
            self.confined = [None; 16];
        }
        let width = if *fused_next {
            // Already emitted with the slot before (`fuse_mov_add`).
            *fused_next = false;
            1
        } else if self.fuse_mov_add(insns, pc, targets)
            || self.fuse_ctx_pair(prog, insns, pc, targets)
        {
            *fused_next = true;
            1
        } else {
            self.compile_insn(prog, pc, insns, labels)
        };
        if !self.carry_confined(&insns[pc]) {
            let w = written_regs(&insns[pc]);
            for (r, &x) in REG.iter().enumerate() {
                if w & (1 << r) != 0 {
                    self.confined[x as usize] = None;
                }
            }
        }
        if self.mode == Mode::Fast && self.points_into_a_value(insns, pc) {
            // Every byte within a 16-bit offset of an allocated buffer is read-write
            // memory of the range (its pad and slack, `bpfkit_vm::arena::jit_base`).
            let d = insns[pc].dst.min(10);
            self.confined[REG[d as usize] as usize] = Some((-(1 << 15), (1 << 15) + 8));
        }
        if let Some(&(x, span)) = self.prove_after.get(&pc) {
            self.confined[x as usize] = Some(span);
        }
        width
    }

    /// Fast mode, on entering counted loop `c` (back edge at `back`): when its body
    /// addresses memory through `rX = rB; rX += rI` (or `rX = rI; rX += rB`) with rI the
    /// counted register and rB a register the body never writes, the accesses through rX
    /// lie in `rB + [first + lo, top + hi)` (lo/hi: their lowest and highest offsets from
    /// rX), for every pass. One confinement compare of that span before the loop (as
    /// [`Gen::confine`] compares a group: its highest 8-byte window, the span within 16
    /// bits) then proves them all: if it holds, a copy of the loop runs whose accesses
    /// through rX need no compare; if not, the ordinary loop runs (no fault: a valid
    /// program may leave the loop before its first access). Emits the compares and the
    /// copy, which leaves to the slot after the back edge; does nothing otherwise.
    fn loop_copy(
        &mut self,
        prog: usize,
        insns: &[RawInsn],
        slots: &[DynamicLabel],
        targets: &[bool],
        c: CountedLoop,
        back: usize,
    ) {
        const MAX_SPAN: i64 = (1 << 16) + 8;
        let (t, i) = (c.head, c.ind);
        if back + 1 >= insns.len() || c.top > i32::MAX as u64 {
            return;
        }
        let body: Vec<usize> = {
            let mut v = Vec::new();
            let mut k = t;
            while k <= back {
                v.push(k);
                k += if insns[k].code == LDDW { 2 } else { 1 };
            }
            v
        };
        let written = body.iter().fold(0u16, |w, &k| w | written_regs(&insns[k]));
        // Per base register rB: the span [lo, hi) of offsets from rX, and the slots
        // after which rX = rB + rI holds.
        let mut bases: Vec<LoopBase> = Vec::new();
        for w in body.windows(2) {
            let (k, k1) = (w[0], w[1]);
            let (a, b) = (insns[k], insns[k1]);
            if k1 != k + 1
                || targets[k1]
                || a.code != (BPF_ALU64 | BPF_MOV | BPF_X)
                || b.code != (BPF_ALU64 | BPF_ADD | BPF_X)
                || a.off != 0
                || a.imm != 0
                || b.off != 0
                || b.imm != 0
                || b.dst != a.dst
                || a.dst >= 10
                || a.src > 10
                || b.src > 10
            {
                continue;
            }
            let x = a.dst;
            let rb = if a.src == i && b.src != i {
                b.src
            } else if b.src == i && a.src != i {
                a.src
            } else {
                continue;
            };
            if x == i || x == rb || rb >= 10 || written & (1 << rb) != 0 {
                continue;
            }
            // The accesses through rX after the add while rX keeps that value, up to the
            // next jump target, `exit` or `ja` (as `group_span`).
            let (mut lo, mut hi) = (i64::MAX, i64::MIN);
            let mut m = k1 + 1;
            while m <= back {
                let ins = insns[m];
                if targets[m] {
                    break;
                }
                if let Some((r, o, sz)) = access_of(&ins) {
                    if r == x {
                        (lo, hi) = (lo.min(o), hi.max(o + sz));
                    }
                }
                let cl = ins.code & 0x07;
                if written_regs(&ins) & (1 << x) != 0
                    || ((cl == BPF_JMP || cl == BPF_JMP32)
                        && matches!(ins.code & 0xf0, BPF_JA | BPF_EXIT))
                {
                    break;
                }
                m += if ins.code == LDDW { 2 } else { 1 };
            }
            if lo > hi {
                continue;
            }
            match bases.iter_mut().find(|e| e.0 == rb) {
                Some(e) => {
                    e.1 = e.1.min(lo);
                    e.2 = e.2.max(hi);
                    e.3.push((k1, x));
                }
                None => bases.push((rb, lo, hi, vec![(k1, x)])),
            }
        }
        let (first, top) = (c.first as i64, c.top as i64);
        // One compare proves a span within 16 bits whose window offset fits `lea`'s
        // 32-bit displacement.
        bases.retain(|e| {
            (top + e.2) - (first + e.1) <= MAX_SPAN && top + e.2 - 8 <= i32::MAX as i64
        });
        if bases.is_empty() {
            return;
        }
        // The compares: the ordinary loop when one fails.
        let slow = slots[t];
        for &(rb, _, hi, _) in &bases {
            let window = (top + hi - 8) as i32;
            asm!(self.ops
                ; lea r11, [Rq(rq(rb)) + window]
                ; sub r11, QWORD [r12 + OFF_ARENA_BASE]
                ; cmp r11, QWORD [r12 + OFF_ARENA_LIMIT]
                ; jae =>slow
            );
        }
        // The copy: its own labels inside the body, the others shared.
        let mut labels = slots.to_vec();
        for &k in &body {
            labels[k] = self.ops.new_dynamic_label();
        }
        self.prove_after = bases
            .iter()
            .flat_map(|&(_, lo, hi, ref at)| at.iter().map(move |&(k1, x)| (k1, (rq(x), (lo, hi)))))
            .collect();
        self.confined = [None; 16];
        // The copy is the hot loop: its head on a 32-byte boundary, so that where its
        // jumps fall relative to the decoders' 32-byte windows (Intel's JCC erratum: a
        // jump that crosses or ends on one runs from the legacy decoders, measured 1.6x
        // slower for bench_csum) depends on the loop alone, not on the code before it.
        self.align_with_nops(32);
        let mut fused_next = false;
        let mut k = t;
        while k <= back {
            let l = labels[k];
            asm!(self.ops ; =>l);
            k += self.compile_slot(prog, k, insns, &labels, targets, &mut fused_next);
        }
        self.prove_after.clear();
        let after = slots[back + 1];
        asm!(self.ops ; jmp =>after);
        self.confined = [None; 16];
    }

    /// Pads with multi-byte `nop`s (at most 9 bytes each, Intel's recommended forms) up
    /// to the next multiple of `to`: few instructions where the padding is executed.
    fn align_with_nops(&mut self, to: usize) {
        const NOPS: [&[u8]; 9] = [
            &[0x90],
            &[0x66, 0x90],
            &[0x0f, 0x1f, 0x00],
            &[0x0f, 0x1f, 0x40, 0x00],
            &[0x0f, 0x1f, 0x44, 0x00, 0x00],
            &[0x66, 0x0f, 0x1f, 0x44, 0x00, 0x00],
            &[0x0f, 0x1f, 0x80, 0x00, 0x00, 0x00, 0x00],
            &[0x0f, 0x1f, 0x84, 0x00, 0x00, 0x00, 0x00, 0x00],
            &[0x66, 0x0f, 0x1f, 0x84, 0x00, 0x00, 0x00, 0x00, 0x00],
        ];
        let mut pad = (to - self.ops.offset().0 % to) % to;
        while pad > 0 {
            let n = pad.min(9);
            self.ops.extend(NOPS[n - 1].iter().copied());
            pad -= n;
        }
    }

    /// `rX = rY; rX += K` or `rX = rY; rX += rZ` (Z != X) at `pc`, `pc + 1` as one `lea`
    /// (clang's pointer arithmetic before a bounds check): emits it and returns true, and
    /// the caller emits nothing for `pc + 1`. Only when `pc + 1` is no jump, call or
    /// function target, so nothing can start there; `lea` computes the same 64-bit sum
    /// (K sign-extended) and flags carry nothing between BPF instructions. The
    /// confinement bookkeeping still runs per slot, in order, as no access lies between.
    fn fuse_mov_add(&mut self, insns: &[RawInsn], pc: usize, targets: &[bool]) -> bool {
        let (Some(&a), Some(&b)) = (insns.get(pc), insns.get(pc + 1)) else {
            return false;
        };
        if targets.get(pc + 1).copied().unwrap_or(true)
            || a.code != (BPF_ALU64 | BPF_MOV | BPF_X)
            || a.off != 0
            || a.imm != 0
            || a.dst >= 10
            || a.src > 10
            || b.dst != a.dst
            || b.off != 0
        {
            return false;
        }
        let (x, y) = (rq(a.dst), rq(a.src));
        if b.code == (BPF_ALU64 | BPF_ADD | BPF_K) && b.src == 0 {
            asm!(self.ops ; lea Rq(x), [Rq(y) + b.imm]);
            true
        } else if b.code == (BPF_ALU64 | BPF_ADD | BPF_X)
            && b.imm == 0
            && b.src <= 10
            && b.src != a.dst
        {
            let z = rq(b.src);
            asm!(self.ops ; lea Rq(x), [Rq(y) + Rq(z)]);
            true
        } else {
            false
        }
    }

    /// Fast mode: `rA = *(u32 *)(rS + X); rB = *(u32 *)(rS + Y)` at `pc`, `pc + 1`, both
    /// context fields when rS is the context's address (clang's `data` / `data_end`
    /// loads), with rA != rS: one compare of rS with the context's address for both, then
    /// both fields from the context's copy; emits it and returns true, and the caller
    /// emits nothing for `pc + 1`. When rS is not the context's address the first slot's
    /// general load (a stub) continues into the second's, then back after both, so each
    /// slot keeps its own path and fault location. Only when `pc + 1` is no jump, call or
    /// function target (nothing can start there) and rA != rS (rS is the same at both).
    fn fuse_ctx_pair(
        &mut self,
        prog: usize,
        insns: &[RawInsn],
        pc: usize,
        targets: &[bool],
    ) -> bool {
        const LDXW: u8 = BPF_LDX | BPF_MEM | BPF_W;
        let (Some(&a), Some(&b)) = (insns.get(pc), insns.get(pc + 1)) else {
            return false;
        };
        let field = |i: &RawInsn| i.off % 4 == 0 && (0..20).contains(&i.off);
        if self.mode != Mode::Fast
            || targets.get(pc + 1).copied().unwrap_or(true)
            || a.code != LDXW
            || b.code != LDXW
            || a.src != b.src
            || a.src >= 10
            || a.dst >= 10
            || b.dst >= 10
            || a.dst == a.src
            || !field(&a)
            || !field(&b)
            || !self.may_be_ctx(pc, rq(a.src))
            || !self.may_be_ctx(pc + 1, rq(b.src))
        {
            return false;
        }
        let (s, da, db) = (rq(a.src), rq(a.dst), rq(b.dst));
        let other_a = self.ops.new_dynamic_label();
        let other_b = self.ops.new_dynamic_label();
        let back = self.ops.new_dynamic_label();
        let (fa, fb) = (OFF_XDP_MD + a.off as i32 * 2, OFF_XDP_MD + b.off as i32 * 2);
        asm!(self.ops
            ; cmp Rq(s), QWORD [r12 + OFF_CTX_BASE]
            ; jne =>other_a
            ; mov Rq(da), QWORD [r12 + fa]
            ; mov Rq(db), QWORD [r12 + fb]
            ; =>back
        );
        for (label, next, i, at) in [(other_a, other_b, a, pc), (other_b, back, b, pc + 1)] {
            self.stubs.push((
                Stub::Load4 {
                    label,
                    back: next,
                    dst: rq(i.dst),
                    base: s,
                    off: i.off as i32,
                    loc: ((prog as u64) << 32) | at as u64,
                    sx: false,
                },
                format!("slot {at}: 4-byte load, not from the context's address"),
            ));
        }
        true
    }

    /// Compiles one instruction; returns how many slots it used.
    fn compile_insn(
        &mut self,
        prog: usize,
        pc: usize,
        insns: &[RawInsn],
        slots: &[DynamicLabel],
    ) -> usize {
        let insn = insns[pc];
        let len = insns.len();
        let (code, dst, src, off, imm) = (insn.code, insn.dst, insn.src, insn.off, insn.imm);
        macro_rules! fail {
            ($k:expr) => {{
                let f = self.static_fault(prog, pc, $k);
                asm!(self.ops ; jmp =>f);
                return 1;
            }};
        }
        if dst > 10 || src > 10 {
            fail!(FaultKind::Unsupported(format!(
                "register r{} does not exist",
                dst.max(src)
            )));
        }
        if self.mode == Mode::Fast && writes_r10(&insn) {
            // The confinement of r10-relative accesses relies on it (see `confine`).
            fail!(FaultKind::Unsupported(
                "r10 (frame pointer) is read-only".into()
            ));
        }
        let d = rq(dst);
        let s = rq(src);
        match class(code) {
            BPF_ALU | BPF_ALU64 => {
                if dst == 10 {
                    fail!(FaultKind::Unsupported(
                        "r10 (frame pointer) is read-only".into()
                    ));
                }
                let is64 = class(code) == BPF_ALU64;
                let x = source(code) == BPF_X;
                let o = op(code);
                if o == BPF_END {
                    if is64 && source(code) != BPF_TO_LE {
                        fail!(FaultKind::UnknownOpcode(code));
                    }
                    let swap = is64 || source(code) == BPF_TO_BE;
                    match (imm, swap) {
                        (16, false) => asm!(self.ops ; movzx Rd(d), Rw(d)),
                        (32, false) => asm!(self.ops ; mov Rd(d), Rd(d)),
                        (64, false) => {}
                        (16, true) => asm!(self.ops ; ror Rw(d), 8 ; movzx Rd(d), Rw(d)),
                        (32, true) => asm!(self.ops ; bswap Rd(d)),
                        (64, true) => asm!(self.ops ; bswap Rq(d)),
                        _ => fail!(FaultKind::Unsupported(format!(
                            "byte swap width {imm} (only 16, 32, 64)"
                        ))),
                    }
                    return 1;
                }
                // The interpreter's encoding checks, in its order.
                #[allow(clippy::nonminimal_bool)]
                let bad = (o == BPF_NEG && x) || (!x && src != 0) || (x && imm != 0);
                if bad {
                    fail!(FaultKind::UnknownOpcode(code));
                }
                let valid = if is64 {
                    interp::alu64(o, 1, 1, off as i64, x).is_some()
                } else {
                    interp::alu32(o, 1, 1, off as i64, x).is_some()
                };
                if !valid {
                    fail!(FaultKind::UnknownOpcode(code));
                }
                self.alu(o, is64, x, d, s, off, imm);
                1
            }
            BPF_JMP | BPF_JMP32 => {
                let is32 = class(code) == BPF_JMP32;
                let o = op(code);
                match o {
                    BPF_JA => {
                        let rel = if is32 { imm as i64 } else { off as i64 };
                        let t = self.target(prog, pc, rel, len, slots);
                        asm!(self.ops ; jmp =>t);
                    }
                    BPF_JCOND
                        if code == BPF_JMP | BPF_JCOND
                            && insn.src == BPF_MAY_GOTO
                            && insn.dst == 0
                            && imm == 0 =>
                    {
                        // may_goto: taken once the frame's counter is exhausted
                        let t = self.target(prog, pc, off as i64, len, slots);
                        asm!(self.ops
                            ; mov r11, QWORD [r12 + OFF_DEPTH]
                            ; and r11d, 7
                            ; cmp QWORD [r12 + r11 * 8 + OFF_MAY_GOTO], 0
                            ; je =>t
                            ; sub QWORD [r12 + r11 * 8 + OFF_MAY_GOTO], 1
                        );
                    }
                    BPF_EXIT if !is32 && code == (BPF_JMP | BPF_EXIT) => {
                        if self.mode == Mode::Checked {
                            self.save_regs(0);
                            asm!(self.ops ; mov rdi, r12);
                            self.call_abs(tr_leave_frame as *const () as u64);
                            self.restore_regs(0, None);
                        }
                        if self.depth_counted {
                            asm!(self.ops ; sub QWORD [r12 + OFF_DEPTH], 1);
                        }
                        asm!(self.ops
                            ; pop r15
                            ; pop r14
                            ; pop r13
                            ; pop rbx
                            ; pop rbp
                            ; ret
                        );
                    }
                    BPF_CALL if !is32 => {
                        if source(code) == BPF_X {
                            let r = if imm != 0 && (imm as u32) <= 10 {
                                imm as u8
                            } else {
                                dst
                            };
                            self.callx(prog, pc, rq(r));
                            return 1;
                        }
                        match src {
                            BPF_PSEUDO_CALL => {
                                let t = pc as i64 + imm as i64 + 1;
                                if t < 0 || t as usize >= len {
                                    fail!(FaultKind::JumpOutOfRange { target: t, len });
                                }
                                let pl = self.prologue_label(prog, t as usize);
                                let depth_fault = self.static_fault(
                                    prog,
                                    pc,
                                    FaultKind::CallDepth(MAX_CALL_FRAMES),
                                );
                                // Calls are charged like back edges (the callee's length, an
                                // upper bound of its straight-line run): without it, a
                                // wrongly accepted program whose functions call each other
                                // from many call sites runs (call sites)^depth bodies.
                                let charge = self.callee_charge(t as usize, len);
                                let limit = self.rt.config.insn_limit;
                                let limit_fault =
                                    self.static_fault(prog, pc, FaultKind::InsnLimit(limit));
                                asm!(self.ops
                                    ; cmp QWORD [r12 + OFF_DEPTH], (MAX_CALL_FRAMES - 1) as i32
                                    ; jae =>depth_fault
                                    ; sub QWORD [r12 + OFF_BUDGET], charge
                                    ; js =>limit_fault
                                    ; call =>pl
                                );
                            }
                            0 => {
                                if imm == helpers::TAIL_CALL {
                                    self.tail_call_fast(prog, pc);
                                } else {
                                    self.helper_fast(prog, pc, imm);
                                }
                            }
                            BPF_PSEUDO_KFUNC_CALL => match bpfkit_vm::kfunc::helper_id(imm) {
                                Some(id) => self.helper(prog, pc, id),
                                None => fail!(FaultKind::Unsupported(format!(
                                    "kfunc call (BTF id {imm}) is not supported"
                                ))),
                            },
                            _ => fail!(FaultKind::UnknownOpcode(code)),
                        }
                    }
                    _ => {
                        if interp::cond(o, 0, 0, is32).is_none() {
                            fail!(FaultKind::UnknownOpcode(code));
                        }
                        let t = self.target(prog, pc, off as i64, len, slots);
                        self.cond_jump(o, is32, source(code) == BPF_X, d, s, imm, t);
                    }
                }
                1
            }
            BPF_LD => {
                if code != LDDW {
                    fail!(FaultKind::Unsupported(format!(
                        "opcode {code:#04x}: legacy packet access (LD_ABS/LD_IND) is not available to XDP programs"
                    )));
                }
                let Some(hi) = insns.get(pc + 1) else {
                    fail!(FaultKind::TruncatedLddw);
                };
                let lo = imm as u32 as u64;
                let nmaps = self.rt.maps.maps.len();
                let v = match src {
                    0 => lo | ((hi.imm as u32 as u64) << 32),
                    BPF_PSEUDO_MAP_FD | BPF_PSEUDO_MAP_IDX => {
                        if imm < 0 || imm as usize >= nmaps {
                            fail!(FaultKind::Unsupported(format!(
                                "lddw refers to map #{imm}, but the object has {nmaps} maps"
                            )));
                        }
                        map_handle(imm as usize)
                    }
                    BPF_PSEUDO_MAP_VALUE | BPF_PSEUDO_MAP_IDX_VALUE => {
                        let m = self.rt.maps.maps.get(imm.max(0) as usize);
                        match m.and_then(|m| m.direct_value_addr()) {
                            Some(a) => a + hi.imm as u32 as u64,
                            None => fail!(FaultKind::Unsupported(format!(
                                "lddw takes the address of a value of map #{imm}, which is not a single-value array"
                            ))),
                        }
                    }
                    BPF_PSEUDO_FUNC => {
                        let t = pc as i64 + imm as i64 + 1;
                        if t < 0 || t as usize >= len {
                            fail!(FaultKind::JumpOutOfRange { target: t, len });
                        }
                        func_handle(prog, t as usize)
                    }
                    s => fail!(FaultKind::Unsupported(format!(
                        "lddw with src {s} (BTF ids) is not supported"
                    ))),
                };
                if v <= u32::MAX as u64 {
                    // Writing the 32-bit register zero-extends.
                    asm!(self.ops ; mov Rd(d), v as u32 as i32);
                } else {
                    asm!(self.ops ; mov Rq(d), QWORD v as i64);
                }
                2
            }
            BPF_LDX => {
                let m = mode(code);
                let size = size_bytes(code);
                if (m != BPF_MEM && m != BPF_MEMSX) || (m == BPF_MEMSX && size == 8) || dst == 10 {
                    fail!(FaultKind::UnknownOpcode(code));
                }
                self.load(prog, pc, d, s, off as i32, size, m == BPF_MEMSX);
                1
            }
            BPF_ST | BPF_STX => {
                let m = mode(code);
                let size = size_bytes(code);
                if m == BPF_MEM {
                    if class(code) == BPF_ST && src != 0 {
                        fail!(FaultKind::UnknownOpcode(code));
                    }
                    let value = if class(code) == BPF_ST {
                        Err(imm)
                    } else {
                        Ok(s)
                    };
                    self.store(prog, pc, d, off as i32, size, value);
                } else if m == BPF_ATOMIC && class(code) == BPF_STX {
                    if imm == BPF_LOAD_ACQ {
                        self.load(prog, pc, d, s, off as i32, size, false);
                    } else if imm == BPF_STORE_REL {
                        self.store(prog, pc, d, off as i32, size, Ok(s));
                    } else {
                        self.atomic(prog, pc, d, s, off as i32, size, imm);
                    }
                } else {
                    fail!(FaultKind::UnknownOpcode(code));
                }
                1
            }
            _ => fail!(FaultKind::UnknownOpcode(code)),
        }
    }

    /// What a local call to slot `t` charges against the instruction budget: the callee
    /// function's length in slots (up to the next function start, or the program's end
    /// `len`), at most `i32::MAX`. Like a back edge's charge, an upper bound of what the
    /// callee runs between its own charged back edges and calls.
    fn callee_charge(&self, t: usize, len: usize) -> i32 {
        let end = self
            .func_starts
            .iter()
            .copied()
            .find(|&f| f > t)
            .unwrap_or(len);
        (end.saturating_sub(t).max(1)).min(i32::MAX as usize) as i32
    }

    fn prologue_label(&mut self, prog: usize, t: usize) -> DynamicLabel {
        if let Some(l) = self.prologues.get(&(prog, t)) {
            return *l;
        }
        let label = self.ops.new_dynamic_label();
        self.prologues.insert((prog, t), label);
        label
    }

    #[allow(clippy::too_many_arguments)]
    fn alu(&mut self, o: u8, is64: bool, x: bool, d: u8, s: u8, off: i16, imm: i32) {
        match o {
            BPF_DIV | BPF_MOD => return self.divmod(o, is64, x, d, s, off != 0, imm),
            BPF_LSH | BPF_RSH | BPF_ARSH => return self.shift(o, is64, x, d, s, imm),
            _ => {}
        }
        macro_rules! binop {
            ($op:ident) => {
                match (is64, x) {
                    (true, true) => asm!(self.ops ; $op Rq(d), Rq(s)),
                    (true, false) => asm!(self.ops ; $op Rq(d), imm),
                    (false, true) => asm!(self.ops ; $op Rd(d), Rd(s)),
                    (false, false) => asm!(self.ops ; $op Rd(d), imm),
                }
            };
        }
        match o {
            BPF_ADD => binop!(add),
            BPF_SUB => binop!(sub),
            BPF_OR => binop!(or),
            BPF_AND => binop!(and),
            BPF_XOR => binop!(xor),
            BPF_MUL => match (is64, x) {
                (true, true) => asm!(self.ops ; imul Rq(d), Rq(s)),
                (true, false) => asm!(self.ops ; imul Rq(d), Rq(d), imm),
                (false, true) => asm!(self.ops ; imul Rd(d), Rd(s)),
                (false, false) => asm!(self.ops ; imul Rd(d), Rd(d), imm),
            },
            BPF_NEG => {
                if is64 {
                    asm!(self.ops ; neg Rq(d));
                } else {
                    asm!(self.ops ; neg Rd(d));
                }
            }
            BPF_MOV => match (is64, x, off) {
                (true, true, 0) => asm!(self.ops ; mov Rq(d), Rq(s)),
                (true, true, 8) => asm!(self.ops ; movsx Rq(d), Rb(s)),
                (true, true, 16) => asm!(self.ops ; movsx Rq(d), Rw(s)),
                (true, true, _) => asm!(self.ops ; movsxd Rq(d), Rd(s)),
                // Shorter encodings of the same result: `xor r32, r32` for 0 (a BPF
                // instruction never leaves flags for the next one), a 32-bit `mov` (which
                // zero-extends) for a non-negative constant.
                (_, false, _) if imm == 0 => asm!(self.ops ; xor Rd(d), Rd(d)),
                (true, false, _) if imm > 0 => asm!(self.ops ; mov Rd(d), imm),
                (true, false, _) => asm!(self.ops ; mov Rq(d), imm),
                (false, true, 0) => asm!(self.ops ; mov Rd(d), Rd(s)),
                (false, true, 8) => asm!(self.ops ; movsx Rd(d), Rb(s)),
                (false, true, _) => asm!(self.ops ; movsx Rd(d), Rw(s)),
                (false, false, _) => asm!(self.ops ; mov Rd(d), imm),
            },
            _ => unreachable!("validated by interp::alu64/alu32"),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn divmod(&mut self, o: u8, is64: bool, x: bool, d: u8, s: u8, signed: bool, imm: i32) {
        // r11 = divisor, r9/r10 = saved rax/rdx, rax = dividend.
        if x {
            if is64 {
                asm!(self.ops ; mov r11, Rq(s));
            } else {
                asm!(self.ops ; mov r11d, Rd(s));
            }
        } else if is64 {
            asm!(self.ops ; mov r11, QWORD imm as i64);
        } else {
            asm!(self.ops ; mov r11d, imm);
        }
        asm!(self.ops ; mov r9, rax ; mov r10, rdx);
        if is64 {
            asm!(self.ops ; mov rax, Rq(d));
        } else {
            asm!(self.ops ; mov eax, Rd(d));
        }
        let zero = self.ops.new_dynamic_label();
        let minus1 = self.ops.new_dynamic_label();
        let done = self.ops.new_dynamic_label();
        if is64 {
            asm!(self.ops ; test r11, r11 ; jz =>zero);
        } else {
            asm!(self.ops ; test r11d, r11d ; jz =>zero);
        }
        if signed {
            if is64 {
                asm!(self.ops ; cmp r11, -1 ; je =>minus1 ; cqo ; idiv r11);
            } else {
                asm!(self.ops ; cmp r11d, -1 ; je =>minus1 ; cdq ; idiv r11d);
            }
        } else if is64 {
            asm!(self.ops ; xor edx, edx ; div r11);
        } else {
            asm!(self.ops ; xor edx, edx ; div r11d);
        }
        if o == BPF_DIV {
            asm!(self.ops ; mov r11, rax ; jmp =>done);
        } else {
            asm!(self.ops ; mov r11, rdx ; jmp =>done);
        }
        // Division by zero: quotient 0, remainder the dividend (zero-extended for ALU32).
        asm!(self.ops ; =>zero);
        if o == BPF_DIV {
            asm!(self.ops ; xor r11d, r11d ; jmp =>done);
        } else {
            asm!(self.ops ; mov r11, rax ; jmp =>done);
        }
        // Signed division by -1: negation (INT_MIN stays INT_MIN), remainder 0.
        asm!(self.ops ; =>minus1);
        if o == BPF_DIV {
            if is64 {
                asm!(self.ops ; neg rax ; mov r11, rax);
            } else {
                asm!(self.ops ; neg eax ; mov r11d, eax);
            }
        } else {
            asm!(self.ops ; xor r11d, r11d);
        }
        asm!(self.ops ; =>done ; mov rax, r9 ; mov rdx, r10 ; mov Rq(d), r11);
    }

    fn shift(&mut self, o: u8, is64: bool, x: bool, d: u8, s: u8, imm: i32) {
        macro_rules! sh {
            ($op:ident, $r:expr, cl) => {
                if is64 { asm!(self.ops ; $op Rq($r), cl) } else { asm!(self.ops ; $op Rd($r), cl) }
            };
            ($op:ident, $r:expr, $n:expr) => {
                if is64 { asm!(self.ops ; $op Rq($r), $n) } else { asm!(self.ops ; $op Rd($r), $n) }
            };
        }
        if !x {
            let n = (imm as u32 & if is64 { 63 } else { 31 }) as i8;
            if n != 0 {
                match o {
                    BPF_LSH => sh!(shl, d, n),
                    BPF_RSH => sh!(shr, d, n),
                    _ => sh!(sar, d, n),
                }
            }
        } else if self.bmi2 {
            // BMI2: the count in any register, rcx untouched; the count is masked
            // (63/31) like `shl`, and the 32-bit forms always write the whole register
            // (VEX), so no explicit zero-extension is needed even for a count of 0.
            match (o, is64) {
                (BPF_LSH, true) => asm!(self.ops ; shlx Rq(d), Rq(d), Rq(s)),
                (BPF_RSH, true) => asm!(self.ops ; shrx Rq(d), Rq(d), Rq(s)),
                (_, true) => asm!(self.ops ; sarx Rq(d), Rq(d), Rq(s)),
                (BPF_LSH, false) => asm!(self.ops ; shlx Rd(d), Rd(d), Rd(s)),
                (BPF_RSH, false) => asm!(self.ops ; shrx Rd(d), Rd(d), Rd(s)),
                (_, false) => asm!(self.ops ; sarx Rd(d), Rd(d), Rd(s)),
            }
            return;
        } else if s == RCX {
            match o {
                BPF_LSH => sh!(shl, d, cl),
                BPF_RSH => sh!(shr, d, cl),
                _ => sh!(sar, d, cl),
            }
        } else {
            // Keep r4 (rcx): the count goes through cl.
            asm!(self.ops ; mov r11, rcx ; mov rcx, Rq(s));
            let target = if d == RCX { R11 } else { d };
            match o {
                BPF_LSH => sh!(shl, target, cl),
                BPF_RSH => sh!(shr, target, cl),
                _ => sh!(sar, target, cl),
            }
            asm!(self.ops ; mov rcx, r11);
        }
        let nonzero_imm = !x && imm as u32 & 31 != 0;
        if !is64 && !nonzero_imm {
            // A 32-bit shift by 0 (or by cl, which may be 0) leaves the upper half as it
            // was: zero-extend explicitly. A shift by a non-zero constant writes the
            // 32-bit register, which zero-extends.
            asm!(self.ops ; mov Rd(d), Rd(d));
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn cond_jump(&mut self, o: u8, is32: bool, x: bool, d: u8, s: u8, imm: i32, t: DynamicLabel) {
        if o == BPF_JSET {
            match (is32, x) {
                (false, true) => asm!(self.ops ; test Rq(d), Rq(s)),
                (false, false) => asm!(self.ops ; test Rq(d), imm),
                (true, true) => asm!(self.ops ; test Rd(d), Rd(s)),
                (true, false) => asm!(self.ops ; test Rd(d), imm),
            }
            asm!(self.ops ; jnz =>t);
            return;
        }
        match (is32, x) {
            // `test r, r` sets every flag a jump reads exactly as `cmp r, 0` does (CF and
            // OF clear, ZF and SF from the value), in fewer bytes.
            (false, false) if imm == 0 => asm!(self.ops ; test Rq(d), Rq(d)),
            (true, false) if imm == 0 => asm!(self.ops ; test Rd(d), Rd(d)),
            (false, true) => asm!(self.ops ; cmp Rq(d), Rq(s)),
            (false, false) => asm!(self.ops ; cmp Rq(d), imm),
            (true, true) => asm!(self.ops ; cmp Rd(d), Rd(s)),
            (true, false) => asm!(self.ops ; cmp Rd(d), imm),
        }
        match o {
            BPF_JEQ => asm!(self.ops ; je =>t),
            BPF_JNE => asm!(self.ops ; jne =>t),
            BPF_JGT => asm!(self.ops ; ja =>t),
            BPF_JGE => asm!(self.ops ; jae =>t),
            BPF_JLT => asm!(self.ops ; jb =>t),
            BPF_JLE => asm!(self.ops ; jbe =>t),
            BPF_JSGT => asm!(self.ops ; jg =>t),
            BPF_JSGE => asm!(self.ops ; jge =>t),
            BPF_JSLT => asm!(self.ops ; jl =>t),
            BPF_JSLE => asm!(self.ops ; jle =>t),
            _ => unreachable!("validated by interp::cond"),
        }
    }

    fn helper(&mut self, prog: usize, pc: usize, id: i32) {
        self.helper_with(prog, pc, id, tr_helper as *const () as u64)
    }

    /// A helper call through trampoline `tramp` (`tr_helper`'s signature).
    fn helper_with(&mut self, prog: usize, pc: usize, id: i32, tramp: u64) {
        self.set_loc(prog, pc);
        asm!(self.ops ; mov QWORD [r12 + OFF_HELPER_ID], id);
        if self.mode == Mode::Checked {
            // The interpreter keeps r1..r5 across calls; unverified code may read them.
            self.save_regs(1);
        }
        asm!(self.ops ; mov r9, r12);
        self.call_abs(tramp);
        self.check_fault();
        if self.mode == Mode::Checked {
            self.restore_regs(1, None);
        }
    }

    /// The map handle in r1 (`reg` 0) or r2 (`reg` 1) before slot `pc`, if fast mode
    /// knows which map it is and has inline information for it.
    fn known_map(&self, pc: usize, reg: usize) -> Option<(usize, &FastMap)> {
        let m = self.known.get(pc)?[reg]?;
        Some((m, self.fast_maps.get(m)?))
    }

    /// A helper call; in fast mode, map lookups, updates and deletes on a map known at
    /// this call site go straight to the map (lookups in arrays inline, as the kernel's
    /// `array_map_gen_lookup`), after checking that r1 really holds that map.
    fn helper_fast(&mut self, prog: usize, pc: usize, id: i32) {
        let is_map_op = matches!(
            id,
            helpers::MAP_LOOKUP_ELEM | helpers::MAP_UPDATE_ELEM | helpers::MAP_DELETE_ELEM
        );
        if !is_map_op {
            let direct = crate::tramp::direct_tramp(id).filter(|_| self.mode == Mode::Fast);
            if let Some(t) = direct {
                // The helper's own trampoline: the id is not stored, `tr_direct` has it.
                self.set_loc(prog, pc);
                asm!(self.ops ; mov r9, r12);
                self.call_abs(t);
                self.check_fault();
                return;
            }
            return self.helper(prog, pc, id);
        }
        let Some((m, fm)) = self.known_map(pc, 0) else {
            return self.helper_with(prog, pc, id, tr_map_dyn as *const () as u64);
        };
        let fm = fm.clone();
        let supported = if id == helpers::MAP_LOOKUP_ELEM {
            fastpath::lookup_supported(fm.map_type)
        } else {
            fastpath::update_supported(fm.map_type)
        };
        if !supported {
            return self.helper(prog, pc, id);
        }
        let generic = self.ops.new_dynamic_label();
        let done = self.ops.new_dynamic_label();
        asm!(self.ops
            ; mov r11, QWORD map_handle(m) as i64
            ; cmp rdi, r11
            ; jne =>generic
        );
        match id {
            helpers::MAP_LOOKUP_ELEM => match &fm.array {
                Some((l, table)) if l.max_entries <= i32::MAX as u32 && l.stride <= 1 << 30 => {
                    let null = self.ops.new_dynamic_label();
                    // The key pointer comes from the program: outside the engines' memory
                    // the generic helper reports the fault.
                    let proved =
                        self.confined[REG[2] as usize].is_some_and(|(a, b)| a <= 0 && 4 <= b);
                    if !proved {
                        asm!(self.ops
                            ; mov r11, rsi
                            ; sub r11, QWORD [r12 + OFF_ARENA_BASE]
                            ; cmp r11, QWORD [r12 + OFF_ARENA_LIMIT]
                            ; jae =>generic
                        );
                    }
                    asm!(self.ops
                        ; mov eax, DWORD [rsi]
                        ; cmp eax, l.max_entries as i32
                        ; jae =>null
                        ; imul rax, rax, l.stride as i32
                    );
                    if l.bases.len() == 1 {
                        asm!(self.ops ; mov r11, QWORD l.bases[0] as i64 ; add rax, r11);
                    } else {
                        asm!(self.ops
                            ; mov r11, QWORD *table as i64
                            ; mov r10, QWORD [r12 + OFF_CPU]
                            ; add rax, QWORD [r11 + r10 * 8]
                        );
                    }
                    asm!(self.ops ; jmp =>done ; =>null ; xor eax, eax);
                }
                _ => {
                    // The location travels in rcx (r4, free here): only the fallback to
                    // the generic helper needs it. Lookups allocate nothing, so the
                    // confinement limit needs no reload (a stale one is only stricter).
                    let loc = ((prog as u64) << 32) | pc as u64;
                    asm!(self.ops ; mov edi, m as i32 ; mov rdx, r12 ; mov rcx, QWORD loc as i64);
                    self.call_abs_no_reload(tr_fast_lookup as *const () as u64);
                    self.check_fault();
                }
            },
            helpers::MAP_UPDATE_ELEM => {
                let loc = ((prog as u64) << 32) | pc as u64;
                asm!(self.ops ; mov edi, m as i32 ; mov r8, r12 ; mov r9, QWORD loc as i64);
                self.call_abs(tr_fast_update as *const () as u64);
                self.check_fault();
            }
            _ => {
                let loc = ((prog as u64) << 32) | pc as u64;
                asm!(self.ops ; mov edi, m as i32 ; mov rdx, r12 ; mov rcx, QWORD loc as i64);
                self.call_abs_no_reload(tr_fast_delete as *const () as u64);
                self.check_fault();
            }
        }
        asm!(self.ops ; =>done);
        self.stubs.push((
            Stub::Helper {
                label: generic,
                back: done,
                prog,
                pc,
                id,
            },
            format!("slot {pc}: generic helper call (r1 is not the expected map)"),
        ));
    }

    /// `bpf_tail_call`; in fast mode through the PROG_ARRAY's jump table when r2 holds
    /// the map this call site names (the kernel's direct tail call), counting in the run
    /// context.
    fn tail_call_fast(&mut self, prog: usize, pc: usize) {
        let Some((m, (table, n))) = self
            .known_map(pc, 1)
            .and_then(|(m, fm)| fm.jump_table.map(|t| (m, t)))
        else {
            return self.tail_call(prog, pc);
        };
        let generic = self.ops.new_dynamic_label();
        let fall = self.ops.new_dynamic_label();
        asm!(self.ops
            ; mov r11, QWORD map_handle(m) as i64
            ; cmp rsi, r11
            ; jne =>generic
            ; cmp edx, n as i32
            ; jae =>fall
            ; cmp QWORD [r12 + OFF_TAIL_CALLS], fastpath::TAIL_CALL_LIMIT as i32
            ; jae =>fall
            ; mov r10d, edx
            ; mov r11, QWORD table as i64
            ; mov r11, QWORD [r11 + r10 * 8]
            ; cmp r11, 1
            ; jb =>fall
            ; je =>generic
            ; add QWORD [r12 + OFF_TAIL_CALLS], 1
            ; jmp r11
            ; =>fall
        );
        self.stubs.push((
            Stub::TailCall {
                label: generic,
                back: fall,
                prog,
                pc,
            },
            format!("slot {pc}: generic tail call"),
        ));
    }

    fn tail_call(&mut self, prog: usize, pc: usize) {
        self.set_loc(prog, pc);
        self.save_regs(0);
        asm!(self.ops ; mov r9, r12);
        self.call_abs(tr_tail_call as *const () as u64);
        self.check_fault();
        let fall = self.ops.new_dynamic_label();
        asm!(self.ops ; mov r11, rax);
        self.restore_regs(0, None);
        asm!(self.ops
            ; cmp r11, -1
            ; je =>fall
            ; mov r10, QWORD [r12 + OFF_TAIL_TABLE]
            ; jmp QWORD [r10 + r11 * 8]
            ; =>fall
        );
    }

    fn callx(&mut self, prog: usize, pc: usize, r: u8) {
        self.set_loc(prog, pc);
        asm!(self.ops ; mov QWORD [r12 + OFF_CALLX_VALUE], Rq(r));
        self.save_regs(0);
        asm!(self.ops ; mov rdi, r12);
        self.call_abs(tr_callx as *const () as u64);
        self.check_fault();
        let helper_done = self.ops.new_dynamic_label();
        let done = self.ops.new_dynamic_label();
        asm!(self.ops ; mov r11, QWORD [r12 + OFF_CALLX_ADDR] ; test r11, r11 ; jz =>helper_done);
        self.restore_regs(0, None);
        asm!(self.ops ; call r11 ; jmp =>done ; =>helper_done);
        self.restore_regs(1, None);
        asm!(self.ops ; =>done);
    }

    #[allow(clippy::too_many_arguments)]
    fn load(&mut self, prog: usize, pc: usize, d: u8, s: u8, off: i32, size: u64, sx: bool) {
        if self.mode == Mode::Checked {
            asm!(self.ops ; lea r11, [Rq(s) + off]);
            self.set_loc_keep_r11(prog, pc);
            self.save_regs(0);
            let meta = size | if sx { 0x100 } else { 0 };
            asm!(self.ops ; mov rdi, r12 ; mov rsi, r11 ; mov edx, meta as i32);
            self.call_abs(tr_load as *const () as u64);
            self.check_fault();
            asm!(self.ops ; mov r11, rax);
            self.restore_regs(0, Some(d));
            asm!(self.ops ; mov Rq(d), r11);
            return;
        }
        let ctx_field = size == 4 && self.may_be_ctx(pc, s);
        if size != 4 && self.may_be_ctx(pc, s) {
            // The kernel only allows aligned 4-byte context reads: any other load that
            // may read the context takes the checked load there (which faults).
            let slow = self.ops.new_dynamic_label();
            let back = self.ops.new_dynamic_label();
            asm!(self.ops
                ; lea r11, [Rq(s) + off]
                ; mov r10, r11
                ; sub r10, QWORD [r12 + OFF_CTX_BASE]
                ; cmp r10, 24
                ; jb =>slow
            );
            let loc = ((prog as u64) << 32) | pc as u64;
            let meta = size as u32 | if sx { 0x100 } else { 0 };
            self.stubs.push((
                Stub::CtxOther {
                    label: slow,
                    back,
                    dst: d,
                    loc,
                    meta,
                },
                format!("slot {pc}: {size}-byte load from the context"),
            ));
            self.confine(prog, pc, s, off, size, false);
            self.load_plain(d, s, off, size, sx);
            asm!(self.ops ; =>back);
            return;
        }
        if !ctx_field {
            self.confine(prog, pc, s, off, size, false);
        }
        match (size, sx) {
            (1, false) => asm!(self.ops ; movzx Rd(d), BYTE [Rq(s) + off]),
            (2, false) => asm!(self.ops ; movzx Rd(d), WORD [Rq(s) + off]),
            (1, true) => asm!(self.ops ; movsx Rq(d), BYTE [Rq(s) + off]),
            (2, true) => asm!(self.ops ; movsx Rq(d), WORD [Rq(s) + off]),
            // r10 always points into the stack (the verifier refuses writes to it), and a
            // register that cannot hold a context pointer here reads ordinary memory.
            (4, false) if !self.may_be_ctx(pc, s) => {
                asm!(self.ops ; mov Rd(d), DWORD [Rq(s) + off])
            }
            (4, true) if !self.may_be_ctx(pc, s) => {
                asm!(self.ops ; movsxd Rq(d), DWORD [Rq(s) + off])
            }
            (4, false) if off % 4 == 0 && (0..20).contains(&off) => {
                // Probably a context field (the kernel rewrites these loads): read the
                // context's copy when the base is the context's address, otherwise take
                // the general path out of line.
                let other = self.ops.new_dynamic_label();
                let back = self.ops.new_dynamic_label();
                let field = OFF_XDP_MD + off * 2;
                asm!(self.ops
                    ; cmp Rq(s), QWORD [r12 + OFF_CTX_BASE]
                    ; jne =>other
                );
                if sx {
                    asm!(self.ops ; movsxd Rq(d), DWORD [r12 + field]);
                } else {
                    asm!(self.ops ; mov Rq(d), QWORD [r12 + field]);
                }
                asm!(self.ops ; =>back);
                let loc = ((prog as u64) << 32) | pc as u64;
                self.stubs.push((
                    Stub::Load4 {
                        label: other,
                        back,
                        dst: d,
                        base: s,
                        off,
                        loc,
                        sx,
                    },
                    format!("slot {pc}: 4-byte load, not from the context's address"),
                ));
            }
            (4, _) => {
                // A 4-byte load may read the context (rewritten like the kernel does).
                let slow = self.ops.new_dynamic_label();
                let back = self.ops.new_dynamic_label();
                asm!(self.ops
                    ; lea r11, [Rq(s) + off]
                    ; mov r10, r11
                    ; sub r10, QWORD [r12 + OFF_CTX_BASE]
                    ; cmp r10, 24
                    ; jb =>slow
                );
                self.confine(prog, pc, s, off, 4, false);
                if sx {
                    asm!(self.ops ; movsxd Rq(d), DWORD [Rq(s) + off]);
                } else {
                    asm!(self.ops ; mov Rd(d), DWORD [Rq(s) + off]);
                }
                asm!(self.ops ; =>back);
                let loc = ((prog as u64) << 32) | pc as u64;
                self.stubs.push((
                    Stub::CtxLoad {
                        label: slow,
                        back,
                        dst: d,
                        loc,
                        sx,
                    },
                    format!("slot {pc}: context load"),
                ));
            }
            _ => asm!(self.ops ; mov Rq(d), QWORD [Rq(s) + off]),
        }
    }

    /// A plain 1-, 2- or 8-byte load (fast mode, after its checks).
    fn load_plain(&mut self, d: u8, s: u8, off: i32, size: u64, sx: bool) {
        match (size, sx) {
            (1, false) => asm!(self.ops ; movzx Rd(d), BYTE [Rq(s) + off]),
            (2, false) => asm!(self.ops ; movzx Rd(d), WORD [Rq(s) + off]),
            (1, true) => asm!(self.ops ; movsx Rq(d), BYTE [Rq(s) + off]),
            (2, true) => asm!(self.ops ; movsx Rq(d), WORD [Rq(s) + off]),
            _ => asm!(self.ops ; mov Rq(d), QWORD [Rq(s) + off]),
        }
    }

    /// Fast mode: whether x86 register `x` (an eBPF register) may hold a context pointer
    /// before slot `pc`.
    fn may_be_ctx(&self, pc: usize, x: u8) -> bool {
        let Some(r) = REG.iter().position(|&q| q == x) else {
            return true;
        };
        r != 10 && self.may_ctx.get(pc).is_none_or(|m| m & (1 << r) != 0)
    }

    /// `set_loc` without clobbering r11.
    fn set_loc_keep_r11(&mut self, prog: usize, pc: usize) {
        let loc = ((prog as u64) << 32) | pc as u64;
        asm!(self.ops ; mov r10, QWORD loc as i64 ; mov QWORD [r12 + OFF_LOC], r10);
    }

    fn store(
        &mut self,
        prog: usize,
        pc: usize,
        d: u8,
        off: i32,
        size: u64,
        value: Result<u8, i32>,
    ) {
        if self.mode == Mode::Checked {
            match value {
                Ok(s) => asm!(self.ops ; mov r9, Rq(s)),
                Err(imm) => asm!(self.ops ; mov r9, QWORD imm as i64),
            }
            asm!(self.ops ; lea r11, [Rq(d) + off]);
            self.set_loc_keep_r11(prog, pc);
            self.save_regs(0);
            asm!(self.ops ; mov rdi, r12 ; mov rsi, r11 ; mov rdx, r9 ; mov ecx, size as i32);
            self.call_abs(tr_store as *const () as u64);
            self.check_fault();
            self.restore_regs(0, None);
            return;
        }
        self.confine(prog, pc, d, off, size, true);
        match (size, value) {
            (1, Ok(s)) => asm!(self.ops ; mov BYTE [Rq(d) + off], Rb(s)),
            (2, Ok(s)) => asm!(self.ops ; mov WORD [Rq(d) + off], Rw(s)),
            (4, Ok(s)) => asm!(self.ops ; mov DWORD [Rq(d) + off], Rd(s)),
            (_, Ok(s)) => asm!(self.ops ; mov QWORD [Rq(d) + off], Rq(s)),
            (1, Err(i)) => asm!(self.ops ; mov BYTE [Rq(d) + off], i as i8),
            (2, Err(i)) => asm!(self.ops ; mov WORD [Rq(d) + off], i as i16),
            (4, Err(i)) => asm!(self.ops ; mov DWORD [Rq(d) + off], i),
            (_, Err(i)) => asm!(self.ops ; mov QWORD [Rq(d) + off], i),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn atomic(&mut self, prog: usize, pc: usize, d: u8, s: u8, off: i32, size: u64, imm: i32) {
        let known = matches!(
            imm,
            0x00 | 0x01 | 0x40 | 0x41 | 0x50 | 0x51 | 0xa0 | 0xa1 | BPF_XCHG | BPF_CMPXCHG
        );
        if self.mode == Mode::Checked || size != 4 && size != 8 || !known {
            asm!(self.ops ; lea r11, [Rq(d) + off]);
            self.set_loc_keep_r11(prog, pc);
            self.save_regs(0);
            let mut meta = size | ((imm as u32 as u64) << 8);
            if !known {
                meta |= 0x1_0000_0000_0000;
            }
            asm!(self.ops
                ; mov rdi, r12
                ; mov rsi, r11
                ; mov rdx, QWORD meta as i64
                ; mov rcx, rax
            );
            self.call_abs(tr_atomic_check as *const () as u64);
            self.check_fault();
            self.restore_regs(0, None);
            if size != 4 && size != 8 {
                // tr_atomic_check always faults on these sizes; keep a stub for safety.
                let f = self.static_fault(
                    prog,
                    pc,
                    FaultKind::Unsupported(format!(
                        "atomic operation {imm:#x} on {size} bytes (only 4 and 8)"
                    )),
                );
                asm!(self.ops ; jmp =>f);
                return;
            }
            if !known {
                let f = self.static_fault(
                    prog,
                    pc,
                    FaultKind::Unsupported(format!("unknown atomic operation {imm:#x}")),
                );
                asm!(self.ops ; jmp =>f);
                return;
            }
        }
        let is64 = size == 8;
        // r9 = address (dst may be rax, which cmpxchg uses).
        //
        // No `lock` prefixes: the memory a program reaches (its maps' values, the packet,
        // its stack) belongs to one engine, and an engine runs on one thread at a time
        // (`Jit` is `Send`, not `Sync`; replay's worker threads each own an engine with
        // its own maps), so a plain read-modify-write gives exactly the result the
        // kernel's locked one gives, without a full memory barrier per instruction.
        // (`xchg` with memory is always locked by the CPU; it is rare in XDP code.)
        if self.mode == Mode::Fast {
            self.confine(prog, pc, d, off, size, true);
        }
        asm!(self.ops ; lea r9, [Rq(d) + off]);
        macro_rules! w {
            ($($t:tt)*) => { asm!(self.ops ; $($t)*) };
        }
        match imm {
            0x00 => {
                if is64 {
                    w!(add QWORD [r9], Rq(s))
                } else {
                    w!(add DWORD [r9], Rd(s))
                }
            }
            0x40 => {
                if is64 {
                    w!(or QWORD [r9], Rq(s))
                } else {
                    w!(or DWORD [r9], Rd(s))
                }
            }
            0x50 => {
                if is64 {
                    w!(and QWORD [r9], Rq(s))
                } else {
                    w!(and DWORD [r9], Rd(s))
                }
            }
            0xa0 => {
                if is64 {
                    w!(xor QWORD [r9], Rq(s))
                } else {
                    w!(xor DWORD [r9], Rd(s))
                }
            }
            0x01 => {
                if is64 {
                    w!(xadd QWORD [r9], Rq(s))
                } else {
                    w!(xadd DWORD [r9], Rd(s))
                }
            }
            BPF_XCHG => {
                if is64 {
                    w!(xchg QWORD [r9], Rq(s))
                } else {
                    w!(xchg DWORD [r9], Rd(s))
                }
            }
            BPF_CMPXCHG => {
                if is64 {
                    w!(cmpxchg QWORD [r9], Rq(s));
                } else {
                    // On success cmpxchg r32 leaves rax's upper half alone: zero-extend.
                    w!(cmpxchg DWORD [r9], Rd(s) ; mov eax, eax);
                }
            }
            _ => {
                // Fetching and/or/xor: a cmpxchg loop, as the kernel's JIT does. r10 keeps
                // r0 (rax is cmpxchg's comparand), r11 the new value.
                let src = if s == RAX { R10 } else { s };
                let again = self.ops.new_dynamic_label();
                w!(mov r10, rax);
                if is64 {
                    w!(mov rax, QWORD [r9]);
                } else {
                    w!(mov eax, DWORD [r9]);
                }
                w!(=>again ; mov r11, rax);
                match (imm & !BPF_FETCH, is64) {
                    (0x40, true) => w!(or r11, Rq(src)),
                    (0x50, true) => w!(and r11, Rq(src)),
                    (_, true) => w!(xor r11, Rq(src)),
                    (0x40, false) => w!(or r11d, Rd(src)),
                    (0x50, false) => w!(and r11d, Rd(src)),
                    (_, false) => w!(xor r11d, Rd(src)),
                }
                if is64 {
                    w!(cmpxchg QWORD [r9], r11 ; jne =>again ; mov Rq(src), rax);
                } else {
                    w!(cmpxchg DWORD [r9], r11d ; jne =>again ; mov Rd(src), eax);
                }
                // src == r0: the fetched value went to r10 and now becomes r0.
                w!(mov rax, r10);
            }
        }
        let _ = (R9, RDX);
    }
}

/// For each slot, the map whose handle r1 and r2 hold before it executes, when a `lddw`
/// of a map earlier in the same straight-line run of code put it there (forgotten at every
/// jump target and function start, and when the register is written). Only a guess for
/// picking an inline path: the generated code compares the register with the handle.
fn known_maps(insns: &[RawInsn]) -> Vec<[Option<usize>; 2]> {
    let len = insns.len();
    let mut target = vec![false; len + 1];
    let mut mark = |t: i64| {
        if t >= 0 && (t as usize) < len {
            target[t as usize] = true;
        }
    };
    for (pc, i) in insns.iter().enumerate() {
        let c = class(i.code);
        if c == BPF_JMP || c == BPF_JMP32 {
            match op(i.code) {
                BPF_CALL => {
                    if i.src == BPF_PSEUDO_CALL {
                        mark(pc as i64 + i.imm as i64 + 1);
                    }
                }
                BPF_EXIT => {}
                BPF_JA if c == BPF_JMP32 => mark(pc as i64 + i.imm as i64 + 1),
                _ => mark(pc as i64 + i.off as i64 + 1),
            }
        } else if i.code == LDDW && i.src == BPF_PSEUDO_FUNC {
            mark(pc as i64 + i.imm as i64 + 1);
        }
    }
    let mut out = vec![[None; 2]; len];
    let mut st: [Option<usize>; 2] = [None; 2];
    let mut pc = 0;
    while pc < len {
        if target[pc] {
            st = [None; 2];
        }
        out[pc] = st;
        let i = insns[pc];
        let mut width = 1;
        let clobber = |r: u8, st: &mut [Option<usize>; 2]| {
            if (1..=2).contains(&r) {
                st[r as usize - 1] = None;
            }
        };
        match class(i.code) {
            BPF_ALU | BPF_ALU64 | BPF_LDX => clobber(i.dst, &mut st),
            BPF_LD => {
                clobber(i.dst, &mut st);
                if i.code == LDDW {
                    width = 2;
                    let map =
                        (i.src == BPF_PSEUDO_MAP_FD || i.src == BPF_PSEUDO_MAP_IDX) && i.imm >= 0;
                    if map && (1..=2).contains(&i.dst) {
                        st[i.dst as usize - 1] = Some(i.imm as usize);
                    }
                }
            }
            BPF_STX => {
                clobber(i.dst, &mut st);
                clobber(i.src, &mut st);
            }
            BPF_JMP | BPF_JMP32 if op(i.code) == BPF_CALL => st = [None; 2],
            _ => {}
        }
        pc += width;
    }
    out
}

/// For each slot, the registers (bit n = rn) that may hold a pointer derived from the
/// context (`struct xdp_md *`) before it executes: a forward data-flow over the
/// program's control flow. Conservative in every unclear case: r1..r5 at every entry
/// point (the program, each function, each callback), an 8-byte load (a spilled pointer
/// may come back), 64-bit add/sub/other ALU with such a register, a fetching atomic, r0
/// after a BPF-to-BPF call. What a verified program cannot do makes the rest safe: a
/// 32-bit operation or a constant leaves a scalar, helpers return no context pointer,
/// the context is not stored in maps or packets.
fn may_hold_ctx(insns: &[RawInsn]) -> Vec<u16> {
    const ARGS: u16 = 0b11_1110; // r1..r5
    let len = insns.len();
    let mut state: Vec<Option<u16>> = vec![None; len];
    let mut work: Vec<usize> = Vec::new();
    let join = |state: &mut Vec<Option<u16>>, work: &mut Vec<usize>, t: i64, m: u16| {
        if t < 0 || t as usize >= len {
            return;
        }
        let t = t as usize;
        let new = state[t].unwrap_or(0) | m;
        if state[t] != Some(new) {
            state[t] = Some(new);
            work.push(t);
        }
    };
    join(&mut state, &mut work, 0, ARGS);
    for (pc, i) in insns.iter().enumerate() {
        let func = (i.code == (BPF_JMP | BPF_CALL) && i.src == BPF_PSEUDO_CALL)
            || (i.code == LDDW && i.src == BPF_PSEUDO_FUNC);
        if func {
            join(&mut state, &mut work, pc as i64 + i.imm as i64 + 1, ARGS);
        }
    }
    while let Some(pc) = work.pop() {
        let Some(mut m) = state[pc] else { continue };
        let i = insns[pc];
        let (dst, src) = (i.dst.min(15), i.src.min(15));
        let bit = |r: u8| 1u16 << r;
        let has = |m: u16, r: u8| m & bit(r) != 0;
        let c = class(i.code);
        let next = pc as i64 + 1;
        match c {
            BPF_ALU64 => {
                let x = source(i.code) == BPF_X;
                let o = op(i.code);
                if o == BPF_MOV {
                    m &= !bit(dst);
                    if x && has(m | state[pc].unwrap_or(0), src) {
                        m |= bit(dst);
                    }
                } else if o == BPF_END {
                    m &= !bit(dst);
                } else if x && has(m, src) {
                    m |= bit(dst);
                }
                join(&mut state, &mut work, next, m);
            }
            BPF_ALU => {
                m &= !bit(dst);
                join(&mut state, &mut work, next, m);
            }
            BPF_LDX => {
                if size(i.code) == BPF_DW {
                    m |= bit(dst);
                } else {
                    m &= !bit(dst);
                }
                join(&mut state, &mut work, next, m);
            }
            BPF_LD => {
                m &= !bit(dst);
                let w = if i.code == LDDW { 2 } else { 1 };
                join(&mut state, &mut work, pc as i64 + w, m);
            }
            BPF_ST => join(&mut state, &mut work, next, m),
            BPF_STX => {
                if mode(i.code) == BPF_ATOMIC {
                    m |= bit(src) | bit(0) | bit(dst);
                }
                join(&mut state, &mut work, next, m);
            }
            BPF_JMP | BPF_JMP32 => match op(i.code) {
                BPF_EXIT => {}
                BPF_CALL => {
                    m &= !ARGS;
                    if i.src == BPF_PSEUDO_CALL || source(i.code) == BPF_X {
                        m |= bit(0);
                    } else {
                        m &= !bit(0);
                    }
                    join(&mut state, &mut work, next, m);
                }
                BPF_JA => {
                    let rel = if c == BPF_JMP32 {
                        i.imm as i64
                    } else {
                        i.off as i64
                    };
                    join(&mut state, &mut work, next + rel, m);
                }
                _ => {
                    join(&mut state, &mut work, next + i.off as i64, m);
                    join(&mut state, &mut work, next, m);
                }
            },
            _ => join(&mut state, &mut work, next, m),
        }
    }
    // Slots never reached keep "anything may be the context".
    state.into_iter().map(|s| s.unwrap_or(0x7ff)).collect()
}

struct ProgLabelsBuilder {
    slots: Vec<DynamicLabel>,
}

const BPF_LOAD_ACQ: i32 = 0x100;
const BPF_STORE_REL: i32 = 0x110;

/// Slots control may reach other than from the slot before: jump and call targets and
/// functions named by `lddw` (conservative: any slot a jump, call or `lddw` of a function
/// could name, and slot 0).
fn jump_targets(insns: &[RawInsn]) -> Vec<bool> {
    let mut t = vec![false; insns.len() + 1];
    t[0] = true;
    for (pc, i) in insns.iter().enumerate() {
        if let Some(d) = jump_dest(pc, i) {
            if d >= 0 && (d as usize) < t.len() {
                t[d as usize] = true;
            }
        }
    }
    t
}

/// Where a jump, local call or `lddw` of a function at `pc` leads (slot index, may be
/// outside the program), as [`jump_targets`] reads them.
fn jump_dest(pc: usize, i: &RawInsn) -> Option<i64> {
    let c = i.code & 0x07;
    let rel = if c == BPF_JMP || c == BPF_JMP32 {
        match i.code & 0xf0 {
            BPF_EXIT => None,
            BPF_CALL => (i.src == BPF_PSEUDO_CALL).then_some(i.imm as i64),
            BPF_JA if c == BPF_JMP32 => Some(i.imm as i64),
            _ => Some(i.off as i64),
        }
    } else if i.code == LDDW && i.src == BPF_PSEUDO_FUNC {
        Some(i.imm as i64)
    } else {
        None
    };
    rel.map(|r| pc as i64 + r + 1)
}

/// Every slot a slot may pass control to within the program, as the generated code may
/// (whatever a verifier said): the next slot (but after `exit` and `goto`), the jump
/// target, the callee of a local call and the function an `lddw` names (callbacks);
/// after an `lddw` both following slots (its second half is a fault stub). Destinations
/// outside the program are left out (they fault).
fn successors(pc: usize, i: &RawInsn, len: usize, out: &mut Vec<usize>) {
    out.clear();
    let c = i.code & 0x07;
    let jmp = c == BPF_JMP || c == BPF_JMP32;
    let o = i.code & 0xf0;
    let falls = !(jmp && (o == BPF_EXIT || o == BPF_JA));
    if falls {
        out.push(pc + 1);
        if i.code == LDDW {
            out.push(pc + 2);
        }
    }
    if let Some(d) = jump_dest(pc, i) {
        if d >= 0 {
            out.push(d as usize);
        }
    }
    out.retain(|&d| d < len);
}

/// The slots functions start at in a program (0 and the targets of local calls and of
/// `lddw` of functions that lie inside it), sorted and without duplicates.
fn function_starts(insns: &[RawInsn]) -> Vec<usize> {
    let mut v = vec![0];
    for (pc, i) in insns.iter().enumerate() {
        let func = (i.code == (BPF_JMP | BPF_CALL) && i.src == BPF_PSEUDO_CALL)
            || (i.code == LDDW && i.src == BPF_PSEUDO_FUNC);
        let t = pc as i64 + i.imm as i64 + 1;
        if func && t >= 0 && (t as usize) < insns.len() {
            v.push(t as usize);
        }
    }
    v.sort_unstable();
    v.dedup();
    v
}

/// Per slot, the id of its strongly connected component in the [`successors`] graph
/// (Tarjan's algorithm, iterative). A jump from `pc` back to `t` lies on a cycle exactly
/// when both have the same id: only those need the instruction budget's charge, as a
/// run passes through any other jump at most once per entry to the function, and
/// entries are bounded by the call depth and tail-call limits.
fn cycle_components(insns: &[RawInsn]) -> Vec<u32> {
    const NONE: u32 = u32::MAX;
    let len = insns.len();
    let mut index = vec![NONE; len];
    let mut low = vec![0u32; len];
    let mut comp = vec![NONE; len];
    let mut on_stack = vec![false; len];
    let mut stack: Vec<usize> = Vec::new();
    // (slot, its successors, how many of them are done)
    let mut dfs: Vec<(usize, Vec<usize>, usize)> = Vec::new();
    let mut next_index = 0u32;
    let mut next_comp = 0u32;
    for root in 0..len {
        if index[root] != NONE {
            continue;
        }
        let mut visit = |v: usize,
                         dfs: &mut Vec<(usize, Vec<usize>, usize)>,
                         stack: &mut Vec<usize>,
                         index: &mut Vec<u32>,
                         low: &mut Vec<u32>,
                         on_stack: &mut Vec<bool>| {
            index[v] = next_index;
            low[v] = next_index;
            next_index += 1;
            stack.push(v);
            on_stack[v] = true;
            let mut s = Vec::new();
            successors(v, &insns[v], len, &mut s);
            dfs.push((v, s, 0));
        };
        visit(
            root,
            &mut dfs,
            &mut stack,
            &mut index,
            &mut low,
            &mut on_stack,
        );
        while let Some(top) = dfs.last_mut() {
            let v = top.0;
            if top.2 < top.1.len() {
                let w = top.1[top.2];
                top.2 += 1;
                if index[w] == NONE {
                    visit(w, &mut dfs, &mut stack, &mut index, &mut low, &mut on_stack);
                } else if on_stack[w] {
                    low[v] = low[v].min(index[w]);
                }
                continue;
            }
            dfs.pop();
            if let Some(parent) = dfs.last() {
                let p = parent.0;
                low[p] = low[p].min(low[v]);
            }
            if low[v] == index[v] {
                while let Some(w) = stack.pop() {
                    on_stack[w] = false;
                    comp[w] = next_comp;
                    if w == v {
                        break;
                    }
                }
                next_comp += 1;
            }
        }
    }
    comp
}

/// Whether `i` may make the program enter a function frame: a local call, an `lddw` of
/// a function, `callx`, a kfunc call, or a helper that runs callbacks or sets a timer's
/// (a wrongly accepted program may forge a function handle for `callx` or a callback
/// helper, so only objects with none of these may leave the call depth uncounted).
fn may_enter_a_frame(i: &RawInsn) -> bool {
    if i.code == LDDW {
        return i.src == BPF_PSEUDO_FUNC;
    }
    if i.code & 0x07 != BPF_JMP || i.code & 0xf0 != BPF_CALL {
        return false;
    }
    i.code & 0x08 != 0
        || i.src != 0
        || helpers::runs_callbacks(i.imm)
        || i.imm == bpfkit_vm::timer::TIMER_SET_CALLBACK
}

/// Whether some jump of the program lies on a cycle ([`cycle_components`]): only then
/// can its code charge the instruction budget.
fn has_cycle(insns: &[RawInsn]) -> bool {
    let comp = cycle_components(insns);
    let mut succ = Vec::new();
    (0..insns.len()).any(|pc| {
        successors(pc, &insns[pc], insns.len(), &mut succ);
        succ.iter().any(|&t| t <= pc && comp[t] == comp[pc])
    })
}

/// Fast mode: the counted loops of a program, whose number of iterations the code alone
/// bounds whatever a verifier said, so that they can be charged against the instruction
/// budget once on entry instead of on every back edge (a read-modify-write of the run
/// context per iteration). Returns, by back-edge slot, the loop head and the charge
/// (iterations x body length, an upper bound of what the back-edge charges would add up
/// to). A loop qualifies when:
/// - its back edge at `pc` is a 64-bit `if rX != K goto T` or `if rX < K goto T`
///   (unsigned, K >= 0) with T <= pc, T > 0;
/// - the head T is reached only from the slot before it and from this back edge, and
///   every other slot of the body `T..=pc` only by forward jumps from inside the body;
/// - the body contains no call (helper, local or tail call) and no other back edge, and
///   writes rX exactly once, with `rX += C` (64-bit, C > 0) at a slot `a` such that no
///   slot in `a+1..=pc` is reached by any jump (so every pass through the back edge has
///   passed `a` once since the head or the previous pass);
/// - rX on entering is a constant V: the last write of rX before T, in straight-line code
///   that no jump enters after that write, is `rX = V` (64-bit, or 32-bit zero-extended).
///
/// rX then takes the values V + C, V + 2C, ... at the back edge, so the loop leaves after
/// at most n = (K - V) / C passes (`!=`: K > V and C divides K - V, no 64-bit wrap before
/// K; `<`: ceil((K - V) / C), or 1 when V >= K).
fn counted_loops(insns: &[RawInsn]) -> HashMap<usize, CountedLoop> {
    let len = insns.len();
    let mut starts = vec![false; len];
    let mut k = 0;
    while k < len {
        starts[k] = true;
        k += if insns[k].code == LDDW { 2 } else { 1 };
    }
    let mut srcs: Vec<Vec<usize>> = vec![Vec::new(); len + 1];
    for pc in (0..len).filter(|&p| starts[p]) {
        if let Some(d) = jump_dest(pc, &insns[pc]) {
            if d >= 0 && (d as usize) <= len {
                srcs[d as usize].push(pc);
            }
        }
    }
    let mut out = HashMap::new();
    for pc in (0..len).filter(|&p| starts[p]) {
        let i = insns[pc];
        let o = i.code & 0xf0;
        if i.code & 0x07 != BPF_JMP || i.code & 0x08 != 0 || !matches!(o, BPF_JNE | BPF_JLT) {
            continue;
        }
        let t = pc as i64 + i.off as i64 + 1;
        if t < 1 || t as usize > pc || !starts[t as usize] || i.dst >= 10 {
            continue;
        }
        let (t, x) = (t as usize, i.dst);
        if srcs[t] != [pc] {
            continue;
        }
        // The body: one `rX += C`, no call, no other back edge, entered only at T.
        let mut add = None;
        let mut ok = true;
        let mut k = t;
        while k <= pc && ok {
            let b = insns[k];
            let c = b.code & 0x07;
            if (c == BPF_JMP || c == BPF_JMP32) && b.code & 0xf0 == BPF_CALL {
                ok = false;
            }
            if k != pc {
                if let Some(d) = jump_dest(k, &b) {
                    if d <= k as i64 && d >= t as i64 {
                        ok = false;
                    }
                }
            }
            if k > t && srcs[k].iter().any(|&s| s < t || s > pc || s >= k) {
                ok = false;
            }
            if written_regs(&b) & (1 << x) != 0 {
                if add.is_some()
                    || b.code != (BPF_ALU64 | BPF_ADD | BPF_K)
                    || b.src != 0
                    || b.off != 0
                    || b.imm <= 0
                {
                    ok = false;
                }
                add = Some((k, b.imm as u64));
            }
            k += if b.code == LDDW { 2 } else { 1 };
        }
        let Some((a, c)) = add else { continue };
        if !ok || (a + 1..=pc).any(|k| !srcs[k].is_empty()) {
            continue;
        }
        // rX on entering: the last write before T in straight-line code.
        let mut v = None;
        for k in (0..t).rev().filter(|&k| starts[k]) {
            let b = insns[k];
            if written_regs(&b) & (1 << x) != 0 {
                if b.src == 0 && b.off == 0 && b.code == (BPF_ALU64 | BPF_MOV | BPF_K) {
                    v = Some(b.imm as i64 as u64);
                } else if b.src == 0 && b.off == 0 && b.code == (BPF_ALU | BPF_MOV | BPF_K) {
                    v = Some(b.imm as u32 as u64);
                }
                break;
            }
            if k == 0 || !srcs[k].is_empty() {
                break;
            }
        }
        let Some(v) = v else { continue };
        let kk = i.imm as i64 as u64;
        let n = if o == BPF_JNE {
            if v >= kk || !(kk - v).is_multiple_of(c) {
                continue;
            }
            (kk - v) / c
        } else {
            if i.imm < 0 {
                continue;
            }
            if v >= kk {
                1
            } else {
                (kk - v).div_ceil(c)
            }
        };
        let charge = (n as u128) * (pc - t + 1) as u128;
        if charge > i32::MAX as u128 {
            continue;
        }
        // Every value rX takes inside the body: V at the head's first pass, at most K
        // (`!=`) or below K plus one increment (`<`) after.
        let top = if o == BPF_JNE {
            kk
        } else {
            v.max(kk.saturating_sub(1)).saturating_add(c)
        };
        out.insert(
            pc,
            CountedLoop {
                head: t,
                charge: charge as i64,
                ind: x,
                first: v,
                top,
            },
        );
    }
    out
}

/// [`Gen::loop_copy`]: a base register, the span `[lo, hi)` of offsets from the registers
/// derived from it, and the slots after which such a register (x86 number) holds
/// base + counter.
type LoopBase = (u8, i64, i64, Vec<(usize, u8)>);

/// A counted loop ([`counted_loops`]).
#[derive(Clone, Copy, Debug)]
struct CountedLoop {
    /// The loop head (the back edge's target).
    head: usize,
    /// Instructions charged on entering: passes x body length.
    charge: i64,
    /// The eBPF register counted, and the range `[first, top]` its value stays in at
    /// every slot of the body.
    ind: u8,
    first: u64,
    top: u64,
}

/// The memory access `insn` makes as (address register, offset, size), if any.
fn access_of(insn: &RawInsn) -> Option<(u8, i64, i64)> {
    let size = size_bytes(insn.code) as i64;
    let off = insn.off as i64;
    match insn.code & 0x07 {
        BPF_LDX if matches!(insn.code & 0xe0, BPF_MEM | BPF_MEMSX) => Some((insn.src, off, size)),
        BPF_ST if insn.code & 0xe0 == BPF_MEM => Some((insn.dst, off, size)),
        BPF_STX => match insn.code & 0xe0 {
            BPF_MEM => Some((insn.dst, off, size)),
            BPF_ATOMIC if insn.imm == BPF_LOAD_ACQ => Some((insn.src, off, size)),
            BPF_ATOMIC => Some((insn.dst, off, size)),
            _ => None,
        },
        _ => None,
    }
}

/// The eBPF registers (bit n = rn) `insn` may write; calls write r0..r5, anything not
/// understood writes all.
fn written_regs(insn: &RawInsn) -> u16 {
    let dst = 1u16 << (insn.dst & 15);
    match insn.code & 0x07 {
        BPF_ALU | BPF_ALU64 | BPF_LDX => dst,
        BPF_LD => dst,
        BPF_ST => 0,
        BPF_STX => match insn.code & 0xe0 {
            BPF_ATOMIC => match insn.imm {
                BPF_LOAD_ACQ => dst,
                BPF_CMPXCHG => 1,
                i if i & BPF_FETCH != 0 || i == BPF_XCHG => 1u16 << (insn.src & 15),
                _ => 0,
            },
            _ => 0,
        },
        BPF_JMP | BPF_JMP32 => match insn.code & 0xf0 {
            BPF_CALL => 0x3f,
            _ => 0,
        },
        _ => 0xffff,
    }
}

/// Whether `insn` writes r10 other than through an ALU operation (which both modes
/// refuse): `lddw`, load-acquire into r10, or a fetching atomic returning into r10.
fn writes_r10(insn: &RawInsn) -> bool {
    if insn.code == LDDW {
        return insn.dst == 10;
    }
    if insn.code & 0x07 == BPF_STX && insn.code & 0xe0 == BPF_ATOMIC {
        return match insn.imm {
            BPF_LOAD_ACQ => insn.dst == 10,
            BPF_CMPXCHG => false,
            i => (i & BPF_FETCH != 0 || i == BPF_XCHG) && insn.src == 10,
        };
    }
    false
}

fn size_bytes(code: u8) -> u64 {
    match size(code) {
        BPF_B => 1,
        BPF_H => 2,
        BPF_W => 4,
        _ => 8,
    }
}

/// The fault the interpreter raises when it executes slot `insn` as an instruction, for
/// the second slots of lddw (never compiled on their own). Mirrors the interpreter's
/// checks for what such a slot can hold.
fn slot_fault(insn: &RawInsn) -> FaultKind {
    if insn.dst > 10 || insn.src > 10 {
        return FaultKind::Unsupported(format!(
            "register r{} does not exist",
            insn.dst.max(insn.src)
        ));
    }
    if class(insn.code) == BPF_LD && insn.code != LDDW {
        return FaultKind::Unsupported(format!(
            "opcode {:#04x}: legacy packet access (LD_ABS/LD_IND) is not available to XDP programs",
            insn.code
        ));
    }
    FaultKind::Unsupported(format!(
        "jump into the second half of lddw at opcode {:#04x} (run it on the interpreter for its exact fault)",
        insn.code
    ))
}

/// Compiles every program of the runtime.
pub fn compile(rt: &Runtime, mode: Mode, fast_maps: &[FastMap]) -> Result<Compiled, String> {
    let mut ops = Assembler::new().map_err(|e| format!("mapping code memory: {e}"))?;
    let fault_exit = ops.new_dynamic_label();
    let mut g = Gen {
        ops,
        mode,
        bmi2: std::arch::is_x86_feature_detected!("bmi2"),
        rt,
        stubs: Vec::new(),
        static_faults: Vec::new(),
        fault_exit,
        prologues: HashMap::new(),
        fast_maps: if mode == Mode::Fast { fast_maps } else { &[] },
        known: Vec::new(),
        may_ctx: Vec::new(),
        confined: [None; 16],
        cur_insns: None,
        cur_targets: Vec::new(),
        has_may_goto: rt
            .programs
            .iter()
            .any(|p| p.insns.iter().any(|i| i.code == BPF_JMP | BPF_JCOND)),
        depth_counted: mode == Mode::Checked
            || rt
                .programs
                .iter()
                .any(|p| p.insns.iter().any(may_enter_a_frame)),
        counted: HashMap::new(),
        counted_heads: HashMap::new(),
        components: Vec::new(),
        func_starts: Vec::new(),
        inline_prologues: HashSet::new(),
        inline_ranges: Vec::new(),
        prove_after: HashMap::new(),
    };

    // Entry: extern "sysv64" fn(r1, r2, ctx, target, frame_below) -> u64.
    let entry = g.ops.offset();
    let exit = g.ops.new_dynamic_label();
    let fe = g.fault_exit;
    if mode == Mode::Checked {
        // Every register starts at 0, as in the interpreter (unverified code may read
        // one it never wrote).
        asm!(g.ops
            ; push rbp
            ; push rbx
            ; push r12
            ; push r13
            ; push r14
            ; push r15
            ; sub rsp, 8
            ; mov r12, rdx
            ; mov QWORD [r12 + OFF_ENTRY_RSP], rsp
            ; mov rbp, r8
            ; mov r11, rcx
            ; xor eax, eax
            ; xor edx, edx
            ; xor ecx, ecx
            ; xor r8d, r8d
            ; xor ebx, ebx
            ; xor r13d, r13d
            ; xor r14d, r14d
            ; xor r15d, r15d
            ; call r11
            ; =>exit
            ; add rsp, 8
            ; pop r15
            ; pop r14
            ; pop r13
            ; pop r12
            ; pop rbx
            ; pop rbp
            ; ret
            ; =>fe
            ; mov rsp, QWORD [r12 + OFF_ENTRY_RSP]
            ; xor eax, eax
            ; jmp =>exit
        );
    } else {
        // Lean entry: only rbp and r12 are saved here; the entry function's prologue
        // pushes rbx, r13, r14, r15 while they still hold the caller's values, and its
        // `exit` pops them back. A verified program reads no register it did not write
        // (r1 and r10 are set), so only r0 and r3..r5 (the entry's arguments) are cleared. The
        // fault exit skips the BPF frames, so it reloads those four from the entry
        // function's save area right below the saved return address.
        asm!(g.ops
            ; push rbp
            ; push r12
            ; sub rsp, 8
            ; mov r12, rdx
            ; mov QWORD [r12 + OFF_ENTRY_RSP], rsp
            ; mov rbp, r8
            ; mov r11, rcx
            ; xor eax, eax
            ; xor edx, edx
            ; xor ecx, ecx
            ; xor r8d, r8d
            ; call r11
            ; =>exit
            ; add rsp, 8
            ; pop r12
            ; pop rbp
            ; ret
            ; =>fe
            ; mov r11, QWORD [r12 + OFF_ENTRY_RSP]
            ; mov rbx, QWORD [r11 - 24]
            ; mov r13, QWORD [r11 - 32]
            ; mov r14, QWORD [r11 - 40]
            ; mov r15, QWORD [r11 - 48]
            ; mov rsp, r11
            ; xor eax, eax
            ; jmp =>exit
        );
    }

    // Fast mode's repeat loop, `Jit::repeat_runs` after the first run (the kernel's
    // `BPF_PROG_TEST_RUN` with `repeat` calls the program in a C loop the same way):
    // extern "sysv64" fn(r1, runs, ctx, target, frame_below) -> u64. Same frame as the
    // lean entry above, so the shared fault exit returns from it to Rust at once. Per
    // run: the budget and tail-call count are reset and the program's registers set as
    // the lean entry sets them; after a run that called into Rust (`JitCtx::touched`),
    // `tr_rerun` does the runtime's per-run reset before the next. rbx and r13-r15 keep
    // the caller's values (the program's prologue and `exit` save and restore them), so
    // the loop's own state lives in the context.
    let rep_entry = if mode == Mode::Fast {
        let rep_entry = g.ops.offset();
        let (top, done) = (g.ops.new_dynamic_label(), g.ops.new_dynamic_label());
        let rerun = tr_rerun as *const () as i64;
        asm!(g.ops
            ; push rbp
            ; push r12
            ; sub rsp, 8
            ; mov r12, rdx
            ; mov QWORD [r12 + OFF_ENTRY_RSP], rsp
            ; mov rbp, r8
            ; mov QWORD [r12 + OFF_REP_R1], rdi
            ; mov QWORD [r12 + OFF_REP_LEFT], rsi
            ; mov QWORD [r12 + OFF_REP_TARGET], rcx
            ; xor eax, eax
            ; test rsi, rsi
            ; jz =>done
            ; .align 16
            ; =>top
        );
        // The budget is only read where a cycle is charged, the tail-call count only
        // by tail calls: an object with neither needs no reset per run.
        let cyclic = rt.programs.iter().any(|p| has_cycle(&p.insns));
        let tail_calls = rt.programs.iter().any(|p| {
            p.insns
                .iter()
                .any(|i| i.code == (BPF_JMP | BPF_CALL) && i.imm == helpers::TAIL_CALL)
        });
        if cyclic {
            asm!(g.ops
                ; mov r11, QWORD [r12 + OFF_REP_BUDGET]
                ; mov QWORD [r12 + OFF_BUDGET], r11
            );
        }
        if tail_calls {
            asm!(g.ops ; mov QWORD [r12 + OFF_TAIL_CALLS], 0);
        }
        asm!(g.ops
            ; mov rdi, QWORD [r12 + OFF_REP_R1]
            ; xor eax, eax
            ; xor esi, esi
            ; xor edx, edx
            ; xor ecx, ecx
            ; xor r8d, r8d
            ; call QWORD [r12 + OFF_REP_TARGET]
            ; mov r11, QWORD [r12 + OFF_FAULTED]
            ; or r11, QWORD [r12 + OFF_STATIC_FAULT]
            ; jnz =>done
            ; sub QWORD [r12 + OFF_REP_LEFT], 1
            ; jz =>done
            ; cmp QWORD [r12 + OFF_TOUCHED], 0
            ; je =>top
            ; mov rdi, r12
            ; mov r11, QWORD rerun
            ; call r11
            ; jmp =>top
            ; =>done
            ; add rsp, 8
            ; pop r12
            ; pop rbp
            ; ret
        );
        Some(rep_entry)
    } else {
        None
    };

    // Callback shim (see `crate::callback`): entered by `call` from the entry trampoline
    // (which set r1, r2, r10 and r12), it sets r3..r5 from the save area and jumps to the
    // callback's prologue, so that the frame layout is the one of a direct call.
    let cb_shim = g.ops.offset();
    asm!(g.ops
        ; mov rdx, QWORD [r12 + OFF_SAVED + 24]
        ; mov rcx, QWORD [r12 + OFF_SAVED + 32]
        ; mov r8, QWORD [r12 + OFF_SAVED + 40]
        ; jmp QWORD [r12 + OFF_CALLX_ADDR]
    );

    // Labels first, so that calls and jumps can refer forward.
    let nprogs = rt.programs.len();
    let builders: Vec<ProgLabelsBuilder> = (0..nprogs)
        .map(|p| ProgLabelsBuilder {
            slots: (0..rt.programs[p].insns.len())
                .map(|_| g.ops.new_dynamic_label())
                .collect(),
        })
        .collect();
    // Every program can be entered (run or tail call) and every function named by a call
    // or an lddw of a function can be called.
    for (p, prog) in rt.programs.iter().enumerate() {
        if !prog.insns.is_empty() {
            g.prologue_label(p, 0);
        }
        let mut targets = BTreeSet::new();
        for (pc, i) in prog.insns.iter().enumerate() {
            let t = pc as i64 + i.imm as i64 + 1;
            let named = (i.code == (BPF_JMP | BPF_CALL) && i.src == BPF_PSEUDO_CALL)
                || (i.code == LDDW && i.src == BPF_PSEUDO_FUNC);
            if named && t >= 0 && (t as usize) < prog.insns.len() {
                targets.insert(t as usize);
            }
        }
        for t in targets {
            g.prologue_label(p, t);
        }
    }
    let mut progs = Vec::new();
    for (p, b) in builders.iter().enumerate() {
        let (body, ranges) = g.compile_prog(p, b);
        progs.push(ProgLabels {
            ranges,
            prologues: Vec::new(),
            body,
        });
    }
    let mut all: Vec<((usize, usize), DynamicLabel)> =
        g.prologues.iter().map(|(k, v)| (*k, *v)).collect();
    all.sort_by_key(|(k, _)| *k);
    for ((p, t), label) in all {
        progs[p].prologues.push((t, label));
        if g.inline_prologues.contains(&(p, t)) {
            continue;
        }
        let body = builders[p].slots[t];
        g.stubs.push((
            Stub::Prologue { label, body },
            format!("prologue of the function at slot {t}"),
        ));
    }
    let mut stubs = std::mem::take(&mut g.inline_ranges);
    stubs.extend(g.emit_stubs());
    Ok(Compiled {
        ops: g.ops,
        entry,
        progs,
        static_faults: g.static_faults,
        stubs,
        cb_shim,
        rep_entry,
        depth_counted: g.depth_counted,
    })
}
