//! `--maps-in` refuses what the kernel refuses on `BPF_MAP_UPDATE_ELEM` (issue 14 item 6),
//! on every engine alike, with the map, the entry and the field in the message: wrong key
//! and value sizes, a map-in-map value that does not match the inner-map template (the
//! kernel's -EINVAL; before, a verified program then wrote past a 1-byte value), a
//! PROG_ARRAY program incompatible with the map's owner, an ifindex that does not fit.

mod common;

use bpfkit_replay::engines::EngineKind;
use bpfkit_replay::{replay, Options, ReplayError};
use std::path::PathBuf;

fn tmpdir(name: &str) -> PathBuf {
    common::scratch_dir(name)
}

fn obj(name: &str) -> bpfkit_object::model::LinkedObject {
    common::load(&common::root().join(format!("corpus/obj/{name}.o")))
}

fn mixed() -> PathBuf {
    common::root().join("corpus/pcap/mixed.pcap")
}

/// Replays with `doc` as the maps file on `engine`; the error message if refused.
fn try_doc(
    o: &bpfkit_object::model::LinkedObject,
    doc: &str,
    engine: EngineKind,
    prog: Option<&str>,
) -> Result<(), String> {
    let d = tmpdir(&format!("{}-{}", engine.name(), doc.len()));
    std::fs::write(d.join("in.json"), doc).unwrap();
    let opts = Options {
        engine,
        prog: prog.map(String::from),
        maps_in: Some(d.join("in.json")),
        ..Options::default()
    };
    match replay(o, &mixed(), &opts, None) {
        Ok(_) => Ok(()),
        Err(ReplayError::Bad(m)) => Err(m),
        Err(other) => panic!("expected an input error (exit 1), got {other:?}"),
    }
}

/// Refused on the interpreter and both JIT modes (fast mode forced) with a message
/// containing every part of `want`.
fn refused(o: &bpfkit_object::model::LinkedObject, doc: &str, prog: Option<&str>, want: &[&str]) {
    for e in [
        EngineKind::Interp,
        EngineKind::JitChecked,
        EngineKind::JitFastUnverified,
        EngineKind::Jit,
    ] {
        match try_doc(o, doc, e, prog) {
            Ok(()) => panic!("{}: accepted {doc}", e.name()),
            Err(m) => {
                for w in want {
                    assert!(m.contains(w), "{}: `{w}` not in: {m}", e.name());
                }
            }
        }
    }
}

#[test]
fn map_in_map_value_must_match_the_template() {
    let o = obj("xdp_map_in_map");
    // The issue's reproducer: a HASH of 1-byte values where the template is an ARRAY of
    // u64 counters.
    refused(
        &o,
        r#"{"per_vlan": [["00000000", {"map": "tenant_a_ports"}]]}"#,
        None,
        &[
            "`per_vlan` entry 0",
            "field `map`",
            "`tenant_a_ports` does not match the inner-map template",
            "map type 1 differs from the inner-map template's 2",
            "EINVAL",
        ],
    );
    // The other direction, and an entry that is not the first.
    refused(
        &o,
        r#"{"tenants": [["00000000", {"map": "tenant_b_ports"}], ["01000000", {"map": "untagged_counters"}]]}"#,
        None,
        &["`tenants` entry 1", "untagged_counters"],
    );
    // A matching map is fine, also at a new key.
    try_doc(
        &o,
        r#"{"per_vlan": [["07000000", {"map": "vlan100_counters"}]], "tenants": [["00000000", {"map": "tenant_b_ports"}]]}"#,
        EngineKind::Jit,
        None,
    )
    .unwrap();
    // References only as names: a hex value could name any map.
    refused(
        &o,
        r#"{"per_vlan": [["00000000", "02000000"]]}"#,
        None,
        &["`per_vlan` entry 0", "{\"map\": NAME}"],
    );
}

#[test]
fn keys_and_values_have_the_map_sizes() {
    let o = obj("xdp_map_in_map");
    refused(
        &o,
        r#"{"tenant_a_ports": [["0050", "01"], ["00", "01"]]}"#,
        None,
        &[
            "`tenant_a_ports` entry 1",
            "key: 1 bytes, the map's keys are 2 bytes",
        ],
    );
    refused(
        &o,
        r#"{"tenant_a_ports": [["0050", "0101"]]}"#,
        None,
        &["entry 0", "value: 2 bytes, the map's values are 1 bytes"],
    );
    refused(
        &o,
        r#"{"untagged_counters": [[4294967296, "0100000000000000"]]}"#,
        None,
        &["entry 0", "key: 4294967296 is not an index"],
    );
    refused(
        &o,
        r#"{"tenant_a_ports": [[1, "01"]]}"#,
        None,
        &["entry 0", "an index needs 4-byte keys"],
    );
    try_doc(
        &o,
        r#"{"tenant_a_ports": [["0050", "01"]], "untagged_counters": [[3, "0100000000000000"]]}"#,
        EngineKind::Interp,
        None,
    )
    .unwrap();
}

#[test]
fn ifindex_fits_its_field() {
    let o = obj("xdp_redirect");
    refused(
        &o,
        r#"{"tx_port": [["00000000", {"ifindex": 4294967296}]]}"#,
        None,
        &[
            "`tx_port` entry 0",
            "field `ifindex`: 4294967296 does not fit in its 32 bits",
        ],
    );
    refused(
        &o,
        r#"{"tx_port": [["00000000", {"ifindex": 0}]]}"#,
        None,
        &["field `ifindex`: 0 is no device"],
    );
    refused(
        &o,
        r#"{"tx_port": [["00000000", {"ifindex": -1}]]}"#,
        None,
        &["field `ifindex`: -1 is not an interface index"],
    );
    refused(
        &o,
        r#"{"next_hop": [["0a000001", {"ifindex": 1}]]}"#,
        None,
        &["field `ifindex`: only DEVMAP/DEVMAP_HASH values"],
    );
    try_doc(
        &o,
        r#"{"tx_port": [["00000000", {"ifindex": 1}]]}"#,
        EngineKind::Interp,
        None,
    )
    .unwrap();
}

#[test]
fn prog_array_programs_are_compatible_with_the_owner() {
    let mut o = obj("xdp_tailcall");
    // handle_arp as an `xdp.frags` program: the kernel refuses it in a PROG_ARRAY that
    // the plain XDP dispatcher owns.
    let p = o
        .programs
        .iter_mut()
        .find(|p| p.name == "handle_arp")
        .unwrap();
    p.prog_flags |= 1 << 5;
    refused(
        &o,
        r#"{"jmp_table": [["00000000", {"program": "handle_ipv4"}], ["01000000", {"program": "handle_arp"}]]}"#,
        Some("xdp_dispatch"),
        &[
            "`jmp_table` entry 1",
            "field `program`: `handle_arp`",
            "not compatible with `xdp_dispatch`",
            "xdp.frags",
        ],
    );
    refused(
        &o,
        r#"{"jmp_table": [["00000000", {"program": "nosuch"}]]}"#,
        Some("xdp_dispatch"),
        &["field `program`: no program named `nosuch`"],
    );
    try_doc(
        &o,
        r#"{"jmp_table": [["00000000", {"program": "handle_ipv4"}]]}"#,
        EngineKind::Interp,
        Some("xdp_dispatch"),
    )
    .unwrap();
}

/// The engines themselves refuse a mismatching inner map from user space (the replay
/// check above is not the only line).
#[test]
fn engine_map_update_refuses_a_mismatching_inner_map() {
    use bpfkit_vm::Engine;
    let o = obj("xdp_map_in_map");
    let outer = o.map_index("per_vlan").unwrap();
    let bad = o.map_index("tenant_a_ports").unwrap() as u32;
    let good = o.map_index("vlan100_counters").unwrap() as u32;
    let mut i = bpfkit_vm::Interpreter::new(&o, bpfkit_vm::Config::default()).unwrap();
    let e = i
        .map_update(outer, &0u32.to_le_bytes(), &bad.to_le_bytes(), 0)
        .unwrap_err()
        .to_string();
    assert!(e.contains("inner-map template"), "{e}");
    i.map_update(outer, &0u32.to_le_bytes(), &good.to_le_bytes(), 0)
        .unwrap();
    let mut j = bpfkit_jit::Jit::new_fast(&o, bpfkit_vm::Config::default()).unwrap();
    assert!(j
        .map_update(outer, &0u32.to_le_bytes(), &bad.to_le_bytes(), 0)
        .is_err());
}

/// `inner_map_mismatch` gives the kernel's verdict: each pair is tried as template and
/// inner map of an ARRAY_OF_MAPS and a HASH_OF_MAPS in the running kernel (EINVAL
/// exactly when bpfkit finds a mismatch). Skipped without a usable kernel.
#[test]
fn inner_map_template_check_agrees_with_the_kernel() {
    use bpfkit_loader::map::{Map, MapSpec};
    use bpfkit_object::model::map_type as mt;
    use bpfkit_object::model::MapDef;
    use std::os::fd::{AsFd, AsRawFd};
    if !bpfkit_loader::probe::kernel_or_skip("inner_map_template_check_agrees_with_the_kernel") {
        return;
    }
    const NO_PREALLOC: u32 = 1;
    const INNER_MAP: u32 = 1 << 12;
    let d = |t: u32, k: u32, v: u32, n: u32, f: u32| MapDef::plain("m", t, k, v, n, f);
    let pairs = [
        (d(mt::ARRAY, 4, 8, 4, 0), d(mt::ARRAY, 4, 8, 4, 0)),
        (d(mt::ARRAY, 4, 8, 4, 0), d(mt::HASH, 4, 8, 4, 0)),
        (d(mt::HASH, 2, 1, 64, 0), d(mt::ARRAY, 4, 8, 4, 0)),
        (d(mt::HASH, 4, 8, 64, 0), d(mt::HASH, 4, 16, 64, 0)),
        (d(mt::HASH, 4, 8, 64, 0), d(mt::HASH, 8, 8, 64, 0)),
        (d(mt::HASH, 4, 8, 64, 0), d(mt::HASH, 4, 8, 64, NO_PREALLOC)),
        (d(mt::HASH, 4, 8, 64, 0), d(mt::HASH, 4, 8, 1000, 0)),
        (d(mt::ARRAY, 4, 8, 4, 0), d(mt::ARRAY, 4, 8, 8, 0)),
        (
            d(mt::ARRAY, 4, 8, 4, INNER_MAP),
            d(mt::ARRAY, 4, 8, 8, INNER_MAP),
        ),
        (
            d(mt::PERCPU_ARRAY, 4, 8, 4, 0),
            d(mt::PERCPU_ARRAY, 4, 8, 8, 0),
        ),
        (
            d(mt::PERCPU_HASH, 4, 8, 4, 0),
            d(mt::PERCPU_HASH, 4, 8, 8, 0),
        ),
        (d(mt::LRU_HASH, 4, 8, 16, 0), d(mt::HASH, 4, 8, 16, 0)),
    ];
    let mut checked = 0;
    for (template, inner) in &pairs {
        let t = Map::create(&MapSpec::from(template), None).unwrap();
        let i = Map::create(&MapSpec::from(inner), None).unwrap();
        let fd = (i.as_fd().as_raw_fd() as u32).to_le_bytes();
        let ours = bpfkit_vm::maps::inner_map_mismatch(template, inner);
        for outer_type in [mt::ARRAY_OF_MAPS, mt::HASH_OF_MAPS] {
            let outer = Map::create(
                &MapSpec {
                    name: "outer".into(),
                    map_type: outer_type,
                    key_size: 4,
                    value_size: 4,
                    max_entries: 4,
                    map_flags: 0,
                },
                Some(t.as_fd()),
            )
            .unwrap();
            let kernel = outer.update(&0u32.to_le_bytes(), &fd, 0);
            match (&ours, &kernel) {
                (None, Ok(())) => {}
                (Some(_), Err(e)) if e.errno() == Some(libc_einval()) => {}
                _ => panic!(
                    "template {template:?}, inner {inner:?}, outer type {outer_type}: bpfkit says {ours:?}, the kernel {kernel:?}"
                ),
            }
            checked += 1;
        }
    }
    assert_eq!(checked, 2 * pairs.len());
}

fn libc_einval() -> i32 {
    22
}

/// The PROG_ARRAY rule `--maps-in` applies (program type, expected attach type and
/// `xdp.frags` equal to the owner's) is the kernel's: an XDP program using a PROG_ARRAY
/// is loaded, then programs differing in one of the three are put into the array.
/// Skipped without a usable kernel.
#[test]
fn prog_array_compatibility_agrees_with_the_kernel() {
    use bpfkit_isa::opcode::BPF_PSEUDO_MAP_FD;
    use bpfkit_loader::map::{Map, MapSpec};
    use bpfkit_loader::prog::{Program, ProgramSpec};
    use bpfkit_object::model::{map_type as mt, prog_type};
    use bpfkit_object::secdef::{attach_type as at, BPF_F_XDP_HAS_FRAGS};
    use std::os::fd::{AsFd, AsRawFd};
    if !bpfkit_loader::probe::kernel_or_skip("prog_array_compatibility_agrees_with_the_kernel") {
        return;
    }
    let pa = Map::create(
        &MapSpec {
            name: "jmp".into(),
            map_type: mt::PROG_ARRAY,
            key_size: 4,
            value_size: 4,
            max_entries: 4,
            map_flags: 0,
        },
        None,
    )
    .unwrap();
    use bpfkit_isa::RawInsn;
    // lddw r2, jmp; r3 = 0; call bpf_tail_call; r0 = XDP_PASS; exit
    let owner_insns = [
        RawInsn::new(0x18, 2, BPF_PSEUDO_MAP_FD, 0, pa.as_fd().as_raw_fd()),
        RawInsn::new(0, 0, 0, 0, 0),
        RawInsn::new(0xb7, 3, 0, 0, 0),
        RawInsn::new(0x85, 0, 0, 0, 12),
        RawInsn::new(0xb7, 0, 0, 0, 2),
        RawInsn::new(0x95, 0, 0, 0, 0),
    ];
    let owner = Program::load(&ProgramSpec::new("owner", prog_type::XDP, &owner_insns)).unwrap();
    let plain = [
        RawInsn::new(0xb7, 0, 0, 0, 2),
        RawInsn::new(0x95, 0, 0, 0, 0),
    ];
    // (expected attach type, flags, does bpfkit's rule call it compatible)
    let cases = [
        (0, 0, true),
        (0, BPF_F_XDP_HAS_FRAGS, false),
        (at::XDP_DEVMAP, 0, false),
        (at::XDP, 0, false),
    ];
    for (eat, flags, ours) in cases {
        let mut spec = ProgramSpec::new("cand", prog_type::XDP, &plain);
        spec.expected_attach_type = eat;
        spec.prog_flags = flags;
        let p = Program::load(&spec).unwrap();
        let fd = (p.as_fd().as_raw_fd() as u32).to_le_bytes();
        let kernel = pa.update(&1u32.to_le_bytes(), &fd, 0);
        match (ours, &kernel) {
            (true, Ok(())) => {}
            (false, Err(e)) if e.errno() == Some(22) => {}
            _ => panic!(
                "expected attach type {eat}, flags {flags:#x}: bpfkit says compatible = {ours}, the kernel {kernel:?}"
            ),
        }
    }
    drop(owner);
}
