//! The ubpf/rbpf syntax is the one rbpf's own assembler reads: for random instructions of
//! the subset rbpf 0.4 knows (ALU without sdiv/smod/movsx, neg, be/le, lddw, ldabs/ldind,
//! ldx/st/stx, ja, conditional jumps incl. jmp32, helper call, exit), bpfkit's ubpf text
//! assembled by rbpf gives bpfkit's bytes. rbpf is used here only as a reference.

use bpfkit_asm::disasm::ubpf;
use bpfkit_isa::{AluOp, Endian, Insn, JmpCond, LdImmKind, Operand, Size};
use proptest::prelude::*;

fn reg() -> impl Strategy<Value = u8> {
    0u8..=10
}

fn operand() -> impl Strategy<Value = Operand> {
    prop_oneof![
        reg().prop_map(Operand::Reg),
        any::<i32>().prop_map(Operand::Imm)
    ]
}

fn rbpf_subset() -> impl Strategy<Value = Insn> {
    let ops: Vec<AluOp> = AluOp::ALL
        .iter()
        .copied()
        .filter(|o| !matches!(o, AluOp::SDiv | AluOp::SMod))
        .collect();
    let sizes = Size::ALL.to_vec();
    let abs_sizes = vec![Size::B, Size::H, Size::W];
    prop_oneof![
        (any::<bool>(), prop::sample::select(ops), reg(), operand())
            .prop_map(|(is64, op, dst, src)| Insn::Alu { is64, op, dst, src }),
        (any::<bool>(), reg()).prop_map(|(is64, dst)| Insn::Neg { is64, dst }),
        (
            any::<bool>(),
            prop::sample::select(vec![16u8, 32, 64]),
            reg()
        )
            .prop_map(|(be, bits, dst)| Insn::End {
                kind: if be { Endian::Be } else { Endian::Le },
                bits,
                dst
            }),
        (reg(), any::<u64>()).prop_map(|(dst, imm)| Insn::LdImm64 {
            dst,
            kind: LdImmKind::Imm,
            imm
        }),
        (prop::sample::select(abs_sizes.clone()), any::<i32>())
            .prop_map(|(size, imm)| Insn::LdAbs { size, imm }),
        (prop::sample::select(abs_sizes), reg(), any::<i32>())
            .prop_map(|(size, src, imm)| Insn::LdInd { size, src, imm }),
        (
            prop::sample::select(sizes.clone()),
            reg(),
            reg(),
            any::<i16>()
        )
            .prop_map(|(size, dst, src, off)| Insn::Ldx {
                size,
                dst,
                src,
                off
            }),
        (
            prop::sample::select(sizes.clone()),
            reg(),
            any::<i16>(),
            any::<i32>()
        )
            .prop_map(|(size, dst, off, imm)| Insn::St {
                size,
                dst,
                off,
                imm
            }),
        (prop::sample::select(sizes), reg(), reg(), any::<i16>()).prop_map(
            |(size, dst, src, off)| Insn::Stx {
                size,
                dst,
                src,
                off
            }
        ),
        any::<i16>().prop_map(|off| Insn::Ja { off }),
        (
            any::<bool>(),
            prop::sample::select(JmpCond::ALL.to_vec()),
            reg(),
            operand(),
            any::<i16>()
        )
            .prop_map(|(is32, cond, dst, src, off)| Insn::Jmp {
                is32,
                cond,
                dst,
                src,
                off
            }),
        any::<i32>().prop_map(|imm| Insn::Call { imm }),
        Just(Insn::Exit { off: 0 }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn rbpf_assembles_our_ubpf_text_to_our_bytes(i in rbpf_subset()) {
        let text = ubpf(&i);
        let theirs = rbpf::assembler::assemble(&text).map_err(|e| TestCaseError::fail(format!("rbpf on `{text}`: {e}")))?;
        let ours = bpfkit_isa::to_bytes(&i.encode());
        prop_assert_eq!(theirs, ours, "`{}`", text);
    }
}
