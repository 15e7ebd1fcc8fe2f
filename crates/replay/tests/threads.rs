//! `--queues N` on worker threads: every corpus program and capture give byte-identical
//! outputs (trace, per-action pcaps, final maps, summary) for 1, 2 and 4 threads; for the
//! programs that run threaded, the results also equal the capture-order run on one thread.

mod common;

use bpfkit_replay::engines::EngineKind;
use bpfkit_replay::{replay, Options, Summary};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn tmpdir(name: &str) -> PathBuf {
    common::scratch_dir(name)
}

/// Every output file of a run, by relative path.
fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut m = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(dir).unwrap().display().to_string();
                m.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    m
}

struct Out {
    summary: Summary,
    files: BTreeMap<String, Vec<u8>>,
}

#[allow(clippy::too_many_arguments)]
fn run(
    obj_path: &Path,
    prog: &str,
    capture: &Path,
    engine: EngineKind,
    queues: u32,
    threads: u32,
    serial: bool,
    tag: &str,
) -> Result<Out, String> {
    let obj = common::load(obj_path);
    let (setup, _) = common::directives(obj_path);
    let d = tmpdir(tag);
    let maps_in = d.join("maps-in.json");
    std::fs::write(&maps_in, setup.to_string()).unwrap();
    let res = d.join("res");
    std::fs::create_dir_all(&res).unwrap();
    let opts = Options {
        prog: Some(prog.to_string()),
        engine,
        queues,
        threads: Some(threads),
        serial,
        maps_in: Some(maps_in),
        out_dir: Some(res.join("out")),
        trace: Some(res.join("trace.jsonl")),
        maps_out: Some(res.join("maps.json")),
        object_path: Some(obj_path.to_path_buf()),
        ..Options::default()
    };
    let summary = replay(&obj, capture, &opts, None).map_err(|e| e.to_string())?;
    let files = files(&res);
    let _ = std::fs::remove_dir_all(&d);
    Ok(Out { summary, files })
}

/// The deterministic part of a summary (without the note on how the queues ran).
fn key(s: &Summary) -> String {
    format!(
        "{} {} {} {:?} {:?} {} {:?} {:?} {:?}",
        s.packets,
        s.bytes,
        s.ran,
        s.actions,
        s.redirects,
        s.faults,
        s.first_fault,
        s.skipped,
        s.per_queue,
    )
}

fn first_difference(
    a: &BTreeMap<String, Vec<u8>>,
    b: &BTreeMap<String, Vec<u8>>,
) -> Option<String> {
    if a.keys().ne(b.keys()) {
        return Some(format!(
            "files {:?} vs {:?}",
            a.keys().collect::<Vec<_>>(),
            b.keys().collect::<Vec<_>>()
        ));
    }
    for (k, va) in a {
        let vb = &b[k];
        if va != vb {
            let line = String::from_utf8_lossy(va)
                .lines()
                .zip(String::from_utf8_lossy(vb).lines())
                .find(|(x, y)| x != y)
                .map(|(x, y)| format!("\n  {x}\n  {y}"))
                .unwrap_or_default();
            return Some(format!("{k} differs{line}"));
        }
    }
    None
}

#[test]
fn thread_count_does_not_change_any_output() {
    let queues = 4;
    let mut threaded = 0;
    let mut serial = 0;
    let mut checked = 0;
    let mut failures = Vec::new();
    for obj_path in common::objects() {
        let obj = common::load(&obj_path);
        let name = obj_path.file_stem().unwrap().to_string_lossy().to_string();
        for p in &obj.programs {
            // Devmap and cpumap programs (attach types 33, 35) are refused like the
            // kernel's BPF_PROG_TEST_RUN does.
            if p.prog_type != bpfkit_object::model::prog_type::XDP
                || matches!(p.expected_attach_type, Some(33 | 35))
            {
                continue;
            }
            for capture in [
                common::root().join("corpus/pcap/mixed.pcap"),
                common::root().join("corpus/pcap/samples.pcapng"),
            ] {
                let tag = format!("{name}-{}", p.name);
                let one = match run(
                    &obj_path,
                    &p.name,
                    &capture,
                    EngineKind::Interp,
                    queues,
                    1,
                    false,
                    &format!("{tag}-1"),
                ) {
                    Ok(o) => o,
                    // Objects a replay refuses (e.g. programs needing a device) are covered
                    // by the corpus tests.
                    Err(e) => {
                        println!("{tag}: not replayed: {e}");
                        continue;
                    }
                };
                if one.summary.serial_reason.is_none() {
                    threaded += 1;
                } else {
                    serial += 1;
                }
                for threads in [2, 4] {
                    let other = run(
                        &obj_path,
                        &p.name,
                        &capture,
                        EngineKind::Interp,
                        queues,
                        threads,
                        false,
                        &format!("{tag}-{threads}"),
                    )
                    .unwrap();
                    checked += 1;
                    if key(&one.summary) != key(&other.summary)
                        || one.summary.serial_reason != other.summary.serial_reason
                    {
                        failures.push(format!(
                            "{tag} {}: summary with {threads} threads: {} vs {}",
                            capture.display(),
                            key(&one.summary),
                            key(&other.summary)
                        ));
                    } else if let Some(d) = first_difference(&one.files, &other.files) {
                        failures.push(format!(
                            "{tag} {}: {threads} threads: {d}",
                            capture.display()
                        ));
                    }
                }
                // Threaded runs equal the capture-order run on one thread.
                if one.summary.serial_reason.is_none() {
                    let reference = run(
                        &obj_path,
                        &p.name,
                        &capture,
                        EngineKind::Interp,
                        queues,
                        1,
                        true,
                        &format!("{tag}-s"),
                    )
                    .unwrap();
                    let (a, b) = (key(&one.summary), key(&reference.summary));
                    if a != b {
                        failures.push(format!(
                            "{tag} {}: threaded vs capture order: {a} vs {b}",
                            capture.display()
                        ));
                    } else if let Some(d) = first_difference(&one.files, &reference.files) {
                        failures.push(format!(
                            "{tag} {}: threaded vs capture order: {d}",
                            capture.display()
                        ));
                    }
                }
            }
        }
    }
    println!("{checked} comparisons; {threaded} program x capture runs threaded, {serial} in capture order");
    assert!(threaded >= 10, "too few programs ran threaded: {threaded}");
    assert!(
        failures.is_empty(),
        "{} differences:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn counter_program_on_threads_jit_and_many_queues() {
    // xdp_counter: a PERCPU_ARRAY, a HASH with zero inserts and atomic adds, an ARRAY
    // of atomic counters; 8 queues over 1, 3 and 8 threads on the JIT.
    let obj_path = common::root().join("corpus/obj/xdp_counter.o");
    let capture = common::root().join("corpus/pcap/mixed.pcap");
    let one = run(
        &obj_path,
        "xdp_count",
        &capture,
        EngineKind::Jit,
        8,
        1,
        false,
        "ctr-1",
    )
    .unwrap();
    assert_eq!(one.summary.serial_reason, None);
    assert!(
        one.summary.per_queue.iter().filter(|n| **n > 0).count() > 1,
        "{:?}",
        one.summary.per_queue
    );
    for t in [3, 8] {
        let o = run(
            &obj_path,
            "xdp_count",
            &capture,
            EngineKind::Jit,
            8,
            t,
            false,
            &format!("ctr-{t}"),
        )
        .unwrap();
        assert_eq!(o.summary.threads, t);
        assert_eq!(first_difference(&one.files, &o.files), None);
    }
    let reference = run(
        &obj_path,
        "xdp_count",
        &capture,
        EngineKind::Jit,
        8,
        1,
        true,
        "ctr-s",
    )
    .unwrap();
    assert_eq!(first_difference(&one.files, &reference.files), None);
    // The merged counters are the totals: verdicts[XDP_PASS] counts every packet run.
    let maps: serde_json::Value = serde_json::from_slice(&one.files["maps.json"]).unwrap();
    let verdicts = maps["verdicts"].as_array().expect("verdicts");
    let pass = verdicts
        .iter()
        .find(|e| e[0] == "02000000")
        .expect("XDP_PASS counter");
    let n = u64::from_str_radix(
        &pass[1]
            .as_str()
            .unwrap()
            .as_bytes()
            .chunks(2)
            .rev()
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect::<String>(),
        16,
    )
    .unwrap();
    assert_eq!(n, one.summary.actions["XDP_PASS"]);
}

#[test]
fn programs_reading_shared_maps_say_why_they_run_in_order() {
    let obj_path = common::root().join("corpus/obj/xdp_time.o");
    let capture = common::root().join("corpus/pcap/mixed.pcap");
    let o = run(
        &obj_path,
        "xdp_time",
        &capture,
        EngineKind::Interp,
        4,
        4,
        false,
        "time",
    )
    .unwrap();
    let why = o.summary.serial_reason.clone().expect("runs in order");
    assert!(why.contains("bpf_get_prandom_u32"), "{why}");
    assert_eq!(o.summary.threads, 1);
    assert!(o
        .summary
        .to_text()
        .contains("in capture order on one thread"));
}
