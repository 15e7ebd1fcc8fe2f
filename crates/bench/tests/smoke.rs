//! Smoke test of the benchmark binary (not a timing test: it only checks that every engine
//! produced a figure for the empty program, validated against the interpreter).

use std::process::Command;

#[test]
fn bench_produces_a_figure_for_every_user_space_engine() {
    let out = Command::new(env!("CARGO_BIN_EXE_bpfkit-bench"))
        .args([
            "--quick",
            "--filter",
            "bench_nop",
            "--engines",
            "interp,jit checked,jit fast,rbpf interp,rbpf jit",
        ])
        .output()
        .expect("run bpfkit-bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let row = stdout
        .lines()
        .find(|l| l.starts_with("| bench_nop"))
        .unwrap_or_else(|| panic!("no bench_nop row:\n{stdout}"));
    let cells: Vec<&str> = row.split('|').map(str::trim).collect();
    // | program | packet | interp | jit checked | jit fast | rbpf interp | rbpf jit | kernel | ...
    let number = |c: &str| c.parse::<f64>().is_ok_and(|v| v > 0.0);
    for (i, name) in [
        (3, "interp"),
        (4, "jit checked"),
        (6, "rbpf interp"),
        (7, "rbpf jit"),
    ] {
        assert!(number(cells[i]), "{name}: {:?} in\n{row}", cells[i]);
    }
    // Fast mode needs the kernel's verifier to have accepted the program.
    assert!(
        number(cells[5]) || cells[5] == "not verified",
        "jit fast: {:?}",
        cells[5]
    );
    // The kernel was not asked for: "skipped", or the reason it could not be used at all
    // (as non-root).
    assert!(
        cells[8] == "skipped" || cells[8].starts_with("no kernel"),
        "kernel: {:?}",
        cells[8]
    );
}
