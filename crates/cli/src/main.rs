//! The `bpfkit` command line. One file per subcommand under `commands/`.
//!
//! Exit status, for every subcommand: 0 success, 1 the input was judged bad (rejected
//! program, malformed file, runtime fault), 2 usage or I/O error.

use clap::{Parser, Subcommand};
use std::process::ExitCode;

mod commands;

#[derive(Parser)]
#[command(
    name = "bpfkit",
    version,
    about = "A pure-Rust eBPF toolchain for XDP programs"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Disassemble eBPF instructions (raw .bin or ELF .o).
    Disasm(commands::disasm::Args),
    /// Assemble eBPF assembler text into raw instruction bytes.
    Asm(commands::asm::Args),
    /// Show the programs, maps, relocations and BTF of an ELF object.
    Inspect(commands::inspect::Args),
    /// Run a program on given memory or a packet.
    Run(commands::run::Args),
    /// Statically verify programs as the Linux verifier would.
    Verify(commands::verify::Args),
    /// Replay a pcap/pcapng capture through an XDP program (interp, jit or kernel).
    Replay(commands::replay::Args),
    /// Load an object's maps and programs into the running kernel.
    Load(commands::load::Args),
    /// Load an object and attach an XDP program to a network interface.
    Attach(commands::attach::Args),
    /// Detach XDP programs from a network interface.
    Detach(commands::detach::Args),
    /// List the programs loaded in the kernel.
    Prog(commands::prog::Args),
    /// Dump, look up, update or delete entries of a kernel map.
    Map(commands::map::Args),
    /// Probe what the running kernel offers XDP programs (a probe file for --kernel).
    Probe(commands::probe::Args),
}

/// Exit status of a subcommand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// 0: success.
    Ok,
    /// 1: the input was judged bad.
    Bad,
    /// 2: usage or I/O error.
    Usage,
}

/// An error a subcommand reports: the message and the exit status it maps to.
#[derive(Debug)]
pub struct CliError {
    pub status: Status,
    pub message: String,
}

impl CliError {
    pub fn bad(message: impl Into<String>) -> Self {
        CliError {
            status: Status::Bad,
            message: message.into(),
        }
    }
    pub fn usage(message: impl Into<String>) -> Self {
        CliError {
            status: Status::Usage,
            message: message.into(),
        }
    }
}

pub type CliResult = Result<Status, CliError>;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result: CliResult = match cli.command {
        Command::Disasm(a) => commands::disasm::run(a),
        Command::Asm(a) => commands::asm::run(a),
        Command::Inspect(a) => commands::inspect::run(a),
        Command::Run(a) => commands::run::run(a),
        Command::Verify(a) => commands::verify::run(a),
        Command::Replay(a) => commands::replay::run(a),
        Command::Load(a) => commands::load::run(a),
        Command::Attach(a) => commands::attach::run(a),
        Command::Detach(a) => commands::detach::run(a),
        Command::Prog(a) => commands::prog::run(a),
        Command::Map(a) => commands::map::run(a),
        Command::Probe(a) => commands::probe::run(a),
    };
    match result {
        Ok(s) => code(s),
        Err(e) => {
            eprintln!("error: {}", e.message);
            code(e.status)
        }
    }
}

fn code(s: Status) -> ExitCode {
    match s {
        Status::Ok => ExitCode::SUCCESS,
        Status::Bad => ExitCode::from(1),
        Status::Usage => ExitCode::from(2),
    }
}
