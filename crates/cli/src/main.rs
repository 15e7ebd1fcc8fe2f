//! The `bpfkit` command line. One file per subcommand under `commands/`.
//!
//! Exit status, for every subcommand: 0 success, 1 the input was judged bad (rejected
//! program, malformed file, runtime fault), 2 usage or I/O error.

use clap::{Parser, Subcommand};
use std::process::ExitCode;

mod commands;

#[derive(Parser)]
#[command(name = "bpfkit", version, about = "A pure-Rust eBPF toolchain for XDP programs")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    // Each helper adds its variant here: `Name(commands::name::Args)`.
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
        CliError { status: Status::Bad, message: message.into() }
    }
    pub fn usage(message: impl Into<String>) -> Self {
        CliError { status: Status::Usage, message: message.into() }
    }
}

pub type CliResult = Result<Status, CliError>;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result: CliResult = match cli.command {};
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
