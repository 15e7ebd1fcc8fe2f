//! The interpreter: executes linked instruction streams with the kernel's semantics.

use crate::error::{Fault, FaultKind};
use crate::helpers;
use crate::maps::map_handle;
use crate::memory::RegionKind;
use crate::runtime::{func_handle, Runtime, MAX_CALL_FRAMES};
use bpfkit_isa::opcode::*;
use bpfkit_isa::RawInsn;

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

/// Runs the function at slot `pc` of program `prog` with `args` in r1..r5, on a new
/// frame at call depth `depth`, until it returns; returns r0.
pub fn run_function(
    rt: &mut Runtime,
    prog: usize,
    pc: usize,
    args: &[u64],
    depth: usize,
) -> Result<u64, Box<Fault>> {
    let programs = rt.programs.clone();
    let mut reg = [0u64; 11];
    reg[1..1 + args.len()].copy_from_slice(args);
    reg[10] = rt.enter_frame(depth).map_err(|k| fault(rt, prog, pc, k))?;
    let mut prog_idx = prog;
    let mut insns: &[RawInsn] = &programs[prog].insns;
    let mut pc = pc;
    let mut frames: Vec<Frame> = Vec::new();
    let limit = rt.config.insn_limit;

    macro_rules! bail {
        ($kind:expr) => {
            return Err(fault(rt, prog_idx, pc, $kind))
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

    loop {
        let Some(&insn) = insns.get(pc) else {
            bail!(FaultKind::FellOffEnd);
        };
        rt.insn_count += 1;
        if rt.insn_count > limit {
            bail!(FaultKind::InsnLimit(limit));
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
        if let Some(c) = rt.coverage.as_mut() {
            c.hit(prog_idx, pc);
        }

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
                        let depth_now = depth + frames.len();
                        rt.leave_frame(depth_now);
                        match frames.pop() {
                            None => return Ok(reg[0]),
                            Some(f) => {
                                prog_idx = f.prog;
                                insns = &programs[prog_idx].insns;
                                reg[6..10].copy_from_slice(&f.saved);
                                reg[10] = f.r10;
                                next = f.ret_pc;
                                rt.depth = depth + frames.len();
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
                                let depth_now = depth + frames.len();
                                if depth_now + 1 >= MAX_CALL_FRAMES {
                                    bail!(FaultKind::CallDepth(MAX_CALL_FRAMES));
                                }
                                let saved = [reg[6], reg[7], reg[8], reg[9]];
                                frames.push(Frame {
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
                                rt.depth = depth + frames.len();
                                rt.current_prog = prog_idx;
                                let args = [reg[1], reg[2], reg[3], reg[4], reg[5]];
                                if value == helpers::TAIL_CALL as i64 {
                                    if let Some(t) = tri!(helpers::tail_call_target(rt, &args)) {
                                        prog_idx = t;
                                        insns = &programs[prog_idx].insns;
                                        next = 0;
                                    }
                                } else {
                                    let Ok(id) = i32::try_from(value) else {
                                        bail!(FaultKind::UnknownHelper(value));
                                    };
                                    reg[0] = tri!(helpers::call(rt, id, &args));
                                }
                            }
                            BPF_PSEUDO_KFUNC_CALL => {
                                bail!(FaultKind::Unsupported(format!(
                                    "kfunc call (BTF id {imm}) is not supported"
                                )))
                            }
                            _ => bail!(FaultKind::UnknownOpcode(code)),
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
                    BPF_PSEUDO_FUNC => {
                        func_handle(prog_idx, tri!(target(pc, imm as i64, insns.len())))
                    }
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
                let v = tri!(load(rt, addr, size));
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
                    tri!(atomic(rt, &mut reg, dst, src, addr, size, imm));
                } else {
                    bail!(FaultKind::UnknownOpcode(code));
                }
            }
            _ => bail!(FaultKind::UnknownOpcode(code)),
        }
        pc = next;
    }
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
    Ok(rt.regions.load(addr, size)?)
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
    reg: &mut [u64; 11],
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
