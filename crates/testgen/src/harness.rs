//! Running generated cases on engines and comparing what they observed.

use crate::ir::*;
use crate::strategy::{RawCase, XdpCase};
use bpfkit_isa::RawInsn;
use bpfkit_object::model::{
    map_type, prog_type, InsnOrigin, LinkedObject, LinkedProgram, MapDef, MapInit,
};
use bpfkit_vm::engine::{Engine, XdpInput};
use std::fmt::Write as _;

/// `ingress_ifindex` used for every run: the loopback device, which is also what the
/// kernel's `BPF_PROG_TEST_RUN` uses by default (queue 0).
pub const INGRESS_IFINDEX: u32 = 1;

fn map(name: &str, t: u32, value: i16, entries: u32) -> MapDef {
    MapDef::plain(name, t, 4, value as u32, entries, 0)
}

/// The object generated XDP programs run in: the programs (`gen`, `tail1`, ...) and
/// the maps `arr` (ARRAY), `hsh` (HASH), both 4 entries of 16 bytes, `res` (the
/// result), `jmp` (PROG_ARRAY, slot i = program i) and `pcp` (PERCPU_ARRAY like `arr`).
pub fn linked_object(programs: Vec<Vec<RawInsn>>) -> LinkedObject {
    linked_object_with_flags(programs, 0)
}

/// [`linked_object`] with `prog_flags` (e.g. `BPF_F_XDP_HAS_FRAGS`) on every program.
pub fn linked_object_with_flags(programs: Vec<Vec<RawInsn>>, prog_flags: u32) -> LinkedObject {
    let names: Vec<String> = (0..programs.len())
        .map(|i| {
            if i == 0 {
                "gen".to_string()
            } else {
                format!("tail{i}")
            }
        })
        .collect();
    let mut jmp = map("jmp", map_type::PROG_ARRAY, 4, 3);
    jmp.init = MapInit::Programs(
        names
            .iter()
            .enumerate()
            .map(|(i, n)| (i as u32, n.clone()))
            .collect(),
    );
    LinkedObject {
        programs: programs
            .into_iter()
            .zip(&names)
            .map(|(insns, name)| LinkedProgram {
                name: name.clone(),
                section: "xdp".into(),
                prog_type: prog_type::XDP,
                expected_attach_type: None,
                prog_flags,
                origins: (0..insns.len())
                    .map(|i| InsnOrigin {
                        section: "xdp".into(),
                        function: name.clone(),
                        insn_index: i,
                        line: None,
                    })
                    .collect(),
                insns,
            })
            .collect(),
        maps: vec![
            map("arr", map_type::ARRAY, MAP_VALUE_SIZE, MAP_ENTRIES),
            map("hsh", map_type::HASH, MAP_VALUE_SIZE, MAP_ENTRIES),
            map("res", map_type::ARRAY, RESULT_LEN as i16, 1),
            jmp,
            map("pcp", map_type::PERCPU_ARRAY, MAP_VALUE_SIZE, MAP_ENTRIES),
        ],
        license: "GPL".into(),
        kernel_version: None,
    }
}

/// The object of an XDP case.
pub fn case_object(case: &XdpCase) -> LinkedObject {
    let flags = if case.frags { BPF_F_XDP_HAS_FRAGS } else { 0 };
    linked_object_with_flags(case.programs.iter().map(|p| p.render()).collect(), flags)
}

/// `BPF_F_XDP_HAS_FRAGS` program flag.
pub const BPF_F_XDP_HAS_FRAGS: u32 = 1 << 5;

/// What one engine observed for one XDP case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XdpObserved {
    /// r0 as the XDP return value (low 32 bits; the full r0 is in the result map).
    pub retval: u32,
    pub packet: Vec<u8>,
    /// Entries of every map (empty for the PROG_ARRAY, whose values are kernel ids),
    /// sorted by key.
    pub maps: Vec<Vec<(Vec<u8>, Vec<u8>)>>,
}

/// Sets up the maps of `case`, runs its program once and collects the state.
pub fn run_xdp<E: Engine>(engine: &mut E, case: &XdpCase) -> Result<XdpObserved, String> {
    for (m, k, v) in &case.map_init {
        engine
            .map_update(*m, k, v, 0)
            .map_err(|e| format!("{}: map_update: {e}", engine.name()))?;
    }
    let input = XdpInput {
        packet: &case.packet,
        ingress_ifindex: INGRESS_IFINDEX,
        rx_queue_index: 0,
        cpu: 0,
        ..Default::default()
    };
    let out = engine
        .run_xdp(0, &input)
        .map_err(|e| format!("{}: run_xdp: {e}", engine.name()))?;
    let mut maps = vec![Vec::new(); MAP_PCP + 1];
    for (m, _) in COMPARED_MAPS {
        maps[m] = engine
            .map_entries(m)
            .map_err(|e| format!("{}: map_entries({m}): {e}", engine.name()))?;
    }
    Ok(XdpObserved {
        retval: out.retval as u32,
        packet: out.packet,
        maps,
    })
}

/// Names of the result slots.
pub fn result_slot_name(i: usize) -> String {
    if i < VALUE_REGS.len() {
        format!("r{}", VALUE_REGS[i])
    } else {
        format!(
            "stack[{}]",
            DATA_OFF as isize + 8 * (i - VALUE_REGS.len()) as isize
        )
    }
}

/// Describes the differences of two result buffers slot by slot.
pub fn diff_result(a_name: &str, a: &[u8], b_name: &str, b: &[u8]) -> String {
    let mut s = String::new();
    for i in 0..RESULT_LEN / 8 {
        let (x, y) = (a.get(i * 8..i * 8 + 8), b.get(i * 8..i * 8 + 8));
        if x != y {
            let v = |o: Option<&[u8]>| {
                o.map_or("<missing>".into(), |o| {
                    format!("{:#018x}", u64::from_le_bytes(o.try_into().unwrap()))
                })
            };
            let _ = writeln!(
                s,
                "  {}: {a_name} {} {b_name} {}",
                result_slot_name(i),
                v(x),
                v(y)
            );
        }
    }
    s
}

/// `Ok(())` when both observations agree; otherwise a description of every difference.
pub fn compare_xdp(
    a_name: &str,
    a: &XdpObserved,
    b_name: &str,
    b: &XdpObserved,
) -> Result<(), String> {
    let mut s = String::new();
    if a.retval != b.retval {
        let _ = writeln!(
            s,
            "retval: {a_name} {:#x} {b_name} {:#x}",
            a.retval, b.retval
        );
    }
    if a.packet != b.packet {
        let _ = writeln!(
            s,
            "packet:\n  {a_name} {:02x?}\n  {b_name} {:02x?}",
            a.packet, b.packet
        );
    }
    for (m, name) in COMPARED_MAPS {
        if a.maps[m] != b.maps[m] {
            if m == MAP_RES && a.maps[m].len() == 1 && b.maps[m].len() == 1 {
                let _ = write!(
                    s,
                    "map res (registers, stack):\n{}",
                    diff_result(a_name, &a.maps[m][0].1, b_name, &b.maps[m][0].1)
                );
            } else {
                let _ = writeln!(
                    s,
                    "map {name}:\n  {a_name} {:02x?}\n  {b_name} {:02x?}",
                    a.maps[m], b.maps[m]
                );
            }
        }
    }
    if s.is_empty() {
        Ok(())
    } else {
        Err(s)
    }
}

/// A listing of a program for reports: one instruction per line, raw bytes and fields.
pub fn listing(insns: &[RawInsn]) -> String {
    let mut s = String::new();
    for (i, ins) in insns.iter().enumerate() {
        let b = ins.to_bytes();
        let _ = writeln!(
            s,
            "{i:4}: {:02x} {:02x} {:02x} {:02x} {:02x} {:02x} {:02x} {:02x}   code={:#04x} dst=r{} src=r{} off={} imm={}",
            b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], ins.code, ins.dst, ins.src, ins.off, ins.imm
        );
    }
    s
}

/// Describes a failing XDP case for a report.
pub fn describe_xdp(case: &XdpCase) -> String {
    let shown = case.packet.len().min(128);
    let mut s = format!(
        "frags: {}\npacket ({} bytes, first {shown} shown): {:02x?}\nmap init: {:?}\n",
        case.frags,
        case.packet.len(),
        &case.packet[..shown],
        case.map_init
    );
    for (i, p) in case.programs.iter().enumerate() {
        let _ = write!(
            s,
            "program {i} items: {:#?}\nsubprograms: {:#?}\nprogram {i}:\n{}",
            p.items,
            p.subprogs,
            listing(&p.render())
        );
    }
    s
}

/// Describes a failing raw case for a report.
pub fn describe_raw(case: &RawCase) -> String {
    format!(
        "mem: {:02x?}\nitems: {:#?}\nsubprograms: {:#?}\nprogram:\n{}",
        case.mem,
        case.program.items,
        case.program.subprogs,
        listing(&case.program.render())
    )
}

/// Number of cases for a test: `BPFKIT_DIFF_CASES` if set, else `default`.
pub fn case_count(default: u32) -> u32 {
    std::env::var("BPFKIT_DIFF_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A proptest runner for `cases` cases without failure persistence files; seeded from
/// `BPFKIT_DIFF_SEED` (a number) when set, otherwise with a fixed seed so CI runs are
/// reproducible.
pub fn runner(cases: u32) -> proptest::test_runner::TestRunner {
    use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
    let seed: u64 = std::env::var("BPFKIT_DIFF_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0xb9f_c0de);
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let config = Config {
        cases,
        failure_persistence: None,
        max_shrink_iters: 2000,
        ..Config::default()
    };
    TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &bytes))
}

/// `f` limited to what the running kernel offers XDP programs: helpers it refuses (as one
/// 6.18 build refuses `bpf_xdp_adjust_meta`) are left out of generated programs, with a
/// printed `SKIPPED:` line saying so.
pub fn for_running_kernel(
    test: &str,
    mut f: crate::strategy::Features,
) -> crate::strategy::Features {
    if f.adjust_meta {
        if let Err(why) = bpfkit_loader::xdp_helper_available("bpf_xdp_adjust_meta") {
            eprintln!("\n*** SKIPPED: {test}: generated programs leave out bpf_xdp_adjust_meta: {why} ***\n");
            f.adjust_meta = false;
        }
    }
    f
}
