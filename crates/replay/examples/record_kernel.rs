//! Records the kernel's per-packet results for every corpus program and capture into
//! `corpus/expected/replay/OBJ.PROG.json`, by replaying through `BPF_PROG_TEST_RUN`
//! (bpfkit's KernelEngine, pinned to CPU 0, a fresh load per capture).
//!
//!     cargo run --release -p bpfkit-replay --example record_kernel [OBJECT_NAME...]
//!
//! Needs root (CAP_BPF, CAP_NET_ADMIN, CAP_PERFMON); exits 2 with the reason otherwise.

#[path = "../tests/common/mod.rs"]
mod common;

use bpfkit_replay::engines::EngineKind;
use serde_json::{json, Map, Value};

/// Masks kernel addresses (`0xffff888109c74800`) in verifier logs, as the corpus's own
/// recorder does, so recordings do not change from one load to the next.
fn mask_addresses(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find("0xffff") {
        out.push_str(&rest[..i]);
        let tail = &rest[i + 6..];
        let n = tail.bytes().take_while(|b| b.is_ascii_hexdigit()).count();
        out.push_str("0xffff<kernel-address>");
        rest = &tail[n..];
    }
    out.push_str(rest);
    out
}

fn main() {
    if let Err(e) = bpfkit_replay::engines::kernel_available() {
        eprintln!("SKIPPED: kernel not usable: {e}");
        std::process::exit(2);
    }
    let cpus = bpfkit_loader::map::possible_cpus().expect("possible CPUs") as u32;
    let only: Vec<String> = std::env::args().skip(1).collect();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_string();
    let tmp = std::env::temp_dir().join(format!("bpfkit-record-{}", std::process::id()));
    std::fs::create_dir_all(common::root().join("corpus/expected/replay")).expect("mkdir");
    let mut files = 0;
    for obj_path in common::objects() {
        let name = bpfkit_object::object_name_from_path(&obj_path);
        if !only.is_empty() && !only.contains(&name) {
            continue;
        }
        let obj = common::load(&obj_path);
        let (setup, nondet) = common::directives(&obj_path);
        for p in &obj.programs {
            let mut caps = Map::new();
            for cap in common::captures() {
                let cname = cap.file_name().unwrap().to_string_lossy().to_string();
                match common::run(
                    &obj,
                    &obj_path,
                    &p.name,
                    &cap,
                    EngineKind::Kernel,
                    cpus,
                    &tmp,
                ) {
                    Ok(r) => {
                        caps.insert(
                            cname,
                            json!({
                                "packets": r.packets,
                                "maps_after": r.maps_after,
                                "damaged": r.damaged,
                            }),
                        );
                    }
                    Err(e) => {
                        caps.insert(cname, json!({ "error": mask_addresses(&e) }));
                    }
                }
            }
            let doc = json!({
                "object": name,
                "program": p.name,
                "kernel": kernel,
                "recorder": "crates/replay/examples/record_kernel.rs (KernelEngine, BPF_PROG_TEST_RUN, CPU 0)",
                "num_possible_cpus": cpus,
                "ingress_ifindex": 1,
                "rx_queue_index": 0,
                "map_setup": setup,
                "nondeterministic_maps": nondet,
                "captures": Value::Object(caps),
            });
            let path = common::expectation_path(&obj_path, &p.name);
            let mut text = serde_json::to_string(&doc).expect("json");
            text.push('\n');
            std::fs::write(&path, text).expect("write expectation");
            files += 1;
        }
    }
    let _ = std::fs::remove_dir_all(&tmp);
    eprintln!("wrote {files} expectation files");
}
