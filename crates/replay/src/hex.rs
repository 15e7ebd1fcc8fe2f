//! Lower-case hex without separators, and a row-by-row hex diff.

use std::fmt::Write as _;

pub fn encode(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len() * 2);
    encode_into(b, &mut s);
    s
}

pub fn encode_into(b: &[u8], s: &mut String) {
    const D: &[u8; 16] = b"0123456789abcdef";
    for &x in b {
        s.push(D[(x >> 4) as usize] as char);
        s.push(D[(x & 15) as usize] as char);
    }
}

/// Base16 (surrounding whitespace ignored). The error names the first character that is
/// not a hex digit by its character position; never panics on any text.
pub fn decode(s: &str) -> Result<Vec<u8>, String> {
    let s = s.trim();
    if let Some((i, c)) = s.chars().enumerate().find(|(_, c)| !c.is_ascii_hexdigit()) {
        return Err(format!("{c:?} at character {i} is not a hex digit"));
    }
    // Only ASCII hex digits from here, so the one error left is the length.
    ::hex::decode(s).map_err(|_| format!("hex string has an odd number of digits ({})", s.len()))
}

/// [`decode`] of a command-line option's text: whitespace anywhere and a `0x` before
/// each whitespace-separated group are ignored (`--key "0x0a 0b"`).
pub fn decode_arg(s: &str) -> Result<Vec<u8>, String> {
    let digits: String = s
        .split_whitespace()
        .map(|w| w.strip_prefix("0x").or(w.strip_prefix("0X")).unwrap_or(w))
        .collect();
    decode(&digits)
}

/// Rows of 16 bytes where `a` and `b` differ: `offset  a-bytes | b-bytes`, with `^^`
/// under differing bytes; at most `max_rows` rows.
pub fn diff(a: &[u8], b: &[u8], max_rows: usize) -> String {
    let mut out = String::new();
    let n = a.len().max(b.len());
    let mut rows = 0;
    let cell = |x: &[u8], i: usize| {
        x.get(i)
            .map(|v| format!("{v:02x}"))
            .unwrap_or_else(|| "--".into())
    };
    for row in (0..n).step_by(16) {
        let end = (row + 16).min(n);
        if (row..end).all(|i| a.get(i) == b.get(i)) {
            continue;
        }
        if rows == max_rows {
            let _ = writeln!(out, "... (more differences)");
            break;
        }
        rows += 1;
        let l: Vec<String> = (row..end).map(|i| cell(a, i)).collect();
        let r: Vec<String> = (row..end).map(|i| cell(b, i)).collect();
        let m: Vec<&str> = (row..end)
            .map(|i| if a.get(i) == b.get(i) { "  " } else { "^^" })
            .collect();
        let _ = writeln!(out, "{row:06x}  {:<47} | {}", l.join(" "), r.join(" "));
        let _ = writeln!(out, "        {:<47} | {}", m.join(" "), m.join(" "));
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn roundtrip_and_errors() {
        assert_eq!(super::encode(&[0, 0xab, 0x10]), "00ab10");
        assert_eq!(super::decode("00AB10").unwrap(), vec![0, 0xab, 0x10]);
        assert!(super::decode("abc").is_err());
        assert!(super::decode("zz").is_err());
    }

    #[test]
    fn diff_marks_bytes() {
        let d = super::diff(&[1, 2, 3], &[1, 9, 3, 4], 10);
        assert!(d.contains("01 02 03 --"), "{d}");
        assert!(d.contains("01 09 03 04"), "{d}");
        assert!(d.contains("   ^^    ^^"), "{d}");
        assert_eq!(super::diff(&[1; 40], &[1; 40], 10), "");
    }
}
