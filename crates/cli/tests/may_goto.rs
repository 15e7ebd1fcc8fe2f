//! `may_goto` (Linux 6.9, `BPF_JMP | BPF_JCOND`) end to end, on `tests/data/xdp_may_goto.o`
//! (clang-19's `can_loop`): `bpfkit verify` accepts both programs as 6.18 does, and
//! `bpfkit replay` gives the same result on the interpreter, both JIT modes and, when the
//! running kernel offers may_goto, `BPF_PROG_TEST_RUN`. `xdp_may_goto_hash` loops once per
//! unit of the EtherType's first byte (its result depends on every iteration);
//! `xdp_may_goto_spin` runs until the budget is exhausted (the interpreter and the JIT
//! stop after `BPF_MAX_LOOPS` iterations per frame, the x86-64 kernel after its time
//! budget), so only its verdict is compared.

mod common;

use std::path::PathBuf;
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

const OBJ: &str = "crates/cli/tests/data/xdp_may_goto.o";

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

/// A pcap of three Ethernet frames: EtherType 0x0800, 0x86dd and 0x0000.
fn capture() -> PathBuf {
    let mut b = 0xa1b2_c3d4u32.to_le_bytes().to_vec();
    b.extend_from_slice(&2u16.to_le_bytes());
    b.extend_from_slice(&4u16.to_le_bytes());
    for v in [0u32, 0, 65535, 1] {
        b.extend_from_slice(&v.to_le_bytes());
    }
    for (i, et) in [[0x08u8, 0x00], [0x86, 0xdd], [0, 0]].iter().enumerate() {
        let mut p = vec![0xffu8; 12];
        p.extend_from_slice(et);
        p.resize(64, 0);
        for v in [i as u32, 0, 64, 64] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        b.extend_from_slice(&p);
    }
    // the system's temporary directory: the target directory may belong to another user
    let path = common::scratch("may-goto.pcap");
    std::fs::write(&path, b).unwrap();
    path
}

/// `retval` of every packet, from `--trace -`.
fn retvals(engine: &str, prog: &str, pcap: &str) -> Result<Vec<u64>, String> {
    let (code, out, err) = bpfkit(&[
        "replay", "--engine", engine, "--prog", prog, "--trace", "-", OBJ, pcap,
    ]);
    if code != 0 {
        return Err(format!("exit {code}: {err}"));
    }
    Ok(out
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v.get("retval").and_then(|r| r.as_u64()))
        .collect())
}

#[test]
fn may_goto_objects_verify_like_6_18() {
    let (code, out, err) = bpfkit(&["verify", OBJ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("`xdp_may_goto_hash` accepted"), "{out}");
    assert!(out.contains("`xdp_may_goto_spin` accepted"), "{out}");
    // Before 6.9 the kernel does not know the opcode.
    let (code, out, err) = bpfkit(&["verify", "--kernel", "6.8", OBJ]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("unknown opcode e5"), "{out}{err}");
    assert!(out.contains("came in Linux 6.9"), "{out}{err}");
}

#[test]
fn may_goto_replay_agrees_across_engines_and_with_the_kernel() {
    let pcap = capture();
    let pcap = pcap.to_str().unwrap();
    // 7 hashed 8, 134 and 0 times (h = h * 31 + i), low 16 bits
    let hash = |n: u64| {
        let mut h = 7u64;
        for i in 0..n {
            h = h.wrapping_mul(31).wrapping_add(i);
        }
        h & 0xffff
    };
    let want = vec![hash(8), hash(0x86), hash(0)];
    for engine in ["interp", "jit-checked", "jit-fast"] {
        assert_eq!(
            retvals(engine, "xdp_may_goto_hash", pcap).unwrap(),
            want,
            "{engine}"
        );
        assert_eq!(
            retvals(engine, "xdp_may_goto_spin", pcap).unwrap(),
            vec![2, 2, 2],
            "{engine}"
        );
    }
    match retvals("kernel", "xdp_may_goto_hash", pcap) {
        Ok(k) => {
            assert_eq!(k, want, "kernel");
            assert_eq!(
                retvals("kernel", "xdp_may_goto_spin", pcap).unwrap(),
                vec![2, 2, 2],
                "kernel"
            );
        }
        Err(e) if e.contains("unknown opcode e5") => {
            eprintln!("SKIPPED: may_goto on the kernel: this kernel has no may_goto: {e}")
        }
        Err(e) => match bpfkit_loader::probe::kernel_available() {
            Err(why) => eprintln!("SKIPPED: may_goto on the kernel: {why}"),
            Ok(()) => panic!("kernel engine: {e}"),
        },
    }
}
