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

/// A SARIF 2.1.0 log with one result per rejected (error) or undecided (warning) program.
/// `items` are (object path, program, report).
pub fn sarif(items: &[(&str, &LinkedProgram, &Report)]) -> Value {
    let mut results = vec![];
    for &(object, prog, rep) in items {
        let (rule, level, msg, insn) = match &rep.verdict {
            Verdict::Accepted => continue,
            Verdict::Rejected(r) => {
                let mut m = format!(
                    "program `{}` rejected by the verifier: {}",
                    rep.program,
                    r.kernel_message.replace('\n', "; ")
                );
                if let Some(h) = &r.hint {
                    m.push_str(&format!(". Hint: {h}"));
                }
                ("bpf-verifier-reject", "error", m, r.insn)
            }
            Verdict::Unsupported { insn, what } => (
                "bpf-verifier-undecided",
                "warning",
                format!(
                    "program `{}` cannot be decided: bpfkit does not model {} yet",
                    rep.program, what
                ),
                *insn,
            ),
        };
        let loc = match origin_line(prog, insn) {
            Some(l) => json!({"physicalLocation": {
                "artifactLocation": {"uri": l.file},
                "region": {"startLine": l.line.max(1), "startColumn": l.column.max(1), "snippet": {"text": l.text}}
            }}),
            None => json!({"physicalLocation": {"artifactLocation": {"uri": object}}}),
        };
        results.push(json!({
            "ruleId": rule,
            "level": level,
            "message": {"text": msg},
            "locations": [loc],
            "properties": {"program": rep.program, "insn": insn, "object": object}
        }));
    }
    json!({
        "version": "2.1.0",
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "runs": [{
            "tool": {"driver": {
                "name": "bpfkit-verify",
                "informationUri": "https://example.invalid/bpfkit",
                "rules": [
                    {"id": "bpf-verifier-reject", "shortDescription": {"text": "The Linux verifier would reject this program"}},
                    {"id": "bpf-verifier-undecided", "shortDescription": {"text": "bpfkit cannot decide this program yet"}}
                ]
            }},
            "results": results
        }]
    })
}

/// veristat's CSV header.
pub const CSV_HEADER: &str =
    "file_name,prog_name,verdict,duration,total_insns,total_states,peak_states";

/// One veristat CSV row (`verdict` is `success`/`failure`, `unknown` when undecided).
pub fn csv_row(rep: &Report, object: &str) -> String {
    let verdict = match rep.verdict {
        Verdict::Accepted => "success",
        Verdict::Rejected(_) => "failure",
        Verdict::Unsupported { .. } => "unknown",
    };
    format!(
        "{},{},{},{},{},{},{}",
        object,
        rep.program,
        verdict,
        rep.stats.duration_us,
        rep.stats.processed_insns,
        rep.stats.total_states,
        rep.stats.peak_states
    )
}
