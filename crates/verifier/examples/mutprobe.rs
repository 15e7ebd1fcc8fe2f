//! Developer tool, the issue-14 mutation campaign (item 7): mutate the instructions of
//! objects, verify every mutant with bpfkit and load it into the kernel (whole object, as
//! libbpf would), and print each disagreement: `UNSAFE` (bpfkit accepts, the kernel
//! rejects) or `FALSEREJ`. Needs root (CAP_BPF).
//!
//! `cargo run --release -p bpfkit-verifier --example mutprobe -- N SEED FILE.o...`
//! (N mutants per object).
//!
//! `MUTPROBE_CAPS=SET` verifies as `--caps SET` and loads from a thread with exactly those
//! capabilities (root when unset).
//!
//! Mutations, one per mutant (`MUTPROBE_EXTRA=K` adds K more elsewhere in the section):
//! registers, offsets, immediates, size/mode/op/class bits (`point`); a conditional jump
//! inverted (`swap`, the branches exchanged), deleted (`delcheck`, a `ja +0` in its
//! place: a bounds or NULL check removed), made unconditional (`always`), retargeted
//! (`retarget`); a check moved one or two instructions later (`movecheck`: swapped with
//! the instruction after it, so the access it guarded comes first); any instruction
//! deleted (`delete`).
//!
//! - `MUTPROBE_JIT=1`: every mutant bpfkit accepts also runs on the fast JIT (compiled
//!   with `Jit::new_fast`, two packets) in a forked child; a child killed by a signal is
//!   printed as `CRASH` (SIGALRM after 20 s as `HANG`).
//! - `MUTPROBE_CASES=DIR`: every disagreement is retried program by program as a
//!   verifier data-file case (maps and raw instructions of the linked program, loaded by
//!   the case harness); when the case alone shows the same disagreement it is written to
//!   `DIR/<object>-<seed>-<n>.case` with the kernel's verdict and message, else the
//!   output says `nocase` and why.
//! - `MUTPROBE_REJECTED_EVERY=K`: only every K-th mutant bpfkit rejects is loaded into
//!   the kernel (false rejections sampled, for speed); accepted ones always are.
//! - Programs in sections libbpf does not recognise are XDP (as `--prog-type xdp`);
//!   programs of other types are dropped from the object before mutation. As
//!   `examples/klog`: maps with `max_entries = 0` get 64 entries, iproute2 pinning is
//!   ignored (Cilium's `bpf_elf_map` objects).
//! - `MUTPROBE_MAX_ENTRIES=N`: hash and array maps over N entries get N (both verifiers
//!   see the capped object; a kernel load and a jit-fast run no longer allocate
//!   katran's 128 MiB array each time).
//! - `MUTPROBE_MAX_INSNS=K`: programs bpfkit verifies in more than K processed
//!   instructions, unmutated, are left out (and their sections not mutated), so objects
//!   like Cilium's, whose NAT tail calls take 100,000+ each, can be sampled at all.
//!
//! The last line (stderr) gives the counts and the time. Not a test: the suite keeps a
//! small seeded sample (`tests/mutants.rs`).

#[path = "../tests/common/btf.rs"]
mod btf;
#[path = "../tests/common/case.rs"]
mod case;
#[path = "../tests/common/kernel.rs"]
mod kernel;
#[path = "../tests/common/mutate.rs"]
mod mutate;

#[path = "common/prepare.rs"]
mod prepare;

use bpfkit_object::model::{map_type, LinkedObject, MapDef, MapInit};
use bpfkit_object::{Object, SectionKind};
use bpfkit_verifier::Verdict;
use mutate::{is_lddw, mutate, mutate_random, Rng};
use std::fmt::Write as _;
use std::time::Instant;

/// `MUTPROBE_CAPS`: the loader's capabilities (root when unset).
fn caps() -> bpfkit_verifier::Caps {
    std::env::var("MUTPROBE_CAPS")
        .ok()
        .map(|s| bpfkit_verifier::Caps::parse(&s).unwrap_or_else(|e| panic!("MUTPROBE_CAPS: {e}")))
        .unwrap_or_default()
}

fn options(obj: &Object, linked: &LinkedObject) -> bpfkit_verifier::Options {
    bpfkit_verifier::Options {
        caps: caps(),
        map_fields: Some(bpfkit_verifier::btf_fields::from_btf(
            obj.btf.as_ref(),
            &linked.maps,
        )),
        funcs: bpfkit_verifier::btf_funcs::from_object(obj, linked),
        ..Default::default()
    }
}

/// bpfkit's verdict on the whole object: None when undecided or not linkable.
fn bpfkit(obj: &Object) -> Option<(bool, String)> {
    let linked = obj.link().ok()?;
    let opts = options(obj, &linked);
    let mut all = true;
    let mut msg = String::new();
    for p in &linked.programs {
        match bpfkit_verifier::verify(p, &linked.maps, &opts).verdict {
            Verdict::Accepted => {}
            Verdict::Rejected(r) => {
                all = false;
                msg = format!(
                    "{}: {}",
                    p.name,
                    r.kernel_message.lines().last().unwrap_or("")
                );
            }
            Verdict::Unsupported { .. } => return None,
        }
    }
    Some((all, msg))
}

/// Gives hash and array maps (plain, per-CPU, LRU, LPM) over `cap` entries `cap`
/// entries: katran's 33,554,944-entry array, allocated by every kernel load and every
/// jit-fast run, made each mutant take seconds. bpfkit and the kernel both see the
/// capped object, so the comparison stays fair (a constant key past the cap is out of
/// range for both).
fn cap_max_entries(obj: &mut Object, cap: u32) {
    let big: Vec<String> = obj
        .maps
        .iter()
        .filter(|m| {
            m.max_entries > cap
                && matches!(
                    m.map_type,
                    map_type::HASH
                        | map_type::ARRAY
                        | map_type::PERCPU_HASH
                        | map_type::PERCPU_ARRAY
                        | map_type::LRU_HASH
                        | map_type::LRU_PERCPU_HASH
                        | map_type::LPM_TRIE
                )
        })
        .map(|m| m.name.clone())
        .collect();
    for m in big {
        let _ = obj.set_max_entries(&m, cap);
    }
}

/// Leaves out the programs bpfkit verifies in more than `max` processed instructions.
fn drop_large_programs(obj: &mut Object, max: u64, f: &str) {
    let Ok(linked) = obj.link() else { return };
    let opts = options(obj, &linked);
    let large: Vec<String> = linked
        .programs
        .iter()
        .filter(|p| {
            bpfkit_verifier::verify(p, &linked.maps, &opts)
                .stats
                .processed_insns
                > max
        })
        .map(|p| p.name.clone())
        .collect();
    if !large.is_empty() {
        eprintln!(
            "{f}: left out (over {max} processed instructions): {}",
            large.join(", ")
        );
    }
    obj.programs.retain(|p| !large.contains(&p.name));
}

fn last_lines(log: &str, n: usize) -> String {
    let v: Vec<&str> = log
        .lines()
        .filter(|l| {
            !l.starts_with("processed")
                && !l.trim().is_empty()
                && !l.starts_with("mark_precise")
                && !l.starts_with("verification time")
                && !l.starts_with("stack depth")
        })
        .collect();
    v[v.len().saturating_sub(n)..].join(" // ")
}

fn kernel(obj: &Object) -> (bool, String) {
    let set = caps();
    let res = if set == bpfkit_verifier::Caps::ROOT {
        bpfkit_loader::LoadedObject::load(obj, &Default::default()).map(|_| ())
    } else {
        bpfkit_loader::caps::with_caps(set, || {
            bpfkit_loader::LoadedObject::load(obj, &Default::default()).map(|_| ())
        })
        .unwrap_or_else(|e| panic!("MUTPROBE_CAPS: {e}"))
    };
    match res {
        Ok(_) => (true, String::new()),
        Err(e) => {
            let log = e.verifier_log().unwrap_or("").to_string();
            let last = last_lines(&log, 4);
            (false, if last.is_empty() { e.to_string() } else { last })
        }
    }
}

/// Runs every program of `linked` on the fast JIT in a forked child (two packets).
/// Returns None when the child ended normally, else what killed it.
fn jit_fast_child(linked: &LinkedObject) -> Option<String> {
    use bpfkit_vm::{Config, Engine, XdpInput};
    // SAFETY: this tool is single-threaded, so the child may run any code after fork;
    // it only compiles and runs the mutant and leaves with `_exit`.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Some("fork failed".into());
    }
    if pid == 0 {
        // SAFETY: alarm only arms a timer for this (child) process.
        unsafe { libc::alarm(20) };
        let mut packet = [0u8; 128];
        packet[12] = 0x08;
        packet[14] = 0x45;
        packet[23] = 17;
        if let Ok(mut j) = bpfkit_jit::Jit::new_fast(linked, Config::default()) {
            for p in 0..linked.programs.len() {
                for len in [64usize, 128] {
                    let _ = j.run_xdp(
                        p,
                        &XdpInput {
                            packet: &packet[..len],
                            ..Default::default()
                        },
                    );
                }
            }
        }
        // SAFETY: leaves the child without running the parent's destructors.
        unsafe { libc::_exit(0) };
    }
    let mut status = 0;
    // SAFETY: waits for the child we just forked; `status` is a valid out pointer.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    if libc::WIFSIGNALED(status) {
        let s = libc::WTERMSIG(status);
        return Some(if s == libc::SIGALRM {
            "HANG (20 s)".into()
        } else {
            format!("signal {s}")
        });
    }
    None
}

/// The `-- maps` line of a map, or None when the case format cannot express it.
fn map_line(m: &MapDef, f: &bpfkit_verifier::btf_fields::MapFields) -> Option<String> {
    let ty = map_type::name(m.map_type)?
        .strip_prefix("BPF_MAP_TYPE_")?
        .to_lowercase();
    let mut s = format!(
        "{} {ty} key={} value={} entries={}",
        m.name
            .replace(|c: char| !c.is_ascii_alphanumeric() && c != '_', "_"),
        m.key_size,
        m.value_size,
        m.max_entries
    );
    if m.map_flags != 0 {
        write!(s, " flags={:#x}", m.map_flags).unwrap();
    }
    if let Some(o) = f.spin_lock {
        write!(s, " lock={o}").unwrap();
    }
    if let Some(o) = f.timer {
        write!(s, " timer={o}").unwrap();
    }
    if f.unmodelled.is_some() {
        return None;
    }
    if f.has_btf && f.spin_lock.is_none() && f.timer.is_none() {
        s.push_str(" btf");
    }
    match &m.init {
        MapInit::None => {}
        MapInit::Data(d) => {
            s.push_str(" init=");
            for b in d {
                write!(s, "{b:02x}").unwrap();
            }
        }
        // PROG_ARRAY / map-in-map contents do not change verdicts
        _ => {}
    }
    if let Some(inner) = &m.inner {
        let t = map_type::name(inner.map_type)?
            .strip_prefix("BPF_MAP_TYPE_")?
            .to_lowercase();
        write!(
            s,
            " inner={t}/{}/{}/{}",
            inner.key_size, inner.value_size, inner.max_entries
        )
        .unwrap();
    }
    Some(s)
}

/// Tries each program of the mutant as a stand-alone case; returns the case text of the
/// first that shows the disagreement (bpfkit's verdict `b` against the kernel's).
fn as_case(obj: &Object, header: &str, b: bool) -> Result<String, String> {
    let linked = obj.link().map_err(|e| e.to_string())?;
    let opts = options(obj, &linked);
    let fields = opts.map_fields.clone().unwrap_or_default();
    let mut maps = String::new();
    for (i, m) in linked.maps.iter().enumerate() {
        let f = fields.get(i).cloned().unwrap_or_default();
        maps.push_str(&map_line(m, &f).ok_or(format!("map {} not expressible", m.name))?);
        maps.push('\n');
    }
    let mut why = String::from("no single program disagrees");
    for p in &linked.programs {
        let mut raw = String::new();
        for i in &p.insns {
            let b = i.to_bytes();
            for x in b {
                write!(raw, "{x:02x} ").unwrap();
            }
            raw.pop();
            raw.push('\n');
        }
        let needs_funcs = p.insns.iter().any(|i| i.code == 0x18 && i.src == 4);
        let text = format!(
            "{header}\n-- maps\n{maps}-- raw\n{raw}{}-- expect\naccept\n",
            if needs_funcs {
                "-- options\nbtf-func-info\n"
            } else {
                ""
            }
        );
        let c = match case::Case::parse(&p.name, &text) {
            Ok(c) => c,
            Err(e) => {
                why = format!("case does not parse: {e}");
                continue;
            }
        };
        let prog = c.program();
        let cb = match bpfkit_verifier::verify(&prog, &c.maps, &c.options()).verdict {
            Verdict::Accepted => true,
            Verdict::Rejected(_) => false,
            Verdict::Unsupported { .. } => continue,
        };
        let k = match kernel::load_xdp_ext(&prog.insns, &c.maps, &c.extra()) {
            Ok(v) => v,
            Err(e) => {
                why = format!("kernel harness: {e}");
                continue;
            }
        };
        if cb == b && k.accepted != b {
            let expect = if k.accepted {
                "accept".to_string()
            } else {
                format!(
                    "reject {}",
                    last_lines(&k.log, 1)
                        .split(" // ")
                        .last()
                        .unwrap_or("")
                        .trim()
                )
            };
            return Ok(text.replace("-- expect\naccept\n", &format!("-- expect\n{expect}\n")));
        }
    }
    Err(why)
}

fn main() {
    let mut a = std::env::args().skip(1);
    let n: usize = a.next().and_then(|x| x.parse().ok()).unwrap_or(200);
    let seed: u64 = a.next().and_then(|x| x.parse().ok()).unwrap_or(1);
    let files: Vec<String> = a.collect();
    let extra: u64 = std::env::var("MUTPROBE_EXTRA")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    // MUTPROBE_MAX_INSNS=K: programs bpfkit needs more than K processed instructions
    // for, unmutated, are left out (Cilium's NAT tail calls take 100,000-250,000 each)
    let max_insns: Option<u64> = std::env::var("MUTPROBE_MAX_INSNS")
        .ok()
        .and_then(|v| v.parse().ok());
    // MUTPROBE_MAX_ENTRIES=N: hash and array maps larger than N entries get N
    let max_entries: Option<u32> = std::env::var("MUTPROBE_MAX_ENTRIES")
        .ok()
        .and_then(|v| v.parse().ok());
    let run_jit = std::env::var("MUTPROBE_JIT").is_ok_and(|v| v == "1");
    let cases_dir = std::env::var("MUTPROBE_CASES").ok();
    // MUTPROBE_REJECTED_EVERY=K: only every K-th mutant bpfkit rejects is loaded into
    // the kernel (false rejections are sampled; every accepted mutant is always loaded)
    let rejected_every: u64 = std::env::var("MUTPROBE_REJECTED_EVERY")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&k| k > 0)
        .unwrap_or(1);
    let (mut rejected_seen, mut rejected_unasked) = (0u64, 0u64);
    if let Some(d) = &cases_dir {
        std::fs::create_dir_all(d).expect("MUTPROBE_CASES directory");
    }
    let start = Instant::now();
    let mut r = Rng(seed | 1);
    let (mut tot, mut agree, mut unsafe_, mut falsrej, mut skip) = (0, 0, 0, 0, 0);
    let (mut jit_runs, mut crashes, mut objects) = (0, 0, 0);
    let mut kinds: std::collections::BTreeMap<&str, usize> = Default::default();
    let mut last_progress = 0usize;
    for f in &files {
        let Ok(bytes) = std::fs::read(f) else {
            eprintln!("skip {f}: unreadable");
            continue;
        };
        let Ok(mut base) = Object::parse(&bytes) else {
            eprintln!("skip {f}: does not parse");
            continue;
        };
        // as loaders of such objects do (and `examples/klog`)
        prepare::xdp_only(&mut base);
        if let Some(cap) = max_entries {
            cap_max_entries(&mut base, cap);
        }
        if let Some(max) = max_insns {
            drop_large_programs(&mut base, max, f);
        }
        if base.programs.is_empty() {
            eprintln!("skip {f}: no XDP program");
            continue;
        }
        match bpfkit(&base) {
            Some((true, _)) => {}
            other => {
                eprintln!("skip {f}: base not accepted/decided by bpfkit ({other:?})");
                continue;
            }
        }
        if !kernel(&base).0 {
            eprintln!("skip {f}: kernel rejects base");
            continue;
        }
        objects += 1;
        let xdp_secs: Vec<String> = base.programs.iter().map(|p| p.section.clone()).collect();
        let secs: Vec<usize> = base
            .sections
            .iter()
            .enumerate()
            .filter(|(_, s)| {
                !s.insns.is_empty()
                    && (s.kind == SectionKind::Text
                        || (s.kind == SectionKind::Program && xdp_secs.contains(&s.name)))
            })
            .map(|(i, _)| i)
            .collect();
        let stem = std::path::Path::new(f)
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        eprintln!(
            "object {f}: so far: mutants {tot}: agree {agree}, unsafe accepts {unsafe_}, false rejects {falsrej}, undecided {skip}, rejected by bpfkit and not loaded {rejected_unasked}; jit-fast runs {jit_runs}, crashes {crashes}; {:.0} s",
            start.elapsed().as_secs_f64()
        );
        let mut made = 0usize;
        let mut attempts = 0usize;
        while made < n && attempts < n * 20 {
            attempts += 1;
            let mut obj = base.clone();
            let si = secs[r.below(secs.len() as u64) as usize];
            let insns = &mut obj.sections[si].insns;
            let before = insns.clone();
            let Some((k, kind)) = mutate_random(&mut r, insns) else {
                continue;
            };
            if *insns == before {
                continue;
            }
            let mut desc = format!(
                "{kind} insn {k}: {:02x} {} {} {} {} -> {:02x} {} {} {} {}",
                before[k].code,
                before[k].dst,
                before[k].src,
                before[k].off,
                before[k].imm,
                insns[k].code,
                insns[k].dst,
                insns[k].src,
                insns[k].off,
                insns[k].imm
            );
            for _ in 0..extra {
                let j = r.below(insns.len() as u64) as usize;
                if j != k && !is_lddw(insns, j) {
                    let b = insns[j];
                    if let Some(kd) = mutate(&mut r, insns, j) {
                        let a = insns[j];
                        write!(
                            desc,
                            " + {kd} insn {j}: {:02x} {} {} {} {} -> {:02x} {} {} {} {}",
                            b.code, b.dst, b.src, b.off, b.imm, a.code, a.dst, a.src, a.off, a.imm
                        )
                        .unwrap();
                    }
                }
            }
            // the counts so far, every 200 mutants (a run stopped inside a slow object
            // keeps what it did)
            if tot > 0 && tot % 200 == 0 && tot != last_progress {
                last_progress = tot;
                eprintln!(
                    "progress {f}: mutants {tot}: agree {agree}, unsafe accepts {unsafe_}, false rejects {falsrej}, undecided {skip}, rejected by bpfkit and not loaded {rejected_unasked}; jit-fast runs {jit_runs}, crashes {crashes}; {:.0} s",
                    start.elapsed().as_secs_f64()
                );
            }
            made += 1;
            tot += 1;
            *kinds.entry(kind).or_default() += 1;
            let Some((b, bmsg)) = bpfkit(&obj) else {
                skip += 1;
                continue;
            };
            if b && run_jit {
                if let Ok(linked) = obj.link() {
                    jit_runs += 1;
                    if let Some(sig) = jit_fast_child(&linked) {
                        crashes += 1;
                        println!(
                            "CRASH {f} sec {} {desc} | jit-fast {sig}",
                            obj.sections[si].name
                        );
                    }
                }
            }
            if !b {
                rejected_seen += 1;
                if rejected_seen % rejected_every != 0 {
                    rejected_unasked += 1;
                    continue;
                }
            }
            let (kv, kmsg) = kernel(&obj);
            if b == kv {
                agree += 1;
                continue;
            }
            if b {
                unsafe_ += 1;
            } else {
                falsrej += 1;
            }
            let verdict = if b { "UNSAFE" } else { "FALSEREJ" };
            let mut line = format!(
                "{verdict} {f} sec {} {desc} | bpfkit {} {bmsg} | kernel {} {kmsg}",
                obj.sections[si].name,
                if b { "accept" } else { "reject" },
                if kv { "accept" } else { "reject" }
            );
            if let Some(d) = &cases_dir {
                let header = format!(
                    "# mutprobe {verdict}: {stem} (seed {seed}), section {}: {desc}\n# bpfkit {} ; kernel {}",
                    obj.sections[si].name,
                    if b { "accepts" } else { "rejects" },
                    if kv { "accepts" } else { "rejects" }
                );
                match as_case(&obj, &header, b) {
                    Ok(text) => {
                        let path = format!("{d}/{stem}-{seed}-{made}.case");
                        std::fs::write(&path, text).expect("write case");
                        write!(line, " | case {path}").unwrap();
                    }
                    Err(e) => write!(line, " | nocase: {e}").unwrap(),
                }
            }
            println!("{line}");
        }
    }
    eprintln!(
        "objects {objects}, mutants {tot} ({kinds:?}): agree {agree}, unsafe accepts {unsafe_}, false rejects {falsrej}, undecided {skip}, rejected by bpfkit and not loaded {rejected_unasked}; jit-fast runs {jit_runs}, crashes {crashes}; {:.0} s",
        start.elapsed().as_secs_f64()
    );
}
