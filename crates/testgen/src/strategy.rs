//! proptest strategies for generated programs and the inputs they run on.
//!
//! Programs are generated as [`Item`] trees (see [`crate::ir`]); each strategy respects
//! the verifier's static rules (no division by a zero immediate, shift immediates below
//! the width, aligned stack and atomic accesses, bounds checks before packet access, null
//! checks before map values, loop counters the body does not touch), so that every
//! generated program is one the kernel accepts. Shrinking removes items and simplifies
//! operands.

use crate::ir::*;
use bpfkit_isa::opcode::*;
use proptest::prelude::*;
use proptest::sample::select;

/// Which instruction families to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Features {
    /// cpu v4: sdiv/smod, movsx, memsx, bswap.
    pub v4: bool,
    pub atomics: bool,
    pub jmp32: bool,
    pub loops: bool,
    /// XDP only: packet blocks, context loads, map helpers.
    pub packet: bool,
    pub ctx: bool,
    pub maps: bool,
    /// Raw only: loads/stores through r6 (memory).
    pub mem: bool,
    /// XDP only: `bpf_xdp_adjust_head/tail/meta`, `bpf_xdp_load_bytes/store_bytes`.
    pub xdp_helpers: bool,
    /// With `xdp_helpers`: `bpf_xdp_adjust_meta` too (some kernel builds refuse it in XDP
    /// programs; tests turn it off when the running kernel does).
    pub adjust_meta: bool,
    /// bpf-to-bpf calls of generated callees.
    pub calls: bool,
    /// XDP only: tail calls through the PROG_ARRAY (self, the second program, an empty
    /// slot), the PERCPU_ARRAY map and `bpf_get_smp_processor_id` (runs on CPU 0).
    pub tail_calls: bool,
    pub percpu: bool,
    /// XDP only: `bpf_loop` with generated callbacks writing the caller's stack.
    pub bpf_loop: bool,
    /// XDP only: programs loaded with `BPF_F_XDP_HAS_FRAGS` and packets beyond one page
    /// (fragments), with helper offsets and deltas reaching into them.
    pub frags: bool,
    /// Stay inside what rbpf 0.4 implements the kernel's way: no v4, no atomics, no
    /// 32-bit `mod` by register (rbpf keeps the upper half on `mod 0`), no negative
    /// immediates in unsigned 64-bit conditions (rbpf zero-extends them).
    pub rbpf_compat: bool,
    /// `bpf_map_update_elem` flags beyond `BPF_ANY`/`BPF_NOEXIST`/`BPF_EXIST`
    /// (`BPF_F_LOCK` on a map without a spin lock: `-EINVAL`).
    pub odd_update_flags: bool,
    /// Maximum number of top-level items.
    pub max_items: usize,
}

impl Features {
    /// Everything the kernel's XDP programs can do here.
    pub fn xdp() -> Self {
        Features {
            v4: true,
            atomics: true,
            jmp32: true,
            loops: true,
            packet: true,
            ctx: true,
            maps: true,
            mem: false,
            xdp_helpers: true,
            adjust_meta: true,
            calls: true,
            tail_calls: true,
            percpu: true,
            // Off by default: the kernel needs BTF func_info for callbacks
            // (BPF_PSEUDO_FUNC), which the loader does not load yet.
            bpf_loop: false,
            frags: true,
            rbpf_compat: false,
            odd_update_flags: true,
            max_items: 40,
        }
    }
    /// Pure ALU/jump/stack/memory programs that rbpf 0.4 runs like the kernel.
    pub fn rbpf() -> Self {
        Features {
            v4: false,
            atomics: false,
            jmp32: true,
            loops: true,
            packet: false,
            ctx: false,
            maps: false,
            mem: true,
            xdp_helpers: false,
            adjust_meta: false,
            calls: true,
            tail_calls: false,
            percpu: false,
            bpf_loop: false,
            frags: false,
            rbpf_compat: true,
            odd_update_flags: false,
            max_items: 40,
        }
    }
    /// Raw programs with every instruction family (for the interpreter alone, or a
    /// reference that has v4 and atomics).
    pub fn raw_full() -> Self {
        Features {
            v4: true,
            atomics: true,
            rbpf_compat: false,
            ..Features::rbpf()
        }
    }
}

/// Linear packet room of `BPF_PROG_TEST_RUN` for XDP with 4 KiB pages
/// (`PAGE_SIZE - XDP_PACKET_HEADROOM - sizeof(skb_shared_info)`); longer packets need
/// fragments.
pub const MAX_LINEAR: usize = 4096 - 256 - 320;

/// Size of the raw memory buffer.
pub const MEM_LEN: usize = 256;

/// 32-bit immediates biased to edge values.
pub fn imm32() -> BoxedStrategy<i32> {
    prop_oneof![
        3 => select(vec![0, 1, -1, 2, i32::MIN, i32::MAX, 31, 32, 63, 64, 0x7f, 0x80, 0xff, 0xffff, -0x8000, 0x8000]),
        3 => -70i32..70,
        4 => any::<i32>(),
    ]
    .boxed()
}

/// 64-bit values biased to edge values.
pub fn imm64() -> BoxedStrategy<u64> {
    prop_oneof![
        3 => select(vec![
            0u64,
            1,
            u64::MAX,
            i64::MIN as u64,
            i64::MAX as u64,
            u32::MAX as u64,
            0x8000_0000,
            0xffff_ffff_8000_0000,
            0x1_0000_0000,
            0x7fff_ffff,
            0xff,
            0x8000,
        ]),
        2 => (-70i64..70).prop_map(|v| v as u64),
        5 => any::<u64>(),
    ]
    .boxed()
}

fn regs_except(avoid: &[u8]) -> Vec<u8> {
    VALUE_REGS
        .iter()
        .copied()
        .filter(|r| !avoid.contains(r))
        .collect()
}

fn operand(srcs: Vec<u8>) -> BoxedStrategy<Operand> {
    prop_oneof![
        select(srcs).prop_map(Operand::Reg),
        imm32().prop_map(Operand::Imm)
    ]
    .boxed()
}

const ALU_OPS: [u8; 13] = [
    BPF_ADD, BPF_SUB, BPF_MUL, BPF_DIV, BPF_OR, BPF_AND, BPF_LSH, BPF_RSH, BPF_NEG, BPF_MOD,
    BPF_XOR, BPF_MOV, BPF_ARSH,
];

/// One ALU/ALU64 instruction writing one of `dsts`.
pub fn alu(dsts: Vec<u8>, f: Features) -> BoxedStrategy<Item> {
    (
        any::<bool>(),
        select(ALU_OPS.to_vec()),
        select(dsts),
        operand(VALUE_REGS.to_vec()),
        any::<bool>(),
        0usize..3,
    )
        .prop_map(move |(is64, op, dst, mut src, signed, w)| {
            let width = if is64 { 64 } else { 32 };
            let signed = signed && f.v4;
            let mut off = 0;
            match op {
                BPF_DIV | BPF_MOD => {
                    if src == Operand::Imm(0) {
                        src = Operand::Imm(-1);
                    }
                    if f.rbpf_compat && op == BPF_MOD && !is64 {
                        if let Operand::Reg(_) = src {
                            src = Operand::Imm(7);
                        }
                    }
                    if signed {
                        off = 1;
                    }
                }
                BPF_LSH | BPF_RSH | BPF_ARSH => {
                    if let Operand::Imm(i) = src {
                        src = Operand::Imm(i.rem_euclid(width));
                    }
                }
                BPF_NEG => src = Operand::Imm(0),
                BPF_MOV if signed && matches!(src, Operand::Reg(_)) => {
                    off = if is64 { [8, 16, 32][w] } else { [8, 16, 8][w] };
                }
                _ => {}
            }
            Item::Alu {
                is64,
                op,
                dst,
                src,
                off,
            }
        })
        .boxed()
}

fn end(dsts: Vec<u8>, f: Features) -> BoxedStrategy<Item> {
    (
        any::<bool>(),
        any::<bool>(),
        select(dsts),
        select(vec![16, 32, 64]),
    )
        .prop_map(move |(class64, to_be, dst, width)| Item::End {
            class64: class64 && f.v4,
            to_be,
            dst,
            width,
        })
        .boxed()
}

fn size() -> BoxedStrategy<Size> {
    select(vec![Size::B, Size::H, Size::W, Size::DW]).boxed()
}

/// A load/store/atomic on the stack data area; writes only `dsts`.
fn stack_access(dsts: Vec<u8>, f: Features) -> BoxedStrategy<Item> {
    let slot = 0..(DATA_SLOTS as i16 * 8);
    let load = (size(), select(dsts.clone()), slot.clone(), any::<bool>()).prop_map(
        move |(size, dst, o, sx)| {
            let off = DATA_OFF + o / size.bytes() * size.bytes();
            Item::Stack(Access::Load {
                size,
                dst,
                off,
                sx: sx && f.v4 && size != Size::DW,
            })
        },
    );
    let store = (size(), slot.clone(), operand(VALUE_REGS.to_vec())).prop_map(|(size, o, src)| {
        let off = DATA_OFF + o / size.bytes() * size.bytes();
        Item::Stack(Access::Store { size, off, src })
    });
    if f.atomics {
        let atomic =
            (any::<bool>(), atomic_op(true), slot, select(dsts)).prop_map(|(dw, op, o, src)| {
                let size = if dw { Size::DW } else { Size::W };
                let off = DATA_OFF + o / size.bytes() * size.bytes();
                Item::Stack(Access::Atomic { size, op, off, src })
            });
        prop_oneof![3 => load, 3 => store, 2 => atomic].boxed()
    } else {
        prop_oneof![load, store].boxed()
    }
}

fn atomic_op(cmpxchg: bool) -> BoxedStrategy<AtomicOp> {
    let mut ops = vec![AtomicOp::Xchg];
    for fetch in [false, true] {
        ops.extend([
            AtomicOp::Add { fetch },
            AtomicOp::Or { fetch },
            AtomicOp::And { fetch },
            AtomicOp::Xor { fetch },
        ]);
    }
    if cmpxchg {
        ops.push(AtomicOp::Cmpxchg);
    }
    select(ops).boxed()
}

/// Loads/stores through r6 into the raw memory buffer (unaligned allowed).
fn mem_access(dsts: Vec<u8>, f: Features) -> BoxedStrategy<Item> {
    let load = (size(), select(dsts), 0..MEM_LEN as i16, any::<bool>()).prop_map(
        move |(size, dst, o, sx)| {
            Item::Mem(Access::Load {
                size,
                dst,
                off: o.min(MEM_LEN as i16 - size.bytes()),
                sx: sx && f.v4 && size != Size::DW,
            })
        },
    );
    let store =
        (size(), 0..MEM_LEN as i16, operand(VALUE_REGS.to_vec())).prop_map(|(size, o, src)| {
            Item::Mem(Access::Store {
                size,
                off: o.min(MEM_LEN as i16 - size.bytes()),
                src,
            })
        });
    prop_oneof![load, store].boxed()
}

const JMP_OPS: [u8; 11] = [
    BPF_JEQ, BPF_JGT, BPF_JGE, BPF_JSET, BPF_JNE, BPF_JSGT, BPF_JSGE, BPF_JLT, BPF_JLE, BPF_JSLT,
    BPF_JSLE,
];

fn cond_if(body: BoxedStrategy<Vec<Item>>, f: Features) -> BoxedStrategy<Item> {
    (
        any::<bool>(),
        select(JMP_OPS.to_vec()),
        select(VALUE_REGS.to_vec()),
        operand(VALUE_REGS.to_vec()),
        body,
    )
        .prop_map(move |(is32, op, dst, mut src, body)| {
            let is32 = is32 && f.jmp32;
            if f.rbpf_compat
                && !is32
                && matches!(
                    op,
                    BPF_JEQ | BPF_JGT | BPF_JGE | BPF_JNE | BPF_JLT | BPF_JLE
                )
            {
                if let Operand::Imm(i) = src {
                    src = Operand::Imm(i & i32::MAX);
                }
            }
            Item::If {
                is32,
                op,
                dst,
                src,
                body,
            }
        })
        .boxed()
}

/// Items that touch only registers and the stack (plus memory for raw programs and
/// context loads for XDP), writing only `dsts`.
pub fn simple_item(dsts: Vec<u8>, f: Features) -> BoxedStrategy<Item> {
    let mut choices: Vec<(u32, BoxedStrategy<Item>)> = vec![
        (10, alu(dsts.clone(), f)),
        (2, end(dsts.clone(), f)),
        (
            1,
            (select(dsts.clone()), imm64())
                .prop_map(|(dst, imm)| Item::Lddw { dst, imm })
                .boxed(),
        ),
        (4, stack_access(dsts.clone(), f)),
    ];
    if f.mem {
        choices.push((3, mem_access(dsts.clone(), f)));
    }
    if f.ctx {
        choices.push((
            1,
            (select(dsts), select(vec![12i16, 16]))
                .prop_map(|(dst, field)| Item::CtxLoad { dst, field })
                .boxed(),
        ));
    }
    proptest::strategy::Union::new_weighted(choices).boxed()
}

/// Simple items and conditionals around them, nested up to `depth`.
fn branchy(dsts: Vec<u8>, f: Features, depth: u32) -> BoxedStrategy<Item> {
    let leaf = simple_item(dsts, f);
    leaf.prop_recursive(depth, 24, 4, move |inner| {
        prop_oneof![3 => inner.clone(), 1 => cond_if(prop::collection::vec(inner, 1..4).boxed(), f)]
    })
    .boxed()
}

fn loop_item(f: Features) -> BoxedStrategy<Item> {
    let dsts = regs_except(&[LOOP_REG]);
    (1i32..9, prop::collection::vec(branchy(dsts, f, 1), 1..5))
        .prop_map(|(count, body)| Item::Loop { count, body })
        .boxed()
}

fn reinit<const N: usize>() -> BoxedStrategy<[i32; N]> {
    prop::array::uniform::<_, N>(imm32()).boxed()
}

/// Packet block: bounds check then accesses.
fn packet_item(f: Features) -> BoxedStrategy<Item> {
    let scratch = Just(VALUE_REGS.to_vec())
        .prop_shuffle()
        .prop_map(|v| [v[0], v[1], v[2]]);
    (
        scratch,
        1i16..=64,
        any::<bool>(),
        0usize..9,
        select(vec![1, 3, 7, 15]),
        any::<bool>(),
        reinit::<3>(),
        any::<prop::sample::Index>(),
        prop::collection::vec(
            (
                any::<u8>(),
                size(),
                any::<prop::sample::Index>(),
                any::<prop::sample::Index>(),
                operand(VALUE_REGS.to_vec()),
                any::<bool>(),
            ),
            1..5,
        ),
    )
        .prop_map(
            move |(scratch, len, use_var, var_reg_i, mask, pkt_len, reinit, len_to_i, raw)| {
                let free: Vec<u8> = regs_except(&scratch);
                let var = if use_var {
                    Some((free[var_reg_i % free.len()], mask))
                } else {
                    None
                };
                let mut accesses = Vec::new();
                for (kind, size, off_i, dst_i, src, sx) in raw {
                    if size.bytes() > len {
                        continue;
                    }
                    let off = off_i.index((len - size.bytes() + 1) as usize) as i16;
                    if kind % 2 == 0 {
                        accesses.push(Access::Load {
                            size,
                            dst: free[dst_i.index(free.len())],
                            off,
                            sx: sx && f.v4 && size != Size::DW,
                        });
                    } else {
                        let src = match src {
                            Operand::Reg(r) if scratch.contains(&r) => Operand::Imm(r as i32),
                            s => s,
                        };
                        accesses.push(Access::Store { size, off, src });
                    }
                }
                let pkt_len_to = if pkt_len {
                    Some(free[len_to_i.index(free.len())])
                } else {
                    None
                };
                Item::Packet {
                    scratch,
                    len,
                    var,
                    accesses,
                    pkt_len_to,
                    checked: true,
                    reinit,
                }
            },
        )
        .boxed()
}

fn map_key() -> BoxedStrategy<Operand> {
    prop_oneof![3 => (0i32..=(MAP_ENTRIES as i32 + 1)).prop_map(Operand::Imm), 1 => select(VALUE_REGS.to_vec()).prop_map(Operand::Reg)].boxed()
}

fn map_lookup(f: Features) -> BoxedStrategy<Item> {
    let saved = CALLEE_SAVED.to_vec();
    let access = (
        0u8..3,
        size(),
        0i16..MAP_VALUE_SIZE,
        select(saved.clone()),
        prop_oneof![
            select(saved.clone()).prop_map(Operand::Reg),
            imm32().prop_map(Operand::Imm)
        ],
        any::<bool>(),
        atomic_op(false),
        any::<bool>(),
    );
    let maps = if f.percpu {
        vec![MAP_ARR, MAP_HSH, MAP_PCP]
    } else {
        vec![MAP_ARR, MAP_HSH]
    };
    (
        select(maps),
        map_key(),
        any::<bool>(),
        select(saved.clone()),
        select(vec![1, 3, 7]),
        prop::collection::vec(access, 1..5),
        reinit::<6>(),
    )
        .prop_map(move |(map, key, use_var, var_reg, mask, raw, reinit)| {
            let var = if use_var { Some((var_reg, mask)) } else { None };
            let room = MAP_VALUE_SIZE - if use_var { mask as i16 } else { 0 };
            let mut accesses = Vec::new();
            for (kind, size, off, dst, src, sx, op, dw) in raw {
                match kind {
                    0 | 1 if size.bytes() <= room => {
                        let off = off.min(room - size.bytes());
                        accesses.push(if kind == 0 {
                            Access::Load {
                                size,
                                dst,
                                off,
                                sx: sx && f.v4 && size != Size::DW,
                            }
                        } else {
                            Access::Store { size, off, src }
                        });
                    }
                    2 if f.atomics && !use_var => {
                        let size = if dw { Size::DW } else { Size::W };
                        let off = off / size.bytes() * size.bytes();
                        let src = match src {
                            Operand::Reg(r) => r,
                            Operand::Imm(_) => dst,
                        };
                        accesses.push(Access::Atomic { size, op, off, src });
                    }
                    _ => {}
                }
            }
            Item::MapLookup {
                map,
                key,
                var,
                accesses,
                null_check: true,
                reinit,
            }
        })
        .boxed()
}

fn map_update(f: Features) -> BoxedStrategy<Item> {
    let flags = if f.odd_update_flags {
        prop_oneof![8 => 0i32..3, 1 => Just(4), 1 => Just(8)].boxed()
    } else {
        (0i32..3).boxed()
    };
    let maps = if f.percpu {
        vec![MAP_ARR, MAP_HSH, MAP_PCP]
    } else {
        vec![MAP_ARR, MAP_HSH]
    };
    (
        select(maps),
        map_key(),
        [operand(VALUE_REGS.to_vec()), operand(VALUE_REGS.to_vec())],
        flags,
        reinit::<5>(),
    )
        .prop_map(|(map, key, value, flags, reinit)| Item::MapUpdate {
            map,
            key,
            value,
            flags,
            reinit,
        })
        .boxed()
}

fn map_delete(f: Features) -> BoxedStrategy<Item> {
    let maps = if f.percpu {
        vec![MAP_ARR, MAP_HSH, MAP_PCP]
    } else {
        vec![MAP_ARR, MAP_HSH]
    };
    (select(maps), map_key(), reinit::<5>())
        .prop_map(|(map, key, reinit)| Item::MapDelete { map, key, reinit })
        .boxed()
}

fn ctx_helper(f: Features) -> BoxedStrategy<Item> {
    use crate::ir::helper::*;
    let delta = prop_oneof![
        select(vec![
            0, 1, -1, 4, -4, 14, -14, 40, -40, 216, -216, 217, -217, 256, -256, 3520, -3520
        ]),
        -300i32..300,
        if f.frags {
            -9000i32..9000
        } else {
            -300i32..300
        },
    ];
    let mut adjusters = vec![XDP_ADJUST_HEAD, XDP_ADJUST_TAIL];
    if f.adjust_meta {
        adjusters.push(XDP_ADJUST_META);
    }
    if f.frags {
        adjusters.extend([XDP_ADJUST_TAIL, XDP_GET_BUFF_LEN]);
    }
    let adjust =
        (select(adjusters), delta, reinit::<5>()).prop_map(|(helper, d, reinit)| Item::CtxHelper {
            helper,
            arg: Operand::Imm(d),
            buf: 0,
            len: 0,
            reinit,
        });
    let far = if f.frags { 3400i32..12100 } else { 0i32..140 };
    let offset = prop_oneof![3 => (0i32..140).prop_map(Operand::Imm), 2 => far.prop_map(Operand::Imm), 1 => select(VALUE_REGS.to_vec()).prop_map(Operand::Reg), 1 => imm32().prop_map(Operand::Imm)];
    let bytes = (any::<bool>(), offset, 0i16..64, 1i32..=32, reinit::<5>()).prop_map(
        |(load, arg, start, len, reinit)| {
            let start = start.min(64 - len as i16);
            Item::CtxHelper {
                helper: if load {
                    XDP_LOAD_BYTES
                } else {
                    XDP_STORE_BYTES
                },
                arg,
                buf: DATA_OFF + start,
                len,
                reinit,
            }
        },
    );
    prop_oneof![adjust, bytes].boxed()
}

/// Callees: simple items on their own registers (no context, memory, maps or calls).
fn subprog(f: Features) -> BoxedStrategy<SubProgram> {
    let inner = Features {
        mem: false,
        ctx: false,
        ..f
    };
    (
        prop::array::uniform5(imm32()),
        prop::array::uniform8(imm32()),
        prop::collection::vec(branchy(VALUE_REGS.to_vec(), inner, 1), 1..8),
    )
        .prop_map(|(init_regs, init_stack, items)| SubProgram {
            init_regs,
            init_stack,
            items,
        })
        .boxed()
}

/// `bpf_loop` callbacks: simple items plus aligned accesses to the caller's stack data
/// area through r6.
fn callback(f: Features) -> BoxedStrategy<SubProgram> {
    let inner = Features {
        mem: false,
        ctx: false,
        ..f
    };
    let ctx_access = (
        any::<bool>(),
        size(),
        0i16..64,
        select(VALUE_REGS.to_vec()),
        operand(VALUE_REGS.to_vec()),
    )
        .prop_map(|(load, size, o, dst, src)| {
            let off = o / size.bytes() * size.bytes();
            Item::Mem(if load {
                Access::Load {
                    size,
                    dst,
                    off,
                    sx: false,
                }
            } else {
                Access::Store { size, off, src }
            })
        });
    let item = prop_oneof![3 => branchy(VALUE_REGS.to_vec(), inner, 1), 2 => ctx_access];
    (
        prop::array::uniform5(imm32()),
        prop::array::uniform8(imm32()),
        prop::collection::vec(item, 1..8),
    )
        .prop_map(|(init_regs, init_stack, items)| SubProgram {
            init_regs,
            init_stack,
            items,
        })
        .boxed()
}

/// Any top-level item for the features.
pub fn item(f: Features) -> BoxedStrategy<Item> {
    let all = VALUE_REGS.to_vec();
    let mut choices: Vec<(u32, BoxedStrategy<Item>)> = vec![(12, branchy(all, f, 2))];
    if f.loops {
        choices.push((1, loop_item(f)));
    }
    if f.packet {
        choices.push((3, packet_item(f)));
    }
    if f.maps {
        choices.push((3, map_lookup(f)));
        choices.push((2, map_update(f)));
        choices.push((1, map_delete(f)));
    }
    if f.xdp_helpers {
        choices.push((2, ctx_helper(f)));
    }
    if f.bpf_loop {
        let nr = prop_oneof![4 => 0i32..12, 1 => select(vec![-1, (1 << 23) + 1])];
        choices.push((
            1,
            (nr, 0usize..2, reinit::<5>())
                .prop_map(|(nr, index, reinit)| Item::BpfLoop { nr, index, reinit })
                .boxed(),
        ));
    }
    if f.tail_calls {
        choices.push((
            1,
            (0i32..3, reinit::<6>())
                .prop_map(|(slot, reinit)| Item::TailCall { slot, reinit })
                .boxed(),
        ));
    }
    if f.percpu {
        choices.push((
            1,
            reinit::<5>()
                .prop_map(|reinit| Item::CpuId { reinit })
                .boxed(),
        ));
    }
    if f.calls {
        choices.push((
            2,
            (0usize..2, reinit::<5>())
                .prop_map(|(index, reinit)| Item::Call { index, reinit })
                .boxed(),
        ));
    }
    let top = proptest::strategy::Union::new_weighted(choices).boxed();
    // Blocks may also sit under a conditional.
    prop_oneof![6 => top.clone(), 1 => cond_if(prop::collection::vec(top, 1..3).boxed(), f)].boxed()
}

/// A whole program.
pub fn program(target: Target, f: Features) -> BoxedStrategy<Program> {
    (
        prop::array::uniform9(imm64()),
        prop::array::uniform8(imm64()),
        prop::collection::vec(item(f), 1..=f.max_items.max(1)),
        prop::collection::vec(subprog(f), 2),
        prop::collection::vec(callback(f), 2),
    )
        .prop_map(
            move |(init_regs, init_stack, items, subprogs, callbacks)| Program {
                target,
                subprogs,
                callbacks,
                init_regs,
                init_stack,
                items,
            },
        )
        .boxed()
}

/// An XDP test case: programs, packet, and the initial map contents.
#[derive(Debug, Clone)]
pub struct XdpCase {
    /// The program run (index 0), then the tail-call target in PROG_ARRAY slot 1.
    pub programs: Vec<Program>,
    /// Load the programs with `BPF_F_XDP_HAS_FRAGS` (always when the packet is longer
    /// than one page's linear room, 3520 bytes).
    pub frags: bool,
    pub packet: Vec<u8>,
    /// (map index, key, value) written with `BPF_ANY` before the run (per-CPU values:
    /// one 16-byte value per CPU).
    pub map_init: Vec<(usize, Vec<u8>, Vec<u8>)>,
}

/// XDP cases; `ncpus` is the number of possible CPUs (per-CPU map values).
pub fn xdp_case(f: Features, ncpus: usize) -> BoxedStrategy<XdpCase> {
    let arr = prop::collection::vec((0u32..MAP_ENTRIES, any::<[u8; 16]>()), 0..4);
    let hsh = prop::collection::vec(
        (0u32..MAP_ENTRIES + 2, any::<[u8; 16]>()),
        0..=MAP_ENTRIES as usize,
    );
    let pcp = prop::collection::vec(
        (
            0u32..MAP_ENTRIES,
            prop::collection::vec(any::<u8>(), 16 * ncpus),
        ),
        0..3,
    );
    let nprogs = if f.tail_calls { 2 } else { 1 };
    let packet = if f.frags {
        prop_oneof![
            4 => prop::collection::vec(any::<u8>(), 14..=128),
            1 => prop::collection::vec(any::<u8>(), 3400..=12000),
        ]
        .boxed()
    } else {
        prop::collection::vec(any::<u8>(), 14..=128).boxed()
    };
    (
        prop::collection::vec(program(Target::Xdp, f), nprogs),
        packet,
        arr,
        hsh,
        pcp,
        any::<bool>(),
    )
        .prop_map(move |(programs, packet, arr, hsh, pcp, frags)| {
            let mut map_init = Vec::new();
            for (k, v) in arr {
                map_init.push((MAP_ARR, k.to_ne_bytes().to_vec(), v.to_vec()));
            }
            for (k, v) in hsh {
                map_init.push((MAP_HSH, k.to_ne_bytes().to_vec(), v.to_vec()));
            }
            if f.percpu {
                for (k, v) in pcp {
                    map_init.push((MAP_PCP, k.to_ne_bytes().to_vec(), v));
                }
            }
            let frags = f.frags && (frags || packet.len() > MAX_LINEAR);
            XdpCase {
                programs,
                frags,
                packet,
                map_init,
            }
        })
        .boxed()
}

/// A raw test case: program and the initial memory (r1).
#[derive(Debug, Clone)]
pub struct RawCase {
    pub program: Program,
    pub mem: Vec<u8>,
}

pub fn raw_case(f: Features) -> BoxedStrategy<RawCase> {
    (
        program(Target::Raw, f),
        prop::collection::vec(any::<u8>(), MEM_LEN),
    )
        .prop_map(|(program, mem)| RawCase { program, mem })
        .boxed()
}
