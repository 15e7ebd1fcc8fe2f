//! Checked-mode faults match the interpreter's (program, instruction index, kind), code
//! memory is never writable and executable at once, and the tail-call limit is the
//! interpreter's.

use bpfkit_jit::{Jit, Mode};
use bpfkit_object::model::{prog_type, LinkedObject, LinkedProgram, MapDef, MapInit};
use bpfkit_vm::{Config, Engine, FaultKind, Interpreter, VmError, XdpInput};

fn asm(text: &str) -> Vec<bpfkit_isa::RawInsn> {
    bpfkit_asm::assemble(text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

fn raw_both(
    text: &str,
    mem: &[u8],
    config: Config,
) -> (Result<u64, VmError>, Result<u64, VmError>) {
    let insns = asm(text);
    let prog = bpfkit_vm::Program::raw("prog", insns);
    let mut i = Interpreter::with_programs(vec![prog.clone()], &[], config.clone()).unwrap();
    let a = i.run_raw(0, mem).map(|o| o.r0);
    let mut j = Jit::with_programs(vec![prog], &[], config).unwrap();
    let b = j.run_raw(0, mem).map(|o| o.r0);
    (a, b)
}

fn fault_of(r: &Result<u64, VmError>) -> (usize, FaultKind) {
    match r {
        Err(VmError::Fault(f)) => (f.pc, f.kind.clone()),
        other => panic!("expected a fault, got {other:?}"),
    }
}

/// Both engines fault at the same instruction with the same kind (memory faults compare
/// their shape: size, direction and region kind, not host addresses).
fn same_fault(text: &str, mem: &[u8], want_pc: usize) {
    let (a, b) = raw_both(text, mem, Config::default());
    let (pa, ka) = fault_of(&a);
    let (pb, kb) = fault_of(&b);
    assert_eq!(pa, want_pc, "interpreter fault pc for\n{text}\n{a:?}");
    assert_eq!(pb, want_pc, "JIT fault pc for\n{text}\n{b:?}");
    match (&ka, &kb) {
        (FaultKind::Memory(x), FaultKind::Memory(y)) => {
            assert_eq!((x.size, x.write, x.inside), (y.size, y.write, y.inside));
            // The region named for an address outside every region is the nearest one,
            // which depends on where each engine's buffers were allocated.
            if x.inside {
                assert_eq!(x.region.map(|r| r.kind), y.region.map(|r| r.kind));
            }
        }
        _ => assert_eq!(ka, kb),
    }
}

#[test]
fn memory_faults_name_the_instruction() {
    same_fault("mov %r0, 1\nldxw %r0, [%r1+64]\nexit", &[0u8; 16], 1);
    same_fault("mov %r0, 1\nstxdw [%r1+12], %r0\nexit", &[0u8; 16], 1);
    same_fault("mov %r0, 1\nstw [%r10-516], 1\nexit", &[0u8; 16], 1);
    same_fault("mov %r2, 0\nldxb %r0, [%r2]\nexit", &[], 1);
    same_fault(
        "mov %r0, 0\nmov %r2, 1\nlock add [%r1+0], %r2\nexit",
        &[0u8; 2],
        2,
    );
}

#[test]
fn invalid_instructions_fault_when_executed() {
    // Unknown ALU op 0xe0 (ALU64|X), reached only at slot 2.
    let mut insns = asm("mov %r0, 1\nja +0\nmov %r0, 2\nexit");
    insns[2] = bpfkit_isa::RawInsn::new(0xef, 0, 1, 0, 0);
    let mut i = Interpreter::from_insns(insns.clone());
    let mut j = Jit::from_insns(insns).unwrap();
    let a = i.run_raw(0, &[]).map(|o| o.r0);
    let b = j.run_raw(0, &[]).map(|o| o.r0);
    assert_eq!(fault_of(&a), fault_of(&b));
    assert_eq!(fault_of(&b).0, 2);
    // Falling off the end.
    same_fault("mov %r0, 1", &[], 1);
    // Writing r10.
    let (a, b) = raw_both("mov %r10, 1\nexit", &[], Config::default());
    assert_eq!(fault_of(&a), fault_of(&b));
}

#[test]
fn call_depth_and_instruction_limit() {
    // Unbounded recursion: the ninth frame is refused at the call instruction.
    same_fault("call local f\nexit\nf:\ncall local f\nexit", &[], 2);
    // An infinite loop stops with InsnLimit in both engines.
    let config = Config {
        insn_limit: 10_000,
        ..Config::default()
    };
    let (a, b) = raw_both("mov %r0, 0\nadd %r0, 1\nja -2\nexit", &[], config);
    assert!(
        matches!(fault_of(&a).1, FaultKind::InsnLimit(10_000)),
        "{a:?}"
    );
    assert!(
        matches!(fault_of(&b).1, FaultKind::InsnLimit(10_000)),
        "{b:?}"
    );
}

fn map(name: &str, t: u32, key: u32, value: u32, entries: u32) -> MapDef {
    MapDef::plain(name, t, key, value, entries, 0)
}

/// A program that tail-calls itself forever, counting in an array map: both engines stop
/// after MAX_TAIL_CALL_CNT (33) tail calls, so the counter reads 34 runs.
#[test]
fn tail_call_limit_matches_the_interpreter() {
    use bpfkit_object::model::map_type as mt;
    let text = "
        mov %r6, %r1
        stw [%r10-4], 0
        mov %r2, %r10
        add %r2, -4
        lddw %r1, 0
        call 1
        jeq %r0, 0, +3
        ldxdw %r1, [%r0]
        add %r1, 1
        stxdw [%r0], %r1
        mov %r1, %r6
        lddw %r2, 0
        mov %r3, 0
        call 12
        mov %r0, 2
        exit";
    let mut insns = asm(text);
    // Map references: slot 4 = map #0 (counter), slot 12 = map #1 (prog array).
    insns[4].src = bpfkit_isa::opcode::BPF_PSEUDO_MAP_IDX;
    insns[12].src = bpfkit_isa::opcode::BPF_PSEUDO_MAP_IDX;
    insns[12].imm = 1;
    let mut jmp = map("jmp", mt::PROG_ARRAY, 4, 4, 1);
    jmp.init = MapInit::Programs(vec![(0, "loop".into())]);
    let obj = LinkedObject {
        programs: vec![LinkedProgram {
            name: "loop".into(),
            section: "xdp".into(),
            prog_type: prog_type::XDP,
            expected_attach_type: None,
            prog_flags: 0,
            origins: Vec::new(),
            insns,
        }],
        maps: vec![map("cnt", mt::ARRAY, 4, 8, 1), jmp],
        license: "GPL".into(),
        kernel_version: None,
    };
    let packet = [0u8; 64];
    let input = XdpInput {
        packet: &packet,
        ..Default::default()
    };
    let mut i = Interpreter::new(&obj, Config::default()).unwrap();
    let mut j = Jit::new(&obj, Config::default()).unwrap();
    // SAFETY: a verifier-valid program (map value access after a NULL check, stack key).
    let mut f = unsafe { Jit::new_unchecked(&obj, Config::default()) }.unwrap();
    assert_eq!(f.mode(), Mode::Fast);
    let a = i.run_xdp(0, &input).unwrap();
    let b = j.run_xdp(0, &input).unwrap();
    let c = f.run_xdp(0, &input).unwrap();
    assert_eq!(a, b);
    assert_eq!(a, c);
    let count = |e: &dyn Fn() -> Vec<(Vec<u8>, Vec<u8>)>| {
        u64::from_le_bytes(e()[0].1[..8].try_into().unwrap())
    };
    assert_eq!(count(&|| i.map_entries(0).unwrap()), 34);
    assert_eq!(count(&|| j.map_entries(0).unwrap()), 34);
    assert_eq!(count(&|| f.map_entries(0).unwrap()), 34);
}

#[test]
fn listing_shows_x86_under_each_instruction() {
    let insns = asm("mov %r0, 1\nadd %r0, 2\nexit");
    let mut vm = Interpreter::from_insns(insns);
    let text = bpfkit_jit::listing::listing_of(&mut vm, 0, Mode::Fast).unwrap();
    assert!(text.contains("0: r0 = 0x1"), "{text}");
    assert!(
        text.contains("mov eax,1") || text.contains("mov rax,1"),
        "{text}"
    );
    assert!(text.contains("add rax,2"), "{text}");
    assert!(text.contains("ret"), "{text}");
}

#[test]
fn a_jit_can_move_to_another_thread() {
    let mut j = Jit::from_insns(asm("mov %r0, 7\nexit")).unwrap();
    assert_eq!(j.run_raw(0, &[]).unwrap().r0, 7);
    let r = std::thread::spawn(move || j.run_raw(0, &[]).unwrap().r0)
        .join()
        .unwrap();
    assert_eq!(r, 7);
}

/// A tail call into an empty program faults like the interpreter ("ran past the last
/// instruction" at slot 0 of the empty program) instead of jumping nowhere.
#[test]
fn tail_call_into_an_empty_program() {
    use bpfkit_object::model::map_type as mt;
    let mut insns = asm("mov %r6, %r1\nlddw %r2, 0\nmov %r3, 0\ncall 12\nmov %r0, 2\nexit");
    insns[1].src = bpfkit_isa::opcode::BPF_PSEUDO_MAP_IDX;
    let mut jmp = map("jmp", mt::PROG_ARRAY, 4, 4, 1);
    jmp.init = MapInit::Programs(vec![(0, "empty".into())]);
    let prog = |name: &str, insns| LinkedProgram {
        name: name.into(),
        section: "xdp".into(),
        prog_type: prog_type::XDP,
        expected_attach_type: None,
        prog_flags: 0,
        origins: Vec::new(),
        insns,
    };
    let obj = LinkedObject {
        programs: vec![prog("entry", insns), prog("empty", Vec::new())],
        maps: vec![jmp],
        license: "GPL".into(),
        kernel_version: None,
    };
    let packet = [0u8; 64];
    let input = XdpInput {
        packet: &packet,
        ..Default::default()
    };
    let a = Interpreter::new(&obj, Config::default())
        .unwrap()
        .run_xdp(0, &input);
    let b = Jit::new(&obj, Config::default())
        .unwrap()
        .run_xdp(0, &input);
    let (fa, fb) = (a.unwrap_err(), b.unwrap_err());
    let (fa, fb) = (fa.fault().unwrap(), fb.fault().unwrap());
    assert_eq!((&fa.prog, fa.pc, &fa.kind), (&fb.prog, fb.pc, &fb.kind));
    assert_eq!(fb.kind, FaultKind::FellOffEnd);
}

/// Fast mode has the same instruction budget on back edges: an endless loop (which a
/// wrong verifier could accept) ends in `InsnLimit`, never a hang. Conditional back edges
/// and loops through a local call are charged too.
#[test]
fn fast_mode_endless_loops_end_with_insn_limit() {
    let config = Config {
        insn_limit: 100_000,
        ..Config::default()
    };
    for text in [
        "mov %r0, 0\nadd %r0, 1\nja -2\nexit",
        "mov %r0, 0\nadd %r0, 1\njne %r0, 0, -2\nexit",
        "mov %r0, 0\ncall local f\nja -2\nexit\nf:\nadd %r0, 1\nexit",
    ] {
        let prog = bpfkit_vm::Program::raw("prog", asm(text));
        let mut j = Jit::with_programs_fast(vec![prog], &[], config.clone()).unwrap();
        let r = j.run_raw(0, &[]).map(|o| o.r0);
        assert!(
            matches!(fault_of(&r).1, FaultKind::InsnLimit(100_000)),
            "{text}: {r:?}"
        );
    }
}

/// may_goto: the frame's counter allows `BPF_MAX_LOOPS` fallthroughs, then the jump is
/// taken; every engine and mode counts the same, and a sub-program's frame has its own
/// counter, set again on each call.
#[test]
fn may_goto_counts_bpf_max_loops_per_frame() {
    let max = bpfkit_isa::opcode::BPF_MAX_LOOPS;
    let one = "r0 = 0\nl: may_goto out\nr0 += 1\ngoto l\nout: exit";
    let two = "call f\nr6 = r0\ncall f\nr0 += r6\nexit\nf: r0 = 0\nl: may_goto out\nr0 += 1\ngoto l\nout: exit";
    for (text, want) in [(one, max), (two, 2 * max)] {
        let prog = bpfkit_vm::Program::raw("prog", asm(text));
        let mut i = Interpreter::with_programs(vec![prog.clone()], &[], Config::default()).unwrap();
        assert_eq!(i.run_raw(0, &[]).unwrap().r0, want, "interp: {text}");
        let mut c = Jit::with_programs(vec![prog.clone()], &[], Config::default()).unwrap();
        assert_eq!(c.run_raw(0, &[]).unwrap().r0, want, "jit checked: {text}");
        let mut f = Jit::with_programs_fast(vec![prog], &[], Config::default()).unwrap();
        assert_eq!(f.run_raw(0, &[]).unwrap().r0, want, "jit fast: {text}");
        // a second run starts with a full budget again
        assert_eq!(
            f.run_raw(0, &[]).unwrap().r0,
            want,
            "jit fast, run 2: {text}"
        );
    }
}

/// Fast mode charges a counted loop's whole budget once on entering it (`counted_loops`
/// in `compile.rs`): a loop that only looks counted (an odd start that never meets the
/// bound, a jump into the body from outside, an increment a branch skips, the counter
/// reloaded from the stack) keeps the per-back-edge charge and ends in `InsnLimit`; a
/// counted loop gives the interpreter's result, and faults with `InsnLimit` as the
/// interpreter does when its iterations exceed the budget.
#[test]
fn fast_mode_counted_loops_are_bounded_and_lookalikes_charged() {
    let config = Config {
        insn_limit: 100_000,
        ..Config::default()
    };
    for text in [
        "mov %r2, 1\nadd %r2, 2\njne %r2, 0x600, -2\nmov %r0, %r2\nexit",
        "mov %r2, 1\nja +2\nmov %r2, 0\nadd %r1, 0\nadd %r2, 2\njne %r2, 0x600, -3\nmov %r0, %r2\nexit",
        "mov %r2, 0\nmov %r3, 0\njeq %r3, 0, +1\nadd %r2, 2\njne %r2, 0x600, -3\nmov %r0, %r2\nexit",
        "mov %r2, 0\nstxdw [%r10-8], %r2\nadd %r2, 2\nldxdw %r2, [%r10-8]\njne %r2, 0x600, -3\nexit",
        "mov %r2, 0\nadd %r2, 2\nmov %r3, 0\nadd %r3, 1\njne %r3, 0, -2\njne %r2, 0x600, -5\nexit",
        "mov %r2, 0x700\nadd %r2, 2\njne %r2, 0x600, -2\nmov %r0, %r2\nexit",
    ] {
        let prog = bpfkit_vm::Program::raw("prog", asm(text));
        let mut j = Jit::with_programs_fast(vec![prog], &[], config.clone()).unwrap();
        let r = j.run_raw(0, &[]).map(|o| o.r0);
        assert!(
            matches!(fault_of(&r).1, FaultKind::InsnLimit(100_000)),
            "{text}: {r:?}"
        );
    }
    // Counted: 768 passes of a 2-slot body (and 0x300 passes of `<`).
    for (text, want) in [
        (
            "mov %r2, 0\nadd %r2, 2\njne %r2, 0x600, -2\nmov %r0, %r2\nexit",
            0x600,
        ),
        (
            "mov32 %r2, 0\nadd %r2, 2\njlt %r2, 0x5ff, -2\nmov %r0, %r2\nexit",
            0x600,
        ),
    ] {
        for (limit, ok) in [(100_000u64, true), (1_000, false)] {
            let config = Config {
                insn_limit: limit,
                ..Config::default()
            };
            let prog = bpfkit_vm::Program::raw("prog", asm(text));
            let mut i =
                Interpreter::with_programs(vec![prog.clone()], &[], config.clone()).unwrap();
            let want_i = i.run_raw(0, &[]).map(|o| o.r0);
            let mut j = Jit::with_programs_fast(vec![prog], &[], config).unwrap();
            let r = j.run_raw(0, &[]).map(|o| o.r0);
            if ok {
                assert_eq!(r.as_ref().ok(), Some(&want), "{text}: {r:?}");
                assert_eq!(want_i.as_ref().ok(), Some(&want), "{text}: {want_i:?}");
            } else {
                assert!(
                    matches!(fault_of(&r).1, FaultKind::InsnLimit(1_000)),
                    "{text}: {r:?}"
                );
                assert!(
                    matches!(fault_of(&want_i).1, FaultKind::InsnLimit(1_000)),
                    "interp {text}: {want_i:?}"
                );
            }
        }
    }
}

/// A counted loop over `base + i` runs as a copy without per-access compares when one
/// compare of the whole span before it holds (`loop_copy` in `compile.rs`): the same sum
/// as the interpreter's over raw memory (the copy runs), and no fault for a loop that
/// leaves before its first access through a NULL base (the compare fails, the ordinary
/// loop runs and exits as the interpreter's does).
#[test]
fn fast_mode_counted_loop_copy_matches_the_interpreter() {
    let mem: Vec<u8> = (0..64u8).map(|b| b.wrapping_mul(37)).collect();
    for (text, want) in [
        (
            "mov %r2, 0\nmov %r0, 0\nmov %r5, %r1\nadd %r5, %r2\nldxb %r3, [%r5+0]\nadd %r0, %r3\nldxb %r3, [%r5+1]\nadd %r0, %r3\nadd %r2, 2\njne %r2, 64, -8\nexit",
            mem.iter().map(|&b| b as u64).sum::<u64>(),
        ),
        (
            "mov %r2, 0\nmov %r0, 0\nmov %r5, %r2\nadd %r5, %r1\nldxh %r3, [%r5+0]\nadd %r0, %r3\nadd %r2, 2\njlt %r2, 63, -6\nexit",
            mem.chunks(2).map(|c| u16::from_le_bytes([c[0], c[1]]) as u64).sum::<u64>(),
        ),
        (
            "mov %r1, 0\nmov %r2, 0\nmov %r0, 7\nmov %r5, %r1\nadd %r5, %r2\njeq %r1, 0, +4\nldxb %r3, [%r5+0]\nadd %r0, %r3\nadd %r2, 1\njne %r2, 16, -7\nexit",
            7,
        ),
    ] {
        let prog = bpfkit_vm::Program::raw("prog", asm(text));
        let mut i = Interpreter::with_programs(vec![prog.clone()], &[], Config::default()).unwrap();
        assert_eq!(i.run_raw(0, &mem).unwrap().r0, want, "interp: {text}");
        let mut f = Jit::with_programs_fast(vec![prog], &[], Config::default()).unwrap();
        assert_eq!(f.run_raw(0, &mem).unwrap().r0, want, "jit fast: {text}");
    }
}

/// A backward jump that lies on no cycle (clang's shared tails) is not charged against the
/// budget; one on a cycle always is, also when the cycle passes forward jumps and other
/// backward jumps. Checked in both modes, and the results are the interpreter's.
#[test]
fn backward_jumps_are_charged_only_on_cycles() {
    // 1 -> 4 -> 5 -> back to 2 (on no cycle) -> exit: r0 = 1 + 2 + 5.
    let acyclic = "mov %r0, 1\nja +2\nadd %r0, 5\nexit\nadd %r0, 2\nja -4";
    // 2 -> 4 -> 3 -> 2: endless, through one forward and two backward jumps.
    let endless = "mov %r0, 0\nja +1\nja +1\nja -2\nja -2\nexit";
    let config = Config {
        insn_limit: 100_000,
        ..Config::default()
    };
    for mode in [Mode::Fast, Mode::Checked] {
        let prog = bpfkit_vm::Program::raw("prog", asm(acyclic));
        let mut i = Interpreter::with_programs(vec![prog.clone()], &[], config.clone()).unwrap();
        assert_eq!(i.run_raw(0, &[]).unwrap().r0, 8);
        let mut j = jit(vec![prog], config.clone(), mode);
        assert_eq!(j.run_raw(0, &[]).unwrap().r0, 8, "{mode:?}");
        let mut vm = Interpreter::from_insns(asm(acyclic));
        let text = bpfkit_jit::listing::listing_of(&mut vm, 0, mode).unwrap();
        assert!(!text.contains("instruction budget"), "{mode:?}:\n{text}");

        let prog = bpfkit_vm::Program::raw("prog", asm(endless));
        let mut j = jit(vec![prog], config.clone(), mode);
        let r = j.run_raw(0, &[]).map(|o| o.r0);
        assert!(
            matches!(fault_of(&r).1, FaultKind::InsnLimit(100_000)),
            "{mode:?} {endless}: {r:?}"
        );
        let mut vm = Interpreter::from_insns(asm(endless));
        let text = bpfkit_jit::listing::listing_of(&mut vm, 0, mode).unwrap();
        assert!(text.contains("instruction budget"), "{mode:?}:\n{text}");
    }
}

fn jit(programs: Vec<bpfkit_vm::Program>, config: Config, mode: Mode) -> Jit {
    match mode {
        Mode::Fast => Jit::with_programs_fast(programs, &[], config).unwrap(),
        Mode::Checked => Jit::with_programs(programs, &[], config).unwrap(),
    }
}

/// Fast mode compares the base of two adjacent context loads (`data`, `data_end`) with the
/// context's address once: the pair gives the interpreter's values and faults when the
/// base is the context's address, another offset into the context, the stack, or nothing
/// (a fault at the first load's slot).
#[test]
fn fast_mode_context_load_pairs_match_the_interpreter() {
    let obj = |text: &str| LinkedObject {
        programs: vec![LinkedProgram {
            name: "p".into(),
            section: "xdp".into(),
            prog_type: prog_type::XDP,
            expected_attach_type: None,
            prog_flags: 0,
            origins: Vec::new(),
            insns: asm(text),
        }],
        maps: Vec::new(),
        license: "GPL".into(),
        kernel_version: None,
    };
    let packet: Vec<u8> = (0..64u8).collect();
    let input = XdpInput {
        packet: &packet,
        ..Default::default()
    };
    let tail = "mov %r0, %r3\nsub %r0, %r2\nexit";
    for text in [
        // data, data_end: the packet's length
        format!("ldxw %r2, [%r1+0]\nldxw %r3, [%r1+4]\n{tail}"),
        // the second load overwrites the base
        format!("ldxw %r2, [%r1+0]\nldxw %r1, [%r1+4]\nmov %r3, %r1\n{tail}"),
        // base 4 bytes into the context: data_end, data_meta
        format!("add %r1, 4\nldxw %r2, [%r1+4]\nldxw %r3, [%r1+0]\n{tail}"),
        // base on the stack: two ordinary loads
        format!("stdw [%r10-16], 7\nstdw [%r10-8], 100\nmov %r1, %r10\nadd %r1, -16\nldxw %r2, [%r1+0]\nldxw %r3, [%r1+8]\n{tail}"),
        // base into the packet
        format!("ldxw %r1, [%r1+0]\nldxw %r2, [%r1+4]\nldxw %r3, [%r1+8]\n{tail}"),
    ] {
        let o = obj(&text);
        let a = Interpreter::new(&o, Config::default()).unwrap().run_xdp(0, &input);
        // SAFETY: confined fast mode; these programs only read the context, stack and packet.
        let mut f = unsafe { Jit::new_unchecked(&o, Config::default()) }.unwrap();
        assert_eq!(f.mode(), Mode::Fast);
        let b = f.run_xdp(0, &input);
        assert_eq!(
            a.as_ref().map(|o| o.retval).ok(),
            b.as_ref().map(|o| o.retval).ok(),
            "{text}\n{a:?}\n{b:?}"
        );
        assert!(a.is_ok(), "{text}: {a:?}");
    }
    // A base that is no pointer: both fault at the first load.
    let text = format!("mov %r1, 0\nldxw %r2, [%r1+0]\nldxw %r3, [%r1+4]\n{tail}");
    let o = obj(&text);
    let a = Interpreter::new(&o, Config::default())
        .unwrap()
        .run_xdp(0, &input);
    // SAFETY: as above; the NULL base faults in the confined path.
    let b = unsafe { Jit::new_unchecked(&o, Config::default()) }
        .unwrap()
        .run_xdp(0, &input);
    let (fa, fb) = match (a, b) {
        (Err(VmError::Fault(x)), Err(VmError::Fault(y))) => (x, y),
        other => panic!("expected two faults, got {other:?}"),
    };
    assert_eq!((fa.pc, fb.pc), (1, 1));
}

/// A wrongly accepted program may forge a function handle (no `lddw` of a function in
/// the object) and enter its own entry function through `callx` or a callback helper
/// (`bpf_loop`): fast mode still counts the call depth for such objects, so the recursion
/// ends in a fault, as in the interpreter, not in a host stack overflow.
#[test]
fn fast_mode_forged_function_handles_stop_at_the_call_depth() {
    let h = bpfkit_vm::runtime::func_handle(0, 0);
    for text in [
        format!("lddw %r1, {h:#x}\ncallx %r1\nexit"),
        format!("mov %r1, 4\nlddw %r2, {h:#x}\nmov %r3, 0\nmov %r4, 0\ncall 181\nexit"),
    ] {
        let prog = bpfkit_vm::Program::raw("prog", asm(&text));
        let mut i = Interpreter::with_programs(vec![prog.clone()], &[], Config::default()).unwrap();
        let a = i.run_raw(0, &[0u8; 16]).map(|o| o.r0);
        let mut j = Jit::with_programs_fast(vec![prog], &[], Config::default()).unwrap();
        let b = j.run_raw(0, &[0u8; 16]).map(|o| o.r0);
        assert!(matches!(b, Err(VmError::Fault(_))), "{text}: {b:?}");
        assert_eq!(a.is_ok(), b.is_ok(), "{text}: {a:?} / {b:?}");
    }
}

/// Local calls are charged against the instruction budget in both modes: functions that
/// call each other from many call sites (no loop anywhere) run ~10^6 bodies here, and
/// would run (call sites)^depth without the charge (a wrongly accepted program with
/// 1000 call sites per function would effectively never end). The interpreter counts
/// every instruction and stops at the limit; so must the JIT.
#[test]
fn local_calls_are_charged_against_the_budget() {
    // f0 (the entry) .. f5 each call the next function 10 times; f6 returns.
    let mut text = String::new();
    for k in 0..6 {
        if k > 0 {
            text.push_str(&format!("f{k}:\n"));
        }
        for _ in 0..10 {
            text.push_str(&format!("call f{}\n", k + 1));
        }
        text.push_str("mov %r0, 0\nexit\n");
    }
    text.push_str("f6:\nmov %r0, 0\nexit\n");
    let config = Config {
        insn_limit: 100_000,
        ..Config::default()
    };
    let prog = bpfkit_vm::Program::raw("prog", asm(&text));
    let mut i = Interpreter::with_programs(vec![prog.clone()], &[], config.clone()).unwrap();
    let a = i.run_raw(0, &[0u8; 16]).map(|o| o.r0);
    assert!(
        matches!(&a, Err(VmError::Fault(f)) if matches!(f.kind, FaultKind::InsnLimit(_))),
        "interpreter: {a:?}"
    );
    for fast in [false, true] {
        let mut j = if fast {
            Jit::with_programs_fast(vec![prog.clone()], &[], config.clone()).unwrap()
        } else {
            Jit::with_programs(vec![prog.clone()], &[], config.clone()).unwrap()
        };
        let b = j.run_raw(0, &[0u8; 16]).map(|o| o.r0);
        assert!(
            matches!(&b, Err(VmError::Fault(f)) if matches!(f.kind, FaultKind::InsnLimit(_))),
            "fast {fast}: {b:?}"
        );
    }
}
