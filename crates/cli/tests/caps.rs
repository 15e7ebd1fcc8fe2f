//! `--caps` on the command line (offline: no kernel needed): parsing and usage errors,
//! `--unprivileged` as `--caps bpf,net_admin`, EPERM for a set that cannot load XDP, and
//! the Spectre v1 rule that separates `bpf,net_admin` from root on a corpus object.
//! The comparison with the kernel is `crates/verifier/tests/caps.rs`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn corpus(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../corpus/obj")
        .join(name)
}

fn verify(args: &[&str], file: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bpfkit"))
        .arg("verify")
        .args(args)
        .arg(file)
        .output()
        .unwrap()
}

fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}\n{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    })
}

#[test]
fn bad_sets_are_usage_errors() {
    let f = corpus("xdp_csum.o");
    let o = verify(&["--caps", "bpf,cap_foo"], &f);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("unknown capability"));
    let o = verify(&["--caps", "bpf", "--unprivileged"], &f);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn sets_that_cannot_load_xdp_get_eperm() {
    let f = corpus("xdp_csum.o");
    for set in ["none", "bpf", "net_admin", "perfmon", "bpf,perfmon"] {
        let o = verify(&["--caps", set, "--format", "json"], &f);
        assert_eq!(o.status.code(), Some(1), "--caps {set}");
        let j = json(&o);
        assert_eq!(j[0]["verdict"], "rejected", "--caps {set}");
        assert_eq!(
            j[0]["kernel_message"], "bpf(BPF_PROG_LOAD) fails with EPERM (Operation not permitted)",
            "--caps {set}"
        );
    }
    for set in [
        "root",
        "sys_admin",
        "bpf,net_admin",
        "CAP_BPF,CAP_NET_ADMIN,CAP_PERFMON",
    ] {
        let o = verify(&["--caps", set], &f);
        assert_eq!(o.status.code(), Some(0), "--caps {set}");
    }
}

#[test]
fn packet_pointer_plus_register_needs_perfmon() {
    // xdp_calls moves a packet pointer by a register: root and CAP_PERFMON accept,
    // CAP_BPF + CAP_NET_ADMIN alone (and --unprivileged) get the Spectre v1 refusal
    let f = corpus("xdp_calls.o");
    for set in ["root", "bpf,perfmon,net_admin"] {
        assert_eq!(verify(&["--caps", set], &f).status.code(), Some(0), "{set}");
    }
    let a = json(&verify(
        &["--caps", "bpf,net_admin", "--format", "json"],
        &f,
    ));
    let b = json(&verify(&["--unprivileged", "--format", "json"], &f));
    assert_eq!(a[0]["kernel_message"], b[0]["kernel_message"]);
    let m = a[0]["kernel_message"].as_str().unwrap();
    assert!(
        m.ends_with("has pointer with unsupported alu operation, pointer arithmetic with it prohibited for !root"),
        "{m}"
    );
}
