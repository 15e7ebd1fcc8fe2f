//! `bpfkit replay`: a capture through an XDP program, offline, with outputs and coverage.

use std::io::IsTerminal;
use std::path::PathBuf;

use bpfkit_object::{object_name_from_path, Object};
use bpfkit_replay::engines::EngineKind;
use bpfkit_replay::{replay, Options, ReplayError};

use crate::{CliError, CliResult, Status};

const AFTER_HELP: &str = "\
Examples:
  bpfkit replay corpus/obj/xdp_counter.o corpus/pcap/mixed.pcap
  bpfkit replay corpus/obj/xdp_csum.o corpus/pcap/mixed.pcapng --out out/ --trace t.jsonl
  bpfkit replay x.o cap.pcap --maps-in maps.json --maps-out after.json --seed 7
  bpfkit replay x.o cap.pcap --engine jit                 # x86-64 JIT (fast when verified)
  bpfkit replay x.o cap.pcap --compare interp,kernel      # stops at the first difference
  bpfkit replay x.o cap.pcap --queues 4                   # RSS over 4 emulated queues/CPUs
  bpfkit replay x.o cap.pcap --queues 8 --threads 2       # same results on 2 worker threads
  bpfkit replay x.o cap.pcap --coverage cov.info && genhtml -o html cov.info
  bpfkit replay x.o cap.pcap --coverage-summary --format json
  tcpdump -w - -i eth0 | bpfkit replay x.o - --pcapng - | wireshark -k -i -   # pipes

Inputs: the capture may be `-` (standard input), a pipe, a FIFO or /dev/stdin, pcap or
pcapng. Outputs: `-` is standard output for --trace, --maps-out, --coverage and --pcapng
(at most one of them); the summary then goes to standard error. Output files are written
under a temporary name and renamed when complete. SIGINT/SIGTERM stop the replay between
two packets: every output is closed on a whole record, the summary starts with
INTERRUPTED and the number of records each output holds, and the exit status is 130/143.

Instruction limit: when bpfkit's verifier does not accept the object, replay warns once
and stops each packet after 1048576 instructions (a fault), so an endless loop costs
milliseconds per packet, not a second; accepted objects keep the 2^27 run limit;
--insn-limit N sets it.

Outputs: --out DIR writes DIR/XDP_PASS.pcap, DIR/XDP_TX.pcap, ... (one per action seen)
with the packets as the program left them and their original timestamps; --pcapng FILE
writes every output frame to one pcapng, like xdpdump, each packet's comment giving the
action, input packet index, redirect target and queue (also as epb_packetid, epb_queue and
an eBPF epb_verdict); --trace writes
one JSON object per packet (index, ts_ns, action, retval, redirect, len_in, len_out,
data_out when the packet changed, events); --maps-out/--maps-in use
{\"map\": [[\"keyhex\", \"valuehex\" | {\"program\": NAME} | {\"map\": NAME} | {\"ifindex\": N}], ...]}.
bpf_ktime_get_ns returns the capture timestamp plus --time-offset-ns; bpf_get_prandom_u32
follows --seed. The same inputs give byte-identical outputs.

Exit status: 0 replay done; 1 bad input (object, capture, maps file), a program fault,
or a difference found by --compare; 2 usage or I/O error; 141 standard output closed by
its reader; 130/143 interrupted by SIGINT/SIGTERM (outputs complete up to there).";

#[derive(clap::Args)]
#[command(after_help = AFTER_HELP)]
pub struct Args {
    /// The eBPF ELF object.
    pub file: PathBuf,
    /// The capture (pcap or pcapng, Ethernet link type); `-` for standard input.
    pub capture: PathBuf,
    /// Program to run (default: the first XDP program).
    #[arg(long)]
    pub prog: Option<String>,
    /// Engine: interp; jit (x86-64: fast mode, memory accesses unchecked like the
    /// kernel's JIT, when bpfkit's verifier accepts every program of the object, else
    /// checked mode; the summary says which and why); jit-checked or jit-fast to force a
    /// mode (jit-fast refuses objects the verifier does not accept); or kernel
    /// (BPF_PROG_TEST_RUN, needs root).
    #[arg(long, default_value = "interp", value_parser = ["interp", "jit", "jit-checked", "jit-fast", "kernel"])]
    pub engine: String,
    /// Run each packet on several engines (e.g. interp,kernel) and stop at the first difference.
    #[arg(long, value_delimiter = ',')]
    pub compare: Vec<String>,
    /// Leave this map out of --compare (time- or random-dependent values); repeatable.
    #[arg(long = "ignore-map")]
    pub ignore_map: Vec<String>,
    /// Write one pcap per action into this directory.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Write one JSON object per packet to this file (`-`: standard output).
    #[arg(long)]
    pub trace: Option<PathBuf>,
    /// Write every output frame to one pcapng (`-`: standard output), with the action,
    /// input packet index, redirect target and queue in each packet's comment (xdpdump's
    /// habit).
    #[arg(long, value_name = "FILE")]
    pub pcapng: Option<PathBuf>,
    /// Fill maps from this JSON file before the run (`-`: standard input).
    #[arg(long = "maps-in")]
    pub maps_in: Option<PathBuf>,
    /// Write the final contents of every map to this JSON file (`-`: standard output).
    #[arg(long = "maps-out")]
    pub maps_out: Option<PathBuf>,
    /// xdp_md.ingress_ifindex.
    #[arg(long, default_value_t = 1)]
    pub ifindex: u32,
    /// xdp_md.rx_queue_index (ignored with --queues > 1: the RSS queue is used).
    #[arg(long = "rx-queue", default_value_t = 0)]
    pub rx_queue: u32,
    /// Added to each capture timestamp for bpf_ktime_get_ns (may be negative).
    #[arg(
        long = "time-offset-ns",
        default_value_t = 0,
        allow_hyphen_values = true
    )]
    pub time_offset_ns: i64,
    /// Seed of bpf_get_prandom_u32.
    #[arg(long, default_value_t = 0x5eed)]
    pub seed: u64,
    /// Emulated receive queues (Toeplitz RSS over the 5-tuple); each is its own CPU.
    #[arg(long, default_value_t = 1)]
    pub queues: u32,
    /// Worker threads for the queues (default: the available cores, at most --queues).
    /// Results are the same for any thread count; programs whose shared maps are not
    /// plain counters run in capture order on one thread (the summary says why).
    #[arg(long)]
    pub threads: Option<u32>,
    /// Possible CPUs of the emulated machine: per-CPU maps hold this many values
    /// (default: --queues; the kernel engine uses the kernel's possible CPUs).
    #[arg(long)]
    pub cpus: Option<u32>,
    /// Write lcov line and branch coverage of the C source (recorded by the interpreter; with
    /// another engine an interpreter runs each packet alongside it, and the summary says so).
    #[arg(long)]
    pub coverage: Option<PathBuf>,
    /// Print the percentage of instructions, source lines and branches reached.
    #[arg(long = "coverage-summary")]
    pub coverage_summary: bool,
    /// Where to find the C sources named by the line info (default: the object's
    /// directory's parent, then the object's directory); repeatable.
    #[arg(long = "source-dir")]
    pub source_dir: Vec<PathBuf>,
    /// Stop after this many packets.
    #[arg(long)]
    pub limit: Option<u64>,
    /// Instructions one packet may run before it is stopped as a fault (default: 2^27
    /// when bpfkit's verifier accepts the object, else 1048576).
    #[arg(long = "insn-limit", value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub insn_limit: Option<u64>,
    /// Summary format: text or json.
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    pub format: String,
    /// Replay as the kernel TARGET would run it (`6.1`, `live`, a probe file): refuse
    /// (exit 1) when a program uses something that kernel lacks.
    #[arg(long, value_name = "TARGET")]
    pub kernel: Option<String>,
    #[command(flatten)]
    pub object: super::ObjectArgs,
}

pub fn run(args: Args) -> CliResult {
    let engine = EngineKind::parse(&args.engine).map_err(CliError::usage)?;
    let compare = args
        .compare
        .iter()
        .map(|s| EngineKind::parse(s.trim()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(CliError::usage)?;
    let json = match args.format.as_str() {
        "text" => false,
        "json" => true,
        f => {
            return Err(CliError::usage(format!(
                "unknown --format `{f}` (text or json)"
            )))
        }
    };
    if args.capture.as_os_str() == "-"
        && args
            .maps_in
            .as_deref()
            .is_some_and(|m| m.as_os_str() == "-")
    {
        return Err(CliError::usage(
            "the capture and --maps-in cannot both be standard input",
        ));
    }
    let bytes = std::fs::read(&args.file)
        .map_err(|e| CliError::usage(format!("{}: {e}", args.file.display())))?;
    let name = object_name_from_path(&args.file);
    let mut obj = Object::parse_named(&bytes, &name)
        .map_err(|e| CliError::bad(format!("{}: {e}", args.file.display())))?;
    args.object
        .apply(&mut obj, &args.file.display().to_string())?;
    let btf = obj.btf.clone().map(std::sync::Arc::new);
    let obj = obj
        .link()
        .map_err(|e| CliError::bad(format!("{}: {e}", args.file.display())))?;
    if let Some(k) = &args.kernel {
        let target = super::probe::resolve_target(k)?;
        if let Some(e) = super::probe::target_refusal(&obj, &target) {
            return Err(e);
        }
    }
    let opts = Options {
        prog: args.prog,
        engine,
        compare,
        ignore_maps: args.ignore_map,
        ifindex: args.ifindex,
        rx_queue: args.rx_queue,
        time_offset_ns: args.time_offset_ns,
        seed: args.seed,
        queues: args.queues,
        threads: args.threads,
        serial: false,
        cpus: args.cpus,
        out_dir: args.out,
        trace: args.trace,
        maps_in: args.maps_in,
        maps_out: args.maps_out,
        btf,
        coverage: args.coverage,
        coverage_summary: args.coverage_summary,
        source_dirs: if args.source_dir.is_empty() {
            let dir = args
                .file
                .parent()
                .map(|p| p.to_path_buf())
                .unwrap_or_default();
            vec![dir.join(".."), dir]
        } else {
            args.source_dir
        },
        limit: args.limit,
        object_path: Some(args.file.clone()),
        pcapng: args.pcapng,
        insn_limit: args.insn_limit,
        stop: Some(&crate::STOP),
        warn: Some(warn),
    };
    // Summaries go to stderr whenever stdout carries data.
    let summary_to_stderr = !opts.stdout_outputs().is_empty();
    let bar = if std::io::stderr().is_terminal() {
        let len = std::fs::metadata(&args.capture)
            .map(|m| m.len())
            .unwrap_or(0);
        let b = indicatif::ProgressBar::new(len);
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{bar:40} {bytes}/{total_bytes} {msg} ({elapsed})",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        Some(b)
    } else {
        None
    };
    let mut tick = |packets: u64, offset: u64| {
        if let Some(b) = &bar {
            if offset == u64::MAX {
                b.finish_and_clear();
            } else {
                b.set_position(offset);
                b.set_message(format!("{packets} packets"));
            }
        }
    };
    // From here a signal stops the replay between two packets (see Options::stop).
    crate::POLLED.store(true, std::sync::atomic::Ordering::SeqCst);
    let result = replay(
        &obj,
        &args.capture,
        &opts,
        if bar.is_some() { Some(&mut tick) } else { None },
    );
    crate::POLLED.store(false, std::sync::atomic::Ordering::SeqCst);
    let summary = result.map_err(|e| match e {
        ReplayError::Bad(m) => CliError::bad(m),
        ReplayError::Usage(m) => CliError::usage(m),
        ReplayError::BrokenPipe(_) => crate::stdout_failed(std::io::ErrorKind::BrokenPipe.into()),
    })?;
    let text = if json {
        serde_json::to_string_pretty(&summary.to_json()).expect("JSON values serialize") + "\n"
    } else {
        summary.to_text()
    };
    if summary_to_stderr {
        use std::io::Write as _;
        let _ = std::io::stderr().write_all(text.as_bytes());
    } else {
        crate::out!("{text}");
    }
    if summary.interrupted.is_some() {
        let sig = crate::STOP.load(std::sync::atomic::Ordering::SeqCst);
        return Ok(Status::Interrupted(sig));
    }
    if summary.difference.is_some() || summary.faults > 0 {
        return Ok(Status::Bad);
    }
    Ok(Status::Ok)
}

/// The verifier warning: once, before the first packet, on stderr, set apart.
fn warn(msg: &str) {
    crate::errln!("\n*** WARNING: NOT VERIFIED ***\n{msg}\n");
}
