//! Per-run cost of the interpreter on corpus programs: `cargo bench -p bpfkit-vm
//! [-- FILTER]`. For each program and packet it reports nanoseconds per run of
//! `Engine::run_xdp` (a new output per run), `Engine::run_xdp_into` (one reused output,
//! the replay path) and `run_xdp_into_with(.., false)` (no output packet copy), the fastest
//! of several rounds. Figures vary with machine load; compare columns of one run.

use bpfkit_object::Object;
use bpfkit_vm::{Config, Engine, Interpreter, XdpInput, XdpOutput};
use std::hint::black_box;
use std::path::Path;
use std::time::Instant;

/// Rounds per figure and runs per round; `XDP_RUN_N=N` runs one round of N (e.g. under
/// `valgrind --tool=callgrind`, to count instructions per run on a loaded machine).
fn rounds_and_n() -> (usize, u32) {
    match std::env::var("XDP_RUN_N").ok().and_then(|v| v.parse().ok()) {
        Some(n) => (1, n),
        None => (15, 20_000),
    }
}

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

/// Whether column `c` (1-3) runs: all, or only `XDP_RUN_COLUMN` (for instruction counts
/// of one entry point).
fn column(c: u32) -> bool {
    std::env::var("XDP_RUN_COLUMN")
        .ok()
        .and_then(|v| v.parse::<u32>().ok())
        .is_none_or(|only| only == c)
}

/// Fastest time per call of `f` over `ROUNDS` rounds of `n` calls, in ns.
fn time(mut f: impl FnMut()) -> f64 {
    let (rounds, n) = rounds_and_n();
    let mut best = f64::MAX;
    for _ in 0..rounds {
        let t = Instant::now();
        for _ in 0..n {
            f();
        }
        best = best.min(t.elapsed().as_nanos() as f64 / n as f64);
    }
    best
}

fn main() {
    let filter: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let cases = [
        ("xdp_counter", "xdp_count", "00_ipv4_tcp_syn"),
        ("xdp_counter", "xdp_count", "32_ipv4_udp_1500"),
        ("xdp_icmp_echo", "xdp_icmp_echo", "00_ipv4_tcp_syn"),
        ("xdp_firewall", "xdp_firewall", "00_ipv4_tcp_syn"),
        ("xdp_tailcall", "xdp_dispatch", "00_ipv4_tcp_syn"),
        ("xdp_adjust_probe", "xdp_adjust_probe", "00_ipv4_tcp_syn"),
        // The compute programs of bpfkit-bench (crates/bench/progs).
        ("bench:bench_csum", "bench_csum", "32_ipv4_udp_1500"),
        ("bench:bench_parse", "bench_parse", "00_ipv4_tcp_syn"),
        ("bench:bench_nop", "bench_nop", "00_ipv4_tcp_syn"),
    ];
    println!(
        "{:<40} {:<16} {:>10} {:>14} {:>16}",
        "program", "packet", "run_xdp", "run_xdp_into", "into, no packet"
    );
    for (obj, prog, pkt) in cases {
        let name = format!("{obj}.{prog}");
        if filter
            .as_deref()
            .is_some_and(|f| !format!("{name} {pkt}").contains(f))
        {
            continue;
        }
        let path = match obj.strip_prefix("bench:") {
            Some(b) => root().join(format!("crates/bench/progs/{b}.o")),
            None => root().join(format!("corpus/obj/{obj}.o")),
        };
        let Ok(bytes) = std::fs::read(path) else {
            println!("{name}: object missing, skipped");
            continue;
        };
        let Ok(packet) = std::fs::read(root().join(format!("corpus/packets/{pkt}.bin"))) else {
            println!("{name}: packet {pkt} missing, skipped");
            continue;
        };
        let linked = Object::parse(&bytes)
            .and_then(|o| o.link())
            .expect("corpus object links");
        let p = linked
            .programs
            .iter()
            .position(|p| p.name == prog)
            .expect("program");
        let mut vm = Interpreter::new(&linked, Config::default()).expect("interpreter");
        let input = XdpInput {
            packet: &packet,
            ..XdpInput::default()
        };
        if let Err(e) = vm.run_xdp(p, &input) {
            println!("{name}: {e}");
            continue;
        }
        let (c1, c2, c3) = (column(1), column(2), column(3));
        let a = time(|| {
            if c1 {
                black_box(vm.run_xdp(p, black_box(&input)).ok());
            }
        });
        let mut out = XdpOutput::default();
        let b = time(|| {
            if c2 {
                black_box(vm.run_xdp_into(p, black_box(&input), &mut out).ok());
            }
        });
        let c = time(|| {
            if c3 {
                let r = vm.run_xdp_into_with(p, black_box(&input), &mut out, false);
                black_box(r.ok());
            }
        });
        println!("{name:<40} {pkt:<16} {a:>10.1} {b:>14.1} {c:>16.1}");
    }
}
