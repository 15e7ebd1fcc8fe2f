//! Differential test: the bpfkit interpreter against rbpf 0.4's interpreter on the
//! subset rbpf implements the kernel's way (ALU/ALU64, byte swaps, jumps incl. JMP32,
//! loops, stack and memory loads/stores; r1 = memory). Compares r0 and the memory, whose
//! first bytes the epilogue fills with every register and the stack data area.
//!
//! `BPFKIT_DIFF_CASES=N` sets the number of programs (default 500).

use bpfkit_testgen::harness::{self, describe_raw, diff_result};
use bpfkit_testgen::{raw_case, Features};
use bpfkit_vm::Interpreter;
use proptest::test_runner::TestCaseError;
use std::cell::Cell;

#[test]
fn interpreter_agrees_with_rbpf() {
    let cases = harness::case_count(500);
    let compared = Cell::new(0u64);
    let rbpf_panics = Cell::new(0u64);
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let mut runner = harness::runner(cases);
    let result = runner.run(&raw_case(Features::rbpf()), |case| {
        let insns = case.program.render();
        let bytes = bpfkit_isa::to_bytes(&insns);
        let vm = rbpf::EbpfVmRaw::new(Some(&bytes)).map_err(|e| TestCaseError::fail(format!("rbpf refused the program: {e}")))?;
        let mut rb_mem = case.mem.clone();
        // rbpf 0.4 computes `neg` of i64::MIN with `-x`, which panics when overflow
        // checks are on (debug builds); such a run cannot be compared. In release builds
        // (CI) it wraps like the kernel.
        let rb = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| vm.execute_program(&mut rb_mem)));
        let Ok(rb) = rb else {
            rbpf_panics.set(rbpf_panics.get() + 1);
            return Ok(());
        };
        let rb_r0 = rb.map_err(|e| TestCaseError::fail(format!("rbpf: {e}")))?;
        let out = Interpreter::from_insns(insns)
            .run_raw(0, &case.mem)
            .map_err(|e| TestCaseError::fail(format!("interpreter: {e}")))?;
        if out.r0 != rb_r0 || out.mem != rb_mem {
            return Err(TestCaseError::fail(format!(
                "interpreter and rbpf disagree: r0 interp {:#x} rbpf {:#x}\n{}memory (interp, rbpf):\n  {:02x?}\n  {:02x?}",
                out.r0,
                rb_r0,
                diff_result("interp", &out.mem, "rbpf", &rb_mem),
                out.mem,
                rb_mem
            )));
        }
        compared.set(compared.get() + 1);
        Ok(())
    });
    std::panic::set_hook(hook);
    eprintln!(
        "interpreter vs rbpf: {} programs compared, {} requested, {} not comparable (rbpf overflow panic)",
        compared.get(),
        cases,
        rbpf_panics.get()
    );
    assert!(
        compared.get() * 2 >= cases as u64,
        "too few programs compared"
    );
    if let Err(e) = result {
        let detail = match &e {
            proptest::test_runner::TestError::Fail(_, case) => describe_raw(case),
            _ => String::new(),
        };
        panic!("{e}\nminimal case:\n{detail}");
    }
}
