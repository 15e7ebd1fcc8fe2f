//! Replay throughput: 1,000,000 packets through the corpus counter program
//! (`corpus/obj/xdp_counter.o`, program `xdp_count`) on one core, including reading the
//! capture. Not part of `cargo test`; run with
//!
//!     cargo bench -p bpfkit-replay --bench replay_throughput [-- PACKETS]
//!
//! The capture is built from the packets of `corpus/pcap/mixed.pcap`, repeated with
//! increasing timestamps, in a temporary file (classic pcap, microseconds).
//!
//! How the file sits in the page cache decides what mapping it costs (see the "Replay
//! throughput" section of docs/performance.md): a file written in small pieces lies in
//! 4 KiB folios, and mapping those is page-table work per 4 KiB page; a capture at rest
//! (read back from disk, where readahead builds large folios) or written in large pieces
//! lies in large folios, which map in a few operations. By default the capture is written
//! in 4 MiB pieces. Environment:
//!
//! - `BENCH_WRITE_BUF=BYTES`: write buffer size (8192 reproduces a file freshly written
//!   through a default `BufWriter`, 4 KiB folios).
//! - `BENCH_EVICT=1`: after writing, flush the file to disk and drop it from the page
//!   cache (`dd iflag=nocache count=0`, i.e. `POSIX_FADV_DONTNEED`), so the first read pass
//!   reads it from disk, as with a capture recorded long ago.
//! - `BENCH_FORMAT=pcapng`: the same packets as pcapng (one Ethernet interface with
//!   microsecond timestamps, Enhanced Packet Blocks without options).
//! - `BENCH_READ_PASSES=N` (3), `BENCH_READ_ONLY=1`, `BENCH_ENGINE=NAME` (one engine by
//!   its `--engine` name: jit, jit-checked, jit-fast, interp; default jit, jit-checked and
//!   interp),
//!   `BENCH_QUEUES=N` / `BENCH_THREADS=a,b`.

use bpfkit_object::{object_name_from_path, Object};
use bpfkit_replay::capture::Capture;
use bpfkit_replay::engines::{EngineKind, EngineSettings};
use bpfkit_replay::{replay, Options};
use bpfkit_vm::engine::{XdpInput, XdpOutput};
use std::io::Write;
use std::path::Path;
use std::time::Instant;

fn main() {
    let n: u64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    // Source packets.
    let mut frames: Vec<Vec<u8>> = Vec::new();
    let mut cap = Capture::open(&root.join("corpus/pcap/mixed.pcap")).expect("mixed.pcap");
    while let Some(r) = cap.next_record() {
        frames.push(r.data.to_vec());
    }
    let ng = std::env::var("BENCH_FORMAT").is_ok_and(|f| f == "pcapng");
    let tmp = std::env::temp_dir().join(format!(
        "bpfkit-replay-bench-{}.{}",
        std::process::id(),
        if ng { "pcapng" } else { "pcap" }
    ));
    let write_buf: usize = std::env::var("BENCH_WRITE_BUF")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4 << 20);
    {
        let mut w = std::io::BufWriter::with_capacity(
            write_buf.max(1),
            std::fs::File::create(&tmp).expect("create"),
        );
        if ng {
            write_pcapng(&mut w, &frames, n);
        } else {
            let mut h = Vec::new();
            for v in [0xa1b2c3d4u32, 0x0004_0002, 0, 0, 65535, 1] {
                h.extend_from_slice(&v.to_le_bytes());
            }
            // version is two u16 (2, 4): fix the second word.
            h[4..8].copy_from_slice(&[2, 0, 4, 0]);
            w.write_all(&h).unwrap();
            for i in 0..n {
                let f = &frames[(i as usize) % frames.len()];
                let ts_us = 1_700_000_000_000_000u64 + i * 10;
                for v in [
                    (ts_us / 1_000_000) as u32,
                    (ts_us % 1_000_000) as u32,
                    f.len() as u32,
                    f.len() as u32,
                ] {
                    w.write_all(&v.to_le_bytes()).unwrap();
                }
                w.write_all(f).unwrap();
            }
        }
        let f = w.into_inner().expect("flush");
        if std::env::var_os("BENCH_EVICT").is_some() {
            f.sync_all().expect("fsync");
        }
    }
    let size = std::fs::metadata(&tmp).map(|m| m.len()).unwrap_or(0);
    println!(
        "capture: {n} packets, {size} bytes ({}), written in {write_buf}-byte pieces",
        tmp.display()
    );
    println!(
        "machine reference: memory read {:.1} GB/s (one core, 256 MiB, best of 3; reading the capture is bound by it)",
        memory_read_gbps()
    );
    if std::env::var_os("BENCH_EVICT").is_some() {
        // POSIX_FADV_DONTNEED over the whole (clean) file, through GNU dd.
        let ok = std::process::Command::new("dd")
            .arg(format!("if={}", tmp.display()))
            .args(["iflag=nocache", "count=0", "status=none"])
            .status()
            .is_ok_and(|s| s.success());
        println!(
            "page cache: {}",
            if ok {
                "dropped (the first read pass reads the file from disk)"
            } else {
                "could not be dropped (dd iflag=nocache failed)"
            }
        );
    }

    // Reading alone (best of a few passes: the first one also maps the page cache in).
    let passes: usize = std::env::var("BENCH_READ_PASSES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let (mut read_ns, mut read_cpu) = (f64::MAX, f64::MAX);
    for _ in 0..passes.max(1) {
        let (t, cpu) = (Instant::now(), cpu_ns());
        let (count, bytes) = read_pass(&tmp);
        let el = t.elapsed();
        let ns = el.as_nanos() as f64 / count.max(1) as f64;
        let cpu = on_cpu(cpu, count);
        println!(
            "read only: {count} packets in {:.3} s = {ns:.1} ns/packet = {:.2} Mpps{} (checksum {bytes})",
            el.as_secs_f64(),
            count as f64 / el.as_secs_f64() / 1e6,
            cpu.map(|c| format!(", on CPU {c:.1} ns/packet"))
                .unwrap_or_default()
        );
        read_ns = read_ns.min(ns);
        read_cpu = read_cpu.min(cpu.unwrap_or(f64::NAN));
    }

    if std::env::var_os("BENCH_READ_ONLY").is_some() {
        let _ = std::fs::remove_file(&tmp);
        return;
    }
    let obj_path = root.join("corpus/obj/xdp_counter.o");
    let bytes = std::fs::read(&obj_path).expect("object");
    let obj = Object::parse_named(&bytes, &object_name_from_path(&obj_path))
        .and_then(|o| o.link())
        .expect("link");
    let prog = obj
        .programs
        .iter()
        .position(|p| p.name == "xdp_count")
        .expect("xdp_count");
    // `jit` is what a user gets (fast mode when bpfkit's verifier accepts the object, as
    // here); BENCH_ENGINE picks one engine by its --engine name (jit-fast included).
    let kinds: Vec<EngineKind> = match std::env::var("BENCH_ENGINE") {
        Ok(name) => vec![EngineKind::parse(&name).expect("BENCH_ENGINE")],
        Err(_) => vec![EngineKind::Jit, EngineKind::JitChecked, EngineKind::Interp],
    };
    println!(
        "{:<11} {:>9} {:>9} {:>9} {:>9} {:>9}   (ns/packet; loop = bpfkit_replay::replay incl. reading; run = engine alone on packets in memory; rest = loop - read - run)",
        "engine", "loop", "Mpps", "read", "run", "rest"
    );
    for engine in kinds {
        // The engine alone: the same number of runs over mixed.pcap's frames, already in
        // memory, through the ReplayEngine interface replay uses.
        let settings = EngineSettings {
            ncpus: 1,
            seed: 0x5eed,
            device: None,
            object_path: None,
            ..Default::default()
        };
        let mut e = bpfkit_replay::engines::create(engine, &obj, &settings, prog).expect("engine");
        let mut sink = 0u64;
        let mut out = XdpOutput::default();
        let (t, cpu) = (Instant::now(), cpu_ns());
        for i in 0..n {
            let input = XdpInput {
                packet: &frames[(i as usize) % frames.len()],
                ingress_ifindex: 1,
                rx_queue_index: 0,
                time_ns: 1_700_000_000_000_000_000 + i * 10_000,
                cpu: 0,
            };
            e.run_into(prog, &input, &mut out, false).expect("run");
            sink = sink.wrapping_add(out.retval);
        }
        let run_ns = t.elapsed().as_nanos() as f64 / n.max(1) as f64;
        let run_cpu = on_cpu(cpu, n);
        drop(e);

        let opts = Options {
            prog: Some("xdp_count".into()),
            engine,
            ..Options::default()
        };
        let (t, cpu) = (Instant::now(), cpu_ns());
        let s = replay(&obj, &tmp, &opts, None).expect("replay");
        let total = t.elapsed();
        let loop_cpu = on_cpu(cpu, s.packets);
        let loop_ns = s.ns_per_packet();
        println!(
            "{:<11} {:>9.1} {:>9.2} {:>9.1} {:>9.1} {:>9.1}   ({}with engine setup {:.3} s; actions {:?}; {sink})",
            engine.name(),
            loop_ns,
            s.packets_per_second() / 1e6,
            read_ns,
            run_ns,
            loop_ns - read_ns - run_ns,
            s.engine_mode
                .as_deref()
                .map(|m| format!("{m}; "))
                .unwrap_or_default(),
            total.as_secs_f64(),
            s.actions
        );
        // The same split in time on a CPU (this thread's), which time spent waiting for a
        // CPU on a loaded machine does not inflate. The loop's includes the engine set-up.
        if let (Some(l), Some(r)) = (loop_cpu, run_cpu) {
            println!(
                "{:<11} {l:>9.1} {:>9.2} {read_cpu:>9.1} {r:>9.1} {:>9.1}   (on CPU)",
                "",
                1e3 / l,
                l - read_cpu - r
            );
        }
    }
    // Optional: the same capture on RSS queues and worker threads
    // (BENCH_QUEUES=N [BENCH_THREADS=a,b,..]).
    if let Some(queues) = std::env::var("BENCH_QUEUES")
        .ok()
        .and_then(|v| v.parse::<u32>().ok())
    {
        let threads: Vec<u32> = std::env::var("BENCH_THREADS")
            .unwrap_or_else(|_| "1,2".into())
            .split(',')
            .filter_map(|t| t.trim().parse().ok())
            .collect();
        for t in threads {
            let opts = Options {
                prog: Some("xdp_count".into()),
                engine: EngineKind::Jit,
                queues,
                threads: Some(t),
                ..Options::default()
            };
            let s = replay(&obj, &tmp, &opts, None).expect("replay");
            println!(
                "jit, {queues} queues on {} threads: {:.1} ns/packet = {:.2} Mpps{}",
                s.threads,
                s.ns_per_packet(),
                s.packets_per_second() / 1e6,
                s.serial_reason
                    .map(|r| format!(" (in order: {r})"))
                    .unwrap_or_default()
            );
        }
    }
    let _ = std::fs::remove_file(&tmp);
}

/// One pass over the capture: open (map), read every record, close (unmap). Out of line so
/// a profile shows its cost per record.
#[inline(never)]
fn read_pass(path: &Path) -> (u64, u64) {
    let mut c = Capture::open(path).expect("open");
    let mut count = 0u64;
    let mut sum = 0u64;
    while let Some(r) = c.next_record() {
        count += 1;
        sum = sum.wrapping_add(r.data.len() as u64 + r.ts_ns);
    }
    (count, sum)
}

/// Nanoseconds this thread has spent on a CPU (`/proc/thread-self/schedstat`), to tell the
/// work itself from time spent waiting for a CPU on a loaded machine.
fn cpu_ns() -> Option<u64> {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Nanoseconds on a CPU per packet since `start` (from [`cpu_ns`]), when known.
fn on_cpu(start: Option<u64>, packets: u64) -> Option<f64> {
    Some(cpu_ns()?.saturating_sub(start?) as f64 / packets.max(1) as f64)
}

/// The capture as pcapng: a Section Header Block, one Interface Description Block
/// (Ethernet, default microsecond resolution) and an Enhanced Packet Block per packet.
fn write_pcapng(w: &mut impl Write, frames: &[Vec<u8>], n: u64) {
    let block = |w: &mut dyn Write, btype: u32, body: &[u8]| {
        let len = (12 + body.len().next_multiple_of(4)) as u32;
        w.write_all(&btype.to_le_bytes()).unwrap();
        w.write_all(&len.to_le_bytes()).unwrap();
        w.write_all(body).unwrap();
        w.write_all(&[0u8; 3][..body.len().next_multiple_of(4) - body.len()])
            .unwrap();
        w.write_all(&len.to_le_bytes()).unwrap();
    };
    let mut shb = Vec::new();
    shb.extend_from_slice(&0x1a2b_3c4du32.to_le_bytes());
    shb.extend_from_slice(&1u16.to_le_bytes());
    shb.extend_from_slice(&0u16.to_le_bytes());
    shb.extend_from_slice(&(-1i64).to_le_bytes());
    block(w, 0x0a0d_0d0a, &shb);
    let mut idb = Vec::new();
    idb.extend_from_slice(&1u16.to_le_bytes());
    idb.extend_from_slice(&0u16.to_le_bytes());
    idb.extend_from_slice(&65535u32.to_le_bytes());
    block(w, 1, &idb);
    let mut epb = Vec::with_capacity(20 + 65536);
    for i in 0..n {
        let f = &frames[(i as usize) % frames.len()];
        let ts_us = 1_700_000_000_000_000u64 + i * 10;
        epb.clear();
        for v in [
            0u32,
            (ts_us >> 32) as u32,
            ts_us as u32,
            f.len() as u32,
            f.len() as u32,
        ] {
            epb.extend_from_slice(&v.to_le_bytes());
        }
        epb.extend_from_slice(f);
        block(w, 6, &epb);
    }
}

/// Sequential read bandwidth of one core over 256 MiB of memory (best of three passes),
/// as a reference for the figures: on a shared host it varies with the neighbours, and
/// reading a 330 MB capture is bound by it.
fn memory_read_gbps() -> f64 {
    let words = 32usize << 20;
    let buf: Vec<u64> = (0..words as u64).collect();
    let mut best = f64::MAX;
    for _ in 0..3 {
        let t = Instant::now();
        let mut acc = 0u64;
        for chunk in buf.chunks(8) {
            acc = acc.wrapping_add(chunk[0]);
        }
        std::hint::black_box(acc);
        best = best.min(t.elapsed().as_secs_f64());
    }
    (words * 8) as f64 / best / 1e9
}
