//! `bpfkit verify --maps FILE.json`: PROG_ARRAY contents from a maps file (the
//! `bpfkit replay --maps-in` layout) feed the tail-call graph lint.

mod common;

use std::process::Command;

fn bpfkit(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_bpfkit"))
        .args(args)
        .output()
        .expect("run bpfkit");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn obj() -> String {
    concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../corpus/obj/xdp_tailcall.o"
    )
    .to_string()
}

fn write(name: &str, text: &str) -> String {
    let p = common::scratch(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

#[test]
fn maps_file_cycle_is_a_warning_or_with_deny_an_error() {
    let o = obj();
    let m = write(
        "cycle.json",
        r#"{"jmp_table": [[3, {"program": "xdp_dispatch"}]]}"#,
    );
    let (code, _, err) = bpfkit(&["verify", &o, "--maps", &m, "--format", "csv"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("warning:") && err.contains("tail-call cycle xdp_dispatch -> xdp_dispatch"),
        "{err}"
    );
    let (code, _, err) = bpfkit(&[
        "verify",
        &o,
        "--maps",
        &m,
        "--deny-tail-call-lints",
        "--format",
        "csv",
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("error:") && err.contains("tail-call cycle"),
        "{err}"
    );
    // without the maps file the object's `.values` make no cycle
    let (code, _, err) = bpfkit(&["verify", &o, "--deny-tail-call-lints", "--format", "csv"]);
    assert_eq!(code, 0, "{err}");
}

#[test]
fn bad_maps_files_are_usage_errors() {
    let o = obj();
    for (name, text, want) in [
        ("unknown_map.json", r#"{"nope": []}"#, "no map named `nope`"),
        (
            "unknown_prog.json",
            r#"{"jmp_table": [[0, {"program": "nosuch"}]]}"#,
            "no program `nosuch`",
        ),
        ("not_json.json", "{", "EOF"),
    ] {
        let m = write(name, text);
        let (code, _, err) = bpfkit(&["verify", &o, "--maps", &m]);
        assert_eq!(code, 2, "{name}: {err}");
        assert!(err.contains(want), "{name}: {err}");
    }
    let (code, _, err) = bpfkit(&["verify", &o, "--maps", "/nonexistent/maps.json"]);
    assert_eq!(code, 2, "{err}");
}
