//! Mutations that make a generated program unsafe in one known way, for verifier tests:
//! the kernel must reject the result, with a log containing [`Mutation::expected`].
//!
//! Each mutation either breaks an existing top-level construct (drops a packet bounds
//! check or a map null check, moves an access out of bounds) or inserts a small faulty
//! one at the start of the program, so every mutation applies to every XDP program.

use crate::ir::*;
use bpfkit_isa::opcode::*;
use bpfkit_isa::RawInsn;

/// One way to make a program unsafe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mutation {
    /// Packet access without the `data_end` check.
    DropPacketCheck,
    /// Map value access without the null check after `bpf_map_lookup_elem`.
    DropNullCheck,
    /// Map value access past the value's end.
    MapValueOutOfBounds,
    /// Stack store below the 512-byte frame.
    StackOutOfBounds,
    /// Stack load at a misaligned offset (stack access is always strictly aligned).
    MisalignedStack,
    /// Division by an immediate zero.
    DivByZeroImm,
    /// Shift by an immediate not below the operand width.
    ShiftTooFar,
    /// Reading a caller-saved register after a helper call clobbered it.
    ReadClobberedReg,
    /// A loop whose counter never changes.
    InfiniteLoop,
    /// A call to a helper id the kernel does not have.
    UnknownHelper,
    /// A store into the XDP context (read-only).
    CtxWrite,
    /// A packet pointer used after `bpf_xdp_adjust_head` invalidated it.
    StalePacketPointer,
    /// A jump past the end of the program.
    JumpOutOfRange,
    /// An opcode the ISA does not define.
    UnknownOpcode,
}

impl Mutation {
    pub const ALL: [Mutation; 14] = [
        Mutation::DropPacketCheck,
        Mutation::DropNullCheck,
        Mutation::MapValueOutOfBounds,
        Mutation::StackOutOfBounds,
        Mutation::MisalignedStack,
        Mutation::DivByZeroImm,
        Mutation::ShiftTooFar,
        Mutation::ReadClobberedReg,
        Mutation::InfiniteLoop,
        Mutation::UnknownHelper,
        Mutation::CtxWrite,
        Mutation::StalePacketPointer,
        Mutation::JumpOutOfRange,
        Mutation::UnknownOpcode,
    ];

    /// A substring of the Linux verifier log for the rejection (checked against the
    /// running kernel by this crate's tests).
    pub fn expected(self) -> &'static str {
        match self {
            Mutation::DropPacketCheck => "invalid access to packet",
            Mutation::DropNullCheck => "invalid mem access 'map_value_or_null'",
            Mutation::MapValueOutOfBounds => "invalid access to map value",
            Mutation::StackOutOfBounds => "invalid write to stack",
            Mutation::MisalignedStack => "misaligned stack access",
            Mutation::DivByZeroImm => "div by zero",
            Mutation::ShiftTooFar => "invalid shift",
            Mutation::ReadClobberedReg => "!read_ok",
            Mutation::InfiniteLoop => "infinite loop detected",
            Mutation::UnknownHelper => "invalid func unknown#999999",
            Mutation::CtxWrite => "invalid bpf_context access",
            // For a privileged loader the stale pointer becomes an unknown scalar.
            Mutation::StalePacketPointer => "R7 invalid mem access 'scalar'",
            Mutation::JumpOutOfRange => "jump out of range",
            Mutation::UnknownOpcode => "unknown opcode e7",
        }
    }
}

/// Applies `f` to the first top-level item it accepts. Only top-level items: they are
/// always executed (a conditional skips only its own body), while a nested item may be
/// dead code the verifier never looks at.
fn find_map<T>(items: &mut [Item], f: &mut impl FnMut(&mut Item) -> Option<T>) -> Option<T> {
    items.iter_mut().find_map(f)
}

fn ins(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> RawInsn {
    RawInsn::new(code, dst, src, off, imm)
}

/// Applies `m` to an XDP program. The result is a program the kernel must reject.
pub fn apply(p: &Program, m: Mutation) -> Program {
    let mut p = p.clone();
    let insert = |p: &mut Program, it: Item| p.items.insert(0, it);
    match m {
        Mutation::DropPacketCheck => {
            let done = find_map(&mut p.items, &mut |it| match it {
                Item::Packet {
                    checked, accesses, ..
                } if !accesses.is_empty() => {
                    *checked = false;
                    Some(())
                }
                _ => None,
            });
            if done.is_none() {
                insert(
                    &mut p,
                    Item::Packet {
                        scratch: [1, 2, 3],
                        len: 8,
                        var: None,
                        accesses: vec![Access::Load {
                            size: Size::DW,
                            dst: 7,
                            off: 0,
                            sx: false,
                        }],
                        pkt_len_to: None,
                        checked: false,
                        reinit: [0; 3],
                    },
                );
            }
        }
        Mutation::DropNullCheck | Mutation::MapValueOutOfBounds => {
            let oob = m == Mutation::MapValueOutOfBounds;
            let done = find_map(&mut p.items, &mut |it| match it {
                // An ARRAY lookup with a constant in-range key is known non-null to the
                // kernel (Linux >= 6.13), so only HASH lookups lose their null check.
                Item::MapLookup {
                    map,
                    null_check,
                    accesses,
                    var,
                    ..
                } if !accesses.is_empty() && (oob || *map == MAP_HSH) => {
                    // The first access decides the message: make it a plain one.
                    *var = None;
                    if oob {
                        accesses[0] = Access::Store {
                            size: Size::DW,
                            off: MAP_VALUE_SIZE - 4,
                            src: Operand::Imm(1),
                        };
                    } else {
                        *null_check = false;
                        accesses[0] = Access::Load {
                            size: Size::W,
                            dst: 7,
                            off: 0,
                            sx: false,
                        };
                    }
                    Some(())
                }
                _ => None,
            });
            if done.is_none() {
                let off = if oob { MAP_VALUE_SIZE } else { 0 };
                insert(
                    &mut p,
                    Item::MapLookup {
                        map: MAP_HSH,
                        key: Operand::Imm(0),
                        var: None,
                        accesses: vec![Access::Load {
                            size: Size::W,
                            dst: 7,
                            off,
                            sx: false,
                        }],
                        null_check: oob,
                        reinit: [0; 6],
                    },
                );
            }
        }
        Mutation::StackOutOfBounds => insert(
            &mut p,
            Item::Stack(Access::Store {
                size: Size::DW,
                off: -520,
                src: Operand::Imm(1),
            }),
        ),
        Mutation::MisalignedStack => insert(
            &mut p,
            Item::Stack(Access::Load {
                size: Size::W,
                dst: 7,
                off: DATA_OFF + 2,
                sx: false,
            }),
        ),
        Mutation::DivByZeroImm => insert(
            &mut p,
            Item::Alu {
                is64: true,
                op: BPF_DIV,
                dst: 7,
                src: Operand::Imm(0),
                off: 0,
            },
        ),
        Mutation::ShiftTooFar => insert(
            &mut p,
            Item::Alu {
                is64: false,
                op: BPF_LSH,
                dst: 7,
                src: Operand::Imm(32),
                off: 0,
            },
        ),
        Mutation::ReadClobberedReg => insert(
            &mut p,
            Item::Raw(vec![
                ins(BPF_JMP | BPF_CALL, 0, 0, 0, 7), // bpf_get_prandom_u32
                ins(BPF_ALU64 | BPF_ADD | BPF_X, 7, 3, 0, 0),
            ]),
        ),
        Mutation::InfiniteLoop => insert(
            &mut p,
            Item::Raw(vec![
                ins(BPF_ALU64 | BPF_MOV | BPF_K, LOOP_REG, 0, 0, 1),
                ins(BPF_JMP | BPF_JNE | BPF_K, LOOP_REG, 0, -1, 0),
            ]),
        ),
        Mutation::UnknownHelper => insert(
            &mut p,
            Item::Raw(vec![ins(BPF_JMP | BPF_CALL, 0, 0, 0, 999_999)]),
        ),
        Mutation::CtxWrite => insert(
            &mut p,
            Item::Raw(vec![ins(BPF_ST | BPF_MEM | BPF_W, CTX_REG, 0, 0, 0)]),
        ),
        Mutation::StalePacketPointer => insert(
            &mut p,
            Item::Raw(vec![
                ins(BPF_LDX | BPF_MEM | BPF_W, 7, CTX_REG, 0, 0), // r7 = data
                ins(BPF_LDX | BPF_MEM | BPF_W, 3, CTX_REG, 4, 0), // r3 = data_end
                ins(BPF_ALU64 | BPF_MOV | BPF_X, 4, 7, 0, 0),
                ins(BPF_ALU64 | BPF_ADD | BPF_K, 4, 0, 0, 8),
                ins(BPF_JMP | BPF_JGT | BPF_X, 4, 3, 4, 0), // if data + 8 > data_end skip
                ins(BPF_ALU64 | BPF_MOV | BPF_X, 1, CTX_REG, 0, 0),
                ins(BPF_ALU64 | BPF_MOV | BPF_K, 2, 0, 0, 0),
                ins(
                    BPF_JMP | BPF_CALL,
                    0,
                    0,
                    0,
                    crate::ir::helper::XDP_ADJUST_HEAD,
                ),
                ins(BPF_LDX | BPF_MEM | BPF_B, 0, 7, 0, 0), // stale r7
            ]),
        ),
        Mutation::JumpOutOfRange => insert(
            &mut p,
            Item::Raw(vec![ins(BPF_JMP | BPF_JA, 0, 0, i16::MAX, 0)]),
        ),
        Mutation::UnknownOpcode => {
            insert(&mut p, Item::Raw(vec![ins(BPF_ALU64 | 0xe0, 7, 0, 0, 0)]))
        }
    }
    p
}

/// What the kernel's verifier does with a [`VerifierCase`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Accept,
    /// Rejected, with this substring in the verifier log.
    Reject(&'static str),
}

/// A program for verifier tests, with the kernel's verdict (checked against the
/// running kernel by `tests/mutations.rs` for the same generator).
#[derive(Debug, Clone)]
pub struct VerifierCase {
    /// `gen<i>` for an accepted program, `gen<i>-<mutation>` for a mutated one.
    pub name: String,
    /// One XDP program (maps as in [`crate::harness::linked_object`]).
    pub object: bpfkit_object::model::LinkedObject,
    pub mutation: Option<Mutation>,
    pub verdict: Verdict,
}

/// `n` generated XDP programs (deterministic for a `seed`), each followed by its
/// [`Mutation::ALL`] variants: `n * (1 + Mutation::ALL.len())` cases, accepted ones and
/// rejected ones with the kernel's message.
pub fn verifier_cases(n: usize, seed: u64) -> Vec<VerifierCase> {
    use crate::strategy::{program, Features};
    use proptest::strategy::{Strategy, ValueTree};
    use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::from_seed(RngAlgorithm::ChaCha, &bytes),
    );
    let strat = program(
        Target::Xdp,
        Features {
            max_items: 12,
            ..Features::xdp()
        },
    );
    let mut out = Vec::new();
    for i in 0..n {
        let p = strat.new_tree(&mut runner).expect("strategy").current();
        out.push(VerifierCase {
            name: format!("gen{i}"),
            object: crate::harness::linked_object(vec![p.render()]),
            mutation: None,
            verdict: Verdict::Accept,
        });
        for m in Mutation::ALL {
            out.push(VerifierCase {
                name: format!("gen{i}-{m:?}"),
                object: crate::harness::linked_object(vec![apply(&p, m).render()]),
                mutation: Some(m),
                verdict: Verdict::Reject(m.expected()),
            });
        }
    }
    out
}
