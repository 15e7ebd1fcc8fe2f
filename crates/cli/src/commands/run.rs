//! `bpfkit run`: execute a program on raw memory (the bpf_conformance plugin contract) or
//! an XDP program of an object on a packet.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use bpfkit_isa::RawInsn;
use bpfkit_object::model::LinkedObject;
use bpfkit_object::Object;
use bpfkit_vm::{Config, Engine, Event, Interpreter, Redirect, VmError, XdpInput, XdpOutput};
use serde_json::json;

use crate::{CliError, CliResult, Status};

const AFTER_HELP: &str = "\
Raw mode (FILE is raw instruction bytes, `-` for standard input, or assembler text):
  r1 points at a copy of the memory given with --mem (base16) or as the second argument,
  r2 holds its length; the program's r0 is printed in hex. This is the plugin contract of
  the bpf_conformance runner.

XDP mode (FILE is an ELF object): the program (--program, default the first) runs on the
packet given with --packet (a raw Ethernet frame file) or --packet-hex, in a buffer laid
out as BPF_PROG_TEST_RUN lays it out; prints the action, the output bytes (metadata
first), the redirect target and captured events (printk lines, ring buffer and perf
records).

Examples:
  printf 'mov %%r0, 42\\nexit\\n' > t.s && bpfkit run t.s  # prints 2a
  bpfkit asm t.s -o t.bin && bpfkit run t.bin
  printf '\\xb7\\x00\\x00\\x00\\x07\\x00\\x00\\x00\\x95\\x00\\x00\\x00\\x00\\x00\\x00\\x00' | bpfkit run - --mem 0011
  bpfkit run - 0102030405 < prog.bin                      # memory as second argument
  bpfkit run corpus/obj/xdp_counter.o --packet corpus/packets/00_ipv4_tcp_syn.bin --dump-maps
  bpfkit run corpus/obj/xdp_csum.o --packet p.bin --map-update nat:0a0000fe0035:0a0000051435 --json
  sudo bpfkit run corpus/obj/xdp_csum.o --packet p.bin --engine kernel
  bpfkit run corpus/obj/xdp_csum.o --packet p.bin --engine jit   # x86-64 JIT, checked mode
  sudo bpfkit run corpus/obj/xdp_counter.o --packet p.bin --engine interp,jit-fast,kernel --repeat 100000
                                    # mean ns per run on each engine, as bpftool's repeat

Exit status: 0 the program ran (raw mode: r0 printed; XDP mode: whatever the action);
1 the input was judged bad (malformed program or object, assembler error, run-time fault:
the message names the instruction, address and region); 2 usage or I/O error.";

#[derive(clap::Args)]
#[command(after_help = AFTER_HELP)]
pub struct Args {
    /// Raw instructions (`.bin`), `-` for raw bytes on standard input, assembler text, or
    /// an ELF object.
    pub file: String,
    /// Memory for raw mode, base16 (the conformance runner passes it here too).
    #[arg(value_name = "MEM")]
    pub mem_arg: Option<String>,
    /// Memory for raw mode, base16: r1 points at it, r2 holds its length.
    #[arg(long, value_name = "HEX")]
    pub mem: Option<String>,
    /// Engine: `interp` (default), `jit` (x86-64 JIT, checked mode), `jit-fast` (XDP
    /// mode: the JIT's fast mode, for objects bpfkit's verifier accepts) or `kernel`
    /// (BPF_PROG_TEST_RUN; needs root, XDP mode only). XDP mode takes a comma-separated
    /// list (`interp,jit-fast,kernel`): each engine runs in turn on its own maps.
    /// [possible values: interp, jit, jit-fast, kernel]
    #[arg(long, default_value = "interp", value_parser = parse_engines)]
    pub engine: Engines,
    /// XDP mode: run the program N times on one packet buffer, as `BPF_PROG_TEST_RUN` with
    /// `repeat` (and `bpftool prog run ... repeat N`) does, and print the mean duration per
    /// run in nanoseconds (the kernel's own figure for `kernel`). The output is the last
    /// run's.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub repeat: Option<u32>,
    /// XDP mode: program name in the object (default: the first program).
    #[arg(long)]
    pub program: Option<String>,
    /// XDP mode: file holding one raw Ethernet frame.
    #[arg(long)]
    pub packet: Option<PathBuf>,
    /// XDP mode: the frame as base16.
    #[arg(long, value_name = "HEX")]
    pub packet_hex: Option<String>,
    /// XDP mode: `MAP:KEYHEX:VALUEHEX`, a BPF_MAP_UPDATE_ELEM (BPF_ANY) before the run;
    /// repeatable.
    #[arg(long, value_name = "MAP:KEY:VALUE")]
    pub map_update: Vec<String>,
    /// XDP mode: print every map's entries after the run.
    #[arg(long)]
    pub dump_maps: bool,
    /// Number of possible CPUs (per-CPU map values).
    #[arg(long, default_value_t = 1)]
    pub cpus: u32,
    /// CPU the run happens on.
    #[arg(long, default_value_t = 0)]
    pub cpu: u32,
    /// Virtual time returned by bpf_ktime_get_*_ns.
    #[arg(long, default_value_t = 0)]
    pub time_ns: u64,
    /// Instructions a run may execute before it is stopped as an infinite loop.
    #[arg(long, default_value_t = 1 << 27, value_parser = clap::value_parser!(u64).range(1..))]
    pub insn_limit: u64,
    /// Seed of bpf_get_prandom_u32.
    #[arg(long, default_value_t = 0x5eed)]
    pub seed: u64,
    /// ingress_ifindex of the context (default: 1, the loopback device, as the kernel).
    #[arg(long, default_value_t = 1)]
    pub ifindex: u32,
    /// rx_queue_index of the context.
    #[arg(long, default_value_t = 0)]
    pub rx_queue: u32,
    /// XDP mode: a device `IFINDEX[:MTU[:RXQUEUES]]` (default MTU 1500, 1 queue), for
    /// --ifindex, bpf_check_mtu and bpf_fib_lookup; the loopback device (1) always exists.
    #[arg(long, value_name = "IFINDEX[:MTU[:RXQUEUES]]")]
    pub device: Vec<String>,
    /// Treat every PERF_EVENT_ARRAY slot as open (capture bpf_perf_event_output records).
    #[arg(long)]
    pub perf_open: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// Run as the kernel TARGET would (`6.1`, `live`, a probe file): refuse (exit 1) an
    /// object that uses something that kernel lacks.
    #[arg(long, value_name = "TARGET")]
    pub kernel: Option<String>,
    #[command(flatten)]
    pub object: super::ObjectArgs,
}

/// The engines of `--engine`, in the order given.
#[derive(Clone, Debug)]
pub struct Engines(pub Vec<String>);

const ENGINE_NAMES: [&str; 4] = ["interp", "jit", "jit-fast", "kernel"];

fn parse_engines(s: &str) -> Result<Engines, String> {
    let mut v: Vec<String> = Vec::new();
    for e in s.split(',').map(str::trim) {
        if !ENGINE_NAMES.contains(&e) {
            return Err(format!(
                "unknown engine {e:?} (possible values: {})",
                ENGINE_NAMES.join(", ")
            ));
        }
        if v.iter().any(|x| x == e) {
            return Err(format!("engine {e:?} given twice"));
        }
        v.push(e.to_string());
    }
    Ok(Engines(v))
}

use super::parse_hex_arg as parse_hex;
use bpfkit_replay::hex::encode as to_hex;

fn read_input(file: &str) -> Result<Vec<u8>, CliError> {
    if file == "-" {
        let mut b = Vec::new();
        std::io::stdin()
            .read_to_end(&mut b)
            .map_err(|e| CliError::usage(format!("reading standard input: {e}")))?;
        return Ok(b);
    }
    std::fs::read(file).map_err(|e| CliError::usage(format!("{file}: {e}")))
}

pub fn run(args: Args) -> CliResult {
    let bytes = read_input(&args.file)?;
    if bytes.starts_with(b"\x7fELF") {
        return run_object(&args, &bytes);
    }
    if args.packet.is_some() || args.packet_hex.is_some() || args.program.is_some() {
        return Err(CliError::usage(
            "--packet/--packet-hex/--program need an ELF object",
        ));
    }
    let is_bin = Path::new(&args.file)
        .extension()
        .is_some_and(|e| e == "bin");
    let is_text = args.file != "-" && !is_bin && std::str::from_utf8(&bytes).is_ok();
    let insns: Vec<RawInsn> = if is_text {
        let text = std::str::from_utf8(&bytes).expect("checked");
        bpfkit_asm::assemble(text).map_err(|e| CliError::bad(format!("{}: {e}", args.file)))?
    } else {
        bpfkit_isa::parse_raw(&bytes).map_err(|e| CliError::bad(format!("{}: {e}", args.file)))?
    };
    if insns.is_empty() {
        return Err(CliError::bad(format!(
            "{}: the program is empty",
            args.file
        )));
    }
    let mem = match (&args.mem, &args.mem_arg) {
        (Some(_), Some(_)) => {
            return Err(CliError::usage(
                "memory given twice (--mem and as an argument)",
            ))
        }
        (Some(m), None) => parse_hex("--mem", m)?,
        (None, Some(m)) => parse_hex("MEM", m)?,
        (None, None) => Vec::new(),
    };
    let engine = match args.engine.0.as_slice() {
        [e] if e == "interp" || e == "jit" => e.as_str(),
        [e] if e == "kernel" => {
            return Err(CliError::usage(
                "--engine kernel runs XDP programs of an object (BPF_PROG_TEST_RUN cannot run raw-memory programs)",
            ))
        }
        [e] => {
            return Err(CliError::usage(format!(
                "--engine {e} runs XDP programs of an object; raw programs run on interp or jit"
            )))
        }
        _ => {
            return Err(CliError::usage(
                "raw programs run on one engine (interp or jit), not a list",
            ))
        }
    };
    if args.repeat.is_some() {
        return Err(CliError::usage(
            "--repeat runs XDP programs of an object (give an ELF object and --packet)",
        ));
    }
    let config = Config {
        seed: args.seed,
        ncpus: args.cpus.max(1),
        insn_limit: args.insn_limit,
        ..Config::default()
    };
    let out = if engine == "jit" {
        // The checked JIT: every access is checked like the interpreter's.
        let mut jit = bpfkit_jit::Jit::with_programs(
            vec![bpfkit_vm::Program::raw("prog", insns)],
            &[],
            config,
        )
        .map_err(|e| CliError::usage(e.to_string()))?;
        jit.runtime_mut().time_ns = args.time_ns;
        jit.run_raw(0, &mem)
            .map_err(|e| CliError::bad(e.to_string()))?
    } else {
        let mut vm =
            Interpreter::with_programs(vec![bpfkit_vm::Program::raw("prog", insns)], &[], config)
                .map_err(|e| CliError::usage(e.to_string()))?;
        vm.runtime_mut().time_ns = args.time_ns;
        vm.run_raw(0, &mem)
            .map_err(|e| CliError::bad(e.to_string()))?
    };
    if args.json {
        let j = json!({"r0": format!("{:#x}", out.r0), "mem": to_hex(&out.mem), "events": events_json(&out.events, &[])});
        crate::outln!("{j}");
    } else {
        for e in &out.events {
            if let Event::Printk(s) = e {
                crate::errln!("printk: {s}");
            }
        }
        crate::outln!("{:x}", out.r0);
    }
    Ok(Status::Ok)
}

fn events_json(events: &[Event], map_names: &[String]) -> serde_json::Value {
    events
        .iter()
        .map(|e| match e {
            Event::Printk(s) => json!({"printk": s}),
            Event::Record { map, data } => {
                json!({"map": map_names.get(*map).cloned().unwrap_or_else(|| format!("#{map}")), "data": to_hex(data)})
            }
        })
        .collect()
}

fn action_name(r: u64) -> &'static str {
    match r as u32 {
        0 => "XDP_ABORTED",
        1 => "XDP_DROP",
        2 => "XDP_PASS",
        3 => "XDP_TX",
        4 => "XDP_REDIRECT",
        _ => "unknown action",
    }
}

fn run_object(args: &Args, bytes: &[u8]) -> CliResult {
    if args.mem.is_some() || args.mem_arg.is_some() {
        return Err(CliError::usage(
            "--mem is for raw programs; give an object a --packet",
        ));
    }
    let mut obj = Object::parse_named(
        bytes,
        &bpfkit_object::object_name_from_path(Path::new(&args.file)),
    )
    .map_err(|e| CliError::bad(format!("{}: {e}", args.file)))?;
    args.object.apply(&mut obj, &args.file)?;
    let obj = obj
        .link()
        .map_err(|e| CliError::bad(format!("{}: {e}", args.file)))?;
    if let Some(k) = &args.kernel {
        let target = super::probe::resolve_target(k)?;
        if let Some(e) = super::probe::target_refusal(&obj, &target) {
            return Err(e);
        }
    }
    if obj.programs.is_empty() {
        return Err(CliError::bad(format!(
            "{}: the object has no programs",
            args.file
        )));
    }
    let prog = match &args.program {
        Some(n) => obj
            .programs
            .iter()
            .position(|p| &p.name == n)
            .ok_or_else(|| {
                let names: Vec<&str> = obj.programs.iter().map(|p| p.name.as_str()).collect();
                CliError::usage(format!(
                    "no program {n:?} in {} (programs: {})",
                    args.file,
                    names.join(", ")
                ))
            })?,
        None => 0,
    };
    let packet = match (&args.packet, &args.packet_hex) {
        (Some(p), None) => {
            std::fs::read(p).map_err(|e| CliError::usage(format!("{}: {e}", p.display())))?
        }
        (None, Some(h)) => parse_hex("--packet-hex", h)?,
        (None, None) => {
            return Err(CliError::usage(
                "XDP mode needs --packet FILE or --packet-hex HEX",
            ))
        }
        (Some(_), Some(_)) => return Err(CliError::usage("give either --packet or --packet-hex")),
    };
    let mut updates = Vec::new();
    for u in &args.map_update {
        let parts: Vec<&str> = u.split(':').collect();
        if parts.len() != 3 {
            return Err(CliError::usage(format!(
                "--map-update {u:?}: expected MAP:KEYHEX:VALUEHEX"
            )));
        }
        let m = obj.map_index(parts[0]).ok_or_else(|| {
            CliError::usage(format!(
                "--map-update: no map {:?} in {}",
                parts[0], args.file
            ))
        })?;
        updates.push((
            m,
            parse_hex(&format!("--map-update {u:?}: key"), parts[1])?,
            parse_hex(&format!("--map-update {u:?}: value"), parts[2])?,
        ));
    }
    let mut devices = Vec::new();
    for d in &args.device {
        let parts: Vec<&str> = d.split(':').collect();
        let num = |i: usize, default: u32| -> Result<u32, CliError> {
            match parts.get(i) {
                None => Ok(default),
                Some(p) => p.parse().map_err(|_| {
                    CliError::usage(format!("--device {d:?}: expected IFINDEX[:MTU[:RXQUEUES]]"))
                }),
            }
        };
        if parts.len() > 3 {
            return Err(CliError::usage(format!(
                "--device {d:?}: expected IFINDEX[:MTU[:RXQUEUES]]"
            )));
        }
        let mut dev = bpfkit_vm::Device::ethernet(num(0, 0)?, num(1, 1500)?);
        dev.rx_queues = num(2, 1)?.max(1);
        devices.push(dev);
    }
    let input = XdpInput {
        packet: &packet,
        ingress_ifindex: args.ifindex,
        rx_queue_index: args.rx_queue,
        time_ns: args.time_ns,
        cpu: args.cpu,
    };
    let engines = &args.engine.0;
    for (i, name) in engines.iter().enumerate() {
        // Every engine starts from the object's own map contents.
        let status = run_engine(args, &obj, prog, name, &updates, &devices, &input)?;
        if status != Status::Ok || i + 1 == engines.len() {
            return Ok(status);
        }
        if !args.json {
            crate::outln!();
        }
    }
    Ok(Status::Ok)
}

/// Runs program `prog` on engine `name` and prints its result.
fn run_engine(
    args: &Args,
    obj: &LinkedObject,
    prog: usize,
    name: &str,
    updates: &[Update],
    devices: &[bpfkit_vm::Device],
    input: &XdpInput<'_>,
) -> CliResult {
    let config = || Config {
        ncpus: args.cpus.max(1),
        seed: args.seed,
        insn_limit: args.insn_limit,
        perf_events_open: args.perf_open,
        devices: devices.to_vec(),
        ..Config::default()
    };
    match name {
        "interp" => {
            let vm = Interpreter::new(obj, config()).map_err(|e| CliError::bad(e.to_string()))?;
            drive(vm, args, obj, prog, updates, input, |e: &VmError| match e {
                VmError::Setup(_) | VmError::Map(_) | VmError::Fault(_) => Status::Bad,
            })
        }
        "jit" | "jit-fast" => {
            // A program of 0 instructions: the JIT has no code for it; report the fault the
            // interpreter reports (it runs past the absent last instruction).
            if obj.programs[prog].insns.is_empty() {
                return Err(CliError::bad(
                    bpfkit_replay::engines::empty_program_error(&obj.programs[prog].name)
                        .to_string(),
                ));
            }
            let jit = if name == "jit" {
                // Checked mode: every access checked like the interpreter's.
                bpfkit_jit::Jit::new(obj, config())
            } else {
                // Fast mode only for what a verifier accepts (as replay's `jit-fast`).
                bpfkit_replay::engines::fast_gate(obj, Some(Path::new(&args.file))).map_err(
                    |why| {
                        CliError::bad(format!(
                            "--engine jit-fast: {why}, so it cannot run without memory checks; use --engine jit"
                        ))
                    },
                )?;
                bpfkit_jit::Jit::new_fast(obj, config())
            }
            .map_err(|e| CliError::bad(e.to_string()))?;
            drive(jit, args, obj, prog, updates, input, |_: &VmError| {
                Status::Bad
            })
        }
        "kernel" => {
            if let Err(why) = bpfkit_loader::probe::kernel_available() {
                return Err(CliError::usage(format!(
                    "--engine kernel: the kernel cannot be used here: {why}"
                )));
            }
            // Some programs load only with the object's BTF, func and line info (callbacks
            // of bpf_loop, spin locks, global functions): then the whole file is loaded
            // as libbpf does (as replay's kernel engine does).
            let k = bpfkit_loader::engine::KernelEngine::new(obj)
                .or_else(|e| {
                    bpfkit_loader::LoadedObject::open(
                        Path::new(&args.file),
                        &bpfkit_loader::LoadOptions::default(),
                    )
                    .map(bpfkit_loader::engine::KernelEngine::from_loaded)
                    .map_err(|_| e)
                })
                .map_err(|e| CliError::bad(e.to_string()))?;
            drive(k, args, obj, prog, updates, input, |_| Status::Bad)
        }
        e => Err(CliError::usage(format!(
            "unknown engine {e:?} (available: {})",
            ENGINE_NAMES.join(", ")
        ))),
    }
}

type Update = (usize, Vec<u8>, Vec<u8>);

fn drive<E: Engine>(
    mut engine: E,
    args: &Args,
    obj: &LinkedObject,
    prog: usize,
    updates: &[Update],
    input: &XdpInput<'_>,
    status: impl Fn(&E::Error) -> Status,
) -> CliResult {
    let fail = |e: E::Error| CliError {
        status: status(&e),
        message: e.to_string(),
    };
    for (m, k, v) in updates {
        engine.map_update(*m, k, v, 0).map_err(fail)?;
    }
    let mut out = XdpOutput::default();
    let duration = match args.repeat {
        Some(n) => Some(
            engine
                .run_xdp_repeat(prog, input, n, &mut out)
                .map_err(fail)?,
        ),
        None => {
            out = engine.run_xdp(prog, input).map_err(fail)?;
            None
        }
    };
    let mut maps = Vec::new();
    if args.dump_maps {
        for (i, m) in obj.maps.iter().enumerate() {
            match engine.map_entries(i) {
                Ok(entries) => maps.push((m.name.clone(), entries)),
                Err(e) => maps.push((format!("{} (not readable: {e})", m.name), Vec::new())),
            }
        }
    }
    let timing = duration.map(|d| (args.repeat.unwrap_or(1), d));
    print_xdp(args, obj, prog, engine.name(), &out, timing, &maps)
}

fn print_xdp(
    args: &Args,
    obj: &LinkedObject,
    prog: usize,
    engine: &str,
    out: &XdpOutput,
    timing: Option<(u32, f64)>,
    maps: &[(String, bpfkit_vm::engine::MapEntries)],
) -> CliResult {
    let map_names: Vec<String> = obj.maps.iter().map(|m| m.name.clone()).collect();
    let map_names = map_names.as_slice();
    let redirect = out.redirect.as_ref().map(|r| match r {
        Redirect::Ifindex(i) => format!("ifindex {i}"),
        Redirect::Map { map, key } => format!(
            "map {} key {key}",
            map_names.get(*map).cloned().unwrap_or_default()
        ),
    });
    let stdout = std::io::stdout();
    let mut w = stdout.lock();
    let io = |e: std::io::Error| -> CliError { crate::stdout_failed(e) };
    if args.json {
        let maps_json: serde_json::Map<String, serde_json::Value> = maps
            .iter()
            .map(|(n, e)| {
                (
                    n.clone(),
                    e.iter()
                        .map(|(k, v)| json!([to_hex(k), to_hex(v)]))
                        .collect(),
                )
            })
            .collect();
        let j = json!({
            "program": obj.programs[prog].name,
            "engine": engine,
            "retval": out.retval,
            "action": action_name(out.retval),
            "data_out": to_hex(&out.packet),
            "redirect": redirect,
            "events": events_json(&out.events, map_names),
            "maps": maps_json,
        });
        let mut j = j;
        if let Some((repeat, ns)) = timing {
            j["repeat"] = json!(repeat);
            j["duration_ns"] = json!(ns);
        }
        writeln!(w, "{j}").map_err(io)?;
        return Ok(Status::Ok);
    }
    writeln!(w, "program: {} (engine {engine})", obj.programs[prog].name).map_err(io)?;
    writeln!(w, "retval: {} ({})", out.retval, action_name(out.retval)).map_err(io)?;
    writeln!(
        w,
        "packet: {} bytes: {}",
        out.packet.len(),
        to_hex(&out.packet)
    )
    .map_err(io)?;
    if let Some(r) = redirect {
        writeln!(w, "redirect: {r}").map_err(io)?;
    }
    if let Some((repeat, ns)) = timing {
        writeln!(w, "duration: {ns:.1} ns per run (mean of {repeat} runs)").map_err(io)?;
    }
    for e in &out.events {
        match e {
            Event::Printk(s) => writeln!(w, "printk: {s}").map_err(io)?,
            Event::Record { map, data } => writeln!(
                w,
                "record: map {} {}",
                map_names.get(*map).cloned().unwrap_or_default(),
                to_hex(data)
            )
            .map_err(io)?,
        }
    }
    for (name, entries) in maps {
        writeln!(w, "map {name}: {} entries", entries.len()).map_err(io)?;
        for (k, v) in entries {
            writeln!(w, "  {} => {}", to_hex(k), to_hex(v)).map_err(io)?;
        }
    }
    Ok(Status::Ok)
}
