//! The interpreter's fast loop (pre-decoded programs, instruction budget charged per
//! straight-line run) must behave exactly like its exact loop (raw instructions, each one
//! counted), which runs whenever coverage is recorded: same r0 or same fault (instruction,
//! kind, message), same output packet, memory, map contents, events and instruction count,
//! also when the instruction limit stops the run in the middle of a straight-line run.
//! Unix only (the comparison forks so that both loops see the same heap addresses).

use bpfkit_isa::RawInsn;
use bpfkit_object::model::{map_type as mt, MapDef};
use bpfkit_vm::runtime::Coverage;
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
        map("q", mt::QUEUE, 0, 4, 2, 0),
        map("jmp", mt::PROG_ARRAY, 4, 4, 2, 0),
        map("g", mt::ARRAY, 4, 16, 1, 0),
    ]
}

/// Instructions biased towards valid opcodes (every ALU/JMP/LDX/ST form, atomics, calls),
/// short jumps (loops), map references and the stack.
fn insn() -> impl Strategy<Value = RawInsn> {
    let codes: Vec<u8> = vec![
        0x07, 0x0f, 0x17, 0x1f, 0x27, 0x2f, 0x37, 0x3f, 0x47, 0x4f, 0x57, 0x5f, 0x67, 0x6f, 0x77,
        0x7f, 0x87, 0x97, 0x9f, 0xa7, 0xaf, 0xb7, 0xbf, 0xc7, 0xcf, 0xd4, 0xdc, 0xd7, 0x04, 0x0c,
        0x14, 0x1c, 0x24, 0x2c, 0x34, 0x3c, 0x44, 0x4c, 0x54, 0x5c, 0x64, 0x6c, 0x74, 0x7c, 0x84,
        0x94, 0x9c, 0xa4, 0xac, 0xb4, 0xbc, 0xc4, 0xcc, 0x05, 0x15, 0x1d, 0x25, 0x2d, 0x35, 0x3d,
        0x45, 0x4d, 0x55, 0x5d, 0x65, 0x6d, 0x75, 0x7d, 0xa5, 0xad, 0xb5, 0xbd, 0xc5, 0xcd, 0xd5,
        0xdd, 0x06, 0x0e, 0x16, 0x1e, 0x26, 0x2e, 0x36, 0x3e, 0x46, 0x4e, 0x56, 0x5e, 0x66, 0x6e,
        0x76, 0x7e, 0xa6, 0xae, 0xb6, 0xbe, 0xc6, 0xce, 0xd6, 0xde, 0x61, 0x69, 0x71, 0x79, 0x81,
        0x89, 0x91, 0x99, 0x62, 0x6a, 0x72, 0x7a, 0x63, 0x6b, 0x73, 0x7b, 0xc3, 0xdb, 0x85, 0x8d,
        0x95, 0x96, 0x18, 0x00, 0x20, 0xff,
    ];
    (
        prop::sample::select(codes),
        0u8..12,
        0u8..12,
        prop_oneof![Just(0i16), -8i16..8, -8i16..8, -520i16..0, any::<i16>()],
        prop_oneof![
            0i32..8,
            -64i32..64,
            Just(1),
            Just(8),
            Just(16),
            Just(32),
            Just(64),
            any::<i32>()
        ],
        0u8..40,
    )
        .prop_map(|(code, dst, src, off, imm, raw)| {
            let mut i = RawInsn::new(code, dst % 11, src % 12, off, imm);
            if raw == 0 {
                // Left as generated: often invalid (reserved fields, registers past r10).
                return i;
            }
            i.src %= 11;
            let class = code & 7;
            let op = code & 0xf0;
            let x = code & 8 != 0;
            match class {
                4 | 7 if op == 0xd0 => i.imm = [16, 32, 64][imm.unsigned_abs() as usize % 3],
                4 | 7 => {
                    if x {
                        i.imm = 0;
                    } else {
                        i.src = 0;
                    }
                    i.off = match op {
                        0x30 | 0x90 => off.rem_euclid(2),
                        0xb0 if x => [0, 0, 8, 16, 32][off.unsigned_abs() as usize % 5],
                        _ => 0,
                    };
                    if i.dst == 10 {
                        i.dst = 0;
                    }
                }
                5 | 6 if op != 0x80 && op != 0x90 => {
                    // Short jumps, forwards and backwards (loops).
                    i.off = off % 7;
                    if code == 0x06 {
                        i.imm = imm % 7;
                    }
                }
                1..=3 if dst % 4 != 3 => {
                    // Stack accesses through r10.
                    if class == 1 {
                        i.src = 10;
                        if i.dst == 10 {
                            i.dst = 0;
                        }
                    } else {
                        i.dst = 10;
                    }
                    if class == 2 {
                        i.src = 0;
                    }
                    if code == 0xc3 || code == 0xdb {
                        i.imm = [0, 1, 0x40, 0x41, 0x50, 0xa0, 0xe1, 0xf1]
                            [imm.unsigned_abs() as usize % 8];
                    }
                    i.off = -((off.unsigned_abs() % 64) as i16) - 8;
                }
                _ => {}
            }
            if code == 0x18 && src % 3 == 0 {
                i.src = 5; // map by index
                i.imm = imm.rem_euclid(7);
            }
            if code == 0x85 && src % 2 == 0 {
                i.src = if imm % 3 == 0 { 1 } else { 0 };
                if i.src == 0 {
                    i.imm = [1, 2, 3, 5, 7, 8, 12, 44, 65, 87, 181, 999]
                        [imm.unsigned_abs() as usize % 12];
                } else {
                    i.imm = imm % 8;
                }
            }
            i
        })
}

/// Everything observable after the runs.
fn observe(v: &mut Interpreter, packet: &[u8], mem: &[u8]) -> String {
    let mut obs = Vec::new();
    for cpu in [0, 1] {
        let r = v.run_xdp(
            0,
            &XdpInput {
                packet,
                cpu,
                ..XdpInput::default()
            },
        );
        obs.push(format!("{r:?}"));
        obs.push(format!("count {}", v.runtime().insn_count));
    }
    let r = v.run_raw(1, mem);
    obs.push(format!("{r:?}"));
    obs.push(format!("count {}", v.runtime().insn_count));
    for m in 0..maps().len() {
        obs.push(format!("{:?}", v.map_entries(m)));
    }
    obs.join("\n")
}

fn interpreter(insns: &[RawInsn], limit: u64) -> Interpreter {
    let progs = vec![
        Program {
            name: "p".into(),
            insns: insns.to_vec(),
            origins: Vec::new(),
            prog_type: 6,
            expected_attach_type: None,
        },
        Program {
            name: "q".into(),
            insns: insns.to_vec(),
            origins: Vec::new(),
            prog_type: 6,
            expected_attach_type: None,
        },
    ];
    let config = Config {
        ncpus: 2,
        insn_limit: limit,
        ..Config::default()
    };
    let mut v = Interpreter::with_programs(progs, &maps(), config).expect("valid maps");
    v.map_update(4, &0u32.to_le_bytes(), &1u32.to_le_bytes(), 0)
        .expect("prog array");
    v
}

/// Observes the same interpreter with the fast loop (here) and the exact loop (in a
/// forked child, so that every heap address, and hence every pointer a program sees, is
/// the same on both sides).
fn fast_and_exact(v: &mut Interpreter, packet: &[u8], mem: &[u8]) -> (String, String) {
    let mut fds = [0i32; 2];
    // SAFETY: plain libc calls on a local array; the child only runs the interpreter
    // (single-threaded Rust code), writes to the pipe and leaves with `_exit`.
    unsafe {
        assert_eq!(libc::pipe(fds.as_mut_ptr()), 0);
        let pid = libc::fork();
        assert!(pid >= 0, "fork");
        if pid == 0 {
            libc::close(fds[0]);
            v.runtime_mut().exact_interp = true;
            let obs = observe(v, packet, mem);
            let mut b = obs.as_bytes();
            while !b.is_empty() {
                let n = libc::write(fds[1], b.as_ptr().cast(), b.len());
                if n <= 0 {
                    libc::_exit(2);
                }
                b = &b[n as usize..];
            }
            libc::_exit(0);
        }
        libc::close(fds[1]);
        let fast = observe(v, packet, mem);
        let mut exact = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = libc::read(fds[0], buf.as_mut_ptr().cast(), buf.len());
            if n <= 0 {
                break;
            }
            exact.extend_from_slice(&buf[..n as usize]);
        }
        libc::close(fds[0]);
        let mut status = 0;
        libc::waitpid(pid, &mut status, 0);
        assert_eq!(status, 0, "child failed");
        (fast, String::from_utf8(exact).expect("utf-8"))
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn fast_loop_equals_exact_loop(
        body in prop::collection::vec(insn(), 1..48),
        packet in prop::collection::vec(any::<u8>(), 14..120),
        mem in prop::collection::vec(any::<u8>(), 0..64),
        limit in prop_oneof![1u64..40, 40u64..400, Just(5_000u64)],
        init in prop::array::uniform10(-3i8..20),
    ) {
        // Small values in r0 and r2..r9, so that most instructions run rather than fault.
        let mut insns: Vec<RawInsn> = [0u8, 2, 3, 4, 5, 6, 7, 8, 9]
            .iter()
            .map(|&r| RawInsn::new(0xb7, r, 0, 0, init[r as usize] as i32))
            .collect();
        insns.extend(body);
        insns.push(RawInsn::new(0x95, 0, 0, 0, 0));
        let (fast, exact) = fast_and_exact(&mut interpreter(&insns, limit), &packet, &mem);
        prop_assert_eq!(fast, exact);
    }
}

/// A counting loop stopped by every limit from 1 to 120: the fault names the same
/// instruction and the count is the limit, as when each instruction is counted.
#[test]
fn instruction_limit_stops_at_the_same_instruction() {
    let text = "mov %r0, 0\nmov %r1, 0\nadd %r0, 1\nadd %r1, 2\nstxdw [%r10-8], %r1\n\
                ldxdw %r2, [%r10-8]\njlt %r0, 1000, -5\nexit\n";
    let insns = bpfkit_asm::assemble(text).expect("assemble");
    for limit in 1..120 {
        let run = |exact: bool| {
            let mut v = interpreter(&insns, limit);
            if exact {
                v.runtime_mut().coverage = Some(Coverage::default());
            }
            let r = v.run_raw(0, &[]);
            (format!("{r:?}"), v.runtime().insn_count)
        };
        let (fast, exact) = (run(false), run(true));
        assert_eq!(fast, exact, "limit {limit}");
        assert!(fast.0.contains("InsnLimit"), "limit {limit}: {}", fast.0);
        // Counted up to the instruction that went over the limit.
        assert_eq!(fast.1, limit + 1);
    }
}

/// A tail call starts the callee with a full `may_goto` budget in both loops (the kernel
/// sets the hidden counter in every program's prologue): the caller spends its budget in
/// a `may_goto` loop, then tail-calls a program (the same code) that counts how often its
/// own loop runs.
#[test]
fn tail_call_restores_the_may_goto_budget() {
    let i = RawInsn::new;
    let insns = vec![
        i(0xb7, 0, 0, 0, 0),  // 0: r0 = 0
        i(0xe5, 0, 0, 2, 0),  // 1: may_goto +2 (to 4)
        i(0x07, 0, 0, 0, 1),  // 2: r0 += 1
        i(0x05, 0, 0, -3, 0), // 3: goto -3 (to 1)
        i(0x55, 7, 0, 5, 0),  // 4: if r7 != 0 goto +5 (to 10)
        i(0xb7, 7, 0, 0, 1),  // 5: r7 = 1
        i(0x18, 2, 5, 0, 4),  // 6: r2 = map 4 (the PROG_ARRAY, slot 0: program 1)
        i(0x00, 0, 0, 0, 0),  // 7
        i(0xb7, 3, 0, 0, 0),  // 8: r3 = 0
        i(0x85, 0, 0, 0, 12), // 9: bpf_tail_call
        i(0x95, 0, 0, 0, 0),  // 10: exit
    ];
    let run = |exact: bool| {
        let mut v = interpreter(&insns, Config::default().insn_limit);
        v.runtime_mut().exact_interp = exact;
        let r = v.run_raw(0, &[]);
        (format!("{r:?}"), v.runtime().insn_count)
    };
    let (fast, exact) = (run(false), run(true));
    assert_eq!(fast, exact);
    assert!(fast.0.contains("8388608"), "{}", fast.0);
}
