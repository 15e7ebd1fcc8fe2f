//! `bpfkit verify` as a CI gate over many files: a malformed object is an error entry and
//! every format stays complete; veristat's CSV columns; `--compare` as `veristat -C`;
//! SARIF with repository-relative paths, a tool version and rule ids per message kind.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

fn bpfkit() -> Command {
    Command::new(env!("CARGO_BIN_EXE_bpfkit"))
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn tmp(name: &str) -> PathBuf {
    common::scratch(name)
}

fn files() -> Vec<PathBuf> {
    let bad = tmp("garbage.o");
    std::fs::write(&bad, b"not an ELF file at all").unwrap();
    vec![
        root().join("corpus/obj/xdp_counter.o"),
        bad,
        root().join("corpus/obj/rejected/unchecked_access.o"),
    ]
}

#[test]
fn a_malformed_object_is_an_entry_in_every_format() {
    let f = files();
    // JSON: one entry per program and one for the bad file.
    let o = bpfkit()
        .args(["verify", "--format", "json"])
        .args(&f)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let a = v.as_array().unwrap();
    assert_eq!(a.len(), 3, "{v}");
    assert!(a[1]["error"].as_str().unwrap().contains("garbage.o"), "{v}");
    assert_eq!(a[2]["verdict"], "rejected");
    // CSV: header and three rows, veristat's verdict words only.
    let o = bpfkit()
        .args(["verify", "--format", "csv"])
        .args(&f)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let csv = String::from_utf8(o.stdout).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 4, "{csv}");
    assert!(lines[0].starts_with("file_name,prog_name,verdict,duration,total_insns,total_states,peak_states,max_states_per_insn"));
    assert!(
        lines[1].starts_with("xdp_counter.o,xdp_count,success,"),
        "{csv}"
    );
    assert!(
        lines[2].starts_with("garbage.o,<unreadable>,failure,"),
        "{csv}"
    );
    assert!(
        lines[3].starts_with("unchecked_access.o,unchecked_access,failure,"),
        "{csv}"
    );
    let rows = bpfkit_verifier::render::parse_csv(&csv).unwrap();
    assert_eq!(rows.len(), 3);
    // SARIF: a result for the rejected program and one for the bad file; the source path
    // relative to the repository; a version; a rule per message kind.
    let o = bpfkit()
        .args(["verify", "--format", "sarif", "--source-root"])
        .arg(root())
        .args(&f)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let s: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let run = &s["runs"][0];
    assert_eq!(run["tool"]["driver"]["version"], env!("CARGO_PKG_VERSION"));
    let results = run["results"].as_array().unwrap();
    assert_eq!(results.len(), 3, "{s}");
    assert_eq!(results[0]["ruleId"], "bpf-verifier/accepted");
    assert_eq!(results[0]["kind"], "pass");
    assert_eq!(
        results[1]["ruleId"],
        "bpf-verifier/invalid-access-to-packet"
    );
    let art = &results[1]["locations"][0]["physicalLocation"]["artifactLocation"];
    assert_eq!(art["uri"], "corpus/rejected/unchecked_access.c", "{s}");
    assert_eq!(art["uriBaseId"], "SRCROOT");
    assert_eq!(results[2]["ruleId"], "bpf-object/unreadable");
    let rules: Vec<&str> = run["tool"]["driver"]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    for r in results {
        assert!(rules.contains(&r["ruleId"].as_str().unwrap()), "{s}");
    }
}

/// The official SARIF 2.1.0 schema (OASIS, errata 01; see tests/data/sarif/SOURCE.md).
fn sarif_validator() -> jsonschema::Validator {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/sarif/sarif-schema-2.1.0.json");
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    // The schema declares draft-04 but uses draft-06's `uri-reference` format (for every
    // `artifactLocation.uri`), which a draft-04 validator ignores: check it as RFC 3986
    // reads it.
    jsonschema::options()
        .should_validate_formats(true)
        .with_format("uri-reference", is_uri_reference)
        .build(&schema)
        .expect("the SARIF schema compiles")
}

/// RFC 3986 `URI-reference`, as far as characters go: unreserved, sub-delims, `:`, `@`,
/// `/`, `?`, percent-encodings (`%` and two hex digits), at most one `#` (the fragment).
fn is_uri_reference(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    let mut fragment = false;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = |j: usize| b.get(j).is_some_and(|c| c.is_ascii_hexdigit());
                if !(hex(i + 1) && hex(i + 2)) {
                    return false;
                }
                i += 2;
            }
            b'#' if !fragment => fragment = true,
            c if c.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/?".contains(&c) => {}
            _ => return false,
        }
        i += 1;
    }
    true
}

fn schema_errors(v: &jsonschema::Validator, doc: &serde_json::Value) -> Vec<String> {
    v.iter_errors(doc)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

/// A multi-file SARIF log with a malformed object validates against the SARIF 2.1.0
/// schema, and has one result per program (and one per unreadable file).
#[test]
fn sarif_validates_against_the_sarif_2_1_0_schema() {
    let validator = sarif_validator();
    // The validator does reject a log that breaks the schema (a level SARIF lacks, a
    // result without a message).
    let broken = serde_json::json!({"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "x"}},
        "results": [{"level": "fatal", "ruleId": "r"}]}]});
    assert!(schema_errors(&validator, &broken).len() >= 2);
    // Formats are checked: a URI reference with a space and a `#` in a path is refused.
    let raw_uri = serde_json::json!({"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "x"}},
        "results": [{"message": {"text": "m"}, "locations": [{"physicalLocation":
            {"artifactLocation": {"uri": "dir/bad #1#.o"}}}]}]}]});
    assert_eq!(schema_errors(&validator, &raw_uri).len(), 1, "{raw_uri}");

    let d = tmp("sarif files");
    std::fs::create_dir_all(&d).unwrap();
    // A name that needs percent-encoding in a URI.
    let bad = d.join("bad #1.o");
    std::fs::write(&bad, b"\x7fELF truncated").unwrap();
    let objs = [
        root().join("corpus/obj/xdp_counter.o"),
        bad.clone(),
        root().join("corpus/obj/xdp_multi.o"),
        root().join("corpus/obj/rejected/unchecked_access.o"),
        root().join("corpus/obj/rejected/map_value_oob.o"),
    ];
    // The programs, from the JSON output.
    let o = bpfkit()
        .args(["verify", "--format", "json"])
        .args(&objs)
        .output()
        .unwrap();
    let entries: Vec<serde_json::Value> = serde_json::from_slice(&o.stdout).unwrap();
    let programs: Vec<(String, String)> = entries
        .iter()
        .filter(|e| e["error"].is_null())
        .map(|e| {
            (
                e["object"].as_str().unwrap().to_string(),
                e["program"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(programs.len() >= 5, "{entries:?}");
    for (root_arg, problems_only) in [(None, false), (Some(root()), false), (Some(root()), true)] {
        let mut c = bpfkit();
        c.args(["verify", "--format", "sarif"]);
        if let Some(r) = &root_arg {
            c.arg("--source-root").arg(r);
        }
        if problems_only {
            c.arg("--sarif-problems-only");
        }
        let o = c.args(&objs).output().unwrap();
        assert_eq!(o.status.code(), Some(1));
        let doc: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let errs = schema_errors(&validator, &doc);
        assert!(
            errs.is_empty(),
            "SARIF fails the schema: {errs:#?}\n{doc:#}"
        );
        let results = doc["runs"][0]["results"].as_array().unwrap();
        // One result per program (only the problems with --sarif-problems-only), one for
        // the malformed file.
        for (obj, prog) in &programs {
            let n = results
                .iter()
                .filter(|r| {
                    r["properties"]["object"] == obj.as_str()
                        && r["properties"]["program"] == prog.as_str()
                })
                .count();
            let accepted = entries.iter().any(|e| {
                e["object"] == obj.as_str()
                    && e["program"] == prog.as_str()
                    && e["verdict"] == "accepted"
            });
            let want = usize::from(!(problems_only && accepted));
            assert_eq!(n, want, "results for {obj} {prog}: {doc:#}");
        }
        let unreadable: Vec<_> = results
            .iter()
            .filter(|r| r["ruleId"] == "bpf-object/unreadable")
            .collect();
        assert_eq!(unreadable.len(), 1, "{doc:#}");
        let uri = unreadable[0]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
            .as_str()
            .unwrap();
        assert!(uri.ends_with("bad%20%231.o"), "{uri}");
        let accepted = entries
            .iter()
            .filter(|e| e["verdict"] == "accepted")
            .count();
        assert!(accepted >= 1 && accepted < programs.len());
        let want_results = programs.len() + 1 - if problems_only { accepted } else { 0 };
        assert_eq!(results.len(), want_results, "{doc:#}");
        if problems_only {
            assert!(results.iter().all(|r| r["kind"] == "fail"), "{doc:#}");
        }
    }
}

#[test]
fn compare_reads_veristat_csv_and_fails_on_a_regression() {
    // A CSV as veristat writes it (its header names and column order).
    let old = tmp("old.csv");
    std::fs::write(
        &old,
        "file_name,prog_name,verdict,duration,total_insns,total_states,peak_states,max_states_per_insn,max_mark_read_len,prog_size,prog_size_jited,prog_type,attach_type,stack_depth,mem_peak\n\
         xdp_counter.o,xdp_count,success,120,145,12,12,1,0,123,600,xdp,xdp,32,0\n\
         unchecked_access.o,unchecked_access,failure,5,2,0,0,0,0,9,0,xdp,xdp,0,0\n",
    )
    .unwrap();
    let new = tmp("new.csv");
    let o = bpfkit()
        .args(["verify", "--format", "csv"])
        .arg(root().join("corpus/obj/xdp_counter.o"))
        .arg(root().join("corpus/obj/rejected/unchecked_access.o"))
        .output()
        .unwrap();
    std::fs::write(&new, &o.stdout).unwrap();
    let o = bpfkit()
        .args(["verify", "--compare"])
        .arg(&old)
        .arg(&new)
        .output()
        .unwrap();
    let t = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{t}");
    assert!(t.contains("xdp_count") && t.contains("MATCH"), "{t}");
    // The same with the counter failing in NEW: a regression, exit 1.
    let worse = tmp("worse.csv");
    std::fs::write(
        &worse,
        std::fs::read_to_string(&new)
            .unwrap()
            .replace("xdp_count,success", "xdp_count,failure"),
    )
    .unwrap();
    let o = bpfkit()
        .args(["verify", "--compare"])
        .arg(&old)
        .arg(&worse)
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    assert!(String::from_utf8_lossy(&o.stdout).contains("MISMATCH"));
    // A verdict veristat does not write is an input error naming the line.
    let bad = tmp("bad.csv");
    std::fs::write(&bad, "file_name,prog_name,verdict\nx.o,p,unknown\n").unwrap();
    let o = bpfkit()
        .args(["verify", "--compare"])
        .arg(&bad)
        .arg(&new)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("line 2"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// `SEC("xdp_stats")` and a map sized at load time, as xdp-tutorial and xdp-bench write
/// them: `--prog-type xdp` and `--map-max-entries` do what their loaders do.
#[test]
fn old_style_sections_and_load_time_map_sizes() {
    let obj = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/xdp_old_style.o");
    let o = bpfkit().arg("verify").arg(&obj).output().unwrap();
    assert_eq!(o.status.code(), Some(1), "undecided without --prog-type");
    let o = bpfkit()
        .args(["verify", "--prog-type", "xdp"])
        .arg(&obj)
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(String::from_utf8_lossy(&o.stderr)
        .contains("section `xdp_stats`, which libbpf does not recognise"));
    let pcap = root().join("corpus/pcap/mixed.pcap");
    let o = bpfkit()
        .args(["replay", "--prog-type", "xdp"])
        .arg(&obj)
        .arg(&pcap)
        .output()
        .unwrap();
    assert_ne!(
        o.status.code(),
        Some(0),
        "a 0-entry array cannot be created"
    );
    let out = tmp("old_style_maps.json");
    let o = bpfkit()
        .args([
            "replay",
            "--prog-type",
            "xdp",
            "--map-max-entries",
            "rx_count=4",
            "--maps-out",
        ])
        .arg(&out)
        .arg(&obj)
        .arg(&pcap)
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let maps = std::fs::read_to_string(&out).unwrap();
    assert!(maps.contains("rx_count"), "{maps}");
    for bad in ["rx_count", "rx_count=x", "nosuch=4", "rx_count=0"] {
        let o = bpfkit()
            .args(["verify", "--prog-type", "xdp", "--map-max-entries", bad])
            .arg(&obj)
            .output()
            .unwrap();
        assert_ne!(o.status.code(), Some(0), "--map-max-entries {bad}");
    }
}

/// The corpus objects veristat's committed CSV was written from (see
/// tests/data/veristat/SOURCE.md): every `.o` of corpus/obj and corpus/obj/rejected.
fn corpus_objects() -> Vec<PathBuf> {
    let mut v = vec![];
    for dir in ["corpus/obj", "corpus/obj/rejected"] {
        let mut files: Vec<PathBuf> = std::fs::read_dir(root().join(dir))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "o"))
            .collect();
        files.sort();
        v.extend(files);
    }
    v
}

/// Programs whose veristat verdict is `failure` for a reason that is not the verifier's:
/// veristat loads one program at a time and libbpf cannot fill PROG_ARRAY slots naming
/// programs it did not load (tests/data/veristat/SOURCE.md).
const VERISTAT_LOAD_ARTEFACTS: [&str; 2] = ["xdp_tailcall.o", "xdp_tailchain.o"];

/// `bpfkit verify --compare` reads veristat's own CSV (committed, written by veristat on
/// Linux 6.18), and bpfkit's verdicts equal the kernel's there.
#[test]
fn compare_reads_a_csv_written_by_veristat() {
    let theirs =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/veristat/corpus.veristat.csv");
    let text = std::fs::read_to_string(&theirs).unwrap();
    let rows = bpfkit_verifier::render::parse_csv(&text).unwrap();
    assert_eq!(rows.len(), text.lines().count() - 1);
    let ours = tmp("ours_corpus.csv");
    let o = bpfkit()
        .args(["verify", "--format", "csv"])
        .args(corpus_objects())
        .output()
        .unwrap();
    std::fs::write(&ours, &o.stdout).unwrap();
    let o = bpfkit()
        .args(["verify", "--compare"])
        .arg(&theirs)
        .arg(&ours)
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{table}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // Every program veristat verified is in the table with the same verdict, apart from
    // veristat's load artefacts.
    let mut checked = 0;
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        let row = table
            .lines()
            .find(|l| {
                let w: Vec<&str> = l.split_whitespace().collect();
                w.len() > 2 && w[0] == f[0] && w[1] == f[1]
            })
            .unwrap_or_else(|| panic!("{} {} not compared:\n{table}", f[0], f[1]));
        let w: Vec<&str> = row.split_whitespace().collect();
        if VERISTAT_LOAD_ARTEFACTS.contains(&f[0]) {
            assert_eq!((w[2], w[3]), ("failure", "success"), "{row}");
        } else {
            assert_eq!((w[2], w[3], w[4]), (f[2], f[2], "MATCH"), "{row}");
            checked += 1;
        }
    }
    assert!(checked >= 40, "{checked} programs compared");
}

/// A veristat binary: `BPFKIT_VERISTAT`, else `veristat` on PATH.
fn veristat() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("BPFKIT_VERISTAT") {
        let p = PathBuf::from(p);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(format!("BPFKIT_VERISTAT={} is not a file", p.display()))
        };
    }
    std::env::var_os("PATH")
        .and_then(|path| {
            std::env::split_paths(&path)
                .map(|d| d.join("veristat"))
                .find(|p| p.is_file())
        })
        .ok_or_else(|| {
            "no veristat on PATH and BPFKIT_VERISTAT unset (see docs/ci.md to build one)".into()
        })
}

/// With a real veristat: `veristat -C` reads bpfkit's CSV files, and (as root, with a
/// kernel that loads BPF) bpfkit reads the CSV veristat writes and agrees on verdicts.
#[test]
fn veristat_reads_our_csv_and_we_read_its() {
    let v = match veristat() {
        Ok(v) => v,
        Err(why) => {
            println!("SKIPPED: veristat_reads_our_csv_and_we_read_its: {why}");
            return;
        }
    };
    let objs = [
        root().join("corpus/obj/xdp_counter.o"),
        root().join("corpus/obj/xdp_multi.o"),
        root().join("corpus/obj/xdp_firewall.o"),
        root().join("corpus/obj/rejected/unchecked_access.o"),
    ];
    let ours = |files: &[PathBuf], name: &str| {
        let p = tmp(name);
        let o = bpfkit()
            .args(["verify", "--format", "csv"])
            .args(files)
            .output()
            .unwrap();
        // 1 when the rejected sample is among the files
        let want = if files.len() == objs.len() { 1 } else { 0 };
        assert_eq!(
            o.status.code(),
            Some(want),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
        std::fs::write(&p, &o.stdout).unwrap();
        p
    };
    let old = ours(&objs[..2], "vs_old.csv");
    let new = ours(&objs, "vs_new.csv");
    // With a malformed object: its row, too, is one veristat reads.
    let bad = tmp("vs_garbage.o");
    std::fs::write(&bad, b"not an ELF file").unwrap();
    let with_bad = tmp("vs_with_bad.csv");
    let o = bpfkit()
        .args(["verify", "--format", "csv"])
        .args(&objs)
        .arg(&bad)
        .output()
        .unwrap();
    std::fs::write(&with_bad, &o.stdout).unwrap();
    let o = Command::new(&v)
        .arg("-C")
        .arg(&new)
        .arg(&with_bad)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "veristat -C refused a CSV with an unreadable object's row: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(String::from_utf8_lossy(&o.stdout).contains("vs_garbage.o"));
    let o = Command::new(&v)
        .arg("-C")
        .arg(&old)
        .arg(&new)
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "veristat -C refused bpfkit's CSV: {}\n{table}",
        String::from_utf8_lossy(&o.stderr)
    );
    for prog in [
        "xdp_count",
        "xdp_drop_udp",
        "xdp_firewall",
        "unchecked_access",
    ] {
        assert!(table.contains(prog), "{prog} missing:\n{table}");
    }
    let counter = table.lines().find(|l| l.contains("xdp_count")).unwrap();
    assert!(
        counter.contains("success") && counter.contains("MATCH"),
        "{counter}"
    );

    // veristat's own CSV needs root and a kernel that loads BPF.
    if let Err(why) = bpfkit_loader::probe::kernel_available() {
        println!("SKIPPED: veristat_reads_our_csv_and_we_read_its (veristat -o csv): {why}");
        return;
    }
    let theirs = tmp("vs_theirs.csv");
    let o = Command::new(&v)
        .args(["-o", "csv"])
        .args(&objs)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    std::fs::write(&theirs, &o.stdout).unwrap();
    let o = bpfkit()
        .args(["verify", "--compare"])
        .arg(&theirs)
        .arg(&new)
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{table}");
    let rows = bpfkit_verifier::render::parse_csv(&String::from_utf8_lossy(
        &std::fs::read(&theirs).unwrap(),
    ))
    .unwrap();
    assert_eq!(rows.len(), 6, "{table}");
    assert_eq!(table.matches("MISMATCH").count(), 0, "{table}");
}
