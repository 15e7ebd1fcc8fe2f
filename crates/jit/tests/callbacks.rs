//! Callbacks run as generated code (`src/callback.rs`): `bpf_loop`,
//! `bpf_for_each_map_elem`, `bpf_user_ringbuf_drain` and BPF timer callbacks give the
//! interpreter's results on the checked and the fast JIT, and they do run as JIT code
//! (`Jit::callback_calls`). Corpus programs with callbacks on every corpus packet (timers
//! firing between packets and when the clock moves), and assembled programs for what the
//! corpus does not have: `bpf_for_each_map_elem` with an early stop, nested `bpf_loop`,
//! a fault inside a callback and callbacks that nest past the frame limit.

use bpfkit_isa::opcode::{BPF_PSEUDO_FUNC, BPF_PSEUDO_MAP_IDX, LDDW};
use bpfkit_jit::Jit;
use bpfkit_object::model::map_type as mt;
use bpfkit_object::model::{prog_type, LinkedObject, LinkedProgram, MapDef};
use bpfkit_vm::{Config, Engine, Interpreter, XdpInput};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn load(name: &str) -> LinkedObject {
    let path = root().join("corpus/obj").join(format!("{name}.o"));
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    bpfkit_object::Object::parse(&bytes)
        .and_then(|o| o.link())
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn packets() -> Vec<Vec<u8>> {
    let mut names: Vec<PathBuf> = std::fs::read_dir(root().join("corpus/packets"))
        .expect("corpus/packets")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "bin"))
        .collect();
    names.sort();
    names
        .iter()
        .map(|p| std::fs::read(p).expect("packet"))
        .collect()
}

struct Three {
    i: Interpreter,
    j: Jit,
    f: Jit,
}

fn engines(obj: &LinkedObject) -> Three {
    let config = Config::default();
    Three {
        i: Interpreter::new(obj, config.clone()).expect("interpreter"),
        j: Jit::new(obj, config.clone()).expect("checked JIT"),
        f: Jit::new_fast(obj, config).expect("fast JIT"),
    }
}

/// One run on all three engines: same result (or same fault text) and same maps.
fn same_run(e: &mut Three, nmaps: usize, prog: usize, input: &XdpInput<'_>, what: &str) {
    let a = e.i.run_xdp(prog, input).map_err(|x| x.to_string());
    let b = e.j.run_xdp(prog, input).map_err(|x| x.to_string());
    let c = e.f.run_xdp(prog, input).map_err(|x| x.to_string());
    assert_eq!(a, b, "{what}: checked JIT");
    assert_eq!(a, c, "{what}: fast JIT");
    same_maps(e, nmaps, what);
}

fn same_maps(e: &Three, nmaps: usize, what: &str) {
    for m in 0..nmaps {
        if let Ok(want) = e.i.map_entries(m) {
            assert_eq!(
                want,
                e.j.map_entries(m).unwrap(),
                "{what}: map {m}, checked"
            );
            assert_eq!(want, e.f.map_entries(m).unwrap(), "{what}: map {m}, fast");
        }
    }
}

#[test]
fn corpus_callback_programs_match_the_interpreter() {
    let packets = packets();
    let cases = [
        ("xdp_loop", "xdp_bpf_loop"),
        ("xdp_helper_errors", "xdp_helper_errors"),
        ("xdp_timer", "xdp_timer"),
        ("xdp_timer", "xdp_timer_clock"),
        ("xdp_user_ringbuf", "xdp_user_ringbuf"),
    ];
    for (name, pname) in cases {
        let obj = load(name);
        let prog = obj
            .programs
            .iter()
            .position(|p| p.name == pname)
            .unwrap_or_else(|| panic!("{name}: no program {pname}"));
        let urb = obj.maps.iter().position(|m| m.map_type == mt::USER_RINGBUF);
        let mut e = engines(&obj);
        for (k, packet) in packets.iter().enumerate() {
            if let Some(m) = urb {
                // Samples for the drain's callback (a short one reads -E2BIG).
                let sample: Vec<u8> = (0..(k % 12) as u8).collect();
                e.i.user_ringbuf_push(m, &sample).expect("push");
                e.j.user_ringbuf_push(m, &sample).expect("push");
                e.f.user_ringbuf_push(m, &sample).expect("push");
            }
            // The clock moves 0.4 ms per packet: timers armed by earlier packets fire
            // before later ones.
            let input = XdpInput {
                packet,
                time_ns: 1_000 + k as u64 * 400_000,
                ..Default::default()
            };
            same_run(
                &mut e,
                obj.maps.len(),
                prog,
                &input,
                &format!("{pname}, packet {k}"),
            );
        }
        let later = 1u64 << 62;
        let x = e.i.advance_time(later).map_err(|x| x.to_string());
        assert_eq!(
            x,
            e.j.advance_time(later).map_err(|x| x.to_string()),
            "{pname}"
        );
        assert_eq!(
            x,
            e.f.advance_time(later).map_err(|x| x.to_string()),
            "{pname}"
        );
        same_maps(&e, obj.maps.len(), pname);
        // xdp_helper_errors' bpf_loop calls all fail before any callback; xdp_timer_clock
        // only acts on EtherType 0x88b5, which no corpus packet has.
        if !matches!(pname, "xdp_helper_errors" | "xdp_timer_clock") {
            assert!(
                e.j.callback_calls() > 0 && e.f.callback_calls() > 0,
                "{pname}: callbacks ran as JIT code (checked {}, fast {})",
                e.j.callback_calls(),
                e.f.callback_calls()
            );
        }
    }
}

/// Assembles `text`; `lddw %rN, M` with M < 1000 names map #M, with M >= 1000 the
/// function at slot M - 1000 (a callback).
fn program(text: &str) -> LinkedProgram {
    let mut insns = bpfkit_asm::assemble(text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let mut pc = 0;
    while pc < insns.len() {
        if insns[pc].code == LDDW {
            let imm = insns[pc].imm;
            if imm >= 1000 {
                insns[pc].src = BPF_PSEUDO_FUNC;
                insns[pc].imm = imm - 1000 - pc as i32 - 1;
            } else {
                insns[pc].src = BPF_PSEUDO_MAP_IDX;
            }
            pc += 2;
        } else {
            pc += 1;
        }
    }
    LinkedProgram {
        name: "cb".into(),
        section: "xdp".into(),
        prog_type: prog_type::XDP,
        expected_attach_type: None,
        prog_flags: 0,
        origins: Vec::new(),
        insns,
    }
}

fn object(text: &str, maps: Vec<MapDef>) -> LinkedObject {
    LinkedObject {
        programs: vec![program(text)],
        maps,
        license: "GPL".into(),
        kernel_version: None,
    }
}

fn run_all(obj: &LinkedObject, setup: impl Fn(&mut dyn FnMut(usize, &[u8], &[u8]))) -> Three {
    let mut e = engines(obj);
    setup(&mut |m, k, v| {
        e.i.map_update(m, k, v, 0).expect("update");
        e.j.map_update(m, k, v, 0).expect("update");
        e.f.map_update(m, k, v, 0).expect("update");
    });
    for b in 0..4u8 {
        let packet = [b; 64];
        let input = XdpInput {
            packet: &packet,
            ..Default::default()
        };
        same_run(&mut e, obj.maps.len(), 0, &input, &format!("byte {b}"));
    }
    e
}

/// `bpf_for_each_map_elem` over an ARRAY and a HASH: the callback sums the values into
/// the context on the stack and stops at key 2; r0 = sum << 8 | elements visited.
#[test]
fn for_each_map_elem_matches_the_interpreter() {
    let text = "
        mov %r1, 0
        stxdw [%r10-8], %r1
        lddw %r1, 0
        lddw %r2, 1014
        mov %r3, %r10
        add %r3, -8
        mov %r4, 0
        call 164
        ldxdw %r1, [%r10-8]
        lsh %r1, 8
        or %r0, %r1
        exit
        ldxdw %r5, [%r3+0]
        ldxdw %r0, [%r4+0]
        add %r0, %r5
        stxdw [%r4+0], %r0
        ldxw %r5, [%r2+0]
        mov %r0, 0
        jne %r5, 2, +1
        mov %r0, 1
        exit";
    for t in [mt::ARRAY, mt::HASH] {
        let obj = object(text, vec![MapDef::plain("m", t, 4, 8, 8, 0)]);
        let e = run_all(&obj, |u| {
            for k in [5u32, 2, 7, 1] {
                u(0, &k.to_le_bytes(), &(u64::from(k) * 100).to_le_bytes());
            }
        });
        assert!(e.j.callback_calls() > 0 && e.f.callback_calls() > 0);
    }
}

/// `bpf_loop` inside a `bpf_loop` callback (3 x 4 calls of the inner one, counting into
/// the outer context), then a helper call inside the callback (a map update).
#[test]
fn nested_bpf_loop_matches_the_interpreter() {
    let text = "
        mov %r1, 0
        stxdw [%r10-8], %r1
        mov %r1, 3
        lddw %r2, 1013
        mov %r3, %r10
        add %r3, -8
        mov %r4, 0
        call 181
        ldxdw %r1, [%r10-8]
        lsh %r1, 8
        or %r0, %r1
        exit
        mov %r6, %r2
        mov %r1, 4
        lddw %r2, 1022
        mov %r3, %r6
        mov %r4, 0
        call 181
        mov %r0, 0
        exit
        ldxdw %r0, [%r2+0]
        add %r0, 1
        stxdw [%r2+0], %r0
        stxw [%r10-4], %r1
        stxdw [%r10-16], %r0
        lddw %r1, 0
        mov %r2, %r10
        add %r2, -4
        mov %r3, %r10
        add %r3, -16
        mov %r4, 0
        call 2
        mov %r0, 0
        exit";
    let obj = object(text, vec![MapDef::plain("h", mt::HASH, 4, 8, 16, 0)]);
    let mut e = run_all(&obj, |_| {});
    let packet = [0u8; 64];
    let out =
        e.f.run_xdp(
            0,
            &XdpInput {
                packet: &packet,
                ..Default::default()
            },
        )
        .expect("run");
    assert_eq!(out.retval, 12 << 8 | 3, "3 outer x 4 inner iterations");
    assert!(e.j.callback_calls() >= 15 && e.f.callback_calls() >= 15);
}

/// A callback that faults (a load far outside any region): the checked JIT reports the
/// interpreter's fault, located at the `bpf_loop` call and naming the callback's
/// instruction; the run after it works normally on every engine.
#[test]
fn a_fault_inside_a_callback_is_the_interpreters() {
    let text = "
        mov %r6, %r1
        mov %r1, 2
        lddw %r2, 1008
        mov %r3, 0
        mov %r4, 0
        call 181
        exit
        mov %r0, 0
        jne %r1, 1, +1
        ldxdw %r0, [%r0+0]
        exit";
    let obj = object(text, Vec::new());
    let mut i = Interpreter::new(&obj, Config::default()).unwrap();
    let mut j = Jit::new(&obj, Config::default()).unwrap();
    let packet = [0u8; 64];
    let input = XdpInput {
        packet: &packet,
        ..Default::default()
    };
    let a = i.run_xdp(0, &input).unwrap_err().to_string();
    let b = j.run_xdp(0, &input).unwrap_err().to_string();
    // The text after " (" names the engine's own stack address.
    assert_eq!(a.split(" (").next(), b.split(" (").next(), "{a}\n{b}");
    assert!(a.contains("instruction 10"), "{a}");
    assert!(a.contains("callback"), "{a}");
    // The engine is usable afterwards (the context was put back).
    let fine = object(
        "mov %r1, 2
         lddw %r2, 1007
         mov %r3, 0
         mov %r4, 0
         call 181
         exit
         mov %r0, 0
         exit",
        Vec::new(),
    );
    let mut e = run_all(&fine, |_| {});
    for _ in 0..3 {
        assert!(j.run_xdp(0, &input).is_err());
        assert_eq!(e.f.run_xdp(0, &input).unwrap().retval, 2);
    }
}

/// A callback that calls `bpf_loop` with itself nests until the frames run out: the same
/// `CallDepth` fault (wrapped once per level) on all three engines.
#[test]
fn callbacks_nesting_past_the_frame_limit_fault_like_the_interpreter() {
    let text = "
        mov %r1, 1
        lddw %r2, 1007
        mov %r3, 0
        mov %r4, 0
        call 181
        exit
        mov %r1, 1
        lddw %r2, 1007
        mov %r3, 0
        mov %r4, 0
        call 181
        mov %r0, 0
        exit";
    let obj = object(text, Vec::new());
    let mut e = run_all(&obj, |_| {});
    assert!(e.f.callback_calls() > 0);
    let packet = [0u8; 64];
    let input = XdpInput {
        packet: &packet,
        ..Default::default()
    };
    let err = e.f.run_xdp(0, &input).unwrap_err().to_string();
    assert!(err.contains("call depth exceeds 8 frames"), "{err}");
}

/// Hash value buffers are reused from the map's free list (replaced or deleted values of
/// earlier runs): a reused buffer reads as a new one. A PERCPU_HASH element inserted on
/// CPU 1 after an element with the same key was written on CPU 0 and deleted has a zero
/// value on CPU 0, on all three engines. Packet byte 0: 1 = update key 7 with byte 1,
/// 2 = delete key 7.
#[test]
fn reused_hash_values_read_as_new_ones() {
    let text = "
        ldxw %r2, [%r1+0]
        ldxb %r3, [%r2+0]
        ldxb %r4, [%r2+1]
        mov %r5, 7
        stxw [%r10-4], %r5
        stxdw [%r10-16], %r4
        jne %r3, 1, +10
        lddw %r1, 0
        mov %r2, %r10
        add %r2, -4
        mov %r3, %r10
        add %r3, -16
        mov %r4, 0
        call 2
        mov %r0, 2
        exit
        lddw %r1, 0
        mov %r2, %r10
        add %r2, -4
        call 3
        mov %r0, 2
        exit";
    for t in [mt::PERCPU_HASH, mt::HASH, mt::LRU_PERCPU_HASH] {
        let obj = object(text, vec![MapDef::plain("h", t, 4, 8, 4, 0)]);
        let config = Config {
            ncpus: 2,
            ..Default::default()
        };
        let mut e = Three {
            i: Interpreter::new(&obj, config.clone()).unwrap(),
            j: Jit::new(&obj, config.clone()).unwrap(),
            f: Jit::new_fast(&obj, config).unwrap(),
        };
        for round in 0..3 {
            for (op, val, cpu) in [(1u8, 0xaa, 0), (1, 0xcc, 0), (2, 0, 0), (1, 0xbb, 1)] {
                let mut packet = [0u8; 64];
                packet[0] = op;
                packet[1] = val;
                let input = XdpInput {
                    packet: &packet,
                    cpu,
                    ..Default::default()
                };
                same_run(
                    &mut e,
                    1,
                    0,
                    &input,
                    &format!("type {t}, round {round}, op {op}"),
                );
            }
            let v =
                e.i.map_lookup(0, &7u32.to_le_bytes())
                    .unwrap()
                    .expect("key 7");
            let want: &[u8] = if t == mt::HASH {
                &[0xbb, 0, 0, 0, 0, 0, 0, 0]
            } else {
                &[0, 0, 0, 0, 0, 0, 0, 0, 0xbb, 0, 0, 0, 0, 0, 0, 0]
            };
            assert_eq!(v, want, "type {t}: the reused value is zeroed");
            assert_eq!(
                e.f.map_lookup(0, &7u32.to_le_bytes()).unwrap().unwrap(),
                want
            );
            // Start the next round from an empty map.
            let mut packet = [0u8; 64];
            packet[0] = 2;
            let input = XdpInput {
                packet: &packet,
                ..Default::default()
            };
            same_run(&mut e, 1, 0, &input, "delete");
        }
    }
}
