//! Asks the running kernel: for a deterministic sample of encodings (every opcode byte with
//! many field combinations), does the verifier reject the encoding itself exactly when
//! `bpfkit_isa::decode` does? Each encoding is loaded as an XDP program
//! `r0..r9 = 0; INSN; r0 = 0; exit` (or `r0 = 0; INSN` for exit-like opcodes) and the
//! verifier log's verdict is classified:
//! * accepted → decode must succeed;
//! * rejected for the encoding (unknown opcode, reserved fields, invalid register, ...)
//!   → decode must fail;
//! * rejected for a program-level reason (division by zero, bad helper, memory access,
//!   jump range, ...) → inconclusive for the decoder, counted but not judged.
//!
//! The one documented exception is `callx` (RFC 9669 and LLVM know it, Linux does not).
//! Skips loudly when no kernel with CAP_BPF is available.

use bpfkit_isa::{decode, Insn, RawInsn};
use bpfkit_loader::prog::{Program, ProgramSpec};

const XDP: u32 = 6;

/// Messages of kernel/bpf/verifier.c that judge the encoding, not the program.
const ENCODING_ERRORS: &[&str] = &[
    "unknown opcode",
    "uses reserved fields",
    "invalid BPF_LD_IMM insn",
    "invalid bpf_ld_imm64 insn",
    "unrecognized bpf_ld_imm64 insn",
    "invalid atomic operand size",
    "invalid atomic opcode",
    "invalid may_goto imm",
    "can only convert between address space",
    "unknown insn class",
    "invalid BPF_ALU opcode",
    "invalid BPF_LD mode",
];

/// `R11 is invalid`
fn is_invalid_register(msg: &str) -> bool {
    msg.strip_suffix(" is invalid")
        .and_then(|m| m.strip_prefix('R'))
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

enum Verdict {
    Accepted,
    Encoding(String),
    Program,
}

fn load(insns: &[RawInsn]) -> Verdict {
    let spec = ProgramSpec::new("isa_probe", XDP, insns);
    match Program::load(&spec) {
        Ok(_) => Verdict::Accepted,
        Err(e) => {
            let log = e.verifier_log().unwrap_or("").to_string();
            let msg = log
                .lines()
                .rev()
                .find(|l| !l.starts_with("processed ") && !l.trim().is_empty())
                .unwrap_or("")
                .to_string();
            let msg = if msg.is_empty() { e.to_string() } else { msg };
            if ENCODING_ERRORS.iter().any(|p| msg.contains(p)) || is_invalid_register(&msg) {
                Verdict::Encoding(msg)
            } else {
                Verdict::Program
            }
        }
    }
}

fn candidates() -> Vec<[RawInsn; 2]> {
    let dsts = [0u8, 1, 2, 10, 11];
    let srcs = [0u8, 1, 2, 3, 4, 5, 6, 7, 11];
    let offs = [0i16, 1, 8, 16, 32, -8, 3];
    let imms = [
        0i32, 1, 16, 32, 64, 8, 0x100, 0x110, 0x41, 0xe1, 0xf1, 0x10000, 2,
    ];
    let his = [0i32, 0, 0, 7];
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = |n: usize| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x % n as u64) as usize
    };
    let mut v = Vec::new();
    for code in 0..=255u8 {
        v.push([RawInsn::new(code, 0, 0, 0, 0), RawInsn::default()]);
        // Typical fields (mostly valid encodings) ...
        for src in [0u8, 3] {
            for off in [0i16, 1] {
                for imm in [0i32, 1, 16, 8] {
                    v.push([RawInsn::new(code, 2, src, off, imm), RawInsn::default()]);
                }
            }
        }
        // ... and random ones (mostly invalid).
        for _ in 0..24 {
            let lo = RawInsn::new(
                code,
                dsts[next(dsts.len())],
                srcs[next(srcs.len())],
                offs[next(offs.len())],
                imms[next(imms.len())],
            );
            let hi = RawInsn::new(0, 0, 0, 0, his[next(his.len())]);
            v.push([lo, hi]);
        }
    }
    v.sort_by_key(|c| (c[0].to_bytes(), c[1].to_bytes()));
    v.dedup();
    v
}

#[test]
fn decoder_agrees_with_the_kernel_on_encodings() {
    if !bpfkit_loader::probe::kernel_or_skip("decoder_agrees_with_the_kernel_on_encodings") {
        return;
    }
    let (mut agree_ok, mut agree_bad, mut inconclusive) = (0, 0, 0);
    let mut disagreements = Vec::new();
    for [lo, hi] in candidates() {
        let pair = [lo, hi];
        let decoded = decode(&pair, 0);
        let is_lddw = lo.code == 0x18;
        let exit_like = lo.code & 0x07 >= 5 && lo.code & 0x07 <= 6 && lo.code & 0xf0 == 0x90;
        let mut prog: Vec<RawInsn> = Vec::new();
        if exit_like {
            prog.push(RawInsn::new(0xb7, 0, 0, 0, 0));
            prog.push(lo);
        } else {
            for r in 0..=9 {
                if r != 1 {
                    prog.push(RawInsn::new(0xb7, r, 0, 0, 0));
                }
            }
            prog.push(lo);
            if is_lddw {
                prog.push(hi);
            }
            prog.push(RawInsn::new(0xb7, 0, 0, 0, 0));
            prog.push(RawInsn::new(0x95, 0, 0, 0, 0));
        }
        let verdict = load(&prog);
        let what = format!(
            "{:02x?} {:02x?}",
            lo.to_bytes(),
            if is_lddw { hi.to_bytes() } else { [0; 8] }
        );
        match (&decoded, verdict) {
            (Ok((Insn::Callx { .. }, _)), Verdict::Encoding(m)) if m.contains("unknown opcode") => {
                agree_bad += 1; // documented: callx is decoded, the kernel does not know it
            }
            (Ok(_), Verdict::Accepted) => agree_ok += 1,
            (Err(_), Verdict::Encoding(_)) => agree_bad += 1,
            (Ok((i, _)), Verdict::Encoding(m)) => disagreements.push(format!(
                "{what}: bpfkit decodes {i:?}, the kernel says `{m}`"
            )),
            (Err(e), Verdict::Accepted) => {
                disagreements.push(format!("{what}: the kernel accepts it, bpfkit says `{e}`"))
            }
            (_, Verdict::Program) => inconclusive += 1,
        }
    }
    eprintln!(
        "kernel agreement: {agree_ok} accepted by both, {agree_bad} rejected by both as encodings, \
         {inconclusive} rejected by the kernel for program-level reasons"
    );
    assert!(
        disagreements.is_empty(),
        "{} disagreements:\n{}",
        disagreements.len(),
        disagreements.join("\n")
    );
    assert!(
        agree_ok > 200 && agree_bad > 1000,
        "too few conclusive samples"
    );
}
