//! `bpfkit verify`: decide, per program of an object, what the Linux verifier would.

use std::path::PathBuf;

use bpfkit_object::model::LinkedProgram;
use bpfkit_object::{object_name_from_path, Object};
use bpfkit_verifier::{render, Options, Report, Verdict};

use crate::{CliError, CliResult, Status};

const AFTER_HELP: &str = "\
Examples:
  bpfkit verify corpus/obj/xdp_firewall.o
  bpfkit verify corpus/obj/rejected/unchecked_access.o      # shows why, with the C line
  bpfkit verify --prog xdp_dispatch --format json corpus/obj/xdp_tailcall.o
  bpfkit verify --format sarif build/*.o > verify.sarif      # one result per program
  bpfkit verify --format sarif --sarif-problems-only build/*.o  # for code-scanning upload
  bpfkit verify --format csv x.o                             # veristat's columns
  bpfkit verify --deny-tail-call-lints corpus/obj/xdp_tailcall.o
  bpfkit verify --maps maps.json --deny-tail-call-lints x.o   # prog arrays filled at run time
  bpfkit verify --kernel 5.15 corpus/obj/xdp_bpf_loop.o       # will it load on 5.15?
  bpfkit verify --kernel live corpus/obj/xdp_meta.o           # on this machine's kernel
  bpfkit verify --kernel prod.json x.o                        # probe file (bpfkit probe)
  bpfkit verify --caps bpf,net_admin x.o                      # a loader without CAP_PERFMON

--caps: what the loader's capabilities change, as 6.18 derives it: root or sys_admin
(everything), bpf,perfmon,net_admin (the same verifier rules as root), bpf,net_admin
(no pointer leaks, no uninitialised stack reads, the Spectre v1 pointer-arithmetic rules
and no helpers that need CAP_PERFMON such as bpf_trace_printk or bpf_probe_read_kernel),
none or any set without bpf and net_admin (an XDP load fails with EPERM before the
verifier). --unprivileged is --caps bpf,net_admin. Add mitigations=off to any set
(e.g. --caps bpf,net_admin,mitigations=off) for a kernel booted with mitigations=off:
its Spectre rules are then off whatever the capabilities.

Tail-call graph: from the tail-call sites and the object's PROG_ARRAY contents
(`.values`, then the slots of --maps on top), cycles and chains longer than the kernel's
limit (33 programs) are reported as warnings, or errors with --deny-tail-call-lints.
--maps takes the JSON layout of `bpfkit replay --maps-in`: {\"map\": [[key, value], ...]};
for a PROG_ARRAY, key is the slot (integer or little-endian hex) and value
{\"program\": NAME}; other maps in the file are ignored.

Decides, by abstract interpretation like the kernel's, whether the Linux 6.18 verifier
would accept each program, as loaded by root (or, with --caps, by a loader with only
those capabilities). Rejections name the instruction, the kernel's own wording, the C source
line, the register state and the branch decisions that led there, plus a hint. A program
using something bpfkit does not model yet is reported as undecided, never as accepted.
See docs/verifier.md for what is checked.

--kernel answers for another kernel: what it lacks (helpers per program type, kfuncs,
map types, ISA groups, bounded loops, program size) is refused with that
kernel's own words and a hint naming the release that brought it. For a release older
than 6.18 the rest of the analysis is still 6.18's; the verdict says so in a note.

Exit status: 0 every selected program is accepted; 1 a program is rejected or cannot be
decided, or an object is malformed; 2 usage or I/O error.";

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
    Sarif,
    Csv,
}

#[derive(clap::Args)]
#[command(after_help = AFTER_HELP)]
pub struct Args {
    /// eBPF ELF objects.
    #[arg(required_unless_present = "compare")]
    pub files: Vec<PathBuf>,
    /// Compare two veristat-style CSV files (bpfkit's `--format csv` or `veristat -o csv`)
    /// as `veristat -C` does; exit status 1 when a program that succeeded in OLD fails or
    /// is missing in NEW.
    #[arg(long, num_args = 2, value_names = ["OLD.csv", "NEW.csv"], conflicts_with_all = ["files"])]
    pub compare: Option<Vec<PathBuf>>,
    /// Exit 0 when programs are only undecided (bpfkit cannot model them), none rejected.
    #[arg(long)]
    pub allow_undecided: bool,
    /// Repository root for SARIF: source paths from the line info are made relative to it.
    #[arg(long, value_name = "DIR")]
    pub source_root: Option<PathBuf>,
    /// SARIF: results for problems only (rejected, undecided, unreadable), no `pass`
    /// result per accepted program. GitHub code scanning shows every result as an alert.
    #[arg(long)]
    pub sarif_problems_only: bool,
    #[command(flatten)]
    pub object: super::ObjectArgs,
    /// Only these programs (by function name); may be repeated.
    #[arg(long = "prog", value_name = "NAME")]
    pub progs: Vec<String>,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
    /// The loader's capabilities: `root` (default; also `sys_admin`), a list of `bpf`,
    /// `perfmon`, `net_admin` (e.g. `bpf,perfmon,net_admin`, or `bpf,net_admin`: the
    /// Spectre v1 rules apply without perfmon), or `none`. XDP needs bpf and net_admin.
    #[arg(long, value_name = "SET", value_parser = parse_caps, conflicts_with = "unprivileged")]
    pub caps: Option<bpfkit_verifier::Caps>,
    /// Same as `--caps bpf,net_admin`: the smallest set that loads XDP (no CAP_PERFMON:
    /// no pointer leaks, no uninitialised stack reads, Spectre v1 pointer rules).
    #[arg(long)]
    pub unprivileged: bool,
    /// Make tail-call graph lints (cycles, chains longer than the kernel's 33 programs)
    /// fatal: exit status 1.
    #[arg(long)]
    pub deny_tail_call_lints: bool,
    /// Contents of PROG_ARRAY maps (as loaded at run time) for the tail-call graph, in
    /// the `bpfkit replay --maps-in` layout.
    #[arg(long = "maps", value_name = "FILE.json")]
    pub maps: Option<PathBuf>,
    /// Processed-instruction budget (the kernel's is 1000000).
    #[arg(long, default_value_t = bpfkit_verifier::BPF_COMPLEXITY_LIMIT_INSNS)]
    pub insn_limit: u64,
    /// Answer for this kernel: a release (`5.15`, `6.1`, `6.6`, `6.12`, `6.18`: its
    /// version profile), `live` (probe the running kernel now) or a probe file written by
    /// `bpfkit probe --format json`. Default: upstream 6.18.
    #[arg(long, value_name = "TARGET")]
    pub kernel: Option<String>,
}

/// `--caps SET` (see `bpfkit_verifier::Caps::parse`).
pub fn parse_caps(s: &str) -> Result<bpfkit_verifier::Caps, String> {
    bpfkit_verifier::Caps::parse(s)
}

fn insn_text(prog: &LinkedProgram, i: usize) -> String {
    match bpfkit_isa::insn::decode(&prog.insns, i) {
        Ok((insn, _)) => bpfkit_asm::disasm::llvm(&insn),
        Err(_) => prog
            .insns
            .get(i)
            .map(|r| format!("{r:?}"))
            .unwrap_or_default(),
    }
}

/// Writes to stdout. A reader that went away (e.g. `| head`) ends bpfkit quietly with
/// status 141, another write error with status 2 (see `crate::stdout_failed`).
fn emit(s: &str) -> bool {
    crate::out_bytes(s.as_bytes());
    true
}

fn compare(files: &[PathBuf]) -> CliResult {
    let read = |p: &PathBuf| -> Result<Vec<render::CsvRow>, CliError> {
        let text = std::fs::read_to_string(p)
            .map_err(|e| CliError::usage(format!("{}: {e}", p.display())))?;
        render::parse_csv(&text).map_err(|e| CliError::bad(format!("{}: {e}", p.display())))
    };
    let (a, b) = (read(&files[0])?, read(&files[1])?);
    let (table, regressed) = render::compare_csv(&a, &b);
    if !emit(&table) {
        return Ok(Status::Ok);
    }
    Ok(if regressed { Status::Bad } else { Status::Ok })
}

pub fn run(args: Args) -> CliResult {
    if let Some(files) = &args.compare {
        return compare(files);
    }
    let mut all_ok = true;
    let mut undecided_only = true;
    let mut errors: Vec<(String, String)> = vec![];
    let mut io_error = false;
    let mut json_out = vec![];
    let mut sarif_items: Vec<(String, LinkedProgram, Report)> = vec![];
    if args.format == Format::Csv && !emit(&format!("{}\n", render::CSV_HEADER)) {
        return Ok(Status::Bad);
    }
    let mut matched = vec![false; args.progs.len()];
    let maps_doc: Option<serde_json::Value> = match &args.maps {
        None => None,
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .map_err(|e| CliError::usage(format!("{}: {e}", p.display())))?;
            Some(
                serde_json::from_str(&text)
                    .map_err(|e| CliError::usage(format!("{}: {e}", p.display())))?,
            )
        }
    };
    let target = match &args.kernel {
        Some(k) => Some(std::sync::Arc::new(super::probe::resolve_target(k)?)),
        None => None,
    };
    // map names of the maps file that no object has
    let mut unmatched_maps: Option<Vec<String>> = None;
    for file in &args.files {
        let shown = file.display().to_string();
        // An object that cannot be read is an error entry; the other files go on and
        // every output format stays complete.
        let read = std::fs::read(file)
            .map_err(|e| {
                // A file that cannot be read is an I/O error (exit status 2 at the end).
                io_error = true;
                format!("{shown}: {e}")
            })
            .and_then(|bytes| {
                let name = object_name_from_path(file);
                let mut obj =
                    Object::parse_named(&bytes, &name).map_err(|e| format!("{shown}: {e}"))?;
                args.object
                    .apply(&mut obj, &shown)
                    .map_err(|e| format!("{shown}: {}", e.message))?;
                let linked = obj.link().map_err(|e| format!("{shown}: {e}"))?;
                Ok((obj, linked))
            });
        let (obj, linked) = match read {
            Ok(x) => x,
            Err(message) => {
                all_ok = false;
                undecided_only = false;
                let printed = match args.format {
                    Format::Text => {
                        eprintln!("error: {message}");
                        true
                    }
                    Format::Csv => emit(&format!("{}\n", render::csv_error_row(&shown))),
                    Format::Json => {
                        json_out.push(serde_json::json!({"object": shown, "error": message}));
                        true
                    }
                    Format::Sarif => true,
                };
                errors.push((shown, message));
                if !printed {
                    return Ok(Status::Bad);
                }
                continue;
            }
        };
        for w in &obj.warnings {
            eprintln!("warning: {}: {w}", file.display());
        }
        let opts = Options {
            caps: if args.unprivileged {
                bpfkit_verifier::Caps::BPF_NET_ADMIN
            } else {
                args.caps.unwrap_or_default()
            },
            insn_limit: args.insn_limit,
            target: target.clone(),
            ..bpfkit_verifier::Options::for_object(&obj, &linked)
        };
        let mut reports = vec![];
        for prog in &linked.programs {
            if !args.progs.is_empty() {
                match args.progs.iter().position(|p| *p == prog.name) {
                    Some(k) => matched[k] = true,
                    None => continue,
                }
            }
            let rep = bpfkit_verifier::verify(prog, &linked.maps, &opts);
            match rep.verdict {
                Verdict::Accepted => {}
                Verdict::Unsupported { .. } => {
                    all_ok = false;
                    if args.format == Format::Csv {
                        eprintln!(
                            "note: {shown}: program `{}` is undecided; veristat's CSV has no such verdict, written as failure",
                            rep.program
                        );
                    }
                }
                Verdict::Rejected(_) => {
                    all_ok = false;
                    undecided_only = false;
                }
            }
            let printed = match args.format {
                Format::Text => emit(&render::text(prog, &rep, &shown, &insn_text)),
                Format::Csv => emit(&format!("{}\n", render::csv_row(prog, &rep, &shown))),
                Format::Json => {
                    json_out.push(render::json(prog, &rep, &shown));
                    true
                }
                Format::Sarif => {
                    sarif_items.push((shown.clone(), prog.clone(), rep.clone()));
                    true
                }
            };
            if !printed {
                return Ok(Status::Bad);
            }
            reports.push(rep);
        }
        let mut extra = vec![];
        if let (Some(doc), Some(p)) = (&maps_doc, &args.maps) {
            let (pa, missing) = bpfkit_verifier::tailcall::prog_arrays_from_json(&linked, doc)
                .map_err(|e| CliError::usage(format!("{}: {e}", p.display())))?;
            extra = pa;
            unmatched_maps = Some(match unmatched_maps {
                None => missing,
                Some(prev) => prev.into_iter().filter(|m| missing.contains(m)).collect(),
            });
        }
        // The tail-call limit is the same in every release on x86-64 (see
        // crates/target/data/features.tsv), so the lint needs no target.
        for lint in bpfkit_verifier::tailcall::lints_with(&linked, &reports, &extra) {
            if args.deny_tail_call_lints {
                all_ok = false;
                undecided_only = false;
            }
            let level = if args.deny_tail_call_lints {
                "error"
            } else {
                "warning"
            };
            match args.format {
                Format::Json => json_out
                    .push(serde_json::json!({"object": shown, "lint": lint, "level": level})),
                _ => crate::errln!("{level}: {shown}: {}", lint.message),
            }
        }
    }
    if let (Some(names), Some(p)) = (&unmatched_maps, &args.maps) {
        if let Some(n) = names.first() {
            return Err(CliError::usage(format!(
                "{}: no map named `{n}` in the given objects",
                p.display()
            )));
        }
    }
    if let Some(k) = matched.iter().position(|m| !m) {
        return Err(CliError::usage(format!(
            "no program named `{}` in the given objects",
            args.progs[k]
        )));
    }
    let doc = match args.format {
        Format::Json => Some(serde_json::to_string_pretty(&json_out).expect("json")),
        Format::Sarif => {
            let items: Vec<(&str, &LinkedProgram, &Report)> = sarif_items
                .iter()
                .map(|(o, p, r)| (o.as_str(), p, r))
                .collect();
            let errs: Vec<(&str, &str)> = errors
                .iter()
                .map(|(o, m)| (o.as_str(), m.as_str()))
                .collect();
            let opts = render::SarifOptions {
                tool_version: env!("CARGO_PKG_VERSION").to_string(),
                source_root: args.source_root.clone(),
                problems_only: args.sarif_problems_only,
            };
            Some(serde_json::to_string_pretty(&render::sarif(&items, &errs, &opts)).expect("json"))
        }
        _ => None,
    };
    if let Some(d) = doc {
        if !emit(&format!("{d}\n")) {
            return Ok(Status::Bad);
        }
    }
    Ok(if io_error {
        Status::Usage
    } else if all_ok || (args.allow_undecided && undecided_only) {
        Status::Ok
    } else {
        Status::Bad
    })
}
