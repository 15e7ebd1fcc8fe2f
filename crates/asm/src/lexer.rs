//! Tokens of both assembler syntaxes (LLVM `llvm-objdump` syntax and the ubpf/rbpf
//! mnemonic syntax), lexed with `logos`. Comments are removed per line before lexing.

use logos::Logos;

#[derive(Logos, Clone, Copy, Debug, PartialEq, Eq)]
#[logos(skip r"[ \t\r\f]+")]
pub enum Tok {
    /// Names: mnemonics, registers `r1`/`w1`, labels, keywords (`goto`, `ll`, `u32`, ...).
    #[regex(r"[A-Za-z_.$][A-Za-z0-9_.$]*")]
    Ident,
    /// A register with a `%` prefix (`%r1`).
    #[regex(r"%[A-Za-z][A-Za-z0-9]*")]
    PctReg,
    /// A decimal or `0x` hexadecimal number (validated by the parser).
    #[regex(r"[0-9][0-9A-Za-z_]*")]
    Number,
    #[token("+=")]
    AddEq,
    #[token("-=")]
    SubEq,
    #[token("*=")]
    MulEq,
    #[token("/=")]
    DivEq,
    #[token("s/=")]
    SDivEq,
    #[token("|=")]
    OrEq,
    #[token("&=")]
    AndEq,
    #[token("<<=")]
    LshEq,
    #[token(">>=")]
    RshEq,
    #[token("s>>=")]
    ArshEq,
    #[token("%=")]
    ModEq,
    #[token("s%=")]
    SModEq,
    #[token("^=")]
    XorEq,
    #[token("==")]
    EqEq,
    #[token("!=")]
    NotEq,
    #[token(">")]
    Gt,
    #[token(">=")]
    Ge,
    #[token("<")]
    Lt,
    #[token("<=")]
    Le,
    #[token("s>")]
    SGt,
    #[token("s>=")]
    SGe,
    #[token("s<")]
    SLt,
    #[token("s<=")]
    SLe,
    #[token("=")]
    Assign,
    #[token("&")]
    Amp,
    #[token("+")]
    Plus,
    #[token("-")]
    Minus,
    #[token("*")]
    Star,
    #[token("(")]
    LParen,
    #[token(")")]
    RParen,
    #[token("[")]
    LBracket,
    #[token("]")]
    RBracket,
    #[token(",")]
    Comma,
    #[token(":")]
    Colon,
}

/// A token with its text and 1-based column.
#[derive(Clone, Copy, Debug)]
pub struct Token<'a> {
    pub kind: Tok,
    pub text: &'a str,
    pub col: usize,
}

/// Removes a trailing comment (`#`, `;` or `//`) from a line.
pub fn strip_comment(line: &str) -> &str {
    let mut end = line.len();
    for pat in ["#", ";", "//"] {
        if let Some(i) = line.find(pat) {
            end = end.min(i);
        }
    }
    &line[..end]
}

/// Lexes one line (without its comment). On failure returns the 1-based column and the
/// offending text.
pub fn lex_line(line: &str) -> Result<Vec<Token<'_>>, (usize, String)> {
    let mut lex = Tok::lexer(line);
    let mut out = Vec::new();
    while let Some(r) = lex.next() {
        let span = lex.span();
        match r {
            Ok(kind) => out.push(Token {
                kind,
                text: lex.slice(),
                col: span.start + 1,
            }),
            Err(()) => {
                let bad: String = line[span.start..].chars().next().into_iter().collect();
                return Err((span.start + 1, bad));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(s: &str) -> Vec<Tok> {
        lex_line(s).unwrap().into_iter().map(|t| t.kind).collect()
    }

    #[test]
    fn operators_take_longest_match() {
        assert_eq!(
            kinds("r1 s>>= 3"),
            vec![Tok::Ident, Tok::ArshEq, Tok::Number]
        );
        assert_eq!(
            kinds("if r1 s>= r2"),
            vec![Tok::Ident, Tok::Ident, Tok::SGe, Tok::Ident]
        );
        assert_eq!(
            kinds("[%r10-8]"),
            vec![
                Tok::LBracket,
                Tok::PctReg,
                Tok::Minus,
                Tok::Number,
                Tok::RBracket
            ]
        );
        assert_eq!(kinds("w0 %= w1"), vec![Tok::Ident, Tok::ModEq, Tok::Ident]);
    }

    #[test]
    fn comments_and_bad_chars() {
        assert_eq!(strip_comment("mov %r0, 1 # c ; d"), "mov %r0, 1 ");
        assert_eq!(strip_comment("exit // x"), "exit ");
        assert_eq!(lex_line("r0 = @").unwrap_err(), (6, "@".to_string()));
    }
}
