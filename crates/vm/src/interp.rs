//! The interpreter: executes linked instruction streams with the kernel's semantics.
//!
//! Two loops share one machine state:
//!
//! - the **fast loop** runs a pre-decoded form of each program ([`Decoded`], built once per
//!   engine): one `match` per instruction on a compact opcode, immediates already
//!   extended, jump targets and `lddw` constants already resolved, registers in a 16-slot
//!   file indexed without bounds checks. The instruction budget is charged once per
//!   straight-line run (the instructions from a jump target or call return up to the next
//!   jump, call, exit or unusual instruction), which gives exactly the per-instruction
//!   count as long as the budget covers the whole run;
//! - the **exact loop** executes the raw instructions one at a time, counting each one. It
//!   runs instructions the fast form leaves to it (atomics, `callx`, malformed or invalid
//!   instructions: they fault exactly where and how they always did), the rest of a run
//!   once the budget no longer covers a whole straight-line run (so `InsnLimit` stops at
//!   the same instruction), and whole runs while coverage is recorded.

use crate::error::{Fault, FaultKind};
use crate::helpers;
use crate::maps::map_handle;
use crate::memory::{raw_load, raw_store, RegionKind};
use crate::runtime::{func_handle, Program, Runtime, MAX_CALL_FRAMES};
use bpfkit_isa::opcode::*;
use bpfkit_isa::RawInsn;
use std::sync::Arc;

/// A caller's state saved across a local call.
struct Frame {
    prog: usize,
    ret_pc: usize,
    saved: [u64; 4],
    r10: u64,
}

fn fault(rt: &Runtime, prog: usize, pc: usize, kind: FaultKind) -> Box<Fault> {
    let p = &rt.programs[prog];
    let insn = p.insns.get(pc).copied().unwrap_or_default();
    let text = bpfkit_isa::insn::decode_one(&insn, p.insns.get(pc + 1))
        .ok()
        .map(|(i, _)| bpfkit_asm::disasm::llvm(&i));
    Box::new(Fault {
        prog: p.name.clone(),
        pc,
        insn,
        text,
        origin: p.origins.get(pc).cloned().flatten(),
        kind,
    })
}

/// Compact opcodes of the fast loop. `I`: the operand is the pre-extended immediate, `R`:
/// register `src`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
#[rustfmt::skip]
enum Op {
    Add64I, Add64R, Sub64I, Sub64R, Mul64I, Mul64R, Div64I, Div64R, SDiv64I, SDiv64R,
    Mod64I, Mod64R, SMod64I, SMod64R, Or64I, Or64R, And64I, And64R, Xor64I, Xor64R,
    Lsh64I, Lsh64R, Rsh64I, Rsh64R, Arsh64I, Arsh64R, Neg64, Mov64I, Mov64R,
    MovSx64B, MovSx64H, MovSx64W,
    Add32I, Add32R, Sub32I, Sub32R, Mul32I, Mul32R, Div32I, Div32R, SDiv32I, SDiv32R,
    Mod32I, Mod32R, SMod32I, SMod32R, Or32I, Or32R, And32I, And32R, Xor32I, Xor32R,
    Lsh32I, Lsh32R, Rsh32I, Rsh32R, Arsh32I, Arsh32R, Neg32, Mov32I, Mov32R,
    MovSx32B, MovSx32H,
    Swap16, Swap32, Swap64, Trunc16, Trunc32, Nop,
    Ja,
    Jeq64I, Jeq64R, Jne64I, Jne64R, Jgt64I, Jgt64R, Jge64I, Jge64R, Jlt64I, Jlt64R,
    Jle64I, Jle64R, Jset64I, Jset64R, Jsgt64I, Jsgt64R, Jsge64I, Jsge64R, Jslt64I, Jslt64R,
    Jsle64I, Jsle64R,
    Jeq32I, Jeq32R, Jne32I, Jne32R, Jgt32I, Jgt32R, Jge32I, Jge32R, Jlt32I, Jlt32R,
    Jle32I, Jle32R, Jset32I, Jset32R, Jsgt32I, Jsgt32R, Jsge32I, Jsge32R, Jslt32I, Jslt32R,
    Jsle32I, Jsle32R,
    Exit, Call, TailCall, CallLocal,
    LdImm64,
    LdxB, LdxH, LdxW, LdxDW, LdxSB, LdxSH, LdxSW,
    StB, StH, StW, StDW, StxB, StxH, StxW, StxDW,
    /// Atomic read-modify-write of 4 / 8 bytes; `imm` is the operation.
    AtomicW, AtomicDW,
    /// Superinstructions (see [`fuse`]): `dst = src; dst += imm` and
    /// `dst = src; dst += r[off]` in one dispatch; the slot after keeps its own form.
    MovAdd64I, MovAdd64R,
    /// `dst = src; dst += imm; if dst > r[aux] goto off` (a packet bounds check).
    MovAddJgt64R,
    /// `dst += imm; if dst != aux goto off` (a loop counter).
    AddJne64I,
    /// `dst = src; dst += K; rW = C; if dst > rZ goto off`: the bounds check with the
    /// return value set in between, as clang often schedules it. `imm`: K (low 32 bits,
    /// sign-extended) and C (high 32 bits); `aux`: Z | W << 8 | 64-bit mov << 16.
    MovAddMovJgt64R,
    /// Executed by the exact loop's step (rare, unusual or invalid instructions).
    Slow,
    /// The slot after the last instruction: falling into it is `FellOffEnd`.
    End,
}

/// One pre-decoded instruction slot.
#[derive(Debug, Clone, Copy)]
struct D {
    op: Op,
    dst: u8,
    src: u8,
    /// Memory offset (sign-extended), jump target slot, or helper id.
    off: i32,
    /// Instructions executed from this slot to the end of its straight-line run
    /// (inclusive; an `lddw` counts once), charged when a run is entered here.
    cost: u32,
    /// Superinstructions only: a second operand (a register or a 32-bit constant).
    aux: i32,
    /// Immediate, extended as the instruction uses it (64-bit operations: sign-extended,
    /// 32-bit ones: zero-extended), or the `lddw` value.
    imm: u64,
}

/// The pre-decoded form of every program of a runtime (built on first use, rebuilt if
/// `Runtime::programs` is replaced).
pub struct Decoded {
    programs: Arc<Vec<Program>>,
    code: Vec<Vec<D>>,
}

impl std::fmt::Debug for Decoded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Decoded({} programs)", self.code.len())
    }
}

/// Builds the pre-decoded form of the runtime's programs now (engines call it at
/// creation; otherwise it happens on the first run).
pub fn predecode(rt: &mut Runtime) {
    decoded(rt);
}

/// The pre-decoded programs, as a pointer that stays valid as long as `rt` lives: a
/// `Decoded` replaced because `rt.programs` changed is kept in `rt.decoded_retired`, never
/// dropped before the runtime, and never mutated.
#[inline(always)]
fn decoded(rt: &mut Runtime) -> *const Decoded {
    if let Some(d) = &rt.decoded {
        if Arc::ptr_eq(&d.programs, &rt.programs) {
            return Arc::as_ptr(d);
        }
    }
    decode_all(rt)
}

/// [`decoded`] when the programs are not decoded yet (or were replaced).
#[cold]
#[inline(never)]
fn decode_all(rt: &mut Runtime) -> *const Decoded {
    let code = (0..rt.programs.len())
        .map(|p| decode_program(rt, p))
        .collect();
    let d = Arc::new(Decoded {
        programs: rt.programs.clone(),
        code,
    });
    let ptr = Arc::as_ptr(&d);
    if let Some(old) = rt.decoded.replace(d) {
        rt.decoded_retired.push(old);
    }
    ptr
}

fn decode_program(rt: &Runtime, prog: usize) -> Vec<D> {
    let insns = &rt.programs[prog].insns;
    let len = insns.len();
    let mut code: Vec<D> = (0..len).map(|pc| decode_one(rt, prog, insns, pc)).collect();
    code.push(D {
        op: Op::End,
        dst: 0,
        src: 0,
        off: 0,
        cost: 0,
        aux: 0,
        imm: 0,
    });
    // Straight-line run lengths, from the end backwards.
    for pc in (0..len).rev() {
        let d = &code[pc];
        let cost = match d.op {
            Op::LdImm64 => 1 + code[pc + 2].cost,
            op if ends_run(op) => 1,
            _ => 1 + code[pc + 1].cost,
        };
        code[pc].cost = cost;
    }
    fuse(&mut code);
    code
}

/// Replaces the two-instruction sequences clang emits for pointer arithmetic (`rX = rY;
/// rX += K` and `rX = rY; rX += rZ`, e.g. before every packet bounds check) by one
/// superinstruction at the first slot. Only sequential execution takes it: the second
/// slot keeps its own form, so a jump to it still runs that instruction alone. Both
/// instructions belong to the same straight-line run (a `mov` never ends one), the run's
/// cost stays on the first slot, and neither can fault, so the instruction count and
/// every fault are those of the unfused code.
fn fuse(code: &mut [D]) {
    for pc in 0..code.len().saturating_sub(1) {
        let (a, b) = (code[pc], code[pc + 1]);
        // Three slots, `rX = rY; rX += K; if rX > rZ goto T`: the bounds check clang emits
        // before a packet access. The jump ends the run, so all three are in one.
        if let (Some(&c), Some(&j)) = (code.get(pc + 2), code.get(pc + 3)) {
            let mov = matches!(c.op, Op::Mov32I | Op::Mov64I);
            if a.op == Op::Mov64R
                && b.op == Op::Add64I
                && b.dst == a.dst
                && mov
                && c.dst != a.dst
                && j.op == Op::Jgt64R
                && j.dst == a.dst
                && c.dst != j.src
            {
                let k = b.imm as u32 as u64;
                let cv = c.imm as u32 as u64;
                code[pc] = D {
                    op: Op::MovAddMovJgt64R,
                    imm: k | cv << 32,
                    aux: j.src as i32
                        | (c.dst as i32) << 8
                        | if c.op == Op::Mov64I { 1 << 16 } else { 0 },
                    off: j.off,
                    ..a
                };
                continue;
            }
        }
        if let Some(&c) = code.get(pc + 2) {
            if a.op == Op::Mov64R
                && b.op == Op::Add64I
                && b.dst == a.dst
                && c.op == Op::Jgt64R
                && c.dst == a.dst
            {
                code[pc] = D {
                    op: Op::MovAddJgt64R,
                    imm: b.imm,
                    aux: c.src as i32,
                    off: c.off,
                    ..a
                };
                continue;
            }
            // `rX += K; if rX != C goto T` with C the jump's sign-extended 32-bit constant.
            if a.op == Op::Add64I
                && b.op == Op::Jne64I
                && b.dst == a.dst
                && b.imm as i64 == b.imm as i32 as i64
            {
                code[pc] = D {
                    op: Op::AddJne64I,
                    aux: b.imm as i32,
                    off: b.off,
                    ..a
                };
                continue;
            }
        }
        if a.op != Op::Mov64R || b.dst != a.dst {
            continue;
        }
        match b.op {
            Op::Add64I => {
                code[pc] = D {
                    op: Op::MovAdd64I,
                    imm: b.imm,
                    ..a
                }
            }
            // `rX = rY; rX += rX` doubles rY: the fused form reads rZ before writing rX,
            // so it takes only a third register.
            Op::Add64R if b.src != a.dst => {
                code[pc] = D {
                    op: Op::MovAdd64R,
                    off: b.src as i32,
                    ..a
                }
            }
            _ => {}
        }
    }
}

/// Instructions after which the fast loop charges the budget of the next run.
fn ends_run(op: Op) -> bool {
    !matches!(
        op,
        Op::Add64I
            | Op::Add64R
            | Op::Sub64I
            | Op::Sub64R
            | Op::Mul64I
            | Op::Mul64R
            | Op::Div64I
            | Op::Div64R
            | Op::SDiv64I
            | Op::SDiv64R
            | Op::Mod64I
            | Op::Mod64R
            | Op::SMod64I
            | Op::SMod64R
            | Op::Or64I
            | Op::Or64R
            | Op::And64I
            | Op::And64R
            | Op::Xor64I
            | Op::Xor64R
            | Op::Lsh64I
            | Op::Lsh64R
            | Op::Rsh64I
            | Op::Rsh64R
            | Op::Arsh64I
            | Op::Arsh64R
            | Op::Neg64
            | Op::Mov64I
            | Op::Mov64R
            | Op::MovAdd64I
            | Op::MovAdd64R
            | Op::MovSx64B
            | Op::MovSx64H
            | Op::MovSx64W
            | Op::Add32I
            | Op::Add32R
            | Op::Sub32I
            | Op::Sub32R
            | Op::Mul32I
            | Op::Mul32R
            | Op::Div32I
            | Op::Div32R
            | Op::SDiv32I
            | Op::SDiv32R
            | Op::Mod32I
            | Op::Mod32R
            | Op::SMod32I
            | Op::SMod32R
            | Op::Or32I
            | Op::Or32R
            | Op::And32I
            | Op::And32R
            | Op::Xor32I
            | Op::Xor32R
            | Op::Lsh32I
            | Op::Lsh32R
            | Op::Rsh32I
            | Op::Rsh32R
            | Op::Arsh32I
            | Op::Arsh32R
            | Op::Neg32
            | Op::Mov32I
            | Op::Mov32R
            | Op::MovSx32B
            | Op::MovSx32H
            | Op::Swap16
            | Op::Swap32
            | Op::Swap64
            | Op::Trunc16
            | Op::Trunc32
            | Op::Nop
            | Op::LdImm64
            | Op::LdxB
            | Op::LdxH
            | Op::LdxW
            | Op::LdxDW
            | Op::LdxSB
            | Op::LdxSH
            | Op::LdxSW
            | Op::StB
            | Op::StH
            | Op::StW
            | Op::StDW
            | Op::StxB
            | Op::StxH
            | Op::StxW
            | Op::StxDW
            | Op::AtomicW
            | Op::AtomicDW
    )
}

/// The fast form of slot `pc`, or `Slow` for anything the exact loop must execute (it
/// raises the same faults as always, when and if the slot runs).
fn decode_one(rt: &Runtime, prog: usize, insns: &[RawInsn], pc: usize) -> D {
    let insn = insns[pc];
    let slow = D {
        op: Op::Slow,
        dst: 0,
        src: 0,
        off: 0,
        cost: 0,
        aux: 0,
        imm: 0,
    };
    let (dst, src) = (insn.dst, insn.src);
    if dst > 10 || src > 10 {
        return slow;
    }
    let code = insn.code;
    let imm = insn.imm;
    let off = insn.off as i64;
    let mk = |op: Op, off: i64, imm: u64| D {
        op,
        dst,
        src,
        off: off as i32,
        cost: 0,
        aux: 0,
        imm,
    };
    let len = insns.len();
    let tgt = |rel: i64| -> Option<i64> {
        let t = pc as i64 + rel + 1;
        (t >= 0 && (t as usize) < len).then_some(t)
    };
    match class(code) {
        BPF_ALU64 | BPF_ALU => {
            if dst == 10 {
                return slow;
            }
            let is64 = class(code) == BPF_ALU64;
            let x = source(code) == BPF_X;
            let o = op(code);
            if o == BPF_END {
                let to_be = source(code) == BPF_TO_BE;
                if is64 && to_be {
                    return slow;
                }
                let op = match (imm, is64 || to_be) {
                    (16, false) => Op::Trunc16,
                    (32, false) => Op::Trunc32,
                    (64, false) => Op::Nop,
                    (16, true) => Op::Swap16,
                    (32, true) => Op::Swap32,
                    (64, true) => Op::Swap64,
                    _ => return slow,
                };
                return mk(op, 0, 0);
            }
            let reserved_set = if x {
                o == BPF_NEG || imm != 0
            } else {
                src != 0
            };
            if reserved_set {
                return slow;
            }
            let ext = if is64 {
                imm as i64 as u64
            } else {
                imm as u32 as u64
            };
            macro_rules! pick {
                ($i64:ident, $r64:ident, $i32:ident, $r32:ident) => {
                    match (is64, x) {
                        (true, false) => Op::$i64,
                        (true, true) => Op::$r64,
                        (false, false) => Op::$i32,
                        (false, true) => Op::$r32,
                    }
                };
            }
            let op = match (o, off) {
                (BPF_ADD, 0) => pick!(Add64I, Add64R, Add32I, Add32R),
                (BPF_SUB, 0) => pick!(Sub64I, Sub64R, Sub32I, Sub32R),
                (BPF_MUL, 0) => pick!(Mul64I, Mul64R, Mul32I, Mul32R),
                (BPF_DIV, 0) => pick!(Div64I, Div64R, Div32I, Div32R),
                (BPF_DIV, 1) => pick!(SDiv64I, SDiv64R, SDiv32I, SDiv32R),
                (BPF_MOD, 0) => pick!(Mod64I, Mod64R, Mod32I, Mod32R),
                (BPF_MOD, 1) => pick!(SMod64I, SMod64R, SMod32I, SMod32R),
                (BPF_OR, 0) => pick!(Or64I, Or64R, Or32I, Or32R),
                (BPF_AND, 0) => pick!(And64I, And64R, And32I, And32R),
                (BPF_XOR, 0) => pick!(Xor64I, Xor64R, Xor32I, Xor32R),
                (BPF_LSH, 0) => pick!(Lsh64I, Lsh64R, Lsh32I, Lsh32R),
                (BPF_RSH, 0) => pick!(Rsh64I, Rsh64R, Rsh32I, Rsh32R),
                (BPF_ARSH, 0) => pick!(Arsh64I, Arsh64R, Arsh32I, Arsh32R),
                (BPF_NEG, 0) => pick!(Neg64, Neg64, Neg32, Neg32),
                (BPF_MOV, 0) => pick!(Mov64I, Mov64R, Mov32I, Mov32R),
                (BPF_MOV, 8) if x => pick!(MovSx64B, MovSx64B, MovSx32B, MovSx32B),
                (BPF_MOV, 16) if x => pick!(MovSx64H, MovSx64H, MovSx32H, MovSx32H),
                (BPF_MOV, 32) if x && is64 => Op::MovSx64W,
                _ => return slow,
            };
            mk(op, 0, ext)
        }
        BPF_JMP | BPF_JMP32 => {
            let is32 = class(code) == BPF_JMP32;
            let x = source(code) == BPF_X;
            let o = op(code);
            match o {
                BPF_JA => match tgt(if is32 { imm as i64 } else { off }) {
                    Some(t) => mk(Op::Ja, t, 0),
                    None => slow,
                },
                BPF_EXIT if code == (BPF_JMP | BPF_EXIT) => mk(Op::Exit, 0, 0),
                BPF_CALL if code == (BPF_JMP | BPF_CALL) => match src {
                    0 if imm == helpers::TAIL_CALL => mk(Op::TailCall, 0, 0),
                    0 => mk(Op::Call, imm as i64, 0),
                    BPF_PSEUDO_CALL => match tgt(imm as i64) {
                        Some(t) => mk(Op::CallLocal, t, 0),
                        None => slow,
                    },
                    _ => slow,
                },
                BPF_JEQ | BPF_JNE | BPF_JGT | BPF_JGE | BPF_JLT | BPF_JLE | BPF_JSET | BPF_JSGT
                | BPF_JSGE | BPF_JSLT | BPF_JSLE => {
                    let Some(t) = tgt(off) else { return slow };
                    let ext = if is32 {
                        imm as u32 as u64
                    } else {
                        imm as i64 as u64
                    };
                    macro_rules! pick {
                        ($i64:ident, $r64:ident, $i32:ident, $r32:ident) => {
                            match (is32, x) {
                                (false, false) => Op::$i64,
                                (false, true) => Op::$r64,
                                (true, false) => Op::$i32,
                                (true, true) => Op::$r32,
                            }
                        };
                    }
                    let op = match o {
                        BPF_JEQ => pick!(Jeq64I, Jeq64R, Jeq32I, Jeq32R),
                        BPF_JNE => pick!(Jne64I, Jne64R, Jne32I, Jne32R),
                        BPF_JGT => pick!(Jgt64I, Jgt64R, Jgt32I, Jgt32R),
                        BPF_JGE => pick!(Jge64I, Jge64R, Jge32I, Jge32R),
                        BPF_JLT => pick!(Jlt64I, Jlt64R, Jlt32I, Jlt32R),
                        BPF_JLE => pick!(Jle64I, Jle64R, Jle32I, Jle32R),
                        BPF_JSET => pick!(Jset64I, Jset64R, Jset32I, Jset32R),
                        BPF_JSGT => pick!(Jsgt64I, Jsgt64R, Jsgt32I, Jsgt32R),
                        BPF_JSGE => pick!(Jsge64I, Jsge64R, Jsge32I, Jsge32R),
                        BPF_JSLT => pick!(Jslt64I, Jslt64R, Jslt32I, Jslt32R),
                        _ => pick!(Jsle64I, Jsle64R, Jsle32I, Jsle32R),
                    };
                    mk(op, t, ext)
                }
                _ => slow,
            }
        }
        BPF_LD => {
            if code != LDDW {
                return slow;
            }
            let Some(hi) = insns.get(pc + 1) else {
                return slow;
            };
            let lo = imm as u32 as u64;
            let v = match src {
                0 => lo | ((hi.imm as u32 as u64) << 32),
                BPF_PSEUDO_MAP_FD | BPF_PSEUDO_MAP_IDX => {
                    if imm < 0 || imm as usize >= rt.maps.maps.len() {
                        return slow;
                    }
                    map_handle(imm as usize)
                }
                BPF_PSEUDO_MAP_VALUE | BPF_PSEUDO_MAP_IDX_VALUE => {
                    let m = rt.maps.maps.get(imm.max(0) as usize);
                    match m.and_then(|m| m.direct_value_addr()) {
                        Some(a) => a + hi.imm as u32 as u64,
                        None => return slow,
                    }
                }
                BPF_PSEUDO_FUNC => match tgt(imm as i64) {
                    Some(t) => func_handle(prog, t as usize),
                    None => return slow,
                },
                _ => return slow,
            };
            mk(Op::LdImm64, 0, v)
        }
        BPF_LDX => {
            if dst == 10 {
                return slow;
            }
            let op = match (mode(code), size(code)) {
                (BPF_MEM, BPF_B) => Op::LdxB,
                (BPF_MEM, BPF_H) => Op::LdxH,
                (BPF_MEM, BPF_W) => Op::LdxW,
                (BPF_MEM, BPF_DW) => Op::LdxDW,
                (BPF_MEMSX, BPF_B) => Op::LdxSB,
                (BPF_MEMSX, BPF_H) => Op::LdxSH,
                (BPF_MEMSX, BPF_W) => Op::LdxSW,
                _ => return slow,
            };
            mk(op, off, 0)
        }
        BPF_STX if mode(code) == BPF_ATOMIC => {
            let known = matches!(
                imm,
                0x00 | 0x01 | 0x40 | 0x41 | 0x50 | 0x51 | 0xa0 | 0xa1 | 0xe1 | 0xf1
            );
            match size(code) {
                BPF_W if known => mk(Op::AtomicW, off, imm as u64),
                BPF_DW if known => mk(Op::AtomicDW, off, imm as u64),
                _ => slow,
            }
        }
        BPF_ST | BPF_STX => {
            if mode(code) != BPF_MEM {
                return slow;
            }
            let st = class(code) == BPF_ST;
            if st && src != 0 {
                return slow;
            }
            let op = match (st, size(code)) {
                (true, BPF_B) => Op::StB,
                (true, BPF_H) => Op::StH,
                (true, BPF_W) => Op::StW,
                (true, _) => Op::StDW,
                (false, BPF_B) => Op::StxB,
                (false, BPF_H) => Op::StxH,
                (false, BPF_W) => Op::StxW,
                (false, _) => Op::StxDW,
            };
            mk(op, off, imm as i64 as u64)
        }
        _ => slow,
    }
}

/// The machine state shared by the fast and the exact loop.
struct State<'p> {
    /// r0..r10 (slots 11..15 unused: register numbers are masked with 15, which lets the
    /// compiler drop bounds checks).
    reg: [u64; 16],
    prog: usize,
    insns: &'p [RawInsn],
    frames: Vec<Frame>,
    /// Call depth of the function `run_function` was called for.
    depth: usize,
}

/// What the exact loop's step did.
enum Step {
    Next(usize),
    Return(u64),
}

/// Runs the function at slot `pc` of program `prog` with `args` in r1..r5, on a new
/// frame at call depth `depth`, until it returns; returns r0.
pub fn run_function(
    rt: &mut Runtime,
    prog: usize,
    pc: usize,
    args: &[u64],
    depth: usize,
) -> Result<u64, Box<Fault>> {
    // SAFETY: `decoded` returns a pointer to a `Decoded` the runtime keeps alive and
    // unchanged until it is dropped (see there), and `rt` outlives this call; no Arc
    // reference count is touched per run.
    let dec: &Decoded = unsafe { &*decoded(rt) };
    let programs: &[Program] = &dec.programs;
    let mut st = State {
        reg: [0u64; 16],
        prog,
        insns: &programs[prog].insns,
        frames: Vec::new(),
        depth,
    };
    // One by one: a copy of the slice is a call to `memcpy`, for usually one argument.
    for (i, a) in args.iter().enumerate().take(5) {
        st.reg[1 + i] = *a;
    }
    st.reg[10] = rt.enter_frame(depth).map_err(|k| fault(rt, prog, pc, k))?;
    if rt.coverage.is_some() || rt.exact_interp {
        return run_exact(rt, programs, &mut st, pc);
    }
    run_fast(rt, programs, dec, &mut st, pc)
}

/// The exact loop: one raw instruction at a time, each counted against the budget.
fn run_exact<'p>(
    rt: &mut Runtime,
    programs: &'p [Program],
    st: &mut State<'p>,
    mut pc: usize,
) -> Result<u64, Box<Fault>> {
    let limit = rt.config.insn_limit;
    loop {
        if pc >= st.insns.len() {
            return Err(fault(rt, st.prog, pc, FaultKind::FellOffEnd));
        }
        rt.insn_count += 1;
        if rt.insn_count > limit {
            return Err(fault(rt, st.prog, pc, FaultKind::InsnLimit(limit)));
        }
        match step(rt, programs, st, pc)? {
            Step::Next(n) => pc = n,
            Step::Return(r0) => return Ok(r0),
        }
    }
}

/// The fast loop over the pre-decoded program.
fn run_fast<'p>(
    rt: &mut Runtime,
    programs: &'p [Program],
    dec: &Decoded,
    st: &mut State<'p>,
    pc: usize,
) -> Result<u64, Box<Fault>> {
    let limit = rt.config.insn_limit;
    let mut code: &[D] = &dec.code[st.prog];
    // The current slot, as a pointer into `code` (one add per instruction instead of an
    // index scaled on every dispatch); `at!()` is its index.
    //
    // The slot invariant: slots are reached without a bounds check. Every slot the loop
    // reaches is inside `code`, at most its `End` slot (one past the last instruction):
    // `decode_program` resolves every jump and call target to an instruction (or leaves
    // the slot `Slow`), an `lddw` slot has its second half (else it is `Slow`), a
    // superinstruction's following slots are instructions, a call returns to the slot
    // after the call, and the exact step returns only targets it checked, the next slot or
    // a return address. `base` is always `code`'s start.
    let mut base: *const D = code.as_ptr();
    let mut dp: *const D;
    // `rt.insn_count`, kept in a local between calls out of the loop: written back before
    // anything that may read or change it (helpers, which may run callbacks, the exact
    // step, faults and every return), and read again after.
    let mut count = rt.insn_count;
    macro_rules! sync {
        () => {
            rt.insn_count = count
        };
    }
    macro_rules! reload {
        () => {
            count = rt.insn_count
        };
    }

    // Enters a straight-line run at `$pc`: charges its length, or hands over to the exact
    // loop when the budget does not cover it.
    macro_rules! enter {
        ($pc:expr) => {{
            let npc: usize = $pc;
            debug_assert!(npc < code.len());
            // SAFETY: `npc < code.len()`, the slot invariant.
            enter_ptr!(unsafe { base.add(npc) })
        }};
    }
    // `enter!` for a slot given by its address (inside `code`, the slot invariant).
    macro_rules! enter_ptr {
        ($p:expr) => {{
            let np: *const D = $p;
            // SAFETY: `np` points to a slot of `code` (the slot invariant), which outlives the loop.
            let c = unsafe { (*np).cost } as u64;
            count += c;
            if count > limit {
                count -= c;
                sync!();
                // SAFETY: both point into `code`.
                let npc = unsafe { np.offset_from(base) } as usize;
                return run_exact(rt, programs, st, npc);
            }
            dp = np;
        }};
    }
    // The index of the current slot.
    macro_rules! at {
        () => {{
            // SAFETY: `dp` and `base` point into the same slice, `code`.
            unsafe { dp.offset_from(base) as usize }
        }};
    }
    // The slot `$n` after the current one (inside `code`, the slot invariant).
    macro_rules! next {
        ($n:expr) => {{
            // SAFETY: the slot invariant: the slots after an instruction that falls through are
            // inside `code`.
            unsafe { dp.add($n) }
        }};
    }
    // A fault at `pc` inside the current run: uncharge the rest of the run.
    macro_rules! bail {
        ($kind:expr) => {{
            let pc = at!();
            count -= code[pc].cost.saturating_sub(1) as u64;
            sync!();
            return Err(fault(rt, st.prog, pc, $kind));
        }};
    }
    macro_rules! r {
        ($i:expr) => {
            st.reg[($i & 15) as usize]
        };
    }
    macro_rules! alu {
        ($d:ident, $e:expr) => {{
            r!($d.dst) = $e;
            dp = next!(1);
        }};
    }
    macro_rules! jmp {
        ($d:ident, $c:expr) => {{
            if $c {
                enter!($d.off as usize)
            } else {
                enter_ptr!(next!(1))
            }
        }};
    }
    macro_rules! ldx {
        ($d:ident, $size:expr, $conv:expr) => {
            ldx!($d, $size, $conv, false)
        };
        ($d:ident, $size:expr, $conv:expr, $sx:expr) => {{
            let addr = r!($d.src).wrapping_add($d.off as i64 as u64);
            let v = if rt.regions.check_fast(addr, $size, false) {
                // SAFETY: `check_fast` proved `[addr, addr + size)` is inside a live region
                // (not the context), backed by memory the runtime owns while it is
                // registered.
                unsafe { raw_load(addr, $size) }
            } else if let Some(off) = rt.regions.context_offset(addr) {
                // `struct xdp_md` loads (the context region is in its fixed slot: `check`
                // would find it, and `load_ext` ends in the same `ctx_load_ext` for an
                // access of the wrong size or one that runs past its end).
                match ctx_load_ext(rt, off, $size, $sx) {
                    Ok(v) => v,
                    Err(k) => bail!(k),
                }
            } else {
                match load_slow(rt, addr, $size, $sx) {
                    Ok(v) => v,
                    Err(k) => bail!(k),
                }
            };
            r!($d.dst) = $conv(v);
            dp = next!(1);
        }};
    }
    macro_rules! stx {
        ($d:ident, $size:expr, $v:expr) => {{
            let addr = r!($d.dst).wrapping_add($d.off as i64 as u64);
            let v: u64 = $v;
            if rt.regions.check_fast(addr, $size, true) {
                // SAFETY: `check_fast` proved `[addr, addr + size)` is inside a live
                // writable region (never the context, which is read-only).
                unsafe { raw_store(addr, $size, v) };
            } else if let Err(k) = store_slow(rt, addr, $size, v) {
                bail!(k);
            }
            dp = next!(1);
        }};
    }

    enter!(pc);
    loop {
        // SAFETY: `dp` points to a slot of `code` (the slot invariant).
        let d: &D = unsafe { &*dp };
        match d.op {
            Op::Add64I => alu!(d, r!(d.dst).wrapping_add(d.imm)),
            Op::Add64R => alu!(d, r!(d.dst).wrapping_add(r!(d.src))),
            Op::Sub64I => alu!(d, r!(d.dst).wrapping_sub(d.imm)),
            Op::Sub64R => alu!(d, r!(d.dst).wrapping_sub(r!(d.src))),
            Op::Mul64I => alu!(d, r!(d.dst).wrapping_mul(d.imm)),
            Op::Mul64R => alu!(d, r!(d.dst).wrapping_mul(r!(d.src))),
            Op::Div64I => alu!(d, r!(d.dst).checked_div(d.imm).unwrap_or(0)),
            Op::Div64R => alu!(d, r!(d.dst).checked_div(r!(d.src)).unwrap_or(0)),
            Op::SDiv64I | Op::SDiv64R => {
                let s = if d.op == Op::SDiv64I {
                    d.imm
                } else {
                    r!(d.src)
                };
                alu!(d, alu64(BPF_DIV, r!(d.dst), s, 1, false).unwrap_or(0))
            }
            Op::Mod64I => alu!(d, r!(d.dst).checked_rem(d.imm).unwrap_or(r!(d.dst))),
            Op::Mod64R => alu!(d, r!(d.dst).checked_rem(r!(d.src)).unwrap_or(r!(d.dst))),
            Op::SMod64I | Op::SMod64R => {
                let s = if d.op == Op::SMod64I {
                    d.imm
                } else {
                    r!(d.src)
                };
                alu!(d, alu64(BPF_MOD, r!(d.dst), s, 1, false).unwrap_or(0))
            }
            Op::Or64I => alu!(d, r!(d.dst) | d.imm),
            Op::Or64R => alu!(d, r!(d.dst) | r!(d.src)),
            Op::And64I => alu!(d, r!(d.dst) & d.imm),
            Op::And64R => alu!(d, r!(d.dst) & r!(d.src)),
            Op::Xor64I => alu!(d, r!(d.dst) ^ d.imm),
            Op::Xor64R => alu!(d, r!(d.dst) ^ r!(d.src)),
            Op::Lsh64I => alu!(d, r!(d.dst).wrapping_shl(d.imm as u32 & 63)),
            Op::Lsh64R => alu!(d, r!(d.dst).wrapping_shl(r!(d.src) as u32 & 63)),
            Op::Rsh64I => alu!(d, r!(d.dst).wrapping_shr(d.imm as u32 & 63)),
            Op::Rsh64R => alu!(d, r!(d.dst).wrapping_shr(r!(d.src) as u32 & 63)),
            Op::Arsh64I => alu!(d, ((r!(d.dst) as i64) >> (d.imm & 63)) as u64),
            Op::Arsh64R => alu!(d, ((r!(d.dst) as i64) >> (r!(d.src) & 63)) as u64),
            Op::Neg64 => alu!(d, r!(d.dst).wrapping_neg()),
            Op::Mov64I => alu!(d, d.imm),
            Op::Mov64R => alu!(d, r!(d.src)),
            Op::MovSx64B => alu!(d, r!(d.src) as u8 as i8 as i64 as u64),
            Op::MovSx64H => alu!(d, r!(d.src) as u16 as i16 as i64 as u64),
            Op::MovSx64W => alu!(d, r!(d.src) as u32 as i32 as i64 as u64),
            Op::Add32I => alu!(d, (r!(d.dst) as u32).wrapping_add(d.imm as u32) as u64),
            Op::Add32R => alu!(d, (r!(d.dst) as u32).wrapping_add(r!(d.src) as u32) as u64),
            Op::Sub32I => alu!(d, (r!(d.dst) as u32).wrapping_sub(d.imm as u32) as u64),
            Op::Sub32R => alu!(d, (r!(d.dst) as u32).wrapping_sub(r!(d.src) as u32) as u64),
            Op::Mul32I => alu!(d, (r!(d.dst) as u32).wrapping_mul(d.imm as u32) as u64),
            Op::Mul32R => alu!(d, (r!(d.dst) as u32).wrapping_mul(r!(d.src) as u32) as u64),
            Op::Div32I
            | Op::Div32R
            | Op::SDiv32I
            | Op::SDiv32R
            | Op::Mod32I
            | Op::Mod32R
            | Op::SMod32I
            | Op::SMod32R => {
                let x = matches!(d.op, Op::Div32R | Op::SDiv32R | Op::Mod32R | Op::SMod32R);
                let s = if x { r!(d.src) } else { d.imm };
                let (o, signed) = match d.op {
                    Op::Div32I | Op::Div32R => (BPF_DIV, 0),
                    Op::SDiv32I | Op::SDiv32R => (BPF_DIV, 1),
                    Op::Mod32I | Op::Mod32R => (BPF_MOD, 0),
                    _ => (BPF_MOD, 1),
                };
                alu!(d, alu32(o, r!(d.dst), s, signed, x).unwrap_or(0))
            }
            Op::Or32I => alu!(d, (r!(d.dst) as u32 | d.imm as u32) as u64),
            Op::Or32R => alu!(d, (r!(d.dst) as u32 | r!(d.src) as u32) as u64),
            Op::And32I => alu!(d, (r!(d.dst) as u32 & d.imm as u32) as u64),
            Op::And32R => alu!(d, (r!(d.dst) as u32 & r!(d.src) as u32) as u64),
            Op::Xor32I => alu!(d, (r!(d.dst) as u32 ^ d.imm as u32) as u64),
            Op::Xor32R => alu!(d, (r!(d.dst) as u32 ^ r!(d.src) as u32) as u64),
            Op::Lsh32I => alu!(d, (r!(d.dst) as u32).wrapping_shl(d.imm as u32 & 31) as u64),
            Op::Lsh32R => alu!(
                d,
                (r!(d.dst) as u32).wrapping_shl(r!(d.src) as u32 & 31) as u64
            ),
            Op::Rsh32I => alu!(d, (r!(d.dst) as u32).wrapping_shr(d.imm as u32 & 31) as u64),
            Op::Rsh32R => alu!(
                d,
                (r!(d.dst) as u32).wrapping_shr(r!(d.src) as u32 & 31) as u64
            ),
            Op::Arsh32I => alu!(d, ((r!(d.dst) as i32) >> (d.imm as u32 & 31)) as u32 as u64),
            Op::Arsh32R => alu!(
                d,
                ((r!(d.dst) as i32) >> (r!(d.src) as u32 & 31)) as u32 as u64
            ),
            Op::Neg32 => alu!(d, (r!(d.dst) as u32).wrapping_neg() as u64),
            Op::Mov32I => alu!(d, d.imm as u32 as u64),
            Op::Mov32R => alu!(d, r!(d.src) as u32 as u64),
            Op::MovSx32B => alu!(d, r!(d.src) as u8 as i8 as i32 as u32 as u64),
            Op::MovSx32H => alu!(d, r!(d.src) as u16 as i16 as i32 as u32 as u64),
            Op::Swap16 => alu!(d, (r!(d.dst) as u16).swap_bytes() as u64),
            Op::Swap32 => alu!(d, (r!(d.dst) as u32).swap_bytes() as u64),
            Op::Swap64 => alu!(d, r!(d.dst).swap_bytes()),
            Op::Trunc16 => alu!(d, r!(d.dst) as u16 as u64),
            Op::Trunc32 => alu!(d, r!(d.dst) as u32 as u64),
            Op::Nop => dp = next!(1),
            Op::Ja => enter!(d.off as usize),
            Op::Jeq64I => jmp!(d, r!(d.dst) == d.imm),
            Op::Jeq64R => jmp!(d, r!(d.dst) == r!(d.src)),
            Op::Jne64I => jmp!(d, r!(d.dst) != d.imm),
            Op::Jne64R => jmp!(d, r!(d.dst) != r!(d.src)),
            Op::Jgt64I => jmp!(d, r!(d.dst) > d.imm),
            Op::Jgt64R => jmp!(d, r!(d.dst) > r!(d.src)),
            Op::Jge64I => jmp!(d, r!(d.dst) >= d.imm),
            Op::Jge64R => jmp!(d, r!(d.dst) >= r!(d.src)),
            Op::Jlt64I => jmp!(d, r!(d.dst) < d.imm),
            Op::Jlt64R => jmp!(d, r!(d.dst) < r!(d.src)),
            Op::Jle64I => jmp!(d, r!(d.dst) <= d.imm),
            Op::Jle64R => jmp!(d, r!(d.dst) <= r!(d.src)),
            Op::Jset64I => jmp!(d, r!(d.dst) & d.imm != 0),
            Op::Jset64R => jmp!(d, r!(d.dst) & r!(d.src) != 0),
            Op::Jsgt64I => jmp!(d, (r!(d.dst) as i64) > d.imm as i64),
            Op::Jsgt64R => jmp!(d, (r!(d.dst) as i64) > r!(d.src) as i64),
            Op::Jsge64I => jmp!(d, (r!(d.dst) as i64) >= d.imm as i64),
            Op::Jsge64R => jmp!(d, (r!(d.dst) as i64) >= r!(d.src) as i64),
            Op::Jslt64I => jmp!(d, (r!(d.dst) as i64) < d.imm as i64),
            Op::Jslt64R => jmp!(d, (r!(d.dst) as i64) < r!(d.src) as i64),
            Op::Jsle64I => jmp!(d, (r!(d.dst) as i64) <= d.imm as i64),
            Op::Jsle64R => jmp!(d, (r!(d.dst) as i64) <= r!(d.src) as i64),
            Op::Jeq32I => jmp!(d, r!(d.dst) as u32 == d.imm as u32),
            Op::Jeq32R => jmp!(d, r!(d.dst) as u32 == r!(d.src) as u32),
            Op::Jne32I => jmp!(d, r!(d.dst) as u32 != d.imm as u32),
            Op::Jne32R => jmp!(d, r!(d.dst) as u32 != r!(d.src) as u32),
            Op::Jgt32I => jmp!(d, r!(d.dst) as u32 > d.imm as u32),
            Op::Jgt32R => jmp!(d, r!(d.dst) as u32 > r!(d.src) as u32),
            Op::Jge32I => jmp!(d, r!(d.dst) as u32 >= d.imm as u32),
            Op::Jge32R => jmp!(d, r!(d.dst) as u32 >= r!(d.src) as u32),
            Op::Jlt32I => jmp!(d, (r!(d.dst) as u32) < d.imm as u32),
            Op::Jlt32R => jmp!(d, (r!(d.dst) as u32) < r!(d.src) as u32),
            Op::Jle32I => jmp!(d, r!(d.dst) as u32 <= d.imm as u32),
            Op::Jle32R => jmp!(d, r!(d.dst) as u32 <= r!(d.src) as u32),
            Op::Jset32I => jmp!(d, r!(d.dst) as u32 & d.imm as u32 != 0),
            Op::Jset32R => jmp!(d, r!(d.dst) as u32 & r!(d.src) as u32 != 0),
            Op::Jsgt32I => jmp!(d, (r!(d.dst) as i32) > d.imm as i32),
            Op::Jsgt32R => jmp!(d, (r!(d.dst) as i32) > r!(d.src) as i32),
            Op::Jsge32I => jmp!(d, (r!(d.dst) as i32) >= d.imm as i32),
            Op::Jsge32R => jmp!(d, (r!(d.dst) as i32) >= r!(d.src) as i32),
            Op::Jslt32I => jmp!(d, (r!(d.dst) as i32) < d.imm as i32),
            Op::Jslt32R => jmp!(d, (r!(d.dst) as i32) < r!(d.src) as i32),
            Op::Jsle32I => jmp!(d, (r!(d.dst) as i32) <= d.imm as i32),
            Op::Jsle32R => jmp!(d, (r!(d.dst) as i32) <= r!(d.src) as i32),
            Op::Exit => {
                let depth_now = st.depth + st.frames.len();
                rt.leave_frame(depth_now);
                match st.frames.pop() {
                    None => {
                        sync!();
                        return Ok(st.reg[0]);
                    }
                    Some(f) => {
                        st.prog = f.prog;
                        st.insns = &programs[f.prog].insns;
                        code = &dec.code[f.prog];
                        base = code.as_ptr();
                        st.reg[6..10].copy_from_slice(&f.saved);
                        st.reg[10] = f.r10;
                        rt.depth = st.depth + st.frames.len();
                        enter!(f.ret_pc)
                    }
                }
            }
            Op::Call => {
                rt.depth = st.depth + st.frames.len();
                rt.current_prog = st.prog;
                let g = &st.reg;
                let args = [g[1], g[2], g[3], g[4], g[5]];
                sync!();
                let r = helpers::call(rt, d.off, &args);
                reload!();
                match r {
                    Ok(v) => st.reg[0] = v,
                    Err(k) => bail!(k),
                }
                enter_ptr!(next!(1))
            }
            Op::TailCall => {
                rt.depth = st.depth + st.frames.len();
                rt.current_prog = st.prog;
                let g = &st.reg;
                let args = [g[1], g[2], g[3], g[4], g[5]];
                sync!();
                let r = helpers::tail_call_target(rt, &args);
                reload!();
                match r {
                    Ok(Some(t)) => {
                        // The new program starts with a full may_goto budget, as in the
                        // exact step (the kernel sets the hidden counter in its prologue).
                        rt.may_goto[(st.depth + st.frames.len()) % MAX_CALL_FRAMES] = BPF_MAX_LOOPS;
                        st.prog = t;
                        st.insns = &programs[t].insns;
                        code = &dec.code[t];
                        base = code.as_ptr();
                        enter!(0)
                    }
                    Ok(None) => enter_ptr!(next!(1)),
                    Err(k) => bail!(k),
                }
            }
            Op::CallLocal => {
                let depth_now = st.depth + st.frames.len();
                if depth_now + 1 >= MAX_CALL_FRAMES {
                    bail!(FaultKind::CallDepth(MAX_CALL_FRAMES));
                }
                let g = &st.reg;
                st.frames.push(Frame {
                    prog: st.prog,
                    ret_pc: at!() + 1,
                    saved: [g[6], g[7], g[8], g[9]],
                    r10: g[10],
                });
                match rt.enter_frame(depth_now + 1) {
                    Ok(top) => st.reg[10] = top,
                    Err(k) => bail!(k),
                }
                rt.depth = depth_now + 1;
                enter!(d.off as usize)
            }
            Op::LdImm64 => {
                r!(d.dst) = d.imm;
                dp = next!(2);
            }
            Op::MovAdd64I => {
                r!(d.dst) = r!(d.src).wrapping_add(d.imm);
                dp = next!(2);
            }
            Op::MovAdd64R => {
                r!(d.dst) = r!(d.src).wrapping_add(r!(d.off));
                dp = next!(2);
            }
            Op::MovAddJgt64R => {
                let v = r!(d.src).wrapping_add(d.imm);
                r!(d.dst) = v;
                if v > r!(d.aux) {
                    enter!(d.off as usize)
                } else {
                    enter_ptr!(next!(3))
                }
            }
            Op::MovAddMovJgt64R => {
                let v = r!(d.src).wrapping_add(d.imm as u32 as i32 as i64 as u64);
                r!(d.dst) = v;
                let c = (d.imm >> 32) as u32;
                r!(d.aux >> 8) = if d.aux & (1 << 16) != 0 {
                    c as i32 as i64 as u64
                } else {
                    c as u64
                };
                if v > r!(d.aux) {
                    enter!(d.off as usize)
                } else {
                    enter_ptr!(next!(4))
                }
            }
            Op::AddJne64I => {
                let v = r!(d.dst).wrapping_add(d.imm);
                r!(d.dst) = v;
                if v != d.aux as i64 as u64 {
                    enter!(d.off as usize)
                } else {
                    enter_ptr!(next!(2))
                }
            }
            Op::LdxB => ldx!(d, 1, |v: u64| v),
            Op::LdxH => ldx!(d, 2, |v: u64| v),
            Op::LdxW => ldx!(d, 4, |v: u64| v),
            Op::LdxDW => ldx!(d, 8, |v: u64| v),
            Op::LdxSB => ldx!(d, 1, |v: u64| v as u8 as i8 as i64 as u64, true),
            Op::LdxSH => ldx!(d, 2, |v: u64| v as u16 as i16 as i64 as u64, true),
            Op::LdxSW => ldx!(d, 4, |v: u64| v as u32 as i32 as i64 as u64, true),
            Op::StB => stx!(d, 1, d.imm),
            Op::StH => stx!(d, 2, d.imm),
            Op::StW => stx!(d, 4, d.imm),
            Op::StDW => stx!(d, 8, d.imm),
            Op::StxB => stx!(d, 1, r!(d.src)),
            Op::StxH => stx!(d, 2, r!(d.src)),
            Op::StxW => stx!(d, 4, r!(d.src)),
            Op::StxDW => stx!(d, 8, r!(d.src)),
            Op::AtomicW | Op::AtomicDW => {
                let size = if d.op == Op::AtomicW { 4 } else { 8 };
                let addr = r!(d.dst).wrapping_add(d.off as i64 as u64);
                let ok = matches!(
                    rt.regions.check(addr, size, true),
                    Ok(reg) if !matches!(reg.kind, RegionKind::Context | RegionKind::Packet | RegionKind::Meta)
                );
                if ok {
                    let mask = if size == 4 { 0xffff_ffffu64 } else { u64::MAX };
                    // SAFETY: `check` proved `[addr, addr + size)` is inside a live
                    // writable region (a map value or a stack: atomics on the packet,
                    // metadata and context go to the exact step, which refuses them).
                    let old = unsafe { raw_load(addr, size) };
                    let sv = r!(d.src) & mask;
                    let (new, fetch) = match d.imm {
                        0x00 | 0x01 => (old.wrapping_add(sv), d.imm == 0x01),
                        0x40 | 0x41 => (old | sv, d.imm == 0x41),
                        0x50 | 0x51 => (old & sv, d.imm == 0x51),
                        0xa0 | 0xa1 => (old ^ sv, d.imm == 0xa1),
                        0xe1 => (sv, true),
                        // 0xf1: cmpxchg, r0 = old, written only when equal.
                        _ => (if old == st.reg[0] & mask { sv } else { old }, false),
                    };
                    // SAFETY: as above.
                    unsafe { raw_store(addr, size, new & mask) };
                    if d.imm == 0xf1 {
                        st.reg[0] = old;
                    } else if fetch {
                        r!(d.src) = old;
                    }
                    dp = next!(1);
                } else {
                    // Faults (or a cmpxchg that does not write a read-only value) exactly
                    // as the exact loop has them.
                    sync!();
                    let pc = at!();
                    let r = step(rt, programs, st, pc);
                    reload!();
                    match r {
                        Ok(_) => dp = next!(1),
                        Err(f) => {
                            count -= code[pc].cost.saturating_sub(1) as u64;
                            sync!();
                            return Err(f);
                        }
                    }
                }
            }
            Op::Slow => {
                sync!();
                let r = step(rt, programs, st, at!())?;
                reload!();
                match r {
                    Step::Next(n) => {
                        code = &dec.code[st.prog];
                        base = code.as_ptr();
                        enter!(n)
                    }
                    Step::Return(r0) => return Ok(r0),
                }
            }
            Op::End => {
                sync!();
                return Err(fault(rt, st.prog, at!(), FaultKind::FellOffEnd));
            }
        }
    }
}

/// The fast loop's load when neither `check_fast` nor the context slot covers the access
/// (map values, faults); out of line, so that the loop's registers are not spilled for it.
#[inline(never)]
fn load_slow(rt: &Runtime, addr: u64, size: u64, sx: bool) -> Result<u64, FaultKind> {
    match rt.regions.check(addr, size, false) {
        // SAFETY: `check` proved `[addr, addr + size)` is inside a live region, backed by
        // memory the runtime owns while it is registered.
        Ok(reg) if reg.kind != RegionKind::Context => Ok(unsafe { raw_load(addr, size) }),
        // `struct xdp_md` loads, rewritten as the kernel does (as `load`).
        Ok(reg) => ctx_load_ext(rt, addr - reg.start, size, sx),
        _ => load_ext(rt, addr, size, sx),
    }
}

/// The fast loop's store when `check_fast` does not cover the access; out of line.
#[inline(never)]
fn store_slow(rt: &Runtime, addr: u64, size: u64, v: u64) -> Result<(), FaultKind> {
    if rt.regions.check(addr, size, true).is_ok() {
        // SAFETY: `check` proved `[addr, addr + size)` is inside a live writable region
        // (never the context, which is read-only).
        unsafe { raw_store(addr, size, v) };
        return Ok(());
    }
    store(rt, addr, size, v)
}

/// Executes the raw instruction at `pc` (the exact loop's step; also the fast loop's
/// `Slow` slots). Does not count it.
fn step<'p>(
    rt: &mut Runtime,
    programs: &'p [Program],
    st: &mut State<'p>,
    pc: usize,
) -> Result<Step, Box<Fault>> {
    let insn = st.insns[pc];
    macro_rules! bail {
        ($kind:expr) => {
            return Err(fault(rt, st.prog, pc, $kind))
        };
    }
    macro_rules! tri {
        ($e:expr) => {
            match $e {
                Ok(v) => v,
                Err(k) => bail!(FaultKind::from(k)),
            }
        };
    }
    let dst = insn.dst as usize;
    let src = insn.src as usize;
    if dst > 10 || src > 10 {
        bail!(FaultKind::Unsupported(format!(
            "register r{} does not exist",
            dst.max(src)
        )));
    }
    let off = insn.off as i64;
    let imm = insn.imm;
    let code = insn.code;
    let mut next = pc + 1;
    let prog_idx = st.prog;
    if let Some(c) = rt.coverage.as_mut() {
        c.hit(prog_idx, pc);
    }
    let insns = st.insns;
    let reg = &mut st.reg;
    let depth = st.depth;

    match class(code) {
        BPF_ALU64 | BPF_ALU => {
            if dst == 10 {
                bail!(FaultKind::Unsupported(
                    "r10 (frame pointer) is read-only".into()
                ));
            }
            let is64 = class(code) == BPF_ALU64;
            let x = source(code) == BPF_X;
            let o = op(code);
            let v = if o == BPF_END {
                tri!(byteswap(code, reg[dst], imm))
            } else {
                let s = if x {
                    reg[src]
                } else if is64 {
                    imm as i64 as u64
                } else {
                    imm as u32 as u64
                };
                if (o == BPF_NEG && x) || (!x && src != 0) || (x && imm != 0 && o != BPF_END) {
                    bail!(FaultKind::UnknownOpcode(code));
                }
                let r = if is64 {
                    alu64(o, reg[dst], s, off, x)
                } else {
                    alu32(o, reg[dst], s, off, x)
                };
                match r {
                    Some(v) => v,
                    None => bail!(FaultKind::UnknownOpcode(code)),
                }
            };
            reg[dst] = v;
        }
        BPF_JMP | BPF_JMP32 => {
            let is32 = class(code) == BPF_JMP32;
            let o = op(code);
            match o {
                BPF_JA => {
                    let rel = if is32 { imm as i64 } else { off };
                    next = tri!(target(pc, rel, insns.len()));
                }
                BPF_EXIT if !is32 && code == (BPF_JMP | BPF_EXIT) => {
                    let depth_now = depth + st.frames.len();
                    rt.leave_frame(depth_now);
                    match st.frames.pop() {
                        None => return Ok(Step::Return(reg[0])),
                        Some(f) => {
                            st.prog = f.prog;
                            st.insns = &programs[f.prog].insns;
                            reg[6..10].copy_from_slice(&f.saved);
                            reg[10] = f.r10;
                            next = f.ret_pc;
                            rt.depth = depth + st.frames.len();
                        }
                    }
                }
                BPF_CALL if !is32 => {
                    let (kind, value) = if source(code) == BPF_X {
                        // callx: the register (dst, as LLVM encodes it) holds a function or
                        // a helper number.
                        let r = if imm != 0 && (imm as u32) <= 10 {
                            imm as usize
                        } else {
                            dst
                        };
                        let v = reg[r];
                        match crate::runtime::handle_to_func(v) {
                            Some((p, t)) if p == prog_idx => {
                                (BPF_PSEUDO_CALL, t as i64 - pc as i64 - 1)
                            }
                            _ => (0, v as i64),
                        }
                    } else {
                        (src as u8, imm as i64)
                    };
                    match kind {
                        BPF_PSEUDO_CALL => {
                            let t = tri!(target(pc, value, insns.len()));
                            let depth_now = depth + st.frames.len();
                            if depth_now + 1 >= MAX_CALL_FRAMES {
                                bail!(FaultKind::CallDepth(MAX_CALL_FRAMES));
                            }
                            let saved = [reg[6], reg[7], reg[8], reg[9]];
                            st.frames.push(Frame {
                                prog: prog_idx,
                                ret_pc: pc + 1,
                                saved,
                                r10: reg[10],
                            });
                            reg[10] = tri!(rt.enter_frame(depth_now + 1));
                            rt.depth = depth_now + 1;
                            next = t;
                        }
                        0 => {
                            rt.depth = depth + st.frames.len();
                            rt.current_prog = prog_idx;
                            let args = [reg[1], reg[2], reg[3], reg[4], reg[5]];
                            if value == helpers::TAIL_CALL as i64 {
                                if let Some(t) = tri!(helpers::tail_call_target(rt, &args)) {
                                    // the new program starts with a full may_goto budget
                                    rt.may_goto[(depth + st.frames.len()) % MAX_CALL_FRAMES] =
                                        BPF_MAX_LOOPS;
                                    st.prog = t;
                                    st.insns = &programs[t].insns;
                                    next = 0;
                                }
                            } else {
                                let Ok(id) = i32::try_from(value) else {
                                    bail!(FaultKind::UnknownHelper(value));
                                };
                                reg[0] = tri!(helpers::call(rt, id, &args));
                            }
                        }
                        BPF_PSEUDO_KFUNC_CALL => match crate::kfunc::helper_id(imm) {
                            Some(id) => {
                                rt.depth = depth + st.frames.len();
                                rt.current_prog = prog_idx;
                                let args = [reg[1], reg[2], reg[3], reg[4], reg[5]];
                                reg[0] = tri!(helpers::call(rt, id, &args));
                            }
                            None => bail!(FaultKind::Unsupported(format!(
                                "kfunc call (BTF id {imm}) is not supported"
                            ))),
                        },
                        _ => bail!(FaultKind::UnknownOpcode(code)),
                    }
                }
                BPF_JCOND if code == BPF_JMP | BPF_JCOND && src == 0 && dst == 0 && imm == 0 => {
                    // may_goto: the kernel's per-frame counter (`BPF_MAX_LOOPS`); once it
                    // is exhausted the jump is taken
                    let c = &mut rt.may_goto[(depth + st.frames.len()) % MAX_CALL_FRAMES];
                    let taken = *c == 0;
                    if !taken {
                        *c -= 1;
                    }
                    if let Some(cv) = rt.coverage.as_mut() {
                        cv.branch(prog_idx, pc, taken);
                    }
                    if taken {
                        next = tri!(target(pc, off, insns.len()));
                    }
                }
                _ => {
                    let a = reg[dst];
                    let b = if source(code) == BPF_X {
                        reg[src]
                    } else if is32 {
                        imm as u32 as u64
                    } else {
                        imm as i64 as u64
                    };
                    let Some(taken) = cond(o, a, b, is32) else {
                        bail!(FaultKind::UnknownOpcode(code));
                    };
                    if let Some(c) = rt.coverage.as_mut() {
                        c.branch(prog_idx, pc, taken);
                    }
                    if taken {
                        next = tri!(target(pc, off, insns.len()));
                    }
                }
            }
        }
        BPF_LD => {
            if code == 0 {
                // Also what the second slot of an lddw looks like when jumped into.
                bail!(FaultKind::UnknownOpcode(code));
            }
            if code != LDDW {
                bail!(FaultKind::Unsupported(format!(
                    "opcode {code:#04x}: legacy packet access (LD_ABS/LD_IND) is not available to XDP programs"
                )));
            }
            let Some(hi) = insns.get(pc + 1) else {
                bail!(FaultKind::TruncatedLddw);
            };
            let lo = imm as u32 as u64;
            let v = match src as u8 {
                0 => lo | ((hi.imm as u32 as u64) << 32),
                BPF_PSEUDO_MAP_FD | BPF_PSEUDO_MAP_IDX => {
                    if imm < 0 || imm as usize >= rt.maps.maps.len() {
                        bail!(FaultKind::Unsupported(format!(
                            "lddw refers to map #{imm}, but the object has {} maps",
                            rt.maps.maps.len()
                        )));
                    }
                    map_handle(imm as usize)
                }
                BPF_PSEUDO_MAP_VALUE | BPF_PSEUDO_MAP_IDX_VALUE => {
                    let m = rt.maps.maps.get(imm.max(0) as usize);
                    match m.and_then(|m| m.direct_value_addr()) {
                        Some(a) => a + hi.imm as u32 as u64,
                        None => bail!(FaultKind::Unsupported(format!(
                            "lddw takes the address of a value of map #{imm}, which is not a single-value array"
                        ))),
                    }
                }
                BPF_PSEUDO_FUNC => func_handle(prog_idx, tri!(target(pc, imm as i64, insns.len()))),
                s => bail!(FaultKind::Unsupported(format!(
                    "lddw with src {s} (BTF ids) is not supported"
                ))),
            };
            reg[dst] = v;
            next = pc + 2;
        }
        BPF_LDX => {
            let m = mode(code);
            let size = size_bytes(code);
            if (m != BPF_MEM && m != BPF_MEMSX) || (m == BPF_MEMSX && size == 8) || dst == 10 {
                bail!(FaultKind::UnknownOpcode(code));
            }
            let addr = reg[src].wrapping_add(off as u64);
            let v = tri!(load_ext(rt, addr, size, m == BPF_MEMSX));
            reg[dst] = if m == BPF_MEMSX {
                sign_extend(v, size)
            } else {
                v
            };
        }
        BPF_ST | BPF_STX => {
            let m = mode(code);
            let size = size_bytes(code);
            let addr = reg[dst].wrapping_add(off as u64);
            if m == BPF_MEM {
                let v = if class(code) == BPF_ST {
                    imm as i64 as u64
                } else {
                    reg[src]
                };
                if class(code) == BPF_ST && src != 0 {
                    bail!(FaultKind::UnknownOpcode(code));
                }
                tri!(store(rt, addr, size, v));
            } else if m == BPF_ATOMIC && class(code) == BPF_STX {
                tri!(atomic(rt, reg, dst, src, addr, size, imm));
            } else {
                bail!(FaultKind::UnknownOpcode(code));
            }
        }
        _ => bail!(FaultKind::UnknownOpcode(code)),
    }
    Ok(Step::Next(next))
}

fn size_bytes(code: u8) -> u64 {
    match size(code) {
        BPF_B => 1,
        BPF_H => 2,
        BPF_W => 4,
        _ => 8,
    }
}

fn sign_extend(v: u64, size: u64) -> u64 {
    match size {
        1 => v as u8 as i8 as i64 as u64,
        2 => v as u16 as i16 as i64 as u64,
        4 => v as u32 as i32 as i64 as u64,
        _ => v,
    }
}

fn target(pc: usize, rel: i64, len: usize) -> Result<usize, FaultKind> {
    let t = pc as i64 + rel + 1;
    if t < 0 || t as usize >= len {
        return Err(FaultKind::JumpOutOfRange { target: t, len });
    }
    Ok(t as usize)
}

/// A context load: rewritten as the kernel does; a sign-extending one (`ldsx`) is an
/// invalid context access, as the kernel's verifier says (`invalid bpf_context access`):
/// its rewrite would truncate a pointer.
fn ctx_load_ext(rt: &Runtime, off: u64, size: u64, sx: bool) -> Result<u64, FaultKind> {
    if sx {
        return Err(FaultKind::ContextSx {
            off: off as i64,
            size,
        });
    }
    rt.ctx_load(off, size)
}

/// [`load`] for a plain (`sx` false) or sign-extending load (the caller extends the
/// value); a sign-extending load from the context faults (see `ctx_load_ext`).
pub fn load_ext(rt: &Runtime, addr: u64, size: u64, sx: bool) -> Result<u64, FaultKind> {
    if !sx {
        return load(rt, addr, size);
    }
    let r = rt
        .regions
        .check(addr, size, false)
        .or_else(|e| match e.region {
            Some(r) if e.inside && r.kind == RegionKind::Context => Ok(r),
            _ => Err(e),
        })?;
    if r.kind == RegionKind::Context {
        return ctx_load_ext(rt, addr - r.start, size, true);
    }
    // SAFETY: `check` just proved `[addr, addr + size)` lies inside the live region `r`,
    // backed by memory the runtime owns while it is registered.
    Ok(unsafe { crate::memory::raw_load(addr, size) })
}

/// A checked load; context loads are rewritten as the kernel does.
pub fn load(rt: &Runtime, addr: u64, size: u64) -> Result<u64, FaultKind> {
    let r = rt.regions.check(addr, size, false).or_else(|e| {
        // A context access of the wrong size still names the context.
        match e.region {
            Some(r) if e.inside && r.kind == RegionKind::Context => Ok(r),
            _ => Err(e),
        }
    })?;
    if r.kind == RegionKind::Context {
        return rt.ctx_load(addr - r.start, size);
    }
    // SAFETY: `check` just proved `[addr, addr + size)` lies inside the live region `r`,
    // backed by memory the runtime owns while it is registered.
    Ok(unsafe { crate::memory::raw_load(addr, size) })
}

/// A checked store; the context is read-only for XDP programs.
pub fn store(rt: &Runtime, addr: u64, size: u64, v: u64) -> Result<(), FaultKind> {
    if let Some(r) = rt.regions.find(addr) {
        if r.kind == RegionKind::Context {
            return Err(FaultKind::Context {
                off: (addr - r.start) as i64,
                size,
                write: true,
            });
        }
    }
    Ok(rt.regions.store(addr, size, v)?)
}

const BPF_LOAD_ACQ: i32 = 0x100;
const BPF_STORE_REL: i32 = 0x110;

fn atomic(
    rt: &Runtime,
    reg: &mut [u64; 16],
    dst: usize,
    src: usize,
    addr: u64,
    size: u64,
    imm: i32,
) -> Result<(), FaultKind> {
    if imm == BPF_LOAD_ACQ {
        // dst = load_acquire(src + off): the address comes from src.
        let a = reg[src].wrapping_sub(reg[dst]).wrapping_add(addr);
        reg[dst] = load(rt, a, size)?;
        return Ok(());
    }
    if imm == BPF_STORE_REL {
        return store(rt, addr, size, reg[src]);
    }
    if size != 4 && size != 8 {
        return Err(FaultKind::Unsupported(format!(
            "atomic operation {imm:#x} on {size} bytes (only 4 and 8)"
        )));
    }
    if let Some(r) = rt.regions.find(addr) {
        if matches!(
            r.kind,
            RegionKind::Context | RegionKind::Packet | RegionKind::Meta
        ) {
            return Err(FaultKind::Unsupported(format!(
                "atomic operation on the {} is not allowed",
                r.kind
            )));
        }
    }
    let old = rt.regions.load(addr, size)?;
    let mask = if size == 4 { 0xffff_ffffu64 } else { u64::MAX };
    let s = reg[src] & mask;
    let fetch = imm & BPF_FETCH != 0;
    match imm {
        BPF_XCHG => {
            rt.regions.store(addr, size, s)?;
            reg[src] = old;
        }
        BPF_CMPXCHG => {
            if old == reg[0] & mask {
                rt.regions.store(addr, size, s)?;
            }
            reg[0] = old;
        }
        _ => {
            let new = match imm & !BPF_FETCH {
                0x00 => old.wrapping_add(s),
                0x40 => old | s,
                0x50 => old & s,
                0xa0 => old ^ s,
                _ => {
                    return Err(FaultKind::Unsupported(format!(
                        "unknown atomic operation {imm:#x}"
                    )))
                }
            };
            rt.regions.store(addr, size, new & mask)?;
            if fetch {
                reg[src] = old;
            }
        }
    }
    Ok(())
}

fn byteswap(code: u8, v: u64, imm: i32) -> Result<u64, FaultKind> {
    let bswap = class(code) == BPF_ALU64;
    if bswap && source(code) != BPF_TO_LE {
        return Err(FaultKind::UnknownOpcode(code));
    }
    let to_be = source(code) == BPF_TO_BE;
    Ok(match (imm, bswap || to_be) {
        (16, false) => v as u16 as u64,
        (32, false) => v as u32 as u64,
        (64, false) => v,
        (16, true) => (v as u16).swap_bytes() as u64,
        (32, true) => (v as u32).swap_bytes() as u64,
        (64, true) => v.swap_bytes(),
        _ => {
            return Err(FaultKind::Unsupported(format!(
                "byte swap width {imm} (only 16, 32, 64)"
            )))
        }
    })
}

/// 64-bit ALU with the kernel's edge semantics; `None` for an invalid operation.
pub fn alu64(o: u8, d: u64, s: u64, off: i64, x: bool) -> Option<u64> {
    Some(match (o, off) {
        (BPF_ADD, 0) => d.wrapping_add(s),
        (BPF_SUB, 0) => d.wrapping_sub(s),
        (BPF_MUL, 0) => d.wrapping_mul(s),
        (BPF_DIV, 0) => d.checked_div(s).unwrap_or(0),
        (BPF_DIV, 1) => {
            if s == 0 {
                0
            } else {
                (d as i64).wrapping_div(s as i64) as u64
            }
        }
        (BPF_MOD, 0) => {
            if s == 0 {
                d
            } else {
                d % s
            }
        }
        (BPF_MOD, 1) => {
            if s == 0 {
                d
            } else {
                (d as i64).wrapping_rem(s as i64) as u64
            }
        }
        (BPF_OR, 0) => d | s,
        (BPF_AND, 0) => d & s,
        (BPF_XOR, 0) => d ^ s,
        (BPF_LSH, 0) => d.wrapping_shl(s as u32 & 63),
        (BPF_RSH, 0) => d.wrapping_shr(s as u32 & 63),
        (BPF_ARSH, 0) => ((d as i64) >> (s & 63)) as u64,
        (BPF_NEG, 0) => d.wrapping_neg(),
        (BPF_MOV, 0) => s,
        (BPF_MOV, 8) if x => s as u8 as i8 as i64 as u64,
        (BPF_MOV, 16) if x => s as u16 as i16 as i64 as u64,
        (BPF_MOV, 32) if x => s as u32 as i32 as i64 as u64,
        _ => return None,
    })
}

/// 32-bit ALU: operates on the low halves and zero-extends the result.
pub fn alu32(o: u8, d: u64, s: u64, off: i64, x: bool) -> Option<u64> {
    let (d, s) = (d as u32, s as u32);
    let r: u32 = match (o, off) {
        (BPF_ADD, 0) => d.wrapping_add(s),
        (BPF_SUB, 0) => d.wrapping_sub(s),
        (BPF_MUL, 0) => d.wrapping_mul(s),
        (BPF_DIV, 0) => d.checked_div(s).unwrap_or(0),
        (BPF_DIV, 1) => {
            if s == 0 {
                0
            } else {
                (d as i32).wrapping_div(s as i32) as u32
            }
        }
        (BPF_MOD, 0) => {
            if s == 0 {
                d
            } else {
                d % s
            }
        }
        (BPF_MOD, 1) => {
            if s == 0 {
                d
            } else {
                (d as i32).wrapping_rem(s as i32) as u32
            }
        }
        (BPF_OR, 0) => d | s,
        (BPF_AND, 0) => d & s,
        (BPF_XOR, 0) => d ^ s,
        (BPF_LSH, 0) => d.wrapping_shl(s & 31),
        (BPF_RSH, 0) => d.wrapping_shr(s & 31),
        (BPF_ARSH, 0) => ((d as i32) >> (s & 31)) as u32,
        (BPF_NEG, 0) => d.wrapping_neg(),
        (BPF_MOV, 0) => s,
        (BPF_MOV, 8) if x => s as u8 as i8 as i32 as u32,
        (BPF_MOV, 16) if x => s as u16 as i16 as i32 as u32,
        _ => return None,
    };
    Some(r as u64)
}

/// Conditional jump predicate; `None` for an invalid operation.
pub fn cond(o: u8, a: u64, b: u64, is32: bool) -> Option<bool> {
    let (a, b) = if is32 {
        (a as u32 as u64, b as u32 as u64)
    } else {
        (a, b)
    };
    let (sa, sb) = if is32 {
        (a as u32 as i32 as i64, b as u32 as i32 as i64)
    } else {
        (a as i64, b as i64)
    };
    Some(match o {
        BPF_JEQ => a == b,
        BPF_JNE => a != b,
        BPF_JGT => a > b,
        BPF_JGE => a >= b,
        BPF_JLT => a < b,
        BPF_JLE => a <= b,
        BPF_JSET => a & b != 0,
        BPF_JSGT => sa > sb,
        BPF_JSGE => sa >= sb,
        BPF_JSLT => sa < sb,
        BPF_JSLE => sa <= sb,
        _ => return None,
    })
}
