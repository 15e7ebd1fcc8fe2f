//! Runs the bpf_conformance suite (`../shared/conformance/tests/*.data`, relative to the
//! workspace root) on the interpreter in raw-memory mode: r1 = a copy of `-- mem`, r2 = its
//! length; r0 must equal `-- result`. The expectations are read from the files at run time.

use bpfkit_vm::Interpreter;

#[path = "common/conformance_file.rs"]
mod conformance_file;
use conformance_file::parse;

#[test]
fn bpf_conformance_suite_passes_on_the_interpreter() {
    // the suite when it is beside the checkout, and bpfkit's own files in its format
    let files = conformance_file::all_files();
    let (mut pass, mut failures) = (0, Vec::new());
    for f in &files {
        let name = f.file_name().unwrap().to_string_lossy().to_string();
        let text = std::fs::read_to_string(f).expect("read test");
        let case = match parse(&text) {
            Ok(c) => c,
            Err(e) => {
                failures.push(format!("{name}: bad test file: {e}"));
                continue;
            }
        };
        let Some(want) = case.result else {
            failures.push(format!("{name}: no -- result section"));
            continue;
        };
        let insns = match bpfkit_asm::assemble(&case.asm) {
            Ok(i) => i,
            Err(e) => {
                failures.push(format!("{name}: assembler: {e}"));
                continue;
            }
        };
        match Interpreter::from_insns(insns).run_raw(0, &case.mem) {
            Ok(out) if out.r0 == want => pass += 1,
            Ok(out) => failures.push(format!("{name}: r0 = {:#x}, expected {want:#x}", out.r0)),
            Err(e) => failures.push(format!("{name}: {e}")),
        }
    }
    for f in &failures {
        eprintln!("FAIL {f}");
    }
    eprintln!("bpf_conformance: {pass}/{} passed", files.len());
    assert!(
        failures.is_empty(),
        "{} of {} conformance tests failed",
        failures.len(),
        files.len()
    );
}
