//! Fast mode's direct map paths (inline array lookups, map operations on raw pointers,
//! the tail-call jump table) give the interpreter's results: in-range and out-of-range
//! array indexes, per-CPU arrays on another CPU, hash updates whose value points into the
//! same map, and jump tables that follow user-space updates of the PROG_ARRAY.

use bpfkit_isa::opcode::BPF_PSEUDO_MAP_IDX;
use bpfkit_jit::Jit;
use bpfkit_object::model::map_type as mt;
use bpfkit_object::model::{prog_type, LinkedObject, LinkedProgram, MapDef};
use bpfkit_vm::{Config, Engine, Interpreter, XdpInput};

fn asm(text: &str) -> Vec<bpfkit_isa::RawInsn> {
    bpfkit_asm::assemble(text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

fn map(name: &str, map_type: u32, key_size: u32, value_size: u32, max_entries: u32) -> MapDef {
    MapDef::plain(name, map_type, key_size, value_size, max_entries, 0)
}

/// Assembles `text` and points every `lddw %rN, M` (M a small number) at map #M.
fn prog(name: &str, text: &str) -> LinkedProgram {
    let mut insns = asm(text);
    let mut pc = 0;
    while pc < insns.len() {
        if insns[pc].code == bpfkit_isa::opcode::LDDW {
            insns[pc].src = BPF_PSEUDO_MAP_IDX;
            pc += 2;
        } else {
            pc += 1;
        }
    }
    LinkedProgram {
        name: name.into(),
        section: "xdp".into(),
        prog_type: prog_type::XDP,
        expected_attach_type: None,
        prog_flags: 0,
        origins: Vec::new(),
        insns,
    }
}

fn object(programs: Vec<LinkedProgram>, maps: Vec<MapDef>) -> LinkedObject {
    LinkedObject {
        programs,
        maps,
        license: "GPL".into(),
        kernel_version: None,
    }
}

/// Interpreter, checked JIT and fast JIT over the same object.
fn engines(obj: &LinkedObject, config: &Config) -> (Interpreter, Jit, Jit) {
    let i = Interpreter::new(obj, config.clone()).unwrap();
    let j = Jit::new(obj, config.clone()).unwrap();
    // SAFETY: the test programs are verifier-valid (NULL checks before every value
    // access, keys and values on the stack).
    let f = unsafe { Jit::new_unchecked(obj, config.clone()) }.unwrap();
    (i, j, f)
}

/// Runs program 0 on all three engines with the first packet byte = `b`; same output and
/// same contents of every map.
fn same(e: &mut (Interpreter, Jit, Jit), nmaps: usize, b: u8, cpu: u32) -> u64 {
    let mut packet = [0u8; 64];
    packet[0] = b;
    let input = XdpInput {
        packet: &packet,
        cpu,
        ..Default::default()
    };
    let a = e.0.run_xdp(0, &input).unwrap();
    let c = e.1.run_xdp(0, &input).unwrap();
    let d = e.2.run_xdp(0, &input).unwrap();
    assert_eq!(a, c, "checked JIT, byte {b}");
    assert_eq!(a, d, "fast JIT, byte {b}");
    for m in 0..nmaps {
        let x = e.0.map_entries(m).unwrap();
        assert_eq!(x, e.1.map_entries(m).unwrap(), "map {m}, checked JIT");
        assert_eq!(x, e.2.map_entries(m).unwrap(), "map {m}, fast JIT");
    }
    a.retval
}

/// Key = first packet byte; looks it up in map #0 (r0 = 1000 if absent), else adds 1 to
/// the first 8 bytes of the value and returns them.
const LOOKUP_INC: &str = "
    ldxw %r2, [%r1+0]
    ldxb %r3, [%r2+0]
    stxw [%r10-4], %r3
    mov %r2, %r10
    add %r2, -4
    lddw %r1, 0
    call 1
    jne %r0, 0, +2
    mov %r0, 1000
    exit
    ldxdw %r1, [%r0+0]
    add %r1, 1
    stxdw [%r0+0], %r1
    mov %r0, %r1
    exit";

#[test]
fn inline_array_lookups_match_the_interpreter() {
    let config = Config {
        ncpus: 2,
        ..Default::default()
    };
    for t in [mt::ARRAY, mt::PERCPU_ARRAY] {
        // value_size 12: the stride rounds up to 16.
        let obj = object(vec![prog("p", LOOKUP_INC)], vec![map("a", t, 4, 12, 5)]);
        let mut e = engines(&obj, &config);
        for round in 0..3u64 {
            for b in [0u8, 1, 4, 5, 200, 255] {
                for cpu in 0..2 {
                    let r = same(&mut e, 1, b, cpu);
                    let want = if b < 5 { round + 1 } else { 1000 };
                    if t == mt::ARRAY && b < 5 {
                        assert_eq!(r, round * 2 + cpu as u64 + 1);
                    } else {
                        assert_eq!(r, want, "type {t} byte {b} cpu {cpu}");
                    }
                }
            }
        }
    }
}

/// Hash map: lookup; if absent, insert {byte, 0} with BPF_NOEXIST; then update the element
/// with a value pointing into the map's own value (an aliasing update), then delete key
/// 7 when present.
const HASH_OPS: &str = "
    ldxw %r2, [%r1+0]
    ldxb %r6, [%r2+0]
    stxw [%r10-20], %r6
    stxdw [%r10-16], %r6
    stdw [%r10-8], 0
    mov %r2, %r10
    add %r2, -20
    lddw %r1, 0
    call 1
    jne %r0, 0, +13
    mov %r2, %r10
    add %r2, -20
    mov %r3, %r10
    add %r3, -16
    mov %r4, 1
    lddw %r1, 0
    call 2
    mov %r2, %r10
    add %r2, -20
    lddw %r1, 0
    call 1
    jeq %r0, 0, +20
    ldxdw %r1, [%r0+8]
    add %r1, 3
    stxdw [%r0+8], %r1
    mov %r3, %r0
    mov %r2, %r10
    add %r2, -20
    mov %r4, 2
    lddw %r1, 0
    call 2
    mov %r7, %r0
    stw [%r10-20], 7
    mov %r2, %r10
    add %r2, -20
    lddw %r1, 0
    call 3
    lsh %r0, 8
    or %r0, %r7
    exit
    mov %r0, 1000
    exit";

#[test]
fn hash_operations_on_raw_pointers_match_the_interpreter() {
    for t in [mt::HASH, mt::LRU_HASH] {
        let obj = object(vec![prog("p", HASH_OPS)], vec![map("h", t, 4, 16, 3)]);
        let mut e = engines(&obj, &Config::default());
        let r: Vec<u64> = [1u8, 7, 1, 2, 3, 7, 4, 1, 9, 7]
            .iter()
            .map(|&b| same(&mut e, 1, b, 0))
            .collect();
        // Low byte: the aliasing update (0 = done); next byte: deleting key 7 (0 when it
        // was there, -ENOENT otherwise).
        assert!(r.contains(&0), "{t}: {r:?}");
        assert!(
            r.iter().any(|&v| v & 0xff == 0 && v >> 8 != 0),
            "{t}: {r:?}"
        );
    }
}

#[test]
fn jump_tables_follow_user_space_updates() {
    // Program 0 tail-calls slot (first packet byte) of map #0, else returns 1; programs
    // 1 and 2 return 2 and 3.
    let entry = "
        ldxw %r2, [%r1+0]
        ldxb %r3, [%r2+0]
        lddw %r2, 0
        call 12
        mov %r0, 1
        exit";
    let obj = object(
        vec![
            prog("entry", entry),
            prog("two", "mov %r0, 2\nexit"),
            prog("three", "mov %r0, 3\nexit"),
        ],
        vec![map("jmp", mt::PROG_ARRAY, 4, 4, 4)],
    );
    let mut e = engines(&obj, &Config::default());
    let set = |e: &mut (Interpreter, Jit, Jit), slot: u32, p: Option<u32>| {
        let k = slot.to_le_bytes();
        match p {
            Some(p) => {
                let v = p.to_le_bytes();
                e.0.map_update(0, &k, &v, 0).unwrap();
                e.1.map_update(0, &k, &v, 0).unwrap();
                e.2.map_update(0, &k, &v, 0).unwrap();
            }
            None => {
                e.0.map_delete(0, &k).unwrap();
                e.1.map_delete(0, &k).unwrap();
                e.2.map_delete(0, &k).unwrap();
            }
        }
    };
    let all = |e: &mut (Interpreter, Jit, Jit)| -> Vec<u64> {
        (0..6).map(|b| same(e, 1, b, 0)).collect()
    };
    assert_eq!(all(&mut e), [1, 1, 1, 1, 1, 1]);
    set(&mut e, 1, Some(1));
    set(&mut e, 3, Some(2));
    assert_eq!(all(&mut e), [1, 2, 1, 3, 1, 1]);
    set(&mut e, 1, None);
    set(&mut e, 0, Some(2));
    assert_eq!(all(&mut e), [3, 1, 1, 3, 1, 1]);
}

/// A fault in fast mode leaves through the lean entry's fault exit, which restores the
/// caller's callee-saved registers from the entry function's save area: the Rust caller
/// keeps working (values live across the calls stay intact) and sees the interpreter's
/// fault.
#[test]
fn fast_mode_faults_restore_the_callers_registers() {
    let text = "
        mov %r6, 11
        mov %r7, 22
        mov %r8, 33
        mov %r9, 44
        call 999
        mov %r0, %r6
        exit";
    let insns = asm(text);
    let mut i = Interpreter::from_insns(insns.clone());
    // SAFETY: a raw program that touches no memory; its only problem is the unknown
    // helper, which both engines report as a fault.
    let mut f = unsafe { Jit::from_insns_unchecked(insns) }.unwrap();
    let want = i.run_raw(0, &[]).unwrap_err().to_string();
    let mut acc = [0u64; 6];
    for n in 0..2000u64 {
        for (k, a) in acc.iter_mut().enumerate() {
            *a = a.wrapping_mul(31).wrapping_add(n ^ k as u64);
        }
        let got = f.run_raw(0, &[]).unwrap_err().to_string();
        assert_eq!(got, want);
    }
    let mut check = [0u64; 6];
    for n in 0..2000u64 {
        for (k, a) in check.iter_mut().enumerate() {
            *a = a.wrapping_mul(31).wrapping_add(n ^ k as u64);
        }
    }
    assert_eq!(acc, check);
}

/// `Jit::advance_time` fires the same BPF timers as the interpreter's (corpus xdp_timer:
/// timers armed during a run fire when the clock moves without a packet).
#[test]
fn advance_time_fires_the_interpreters_timers() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../corpus/obj/xdp_timer.o");
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let obj = bpfkit_object::Object::parse(&bytes)
        .and_then(|o| o.link())
        .unwrap();
    let prog = obj
        .programs
        .iter()
        .position(|p| p.name == "xdp_timer")
        .expect("xdp_timer program");
    let mut e = engines(&obj, &Config::default());
    let packet = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../corpus/packets/00_ipv4_tcp_syn.bin"),
    )
    .unwrap();
    let input = XdpInput {
        packet: &packet,
        time_ns: 1_000,
        ..Default::default()
    };
    let a = e.0.run_xdp(prog, &input).unwrap();
    assert_eq!(a, e.1.run_xdp(prog, &input).unwrap());
    assert_eq!(a, e.2.run_xdp(prog, &input).unwrap());
    let pending = e.0.pending_timers().len();
    assert!(pending > 0, "the program arms timers");
    assert_eq!(e.1.pending_timers().len(), pending);
    assert_eq!(e.2.pending_timers().len(), pending);
    let later = 1u64 << 63;
    let x = e.0.advance_time(later).unwrap();
    assert_eq!(x, e.1.advance_time(later).unwrap());
    assert_eq!(x, e.2.advance_time(later).unwrap());
    for m in 0..obj.maps.len() {
        let want = e.0.map_entries(m);
        if let Ok(want) = want {
            assert_eq!(want, e.1.map_entries(m).unwrap(), "map {m}");
            assert_eq!(want, e.2.map_entries(m).unwrap(), "map {m}");
        }
    }
}
