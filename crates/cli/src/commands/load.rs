//! `bpfkit load`: put an object's maps and programs into the running kernel.

use std::path::PathBuf;

use bpfkit_loader::object_load::{LoadOptions, LoadedObject};

use crate::{CliError, CliResult, Status};

const AFTER_HELP: &str = "\
Examples:
  bpfkit load corpus/obj/xdp_firewall.o                          # check the kernel accepts it
  bpfkit load corpus/obj/xdp_firewall.o --pin-dir /sys/fs/bpf/fw  # keep it: pins progs and maps
  bpfkit load --json corpus/obj/xdp_counter.o
  bpfkit load --caps bpf,net_admin x.o    # as a loader with only CAP_BPF + CAP_NET_ADMIN

Loads the object as libbpf does: BTF (sanitised for the running kernel), maps with their
BTF types, global data with initial values (.rodata frozen), PROG_ARRAYs and map-in-maps
filled from .values, programs with func and line info. With --pin-dir every program is
pinned at DIR/<program> and every map at DIR/<map> (`.` becomes `_`, as bpffs wants;
LIBBPF_PIN_BY_NAME maps found there are reused); without it everything is released when bpfkit exits. A rejected program
prints the kernel's errno and verifier log with the C source line of the failing
instruction; nothing is left behind (no maps, no pins).

Needs CAP_BPF and CAP_NET_ADMIN (or CAP_SYS_ADMIN, e.g. root); without CAP_PERFMON the
kernel applies its Spectre v1 rules (see `bpfkit verify --caps`). --caps SET loads as a
loader that has only those capabilities (same sets as `bpfkit verify --caps`): the load
runs on a thread that lowers its own capabilities to SET first, so the kernel applies
exactly that loader's rules; compare with `bpfkit verify --caps SET`. With --caps, a
refusal for lack of a capability (EPERM) is exit status 1.

Exit status: 0 loaded; 1 the kernel rejected the object or it is malformed; 2 usage or
I/O error (no permission, no bpffs, missing file).";

#[derive(clap::Args)]
#[command(after_help = AFTER_HELP)]
pub struct Args {
    /// eBPF ELF object.
    pub file: PathBuf,
    /// Pin programs and maps in this directory (on bpffs, e.g. under /sys/fs/bpf).
    #[arg(long, value_name = "DIR")]
    pub pin_dir: Option<PathBuf>,
    /// JSON output.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub object: super::ObjectArgs,
    /// Load as a loader with only these capabilities (`root`, `none`, or a list of
    /// `bpf`, `perfmon`, `net_admin`, `sys_admin`); this process must have them.
    #[arg(long, value_name = "SET", value_parser = super::verify::parse_caps)]
    pub caps: Option<bpfkit_verifier::Caps>,
}

/// Exit status for a loader error: environment problems are usage errors (2), a
/// rejection or malformed input is "bad" (1).
pub fn loader_error(e: bpfkit_loader::Error) -> CliError {
    match &e {
        bpfkit_loader::Error::Rejected { .. } | bpfkit_loader::Error::Invalid(_) => {
            CliError::bad(e.to_string())
        }
        bpfkit_loader::Error::Sys { .. } => match e.errno() {
            Some(libc::EINVAL) | Some(libc::E2BIG) => CliError::bad(e.to_string()),
            _ => CliError::usage(e.to_string()),
        },
    }
}

pub fn load_object(
    file: &std::path::Path,
    pin_dir: Option<&std::path::Path>,
    object: &super::ObjectArgs,
) -> Result<LoadedObject, CliError> {
    if !file.exists() {
        return Err(CliError::usage(format!("{}: no such file", file.display())));
    }
    // The directories this call creates, deepest first: removed again (when still empty)
    // if the load fails, so a failed load leaves nothing behind.
    let mut created = Vec::new();
    if let Some(d) = pin_dir {
        let mut p = Some(d);
        while let Some(q) = p.filter(|q| !q.as_os_str().is_empty() && !q.exists()) {
            created.push(q.to_path_buf());
            p = q.parent();
        }
        std::fs::create_dir_all(d)
            .map_err(|e| CliError::usage(format!("cannot create {}: {e}", d.display())))?;
    }
    let cleanup = |e: CliError| {
        for c in &created {
            let _ = std::fs::remove_dir(c);
        }
        e
    };
    let opts = LoadOptions {
        pin_root: pin_dir.map(|d| d.to_path_buf()),
        ..Default::default()
    };
    let mut obj = if object.is_empty() {
        LoadedObject::open(file, &opts)
            .map_err(loader_error)
            .map_err(cleanup)?
    } else {
        let shown = file.display().to_string();
        let bytes = std::fs::read(file)
            .map_err(|e| CliError::usage(format!("{shown}: {e}")))
            .map_err(cleanup)?;
        let mut o =
            bpfkit_object::Object::parse_named(&bytes, &bpfkit_object::object_name_from_path(file))
                .map_err(|e| CliError::bad(format!("{shown}: {e}")))
                .map_err(cleanup)?;
        object.apply(&mut o, &shown).map_err(cleanup)?;
        LoadedObject::load(&o, &opts)
            .map_err(loader_error)
            .map_err(cleanup)?
    };
    if let Some(d) = pin_dir {
        if let Err(e) = obj.pin_all(d) {
            obj.unpin_all();
            return Err(cleanup(CliError::usage(e.to_string())));
        }
    }
    Ok(obj)
}

pub fn run(a: Args) -> CliResult {
    let Some(caps) = a.caps else {
        return run_loaded(a);
    };
    if caps.mitigations_off != bpfkit_loader::caps::mitigations_off() {
        return Err(CliError::usage(format!(
            "--caps {caps}: this kernel runs with mitigations {}; a loader cannot change that (it is a boot option)",
            if caps.mitigations_off { "on" } else { "off" }
        )));
    }
    let r = bpfkit_loader::caps::with_caps(caps, move || run_loaded(a))
        .map_err(|e| CliError::usage(format!("--caps {caps}: {e}")))?;
    r.map_err(|e| {
        if e.message.contains("Operation not permitted") {
            CliError::bad(format!("{} (loader capabilities: {caps})", e.message))
        } else {
            e
        }
    })
}

fn run_loaded(a: Args) -> CliResult {
    let obj = load_object(&a.file, a.pin_dir.as_deref(), &a.object)?;
    let mut progs = Vec::new();
    for p in &obj.programs {
        let info = p.program.info().map_err(loader_error)?;
        progs.push(serde_json::json!({
            "name": p.linked.name,
            "id": info.id,
            "tag": info.tag.iter().map(|b| format!("{b:02x}")).collect::<String>(),
            "verified_insns": info.verified_insns,
            "func_info": p.func_info,
            "line_info": p.line_info,
            "pinned": a.pin_dir.as_ref().map(|d| d.join(bpfkit_loader::pin::pin_name(&p.linked.name))),
        }));
    }
    let mut maps = Vec::new();
    for m in &obj.maps {
        let info = m.map.info().map_err(loader_error)?;
        maps.push(serde_json::json!({
            "name": m.def.name,
            "id": info.id,
            "type": bpfkit_object::model::map_type::name(info.map_type),
            "btf": m.with_btf,
            "reused": m.reused,
            "pinned": m.pinned,
        }));
    }
    if a.json {
        let v = serde_json::json!({
            "object": obj.name,
            "btf_loaded": obj.btf.is_some(),
            "btf_sanitized_types": obj.btf_sanitized,
            "programs": progs,
            "maps": maps,
        });
        crate::outln!("{}", serde_json::to_string_pretty(&v).expect("json"));
    } else {
        crate::outln!(
            "loaded {} ({} programs, {} maps, BTF {})",
            a.file.display(),
            progs.len(),
            maps.len(),
            match (&obj.btf, &obj.btf_error) {
                (Some(_), _) => "loaded".to_string(),
                (None, Some(e)) => format!("not loaded: {e}"),
                (None, None) => "absent".to_string(),
            }
        );
        for p in &progs {
            crate::outln!(
                "  prog {} id {} tag {} ({} insns verified){}",
                p["name"].as_str().unwrap_or(""),
                p["id"],
                p["tag"].as_str().unwrap_or(""),
                p["verified_insns"],
                p["pinned"]
                    .as_str()
                    .map(|s| format!(" pinned {s}"))
                    .unwrap_or_default()
            );
        }
        for m in &maps {
            crate::outln!(
                "  map {} id {} {}{}{}",
                m["name"].as_str().unwrap_or(""),
                m["id"],
                m["type"].as_str().unwrap_or("?"),
                if m["reused"] == true {
                    " (reused pin)"
                } else {
                    ""
                },
                m["pinned"]
                    .as_str()
                    .map(|s| format!(" pinned {s}"))
                    .unwrap_or_default()
            );
        }
        if a.pin_dir.is_none() {
            crate::outln!("(not pinned: released when bpfkit exits; use --pin-dir to keep it)");
        }
    }
    Ok(Status::Ok)
}
