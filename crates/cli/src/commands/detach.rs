//! `bpfkit detach`: remove every XDP program from an interface.

use super::load::loader_error;
use crate::{CliError, CliResult, Status};

const AFTER_HELP: &str = "\
Examples:
  bpfkit detach --iface veth0

Detaches XDP links on the interface (BPF_LINK_DETACH; a link's pin stays, attached to
nothing, until you remove it) and netlink-attached programs in both skb and drv mode.

Exit status: 0 detached (or nothing was attached); 2 usage or I/O error (no such
interface, permission).";

#[derive(clap::Args)]
#[command(after_help = AFTER_HELP)]
pub struct Args {
    /// Network interface.
    #[arg(long, value_name = "IF")]
    pub iface: String,
}

pub fn run(a: Args) -> CliResult {
    let ifindex =
        bpfkit_loader::attach::ifindex(&a.iface).map_err(|e| CliError::usage(e.to_string()))?;
    let d = bpfkit_loader::attach::detach_all(ifindex).map_err(|e| {
        let mut e = loader_error(e);
        e.status = Status::Usage;
        e
    })?;
    if d.prog_id == 0 && d.links.is_empty() {
        crate::outln!("{}: no XDP program was attached", a.iface);
    } else {
        crate::outln!(
            "{}: detached prog id {}{}",
            a.iface,
            d.prog_id,
            if d.links.is_empty() {
                String::new()
            } else {
                format!(" (links {:?})", d.links)
            }
        );
    }
    Ok(Status::Ok)
}
