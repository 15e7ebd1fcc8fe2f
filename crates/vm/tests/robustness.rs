//! Nothing a program does may crash the host: random instruction streams (with map
//! references, helper calls with random arguments, context and packet accesses) run to
//! completion or stop with an error, never a panic. Absurd map definitions are refused.

use bpfkit_isa::RawInsn;
use bpfkit_object::model::{map_type as mt, MapDef};
use bpfkit_vm::{Config, Engine, Interpreter, Program, XdpInput};
use proptest::prelude::*;

fn map(name: &str, t: u32, key: u32, value: u32, max: u32, flags: u32) -> MapDef {
    MapDef::plain(name, t, key, value, max, flags)
}

fn maps() -> Vec<MapDef> {
    vec![
        map("a", mt::ARRAY, 4, 8, 4, 0),
        map("h", mt::HASH, 4, 8, 4, 0),
        map("pa", mt::PERCPU_ARRAY, 4, 8, 2, 0),
        map("lpm", mt::LPM_TRIE, 8, 4, 4, 1),
        map("q", mt::QUEUE, 0, 4, 2, 0),
        map("rb", mt::RINGBUF, 0, 0, 4096, 0),
        map("jmp", mt::PROG_ARRAY, 4, 4, 2, 0),
        map("dev", mt::DEVMAP, 4, 4, 2, 0),
    ]
}

/// Instructions biased towards valid opcodes, map references and helper calls.
fn insn() -> impl Strategy<Value = RawInsn> {
    let codes: Vec<u8> = vec![
        0x07, 0x0f, 0x17, 0x1f, 0x27, 0x37, 0x3f, 0x47, 0x57, 0x67, 0x6f, 0x77, 0x7f, 0x87, 0x97,
        0x9f, 0xa7, 0xb7, 0xbf, 0xc7, 0xcf, 0xd4, 0xdc, 0xd7, 0x04, 0x0c, 0x14, 0x24, 0x34, 0x3c,
        0x94, 0x9c, 0xb4, 0xbc, 0xc4, 0x05, 0x15, 0x1d, 0x25, 0x2d, 0x35, 0x45, 0x55, 0x5d, 0x65,
        0x75, 0xa5, 0xb5, 0xc5, 0xd5, 0x06, 0x16, 0x1e, 0x56, 0x61, 0x69, 0x71, 0x79, 0x81, 0x89,
        0x91, 0x62, 0x6a, 0x72, 0x7a, 0x63, 0x6b, 0x73, 0x7b, 0xc3, 0xdb, 0x85, 0x8d, 0x95, 0x18,
        0x00, 0x20, 0xff,
    ];
    (
        prop::sample::select(codes),
        0u8..12,
        0u8..12,
        prop_oneof![Just(0i16), -16i16..16, -600i16..600, any::<i16>()],
        prop_oneof![0i32..8, -64i32..64, 0i32..212, any::<i32>()],
    )
        .prop_map(|(code, dst, src, off, imm)| {
            let mut i = RawInsn::new(code, dst % 11, src % 11, off, imm);
            if code == 0x18 && src % 3 == 0 {
                i.src = 5; // map by index
                i.imm = imm.rem_euclid(9);
            }
            if code == 0x85 && src % 2 == 0 {
                i.src = 0;
            }
            i
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn random_programs_never_panic(
        body in prop::collection::vec(insn(), 1..40),
        packet in prop::collection::vec(any::<u8>(), 0..200),
        mem in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        let mut insns = body;
        insns.push(RawInsn::new(0x95, 0, 0, 0, 0));
        let progs = vec![
            Program { name: "p".into(), insns: insns.clone(), origins: Vec::new(), prog_type: 6, expected_attach_type: None },
            Program { name: "q".into(), insns, origins: Vec::new(), prog_type: 6, expected_attach_type: None },
        ];
        let config = Config { ncpus: 2, insn_limit: 20_000, ..Config::default() };
        let mut v = Interpreter::with_programs(progs, &maps(), config).expect("valid maps");
        let _ = v.map_update(6, &0u32.to_le_bytes(), &1u32.to_le_bytes(), 0);
        let _ = v.run_xdp(0, &XdpInput { packet: &packet, ..XdpInput::default() });
        let _ = v.run_xdp(0, &XdpInput { packet: &packet, cpu: 1, ..XdpInput::default() });
        let _ = v.run_raw(1, &mem);
        for m in 0..8 {
            let _ = v.map_entries(m);
        }
    }
}

#[test]
fn absurd_map_definitions_are_refused_not_allocated() {
    for def in [
        map("big_array", mt::ARRAY, 4, 1 << 20, u32::MAX, 0),
        map("zero_value", mt::HASH, 4, 0, 16, 0),
        map("lpm_prealloc", mt::LPM_TRIE, 8, 4, 16, 0),
        map("keyed_ringbuf", mt::RINGBUF, 4, 0, 4096, 0),
        map("sockmap", mt::SOCKMAP, 4, 4, 4, 0),
    ] {
        let r = Interpreter::with_programs(vec![], std::slice::from_ref(&def), Config::default());
        assert!(r.is_err(), "{} should be refused", def.name);
    }
    // Huge but sparse maps cost nothing until used.
    for def in [
        map("slots", mt::PROG_ARRAY, 4, 4, u32::MAX, 0),
        map("h", mt::HASH, 4, 8, u32::MAX, 0),
    ] {
        let mut v =
            Interpreter::with_programs(vec![], &[def], Config::default()).expect("sparse map");
        assert!(v.map_entries(0).unwrap().is_empty());
        let _ = v.map_update(0, &7u32.to_le_bytes(), &[0; 8], 0);
    }
}
