//! `bpfkit run --repeat N`: N runs on one packet buffer, as `BPF_PROG_TEST_RUN` with
//! `repeat` does, and the mean duration per run. Nothing here is timed: the tests check
//! that the duration is reported and plausible, that the program really ran N times (its
//! counters), that the buffer carries over from run to run as in the kernel (metadata
//! added by each run), and, where the kernel can run the program, that the kernel agrees.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn obj(name: &str) -> String {
    root()
        .join("corpus/obj")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

fn packet(name: &str) -> String {
    root()
        .join("corpus/packets")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

/// Runs `bpfkit run ARGS`; returns (exit code, stdout, stderr).
fn bpfkit(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_bpfkit"))
        .arg("run")
        .args(args)
        .output()
        .expect("spawn bpfkit");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The JSON lines of a successful `--json` run, one per engine.
fn json_lines(args: &[&str]) -> Vec<Value> {
    let (code, out, err) = bpfkit(args);
    assert_eq!(code, 0, "bpfkit run {args:?}: {err}");
    out.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect()
}

/// A mean duration as an engine can report it: a finite, non-negative number of
/// nanoseconds below one second per run (these programs run for microseconds at most).
fn plausible_duration(j: &Value) -> f64 {
    let d = j["duration_ns"]
        .as_f64()
        .unwrap_or_else(|| panic!("no duration_ns in {j}"));
    assert!((0.0..1e9).contains(&d), "duration {d} in {j}");
    d
}

/// The value of key `key` (u32) of map `name` in a `--dump-maps --json` line, as u64.
fn u64_value(j: &Value, name: &str, key: u32) -> u64 {
    let key = hex(&key.to_le_bytes());
    let entries = j["maps"][name]
        .as_array()
        .unwrap_or_else(|| panic!("no map {name} in {j}"));
    let v = entries
        .iter()
        .find(|e| e[0].as_str() == Some(key.as_str()))
        .unwrap_or_else(|| panic!("no key {key} in map {name}: {j}"))[1]
        .as_str()
        .unwrap();
    let b: Vec<u8> = (0..v.len() / 2)
        .map(|i| u8::from_str_radix(&v[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    u64::from_le_bytes(b[..8].try_into().unwrap())
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

const USER_ENGINES: &str = "interp,jit,jit-fast";

#[test]
fn repeat_runs_n_times_and_reports_a_mean_duration() {
    let o = obj("xdp_counter.o");
    let p = packet("00_ipv4_tcp_syn.bin");
    for n in [1u32, 7, 1000] {
        let n_s = n.to_string();
        let lines = json_lines(&[
            &o,
            "--packet",
            &p,
            "--engine",
            USER_ENGINES,
            "--repeat",
            &n_s,
            "--dump-maps",
            "--json",
        ]);
        let names: Vec<&str> = lines
            .iter()
            .map(|j| j["engine"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["interp", "jit", "jit-fast"]);
        for j in &lines {
            assert_eq!(j["repeat"], n, "{j}");
            plausible_duration(j);
            assert_eq!(j["action"], "XDP_PASS", "{j}");
            // `verdicts[XDP_PASS]` counts the runs: the program ran n times, each engine
            // on its own maps.
            assert_eq!(u64_value(j, "verdicts", 2), u64::from(n), "{j}");
        }
    }
    // Without --repeat: one run, no duration.
    let j = &json_lines(&[&o, "--packet", &p, "--dump-maps", "--json"])[0];
    assert!(j.get("duration_ns").is_none(), "{j}");
    assert_eq!(u64_value(j, "verdicts", 2), 1);
}

#[test]
fn repeat_keeps_the_buffer_from_run_to_run() {
    // xdp_meta adds 8 bytes of metadata per run: after 3 runs on one buffer the output
    // holds 24 bytes of metadata in front of the frame (BPF_PROG_TEST_RUN does the same:
    // checked against the kernel below when it can run the program).
    let o = obj("xdp_meta.o");
    let p = packet("01_ipv4_tcp_data.bin");
    let frame = std::fs::read(&p).unwrap().len();
    let one = json_lines(&[&o, "--packet", &p, "--engine", USER_ENGINES, "--json"]);
    let three = json_lines(&[
        &o,
        "--packet",
        &p,
        "--engine",
        USER_ENGINES,
        "--repeat",
        "3",
        "--json",
    ]);
    for (a, b) in one.iter().zip(&three) {
        let len = |j: &Value| j["data_out"].as_str().unwrap().len() / 2;
        assert_eq!(len(a), frame + 8, "{a}");
        assert_eq!(len(b), frame + 24, "{b}");
        assert_eq!(b["action"], "XDP_PASS");
        // The frame itself is unchanged behind the metadata.
        assert!(b["data_out"]
            .as_str()
            .unwrap()
            .ends_with(&hex(&std::fs::read(&p).unwrap())));
    }
}

/// Whether the running kernel offers XDP every helper corpus object `name` calls (else
/// prints `SKIPPED: <test>: ...`). `object_or_skip` tells a helper the kernel refuses
/// from a probe program the verifier refuses for its arguments (both EACCES).
fn offers(test: &str, name: &str) -> bool {
    let bytes = std::fs::read(obj(name)).unwrap();
    let linked = bpfkit_object::Object::parse(&bytes)
        .unwrap()
        .link()
        .unwrap();
    bpfkit_loader::features::object_or_skip(test, name, &linked)
}

#[test]
fn kernel_repeat_reports_the_kernels_duration() {
    let test = "kernel_repeat_reports_the_kernels_duration";
    if !bpfkit_loader::probe::kernel_or_skip(test) {
        return;
    }
    let o = obj("xdp_counter.o");
    let p = packet("00_ipv4_tcp_syn.bin");
    let lines = json_lines(&[
        &o,
        "--packet",
        &p,
        "--engine",
        "jit-fast,kernel",
        "--repeat",
        "1000",
        "--dump-maps",
        "--json",
    ]);
    assert_eq!(lines.len(), 2);
    let k = &lines[1];
    assert_eq!(k["engine"], "kernel");
    // The kernel reports an integer (`duration`, ns per run).
    let d = plausible_duration(k);
    assert_eq!(d.fract(), 0.0, "{k}");
    assert_eq!(u64_value(k, "verdicts", 2), 1000, "{k}");
    assert_eq!(lines[0]["data_out"], k["data_out"]);
    assert_eq!(lines[0]["retval"], k["retval"]);

    // A program that loads only with the object's BTF (a bpf_loop callback needs its
    // func info): the kernel engine loads the whole file then.
    if offers(&format!("{test} (bpf_loop part)"), "xdp_loop.o") {
        let lines = json_lines(&[
            &obj("xdp_loop.o"),
            "--program",
            "xdp_bpf_loop",
            "--packet",
            &p,
            "--engine",
            "interp,jit-fast,kernel",
            "--repeat",
            "10",
            "--json",
        ]);
        assert_eq!(lines.len(), 3);
        for j in &lines {
            plausible_duration(j);
            assert_eq!(
                j["retval"], lines[2]["retval"],
                "{j} vs kernel {}",
                lines[2]
            );
            assert_eq!(j["data_out"], lines[2]["data_out"]);
        }
    }

    // The buffer carries over in the kernel too (the user-space engines are built on it).
    if !offers(&format!("{test} (metadata part)"), "xdp_meta.o") {
        return;
    }
    let o = obj("xdp_meta.o");
    let p = packet("01_ipv4_tcp_data.bin");
    let lines = json_lines(&[
        &o,
        "--packet",
        &p,
        "--engine",
        "interp,jit,jit-fast,kernel",
        "--repeat",
        "3",
        "--json",
    ]);
    for j in &lines[..3] {
        assert_eq!(
            j["data_out"], lines[3]["data_out"],
            "{j} vs kernel {}",
            lines[3]
        );
        assert_eq!(j["retval"], lines[3]["retval"]);
    }
}

#[test]
fn repeat_usage_errors() {
    let p = packet("00_ipv4_tcp_syn.bin");
    let o = obj("xdp_counter.o");
    // 0 runs, not a number, an unknown engine, an engine twice: usage errors.
    for args in [
        vec![o.as_str(), "--packet", &p, "--repeat", "0"],
        vec![o.as_str(), "--packet", &p, "--repeat", "many"],
        vec![o.as_str(), "--packet", &p, "--repeat", "4294967296"],
        vec![o.as_str(), "--packet", &p, "--engine", "interp,rbpf"],
        vec![o.as_str(), "--packet", &p, "--engine", "jit,jit"],
    ] {
        let (code, _, err) = bpfkit(&args);
        assert_eq!(code, 2, "{args:?}: {err}");
    }
    // Raw programs: --repeat is for XDP objects.
    let dir = common::scratch_dir("raw");
    let s = dir.join("t.s");
    std::fs::write(&s, "mov %r0, 42\nexit\n").unwrap();
    let (code, _, err) = bpfkit(&[s.to_str().unwrap(), "--repeat", "3"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--repeat"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
    // jit-fast refuses what bpfkit's verifier rejects (input judged bad).
    let bad = root().join("corpus/obj/rejected/map_value_oob.o");
    let (code, _, err) = bpfkit(&[
        bad.to_str().unwrap(),
        "--packet",
        &p,
        "--engine",
        "jit-fast",
        "--repeat",
        "2",
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("verifier"), "{err}");
}
