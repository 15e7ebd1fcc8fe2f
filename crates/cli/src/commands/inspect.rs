//! `bpfkit inspect`: what an eBPF ELF object contains, read the way libbpf reads it.

use std::fmt::Write as _;
use std::path::PathBuf;

use bpfkit_object::btf_ext::core_relo_kind_name;
use bpfkit_object::model::{map_type, MapDef, MapInit, MapOrigin};
use bpfkit_object::secdef::prog_type_name;
use bpfkit_object::{object_name_from_path, Object, SectionKind};
use serde_json::{json, Value};

use crate::{CliError, CliResult, Status};

const AFTER_HELP: &str = "\
Examples:
  bpfkit inspect corpus/obj/xdp_tailcall.o
  bpfkit inspect --json corpus/obj/xdp_counter.o | jq '.maps[].name'
  bpfkit inspect --btf corpus/obj/xdp_calls.o        # every BTF type, as bpftool prints it
  bpfkit inspect --all-relocations x.o               # also .rel.BTF, .rel.debug_* entries

Global-data maps are named as libbpf names them: the object name (the file name up to
its first '.') truncated to 8 characters, then the section name (`xdp_coun.rodata`);
sections like `.data.foo` keep their own name.

Exit status: 0 the object was read and linked; 1 the object is malformed or cannot be
linked (the message names the section, offset and field); 2 usage or I/O error.";

#[derive(clap::Args)]
#[command(after_help = AFTER_HELP)]
pub struct Args {
    /// The eBPF ELF object (`clang -target bpf -c` output).
    pub file: PathBuf,
    /// Print JSON (shaped like `bpftool -j` output where there is an equivalent).
    #[arg(long)]
    pub json: bool,
    /// Also print every BTF type (bpftool `btf dump` format).
    #[arg(long)]
    pub btf: bool,
    /// List relocations of every section (DWARF, .BTF, .BTF.ext too), not only those of
    /// program sections and `.maps`.
    #[arg(long)]
    pub all_relocations: bool,
}

fn map_type_short(t: u32) -> String {
    map_type::name(t)
        .map(|n| n.trim_start_matches("BPF_MAP_TYPE_").to_ascii_lowercase())
        .unwrap_or_else(|| format!("type {t}"))
}

fn origin_name(o: MapOrigin) -> &'static str {
    match o {
        MapOrigin::Btf => "btf",
        MapOrigin::Legacy => "legacy",
        MapOrigin::GlobalData => "global_data",
    }
}

fn kind_name(k: SectionKind) -> &'static str {
    match k {
        SectionKind::Null => "null",
        SectionKind::Program => "program",
        SectionKind::Text => "text",
        SectionKind::Maps => "btf_maps",
        SectionKind::LegacyMaps => "legacy_maps",
        SectionKind::Data => "data",
        SectionKind::Rodata => "rodata",
        SectionKind::Bss => "bss",
        SectionKind::License => "license",
        SectionKind::Version => "version",
        SectionKind::Btf => "btf",
        SectionKind::BtfExt => "btf_ext",
        SectionKind::Symtab => "symtab",
        SectionKind::Strtab => "strtab",
        SectionKind::Reloc => "relocations",
        SectionKind::Other => "other",
    }
}

fn init_json(init: &MapInit) -> Value {
    match init {
        MapInit::None => Value::Null,
        MapInit::Data(d) => json!({ "data_len": d.len() }),
        MapInit::Programs(v) => json!(v
            .iter()
            .map(|(s, n)| json!({"slot": s, "program": n}))
            .collect::<Vec<_>>()),
        MapInit::Maps(v) => json!(v
            .iter()
            .map(|(s, n)| json!({"slot": s, "map": n}))
            .collect::<Vec<_>>()),
    }
}

fn map_json(m: &MapDef) -> Value {
    json!({
        "name": m.name,
        "real_name": m.real_name(),
        "type": map_type_short(m.map_type),
        "type_id": m.map_type,
        "kernel_type": map_type::name(m.map_type),
        "key_size": m.key_size,
        "value_size": m.value_size,
        "max_entries": m.max_entries,
        "flags": m.map_flags,
        "pinning": if m.pinning == 1 { "by_name" } else { "none" },
        "section": m.section,
        "origin": origin_name(m.origin),
        "btf_key_type_id": m.btf_key_type_id,
        "btf_value_type_id": m.btf_value_type_id,
        "inner": m.inner.as_deref().map(map_json),
        "init": init_json(&m.init),
    })
}

/// What a relocation in a program section refers to, for display.
fn reloc_target(obj: &Object, r: &bpfkit_object::Relocation) -> String {
    let Some(sec) = obj.sections.get(r.symbol_section) else {
        return "extern".into();
    };
    if obj
        .sections
        .get(r.section)
        .is_some_and(|s| s.kind == SectionKind::Maps)
    {
        // `.values` initialiser of a PROG_ARRAY or map-in-map.
        return match sec.kind {
            SectionKind::Program | SectionKind::Text => {
                format!("values entry: program {}", r.symbol)
            }
            _ => format!("values entry: map {}", r.symbol),
        };
    }
    match sec.kind {
        SectionKind::Maps | SectionKind::LegacyMaps => {
            match obj
                .map_locations
                .iter()
                .position(|&(s, o)| s == sec.index && o == r.symbol_value)
            {
                Some(i) => format!("map {}", obj.maps[i].name),
                None => "map ?".into(),
            }
        }
        SectionKind::Data | SectionKind::Rodata | SectionKind::Bss => {
            format!("global data {}", sec.name)
        }
        SectionKind::Text | SectionKind::Program => {
            if r.r_type == bpfkit_object::reloc_type::R_BPF_64_32 {
                "call".into()
            } else {
                "function address".into()
            }
        }
        _ => String::new(),
    }
}

pub fn run(args: Args) -> CliResult {
    let bytes = std::fs::read(&args.file)
        .map_err(|e| CliError::usage(format!("cannot read {}: {e}", args.file.display())))?;
    let name = object_name_from_path(&args.file);
    let obj = Object::parse_named(&bytes, &name)
        .map_err(|e| CliError::bad(format!("{}: {e}", args.file.display())))?;
    for w in &obj.warnings {
        eprintln!("warning: {}: {w}", args.file.display());
    }
    let linked = obj.link();
    let linked_len = |p: &str| {
        linked
            .as_ref()
            .ok()
            .and_then(|l| l.program(p))
            .map(|p| p.insns.len())
    };
    let shown_reloc = |r: &&bpfkit_object::Relocation| {
        args.all_relocations
            || obj
                .sections
                .get(r.section)
                .is_some_and(|s| s.is_executable() || s.kind == SectionKind::Maps)
    };

    if args.json {
        let sections: Vec<Value> = obj
            .sections
            .iter()
            .map(|s| {
                json!({"index": s.index, "name": s.name, "type": s.type_name(), "kind": kind_name(s.kind),
                       "flags": s.flags, "offset": s.offset, "size": s.size})
            })
            .collect();
        let programs: Vec<Value> = obj
            .programs
            .iter()
            .map(|p| {
                json!({"name": p.name, "section": p.section, "type": prog_type_name(p.prog_type),
                       "type_id": p.prog_type, "expected_attach_type": p.expected_attach_type,
                       "prog_flags": p.prog_flags, "offset": p.offset, "insns": p.len,
                       "linked_insns": linked_len(&p.name), "subprograms": p.subprograms,
                       "gpl_compatible": gpl_compatible(&obj.license)})
            })
            .collect();
        let relocations: Vec<Value> = obj
            .relocations
            .iter()
            .filter(shown_reloc)
            .map(|r| {
                let in_code = obj.sections.get(r.section).is_some_and(|s| s.is_executable());
                json!({"rel_section": r.rel_section_name, "section": r.section_name, "offset": r.offset,
                       "insn": if in_code { Some(r.insn_index()) } else { None }, "type": r.type_name(), "type_id": r.r_type,
                       "symbol": r.symbol, "symbol_value": r.symbol_value, "target": reloc_target(&obj, r)})
            })
            .collect();
        let btf = obj.btf.as_ref().map(|b| {
            json!({"types": b.len() - 1,
                   "kinds": b.kind_counts().into_iter().map(|(k, n)| (k.to_string(), json!(n))).collect::<serde_json::Map<_, _>>()})
        });
        let ext = obj.btf_ext.as_ref().map(|e| {
            json!({"func_info": e.func_info.len(), "line_info": e.line_info.len(),
                   "core_relocations": e.core_relos.iter().map(|c| json!({
                       "section": c.section, "insn": c.insn_index, "type_id": c.type_id,
                       "type": obj.btf.as_ref().map(|b| b.type_name(c.type_id)),
                       "access": c.access, "kind": core_relo_kind_name(c.kind)})).collect::<Vec<_>>()})
        });
        let mut out = json!({
            "file": args.file.display().to_string(),
            "object": obj.name,
            "license": obj.license,
            "kernel_version": obj.kernel_version,
            "sections": sections,
            "programs": programs,
            "maps": obj.maps.iter().map(map_json).collect::<Vec<_>>(),
            "relocations": relocations,
            "btf": btf,
            "btf_ext": ext,
        });
        if let Err(e) = &linked {
            out["link_error"] = json!(e.to_string());
        }
        if !obj.warnings.is_empty() {
            out["warnings"] = json!(obj.warnings);
        }
        if !obj.elf_map_extra.is_empty() {
            out["bpf_elf_map"] = obj
                .elf_map_extra
                .iter()
                .map(|(n, e)| {
                    (
                        n.clone(),
                        json!({"def_size": e.def_size, "id": e.id, "pinning": e.pinning,
                               "inner_id": e.inner_id, "inner_idx": e.inner_idx}),
                    )
                })
                .collect::<serde_json::Map<_, _>>()
                .into();
        }
        if args.btf {
            out["btf_dump"] = json!(obj.btf.as_ref().map(|b| b.dump()));
        }
        crate::outln!(
            "{}",
            serde_json::to_string_pretty(&out).map_err(|e| CliError::usage(e.to_string()))?
        );
    } else {
        crate::out!("{}", text(&obj, &args, &linked_len, &shown_reloc));
    }
    match linked {
        Ok(_) => Ok(Status::Ok),
        Err(e) => Err(CliError::bad(format!(
            "{}: cannot link: {e}",
            args.file.display()
        ))),
    }
}

/// The kernel's `license_is_gpl_compatible`.
fn gpl_compatible(l: &str) -> bool {
    matches!(
        l,
        "GPL"
            | "GPL v2"
            | "GPL and additional rights"
            | "Dual BSD/GPL"
            | "Dual MIT/GPL"
            | "Dual MPL/GPL"
    )
}

fn text(
    obj: &Object,
    args: &Args,
    linked_len: &dyn Fn(&str) -> Option<usize>,
    shown_reloc: &dyn Fn(&&bpfkit_object::Relocation) -> bool,
) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "{}: eBPF object `{}`", args.file.display(), obj.name);
    let _ = writeln!(
        o,
        "license: {:?}{}",
        obj.license,
        if gpl_compatible(&obj.license) {
            " (GPL-compatible)"
        } else {
            ""
        }
    );
    if let Some(v) = obj.kernel_version {
        let _ = writeln!(o, "kernel version: {v:#x}");
    }

    let _ = writeln!(o, "\nSections ({}):", obj.sections.len());
    let _ = writeln!(
        o,
        "  {:>3} {:<24} {:<12} {:<12} {:>8} {:>8}",
        "Nr", "Name", "Type", "Kind", "Offset", "Size"
    );
    for s in &obj.sections {
        let _ = writeln!(
            o,
            "  {:>3} {:<24} {:<12} {:<12} {:>#8x} {:>#8x}",
            s.index,
            s.name,
            s.type_name(),
            kind_name(s.kind),
            s.offset,
            s.size
        );
    }

    let _ = writeln!(o, "\nPrograms ({}):", obj.programs.len());
    for p in &obj.programs {
        let attach = p
            .expected_attach_type
            .map(|a| a.to_string())
            .unwrap_or_else(|| "-".into());
        let _ = writeln!(
            o,
            "  {}  section {}  type {} ({})  attach {}  flags {:#x}  insns {}  linked {}",
            p.name,
            p.section,
            prog_type_name(p.prog_type),
            p.prog_type,
            attach,
            p.prog_flags,
            p.len,
            linked_len(&p.name)
                .map(|n| n.to_string())
                .unwrap_or_else(|| "error".into()),
        );
        if !p.subprograms.is_empty() {
            let _ = writeln!(o, "      sub-programs: {}", p.subprograms.join(", "));
        }
    }

    let _ = writeln!(o, "\nMaps ({}):", obj.maps.len());
    for m in &obj.maps {
        let _ = writeln!(
            o,
            "  {}  {}  key {}  value {}  max_entries {}  flags {:#x}  pinning {}  ({} in {})",
            m.name,
            map_type::name(m.map_type)
                .map(str::to_string)
                .unwrap_or_else(|| format!("type {}", m.map_type)),
            m.key_size,
            m.value_size,
            m.max_entries,
            m.map_flags,
            if m.pinning == 1 { "by_name" } else { "none" },
            origin_name(m.origin),
            m.section
        );
        if let Some(inner) = &m.inner {
            let _ = writeln!(
                o,
                "      inner: {}  key {}  value {}  max_entries {}  flags {:#x}",
                map_type::name(inner.map_type).unwrap_or("?"),
                inner.key_size,
                inner.value_size,
                inner.max_entries,
                inner.map_flags
            );
        }
        match &m.init {
            MapInit::Programs(v) | MapInit::Maps(v) => {
                let s: Vec<String> = v.iter().map(|(k, n)| format!("[{k}] = {n}")).collect();
                let _ = writeln!(o, "      values: {}", s.join(", "));
            }
            MapInit::Data(d) if m.origin == MapOrigin::GlobalData && m.section != ".bss" => {
                let shown: Vec<String> = d.iter().take(32).map(|b| format!("{b:02x}")).collect();
                let _ = writeln!(
                    o,
                    "      initial value: {}{}",
                    shown.join(" "),
                    if d.len() > 32 { " ..." } else { "" }
                );
            }
            _ => {}
        }
    }

    let shown: Vec<_> = obj.relocations.iter().filter(|r| shown_reloc(r)).collect();
    let hidden = obj.relocations.len() - shown.len();
    let _ = writeln!(o, "\nRelocations ({}):", shown.len());
    let mut cur = usize::MAX;
    for r in shown {
        if r.rel_section != cur {
            cur = r.rel_section;
            let n = obj
                .relocations
                .iter()
                .filter(|x| x.rel_section == cur)
                .count();
            let _ = writeln!(
                o,
                "  section '{}' (for '{}'), {} entries:",
                r.rel_section_name, r.section_name, n
            );
            let _ = writeln!(
                o,
                "    {:>8} {:>6}  {:<18} {:>10}  {:<24} Target",
                "Offset", "Insn", "Type", "Sym.value", "Symbol"
            );
        }
        let in_code = obj
            .sections
            .get(r.section)
            .is_some_and(|s| s.is_executable());
        let _ = writeln!(
            o,
            "    {:>#8x} {:>6}  {:<18} {:>#10x}  {:<24} {}",
            r.offset,
            if in_code {
                r.insn_index().to_string()
            } else {
                "-".to_string()
            },
            r.type_name(),
            r.symbol_value,
            r.symbol,
            reloc_target(obj, r)
        );
    }
    if hidden > 0 {
        let _ = writeln!(
            o,
            "  (+{hidden} relocations in DWARF/BTF sections; --all-relocations lists them)"
        );
    }

    let _ = writeln!(o, "\nBTF:");
    match &obj.btf {
        None => {
            let _ = writeln!(o, "  none");
        }
        Some(b) => {
            let kinds: Vec<String> = b
                .kind_counts()
                .into_iter()
                .map(|(k, n)| format!("{k} {n}"))
                .collect();
            let _ = writeln!(o, "  {} types: {}", b.len() - 1, kinds.join(", "));
        }
    }
    if let Some(e) = &obj.btf_ext {
        let _ = writeln!(
            o,
            "  BTF.ext: {} func_info, {} line_info, {} CO-RE relocations",
            e.func_info.len(),
            e.line_info.len(),
            e.core_relos.len()
        );
        for c in &e.core_relos {
            let _ = writeln!(
                o,
                "    {} insn {}: {} on [{}] {} access {}",
                c.section,
                c.insn_index,
                core_relo_kind_name(c.kind),
                c.type_id,
                obj.btf
                    .as_ref()
                    .map(|b| b.type_name(c.type_id))
                    .unwrap_or_default(),
                c.access
            );
        }
    }
    if args.btf {
        if let Some(b) = &obj.btf {
            let _ = writeln!(o);
            o.push_str(&b.dump());
        }
    }
    o
}
