//! Rendering of verification reports: rustc-like text, JSON, SARIF 2.1.0, and
//! veristat-style CSV.

use crate::{Report, Verdict};
use bpfkit_object::model::LinkedProgram;
use serde_json::{json, Value};

/// Formats one instruction for messages (`insn text` supplied by the caller, e.g. the
/// disassembler, keeps this crate free of an assembler dependency).
pub type InsnText<'a> = &'a dyn Fn(&LinkedProgram, usize) -> String;

fn origin_line(prog: &LinkedProgram, insn: usize) -> Option<&bpfkit_object::model::SourceLine> {
    prog.origins.get(insn).and_then(|o| o.line.as_ref())
}

/// rustc-style diagnostic for one program's report.
pub fn text(prog: &LinkedProgram, rep: &Report, object: &str, insn_text: InsnText) -> String {
    let mut s = String::new();
    let st = &rep.stats;
    let stats = format!(
        "processed {} insns, {} states (peak {}), {} us",
        st.processed_insns, st.total_states, st.peak_states, st.duration_us
    );
    match &rep.verdict {
        Verdict::Accepted => {
            s.push_str(&format!(
                "{}: program `{}` accepted ({})\n",
                object, rep.program, stats
            ));
            for n in &rep.notes {
                s.push_str(&format!("   = note: {n}\n"));
            }
        }
        Verdict::Unsupported { insn, what } => {
            s.push_str(&format!(
                "warning: program `{}` cannot be decided: bpfkit does not model {} yet\n  --> {}: insn {}: {}\n   = note: no verdict is claimed; load it into a kernel to decide ({})\n",
                rep.program, what, object, insn, insn_text(prog, *insn), stats
            ));
        }
        Verdict::Rejected(r) => {
            let mut lines = r.kernel_message.lines();
            let head = lines.next().unwrap_or("");
            s.push_str(&format!(
                "error: program `{}` rejected: {}\n",
                rep.program, head
            ));
            let origin = prog.origins.get(r.insn);
            match origin_line(prog, r.insn) {
                Some(l) => {
                    s.push_str(&format!("  --> {}:{}:{}\n", l.file, l.line, l.column));
                    let w = l.line.to_string().len();
                    let pad = " ".repeat(w);
                    s.push_str(&format!("{pad} |\n{} | {}\n", l.line, l.text.trim_end()));
                    let col = (l.column as usize).max(1);
                    s.push_str(&format!("{pad} | {}^\n{pad} |\n", " ".repeat(col - 1)));
                }
                None => s.push_str(&format!("  --> {}\n", object)),
            }
            let fun = origin
                .map(|o| format!(" in `{}` (section {})", o.function, o.section))
                .unwrap_or_default();
            s.push_str(&format!(
                "   = insn {}{}: {}\n",
                r.insn,
                fun,
                insn_text(prog, r.insn)
            ));
            s.push_str(&format!("   = kernel: {}\n", head));
            for l in lines {
                s.push_str(&format!("             {}\n", l));
            }
            if !r.regs.is_empty() {
                let regs: Vec<String> = r
                    .regs
                    .iter()
                    .map(|d| format!("R{}={}", d.reg, d.state))
                    .collect();
                s.push_str(&format!("   = state: {}\n", regs.join(" ")));
            }
            if !r.path.is_empty() {
                let p: Vec<String> = r
                    .path
                    .iter()
                    .map(|d| format!("{}:{}", d.insn, if d.taken { "taken" } else { "not taken" }))
                    .collect();
                s.push_str(&format!(
                    "   = path (last branch decisions): {}\n",
                    p.join(" -> ")
                ));
            }
            if let Some(h) = &r.hint {
                s.push_str(&format!("   = help: {}\n", h));
            }
            s.push_str(&format!("   = note: {}\n", stats));
            for n in &rep.notes {
                s.push_str(&format!("   = note: {n}\n"));
            }
        }
    }
    s
}

/// JSON object for one report (plus source position when known).
pub fn json(prog: &LinkedProgram, rep: &Report, object: &str) -> Value {
    let mut v = serde_json::to_value(rep).expect("report serialises");
    v["object"] = json!(object);
    if let Verdict::Rejected(r) = &rep.verdict {
        if let Some(l) = origin_line(prog, r.insn) {
            v["source"] =
                json!({"file": l.file, "line": l.line, "column": l.column, "text": l.text});
        }
    }
    v
}

/// Options of [`sarif`].
#[derive(Clone, Debug, Default)]
pub struct SarifOptions {
    /// bpfkit's version, for `tool.driver.version`.
    pub tool_version: String,
    /// Repository root: source paths from the line info are made relative to it (and
    /// given the `SRCROOT` base), so code scanning finds them in the repository.
    pub source_root: Option<std::path::PathBuf>,
    /// Only results for problems (rejected, undecided, unreadable): accepted programs get
    /// no `pass` result. GitHub code scanning shows every result as an alert, whatever
    /// its `kind`.
    pub problems_only: bool,
}

/// `path` as a SARIF URI reference (`uri-reference`): characters outside RFC 3986's
/// unreserved, sub-delims, `:`, `@` and `/` are percent-encoded (a space, `%`, `#`,
/// `?`, non-ASCII bytes).
pub fn uri_reference(path: &str) -> String {
    let mut s = String::with_capacity(path.len());
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/!$&'()*+,;=:@".contains(&b) {
            s.push(b as char);
        } else {
            s.push_str(&format!("%{b:02X}"));
        }
    }
    s
}

/// A stable rule id for a kernel message: its leading words, without numbers, registers
/// and names (`invalid access to packet, off=12 ...` → `bpf-verifier/invalid-access-to-packet`).
pub fn rule_id(kernel_message: &str) -> String {
    let head = kernel_message.lines().next().unwrap_or("");
    let head = head.split([',', ':', '(', '=']).next().unwrap_or(head);
    let words: Vec<String> = head
        .split_whitespace()
        // Registers (`R2`), numbers, helper names and quoted names vary per program.
        .filter(|w| {
            !w.contains('#')
                && !w.chars().any(|c| c.is_ascii_digit())
                && !w.starts_with("bpf_")
                && !w.starts_with('`')
        })
        .map(|w| {
            w.chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect::<String>()
                .to_lowercase()
                .replace('_', "-")
        })
        .filter(|w| !w.is_empty())
        .take(6)
        .collect();
    if words.is_empty() {
        "bpf-verifier/reject".into()
    } else {
        format!("bpf-verifier/{}", words.join("-"))
    }
}

/// The SARIF location of a source file named by line info, relative to `root` when it
/// can be found below it (next to the object or an ancestor directory, or the current one).
fn source_uri(file: &str, object: &str, root: Option<&std::path::Path>) -> (String, bool) {
    use std::path::{Path, PathBuf};
    let Some(root) = root.and_then(|r| r.canonicalize().ok()) else {
        return (file.to_string(), false);
    };
    let f = Path::new(file);
    let obj_dir = Path::new(object).parent().unwrap_or(Path::new("."));
    let candidates: Vec<PathBuf> = if f.is_absolute() {
        vec![f.to_path_buf()]
    } else {
        // The compile directory is not recorded: try the object's directory and each of
        // its ancestors, then the current directory and the root.
        let abs_obj_dir = obj_dir
            .canonicalize()
            .unwrap_or_else(|_| obj_dir.to_path_buf());
        abs_obj_dir
            .ancestors()
            .map(|a| a.join(f))
            .chain([f.to_path_buf(), root.join(f)])
            .collect()
    };
    for c in candidates {
        if let Ok(c) = c.canonicalize() {
            if let Ok(rel) = c.strip_prefix(&root) {
                return (rel.to_string_lossy().into_owned(), true);
            }
        }
    }
    (file.trim_start_matches("./").to_string(), false)
}

/// The location of an object file itself: relative to the source root (with the `SRCROOT`
/// base) when it lies below it.
fn object_location(object: &str, opts: &SarifOptions) -> Value {
    let rel = opts.source_root.as_ref().and_then(|r| {
        let root = r.canonicalize().ok()?;
        let abs = std::path::Path::new(object).canonicalize().ok()?;
        Some(abs.strip_prefix(&root).ok()?.to_string_lossy().into_owned())
    });
    let art = match rel {
        Some(rel) => json!({"uri": uri_reference(&rel), "uriBaseId": "SRCROOT"}),
        None => json!({"uri": uri_reference(object)}),
    };
    json!({"physicalLocation": {"artifactLocation": art}})
}

/// A SARIF 2.1.0 log with one result per program: rejected (`error`), undecided
/// (`warning`) or accepted (`kind: "pass"`, unless `opts.problems_only`), and one per
/// object that could not be read (`errors`: object path, message). `items` are (object
/// path, program, report).
pub fn sarif(
    items: &[(&str, &LinkedProgram, &Report)],
    errors: &[(&str, &str)],
    opts: &SarifOptions,
) -> Value {
    let mut results = vec![];
    let mut rules: std::collections::BTreeMap<String, String> = Default::default();
    for &(object, prog, rep) in items {
        let (rule, kind, level, msg, insn) = match &rep.verdict {
            Verdict::Accepted if opts.problems_only => continue,
            Verdict::Accepted => {
                rules
                    .entry("bpf-verifier/accepted".into())
                    .or_insert_with(|| "The Linux verifier would accept the program".into());
                (
                    "bpf-verifier/accepted".to_string(),
                    "pass",
                    "none",
                    format!("program `{}` accepted by the verifier", rep.program),
                    0,
                )
            }
            Verdict::Rejected(r) => {
                let mut m = format!(
                    "program `{}` rejected by the verifier: {}",
                    rep.program,
                    r.kernel_message.replace('\n', "; ")
                );
                if let Some(h) = &r.hint {
                    m.push_str(&format!(". Hint: {h}"));
                }
                let id = rule_id(&r.kernel_message);
                rules.entry(id.clone()).or_insert_with(|| {
                    format!(
                        "The Linux verifier would reject the program: {}",
                        r.kernel_message.lines().next().unwrap_or("")
                    )
                });
                (id, "fail", "error", m, r.insn)
            }
            Verdict::Unsupported { insn, what } => {
                rules
                    .entry("bpf-verifier/undecided".into())
                    .or_insert_with(|| "bpfkit cannot decide this program yet".into());
                (
                    "bpf-verifier/undecided".to_string(),
                    "fail",
                    "warning",
                    format!(
                        "program `{}` cannot be decided: bpfkit does not model {} yet",
                        rep.program, what
                    ),
                    *insn,
                )
            }
        };
        let loc = match origin_line(prog, insn) {
            Some(l) => {
                let (uri, rooted) = source_uri(&l.file, object, opts.source_root.as_deref());
                let mut art = json!({"uri": uri_reference(&uri)});
                if rooted {
                    art["uriBaseId"] = json!("SRCROOT");
                }
                json!({"physicalLocation": {
                    "artifactLocation": art,
                    "region": {"startLine": l.line.max(1), "startColumn": l.column.max(1), "snippet": {"text": l.text}}
                }})
            }
            None => object_location(object, opts),
        };
        results.push(json!({
            "ruleId": rule,
            "kind": kind,
            "level": level,
            "message": {"text": msg},
            "locations": [loc],
            "properties": {"program": rep.program, "insn": insn, "object": object}
        }));
    }
    for &(object, message) in errors {
        rules
            .entry("bpf-object/unreadable".into())
            .or_insert_with(|| {
                "The object cannot be read (not a BPF ELF file, truncated or malformed)".into()
            });
        results.push(json!({
            "ruleId": "bpf-object/unreadable",
            "kind": "fail",
            "level": "error",
            "message": {"text": message},
            "locations": [object_location(object, opts)],
            "properties": {"object": object}
        }));
    }
    let mut run = json!({
        "tool": {"driver": {
            "name": "bpfkit-verify",
            "version": opts.tool_version,
            "semanticVersion": opts.tool_version,
            "informationUri": "https://example.invalid/bpfkit",
            "rules": rules.iter().map(|(id, d)| json!({"id": id, "shortDescription": {"text": d}})).collect::<Vec<_>>()
        }},
        "results": results
    });
    if let Some(root) = opts
        .source_root
        .as_ref()
        .and_then(|r| r.canonicalize().ok())
    {
        run["originalUriBaseIds"] = json!({"SRCROOT": {"uri": format!("file://{}/", uri_reference(&root.to_string_lossy()))}});
    }
    json!({
        "version": "2.1.0",
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "runs": [run]
    })
}

/// veristat's CSV header (`veristat -o csv`, its default CSV columns), so that
/// `veristat -C` reads bpfkit's files and `bpfkit verify --compare` reads veristat's.
pub const CSV_HEADER: &str = "file_name,prog_name,verdict,duration,total_insns,total_states,peak_states,max_states_per_insn,max_mark_read_len,prog_size,prog_size_jited,prog_type,attach_type,stack_depth,mem_peak";

/// The file name veristat prints: the object's base name.
pub fn csv_file_name(object: &str) -> &str {
    object.rsplit('/').next().unwrap_or(object)
}

/// libbpf's name of an XDP program's attach type.
fn attach_type_name(prog: &LinkedProgram) -> &'static str {
    match prog.expected_attach_type {
        Some(33) => "xdp_devmap",
        Some(35) => "xdp_cpumap",
        _ => "xdp",
    }
}

/// One veristat CSV row. veristat knows only `success` and `failure`: an undecided
/// program is written as `failure` (bpfkit claims no acceptance), and `verify` says so on
/// stderr.
pub fn csv_row(prog: &LinkedProgram, rep: &Report, object: &str) -> String {
    let verdict = match rep.verdict {
        Verdict::Accepted => "success",
        Verdict::Rejected(_) | Verdict::Unsupported { .. } => "failure",
    };
    let stack: u32 = rep.stats.stack_depth.iter().sum();
    format!(
        "{},{},{},{},{},{},{},{},0,{},0,{},{},{},0",
        csv_file_name(object),
        rep.program,
        verdict,
        rep.stats.duration_us,
        rep.stats.processed_insns,
        rep.stats.total_states,
        rep.stats.peak_states,
        rep.stats.max_states_per_insn,
        prog.insns.len(),
        bpfkit_target::prog_type_name(prog.prog_type).unwrap_or("unspec"),
        attach_type_name(prog),
        stack
    )
}

/// The program name of the CSV row of an object that could not be read.
pub const CSV_UNREADABLE: &str = "<unreadable>";

/// A CSV row for an object that could not be read: veristat's columns, verdict `failure`,
/// program [`CSV_UNREADABLE`]. No field is empty: veristat splits lines with `strtok_r`,
/// which runs adjacent commas together, so an empty field shifts the columns after it
/// and `veristat -C` refuses the file ("Unrecognized verification verdict").
pub fn csv_error_row(object: &str) -> String {
    format!(
        "{},{CSV_UNREADABLE},failure,0,0,0,0,0,0,0,0,unspec,xdp,0,0",
        csv_file_name(object)
    )
}

/// One row of a veristat-style CSV (ours or veristat's).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CsvRow {
    pub file_name: String,
    pub prog_name: String,
    pub success: bool,
    pub duration: i64,
    pub total_insns: i64,
    pub total_states: i64,
    pub peak_states: i64,
}

/// Reads a veristat CSV (`veristat -o csv`, any column order; veristat's column aliases).
pub fn parse_csv(text: &str) -> Result<Vec<CsvRow>, String> {
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let (_, header) = lines.next().ok_or("empty file (no CSV header)")?;
    let cols: Vec<&str> = header.split(',').map(str::trim).collect();
    let find = |names: &[&str]| cols.iter().position(|c| names.contains(c));
    let need = |names: &[&str]| {
        find(names).ok_or_else(|| format!("header has no `{}` column: {header}", names[0]))
    };
    let (f, p, v) = (
        need(&["file_name", "filename", "file"])?,
        need(&["prog_name", "progname", "prog"])?,
        need(&["verdict"])?,
    );
    let d = find(&["duration", "dur"]);
    let i = find(&["total_insns", "insns"]);
    let t = find(&["total_states", "states"]);
    let k = find(&["peak_states"]);
    let mut out = Vec::new();
    for (n, l) in lines {
        let c: Vec<&str> = l.split(',').map(str::trim).collect();
        if c.len() != cols.len() {
            return Err(format!(
                "line {}: {} fields, the header has {}",
                n + 1,
                c.len(),
                cols.len()
            ));
        }
        let num = |ix: Option<usize>, what: &str| -> Result<i64, String> {
            match ix {
                None => Ok(0),
                Some(ix) => c[ix]
                    .parse()
                    .map_err(|_| format!("line {}: {what} `{}` is not an integer", n + 1, c[ix])),
            }
        };
        let success = match c[v] {
            "success" => true,
            "failure" => false,
            other => {
                return Err(format!(
                    "line {}: verdict `{other}` is neither success nor failure",
                    n + 1
                ))
            }
        };
        out.push(CsvRow {
            file_name: c[f].to_string(),
            prog_name: c[p].to_string(),
            success,
            duration: num(d, "duration")?,
            total_insns: num(i, "total_insns")?,
            total_states: num(t, "total_states")?,
            peak_states: num(k, "peak_states")?,
        });
    }
    Ok(out)
}

/// `veristat -C A B` for two CSVs: one line per (file, program) of either side, with
/// verdicts and instruction/state counts of both and their difference. Returns the table
/// and whether any program went from success to failure (or disappeared).
pub fn compare_csv(a: &[CsvRow], b: &[CsvRow]) -> (String, bool) {
    use std::collections::BTreeMap;
    let key = |r: &CsvRow| (r.file_name.clone(), r.prog_name.clone());
    let am: BTreeMap<_, _> = a.iter().map(|r| (key(r), r)).collect();
    let bm: BTreeMap<_, _> = b.iter().map(|r| (key(r), r)).collect();
    let mut keys: Vec<_> = am.keys().chain(bm.keys()).cloned().collect();
    keys.sort();
    keys.dedup();
    let verdict = |r: Option<&&CsvRow>| match r {
        None => "N/A",
        Some(r) if r.success => "success",
        Some(_) => "failure",
    };
    let num = |r: Option<&&CsvRow>, f: fn(&CsvRow) -> i64| r.map(|r| f(r));
    let diff = |x: Option<i64>, y: Option<i64>| match (x, y) {
        (Some(x), Some(y)) => {
            let pct = if x != 0 {
                format!(" ({:+.2}%)", (y - x) as f64 * 100.0 / x as f64)
            } else {
                String::new()
            };
            format!("{:+}{pct}", y - x)
        }
        _ => "N/A".into(),
    };
    let show = |x: Option<i64>| x.map_or("N/A".to_string(), |v| v.to_string());
    let mut rows = vec![[
        "File".to_string(),
        "Program".into(),
        "Verdict (A)".into(),
        "Verdict (B)".into(),
        "Verdict (DIFF)".into(),
        "Insns (A)".into(),
        "Insns (B)".into(),
        "Insns (DIFF)".into(),
        "States (A)".into(),
        "States (B)".into(),
        "States (DIFF)".into(),
    ]];
    let mut regressed = false;
    for k in &keys {
        let (ra, rb) = (am.get(k), bm.get(k));
        let (va, vb) = (verdict(ra), verdict(rb));
        if va == "success" && vb != "success" {
            regressed = true;
        }
        let (ia, ib) = (num(ra, |r| r.total_insns), num(rb, |r| r.total_insns));
        let (sa, sb) = (num(ra, |r| r.total_states), num(rb, |r| r.total_states));
        rows.push([
            k.0.clone(),
            k.1.clone(),
            va.into(),
            vb.into(),
            if va == vb {
                "MATCH".into()
            } else {
                "MISMATCH".into()
            },
            show(ia),
            show(ib),
            diff(ia, ib),
            show(sa),
            show(sb),
            diff(sa, sb),
        ]);
    }
    let mut w = [0usize; 11];
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(c.len());
        }
    }
    let mut out = String::new();
    for (n, r) in rows.iter().enumerate() {
        let line: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<width$}", width = w[i]))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
        if n == 0 {
            let dashes: Vec<String> = w.iter().map(|&n| "-".repeat(n)).collect();
            out.push_str(&dashes.join("  "));
            out.push('\n');
        }
    }
    (out, regressed)
}
