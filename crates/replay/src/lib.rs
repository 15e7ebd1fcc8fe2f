//! `bpfkit replay`: runs every frame of a pcap/pcapng capture through an XDP program on
//! the interpreter, the JIT or the kernel (`BPF_PROG_TEST_RUN`), and reports what the
//! program did: per-action counts, rewritten packets (`--out`), a per-packet JSON trace,
//! final map contents, engine comparisons and source coverage. See `docs/replay.md`.
//!
//! Determinism: packets run one after another in capture order on one thread; time is the
//! capture timestamp (plus an offset), random numbers come from a seed, and with
//! `queues > 1` each packet's CPU and receive queue come from a Toeplitz RSS hash of its
//! 5-tuple ([`rss`]). The same inputs therefore give byte-identical traces, output
//! captures and map dumps.

pub mod btf_value;
pub mod capture;
pub mod coverage;
pub mod engines;
pub mod hex;
pub mod maps_json;
pub mod output;
pub mod parallel;
pub mod rss;
mod sink;
pub mod state;

use bpfkit_object::model::LinkedObject;
use bpfkit_vm::engine::{Event, Redirect, XdpInput, XdpOutput};
use capture::{Capture, CaptureEnd, RecordNote};
use engines::{EngineKind, EngineSettings, ReplayEngine, RunError, FRAME_MAX};
use serde_json::{json, Value};
use sink::{Outputs, PacketInfo};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant};

/// Largest frame `BPF_PROG_TEST_RUN` accepts for XDP: the linear part (3520 bytes on
/// x86-64) plus `MAX_SKB_FRAGS` (17) pages of fragments.
pub const MAX_XDP_FRAME: usize = 3520 + 17 * 4096;
/// `ETH_HLEN`: shorter frames are refused with EINVAL.
pub const ETH_HLEN: usize = 14;

/// The XDP action names, by return value.
pub const ACTIONS: [&str; 5] = [
    "XDP_ABORTED",
    "XDP_DROP",
    "XDP_PASS",
    "XDP_TX",
    "XDP_REDIRECT",
];

/// The name of an XDP return value (its low 32 bits), e.g. `XDP_PASS`; values above 4
/// are `XDP_UNKNOWN_<n>` (the kernel warns and drops them).
pub fn action_name(retval: u64) -> String {
    let a = retval as u32;
    match ACTIONS.get(a as usize) {
        Some(n) => n.to_string(),
        None => format!("XDP_UNKNOWN_{a}"),
    }
}

/// An error that stops a replay.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// Bad input: unreadable capture, unknown program, bad maps file, engine setup.
    #[error("{0}")]
    Bad(String),
    /// Bad usage or an I/O error (writing outputs, opening files).
    #[error("{0}")]
    Usage(String),
    /// An output went to a pipe whose reader went away (`EPIPE`): the caller ends quietly.
    #[error("{0}: broken pipe")]
    BrokenPipe(String),
}

/// The error for a failed write to output `what`.
fn out_err(what: &str, e: std::io::Error) -> ReplayError {
    if output::is_broken_pipe(&e) {
        ReplayError::BrokenPipe(what.to_string())
    } else {
        ReplayError::Usage(format!("{what}: {e}"))
    }
}

/// Instructions a packet may run when the user gives no `--insn-limit` and bpfkit's
/// verifier does not accept the object: an endless loop then costs milliseconds per
/// packet (about 15 on the interpreter) instead of the 2^27-instruction run limit's second.
pub const UNVERIFIED_INSN_LIMIT: u64 = 1 << 20;

/// The name of a signal number bpfkit stops on.
pub fn signal_name(sig: i32) -> String {
    match sig {
        2 => "SIGINT".into(),
        15 => "SIGTERM".into(),
        1 => "SIGHUP".into(),
        n => format!("signal {n}"),
    }
}

/// What to replay and where to write results.
#[derive(Debug, Clone)]
pub struct Options {
    /// Program name (default: the only XDP program, or the first one).
    pub prog: Option<String>,
    pub engine: EngineKind,
    /// When non-empty: run each packet on all of these and stop at the first difference.
    pub compare: Vec<EngineKind>,
    /// Maps left out of comparisons (time- or random-dependent values).
    pub ignore_maps: Vec<String>,
    pub ifindex: u32,
    pub rx_queue: u32,
    /// Added to each capture timestamp to give `bpf_ktime_get_ns`.
    pub time_offset_ns: i64,
    pub seed: u64,
    /// Emulated receive queues (each its own CPU); 1 = no RSS.
    pub queues: u32,
    /// Worker threads for the queues (default: the available cores, at most `queues`).
    /// Results do not depend on it; see [`parallel`].
    pub threads: Option<u32>,
    /// Run the queues in capture order on one thread even when they could run on worker
    /// threads (the reference the threaded runs are checked against).
    pub serial: bool,
    /// Possible CPUs of the emulated machine (per-CPU map slots); default: `queues`.
    /// With the kernel engine it is the kernel's number of possible CPUs.
    pub cpus: Option<u32>,
    pub out_dir: Option<PathBuf>,
    pub trace: Option<PathBuf>,
    pub maps_in: Option<PathBuf>,
    pub maps_out: Option<PathBuf>,
    /// The object's BTF: `--maps-out` then shows decoded keys and values beside the hex,
    /// and `--maps-in` accepts them decoded.
    pub btf: Option<std::sync::Arc<bpfkit_object::btf::Btf>>,
    pub coverage: Option<PathBuf>,
    /// Compute coverage for the summary even without an lcov file.
    pub coverage_summary: bool,
    /// Directories to resolve relative source paths of the line info in (the first one
    /// holding the file wins; unresolved paths are written as recorded).
    pub source_dirs: Vec<PathBuf>,
    /// Stop after this many packet records.
    pub limit: Option<u64>,
    /// The object file `obj` was linked from, when known (the kernel engine loads it with
    /// BTF when the linked object alone is refused).
    pub object_path: Option<PathBuf>,
    /// One pcapng of every output frame with the verdict in each packet's comment.
    pub pcapng: Option<PathBuf>,
    /// Instructions one packet may run (bpfkit's engines). Default: the vm's run limit
    /// (2^27) when bpfkit's verifier accepts every program of the object, else
    /// [`UNVERIFIED_INSN_LIMIT`].
    pub insn_limit: Option<u64>,
    /// Set (to the signal number) by a signal handler: the replay stops between two
    /// packets, completes its outputs and marks the summary interrupted.
    pub stop: Option<&'static AtomicI32>,
    /// Called once, before the first packet, with a warning the user must see (the
    /// verifier rejects the object).
    pub warn: Option<fn(&str)>,
}

impl Options {
    /// The outputs that are standard output (`-` or the file stdout is open on). At most
    /// one may be; the summary then goes to stderr.
    pub fn stdout_outputs(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        for (name, p) in [
            ("--trace", &self.trace),
            ("--maps-out", &self.maps_out),
            ("--coverage", &self.coverage),
            ("--pcapng", &self.pcapng),
        ] {
            if p.as_deref().is_some_and(output::is_stdout) {
                v.push(name);
            }
        }
        v
    }

    #[inline(always)]
    fn stopped(&self) -> bool {
        self.stop.is_some_and(|f| f.load(Ordering::Relaxed) != 0)
    }
}

impl Default for Options {
    fn default() -> Self {
        Options {
            prog: None,
            engine: EngineKind::Interp,
            compare: Vec::new(),
            ignore_maps: Vec::new(),
            ifindex: 1,
            rx_queue: 0,
            time_offset_ns: 0,
            seed: 0x5eed,
            queues: 1,
            threads: None,
            serial: false,
            cpus: None,
            out_dir: None,
            trace: None,
            maps_in: None,
            maps_out: None,
            btf: None,
            coverage: None,
            coverage_summary: false,
            source_dirs: Vec::new(),
            limit: None,
            object_path: None,
            pcapng: None,
            insn_limit: None,
            stop: None,
            warn: None,
        }
    }
}

/// The first packet on which compared engines disagreed.
#[derive(Debug, Clone)]
pub struct Difference {
    pub index: u64,
    pub ts_ns: u64,
    /// What differs: `action`, `output bytes`, `map NAME`, `outcome`.
    pub what: String,
    pub left: String,
    pub right: String,
    /// Readable description of both sides and a hex diff.
    pub detail: String,
}

/// What a replay found.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    pub program: String,
    pub engine: String,
    /// How the (first) engine runs the program when its kind leaves a choice (`jit`: fast
    /// or checked mode, and why).
    pub engine_mode: Option<String>,
    pub capture: String,
    /// Packet records read.
    pub packets: u64,
    /// Captured bytes of those records.
    pub bytes: u64,
    /// Records the program ran on.
    pub ran: u64,
    /// Count per action name (every name of [`ACTIONS`] present, others when seen).
    pub actions: BTreeMap<String, u64>,
    /// XDP_REDIRECT targets (`ifindex N`, `MAP[KEY]`) and their counts.
    pub redirects: BTreeMap<String, u64>,
    pub faults: u64,
    /// The first fault: packet index and message.
    pub first_fault: Option<(u64, String)>,
    /// Records not run, by reason.
    pub skipped: BTreeMap<String, u64>,
    /// Records shorter than their wire length (snap length): they ran on the captured bytes.
    pub snapped: u64,
    /// The capture ended early because of damage.
    pub damaged: Option<String>,
    pub elapsed: Duration,
    pub coverage: Option<coverage::CoverageSummary>,
    /// How coverage was recorded, when not by the replay's own engine.
    pub coverage_note: Option<String>,
    pub difference: Option<Difference>,
    pub compared: Vec<String>,
    pub queues: u32,
    /// Worker threads the queues ran on (1 when they ran in capture order).
    pub threads: u32,
    /// With `queues > 1`: why the queues ran in capture order on one thread.
    pub serial_reason: Option<String>,
    /// Packets per queue (with `queues > 1`).
    pub per_queue: Vec<u64>,
    /// The replay was stopped by this signal before the end of the capture.
    pub interrupted: Option<String>,
    /// Records written to each output file (trace lines, pcap frames over all `--out`
    /// files, pcapng frames), for the outputs asked for.
    pub written: Written,
    /// Frames whose timestamp does not fit a classic pcap record (after 2106): written to
    /// `--out` with its largest timestamp (the trace and `--pcapng` carry them exactly).
    pub ts_clamped: u64,
    /// Why bpfkit's verifier does not accept the object, when it does not.
    pub unverified: Option<String>,
    /// Instructions a packet could run.
    pub insn_limit: u64,
}

/// Records written per output.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Written {
    pub trace: Option<u64>,
    pub pcaps: Option<u64>,
    pub pcapng: Option<u64>,
}

impl Written {
    fn text(&self) -> String {
        let mut parts = Vec::new();
        if let Some(n) = self.trace {
            parts.push(format!("{n} trace records"));
        }
        if let Some(n) = self.pcaps {
            parts.push(format!("{n} frames in --out pcaps"));
        }
        if let Some(n) = self.pcapng {
            parts.push(format!("{n} frames in --pcapng"));
        }
        if parts.is_empty() {
            "no output files".into()
        } else {
            parts.join(", ")
        }
    }
}

impl Summary {
    pub fn skipped_total(&self) -> u64 {
        self.skipped.values().sum()
    }
    pub fn ns_per_packet(&self) -> f64 {
        if self.packets == 0 {
            0.0
        } else {
            self.elapsed.as_nanos() as f64 / self.packets as f64
        }
    }
    pub fn packets_per_second(&self) -> f64 {
        let s = self.elapsed.as_secs_f64();
        if s == 0.0 {
            0.0
        } else {
            self.packets as f64 / s
        }
    }

    /// The summary as JSON (`--format json`).
    pub fn to_json(&self) -> Value {
        let mut v = json!({
            "program": self.program,
            "engine": self.engine,
            "capture": self.capture,
            "packets": self.packets,
            "bytes": self.bytes,
            "ran": self.ran,
            "actions": self.actions,
            "redirects": self.redirects,
            "faults": self.faults,
            "skipped": self.skipped_total(),
            "skipped_reasons": self.skipped,
            "snapped": self.snapped,
            "queues": self.queues,
            "ns_per_packet": self.ns_per_packet(),
            "packets_per_second": self.packets_per_second(),
        });
        if let Some(m) = &self.engine_mode {
            v["engine_mode"] = json!(m);
        }
        v["insn_limit"] = json!(self.insn_limit);
        if let Some(u) = &self.unverified {
            v["unverified"] = json!(u);
        }
        if let Some(sig) = &self.interrupted {
            v["interrupted"] = json!(sig);
        }
        let mut w = serde_json::Map::new();
        if let Some(n) = self.written.trace {
            w.insert("trace".into(), json!(n));
        }
        if let Some(n) = self.written.pcaps {
            w.insert("pcaps".into(), json!(n));
        }
        if let Some(n) = self.written.pcapng {
            w.insert("pcapng".into(), json!(n));
        }
        if !w.is_empty() {
            v["written"] = Value::Object(w);
        }
        if self.ts_clamped > 0 {
            v["ts_clamped"] = json!(self.ts_clamped);
        }
        if let Some((i, m)) = &self.first_fault {
            v["first_fault"] = json!({"index": i, "message": m});
        }
        if let Some(d) = &self.damaged {
            v["capture_damaged"] = json!(d);
        }
        if self.queues > 1 {
            v["per_queue"] = json!(self.per_queue);
            v["threads"] = json!(self.threads);
            if let Some(r) = &self.serial_reason {
                v["serial_reason"] = json!(r);
            }
        }
        if let Some(c) = &self.coverage {
            v["coverage"] = json!({
                "insns": c.insns, "insns_hit": c.insns_hit, "insn_percent": c.insn_pct(),
                "lines": c.lines, "lines_hit": c.lines_hit, "line_percent": c.line_pct(),
                "branches": c.branches, "branches_hit": c.branches_hit, "branch_percent": c.branch_pct(),
            });
            if let Some(n) = &self.coverage_note {
                v["coverage"]["note"] = json!(n);
            }
        }
        if !self.compared.is_empty() {
            v["compared"] = json!(self.compared);
            v["difference"] = match &self.difference {
                None => Value::Null,
                Some(d) => json!({
                    "index": d.index, "ts_ns": d.ts_ns, "what": d.what,
                    "left": d.left, "right": d.right, "detail": d.detail,
                }),
            };
        }
        v
    }

    /// The human-readable summary.
    pub fn to_text(&self) -> String {
        use std::fmt::Write as _;
        let mut s = String::new();
        if let Some(sig) = &self.interrupted {
            let _ = writeln!(
                s,
                "INTERRUPTED by {sig} after {} packets; outputs are complete up to there: {}",
                self.packets,
                self.written.text()
            );
        }
        let _ = writeln!(
            s,
            "{}: program {} on {}",
            self.capture, self.program, self.engine
        );
        if let Some(u) = &self.unverified {
            let _ = writeln!(
                s,
                "  (NOT VERIFIED: {u}; each packet was stopped after {} instructions)",
                self.insn_limit
            );
        }
        if let Some(m) = &self.engine_mode {
            let _ = writeln!(s, "  ({}: {m})", self.engine);
        }
        let _ = writeln!(
            s,
            "packets {}  bytes {}  ran {}  faults {}  skipped {}",
            self.packets,
            self.bytes,
            self.ran,
            self.faults,
            self.skipped_total()
        );
        // Kernel order (XDP_ABORTED .. XDP_REDIRECT), then unknown return values.
        let mut order: Vec<(&String, &u64)> = self.actions.iter().collect();
        order.sort_by_key(|(a, _)| ACTIONS.iter().position(|x| x == a).unwrap_or(ACTIONS.len()));
        for (a, n) in order {
            let _ = writeln!(s, "  {a:<14} {n}");
            if a == "XDP_REDIRECT" {
                for (t, c) in &self.redirects {
                    let _ = writeln!(s, "    -> {t:<16} {c}");
                }
            }
        }
        if let Some((i, m)) = &self.first_fault {
            let _ = writeln!(s, "first fault at packet {i}: {m}");
        }
        for (r, n) in &self.skipped {
            let _ = writeln!(s, "skipped {n}: {r}");
        }
        if self.snapped > 0 {
            let _ = writeln!(
                s,
                "{} packets were cut by the snap length; they ran on the captured bytes",
                self.snapped
            );
        }
        if let Some(d) = &self.damaged {
            let _ = writeln!(s, "capture damaged: {d}");
        }
        if self.ts_clamped > 0 {
            let _ = writeln!(
                s,
                "{} frames have timestamps after 2106, which a classic pcap cannot hold: --out wrote them at 4294967295.999999999 (the trace and --pcapng carry them exactly)",
                self.ts_clamped
            );
        }
        if self.queues > 1 {
            let _ = writeln!(s, "queues {}: {:?}", self.queues, self.per_queue);
            match &self.serial_reason {
                None => {
                    let _ = writeln!(s, "queues ran on {} worker threads", self.threads);
                }
                Some(r) => {
                    let _ = writeln!(s, "queues ran in capture order on one thread: {r}");
                }
            }
        }
        if let Some(c) = &self.coverage {
            let _ = writeln!(
                s,
                "coverage: instructions {:.1}% ({}/{}), source lines {:.1}% ({}/{}), branches {:.1}% ({}/{})",
                c.insn_pct(), c.insns_hit, c.insns,
                c.line_pct(), c.lines_hit, c.lines,
                c.branch_pct(), c.branches_hit, c.branches
            );
            if let Some(n) = &self.coverage_note {
                let _ = writeln!(s, "coverage {n}");
            }
        }
        if !self.compared.is_empty() {
            match &self.difference {
                None => {
                    let _ = writeln!(s, "compared {}: no difference", self.compared.join(", "));
                }
                Some(d) => {
                    let _ = writeln!(
                        s,
                        "DIFFERENCE at packet {} ({}): {} vs {}\n{}",
                        d.index, d.what, d.left, d.right, d.detail
                    );
                }
            }
        }
        let _ = writeln!(
            s,
            "{:.1} ns/packet, {:.0} packets/s",
            self.ns_per_packet(),
            self.packets_per_second()
        );
        s
    }
}

/// Picks the program to replay.
pub fn select_program(obj: &LinkedObject, name: Option<&str>) -> Result<usize, ReplayError> {
    use bpfkit_object::model::prog_type;
    match name {
        Some(n) => obj
            .programs
            .iter()
            .position(|p| p.name == n)
            .ok_or_else(|| {
                let names: Vec<&str> = obj.programs.iter().map(|p| p.name.as_str()).collect();
                ReplayError::Bad(format!(
                    "the object has no program `{n}` (programs: {})",
                    names.join(", ")
                ))
            }),
        None => obj
            .programs
            .iter()
            .position(|p| p.prog_type == prog_type::XDP && p.expected_attach_type.is_none())
            .or(if obj.programs.is_empty() {
                None
            } else {
                Some(0)
            })
            .ok_or_else(|| ReplayError::Bad("the object has no programs".into())),
    }
}

fn redirect_label(obj: &LinkedObject, r: &Redirect) -> String {
    match r {
        Redirect::Ifindex(i) => format!("ifindex {i}"),
        Redirect::Map { map, key } => format!(
            "{}[{key}]",
            obj.maps.get(*map).map(|m| m.real_name()).unwrap_or("?")
        ),
    }
}

fn redirect_json(obj: &LinkedObject, r: &Redirect) -> Value {
    match r {
        Redirect::Ifindex(i) => json!({ "ifindex": i }),
        Redirect::Map { map, key } => json!({
            "map": obj.maps.get(*map).map(|m| m.real_name()).unwrap_or("?"),
            "key": key,
        }),
    }
}

fn events_json(obj: &LinkedObject, events: &[Event]) -> Value {
    Value::Array(
        events
            .iter()
            .map(|e| match e {
                Event::Printk(t) => json!({ "printk": t }),
                Event::Record { map, data } => json!({
                    "map": obj.maps.get(*map).map(|m| m.real_name()).unwrap_or("?"),
                    "data": hex::encode(data),
                }),
            })
            .collect(),
    )
}

/// Progress reports: called with (packets so far, capture bytes consumed).
pub type Progress<'a> = &'a mut dyn FnMut(u64, u64);

/// Maps compared between engines: everything but reference-valued and record maps.
fn comparable_maps(obj: &LinkedObject, ignore: &[String]) -> Vec<usize> {
    obj.maps
        .iter()
        .enumerate()
        .filter(|(_, m)| {
            !state::is_fd_map(m)
                && !state::is_undumpable(m)
                && !state::is_fifo(m)
                && !ignore.iter().any(|n| n == m.real_name() || n == &m.name)
        })
        .map(|(i, _)| i)
        .collect()
}

fn describe(r: Result<&XdpOutput, &RunError>) -> String {
    match r {
        Ok(o) => format!(
            "{} (retval {}) with {} bytes",
            action_name(o.retval),
            o.retval,
            o.packet.len()
        ),
        Err(e) => e.to_string(),
    }
}

/// Compares results of `names[0]` and `names[j]` for one packet; `None` when they agree.
#[allow(clippy::too_many_arguments)]
fn compare_one(
    obj: &LinkedObject,
    maps: &[usize],
    a: &dyn ReplayEngine,
    ra: Result<&XdpOutput, &RunError>,
    b: &dyn ReplayEngine,
    rb: Result<&XdpOutput, &RunError>,
    index: u64,
    ts_ns: u64,
) -> Result<Option<Difference>, ReplayError> {
    let mk = |what: String, detail: String| Difference {
        index,
        ts_ns,
        what,
        left: format!("{}: {}", a.name(), describe(ra)),
        right: format!("{}: {}", b.name(), describe(rb)),
        detail,
    };
    match (ra, rb) {
        (Err(RunError::Refused(_)), Err(RunError::Refused(_))) => {}
        (Ok(x), Ok(y)) => {
            if x.retval as u32 != y.retval as u32 {
                return Ok(Some(mk("action".into(), String::new())));
            }
            if x.packet != y.packet {
                let d = format!(
                    "{} | {}\n{}",
                    a.name(),
                    b.name(),
                    hex::diff(&x.packet, &y.packet, 16)
                );
                return Ok(Some(mk("output bytes".into(), d)));
            }
            let kernel = a.name() == "kernel" || b.name() == "kernel";
            if !kernel && x.redirect != y.redirect {
                return Ok(Some(mk(
                    "redirect target".into(),
                    format!("{:?} vs {:?}", x.redirect, y.redirect),
                )));
            }
            if !kernel && x.events != y.events {
                return Ok(Some(mk(
                    "helper side effects".into(),
                    format!("{:?}\nvs\n{:?}", x.events, y.events),
                )));
            }
        }
        _ => return Ok(Some(mk("outcome".into(), String::new()))),
    }
    for &m in maps {
        let ea = a.map_entries(m).map_err(ReplayError::Bad)?;
        let eb = b.map_entries(m).map_err(ReplayError::Bad)?;
        if ea != eb {
            let name = obj.maps[m].real_name();
            let mut detail = String::new();
            use std::fmt::Write as _;
            let ka: BTreeMap<_, _> = ea.iter().cloned().collect();
            let kb: BTreeMap<_, _> = eb.iter().cloned().collect();
            let mut shown = 0;
            for k in ka.keys().chain(kb.keys().filter(|k| !ka.contains_key(*k))) {
                let (va, vb) = (ka.get(k), kb.get(k));
                if va == vb {
                    continue;
                }
                shown += 1;
                if shown > 8 {
                    let _ = writeln!(detail, "...");
                    break;
                }
                let show = |v: Option<&Vec<u8>>| {
                    v.map(|v| hex::encode(v))
                        .unwrap_or_else(|| "(absent)".into())
                };
                let _ = writeln!(
                    detail,
                    "key {}: {} = {}",
                    hex::encode(k),
                    a.name(),
                    show(va)
                );
                let _ = writeln!(
                    detail,
                    "key {}: {} = {}",
                    hex::encode(k),
                    b.name(),
                    show(vb)
                );
                if let (Some(va), Some(vb)) = (va, vb) {
                    detail.push_str(&hex::diff(va, vb, 8));
                }
            }
            let mut d = mk(format!("map {name}"), detail);
            d.left = format!("{} map {name}", a.name());
            d.right = format!("{} map {name}", b.name());
            return Ok(Some(d));
        }
    }
    Ok(None)
}

/// Replays `capture_path` through program `opts.prog` of `obj`. Returns the summary; the
/// outputs named in `opts` are written as it goes.
///
/// The parts, in order: [`Setup::new`] checks the options and prepares what every engine
/// shares; [`Setup::run_parallel`] runs the queues on worker threads when the object
/// allows it; otherwise [`Setup::run_in_order`] runs every packet in capture order
/// ([`InOrder::lean_loop`] for the common case, [`InOrder::general_loop`] for the rest);
/// then the final maps ([`Setup::write_maps`]) and coverage ([`Setup::write_coverage`]).
pub fn replay(
    obj: &LinkedObject,
    capture_path: &Path,
    opts: &Options,
    mut progress: Option<Progress<'_>>,
) -> Result<Summary, ReplayError> {
    let setup = Setup::new(obj, capture_path, opts)?;
    let mut s = setup.summary();
    let mut engines = match setup.run_parallel(&mut s, &mut progress)? {
        Some(main) => vec![main],
        None => setup.run_in_order(&mut s, &mut progress)?,
    };
    if let Some(p) = progress.as_mut() {
        p(s.packets, u64::MAX);
    }
    s.engine_mode = engines.first().and_then(|e| e.mode()).map(str::to_string);
    setup.write_maps(engines[0].as_ref())?;
    // The interpreter alongside, when there is one, was pushed last.
    let cov_from = if s.coverage_note.is_some() {
        engines.pop()
    } else {
        engines.into_iter().next()
    };
    setup.write_coverage(cov_from.as_deref(), &mut s)?;
    Ok(s)
}

/// What a replay decided before its first packet: the program, engines, CPUs, the
/// verifier's verdict and the settings every engine shares.
struct Setup<'a> {
    obj: &'a LinkedObject,
    capture_path: &'a Path,
    opts: &'a Options,
    prog: usize,
    kinds: Vec<EngineKind>,
    queues: u32,
    want_cov: bool,
    ncpus: u32,
    /// Why bpfkit's verifier does not accept the object, when it does not.
    unverified: Option<String>,
    settings: EngineSettings,
    /// `--maps-in`, parsed.
    maps_doc: Option<Value>,
}

impl<'a> Setup<'a> {
    /// Checks the options against each other and the object (usage errors first, before
    /// anything is written), asks the verifier, and reads `--maps-in`.
    fn new(
        obj: &'a LinkedObject,
        capture_path: &'a Path,
        opts: &'a Options,
    ) -> Result<Setup<'a>, ReplayError> {
        let prog = select_program(obj, opts.prog.as_deref())?;
        let kinds: Vec<EngineKind> = if opts.compare.is_empty() {
            vec![opts.engine]
        } else {
            opts.compare.clone()
        };
        if kinds.len() == 1 && !opts.compare.is_empty() {
            return Err(ReplayError::Usage(
                "--compare needs at least two engines (e.g. interp,kernel)".into(),
            ));
        }
        let uses_kernel = kinds.contains(&EngineKind::Kernel);
        let queues = opts.queues.max(1);
        if uses_kernel && queues > 1 {
            return Err(ReplayError::Usage(
                "--queues needs emulated CPUs; the kernel engine runs on a real CPU (use interp or jit)".into(),
            ));
        }
        let ncpus = Self::cpus(opts, uses_kernel, queues)?;
        let on_stdout = opts.stdout_outputs();
        if on_stdout.len() > 1 {
            return Err(ReplayError::Usage(format!(
                "{} write to standard output; at most one output can be `-`",
                on_stdout.join(" and ")
            )));
        }
        if opts
            .out_dir
            .as_deref()
            .is_some_and(|d| d.as_os_str() == "-")
        {
            return Err(ReplayError::Usage(
                "--out takes a directory (one pcap per action); for one capture on standard output use --pcapng -".into(),
            ));
        }
        // The verifier's verdict on the whole object (as the kernel loads it): the fast
        // JIT needs it, and a program it does not accept gets a low per-packet
        // instruction limit and a warning.
        let gate = engines::fast_gate(obj, opts.object_path.as_deref());
        let insn_limit = match (opts.insn_limit, &gate) {
            (Some(0), _) => {
                return Err(ReplayError::Usage("--insn-limit must be at least 1".into()))
            }
            (Some(n), _) => n,
            (None, Ok(())) => bpfkit_vm::Config::default().insn_limit,
            (None, Err(_)) => UNVERIFIED_INSN_LIMIT,
        };
        if let (Err(why), Some(warn)) = (&gate, opts.warn) {
            if !uses_kernel {
                warn(&format!(
                    "{why}: the kernel would refuse to load this object. Replaying it anyway; each packet is stopped after {insn_limit} instructions{}",
                    if opts.insn_limit.is_none() { " (--insn-limit to change)" } else { "" }
                ));
            }
        }
        // The receiving device: the loopback device (ifindex 1, as BPF_PROG_TEST_RUN uses
        // without a device) or the --ifindex one, with enough receive queues for the RSS
        // queues / --rx-queue.
        let rx_queues = queues.max(opts.rx_queue.saturating_add(1));
        let device = (opts.ifindex != 1 || rx_queues > 1).then_some(bpfkit_vm::Device {
            ifindex: opts.ifindex,
            mtu: if opts.ifindex == 1 { 65536 } else { 1500 },
            hard_header_len: 14,
            rx_queues,
        });
        let settings = EngineSettings {
            ncpus,
            seed: opts.seed,
            device,
            object_path: opts.object_path.clone(),
            insn_limit,
            gate: engines::Gate(Some(gate.clone())),
        };
        let maps_doc: Option<Value> =
            match &opts.maps_in {
                Some(path) => {
                    let text = read_text(path)?;
                    Some(serde_json::from_str(&text).map_err(|e| {
                        ReplayError::Bad(format!("{}: not JSON: {e}", path.display()))
                    })?)
                }
                None => None,
            };
        Ok(Setup {
            obj,
            capture_path,
            opts,
            prog,
            kinds,
            queues,
            want_cov: opts.coverage.is_some() || opts.coverage_summary,
            ncpus,
            unverified: gate.err(),
            settings,
            maps_doc,
        })
    }

    /// Possible CPUs of the run.
    fn cpus(opts: &Options, uses_kernel: bool, queues: u32) -> Result<u32, ReplayError> {
        if uses_kernel {
            // Per-CPU values as the kernel returns them: one slot per possible CPU; runs
            // are pinned to CPU 0 so they land in slot 0, as in the corpus recordings.
            engines::kernel_available()
                .map_err(|e| ReplayError::Bad(format!("kernel engine not usable: {e}")))?;
            bpfkit_loader::pin_current_thread(0).map_err(ReplayError::Bad)?;
            return Ok(bpfkit_loader::map::possible_cpus()
                .map_err(|e| ReplayError::Bad(format!("possible CPUs: {e}")))?
                as u32);
        }
        let c = opts.cpus.unwrap_or(queues);
        if c < queues {
            return Err(ReplayError::Usage(format!(
                "--cpus {c} is less than --queues {queues}: each queue needs its own CPU"
            )));
        }
        Ok(c)
    }

    /// A new engine of kind `k`, its maps filled from `--maps-in`.
    fn new_engine(&self, k: EngineKind) -> Result<Box<dyn ReplayEngine>, ReplayError> {
        let mut e =
            engines::create(k, self.obj, &self.settings, self.prog).map_err(ReplayError::Bad)?;
        if let (Some(doc), Some(path)) = (&self.maps_doc, &self.opts.maps_in) {
            state::load(
                e.as_mut(),
                self.obj,
                doc,
                self.ncpus,
                self.opts.btf.as_deref(),
            )
            .map_err(|m| ReplayError::Bad(format!("{}: {m}", path.display())))?;
        }
        Ok(e)
    }

    /// The summary before the first packet.
    fn summary(&self) -> Summary {
        let mut s = Summary {
            unverified: self.unverified.clone(),
            insn_limit: self.settings.insn_limit,
            program: self.obj.programs[self.prog].name.clone(),
            engine: self
                .kinds
                .iter()
                .map(|k| k.name())
                .collect::<Vec<_>>()
                .join(","),
            capture: self.capture_path.display().to_string(),
            queues: self.queues,
            threads: 1,
            per_queue: vec![0; self.queues as usize],
            compared: if self.opts.compare.is_empty() {
                Vec::new()
            } else {
                self.kinds.iter().map(|k| k.name().to_string()).collect()
            },
            ..Default::default()
        };
        for a in ACTIONS {
            s.actions.insert(a.to_string(), 0);
        }
        s
    }

    /// With several queues: runs them on worker threads when the object's use of shared
    /// maps allows it, and returns the engine holding the merged maps. `None` when the
    /// packets must run in capture order instead (the reason goes into the summary).
    fn run_parallel(
        &self,
        s: &mut Summary,
        progress: &mut Option<Progress<'_>>,
    ) -> Result<Option<Box<dyn ReplayEngine>>, ReplayError> {
        let (opts, queues) = (self.opts, self.queues);
        if queues <= 1 {
            return Ok(None);
        }
        let plan = if opts.serial {
            Err("asked to run in capture order".to_string())
        } else if self.kinds.len() > 1 {
            Err("--compare runs every engine on each packet in capture order".to_string())
        } else if self.want_cov {
            Err("coverage is recorded on one engine".to_string())
        } else {
            parallel::analyze(self.obj, opts.object_path.as_deref())
        };
        let plan = match plan {
            Ok(plan) => plan,
            Err(why) => {
                s.serial_reason = Some(why);
                return Ok(None);
            }
        };
        let threads = opts
            .threads
            .unwrap_or_else(|| {
                std::thread::available_parallelism()
                    .map(|n| n.get() as u32)
                    .unwrap_or(1)
            })
            .clamp(1, queues);
        let new_engine = |k: EngineKind| self.new_engine(k);
        let run = Parallel {
            obj: self.obj,
            prog: self.prog,
            kind: self.kinds[0],
            queues,
            threads,
            ncpus: self.ncpus,
            plan: &plan,
            new_engine: &new_engine,
        };
        let mut outputs = Outputs::open(opts)?;
        let mut cap = open_capture(self.capture_path)?;
        let mut s2 = s.clone();
        match run.run(&mut cap, opts, &mut outputs, &mut s2, progress)? {
            Ok(main) => {
                outputs.finish(self.obj, opts, &mut s2)?;
                finish_capture(&cap, &mut s2);
                *s = s2;
                s.threads = threads;
                Ok(Some(main))
            }
            Err(why) => {
                // The capture is read again in order on one thread: a pipe or standard
                // input cannot be.
                let rereadable = self.capture_path.as_os_str() != "-"
                    && std::fs::metadata(self.capture_path).is_ok_and(|m| m.is_file());
                if !rereadable {
                    return Err(ReplayError::Usage(format!(
                        "the queues' results cannot be merged ({why}), and a capture from a pipe cannot be read again in capture order: replay it from a file"
                    )));
                }
                s.serial_reason = Some(why);
                Ok(None)
            }
        }
    }

    /// Runs every packet in capture order on one thread; returns the engines (the
    /// coverage interpreter last, when one ran alongside another engine).
    fn run_in_order(
        &self,
        s: &mut Summary,
        progress: &mut Option<Progress<'_>>,
    ) -> Result<Vec<Box<dyn ReplayEngine>>, ReplayError> {
        let mut engines = Vec::with_capacity(self.kinds.len() + 1);
        for k in &self.kinds {
            engines.push(self.new_engine(*k)?);
        }
        // Coverage is recorded by the interpreter: on another engine, an interpreter with
        // its own maps runs every packet alongside it.
        let mut cov_engine = None;
        if self.want_cov {
            if self.kinds[0] == EngineKind::Interp {
                engines[0].enable_coverage();
            } else {
                let mut e = self.new_engine(EngineKind::Interp)?;
                e.enable_coverage();
                cov_engine = Some(e);
                s.coverage_note = Some(format!(
                    "recorded by the interpreter running each packet alongside {}",
                    self.kinds[0].name()
                ));
            }
        }
        // The capture first: an unreadable capture leaves no output behind.
        let cap = open_capture(self.capture_path)?;
        let outputs = Outputs::open(self.opts)?;
        let want_packet = outputs.wants_packet() || self.kinds.len() > 1;
        let mut r = InOrder {
            cap,
            run: Runs {
                setup: self,
                // The XDP metadata length is only written to --out and --trace.
                want_meta: outputs.wants_packet(),
                outputs,
                want_packet,
                cmp_maps: comparable_maps(self.obj, &self.opts.ignore_maps),
                outs: vec![XdpOutput::default(); self.kinds.len()],
                res: Vec::with_capacity(self.kinds.len()),
                engines,
                cov_engine,
                cov_out: XdpOutput::default(),
            },
        };
        // The common case: one engine, one queue, nothing written, no coverage or limit,
        // classic pcap. The general loop does the same per packet with every option, and
        // takes over at the end of the file, at damage and for other formats.
        let lean = r.run.engines.len() == 1
            && self.queues == 1
            && r.run.cov_engine.is_none()
            && (!r.run.want_packet || r.run.engines[0].shows_frame())
            && self.opts.limit.is_none();
        let start = Instant::now();
        if lean {
            r.lean_loop(s, progress)?;
        }
        r.general_loop(s, progress)?;
        s.elapsed = start.elapsed();
        r.run.outputs.finish(self.obj, self.opts, s)?;
        finish_capture(&r.cap, s);
        let mut engines = r.run.engines;
        engines.extend(r.run.cov_engine);
        Ok(engines)
    }

    /// `--maps-out`: the final contents of every map of `engine`.
    fn write_maps(&self, engine: &dyn ReplayEngine) -> Result<(), ReplayError> {
        let Some(path) = &self.opts.maps_out else {
            return Ok(());
        };
        let doc =
            state::dump(engine, self.obj, self.opts.btf.as_deref()).map_err(ReplayError::Bad)?;
        let text = serde_json::to_string_pretty(&doc).expect("JSON values serialize");
        output::write_whole(path, (text + "\n").as_bytes())
            .map_err(|e| out_err(&output::shown(path), e))
    }

    /// `--coverage` / `--coverage-summary` from the engine that recorded it.
    fn write_coverage(
        &self,
        from: Option<&dyn ReplayEngine>,
        s: &mut Summary,
    ) -> Result<(), ReplayError> {
        if !self.want_cov {
            return Ok(());
        }
        let Some(cov) = from.and_then(|e| e.coverage()) else {
            return Ok(());
        };
        let opts = self.opts;
        let progs = coverage::programs_of_interest(cov, self.prog, self.obj.programs.len());
        let resolve = |f: &str| -> String {
            if Path::new(f).is_absolute() {
                return f.to_string();
            }
            for d in &opts.source_dirs {
                let p = d.join(f);
                if p.is_file() {
                    return p.display().to_string();
                }
            }
            f.to_string()
        };
        let (sum, lcov) = coverage::report(self.obj, cov, &progs, &resolve);
        if let Some(path) = &opts.coverage {
            output::write_whole(path, lcov.as_bytes())
                .map_err(|e| out_err(&output::shown(path), e))?;
        }
        s.coverage = Some(sum);
        Ok(())
    }
}

/// A replay in capture order on one thread: the capture, the engines (several with
/// `--compare`), their outputs and where the results go.
struct InOrder<'s, 'a> {
    cap: Capture,
    run: Runs<'s, 'a>,
}

/// The per-packet side of [`InOrder`] (what a packet's run touches besides the capture).
struct Runs<'s, 'a> {
    setup: &'s Setup<'a>,
    outputs: Outputs,
    /// Whether the engines copy the output packet (outputs, comparisons).
    want_packet: bool,
    want_meta: bool,
    cmp_maps: Vec<usize>,
    engines: Vec<Box<dyn ReplayEngine>>,
    outs: Vec<XdpOutput>,
    /// Results of the compared engines after the first (with --compare).
    res: Vec<Result<(), RunError>>,
    /// The interpreter recording coverage alongside another engine.
    cov_engine: Option<Box<dyn ReplayEngine>>,
    cov_out: XdpOutput,
}

impl InOrder<'_, '_> {
    /// The common case in a loop of its own over records decoded in place: one engine
    /// (one that shows its frame when something is written: outputs take the packet from
    /// there, without a copy); a result other than one of the five actions, or anything
    /// to write, goes to the outputs. Ends at the end of the file, at damage, for other
    /// formats (the general loop goes on from there) and when a signal stops the replay.
    fn lean_loop(
        &mut self,
        s: &mut Summary,
        progress: &mut Option<Progress<'_>>,
    ) -> Result<(), ReplayError> {
        let run = &mut self.run;
        let (e, o) = (&mut run.engines[0], &mut run.outs[0]);
        // The JIT's run called directly (inline in the loop), not through the trait object.
        if let Some(j) = e
            .as_any_mut()
            .and_then(|a| a.downcast_mut::<engines::JitEngine>())
        {
            return lean_loop_on(
                &mut self.cap,
                run.setup,
                &mut run.outputs,
                run.want_packet,
                j,
                o,
                s,
                progress,
            );
        }
        lean_loop_on(
            &mut self.cap,
            run.setup,
            &mut run.outputs,
            run.want_packet,
            e.as_mut(),
            o,
            s,
            progress,
        )
    }

    /// Every packet with every option: `--limit`, queues, `--compare`, coverage, outputs.
    fn general_loop(
        &mut self,
        s: &mut Summary,
        progress: &mut Option<Progress<'_>>,
    ) -> Result<(), ReplayError> {
        let (opts, queues) = (self.run.setup.opts, self.run.setup.queues);
        while let Some(rec) = self.cap.next_record() {
            if opts.limit.is_some_and(|l| s.packets >= l) || opts.stopped() {
                break;
            }
            let data = rec.data;
            count_record(s, data, rec.orig_len);
            if let Some(p) = progress.as_mut() {
                if s.packets.is_multiple_of(65536) {
                    p(s.packets, rec.offset);
                }
            }
            let (index, ts_ns) = (rec.index, rec.ts_ns);
            if let Some(reason) = skip_reason(&rec.note, data) {
                self.run
                    .outputs
                    .skipped(s, index, ts_ns, data.len(), reason)?;
                continue;
            }
            let queue = rss::queue_of(data, queues);
            let input = packet_input(opts, queues, queue, data, ts_ns);
            if queues > 1 {
                s.per_queue[queue as usize] += 1;
            }
            let pkt = PacketInfo {
                index,
                ts_ns,
                data,
                orig_len: rec.orig_len,
                queue: (queues > 1).then_some(queue),
                meta_len: 0,
            };
            if self.run.packet(s, &input, pkt)? {
                break;
            }
        }
        Ok(())
    }
}

/// [`InOrder::lean_loop`] on engine `e` (generic, so the JIT's run is inlined).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn lean_loop_on<E: ReplayEngine + ?Sized>(
    cap: &mut Capture,
    setup: &Setup<'_>,
    outputs: &mut Outputs,
    want: bool,
    e: &mut E,
    o: &mut XdpOutput,
    s: &mut Summary,
    progress: &mut Option<Progress<'_>>,
) -> Result<(), ReplayError> {
    let (opts, prog, obj) = (setup.opts, setup.prog, setup.obj);
    while let Some(rec) = cap.next_whole_pcap_record() {
        if opts.stopped() {
            break;
        }
        let data = rec.data;
        count_record(s, data, rec.orig_len);
        if let Some(p) = progress.as_mut() {
            if s.packets.is_multiple_of(65536) {
                p(s.packets, rec.offset);
            }
        }
        if let Some(reason) = skip_reason(&rec.note, data) {
            outputs.skipped(s, rec.index, rec.ts_ns, data.len(), reason)?;
            continue;
        }
        let input = packet_input(opts, 1, 0, data, rec.ts_ns);
        // With outputs, the packet is copied only when the frame cannot show it.
        let view = data.len() <= FRAME_MAX;
        let r0 = e.run_into(prog, &input, o, want && !view);
        if r0.is_err() || !outputs.count_plain(s, o) {
            let mut pkt = PacketInfo {
                index: rec.index,
                ts_ns: rec.ts_ns,
                data,
                orig_len: rec.orig_len,
                queue: None,
                meta_len: 0,
            };
            let packet = if want && r0.is_ok() {
                pkt.meta_len = e.meta_len();
                out_packet(view, e.frame(), e.name(), o)?
            } else {
                &o.packet[..]
            };
            outputs.result_written(obj, s, &pkt, as_result(&r0, o), packet)?;
        }
    }
    Ok(())
}

impl Runs<'_, '_> {
    /// Runs one packet on every engine (and the coverage interpreter), compares the
    /// results with `--compare` and hands them to the outputs. True when the engines
    /// differ (the replay stops there).
    #[inline]
    fn packet(
        &mut self,
        s: &mut Summary,
        input: &XdpInput<'_>,
        mut pkt: PacketInfo<'_>,
    ) -> Result<bool, ReplayError> {
        let (obj, prog) = (self.setup.obj, self.setup.prog);
        // One engine that shows its frame: the outputs take the packet from there.
        let view = self.engines.len() == 1
            && input.packet.len() <= FRAME_MAX
            && self.engines[0].shows_frame();
        let r0 =
            self.engines[0].run_into(prog, input, &mut self.outs[0], self.want_packet && !view);
        if self.engines.len() > 1 {
            self.res.clear();
            for (e, o) in self.engines[1..].iter_mut().zip(self.outs[1..].iter_mut()) {
                self.res.push(e.run_into(prog, input, o, self.want_packet));
            }
        }
        if let Some(c) = self.cov_engine.as_mut() {
            // Only its coverage is used; a fault there shows in the coverage as the path
            // taken.
            let _ = c.run_into(prog, input, &mut self.cov_out, false);
        }
        if self.engines.len() > 1 {
            for j in 1..self.engines.len() {
                if let Some(d) = compare_one(
                    obj,
                    &self.cmp_maps,
                    self.engines[0].as_ref(),
                    as_result(&r0, &self.outs[0]),
                    self.engines[j].as_ref(),
                    as_result(&self.res[j - 1], &self.outs[j]),
                    pkt.index,
                    pkt.ts_ns,
                )? {
                    s.difference = Some(d);
                    break;
                }
            }
        }
        // The common case (one of the five actions, nothing to write) is only counted;
        // everything else goes through Outputs::result_written with the packet's details.
        if r0.is_err() || !self.outputs.count_plain(s, &self.outs[0]) {
            let (e, o) = (self.engines[0].as_ref(), &self.outs[0]);
            let packet = if self.want_meta && r0.is_ok() {
                pkt.meta_len = e.meta_len();
                out_packet(view, e.frame(), e.name(), o)?
            } else {
                &o.packet[..]
            };
            self.outputs
                .result_written(obj, s, &pkt, as_result(&r0, o), packet)?;
        }
        Ok(s.difference.is_some())
    }
}

/// A text input (`-` is standard input), with the path in the error.
fn read_text(path: &Path) -> Result<String, ReplayError> {
    let bytes = if path.as_os_str() == "-" {
        let mut b = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut b)
            .map_err(|e| ReplayError::Usage(format!("<stdin>: {e}")))?;
        b
    } else {
        std::fs::read(path).map_err(|e| ReplayError::Usage(format!("{}: {e}", path.display())))?
    };
    String::from_utf8(bytes).map_err(|e| {
        ReplayError::Bad(format!(
            "{}: not UTF-8 text (byte offset {})",
            output::shown(path),
            e.utf8_error().valid_up_to()
        ))
    })
}

fn open_capture(path: &Path) -> Result<Capture, ReplayError> {
    Capture::open(path).map_err(|e| match e {
        capture::CaptureError::Io { .. } => ReplayError::Usage(e.to_string()),
        other => ReplayError::Bad(other.to_string()),
    })
}

/// Records how the capture ended (damage) in the summary.
fn finish_capture(cap: &Capture, s: &mut Summary) {
    if let Some(CaptureEnd::Damaged { offset, reason }) = cap.end() {
        let msg = format!("{}: at byte offset {offset}: {reason}", cap.path());
        *s.skipped
            .entry(format!(
                "damaged record (the rest of the file is unreadable): {reason}"
            ))
            .or_insert(0) += 1;
        s.damaged = Some(msg);
    }
}

fn count_record(s: &mut Summary, data: &[u8], orig_len: u32) {
    s.packets += 1;
    s.bytes += data.len() as u64;
    if (data.len() as u64) < orig_len as u64 {
        s.snapped += 1;
    }
}

/// Why a record is not run, if it is not.
#[inline(always)]
fn skip_reason(note: &RecordNote, data: &[u8]) -> Option<String> {
    if matches!(note, RecordNote::None | RecordNote::OverSnapLen { .. })
        && (ETH_HLEN..=MAX_XDP_FRAME).contains(&data.len())
    {
        return None;
    }
    skip_reason_text(note, data)
}

/// [`skip_reason`] once the record is known not to be a plain runnable frame.
#[cold]
fn skip_reason_text(note: &RecordNote, data: &[u8]) -> Option<String> {
    match note {
        RecordNote::None | RecordNote::OverSnapLen { .. } => {
            if data.len() < ETH_HLEN {
                Some(if data.is_empty() {
                    "zero-length packet: BPF_PROG_TEST_RUN refuses frames shorter than an Ethernet header (EINVAL)".to_string()
                } else {
                    "shorter than an Ethernet header (14 bytes): BPF_PROG_TEST_RUN refuses it (EINVAL)".to_string()
                })
            } else if data.len() > MAX_XDP_FRAME {
                Some(format!(
                    "larger than an XDP test-run frame ({MAX_XDP_FRAME} bytes: 3520 linear + 17 fragment pages): the kernel refuses it"
                ))
            } else {
                None
            }
        }
        RecordNote::NotEthernet(lt) => Some(format!(
            "pcapng interface with link type {lt}, not Ethernet"
        )),
        RecordNote::UnknownInterface(i) => Some(format!(
            "pcapng packet names interface {i}, which was never described"
        )),
        RecordNote::Malformed(m) => Some(format!("malformed pcapng packet block: {m}")),
    }
}

fn packet_input<'a>(
    opts: &Options,
    queues: u32,
    queue: u32,
    data: &'a [u8],
    ts_ns: u64,
) -> XdpInput<'a> {
    XdpInput {
        packet: data,
        ingress_ifindex: opts.ifindex,
        rx_queue_index: if queues > 1 { queue } else { opts.rx_queue },
        time_ns: (ts_ns as i64).saturating_add(opts.time_offset_ns).max(0) as u64,
        cpu: if queues > 1 { queue } else { 0 },
    }
}

/// The output packet of a successful run for the outputs: the engine's frame when the
/// run did not copy it (`view`), else the copy.
#[inline]
fn out_packet<'a>(
    view: bool,
    frame: Option<&'a [u8]>,
    engine: &str,
    o: &'a XdpOutput,
) -> Result<&'a [u8], ReplayError> {
    if !view {
        return Ok(&o.packet);
    }
    frame.ok_or_else(|| {
        ReplayError::Usage(format!(
            "internal error: engine {engine} shows no frame after a run"
        ))
    })
}

fn as_result<'a>(
    r: &'a Result<(), RunError>,
    o: &'a XdpOutput,
) -> Result<&'a XdpOutput, &'a RunError> {
    match r {
        Ok(()) => Ok(o),
        Err(e) => Err(e),
    }
}

/// One packet handed to a worker: its bytes are `data[start..start + len]` of its chunk.
struct Job {
    index: u64,
    ts_ns: u64,
    orig_len: u32,
    start: usize,
    len: usize,
    queue: u32,
    skip: Option<String>,
}

/// Consecutive records of the capture, copied out of the reader for the workers.
#[derive(Default)]
struct Chunk {
    data: Vec<u8>,
    jobs: Vec<Job>,
}

/// Records per chunk: workers run one chunk while the main thread reads the next.
const CHUNK: usize = 16_384;

/// A worker's result for one packet: the output and its metadata length.
type WorkerResult = Result<(XdpOutput, usize), RunError>;

/// What a worker sends back.
enum FromWorker {
    Ready(Result<(), String>),
    /// Results of one chunk: (position in the chunk, result and metadata length).
    Results(Vec<(usize, WorkerResult)>),
    /// Final map contents per queue: (queue, entries of every map).
    Maps(Vec<(u32, Vec<Result<engines::Entries, String>>)>),
}

type EngineFactory<'a> =
    dyn Fn(EngineKind) -> Result<Box<dyn ReplayEngine>, ReplayError> + Sync + 'a;

/// The queues of a replay on worker threads: one engine per queue (each with its own copy
/// of the maps), queue q on worker q % threads; merged at the end (see [`parallel`]).
struct Parallel<'a> {
    obj: &'a LinkedObject,
    prog: usize,
    kind: EngineKind,
    queues: u32,
    threads: u32,
    ncpus: u32,
    plan: &'a [parallel::SharedUse],
    new_engine: &'a EngineFactory<'a>,
}

impl Parallel<'_> {
    /// Runs the capture. `Ok(Err(reason))`: the merge is not possible (the caller runs
    /// the capture again in order on one thread).
    fn run(
        &self,
        cap: &mut Capture,
        opts: &Options,
        outputs: &mut Outputs,
        s: &mut Summary,
        progress: &mut Option<Progress<'_>>,
    ) -> Result<Result<Box<dyn ReplayEngine>, String>, ReplayError> {
        use std::sync::mpsc;
        use std::sync::Arc;
        let want_packet = outputs.wants_packet();
        let threads = self.threads as usize;
        let queues = self.queues;
        let mut start = Instant::now();
        let dumps = std::thread::scope(|sc| -> Result<_, ReplayError> {
            let mut to_workers = Vec::new();
            let mut from_workers = Vec::new();
            for w in 0..threads {
                let (jtx, jrx) = mpsc::channel::<Arc<Chunk>>();
                let (rtx, rrx) = mpsc::channel::<FromWorker>();
                to_workers.push(jtx);
                from_workers.push(rrx);
                let (obj, prog, kind, factory) = (self.obj, self.prog, self.kind, self.new_engine);
                sc.spawn(move || {
                    let mine: Vec<u32> =
                        (0..queues).filter(|q| *q as usize % threads == w).collect();
                    let mut engines = Vec::new();
                    for _ in &mine {
                        match factory(kind) {
                            Ok(e) => engines.push(e),
                            Err(e) => {
                                let _ = rtx.send(FromWorker::Ready(Err(e.to_string())));
                                return;
                            }
                        }
                    }
                    let _ = rtx.send(FromWorker::Ready(Ok(())));
                    while let Ok(chunk) = jrx.recv() {
                        let mut results = Vec::with_capacity(chunk.jobs.len() / threads + 1);
                        for (i, j) in chunk.jobs.iter().enumerate() {
                            if j.skip.is_some() || j.queue as usize % threads != w {
                                continue;
                            }
                            let e = &mut engines[j.queue as usize / threads];
                            let data = &chunk.data[j.start..j.start + j.len];
                            // (An XdpOutput per packet allocates nothing when no output
                            // needs the packet bytes: empty vectors.)
                            let input = packet_input(opts, queues, j.queue, data, j.ts_ns);
                            let mut out = XdpOutput::default();
                            let r = e
                                .run_into(prog, &input, &mut out, want_packet)
                                .map(|_| (out, e.meta_len()));
                            results.push((i, r));
                        }
                        if rtx.send(FromWorker::Results(results)).is_err() {
                            return;
                        }
                    }
                    let maps = mine
                        .iter()
                        .zip(&engines)
                        .map(|(q, e)| (*q, (0..obj.maps.len()).map(|m| e.map_entries(m)).collect()))
                        .collect();
                    let _ = rtx.send(FromWorker::Maps(maps));
                });
            }
            for r in &from_workers {
                match r.recv() {
                    Ok(FromWorker::Ready(Ok(()))) => {}
                    Ok(FromWorker::Ready(Err(e))) => return Err(ReplayError::Bad(e)),
                    _ => return Err(ReplayError::Bad("a replay worker thread died".into())),
                }
            }
            // Timing from here, like the single-thread loop (engine setup excluded).
            start = Instant::now();
            let mut pending: Option<Arc<Chunk>> = None;
            let mut spare: Option<Chunk> = None;
            let mut done = false;
            loop {
                // Read the next chunk while the workers run the pending one (into the
                // buffers of an earlier chunk when the workers have let go of it).
                let mut next = spare.take().unwrap_or_else(|| Chunk {
                    data: Vec::with_capacity(CHUNK * 512),
                    jobs: Vec::with_capacity(CHUNK),
                });
                next.data.clear();
                next.jobs.clear();
                while !done && next.jobs.len() < CHUNK {
                    let Some(rec) = cap.next_record() else {
                        done = true;
                        break;
                    };
                    if opts.limit.is_some_and(|l| s.packets >= l) || opts.stopped() {
                        done = true;
                        break;
                    }
                    count_record(s, rec.data, rec.orig_len);
                    if let Some(p) = progress.as_mut() {
                        if s.packets.is_multiple_of(65536) {
                            p(s.packets, rec.offset);
                        }
                    }
                    let skip = skip_reason(&rec.note, rec.data);
                    let queue = if skip.is_none() {
                        rss::queue_of(rec.data, queues)
                    } else {
                        0
                    };
                    let start = next.data.len();
                    next.data.extend_from_slice(rec.data);
                    next.jobs.push(Job {
                        index: rec.index,
                        ts_ns: rec.ts_ns,
                        orig_len: rec.orig_len,
                        start,
                        len: rec.data.len(),
                        queue,
                        skip,
                    });
                }
                if let Some(chunk) = pending.take() {
                    let mut slots: Vec<Option<WorkerResult>> =
                        (0..chunk.jobs.len()).map(|_| None).collect();
                    for r in &from_workers {
                        match r.recv() {
                            Ok(FromWorker::Results(v)) => {
                                for (i, res) in v {
                                    slots[i] = Some(res);
                                }
                            }
                            _ => {
                                return Err(ReplayError::Bad("a replay worker thread died".into()))
                            }
                        }
                    }
                    for (j, slot) in chunk.jobs.iter().zip(slots) {
                        let data = &chunk.data[j.start..j.start + j.len];
                        match (&j.skip, slot) {
                            (Some(reason), _) => {
                                outputs.skipped(s, j.index, j.ts_ns, j.len, reason.clone())?
                            }
                            (None, Some(res)) => {
                                s.per_queue[j.queue as usize] += 1;
                                let p = PacketInfo {
                                    index: j.index,
                                    ts_ns: j.ts_ns,
                                    data,
                                    orig_len: j.orig_len,
                                    queue: Some(j.queue),
                                    meta_len: res.as_ref().map_or(0, |r| r.1),
                                };
                                outputs.result(self.obj, s, &p, res.as_ref().map(|r| &r.0))?;
                            }
                            (None, None) => {
                                return Err(ReplayError::Bad(format!(
                                    "no result for packet {} from its worker",
                                    j.index
                                )))
                            }
                        }
                    }
                    spare = Arc::try_unwrap(chunk).ok();
                }
                if next.jobs.is_empty() {
                    break;
                }
                let chunk = Arc::new(next);
                for t in &to_workers {
                    t.send(chunk.clone())
                        .map_err(|_| ReplayError::Bad("a replay worker thread died".into()))?;
                }
                pending = Some(chunk);
            }
            drop(to_workers);
            let mut dumps: Vec<Option<Vec<Result<engines::Entries, String>>>> =
                (0..queues).map(|_| None).collect();
            for r in &from_workers {
                match r.recv() {
                    Ok(FromWorker::Maps(v)) => {
                        for (q, m) in v {
                            dumps[q as usize] = Some(m);
                        }
                    }
                    _ => return Err(ReplayError::Bad("a replay worker thread died".into())),
                }
            }
            Ok(dumps)
        })?;
        s.elapsed = start.elapsed();
        let mut per_queue = Vec::with_capacity(dumps.len());
        for d in dumps {
            let d = d.ok_or_else(|| ReplayError::Bad("a queue's maps are missing".into()))?;
            per_queue.push(
                d.into_iter()
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(ReplayError::Bad)?,
            );
        }
        let mut main = (self.new_engine)(self.kind)?;
        match self.merge(main.as_mut(), &per_queue)? {
            Ok(()) => Ok(Ok(main)),
            Err(why) => Ok(Err(why)),
        }
    }

    /// Writes the merged map contents into `main` (a fresh engine with the initial maps).
    fn merge(
        &self,
        main: &mut dyn ReplayEngine,
        per_queue: &[Vec<engines::Entries>],
    ) -> Result<Result<(), String>, ReplayError> {
        use parallel::SharedUse;
        for (m, u) in self.plan.iter().enumerate() {
            let def = &self.obj.maps[m];
            let name = def.real_name();
            let vsize = def.value_size as usize;
            let bad = |msg: String| ReplayError::Bad(format!("merging map `{name}`: {msg}"));
            // Each queue's final entries of this map, by key.
            let lookup: Vec<BTreeMap<&[u8], &[u8]>> = per_queue
                .iter()
                .map(|q| {
                    q[m].iter()
                        .map(|(k, v)| (k.as_slice(), v.as_slice()))
                        .collect()
                })
                .collect();
            match u {
                SharedUse::ReadOnly => {}
                SharedUse::PerCpu => {
                    // Engines leave all-zero array entries out of their listings: a key
                    // missing on a queue is all zero there.
                    let slot = vsize.div_ceil(8) * 8;
                    let total = slot * self.ncpus as usize;
                    let keys: std::collections::BTreeSet<&[u8]> =
                        lookup.iter().flat_map(|l| l.keys().copied()).collect();
                    let zero = vec![0u8; total];
                    for key in keys {
                        let v0: &[u8] = lookup[0].get(key).copied().unwrap_or(&zero);
                        let mut merged = v0.to_vec();
                        for (q, l) in lookup.iter().enumerate().skip(1) {
                            let vq: &[u8] = l.get(key).copied().unwrap_or(&zero);
                            if vq.len() != total || merged.len() != total {
                                return Err(bad(format!("per-CPU value of {} bytes", vq.len())));
                            }
                            merged[q * slot..(q + 1) * slot]
                                .copy_from_slice(&vq[q * slot..(q + 1) * slot]);
                        }
                        main.map_update(m, key, &merged).map_err(bad)?;
                    }
                }
                SharedUse::Counters { width, inserts } => {
                    let array = def.map_type != bpfkit_object::model::map_type::HASH;
                    let init: BTreeMap<Vec<u8>, Vec<u8>> =
                        main.map_entries(m).map_err(bad)?.into_iter().collect();
                    let keys: std::collections::BTreeSet<&[u8]> = init
                        .keys()
                        .map(|k| k.as_slice())
                        .chain(lookup.iter().flat_map(|l| l.keys().copied()))
                        .collect();
                    let zero = vec![0u8; vsize];
                    let mut merged: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
                    for k in keys {
                        let base: &[u8] = init.get(k).map(|v| v.as_slice()).unwrap_or(&zero);
                        let mut acc = base.to_vec();
                        let mut present = init.contains_key(k);
                        for l in &lookup {
                            // In an array a missing entry is all zero; in a hash, absent.
                            let v = match l.get(k) {
                                Some(v) => *v,
                                None if array => &zero[..],
                                None => continue,
                            };
                            if v.len() != vsize || base.len() != vsize {
                                return Err(bad(format!("value of {} bytes", v.len())));
                            }
                            add_delta(&mut acc, base, v, *width);
                            present = true;
                        }
                        if present {
                            merged.insert(k.to_vec(), acc);
                        }
                    }
                    if *inserts && merged.len() > def.max_entries as usize {
                        return Ok(Err(format!(
                            "the queues together inserted more keys into `{name}` than its {} entries",
                            def.max_entries
                        )));
                    }
                    for (k, v) in &merged {
                        if init.get(k) != Some(v) {
                            main.map_update(m, k, v).map_err(bad)?;
                        }
                    }
                }
            }
        }
        Ok(Ok(()))
    }
}

/// `acc += v - base`, word by word (`width` bytes, native byte order, wrapping).
fn add_delta(acc: &mut [u8], base: &[u8], v: &[u8], width: usize) {
    for ((a, b), x) in acc
        .chunks_exact_mut(width)
        .zip(base.chunks_exact(width))
        .zip(v.chunks_exact(width))
    {
        let rd = |s: &[u8]| -> u64 {
            let mut w = [0u8; 8];
            if cfg!(target_endian = "little") {
                w[..s.len()].copy_from_slice(s);
                u64::from_le_bytes(w)
            } else {
                w[8 - s.len()..].copy_from_slice(s);
                u64::from_be_bytes(w)
            }
        };
        let sum = rd(a).wrapping_add(rd(x).wrapping_sub(rd(b)));
        let bytes = if cfg!(target_endian = "little") {
            sum.to_le_bytes()[..width].to_vec()
        } else {
            sum.to_be_bytes()[8 - width..].to_vec()
        };
        a.copy_from_slice(&bytes);
    }
}
