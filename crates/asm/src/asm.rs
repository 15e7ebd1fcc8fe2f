//! The assembler: both syntaxes, chosen per line.
//!
//! * LLVM syntax, as `llvm-objdump -d` prints it: `r2 = *(u32 *)(r1 + 0x4)`,
//!   `if r2 >= r3 goto +0x1`, `lock *(u64 *)(r0 + 0x0) += r1`, `r1 = 0x0 ll`, `call 0x1`.
//! * ubpf/rbpf mnemonic syntax: `ldxw r2, [r1+4]`, `jge r2, r3, +1`, with `r1` or `%r1`.
//!
//! Plus the bpfkit forms for what LLVM prints ambiguously (`call local`, `call kfunc`,
//! `ld_pseudo` with a high word, `skb[rX + imm]`, `exit off N`), see `docs/disasm.md`.
//! Labels (`name:`) work as jump and call targets; `INDEX:` prefixes and
//! `HEX <name>:` headers of a disassembly listing are accepted, so a listing assembles back.

use crate::lexer::{lex_line, strip_comment, Tok, Token};
use bpfkit_isa::{AluOp, AtomicOp, Endian, Insn, JmpCond, LdImmKind, Operand, RawInsn, Size};
use std::collections::HashMap;

/// An assembler error: 1-based line and column, the offending text and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column {column}: {message} (at `{text}`)")]
pub struct AsmError {
    pub line: usize,
    pub column: usize,
    pub text: String,
    pub message: String,
}

/// Assembles text into raw instruction slots.
pub fn assemble(text: &str) -> Result<Vec<RawInsn>, AsmError> {
    Ok(bpfkit_isa::encode_all(&assemble_insns(text)?))
}

/// Assembles text into decoded instructions (each valid per [`Insn::validate`]).
pub fn assemble_insns(text: &str) -> Result<Vec<Insn>, AsmError> {
    let mut st = State::default();
    for (n, line) in text.lines().enumerate() {
        st.line(n + 1, line)?;
    }
    st.finish()
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum FixKind {
    Jump,
    Gotol,
    Call,
}

struct Fixup {
    item: usize,
    slot: usize,
    label: String,
    kind: FixKind,
    line: usize,
    col: usize,
}

#[derive(Default)]
struct State {
    insns: Vec<Insn>,
    slot: usize,
    labels: HashMap<String, usize>,
    first_exit: Option<usize>,
    fixups: Vec<Fixup>,
}

/// A jump or call target: a relative offset or a label.
enum Target {
    Rel(i128),
    Label(String, usize),
}

struct P<'a, 'b> {
    toks: &'b [Token<'a>],
    pos: usize,
    line: usize,
    line_len: usize,
}

type R<T> = Result<T, AsmError>;

fn size_from_type(t: &str) -> Option<(Size, bool)> {
    Some(match t {
        "u8" => (Size::B, false),
        "u16" => (Size::H, false),
        "u32" => (Size::W, false),
        "u64" => (Size::DW, false),
        "s8" => (Size::B, true),
        "s16" => (Size::H, true),
        "s32" => (Size::W, true),
        _ => return None,
    })
}

fn size_suffix(s: &str) -> Option<Size> {
    Some(match s {
        "b" => Size::B,
        "h" => Size::H,
        "w" => Size::W,
        "dw" => Size::DW,
        _ => return None,
    })
}

fn alu_op_name(s: &str) -> Option<AluOp> {
    Some(match s {
        "add" => AluOp::Add,
        "sub" => AluOp::Sub,
        "mul" => AluOp::Mul,
        "div" => AluOp::Div,
        "sdiv" => AluOp::SDiv,
        "or" => AluOp::Or,
        "and" => AluOp::And,
        "lsh" => AluOp::Lsh,
        "rsh" => AluOp::Rsh,
        "mod" => AluOp::Mod,
        "smod" => AluOp::SMod,
        "xor" => AluOp::Xor,
        "mov" => AluOp::Mov,
        "arsh" => AluOp::Arsh,
        _ => return None,
    })
}

fn jmp_cond_name(s: &str) -> Option<JmpCond> {
    Some(match s {
        "jeq" => JmpCond::Eq,
        "jgt" => JmpCond::Gt,
        "jge" => JmpCond::Ge,
        "jset" => JmpCond::Set,
        "jne" => JmpCond::Ne,
        "jsgt" => JmpCond::Sgt,
        "jsge" => JmpCond::Sge,
        "jlt" => JmpCond::Lt,
        "jle" => JmpCond::Le,
        "jslt" => JmpCond::Slt,
        "jsle" => JmpCond::Sle,
        _ => return None,
    })
}

fn parse_number(text: &str) -> Option<u64> {
    let t = text.replace('_', "");
    if let Some(h) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        u64::from_str_radix(h, 16).ok()
    } else {
        t.parse::<u64>().ok()
    }
}

impl<'a, 'b> P<'a, 'b> {
    fn err_at(&self, tok: Option<&Token<'a>>, msg: impl Into<String>) -> AsmError {
        match tok {
            Some(t) => AsmError {
                line: self.line,
                column: t.col,
                text: t.text.to_string(),
                message: msg.into(),
            },
            None => AsmError {
                line: self.line,
                column: self.line_len + 1,
                text: "end of line".to_string(),
                message: msg.into(),
            },
        }
    }
    fn err(&self, msg: impl Into<String>) -> AsmError {
        self.err_at(self.toks.get(self.pos), msg)
    }
    fn peek(&self) -> Option<&Token<'a>> {
        self.toks.get(self.pos)
    }
    fn peek_kind(&self) -> Option<Tok> {
        self.peek().map(|t| t.kind)
    }
    fn peek_kind_at(&self, n: usize) -> Option<Tok> {
        self.toks.get(self.pos + n).map(|t| t.kind)
    }
    fn peek_ident(&self) -> Option<&'a str> {
        match self.peek() {
            Some(t) if t.kind == Tok::Ident => Some(t.text),
            _ => None,
        }
    }
    fn next(&mut self) -> Option<Token<'a>> {
        let t = self.toks.get(self.pos).copied();
        if t.is_some() {
            self.pos += 1;
        }
        t
    }
    fn eat(&mut self, k: Tok) -> bool {
        if self.peek_kind() == Some(k) {
            self.pos += 1;
            true
        } else {
            false
        }
    }
    fn eat_ident(&mut self, s: &str) -> bool {
        if self.peek_ident() == Some(s) {
            self.pos += 1;
            true
        } else {
            false
        }
    }
    fn expect(&mut self, k: Tok, what: &str) -> R<Token<'a>> {
        match self.peek() {
            Some(t) if t.kind == k => {
                let t = *t;
                self.pos += 1;
                Ok(t)
            }
            _ => Err(self.err(format!("expected {what}"))),
        }
    }
    fn expect_ident(&mut self, s: &str) -> R<()> {
        if self.eat_ident(s) {
            Ok(())
        } else {
            Err(self.err(format!("expected `{s}`")))
        }
    }
    fn end(&mut self) -> R<()> {
        match self.peek() {
            None => Ok(()),
            Some(_) => Err(self.err("unexpected text after the instruction")),
        }
    }

    /// A register token: `rN`, `wN` or `%rN`. Returns (number, is_w).
    fn try_reg(&self, t: &Token<'a>) -> Option<R<(u8, bool)>> {
        let body = match t.kind {
            Tok::Ident => t.text,
            Tok::PctReg => &t.text[1..],
            _ => return None,
        };
        let (w, digits) = if let Some(d) = body.strip_prefix('r') {
            (false, d)
        } else if let Some(d) = body.strip_prefix('w') {
            (true, d)
        } else {
            return if t.kind == Tok::PctReg {
                Some(Err(self.err_at(Some(t), "not a register")))
            } else {
                None
            };
        };
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return if t.kind == Tok::PctReg {
                Some(Err(self.err_at(Some(t), "not a register")))
            } else {
                None
            };
        }
        match digits.parse::<u32>() {
            Ok(n) if n <= 10 => Some(Ok((n as u8, w))),
            _ => Some(Err(self.err_at(Some(t), "no such register (r0..r10)"))),
        }
    }
    fn is_reg_next(&self) -> bool {
        matches!(self.peek().and_then(|t| self.try_reg(t)), Some(Ok(_)))
    }
    fn reg_w(&mut self) -> R<(u8, bool)> {
        let Some(t) = self.peek().copied() else {
            return Err(self.err("expected a register"));
        };
        match self.try_reg(&t) {
            Some(Ok(r)) => {
                self.pos += 1;
                Ok(r)
            }
            Some(Err(e)) => Err(e),
            None => Err(self.err("expected a register")),
        }
    }
    fn reg(&mut self) -> R<u8> {
        Ok(self.reg_w()?.0)
    }
    /// A register that must have the given width prefix (`w` when `w`).
    fn reg_like(&mut self, w: bool) -> R<u8> {
        let t = self.peek().copied();
        let (r, is_w) = self.reg_w()?;
        if is_w != w {
            return Err(self.err_at(
                t.as_ref(),
                if w {
                    "expected a 32-bit register (wN)"
                } else {
                    "expected a 64-bit register (rN)"
                },
            ));
        }
        Ok(r)
    }

    /// `[+|-]NUMBER` as i128 (wide enough for every range check).
    fn signed(&mut self) -> R<(i128, Token<'a>)> {
        let neg = if self.eat(Tok::Minus) {
            true
        } else {
            self.eat(Tok::Plus);
            false
        };
        let t = self.expect(Tok::Number, "a number")?;
        let v =
            parse_number(t.text).ok_or_else(|| self.err_at(Some(&t), "invalid number"))? as i128;
        Ok((if neg { -v } else { v }, t))
    }
    fn check_range(&self, v: i128, t: &Token<'a>, lo: i128, hi: i128, what: &str) -> R<()> {
        if v < lo || v > hi {
            Err(self.err_at(Some(t), format!("{what} {v} out of range ({lo}..={hi})")))
        } else {
            Ok(())
        }
    }
    /// A 32-bit immediate: -2^31 ..= 2^32-1 (unsigned values wrap).
    fn imm32(&mut self) -> R<i32> {
        let (v, t) = self.signed()?;
        self.check_range(v, &t, i32::MIN as i128, u32::MAX as i128, "immediate")?;
        Ok(v as i64 as i32)
    }
    fn imm64(&mut self) -> R<u64> {
        let (v, t) = self.signed()?;
        self.check_range(v, &t, i64::MIN as i128, u64::MAX as i128, "immediate")?;
        Ok(v as u64)
    }
    fn off16(&mut self) -> R<i16> {
        let (v, t) = self.signed()?;
        self.check_range(v, &t, i16::MIN as i128, i16::MAX as i128, "offset")?;
        Ok(v as i16)
    }
    fn small(&mut self, max: i128, what: &str) -> R<i128> {
        let (v, t) = self.signed()?;
        self.check_range(v, &t, 0, max, what)?;
        Ok(v)
    }
    fn operand(&mut self) -> R<Operand> {
        if self.is_reg_next() {
            Ok(Operand::Reg(self.reg()?))
        } else {
            Ok(Operand::Imm(self.imm32()?))
        }
    }
    fn target(&mut self) -> R<Target> {
        match self.peek() {
            Some(t) if t.kind == Tok::Ident => {
                let t = *t;
                self.pos += 1;
                Ok(Target::Label(t.text.to_string(), t.col))
            }
            _ => Ok(Target::Rel(self.signed()?.0)),
        }
    }

    /// LLVM memory operand `(rN + 0x4)` / `(rN - 0x4)` (also `rN + 0x4` without parens
    /// when `parens` is false).
    fn llvm_mem(&mut self, parens: bool) -> R<(u8, i16)> {
        if parens {
            self.expect(Tok::LParen, "`(`")?;
        }
        let r = self.reg_like(false)?;
        let off = if self.peek_kind() == Some(Tok::Plus) || self.peek_kind() == Some(Tok::Minus) {
            self.off16()?
        } else {
            0
        };
        if parens {
            self.expect(Tok::RParen, "`)`")?;
        }
        Ok((r, off))
    }
    /// `(u32 *)`: returns (size, signed).
    fn llvm_type_ptr(&mut self) -> R<(Size, bool)> {
        self.expect(Tok::LParen, "`(`")?;
        let t = self.expect(Tok::Ident, "a type (u8, u16, u32, u64, s8, s16, s32)")?;
        let st = size_from_type(t.text).ok_or_else(|| self.err_at(Some(&t), "unknown type"))?;
        self.expect(Tok::Star, "`*`")?;
        self.expect(Tok::RParen, "`)`")?;
        Ok(st)
    }
    /// ubpf memory operand `[r1+4]`, `[%r10-8]`, `[r0]`.
    fn ubpf_mem(&mut self) -> R<(u8, i16)> {
        self.expect(Tok::LBracket, "`[`")?;
        let r = self.reg()?;
        let off = if matches!(self.peek_kind(), Some(Tok::Plus) | Some(Tok::Minus)) {
            self.off16()?
        } else {
            0
        };
        self.expect(Tok::RBracket, "`]`")?;
        Ok((r, off))
    }
    fn comma(&mut self) -> R<()> {
        self.expect(Tok::Comma, "`,`").map(|_| ())
    }
}

impl State {
    fn push(&mut self, insn: Insn, target: Option<(Target, FixKind)>, p: &P, line: usize) -> R<()> {
        let item = self.insns.len();
        // Relative targets are already in `insn` (range-checked by `rel16`/`rel32`);
        // labels are resolved in `finish`.
        match target {
            None | Some((Target::Rel(_), _)) => {}
            Some((Target::Label(label, col), kind)) => self.fixups.push(Fixup {
                item,
                slot: self.slot,
                label,
                kind,
                line,
                col,
            }),
        }
        if let Err(reason) = insn.validate() {
            let first = p.toks.first();
            return Err(AsmError {
                line,
                column: first.map(|t| t.col).unwrap_or(1),
                text: first.map(|t| t.text.to_string()).unwrap_or_default(),
                message: format!("invalid instruction: {reason}"),
            });
        }
        if matches!(insn, Insn::Exit { .. }) && self.first_exit.is_none() {
            self.first_exit = Some(self.slot);
        }
        self.slot += insn.slots();
        self.insns.push(insn);
        Ok(())
    }

    fn define_label(&mut self, name: &str, line: usize, col: usize) -> R<()> {
        if self.labels.insert(name.to_string(), self.slot).is_some() {
            return Err(AsmError {
                line,
                column: col,
                text: name.to_string(),
                message: "label defined twice".into(),
            });
        }
        Ok(())
    }

    fn line(&mut self, lineno: usize, raw_line: &str) -> R<()> {
        let Some(cleaned) = clean_listing_line(strip_comment(raw_line)) else {
            return Ok(());
        };
        let line = cleaned.as_str();
        let toks = lex_line(line).map_err(|(col, text)| AsmError {
            line: lineno,
            column: col,
            text,
            message: "unexpected character".into(),
        })?;
        let mut p = P {
            toks: &toks,
            pos: 0,
            line: lineno,
            line_len: line.trim_end().len(),
        };
        // Listing decorations: `INDEX:` and `HEX <name>:` / `<name>:` headers.
        if p.peek_kind() == Some(Tok::Number) && p.peek_kind_at(1) == Some(Tok::Colon) {
            p.pos += 2;
        } else if p.peek_kind() == Some(Tok::Number) && p.peek_kind_at(1) == Some(Tok::Lt) {
            p.pos += 1;
        }
        if p.peek_kind() == Some(Tok::Lt) {
            p.pos += 1;
            let t = p.expect(Tok::Ident, "a function name")?;
            p.expect(Tok::Gt, "`>`")?;
            p.expect(Tok::Colon, "`:`")?;
            p.end()?;
            return self.define_label(t.text, lineno, t.col);
        }
        // `label:` (possibly followed by an instruction).
        while p.peek_kind() == Some(Tok::Ident) && p.peek_kind_at(1) == Some(Tok::Colon) {
            let t = p.next().expect("peeked");
            p.pos += 1;
            self.define_label(t.text, lineno, t.col)?;
        }
        if p.peek().is_none() {
            return Ok(());
        }
        let (insn, target) = parse_insn(&mut p)?;
        p.end()?;
        self.push(insn, target, &p, lineno)
    }

    fn finish(mut self) -> R<Vec<Insn>> {
        // bpf_conformance convention: an undefined label `exit` means the first `exit`.
        if !self.labels.contains_key("exit") {
            if let Some(s) = self.first_exit {
                self.labels.insert("exit".to_string(), s);
            }
        }
        for f in &self.fixups {
            let err = |message: String| AsmError {
                line: f.line,
                column: f.col,
                text: f.label.clone(),
                message,
            };
            let Some(&target) = self.labels.get(&f.label) else {
                return Err(err("undefined label".into()));
            };
            let rel = target as i64 - f.slot as i64 - 1;
            let insn = &mut self.insns[f.item];
            match (f.kind, insn) {
                (FixKind::Jump, Insn::Ja { off })
                | (FixKind::Jump, Insn::MayGoto { off })
                | (FixKind::Jump, Insn::Jmp { off, .. }) => {
                    *off = i16::try_from(rel)
                        .map_err(|_| err(format!("jump distance {rel} does not fit in 16 bits")))?;
                }
                (FixKind::Gotol, Insn::Gotol { imm })
                | (FixKind::Call, Insn::CallLocal { imm }) => {
                    *imm = i32::try_from(rel)
                        .map_err(|_| err(format!("distance {rel} does not fit in 32 bits")))?;
                }
                _ => unreachable!("fixup kinds match their instructions"),
            }
        }
        Ok(self.insns)
    }
}

/// Makes a line of an `llvm-objdump`/`bpfkit disasm` listing assemblable, keeping
/// columns: the file-format and `Disassembly of section` headers and relocation lines
/// are skipped (`None`), raw instruction bytes after `INDEX:` and a trailing
/// `<symbol+offset>` annotation are blanked out.
fn clean_listing_line(line: &str) -> Option<String> {
    let t = line.trim();
    if (t.starts_with("Disassembly of section ") && t.ends_with(':'))
        || t.contains(":\tfile format ")
        || t.contains(":  R_BPF_")
    {
        return None;
    }
    let mut s = line.to_string();
    // `INDEX:<TAB>b7 00 00 00 00 00 00 00<TAB>text`
    if let Some(colon) = s.find(":\t") {
        let idx = &s[..colon];
        if !idx.trim().is_empty() && idx.trim().bytes().all(|b| b.is_ascii_digit()) {
            let rest = &s[colon + 2..];
            if let Some(tab) = rest.find('\t') {
                let bytes = &rest[..tab];
                let is_hex = !bytes.is_empty()
                    && bytes
                        .split(' ')
                        .all(|w| w.len() == 2 && w.bytes().all(|b| b.is_ascii_hexdigit()));
                if is_hex {
                    let (a, b) = (colon + 2, colon + 2 + tab);
                    s.replace_range(a..b, &" ".repeat(b - a));
                }
            }
        }
    }
    // Trailing `<symbol+offset>` annotation of a jump target.
    let trimmed = s.trim_end();
    if trimmed.ends_with('>') && !trimmed.ends_with(">:") {
        if let Some(i) = trimmed.rfind(" <") {
            let end = trimmed.len();
            s.replace_range(i..end, &" ".repeat(end - i));
        }
    }
    Some(s)
}

fn rel16(p: &P, t: &Target) -> R<i16> {
    match t {
        Target::Rel(v) => i16::try_from(*v)
            .map_err(|_| p.err_at(p.toks.last(), "jump offset out of range (16 bits)")),
        Target::Label(..) => Ok(0),
    }
}
fn rel32(p: &P, t: &Target) -> R<i32> {
    match t {
        Target::Rel(v) => {
            i32::try_from(*v).map_err(|_| p.err_at(p.toks.last(), "offset out of range (32 bits)"))
        }
        Target::Label(..) => Ok(0),
    }
}

type Parsed = (Insn, Option<(Target, FixKind)>);

fn parse_insn(p: &mut P) -> R<Parsed> {
    let first = *p.peek().expect("non-empty line");
    // Register-led lines are LLVM syntax.
    if p.is_reg_next() && first.kind == Tok::Ident {
        return llvm_reg_line(p);
    }
    if first.kind == Tok::Star {
        return llvm_store(p);
    }
    if first.kind != Tok::Ident {
        return Err(p.err("expected an instruction"));
    }
    let m = first.text;
    p.pos += 1;
    match m {
        "if" => {
            let (dst, w) = p.reg_w()?;
            let opt = p.next();
            let cond = match opt.map(|t| t.kind) {
                Some(Tok::EqEq) => JmpCond::Eq,
                Some(Tok::NotEq) => JmpCond::Ne,
                Some(Tok::Gt) => JmpCond::Gt,
                Some(Tok::Ge) => JmpCond::Ge,
                Some(Tok::Lt) => JmpCond::Lt,
                Some(Tok::Le) => JmpCond::Le,
                Some(Tok::SGt) => JmpCond::Sgt,
                Some(Tok::SGe) => JmpCond::Sge,
                Some(Tok::SLt) => JmpCond::Slt,
                Some(Tok::SLe) => JmpCond::Sle,
                Some(Tok::Amp) => JmpCond::Set,
                _ => {
                    return Err(p.err_at(
                        opt.as_ref(),
                        "expected a comparison (== != > >= < <= s> s>= s< s<= &)",
                    ))
                }
            };
            let src = if p.is_reg_next() {
                Operand::Reg(p.reg_like(w)?)
            } else {
                Operand::Imm(p.imm32()?)
            };
            p.expect_ident("goto")?;
            let t = p.target()?;
            let off = rel16(p, &t)?;
            Ok((
                Insn::Jmp {
                    is32: w,
                    cond,
                    dst,
                    src,
                    off,
                },
                Some((t, FixKind::Jump)),
            ))
        }
        "goto" | "ja" => {
            let t = p.target()?;
            Ok((Insn::Ja { off: rel16(p, &t)? }, Some((t, FixKind::Jump))))
        }
        "gotol" | "ja32" => {
            let t = p.target()?;
            Ok((
                Insn::Gotol { imm: rel32(p, &t)? },
                Some((t, FixKind::Gotol)),
            ))
        }
        "may_goto" => {
            let t = p.target()?;
            Ok((
                Insn::MayGoto { off: rel16(p, &t)? },
                Some((t, FixKind::Jump)),
            ))
        }
        "exit" => {
            let off = if p.eat_ident("off") { p.off16()? } else { 0 };
            Ok((Insn::Exit { off }, None))
        }
        "callx" => Ok((Insn::Callx { reg: p.reg()? }, None)),
        "call" => parse_call(p),
        "lock" => {
            if p.peek_kind() == Some(Tok::Star) {
                llvm_lock(p)
            } else {
                ubpf_lock(p)
            }
        }
        "ld_pseudo" => {
            let dst = p.reg()?;
            p.comma()?;
            let (src, st) = p.signed()?;
            let kind = u8::try_from(src)
                .ok()
                .and_then(LdImmKind::from_src)
                .ok_or_else(|| p.err_at(Some(&st), "unknown lddw pseudo kind (expected 0..6)"))?;
            p.comma()?;
            let lo = p.imm32()? as u32 as u64;
            let hi = if p.eat(Tok::Comma) {
                p.imm32()? as u32 as u64
            } else {
                0
            };
            Ok((
                Insn::LdImm64 {
                    dst,
                    kind,
                    imm: lo | hi << 32,
                },
                None,
            ))
        }
        "store_release" => {
            p.expect(Tok::LParen, "`(`")?;
            let (size, sx) = p.llvm_type_ptr()?;
            if sx {
                return Err(p.err("store_release takes an unsigned type"));
            }
            let (dst, off) = p.llvm_mem(true)?;
            p.comma()?;
            let src = p.reg()?;
            p.expect(Tok::RParen, "`)`")?;
            Ok((
                Insn::Atomic {
                    size,
                    op: AtomicOp::StoreRelease,
                    dst,
                    src,
                    off,
                },
                None,
            ))
        }
        _ => ubpf_insn(p, m, &first),
    }
}

fn parse_call(p: &mut P) -> R<Parsed> {
    if p.is_reg_next() {
        return Ok((Insn::Callx { reg: p.reg()? }, None));
    }
    match p.peek_ident() {
        Some("local") => {
            p.pos += 1;
            let t = p.target()?;
            Ok((
                Insn::CallLocal { imm: rel32(p, &t)? },
                Some((t, FixKind::Call)),
            ))
        }
        Some("kfunc") | Some("runtime") => {
            p.pos += 1;
            let imm = p.imm32()?;
            let off = if p.eat_ident("off") { p.off16()? } else { 0 };
            Ok((Insn::CallKfunc { imm, off }, None))
        }
        Some("helper") => {
            p.pos += 1;
            Ok((Insn::Call { imm: p.imm32()? }, None))
        }
        Some(_) => {
            // `call name`: a local function by label.
            let t = p.target()?;
            Ok((Insn::CallLocal { imm: 0 }, Some((t, FixKind::Call))))
        }
        None => Ok((Insn::Call { imm: p.imm32()? }, None)),
    }
}

/// Lines starting with a register: ALU, moves, loads, lddw, byte swaps, fetch atomics.
fn llvm_reg_line(p: &mut P) -> R<Parsed> {
    let dt = *p.peek().expect("register");
    let (dst, w) = p.reg_w()?;
    let opt = p.next();
    let op = match opt.map(|t| t.kind) {
        Some(Tok::Assign) => None,
        Some(Tok::AddEq) => Some(AluOp::Add),
        Some(Tok::SubEq) => Some(AluOp::Sub),
        Some(Tok::MulEq) => Some(AluOp::Mul),
        Some(Tok::DivEq) => Some(AluOp::Div),
        Some(Tok::SDivEq) => Some(AluOp::SDiv),
        Some(Tok::OrEq) => Some(AluOp::Or),
        Some(Tok::AndEq) => Some(AluOp::And),
        Some(Tok::LshEq) => Some(AluOp::Lsh),
        Some(Tok::RshEq) => Some(AluOp::Rsh),
        Some(Tok::ArshEq) => Some(AluOp::Arsh),
        Some(Tok::ModEq) => Some(AluOp::Mod),
        Some(Tok::SModEq) => Some(AluOp::SMod),
        Some(Tok::XorEq) => Some(AluOp::Xor),
        _ => return Err(p.err_at(opt.as_ref(), "expected `=` or an operator like `+=`")),
    };
    let is64 = !w;
    if let Some(op) = op {
        let src = if p.is_reg_next() {
            Operand::Reg(p.reg_like(w)?)
        } else {
            Operand::Imm(p.imm32()?)
        };
        return Ok((Insn::Alu { is64, op, dst, src }, None));
    }
    // `dst = ...`
    let Some(t) = p.peek().copied() else {
        return Err(p.err("expected a value after `=`"));
    };
    match t.kind {
        Tok::Minus if p.peek_kind_at(1) == Some(Tok::Ident) => {
            p.pos += 1;
            let r = p.reg_like(w)?;
            if r != dst {
                return Err(p.err_at(Some(&t), "negation must use the same register (`r1 = -r1`)"));
            }
            Ok((Insn::Neg { is64, dst }, None))
        }
        Tok::Minus | Tok::Plus | Tok::Number => {
            let save = p.pos;
            let (v, nt) = p.signed()?;
            if p.eat_ident("ll") {
                if w {
                    return Err(p.err_at(Some(&dt), "lddw needs a 64-bit register"));
                }
                p.check_range(v, &nt, i64::MIN as i128, u64::MAX as i128, "immediate")?;
                return Ok((
                    Insn::LdImm64 {
                        dst,
                        kind: LdImmKind::Imm,
                        imm: v as u64,
                    },
                    None,
                ));
            }
            p.pos = save;
            let imm = p.imm32()?;
            Ok((
                Insn::Alu {
                    is64,
                    op: AluOp::Mov,
                    dst,
                    src: Operand::Imm(imm),
                },
                None,
            ))
        }
        Tok::LParen => {
            // `(s8)r1`
            p.pos += 1;
            let ty = p.expect(Tok::Ident, "s8, s16 or s32")?;
            let bits = match ty.text {
                "s8" => 8,
                "s16" => 16,
                "s32" => 32,
                _ => return Err(p.err_at(Some(&ty), "expected s8, s16 or s32")),
            };
            p.expect(Tok::RParen, "`)`")?;
            let src = p.reg_like(w)?;
            Ok((
                Insn::MovSx {
                    is64,
                    bits,
                    dst,
                    src,
                },
                None,
            ))
        }
        Tok::Star => {
            p.pos += 1;
            let (size, sx) = p.llvm_type_ptr()?;
            if p.eat_ident("skb") {
                if dst != 0 {
                    return Err(p.err_at(Some(&dt), "packet loads (skb[...]) always load into r0"));
                }
                if sx || size == Size::DW {
                    return Err(p.err("packet loads take u8, u16 or u32"));
                }
                p.expect(Tok::LBracket, "`[`")?;
                let insn = if p.is_reg_next() {
                    let src = p.reg()?;
                    let imm = if matches!(p.peek_kind(), Some(Tok::Plus) | Some(Tok::Minus)) {
                        p.imm32()?
                    } else {
                        0
                    };
                    Insn::LdInd { size, src, imm }
                } else {
                    Insn::LdAbs {
                        size,
                        imm: p.imm32()?,
                    }
                };
                p.expect(Tok::RBracket, "`]`")?;
                return Ok((insn, None));
            }
            let (src, off) = p.llvm_mem(true)?;
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
                None,
            ))
        }
        Tok::Ident if !p.is_reg_next() => {
            p.pos += 1;
            let name = t.text;
            let swap = |prefix: &str| name.strip_prefix(prefix).and_then(|b| b.parse::<u8>().ok());
            let end_kind = [
                ("bswap", Endian::Swap),
                ("be", Endian::Be),
                ("le", Endian::Le),
            ]
            .into_iter()
            .find_map(|(prefix, kind)| swap(prefix).map(|b| (kind, b)));
            if let Some((kind, bits)) = end_kind {
                let r = p.reg()?;
                if r != dst {
                    return Err(p.err_at(
                        Some(&t),
                        "byte swap must use the same register (`r1 = be16 r1`)",
                    ));
                }
                return Ok((Insn::End { kind, bits, dst }, None));
            }
            match name {
                "addr_space_cast" => {
                    p.expect(Tok::LParen, "`(`")?;
                    let src = p.reg()?;
                    p.comma()?;
                    let d = p.small(0xffff, "address space")? as u16;
                    p.comma()?;
                    let s = p.small(0xffff, "address space")? as u16;
                    p.expect(Tok::RParen, "`)`")?;
                    Ok((
                        Insn::AddrSpaceCast {
                            dst,
                            src,
                            dst_as: d,
                            src_as: s,
                        },
                        None,
                    ))
                }
                "atomic_fetch_add" | "atomic_fetch_or" | "atomic_fetch_and"
                | "atomic_fetch_xor" => {
                    let op = match name {
                        "atomic_fetch_add" => AtomicOp::FetchAdd,
                        "atomic_fetch_or" => AtomicOp::FetchOr,
                        "atomic_fetch_and" => AtomicOp::FetchAnd,
                        _ => AtomicOp::FetchXor,
                    };
                    p.expect(Tok::LParen, "`(`")?;
                    let (size, _) = p.llvm_type_ptr()?;
                    let (base, off) = p.llvm_mem(true)?;
                    p.comma()?;
                    let st = p.peek().copied();
                    let src = p.reg()?;
                    p.expect(Tok::RParen, "`)`")?;
                    if src != dst {
                        return Err(p.err_at(
                            st.as_ref(),
                            "fetch result and operand must be the same register",
                        ));
                    }
                    Ok((
                        Insn::Atomic {
                            size,
                            op,
                            dst: base,
                            src,
                            off,
                        },
                        None,
                    ))
                }
                "xchg_64" | "xchg32_32" => {
                    let size = if name == "xchg_64" { Size::DW } else { Size::W };
                    p.expect(Tok::LParen, "`(`")?;
                    let (base, off) = p.llvm_mem(false)?;
                    p.comma()?;
                    let st = p.peek().copied();
                    let src = p.reg()?;
                    p.expect(Tok::RParen, "`)`")?;
                    if src != dst {
                        return Err(p.err_at(
                            st.as_ref(),
                            "xchg result and operand must be the same register",
                        ));
                    }
                    Ok((
                        Insn::Atomic {
                            size,
                            op: AtomicOp::Xchg,
                            dst: base,
                            src,
                            off,
                        },
                        None,
                    ))
                }
                "cmpxchg_64" | "cmpxchg32_32" => {
                    let size = if name == "cmpxchg_64" {
                        Size::DW
                    } else {
                        Size::W
                    };
                    if dst != 0 {
                        return Err(p.err_at(Some(&dt), "cmpxchg returns in r0"));
                    }
                    p.expect(Tok::LParen, "`(`")?;
                    let (base, off) = p.llvm_mem(false)?;
                    p.comma()?;
                    let r0t = p.peek().copied();
                    if p.reg()? != 0 {
                        return Err(p.err_at(r0t.as_ref(), "cmpxchg compares with r0"));
                    }
                    p.comma()?;
                    let src = p.reg()?;
                    p.expect(Tok::RParen, "`)`")?;
                    Ok((
                        Insn::Atomic {
                            size,
                            op: AtomicOp::Cmpxchg,
                            dst: base,
                            src,
                            off,
                        },
                        None,
                    ))
                }
                "load_acquire" => {
                    p.expect(Tok::LParen, "`(`")?;
                    let (size, sx) = p.llvm_type_ptr()?;
                    if sx {
                        return Err(p.err("load_acquire takes an unsigned type"));
                    }
                    let (src, off) = p.llvm_mem(true)?;
                    p.expect(Tok::RParen, "`)`")?;
                    Ok((
                        Insn::Atomic {
                            size,
                            op: AtomicOp::LoadAcquire,
                            dst,
                            src,
                            off,
                        },
                        None,
                    ))
                }
                _ => Err(p.err_at(Some(&t), "unknown expression")),
            }
        }
        _ => {
            let src = p.reg_like(w)?;
            Ok((
                Insn::Alu {
                    is64,
                    op: AluOp::Mov,
                    dst,
                    src: Operand::Reg(src),
                },
                None,
            ))
        }
    }
}

/// `*(u32 *)(r10 - 0x4) = r1 | imm`
fn llvm_store(p: &mut P) -> R<Parsed> {
    p.pos += 1;
    let (size, sx) = p.llvm_type_ptr()?;
    if sx {
        return Err(p.err("stores take an unsigned type"));
    }
    let (dst, off) = p.llvm_mem(true)?;
    p.expect(Tok::Assign, "`=`")?;
    if p.is_reg_next() {
        let src = p.reg()?;
        Ok((
            Insn::Stx {
                size,
                dst,
                src,
                off,
            },
            None,
        ))
    } else {
        let imm = p.imm32()?;
        Ok((
            Insn::St {
                size,
                dst,
                off,
                imm,
            },
            None,
        ))
    }
}

/// `lock *(u64 *)(r1 + 0x0) += r2` (also `|=`, `&=`, `^=`).
fn llvm_lock(p: &mut P) -> R<Parsed> {
    p.pos += 1;
    let (size, sx) = p.llvm_type_ptr()?;
    if sx {
        return Err(p.err("atomics take an unsigned type"));
    }
    let (dst, off) = p.llvm_mem(true)?;
    let opt = p.next();
    let op = match opt.map(|t| t.kind) {
        Some(Tok::AddEq) => AtomicOp::Add,
        Some(Tok::OrEq) => AtomicOp::Or,
        Some(Tok::AndEq) => AtomicOp::And,
        Some(Tok::XorEq) => AtomicOp::Xor,
        _ => return Err(p.err_at(opt.as_ref(), "expected `+=`, `|=`, `&=` or `^=`")),
    };
    let src = p.reg()?;
    Ok((
        Insn::Atomic {
            size,
            op,
            dst,
            src,
            off,
        },
        None,
    ))
}

/// `lock [fetch] add[32] [r1+0], r2`, `lock xchg`, `lock cmpxchg`, and the bpfkit
/// `lock ldacq{b,h,w,dw} r0, [r1+0]` / `lock strel{b,h,w,dw} [r1+0], r2`.
fn ubpf_lock(p: &mut P) -> R<Parsed> {
    let fetch = p.eat_ident("fetch");
    let t = p.expect(Tok::Ident, "an atomic operation")?;
    let name = t.text;
    if !fetch {
        if let Some(size) = name.strip_prefix("ldacq").and_then(size_suffix) {
            let dst = p.reg()?;
            p.comma()?;
            let (src, off) = p.ubpf_mem()?;
            return Ok((
                Insn::Atomic {
                    size,
                    op: AtomicOp::LoadAcquire,
                    dst,
                    src,
                    off,
                },
                None,
            ));
        }
        if let Some(size) = name.strip_prefix("strel").and_then(size_suffix) {
            let (dst, off) = p.ubpf_mem()?;
            p.comma()?;
            let src = p.reg()?;
            return Ok((
                Insn::Atomic {
                    size,
                    op: AtomicOp::StoreRelease,
                    dst,
                    src,
                    off,
                },
                None,
            ));
        }
    }
    let (base, size) = match name.strip_suffix("32") {
        Some(b) => (b, Size::W),
        None => (name.strip_suffix("64").unwrap_or(name), Size::DW),
    };
    let op = match (base, fetch) {
        ("add", false) => AtomicOp::Add,
        ("or", false) => AtomicOp::Or,
        ("and", false) => AtomicOp::And,
        ("xor", false) => AtomicOp::Xor,
        ("add", true) => AtomicOp::FetchAdd,
        ("or", true) => AtomicOp::FetchOr,
        ("and", true) => AtomicOp::FetchAnd,
        ("xor", true) => AtomicOp::FetchXor,
        ("xchg", _) => AtomicOp::Xchg,
        ("cmpxchg", _) => AtomicOp::Cmpxchg,
        _ => return Err(p.err_at(Some(&t), "unknown atomic operation")),
    };
    let (dst, off) = p.ubpf_mem()?;
    p.comma()?;
    let src = p.reg()?;
    Ok((
        Insn::Atomic {
            size,
            op,
            dst,
            src,
            off,
        },
        None,
    ))
}

fn ubpf_insn(p: &mut P, m: &str, mt: &Token) -> R<Parsed> {
    // ALU: name, name32, name64.
    let (base, is64) = match m.strip_suffix("32") {
        Some(b) => (b, false),
        None => (m.strip_suffix("64").unwrap_or(m), true),
    };
    if let Some(op) = alu_op_name(base) {
        let dst = p.reg()?;
        p.comma()?;
        let src = p.operand()?;
        return Ok((Insn::Alu { is64, op, dst, src }, None));
    }
    if base == "neg" {
        return Ok((
            Insn::Neg {
                is64,
                dst: p.reg()?,
            },
            None,
        ));
    }
    if let Some(cond) = jmp_cond_name(base) {
        let dst = p.reg()?;
        p.comma()?;
        let src = p.operand()?;
        p.comma()?;
        let t = p.target()?;
        let off = rel16(p, &t)?;
        return Ok((
            Insn::Jmp {
                is32: !is64,
                cond,
                dst,
                src,
                off,
            },
            Some((t, FixKind::Jump)),
        ));
    }
    // movsx{8,16,32}{32,64}
    if let Some(rest) = m.strip_prefix("movsx") {
        let (bits, is64) = match rest {
            "832" => (8, false),
            "1632" => (16, false),
            "864" => (8, true),
            "1664" => (16, true),
            "3264" => (32, true),
            _ => {
                return Err(p.err_at(
                    Some(mt),
                    "unknown movsx form (movsx832, movsx1632, movsx864, movsx1664, movsx3264)",
                ))
            }
        };
        let dst = p.reg()?;
        p.comma()?;
        let src = p.reg()?;
        return Ok((
            Insn::MovSx {
                is64,
                bits,
                dst,
                src,
            },
            None,
        ));
    }
    for (prefix, kind) in [
        ("bswap", Endian::Swap),
        ("swap", Endian::Swap),
        ("be", Endian::Be),
        ("le", Endian::Le),
    ] {
        if let Some(b) = m.strip_prefix(prefix) {
            if let Ok(bits) = b.parse::<u8>() {
                if matches!(bits, 16 | 32 | 64) {
                    return Ok((
                        Insn::End {
                            kind,
                            bits,
                            dst: p.reg()?,
                        },
                        None,
                    ));
                }
            }
        }
    }
    if let Some(size) = m.strip_prefix("ldxs").and_then(size_suffix) {
        let dst = p.reg()?;
        p.comma()?;
        let (src, off) = p.ubpf_mem()?;
        return Ok((
            Insn::LdxSx {
                size,
                dst,
                src,
                off,
            },
            None,
        ));
    }
    if let Some(size) = m.strip_prefix("ldx").and_then(size_suffix) {
        let dst = p.reg()?;
        p.comma()?;
        let (src, off) = p.ubpf_mem()?;
        return Ok((
            Insn::Ldx {
                size,
                dst,
                src,
                off,
            },
            None,
        ));
    }
    if let Some(size) = m.strip_prefix("stx").and_then(size_suffix) {
        let (dst, off) = p.ubpf_mem()?;
        p.comma()?;
        let src = p.reg()?;
        return Ok((
            Insn::Stx {
                size,
                dst,
                src,
                off,
            },
            None,
        ));
    }
    if let Some(size) = m.strip_prefix("st").and_then(size_suffix) {
        let (dst, off) = p.ubpf_mem()?;
        p.comma()?;
        let imm = p.imm32()?;
        return Ok((
            Insn::St {
                size,
                dst,
                off,
                imm,
            },
            None,
        ));
    }
    if let Some(size) = m.strip_prefix("ldabs").and_then(size_suffix) {
        return Ok((
            Insn::LdAbs {
                size,
                imm: p.imm32()?,
            },
            None,
        ));
    }
    if let Some(size) = m.strip_prefix("ldind").and_then(size_suffix) {
        let src = p.reg()?;
        p.comma()?;
        let imm = p.imm32()?;
        return Ok((Insn::LdInd { size, src, imm }, None));
    }
    match m {
        "lddw" => {
            let dst = p.reg()?;
            p.comma()?;
            let imm = p.imm64()?;
            Ok((
                Insn::LdImm64 {
                    dst,
                    kind: LdImmKind::Imm,
                    imm,
                },
                None,
            ))
        }
        "addr_space_cast" => {
            let dst = p.reg()?;
            p.comma()?;
            let src = p.reg()?;
            p.comma()?;
            let d = p.small(0xffff, "address space")? as u16;
            p.comma()?;
            let s = p.small(0xffff, "address space")? as u16;
            Ok((
                Insn::AddrSpaceCast {
                    dst,
                    src,
                    dst_as: d,
                    src_as: s,
                },
                None,
            ))
        }
        _ => Err(p.err_at(Some(mt), "unknown instruction")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(s: &str) -> Vec<RawInsn> {
        assemble(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn both_syntaxes_agree() {
        let pairs = [
            ("ldxw r2, [r1+4]", "r2 = *(u32 *)(r1 + 0x4)"),
            ("jge %r2, %r3, +1", "if r2 >= r3 goto +0x1"),
            ("lock add [r0+0], r1", "lock *(u64 *)(r0 + 0x0) += r1"),
            ("lddw r1, 0", "r1 = 0x0 ll"),
            ("call 1", "call 0x1"),
            ("mov32 %r0, -1", "w0 = -0x1"),
            ("stxdw [%r10-8], %r0", "*(u64 *)(r10 - 0x8) = r0"),
            (
                "lock cmpxchg [%r10-8], %r1",
                "r0 = cmpxchg_64(r10 - 0x8, r0, r1)",
            ),
            (
                "lock fetch xor32 [%r10-4], %r3",
                "w3 = atomic_fetch_xor((u32 *)(r10 - 0x4), w3)",
            ),
            ("be16 %r0", "r0 = be16 r0"),
            ("swap16 %r0", "r0 = bswap16 r0"),
            ("movsx1632 %r4, %r3", "w4 = (s16)w3"),
            ("ldxsh %r0, [%r10-2]", "r0 = *(s16 *)(r10 - 0x2)"),
            ("sdiv32 %r0, 3", "w0 s/= 0x3"),
            ("ja32 +5", "gotol +0x5"),
            ("call %r2", "callx r2"),
            ("ldindh %r1, 4", "r0 = *(u16 *)skb[r1 + 0x4]"),
            ("jset32 %r1, 8, -2", "if w1 & 0x8 goto -0x2"),
        ];
        for (u, l) in pairs {
            assert_eq!(one(u), one(l), "{u} vs {l}");
        }
    }

    #[test]
    fn labels_and_exit_label() {
        let a = one("mov %r0, 0\njne %r0, 1, exit\nja done\ndone:\nexit\n");
        assert_eq!(a[1].off, 1); // first exit is slot 3
        assert_eq!(a[2].off, 0);
        let c = one("call local f\nexit\nf:\nmov %r0, 1\nexit");
        assert_eq!((c[0].src, c[0].imm), (1, 1));
        let l = one("lddw r1, 5\nja l\nl: exit");
        assert_eq!(l[2].off, 0);
        let back = one("ja -1");
        assert_eq!(back[0].off, -1);
    }

    #[test]
    fn listing_decorations_are_accepted() {
        let a = one("0000000000000000 <xdp_prog>:\n       0:\tr0 = 0x2\n       1:\tgoto +0x0 <xdp_prog+0x10>\n       2:\texit");
        assert_eq!(a.len(), 3);
        let listing = "\nx.o:\tfile format elf64-bpf\n\nDisassembly of section xdp:\n\n\
            0000000000000000 <f>:\n       0:\t18 01 00 00 00 00 00 00 00 00 00 00 00 00 00 00\tr1 = 0x0 ll\n\
            \t\t0000000000000000:  R_BPF_64_64\tm\n       2:\t95 00 00 00 00 00 00 00\texit\n";
        assert_eq!(one(listing).len(), 3);
        let e = assemble("   5:\tr0 = r11 <x+0x8>").unwrap_err();
        assert_eq!((e.column, e.text.as_str()), (12, "r11"));
    }

    #[test]
    fn errors_point_at_line_and_column() {
        let e = assemble("mov r0, 1\nfrobnicate r1, 2").unwrap_err();
        assert_eq!((e.line, e.column, e.text.as_str()), (2, 1, "frobnicate"));
        let e = assemble("r1 = *(u32 *)(r11 + 0x4)").unwrap_err();
        assert_eq!((e.line, e.column, e.text.as_str()), (1, 15, "r11"));
        let e = assemble("mov r0, 0x1ffffffff").unwrap_err();
        assert!(e.message.contains("out of range"), "{e}");
        let e = assemble("ja nowhere").unwrap_err();
        assert_eq!(e.message, "undefined label");
        let e = assemble("lock *(u8 *)(r1 + 0x0) += r2").unwrap_err();
        assert!(e.message.contains("invalid instruction"), "{e}");
        assert!(assemble("r0 = @").is_err());
        assert!(assemble("exit exit").is_err());
        assert!(assemble("l:\nl:\nexit").is_err());
    }
}
