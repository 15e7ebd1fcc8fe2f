//! `bpfkit attach`: load an object and attach one of its XDP programs to an interface.

use std::path::PathBuf;

use bpfkit_loader::attach::{self, AttachMethod, XdpMode};

use super::load::{load_object, loader_error};
use crate::{CliError, CliResult, Status};

const AFTER_HELP: &str = "\
Examples:
  bpfkit attach corpus/obj/xdp_firewall.o --prog xdp_firewall --iface veth0
  bpfkit attach fw.o --prog xdp_firewall --iface veth0 -m skb --pin-dir /sys/fs/bpf/fw
  bpfkit attach fw.o --prog xdp_firewall --iface eth0 --replace

With --pin-dir the program is attached through a BPF link (BPF_LINK_CREATE) pinned at
DIR/link, next to the pinned programs and maps; removing the link pin (or `bpfkit
detach`) detaches it. Without --pin-dir it is attached through netlink (IFLA_XDP), as
`ip link set dev IF xdp` does, and stays attached after bpfkit exits. An interface that
already has an XDP program is refused unless --replace is given. -m/--mode takes
xdp-loader's words: native (the default, as xdp-loader's: the driver runs the program;
`drv` is accepted too), skb (generic XDP, any interface) or hw (offloaded to the NIC).
`bpfkit status` shows what is attached, `bpfkit unload IFACE` removes it.

Needs root (CAP_BPF, CAP_NET_ADMIN).

Exit status: 0 attached; 1 the kernel rejected the object or it is malformed, or the
interface already has a program; 2 usage or I/O error (no such interface, permission).";

/// xdp-loader's attach modes.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// Native XDP in the driver (xdp-loader's default).
    #[value(alias = "drv")]
    Native,
    /// Generic XDP (any interface).
    Skb,
    /// Offloaded to the NIC.
    Hw,
}

impl Mode {
    pub fn word(self) -> &'static str {
        match self {
            Mode::Native => "native",
            Mode::Skb => "skb",
            Mode::Hw => "hw",
        }
    }
}

#[derive(clap::Args)]
#[command(after_help = AFTER_HELP)]
pub struct Args {
    /// eBPF ELF object.
    pub file: PathBuf,
    /// Program (function name) to attach.
    #[arg(long, value_name = "NAME")]
    pub prog: String,
    /// Network interface.
    #[arg(long, value_name = "IF")]
    pub iface: String,
    /// Attach mode, as xdp-loader: native, skb or hw.
    #[arg(short = 'm', long, value_enum, default_value = "native")]
    pub mode: Mode,
    /// Pin programs, maps and the link here (bpffs).
    #[arg(long, value_name = "DIR")]
    pub pin_dir: Option<PathBuf>,
    #[command(flatten)]
    pub object: super::ObjectArgs,
    /// Replace a program already attached to the interface.
    #[arg(long)]
    pub replace: bool,
}

pub fn run(a: Args) -> CliResult {
    let ifindex = attach::ifindex(&a.iface).map_err(|e| CliError::usage(e.to_string()))?;
    let mut obj = load_object(&a.file, a.pin_dir.as_deref(), &a.object)?;
    let result = (|| {
        let p = obj.program(&a.prog).ok_or_else(|| {
            CliError::usage(format!(
                "{}: no program named `{}` (programs: {})",
                a.file.display(),
                a.prog,
                obj.programs
                    .iter()
                    .map(|p| p.linked.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })?;
        if p.linked.prog_type != bpfkit_object::model::prog_type::XDP {
            return Err(CliError::usage(format!(
                "program `{}` is not an XDP program",
                a.prog
            )));
        }
        let mode = match a.mode {
            Mode::Skb => XdpMode::Skb,
            Mode::Native => XdpMode::Drv,
            Mode::Hw => XdpMode::Hw,
        };
        let method = if a.pin_dir.is_some() {
            AttachMethod::Link
        } else {
            AttachMethod::Netlink
        };
        use std::os::fd::AsFd;
        let mut att = attach::attach_xdp(p.program.as_fd(), ifindex, mode, method, a.replace)
            .map_err(loader_error)?;
        let how = match &a.pin_dir {
            Some(d) => {
                let path = d.join("link");
                att.pin(&path).map_err(|e| CliError::usage(e.to_string()))?;
                format!(
                    "link id {} pinned at {}",
                    att.link_id().unwrap_or(0),
                    path.display()
                )
            }
            None => {
                att.keep();
                "netlink".to_string()
            }
        };
        let id = p.program.info().map(|i| i.id).unwrap_or(0);
        crate::outln!(
            "attached {} (prog id {id}) to {} (ifindex {ifindex}) in {} mode via {how}",
            a.prog,
            a.iface,
            a.mode.word()
        );
        Ok(())
    })();
    if result.is_err() {
        obj.unpin_all();
        if let Some(d) = &a.pin_dir {
            let _ = std::fs::remove_dir(d);
        }
    }
    result.map(|_| Status::Ok)
}
