//! `bpfkit status [IFACE]`: the XDP programs attached to network interfaces, as
//! `xdp-loader status` shows them.

use bpfkit_loader::pin::{self, ObjKind};
use bpfkit_loader::Program;

use super::load::loader_error;
use crate::{CliError, CliResult, Status};

const AFTER_HELP: &str = "\
Examples:
  bpfkit status
  bpfkit status veth0 --json

One line per interface: its name, ifindex, the attach mode (native, skb, hw, or multi
when several modes hold programs) and the program's id, name and tag; `<no XDP program>`
when none is attached. Like `xdp-loader status`.

Exit status: 0 shown; 2 usage or I/O error (no such interface, permission).";

#[derive(clap::Args)]
#[command(after_help = AFTER_HELP)]
pub struct Args {
    /// Only this interface (default: every interface).
    pub iface: Option<String>,
    /// JSON output.
    #[arg(long)]
    pub json: bool,
}

/// The mode word of `IFLA_XDP_ATTACHED`.
fn mode_word(m: u8) -> &'static str {
    match m {
        1 => "native",
        2 => "skb",
        3 => "hw",
        4 => "multi",
        _ => "",
    }
}

/// The interfaces of this network namespace (`/proc/self/net/dev`, which follows the
/// namespace, unlike /sys/class/net, which follows the sysfs mount), by ifindex.
fn interfaces() -> Result<Vec<String>, CliError> {
    let text = std::fs::read_to_string("/proc/self/net/dev")
        .map_err(|e| CliError::usage(format!("/proc/self/net/dev: {e}")))?;
    let mut v: Vec<(u32, String)> = Vec::new();
    for line in text.lines().skip(2) {
        let Some((name, _)) = line.split_once(':') else {
            continue;
        };
        let name = name.trim().to_string();
        if let Ok(i) = bpfkit_loader::attach::ifindex(&name) {
            v.push((i, name));
        }
    }
    v.sort();
    Ok(v.into_iter().map(|(_, n)| n).collect())
}

pub fn run(a: Args) -> CliResult {
    let names = match &a.iface {
        Some(n) => vec![n.clone()],
        None => interfaces()?,
    };
    let mut rows = Vec::new();
    for name in names {
        let ifindex =
            bpfkit_loader::attach::ifindex(&name).map_err(|e| CliError::usage(e.to_string()))?;
        let (mode, id) = bpfkit_loader::netlink::query_xdp(ifindex).map_err(|e| {
            let mut e = loader_error(e);
            e.status = Status::Usage;
            e
        })?;
        let mut row = serde_json::json!({"ifname": name, "ifindex": ifindex});
        if id != 0 {
            row["mode"] = serde_json::json!(mode_word(mode));
            row["id"] = serde_json::json!(id);
            if let Some(info) = pin::fd_by_id(ObjKind::Prog, id)
                .ok()
                .and_then(|fd| Program::from_fd(fd, "", 0, String::new()).info().ok())
            {
                row["name"] = serde_json::json!(info.name);
                row["tag"] = serde_json::json!(info
                    .tag
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect::<String>());
            }
        }
        rows.push(row);
    }
    if a.json {
        crate::outln!("{}", serde_json::to_string(&rows).expect("json"));
        return Ok(Status::Ok);
    }
    crate::outln!(
        "{:<16} {:>7} {:<8} {:>6} {:<16} TAG",
        "INTERFACE",
        "IFINDEX",
        "MODE",
        "ID",
        "NAME"
    );
    for r in &rows {
        let s = |k: &str| r[k].as_str().unwrap_or("").to_string();
        if r["id"].is_null() {
            crate::outln!("{:<16} {:>7} <no XDP program>", s("ifname"), r["ifindex"]);
        } else {
            crate::outln!(
                "{:<16} {:>7} {:<8} {:>6} {:<16} {}",
                s("ifname"),
                r["ifindex"],
                s("mode"),
                r["id"],
                s("name"),
                s("tag")
            );
        }
    }
    Ok(Status::Ok)
}
