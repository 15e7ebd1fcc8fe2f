//! Every helper prototype against the running kernel: each helper XDP may call is called
//! with its argument registers filled in several ways (left uninitialised, all the
//! context, all a stack pointer to 64 initialised bytes, all the constant 8, all a map
//! pointer, all a packet pointer with 64 checked bytes, all a 64-byte map value) and bpfkit's verdict and message must equal the kernel's. This exercises
//! the first argument type each prototype refuses, the order of the checks (GPL,
//! might_sleep, argument by argument) and the expected-type lists the kernel prints.

mod common;
use bpfkit_isa::RawInsn;
use bpfkit_object::model::{map_type, MapDef, MapInit, MapOrigin};
use bpfkit_verifier::{helpers, Verdict};
use common::kernel;

fn prog(setup: &[RawInsn], id: i32) -> Vec<RawInsn> {
    let mut p = vec![
        // 64 initialised stack bytes
        RawInsn::new(0xb7, 0, 0, 0, 0),
    ];
    for k in 1..=8 {
        p.push(RawInsn::new(0x7b, 10, 0, -8 * k, 0));
    }
    p.extend_from_slice(setup);
    p.push(RawInsn::new(0x85, 0, 0, 0, id));
    p.push(RawInsn::new(0xb7, 0, 0, 0, 2));
    p.push(RawInsn::new(0x95, 0, 0, 0, 0));
    p
}

fn fill(f: impl Fn(u8) -> Vec<RawInsn>) -> Vec<RawInsn> {
    (1..=5).flat_map(f).collect()
}

#[test]
fn helper_prototypes_match_the_kernel() {
    if let Some(why) = kernel::unavailable() {
        eprintln!("SKIPPED: {why}");
        return;
    }
    let array = MapDef {
        name: "a".into(),
        map_type: map_type::ARRAY,
        key_size: 4,
        value_size: 64,
        max_entries: 4,
        map_flags: 0,
        pinning: 0,
        inner: None,
        init: MapInit::None,
        origin: MapOrigin::Btf,
        section: ".maps".into(),
        btf_key_type_id: 0,
        btf_value_type_id: 0,
    };
    let maps = vec![array];
    let fillings: Vec<(&str, Vec<RawInsn>)> = vec![
        ("uninit", vec![]),
        (
            "ctx",
            fill(|r| {
                if r == 1 {
                    vec![]
                } else {
                    vec![RawInsn::new(0xbf, r, 1, 0, 0)]
                }
            }),
        ),
        (
            "stack",
            fill(|r| {
                vec![
                    RawInsn::new(0xbf, r, 10, 0, 0),
                    RawInsn::new(0x07, r, 0, 0, -64),
                ]
            }),
        ),
        ("const8", fill(|r| vec![RawInsn::new(0xb7, r, 0, 0, 8)])),
        (
            "map",
            fill(|r| vec![RawInsn::new(0x18, r, 5, 0, 0), RawInsn::new(0, 0, 0, 0, 0)]),
        ),
        (
            "pkt",
            [
                RawInsn::new(0x61, 2, 1, 0, 0),
                RawInsn::new(0x61, 3, 1, 4, 0),
                RawInsn::new(0xbf, 4, 2, 0, 0),
                RawInsn::new(0x07, 4, 0, 0, 64),
                // if r4 > r3 goto the `r0 = 2` after the call
                RawInsn::new(0x2d, 4, 3, 6, 0),
            ]
            .into_iter()
            .chain(fill(|r| vec![RawInsn::new(0xbf, r, 2, 0, 0)]))
            .collect(),
        ),
        (
            "mapval",
            [
                RawInsn::new(0xb7, 1, 0, 0, 0),
                RawInsn::new(0x63, 10, 1, -72, 0),
                RawInsn::new(0xbf, 2, 10, 0, 0),
                RawInsn::new(0x07, 2, 0, 0, -72),
                RawInsn::new(0x18, 1, 5, 0, 0),
                RawInsn::new(0, 0, 0, 0, 0),
                RawInsn::new(0x85, 0, 0, 0, 1),
            ]
            .into_iter()
            .chain(fill(|r| vec![RawInsn::new(0xbf, r, 0, 0, 0)]))
            .collect(),
        ),
    ];
    let opts = bpfkit_verifier::Options {
        map_fields: Some(vec![Default::default()]),
        ..Default::default()
    };
    let mut failures = vec![];
    let mut n = 0;
    let mut undecided = vec![];
    for pr in helpers::PROTOS {
        for (fname, setup) in &fillings {
            let insns = prog(setup, pr.id as i32);
            let lp = common::case::Case {
                name: "h".into(),
                maps: maps.clone(),
                insns: insns.clone(),
                accept: true,
                message: String::new(),
                unprivileged: false,
                no_kernel: None,
                fields: vec![None],
                init: vec![None],
                func_info: false,
            }
            .program();
            let rep = bpfkit_verifier::verify(&lp, &maps, &opts);
            let k = kernel::load_xdp(&insns, &maps).expect("bpf(2) usable");
            n += 1;
            let ktext = kernel::error_text(&k.log);
            let ok = match &rep.verdict {
                Verdict::Accepted => k.accepted,
                Verdict::Rejected(r) => {
                    !k.accepted && r.kernel_message.lines().all(|l| ktext.contains(l))
                }
                // undecided is never wrong; the kernel must then not be contradicted
                Verdict::Unsupported { what, .. } => {
                    undecided.push(format!(
                        "{}#{} {fname}: {what}",
                        helpers::name(pr.id as i32),
                        pr.id
                    ));
                    true
                }
            };
            if !ok {
                failures.push(format!(
                    "{}#{} with args {fname}: bpfkit {}, kernel accepted={} last lines:\n{}",
                    helpers::name(pr.id as i32),
                    pr.id,
                    serde_json::to_string(&rep.verdict).unwrap(),
                    k.accepted,
                    ktext.lines().rev().take(2).collect::<Vec<_>>().join(" | ")
                ));
            }
        }
    }
    eprintln!(
        "helper prototypes: {n} programs, {} differ, {} undecided:\n{}",
        failures.len(),
        undecided.len(),
        undecided.join("\n")
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
