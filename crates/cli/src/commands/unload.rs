//! `bpfkit unload IFACE`: xdp-loader's word for `bpfkit detach --iface IFACE`.

use crate::CliResult;

const AFTER_HELP: &str = "\
Examples:
  bpfkit unload veth0
  bpfkit unload veth0 --all

Removes every XDP program from the interface (links and netlink attachments, in every
mode), like `xdp-loader unload IFACE --all`; the same as `bpfkit detach --iface IFACE`.

Exit status: 0 detached (or nothing was attached); 2 usage or I/O error (no such
interface, permission).";

#[derive(clap::Args)]
#[command(after_help = AFTER_HELP)]
pub struct Args {
    /// Network interface.
    pub iface: String,
    /// Every program (accepted for xdp-loader's habit; bpfkit always removes them all).
    #[arg(short = 'a', long)]
    pub all: bool,
}

pub fn run(a: Args) -> CliResult {
    super::detach::run(super::detach::Args { iface: a.iface })
}
