//! Replays every `corpus/expected/<object>.<program>.run.json` (recorded from the kernel
//! with `BPF_PROG_TEST_RUN`) on the interpreter: same packets, in the same order, on the
//! same maps, comparing verdicts, output bytes, metadata length, events and the final map
//! contents. Adding a case needs no Rust: the files are discovered by glob.

use bpfkit_object::model::map_type as mt;
use bpfkit_object::Object;
use bpfkit_vm::{Config, Engine, Event, Interpreter, VmError, XdpInput};
use serde_json::Value;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).expect("hex"))
        .collect()
}

fn to_hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Replays one run.json; returns the list of differences and the number of packets and
/// maps compared.
fn replay(path: &Path) -> (Vec<String>, usize, usize) {
    let mut diffs = Vec::new();
    let (mut packets, mut maps) = (0, 0);
    let j: Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("read run.json")).expect("json");
    let obj_name = j["object"].as_str().expect("object");
    let prog_name = j["program"].as_str().expect("program");
    let bytes = std::fs::read(root().join("corpus/obj").join(format!("{obj_name}.o")))
        .expect("object file");
    let linked = Object::parse(&bytes)
        .and_then(|o| o.link())
        .unwrap_or_else(|e| panic!("{obj_name}: {e}"));
    let prog = linked
        .programs
        .iter()
        .position(|p| p.name == prog_name)
        .expect("program in object");
    let config = Config {
        ncpus: j["num_possible_cpus"].as_u64().unwrap_or(1) as u32,
        ..Config::default()
    };
    let mut vm = Interpreter::new(&linked, config).unwrap_or_else(|e| panic!("{obj_name}: {e}"));
    let map_idx = |name: &str| {
        linked
            .maps
            .iter()
            .position(|m| m.name == name)
            .unwrap_or_else(|| panic!("{obj_name}: no map {name}"))
    };
    for s in j["map_setup"].as_array().into_iter().flatten() {
        let m = map_idx(s["map"].as_str().expect("map"));
        vm.map_update(
            m,
            &hex(s["key"].as_str().unwrap()),
            &hex(s["value"].as_str().unwrap()),
            0,
        )
        .expect("map_setup");
    }
    let cpu = j["cpu"].as_u64().unwrap_or(0) as u32;
    let mut out = bpfkit_vm::XdpOutput::default();
    for p in j["packets"].as_array().expect("packets") {
        let name = p["name"].as_str().unwrap();
        let data = std::fs::read(
            root()
                .join("corpus/packets")
                .join(p["file"].as_str().unwrap()),
        )
        .expect("packet");
        let input = XdpInput {
            packet: &data,
            ingress_ifindex: j["ingress_ifindex"].as_u64().unwrap_or(1) as u32,
            rx_queue_index: j["rx_queue_index"].as_u64().unwrap_or(0) as u32,
            time_ns: 1_000_000,
            cpu,
        };
        // One output reused for every packet (the replay path), so buffer reuse is
        // compared with the kernel too.
        let r = vm.run_xdp_into(prog, &input, &mut out).map(|()| &out);
        let tag = format!("{obj_name}.{prog_name} packet {name}");
        match (r, p.get("errno")) {
            (Err(VmError::Setup(_)), Some(_)) => continue,
            (Err(e), _) => {
                diffs.push(format!("{tag}: interpreter error: {e}"));
                continue;
            }
            (Ok(o), Some(errno)) => {
                diffs.push(format!(
                    "{tag}: kernel refused (errno {errno}), interpreter returned {}",
                    o.retval
                ));
                continue;
            }
            (Ok(o), None) => {
                packets += 1;
                let want = p["retval"].as_u64().unwrap();
                if o.retval as u32 as u64 != want {
                    diffs.push(format!("{tag}: retval {} (kernel {want})", o.retval));
                }
                let want_out = match p["data_out"].as_str() {
                    Some(h) => hex(h),
                    None => data.clone(),
                };
                if o.packet != want_out {
                    diffs.push(format!(
                        "{tag}: data_out\n  ours   {}\n  kernel {}",
                        to_hex(&o.packet),
                        to_hex(&want_out)
                    ));
                }
                let mut want_ev = Vec::new();
                for e in p["events"].as_array().into_iter().flatten() {
                    if let Some(t) = e.get("printk") {
                        want_ev.push(format!("printk {}", t.as_str().unwrap()));
                    } else {
                        want_ev.push(format!(
                            "record {} {}",
                            e["map"].as_str().unwrap(),
                            e["data"].as_str().unwrap()
                        ));
                    }
                }
                let got_ev: Vec<String> = o
                    .events
                    .iter()
                    .map(|e| match e {
                        Event::Printk(s) => format!("printk {s}"),
                        Event::Record { map, data } => {
                            format!("record {} {}", linked.maps[*map].name, to_hex(data))
                        }
                    })
                    .collect();
                if got_ev != want_ev {
                    diffs.push(format!(
                        "{tag}: events\n  ours   {got_ev:?}\n  kernel {want_ev:?}"
                    ));
                }
            }
        }
    }
    let nondet = j
        .get("nondeterministic")
        .and_then(|v| v.as_object())
        .cloned()
        .unwrap_or_default();
    for (name, want) in j["maps_after"].as_object().expect("maps_after") {
        let m = map_idx(name);
        maps += 1;
        let def = &linked.maps[m];
        let mut got: Vec<(String, String)> = vm
            .map_entries(m)
            .expect("entries")
            .into_iter()
            .filter(|(_, v)| {
                !(matches!(def.map_type, mt::ARRAY | mt::PERCPU_ARRAY) && v.iter().all(|b| *b == 0))
            })
            .map(|(k, v)| (to_hex(&k), to_hex(&v)))
            .collect();
        // Queues and stacks are dumped in pop order; everything else sorted by key.
        if !matches!(def.map_type, mt::QUEUE | mt::STACK) {
            got.sort();
        }
        let want: Vec<(String, String)> = want
            .as_array()
            .unwrap()
            .iter()
            .map(|kv| {
                (
                    kv[0].as_str().unwrap().to_string(),
                    kv[1].as_str().unwrap_or("").to_string(),
                )
            })
            .collect();
        // Map-in-map values read back as kernel map ids, which only the kernel knows:
        // compare which slots are filled.
        let ids = matches!(def.map_type, mt::ARRAY_OF_MAPS | mt::HASH_OF_MAPS);
        let same = if nondet.contains_key(name) || ids {
            got.iter().map(|(k, _)| k).eq(want.iter().map(|(k, _)| k))
        } else {
            got == want
        };
        if !same {
            diffs.push(format!("{obj_name}.{prog_name}: map {name} after the run\n  ours   {got:?}\n  kernel {want:?}"));
        }
    }
    (diffs, packets, maps)
}

#[test]
fn corpus_runs_match_the_kernel() {
    let dir = root().join("corpus/expected");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus expectations missing at {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".run.json"))
        .collect();
    files.sort();
    assert!(
        !files.is_empty(),
        "no run.json files under {}",
        dir.display()
    );
    let mut all = Vec::new();
    let (mut packets, mut maps) = (0, 0);
    for f in &files {
        let (d, p, m) = replay(f);
        packets += p;
        maps += m;
        let verdict = if d.is_empty() {
            "ok".to_string()
        } else {
            format!("{} differences", d.len())
        };
        eprintln!(
            "{}: {p} packets run, {m} maps compared: {verdict}",
            f.file_name().unwrap().to_string_lossy()
        );
        all.extend(d);
    }
    eprintln!(
        "{} run files, {packets} packets run and compared, {maps} maps compared",
        files.len()
    );
    for d in &all {
        eprintln!("{d}");
    }
    assert!(
        all.is_empty(),
        "{} differences from the kernel over {} run files",
        all.len(),
        files.len()
    );
}
