//! Every helper prototype against the running kernel: each helper XDP may call is called
//! with its argument registers filled in several ways (left uninitialised, all the
//! context, all a stack pointer to 64 initialised bytes, all the constant 8, all a map
//! pointer, all a packet pointer with 64 checked bytes, all a 64-byte map value) and bpfkit's verdict and message must equal the kernel's. This exercises
//! the first argument type each prototype refuses, the order of the checks (GPL,
//! might_sleep, argument by argument) and the expected-type lists the kernel prints.

mod common;
use bpfkit_isa::RawInsn;
use bpfkit_object::model::{map_type, MapDef};
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
    let array = MapDef::plain("a", map_type::ARRAY, 4, 64, 4, 0);
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
        target: Some(kernel::live_target()),
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
                caps: bpfkit_verifier::Caps::ROOT,
                no_kernel: None,
                fields: vec![None],
                init: vec![None],
                func_info: false,
                kfuncs: vec![],
                max_ratio: None,
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

fn map(name: &str, t: u32, key: u32, value: u32, entries: u32, flags: u32) -> MapDef {
    MapDef::plain(name, t, key, value, entries, flags)
}

/// The map a helper's ARG_CONST_MAP_PTR gets, and whether it needs value BTF.
fn map_for(id: u32) -> (MapDef, bool) {
    use map_type as t;
    match id {
        12 => (map("p", t::PROG_ARRAY, 4, 4, 4, 0), false),
        22 | 25 | 55 => (map("pe", t::PERF_EVENT_ARRAY, 4, 4, 4, 0), false),
        37 => (map("cg", t::CGROUP_ARRAY, 4, 4, 1, 0), false),
        51 => (map("dm", t::DEVMAP, 4, 4, 4, 0), false),
        87..=89 => (map("q", t::QUEUE, 0, 64, 4, 0), false),
        130 | 131 | 134 | 198 => (map("rb", t::RINGBUF, 0, 0, 4096, 0), false),
        156 | 157 => (map("ts", t::TASK_STORAGE, 4, 64, 0, 1), true),
        195 => (map("pa", t::PERCPU_ARRAY, 4, 64, 4, 0), false),
        _ => (map("a", t::ARRAY, 4, 64, 4, 0), false),
    }
}

/// Every helper called with arguments that fit its prototype as bpfkit models it (a
/// map of a compatible type, 64 initialised stack bytes for memory, 8 for sizes, the
/// context, the current task): bpfkit and the kernel must agree (most are accepted;
/// where the kernel refuses, bpfkit must refuse the same way). Helpers whose arguments
/// cannot be made this way (callbacks, const strings, locks, timers, dynptrs, released
/// references, per-CPU and cgroup pointers) are covered by the case files.
#[test]
fn helpers_called_as_modelled_match_the_kernel() {
    use bpfkit_verifier::helpers::Arg;
    if let Some(why) = kernel::unavailable() {
        eprintln!("SKIPPED: {why}");
        return;
    }
    let mut failures = vec![];
    let (mut n, mut accepted, mut skipped) = (0, 0, vec![]);
    'helper: for pr in helpers::PROTOS {
        let (m, needs_btf) = map_for(pr.id);
        let mut setup = vec![RawInsn::new(0xbf, 6, 1, 0, 0)];
        if pr.args.iter().any(|a| matches!(a, Arg::BtfIdTask { .. })) {
            setup.push(RawInsn::new(0x85, 0, 0, 0, 158));
            setup.push(RawInsn::new(0xbf, 7, 0, 0, 0));
        }
        for (i, a) in pr.args.iter().enumerate() {
            let r = (i + 1) as u8;
            let mut ins = match a {
                Arg::DontCare => vec![],
                Arg::Anything | Arg::StackOrNull | Arg::MapValueOrNull => {
                    vec![RawInsn::new(0xb7, r, 0, 0, 0)]
                }
                Arg::Ctx => vec![RawInsn::new(0xbf, r, 6, 0, 0)],
                Arg::ConstMapPtr => {
                    vec![RawInsn::new(0x18, r, 5, 0, 0), RawInsn::new(0, 0, 0, 0, 0)]
                }
                Arg::MapKey
                | Arg::MapValue
                | Arg::UninitMapValue
                | Arg::Mem
                | Arg::MemOrNull
                | Arg::UninitMem
                | Arg::MemWrite
                | Arg::MemOrNullWrite
                | Arg::FixedMem(_)
                | Arg::FixedMemWriteAligned(_)
                | Arg::FixedUninitMemAligned(_) => vec![
                    RawInsn::new(0xbf, r, 10, 0, 0),
                    RawInsn::new(0x07, r, 0, 0, -64),
                ],
                Arg::ConstSize | Arg::ConstSizeOrZero | Arg::AllocSizeOrZero => {
                    vec![RawInsn::new(0xb7, r, 0, 0, 8)]
                }
                Arg::BtfIdTask { .. } => vec![RawInsn::new(0xbf, r, 7, 0, 0)],
                _ => {
                    skipped.push(helpers::name(pr.id as i32));
                    continue 'helper;
                }
            };
            setup.append(&mut ins);
        }
        let insns = prog(&setup, pr.id as i32);
        let maps = vec![m];
        let case = common::case::Case {
            name: "h".into(),
            maps: maps.clone(),
            insns: insns.clone(),
            accept: true,
            message: String::new(),
            caps: bpfkit_verifier::Caps::ROOT,
            no_kernel: None,
            fields: vec![needs_btf.then(Default::default)],
            init: vec![None],
            func_info: false,
            kfuncs: vec![],
            max_ratio: None,
        };
        let rep = bpfkit_verifier::verify(
            &case.program(),
            &maps,
            &bpfkit_verifier::Options {
                target: Some(kernel::live_target()),
                ..case.options()
            },
        );
        let k = kernel::load_xdp_ext(&insns, &maps, &case.extra()).expect("bpf(2) usable");
        n += 1;
        if k.accepted {
            accepted += 1;
        }
        let ktext = kernel::error_text(&k.log);
        let ok = match &rep.verdict {
            Verdict::Accepted => k.accepted,
            Verdict::Rejected(r) => {
                !k.accepted && r.kernel_message.lines().all(|l| ktext.contains(l))
            }
            Verdict::Unsupported { .. } => false,
        };
        if !ok {
            failures.push(format!(
                "{}#{}: bpfkit {}, kernel accepted={} last lines:\n{}",
                helpers::name(pr.id as i32),
                pr.id,
                serde_json::to_string(&rep.verdict).unwrap(),
                k.accepted,
                ktext.lines().rev().take(2).collect::<Vec<_>>().join(" | ")
            ));
        }
    }
    eprintln!(
        "helpers called as modelled: {n} helpers ({accepted} accepted by the kernel), {} differ; not callable this way: {}",
        failures.len(),
        skipped.join(", ")
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
