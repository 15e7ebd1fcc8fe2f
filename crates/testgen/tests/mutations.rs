//! The mutations of `bpfkit_testgen::mutate` give programs the kernel rejects, with the
//! documented message, and the unmutated programs are accepted. This pins the
//! generator's negative examples (for the bpfkit verifier's tests) to the real kernel.

use bpfkit_loader::{kernel_or_skip, KernelEngine};
use bpfkit_testgen::harness::{self, linked_object};
use bpfkit_testgen::mutate::{apply, Mutation};
use bpfkit_testgen::{program, Features, Target};
use proptest::strategy::{Strategy, ValueTree};

#[test]
fn mutations_are_rejected_by_the_kernel() {
    if !kernel_or_skip("mutations_are_rejected_by_the_kernel") {
        return;
    }
    let mut runner = harness::runner(1);
    let strat = program(
        Target::Xdp,
        bpfkit_testgen::harness::for_running_kernel(
            "mutations_are_rejected_by_the_kernel",
            Features {
                max_items: 12,
                ..Features::xdp()
            },
        ),
    );
    let mut checked = 0;
    for _ in 0..harness::case_count(20).min(200) {
        let p = strat.new_tree(&mut runner).unwrap().current();
        KernelEngine::new(&linked_object(vec![p.render()])).expect("unmutated program is accepted");
        for m in Mutation::ALL {
            let bad = apply(&p, m);
            let e = KernelEngine::new(&linked_object(vec![bad.render()]))
                .err()
                .unwrap_or_else(|| {
                    panic!(
                        "{m:?}: kernel accepted the mutated program {:#?}",
                        bad.items
                    )
                });
            let log = e
                .verifier_log()
                .unwrap_or_else(|| panic!("{m:?}: not a verifier rejection: {e}"));
            assert!(
                log.contains(m.expected()),
                "{m:?}: expected {:?} in the verifier log:\n{log}",
                m.expected()
            );
            checked += 1;
        }
    }
    eprintln!("{checked} mutated programs rejected with the expected message");
}
