//! Property tests: for every valid encoding, decode → encode is the identity, and
//! disassemble → assemble gives the same bytes, in both syntaxes.

use bpfkit_asm::disasm::{llvm, llvm_alu32, ubpf};
use bpfkit_isa::{
    decode, decode_one, AluOp, AtomicOp, Endian, Insn, JmpCond, LdImmKind, Operand, RawInsn, Size,
};
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

fn size() -> impl Strategy<Value = Size> {
    prop::sample::select(Size::ALL.to_vec())
}

/// Every instruction form with arbitrary field values.
fn insn() -> impl Strategy<Value = Insn> {
    prop_oneof![
        (
            any::<bool>(),
            prop::sample::select(AluOp::ALL.to_vec()),
            reg(),
            operand()
        )
            .prop_map(|(is64, op, dst, src)| Insn::Alu { is64, op, dst, src }),
        (any::<bool>(), reg()).prop_map(|(is64, dst)| Insn::Neg { is64, dst }),
        (
            any::<bool>(),
            prop::sample::select(vec![8u8, 16, 32]),
            reg(),
            reg()
        )
            .prop_map(|(is64, bits, dst, src)| Insn::MovSx {
                is64: is64 || bits == 32,
                bits,
                dst,
                src
            }),
        (reg(), reg(), any::<bool>()).prop_map(|(dst, src, to1)| Insn::AddrSpaceCast {
            dst,
            src,
            dst_as: to1 as u16,
            src_as: !to1 as u16
        }),
        (
            prop::sample::select(vec![Endian::Le, Endian::Be, Endian::Swap]),
            prop::sample::select(vec![16u8, 32, 64]),
            reg()
        )
            .prop_map(|(kind, bits, dst)| Insn::End { kind, bits, dst }),
        (
            reg(),
            prop::sample::select(LdImmKind::ALL.to_vec()),
            any::<u64>()
        )
            .prop_map(|(dst, kind, imm)| Insn::LdImm64 {
                dst,
                kind,
                imm: if kind.high_must_be_zero() {
                    imm & 0xffff_ffff
                } else {
                    imm
                }
            }),
        (
            prop::sample::select(vec![Size::B, Size::H, Size::W]),
            any::<i32>()
        )
            .prop_map(|(size, imm)| Insn::LdAbs { size, imm }),
        (
            prop::sample::select(vec![Size::B, Size::H, Size::W]),
            reg(),
            any::<i32>()
        )
            .prop_map(|(size, src, imm)| Insn::LdInd { size, src, imm }),
        (size(), reg(), reg(), any::<i16>()).prop_map(|(size, dst, src, off)| Insn::Ldx {
            size,
            dst,
            src,
            off
        }),
        (
            prop::sample::select(vec![Size::B, Size::H, Size::W]),
            reg(),
            reg(),
            any::<i16>()
        )
            .prop_map(|(size, dst, src, off)| Insn::LdxSx {
                size,
                dst,
                src,
                off
            }),
        (size(), reg(), any::<i16>(), any::<i32>()).prop_map(|(size, dst, off, imm)| Insn::St {
            size,
            dst,
            off,
            imm
        }),
        (size(), reg(), reg(), any::<i16>()).prop_map(|(size, dst, src, off)| Insn::Stx {
            size,
            dst,
            src,
            off
        }),
        (
            size(),
            prop::sample::select(AtomicOp::ALL.to_vec()),
            reg(),
            reg(),
            any::<i16>()
        )
            .prop_map(|(size, op, dst, src, off)| {
                let size = if op.allows(size) { size } else { Size::W };
                Insn::Atomic {
                    size,
                    op,
                    dst,
                    src,
                    off,
                }
            }),
        any::<i16>().prop_map(|off| Insn::Ja { off }),
        any::<i32>().prop_map(|imm| Insn::Gotol { imm }),
        any::<i16>().prop_map(|off| Insn::MayGoto { off }),
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
        any::<i32>().prop_map(|imm| Insn::CallLocal { imm }),
        (any::<i32>(), any::<i16>()).prop_map(|(imm, off)| Insn::CallKfunc { imm, off }),
        reg().prop_map(|reg| Insn::Callx { reg }),
        any::<i16>().prop_map(|off| Insn::Exit { off }),
    ]
}

fn check(insn: &Insn) -> Result<(), TestCaseError> {
    let raw = insn.encode();
    let (back, n) = decode(&raw, 0).map_err(|e| TestCaseError::fail(format!("{insn:?}: {e}")))?;
    prop_assert_eq!(&back, insn);
    prop_assert_eq!(n, raw.len());
    for text in [llvm(insn), llvm_alu32(insn), ubpf(insn)] {
        let asm = bpfkit_asm::assemble(&text)
            .map_err(|e| TestCaseError::fail(format!("`{text}`: {e}")))?;
        prop_assert_eq!(&asm, &raw, "`{}`", text);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]

    #[test]
    fn every_form_round_trips(i in insn()) {
        check(&i)?;
    }

    /// Arbitrary slot pairs: decoding never panics, and whatever decodes round-trips
    /// through both syntaxes.
    #[test]
    fn arbitrary_slots(code in any::<u8>(), regs in any::<u8>(), off in any::<i16>(), imm in any::<i32>(),
                       hi in any::<[u8; 8]>(), small in any::<bool>()) {
        // Bias towards small field values, where most valid encodings are.
        let (off, imm) = if small { (off % 40, imm % 70) } else { (off, imm) };
        let raw = RawInsn::from_bytes({
            let mut b = RawInsn::new(code, 0, 0, off, imm).to_bytes();
            b[1] = regs;
            b
        });
        let hi = RawInsn::from_bytes(hi);
        if let Ok((insn, n)) = decode_one(&raw, Some(&hi)) {
            let enc = insn.encode();
            prop_assert_eq!(enc[0], raw);
            if n == 2 { prop_assert_eq!(enc[1], hi); }
            check(&insn)?;
        }
    }
}

/// The same properties over every opcode byte exhaustively, with a fixed set of field
/// values: every (opcode, field) combination that decodes round-trips through both syntaxes.
#[test]
fn every_opcode_with_typical_fields() {
    let mut decoded = 0;
    for code in 0..=255u8 {
        for (dst, src) in [(0u8, 0u8), (1, 2), (10, 0), (0, 1), (0, 2), (3, 4)] {
            for off in [0i16, 1, 8, 16, 32, -8, 0x7fff] {
                for imm in [
                    0i32, 1, 16, 32, 64, 0x100, 0x110, 0x41, 0xe1, 0xf1, -1, 0x10000,
                ] {
                    let raw = RawInsn::new(code, dst, src, off, imm);
                    let hi = RawInsn::new(0, 0, 0, 0, 0);
                    if let Ok((insn, _)) = decode_one(&raw, Some(&hi)) {
                        check(&insn).unwrap();
                        decoded += 1;
                    }
                }
            }
        }
    }
    assert!(decoded > 2000, "{decoded}");
}
