//! `bpfkit verify` as a CI gate over many files: a malformed object is an error entry and
//! every format stays complete; veristat's CSV columns; `--compare` as `veristat -C`;
//! SARIF with repository-relative paths, a tool version and rule ids per message kind.

use std::path::{Path, PathBuf};
use std::process::Command;

fn bpfkit() -> Command {
    Command::new(env!("CARGO_BIN_EXE_bpfkit"))
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("bpfkit-gate-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d.join(name)
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
    assert!(lines[2].starts_with("garbage.o,,failure,"), "{csv}");
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
    assert_eq!(results.len(), 2, "{s}");
    assert_eq!(
        results[0]["ruleId"],
        "bpf-verifier/invalid-access-to-packet"
    );
    let art = &results[0]["locations"][0]["physicalLocation"]["artifactLocation"];
    assert_eq!(art["uri"], "corpus/rejected/unchecked_access.c", "{s}");
    assert_eq!(art["uriBaseId"], "SRCROOT");
    assert_eq!(results[1]["ruleId"], "bpf-object/unreadable");
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
