//! `--kernel TARGET` and `bpfkit probe`: answers for the kernel a user deploys on.
//!
//! - Version profiles answer as the first Linux release that has each feature, just
//!   below and at that release (no kernel needed).
//! - A probe file stands in for a kernel build that refuses `bpf_xdp_adjust_meta` in
//!   XDP (no kernel needed).
//! - With a usable kernel: `bpfkit probe` is stable and its XDP helper list is what
//!   one-call programs load; `verify --kernel live` gives `bpfkit load`'s verdict on every
//!   corpus object, also under `BPFKIT_KERNEL_DENY_HELPERS` (a kernel build without
//!   `bpf_xdp_adjust_meta`). Without one they print `SKIPPED: reason`.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bpfkit() -> Command {
    Command::new(env!("CARGO_BIN_EXE_bpfkit"))
}

fn corpus(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../corpus")
        .join(rel)
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn verify(kernel: &str, obj: &str, prog: &str) -> Output {
    bpfkit()
        .args(["verify", "--kernel", kernel, "--prog", prog])
        .arg(corpus(obj))
        .output()
        .unwrap()
}

/// (feature, object, program, release without it, message there, release with it)
const FIRST_RELEASES: &[(&str, &str, &str, &str, &str, &str)] = &[
    (
        "bpf_loop",
        "obj/xdp_loop.o",
        "xdp_bpf_loop",
        "5.16",
        "invalid func unknown#181",
        "5.17",
    ),
    (
        "ISA v4",
        "obj/xdp_v4.o",
        "xdp_v4",
        "6.5",
        "unknown opcode",
        "6.6",
    ),
    (
        "bpf_xdp_get_buff_len",
        "obj/xdp_frags.o",
        "xdp_frags",
        "5.17",
        "invalid func unknown#188",
        "5.18",
    ),
    (
        "programs for devmap entries",
        "obj/xdp_devmap_prog.o",
        "xdp_egress",
        "5.7",
        "expected attach type xdp_devmap does not exist",
        "5.8",
    ),
    (
        "bounded loop",
        "obj/xdp_loop.o",
        "xdp_vlan_depth",
        "5.2",
        "back-edge from insn",
        "5.3",
    ),
];

#[test]
fn version_targets_answer_as_the_first_release_with_each_feature() {
    for &(feature, obj, prog, below, msg, at) in FIRST_RELEASES {
        let o = verify(below, obj, prog);
        let t = text(&o);
        assert_eq!(o.status.code(), Some(1), "{feature} on {below}: {t}");
        assert!(t.contains(msg), "{feature} on {below}: want {msg:?}: {t}");
        assert!(
            t.contains(&format!("Linux {at}")),
            "{feature} on {below}: the hint names {at}: {t}"
        );
        let o = verify(at, obj, prog);
        let t = text(&o);
        assert_eq!(o.status.code(), Some(0), "{feature} on {at}: {t}");
        assert!(
            t.contains("not modelled per release"),
            "{feature} on {at}: an older target says what it does not check: {t}"
        );
        // And the default (6.18) accepts it without a caveat.
        let o = bpfkit()
            .args(["verify", "--prog", prog])
            .arg(corpus(obj))
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(0), "{feature} on 6.18: {}", text(&o));
        assert!(!text(&o).contains("not modelled"), "{}", text(&o));
    }
    // A helper 6.1 knows but does not offer XDP, in 6.1's words (before 6.10).
    let o = bpfkit()
        .args(["verify", "--kernel", "6.1"])
        .arg(corpus("obj/xdp_task.o"))
        .output()
        .unwrap();
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(t.contains("rejected: unknown func bpf_get_current_"), "{t}");
    // Targets that are not releases are usage errors.
    for bad in ["4.9", "seven", "/no/such/probe.json"] {
        let o = bpfkit()
            .args(["verify", "--kernel", bad])
            .arg(corpus("obj/xdp_counter.o"))
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(2), "--kernel {bad}: {}", text(&o));
    }
}

fn tmp(name: &str) -> PathBuf {
    common::scratch(name)
}

/// A probe file stands in for the kernel build that refuses `bpf_xdp_adjust_meta` in
/// XDP: `verify --kernel FILE` refuses xdp_meta with that kernel's words.
#[test]
fn a_probe_file_stands_in_for_a_kernel_without_adjust_meta() {
    let o = bpfkit()
        .args(["probe", "--kernel", "6.18", "--format", "json"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let mut v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let xdp = v["helpers"]["xdp"].as_array_mut().unwrap();
    let before = xdp.len();
    xdp.retain(|h| h != "bpf_xdp_adjust_meta");
    assert_eq!(xdp.len(), before - 1);
    v["source"] = "probe".into();
    v["release"] = "6.18.44-no-meta".into();
    let file = tmp("no-meta.json");
    std::fs::write(&file, serde_json::to_string_pretty(&v).unwrap()).unwrap();
    let o = bpfkit()
        .args(["verify", "--kernel"])
        .arg(&file)
        .arg(corpus("obj/xdp_meta.o"))
        .output()
        .unwrap();
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(
        t.contains("program of this type cannot use helper bpf_xdp_adjust_meta#54"),
        "{t}"
    );
    assert!(t.contains("this kernel build leaves it out"), "{t}");
    // Programs that do not call it are unaffected.
    let o = bpfkit()
        .args(["verify", "--kernel"])
        .arg(&file)
        .arg(corpus("obj/xdp_counter.o"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let _ = std::fs::remove_file(&file);
}

fn kernel_usable(test: &str) -> bool {
    bpfkit_loader::kernel_or_skip(test)
}

#[test]
fn probe_is_stable_and_its_xdp_helpers_are_what_one_call_programs_load() {
    if !kernel_usable("probe_is_stable_and_its_xdp_helpers_are_what_one_call_programs_load") {
        return;
    }
    let a = bpfkit()
        .args(["probe", "--format", "json"])
        .output()
        .unwrap();
    let b = bpfkit()
        .args(["probe", "--format", "json"])
        .output()
        .unwrap();
    assert!(a.status.success(), "{}", text(&a));
    assert_eq!(a.stdout, b.stdout, "two probes of one kernel differ");
    let v: serde_json::Value = serde_json::from_slice(&a.stdout).unwrap();
    let probed: Vec<String> = v["helpers"]["xdp"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h.as_str().unwrap().to_string())
        .collect();
    // Independently: `r1..r5 = 0; call N; r0 = 0; exit` for every id; offered unless the
    // log says the kernel does not know or does not offer it.
    use bpfkit_isa::RawInsn;
    let mut loaded = Vec::new();
    for id in 1..bpfkit_isa::helper::NAMES.len() as i32 {
        let mut insns: Vec<RawInsn> = (1..=5).map(|r| RawInsn::new(0xb7, r, 0, 0, 0)).collect();
        insns.push(RawInsn::new(0x85, 0, 0, 0, id));
        insns.push(RawInsn::new(0xb7, 0, 0, 0, 0));
        insns.push(RawInsn::new(0x95, 0, 0, 0, 0));
        let spec = bpfkit_loader::ProgramSpec::new("one_call", 6, &insns);
        let refused = match bpfkit_loader::Program::load(&spec) {
            Ok(_) => false,
            Err(e) => {
                let log = e.verifier_log().unwrap_or("");
                log.contains("invalid func ")
                    || log.contains("unknown func ")
                    || log.contains("program of this type cannot use helper")
            }
        };
        if !refused {
            loaded.push(format!("bpf_{}", bpfkit_isa::helper::NAMES[id as usize]));
        }
    }
    assert_eq!(probed, loaded);
    eprintln!(
        "probe: {} XDP helpers, equal to the one-call loads",
        probed.len()
    );
}

/// `verify --kernel live` and `load` agree on every corpus object (exit status, and the
/// refused program and message when the kernel refuses), optionally under
/// `BPFKIT_KERNEL_DENY_HELPERS`.
fn live_agrees_with_load(deny: Option<&str>) -> usize {
    let mut objs: Vec<PathBuf> = ["obj", "obj/rejected"]
        .iter()
        .flat_map(|d| std::fs::read_dir(corpus(d)).unwrap())
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "o"))
        .collect();
    objs.sort();
    let mut failures = Vec::new();
    let with_env = |c: &mut Command| {
        if let Some(d) = deny {
            c.env("BPFKIT_KERNEL_DENY_HELPERS", d);
        } else {
            c.env_remove("BPFKIT_KERNEL_DENY_HELPERS");
        }
    };
    for obj in &objs {
        let mut v = bpfkit();
        v.args(["verify", "--kernel", "live", "--format", "json"])
            .arg(obj);
        with_env(&mut v);
        let vo = v.output().unwrap();
        let mut l = bpfkit();
        l.arg("load").arg(obj);
        with_env(&mut l);
        let lo = l.output().unwrap();
        let reports: Vec<serde_json::Value> =
            serde_json::from_slice(&vo.stdout).unwrap_or_default();
        if reports.iter().any(|r| r["verdict"] == "unsupported") {
            eprintln!(
                "note: {}: a program is undecided by bpfkit; not compared",
                obj.display()
            );
            continue;
        }
        if vo.status.code() != lo.status.code() {
            failures.push(format!(
                "{}: verify --kernel live exit {:?}, load exit {:?}\n{}\n{}",
                obj.display(),
                vo.status.code(),
                lo.status.code(),
                text(&vo),
                text(&lo)
            ));
            continue;
        }
        if !lo.status.success() {
            // The program load names must be one verify rejected, with the same message.
            let lt = text(&lo);
            let named = reports.iter().any(|r| {
                r["verdict"] == "rejected"
                    && lt.contains(&format!("`{}`", r["program"].as_str().unwrap_or("")))
                    && r["kernel_message"]
                        .as_str()
                        .and_then(|m| m.lines().next())
                        .is_some_and(|m| lt.contains(m))
            });
            if !named {
                failures.push(format!(
                    "{}: load refused a program verify did not reject with its message:\n{lt}\n{}",
                    obj.display(),
                    String::from_utf8_lossy(&vo.stdout)
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} disagreements (deny {deny:?}):\n{}",
        failures.len(),
        failures.join("\n\n")
    );
    objs.len()
}

#[test]
fn verify_live_agrees_with_load_on_every_corpus_object() {
    if !kernel_usable("verify_live_agrees_with_load_on_every_corpus_object") {
        return;
    }
    let n = live_agrees_with_load(None);
    eprintln!("verify --kernel live = load on {n} corpus objects");
}

#[test]
fn verify_live_agrees_with_load_on_a_kernel_without_adjust_meta() {
    if !kernel_usable("verify_live_agrees_with_load_on_a_kernel_without_adjust_meta") {
        return;
    }
    let n = live_agrees_with_load(Some("bpf_xdp_adjust_meta"));
    // And xdp_meta is the one refused, by both, in the kernel's words.
    let o = bpfkit()
        .args(["verify", "--kernel", "live"])
        .arg(corpus("obj/xdp_meta.o"))
        .env("BPFKIT_KERNEL_DENY_HELPERS", "bpf_xdp_adjust_meta")
        .output()
        .unwrap();
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(
        t.contains("program of this type cannot use helper bpf_xdp_adjust_meta#54"),
        "{t}"
    );
    eprintln!("verify --kernel live = load on {n} corpus objects, kernel without adjust_meta");
}

#[test]
fn probe_without_privilege_says_what_it_could_not_probe() {
    // As nobody, through setpriv (util-linux), when this process may switch users.
    let root = unsafe { libc::geteuid() } == 0;
    let setpriv = Command::new("setpriv").arg("--version").output();
    let o = if root && setpriv.is_ok_and(|o| o.status.success()) {
        Command::new("setpriv")
            .args([
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                "--inh-caps=-all",
                "--",
            ])
            .arg(env!("CARGO_BIN_EXE_bpfkit"))
            .args(["probe", "--format", "json"])
            .output()
            .unwrap()
    } else if !root {
        bpfkit()
            .args(["probe", "--format", "json"])
            .output()
            .unwrap()
    } else {
        eprintln!("\n*** SKIPPED: probe_without_privilege_says_what_it_could_not_probe: root without setpriv to drop privileges ***\n");
        return;
    };
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["bpf"], false, "{v}");
    let np = v["not_probed"].as_array().unwrap();
    assert!(
        np.iter()
            .any(|n| n["what"].as_str().unwrap().starts_with("everything loaded")),
        "{v}"
    );
    // The facts still come from the running release's profile.
    assert!(!v["helpers"]["xdp"].as_array().unwrap().is_empty());
}

#[test]
fn replay_and_run_refuse_what_the_target_lacks() {
    let o = bpfkit()
        .args(["replay", "--kernel", "5.16", "--prog", "xdp_bpf_loop"])
        .arg(corpus("obj/xdp_loop.o"))
        .arg(corpus("pcap/mixed.pcap"))
        .output()
        .unwrap();
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(
        t.contains("would not load on Linux 5.16: invalid func unknown#181"),
        "{t}"
    );
    let o = bpfkit()
        .args(["replay", "--kernel", "5.17", "--prog", "xdp_bpf_loop"])
        .arg(corpus("obj/xdp_loop.o"))
        .arg(corpus("pcap/mixed.pcap"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let o = bpfkit()
        .args(["run", "--kernel", "6.5"])
        .arg(corpus("obj/xdp_v4.o"))
        .args([
            "--packet",
            "000000000000000000000000080045000014000000004006000000000000000000000000",
        ])
        .output()
        .unwrap();
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(
        t.contains("would not load on Linux 6.5: unknown opcode"),
        "{t}"
    );
}

/// The kfunc `bpf_dynptr_from_xdp` came in 6.4: below, libbpf cannot resolve it; from
/// 6.4 on the program (an XDP dynptr and a NULL-checked `bpf_dynptr_slice`) is accepted,
/// as the kernel accepts it; `--kernel live` equals `bpfkit load` on this machine.
#[test]
fn kfuncs_follow_their_first_release() {
    let obj = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/xdp_dynptr_kfunc.o");
    let run = |v: &str| {
        let o = bpfkit()
            .args(["verify", "--kernel", v, "--format", "json"])
            .arg(&obj)
            .output()
            .unwrap();
        let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        (o.status.code(), r[0].clone())
    };
    let (code, r) = run("6.3");
    assert_eq!(code, Some(1));
    assert_eq!(r["verdict"], "rejected", "{r}");
    assert!(r["kernel_message"]
        .as_str()
        .unwrap()
        .contains("'bpf_dynptr_from_xdp': not found in kernel or module BTFs"));
    assert!(r["hint"].as_str().unwrap().contains("Linux 6.4"), "{r}");
    for v in ["6.4", "6.6", "6.18"] {
        let (code, r) = run(v);
        assert_eq!(r["verdict"], "accepted", "{v}: {r}");
        assert_eq!(code, Some(0), "{v}");
    }
    if !bpfkit_loader::probe::kernel_or_skip("kfuncs_follow_their_first_release") {
        return;
    }
    // A writable slice: upstream 6.18 accepts it; some kernel builds refuse the kfunc
    // to XDP programs, which `--kernel live` learns from the probe.
    let rdwr = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/xdp_dynptr_rdwr.o");
    for v in ["6.4", "6.18"] {
        let o = bpfkit()
            .args(["verify", "--kernel", v])
            .arg(&rdwr)
            .output()
            .unwrap();
        assert_eq!(
            o.status.code(),
            Some(0),
            "{v}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    for o in [&obj, &rdwr] {
        let live = bpfkit()
            .args(["verify", "--kernel", "live"])
            .arg(o)
            .output()
            .unwrap();
        let load = bpfkit().arg("load").arg(o).output().unwrap();
        assert_eq!(
            live.status.code() == Some(0),
            load.status.success(),
            "{}: verify --kernel live: {}\nload: {}",
            o.display(),
            String::from_utf8_lossy(&live.stderr),
            String::from_utf8_lossy(&load.stderr)
        );
    }
}
