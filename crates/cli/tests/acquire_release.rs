//! Load-acquire and store-release (Linux 6.15, `BPF_STX | BPF_ATOMIC`, imm 0x100 / 0x110)
//! end to end, on `tests/data/xdp_acquire_release.o` (bytes in an assembler source: clang-19
//! cannot emit them). `xdp_acquire_release` stores 42 with a 64-bit store-release and
//! reads it back with 64- and 32-bit load-acquires; `xdp_acquire_release8` stores 0x1234
//! with a 16-bit store-release and reads its low byte with an 8-bit load-acquire. Each
//! returns XDP_PASS when the values are right, XDP_DROP otherwise. `bpfkit verify` accepts
//! both as 6.18 does and refuses them for 6.14 with that kernel's words; the interpreter,
//! both JIT modes and, when the running kernel has the instructions, `BPF_PROG_TEST_RUN`
//! return XDP_PASS.

use std::path::PathBuf;
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

const OBJ: &str = "crates/cli/tests/data/xdp_acquire_release.o";
const PROGS: [&str; 2] = ["xdp_acquire_release", "xdp_acquire_release8"];
const PACKET: &str = "ffffffffffff0000000000010800450000140000000040110000000000000000000000000000";

fn bpfkit(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_bpfkit"))
        .current_dir(root())
        .args(args)
        .output()
        .expect("run bpfkit");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn acquire_release_verify_like_6_18_and_6_14() {
    let (code, out, err) = bpfkit(&["verify", OBJ]);
    assert_eq!(code, 0, "{out}{err}");
    for p in PROGS {
        assert!(out.contains(&format!("`{p}` accepted")), "{out}");
    }
    let (code, out, err) = bpfkit(&["verify", "--kernel", "6.15", OBJ]);
    assert_eq!(code, 0, "{out}{err}");
    // 6.14: W/DW reach check_atomic's default, B/H are not in the opcode table
    let (code, out, err) = bpfkit(&["verify", "--kernel", "6.14", OBJ]);
    assert_eq!(code, 1, "{out}{err}");
    let all = format!("{out}{err}");
    assert!(
        all.contains("BPF_ATOMIC uses invalid atomic opcode 110"),
        "{all}"
    );
    assert!(all.contains("unknown opcode cb"), "{all}");
    assert!(all.contains("came in Linux 6.15"), "{all}");
}

/// `retval` of `bpfkit run` on one engine, or the error output.
fn retval(engine: &str, prog: &str) -> Result<u64, String> {
    let (code, out, err) = bpfkit(&[
        "run",
        "--engine",
        engine,
        "--program",
        prog,
        "--packet-hex",
        PACKET,
        OBJ,
    ]);
    if code != 0 {
        return Err(format!("exit {code}: {out}{err}"));
    }
    out.lines()
        .find_map(|l| l.strip_prefix("retval: "))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|r| r.parse().ok())
        .ok_or_else(|| format!("no retval in {out}"))
}

#[test]
fn acquire_release_run_alike_on_every_engine_and_the_kernel() {
    for p in PROGS {
        for engine in ["interp", "jit", "jit-fast"] {
            assert_eq!(retval(engine, p), Ok(2), "{p} on {engine}");
        }
        match retval("kernel", p) {
            Ok(r) => assert_eq!(r, 2, "{p} on the kernel"),
            Err(e) if e.contains("unknown opcode") || e.contains("invalid atomic opcode") => {
                eprintln!("SKIPPED: {p} on the kernel: this kernel has no load-acquire: {e}")
            }
            Err(e) => match bpfkit_loader::probe::kernel_available() {
                Err(why) => eprintln!("SKIPPED: {p} on the kernel: {why}"),
                Ok(()) => panic!("kernel engine: {e}"),
            },
        }
    }
}
