//! Every generated XDP program runs to completion on the interpreter (no fault, no
//! setup error). Needs no kernel, so it also runs where the kernel is unavailable. It
//! also enables `bpf_loop` callbacks, which the kernel comparison cannot use yet (the
//! kernel wants BTF func_info for them).

use bpfkit_testgen::harness::{self, case_object, describe_xdp, run_xdp};
use bpfkit_testgen::{xdp_case, Features};
use bpfkit_vm::{Config, Interpreter};
use proptest::test_runner::TestCaseError;

#[test]
fn generated_programs_run_on_the_interpreter() {
    let cases = harness::case_count(300);
    let mut runner = harness::runner(cases);
    let result = runner.run(
        &xdp_case(
            Features {
                bpf_loop: true,
                ..Features::xdp()
            },
            2,
        ),
        |case| {
            let obj = case_object(&case);
            let mut interp = Interpreter::new(
                &obj,
                Config {
                    ncpus: 2,
                    ..Config::default()
                },
            )
            .map_err(|e| TestCaseError::fail(format!("setup: {e}")))?;
            let out = run_xdp(&mut interp, &case).map_err(TestCaseError::fail)?;
            // The result map always holds the registers (the epilogue wrote them).
            prop_assert_eq!(out.maps[2].len(), 1);
            Ok(())
        },
    );
    if let Err(e) = result {
        let detail = match &e {
            proptest::test_runner::TestError::Fail(_, case) => describe_xdp(case),
            _ => String::new(),
        };
        panic!("{e}\nminimal case:\n{detail}");
    }
}

use proptest::prop_assert_eq;
