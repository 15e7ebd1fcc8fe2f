//! Differential campaign: programs from the testgen generator (which touch packets,
//! stack and maps with the necessary checks) and their mutations (each dropping one
//! check or breaking one rule) go through bpfkit's verifier and the kernel's
//! (`BPF_PROG_LOAD` with a log). Disagreements are written as case files (raw
//! encoding, expecting the kernel's verdict) in
//! `$CARGO_TARGET_TMPDIR/verifier-disagreements/diff-<unix time>/`; the test prints the
//! `mv` command that makes that directory a case directory under `tests/cases/`. Fails on any program bpfkit accepts and the kernel
//! rejects. `BPFKIT_VERIFIER_DIFF_CASES` sets the number of generated programs
//! (default 60; each also yields 10 mutants).

mod common;
use bpfkit_object::model::{map_type, MapDef};
use bpfkit_testgen::harness::linked_object;
use bpfkit_testgen::mutate::{apply, Mutation};
use bpfkit_testgen::{program, Features, Target};
use bpfkit_verifier::{verify, Options, Verdict};
use common::kernel;
use proptest::strategy::{Strategy, ValueTree};
use std::fmt::Write as _;

fn case_text(
    desc: &str,
    maps: &[MapDef],
    insns: &[bpfkit_isa::RawInsn],
    kernel_accepts: bool,
    kmsg: &str,
) -> String {
    let mut s = format!("# {desc}\n-- maps\n");
    for m in maps {
        let t = map_type::name(m.map_type)
            .unwrap_or("BPF_MAP_TYPE_UNSPEC")
            .trim_start_matches("BPF_MAP_TYPE_")
            .to_lowercase();
        let _ = writeln!(
            s,
            "{} {} key={} value={} entries={}",
            m.name, t, m.key_size, m.value_size, m.max_entries
        );
    }
    s.push_str("-- raw\n");
    for i in insns {
        let b = i.to_bytes();
        let _ = writeln!(
            s,
            "{}",
            b.iter()
                .map(|x| format!("{x:02x}"))
                .collect::<Vec<_>>()
                .join(" ")
        );
    }
    let _ = writeln!(
        s,
        "-- expect\n{}",
        if kernel_accepts {
            "accept".to_string()
        } else {
            format!("reject {kmsg}")
        }
    );
    s
}

#[test]
fn differential_against_kernel() {
    if let Some(why) = kernel::unavailable() {
        eprintln!("\n!!!! SKIPPING differential_against_kernel: {why} !!!!\n");
        return;
    }
    let n: u32 = std::env::var("BPFKIT_VERIFIER_DIFF_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60);
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let strat = program(Target::Xdp, Features::xdp());
    // Disagreements of this run go to a directory named like the case directory they
    // should become (`tests/cases/diff-<unix time>/`), so one `mv` adds them to the suite.
    let parent = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("verifier-disagreements");
    let _ = std::fs::remove_dir_all(&parent);
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let out = parent.join(format!("diff-{stamp}"));
    let cases_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cases");
    let cases_dir = cases_dir.canonicalize().unwrap_or(cases_dir);
    let mut written = 0;
    let (
        mut total,
        mut agree,
        mut unsupported,
        mut unsafe_accepts,
        mut false_rejects,
        mut wrong_message,
    ) = (0, 0, 0, 0, 0, 0);
    for k in 0..n {
        let p = strat.new_tree(&mut runner).expect("generator").current();
        let mut variants = vec![("original".to_string(), p.clone())];
        for m in Mutation::ALL {
            variants.push((format!("{m:?}"), apply(&p, m)));
        }
        for (what, prog) in variants {
            let obj = linked_object(vec![prog.render()]);
            let lp = &obj.programs[0];
            total += 1;
            let ours = verify(
                lp,
                &obj.maps,
                &Options {
                    target: Some(kernel::live_target()),
                    ..Options::default()
                },
            );
            let kv = kernel::load_xdp(&lp.insns, &obj.maps).expect("bpf(2)");
            let ktext = kernel::error_text(&kv.log);
            let klast = ktext
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("")
                .to_string();
            let disagree = match (&ours.verdict, kv.accepted) {
                (Verdict::Unsupported { .. }, _) => {
                    unsupported += 1;
                    None
                }
                (Verdict::Accepted, true) => None,
                (Verdict::Rejected(r), false) => {
                    if r.kernel_message.lines().all(|l| ktext.contains(l)) {
                        None
                    } else {
                        wrong_message += 1;
                        Some(format!("message differs: ours {:?}", r.kernel_message))
                    }
                }
                (Verdict::Accepted, false) => {
                    unsafe_accepts += 1;
                    Some("bpfkit accepts, kernel rejects".to_string())
                }
                (Verdict::Rejected(r), true) => {
                    false_rejects += 1;
                    Some(format!(
                        "bpfkit rejects ({}), kernel accepts",
                        r.kernel_message.replace('\n', " | ")
                    ))
                }
            };
            match disagree {
                None => {
                    if !matches!(ours.verdict, Verdict::Unsupported { .. }) {
                        agree += 1;
                    }
                }
                Some(why) => {
                    std::fs::create_dir_all(&out).unwrap();
                    let f = out.join(format!("gen{k:04}_{what}.case"));
                    std::fs::write(
                        &f,
                        case_text(
                            &format!("generated #{k} {what}: {why}"),
                            &obj.maps,
                            &lp.insns,
                            kv.accepted,
                            &klast,
                        ),
                    )
                    .unwrap();
                    written += 1;
                    eprintln!("DISAGREEMENT {}: {why}; kernel: {klast}", f.display());
                }
            }
        }
    }
    let decided = total - unsupported;
    eprintln!(
        "differential: {total} programs, {decided} decided by bpfkit, {agree} agree with the kernel ({:.2}%), {unsupported} undecided, {false_rejects} false rejections, {wrong_message} different messages, {unsafe_accepts} UNSAFE acceptances",
        if decided > 0 { 100.0 * agree as f64 / decided as f64 } else { 0.0 }
    );
    if written > 0 {
        eprintln!(
            "{written} disagreement(s) written as case files (expecting the kernel's verdict); add them to the suite with:\n  mv {} {}/",
            out.display(),
            cases_dir.display()
        );
    }
    assert_eq!(
        unsafe_accepts,
        0,
        "bpfkit accepted programs the kernel rejects; see {}",
        out.display()
    );
}
