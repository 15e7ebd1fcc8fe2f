//! `bpfkit replay` end to end: exit statuses, JSON summary, outputs.

mod common;

use std::path::PathBuf;
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

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
fn replay_summary_json_and_exit_statuses() {
    let (code, out, err) = bpfkit(&[
        "replay",
        "corpus/obj/xdp_counter.o",
        "corpus/pcap/mixed.pcapng",
        "--format",
        "json",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON summary");
    assert_eq!(v["packets"], 300);
    assert_eq!(v["actions"]["XDP_PASS"], 300);
    assert!(v["packets_per_second"].as_f64().unwrap() > 0.0);

    let (code, out, _) = bpfkit(&[
        "replay",
        "corpus/obj/xdp_counter.o",
        "corpus/pcap/mixed.pcap",
        "--compare",
        "interp,jit",
    ]);
    assert_eq!(code, 0);
    assert!(out.contains("compared interp, jit: no difference"), "{out}");

    // Bad capture: 1; missing file and bad usage: 2.
    let (code, _, err) = bpfkit(&[
        "replay",
        "corpus/obj/xdp_counter.o",
        "corpus/pcap/bad-magic.pcap",
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("not a pcap or pcapng"), "{err}");
    let (code, _, _) = bpfkit(&["replay", "corpus/obj/xdp_counter.o", "/nonexistent.pcap"]);
    assert_eq!(code, 2);
    let (code, _, _) = bpfkit(&[
        "replay",
        "corpus/obj/xdp_counter.o",
        "corpus/pcap/mixed.pcap",
        "--engine",
        "gpu",
    ]);
    assert_eq!(code, 2);
    let (code, _, err) = bpfkit(&[
        "replay",
        "corpus/obj/xdp_counter.o",
        "corpus/pcap/mixed.pcap",
        "--prog",
        "nope",
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("no program `nope`"), "{err}");
}

#[test]
fn replay_coverage_file_resolves_sources_for_genhtml() {
    let dir = common::scratch_dir("coverage");
    let info = dir.join("cov.info");
    let (code, out, err) = bpfkit(&[
        "replay",
        "corpus/obj/xdp_csum.o",
        "corpus/pcap/mixed.pcap",
        "--coverage",
        info.to_str().unwrap(),
        "--coverage-summary",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("coverage: instructions"), "{out}");
    let text = std::fs::read_to_string(&info).unwrap();
    let sf = text.lines().find_map(|l| l.strip_prefix("SF:")).unwrap();
    assert!(root().join(sf).is_file(), "SF:{sf} does not resolve");
}

/// Programs the kernel loads only with the object's BTF (a spin lock in a map value,
/// `bpf_loop` callbacks needing func info, a tail-call chain with global functions) are
/// compared with the kernel too: the kernel engine falls back to the full loader.
#[test]
fn compare_with_the_kernel_for_objects_that_need_btf() {
    if let Err(why) = bpfkit_loader::kernel_available() {
        eprintln!("*** SKIPPED compare_with_the_kernel_for_objects_that_need_btf: {why} ***");
        return;
    }
    for (obj, prog) in [
        ("xdp_spinlock", "xdp_spinlock"),
        ("xdp_loop", "xdp_bpf_loop"),
        ("xdp_helper_errors", "xdp_helper_errors"),
        ("xdp_tailchain", "xdp_chain_entry"),
    ] {
        let path = format!("corpus/obj/{obj}.o");
        let mut args = vec!["replay", &path, "corpus/pcap/samples.pcapng"];
        args.extend(["--compare", "interp,kernel", "--prog", prog]);
        let (code, out, err) = bpfkit(&args);
        assert_eq!(code, 0, "{obj}/{prog}: {out}\n{err}");
        assert!(
            out.contains("compared interp, kernel: no difference"),
            "{obj}/{prog}: {out}"
        );
    }
}

#[test]
fn replay_threads_give_the_same_files() {
    let dir = common::scratch_dir("threads");
    let mut files = Vec::new();
    for threads in ["1", "2"] {
        let trace = dir.join(format!("t{threads}.jsonl"));
        let maps = dir.join(format!("m{threads}.json"));
        let (code, out, err) = bpfkit(&[
            "replay",
            "corpus/obj/xdp_counter.o",
            "corpus/pcap/mixed.pcap",
            "--engine",
            "jit",
            "--queues",
            "4",
            "--threads",
            threads,
            "--trace",
            trace.to_str().unwrap(),
            "--maps-out",
            maps.to_str().unwrap(),
        ]);
        assert_eq!(code, 0, "{err}");
        assert!(
            out.contains(&format!("queues ran on {threads} worker threads")),
            "{out}"
        );
        files.push((
            std::fs::read(&trace).unwrap(),
            std::fs::read(&maps).unwrap(),
        ));
    }
    assert!(
        files[0] == files[1],
        "trace or maps differ between 1 and 2 threads"
    );
    // A program that reads and writes shared state runs in order and says why.
    let (code, out, err) = bpfkit(&[
        "replay",
        "corpus/obj/xdp_time.o",
        "corpus/pcap/mixed.pcap",
        "--queues",
        "4",
        "--threads",
        "2",
        "--format",
        "json",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON summary");
    assert_eq!(v["threads"], 1);
    assert!(
        v["serial_reason"]
            .as_str()
            .unwrap()
            .contains("bpf_get_prandom_u32"),
        "{out}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
