//! Kernel semantics the conformance suite does not cover: XDP context and buffer limits
//! (measured on the 6.18 kernel this project runs on), tail-call and call-depth limits,
//! map update flags and errors, memory-safety faults.

use bpfkit_isa::{opcode, RawInsn};
use bpfkit_object::model::{map_type as mt, MapDef, MapInit};
use bpfkit_vm::maps;
use bpfkit_vm::{Config, Engine, Interpreter, Program, Redirect, VmError, XdpInput};

fn asm(text: &str) -> Vec<RawInsn> {
    bpfkit_asm::assemble(text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

/// Turns the `n`-th `lddw` of `insns` into a reference to map `map` (linked convention).
fn map_ref(insns: &mut [RawInsn], n: usize, map: i32) {
    let i = insns
        .iter()
        .enumerate()
        .filter(|(_, x)| x.code == opcode::LDDW)
        .nth(n)
        .expect("lddw")
        .0;
    insns[i].src = opcode::BPF_PSEUDO_MAP_IDX;
    insns[i].imm = map;
}

fn map(name: &str, t: u32, key: u32, value: u32, max: u32) -> MapDef {
    MapDef::plain(name, t, key, value, max, 0)
}

fn xdp(name: &str, insns: Vec<RawInsn>) -> Program {
    Program {
        name: name.into(),
        insns,
        origins: Vec::new(),
        prog_type: 6,
        expected_attach_type: None,
    }
}

fn vm(progs: Vec<Program>, maps: &[MapDef]) -> Interpreter {
    Interpreter::with_programs(progs, maps, Config::default()).expect("interpreter")
}

fn input(packet: &[u8]) -> XdpInput<'_> {
    XdpInput {
        packet,
        ..XdpInput::default()
    }
}

/// Runs `mov %r2, off; call helper; exit` on a 64-byte packet; returns (r0 as i32, output).
fn adjust(helper: i32, pre: &str, off: i32) -> (i32, Vec<u8>) {
    let text = format!("mov %r6, %r1\n{pre}mov %r1, %r6\nmov %r2, {off}\ncall {helper}\nexit\n");
    let mut v = vm(vec![xdp("p", asm(&text))], &[]);
    let o = v.run_xdp(0, &input(&[0xab; 64])).expect("run");
    (o.retval as i32, o.packet)
}

#[test]
fn xdp_buffer_limits_match_the_kernel() {
    const EINVAL: i32 = -22;
    // adjust_tail: data_end may reach PAGE_SIZE - 320 from the frame start (data at 256).
    assert_eq!(adjust(65, "", 3456).0, 0);
    assert_eq!(adjust(65, "", 3456).1.len(), 64 + 3456);
    assert!(
        adjust(65, "", 3456).1[64..].iter().all(|b| *b == 0),
        "grown tail is zeroed"
    );
    assert_eq!(adjust(65, "", 3457).0, EINVAL);
    assert_eq!(adjust(65, "", -50).0, 0);
    assert_eq!(adjust(65, "", -50).1.len(), 14);
    assert_eq!(adjust(65, "", -51).0, EINVAL);
    // adjust_head: at most 256 - sizeof(struct xdp_frame) = 216 bytes of headroom.
    assert_eq!(adjust(44, "", -216).0, 0);
    assert_eq!(adjust(44, "", -216).1.len(), 280);
    assert_eq!(adjust(44, "", -217).0, EINVAL);
    assert_eq!(adjust(44, "", 50).0, 0);
    assert_eq!(adjust(44, "", 51).0, EINVAL);
    // adjust_meta: same reserve, 4-byte aligned (-EACCES otherwise); data_out holds the metadata.
    assert_eq!(adjust(54, "", -216).0, 0);
    assert_eq!(adjust(54, "", -32).1.len(), 96);
    assert_eq!(adjust(54, "", -220).0, EINVAL);
    assert_eq!(adjust(54, "", -6).0, -13);
    assert_eq!(adjust(54, "", 4).0, EINVAL);
    // With 32 bytes of metadata the head can only move 184 bytes.
    let pre = "mov %r1, %r6\nmov %r2, -32\ncall 54\n";
    assert_eq!(adjust(44, pre, -184).0, 0);
    assert_eq!(adjust(44, pre, -185).0, EINVAL);
}

#[test]
fn xdp_context_loads_are_rewritten() {
    let text = "ldxw %r2, [%r1+0]\nldxw %r3, [%r1+4]\nmov %r0, %r3\nsub %r0, %r2\n\
                ldxw %r4, [%r1+12]\nlsh %r4, 16\nor %r0, %r4\nldxw %r4, [%r1+8]\n\
                jeq %r4, %r2, +1\nmov %r0, -1\nexit\n";
    let mut v = vm(vec![xdp("p", asm(text))], &[]);
    let o = v.run_xdp(0, &input(&[1; 100])).unwrap();
    // data_end - data = 100, ingress_ifindex = 1 (loopback, as BPF_PROG_TEST_RUN), data_meta = data.
    assert_eq!(o.retval, (1 << 16) | 100);

    for (text, what) in [
        ("ldxdw %r0, [%r1+0]\nexit\n", "8-byte context read"),
        ("ldxw %r0, [%r1+20]\nexit\n", "egress_ifindex"),
        ("stw [%r1+16], 0\nmov %r0, 0\nexit\n", "context write"),
    ] {
        let mut v = vm(vec![xdp("p", asm(text))], &[]);
        let e = v.run_xdp(0, &input(&[1; 64])).unwrap_err();
        assert!(e.to_string().contains("context"), "{what}: {e}");
    }
}

#[test]
fn packets_past_the_linear_limit_go_to_fragments() {
    // r0 = (data_end - data) << 16 | bpf_xdp_get_buff_len(ctx)
    let text = "mov %r6, %r1\nldxw %r2, [%r1+0]\nldxw %r3, [%r1+4]\nsub %r3, %r2\nlsh %r3, 16\nmov %r7, %r3\n\
                mov %r1, %r6\ncall 188\nor %r0, %r7\nexit\n";
    let mut v = vm(vec![xdp("p", asm(text))], &[]);
    let pkt: Vec<u8> = (0..4000u32).map(|i| i as u8).collect();
    let o = v.run_xdp(0, &input(&pkt)).unwrap();
    assert_eq!(o.retval, (3520 << 16) | 4000);
    assert_eq!(o.packet, pkt);
    // Runts are refused before the program runs, like the kernel (EINVAL).
    assert!(matches!(
        v.run_xdp(0, &input(&[0; 13])),
        Err(VmError::Setup(_))
    ));
    assert!(v.run_xdp(0, &input(&[0; 14])).is_ok());
}

#[test]
fn tail_calls_stop_after_max_tail_call_cnt() {
    let text = "mov %r6, %r1\nstw [%r10-4], 0\nlddw %r1, 0\nmov %r2, %r10\nadd %r2, -4\ncall 1\n\
                jeq %r0, 0, +7\nmov %r1, 1\nlock add [%r0+0], %r1\nmov %r1, %r6\nlddw %r2, 0\nmov %r3, 0\ncall 12\n\
                mov %r0, 7\nexit\n";
    let mut insns = asm(text);
    map_ref(&mut insns, 0, 0);
    map_ref(&mut insns, 1, 1);
    let mut jmp = map("jmp", mt::PROG_ARRAY, 4, 4, 1);
    jmp.init = MapInit::Programs(vec![(0, "p".into())]);
    let mut v = vm(
        vec![xdp("p", insns)],
        &[map("count", mt::ARRAY, 4, 8, 1), jmp],
    );
    let o = v.run_xdp(0, &input(&[0; 64])).unwrap();
    assert_eq!(o.retval, 7);
    let count = v.map_entries(0).unwrap()[0].1.clone();
    // The first run plus MAX_TAIL_CALL_CNT (33) tail calls.
    assert_eq!(u64::from_le_bytes(count.try_into().unwrap()), 34);
}

fn nested_calls(n: usize) -> Vec<RawInsn> {
    let mut text = String::from("mov %r0, 0\ncall local f1\nexit\n");
    for i in 1..=n {
        if i < n {
            text.push_str(&format!("f{i}:\ncall local f{}\nadd %r0, 1\nexit\n", i + 1));
        } else {
            text.push_str(&format!("f{i}:\nmov %r0, 1\nexit\n"));
        }
    }
    asm(&text)
}

#[test]
fn at_most_eight_call_frames() {
    // Entry frame + 7 nested calls = 8 frames.
    assert_eq!(bpfkit_vm::run_raw(&nested_calls(7), &[]).unwrap(), 7);
    let e = bpfkit_vm::run_raw(&nested_calls(8), &[]).unwrap_err();
    assert!(e.to_string().contains("call depth exceeds 8 frames"), "{e}");
}

#[test]
fn callee_saved_registers_and_frames() {
    let text = "mov %r6, 6\nstdw [%r10-8], 11\ncall local f\nldxdw %r1, [%r10-8]\nadd %r0, %r1\nadd %r0, %r6\nexit\n\
                f:\nmov %r6, 100\nstdw [%r10-8], 22\nldxdw %r0, [%r10-8]\nexit\n";
    // Callee writes its own frame: 22 + caller's 11 + restored r6 = 6.
    assert_eq!(bpfkit_vm::run_raw(&asm(text), &[]).unwrap(), 39);
}

#[test]
fn map_flags_and_errors_match_the_kernel() {
    let defs = [
        map("h", mt::HASH, 4, 4, 2),
        map("a", mt::ARRAY, 4, 4, 4),
        map("lru", mt::LRU_HASH, 4, 4, 2),
        map("pa", mt::PERCPU_ARRAY, 4, 4, 1),
    ];
    let config = Config {
        ncpus: 2,
        ..Config::default()
    };
    let mut v =
        Interpreter::with_programs(vec![xdp("p", asm("mov %r0, 0\nexit\n"))], &defs, config)
            .unwrap();
    let errno = |r: Result<(), VmError>| match r {
        Ok(()) => 0,
        Err(VmError::Map(e)) => -e.errno,
        Err(e) => panic!("{e}"),
    };
    let k = |i: u32| i.to_le_bytes();
    assert_eq!(errno(v.map_update(0, &k(1), &k(10), maps::BPF_ANY)), 0);
    assert_eq!(
        errno(v.map_update(0, &k(1), &k(11), maps::BPF_NOEXIST)),
        -maps::EEXIST
    );
    assert_eq!(
        errno(v.map_update(0, &k(9), &k(11), maps::BPF_EXIST)),
        -maps::ENOENT
    );
    assert_eq!(errno(v.map_update(0, &k(2), &k(20), maps::BPF_NOEXIST)), 0);
    assert_eq!(
        errno(v.map_update(0, &k(3), &k(30), maps::BPF_ANY)),
        -maps::E2BIG
    );
    assert_eq!(errno(v.map_update(0, &k(2), &k(21), maps::BPF_EXIST)), 0);
    assert_eq!(errno(v.map_update(0, &k(2), &k(21), 3)), -maps::EINVAL);
    assert_eq!(errno(v.map_delete(0, &k(7))), -maps::ENOENT);
    assert_eq!(
        v.map_entries(0).unwrap(),
        vec![
            (k(1).to_vec(), k(10).to_vec()),
            (k(2).to_vec(), k(21).to_vec())
        ]
    );

    assert_eq!(errno(v.map_update(1, &k(3), &k(1), maps::BPF_ANY)), 0);
    assert_eq!(
        errno(v.map_update(1, &k(3), &k(1), maps::BPF_NOEXIST)),
        -maps::EEXIST
    );
    assert_eq!(
        errno(v.map_update(1, &k(4), &k(1), maps::BPF_ANY)),
        -maps::E2BIG
    );
    assert_eq!(errno(v.map_delete(1, &k(0))), -maps::EINVAL);

    // LRU: a full map evicts the least recently used entry instead of failing.
    for i in 1..=3 {
        assert_eq!(errno(v.map_update(2, &k(i), &k(i), maps::BPF_ANY)), 0);
    }
    let keys: Vec<Vec<u8>> = v
        .map_entries(2)
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(keys, vec![k(2).to_vec(), k(3).to_vec()]);

    // Per-CPU values as the syscall sees them: one 8-byte slot per CPU.
    let val = [1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0];
    assert_eq!(errno(v.map_update(3, &k(0), &val, maps::BPF_ANY)), 0);
    assert_eq!(v.map_entries(3).unwrap()[0].1, val.to_vec());
    assert_eq!(
        errno(v.map_update(3, &k(0), &k(1), maps::BPF_ANY)),
        -maps::EINVAL
    );
}

#[test]
fn reading_past_a_map_value_faults_naming_the_region() {
    let text = "stw [%r10-4], 0\nlddw %r1, 0\nmov %r2, %r10\nadd %r2, -4\ncall 1\njeq %r0, 0, +2\n\
                ldxdw %r0, [%r0+4]\nexit\nmov %r0, 0\nexit\n";
    let mut insns = asm(text);
    map_ref(&mut insns, 0, 0);
    let mut v = vm(vec![xdp("p", insns)], &[map("vals", mt::ARRAY, 4, 8, 4)]);
    let e = v.run_xdp(0, &input(&[0; 64])).unwrap_err();
    let msg = e.to_string();
    let f = e.fault().expect("a fault");
    assert_eq!(f.pc, 7, "{msg}");
    assert!(msg.contains("8-byte read"), "{msg}");
    assert!(msg.contains("value of map #0"), "{msg}");
}

#[test]
fn redirect_map_falls_back_to_the_flags_action() {
    let text = "lddw %r1, 0\nmov %r2, 1\nmov %r3, 2\ncall 51\nexit\n";
    let mut insns = asm(text);
    map_ref(&mut insns, 0, 0);
    let mut v = vm(vec![xdp("p", insns)], &[map("tx", mt::DEVMAP, 4, 4, 4)]);
    let o = v.run_xdp(0, &input(&[0; 64])).unwrap();
    assert_eq!((o.retval, o.redirect), (2, None));
    v.map_update(0, &1u32.to_le_bytes(), &5u32.to_le_bytes(), 0)
        .unwrap();
    let o = v.run_xdp(0, &input(&[0; 64])).unwrap();
    assert_eq!(
        (o.retval, o.redirect),
        (4, Some(Redirect::Map { map: 0, key: 1 }))
    );
}

#[test]
fn unsupported_helpers_fail_naming_the_helper() {
    let mut v = vm(vec![xdp("p", asm("call 84\nexit\n"))], &[]);
    let e = v.run_xdp(0, &input(&[0; 64])).unwrap_err();
    assert!(e.to_string().contains("bpf_sk_lookup_tcp"), "{e}");
}

#[test]
fn instruction_limit_stops_infinite_loops() {
    let config = Config {
        insn_limit: 10_000,
        ..Config::default()
    };
    let mut v = Interpreter::with_programs(
        vec![Program::raw("loop", asm("ja -1\nexit\n"))],
        &[],
        config,
    )
    .unwrap();
    let e = v.run_raw(0, &[]).unwrap_err();
    assert!(e.to_string().contains("instruction limit"), "{e}");
}

#[test]
fn ingress_device_and_queue_are_checked_like_the_kernel() {
    let text = "ldxw %r0, [%r1+12]\nmul %r0, 1000\nldxw %r2, [%r1+16]\nadd %r0, %r2\nexit\n";
    let config = Config {
        devices: vec![bpfkit_vm::Device {
            rx_queues: 4,
            ..bpfkit_vm::Device::ethernet(4, 1500)
        }],
        ..Config::default()
    };
    let mut v = Interpreter::with_programs(vec![xdp("p", asm(text))], &[], config).unwrap();
    let run = |v: &mut Interpreter, ifindex: u32, q: u32| {
        v.run_xdp(
            0,
            &XdpInput {
                packet: &[0; 64],
                ingress_ifindex: ifindex,
                rx_queue_index: q,
                ..XdpInput::default()
            },
        )
    };
    // Measured with bpftool prog run on 6.18: (0,0) and (1,0) run on lo; (1,1) and (0,1)
    // are EINVAL; an unknown ifindex is ENODEV.
    assert_eq!(run(&mut v, 0, 0).unwrap().retval, 1000);
    assert_eq!(run(&mut v, 1, 0).unwrap().retval, 1000);
    assert!(run(&mut v, 1, 1)
        .unwrap_err()
        .to_string()
        .contains("EINVAL"));
    assert!(run(&mut v, 0, 1)
        .unwrap_err()
        .to_string()
        .contains("EINVAL"));
    assert!(run(&mut v, 99, 0)
        .unwrap_err()
        .to_string()
        .contains("ENODEV"));
    assert_eq!(run(&mut v, 4, 3).unwrap().retval, 4003);
}

/// The XDP page, context and output buffers are reused from run to run; what a run wrote
/// (headroom, metadata, packet) must not be visible to the next one, which sees a zeroed
/// frame as `BPF_PROG_TEST_RUN` gives it.
#[test]
fn reused_xdp_buffers_start_zeroed() {
    // Moves data and data_meta down, then fills metadata + packet with 0xee.
    let dirty = "mov %r6, %r1\nmov %r2, -180\ncall 44\nmov %r1, %r6\nmov %r2, -32\ncall 54\n\
                 ldxw %r2, [%r6+8]\nldxw %r3, [%r6+4]\nstb [%r2+0], 238\nadd %r2, 1\n\
                 jlt %r2, %r3, -3\nmov %r0, 2\nexit\n";
    // Exposes the whole headroom (216 bytes) in the output.
    let head = "mov %r2, -216\ncall 44\nmov %r0, 2\nexit\n";
    // Exposes 100 bytes of headroom and 100 bytes of metadata.
    let meta = "mov %r6, %r1\nmov %r2, -100\ncall 44\nmov %r1, %r6\nmov %r2, -100\ncall 54\n\
                mov %r0, 2\nexit\n";
    // Grows the tail by 300 bytes (zeroed by the helper).
    let tail = "mov %r2, 300\ncall 65\nmov %r0, 2\nexit\n";
    let progs = || {
        vec![
            xdp("dirty", asm(dirty)),
            xdp("head", asm(head)),
            xdp("meta", asm(meta)),
            xdp("tail", asm(tail)),
        ]
    };
    let long: Vec<u8> = (0..1500u32).map(|i| i as u8 | 1).collect();
    let short = [0x5au8; 60];
    let mut used = vm(progs(), &[]);
    let mut out = bpfkit_vm::XdpOutput::default();
    for probe in 1..4 {
        for pkt in [&long[..], &short[..]] {
            let fresh = vm(progs(), &[]).run_xdp(probe, &input(pkt)).unwrap();
            assert_eq!(fresh.retval, 2);
            used.run_xdp_into(0, &input(&long), &mut out).unwrap();
            assert_eq!(out.retval, 2);
            used.run_xdp_into(probe, &input(pkt), &mut out).unwrap();
            assert_eq!(
                out,
                fresh,
                "probe {probe}, {} bytes, run_xdp_into",
                pkt.len()
            );
            // Where the frame starts in the output (metadata in front of it).
            let meta = if probe == 2 { 100 } else { 0 };
            assert_eq!(used.last_xdp_meta_len(), meta);
            used.run_xdp(0, &input(&long)).unwrap();
            assert_eq!(used.run_xdp(probe, &input(pkt)).unwrap(), fresh, "run_xdp");
        }
    }
}

/// Stacks are cleared lazily (only what checked writes touched); every frame must still
/// start zeroed: the next run, the next call at the same depth, after a helper wrote it.
#[test]
fn stack_frames_start_zeroed() {
    let w = "mov %r1, -1\nstxdw [%r10-16], %r1\nstdw [%r10-512], 7\nmov %r0, 0\nexit\n";
    let h = "mov %r1, %r10\nadd %r1, -64\nmov %r2, 16\ncall 16\nmov %r0, 0\nexit\n";
    let r = "ldxdw %r0, [%r10-16]\nldxdw %r1, [%r10-512]\nor %r0, %r1\nldxdw %r1, [%r10-64]\n\
             or %r0, %r1\nexit\n";
    // Frame 1 written by f, then read by g at the same depth.
    let calls = "call local f\ncall local g\nexit\n\
                 f:\nmov %r1, -1\nstxdw [%r10-16], %r1\nstxdw [%r10-64], %r1\nexit\n\
                 g:\nldxdw %r0, [%r10-16]\nldxdw %r1, [%r10-64]\nor %r0, %r1\nexit\n";
    let mut v = vm(
        vec![
            xdp("w", asm(w)),
            xdp("h", asm(h)),
            xdp("r", asm(r)),
            xdp("calls", asm(calls)),
        ],
        &[],
    );
    for writer in [0, 1] {
        assert_eq!(v.run_raw(writer, &[]).unwrap().r0, 0);
        assert_eq!(v.run_raw(2, &[]).unwrap().r0, 0, "after writer {writer}");
        assert_eq!(v.run_xdp(writer, &input(&[0; 64])).unwrap().retval, 0);
        assert_eq!(v.run_xdp(2, &input(&[0; 64])).unwrap().retval, 0);
    }
    assert_eq!(v.run_raw(3, &[]).unwrap().r0, 0);
    // A stack registered from outside (the JIT's fast mode does) may be written without
    // checks: from then on frames are cleared entirely.
    let rt = v.runtime_mut();
    let top = rt.frame_top(1);
    rt.regions.insert(bpfkit_vm::memory::Region::new(
        top - 512,
        512,
        bpfkit_vm::memory::RegionKind::Stack(1),
        true,
    ));
    // SAFETY: frame 1's stack is 512 bytes of the runtime's stack area below `top`.
    unsafe { bpfkit_vm::memory::raw_store(top - 16, 8, u64::MAX) };
    rt.regions.remove(top - 512);
    assert_eq!(v.run_raw(3, &[]).unwrap().r0, 0, "after an unchecked write");
}

/// The XDP frame of a finished run stays set up for the next XDP run (see `end_run`), but
/// code that runs outside an XDP run must not see it: a raw-mode run after an XDP run
/// cannot read the old packet and gets the raw-mode answer from XDP helpers, exactly as on
/// a fresh engine.
#[test]
fn a_raw_run_after_an_xdp_run_sees_no_xdp_frame() {
    // XDP: returns the packet's address (r0 = data).
    let leak = "ldxw %r0, [%r1+0]\nexit\n";
    // Raw: reads a byte at the address held in the first 8 bytes of its memory.
    let peek = "ldxdw %r2, [%r1+0]\nldxb %r0, [%r2+0]\nexit\n";
    // Raw: calls bpf_xdp_adjust_head(r1, 0).
    let adjust = "mov %r2, 0\ncall 44\nexit\n";
    let progs = || {
        vec![
            xdp("leak", asm(leak)),
            Program::raw("peek", asm(peek)),
            Program::raw("adjust", asm(adjust)),
        ]
    };
    let mut used = vm(progs(), &[]);
    let data = used
        .run_xdp(0, &input(&[0x77; 64]))
        .expect("xdp run")
        .retval;
    assert_ne!(data, 0);
    let peeked = used
        .run_raw(1, &data.to_le_bytes())
        .map(|o| o.r0)
        .expect_err("read the old packet")
        .to_string();
    assert!(
        peeked.contains("outside every region") && !peeked.contains("packet"),
        "{peeked}"
    );
    let adjusted = used.run_raw(2, &[0u8; 8]).map(|o| o.r0);
    let fresh = vm(progs(), &[]).run_raw(2, &[0u8; 8]).map(|o| o.r0);
    assert_eq!(format!("{adjusted:?}"), format!("{fresh:?}"));
    // And the next XDP run starts from a zeroed frame again.
    let again = used.run_xdp(0, &input(&[0x77; 64])).expect("xdp run");
    assert_eq!(again.packet, vec![0x77; 64]);
}
