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
`bpftool prog list`; --json is shaped like `bpftool -j prog list`.

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
        out.push(serde_json::json!({
            "id": info.id,
            "type": prog_type_name(info.prog_type),
            "name": info.name,
            "tag": info.tag.iter().map(|b| format!("{b:02x}")).collect::<String>(),
            "gpl_compatible": info.gpl_compatible,
            "bytes_xlated": info.xlated_prog_len,
            "jited": info.jited_prog_len > 0,
            "bytes_jited": info.jited_prog_len,
            "nr_map_ids": info.nr_map_ids,
            "verified_insns": info.verified_insns,
        }));
    }
    if a.json {
        crate::outln!("{}", serde_json::to_string(&out).expect("json"));
    } else {
        for p in &out {
            crate::outln!(
                "{}: {}  name {}  tag {}{}\n\txlated {}B  jited {}B  maps {}  verified_insns {}",
                p["id"],
                p["type"].as_str().unwrap_or(""),
                p["name"].as_str().unwrap_or(""),
                p["tag"].as_str().unwrap_or(""),
                if p["gpl_compatible"] == true {
                    "  gpl"
                } else {
                    ""
                },
                p["bytes_xlated"],
                p["bytes_jited"],
                p["nr_map_ids"],
                p["verified_insns"]
            );
        }
    }
    Ok(Status::Ok)
}
