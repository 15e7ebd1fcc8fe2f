//! `bpfkit prog list`: the programs loaded in the kernel.

use bpfkit_loader::pin::{self, ObjKind};
use bpfkit_loader::Program;

use super::load::loader_error;
use crate::{CliResult, Status};

const AFTER_HELP: &str = "\
Examples:
  bpfkit prog list
  bpfkit prog list --json | jq '.[] | select(.type == \"xdp\")'

Lists every program the kernel has (BPF_PROG_GET_NEXT_ID), with the fields of
`bpftool prog list`; --json is shaped like `bpftool -j prog list`: id, type, name, tag,
gpl_compatible, loaded_at (seconds since the epoch), uid, bytes_xlated, jited,
bytes_jited, bytes_memlock, map_ids, btf_id (when loaded with BTF), verified_insns.

Exit status: 0 listed; 2 usage or I/O error (permission: run as root).";

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Action {
    List,
}

#[derive(clap::Args)]
#[command(after_help = AFTER_HELP)]
pub struct Args {
    #[arg(value_enum)]
    pub action: Action,
    /// JSON output (like bpftool -j).
    #[arg(long)]
    pub json: bool,
}

/// bpftool's name for a program type (`type N` for types newer than the table).
pub fn prog_type_name(t: u32) -> String {
    bpfkit_object::secdef::known_prog_type_name(t)
        .map(str::to_string)
        .unwrap_or_else(|| format!("type {t}"))
}

/// `loaded_at` as bpftool -j gives it: seconds since the epoch (the load time is
/// nanoseconds since boot; boot time = realtime clock - boottime clock).
fn loaded_at(load_time_ns: u64) -> u64 {
    let clock = |id| {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: clock_gettime writes one timespec to a valid pointer.
        unsafe { libc::clock_gettime(id, &mut ts) };
        ts.tv_sec as i128 * 1_000_000_000 + ts.tv_nsec as i128
    };
    let boot_ns = clock(libc::CLOCK_REALTIME) - clock(libc::CLOCK_BOOTTIME);
    ((boot_ns + load_time_ns as i128) / 1_000_000_000).max(0) as u64
}

pub fn run(a: Args) -> CliResult {
    let Action::List = a.action;
    let mut out = Vec::new();
    let mut e_usage = |e| {
        let mut e = loader_error(e);
        e.status = Status::Usage;
        e
    };
    for id in pin::list_ids(ObjKind::Prog).map_err(&mut e_usage)? {
        // A program may go away between listing and opening it.
        let Ok(fd) = pin::fd_by_id(ObjKind::Prog, id) else {
            continue;
        };
        let p = Program::from_fd(fd, "", 0, String::new());
        let Ok(info) = p.info() else { continue };
        let mut j = serde_json::json!({
            "id": info.id,
            "type": prog_type_name(info.prog_type),
            "name": info.name,
            "tag": info.tag.iter().map(|b| format!("{b:02x}")).collect::<String>(),
            "gpl_compatible": info.gpl_compatible,
            "loaded_at": loaded_at(info.load_time_ns),
            "uid": info.created_by_uid,
            "bytes_xlated": info.xlated_prog_len,
            "jited": info.jited_prog_len > 0,
            "bytes_jited": info.jited_prog_len,
            "nr_map_ids": info.nr_map_ids,
            "verified_insns": info.verified_insns,
        });
        if let Some(m) = p.bytes_memlock() {
            j["bytes_memlock"] = serde_json::json!(m);
        }
        if let Ok(ids) = p.map_ids() {
            if !ids.is_empty() {
                j["map_ids"] = serde_json::json!(ids);
            }
        }
        if info.btf_id != 0 {
            j["btf_id"] = serde_json::json!(info.btf_id);
        }
        out.push(j);
    }
    if a.json {
        crate::outln!("{}", serde_json::to_string(&out).expect("json"));
    } else {
        for p in &out {
            crate::outln!(
                "{}: {}  name {}  tag {}{}\n\tloaded_at {}  uid {}\n\txlated {}B  jited {}B  memlock {}B{}{}  verified_insns {}",
                p["id"],
                p["type"].as_str().unwrap_or(""),
                p["name"].as_str().unwrap_or(""),
                p["tag"].as_str().unwrap_or(""),
                if p["gpl_compatible"] == true {
                    "  gpl"
                } else {
                    ""
                },
                p["loaded_at"],
                p["uid"],
                p["bytes_xlated"],
                p["bytes_jited"],
                p["bytes_memlock"].as_u64().map_or("?".to_string(), |m| m.to_string()),
                match p["map_ids"].as_array() {
                    Some(ids) => format!(
                        "  map_ids {}",
                        ids.iter().map(|i| i.to_string()).collect::<Vec<_>>().join(",")
                    ),
                    None => String::new(),
                },
                if p["btf_id"].is_null() {
                    String::new()
                } else {
                    format!("  btf_id {}", p["btf_id"])
                },
                p["verified_insns"]
            );
        }
    }
    Ok(Status::Ok)
}
