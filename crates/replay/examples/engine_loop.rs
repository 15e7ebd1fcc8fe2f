//! The engine part of a replay alone: runs the packets of a capture (held in memory)
//! round-robin through one program, N runs in all, on one engine, through the same
//! `ReplayEngine` interface `bpfkit replay` uses, and prints wall and CPU time per run.
//! CPU time (this thread's, from /proc/thread-self/schedstat) stays meaningful when other
//! processes share the machine. For profiling the per-run cost:
//!
//!     cargo run --release -p bpfkit-replay --example engine_loop -- \
//!         corpus/obj/xdp_counter.o xdp_count corpus/pcap/mixed.pcap [RUNS] [ENGINE]

use bpfkit_object::{object_name_from_path, Object};
use bpfkit_replay::capture::Capture;
use bpfkit_replay::engines::{EngineKind, EngineSettings};
use bpfkit_vm::engine::{XdpInput, XdpOutput};
use std::path::Path;
use std::time::Instant;

fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 3 {
        eprintln!(
            "usage: engine_loop OBJECT.o PROGRAM CAPTURE [RUNS] [interp|jit|jit-checked|jit-fast]"
        );
        std::process::exit(2);
    }
    let runs: u64 = args
        .get(3)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let kind = match args.get(4).map(String::as_str).unwrap_or("jit-fast") {
        "interp" => EngineKind::Interp,
        "jit" => EngineKind::Jit,
        "jit-checked" => EngineKind::JitChecked,
        "jit-fast" => EngineKind::JitFast,
        other => {
            eprintln!("unknown engine {other:?}");
            std::process::exit(2);
        }
    };
    let path = Path::new(&args[0]);
    let obj = match std::fs::read(path)
        .map_err(|e| e.to_string())
        .and_then(|b| {
            Object::parse_named(&b, &object_name_from_path(path))
                .and_then(|o| o.link())
                .map_err(|e| e.to_string())
        }) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{}: {e}", path.display());
            std::process::exit(1);
        }
    };
    let Some(prog) = obj.programs.iter().position(|p| p.name == args[1]) else {
        eprintln!("no program {:?}", args[1]);
        std::process::exit(1);
    };
    let mut frames: Vec<Vec<u8>> = Vec::new();
    match Capture::open(Path::new(&args[2])) {
        Ok(mut c) => {
            while let Some(r) = c.next_record() {
                if r.data.len() >= 14 {
                    frames.push(r.data.to_vec());
                }
            }
        }
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    }
    if frames.is_empty() {
        eprintln!("{}: no frames", args[2]);
        std::process::exit(1);
    }
    let settings = EngineSettings {
        ncpus: 1,
        seed: 0x5eed,
        device: None,
        object_path: None,
        ..Default::default()
    };
    let mut e = match bpfkit_replay::engines::create(kind, &obj, &settings, prog) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    };
    let mut out = XdpOutput::default();
    let mut sink = 0u64;
    let (t, c) = (Instant::now(), thread_cpu_ns());
    for i in 0..runs {
        let input = XdpInput {
            packet: &frames[(i as usize) % frames.len()],
            ingress_ifindex: 1,
            rx_queue_index: 0,
            time_ns: 1_700_000_000_000_000_000 + i * 10_000,
            cpu: 0,
        };
        if let Err(err) = e.run_into(prog, &input, &mut out, false) {
            eprintln!("run {i}: {err:?}");
            std::process::exit(1);
        }
        sink = sink.wrapping_add(out.retval);
    }
    let wall = t.elapsed().as_nanos() as f64 / runs as f64;
    let cpu = (thread_cpu_ns() - c) as f64 / runs as f64;
    println!(
        "{}: {runs} runs over {} frames: {wall:.1} ns/run wall, {cpu:.1} ns/run CPU (retval sum {sink})",
        kind.name(),
        frames.len()
    );
}
