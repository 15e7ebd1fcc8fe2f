//! Every corpus object (and the fixtures in `tests/data`) read and linked, checked against
//! what the reference tools say: `llvm-readelf-19` (sections, function symbols,
//! relocations), `bpftool btf dump` (BTF), and what the kernel made of the object
//! (`*.kernel.json`: programs, maps and the maps each loaded program uses).
//!
//! Objects are discovered by glob, so a new corpus object is covered without code.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use bpfkit_object::{object_name_from_path, Object};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// (object path, expected-files directory) for every object to check.
fn objects() -> Vec<(PathBuf, PathBuf)> {
    let mut v = Vec::new();
    for (objdir, expdir) in [
        (root().join("corpus/obj"), root().join("corpus/expected")),
        (
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data"),
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data"),
        ),
    ] {
        let Ok(rd) = std::fs::read_dir(&objdir) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "o") {
                v.push((p, expdir.clone()));
            }
        }
    }
    v.sort();
    assert!(
        !v.is_empty(),
        "no objects found under corpus/obj or tests/data"
    );
    v
}

fn stem(p: &Path) -> String {
    p.file_stem().unwrap().to_string_lossy().into_owned()
}

fn expected(dir: &Path, name: &str, suffix: &str) -> Option<String> {
    std::fs::read_to_string(dir.join(format!("{name}.{suffix}"))).ok()
}

fn load(p: &Path) -> Object {
    let bytes = std::fs::read(p).unwrap();
    Object::parse_named(&bytes, &object_name_from_path(p))
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

struct ReadelfSection {
    index: usize,
    name: String,
    ty: String,
    off: u64,
    size: u64,
}

struct ReadelfSym {
    value: u64,
    size: u64,
    ty: String,
    bind: String,
    ndx: String,
    name: String,
}

struct ReadelfReloc {
    rel_section: String,
    offset: u64,
    ty: String,
    sym_value: u64,
    sym_name: String,
}

struct Readelf {
    sections: Vec<ReadelfSection>,
    symbols: Vec<ReadelfSym>,
    relocs: Vec<ReadelfReloc>,
}

fn hex(s: &str) -> u64 {
    u64::from_str_radix(s.trim_start_matches("0x"), 16).unwrap_or_else(|_| panic!("not hex: {s}"))
}

fn parse_readelf(text: &str) -> Readelf {
    let mut sections = Vec::new();
    let mut symbols = Vec::new();
    let mut relocs = Vec::new();
    let mut mode = "";
    let mut cur_rel = String::new();
    for line in text.lines() {
        if line.starts_with("Section Headers:") {
            mode = "sec";
            continue;
        }
        if line.starts_with("Key to Flags") {
            mode = "";
            continue;
        }
        if let Some(rest) = line.strip_prefix("Relocation section '") {
            cur_rel = rest.split('\'').next().unwrap().to_string();
            mode = "rel";
            continue;
        }
        if line.starts_with("Symbol table '") {
            mode = "sym";
            continue;
        }
        match mode {
            "sec" => {
                // "  [ 3] xdp   PROGBITS  0000000000000000 000208 0001b8 00  AX  0   0  8"
                let Some(rest) = line.trim_start().strip_prefix('[') else {
                    continue;
                };
                let (idx, rest) = rest.split_once(']').unwrap();
                let Ok(index) = idx.trim().parse::<usize>() else {
                    continue;
                };
                let toks: Vec<&str> = rest.split_whitespace().collect();
                // Index 0 has an empty name.
                let (name, toks) = if index == 0 {
                    (String::new(), &toks[..])
                } else {
                    (toks[0].to_string(), &toks[1..])
                };
                sections.push(ReadelfSection {
                    index,
                    name,
                    ty: toks[0].to_string(),
                    off: hex(toks[2]),
                    size: hex(toks[3]),
                });
            }
            "sym" => {
                let toks: Vec<&str> = line.split_whitespace().collect();
                if toks.len() < 7 || !toks[0].ends_with(':') || toks[0] == "Num:" {
                    continue;
                }
                symbols.push(ReadelfSym {
                    value: hex(toks[1]),
                    size: toks[2].parse().unwrap(),
                    ty: toks[3].to_string(),
                    bind: toks[4].to_string(),
                    ndx: toks[6].to_string(),
                    name: toks.get(7).map(|s| s.to_string()).unwrap_or_default(),
                });
            }
            "rel" => {
                let toks: Vec<&str> = line.split_whitespace().collect();
                if toks.len() < 4
                    || toks[0] == "Offset"
                    || !toks[0].chars().all(|c| c.is_ascii_hexdigit())
                {
                    continue;
                }
                relocs.push(ReadelfReloc {
                    rel_section: cur_rel.clone(),
                    offset: hex(toks[0]),
                    ty: toks[2].to_string(),
                    sym_value: hex(toks[3]),
                    sym_name: toks.get(4).map(|s| s.to_string()).unwrap_or_default(),
                });
            }
            _ => {}
        }
    }
    Readelf {
        sections,
        symbols,
        relocs,
    }
}

#[test]
fn sections_symbols_and_relocations_match_readelf() {
    let mut checked = 0;
    for (path, dir) in objects() {
        let name = stem(&path);
        let Some(text) = expected(&dir, &name, "readelf.txt") else {
            panic!(
                "{}: no {name}.readelf.txt reference next to it",
                path.display()
            );
        };
        let re = parse_readelf(&text);
        let obj = load(&path);
        let ctx = path.display();

        // Sections.
        assert_eq!(
            obj.sections.len(),
            re.sections.len(),
            "{ctx}: section count"
        );
        for (s, r) in obj.sections.iter().zip(&re.sections) {
            assert_eq!(
                (s.index, s.name.as_str()),
                (r.index, r.name.as_str()),
                "{ctx}: section name"
            );
            assert_eq!(s.type_name(), r.ty, "{ctx}: section {} type", s.name);
            assert_eq!(
                (s.offset, s.size),
                (r.off, r.size),
                "{ctx}: section {} offset/size",
                s.name
            );
        }

        // Function symbols = functions; those outside .text = programs.
        let mut want_funcs = BTreeSet::new();
        let mut want_progs = BTreeSet::new();
        for s in re.symbols.iter().filter(|s| s.ty == "FUNC") {
            let ndx: usize = s.ndx.parse().unwrap();
            let sec = &re.sections[ndx];
            want_funcs.insert((
                s.name.clone(),
                sec.name.clone(),
                s.value / 8,
                s.size / 8,
                s.bind != "LOCAL",
            ));
            if sec.name != ".text" {
                want_progs.insert((s.name.clone(), sec.name.clone()));
            }
        }
        let got_funcs: BTreeSet<_> = obj
            .functions
            .iter()
            .map(|f| {
                (
                    f.name.clone(),
                    f.section_name.clone(),
                    f.offset as u64,
                    f.len as u64,
                    f.global,
                )
            })
            .collect();
        assert_eq!(got_funcs, want_funcs, "{ctx}: functions");
        let got_progs: BTreeSet<_> = obj
            .programs
            .iter()
            .map(|p| (p.name.clone(), p.section.clone()))
            .collect();
        assert_eq!(got_progs, want_progs, "{ctx}: programs");

        // Relocations: every entry of every relocation section.
        let got: Vec<_> = obj
            .relocations
            .iter()
            .map(|r| {
                (
                    r.rel_section_name.clone(),
                    r.offset,
                    r.type_name().to_string(),
                    r.symbol_value,
                    r.symbol.clone(),
                )
            })
            .collect();
        let want: Vec<_> = re
            .relocs
            .iter()
            .map(|r| {
                (
                    r.rel_section.clone(),
                    r.offset,
                    r.ty.clone(),
                    r.sym_value,
                    r.sym_name.clone(),
                )
            })
            .collect();
        assert_eq!(got, want, "{ctx}: relocations");
        checked += 1;
    }
    eprintln!("readelf comparison: {checked} objects");
}

#[test]
fn btf_matches_bpftool_dump() {
    let mut checked = 0;
    for (path, dir) in objects() {
        let name = stem(&path);
        let Some(want) = expected(&dir, &name, "btf.txt") else {
            panic!("{}: no {name}.btf.txt reference", path.display());
        };
        let obj = load(&path);
        let btf = obj
            .btf
            .as_ref()
            .unwrap_or_else(|| panic!("{}: no BTF", path.display()));
        let got = btf.dump();
        if got.trim_end() != want.trim_end() {
            let diff = got
                .lines()
                .zip(want.lines())
                .enumerate()
                .find(|(_, (a, b))| a != b)
                .map(|(i, (a, b))| format!("line {}: ours `{a}`, bpftool `{b}`", i + 1))
                .unwrap_or_else(|| {
                    format!(
                        "line counts {} vs {}",
                        got.lines().count(),
                        want.lines().count()
                    )
                });
            panic!("{}: BTF dump differs from bpftool: {diff}", path.display());
        }
        checked += 1;
    }
    eprintln!("bpftool btf comparison: {checked} objects");
}

#[test]
fn programs_and_maps_match_the_kernel() {
    let mut checked = 0;
    for (path, dir) in objects() {
        let name = stem(&path);
        let Some(text) = expected(&dir, &name, "kernel.json") else {
            continue;
        };
        let k: serde_json::Value = serde_json::from_str(&text).unwrap();
        let obj = load(&path);
        let linked = obj
            .link()
            .unwrap_or_else(|e| panic!("{}: link: {e}", path.display()));
        let ctx = path.display();

        // Maps: kernel name (15 chars), type, sizes, max_entries, flags.
        let want: BTreeSet<_> = k
            .get("maps")
            .unwrap()
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                let n = |k: &str| m[k].as_u64().unwrap() as u32;
                (
                    m["kernel_name"].as_str().unwrap().to_string(),
                    n("type"),
                    n("key_size"),
                    n("value_size"),
                    n("max_entries"),
                    n("flags"),
                )
            })
            .collect();
        let got: BTreeSet<_> = obj
            .maps
            .iter()
            .map(|m| {
                (
                    m.kernel_name().to_string(),
                    m.map_type,
                    m.key_size,
                    m.value_size,
                    m.max_entries,
                    m.kernel_flags(),
                )
            })
            .collect();
        assert_eq!(got, want, "{ctx}: maps");

        // The name kernel.json uses for a map (libbpf's real name: the section for global data).
        let kname = |i: usize| linked.maps[i].real_name().to_string();
        for kp in k["programs"].as_array().unwrap() {
            let pname = kp["name"].as_str().unwrap();
            let p = linked
                .program(pname)
                .unwrap_or_else(|| panic!("{ctx}: kernel has program {pname}, we do not"));
            assert_eq!(
                p.section,
                kp["section"].as_str().unwrap(),
                "{ctx}: {pname} section"
            );
            assert_eq!(
                p.prog_type as u64,
                kp["type"].as_u64().unwrap(),
                "{ctx}: {pname} type"
            );
            if kp["accepted"] != serde_json::Value::Bool(true) {
                continue;
            }
            // Maps the loaded program uses = maps our linked stream references, plus every
            // `.rodata*` map, which libbpf binds to each program (BPF_PROG_BIND_MAP in
            // bpf_object_load_prog) whether the program references it or not.
            let want: BTreeSet<String> = kp["used_maps"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap().to_string())
                .collect();
            let mut got: BTreeSet<String> = linked
                .maps
                .iter()
                .filter(|m| {
                    m.origin == bpfkit_object::MapOrigin::GlobalData
                        && m.section.starts_with(".rodata")
                })
                .map(|m| m.real_name().to_string())
                .collect();
            let mut i = 0;
            while i < p.insns.len() {
                let x = p.insns[i];
                if x.is_lddw() {
                    if x.src == 5 || x.src == 6 {
                        got.insert(kname(x.imm as usize));
                    }
                    i += 1;
                }
                i += 1;
            }
            assert_eq!(got, want, "{ctx}: maps used by {pname}");
        }
        assert_eq!(
            obj.programs.len(),
            k["programs"].as_array().unwrap().len(),
            "{ctx}: program count vs kernel.json"
        );
        checked += 1;
    }
    eprintln!("kernel.json comparison: {checked} objects");
}

/// Linked call and map references agree with the relocations readelf lists: every
/// `R_BPF_64_64` against a map symbol becomes `BPF_PSEUDO_MAP_IDX` of that map, every
/// global-data reference `BPF_PSEUDO_MAP_IDX_VALUE` of that section's map, and every
/// `R_BPF_64_32` call lands on the function readelf's symbol table places at the target.
#[test]
fn linked_references_follow_readelf_relocations() {
    let mut checked = 0;
    for (path, dir) in objects() {
        let name = stem(&path);
        let Some(text) = expected(&dir, &name, "readelf.txt") else {
            continue;
        };
        let re = parse_readelf(&text);
        let obj = load(&path);
        let linked = obj
            .link()
            .unwrap_or_else(|e| panic!("{}: link: {e}", path.display()));
        let ctx = path.display();
        // Symbol name -> (section name, value) from readelf.
        let syms: BTreeMap<String, (String, u64)> = re
            .symbols
            .iter()
            .filter_map(|s| {
                s.ndx
                    .parse::<usize>()
                    .ok()
                    .map(|n| (s.name.clone(), (re.sections[n].name.clone(), s.value)))
            })
            .collect();
        // Function starting at (section, slot) from readelf.
        let func_at = |sec: &str, slot: u64| {
            re.symbols
                .iter()
                .filter(|s| s.ty == "FUNC")
                .find(|s| {
                    let n: usize = s.ndx.parse().unwrap();
                    re.sections[n].name == sec
                        && s.value / 8 <= slot
                        && slot < (s.value + s.size) / 8
                })
                .map(|s| s.name.clone())
        };
        for p in &linked.programs {
            for (out, o) in p.origins.iter().enumerate() {
                let rel_name = format!(".rel{}", o.section);
                let Some(r) = re
                    .relocs
                    .iter()
                    .find(|r| r.rel_section == rel_name && r.offset == o.insn_index as u64 * 8)
                else {
                    continue;
                };
                let insn = p.insns[out];
                let (sym_sec, _) = syms.get(&r.sym_name).cloned().unwrap_or_default();
                match r.ty.as_str() {
                    "R_BPF_64_64" if sym_sec == ".maps" || sym_sec == "maps" => {
                        assert_eq!(insn.src, 5, "{ctx}: {} insn {out}: map reference", p.name);
                        assert_eq!(
                            linked.maps[insn.imm as usize].name, r.sym_name,
                            "{ctx}: {} insn {out}",
                            p.name
                        );
                    }
                    "R_BPF_64_64" if sym_sec == ".text" => {
                        assert_eq!(
                            insn.src, 4,
                            "{ctx}: {} insn {out}: function address",
                            p.name
                        );
                    }
                    "R_BPF_64_64" => {
                        assert_eq!(
                            insn.src, 6,
                            "{ctx}: {} insn {out}: global data reference",
                            p.name
                        );
                        assert_eq!(
                            linked.maps[insn.imm as usize].section, sym_sec,
                            "{ctx}: {} insn {out}",
                            p.name
                        );
                    }
                    "R_BPF_64_32" => {
                        let orig = obj.section(&o.section).unwrap().insns[o.insn_index];
                        let target_slot = (r.sym_value / 8) as i64 + orig.imm as i64 + 1;
                        let want = func_at(&sym_sec, target_slot as u64);
                        let landed = &p.origins[(out as i64 + insn.imm as i64 + 1) as usize];
                        assert_eq!(
                            Some(landed.function.clone()),
                            want,
                            "{ctx}: {} call at {out}",
                            p.name
                        );
                        assert_eq!(
                            landed.insn_index as i64, target_slot,
                            "{ctx}: {} call at {out}",
                            p.name
                        );
                    }
                    t => panic!("{ctx}: unexpected relocation type {t} in a program"),
                }
                checked += 1;
            }
        }
    }
    assert!(checked > 0);
    eprintln!("linked references checked: {checked}");
}

/// libbpf's debug lines for an object: `corpus/expected/NAME.libbpf.log` (written by
/// corpus/build.sh with the objects) or `tests/data/libbpf/NAME.log` for the fixtures.
fn libbpf_log(obj: &Path) -> Option<String> {
    let name = stem(obj);
    let p = if obj.parent().is_some_and(|d| d.ends_with("obj")) {
        root().join(format!("corpus/expected/{name}.libbpf.log"))
    } else {
        Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/data/libbpf/{name}.log"))
    };
    std::fs::read_to_string(p).ok()
}

/// Linking agrees with libbpf's own debug log (`bpftool -d prog loadall`, see [`libbpf_log`]): which map each reference resolves to (by index in the
/// map table), where every sub-program lands and the fixed call immediates, and the
/// `.values` slots of PROG_ARRAY / map-in-map definitions.
#[test]
fn linking_matches_libbpf_debug_log() {
    let mut checked = 0;
    let mut objects_with_logs = 0;
    for (path, _) in objects() {
        let name = stem(&path);
        let Some(log) = libbpf_log(&path) else {
            eprintln!("note: no libbpf log for {name}");
            continue;
        };
        objects_with_logs += 1;
        let obj = load(&path);
        let linked = obj.link().unwrap();
        let ctx = path.display();
        // Positions of (function, slot relative to the function) in every linked program.
        let find = |func: &str, rel: usize| -> Vec<(usize, usize)> {
            let f = obj
                .functions
                .iter()
                .find(|f| f.name == func)
                .unwrap_or_else(|| panic!("{ctx}: no function {func}"));
            let mut v = Vec::new();
            for (pi, p) in linked.programs.iter().enumerate() {
                for (i, o) in p.origins.iter().enumerate() {
                    if o.function == func && o.insn_index == f.offset + rel {
                        v.push((pi, i));
                    }
                }
            }
            v
        };
        for line in log.lines() {
            let line = line.trim_start_matches("libbpf: ");
            let quoted = |s: &str, after: &str| -> String {
                let i = s.find(after).unwrap() + after.len();
                s[i..].split('\'').next().unwrap().to_string()
            };
            let num_after = |s: &str, after: &str| -> i64 {
                let i = s.find(after).unwrap() + after.len();
                s[i..]
                    .split(|c: char| !(c.is_ascii_digit() || c == '-'))
                    .next()
                    .unwrap()
                    .parse()
                    .unwrap()
            };
            if line.contains(": found map ") || line.contains(": found data map ") {
                let prog = quoted(line, "prog '");
                let idx = num_after(line, "map ") as usize;
                let mname = line.split('(').nth(1).unwrap().split(',').next().unwrap();
                let insn = line
                    .rsplit_once("insn ")
                    .unwrap()
                    .1
                    .trim_start_matches('#')
                    .parse::<usize>()
                    .unwrap();
                assert_eq!(linked.maps[idx].name, mname, "{ctx}: map table index {idx}");
                let places = find(&prog, insn);
                assert!(
                    !places.is_empty(),
                    "{ctx}: {prog} insn {insn} not in any linked program"
                );
                for (pi, i) in places {
                    let x = linked.programs[pi].insns[i];
                    assert!(
                        x.src == 5 || x.src == 6,
                        "{ctx}: {prog}+{insn}: not a map reference: {x:?}"
                    );
                    assert_eq!(x.imm as usize, idx, "{ctx}: {prog}+{insn} map index");
                }
            } else if line.contains("relocated, imm") {
                let prog = quoted(line, "prog '");
                let insn = num_after(line, "insn #") as usize;
                let imm = num_after(line, "imm ") as i32;
                let sub = quoted(line, "subprog '");
                let at = num_after(line, "(now at ") as usize;
                let places = find(&prog, insn);
                let ok = places.iter().any(|&(pi, i)| {
                    let p = &linked.programs[pi];
                    p.insns[i].imm == imm
                        && p.origins.get(at).is_some_and(|o| o.function == sub)
                        && (at == 0 || p.origins[at - 1].function != sub)
                });
                assert!(ok, "{ctx}: `{line}` not matched by our linking");
            } else if line.contains("insns from sub-prog") {
                let prog = quoted(line, "prog '");
                let n = num_after(line, "added ") as usize;
                let sub = quoted(line, "sub-prog '");
                let p = linked
                    .program(&prog)
                    .unwrap_or_else(|| panic!("{ctx}: no linked program {prog}"));
                assert_eq!(
                    p.origins.iter().filter(|o| o.function == sub).count(),
                    n,
                    "{ctx}: {prog} + {sub}"
                );
                let order: Vec<&str> = obj
                    .program(&prog)
                    .unwrap()
                    .subprograms
                    .iter()
                    .map(|s| s.as_str())
                    .collect();
                assert!(
                    order.contains(&sub.as_str()),
                    "{ctx}: {prog} sub-programs {order:?} lack {sub}"
                );
            } else if line.contains(" slot [") {
                let map = quoted(line, "map '");
                let slot = num_after(line, "slot [") as u32;
                let target = line.rsplit('\'').nth(1).unwrap().to_string();
                let m = &linked.maps[linked.map_index(&map).unwrap()];
                let entries = match &m.init {
                    bpfkit_object::MapInit::Programs(v) | bpfkit_object::MapInit::Maps(v) => {
                        v.clone()
                    }
                    _ => Vec::new(),
                };
                assert!(
                    entries.contains(&(slot, target.clone())),
                    "{ctx}: {map}[{slot}] = {target}: ours {entries:?}"
                );
            } else {
                continue;
            }
            checked += 1;
        }
        // Sub-program order: the "added" lines for each program are in append order.
        for p in &obj.programs {
            let want: Vec<String> = log
                .lines()
                .filter(|l| l.contains(&format!("prog '{}': added", p.name)))
                .map(|l| l.rsplit('\'').nth(1).unwrap().to_string())
                .collect();
            assert_eq!(
                p.subprograms, want,
                "{ctx}: sub-program order of {}",
                p.name
            );
        }
    }
    assert!(objects_with_logs > 0 && checked > 0);
    eprintln!("libbpf log lines checked: {checked} in {objects_with_logs} objects");
}

/// `.BTF.ext` line info agrees with the C sources: every record's text is the line at
/// that number of that file, and its column lies on the line. Func info names the
/// function that starts at that slot (per the symbol table).
#[test]
fn line_and_func_info_agree_with_sources_and_symbols() {
    let mut lines_checked = 0;
    let mut funcs_checked = 0;
    for (path, _) in objects() {
        let obj = load(&path);
        let ctx = path.display();
        let Some(ext) = &obj.btf_ext else {
            panic!("{ctx}: no .BTF.ext")
        };
        let btf = obj.btf.as_ref().unwrap();
        // Sources are relative to the directory clang ran in: corpus/ or tests/data/.
        let src_root = if path.parent().unwrap().ends_with("obj") {
            path.parent().unwrap().parent().unwrap().to_path_buf()
        } else {
            path.parent().unwrap().to_path_buf()
        };
        let mut cache: BTreeMap<String, Option<Vec<String>>> = BTreeMap::new();
        for l in &ext.line_info {
            let file = cache.entry(l.file.clone()).or_insert_with(|| {
                let p = if l.file.starts_with('/') {
                    PathBuf::from(&l.file)
                } else {
                    src_root.join(&l.file)
                };
                std::fs::read_to_string(p)
                    .ok()
                    .map(|t| t.lines().map(str::to_string).collect())
            });
            let Some(text) = file else {
                assert!(
                    l.file.starts_with("/usr/"),
                    "{ctx}: line info names {} which is not in the tree",
                    l.file
                );
                continue;
            };
            let src = text
                .get(l.line as usize - 1)
                .unwrap_or_else(|| panic!("{ctx}: {}:{} past the end", l.file, l.line));
            assert_eq!(&l.text, src, "{ctx}: {}:{}", l.file, l.line);
            assert!(
                l.column as usize <= src.len() + 1,
                "{ctx}: {}:{}:{} column past the line",
                l.file,
                l.line,
                l.column
            );
            let sec = obj
                .section(&l.section)
                .unwrap_or_else(|| panic!("{ctx}: line info for unknown section {}", l.section));
            assert!(
                l.insn_index < sec.insns.len(),
                "{ctx}: line info past the end of {}",
                l.section
            );
            lines_checked += 1;
        }
        for f in &ext.func_info {
            let sec = obj.section(&f.section).unwrap();
            let func = obj
                .functions
                .iter()
                .find(|x| x.section == sec.index && x.offset == f.insn_index)
                .unwrap_or_else(|| {
                    panic!(
                        "{ctx}: func_info at {}+{} is not a function start",
                        f.section, f.insn_index
                    )
                });
            assert_eq!(
                btf.get(f.type_id).unwrap().name,
                func.name,
                "{ctx}: func_info type"
            );
            funcs_checked += 1;
        }
        // Every function has its func_info.
        assert_eq!(
            ext.func_info.len(),
            obj.functions.len(),
            "{ctx}: func_info count"
        );
    }
    assert!(lines_checked > 0 && funcs_checked > 0);
    eprintln!(
        "line info records checked against sources: {lines_checked}; func info: {funcs_checked}"
    );
}

/// CO-RE records agree with libbpf's reading of them (`relo #N: <kind> [type] ...
/// (access @ offset ...)` and `relo #N: patched insn #K` in the libbpf logs).
#[test]
fn core_relocations_match_libbpf() {
    let mut checked = 0;
    for (path, _) in objects() {
        let Some(log) = libbpf_log(&path) else {
            continue;
        };
        let obj = load(&path);
        let ctx = path.display();
        let core = obj
            .btf_ext
            .as_ref()
            .map(|e| e.core_relos.clone())
            .unwrap_or_default();
        for line in log.lines().filter(|l| l.contains(": relo #")) {
            let prog = line
                .split("prog '")
                .nth(1)
                .unwrap()
                .split('\'')
                .next()
                .unwrap();
            let n: usize = line
                .split("relo #")
                .nth(1)
                .unwrap()
                .split(':')
                .next()
                .unwrap()
                .parse()
                .unwrap();
            let p = obj.program(prog).unwrap();
            let recs: Vec<_> = core
                .iter()
                .filter(|c| {
                    c.section == p.section
                        && c.insn_index >= p.offset
                        && c.insn_index < p.offset + p.len
                })
                .collect();
            let r = recs
                .get(n)
                .unwrap_or_else(|| panic!("{ctx}: {prog} has no CO-RE record #{n}"));
            if let Some(k) = line.split(": <").nth(1) {
                let kind = k.split('>').next().unwrap();
                assert_eq!(
                    bpfkit_object::btf_ext::core_relo_kind_name(r.kind),
                    kind,
                    "{ctx}: {line}"
                );
                let ty: u32 = line
                    .split("> [")
                    .nth(1)
                    .unwrap()
                    .split(']')
                    .next()
                    .unwrap()
                    .parse()
                    .unwrap();
                assert_eq!(r.type_id, ty, "{ctx}: {line}");
                if let Some(spec) = line.rsplit_once(" (").map(|x| x.1) {
                    let access = spec.split(" @").next().unwrap();
                    assert_eq!(r.access, access, "{ctx}: {line}");
                } else {
                    assert_eq!(r.access, "0", "{ctx}: {line}");
                }
            } else {
                let k: usize = line
                    .split("patched insn #")
                    .nth(1)
                    .unwrap()
                    .split(' ')
                    .next()
                    .unwrap()
                    .parse()
                    .unwrap();
                assert_eq!(r.insn_index - p.offset, k, "{ctx}: {line}");
            }
            checked += 1;
        }
    }
    assert!(checked > 0, "no CO-RE lines in the libbpf logs");
    eprintln!("CO-RE log lines checked: {checked}");
}

/// Legacy map definitions of any size (here 36-byte iproute2-style ones, extra fields 0).
#[test]
fn legacy_maps_of_any_definition_size() {
    let obj = load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/legacy_ext.o"));
    let got: Vec<_> = obj
        .maps
        .iter()
        .map(|m| {
            (
                m.name.as_str(),
                m.map_type,
                m.key_size,
                m.value_size,
                m.max_entries,
            )
        })
        .collect();
    // Values from the C source's initialisers; order = symbol table order.
    let mut want = vec![("counters", 6, 4, 8, 16), ("flows", 9, 8, 16, 1024)];
    let mut got_sorted = got.clone();
    got_sorted.sort();
    want.sort();
    assert_eq!(got_sorted, want);
    let linked = obj.link().unwrap();
    let p = linked.program("legacy_ext").unwrap();
    let used: BTreeSet<&str> = p
        .insns
        .iter()
        .filter(|i| i.is_lddw() && i.src == 5)
        .map(|i| linked.maps[i.imm as usize].name.as_str())
        .collect();
    assert_eq!(used, BTreeSet::from(["counters", "flows"]));
}

/// `license` and `version` sections (values from btf_kinds.c).
#[test]
fn license_and_version() {
    let obj = load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/btf_kinds.o"));
    assert_eq!(obj.license, "Dual BSD/GPL");
    assert_eq!(obj.kernel_version, Some(0x061200));
    let obj = load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/link_mix.o"));
    assert_eq!((obj.license.as_str(), obj.kernel_version), ("GPL", None));
}

/// The indexed lookups (`line_info_at`, `source_line`, `function_at`) agree with a plain
/// scan of the records, and with the line each linked instruction carries.
#[test]
fn line_lookups_agree_with_a_scan() {
    let mut checked = 0;
    for (path, _) in objects() {
        let obj = load(&path);
        let ext = obj.btf_ext.as_ref().unwrap();
        for sec in obj.sections.iter().filter(|s| s.is_executable()) {
            for slot in 0..sec.insns.len() {
                let want = ext
                    .line_info
                    .iter()
                    .find(|l| l.section == sec.name && l.insn_index == slot);
                let got = obj.line_info_at(&sec.name, slot);
                assert_eq!(
                    got.map(|l| (l.line, l.column)),
                    want.map(|l| (l.line, l.column)),
                    "{}",
                    path.display()
                );
                let f = obj.functions.iter().find(|f| {
                    f.section == sec.index && f.offset <= slot && slot < f.offset + f.len
                });
                assert_eq!(
                    obj.function_at(sec.index, slot).map(|f| &f.name),
                    f.map(|f| &f.name)
                );
                let lo = f.map_or(0, |f| f.offset);
                let want = ext
                    .line_info
                    .iter()
                    .filter(|l| l.section == sec.name && l.insn_index <= slot && l.insn_index >= lo)
                    .max_by_key(|l| l.insn_index)
                    .map(|l| (l.line, l.column));
                assert_eq!(
                    obj.source_line(&sec.name, slot).map(|l| (l.line, l.column)),
                    want
                );
                checked += 1;
            }
        }
        for p in obj.link().unwrap().programs {
            for o in &p.origins {
                assert_eq!(
                    o.line,
                    obj.source_line(&o.section, o.insn_index),
                    "{}",
                    path.display()
                );
            }
        }
    }
    assert!(checked > 0);
}
