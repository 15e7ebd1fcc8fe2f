//! Objects with kfunc calls (`tests/kfunc/*.c`, built by `tests/objs/build.sh`): the
//! linker emits a kfunc call as `BPF_PSEUDO_KFUNC_CALL`; a modelled kfunc is verified
//! (`bpf_dynptr_from_xdp`), an unmodelled one leaves its program undecided with the
//! kfunc's name, and the object's other programs are verified as usual. The modelled
//! prototypes are compared with the running kernel's vmlinux BTF.

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
    let rep = verify(k, &linked.maps, &opts);
    assert!(
        matches!(rep.verdict, Verdict::Accepted),
        "uses_kfunc: {:?}",
        rep.verdict
    );

    let rcu = prog("uses_rcu");
    match verify(rcu, &linked.maps, &opts).verdict {
        Verdict::Unsupported { what, .. } => {
            assert!(what.contains("kfunc call `bpf_rcu_read_lock`"), "{what}")
        }
        v => panic!("uses_rcu: expected undecided, got {v:?}"),
    }

    let plain = prog("plain");
    assert!(obj.kfunc_calls(plain).is_empty());
    let rep = verify(plain, &linked.maps, &opts);
    assert!(
        matches!(rep.verdict, Verdict::Accepted),
        "plain: {:?}",
        rep.verdict
    );
    // the kernel agrees on `plain` (loaded on its own; the kfunc programs are loaded by
    // the loader's kfunc resolution in the CLI's kernel_targets test)
    if let Some(why) = common::kernel::unavailable() {
        eprintln!("SKIPPED: kernel half: {why}");
        return;
    }
    let kv = common::kernel::load_xdp(&plain.insns, &linked.maps).expect("load runs");
    assert!(kv.accepted, "kernel rejects plain:\n{}", kv.log);
}

/// Each modelled kfunc's prototype (parameter kinds and annotations, return kind) equals
/// the one in the running kernel's vmlinux BTF, for the kfuncs that kernel has.
#[test]
fn modelled_kfuncs_match_vmlinux_btf() {
    use bpfkit_object::btf::{Btf, BtfKind};
    let path = "/sys/kernel/btf/vmlinux";
    let data = match std::fs::read(path) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("SKIPPED: modelled_kfuncs_match_vmlinux_btf: {path}: {e}");
            return;
        }
    };
    let btf = Btf::parse(&data, 0).expect("vmlinux BTF parses");
    let strip = |mut id: u32| loop {
        match btf.get(id).map(|t| &t.kind) {
            Some(BtfKind::Typedef { type_id })
            | Some(BtfKind::Const { type_id })
            | Some(BtfKind::Volatile { type_id })
            | Some(BtfKind::Restrict { type_id }) => id = *type_id,
            _ => return id,
        }
    };
    let kind_of = |id: u32, pname: &str| -> String {
        let t = btf.get(strip(id));
        match t.map(|t| &t.kind) {
            Some(BtfKind::Int { .. })
            | Some(BtfKind::Enum { .. })
            | Some(BtfKind::Enum64 { .. }) => {
                if pname.ends_with("__szk") {
                    "size__szk".into()
                } else {
                    "scalar".into()
                }
            }
            Some(BtfKind::Ptr { type_id }) => {
                let to = btf.get(strip(*type_id));
                match to.map(|t| (t.name.as_str(), &t.kind)) {
                    Some(("xdp_md", _)) => "ctx".into(),
                    Some(("bpf_dynptr", _)) if pname.ends_with("__uninit") => {
                        "dynptr__uninit".into()
                    }
                    Some(("bpf_dynptr", _)) => "dynptr".into(),
                    Some((_, BtfKind::Void)) | None if pname.ends_with("__opt") => {
                        "mem__opt".into()
                    }
                    Some((_, BtfKind::Void)) | None => "ptr".into(),
                    Some((n, _)) => format!("ptr to {n}"),
                }
            }
            Some(BtfKind::Void) | None => "void".into(),
            Some(k) => format!("{k:?}"),
        }
    };
    let mut checked = 0;
    let mut absent = vec![];
    let mut diffs: Vec<String> = vec![];
    for m in bpfkit_verifier::modelled_kfuncs() {
        let Some(f) = btf.find(m.name, "FUNC") else {
            absent.push(m.name);
            continue;
        };
        let BtfKind::Func { proto, .. } = f.kind else {
            unreachable!()
        };
        let Some(BtfKind::FuncProto { ret, params }) = btf.get(proto).map(|t| &t.kind) else {
            panic!("{}: FUNC without FUNC_PROTO", m.name);
        };
        let got: Vec<String> = params.iter().map(|p| kind_of(p.type_id, &p.name)).collect();
        if got != m.params {
            diffs.push(format!(
                "{}: parameters {got:?}, model {:?}",
                m.name, m.params
            ));
        }
        let r = match kind_of(*ret, "").as_str() {
            "scalar" => "int".to_string(),
            k => k.to_string(),
        };
        if r != m.ret {
            diffs.push(format!("{}: returns {r}, model {}", m.name, m.ret));
        }
        checked += 1;
    }
    eprintln!("kfunc prototypes: {checked} checked against {path}; not in this kernel: {absent:?}");
    // The model is 6.18's: another release may declare a kfunc differently, which is a
    // fact of that kernel, not a failure here.
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    if !release.starts_with("6.18") && !diffs.is_empty() {
        eprintln!(
            "SKIPPED: modelled_kfuncs_match_vmlinux_btf: kernel {} declares kfuncs unlike the 6.18 model: {diffs:?}",
            release.trim()
        );
        return;
    }
    assert!(
        diffs.is_empty(),
        "prototypes differ from vmlinux BTF: {diffs:#?}"
    );
    assert!(checked > 0 || !absent.is_empty());
}
