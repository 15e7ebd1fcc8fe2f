//! Objects with kfunc calls (`tests/kfunc/*.c`, built by `tests/objs/build.sh`): the
//! linker emits a kfunc call as `BPF_PSEUDO_KFUNC_CALL`, the program that makes it is
//! undecided with the kfunc's name, and the object's other programs are verified as
//! usual (before, the whole object failed to link and no program was checked).

mod common;
use bpfkit_object::Object;
use bpfkit_verifier::{btf_fields, verify, Options, Verdict};
use std::path::Path;

#[test]
fn kfunc_call_does_not_hide_the_other_programs() {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/kfunc/kfunc_and_plain.o");
    let obj = Object::parse_named(&std::fs::read(&p).unwrap(), "kfunc_and_plain").unwrap();
    let linked = obj.link().expect("an object with a kfunc call links");
    let opts = Options {
        gpl_compatible: true,
        map_fields: Some(btf_fields::from_btf(obj.btf.as_ref(), &linked.maps)),
        funcs: bpfkit_verifier::btf_funcs::from_object(&obj, &linked),
        ..Default::default()
    };
    let prog = |n: &str| linked.program(n).unwrap_or_else(|| panic!("program {n}"));

    let k = prog("uses_kfunc");
    assert_eq!(
        obj.kfunc_calls(k)
            .iter()
            .map(|(_, n)| n.as_str())
            .collect::<Vec<_>>(),
        ["bpf_dynptr_from_xdp"]
    );
    match verify(k, &linked.maps, &opts).verdict {
        Verdict::Unsupported { what, .. } => {
            assert!(what.contains("kfunc call `bpf_dynptr_from_xdp`"), "{what}")
        }
        v => panic!("uses_kfunc: expected undecided, got {v:?}"),
    }

    let plain = prog("plain");
    assert!(obj.kfunc_calls(plain).is_empty());
    let rep = verify(plain, &linked.maps, &opts);
    assert!(
        matches!(rep.verdict, Verdict::Accepted),
        "plain: {:?}",
        rep.verdict
    );
    // the kernel agrees on `plain` (loaded on its own: the kfunc program needs
    // libbpf's BTF id resolution, which the test harness does not do)
    if let Some(why) = common::kernel::unavailable() {
        eprintln!("SKIPPED: kernel half: {why}");
        return;
    }
    let kv = common::kernel::load_xdp(&plain.insns, &linked.maps).expect("load runs");
    assert!(kv.accepted, "kernel rejects plain:\n{}", kv.log);
}
