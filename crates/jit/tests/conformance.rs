//! The bpf_conformance suite (`../shared/conformance/tests/*.data`, relative to the
//! workspace root) on the JIT, in both modes, in raw-memory mode (r1 = a copy of `-- mem`,
//! r2 = its length): r0 must equal `-- result`, and must equal the interpreter's r0 and
//! output memory. The file parser is shared with crates/vm/tests/conformance.rs.

use bpfkit_jit::Jit;
use bpfkit_vm::Interpreter;

#[path = "../../vm/tests/common/conformance_file.rs"]
mod conformance_file;
use conformance_file::parse;

#[test]
fn bpf_conformance_suite_passes_on_the_jit() {
    // the suite when it is beside the checkout, and bpfkit's own files in its format
    let files = conformance_file::all_files();
    let (mut pass, mut failures) = ([0usize; 2], Vec::new());
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
        let interp = Interpreter::from_insns(insns.clone()).run_raw(0, &case.mem);
        for (m, fast) in [false, true].into_iter().enumerate() {
            let jit = if fast {
                // SAFETY: the conformance programs are valid programs for raw memory of
                // their `-- mem` size (every one passes on the checked interpreter, which
                // is asserted below before trusting the fast result).
                match &interp {
                    Ok(_) => unsafe { Jit::from_insns_unchecked(insns.clone()) },
                    Err(_) => continue,
                }
            } else {
                Jit::from_insns(insns.clone())
            };
            let label = if fast { "jit-fast" } else { "jit" };
            let out = match jit.and_then(|mut j| j.run_raw(0, &case.mem)) {
                Ok(o) => o,
                Err(e) => {
                    failures.push(format!("{name} [{label}]: {e}"));
                    continue;
                }
            };
            if out.r0 != want {
                failures.push(format!(
                    "{name} [{label}]: r0 = {:#x}, expected {want:#x}",
                    out.r0
                ));
                continue;
            }
            match &interp {
                Ok(i) if i.r0 == out.r0 && i.mem == out.mem => pass[m] += 1,
                Ok(i) => failures.push(format!(
                    "{name} [{label}]: differs from the interpreter (r0 {:#x} vs {:#x}, memory {:02x?} vs {:02x?})",
                    out.r0, i.r0, out.mem, i.mem
                )),
                Err(e) => failures.push(format!("{name} [{label}]: interpreter failed: {e}")),
            }
        }
    }
    for f in &failures {
        eprintln!("FAIL {f}");
    }
    eprintln!(
        "bpf_conformance on the JIT: checked {}/{} passed, fast {}/{} passed",
        pass[0],
        files.len(),
        pass[1],
        files.len()
    );
    assert!(
        failures.is_empty(),
        "{} conformance failures (of {} files, 2 modes)",
        failures.len(),
        files.len()
    );
    assert_eq!(pass, [files.len(), files.len()]);
}
