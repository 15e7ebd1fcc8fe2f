//! `bpfkit verify`.

use crate::{CliError, CliResult};

#[derive(clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> CliResult {
    Err(CliError::usage("`bpfkit verify` is not implemented yet"))
}
