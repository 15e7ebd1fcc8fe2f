//! The tail-call graph lint on a corpus object (a dispatcher, no cycle) and on a
//! program that tail-calls itself through its PROG_ARRAY (a cycle).

use bpfkit_isa::RawInsn;
use bpfkit_object::Object;
use bpfkit_verifier::{tailcall, verify, Options};

#[test]
fn corpus_dispatcher_has_edges_and_no_lints() {
    let p = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../corpus/obj/xdp_tailcall.o"
    );
    let obj = Object::parse(&std::fs::read(p).unwrap())
        .unwrap()
        .link()
        .unwrap();
    let reps: Vec<_> = obj
        .programs
        .iter()
        .map(|p| verify(p, &obj.maps, &Options::default()))
        .collect();
    let g = tailcall::graph(&obj, &reps);
    let dispatch = g
        .iter()
        .find(|(n, _)| n == "xdp_dispatch")
        .expect("dispatcher");
    assert!(
        !dispatch.1.is_empty(),
        "dispatcher has tail-call targets: {g:?}"
    );
    assert!(tailcall::lints(&obj, &reps).is_empty());
}

#[test]
fn self_tail_call_is_a_cycle() {
    // r2 = map 3 (the PROG_ARRAY `jmp`, slot 0 = this program); r3 = 0; tail call.
    let prog = vec![
        RawInsn::new(0x18, 2, 5, 0, 3),
        RawInsn::new(0, 0, 0, 0, 0),
        RawInsn::new(0xb7, 3, 0, 0, 0),
        RawInsn::new(0x85, 0, 0, 0, 12),
        RawInsn::new(0xb7, 0, 0, 0, 2),
        RawInsn::new(0x95, 0, 0, 0, 0),
    ];
    let obj = bpfkit_testgen::harness::linked_object(vec![prog]);
    let reps: Vec<_> = obj
        .programs
        .iter()
        .map(|p| verify(p, &obj.maps, &Options::default()))
        .collect();
    assert!(reps[0].verdict.is_accepted(), "{:?}", reps[0].verdict);
    let l = tailcall::lints(&obj, &reps);
    assert_eq!(l.len(), 1, "{l:?}");
    assert_eq!(l[0].kind, "cycle");
    assert_eq!(l[0].programs, vec!["gen".to_string(), "gen".to_string()]);
}
