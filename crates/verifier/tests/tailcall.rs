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

fn corpus_tailcall() -> bpfkit_object::model::LinkedObject {
    let p = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../corpus/obj/xdp_tailcall.o"
    );
    Object::parse(&std::fs::read(p).unwrap())
        .unwrap()
        .link()
        .unwrap()
}

#[test]
fn maps_file_slot_that_points_back_is_a_cycle() {
    let obj = corpus_tailcall();
    let reps: Vec<_> = obj
        .programs
        .iter()
        .map(|p| verify(p, &obj.maps, &Options::default()))
        .collect();
    // slot 3 is empty in `.values`; the dispatcher's default case tail-calls it
    let doc = serde_json::json!({
        "jmp_table": [[3, {"program": "xdp_dispatch"}]],
        "hits": [["00000000", "0100000000000000"]],
    });
    let (extra, missing) = tailcall::prog_arrays_from_json(&obj, &doc).unwrap();
    assert!(missing.is_empty());
    assert_eq!(extra.len(), 1, "only the PROG_ARRAY is taken: {extra:?}");
    assert!(tailcall::lints(&obj, &reps).is_empty());
    let l = tailcall::lints_with(&obj, &reps, &extra);
    assert_eq!(l.len(), 1, "{l:?}");
    assert_eq!(l[0].kind, "cycle");
    assert_eq!(l[0].programs, vec!["xdp_dispatch", "xdp_dispatch"]);
    // the same slot as little-endian hex
    let doc = serde_json::json!({"jmp_table": [["03000000", {"program": "xdp_dispatch"}]]});
    let (extra2, _) = tailcall::prog_arrays_from_json(&obj, &doc).unwrap();
    assert_eq!(extra, extra2);
}

#[test]
fn maps_file_errors_name_the_entry() {
    let obj = corpus_tailcall();
    let bad = [
        (
            serde_json::json!({"jmp_table": [[0, {"program": "nosuch"}]]}),
            "no program `nosuch`",
        ),
        (
            serde_json::json!({"jmp_table": [["0300", {"program": "handle_arp"}]]}),
            "4 bytes",
        ),
        (
            serde_json::json!({"jmp_table": [[0, "01000000"]]}),
            "must name a program",
        ),
        (serde_json::json!([1, 2]), "expected an object"),
    ];
    for (doc, want) in bad {
        let e = tailcall::prog_arrays_from_json(&obj, &doc).unwrap_err();
        assert!(e.contains(want), "{e} (wanted {want})");
    }
    let (_, missing) =
        tailcall::prog_arrays_from_json(&obj, &serde_json::json!({"other": []})).unwrap();
    assert_eq!(missing, vec!["other".to_string()]);
}

/// Program k tail-calls slot k+1 of `jmp` (map 3).
fn chain(n: usize) -> bpfkit_object::model::LinkedObject {
    let progs = (0..n)
        .map(|k| {
            vec![
                RawInsn::new(0x18, 2, 5, 0, 3),
                RawInsn::new(0, 0, 0, 0, 0),
                RawInsn::new(0xb7, 3, 0, 0, k as i32 + 1),
                RawInsn::new(0x85, 0, 0, 0, 12),
                RawInsn::new(0xb7, 0, 0, 0, 2),
                RawInsn::new(0x95, 0, 0, 0, 0),
            ]
        })
        .collect();
    let mut obj = bpfkit_testgen::harness::linked_object(progs);
    // empty at load time: only the maps file fills the slots
    obj.maps[3].init = bpfkit_object::model::MapInit::None;
    obj
}

#[test]
fn maps_file_chain_longer_than_34_programs() {
    // The kernel runs the first program and 33 tail calls (MAX_TAIL_CALL_CNT): a chain of
    // 34 programs runs whole, the 35th is not reached.
    for (n, lint) in [(34usize, false), (35, true)] {
        let obj = chain(n);
        let reps: Vec<_> = obj
            .programs
            .iter()
            .map(|p| verify(p, &obj.maps, &Options::default()))
            .collect();
        assert!(tailcall::lints(&obj, &reps).is_empty());
        let slots: Vec<_> = obj
            .programs
            .iter()
            .enumerate()
            .map(|(i, p)| serde_json::json!([i, {"program": p.name}]))
            .collect();
        let doc = serde_json::json!({ "jmp": slots });
        let (extra, _) = tailcall::prog_arrays_from_json(&obj, &doc).unwrap();
        let l = tailcall::lints_with(&obj, &reps, &extra);
        assert_eq!(
            l.iter().any(|x| x.kind == "chain-too-long"),
            lint,
            "{n} programs: {l:?}"
        );
        assert!(l.iter().all(|x| x.kind != "cycle"), "{l:?}");
        if lint {
            let m = &l
                .iter()
                .find(|x| x.kind == "chain-too-long")
                .unwrap()
                .message;
            assert!(m.contains("stops after 33 tail calls (34 programs)"), "{m}");
        }
    }
}
