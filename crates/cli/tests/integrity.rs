//! Issue 17 regressions: output integrity (`-` is stdout, summaries on stderr when stdout
//! carries data, broken pipes, interrupted replays), input robustness (captures from
//! pipes, FIFOs and stdin; hex errors; timestamps; instruction limits; empty programs)
//! and the exit-status contract of every subcommand.

mod common;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn corpus(p: &str) -> String {
    root().join("corpus").join(p).display().to_string()
}

fn tmpdir(name: &str) -> PathBuf {
    common::scratch_dir(name)
}

/// The binary under test; `BPFKIT_BIN` points the tests at another build (e.g. one
/// from before a fix, to see the regression tests fail there).
fn bin() -> String {
    std::env::var("BPFKIT_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_bpfkit").to_string())
}

fn cmd(args: &[&str]) -> Command {
    let mut c = Command::new(bin());
    c.args(args);
    c
}

struct Out {
    code: Option<i32>,
    stdout: Vec<u8>,
    stderr: String,
}

fn run_in(dir: &Path, args: &[&str], stdin: Option<&[u8]>) -> Out {
    let mut c = cmd(args);
    c.current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
    let mut child = c.spawn().expect("run bpfkit");
    if let Some(data) = stdin {
        let mut w = child.stdin.take().unwrap();
        let data = data.to_vec();
        // A thread, so a child that stops reading cannot block the test.
        std::thread::spawn(move || {
            let _ = w.write_all(&data);
        });
    }
    let o = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "panic: {stderr}");
    Out {
        code: o.status.code(),
        stdout: o.stdout,
        stderr,
    }
}

fn run(args: &[&str]) -> Out {
    run_in(&root(), args, None)
}

/// A strict classic pcap parser: the records, or why the file is not a whole pcap.
fn pcap_records(b: &[u8]) -> Result<Vec<(u32, u32, Vec<u8>)>, String> {
    if b.len() < 24 || b[0..4] != 0xa1b2_3c4du32.to_le_bytes() {
        return Err("bad header".into());
    }
    let mut at = 24;
    let mut v = Vec::new();
    while at < b.len() {
        let h = b.get(at..at + 16).ok_or("record header cut short")?;
        let w = |i: usize| u32::from_le_bytes(h[i..i + 4].try_into().unwrap());
        if w(4) >= 1_000_000_000 {
            return Err(format!("nanoseconds {} out of range", w(4)));
        }
        let data = b
            .get(at + 16..at + 16 + w(8) as usize)
            .ok_or("record data cut short")?;
        v.push((w(0), w(4), data.to_vec()));
        at += 16 + w(8) as usize;
    }
    Ok(v)
}

/// A strict pcapng block walker: the Enhanced Packet Blocks' packet comments.
fn pcapng_comments(b: &[u8]) -> Result<Vec<String>, String> {
    let mut at = 0;
    let mut v = Vec::new();
    while at < b.len() {
        let h = b.get(at..at + 8).ok_or("block header cut short")?;
        let btype = u32::from_le_bytes(h[0..4].try_into().unwrap());
        let len = u32::from_le_bytes(h[4..8].try_into().unwrap()) as usize;
        let block = b.get(at..at + len).ok_or("block cut short")?;
        if len < 12 || !len.is_multiple_of(4) || block[len - 4..] != block[4..8] {
            return Err(format!("bad block length at {at}"));
        }
        if btype == 6 {
            let caplen = u32::from_le_bytes(block[20..24].try_into().unwrap()) as usize;
            let mut o = 28 + caplen.div_ceil(4) * 4;
            while o + 4 <= len - 4 {
                let code = u16::from_le_bytes(block[o..o + 2].try_into().unwrap());
                let olen = u16::from_le_bytes(block[o + 2..o + 4].try_into().unwrap()) as usize;
                if code == 0 {
                    break;
                }
                if code == 1 {
                    v.push(String::from_utf8_lossy(&block[o + 4..o + 4 + olen]).into_owned());
                }
                o += 4 + olen.div_ceil(4) * 4;
            }
        }
        at += len;
    }
    Ok(v)
}

fn pcap_bytes(records: &[(u32, u32, &[u8])]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    b.extend_from_slice(&[2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    b.extend_from_slice(&65535u32.to_le_bytes());
    b.extend_from_slice(&1u32.to_le_bytes());
    for (sec, usec, data) in records {
        b.extend_from_slice(&sec.to_le_bytes());
        b.extend_from_slice(&usec.to_le_bytes());
        b.extend_from_slice(&(data.len() as u32).to_le_bytes());
        b.extend_from_slice(&(data.len() as u32).to_le_bytes());
        b.extend_from_slice(data);
    }
    b
}

fn frame() -> Vec<u8> {
    std::fs::read(corpus("packets/00_ipv4_tcp_syn.bin")).unwrap()
}

// ---- item 1: output integrity ----

/// The README's first command redirected to a file: the summary used to overwrite the
/// start of the JSON written through /dev/stdout.
#[test]
fn maps_out_dev_stdout_redirected_to_a_file_stays_json() {
    let d = tmpdir("devstdout");
    let out = d.join("out.txt");
    let f = std::fs::File::create(&out).unwrap();
    let st = cmd(&[
        "replay",
        &corpus("obj/xdp_counter.o"),
        &corpus("pcap/mixed.pcap"),
        "--maps-out",
        "/dev/stdout",
    ])
    .stdout(f)
    .stderr(Stdio::piped())
    .output()
    .unwrap();
    assert_eq!(st.status.code(), Some(0));
    let text = std::fs::read_to_string(&out).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).expect("stdout is the maps JSON alone");
    assert!(v.is_object());
    assert!(String::from_utf8_lossy(&st.stderr).contains("packets 300"));
}

#[test]
fn dash_is_stdout_for_every_output_option() {
    let d = tmpdir("dash");
    for opt in ["--maps-out", "--trace", "--coverage", "--pcapng"] {
        let o = run_in(
            &d,
            &[
                "replay",
                &corpus("obj/xdp_counter.o"),
                &corpus("pcap/mixed.pcap"),
                opt,
                "-",
            ],
            None,
        );
        assert_eq!(o.code, Some(0), "{opt}: {}", o.stderr);
        assert!(!d.join("-").exists(), "{opt} - created a file named `-`");
        assert!(o.stderr.contains("packets 300"), "{opt}: summary on stderr");
        match opt {
            "--maps-out" => {
                serde_json::from_slice::<serde_json::Value>(&o.stdout).expect("maps JSON");
            }
            "--trace" => {
                let mut n = 0;
                for l in o.stdout.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                    serde_json::from_slice::<serde_json::Value>(l).expect("JSON line");
                    n += 1;
                }
                assert_eq!(n, 300);
            }
            "--coverage" => assert!(String::from_utf8_lossy(&o.stdout).contains("end_of_record")),
            _ => assert_eq!(pcapng_comments(&o.stdout).unwrap().len(), 300),
        }
    }
    // Two outputs cannot share stdout; --out is a directory.
    let o = run_in(
        &d,
        &[
            "replay",
            &corpus("obj/xdp_counter.o"),
            &corpus("pcap/mixed.pcap"),
            "--trace",
            "-",
            "--maps-out",
            "-",
        ],
        None,
    );
    assert_eq!(o.code, Some(2), "{}", o.stderr);
    let o = run_in(
        &d,
        &[
            "replay",
            &corpus("obj/xdp_counter.o"),
            &corpus("pcap/mixed.pcap"),
            "--out",
            "-",
        ],
        None,
    );
    assert_eq!(o.code, Some(2), "{}", o.stderr);
    // asm -o - writes the bytes to stdout
    std::fs::write(d.join("t.s"), "mov %r0, 42\nexit\n").unwrap();
    let o = run_in(&d, &["asm", "t.s", "-o", "-"], None);
    assert_eq!((o.code, o.stdout.len()), (Some(0), 16));
}

/// Each subcommand that writes to stdout, with a reader that is already gone: a quiet
/// end with status 141, never a panic (inspect --json used to exit 101).
#[test]
fn broken_pipe_ends_quietly_with_141() {
    let d = tmpdir("pipe");
    std::fs::write(d.join("t.s"), "mov %r0, 42\nexit\n").unwrap();
    let obj = corpus("obj/xdp_firewall.o");
    let cap = corpus("pcap/mixed.pcap");
    let cases: Vec<Vec<&str>> = vec![
        vec!["inspect", &obj, "--json"],
        vec!["inspect", &obj],
        vec!["disasm", &obj],
        vec!["verify", &obj],
        vec!["run", "t.s"],
        vec!["asm", "t.s", "--hex"],
        vec!["replay", &obj, &cap],
        vec!["replay", &obj, &cap, "--trace", "-"],
        vec!["replay", &obj, &cap, "--pcapng", "-"],
        vec!["--help"],
    ];
    for args in cases {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let o = cmd(&args)
            .current_dir(&d)
            .stdout(writer)
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        if args == ["--help"] {
            // clap's own output: it ignores the error and exits 0.
            assert!(o.status.code().is_some(), "{args:?}");
            continue;
        }
        assert_eq!(o.status.code(), Some(141), "{args:?}: {err}");
        assert!(!err.contains("error"), "{args:?}: not quiet: {err}");
    }
}

/// SIGINT in the middle of `replay --out --trace --pcapng`: every output ends on a whole
/// record, all hold the same number of packets, and the summary says INTERRUPTED with
/// that number. The capture comes through a pipe: once more than a pipe buffer of it has
/// been written, the replay loop is running (no timing involved).
#[test]
fn sigint_closes_every_output_on_a_whole_record() {
    let d = tmpdir("sigint");
    let f = frame();
    let recs: Vec<(u32, u32, &[u8])> = (0..4000).map(|i| (1_700_000_000, i, &f[..])).collect();
    let first = pcap_bytes(&recs);
    let more: Vec<u8> = pcap_bytes(&recs)[24..].to_vec();
    let mut child = cmd(&[
        "replay",
        &corpus("obj/xdp_counter.o"),
        "-",
        "--out",
        "out",
        "--trace",
        "t.jsonl",
        "--pcapng",
        "all.pcapng",
    ])
    .current_dir(&d)
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let mut w = child.stdin.take().unwrap();
    // More than a pipe buffer (64 KiB): when this returns, bpfkit is reading packets.
    w.write_all(&first).unwrap();
    // SAFETY: kill() with the pid of our own live child and a valid signal number.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
    // Keep feeding until bpfkit stops reading (it ends at the next packet).
    while w.write_all(&more).is_ok() {}
    drop(w);
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let mut summary = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut summary)
        .unwrap();
    let st = child.wait().unwrap();
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(st.code(), Some(130), "{stderr}");
    let line = summary
        .lines()
        .find(|l| l.starts_with("INTERRUPTED by SIGINT after "))
        .unwrap_or_else(|| panic!("no INTERRUPTED line: {summary}"));
    let n: usize = line["INTERRUPTED by SIGINT after ".len()..]
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(n > 0);
    assert!(line.contains(&format!(
        "{n} trace records, {n} frames in --out pcaps, {n} frames in --pcapng"
    )));
    let trace = std::fs::read_to_string(d.join("t.jsonl")).unwrap();
    assert!(trace.ends_with('\n'));
    let lines: Vec<serde_json::Value> = trace
        .lines()
        .map(|l| serde_json::from_str(l).expect("whole JSON line"))
        .collect();
    assert_eq!(lines.len(), n);
    let pcap = pcap_records(&std::fs::read(d.join("out/XDP_PASS.pcap")).unwrap()).unwrap();
    assert_eq!(pcap.len(), n);
    let ng = pcapng_comments(&std::fs::read(d.join("all.pcapng")).unwrap()).unwrap();
    assert_eq!(ng.len(), n);
    assert_eq!(ng[0], "XDP_PASS packet 0");
    // No temporary file is left.
    for e in std::fs::read_dir(&d).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        assert!(!name.ends_with(".tmp"), "{name}");
    }
}

/// A replay that dies (SIGKILL, no chance to clean up) leaves the destination as it
/// was: outputs are written under a temporary name and renamed when complete. It used to
/// truncate the trace when it started.
#[test]
fn killed_replay_does_not_touch_existing_outputs() {
    let d = tmpdir("atomic");
    std::fs::write(d.join("t.jsonl"), "old\n").unwrap();
    let f = frame();
    let recs: Vec<(u32, u32, &[u8])> = (0..4000).map(|i| (1_700_000_000, i, &f[..])).collect();
    let mut child = cmd(&[
        "replay",
        &corpus("obj/xdp_counter.o"),
        "-",
        "--trace",
        "t.jsonl",
    ])
    .current_dir(&d)
    .stdin(Stdio::piped())
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    let mut w = child.stdin.take().unwrap();
    // More than a pipe buffer: when this returns, the replay loop is running.
    w.write_all(&pcap_bytes(&recs)).unwrap();
    child.kill().unwrap();
    drop(w);
    child.wait().unwrap();
    assert_eq!(std::fs::read_to_string(d.join("t.jsonl")).unwrap(), "old\n");
}

// ---- item 2: input robustness ----

/// Captures from a pipe, /dev/stdin and a FIFO: the reader used to open the path a second
/// time after checking the magic, so every one failed with "wrong magic number".
#[test]
fn captures_from_pipes_stdin_and_fifos() {
    let d = tmpdir("fifo");
    for cap in [
        "pcap/mixed.pcap",
        "pcap/mixed.pcapng",
        "pcap/mixed-ns-be.pcap",
    ] {
        let bytes = std::fs::read(corpus(cap)).unwrap();
        for arg in ["-", "/dev/stdin"] {
            let o = run_in(
                &d,
                &[
                    "replay",
                    &corpus("obj/xdp_counter.o"),
                    arg,
                    "--format",
                    "json",
                ],
                Some(&bytes),
            );
            assert_eq!(o.code, Some(0), "{cap} {arg}: {}", o.stderr);
            let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
            assert_eq!(v["packets"], 300, "{cap} {arg}");
        }
        let fifo = d.join("cap.fifo");
        let _ = std::fs::remove_file(&fifo);
        let made = Command::new("mkfifo").arg(&fifo).status();
        if !made.is_ok_and(|s| s.success()) {
            println!("SKIPPED: the FIFO case: mkfifo is not available");
            continue;
        }
        let f2 = fifo.clone();
        let writer = std::thread::spawn(move || {
            let mut w = std::fs::OpenOptions::new().write(true).open(f2).unwrap();
            let _ = w.write_all(&bytes);
        });
        let o = run_in(
            &d,
            &[
                "replay",
                &corpus("obj/xdp_counter.o"),
                fifo.to_str().unwrap(),
                "--format",
                "json",
            ],
            None,
        );
        writer.join().unwrap();
        assert_eq!(o.code, Some(0), "{cap} fifo: {}", o.stderr);
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(v["packets"], 300, "{cap} fifo");
    }
    // Garbage on stdin is judged bad, an empty stdin too.
    let o = run_in(
        &d,
        &["replay", &corpus("obj/xdp_counter.o"), "-"],
        Some(b"nonsense"),
    );
    assert_eq!(o.code, Some(1), "{}", o.stderr);
    let o = run_in(
        &d,
        &["replay", &corpus("obj/xdp_counter.o"), "-"],
        Some(b""),
    );
    assert_eq!(o.code, Some(1), "{}", o.stderr);
}

/// Hex inputs: non-ASCII used to panic (slicing inside a character); every error names
/// the option.
#[test]
fn hex_errors_name_the_field_and_never_panic() {
    let d = tmpdir("hex");
    std::fs::write(d.join("t.s"), "mov %r0, 42\nexit\n").unwrap();
    let obj = corpus("obj/xdp_counter.o");
    for (args, field) in [
        (vec!["run", "t.s", "--mem", "aé0"], "--mem"),
        (vec!["run", "t.s", "é"], "MEM"),
        (vec!["run", "t.s", "--mem", "abc"], "--mem"),
        (vec!["run", &obj, "--packet-hex", "00zz"], "--packet-hex"),
        (
            vec![
                "run",
                &obj,
                "--packet-hex",
                "00",
                "--map-update",
                "proto_stats:é:00",
            ],
            "--map-update",
        ),
    ] {
        let o = run_in(&d, &args, None);
        assert_eq!(o.code, Some(2), "{args:?}: {}", o.stderr);
        assert!(o.stderr.contains(field), "{args:?}: {}", o.stderr);
    }
    // maps-in: non-ASCII key, out-of-range index, bad value: judged bad, entry named.
    for (doc, what) in [
        (r#"{"proto_stats": [["é0", "00"]]}"#, "entry 0: key"),
        (r#"{"proto_stats": [[4294967296, "00"]]}"#, "entry 0: key"),
        (r#"{"proto_stats": [[0, "0é"]]}"#, "entry 0: value"),
    ] {
        std::fs::write(d.join("m.json"), doc).unwrap();
        let o = run_in(
            &d,
            &[
                "replay",
                &obj,
                &corpus("pcap/mixed.pcap"),
                "--maps-in",
                "m.json",
            ],
            None,
        );
        assert_eq!(o.code, Some(1), "{doc}: {}", o.stderr);
        assert!(o.stderr.contains(what), "{doc}: {}", o.stderr);
    }
}

/// Timestamp seconds 0xffffffff with a fraction past one second (a record that is after
/// 2106 once normalized) used to stop --out with exit 2; now the trace carries it exactly,
/// the pcap holds the largest timestamp it can, and the summary says so.
#[test]
fn timestamps_of_any_value_are_carried_through() {
    let d = tmpdir("ts");
    let f = frame();
    std::fs::write(
        d.join("c.pcap"),
        pcap_bytes(&[
            (u32::MAX, 999_999, &f),
            (u32::MAX, u32::MAX, &f),
            (0, 0, &f),
        ]),
    )
    .unwrap();
    let o = run_in(
        &d,
        &[
            "replay",
            &corpus("obj/xdp_counter.o"),
            "c.pcap",
            "--out",
            "out",
            "--trace",
            "t.jsonl",
        ],
        None,
    );
    assert_eq!(o.code, Some(0), "{}", o.stderr);
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("1 frames have timestamps after 2106"),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    let recs = pcap_records(&std::fs::read(d.join("out/XDP_PASS.pcap")).unwrap()).unwrap();
    assert_eq!(
        recs.iter().map(|r| (r.0, r.1)).collect::<Vec<_>>(),
        vec![(u32::MAX, 999_999_000), (u32::MAX, 999_999_999), (0, 0)]
    );
    let t = std::fs::read_to_string(d.join("t.jsonl")).unwrap();
    let ts: Vec<u64> = t
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["ts_ns"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(
        ts,
        vec![
            4_294_967_295_999_999_000,
            4_294_967_295_000_000_000 + u32::MAX as u64 * 1000,
            0
        ]
    );
}

/// An object the verifier rejects, with an endless loop: replay warns once, prominently,
/// and each packet costs the unverified limit (2^20 instructions), not 2^27.
#[test]
fn unverified_endless_loop_is_cut_short_with_one_warning() {
    let d = tmpdir("loop");
    let obj = corpus("obj/rejected/infinite_loop.o");
    let o = run_in(
        &d,
        &["replay", &obj, &corpus("pcap/mixed.pcap"), "--limit", "5"],
        None,
    );
    assert_eq!(o.code, Some(1), "{}", o.stderr);
    assert_eq!(o.stderr.matches("NOT VERIFIED").count(), 1, "{}", o.stderr);
    assert!(o.stderr.contains("infinite loop"), "{}", o.stderr);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("faults 5"), "{out}");
    assert!(
        out.contains("instruction limit of 1048576 reached"),
        "{out}"
    );
    // --insn-limit sets it, on replay and run.
    let o = run_in(
        &d,
        &[
            "replay",
            &obj,
            &corpus("pcap/mixed.pcap"),
            "--limit",
            "2",
            "--insn-limit",
            "1000",
            "--format",
            "json",
        ],
        None,
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["insn_limit"], 1000);
    assert!(v["first_fault"]["message"]
        .as_str()
        .unwrap()
        .contains("instruction limit of 1000 reached"));
    let o = run_in(
        &d,
        &[
            "run",
            &obj,
            "--packet-hex",
            &"00".repeat(60),
            "--insn-limit",
            "1000",
        ],
        None,
    );
    assert_eq!(o.code, Some(1));
    assert!(
        o.stderr.contains("instruction limit of 1000 reached"),
        "{}",
        o.stderr
    );
    let o = run_in(
        &d,
        &[
            "replay",
            &obj,
            &corpus("pcap/mixed.pcap"),
            "--insn-limit",
            "0",
        ],
        None,
    );
    assert_eq!(o.code, Some(2));
}

/// The first example of `bpfkit run --help` used to fail (no `exit`).
#[test]
fn run_help_first_example_works() {
    let d = tmpdir("help");
    let help = String::from_utf8(run(&["run", "--help"]).stdout).unwrap();
    let line = help
        .lines()
        .skip_while(|l| !l.starts_with("Examples:"))
        .nth(1)
        .unwrap();
    let (shell, comment) = line.split_once('#').unwrap();
    let tmpbin = d.join("bin");
    std::fs::create_dir_all(&tmpbin).unwrap();
    let _ = std::fs::remove_file(tmpbin.join("bpfkit"));
    std::os::unix::fs::symlink(bin(), tmpbin.join("bpfkit")).unwrap();
    let bin = tmpbin;
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let o = Command::new("sh")
        .arg("-c")
        .arg(shell.trim())
        .current_dir(&d)
        .env("PATH", path)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{line}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let want = comment.trim().trim_start_matches("prints ");
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), want);
}

#[test]
fn engine_lists_its_values() {
    for sub in ["replay", "run"] {
        let help = String::from_utf8(run(&[sub, "--help"]).stdout).unwrap();
        assert!(
            help.contains("[possible values: interp, jit"),
            "{sub}: {help}"
        );
        let o = run(&[sub, "x", "y", "--engine", "bogus"]);
        assert_eq!(o.code, Some(2));
        assert!(o.stderr.contains("possible values"), "{}", o.stderr);
    }
}

/// A failed `load --pin-dir DIR` used to leave the empty DIR behind.
#[test]
fn failed_load_leaves_no_pin_dir() {
    let d = tmpdir("pindir");
    std::fs::write(d.join("g.o"), b"garbage").unwrap();
    let o = run_in(&d, &["load", "g.o", "--pin-dir", "pins/a/b"], None);
    assert_eq!(o.code, Some(1), "{}", o.stderr);
    assert!(!d.join("pins").exists());
    std::fs::create_dir(d.join("keep")).unwrap();
    let o = run_in(&d, &["load", "g.o", "--pin-dir", "keep/sub"], None);
    assert_eq!(o.code, Some(1), "{}", o.stderr);
    assert!(d.join("keep").exists() && !d.join("keep/sub").exists());
}

// ---- item 3: the exit-status contract ----

/// Every subcommand's failure modes: 1 for input judged bad, 2 for usage and I/O.
#[test]
fn exit_status_contract_of_every_subcommand() {
    let d = tmpdir("contract");
    std::fs::write(d.join("g.o"), b"garbage, not an object").unwrap();
    std::fs::write(d.join("bad.s"), "mov %r0,\n").unwrap();
    std::fs::write(d.join("t.s"), "mov %r0, 42\nexit\n").unwrap();
    std::fs::write(d.join("bad.json"), "{not json").unwrap();
    let obj = corpus("obj/xdp_counter.o");
    let cap = corpus("pcap/mixed.pcap");
    let rejected = corpus("obj/rejected/infinite_loop.o");
    let cases: Vec<(Vec<&str>, i32)> = vec![
        (vec![], 2),
        (vec!["nosuchcommand"], 2),
        (vec!["disasm", "missing.o"], 2),
        (vec!["disasm", &obj, "--bogus"], 2),
        (vec!["disasm", "g.o", "--prog", "x"], 2),
        (vec!["disasm", &obj], 0),
        (vec!["asm", "missing.s", "-o", "x"], 2),
        (vec!["asm", "bad.s", "-o", "x"], 1),
        (vec!["asm", "t.s", "-o", "no/such/dir/x"], 2),
        (vec!["inspect", "missing.o"], 2),
        (vec!["inspect", "g.o"], 1),
        (vec!["inspect", &obj], 0),
        (vec!["run", "missing.bin"], 2),
        (vec!["run", "bad.s"], 1),
        (vec!["run", "t.s", "--mem", "zz"], 2),
        (vec!["run", "t.s", "--insn-limit", "x"], 2),
        (vec!["run", "t.s"], 0),
        (vec!["verify", "missing.o"], 2),
        (vec!["verify", "g.o"], 1),
        (vec!["verify", &rejected], 1),
        (vec!["verify", &obj], 0),
        (vec!["replay", "missing.o", &cap], 2),
        (vec!["replay", "g.o", &cap], 1),
        (vec!["replay", &obj, "missing.pcap"], 2),
        (vec!["replay", &obj, "g.o"], 1),
        (vec!["replay", &obj, &cap, "--maps-in", "missing.json"], 2),
        (vec!["replay", &obj, &cap, "--maps-in", "bad.json"], 1),
        (vec!["replay", &obj, &cap, "--trace", "no/such/dir/t"], 2),
        (vec!["replay", &obj, &cap, "--format", "yaml"], 2),
        (vec!["replay", &obj, &cap, "--limit", "-1"], 2),
        (
            vec![
                "replay",
                &rejected,
                &cap,
                "--limit",
                "1",
                "--insn-limit",
                "100",
            ],
            1,
        ),
        (vec!["replay", &obj, &cap], 0),
        (vec!["load", "missing.o"], 2),
        (vec!["load", "g.o"], 1),
        (vec!["attach", "g.o"], 2),
        (vec!["attach", "g.o", "--iface", "lo", "--prog", "x"], 1),
        (vec!["detach"], 2),
        (vec!["prog", "bogus"], 2),
        (vec!["map", "dump"], 2),
        (vec!["map", "bogus", "x"], 2),
        (vec!["map", "dump", "missing/pin"], 2),
    ];
    for (args, want) in cases {
        let o = run_in(&d, &args, None);
        assert_eq!(o.code, Some(want), "{args:?}: {}", o.stderr);
        if want != 0 {
            assert!(
                !o.stderr.is_empty() || !o.stdout.is_empty(),
                "{args:?}: no message"
            );
        }
    }
    // Documented in --help.
    let help = String::from_utf8(run(&["--help"]).stdout).unwrap();
    for s in [
        "0    success",
        "1    the input was judged bad",
        "2    usage error",
        "141",
        "130",
    ] {
        assert!(help.contains(s), "{s}: {help}");
    }
}

/// `map update --key` with non-ASCII hex used to panic (slicing inside a character).
#[test]
fn map_key_hex_errors_are_usage_errors() {
    if let Err(why) = bpfkit_loader::probe::kernel_available() {
        println!("SKIPPED: map_key_hex_errors_are_usage_errors: {why}");
        return;
    }
    if !Path::new("/sys/fs/bpf").is_dir() {
        println!("SKIPPED: map_key_hex_errors_are_usage_errors: no bpffs at /sys/fs/bpf");
        return;
    }
    /// Removes the pins even when an assertion fails.
    struct Pins(String);
    impl Drop for Pins {
        fn drop(&mut self) {
            if let Ok(rd) = std::fs::read_dir(&self.0) {
                for e in rd.flatten() {
                    let _ = std::fs::remove_file(e.path());
                }
            }
            let _ = std::fs::remove_dir(&self.0);
        }
    }
    let pins = Pins(format!(
        "/sys/fs/bpf/bpfkit-integrity-{}",
        std::process::id()
    ));
    let pins = &pins.0;
    let o = run(&["load", &corpus("obj/xdp_firewall.o"), "--pin-dir", pins]);
    assert_eq!(o.code, Some(0), "{}", o.stderr);
    let map = format!("{pins}/blocklist");
    let cases = [
        (
            "aé0",
            Some(2),
            "--key `aé0`: 'é' at character 1 is not a hex digit",
        ),
        ("zz", Some(2), "'z' at character 0 is not a hex digit"),
        ("0a0000", Some(1), "key_size is 4"),
        ("0a000014", Some(0), ""),
    ];
    for (key, code, msg) in cases {
        let o = run(&[
            "map",
            "update",
            &map,
            "--key",
            key,
            "--value",
            "0000000000000000",
        ]);
        assert_eq!(o.code, code, "{key}: {}", o.stderr);
        assert!(o.stderr.contains(msg), "{key}: {}", o.stderr);
    }
}
