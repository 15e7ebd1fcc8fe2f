//! Instruction text in two syntaxes.
//!
//! [`Syntax::Llvm`] is exactly what `llvm-objdump-19 -d` prints after the address
//! column, except where LLVM's text is ambiguous or lossy; there bpfkit prints a form
//! that [`crate::assemble`] reads back (documented in `docs/disasm.md`):
//!
//! | encoding | llvm-objdump-19 | bpfkit |
//! |---|---|---|
//! | local call (`src_reg` 1) | `call -0x1` | `call local -0x1` |
//! | kfunc call (`src_reg` 2) | `call 0x4d2` | `call kfunc 0x4d2` (`off 0x1` if `off` ≠ 0) |
//! | `lddw` pseudo with high word | `ld_pseudo r1, 0x2, 0x5` | `ld_pseudo r1, 0x2, 0x5, 0x7` |
//! | `LD_IND` with `imm` ≠ 0 | `r0 = *(u8 *)skb[r1]` | `r0 = *(u8 *)skb[r1 + 0x4]` |
//! | 32-bit atomics other than `add` | `<unknown>` or lossy | LLVM's `+alu32` syntax |
//! | load-acquire / store-release | `<unknown>` or lossy | LLVM 20 syntax |
//! | `exit` with `off` ≠ 0 | `exit` | `exit off 0x1` |
//!
//! [`Syntax::Ubpf`] is the ubpf/rbpf mnemonic syntax (`ldxw r2, [r1+4]`,
//! `jge r2, r3, +1`): decimal offsets, hexadecimal immediates.

use bpfkit_isa::{AluOp, AtomicOp, Endian, Insn, JmpCond, LdImmKind, Operand, Size};
use std::fmt::Write;

/// Output syntax.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Syntax {
    /// `llvm-objdump` syntax (`r2 = *(u32 *)(r1 + 0x4)`).
    #[default]
    Llvm,
    /// `llvm-objdump --mattr=+alu32` syntax: 8/16/32-bit loads, stores and atomics name
    /// `w` registers (`w2 = *(u32 *)(r1 + 0x4)`).
    LlvmAlu32,
    /// ubpf/rbpf mnemonic syntax (`ldxw r2, [r1+4]`).
    Ubpf,
}

/// Signed hexadecimal as LLVM prints immediates: `0x5`, `-0x1`.
pub fn shex(v: i64) -> String {
    if v < 0 {
        format!("-{:#x}", (v as i128).unsigned_abs())
    } else {
        format!("{v:#x}")
    }
}

/// Signed hexadecimal with an explicit `+` for non-negative values (jump offsets).
fn phex(v: i64) -> String {
    if v < 0 {
        shex(v)
    } else {
        format!("+{v:#x}")
    }
}

fn tyname(size: Size) -> &'static str {
    match size {
        Size::B => "u8",
        Size::H => "u16",
        Size::W => "u32",
        Size::DW => "u64",
    }
}

fn sxname(size: Size) -> &'static str {
    match size {
        Size::B => "s8",
        Size::H => "s16",
        Size::W => "s32",
        Size::DW => "s64",
    }
}

fn suffix(size: Size) -> &'static str {
    match size {
        Size::B => "b",
        Size::H => "h",
        Size::W => "w",
        Size::DW => "dw",
    }
}

/// `(r1 + 0x4)` / `(r1 - 0x4)` without the parentheses.
fn mem(reg: u8, off: i16) -> String {
    if off < 0 {
        format!("r{reg} - {:#x}", (off as i32).unsigned_abs())
    } else {
        format!("r{reg} + {off:#x}")
    }
}

fn llvm_alu_op(op: AluOp) -> &'static str {
    match op {
        AluOp::Add => "+=",
        AluOp::Sub => "-=",
        AluOp::Mul => "*=",
        AluOp::Div => "/=",
        AluOp::SDiv => "s/=",
        AluOp::Or => "|=",
        AluOp::And => "&=",
        AluOp::Lsh => "<<=",
        AluOp::Rsh => ">>=",
        AluOp::Mod => "%=",
        AluOp::SMod => "s%=",
        AluOp::Xor => "^=",
        AluOp::Mov => "=",
        AluOp::Arsh => "s>>=",
    }
}

fn llvm_cond(c: JmpCond) -> &'static str {
    match c {
        JmpCond::Eq => "==",
        JmpCond::Gt => ">",
        JmpCond::Ge => ">=",
        JmpCond::Set => "&",
        JmpCond::Ne => "!=",
        JmpCond::Sgt => "s>",
        JmpCond::Sge => "s>=",
        JmpCond::Lt => "<",
        JmpCond::Le => "<=",
        JmpCond::Slt => "s<",
        JmpCond::Sle => "s<=",
    }
}

/// Formats one instruction in the given syntax.
pub fn format_insn(insn: &Insn, syntax: Syntax) -> String {
    match syntax {
        Syntax::Llvm => llvm(insn),
        Syntax::LlvmAlu32 => llvm_alu32(insn),
        Syntax::Ubpf => ubpf(insn),
    }
}

/// True for the instructions whose [`Syntax::Llvm`] text is a bpfkit form, not what
/// `llvm-objdump-19 -d` prints (there LLVM's text is ambiguous, lossy or `<unknown>`;
/// see the module documentation).
pub fn differs_from_llvm(insn: &Insn) -> bool {
    match *insn {
        Insn::CallLocal { .. } | Insn::CallKfunc { .. } => true,
        Insn::LdImm64 { kind, imm, .. } => kind != LdImmKind::Imm && imm >> 32 != 0,
        Insn::LdInd { imm, .. } => imm != 0,
        Insn::Atomic { size, op, .. } => match op {
            AtomicOp::LoadAcquire | AtomicOp::StoreRelease => true,
            AtomicOp::Add => false,
            _ => size != Size::DW,
        },
        Insn::Exit { off } => off != 0,
        _ => false,
    }
}

/// Like [`differs_from_llvm`], for [`Syntax::LlvmAlu32`] against
/// `llvm-objdump-19 -d --mattr=+alu32` (which knows the 32-bit atomics).
pub fn differs_from_llvm_alu32(insn: &Insn) -> bool {
    match *insn {
        Insn::Atomic { op, .. } => matches!(op, AtomicOp::LoadAcquire | AtomicOp::StoreRelease),
        _ => differs_from_llvm(insn),
    }
}

/// LLVM (`llvm-objdump -d`) syntax.
pub fn llvm(insn: &Insn) -> String {
    llvm_text(insn, false)
}

/// LLVM syntax as `llvm-objdump -d --mattr=+alu32` prints it.
pub fn llvm_alu32(insn: &Insn) -> String {
    llvm_text(insn, true)
}

fn llvm_text(insn: &Insn, alu32: bool) -> String {
    // With +alu32, sub-64-bit loads, stores and atomics name w registers.
    let wp = |size: Size| if alu32 && size != Size::DW { 'w' } else { 'r' };
    match *insn {
        Insn::Alu { is64, op, dst, src } => {
            let p = if is64 { 'r' } else { 'w' };
            let s = match src {
                Operand::Reg(r) => format!("{p}{r}"),
                Operand::Imm(i) => shex(i as i64),
            };
            format!("{p}{dst} {} {s}", llvm_alu_op(op))
        }
        Insn::Neg { is64, dst } => {
            let p = if is64 { 'r' } else { 'w' };
            format!("{p}{dst} = -{p}{dst}")
        }
        Insn::MovSx {
            is64,
            bits,
            dst,
            src,
        } => {
            let p = if is64 { 'r' } else { 'w' };
            format!("{p}{dst} = (s{bits}){p}{src}")
        }
        Insn::AddrSpaceCast {
            dst,
            src,
            dst_as,
            src_as,
        } => {
            format!("r{dst} = addr_space_cast(r{src}, {dst_as:#x}, {src_as:#x})")
        }
        Insn::End { kind, bits, dst } => {
            let k = match kind {
                Endian::Le => "le",
                Endian::Be => "be",
                Endian::Swap => "bswap",
            };
            format!("r{dst} = {k}{bits} r{dst}")
        }
        Insn::LdImm64 {
            dst,
            kind: LdImmKind::Imm,
            imm,
        } => format!("r{dst} = {} ll", shex(imm as i64)),
        Insn::LdImm64 { dst, kind, imm } => {
            let mut s = format!("ld_pseudo\tr{dst}, {:#x}, {:#x}", kind.src(), imm as u32);
            if imm >> 32 != 0 {
                write!(s, ", {:#x}", (imm >> 32) as u32).unwrap();
            }
            s
        }
        Insn::LdAbs { size, imm } => format!("r0 = *({} *)skb[{}]", tyname(size), shex(imm as i64)),
        Insn::LdInd { size, src, imm } => {
            if imm == 0 {
                format!("r0 = *({} *)skb[r{src}]", tyname(size))
            } else if imm < 0 {
                format!(
                    "r0 = *({} *)skb[r{src} - {:#x}]",
                    tyname(size),
                    imm.unsigned_abs()
                )
            } else {
                format!("r0 = *({} *)skb[r{src} + {imm:#x}]", tyname(size))
            }
        }
        Insn::Ldx {
            size,
            dst,
            src,
            off,
        } => format!(
            "{}{dst} = *({} *)({})",
            wp(size),
            tyname(size),
            mem(src, off)
        ),
        Insn::LdxSx {
            size,
            dst,
            src,
            off,
        } => format!("r{dst} = *({} *)({})", sxname(size), mem(src, off)),
        Insn::St {
            size,
            dst,
            off,
            imm,
        } => {
            format!(
                "*({} *)({}) = {}",
                tyname(size),
                mem(dst, off),
                shex(imm as i64)
            )
        }
        Insn::Stx {
            size,
            dst,
            src,
            off,
        } => format!(
            "*({} *)({}) = {}{src}",
            tyname(size),
            mem(dst, off),
            wp(size)
        ),
        Insn::Atomic {
            size,
            op,
            dst,
            src,
            off,
        } => {
            let ty = tyname(size);
            let m = mem(dst, off);
            // llvm-objdump-19 without +alu32 prints only 32-bit `add` (with an r register);
            // the other 32-bit forms follow its +alu32 syntax.
            let p = if size == Size::DW { 'r' } else { 'w' };
            match op {
                AtomicOp::Add => format!("lock *({ty} *)({m}) += {}{src}", wp(size)),
                AtomicOp::Or | AtomicOp::And | AtomicOp::Xor => {
                    let o = match op {
                        AtomicOp::Or => "|=",
                        AtomicOp::And => "&=",
                        _ => "^=",
                    };
                    format!("lock *({ty} *)({m}) {o} {p}{src}")
                }
                AtomicOp::FetchAdd
                | AtomicOp::FetchOr
                | AtomicOp::FetchAnd
                | AtomicOp::FetchXor => {
                    let o = match op {
                        AtomicOp::FetchAdd => "add",
                        AtomicOp::FetchOr => "or",
                        AtomicOp::FetchAnd => "and",
                        _ => "xor",
                    };
                    format!("{p}{src} = atomic_fetch_{o}(({ty} *)({m}), {p}{src})")
                }
                AtomicOp::Xchg => {
                    let f = if size == Size::DW {
                        "xchg_64"
                    } else {
                        "xchg32_32"
                    };
                    format!("{p}{src} = {f}({m}, {p}{src})")
                }
                AtomicOp::Cmpxchg => {
                    let f = if size == Size::DW {
                        "cmpxchg_64"
                    } else {
                        "cmpxchg32_32"
                    };
                    format!("{p}0 = {f}({m}, {p}0, {p}{src})")
                }
                AtomicOp::LoadAcquire => {
                    format!("{p}{dst} = load_acquire(({ty} *)({}))", mem(src, off))
                }
                AtomicOp::StoreRelease => format!("store_release(({ty} *)({m}), {p}{src})"),
            }
        }
        Insn::Ja { off } => format!("goto {}", phex(off as i64)),
        Insn::Gotol { imm } => format!("gotol {}", phex(imm as i64)),
        Insn::MayGoto { off } => format!("may_goto {}", phex(off as i64)),
        Insn::Jmp {
            is32,
            cond,
            dst,
            src,
            off,
        } => {
            let p = if is32 { 'w' } else { 'r' };
            let s = match src {
                Operand::Reg(r) => format!("{p}{r}"),
                Operand::Imm(i) => shex(i as i64),
            };
            format!(
                "if {p}{dst} {} {s} goto {}",
                llvm_cond(cond),
                phex(off as i64)
            )
        }
        Insn::Call { imm } => format!("call {}", shex(imm as i64)),
        Insn::CallLocal { imm } => format!("call local {}", phex(imm as i64)),
        Insn::CallKfunc { imm, off } => {
            if off == 0 {
                format!("call kfunc {}", shex(imm as i64))
            } else {
                format!("call kfunc {} off {}", shex(imm as i64), shex(off as i64))
            }
        }
        Insn::Callx { reg } => format!("callx r{reg}"),
        Insn::Exit { off: 0 } => "exit".to_string(),
        Insn::Exit { off } => format!("exit off {}", shex(off as i64)),
    }
}

fn ubpf_mem(reg: u8, off: i16) -> String {
    if off == 0 {
        format!("[r{reg}]")
    } else {
        format!("[r{reg}{off:+}]")
    }
}

fn ubpf_alu_name(op: AluOp) -> &'static str {
    match op {
        AluOp::Add => "add",
        AluOp::Sub => "sub",
        AluOp::Mul => "mul",
        AluOp::Div => "div",
        AluOp::SDiv => "sdiv",
        AluOp::Or => "or",
        AluOp::And => "and",
        AluOp::Lsh => "lsh",
        AluOp::Rsh => "rsh",
        AluOp::Mod => "mod",
        AluOp::SMod => "smod",
        AluOp::Xor => "xor",
        AluOp::Mov => "mov",
        AluOp::Arsh => "arsh",
    }
}

fn ubpf_cond_name(c: JmpCond) -> &'static str {
    match c {
        JmpCond::Eq => "jeq",
        JmpCond::Gt => "jgt",
        JmpCond::Ge => "jge",
        JmpCond::Set => "jset",
        JmpCond::Ne => "jne",
        JmpCond::Sgt => "jsgt",
        JmpCond::Sge => "jsge",
        JmpCond::Lt => "jlt",
        JmpCond::Le => "jle",
        JmpCond::Slt => "jslt",
        JmpCond::Sle => "jsle",
    }
}

/// ubpf/rbpf mnemonic syntax.
pub fn ubpf(insn: &Insn) -> String {
    let w = |is64: bool| if is64 { "" } else { "32" };
    match *insn {
        Insn::Alu { is64, op, dst, src } => {
            let s = match src {
                Operand::Reg(r) => format!("r{r}"),
                Operand::Imm(i) => shex(i as i64),
            };
            format!("{}{} r{dst}, {s}", ubpf_alu_name(op), w(is64))
        }
        Insn::Neg { is64, dst } => format!("neg{} r{dst}", w(is64)),
        Insn::MovSx {
            is64,
            bits,
            dst,
            src,
        } => {
            format!(
                "movsx{bits}{} r{dst}, r{src}",
                if is64 { "64" } else { "32" }
            )
        }
        Insn::AddrSpaceCast {
            dst,
            src,
            dst_as,
            src_as,
        } => {
            format!("addr_space_cast r{dst}, r{src}, {dst_as}, {src_as}")
        }
        Insn::End { kind, bits, dst } => {
            let k = match kind {
                Endian::Le => "le",
                Endian::Be => "be",
                Endian::Swap => "bswap",
            };
            format!("{k}{bits} r{dst}")
        }
        Insn::LdImm64 {
            dst,
            kind: LdImmKind::Imm,
            imm,
        } => format!("lddw r{dst}, {}", shex(imm as i64)),
        Insn::LdImm64 { .. } => llvm(insn).replace('\t', " "),
        Insn::LdAbs { size, imm } => format!("ldabs{} {}", suffix(size), shex(imm as i64)),
        Insn::LdInd { size, src, imm } => {
            format!("ldind{} r{src}, {}", suffix(size), shex(imm as i64))
        }
        Insn::Ldx {
            size,
            dst,
            src,
            off,
        } => format!("ldx{} r{dst}, {}", suffix(size), ubpf_mem(src, off)),
        Insn::LdxSx {
            size,
            dst,
            src,
            off,
        } => {
            format!("ldxs{} r{dst}, {}", suffix(size), ubpf_mem(src, off))
        }
        Insn::St {
            size,
            dst,
            off,
            imm,
        } => {
            format!(
                "st{} {}, {}",
                suffix(size),
                ubpf_mem(dst, off),
                shex(imm as i64)
            )
        }
        Insn::Stx {
            size,
            dst,
            src,
            off,
        } => format!("stx{} {}, r{src}", suffix(size), ubpf_mem(dst, off)),
        Insn::Atomic {
            size,
            op,
            dst,
            src,
            off,
        } => {
            let s32 = if size == Size::W { "32" } else { "" };
            let m = ubpf_mem(dst, off);
            match op {
                AtomicOp::LoadAcquire => {
                    format!("lock ldacq{} r{dst}, {}", suffix(size), ubpf_mem(src, off))
                }
                AtomicOp::StoreRelease => format!("lock strel{} {m}, r{src}", suffix(size)),
                _ => {
                    let (fetch, name) = match op {
                        AtomicOp::Add => ("", "add"),
                        AtomicOp::Or => ("", "or"),
                        AtomicOp::And => ("", "and"),
                        AtomicOp::Xor => ("", "xor"),
                        AtomicOp::FetchAdd => ("fetch ", "add"),
                        AtomicOp::FetchOr => ("fetch ", "or"),
                        AtomicOp::FetchAnd => ("fetch ", "and"),
                        AtomicOp::FetchXor => ("fetch ", "xor"),
                        AtomicOp::Xchg => ("", "xchg"),
                        _ => ("", "cmpxchg"),
                    };
                    format!("lock {fetch}{name}{s32} {m}, r{src}")
                }
            }
        }
        Insn::Ja { off } => format!("ja {off:+}"),
        Insn::Gotol { imm } => format!("ja32 {imm:+}"),
        Insn::MayGoto { off } => format!("may_goto {off:+}"),
        Insn::Jmp {
            is32,
            cond,
            dst,
            src,
            off,
        } => {
            let s = match src {
                Operand::Reg(r) => format!("r{r}"),
                Operand::Imm(i) => shex(i as i64),
            };
            format!(
                "{}{} r{dst}, {s}, {off:+}",
                ubpf_cond_name(cond),
                if is32 { "32" } else { "" }
            )
        }
        Insn::Call { imm } => format!("call {}", shex(imm as i64)),
        Insn::CallLocal { imm } => format!("call local {imm:+}"),
        Insn::CallKfunc { .. } | Insn::Exit { .. } => llvm(insn),
        Insn::Callx { reg } => format!("call r{reg}"),
    }
}
