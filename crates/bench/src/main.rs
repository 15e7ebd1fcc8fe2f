//! `bpfkit-bench`: nanoseconds per XDP run, in one run, on the same programs and packets,
//! for the bpfkit interpreter, the bpfkit JIT (checked and fast), rbpf 0.4 (interpreter
//! and JIT, where it can run the program) and the kernel (`BPF_PROG_TEST_RUN` `duration`).
//!
//! Every engine is measured the way `BPF_PROG_TEST_RUN` with `repeat` measures: the XDP
//! buffer is set up once, then the program runs `repeat` times on it; the figure is the
//! total time divided by `repeat` (the minimum over 30 rounds of about 1 ms, to reduce
//! noise from other processes). Before timing, each engine's result on a fresh packet is compared
//! with the interpreter's (return value and packet bytes); an engine that disagrees is
//! reported as `differs` instead of a time.
//!
//! Usage: `cargo run --release -p bpfkit-bench -- [--quick] [--rounds N] [--filter TEXT]
//! [--json FILE]`. See docs/performance.md.

use bpfkit_isa::opcode::*;
use bpfkit_isa::RawInsn;
use bpfkit_jit::Jit;
use bpfkit_object::model::LinkedObject;
use bpfkit_object::Object;
use bpfkit_vm::{Config, Engine, Interpreter, XdpInput};
use serde_json::{json, Value};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

struct Opts {
    /// Target time per measurement round.
    round: Duration,
    rounds: usize,
    filter: Option<String>,
    json: Option<PathBuf>,
    /// Only these engines (names from ENGINES); the others print `skipped`.
    engines: Option<Vec<String>>,
    /// `--profile N`: no table; run each selected case N times on the fast JIT only, or on
    /// the interpreter with `--engines interp` (for `valgrind --tool=callgrind
    /// --toggle-collect=bpfkit_bench::profile_runs`, or `profile_interp_runs`).
    profile: Option<u32>,
}

impl Opts {
    fn wants(&self, engine: &str) -> bool {
        self.engines
            .as_ref()
            .is_none_or(|v| v.iter().any(|e| e == engine))
    }
}

/// One program on one packet.
struct Case {
    label: String,
    object: PathBuf,
    program: String,
    map_setup: Vec<(String, Vec<u8>, Vec<u8>)>,
    ncpus: u32,
    packet_name: String,
    packet: Vec<u8>,
    /// The kernel's verifier accepted the program (recorded run.json, or loaded in this
    /// run): fast mode may run it.
    kernel_recorded: bool,
}

fn hex(s: &str) -> Vec<u8> {
    ::hex::decode(s).expect("hex")
}

fn packet(name: &str) -> Vec<u8> {
    let p = root().join("corpus/packets").join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn cases() -> Vec<Case> {
    let mut out = Vec::new();
    let dir = root().join("corpus/expected");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".run.json"))
        .collect();
    files.sort();
    for f in files {
        let j: Value = serde_json::from_str(&std::fs::read_to_string(&f).unwrap()).unwrap();
        let object = j["object"].as_str().unwrap().to_string();
        let program = j["program"].as_str().unwrap().to_string();
        let map_setup = j["map_setup"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|s| {
                (
                    s["map"].as_str().unwrap().to_string(),
                    hex(s["key"].as_str().unwrap()),
                    hex(s["value"].as_str().unwrap()),
                )
            })
            .collect();
        out.push(Case {
            label: format!("{object}.{program}"),
            object: root().join("corpus/obj").join(format!("{object}.o")),
            program,
            map_setup,
            ncpus: j["num_possible_cpus"].as_u64().unwrap_or(1) as u32,
            packet_name: "ipv4_tcp_syn".into(),
            packet: packet("00_ipv4_tcp_syn.bin"),
            kernel_recorded: true,
        });
    }
    // The empty program: each engine's fixed cost per run.
    out.push(Case {
        label: "bench_nop (empty)".into(),
        object: root().join("crates/bench/progs/bench_nop.o"),
        program: "bench_nop".into(),
        map_setup: Vec::new(),
        ncpus: 1,
        packet_name: "ipv4_tcp_syn".into(),
        packet: packet("00_ipv4_tcp_syn.bin"),
        kernel_recorded: false,
    });
    // Pure compute programs on three packets each.
    for prog in ["bench_csum", "bench_parse"] {
        for (name, file) in [
            ("ipv4_tcp_syn", "00_ipv4_tcp_syn.bin"),
            ("ipv6_ext_headers", "21_ipv6_ext_headers.bin"),
            ("ipv4_udp_1500", "32_ipv4_udp_1500.bin"),
        ] {
            out.push(Case {
                label: format!("{prog} (compute)"),
                object: root().join("crates/bench/progs").join(format!("{prog}.o")),
                program: prog.into(),
                map_setup: Vec::new(),
                ncpus: 1,
                packet_name: name.into(),
                packet: packet(file),
                kernel_recorded: false,
            });
        }
    }
    out
}

/// A measurement: ns per run, or why there is none.
#[derive(Clone)]
enum M {
    Ns(f64),
    NA(String),
}

impl M {
    fn cell(&self) -> String {
        match self {
            M::Ns(v) => format!("{v:.1}"),
            M::NA(w) => w.clone(),
        }
    }
    fn ns(&self) -> Option<f64> {
        match self {
            M::Ns(v) => Some(*v),
            M::NA(_) => None,
        }
    }
}

/// Runs `f(repeat)` (which returns the mean ns per run over `repeat` runs) with a repeat
/// count sized to `opts.round`, `opts.rounds` times; returns the minimum.
fn measure(opts: &Opts, engine: &str, mut f: impl FnMut(u32) -> Result<f64, String>) -> M {
    if !opts.wants(engine) {
        return M::NA("skipped".into());
    }
    let t = Instant::now();
    let first = match f(64) {
        Ok(v) => v,
        Err(e) => return M::NA(e),
    };
    let per = (t.elapsed().as_nanos() as f64 / 64.0).max(first).max(1.0);
    let repeat = ((opts.round.as_nanos() as f64 / per) as u32).clamp(100, 5_000_000);
    let mut best = f64::MAX;
    for _ in 0..opts.rounds {
        match f(repeat) {
            Ok(v) => best = best.min(v),
            Err(e) => return M::NA(e),
        }
    }
    M::Ns(best)
}

fn short(e: impl std::fmt::Display) -> String {
    let s = e.to_string();
    let s = s.lines().next().unwrap_or("").to_string();
    format!("err: {}", s.chars().take(60).collect::<String>())
}

fn config(c: &Case) -> Config {
    Config {
        ncpus: c.ncpus,
        ..Config::default()
    }
}

fn setup<E: Engine>(e: &mut E, obj: &LinkedObject, c: &Case) -> Result<(), String> {
    for (m, k, v) in &c.map_setup {
        let i = obj
            .maps
            .iter()
            .position(|d| &d.name == m)
            .ok_or_else(|| format!("no map {m}"))?;
        e.map_update(i, k, v, 0).map_err(short)?;
    }
    Ok(())
}

fn input(packet: &[u8]) -> XdpInput<'_> {
    XdpInput {
        packet,
        ingress_ifindex: 1,
        rx_queue_index: 0,
        time_ns: 1_000_000,
        cpu: 0,
    }
}

/// The interpreter, measured like `Jit::bench_xdp`: buffer set up once, `repeat` runs.
fn bench_interp(
    vm: &mut Interpreter,
    prog: usize,
    packet: &[u8],
    repeat: u32,
) -> Result<f64, String> {
    let rt = vm.runtime_mut();
    rt.begin_run(0, 1_000_000);
    let ctx = match rt.set_xdp(packet, 1, 0, false) {
        Ok(c) => c,
        Err(e) => {
            rt.end_run();
            return Err(short(e));
        }
    };
    let t = Instant::now();
    let mut r = Ok(0);
    for _ in 0..repeat {
        rt.tail_calls = 0;
        rt.insn_count = 0;
        rt.events.clear();
        r = bpfkit_vm::interp::run_function(rt, prog, 0, &[ctx], 0);
        if r.is_err() {
            break;
        }
    }
    let el = t.elapsed();
    rt.end_run();
    r.map_err(short)?;
    Ok(el.as_nanos() as f64 / repeat as f64)
}

/// rbpf runs XDP programs through its "mbuff" interface: the context is a buffer of
/// 8-byte fields (data, data_end, data_meta, ingress_ifindex, rx_queue_index), so the
/// program's 4-byte loads from `struct xdp_md` are rewritten into 8-byte loads at twice
/// the offset. Registers are tracked forward from r1 (copies with `mov`); a program that
/// reaches the context any other way gets a wrong result, which the validation against
/// the interpreter reports. Programs that call helpers or functions are not runnable.
fn rbpf_program(insns: &[RawInsn]) -> Result<Vec<u8>, String> {
    let mut out = insns.to_vec();
    let mut ctx = [false; 11];
    ctx[1] = true;
    let mut pc = 0;
    while pc < out.len() {
        let i = out[pc];
        let (d, s) = (i.dst as usize % 11, i.src as usize % 11);
        if class(i.code) == BPF_JMP && op(i.code) == BPF_CALL {
            return Err("calls helpers or functions".into());
        }
        if i.code == (BPF_LDX | BPF_W | BPF_MEM) && ctx[s] {
            out[pc].code = BPF_LDX | BPF_DW | BPF_MEM;
            out[pc].off = i.off * 2;
        }
        let writes = matches!(class(i.code), BPF_ALU | BPF_ALU64 | BPF_LDX | BPF_LD);
        if i.code == (BPF_ALU64 | BPF_MOV | BPF_X) && i.off == 0 && ctx[s] {
            ctx[d] = true;
        } else if writes {
            ctx[d] = false;
        }
        pc += if i.code == LDDW { 2 } else { 1 };
    }
    Ok(bpfkit_isa::to_bytes(&out))
}

fn mbuff(packet: &mut [u8]) -> Vec<u8> {
    let data = packet.as_ptr() as u64;
    let end = data + packet.len() as u64;
    let mut m = Vec::new();
    for v in [data, end, data, 1u64, 0] {
        m.extend_from_slice(&v.to_le_bytes());
    }
    m
}

struct Row {
    label: String,
    packet: String,
    cells: Vec<M>,
}

const ENGINES: [&str; 6] = [
    "interp",
    "jit checked",
    "jit fast",
    "rbpf interp",
    "rbpf jit",
    "kernel",
];

fn bench_case(opts: &Opts, c: &mut Case) -> Row {
    let na = |w: &str| vec![M::NA(w.into()); ENGINES.len()];
    let row = |cells| Row {
        label: c.label.clone(),
        packet: c.packet_name.clone(),
        cells,
    };
    let bytes = match std::fs::read(&c.object) {
        Ok(b) => b,
        Err(e) => return row(na(&short(e))),
    };
    let obj = match Object::parse(&bytes).and_then(|o| o.link()) {
        Ok(o) => o,
        Err(e) => return row(na(&short(e))),
    };
    let Some(prog) = obj.programs.iter().position(|p| p.name == c.program) else {
        return row(na("no such program"));
    };
    let mut cells = Vec::new();

    // Kernel first: loading tells whether the verifier accepts the compute programs.
    let kernel = match bpfkit_loader::probe::kernel_available() {
        Err(why) => M::NA(format!(
            "no kernel: {}",
            why.chars().take(40).collect::<String>()
        )),
        Ok(()) => match bpfkit_loader::KernelEngine::new(&obj) {
            Err(e) => M::NA(short(e)),
            Ok(mut k) => {
                c.kernel_recorded = true;
                match setup(&mut k, &obj, c) {
                    Err(e) => M::NA(e),
                    Ok(()) => {
                        let p = k.program(prog).expect("program loaded");
                        let pkt = c.packet.clone();
                        measure(opts, "kernel", |repeat| {
                            p.test_run_xdp(&pkt, 0, 0, repeat)
                                .map(|r| r.duration_ns as f64)
                                .map_err(short)
                        })
                    }
                }
            }
        },
    };

    // Reference result: one interpreter run on a fresh packet.
    let reference = Interpreter::new(&obj, config(c))
        .map_err(short)
        .and_then(|mut vm| {
            setup(&mut vm, &obj, c)?;
            vm.run_xdp(prog, &input(&c.packet)).map_err(short)
        });
    let reference = match reference {
        Ok(r) => r,
        Err(e) => return row(na(&e)),
    };
    let agrees = |o: Result<bpfkit_vm::XdpOutput, bpfkit_vm::VmError>| -> Result<(), String> {
        let o = o.map_err(short)?;
        if o.retval != reference.retval || o.packet != reference.packet {
            return Err("differs".into());
        }
        Ok(())
    };

    // bpfkit interpreter.
    cells.push(match Interpreter::new(&obj, config(c)) {
        Err(e) => M::NA(short(e)),
        Ok(mut vm) => match setup(&mut vm, &obj, c) {
            Err(e) => M::NA(e),
            Ok(()) => measure(opts, "interp", |r| {
                bench_interp(&mut vm, prog, &c.packet, r)
            }),
        },
    });
    // bpfkit JIT, checked then fast.
    for fast in [false, true] {
        let jit = if fast {
            if !c.kernel_recorded {
                cells.push(M::NA("not verified".into()));
                continue;
            }
            // SAFETY: the kernel's verifier accepted this program (a kernel run was
            // recorded for it in corpus/expected, or it loaded in this run).
            unsafe { Jit::new_unchecked(&obj, config(c)) }
        } else {
            Jit::new(&obj, config(c))
        };
        cells.push(match jit {
            Err(e) => M::NA(short(e)),
            Ok(mut j) => {
                let check = setup(&mut j, &obj, c).and_then(|_| {
                    // Validate on a separate engine with identical map state.
                    let mut v = if fast {
                        // SAFETY: as above.
                        unsafe { Jit::new_unchecked(&obj, config(c)) }.map_err(short)?
                    } else {
                        Jit::new(&obj, config(c)).map_err(short)?
                    };
                    setup(&mut v, &obj, c)?;
                    agrees(v.run_xdp(prog, &input(&c.packet)))
                });
                match check {
                    Err(e) => M::NA(e),
                    Ok(()) => measure(opts, if fast { "jit fast" } else { "jit checked" }, |r| {
                        j.bench_xdp(prog, &input(&c.packet), r)
                            .map(|(_, ns)| ns)
                            .map_err(short)
                    }),
                }
            }
        });
    }
    // rbpf.
    let rb = rbpf_program(&obj.programs[prog].insns);
    match rb {
        Err(e) => {
            cells.push(M::NA(e.clone()));
            cells.push(M::NA(e));
        }
        Ok(code) => {
            let quiet = std::panic::take_hook();
            std::panic::set_hook(Box::new(|_| {}));
            for jit in [false, true] {
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    rbpf_case(opts, &code, &c.packet, &reference, jit)
                }));
                cells.push(r.unwrap_or_else(|_| M::NA("rbpf panicked".into())));
            }
            std::panic::set_hook(quiet);
        }
    }
    cells.push(kernel);
    row(cells)
}

fn rbpf_case(
    opts: &Opts,
    code: &[u8],
    packet: &[u8],
    reference: &bpfkit_vm::XdpOutput,
    jit: bool,
) -> M {
    let mut pkt = packet.to_vec();
    let mut mb = mbuff(&mut pkt);
    let mut vm = match rbpf::EbpfVmMbuff::new(Some(code)) {
        Ok(v) => v,
        Err(e) => {
            return M::NA(format!(
                "rbpf refuses: {}",
                e.to_string().chars().take(40).collect::<String>()
            ))
        }
    };
    if jit {
        if let Err(e) = vm.jit_compile() {
            return M::NA(format!(
                "rbpf jit: {}",
                e.to_string().chars().take(40).collect::<String>()
            ));
        }
    }
    let run = |vm: &rbpf::EbpfVmMbuff, pkt: &mut [u8], mb: &mut [u8]| -> Result<u64, String> {
        if jit {
            // SAFETY: rbpf's JIT does not check accesses; the program is one the kernel
            // verifier accepted (context loads rewritten to the mbuff layout, whose
            // pointers point into `pkt`, alive for the call).
            unsafe { vm.execute_program_jit(pkt, mb) }.map_err(short)
        } else {
            vm.execute_program(pkt, mb).map_err(short)
        }
    };
    match run(&vm, &mut pkt, &mut mb) {
        Ok(r0) if r0 == reference.retval && pkt == reference.packet => {}
        Ok(_) => return M::NA("differs".into()),
        Err(e) => return M::NA(e),
    }
    let mut pkt = packet.to_vec();
    let mut mb = mbuff(&mut pkt);
    measure(
        opts,
        if jit { "rbpf jit" } else { "rbpf interp" },
        |repeat| {
            let t = Instant::now();
            for _ in 0..repeat {
                run(&vm, &mut pkt, &mut mb)?;
            }
            Ok(t.elapsed().as_nanos() as f64 / repeat as f64)
        },
    )
}

fn geomean(v: &[f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    Some((v.iter().map(|x| x.ln()).sum::<f64>() / v.len() as f64).exp())
}

/// `--profile N`: runs the case N times on the fast JIT, or on the interpreter if
/// `interp` (map setup as in the table) and prints the time per run; nothing else runs,
/// so a profiler sees only that engine's runs.
fn profile_case(c: &Case, n: u32, interp: bool) {
    let run = || -> Result<f64, String> {
        let bytes = std::fs::read(&c.object).map_err(short)?;
        let obj = Object::parse(&bytes)
            .and_then(|o| o.link())
            .map_err(short)?;
        let prog = obj
            .programs
            .iter()
            .position(|p| p.name == c.program)
            .ok_or("no such program")?;
        if interp {
            let mut vm = Interpreter::new(&obj, config(c)).map_err(short)?;
            setup(&mut vm, &obj, c)?;
            return profile_interp_runs(&mut vm, prog, &c.packet, n);
        }
        // SAFETY: profiling only; the corpus programs were accepted by the kernel's
        // verifier (their runs are recorded in corpus/expected), as were the bench programs.
        let mut j = unsafe { Jit::new_unchecked(&obj, config(c)) }.map_err(short)?;
        setup(&mut j, &obj, c)?;
        profile_runs(&mut j, prog, &c.packet, n)
    };
    match run() {
        Ok(ns) => println!(
            "{} on {}: {n} runs, {ns:.1} ns per run",
            c.label, c.packet_name
        ),
        Err(e) => println!("{} on {}: {e}", c.label, c.packet_name),
    }
}

/// The measured part of `--profile` (a separate function for callgrind's toggle).
#[inline(never)]
fn profile_runs(j: &mut Jit, prog: usize, packet: &[u8], n: u32) -> Result<f64, String> {
    j.bench_xdp(prog, &input(packet), n)
        .map(|(_, ns)| ns)
        .map_err(short)
}

/// The measured part of `--profile --engines interp` (the table's `bench_interp`).
#[inline(never)]
fn profile_interp_runs(
    vm: &mut Interpreter,
    prog: usize,
    packet: &[u8],
    n: u32,
) -> Result<f64, String> {
    bench_interp(vm, prog, packet, n)
}

fn main() {
    let mut opts = Opts {
        // Many short rounds, keeping the fastest: on a shared machine a short round has a
        // good chance to run without being preempted (the kernel's own `duration` leaves
        // out the time its test loop spends rescheduled).
        round: Duration::from_millis(1),
        rounds: 30,
        filter: None,
        json: None,
        engines: None,
        profile: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--quick" => {
                opts.round = Duration::from_millis(1);
                opts.rounds = 3;
            }
            "--rounds" => {
                opts.rounds = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--rounds N")
            }
            "--filter" => opts.filter = args.next(),
            "--profile" => {
                opts.profile = Some(
                    args.next()
                        .and_then(|v| v.parse().ok())
                        .expect("--profile N"),
                )
            }
            "--json" => opts.json = args.next().map(PathBuf::from),
            "--engines" => {
                let v: Vec<String> = args
                    .next()
                    .expect("--engines LIST")
                    .split(',')
                    .map(|s| s.trim().to_string())
                    .collect();
                for e in &v {
                    if !ENGINES.contains(&e.as_str()) {
                        eprintln!(
                            "bpfkit-bench: unknown engine {e:?} (engines: {})",
                            ENGINES.join(", ")
                        );
                        std::process::exit(2);
                    }
                }
                opts.engines = Some(v);
            }
            "-h" | "--help" => {
                println!("usage: bpfkit-bench [--quick] [--rounds N] [--filter TEXT] [--engines LIST] [--json FILE] [--profile N]\n  --profile N: run each case N times on the fast JIT (on the interpreter with --engines interp), no table\n  LIST: comma-separated from: interp, jit checked, jit fast, rbpf interp, rbpf jit, kernel\nPrints a markdown table of ns per run. See docs/performance.md.");
                return;
            }
            other => {
                eprintln!("bpfkit-bench: unknown argument {other:?} (see --help)");
                std::process::exit(2);
            }
        }
    }
    if cfg!(debug_assertions) {
        eprintln!("bpfkit-bench: warning: debug build; use `cargo run --release -p bpfkit-bench`");
    }
    // BPF_PROG_TEST_RUN runs on the calling thread's CPU: keep every engine on one CPU.
    if let Err(e) = bpfkit_loader::pin_current_thread(0) {
        eprintln!("bpfkit-bench: not pinned: {e}");
    }
    let mut rows = Vec::new();
    for mut c in cases() {
        if let Some(f) = &opts.filter {
            if !c.label.contains(f.as_str()) {
                continue;
            }
        }
        eprintln!("{} on {}", c.label, c.packet_name);
        if let Some(n) = opts.profile {
            let interp = opts
                .engines
                .as_ref()
                .is_some_and(|v| v.iter().any(|e| e == "interp"));
            profile_case(&c, n, interp);
            continue;
        }
        rows.push(bench_case(&opts, &mut c));
    }
    let mut t = String::new();
    let _ = writeln!(t, "| program | packet | {} | interp vs rbpf interp | rbpf jit vs jit fast | jit fast vs kernel |", ENGINES.join(" | "));
    let _ = writeln!(t, "|---|---|{}---|---|---|", "---:|".repeat(ENGINES.len()));
    let (mut r_interp, mut r_jit, mut r_kernel, mut r_kernel_corpus) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    };
    let fmt = |r: Option<f64>| r.map_or("".to_string(), |r| format!("{r:.2}x"));
    for r in &rows {
        let ns: Vec<Option<f64>> = r.cells.iter().map(M::ns).collect();
        let a = ratio(ns[3], ns[0]);
        let b = ratio(ns[4], ns[2]);
        let k = ratio(ns[2], ns[5]);
        // Issue 15 states the rbpf targets over the compute rows only.
        let compute = r.label.contains("(compute)");
        if let Some(v) = a.filter(|_| compute) {
            r_interp.push(v);
        }
        if let Some(v) = b.filter(|_| compute) {
            r_jit.push(v);
        }
        if let Some(v) = k {
            r_kernel.push(v);
            if !r.label.contains("(compute)") && !r.label.contains("(empty)") {
                r_kernel_corpus.push(v);
            }
        }
        let cells: Vec<String> = r.cells.iter().map(M::cell).collect();
        let _ = writeln!(
            t,
            "| {} | {} | {} | {} | {} | {} |",
            r.label,
            r.packet,
            cells.join(" | "),
            fmt(a),
            fmt(b),
            fmt(k)
        );
    }
    println!("{t}");
    let g = |v: &[f64]| {
        geomean(v).map_or("n/a".to_string(), |g| {
            format!("{g:.2}x over {} rows", v.len())
        })
    };
    println!("geometric means:");
    println!(
        "  rbpf interp time / bpfkit interp time: {} (compute rows; target >= 4x)",
        g(&r_interp)
    );
    println!(
        "  rbpf jit time / bpfkit jit fast time:  {} (compute rows; target >= 1.5x)",
        g(&r_jit)
    );
    println!(
        "  bpfkit jit fast time / kernel time:    {} (all rows; target <= 1x on the corpus)",
        g(&r_kernel)
    );
    println!(
        "  bpfkit jit fast time / kernel time:    {} (corpus XDP programs)",
        g(&r_kernel_corpus)
    );
    if let Some(path) = &opts.json {
        let j: Vec<Value> = rows
            .iter()
            .map(|r| {
                let mut o = serde_json::Map::new();
                o.insert("program".into(), json!(r.label));
                o.insert("packet".into(), json!(r.packet));
                for (e, m) in ENGINES.iter().zip(&r.cells) {
                    o.insert(
                        e.to_string(),
                        match m {
                            M::Ns(v) => json!(v),
                            M::NA(w) => json!(w),
                        },
                    );
                }
                Value::Object(o)
            })
            .collect();
        std::fs::write(path, serde_json::to_string_pretty(&j).unwrap()).expect("write --json");
    }
}
