//! Replay behaviour: malformed captures, outputs, determinism, virtual time, RSS queues,
//! maps in/out, engine comparison and coverage.

mod common;

use bpfkit_replay::capture::Capture;
use bpfkit_replay::engines::EngineKind;
use bpfkit_replay::{replay, Options, ReplayError, Summary};
use serde_json::Value;
use std::path::{Path, PathBuf};

fn tmpdir(name: &str) -> PathBuf {
    common::scratch_dir(name)
}

fn obj(name: &str) -> (bpfkit_object::model::LinkedObject, PathBuf) {
    let p = common::root().join(format!("corpus/obj/{name}.o"));
    (common::load(&p), p)
}

fn mixed() -> PathBuf {
    common::root().join("corpus/pcap/mixed.pcap")
}

/// A classic little-endian microsecond pcap with the given link type, snap length and
/// records (ts_us, incl_len as written, orig_len, data).
fn pcap(linktype: u32, snaplen: u32, records: &[(u64, u32, u32, Vec<u8>)]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&0xa1b2c3d4u32.to_le_bytes());
    b.extend_from_slice(&2u16.to_le_bytes());
    b.extend_from_slice(&4u16.to_le_bytes());
    b.extend_from_slice(&0u32.to_le_bytes());
    b.extend_from_slice(&0u32.to_le_bytes());
    b.extend_from_slice(&snaplen.to_le_bytes());
    b.extend_from_slice(&linktype.to_le_bytes());
    for (ts, incl, orig, data) in records {
        b.extend_from_slice(&((ts / 1_000_000) as u32).to_le_bytes());
        b.extend_from_slice(&((ts % 1_000_000) as u32).to_le_bytes());
        b.extend_from_slice(&incl.to_le_bytes());
        b.extend_from_slice(&orig.to_le_bytes());
        b.extend_from_slice(data);
    }
    b
}

fn frame(len: usize) -> Vec<u8> {
    let mut f = vec![0u8; len];
    if len >= 14 {
        f[..6].copy_from_slice(&[0xff; 6]);
        f[12] = 0x08;
        f[13] = 0x06; // ARP
    }
    f
}

fn run_on(bytes: &[u8], name: &str, engine: EngineKind) -> Result<Summary, ReplayError> {
    let d = tmpdir(name);
    let p = d.join("cap.pcap");
    std::fs::write(&p, bytes).unwrap();
    let (o, _) = obj("xdp_counter");
    let opts = Options {
        engine,
        trace: Some(d.join("trace.jsonl")),
        ..Options::default()
    };
    replay(&o, &p, &opts, None)
}

#[test]
fn truncated_record_is_reported_not_panicked() {
    let f = frame(60);
    let mut b = pcap(1, 65535, &[(1, 60, 60, f.clone()), (2, 60, 60, f.clone())]);
    // A third record whose length runs past the end of the file.
    b.extend_from_slice(&pcap(1, 65535, &[(3, 60, 60, f[..20].to_vec())])[24..]);
    for engine in [EngineKind::Interp, EngineKind::Jit] {
        let s = run_on(&b, "trunc", engine).unwrap();
        assert_eq!(s.packets, 2);
        assert_eq!(s.ran, 2);
        let d = s.damaged.as_deref().expect("damage reported");
        assert!(
            d.contains("byte offset 176") && d.contains("truncated"),
            "{d}"
        );
        assert_eq!(s.skipped_total(), 1, "{:?}", s.skipped);
    }
}

#[test]
fn huge_record_length_is_damage_not_allocation() {
    let f = frame(60);
    let mut b = pcap(1, 65535, &[(1, 60, 60, f)]);
    // incl_len 2^31: "snap length larger than the file".
    b.extend_from_slice(&pcap(1, 65535, &[(2, 0x8000_0000, 0x8000_0000, vec![1, 2, 3])])[24..]);
    let s = run_on(&b, "huge", EngineKind::Interp).unwrap();
    assert_eq!((s.packets, s.ran), (1, 1));
    assert!(s.damaged.is_some());
    assert_eq!(s.skipped_total(), 1);
}

#[test]
fn zero_length_runt_and_oversized_frames_are_skipped_with_reasons() {
    let b = pcap(
        1,
        262_144,
        &[
            (1, 0, 0, vec![]),
            (2, 10, 10, frame(10)),
            (3, 14, 14, frame(14)),
            (4, 80_000, 80_000, frame(80_000)),
            (5, 60, 60, frame(60)),
        ],
    );
    let s = run_on(&b, "sizes", EngineKind::Interp).unwrap();
    assert_eq!(s.packets, 5);
    assert_eq!(s.ran, 2, "the 14-byte frame and the 60-byte frame run");
    assert_eq!(s.skipped_total(), 3);
    let reasons: Vec<&String> = s.skipped.keys().collect();
    assert!(
        reasons.iter().any(|r| r.starts_with("zero-length")),
        "{reasons:?}"
    );
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("shorter than an Ethernet header")),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|r| r.contains("larger than an XDP")),
        "{reasons:?}"
    );
}

#[test]
fn snapped_and_over_snaplen_records_run_on_captured_bytes() {
    let f = frame(60);
    let b = pcap(
        1,
        40,
        &[(1, 60, 60, f.clone()), (2, 40, 1500, f[..40].to_vec())],
    );
    let s = run_on(&b, "snap", EngineKind::Interp).unwrap();
    assert_eq!((s.packets, s.ran, s.snapped), (2, 2, 1));
}

#[test]
fn other_link_types_garbage_and_empty_files_are_clear_errors() {
    let raw = pcap(101, 65535, &[(1, 60, 60, frame(60))]);
    match run_on(&raw, "linktype", EngineKind::Interp) {
        Err(ReplayError::Bad(m)) => assert!(
            m.contains("link type 101") && m.contains("not Ethernet"),
            "{m}"
        ),
        other => panic!("{other:?}"),
    }
    for (name, bytes) in [
        ("garbage", b"\xde\xad\xbe\xef garbage".to_vec()),
        ("empty", vec![]),
        ("short", vec![0xd4, 0xc3]),
    ] {
        match run_on(&bytes, name, EngineKind::Interp) {
            Err(ReplayError::Bad(m)) => assert!(m.contains("not a pcap or pcapng"), "{name}: {m}"),
            other => panic!("{name}: {other:?}"),
        }
    }
    // A header cut in the middle.
    let cut = pcap(1, 65535, &[])[..20].to_vec();
    assert!(matches!(
        run_on(&cut, "cut", EngineKind::Interp),
        Err(ReplayError::Bad(_))
    ));
    // Header only: no packets, no error.
    let s = run_on(&pcap(1, 65535, &[]), "hdr", EngineKind::Interp).unwrap();
    assert_eq!(s.packets, 0);
    let missing = replay(
        &obj("xdp_counter").0,
        Path::new("/nonexistent/x.pcap"),
        &Options::default(),
        None,
    );
    assert!(matches!(missing, Err(ReplayError::Usage(_))));
}

/// A pcapng: SHB, IDB (Ethernet, ns resolution), then EPBs; `bad` corrupts the second
/// EPB's captured length.
fn pcapng(bad: bool) -> Vec<u8> {
    fn block(t: u32, body: &[u8]) -> Vec<u8> {
        let len = 12 + body.len() as u32;
        let mut b = t.to_le_bytes().to_vec();
        b.extend_from_slice(&len.to_le_bytes());
        b.extend_from_slice(body);
        b.extend_from_slice(&len.to_le_bytes());
        b
    }
    let mut shb = 0x1a2b3c4du32.to_le_bytes().to_vec();
    shb.extend_from_slice(&1u16.to_le_bytes());
    shb.extend_from_slice(&0u16.to_le_bytes());
    shb.extend_from_slice(&u64::MAX.to_le_bytes());
    let mut idb = 1u16.to_le_bytes().to_vec();
    idb.extend_from_slice(&0u16.to_le_bytes());
    idb.extend_from_slice(&0u32.to_le_bytes());
    // if_tsresol = 9, end of options.
    idb.extend_from_slice(&[9, 0, 1, 0, 9, 0, 0, 0, 0, 0, 0, 0]);
    let mut out = block(0x0a0d0d0a, &shb);
    out.extend(block(1, &idb));
    for i in 0..3u32 {
        let f = frame(60);
        let mut epb = 0u32.to_le_bytes().to_vec();
        let ts = 1_700_000_000_000_000_000u64 + i as u64;
        epb.extend_from_slice(&((ts >> 32) as u32).to_le_bytes());
        epb.extend_from_slice(&(ts as u32).to_le_bytes());
        let cl: u32 = if bad && i == 1 { 4000 } else { 60 };
        epb.extend_from_slice(&cl.to_le_bytes());
        epb.extend_from_slice(&60u32.to_le_bytes());
        epb.extend_from_slice(&f);
        out.extend(block(6, &epb));
    }
    out
}

#[test]
fn pcapng_timestamps_and_a_corrupt_block_in_the_middle() {
    let d = tmpdir("ng");
    let p = d.join("x.pcapng");
    std::fs::write(&p, pcapng(false)).unwrap();
    let mut c = Capture::open(&p).unwrap();
    let mut ts = Vec::new();
    while let Some(r) = c.next_record() {
        ts.push(r.ts_ns);
    }
    assert_eq!(
        ts,
        [
            1_700_000_000_000_000_000,
            1_700_000_000_000_000_001,
            1_700_000_000_000_000_002
        ]
    );
    std::fs::write(&p, pcapng(true)).unwrap();
    let s = replay(&obj("xdp_counter").0, &p, &Options::default(), None).unwrap();
    assert_eq!(
        (s.packets, s.ran),
        (3, 2),
        "the reader steps over the bad block"
    );
    assert!(
        s.skipped
            .keys()
            .any(|k| k.contains("malformed pcapng packet block")),
        "{:?}",
        s.skipped
    );
}

#[test]
fn corpus_bad_captures() {
    let o = obj("xdp_counter").0;
    let bad = common::root().join("corpus/pcap/bad-magic.pcap");
    assert!(matches!(
        replay(&o, &bad, &Options::default(), None),
        Err(ReplayError::Bad(_))
    ));
    let t = common::root().join("corpus/pcap/bad-truncated.pcap");
    let s = replay(&o, &t, &Options::default(), None).unwrap();
    assert!(s.damaged.is_some() && s.skipped_total() >= 1);
}

fn read_all(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn full_run(name: &str, o: &str, seed: u64, queues: u32, engine: EngineKind) -> (Summary, PathBuf) {
    let d = tmpdir(name);
    let (lo, _) = obj(o);
    let opts = Options {
        engine,
        seed,
        queues,
        out_dir: Some(d.join("out")),
        trace: Some(d.join("trace.jsonl")),
        maps_out: Some(d.join("maps.json")),
        ..Options::default()
    };
    (replay(&lo, &mixed(), &opts, None).unwrap(), d)
}

#[test]
fn same_inputs_give_byte_identical_outputs() {
    for queues in [1, 4] {
        let (s1, a) = full_run(
            &format!("det-a{queues}"),
            "xdp_time",
            7,
            queues,
            EngineKind::Interp,
        );
        let (s2, b) = full_run(
            &format!("det-b{queues}"),
            "xdp_time",
            7,
            queues,
            EngineKind::Interp,
        );
        let (_, c) = full_run(
            &format!("det-c{queues}"),
            "xdp_time",
            7,
            queues,
            EngineKind::Jit,
        );
        assert_eq!(s1.actions, s2.actions);
        for f in ["trace.jsonl", "maps.json", "out/XDP_PASS.pcap"] {
            assert_eq!(
                read_all(&a.join(f)),
                read_all(&b.join(f)),
                "{f} differs between runs"
            );
            assert_eq!(
                read_all(&a.join(f)),
                read_all(&c.join(f)),
                "{f} differs interp vs jit"
            );
        }
        // Another seed changes the random tags stored by xdp_time.
        let (_, e) = full_run(
            &format!("det-e{queues}"),
            "xdp_time",
            8,
            queues,
            EngineKind::Interp,
        );
        assert_ne!(
            read_all(&a.join("maps.json")),
            read_all(&e.join("maps.json"))
        );
    }
}

#[test]
fn ktime_is_the_capture_timestamp_plus_offset() {
    let d = tmpdir("ktime");
    let (o, _) = obj("xdp_time");
    let mut stamps = std::collections::BTreeSet::new();
    let mut c = Capture::open(&mixed()).unwrap();
    while let Some(r) = c.next_record() {
        stamps.insert(r.ts_ns);
    }
    for offset in [0i64, -1_700_000_000_000_000_000] {
        let opts = Options {
            time_offset_ns: offset,
            maps_out: Some(d.join("m.json")),
            ..Options::default()
        };
        replay(&o, &mixed(), &opts, None).unwrap();
        let m: Value =
            serde_json::from_str(&String::from_utf8(read_all(&d.join("m.json"))).unwrap()).unwrap();
        let seen = m["last_seen"].as_array().unwrap();
        assert!(!seen.is_empty());
        for e in seen {
            let v = bpfkit_replay::hex::decode(e[1].as_str().unwrap()).unwrap();
            let mono = u64::from_le_bytes(v[0..8].try_into().unwrap());
            let boot = u64::from_le_bytes(v[8..16].try_into().unwrap());
            assert_eq!(mono, boot);
            let ts = (mono as i64 - offset) as u64;
            assert!(
                stamps.contains(&ts),
                "{mono} is not a capture timestamp + {offset}"
            );
        }
    }
}

#[test]
fn out_pcaps_keep_timestamps_and_hold_the_rewritten_packets() {
    let (s, d) = full_run("out", "xdp_csum", 1, 1, EngineKind::Interp);
    let mut total = 0;
    let trace: Vec<Value> = std::fs::read_to_string(d.join("trace.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(trace.len() as u64, s.packets);
    for t in &trace {
        for k in ["index", "ts_ns", "action", "retval", "len_in", "len_out"] {
            assert!(t.get(k).is_some(), "trace line without {k}: {t}");
        }
    }
    for (action, n) in &s.actions {
        let p = d.join("out").join(format!("{action}.pcap"));
        if *n == 0 {
            assert!(!p.exists());
            continue;
        }
        let mut c = Capture::open(&p).unwrap();
        let mine: Vec<&Value> = trace
            .iter()
            .filter(|t| t["action"] == action.as_str())
            .collect();
        let mut i = 0;
        while let Some(r) = c.next_record() {
            let t = mine[i];
            assert_eq!(r.ts_ns, t["ts_ns"].as_u64().unwrap());
            assert_eq!(r.data.len() as u64, t["len_out"].as_u64().unwrap());
            if let Some(hex) = t.get("data_out") {
                assert_eq!(bpfkit_replay::hex::encode(r.data), hex.as_str().unwrap());
            }
            i += 1;
        }
        assert_eq!(i as u64, *n, "{action}");
        total += i;
    }
    assert_eq!(total as u64, s.ran);
}

#[test]
fn queues_spread_flows_and_set_cpu_and_rx_queue() {
    let (s, d) = full_run("queues", "xdp_time", 1, 4, EngineKind::Interp);
    assert_eq!(s.per_queue.iter().sum::<u64>(), s.ran);
    assert!(
        s.per_queue.iter().filter(|&&n| n > 0).count() >= 3,
        "{:?}",
        s.per_queue
    );
    // last_cpu holds cpu + 1 of the last packet: its queue.
    let trace = std::fs::read_to_string(d.join("trace.jsonl")).unwrap();
    let last: Value = serde_json::from_str(trace.lines().last().unwrap()).unwrap();
    let m: Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("maps.json")).unwrap()).unwrap();
    let cpu = bpfkit_replay::hex::decode(m["last_cpu"][0][1].as_str().unwrap()).unwrap();
    assert_eq!(cpu[0] as u64, last["queue"].as_u64().unwrap() + 1);
}

#[test]
fn maps_out_feeds_maps_in() {
    let d = tmpdir("maps");
    let (o, _) = obj("xdp_counter");
    let first = Options {
        maps_out: Some(d.join("a.json")),
        ..Options::default()
    };
    let s1 = replay(&o, &mixed(), &first, None).unwrap();
    let second = Options {
        maps_in: Some(d.join("a.json")),
        maps_out: Some(d.join("b.json")),
        ..Options::default()
    };
    replay(&o, &mixed(), &second, None).unwrap();
    // Counters doubled: the packet counter of every protocol entry.
    let a: Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("a.json")).unwrap()).unwrap();
    let b: Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("b.json")).unwrap()).unwrap();
    assert_eq!(
        a.as_object().unwrap().keys().collect::<Vec<_>>(),
        b.as_object().unwrap().keys().collect::<Vec<_>>()
    );
    let first_u64 = |v: &Value| {
        let bytes = bpfkit_replay::hex::decode(v.as_str().unwrap()).unwrap();
        u64::from_le_bytes(bytes[0..8].try_into().unwrap())
    };
    let pa = &a["proto_stats"].as_array().unwrap()[0];
    let pb = &b["proto_stats"].as_array().unwrap()[0];
    assert_eq!(first_u64(&pb[1]), 2 * first_u64(&pa[1]));
    assert!(s1.ran > 0);
    // Bad maps files are clear errors.
    std::fs::write(d.join("bad.json"), r#"{"nosuchmap": []}"#).unwrap();
    let bad = Options {
        maps_in: Some(d.join("bad.json")),
        ..Options::default()
    };
    match replay(&o, &mixed(), &bad, None) {
        Err(ReplayError::Bad(m)) => assert!(m.contains("no map `nosuchmap`"), "{m}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn prog_array_entries_by_name_in_maps_in() {
    let d = tmpdir("progarray");
    let (o, _) = obj("xdp_tailcall");
    // Empty the dispatch table except slot 0 (IPv4) -> handle_arp.
    std::fs::write(
        d.join("in.json"),
        r#"{"jmp_table": [["00000000", {"program": "handle_arp"}]]}"#,
    )
    .unwrap();
    let opts = Options {
        prog: Some("xdp_dispatch".into()),
        maps_in: Some(d.join("in.json")),
        maps_out: Some(d.join("out.json")),
        ..Options::default()
    };
    replay(&o, &mixed(), &opts, None).unwrap();
    let m: Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("out.json")).unwrap()).unwrap();
    assert_eq!(m["jmp_table"][0][1]["program"], "handle_arp", "{m}");
}

#[test]
fn compare_interp_and_jit_agree_on_the_corpus_counter() {
    let (o, _) = obj("xdp_counter");
    let opts = Options {
        compare: vec![EngineKind::Interp, EngineKind::Jit],
        ..Options::default()
    };
    let s = replay(&o, &mixed(), &opts, None).unwrap();
    assert!(s.difference.is_none(), "{:?}", s.difference);
    assert_eq!(s.ran, 300);
}

#[test]
fn jit_fast_runs_verified_programs_like_the_interpreter() {
    let (o, _) = obj("xdp_counter");
    let opts = Options {
        compare: vec![EngineKind::Interp, EngineKind::JitFast],
        ..Options::default()
    };
    let s = replay(&o, &mixed(), &opts, None).unwrap();
    assert!(s.difference.is_none(), "{:?}", s.difference);
    assert_eq!(s.ran, 300);
}

#[test]
fn compare_with_the_kernel_finds_time_dependent_maps() {
    if !bpfkit_loader::kernel_or_skip("compare_with_the_kernel_finds_time_dependent_maps") {
        return;
    }
    let (o, _) = obj("xdp_time");
    let mut opts = Options {
        compare: vec![EngineKind::Interp, EngineKind::Kernel],
        ..Options::default()
    };
    let s = replay(&o, &mixed(), &opts, None).unwrap();
    let d = s
        .difference
        .expect("the kernel's clock is not the capture's");
    assert_eq!(d.what, "map last_seen");
    assert!(d.detail.contains("key "), "{}", d.detail);
    opts.ignore_maps = vec!["last_seen".into()];
    let s = replay(&o, &mixed(), &opts, None).unwrap();
    assert!(s.difference.is_none(), "{:?}", s.difference);
    assert_eq!(s.ran, 300);
}

#[test]
fn coverage_lines_point_at_the_c_source() {
    let d = tmpdir("cov");
    let (o, _) = obj("xdp_counter");
    let opts = Options {
        coverage: Some(d.join("cov.info")),
        ..Options::default()
    };
    let s = replay(&o, &mixed(), &opts, None).unwrap();
    let c = s.coverage.expect("coverage summary");
    assert!(c.insns_hit > 0 && c.insns_hit < c.insns, "{c:?}");
    assert!(c.lines_hit > 0 && c.lines_hit <= c.lines, "{c:?}");
    let info = std::fs::read_to_string(d.join("cov.info")).unwrap();
    assert!(info.starts_with("TN:") && info.contains("end_of_record"));
    // Every DA line is a line the BTF line info names, and the C file has that text there.
    let src_dir = common::root().join("corpus");
    let mut checked = 0;
    let mut file = String::new();
    for l in info.lines() {
        if let Some(f) = l.strip_prefix("SF:") {
            file = f.to_string();
        }
        if let Some(rest) = l.strip_prefix("DA:") {
            let line: u32 = rest.split(',').next().unwrap().parse().unwrap();
            let text = std::fs::read_to_string(src_dir.join(&file))
                .unwrap_or_else(|e| panic!("{file}: {e}"));
            let src_line = text.lines().nth(line as usize - 1).unwrap().trim();
            let btf: Vec<&str> = o
                .programs
                .iter()
                .flat_map(|p| &p.origins)
                .filter_map(|or| or.line.as_ref())
                .filter(|sl| sl.line == line && sl.file == file)
                .map(|sl| sl.text.trim())
                .collect();
            assert!(!btf.is_empty(), "DA:{line} has no line info");
            assert!(
                btf.iter().all(|t| *t == src_line),
                "line {line}: source {src_line:?}, BTF {btf:?}"
            );
            checked += 1;
        }
    }
    assert!(checked > 10, "{checked} lines checked");
    // genhtml accepts the file (when lcov is installed).
    let gen = std::process::Command::new("genhtml")
        .arg("--version")
        .output();
    if gen.is_err() {
        eprintln!(
            "\n*** SKIPPED genhtml check: genhtml not installed (apt-get install lcov) ***\n"
        );
        return;
    }
    let out = std::process::Command::new("genhtml")
        .current_dir(&src_dir)
        .args(["--branch-coverage", "-q", "-o"])
        .arg(d.join("html"))
        .arg(d.join("cov.info"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "genhtml failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(d.join("html/index.html").exists());
}

#[test]
fn coverage_on_another_engine_comes_from_an_interpreter_alongside() {
    let d = tmpdir("cov-jit");
    let (o, _) = obj("xdp_counter");
    let interp = Options {
        coverage: Some(d.join("interp.info")),
        maps_out: Some(d.join("interp-maps.json")),
        ..Options::default()
    };
    let si = replay(&o, &mixed(), &interp, None).unwrap();
    assert_eq!(si.coverage_note, None);
    for engine in [EngineKind::Jit, EngineKind::JitFast] {
        let opts = Options {
            engine,
            coverage: Some(d.join("jit.info")),
            maps_out: Some(d.join("jit-maps.json")),
            ..Options::default()
        };
        let sj = replay(&o, &mixed(), &opts, None).unwrap();
        let note = sj
            .coverage_note
            .clone()
            .expect("says how coverage was recorded");
        assert!(
            note.contains("interpreter") && note.contains(engine.name()),
            "{note}"
        );
        assert!(sj.to_text().contains(&note));
        // Same packets, same paths: the same lcov file and coverage figures.
        assert_eq!(
            read_all(&d.join("interp.info")),
            read_all(&d.join("jit.info"))
        );
        let (a, b) = (si.coverage.clone().unwrap(), sj.coverage.clone().unwrap());
        assert_eq!(
            (a.insns_hit, a.lines_hit, a.branches_hit),
            (b.insns_hit, b.lines_hit, b.branches_hit)
        );
        // The maps written are the JIT's own (equal here, as the engines agree).
        assert_eq!(
            read_all(&d.join("interp-maps.json")),
            read_all(&d.join("jit-maps.json"))
        );
    }
}

#[test]
fn out_pcaps_hold_the_frame_without_the_xdp_metadata() {
    // xdp_meta writes 8 bytes of metadata in front of the frame with bpf_xdp_adjust_meta.
    // The kernel reports the metadata length in the xdp_md it writes back.
    let mut engines = vec![EngineKind::Interp, EngineKind::Jit];
    if bpfkit_loader::kernel_or_skip(
        "out_pcaps_hold_the_frame_without_the_xdp_metadata (kernel engine)",
    ) && bpfkit_loader::xdp_helpers_or_skip(
        "out_pcaps_hold_the_frame_without_the_xdp_metadata (kernel engine)",
        &["bpf_xdp_adjust_meta"],
    ) {
        engines.push(EngineKind::Kernel);
    }
    let mut first: Option<std::collections::BTreeMap<String, Vec<Vec<u8>>>> = None;
    for engine in engines {
        let d = tmpdir(&format!("meta-{}", engine.name()));
        let (o, _) = obj("xdp_meta");
        let opts = Options {
            engine,
            out_dir: Some(d.join("out")),
            trace: Some(d.join("trace.jsonl")),
            ..Options::default()
        };
        let s = replay(&o, &mixed(), &opts, None).unwrap();
        assert!(s.ran > 0);
        // Expected frames: the trace's output bytes (BPF_PROG_TEST_RUN's data_out, which
        // starts with the metadata) without their first meta_len bytes.
        let mut expected: std::collections::BTreeMap<String, Vec<Vec<u8>>> =
            std::collections::BTreeMap::new();
        let mut with_meta = 0;
        let mut input = Capture::open(&mixed()).unwrap();
        for line in std::fs::read_to_string(d.join("trace.jsonl"))
            .unwrap()
            .lines()
        {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let rec = input.next_record().unwrap();
            let Some(action) = v["action"].as_str() else {
                continue;
            };
            let out = match v["data_out"].as_str() {
                Some(h) => bpfkit_replay::hex::decode(h).unwrap(),
                None => rec.data.to_vec(),
            };
            let meta = v["meta_len"].as_u64().unwrap_or(0) as usize;
            if meta > 0 {
                with_meta += 1;
            }
            expected
                .entry(action.to_string())
                .or_default()
                .push(out[meta..].to_vec());
        }
        assert!(
            with_meta > 0,
            "{}: no packet carried metadata",
            engine.name()
        );
        for (action, frames) in &expected {
            let mut c = Capture::open(&d.join(format!("out/{action}.pcap"))).unwrap();
            let mut got = Vec::new();
            while let Some(r) = c.next_record() {
                got.push(r.data.to_vec());
            }
            assert_eq!(&got, frames, "{} {action}", engine.name());
        }
        // Every engine writes the same frames.
        match &first {
            None => first = Some(expected),
            Some(f) => assert_eq!(f, &expected, "{} vs interp", engine.name()),
        }
    }
}

/// The replay loop counts a plain result (one of the five actions, no redirect, nothing to
/// write) inline and sends everything else through the full result path; without outputs
/// a classic pcap runs in a loop of its own. All must give the same summary. Every corpus
/// program on every corpus capture, without outputs and with a trace (which sends every
/// packet through the general loop and the full result path).
#[test]
fn summary_is_the_same_with_and_without_outputs() {
    let d = tmpdir("plain-vs-written");
    // Every corpus capture: both byte orders, nanoseconds, snapped records, pcapng, and a
    // truncated file (where the inline loop hands over to the general one).
    let captures = common::captures();
    let (mut compared, mut redirects, mut other_actions, mut faults) = (0, 0, 0, 0);
    for obj_path in common::objects() {
        let o = common::load(&obj_path);
        for p in &o.programs {
            for cap in &captures {
                for engine in [EngineKind::Interp, EngineKind::Jit] {
                    let what = format!(
                        "{} {} {} {}",
                        obj_path.display(),
                        p.name,
                        cap.display(),
                        engine.name()
                    );
                    let plain = Options {
                        prog: Some(p.name.clone()),
                        engine,
                        ..Options::default()
                    };
                    let written = Options {
                        trace: Some(d.join("trace.jsonl")),
                        ..plain.clone()
                    };
                    let (a, b) = (
                        replay(&o, cap, &plain, None),
                        replay(&o, cap, &written, None),
                    );
                    let (a, b) = match (a, b) {
                        (Ok(a), Ok(b)) => (a, b),
                        (Err(a), Err(b)) => {
                            assert_eq!(a.to_string(), b.to_string(), "{what}");
                            continue;
                        }
                        (a, b) => panic!("{what}: {:?} vs {:?}", a.map(|_| ()), b.map(|_| ())),
                    };
                    assert_eq!(
                        (a.packets, a.bytes, a.ran, a.snapped, a.faults),
                        (b.packets, b.bytes, b.ran, b.snapped, b.faults),
                        "{what}"
                    );
                    assert_eq!(a.actions, b.actions, "{what}");
                    assert_eq!(a.redirects, b.redirects, "{what}");
                    assert_eq!(a.first_fault, b.first_fault, "{what}");
                    assert_eq!(a.skipped, b.skipped, "{what}");
                    assert_eq!(a.damaged, b.damaged, "{what}");
                    compared += 1;
                    redirects += a.redirects.values().sum::<u64>();
                    other_actions += a
                        .actions
                        .iter()
                        .filter(|(k, _)| !bpfkit_replay::ACTIONS.contains(&k.as_str()))
                        .map(|(_, n)| n)
                        .sum::<u64>();
                    faults += a.faults;
                }
            }
        }
    }
    let _ = std::fs::remove_dir_all(&d);
    eprintln!("{compared} replays compared; {redirects} redirects, {other_actions} other return values, {faults} faults");
    // The corpus has redirecting programs; the comparison must have covered them.
    assert!(compared >= 400, "{compared}");
    assert!(redirects > 0);
}

/// `--engine jit` runs the fast JIT when bpfkit's verifier accepts the object and the
/// checked JIT otherwise, says which in the summary, and gives the same results either
/// way; `jit-fast` refuses what the verifier does not accept.
#[test]
fn jit_engine_picks_fast_mode_only_for_verified_objects() {
    let (o, p) = obj("xdp_counter");
    let run = |engine| {
        let opts = Options {
            engine,
            object_path: Some(p.clone()),
            ..Options::default()
        };
        replay(&o, &mixed(), &opts, None).unwrap()
    };
    let auto = run(EngineKind::Jit);
    let mode = auto
        .engine_mode
        .clone()
        .expect("jit says which mode it chose");
    assert!(mode.starts_with("fast mode"), "{mode}");
    assert!(auto.to_text().contains(&mode));
    assert_eq!(auto.to_json()["engine_mode"], serde_json::json!(mode));
    for forced in [
        EngineKind::JitChecked,
        EngineKind::JitFast,
        EngineKind::Interp,
    ] {
        let s = run(forced);
        assert_eq!(s.engine_mode, None, "{}", forced.name());
        assert_eq!((s.actions.clone(), s.ran), (auto.actions.clone(), auto.ran));
    }

    // A program the kernel's verifier rejects (an unchecked packet access): `jit` falls
    // back to checked mode and says why, `jit-fast` refuses.
    let bad_path = common::root().join("corpus/obj/rejected/unchecked_access.o");
    let bad = common::load(&bad_path);
    let opts = |engine| Options {
        engine,
        object_path: Some(bad_path.clone()),
        ..Options::default()
    };
    let s = replay(&bad, &mixed(), &opts(EngineKind::Jit), None).unwrap();
    let mode = s.engine_mode.clone().expect("mode");
    assert!(
        mode.starts_with("checked mode") && mode.contains("rejects"),
        "{mode}"
    );
    let checked = replay(&bad, &mixed(), &opts(EngineKind::JitChecked), None).unwrap();
    assert_eq!(
        (s.actions.clone(), s.faults, s.ran),
        (checked.actions, checked.faults, checked.ran)
    );
    let refused = replay(&bad, &mixed(), &opts(EngineKind::JitFast), None)
        .expect_err("jit-fast refuses an object the verifier rejects")
        .to_string();
    assert!(
        refused.contains("jit-fast") && refused.contains("rejects"),
        "{refused}"
    );

    // The gate verifies global functions on their own, as the kernel does: this one
    // dereferences a pointer argument without a NULL check (fine for its only caller,
    // rejected by the kernel).
    let global = common::root().join("crates/verifier/tests/objs/global_null_deref.o");
    let g = common::load(&global);
    let s = replay(&g, &mixed(), &opts_for(&global, EngineKind::Jit), None).unwrap();
    let mode = s.engine_mode.clone().expect("mode");
    assert!(
        mode.starts_with("checked mode") && mode.contains("mem_or_null"),
        "{mode}"
    );
}

fn opts_for(path: &std::path::Path, engine: EngineKind) -> Options {
    Options {
        engine,
        object_path: Some(path.to_path_buf()),
        ..Options::default()
    }
}
