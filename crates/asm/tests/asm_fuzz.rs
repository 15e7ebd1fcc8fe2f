//! The assembler on arbitrary text: never panics; whatever it accepts is canonical
//! (disassembling and assembling again gives the same bytes).

use bpfkit_asm::disasm::{llvm, ubpf};
use proptest::prelude::*;

/// Token soup from both syntaxes, so that many lines get deep into the parser.
fn token() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "r0",
            "r1",
            "w2",
            "r10",
            "r11",
            "%r3",
            "%r99",
            "if",
            "goto",
            "gotol",
            "may_goto",
            "call",
            "callx",
            "local",
            "kfunc",
            "exit",
            "off",
            "lock",
            "fetch",
            "ll",
            "skb",
            "ld_pseudo",
            "lddw",
            "mov",
            "mov32",
            "add",
            "sdiv32",
            "neg",
            "be16",
            "le64",
            "bswap32",
            "swap16",
            "ldxw",
            "ldxsb",
            "stxdw",
            "stw",
            "ldabsh",
            "ldindb",
            "jeq",
            "jne32",
            "ja",
            "ja32",
            "movsx1632",
            "xchg",
            "cmpxchg32",
            "ldacqb",
            "strelw",
            "u8",
            "u32",
            "u64",
            "s16",
            "atomic_fetch_or",
            "xchg_64",
            "cmpxchg32_32",
            "load_acquire",
            "store_release",
            "addr_space_cast",
            "label",
            "exit:",
            "label:",
            "=",
            "+=",
            "-=",
            "s>>=",
            "<<=",
            "%=",
            "s/=",
            "==",
            "!=",
            "s<",
            "<=",
            ">",
            "&",
            "*",
            "(",
            ")",
            "[",
            "]",
            ",",
            ":",
            "+",
            "-",
            "0",
            "1",
            "0x10",
            "-1",
            "0xffffffff",
            "0x7fff",
            "32768",
            "0x",
            "99999999999999999999",
            "18446744073709551615",
            "#",
            ";",
            "//",
            "<",
            "<x+0x8>",
            "\t",
            "é",
            "@",
        ])
        .prop_map(str::to_string),
        "[a-z0-9%_+\\-\\[\\]()*=,:<>&|^ ]{1,6}",
    ]
}

fn line() -> impl Strategy<Value = String> {
    prop::collection::vec(token(), 0..9).prop_map(|t| t.join(" "))
}

/// A valid instruction text (either syntax) from a random slot with small fields.
fn valid_text() -> impl Strategy<Value = String> {
    (
        any::<u8>(),
        0u8..12,
        0u8..12,
        -3i16..40,
        -3i32..70,
        any::<bool>(),
    )
        .prop_map(|(code, d, s, off, imm, u)| {
            let raw = bpfkit_isa::RawInsn::new(code, d, s, off, imm);
            match bpfkit_isa::decode_one(&raw, Some(&bpfkit_isa::RawInsn::default())) {
                Ok((i, _)) if u => ubpf(&i),
                Ok((i, _)) => llvm(&i),
                Err(_) => "exit".to_string(),
            }
        })
}

/// A valid text with one token deleted, replaced, or a token inserted.
fn mutated_line() -> impl Strategy<Value = String> {
    (
        valid_text(),
        0usize..3,
        any::<prop::sample::Index>(),
        token(),
    )
        .prop_map(|(t, how, at, tok)| {
            let mut words: Vec<String> = t.split(' ').map(str::to_string).collect();
            let i = at.index(words.len());
            match how {
                0 if words.len() > 1 => {
                    words.remove(i);
                }
                1 => words[i] = tok,
                _ => words.insert(i, tok),
            }
            words.join(" ")
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(20000))]

    #[test]
    fn mutated_instructions_never_panic_and_accepted_text_is_canonical(
        lines in prop::collection::vec(prop_oneof![mutated_line(), valid_text()], 1..5)
    ) {
        let text = lines.join("\n");
        if let Ok(insns) = bpfkit_asm::assemble_insns(&text) {
            let bytes = bpfkit_isa::encode_all(&insns);
            for f in [llvm, ubpf] {
                let again: String = insns.iter().map(|i| f(i) + "\n").collect();
                let back = bpfkit_asm::assemble(&again)
                    .map_err(|e| TestCaseError::fail(format!("`{text}` -> `{again}`: {e}")))?;
                prop_assert_eq!(&back, &bytes, "`{}` -> `{}`", text, again);
            }
        }
    }

    #[test]
    fn arbitrary_text_never_panics_and_accepted_text_is_canonical(lines in prop::collection::vec(line(), 1..4)) {
        let text = lines.join("\n");
        if let Ok(insns) = bpfkit_asm::assemble_insns(&text) {
            let bytes = bpfkit_isa::encode_all(&insns);
            for f in [llvm, ubpf] {
                let again: String = insns.iter().map(|i| f(i) + "\n").collect();
                let back = bpfkit_asm::assemble(&again)
                    .map_err(|e| TestCaseError::fail(format!("`{text}` -> `{again}`: {e}")))?;
                prop_assert_eq!(&back, &bytes, "`{}` -> `{}`", text, again);
            }
        }
    }
}

#[test]
fn huge_numbers_are_errors_not_wraps() {
    for t in [
        "ja 0xffffffffffffffff",
        "ja 18446744073709551615",
        "gotol 0x100000000",
        "call local 0x80000000",
        "r0 = 0x1ffffffffffffffff ll",
        "mov r0, 0x100000000",
        "ldxw r0, [r1+32768]",
        "jne r1, 2, +32768",
    ] {
        let e = bpfkit_asm::assemble(t).expect_err(t);
        assert!(
            e.message.contains("out of range") || e.message.contains("invalid number"),
            "{t}: {e}"
        );
    }
}
