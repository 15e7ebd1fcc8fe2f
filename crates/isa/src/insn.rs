//! Decoded instructions: [`Insn`], [`decode`] (slot index → instruction + slot count) and
//! [`Insn::encode`] (instruction → raw slots).
//!
//! "Valid" means: the encoding is one the Linux 6.x verifier accepts at the instruction
//! level (opcode in the kernel's instruction table, reserved fields zero, registers
//! `r0`..`r10`, see `kernel/bpf/verifier.c` `check_alu_op`, `do_check_insn`,
//! `check_ld_imm`, `resolve_pseudo_ldimm64`, `check_atomic`), plus `callx` from RFC 9669
//! and LLVM, which the kernel does not accept (`unknown opcode 8d`). Value checks that
//! depend on the program (division by an immediate zero, shift amounts out of range,
//! jump targets, helper ids) are the verifier's business, not the decoder's.
//!
//! Decoding is lossless: for every valid slot sequence, `decode` then `encode` gives the
//! same slots back. The one field the kernel ignores, `off` of `exit`, is kept in
//! [`Insn::Exit`] for that reason.

use crate::opcode::*;
use crate::RawInsn;

/// Number of usable registers (`r0`..`r10`).
pub const NUM_REGS: u8 = 11;

/// Second operand of an ALU or conditional-jump instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Operand {
    /// `BPF_X`: a register.
    Reg(u8),
    /// `BPF_K`: the 32-bit immediate.
    Imm(i32),
}

/// Arithmetic and logic operations (`BPF_ALU`/`BPF_ALU64`, except `neg`, `end` and
/// the sign-extending moves, which have their own [`Insn`] variants).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AluOp {
    Add,
    Sub,
    Mul,
    Div,
    /// Signed division: `BPF_DIV` with `off = 1`.
    SDiv,
    Or,
    And,
    Lsh,
    Rsh,
    Mod,
    /// Signed modulo: `BPF_MOD` with `off = 1`.
    SMod,
    Xor,
    Mov,
    Arsh,
}

impl AluOp {
    pub const ALL: [AluOp; 14] = [
        AluOp::Add,
        AluOp::Sub,
        AluOp::Mul,
        AluOp::Div,
        AluOp::SDiv,
        AluOp::Or,
        AluOp::And,
        AluOp::Lsh,
        AluOp::Rsh,
        AluOp::Mod,
        AluOp::SMod,
        AluOp::Xor,
        AluOp::Mov,
        AluOp::Arsh,
    ];

    /// The `BPF_OP` bits and the `off` field this operation is encoded with.
    pub const fn op_and_off(self) -> (u8, i16) {
        match self {
            AluOp::Add => (BPF_ADD, 0),
            AluOp::Sub => (BPF_SUB, 0),
            AluOp::Mul => (BPF_MUL, 0),
            AluOp::Div => (BPF_DIV, 0),
            AluOp::SDiv => (BPF_DIV, 1),
            AluOp::Or => (BPF_OR, 0),
            AluOp::And => (BPF_AND, 0),
            AluOp::Lsh => (BPF_LSH, 0),
            AluOp::Rsh => (BPF_RSH, 0),
            AluOp::Mod => (BPF_MOD, 0),
            AluOp::SMod => (BPF_MOD, 1),
            AluOp::Xor => (BPF_XOR, 0),
            AluOp::Mov => (BPF_MOV, 0),
            AluOp::Arsh => (BPF_ARSH, 0),
        }
    }
}

/// Access size of loads, stores and atomics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Size {
    B,
    H,
    W,
    DW,
}

impl Size {
    pub const ALL: [Size; 4] = [Size::B, Size::H, Size::W, Size::DW];

    pub const fn bytes(self) -> u32 {
        match self {
            Size::B => 1,
            Size::H => 2,
            Size::W => 4,
            Size::DW => 8,
        }
    }
    pub const fn bits(self) -> u32 {
        self.bytes() * 8
    }
    /// The `BPF_SIZE` bits.
    pub const fn code(self) -> u8 {
        match self {
            Size::B => BPF_B,
            Size::H => BPF_H,
            Size::W => BPF_W,
            Size::DW => BPF_DW,
        }
    }
    pub const fn from_code(code: u8) -> Size {
        match code & 0x18 {
            BPF_B => Size::B,
            BPF_H => Size::H,
            BPF_W => Size::W,
            _ => Size::DW,
        }
    }
}

/// Conditions of conditional jumps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum JmpCond {
    Eq,
    Gt,
    Ge,
    Set,
    Ne,
    Sgt,
    Sge,
    Lt,
    Le,
    Slt,
    Sle,
}

impl JmpCond {
    pub const ALL: [JmpCond; 11] = [
        JmpCond::Eq,
        JmpCond::Gt,
        JmpCond::Ge,
        JmpCond::Set,
        JmpCond::Ne,
        JmpCond::Sgt,
        JmpCond::Sge,
        JmpCond::Lt,
        JmpCond::Le,
        JmpCond::Slt,
        JmpCond::Sle,
    ];

    pub const fn op(self) -> u8 {
        match self {
            JmpCond::Eq => BPF_JEQ,
            JmpCond::Gt => BPF_JGT,
            JmpCond::Ge => BPF_JGE,
            JmpCond::Set => BPF_JSET,
            JmpCond::Ne => BPF_JNE,
            JmpCond::Sgt => BPF_JSGT,
            JmpCond::Sge => BPF_JSGE,
            JmpCond::Lt => BPF_JLT,
            JmpCond::Le => BPF_JLE,
            JmpCond::Slt => BPF_JSLT,
            JmpCond::Sle => BPF_JSLE,
        }
    }

    pub const fn from_op(op: u8) -> Option<JmpCond> {
        Some(match op {
            BPF_JEQ => JmpCond::Eq,
            BPF_JGT => JmpCond::Gt,
            BPF_JGE => JmpCond::Ge,
            BPF_JSET => JmpCond::Set,
            BPF_JNE => JmpCond::Ne,
            BPF_JSGT => JmpCond::Sgt,
            BPF_JSGE => JmpCond::Sge,
            BPF_JLT => JmpCond::Lt,
            BPF_JLE => JmpCond::Le,
            BPF_JSLT => JmpCond::Slt,
            BPF_JSLE => JmpCond::Sle,
            _ => return None,
        })
    }
}

/// Operations of `BPF_STX | BPF_ATOMIC` (the `imm` field).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AtomicOp {
    /// `*(dst + off) += src`
    Add,
    Or,
    And,
    Xor,
    /// `src = atomic_fetch_add(dst + off, src)`
    FetchAdd,
    FetchOr,
    FetchAnd,
    FetchXor,
    /// `src = xchg(dst + off, src)`
    Xchg,
    /// `r0 = cmpxchg(dst + off, r0, src)`
    Cmpxchg,
    /// `dst = load_acquire(src + off)` (Linux 6.15+, `imm = 0x100`).
    LoadAcquire,
    /// `store_release(dst + off, src)` (Linux 6.15+, `imm = 0x110`).
    StoreRelease,
}

pub use crate::opcode::{BPF_LOAD_ACQ, BPF_STORE_REL};

impl AtomicOp {
    pub const ALL: [AtomicOp; 12] = [
        AtomicOp::Add,
        AtomicOp::Or,
        AtomicOp::And,
        AtomicOp::Xor,
        AtomicOp::FetchAdd,
        AtomicOp::FetchOr,
        AtomicOp::FetchAnd,
        AtomicOp::FetchXor,
        AtomicOp::Xchg,
        AtomicOp::Cmpxchg,
        AtomicOp::LoadAcquire,
        AtomicOp::StoreRelease,
    ];

    pub const fn imm(self) -> i32 {
        match self {
            AtomicOp::Add => BPF_ADD as i32,
            AtomicOp::Or => BPF_OR as i32,
            AtomicOp::And => BPF_AND as i32,
            AtomicOp::Xor => BPF_XOR as i32,
            AtomicOp::FetchAdd => BPF_ADD as i32 | BPF_FETCH,
            AtomicOp::FetchOr => BPF_OR as i32 | BPF_FETCH,
            AtomicOp::FetchAnd => BPF_AND as i32 | BPF_FETCH,
            AtomicOp::FetchXor => BPF_XOR as i32 | BPF_FETCH,
            AtomicOp::Xchg => BPF_XCHG,
            AtomicOp::Cmpxchg => BPF_CMPXCHG,
            AtomicOp::LoadAcquire => BPF_LOAD_ACQ,
            AtomicOp::StoreRelease => BPF_STORE_REL,
        }
    }

    pub fn from_imm(imm: i32) -> Option<AtomicOp> {
        AtomicOp::ALL.iter().copied().find(|op| op.imm() == imm)
    }

    /// True when the old memory value is written back to a register.
    pub const fn fetches(self) -> bool {
        matches!(
            self,
            AtomicOp::FetchAdd
                | AtomicOp::FetchOr
                | AtomicOp::FetchAnd
                | AtomicOp::FetchXor
                | AtomicOp::Xchg
                | AtomicOp::Cmpxchg
        )
    }

    /// Sizes the kernel accepts for this operation.
    pub const fn allows(self, size: Size) -> bool {
        match self {
            AtomicOp::LoadAcquire | AtomicOp::StoreRelease => true,
            _ => matches!(size, Size::W | Size::DW),
        }
    }
}

/// Byte-swap kinds (`BPF_END`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Endian {
    /// `ALU | END | TO_LE`: convert to little endian (a truncation on little-endian hosts).
    Le,
    /// `ALU | END | TO_BE`: convert to big endian.
    Be,
    /// `ALU64 | END` (`bswap`): unconditional swap.
    Swap,
}

/// `src_reg` kinds of a 64-bit immediate load (`lddw`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LdImmKind {
    /// 0: plain 64-bit immediate.
    Imm,
    /// 1: `imm` is a map file descriptor.
    MapFd,
    /// 2: low `imm` is a map fd, high `imm` an offset into its value.
    MapValue,
    /// 3: `imm` is a BTF id of a kernel variable (high `imm`: BTF fd or 0).
    BtfId,
    /// 4: `imm` is the relative instruction offset of a function.
    Func,
    /// 5: `imm` is an index into `fd_array`.
    MapIdx,
    /// 6: low `imm` an `fd_array` index, high `imm` an offset into the map value.
    MapIdxValue,
}

impl LdImmKind {
    pub const ALL: [LdImmKind; 7] = [
        LdImmKind::Imm,
        LdImmKind::MapFd,
        LdImmKind::MapValue,
        LdImmKind::BtfId,
        LdImmKind::Func,
        LdImmKind::MapIdx,
        LdImmKind::MapIdxValue,
    ];

    pub const fn src(self) -> u8 {
        match self {
            LdImmKind::Imm => 0,
            LdImmKind::MapFd => BPF_PSEUDO_MAP_FD,
            LdImmKind::MapValue => BPF_PSEUDO_MAP_VALUE,
            LdImmKind::BtfId => BPF_PSEUDO_BTF_ID,
            LdImmKind::Func => BPF_PSEUDO_FUNC,
            LdImmKind::MapIdx => BPF_PSEUDO_MAP_IDX,
            LdImmKind::MapIdxValue => BPF_PSEUDO_MAP_IDX_VALUE,
        }
    }

    pub const fn from_src(src: u8) -> Option<LdImmKind> {
        Some(match src {
            0 => LdImmKind::Imm,
            BPF_PSEUDO_MAP_FD => LdImmKind::MapFd,
            BPF_PSEUDO_MAP_VALUE => LdImmKind::MapValue,
            BPF_PSEUDO_BTF_ID => LdImmKind::BtfId,
            BPF_PSEUDO_FUNC => LdImmKind::Func,
            BPF_PSEUDO_MAP_IDX => LdImmKind::MapIdx,
            BPF_PSEUDO_MAP_IDX_VALUE => LdImmKind::MapIdxValue,
            _ => return None,
        })
    }

    /// True when the kernel requires the upper 32 bits to be zero.
    pub const fn high_must_be_zero(self) -> bool {
        matches!(self, LdImmKind::MapFd | LdImmKind::MapIdx)
    }
}

/// One decoded instruction. Registers are numbers `0..=10`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Insn {
    /// `dst op= src` (`is64`: `BPF_ALU64`, else `BPF_ALU` on the low 32 bits).
    Alu {
        is64: bool,
        op: AluOp,
        dst: u8,
        src: Operand,
    },
    /// `dst = -dst`
    Neg { is64: bool, dst: u8 },
    /// `dst = (sN)src`: sign-extending move (`BPF_MOV | BPF_X` with `off` = `bits`; 8 or 16,
    /// or 32 in ALU64).
    MovSx {
        is64: bool,
        bits: u8,
        dst: u8,
        src: u8,
    },
    /// `dst = addr_space_cast(src, dst_as, src_as)` (ALU64 MOV X with `off = 1`; `imm` is
    /// `dst_as << 16 | src_as`, one of them 1 and the other 0).
    AddrSpaceCast {
        dst: u8,
        src: u8,
        dst_as: u16,
        src_as: u16,
    },
    /// Byte swap of the low `bits` (16, 32 or 64) bits.
    End { kind: Endian, bits: u8, dst: u8 },
    /// `lddw`: two slots.
    LdImm64 { dst: u8, kind: LdImmKind, imm: u64 },
    /// Legacy packet load `r0 = *(size *)skb[imm]`.
    LdAbs { size: Size, imm: i32 },
    /// Legacy packet load `r0 = *(size *)skb[src + imm]`.
    LdInd { size: Size, src: u8, imm: i32 },
    /// `dst = *(size *)(src + off)`
    Ldx {
        size: Size,
        dst: u8,
        src: u8,
        off: i16,
    },
    /// `dst = *(sN *)(src + off)`: sign-extending load (size B, H or W).
    LdxSx {
        size: Size,
        dst: u8,
        src: u8,
        off: i16,
    },
    /// `*(size *)(dst + off) = imm`
    St {
        size: Size,
        dst: u8,
        off: i16,
        imm: i32,
    },
    /// `*(size *)(dst + off) = src`
    Stx {
        size: Size,
        dst: u8,
        src: u8,
        off: i16,
    },
    /// Atomic operation on `*(size *)(dst + off)` with `src`, see [`AtomicOp`].
    Atomic {
        size: Size,
        op: AtomicOp,
        dst: u8,
        src: u8,
        off: i16,
    },
    /// `goto +off` (`BPF_JMP | BPF_JA`).
    Ja { off: i16 },
    /// `gotol +imm` (`BPF_JMP32 | BPF_JA`, 32-bit offset).
    Gotol { imm: i32 },
    /// `may_goto +off` (`BPF_JMP | BPF_JCOND`, `src_reg = 0`).
    MayGoto { off: i16 },
    /// `if dst cond src goto +off` (`is32`: `BPF_JMP32`, compares low 32 bits).
    Jmp {
        is32: bool,
        cond: JmpCond,
        dst: u8,
        src: Operand,
        off: i16,
    },
    /// Call of helper function number `imm` (`src_reg` 0).
    Call { imm: i32 },
    /// Call of a local function at `pc + imm + 1` (`src_reg` 1, `BPF_PSEUDO_CALL`).
    CallLocal { imm: i32 },
    /// Call of a kernel function by BTF id `imm`; `off` indexes `fd_array` for a module BTF
    /// (`src_reg` 2, `BPF_PSEUDO_KFUNC_CALL`).
    CallKfunc { imm: i32, off: i16 },
    /// `callx reg`: call through a register (`BPF_JMP | BPF_CALL | BPF_X`, register in the
    /// `dst_reg` field as LLVM encodes it). RFC 9669 and LLVM know it; Linux rejects it.
    Callx { reg: u8 },
    /// `exit`. `off` is ignored by the kernel and is 0 in every compiler's output; it is kept
    /// so that decoding is lossless.
    Exit { off: i16 },
}

/// A raw-instruction field, for error messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Field {
    Code,
    Dst,
    Src,
    Off,
    Imm,
}

impl std::fmt::Display for Field {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Field::Code => "code",
            Field::Dst => "dst_reg",
            Field::Src => "src_reg",
            Field::Off => "off",
            Field::Imm => "imm",
        })
    }
}

/// Why a slot does not decode.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeReason {
    #[error("unknown opcode {code:#04x}")]
    UnknownOpcode { code: u8 },
    #[error("{what}: reserved field {field} must be 0, is {value:#x}")]
    Reserved {
        what: &'static str,
        field: Field,
        value: i64,
    },
    #[error("{what}: {field} = {value:#x} is invalid, expected {expected}")]
    InvalidField {
        what: &'static str,
        field: Field,
        value: i64,
        expected: &'static str,
    },
    #[error("{what}: register r{reg} in {field} does not exist (r0..r10)")]
    InvalidRegister {
        what: &'static str,
        field: Field,
        reg: u8,
    },
    #[error("lddw: second slot is missing (program ends after the first half)")]
    LddwTruncated,
    #[error("lddw: second slot field {field} must be 0, is {value:#x}")]
    LddwSecondSlot { field: Field, value: i64 },
    #[error("index out of range: program has {len} slots")]
    OutOfRange { len: usize },
}

/// A slot that does not decode: the slot index and the reason.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("instruction {index}: {reason}")]
pub struct DecodeError {
    pub index: usize,
    pub reason: DecodeReason,
}

fn reserved(what: &'static str, field: Field, value: i64) -> DecodeReason {
    DecodeReason::Reserved { what, field, value }
}

fn check_zero(what: &'static str, field: Field, value: i64) -> Result<(), DecodeReason> {
    if value != 0 {
        Err(reserved(what, field, value))
    } else {
        Ok(())
    }
}

fn check_reg(what: &'static str, field: Field, reg: u8) -> Result<u8, DecodeReason> {
    if reg >= NUM_REGS {
        Err(DecodeReason::InvalidRegister { what, field, reg })
    } else {
        Ok(reg)
    }
}

/// Decodes the instruction starting at slot `index`. Returns it and the number of slots it
/// occupies (2 for `lddw`, else 1).
pub fn decode(insns: &[RawInsn], index: usize) -> Result<(Insn, usize), DecodeError> {
    let Some(raw) = insns.get(index) else {
        return Err(DecodeError {
            index,
            reason: DecodeReason::OutOfRange { len: insns.len() },
        });
    };
    let next = insns.get(index + 1);
    decode_one(raw, next).map_err(|reason| {
        // A bad second half of lddw is reported at the second slot.
        let index = match reason {
            DecodeReason::LddwSecondSlot { .. } => index + 1,
            _ => index,
        };
        DecodeError { index, reason }
    })
}

/// Decodes a whole slot sequence; returns each instruction with its slot index.
pub fn decode_all(insns: &[RawInsn]) -> Result<Vec<(usize, Insn)>, DecodeError> {
    let mut out = Vec::with_capacity(insns.len());
    let mut i = 0;
    while i < insns.len() {
        let (insn, n) = decode(insns, i)?;
        out.push((i, insn));
        i += n;
    }
    Ok(out)
}

/// Decodes one instruction from its first slot and (for `lddw`) the following slot.
pub fn decode_one(raw: &RawInsn, next: Option<&RawInsn>) -> Result<(Insn, usize), DecodeReason> {
    let code = raw.code;
    let (dst, src, off, imm) = (raw.dst, raw.src, raw.off, raw.imm);
    let unknown = || DecodeReason::UnknownOpcode { code };
    match class(code) {
        BPF_ALU | BPF_ALU64 => {
            let is64 = class(code) == BPF_ALU64;
            let opb = op(code);
            let is_x = source(code) == BPF_X;
            let what = if is64 { "BPF_ALU64" } else { "BPF_ALU" };
            match opb {
                BPF_NEG => {
                    if is_x {
                        return Err(unknown());
                    }
                    let what = "BPF_NEG";
                    let dst = check_reg(what, Field::Dst, dst)?;
                    check_zero(what, Field::Src, src as i64)?;
                    check_zero(what, Field::Off, off as i64)?;
                    check_zero(what, Field::Imm, imm as i64)?;
                    Ok((Insn::Neg { is64, dst }, 1))
                }
                BPF_END => {
                    let kind = match (is64, is_x) {
                        (false, false) => Endian::Le,
                        (false, true) => Endian::Be,
                        (true, false) => Endian::Swap,
                        (true, true) => return Err(unknown()),
                    };
                    let what = "BPF_END";
                    let dst = check_reg(what, Field::Dst, dst)?;
                    check_zero(what, Field::Src, src as i64)?;
                    check_zero(what, Field::Off, off as i64)?;
                    if !matches!(imm, 16 | 32 | 64) {
                        return Err(DecodeReason::InvalidField {
                            what,
                            field: Field::Imm,
                            value: imm as i64,
                            expected: "16, 32 or 64",
                        });
                    }
                    Ok((
                        Insn::End {
                            kind,
                            bits: imm as u8,
                            dst,
                        },
                        1,
                    ))
                }
                BPF_MOV if is_x && off != 0 => {
                    let dst = check_reg("BPF_MOV", Field::Dst, dst)?;
                    let src = check_reg("BPF_MOV", Field::Src, src)?;
                    match (is64, off) {
                        (true, 1) => {
                            let what = "addr_space_cast";
                            if imm != 1 && imm != 1 << 16 {
                                return Err(DecodeReason::InvalidField {
                                    what,
                                    field: Field::Imm,
                                    value: imm as i64,
                                    expected: "1 or 0x10000 (between address spaces 0 and 1)",
                                });
                            }
                            let (dst_as, src_as) = ((imm as u32 >> 16) as u16, imm as u16);
                            Ok((
                                Insn::AddrSpaceCast {
                                    dst,
                                    src,
                                    dst_as,
                                    src_as,
                                },
                                1,
                            ))
                        }
                        (_, 8) | (_, 16) | (true, 32) => {
                            check_zero("BPF_MOV", Field::Imm, imm as i64)?;
                            Ok((
                                Insn::MovSx {
                                    is64,
                                    bits: off as u8,
                                    dst,
                                    src,
                                },
                                1,
                            ))
                        }
                        _ => Err(DecodeReason::InvalidField {
                            what: "BPF_MOV",
                            field: Field::Off,
                            value: off as i64,
                            expected: if is64 {
                                "0, 8, 16, 32 (movsx) or 1 (addr_space_cast)"
                            } else {
                                "0, 8 or 16 (movsx)"
                            },
                        }),
                    }
                }
                0xe0 | 0xf0 => Err(unknown()),
                _ => {
                    let signed_ok = opb == BPF_DIV || opb == BPF_MOD;
                    let aop = match (opb, off) {
                        (_, 0) => match opb {
                            BPF_ADD => AluOp::Add,
                            BPF_SUB => AluOp::Sub,
                            BPF_MUL => AluOp::Mul,
                            BPF_DIV => AluOp::Div,
                            BPF_OR => AluOp::Or,
                            BPF_AND => AluOp::And,
                            BPF_LSH => AluOp::Lsh,
                            BPF_RSH => AluOp::Rsh,
                            BPF_MOD => AluOp::Mod,
                            BPF_XOR => AluOp::Xor,
                            BPF_MOV => AluOp::Mov,
                            BPF_ARSH => AluOp::Arsh,
                            _ => return Err(unknown()),
                        },
                        (BPF_DIV, 1) => AluOp::SDiv,
                        (BPF_MOD, 1) => AluOp::SMod,
                        _ => {
                            return Err(DecodeReason::InvalidField {
                                what,
                                field: Field::Off,
                                value: off as i64,
                                expected: if signed_ok { "0 or 1 (signed)" } else { "0" },
                            })
                        }
                    };
                    let dst = check_reg(what, Field::Dst, dst)?;
                    let src = if is_x {
                        check_zero(what, Field::Imm, imm as i64)?;
                        Operand::Reg(check_reg(what, Field::Src, src)?)
                    } else {
                        check_zero(what, Field::Src, src as i64)?;
                        Operand::Imm(imm)
                    };
                    Ok((
                        Insn::Alu {
                            is64,
                            op: aop,
                            dst,
                            src,
                        },
                        1,
                    ))
                }
            }
        }
        BPF_JMP | BPF_JMP32 => {
            let is32 = class(code) == BPF_JMP32;
            let is_x = source(code) == BPF_X;
            match op(code) {
                BPF_JA => {
                    if is_x {
                        return Err(unknown());
                    }
                    let what = if is32 { "gotol" } else { "goto" };
                    check_zero(what, Field::Dst, dst as i64)?;
                    check_zero(what, Field::Src, src as i64)?;
                    if is32 {
                        check_zero(what, Field::Off, off as i64)?;
                        Ok((Insn::Gotol { imm }, 1))
                    } else {
                        check_zero(what, Field::Imm, imm as i64)?;
                        Ok((Insn::Ja { off }, 1))
                    }
                }
                BPF_CALL => {
                    if is32 {
                        return Err(unknown());
                    }
                    if is_x {
                        let what = "callx";
                        let reg = check_reg(what, Field::Dst, dst)?;
                        check_zero(what, Field::Src, src as i64)?;
                        check_zero(what, Field::Off, off as i64)?;
                        check_zero(what, Field::Imm, imm as i64)?;
                        return Ok((Insn::Callx { reg }, 1));
                    }
                    let what = "call";
                    check_zero(what, Field::Dst, dst as i64)?;
                    match src {
                        0 => {
                            check_zero(what, Field::Off, off as i64)?;
                            Ok((Insn::Call { imm }, 1))
                        }
                        BPF_PSEUDO_CALL => {
                            check_zero(what, Field::Off, off as i64)?;
                            Ok((Insn::CallLocal { imm }, 1))
                        }
                        BPF_PSEUDO_KFUNC_CALL => Ok((Insn::CallKfunc { imm, off }, 1)),
                        _ => Err(DecodeReason::InvalidField {
                            what,
                            field: Field::Src,
                            value: src as i64,
                            expected: "0 (helper), 1 (local function) or 2 (kfunc)",
                        }),
                    }
                }
                BPF_EXIT => {
                    if is32 || is_x {
                        return Err(unknown());
                    }
                    let what = "exit";
                    check_zero(what, Field::Dst, dst as i64)?;
                    check_zero(what, Field::Src, src as i64)?;
                    check_zero(what, Field::Imm, imm as i64)?;
                    Ok((Insn::Exit { off }, 1))
                }
                0xe0 => {
                    // BPF_JCOND: only may_goto (src_reg 0) exists.
                    if is32 || is_x {
                        return Err(unknown());
                    }
                    let what = "may_goto";
                    check_zero(what, Field::Dst, dst as i64)?;
                    if src != 0 {
                        return Err(DecodeReason::InvalidField {
                            what,
                            field: Field::Src,
                            value: src as i64,
                            expected: "0 (BPF_MAY_GOTO)",
                        });
                    }
                    check_zero(what, Field::Imm, imm as i64)?;
                    Ok((Insn::MayGoto { off }, 1))
                }
                opb => {
                    let Some(cond) = JmpCond::from_op(opb) else {
                        return Err(unknown());
                    };
                    let what = if is32 { "BPF_JMP32" } else { "BPF_JMP" };
                    let dst = check_reg(what, Field::Dst, dst)?;
                    let src = if is_x {
                        check_zero(what, Field::Imm, imm as i64)?;
                        Operand::Reg(check_reg(what, Field::Src, src)?)
                    } else {
                        check_zero(what, Field::Src, src as i64)?;
                        Operand::Imm(imm)
                    };
                    Ok((
                        Insn::Jmp {
                            is32,
                            cond,
                            dst,
                            src,
                            off,
                        },
                        1,
                    ))
                }
            }
        }
        BPF_LD => match mode(code) {
            BPF_IMM if size(code) == BPF_DW => {
                let what = "lddw";
                let dst = check_reg(what, Field::Dst, dst)?;
                check_zero(what, Field::Off, off as i64)?;
                let Some(kind) = LdImmKind::from_src(src) else {
                    return Err(DecodeReason::InvalidField {
                        what,
                        field: Field::Src,
                        value: src as i64,
                        expected: "a pseudo kind 0..6",
                    });
                };
                let Some(hi) = next else {
                    return Err(DecodeReason::LddwTruncated);
                };
                for (field, v) in [
                    (Field::Code, hi.code as i64),
                    (Field::Dst, hi.dst as i64),
                    (Field::Src, hi.src as i64),
                    (Field::Off, hi.off as i64),
                ] {
                    if v != 0 {
                        return Err(DecodeReason::LddwSecondSlot { field, value: v });
                    }
                }
                if kind.high_must_be_zero() && hi.imm != 0 {
                    return Err(DecodeReason::InvalidField {
                        what: "lddw map_fd/map_idx",
                        field: Field::Imm,
                        value: hi.imm as i64,
                        expected: "0 in the second slot",
                    });
                }
                let imm = (imm as u32 as u64) | ((hi.imm as u32 as u64) << 32);
                Ok((Insn::LdImm64 { dst, kind, imm }, 2))
            }
            m @ (BPF_ABS | BPF_IND) if size(code) != BPF_DW => {
                let what = if m == BPF_ABS {
                    "BPF_LD_ABS"
                } else {
                    "BPF_LD_IND"
                };
                check_zero(what, Field::Dst, dst as i64)?;
                check_zero(what, Field::Off, off as i64)?;
                let size = Size::from_code(code);
                if m == BPF_ABS {
                    check_zero(what, Field::Src, src as i64)?;
                    Ok((Insn::LdAbs { size, imm }, 1))
                } else {
                    let src = check_reg(what, Field::Src, src)?;
                    Ok((Insn::LdInd { size, src, imm }, 1))
                }
            }
            _ => Err(unknown()),
        },
        BPF_LDX => {
            let m = mode(code);
            let size = Size::from_code(code);
            let sx = match m {
                BPF_MEM => false,
                BPF_MEMSX if size != Size::DW => true,
                _ => return Err(unknown()),
            };
            let what = "BPF_LDX";
            let dst = check_reg(what, Field::Dst, dst)?;
            let src = check_reg(what, Field::Src, src)?;
            check_zero(what, Field::Imm, imm as i64)?;
            Ok((
                if sx {
                    Insn::LdxSx {
                        size,
                        dst,
                        src,
                        off,
                    }
                } else {
                    Insn::Ldx {
                        size,
                        dst,
                        src,
                        off,
                    }
                },
                1,
            ))
        }
        BPF_ST => {
            if mode(code) != BPF_MEM {
                return Err(unknown());
            }
            let what = "BPF_ST";
            let dst = check_reg(what, Field::Dst, dst)?;
            check_zero(what, Field::Src, src as i64)?;
            Ok((
                Insn::St {
                    size: Size::from_code(code),
                    dst,
                    off,
                    imm,
                },
                1,
            ))
        }
        BPF_STX => {
            let size = Size::from_code(code);
            match mode(code) {
                BPF_MEM => {
                    let what = "BPF_STX";
                    let dst = check_reg(what, Field::Dst, dst)?;
                    let src = check_reg(what, Field::Src, src)?;
                    check_zero(what, Field::Imm, imm as i64)?;
                    Ok((
                        Insn::Stx {
                            size,
                            dst,
                            src,
                            off,
                        },
                        1,
                    ))
                }
                BPF_ATOMIC => {
                    let what = "BPF_ATOMIC";
                    let Some(aop) = AtomicOp::from_imm(imm) else {
                        return Err(DecodeReason::InvalidField {
                            what,
                            field: Field::Imm,
                            value: imm as i64,
                            expected: "an atomic operation (add/or/and/xor [|fetch], xchg, \
                                       cmpxchg, load_acquire, store_release)",
                        });
                    };
                    if !aop.allows(size) {
                        return Err(DecodeReason::InvalidField {
                            what,
                            field: Field::Code,
                            value: code as i64,
                            expected: "size W or DW for read-modify-write atomics",
                        });
                    }
                    let dst = check_reg(what, Field::Dst, dst)?;
                    let src = check_reg(what, Field::Src, src)?;
                    Ok((
                        Insn::Atomic {
                            size,
                            op: aop,
                            dst,
                            src,
                            off,
                        },
                        1,
                    ))
                }
                _ => Err(unknown()),
            }
        }
        _ => unreachable!("class is 3 bits"),
    }
}

impl Insn {
    /// Number of slots (2 for `lddw`).
    pub const fn slots(&self) -> usize {
        match self {
            Insn::LdImm64 { .. } => 2,
            _ => 1,
        }
    }

    /// Appends the raw slots of this instruction to `out`.
    pub fn encode_into(&self, out: &mut Vec<RawInsn>) {
        let r = RawInsn::new;
        let alu_class = |is64: bool| if is64 { BPF_ALU64 } else { BPF_ALU };
        let insn = match *self {
            Insn::Alu { is64, op, dst, src } => {
                let (opb, off) = op.op_and_off();
                match src {
                    Operand::Reg(s) => r(alu_class(is64) | opb | BPF_X, dst, s, off, 0),
                    Operand::Imm(i) => r(alu_class(is64) | opb | BPF_K, dst, 0, off, i),
                }
            }
            Insn::Neg { is64, dst } => r(alu_class(is64) | BPF_NEG, dst, 0, 0, 0),
            Insn::MovSx {
                is64,
                bits,
                dst,
                src,
            } => r(alu_class(is64) | BPF_MOV | BPF_X, dst, src, bits as i16, 0),
            Insn::AddrSpaceCast {
                dst,
                src,
                dst_as,
                src_as,
            } => r(
                BPF_ALU64 | BPF_MOV | BPF_X,
                dst,
                src,
                1,
                ((dst_as as u32) << 16 | src_as as u32) as i32,
            ),
            Insn::End { kind, bits, dst } => {
                let code = match kind {
                    Endian::Le => BPF_ALU | BPF_END | BPF_TO_LE,
                    Endian::Be => BPF_ALU | BPF_END | BPF_TO_BE,
                    Endian::Swap => BPF_ALU64 | BPF_END | BPF_TO_LE,
                };
                r(code, dst, 0, 0, bits as i32)
            }
            Insn::LdImm64 { dst, kind, imm } => {
                out.push(r(LDDW, dst, kind.src(), 0, imm as u32 as i32));
                r(0, 0, 0, 0, (imm >> 32) as u32 as i32)
            }
            Insn::LdAbs { size, imm } => r(BPF_LD | BPF_ABS | size.code(), 0, 0, 0, imm),
            Insn::LdInd { size, src, imm } => r(BPF_LD | BPF_IND | size.code(), 0, src, 0, imm),
            Insn::Ldx {
                size,
                dst,
                src,
                off,
            } => r(BPF_LDX | BPF_MEM | size.code(), dst, src, off, 0),
            Insn::LdxSx {
                size,
                dst,
                src,
                off,
            } => r(BPF_LDX | BPF_MEMSX | size.code(), dst, src, off, 0),
            Insn::St {
                size,
                dst,
                off,
                imm,
            } => r(BPF_ST | BPF_MEM | size.code(), dst, 0, off, imm),
            Insn::Stx {
                size,
                dst,
                src,
                off,
            } => r(BPF_STX | BPF_MEM | size.code(), dst, src, off, 0),
            Insn::Atomic {
                size,
                op,
                dst,
                src,
                off,
            } => r(BPF_STX | BPF_ATOMIC | size.code(), dst, src, off, op.imm()),
            Insn::Ja { off } => r(BPF_JMP | BPF_JA, 0, 0, off, 0),
            Insn::Gotol { imm } => r(BPF_JMP32 | BPF_JA, 0, 0, 0, imm),
            Insn::MayGoto { off } => r(BPF_JMP | 0xe0, 0, 0, off, 0),
            Insn::Jmp {
                is32,
                cond,
                dst,
                src,
                off,
            } => {
                let cls = if is32 { BPF_JMP32 } else { BPF_JMP };
                match src {
                    Operand::Reg(s) => r(cls | cond.op() | BPF_X, dst, s, off, 0),
                    Operand::Imm(i) => r(cls | cond.op() | BPF_K, dst, 0, off, i),
                }
            }
            Insn::Call { imm } => r(BPF_JMP | BPF_CALL, 0, 0, 0, imm),
            Insn::CallLocal { imm } => r(BPF_JMP | BPF_CALL, 0, BPF_PSEUDO_CALL, 0, imm),
            Insn::CallKfunc { imm, off } => {
                r(BPF_JMP | BPF_CALL, 0, BPF_PSEUDO_KFUNC_CALL, off, imm)
            }
            Insn::Callx { reg } => r(BPF_JMP | BPF_CALL | BPF_X, reg, 0, 0, 0),
            Insn::Exit { off } => r(BPF_JMP | BPF_EXIT, 0, 0, off, 0),
        };
        out.push(insn);
    }

    /// The raw slots of this instruction (1, or 2 for `lddw`).
    pub fn encode(&self) -> Vec<RawInsn> {
        let mut v = Vec::with_capacity(2);
        self.encode_into(&mut v);
        v
    }

    /// Checks that an instruction built by hand is encodable and valid: decoding its
    /// encoding gives it back. (Registers above r10 or out-of-set values fail here.)
    pub fn validate(&self) -> Result<(), DecodeReason> {
        let raw = self.encode();
        let (back, _) = decode_one(&raw[0], raw.get(1))?;
        if back == *self {
            Ok(())
        } else {
            // Only reachable for field values the encoding cannot hold (e.g. register 16).
            Err(DecodeReason::InvalidField {
                what: "instruction",
                field: Field::Code,
                value: raw[0].code as i64,
                expected: "fields that fit their encoding",
            })
        }
    }
}

/// Encodes a sequence of instructions.
pub fn encode_all(insns: &[Insn]) -> Vec<RawInsn> {
    let mut out = Vec::with_capacity(insns.len());
    for i in insns {
        i.encode_into(&mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Result<Insn, DecodeReason> {
        decode_one(
            &RawInsn::new(code, dst, src, off, imm),
            Some(&RawInsn::default()),
        )
        .map(|x| x.0)
    }

    #[test]
    fn every_single_byte_opcode_round_trips_or_errors() {
        // Exhaustive over opcodes and a spread of field values: never panics, and whatever
        // decodes encodes back to the same slot.
        let offs = [0i16, 1, 8, 16, 32, -1, 0x7fff];
        let imms = [0i32, 1, 16, 32, 64, 0x100, 0x110, 0xe1, 0xf1, -1, 0x10000];
        for code in 0..=255u8 {
            for dst in [0u8, 1, 10, 11, 15] {
                for src in [0u8, 1, 2, 3, 7, 10, 11] {
                    for &off in &offs {
                        for &imm in &imms {
                            let raw = RawInsn::new(code, dst, src, off, imm);
                            let hi = RawInsn::new(0, 0, 0, 0, 5);
                            if let Ok((insn, n)) = decode_one(&raw, Some(&hi)) {
                                let enc = insn.encode();
                                assert_eq!(enc.len(), n);
                                assert_eq!(enc[0], raw, "{insn:?}");
                                if n == 2 {
                                    assert_eq!(enc[1], hi);
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn kernel_reserved_field_rules() {
        assert!(d(0x84, 0, 0, 1, 0).is_err()); // neg with off
        assert!(d(0xdf, 0, 0, 0, 16).is_err()); // ALU64 END TO_BE
        assert_eq!(
            d(0xd7, 0, 0, 0, 16),
            Ok(Insn::End {
                kind: Endian::Swap,
                bits: 16,
                dst: 0
            })
        );
        assert!(d(0xbc, 0, 1, 32, 0).is_err()); // 32-bit movsx from 32
        assert!(d(0x04, 0, 0, 1, 1).is_err()); // add with off 1
        assert_eq!(
            d(0x3c, 1, 2, 1, 0),
            Ok(Insn::Alu {
                is64: false,
                op: AluOp::SDiv,
                dst: 1,
                src: Operand::Reg(2)
            })
        );
        assert!(d(0x07, 0, 1, 0, 0).is_err()); // K form with src_reg
        assert!(d(0x1d, 0, 1, 0, 1).is_err()); // X jump with imm
        assert!(d(0x1d, 11, 1, 0, 0).is_err()); // r11
        assert!(d(0x06, 0, 0, 1, 0).is_err()); // gotol with off
        assert!(d(0x05, 0, 0, 0, 1).is_err()); // goto with imm
        assert!(d(0x85, 0, 0, 1, 7).is_err()); // helper call with off
        assert!(d(0x85, 1, 0, 0, 7).is_err()); // call with dst
        assert_eq!(
            d(0x85, 0, 2, 3, 77),
            Ok(Insn::CallKfunc { imm: 77, off: 3 })
        );
        assert_eq!(d(0x95, 0, 0, 1, 0), Ok(Insn::Exit { off: 1 })); // the kernel accepts it
        assert!(d(0x95, 0, 0, 0, 1).is_err());
        assert!(d(0xd3, 10, 1, -8, 0).is_err()); // 8-bit atomic add
        assert!(d(0xd3, 10, 1, -8, 0x100).is_ok()); // 8-bit load-acquire
        assert!(d(0x38, 0, 0, 0, 0).is_err()); // LD_ABS DW
        assert!(d(0x00, 0, 0, 0, 0).is_err()); // lone second half of lddw
        assert!(d(0x8d, 2, 0, 0, 0).is_ok()); // callx
        assert!(d(0x8e, 2, 0, 0, 0).is_err());
        assert!(d(0xe5, 0, 1, 0, 0).is_err());
    }

    #[test]
    fn lddw_needs_both_halves() {
        let lo = RawInsn::new(0x18, 1, 0, 0, 5);
        assert_eq!(
            decode(&[lo], 0).unwrap_err().reason,
            DecodeReason::LddwTruncated
        );
        let bad_hi = RawInsn::new(0x18, 0, 0, 0, 0);
        let e = decode(&[lo, bad_hi], 0).unwrap_err();
        assert_eq!(e.index, 1);
        let (i, n) = decode(&[lo, RawInsn::new(0, 0, 0, 0, 2)], 0).unwrap();
        assert_eq!(
            (i, n),
            (
                Insn::LdImm64 {
                    dst: 1,
                    kind: LdImmKind::Imm,
                    imm: 0x2_0000_0005
                },
                2
            )
        );
        // map fd with a nonzero upper half is rejected, map value accepts it.
        assert!(decode(
            &[RawInsn::new(0x18, 1, 1, 0, 5), RawInsn::new(0, 0, 0, 0, 2)],
            0
        )
        .is_err());
        assert!(decode(
            &[RawInsn::new(0x18, 1, 2, 0, 5), RawInsn::new(0, 0, 0, 0, 2)],
            0
        )
        .is_ok());
        assert!(decode(
            &[RawInsn::new(0x18, 1, 7, 0, 5), RawInsn::new(0, 0, 0, 0, 0)],
            0
        )
        .is_err());
    }

    #[test]
    fn error_names_index_and_reason() {
        let e = decode(
            &[
                RawInsn::new(0xb7, 0, 0, 0, 0),
                RawInsn::new(0xff, 0, 0, 0, 0),
            ],
            1,
        )
        .unwrap_err();
        assert_eq!(e.to_string(), "instruction 1: unknown opcode 0xff");
    }
}
