//! `bpfkit disasm` and `bpfkit asm` as a user runs them: corpus objects disassemble like
//! llvm-objdump-19 and assemble back to their bytes; garbage input gives a message and
//! exit status 1 or 2, never a panic.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bpfkit(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bpfkit"));
    cmd.args(args);
    match stdin {
        None => cmd.output().unwrap(),
        Some(data) => {
            use std::io::Write;
            let mut child = cmd
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            child.stdin.take().unwrap().write_all(data).unwrap();
            child.wait_with_output().unwrap()
        }
    }
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

struct TempDir(PathBuf);
impl TempDir {
    fn new(tag: &str) -> TempDir {
        let d = std::env::temp_dir().join(format!("bpfkit-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        TempDir(d)
    }
    fn file(&self, name: &str, data: &[u8]) -> String {
        let p = self.0.join(name);
        std::fs::write(&p, data).unwrap();
        p.to_string_lossy().into_owned()
    }
}
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Exit status 1 or 2 (as given), an `error:` message, no panic.
fn assert_fails(o: &Output, status: i32, needle: &str, what: &str) {
    let e = stderr(o);
    assert!(!e.contains("panicked"), "{what}: panicked: {e}");
    assert_eq!(o.status.code(), Some(status), "{what}: stderr {e}");
    assert!(e.starts_with("error: "), "{what}: {e}");
    assert!(e.contains(needle), "{what}: expected `{needle}` in: {e}");
}

fn corpus_objects() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(repo().join("corpus/obj"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "o"))
        .collect();
    v.sort();
    v
}

#[test]
fn disasm_then_asm_reproduces_every_corpus_section() {
    let tmp = TempDir::new("rt");
    let mut n = 0;
    for obj_path in corpus_objects() {
        let bytes = std::fs::read(&obj_path).unwrap();
        let obj = bpfkit_object::Object::parse(&bytes).unwrap();
        let p = obj_path.to_string_lossy().into_owned();
        for sec in obj
            .sections
            .iter()
            .filter(|s| s.is_executable() && !s.insns.is_empty())
        {
            for syntax in ["llvm", "ubpf"] {
                let d = bpfkit(
                    &["disasm", &p, "--section", &sec.name, "--syntax", syntax],
                    None,
                );
                assert_eq!(d.status.code(), Some(0), "{p} {}: {}", sec.name, stderr(&d));
                let s = tmp.file("x.s", &d.stdout);
                let out = tmp.0.join("x.bin").to_string_lossy().into_owned();
                let a = bpfkit(&["asm", &s, "-o", &out], None);
                assert_eq!(a.status.code(), Some(0), "{p} {}: {}", sec.name, stderr(&a));
                let back = std::fs::read(&out).unwrap();
                assert!(
                    back == bpfkit_isa::to_bytes(&sec.insns),
                    "{p} section {} ({syntax})",
                    sec.name
                );
                n += 1;
            }
        }
    }
    assert!(n > 0);
}

#[test]
fn disasm_prints_what_llvm_objdump_prints() {
    // An object without local calls or 32-bit atomics: byte-identical output.
    let exp = repo().join("corpus/expected/xdp_counter.objdump.txt");
    let want = std::fs::read_to_string(&exp).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_bpfkit"))
        .current_dir(repo())
        .args(["disasm", "corpus/obj/xdp_counter.o"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(String::from_utf8(o.stdout).unwrap(), want);
}

#[test]
fn alu32_prints_what_llvm_objdump_mattr_alu32_prints() {
    let exp = repo().join("corpus/expected/xdp_atomics.objdump-alu32.txt");
    let Ok(want) = std::fs::read_to_string(&exp) else {
        panic!("{} missing", exp.display());
    };
    let o = Command::new(env!("CARGO_BIN_EXE_bpfkit"))
        .current_dir(repo())
        .args(["disasm", "corpus/obj/xdp_atomics.o", "--alu32"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(String::from_utf8(o.stdout).unwrap(), want);
}

#[test]
fn raw_bin_and_stdin_pipeline() {
    let tmp = TempDir::new("bin");
    let src = "mov %r0, 1\nlddw r1, 0x1122334455667788\njne r0, 1, out\ncall local f\nout: exit\nf: r0 = 2\nexit\n";
    let s = tmp.file("p.s", src.as_bytes());
    let bin = tmp.0.join("p.bin").to_string_lossy().into_owned();
    let a = bpfkit(&["asm", &s, "-o", &bin], None);
    assert_eq!(a.status.code(), Some(0), "{}", stderr(&a));
    let bytes = std::fs::read(&bin).unwrap();
    assert_eq!(bytes.len(), 8 * 8);
    let d = bpfkit(&["disasm", &bin], None);
    assert_eq!(d.status.code(), Some(0));
    let text = String::from_utf8(d.stdout).unwrap();
    assert!(
        text.contains("       1:\tr1 = 0x1122334455667788 ll\n"),
        "{text}"
    );
    assert!(text.contains("       4:\tcall local +0x1\n"), "{text}");
    // Text on standard input, bytes on standard output.
    let a = bpfkit(&["asm", "-", "-o", "-"], Some(text.as_bytes()));
    assert_eq!(a.status.code(), Some(0), "{}", stderr(&a));
    assert_eq!(a.stdout, bytes);
    let u = bpfkit(&["disasm", &bin, "--syntax", "ubpf"], None);
    assert!(String::from_utf8_lossy(&u.stdout).contains("       0:\tmov r0, 0x1\n"));
    let h = bpfkit(&["asm", &s, "--hex"], None);
    assert!(String::from_utf8_lossy(&h.stdout).starts_with("b700000001000000\n"));
}

#[test]
fn source_lines_from_btf() {
    let o = Command::new(env!("CARGO_BIN_EXE_bpfkit"))
        .current_dir(repo())
        .args(["disasm", "corpus/obj/xdp_counter.o", "--source"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let text = String::from_utf8(o.stdout).unwrap();
    let src = std::fs::read_to_string(repo().join("corpus/src/xdp_counter.c")).unwrap();
    let comments: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("; ")).collect();
    assert!(comments.len() >= 3, "{text}");
    for c in comments {
        assert!(
            src.contains(c.trim()),
            "`{c}` is not a line of xdp_counter.c"
        );
    }
    // Still assembles back (source lines are comments).
    let a = bpfkit(&["asm", "-", "--hex"], Some(text.as_bytes()));
    assert_eq!(a.status.code(), Some(0), "{}", stderr(&a));
}

#[test]
fn garbage_is_an_error_not_a_panic() {
    let tmp = TempDir::new("garbage");
    // Not a whole number of slots.
    let f = tmp.file("odd.bin", &[0xb7, 0, 0, 0, 0, 0, 0, 0, 0x95, 0]);
    assert_fails(
        &bpfkit(&["disasm", &f], None),
        1,
        "not a multiple of 8",
        "odd length",
    );
    // Unknown opcode.
    let f = tmp.file(
        "op.bin",
        &[0xb7, 0, 0, 0, 0, 0, 0, 0, 0xff, 0, 0, 0, 0, 0, 0, 0],
    );
    assert_fails(
        &bpfkit(&["disasm", &f], None),
        1,
        "instruction 1: unknown opcode 0xff",
        "unknown opcode",
    );
    // A lone first half of lddw, and a lone second half.
    let f = tmp.file("lo.bin", &[0x18, 1, 0, 0, 5, 0, 0, 0]);
    assert_fails(
        &bpfkit(&["disasm", &f], None),
        1,
        "instruction 0: lddw: second slot is missing",
        "lone lddw",
    );
    let f = tmp.file("hi.bin", &[0, 0, 0, 0, 5, 0, 0, 0]);
    assert_fails(
        &bpfkit(&["disasm", &f], None),
        1,
        "instruction 0: unknown opcode 0x00",
        "lone lddw half",
    );
    // Reserved fields.
    let f = tmp.file("res.bin", &[0x95, 0, 0, 0, 1, 0, 0, 0]);
    assert_fails(
        &bpfkit(&["disasm", &f], None),
        1,
        "exit: reserved field imm",
        "exit imm",
    );
    // An invalid instruction inside an ELF object: section, function+offset, index.
    let mut obj = std::fs::read(repo().join("corpus/obj/xdp_counter.o")).unwrap();
    let parsed = bpfkit_object::Object::parse(&obj).unwrap();
    let sec = parsed.section("xdp").unwrap();
    let at = sec.offset as usize + 3 * 8;
    obj[at] = 0xff;
    let f = tmp.file("badop.o", &obj);
    assert_fails(
        &bpfkit(&["disasm", &f], None),
        1,
        "section xdp, xdp_count+0x18 (byte offset 0x18): instruction 3: unknown opcode 0xff",
        "bad opcode in ELF",
    );
    // Truncated ELF objects at many cut points.
    let obj = std::fs::read(repo().join("corpus/obj/xdp_counter.o")).unwrap();
    for cut in [4usize, 16, 63, 64, 100, 500, obj.len() / 2, obj.len() - 1] {
        let f = tmp.file("trunc.o", &obj[..cut.min(obj.len())]);
        let o = bpfkit(&["disasm", &f], None);
        assert!(
            !stderr(&o).contains("panicked"),
            "cut {cut}: {}",
            stderr(&o)
        );
        assert_eq!(o.status.code(), Some(1), "cut {cut}: {}", stderr(&o));
    }
    // Pseudo-random bytes, with and without an ELF header.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for i in 0..120 {
        let len = (i * 37) % 700 + 1;
        let mut b: Vec<u8> = (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        if i % 2 == 0 {
            let n = 64.min(b.len());
            b[..n].copy_from_slice(&obj[..n]);
        }
        let f = tmp.file("rand.bin", &b);
        let o = bpfkit(&["disasm", &f], None);
        assert!(
            !stderr(&o).contains("panicked"),
            "random input {i}: {}",
            stderr(&o)
        );
        assert!(
            matches!(o.status.code(), Some(0) | Some(1)),
            "random input {i}: {:?}",
            o.status
        );
        let o = bpfkit(&["asm", &f, "--hex"], None);
        assert!(
            !stderr(&o).contains("panicked"),
            "random asm input {i}: {}",
            stderr(&o)
        );
        assert!(
            matches!(o.status.code(), Some(0) | Some(1)),
            "random asm input {i}: {:?}",
            o.status
        );
    }
}

#[test]
fn asm_errors_name_line_column_and_text() {
    let o = bpfkit(&["asm", "-", "--hex"], Some(b"mov r0, 1\n  frob r1, 2\n"));
    assert_fails(
        &o,
        1,
        "line 2, column 3: unknown instruction (at `frob`)",
        "mnemonic",
    );
    let o = bpfkit(&["asm", "-", "--hex"], Some(b"r1 = *(u32 *)(r12 + 0x4)\n"));
    assert_fails(&o, 1, "line 1, column 15", "register");
    let o = bpfkit(&["asm", "-", "--hex"], Some(b"ja nowhere\n"));
    assert_fails(&o, 1, "undefined label (at `nowhere`)", "label");
    let o = bpfkit(&["asm", "-", "--hex"], Some(&[0xff, 0xfe, 0x00]));
    assert_fails(&o, 1, "not UTF-8", "binary");
}

#[test]
fn usage_and_io_errors_exit_2() {
    let missing = Path::new("/nonexistent/bpfkit.o")
        .to_string_lossy()
        .into_owned();
    assert_fails(
        &bpfkit(&["disasm", &missing], None),
        2,
        "/nonexistent/bpfkit.o",
        "missing file",
    );
    assert_fails(
        &bpfkit(&["asm", &missing, "--hex"], None),
        2,
        "/nonexistent/bpfkit.o",
        "missing asm file",
    );
    let obj = repo()
        .join("corpus/obj/xdp_counter.o")
        .to_string_lossy()
        .into_owned();
    assert_fails(
        &bpfkit(&["disasm", &obj, "--section", "nope"], None),
        2,
        "no section named `nope`",
        "section",
    );
    assert_fails(
        &bpfkit(&["disasm", &obj, "--prog", "nope"], None),
        2,
        "no program or function",
        "prog",
    );
    let o = bpfkit(&["disasm", &obj, "--syntax", "intel"], None);
    assert_eq!(o.status.code(), Some(2));
    let o = bpfkit(&["asm", &obj], None);
    assert_eq!(o.status.code(), Some(2), "-o or --hex is required");
    assert_fails(
        &bpfkit(&["disasm", &obj, "--alu32", "--syntax", "ubpf"], None),
        2,
        "--alu32",
        "alu32+ubpf",
    );
    let h = bpfkit(&["disasm", "--help"], None);
    let h = String::from_utf8_lossy(&h.stdout);
    assert!(h.contains("Examples:") && h.contains("Exit status:"), "{h}");
    let h = bpfkit(&["asm", "--help"], None);
    let h = String::from_utf8_lossy(&h.stdout);
    assert!(h.contains("Examples:") && h.contains("Exit status:"), "{h}");
}

/// An instruction that does not decode does not stop the listing: it is `<unknown>`, as
/// llvm-objdump prints it, the rest is listed, and stderr names the slot (exit 1).
#[test]
fn disasm_lists_everything_around_a_bad_instruction() {
    let tmp = TempDir::new("unknown");
    let f = tmp.file(
        "mid.bin",
        &[
            0xb7, 0, 0, 0, 0, 0, 0, 0, // r0 = 0
            0xff, 0, 0, 0, 0, 0, 0, 0, // no such opcode
            0x95, 0, 0, 0, 0, 0, 0, 0, // exit
        ],
    );
    let o = bpfkit(&["disasm", &f], None);
    assert_eq!(o.status.code(), Some(1));
    let out = String::from_utf8_lossy(&o.stdout);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(lines[1].ends_with("<unknown>"), "{out}");
    assert!(lines[2].ends_with("exit"), "{out}");
    assert!(stderr(&o).contains("instruction 1: unknown opcode 0xff (listed as <unknown>)"));
}

/// Two labels at one address: one header, the one llvm-objdump-19 prints (the last by
/// name), and the same text as llvm-objdump-19 when it is installed.
#[test]
fn one_label_per_address_as_llvm_objdump() {
    let obj = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/two_labels.o");
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_bpfkit"))
        .args(["disasm", "--raw"])
        .arg(&obj)
        .output()
        .unwrap();
    assert!(o.status.success());
    let ours = String::from_utf8(o.stdout).unwrap();
    assert_eq!(ours.matches("<LBB0_2>:").count(), 1, "{ours}");
    assert!(!ours.contains("<LBB0_1>:"), "{ours}");
    match std::process::Command::new("llvm-objdump-19")
        .arg("-d")
        .arg(&obj)
        .output()
    {
        Ok(l) if l.status.success() => {
            let theirs = String::from_utf8(l.stdout).unwrap();
            assert_eq!(ours.trim(), theirs.trim());
        }
        _ => eprintln!(
            "SKIPPED: one_label_per_address_as_llvm_objdump: llvm-objdump-19 half: not installed"
        ),
    }
}
