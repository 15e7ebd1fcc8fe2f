//! Every corpus program on every corpus capture: the interpreter and the JIT give the
//! per-packet actions, output bytes and final maps the kernel gave through
//! `BPF_PROG_TEST_RUN` (committed in `corpus/expected/replay/`, recorded by
//! `examples/record_kernel.rs`), and, when the kernel is usable here, the kernel gives
//! them again live.

mod common;

use bpfkit_replay::engines::EngineKind;
use serde_json::Value;

/// The recorded kernel results of a program; `None` (with a loud note) when the corpus
/// has a program nobody recorded yet: the corpus grows independently of this crate.
fn expectation(obj_path: &std::path::Path, prog: &str) -> Option<Value> {
    let p = common::expectation_path(obj_path, prog);
    match std::fs::read_to_string(&p) {
        Ok(text) => Some(serde_json::from_str(&text).expect("expectation JSON")),
        Err(e) => {
            eprintln!(
                "\n*** NOT RECORDED: {}: {e}; record it with: cargo run --release -p bpfkit-replay --example record_kernel ***\n",
                p.display()
            );
            None
        }
    }
}

/// Compares one replay with the expected capture entry; returns the differences.
fn diff(what: &str, exp: &Value, got: &Result<common::Run, String>) -> Vec<String> {
    let mut out = Vec::new();
    match (exp.get("error"), got) {
        (Some(Value::String(e)), _) if e.starts_with("kernel: ") => {
            // bpfkit's kernel loader could not load this program (see the report in
            // docs/replay.md): there is no kernel result to compare with.
            let first = e.lines().next().unwrap_or("");
            eprintln!("*** NOT COMPARED: {what}: no kernel result recorded: {first}");
        }
        (Some(_), Err(_)) => return out,
        (Some(e), Ok(_)) => {
            return vec![format!("{what}: expected an error ({e}), the replay ran")]
        }
        (None, Err(e)) => return vec![format!("{what}: replay failed: {e}")],
        (None, Ok(r)) => {
            let pk = exp["packets"].as_array().expect("packets");
            if pk.len() != r.packets.len() {
                out.push(format!(
                    "{what}: {} packets expected, {} replayed",
                    pk.len(),
                    r.packets.len()
                ));
            }
            for (e, g) in pk.iter().zip(&r.packets) {
                if e != g {
                    out.push(format!("{what}: packet {}: kernel {e}, got {g}", e[0]));
                    if out.len() > 5 {
                        return out;
                    }
                }
            }
            if exp["maps_after"] != r.maps_after {
                out.push(format!(
                    "{what}: maps after the run differ:\n  kernel {}\n  got    {}",
                    exp["maps_after"], r.maps_after
                ));
            }
            if exp["damaged"] != serde_json::json!(r.damaged) {
                out.push(format!(
                    "{what}: capture damage report differs: {} vs {:?}",
                    exp["damaged"], r.damaged
                ));
            }
        }
    }
    out
}

fn check_engine(engine: EngineKind) {
    let tmp = common::scratch_dir(engine.name());
    let mut failures = Vec::new();
    let (mut runs, mut packets) = (0, 0);
    // Replays of programs this kernel refuses (printed as SKIPPED with the reason).
    let mut skipped = 0;
    for obj_path in common::objects() {
        let obj = common::load(&obj_path);
        for p in &obj.programs {
            let Some(exp) = expectation(&obj_path, &p.name) else {
                continue;
            };
            let cpus = exp["num_possible_cpus"]
                .as_u64()
                .expect("num_possible_cpus") as u32;
            if engine == EngineKind::Kernel
                && !bpfkit_loader::program_or_skip(
                    "kernel_live_matches_recorded_results",
                    &format!("{} {}", obj_path.display(), p.name),
                    &p.insns,
                )
            {
                skipped += common::captures().len();
                continue;
            }
            for cap in common::captures() {
                let cname = cap.file_name().unwrap().to_string_lossy().to_string();
                let what = format!(
                    "{} {} {cname} on {}",
                    obj_path.file_name().unwrap().to_string_lossy(),
                    p.name,
                    engine.name()
                );
                let Some(e) = exp["captures"].get(&cname) else {
                    eprintln!("\n*** NOT RECORDED: {what}: no kernel result for this capture (re-run the recorder) ***\n");
                    continue;
                };
                let got = common::run(&obj, &obj_path, &p.name, &cap, engine, cpus, &tmp);
                if let Ok(r) = &got {
                    packets += r.packets.len();
                }
                runs += 1;
                failures.extend(diff(&what, e, &got));
            }
        }
    }
    let _ = std::fs::remove_dir_all(&tmp);
    eprintln!(
        "{}: {runs} program x capture replays, {packets} packets compared with the kernel's",
        engine.name()
    );
    // 39 programs x 8 captures were recorded when this test was written.
    assert!(
        runs + skipped >= 300,
        "too few replays: {runs} (+{skipped} skipped)"
    );
    assert!(runs >= 200, "too few replays run: {runs}");
    assert!(packets > 8_000, "too few packets: {packets}");
    assert!(
        failures.is_empty(),
        "{} differences from the kernel:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn interpreter_matches_recorded_kernel_results() {
    check_engine(EngineKind::Interp);
}

/// `jit` runs the fast JIT here: bpfkit's verifier accepts every corpus object.
#[test]
fn jit_matches_recorded_kernel_results() {
    check_engine(EngineKind::Jit);
}

#[test]
fn checked_jit_matches_recorded_kernel_results() {
    check_engine(EngineKind::JitChecked);
}

#[test]
fn kernel_live_matches_recorded_results() {
    if !bpfkit_loader::kernel_or_skip("kernel_live_matches_recorded_results") {
        return;
    }
    check_engine(EngineKind::Kernel);
}

/// The corpus's own kernel recordings (`corpus/expected/NAME.PROG.run.json`, made with
/// libbpf, which passes BTF and so loads every program) ran the sample packets in
/// `packets/index.json` order; `pcap/samples.pcapng` holds the same frames in the same
/// order. Replaying that capture must give the recorded retval and output bytes for every
/// packet, and the recorded final maps — this also covers the programs bpfkit's own
/// loader cannot load yet.
#[test]
fn interpreter_and_jit_match_corpus_run_json_on_the_samples_capture() {
    let root = common::root();
    let cap = root.join("corpus/pcap/samples.pcapng");
    let tmp = common::scratch_dir("runjson");
    let mut files: Vec<_> = std::fs::read_dir(root.join("corpus/expected"))
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().ends_with(".run.json"))
        .collect();
    files.sort();
    let mut failures = Vec::new();
    let (mut compared, mut packets, mut with_events) = (0, 0, 0);
    for f in &files {
        let run: Value = serde_json::from_str(&std::fs::read_to_string(f).unwrap()).unwrap();
        let object = run["object"].as_str().unwrap();
        let prog = run["program"].as_str().unwrap();
        let obj_path = root.join(format!("corpus/obj/{object}.o"));
        let obj = common::load(&obj_path);
        let cpus = run["num_possible_cpus"].as_u64().unwrap_or(1) as u32;
        let expected = run["packets"].as_array().unwrap();
        let nondet: Vec<String> = run["nondeterministic"]
            .as_object()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        for engine in [EngineKind::Interp, EngineKind::Jit, EngineKind::JitChecked] {
            let what = format!("{object}.{prog} on {}", engine.name());
            let r = match common::run(&obj, &obj_path, prog, &cap, engine, cpus, &tmp) {
                Ok(r) => r,
                Err(e) => {
                    failures.push(format!("{what}: {e}"));
                    continue;
                }
            };
            if r.packets.len() != expected.len() {
                failures.push(format!(
                    "{what}: samples.pcapng has {} frames, run.json {} packets",
                    r.packets.len(),
                    expected.len()
                ));
                continue;
            }
            compared += 1;
            for (i, (e, g)) in expected.iter().zip(&r.packets).enumerate() {
                packets += 1;
                let ok = if e.get("errno").is_some() {
                    g[1] == "skipped"
                } else {
                    g[1] == e["retval"]
                        && match e["data_out"].as_str() {
                            None => g.as_array().unwrap().len() == 2,
                            Some(hex) => g.get(2).and_then(Value::as_str) == Some(hex),
                        }
                };
                if !ok {
                    failures.push(format!(
                        "{what}: packet {i} ({}): kernel {e}, got {g}",
                        e["name"]
                    ));
                }
                if let Some(ev) = e.get("events") {
                    if ev.as_array().is_some_and(|a| !a.is_empty()) {
                        with_events += 1;
                    }
                    if &r.events[i] != ev {
                        failures.push(format!(
                            "{what}: packet {i} ({}): kernel events {ev}, got {}",
                            e["name"], r.events[i]
                        ));
                    }
                }
            }
            if let Some(maps) = run["maps_after"].as_object() {
                for (name, entries) in maps {
                    if nondet.contains(name) {
                        continue;
                    }
                    if r.all_maps.get(name) != Some(entries) {
                        failures.push(format!(
                            "{what}: map {name}: kernel {entries}, got {}",
                            r.all_maps.get(name).unwrap_or(&Value::Null)
                        ));
                    }
                }
            }
        }
    }
    let _ = std::fs::remove_dir_all(&tmp);
    eprintln!(
        "run.json: {compared} program x engine replays of samples.pcapng, {packets} packets compared, {with_events} with printk/ring-buffer events"
    );
    assert!(
        with_events > 20,
        "too few packets with events: {with_events}"
    );
    assert!(files.len() >= 30, "only {} run.json files", files.len());
    assert!(
        failures.is_empty(),
        "{} differences from the corpus's kernel recordings:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
