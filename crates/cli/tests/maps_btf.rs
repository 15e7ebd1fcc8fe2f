//! Map contents people can read: with BTF, `--maps-out` shows each entry's decoded key
//! and value beside the hex (bpftool's `formatted`), and `--maps-in` takes that form back.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("bpfkit-mapsbtf-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d.join(name)
}

fn replay(extra: &[&str], maps_out: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_bpfkit"))
        .arg("replay")
        .arg(root().join("corpus/obj/xdp_counter.o"))
        .arg(root().join("corpus/pcap/mixed.pcap"))
        .arg("--maps-out")
        .arg(maps_out)
        .args(extra)
        .output()
        .unwrap()
}

#[test]
fn maps_out_decodes_with_btf_and_maps_in_takes_it_back() {
    let out = tmp("out.json");
    let o = replay(&[], &out);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    // A hash map keyed by __u16 ethertype (memory order) with struct datarec values.
    let ip = v["ethertype_stats"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["key"] == "0008")
        .unwrap();
    assert_eq!(ip["formatted"]["key"], 0x0800);
    let rec = &ip["formatted"]["value"];
    let hexv = ip["value"].as_str().unwrap();
    let packets = u64::from_str_radix(
        &hexv.as_bytes()[0..16]
            .chunks(2)
            .rev()
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect::<String>(),
        16,
    )
    .unwrap();
    assert_eq!(rec["packets"], packets, "{ip}");
    assert!(rec["bytes"].as_u64().unwrap() > 0);
    // Per-CPU values: one decoded value per CPU.
    let tcp = v["proto_stats"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["key"] == "06000000")
        .unwrap();
    assert!(
        tcp["formatted"]["value"].as_array().unwrap()[0]["value"]["packets"]
            .as_u64()
            .unwrap()
            > 0
    );

    // Decoded entries only, as a user would write them.
    let input = tmp("in.json");
    std::fs::write(
        &input,
        r#"{"ethertype_stats": [{"formatted": {"key": 4660, "value": {"packets": 7, "bytes": 700}}}],
            "verdicts": [[4, 99]]}"#,
    )
    .unwrap();
    let out2 = tmp("out2.json");
    let o = replay(
        &["--maps-in", input.to_str().unwrap(), "--limit", "0"],
        &out2,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out2).unwrap()).unwrap();
    let e = v["ethertype_stats"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["key"] == "3412")
        .unwrap();
    assert_eq!(e["formatted"]["value"]["packets"], 7);
    assert_eq!(e["formatted"]["value"]["bytes"], 700);
    let e = v["verdicts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["key"] == "04000000")
        .unwrap();
    assert_eq!(e["formatted"]["value"], 99);

    // A field the type does not have is an error naming it.
    std::fs::write(
        &input,
        r#"{"ethertype_stats": [{"formatted": {"key": 1, "value": {"pakets": 7}}}]}"#,
    )
    .unwrap();
    let o = replay(&["--maps-in", input.to_str().unwrap()], &out2);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("no field `pakets`"), "{err}");
}
