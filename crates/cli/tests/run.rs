//! `bpfkit run` through its command-line contract: the bpf_conformance plugin contract
//! (program bytes on standard input, memory as base16, r0 printed in hex, exit 0; faults
//! exit 1), and XDP mode on corpus objects.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn bpfkit() -> Command {
    Command::new(env!("CARGO_BIN_EXE_bpfkit"))
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Runs `bpfkit run - <args>` with `stdin` bytes; returns (exit code, stdout, stderr).
fn run_stdin(args: &[&str], stdin: &[u8]) -> (i32, String, String) {
    let mut child = bpfkit()
        .arg("run")
        .arg("-")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn bpfkit");
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Splits a conformance `.data` file into (asm, memory hex, expected r0).
fn sections(text: &str) -> (String, String, u64) {
    let (mut asm, mut mem, mut result) = (String::new(), String::new(), String::new());
    let mut section = "";
    for line in text.lines() {
        if let Some(name) = line.strip_prefix("-- ") {
            section = name.trim();
            continue;
        }
        let content = line.split('#').next().unwrap_or("");
        match section {
            "asm" => {
                asm.push_str(line);
                asm.push('\n');
            }
            "mem" => mem.extend(content.split_whitespace()),
            "result" => result.push_str(content.trim()),
            _ => {}
        }
    }
    let r = u64::from_str_radix(result.trim_start_matches("0x"), 16).expect("-- result in hex");
    (asm, mem, r)
}

#[test]
fn conformance_suite_through_the_plugin_contract() {
    let dir = root().join("../shared/conformance/tests");
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) => {
            eprintln!(
                "\n*** SKIPPED: conformance_suite_through_the_plugin_contract: the bpf_conformance suite is expected at {} ({e}): put the project's shared/ folder beside the checkout to run it ***\n",
                dir.display()
            );
            return;
        }
    };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "data"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 300,
        "expected the 313 conformance tests, found {}",
        files.len()
    );
    let mut failures = Vec::new();
    for f in &files {
        let name = f.file_name().unwrap().to_string_lossy().to_string();
        let (asm, mem, want) = sections(&std::fs::read_to_string(f).unwrap());
        let insns = bpfkit_asm::assemble(&asm).unwrap_or_else(|e| panic!("{name}: {e}"));
        let bytes = bpfkit_isa::to_bytes(&insns);
        let args: Vec<&str> = if mem.is_empty() {
            vec![]
        } else {
            vec!["--mem", &mem]
        };
        let (code, stdout, stderr) = run_stdin(&args, &bytes);
        let got = u64::from_str_radix(stdout.trim(), 16).ok();
        if code != 0 || got != Some(want) {
            failures.push(format!(
                "{name}: exit {code}, stdout {stdout:?}, stderr {stderr:?}, expected {want:#x}"
            ));
        }
    }
    for f in &failures {
        eprintln!("FAIL {f}");
    }
    eprintln!(
        "bpfkit run: {}/{} conformance tests passed",
        files.len() - failures.len(),
        files.len()
    );
    assert!(failures.is_empty());
}

#[test]
fn memory_as_positional_argument() {
    let prog = bpfkit_isa::to_bytes(&bpfkit_asm::assemble("ldxw %r0, [%r1+1]\nexit\n").unwrap());
    let (code, stdout, _) = run_stdin(&["0011223344"], &prog);
    assert_eq!((code, stdout.trim()), (0, "44332211"));
}

#[test]
fn fault_exits_1_naming_instruction_address_and_region() {
    let prog = bpfkit_isa::to_bytes(
        &bpfkit_asm::assemble("mov %r0, 0\nldxdw %r0, [%r1+4]\nexit\n").unwrap(),
    );
    let (code, stdout, stderr) = run_stdin(&["--mem", "0011223344556677"], &prog);
    assert_eq!(code, 1, "stderr: {stderr}");
    assert!(stdout.is_empty());
    assert!(stderr.contains("instruction 1"), "{stderr}");
    assert!(stderr.contains("8-byte read"), "{stderr}");
    assert!(stderr.contains("input memory"), "{stderr}");
}

#[test]
fn garbage_and_unknown_opcodes_exit_1() {
    let (code, _, stderr) = run_stdin(&[], &[1, 2, 3]);
    assert_eq!(code, 1);
    assert!(stderr.contains("not a multiple of 8"), "{stderr}");
    let (code, _, stderr) = run_stdin(&[], &[0xff, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(code, 1);
    assert!(stderr.contains("unknown opcode 0xff"), "{stderr}");
    let (code, _, stderr) = run_stdin(&["--mem", "zz"], &[0x95, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(code, 2, "{stderr}");
}

#[test]
fn xdp_mode_on_a_corpus_object() {
    let obj = root().join("corpus/obj/xdp_counter.o");
    let pkt = root().join("corpus/packets/00_ipv4_tcp_syn.bin");
    let out = bpfkit()
        .args([
            "run",
            obj.to_str().unwrap(),
            "--packet",
            pkt.to_str().unwrap(),
            "--json",
        ])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["retval"], 2);
    assert_eq!(j["action"], "XDP_PASS");
    let input = std::fs::read(&pkt).unwrap();
    let hex: String = input.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(j["data_out"], hex);
}

#[test]
fn programs_the_verifier_rejects_fault_at_run_time_with_their_source_line() {
    let pkt = root().join("corpus/packets/29_eth_only_14.bin");
    for (obj, want) in [
        ("map_value_oob", "value of map #0"),
        ("stack_oob_write", "stack of frame 0"),
        ("bad_ctx_write", "context write at offset 16"),
        ("infinite_loop", "instruction limit"),
        ("unknown_helper", "unknown helper 999"),
    ] {
        let o = root().join(format!("corpus/obj/rejected/{obj}.o"));
        let out = bpfkit()
            .args([
                "run",
                o.to_str().unwrap(),
                "--packet",
                pkt.to_str().unwrap(),
                "--insn-limit",
                "100000",
            ])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{obj}: {err}");
        assert!(err.contains(want), "{obj}: {err}");
        assert!(
            err.contains(&format!("rejected/{obj}.c:")),
            "{obj}: no source line in {err}"
        );
    }
}
