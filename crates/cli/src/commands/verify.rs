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
  bpfkit verify --format sarif build/*.o > verify.sarif      # for code-scanning upload
  bpfkit verify --format csv x.o                             # veristat's columns

Decides, by abstract interpretation like the kernel's, whether the Linux 6.18 verifier
would accept each program (as loaded by root with CAP_BPF and CAP_PERFMON; see
--unprivileged). Rejections name the instruction, the kernel's own wording, the C source
line, the register state and the branch decisions that led there, plus a hint. A program
using something bpfkit does not model yet is reported as undecided, never as accepted.
See docs/verifier.md for what is checked.

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
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Only these programs (by function name); may be repeated.
    #[arg(long = "prog", value_name = "NAME")]
    pub progs: Vec<String>,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
    /// Apply the rules for a loader without CAP_BPF/CAP_PERFMON (no pointer leaks, no
    /// uninitialised stack reads).
    #[arg(long)]
    pub unprivileged: bool,
    /// Processed-instruction budget (the kernel's is 1000000).
    #[arg(long, default_value_t = bpfkit_verifier::BPF_COMPLEXITY_LIMIT_INSNS)]
    pub insn_limit: u64,
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

pub fn run(args: Args) -> CliResult {
    let mut all_ok = true;
    let mut json_out = vec![];
    let mut sarif_items: Vec<(String, LinkedProgram, Report)> = vec![];
    if args.format == Format::Csv {
        println!("{}", render::CSV_HEADER);
    }
    let mut matched = vec![false; args.progs.len()];
    for file in &args.files {
        let bytes =
            std::fs::read(file).map_err(|e| CliError::usage(format!("{}: {e}", file.display())))?;
        let name = object_name_from_path(file);
        let obj = Object::parse_named(&bytes, &name)
            .map_err(|e| CliError::bad(format!("{}: {e}", file.display())))?;
        let linked = obj
            .link()
            .map_err(|e| CliError::bad(format!("{}: {e}", file.display())))?;
        let opts = Options {
            unprivileged: args.unprivileged,
            insn_limit: args.insn_limit,
            gpl_compatible: bpfkit_verifier::license_is_gpl_compatible(&linked.license),
        };
        let shown = file.display().to_string();
        for prog in &linked.programs {
            if !args.progs.is_empty() {
                match args.progs.iter().position(|p| *p == prog.name) {
                    Some(k) => matched[k] = true,
                    None => continue,
                }
            }
            let rep = bpfkit_verifier::verify(prog, &linked.maps, &opts);
            if !matches!(rep.verdict, Verdict::Accepted) {
                all_ok = false;
            }
            match args.format {
                Format::Text => print!("{}", render::text(prog, &rep, &shown, &insn_text)),
                Format::Json => json_out.push(render::json(prog, &rep, &shown)),
                Format::Csv => println!("{}", render::csv_row(&rep, &shown)),
                Format::Sarif => sarif_items.push((shown.clone(), prog.clone(), rep)),
            }
        }
    }
    if let Some(k) = matched.iter().position(|m| !m) {
        return Err(CliError::usage(format!(
            "no program named `{}` in the given objects",
            args.progs[k]
        )));
    }
    match args.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&json_out).expect("json")),
        Format::Sarif => {
            let items: Vec<(&str, &LinkedProgram, &Report)> = sarif_items
                .iter()
                .map(|(o, p, r)| (o.as_str(), p, r))
                .collect();
            println!(
                "{}",
                serde_json::to_string_pretty(&render::sarif(&items)).expect("json")
            );
        }
        _ => {}
    }
    Ok(if all_ok { Status::Ok } else { Status::Bad })
}
