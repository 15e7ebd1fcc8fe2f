//! The structured form of a generated program and its rendering to instructions.
//!
//! A program is a prologue, a list of [`Item`]s and an epilogue. Every item keeps one
//! invariant: on entry and on exit, the *value registers* (r0-r5, r7-r9) hold
//! initialised scalars, r6 holds the context (XDP) or memory (raw) pointer, and the stack
//! data area is initialised. Items may therefore be skipped by forward jumps, repeated by
//! loops, and combined freely, and the verifier accepts every combination. Pointers only
//! live inside an item (packet and map blocks use scratch registers and re-initialise
//! them before they end).
//!
//! The epilogue copies every value register and the stack data area to a result (the
//! `res` map for XDP, the first [`RESULT_LEN`] bytes of memory for raw programs), so a
//! differential test compares the whole machine state, not just r0.

use bpfkit_isa::opcode::*;
use bpfkit_isa::RawInsn;

/// Registers that hold scalars between items.
pub const VALUE_REGS: [u8; 9] = [0, 1, 2, 3, 4, 5, 7, 8, 9];
/// Registers a helper call does not clobber.
pub const CALLEE_SAVED: [u8; 3] = [7, 8, 9];
/// Loop counter register (loop bodies never write it).
pub const LOOP_REG: u8 = 9;
/// Context (XDP) or memory (raw) pointer.
pub const CTX_REG: u8 = 6;

/// Stack data area: `DATA_SLOTS` 8-byte slots from `r10 + DATA_OFF`.
pub const DATA_OFF: i16 = -96;
pub const DATA_SLOTS: usize = 8;
/// Map key scratch (`r10 - 8`, 4 bytes) and value scratch (`r10 - 24`, 16 bytes).
pub const KEY_OFF: i16 = -8;
pub const VAL_OFF: i16 = -24;
/// Epilogue save area for the 9 value registers.
pub const SAVE_OFF: i16 = -168;
/// Bytes of the result: 9 registers then the 8 data slots.
pub const RESULT_LEN: usize = 8 * (VALUE_REGS.len() + DATA_SLOTS);
/// Value size of the `arr` and `hsh` maps.
pub const MAP_VALUE_SIZE: i16 = 16;
/// Entries of the `arr` and `hsh` maps.
pub const MAP_ENTRIES: u32 = 4;

/// Map indices in the generated object.
pub const MAP_ARR: usize = 0;
pub const MAP_HSH: usize = 1;
pub const MAP_RES: usize = 2;
/// PROG_ARRAY: slot i holds program i of the object.
pub const MAP_JMP: usize = 3;
/// PERCPU_ARRAY, 4 entries of 16 bytes.
pub const MAP_PCP: usize = 4;
/// Maps whose contents engines can compare (the PROG_ARRAY reads back kernel ids).
pub const COMPARED_MAPS: [(usize, &str); 4] = [
    (MAP_ARR, "arr"),
    (MAP_HSH, "hsh"),
    (MAP_RES, "res"),
    (MAP_PCP, "pcp"),
];

/// Register or immediate operand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operand {
    Reg(u8),
    Imm(i32),
}

/// Access size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Size {
    B,
    H,
    W,
    DW,
}

impl Size {
    pub fn bytes(self) -> i16 {
        match self {
            Size::B => 1,
            Size::H => 2,
            Size::W => 4,
            Size::DW => 8,
        }
    }
    pub fn code(self) -> u8 {
        match self {
            Size::B => BPF_B,
            Size::H => BPF_H,
            Size::W => BPF_W,
            Size::DW => BPF_DW,
        }
    }
}

/// An atomic operation (`imm` of `BPF_STX | BPF_ATOMIC`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AtomicOp {
    Add { fetch: bool },
    Or { fetch: bool },
    And { fetch: bool },
    Xor { fetch: bool },
    Xchg,
    Cmpxchg,
}

impl AtomicOp {
    pub fn imm(self) -> i32 {
        let f = |fetch: bool| if fetch { BPF_FETCH } else { 0 };
        match self {
            AtomicOp::Add { fetch } => BPF_ADD as i32 | f(fetch),
            AtomicOp::Or { fetch } => BPF_OR as i32 | f(fetch),
            AtomicOp::And { fetch } => BPF_AND as i32 | f(fetch),
            AtomicOp::Xor { fetch } => BPF_XOR as i32 | f(fetch),
            AtomicOp::Xchg => BPF_XCHG,
            AtomicOp::Cmpxchg => BPF_CMPXCHG,
        }
    }
    /// Registers the operation writes besides memory.
    pub fn writes(self, src: u8) -> Vec<u8> {
        match self {
            AtomicOp::Cmpxchg => vec![0],
            AtomicOp::Xchg => vec![src],
            AtomicOp::Add { fetch }
            | AtomicOp::Or { fetch }
            | AtomicOp::And { fetch }
            | AtomicOp::Xor { fetch } => {
                if fetch {
                    vec![src]
                } else {
                    vec![]
                }
            }
        }
    }
}

/// An access through a pointer held in a block's base register.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// `dst = *(size *)(base + off)`, sign-extending when `sx` (`BPF_MEMSX`).
    Load {
        size: Size,
        dst: u8,
        off: i16,
        sx: bool,
    },
    /// `*(size *)(base + off) = src`.
    Store { size: Size, off: i16, src: Operand },
    /// Atomic read-modify-write at `base + off` (size W or DW, aligned).
    Atomic {
        size: Size,
        op: AtomicOp,
        off: i16,
        src: u8,
    },
}

/// One generated construct. See the module doc for the invariant every item keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// ALU/ALU64 `op` (one of the `BPF_*` ALU op constants), with `off` for the v4 signed
    /// forms (`sdiv`/`smod`: 1; `movsx`: 8, 16, 32).
    Alu {
        is64: bool,
        op: u8,
        dst: u8,
        src: Operand,
        off: i16,
    },
    /// Byte swap: `BPF_ALU | BPF_END` (to_le/to_be) or `BPF_ALU64 | BPF_END` (bswap).
    End {
        class64: bool,
        to_be: bool,
        dst: u8,
        width: i32,
    },
    /// `lddw dst, imm`.
    Lddw { dst: u8, imm: u64 },
    /// Stack data area access (offset relative to `r10`, aligned to the size).
    Stack(Access),
    /// Raw memory access through r6 (raw programs only).
    Mem(Access),
    /// XDP context field load (`ingress_ifindex` at 12, `rx_queue_index` at 16).
    CtxLoad { dst: u8, field: i16 },
    /// `if !(cond) { body }`: a forward conditional jump over `body`.
    If {
        is32: bool,
        op: u8,
        dst: u8,
        src: Operand,
        body: Vec<Item>,
    },
    /// `LOOP_REG = count; do { body } while (--LOOP_REG != 0)`.
    Loop { count: i32, body: Vec<Item> },
    /// Packet block: bounds check `data + var + len <= data_end`, then accesses at
    /// offsets below `len` from `data + var` (var = `var_mask & var_reg` when `var_mask`
    /// is non-zero). Uses scratch registers `scratch` = (data, data_end, tmp), which it
    /// re-initialises with `reinit` afterwards. `checked = false` (mutation) drops the
    /// bounds check.
    Packet {
        scratch: [u8; 3],
        len: i16,
        var: Option<(u8, i32)>,
        accesses: Vec<Access>,
        pkt_len_to: Option<u8>,
        checked: bool,
        reinit: [i32; 3],
    },
    /// `r0 = map_lookup_elem(map, &key)`; if non-null, `accesses` on the value (base r0,
    /// or r1 = r0 + (var_reg & mask) when `var` is set). Clobbers r1-r5 and r0, which it
    /// re-initialises with `reinit` (r0..r5).
    MapLookup {
        map: usize,
        key: Operand,
        var: Option<(u8, i32)>,
        accesses: Vec<Access>,
        null_check: bool,
        reinit: [i32; 6],
    },
    /// `r0 = map_update_elem(map, &key, &value, flags)` with value = (v0, v1).
    /// r0 keeps the helper's result; r1-r5 are re-initialised.
    MapUpdate {
        map: usize,
        key: Operand,
        value: [Operand; 2],
        flags: i32,
        reinit: [i32; 5],
    },
    /// `r0 = map_delete_elem(map, &key)`.
    MapDelete {
        map: usize,
        key: Operand,
        reinit: [i32; 5],
    },
    /// An XDP helper on the context: `r0 = helper(r6, r2, r3, r4)` with r2 = `arg`, and
    /// (`bpf_xdp_load_bytes`/`store_bytes`) r3 = `r10 + buf`, r4 = `len`. r1-r5 are
    /// re-initialised after the call; r0 keeps the result.
    CtxHelper {
        helper: i32,
        arg: Operand,
        buf: i16,
        len: i32,
        reinit: [i32; 5],
    },
    /// `r0 = bpf_loop(nr, &callbacks[index], r10 + DATA_OFF, 0)`: the callback gets the
    /// caller's stack data area as its context. r1-r5 are re-initialised after the call.
    BpfLoop {
        nr: i32,
        index: usize,
        reinit: [i32; 5],
    },
    /// `r0 = subprog(r1, ..., r5)`: a bpf-to-bpf call of `Program::subprogs[index]`.
    /// r1-r5 are re-initialised after the call.
    Call { index: usize, reinit: [i32; 5] },
    /// `bpf_tail_call(ctx, &jmp, slot)`; on failure execution continues and r0-r5 are
    /// re-initialised.
    TailCall { slot: i32, reinit: [i32; 6] },
    /// `r0 = bpf_get_smp_processor_id()` (runs are pinned to CPU 0).
    CpuId { reinit: [i32; 5] },
    /// Raw instructions inserted by a mutation (may break the invariant on purpose).
    Raw(Vec<RawInsn>),
}

/// Program flavour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// XDP program with maps, packet and context; result in map `res`.
    Xdp,
    /// r1 = memory; result written to the first [`RESULT_LEN`] bytes of memory.
    Raw,
}

/// Helper ids used by [`Item::CtxHelper`].
pub mod helper {
    pub const XDP_ADJUST_HEAD: i32 = 44;
    pub const XDP_ADJUST_META: i32 = 54;
    pub const XDP_ADJUST_TAIL: i32 = 65;
    pub const XDP_GET_BUFF_LEN: i32 = 188;
    pub const XDP_LOAD_BYTES: i32 = 189;
    pub const XDP_STORE_BYTES: i32 = 190;
}

/// A bpf-to-bpf callee: its own registers r0, r6-r9 and stack data area are initialised
/// on entry, then `items` run (simple items only: no context, maps or calls), and it
/// returns r0. r1-r5 hold the caller's arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubProgram {
    /// Initial r0, r6, r7, r8, r9.
    pub init_regs: [i32; 5],
    pub init_stack: [i32; DATA_SLOTS],
    pub items: Vec<Item>,
}

/// A whole generated program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Program {
    pub target: Target,
    /// Callees of [`Item::Call`], appended after the main function.
    pub subprogs: Vec<SubProgram>,
    /// Callbacks of [`Item::BpfLoop`]: like callees, but r1 is the loop index, the
    /// context pointer (r2) is moved to r6 (so `Item::Mem` accesses reach the caller's
    /// stack data area, 64 bytes) and r2 is initialised instead; they return `r0 & 1`.
    pub callbacks: Vec<SubProgram>,
    /// Initial values of r0-r5, r7-r9 (in [`VALUE_REGS`] order).
    pub init_regs: [u64; 9],
    /// Initial stack data slots.
    pub init_stack: [u64; DATA_SLOTS],
    pub items: Vec<Item>,
}

fn ins(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> RawInsn {
    RawInsn::new(code, dst, src, off, imm)
}
fn mov64_imm(dst: u8, imm: i32) -> RawInsn {
    ins(BPF_ALU64 | BPF_MOV | BPF_K, dst, 0, 0, imm)
}
fn mov64_reg(dst: u8, src: u8) -> RawInsn {
    ins(BPF_ALU64 | BPF_MOV | BPF_X, dst, src, 0, 0)
}
fn add64_imm(dst: u8, imm: i32) -> RawInsn {
    ins(BPF_ALU64 | BPF_ADD | BPF_K, dst, 0, 0, imm)
}
fn lddw(dst: u8, imm: u64) -> [RawInsn; 2] {
    [
        ins(LDDW, dst, 0, 0, imm as u32 as i32),
        ins(0, 0, 0, 0, (imm >> 32) as u32 as i32),
    ]
}
fn ld_map(dst: u8, map: usize) -> [RawInsn; 2] {
    [
        ins(LDDW, dst, BPF_PSEUDO_MAP_IDX, 0, map as i32),
        ins(0, 0, 0, 0, 0),
    ]
}
fn ldx(size: Size, dst: u8, src: u8, off: i16, sx: bool) -> RawInsn {
    let mode = if sx { BPF_MEMSX } else { BPF_MEM };
    ins(BPF_LDX | mode | size.code(), dst, src, off, 0)
}
fn stx(size: Size, dst: u8, src: u8, off: i16) -> RawInsn {
    ins(BPF_STX | BPF_MEM | size.code(), dst, src, off, 0)
}
fn call(helper: i32) -> RawInsn {
    ins(BPF_JMP | BPF_CALL, 0, 0, 0, helper)
}
fn exit() -> RawInsn {
    ins(BPF_JMP | BPF_EXIT, 0, 0, 0, 0)
}

fn operand_code(src: Operand) -> (u8, u8, i32) {
    match src {
        Operand::Reg(r) => (BPF_X, r, 0),
        Operand::Imm(i) => (BPF_K, 0, i),
    }
}

fn render_access(out: &mut Vec<RawInsn>, base: u8, a: &Access) {
    match *a {
        Access::Load { size, dst, off, sx } => out.push(ldx(size, dst, base, off, sx)),
        Access::Store {
            size,
            off,
            src: Operand::Reg(r),
        } => out.push(stx(size, base, r, off)),
        Access::Store {
            size,
            off,
            src: Operand::Imm(i),
        } => out.push(ins(BPF_ST | BPF_MEM | size.code(), base, 0, off, i)),
        Access::Atomic { size, op, off, src } => out.push(ins(
            BPF_STX | BPF_ATOMIC | size.code(),
            base,
            src,
            off,
            op.imm(),
        )),
    }
}

/// Stores `key` (u32) at `r10 + KEY_OFF`.
fn render_key(out: &mut Vec<RawInsn>, key: Operand) {
    match key {
        Operand::Imm(k) => out.push(ins(BPF_ST | BPF_MEM | BPF_W, 10, 0, KEY_OFF, k)),
        Operand::Reg(r) => out.push(stx(Size::W, 10, r, KEY_OFF)),
    }
}

/// Rendering state: call sites to patch once the callees' positions are known.
struct Ctx {
    /// (position relative to the start of `out`'s block, callee index)
    calls: Vec<(usize, usize)>,
}

fn render_items(out: &mut Vec<RawInsn>, items: &[Item], cx: &mut Ctx) {
    for it in items {
        render_item(out, it, cx);
    }
}

/// Renders a nested block into its own buffer, then moves its call sites into `cx`
/// relative to `base` (where the block will sit in the parent).
fn render_block(items: &[Item], cx: &mut Ctx) -> (Vec<RawInsn>, Vec<(usize, usize)>) {
    let saved = std::mem::take(&mut cx.calls);
    let mut b = Vec::new();
    render_items(&mut b, items, cx);
    let inner = std::mem::replace(&mut cx.calls, saved);
    (b, inner)
}

fn splice(out: &mut Vec<RawInsn>, block: (Vec<RawInsn>, Vec<(usize, usize)>), cx: &mut Ctx) {
    let base = out.len();
    cx.calls
        .extend(block.1.into_iter().map(|(pos, i)| (pos + base, i)));
    out.extend(block.0);
}

fn render_item(out: &mut Vec<RawInsn>, it: &Item, cx: &mut Ctx) {
    match it {
        Item::Alu {
            is64,
            op,
            dst,
            src,
            off,
        } => {
            let class = if *is64 { BPF_ALU64 } else { BPF_ALU };
            if *op == BPF_NEG {
                out.push(ins(class | BPF_NEG, *dst, 0, 0, 0));
            } else {
                let (s, r, imm) = operand_code(*src);
                out.push(ins(class | op | s, *dst, r, *off, imm));
            }
        }
        Item::End {
            class64,
            to_be,
            dst,
            width,
        } => {
            let class = if *class64 { BPF_ALU64 } else { BPF_ALU };
            let s = if *to_be && !*class64 {
                BPF_TO_BE
            } else {
                BPF_TO_LE
            };
            out.push(ins(class | BPF_END | s, *dst, 0, 0, *width));
        }
        Item::Lddw { dst, imm } => out.extend(lddw(*dst, *imm)),
        Item::Stack(a) => render_access(out, 10, a),
        Item::Mem(a) => render_access(out, CTX_REG, a),
        Item::CtxLoad { dst, field } => out.push(ldx(Size::W, *dst, CTX_REG, *field, false)),
        Item::If {
            is32,
            op,
            dst,
            src,
            body,
        } => {
            let b = render_block(body, cx);
            let class = if *is32 { BPF_JMP32 } else { BPF_JMP };
            let (s, r, imm) = operand_code(*src);
            out.push(ins(class | op | s, *dst, r, b.0.len() as i16, imm));
            splice(out, b, cx);
        }
        Item::Loop { count, body } => {
            let b = render_block(body, cx);
            out.push(mov64_imm(LOOP_REG, *count));
            let n = b.0.len() as i16;
            splice(out, b, cx);
            out.push(add64_imm(LOOP_REG, -1));
            out.push(ins(BPF_JMP | BPF_JNE | BPF_K, LOOP_REG, 0, -(n + 2), 0));
        }
        Item::Packet {
            scratch,
            len,
            var,
            accesses,
            pkt_len_to,
            checked,
            reinit,
        } => {
            let [data, end, tmp] = *scratch;
            out.push(ldx(Size::W, data, CTX_REG, 0, false));
            out.push(ldx(Size::W, end, CTX_REG, 4, false));
            if let Some((reg, mask)) = var {
                out.push(mov64_reg(tmp, *reg));
                out.push(ins(BPF_ALU64 | BPF_AND | BPF_K, tmp, 0, 0, *mask));
                out.push(ins(BPF_ALU64 | BPF_ADD | BPF_X, data, tmp, 0, 0));
            }
            let mut body = Vec::new();
            for a in accesses {
                render_access(&mut body, data, a);
            }
            if let Some(d) = pkt_len_to {
                body.push(mov64_reg(*d, end));
                body.push(ins(BPF_ALU64 | BPF_SUB | BPF_X, *d, data, 0, 0));
            }
            if *checked {
                out.push(mov64_reg(tmp, data));
                out.push(add64_imm(tmp, *len as i32));
                out.push(ins(
                    BPF_JMP | BPF_JGT | BPF_X,
                    tmp,
                    end,
                    body.len() as i16,
                    0,
                ));
            }
            out.extend(body);
            for (r, v) in scratch.iter().zip(reinit) {
                out.push(mov64_imm(*r, *v));
            }
        }
        Item::MapLookup {
            map,
            key,
            var,
            accesses,
            null_check,
            reinit,
        } => {
            render_key(out, *key);
            out.push(mov64_reg(2, 10));
            out.push(add64_imm(2, KEY_OFF as i32));
            out.extend(ld_map(1, *map));
            out.push(call(1));
            let mut body = Vec::new();
            let base = if let Some((reg, mask)) = var {
                body.push(mov64_reg(1, 0));
                body.push(mov64_reg(2, *reg));
                body.push(ins(BPF_ALU64 | BPF_AND | BPF_K, 2, 0, 0, *mask));
                body.push(ins(BPF_ALU64 | BPF_ADD | BPF_X, 1, 2, 0, 0));
                1
            } else {
                0
            };
            for a in accesses {
                render_access(&mut body, base, a);
            }
            if *null_check {
                out.push(ins(BPF_JMP | BPF_JEQ | BPF_K, 0, 0, body.len() as i16, 0));
            }
            out.extend(body);
            for (r, v) in (0u8..6).zip(reinit) {
                out.push(mov64_imm(r, *v));
            }
        }
        Item::MapUpdate {
            map,
            key,
            value,
            flags,
            reinit,
        } => {
            render_key(out, *key);
            for (k, v) in value.iter().enumerate() {
                let off = VAL_OFF + 8 * k as i16;
                match v {
                    Operand::Reg(r) => out.push(stx(Size::DW, 10, *r, off)),
                    Operand::Imm(i) => out.push(ins(BPF_ST | BPF_MEM | BPF_DW, 10, 0, off, *i)),
                }
            }
            out.extend(ld_map(1, *map));
            out.push(mov64_reg(2, 10));
            out.push(add64_imm(2, KEY_OFF as i32));
            out.push(mov64_reg(3, 10));
            out.push(add64_imm(3, VAL_OFF as i32));
            out.push(mov64_imm(4, *flags));
            out.push(call(2));
            for (r, v) in (1u8..6).zip(reinit) {
                out.push(mov64_imm(r, *v));
            }
        }
        Item::MapDelete { map, key, reinit } => {
            render_key(out, *key);
            out.extend(ld_map(1, *map));
            out.push(mov64_reg(2, 10));
            out.push(add64_imm(2, KEY_OFF as i32));
            out.push(call(3));
            for (r, v) in (1u8..6).zip(reinit) {
                out.push(mov64_imm(r, *v));
            }
        }
        Item::CtxHelper {
            helper,
            arg,
            buf,
            len,
            reinit,
        } => {
            out.push(mov64_reg(1, CTX_REG));
            match arg {
                Operand::Reg(r) => out.push(mov64_reg(2, *r)),
                Operand::Imm(i) => out.push(mov64_imm(2, *i)),
            }
            if matches!(*helper, helper::XDP_LOAD_BYTES | helper::XDP_STORE_BYTES) {
                out.push(mov64_reg(3, 10));
                out.push(add64_imm(3, *buf as i32));
                out.push(mov64_imm(4, *len));
            }
            out.push(call(*helper));
            for (r, v) in (1u8..6).zip(reinit) {
                out.push(mov64_imm(r, *v));
            }
        }
        Item::Call { index, reinit } => {
            cx.calls.push((out.len(), *index));
            out.push(ins(BPF_JMP | BPF_CALL, 0, BPF_PSEUDO_CALL, 0, -1));
            for (r, v) in (1u8..6).zip(reinit) {
                out.push(mov64_imm(r, *v));
            }
        }
        Item::BpfLoop { nr, index, reinit } => {
            out.push(mov64_imm(1, *nr));
            cx.calls.push((out.len(), CALLBACK_BASE + *index));
            out.push(ins(LDDW, 2, BPF_PSEUDO_FUNC, 0, -1));
            out.push(ins(0, 0, 0, 0, 0));
            out.push(mov64_reg(3, 10));
            out.push(add64_imm(3, DATA_OFF as i32));
            out.push(mov64_imm(4, 0));
            out.push(call(181));
            for (r, v) in (1u8..6).zip(reinit) {
                out.push(mov64_imm(r, *v));
            }
        }
        Item::TailCall { slot, reinit } => {
            out.push(mov64_reg(1, CTX_REG));
            out.extend(ld_map(2, MAP_JMP));
            out.push(mov64_imm(3, *slot));
            out.push(call(12));
            for (r, v) in (0u8..6).zip(reinit) {
                out.push(mov64_imm(r, *v));
            }
        }
        Item::CpuId { reinit } => {
            out.push(call(8));
            for (r, v) in (1u8..6).zip(reinit) {
                out.push(mov64_imm(r, *v));
            }
        }
        Item::Raw(r) => out.extend(r.iter().copied()),
    }
}

/// Registers a callee initialises on entry (r1-r5 are its arguments).
pub const SUB_INIT_REGS: [u8; 5] = [0, 6, 7, 8, 9];
/// Registers a `bpf_loop` callback initialises on entry (after `r6 = r2`).
pub const CALLBACK_INIT_REGS: [u8; 5] = [0, 2, 7, 8, 9];
/// Call-site indices at or above this refer to callbacks.
const CALLBACK_BASE: usize = 1 << 20;

fn render_callback(out: &mut Vec<RawInsn>, sp: &SubProgram, cx: &mut Ctx) {
    out.push(mov64_reg(CTX_REG, 2));
    render_function(out, sp, &CALLBACK_INIT_REGS, cx);
    out.pop();
    out.push(ins(BPF_ALU64 | BPF_AND | BPF_K, 0, 0, 0, 1));
    out.push(exit());
}

fn render_subprog(out: &mut Vec<RawInsn>, sp: &SubProgram, cx: &mut Ctx) {
    render_function(out, sp, &SUB_INIT_REGS, cx);
}

fn render_function(out: &mut Vec<RawInsn>, sp: &SubProgram, init: &[u8; 5], cx: &mut Ctx) {
    for (k, v) in sp.init_stack.iter().enumerate() {
        out.push(ins(
            BPF_ST | BPF_MEM | BPF_DW,
            10,
            0,
            DATA_OFF + 8 * k as i16,
            *v,
        ));
    }
    for (r, v) in init.iter().zip(sp.init_regs) {
        out.push(mov64_imm(*r, v));
    }
    let b = render_block(&sp.items, cx);
    splice(out, b, cx);
    out.push(exit());
}

impl Program {
    /// Renders the program to instructions in the linked-stream convention (map
    /// references are `lddw` with `src = BPF_PSEUDO_MAP_IDX` and the map index).
    pub fn render(&self) -> Vec<RawInsn> {
        let mut out = vec![mov64_reg(CTX_REG, 1)];
        for (k, v) in self.init_stack.iter().enumerate() {
            out.extend(lddw(1, *v));
            out.push(stx(Size::DW, 10, 1, DATA_OFF + 8 * k as i16));
        }
        for (r, v) in VALUE_REGS.iter().zip(self.init_regs) {
            if v as i64 >= i32::MIN as i64 && v as i64 <= i32::MAX as i64 {
                out.push(mov64_imm(*r, v as i32));
            } else {
                out.extend(lddw(*r, v));
            }
        }
        let mut cx = Ctx { calls: Vec::new() };
        render_items(&mut out, &self.items, &mut cx);
        // Epilogue: save registers, then copy registers and data slots to the result.
        for (k, r) in VALUE_REGS.iter().enumerate() {
            out.push(stx(Size::DW, 10, *r, SAVE_OFF + 8 * k as i16));
        }
        let base = match self.target {
            Target::Xdp => {
                out.push(ins(BPF_ST | BPF_MEM | BPF_W, 10, 0, KEY_OFF, 0));
                out.push(mov64_reg(2, 10));
                out.push(add64_imm(2, KEY_OFF as i32));
                out.extend(ld_map(1, MAP_RES));
                out.push(call(1));
                let copies = (VALUE_REGS.len() + DATA_SLOTS) as i16 * 2;
                out.push(ins(BPF_JMP | BPF_JEQ | BPF_K, 0, 0, copies, 0));
                0
            }
            Target::Raw => CTX_REG,
        };
        for k in 0..VALUE_REGS.len() as i16 {
            out.push(ldx(Size::DW, 1, 10, SAVE_OFF + 8 * k, false));
            out.push(stx(Size::DW, base, 1, 8 * k));
        }
        for k in 0..DATA_SLOTS as i16 {
            out.push(ldx(Size::DW, 1, 10, DATA_OFF + 8 * k, false));
            out.push(stx(Size::DW, base, 1, 8 * (VALUE_REGS.len() as i16 + k)));
        }
        out.push(ldx(Size::DW, 0, 10, SAVE_OFF, false));
        out.push(exit());
        // Callees after the main function; then patch every call to its callee.
        // Only called callees are emitted (an uncalled one would be unreachable code).
        let calls = std::mem::take(&mut cx.calls);
        let mut starts = std::collections::HashMap::new();
        for &(_, index) in &calls {
            if let std::collections::hash_map::Entry::Vacant(e) = starts.entry(index) {
                e.insert(out.len());
                if index >= CALLBACK_BASE {
                    render_callback(&mut out, &self.callbacks[index - CALLBACK_BASE], &mut cx);
                } else {
                    render_subprog(&mut out, &self.subprogs[index], &mut cx);
                }
            }
        }
        for (pos, index) in calls {
            out[pos].imm = (starts[&index] as i64 - pos as i64 - 1) as i32;
        }
        out
    }

    /// Number of items, counting nested ones.
    pub fn item_count(&self) -> usize {
        fn count(items: &[Item]) -> usize {
            items
                .iter()
                .map(|i| match i {
                    Item::If { body, .. } | Item::Loop { body, .. } => 1 + count(body),
                    _ => 1,
                })
                .sum()
        }
        count(&self.items)
    }
}
