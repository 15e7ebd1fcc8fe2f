//! Runs after the first on the same JIT only start on the parked XDP frame when the
//! program, CPU, device and queue are those checked before (`Runtime::rebegin_xdp_md`):
//! results equal the interpreter's over packets of every size class in any order, and a
//! change of the runtime's configuration between runs is seen by the next run.

use bpfkit_isa::opcode::{BPF_PSEUDO_MAP_IDX, LDDW};
use bpfkit_jit::Jit;
use bpfkit_object::model::{prog_type, LinkedObject, LinkedProgram, MapDef};
use bpfkit_vm::runtime::Device;
use bpfkit_vm::{Config, Engine, Interpreter, XdpInput, XdpOutput};

/// Writes the packet length into its first bytes (after a bounds check) and returns it
/// plus ingress_ifindex << 16 and rx_queue_index << 24.
const PROG: &str = "
    ldxw %r2, [%r1+0]
    ldxw %r3, [%r1+4]
    ldxw %r4, [%r1+12]
    ldxw %r5, [%r1+16]
    mov %r0, %r3
    sub %r0, %r2
    mov %r6, %r2
    add %r6, 4
    jgt %r6, %r3, +1
    stxw [%r2+0], %r0
    lsh %r4, 16
    or %r0, %r4
    lsh %r5, 24
    or %r0, %r5
    exit";

fn object() -> LinkedObject {
    LinkedObject {
        programs: vec![LinkedProgram {
            name: "p".into(),
            section: "xdp".into(),
            prog_type: prog_type::XDP,
            expected_attach_type: None,
            prog_flags: 0,
            origins: Vec::new(),
            insns: bpfkit_asm::assemble(PROG).unwrap(),
        }],
        maps: Vec::new(),
        license: "GPL".into(),
        kernel_version: None,
    }
}

fn input(packet: &[u8], ifindex: u32, queue: u32) -> XdpInput<'_> {
    XdpInput {
        packet,
        ingress_ifindex: ifindex,
        rx_queue_index: queue,
        time_ns: 0,
        cpu: 0,
    }
}

#[test]
fn reruns_match_the_interpreter_for_every_size_and_setting() {
    let config = Config {
        devices: vec![Device {
            rx_queues: 2,
            ..Device::ethernet(5, 1500)
        }],
        ..Config::default()
    };
    let obj = object();
    let mut interp = Interpreter::new(&obj, config.clone()).unwrap();
    let mut fast = Jit::new_fast(&obj, config.clone()).unwrap();
    let mut checked = Jit::new(&obj, config).unwrap();
    // Linear packets, packets with fragments (above 3520 bytes), too short, and changes
    // of device and queue, in an order that switches between them.
    let lens = [60usize, 60, 14, 3520, 3521, 60, 13, 9000, 1514, 1514, 0, 64];
    let settings = [(0u32, 0u32), (5, 1), (5, 0), (0, 0), (5, 2), (7, 0)];
    let (mut out_f, mut out_c) = (XdpOutput::default(), XdpOutput::default());
    for round in 0..3 {
        for (i, &len) in lens.iter().enumerate() {
            let (ifindex, queue) = settings[(i + round) % settings.len()];
            let packet: Vec<u8> = (0..len).map(|b| (b * 7 + round) as u8).collect();
            let inp = input(&packet, ifindex, queue);
            let want = interp.run_xdp(0, &inp);
            let got_f = fast.run_xdp_into(0, &inp, &mut out_f);
            let got_c = checked.run_xdp_into(0, &inp, &mut out_c);
            let what = format!("round {round}, {len} bytes, device {ifindex} queue {queue}");
            match want {
                Ok(w) => {
                    got_f.unwrap_or_else(|e| panic!("fast, {what}: {e}"));
                    got_c.unwrap_or_else(|e| panic!("checked, {what}: {e}"));
                    assert_eq!(out_f.retval, w.retval, "fast, {what}");
                    assert_eq!(out_f.packet, w.packet, "fast, {what}");
                    assert_eq!(out_c.retval, w.retval, "checked, {what}");
                    assert_eq!(out_c.packet, w.packet, "checked, {what}");
                }
                Err(w) => {
                    let (f, c) = (got_f.unwrap_err(), got_c.unwrap_err());
                    assert_eq!(f.to_string(), w.to_string(), "fast, {what}");
                    assert_eq!(c.to_string(), w.to_string(), "checked, {what}");
                }
            }
        }
    }
}

#[test]
fn a_configuration_change_between_runs_is_checked_again() {
    let config = Config {
        devices: vec![Device::ethernet(5, 1500)],
        ..Config::default()
    };
    let obj = object();
    let mut jit = Jit::new_fast(&obj, config).unwrap();
    let packet = [1u8; 60];
    let mut out = XdpOutput::default();
    for _ in 0..2 {
        jit.run_xdp_into(0, &input(&packet, 5, 0), &mut out)
            .unwrap();
        assert_eq!(out.retval, 60 | 5 << 16);
    }
    // The device goes away: the same settings are refused now, as the kernel refuses an
    // unknown ingress_ifindex (ENODEV).
    jit.runtime_mut().config.devices.clear();
    let e = jit
        .run_xdp_into(0, &input(&packet, 5, 0), &mut out)
        .unwrap_err()
        .to_string();
    assert!(e.contains("no such device"), "{e}");
    // And with one CPU fewer than the run asks for.
    jit.runtime_mut()
        .config
        .devices
        .push(Device::ethernet(5, 1500));
    let on_cpu1 = XdpInput {
        cpu: 1,
        ..input(&packet, 5, 0)
    };
    jit.runtime_mut().config.ncpus = 2;
    jit.run_xdp_into(0, &on_cpu1, &mut out).unwrap();
    jit.run_xdp_into(0, &on_cpu1, &mut out).unwrap();
    jit.runtime_mut().config.ncpus = 1;
    let e = jit
        .run_xdp_into(0, &on_cpu1, &mut out)
        .unwrap_err()
        .to_string();
    assert!(e.contains("CPU 1 does not exist"), "{e}");
}

/// `run_xdp_repeat` keeps the run context between runs (`Jit::enter_again`): over many
/// runs of objects with bpf-to-bpf calls (the call depth is counted and must start at
/// the entry every run), tail calls (their count is per run) and map updates, the last
/// run's result and the maps equal the interpreter's after the same number of runs.
#[test]
fn repeated_runs_keep_results_and_maps_of_the_interpreter() {
    let packet = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../corpus/packets/00_ipv4_tcp_syn.bin"),
    )
    .unwrap();
    // Beyond calls, tail calls and counters: packet moves that accumulate over runs
    // (head, tail, meta), printk and ring buffer events (per run: the last run's only),
    // callbacks, spin locks, timers of the clock, LRU and hash maps. Fast mode runs the
    // repeats in its generated loop (`Jit::enter_repeat`), which resets the runtime's
    // per-run state only after a run that called into Rust.
    for name in [
        "xdp_calls",
        "xdp_tailcall",
        "xdp_counter",
        "xdp_encap",
        "xdp_trunc",
        "xdp_meta",
        "xdp_csum",
        "xdp_loop",
        "xdp_printk",
        "xdp_ringbuf",
        "xdp_spinlock",
        "xdp_atomics",
        "xdp_flowtable",
        "xdp_firewall",
        "xdp_global_data",
        "xdp_tailchain",
    ] {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(format!("../../corpus/obj/{name}.o"));
        let obj = bpfkit_object::Object::parse(&std::fs::read(path).unwrap())
            .unwrap()
            .link()
            .unwrap();
        let mut interp = Interpreter::new(&obj, Config::default()).unwrap();
        let mut fast = Jit::new_fast(&obj, Config::default()).unwrap();
        let mut checked = Jit::new(&obj, Config::default()).unwrap();
        let inp = input(&packet, 0, 0);
        for repeat in [1u32, 2, 9, 1000] {
            let mut want = XdpOutput::default();
            interp.run_xdp_repeat(0, &inp, repeat, &mut want).unwrap();
            for (jit, mode) in [(&mut fast, "fast"), (&mut checked, "checked")] {
                let mut got = XdpOutput::default();
                jit.run_xdp_repeat(0, &inp, repeat, &mut got)
                    .unwrap_or_else(|e| panic!("{name} {mode} x{repeat}: {e}"));
                assert_eq!(got.retval, want.retval, "{name} {mode} x{repeat}");
                assert_eq!(got.packet, want.packet, "{name} {mode} x{repeat}");
                assert_eq!(got.redirect, want.redirect, "{name} {mode} x{repeat}");
                assert_eq!(got.events, want.events, "{name} {mode} x{repeat}");
                for m in 0..obj.maps.len() {
                    assert_eq!(
                        jit.map_entries(m).unwrap(),
                        interp.map_entries(m).unwrap(),
                        "{name} {mode} x{repeat}: map {m}"
                    );
                }
            }
        }
    }
}

/// A program that calls a helper only on some runs (a printk on every third, counted in
/// an array element the fast mode looks up inline): the last run's events are its own
/// (none after a run without the helper), as the interpreter's, whichever run is last;
/// and a fault in a later run of a repeat (a load through a pointer the count turns
/// wild, run without a verifier) ends the repeat with the interpreter's fault.
#[test]
fn repeated_runs_reset_helper_state_and_stop_at_a_late_fault() {
    const PRINTK_EVERY_THIRD: &str = "
        stw [%r10-4], 0
        mov %r2, %r10
        add %r2, -4
        lddw %r1, 0
        call 1
        jeq %r0, 0, +12
        ldxw %r7, [%r0+0]
        add %r7, 1
        stxw [%r0+0], %r7
        mod %r7, 3
        jne %r7, 0, +5
        stw [%r10-8], 0x0a6968
        mov %r1, %r10
        add %r1, -8
        mov %r2, 4
        call 6
        mov %r0, 2
        exit
        mov %r0, 1
        exit";
    // Runs 1..4 read the array element; from run 5 on the load goes through 0 + count.
    const FAULT_AT_FIFTH: &str = "
        stw [%r10-4], 0
        mov %r2, %r10
        add %r2, -4
        lddw %r1, 0
        call 1
        jeq %r0, 0, +9
        ldxw %r7, [%r0+0]
        add %r7, 1
        stxw [%r0+0], %r7
        jlt %r7, 5, +3
        mov %r0, %r7
        ldxw %r0, [%r0+0]
        exit
        mov %r0, 2
        exit
        mov %r0, 1
        exit";
    let packet = [0u8; 64];
    for (what, text) in [("printk", PRINTK_EVERY_THIRD), ("fault", FAULT_AT_FIFTH)] {
        let mut insns = bpfkit_asm::assemble(text).unwrap();
        for i in insns.iter_mut().filter(|i| i.code == LDDW) {
            i.src = BPF_PSEUDO_MAP_IDX;
        }
        let mut obj = object();
        obj.programs[0].insns = insns;
        obj.maps.push(MapDef::plain(
            "m",
            bpfkit_object::model::map_type::ARRAY,
            4,
            4,
            1,
            0,
        ));
        for repeat in [1u32, 2, 3, 4, 5, 6, 7, 30] {
            let mut interp = Interpreter::new(&obj, Config::default()).unwrap();
            // SAFETY (test): fast mode without a verifier is confined to the engines'
            // memory; the wild load must fault, not touch host memory.
            let mut fast = unsafe { Jit::new_unchecked(&obj, Config::default()) }.unwrap();
            let inp = input(&packet, 0, 0);
            let (mut want, mut got) = (XdpOutput::default(), XdpOutput::default());
            let w = interp
                .run_xdp_repeat(0, &inp, repeat, &mut want)
                .map_err(|e| e.to_string());
            let g = fast
                .run_xdp_repeat(0, &inp, repeat, &mut got)
                .map_err(|e| e.to_string());
            assert_eq!(g.is_ok(), w.is_ok(), "{what} x{repeat}: {g:?} / {w:?}");
            if let (Err(g), Err(w)) = (&g, &w) {
                // The same fault; the nearest region's address differs between engines.
                let head = |t: &str| t.split(" (").next().unwrap_or_default().to_string();
                assert_eq!(head(g), head(w), "{what} x{repeat}");
                assert!(g.contains("instruction 12"), "{what} x{repeat}: {g}");
                assert!(what == "fault" && repeat >= 5, "{what} x{repeat}: {g}");
            } else {
                assert!(what == "printk" || repeat < 5, "{what} x{repeat}: no fault");
                assert_eq!(got.retval, want.retval, "{what} x{repeat}");
                assert_eq!(got.events, want.events, "{what} x{repeat}");
                assert_eq!(
                    got.events.is_empty(),
                    what == "fault" || repeat % 3 != 0,
                    "{what} x{repeat}: {:?}",
                    got.events
                );
            }
            assert_eq!(
                fast.map_entries(0).unwrap(),
                interp.map_entries(0).unwrap(),
                "{what} x{repeat}"
            );
        }
    }
}

/// The generated repeat loop resets the instruction budget per run when the object has a
/// cycle (and only then): a loop charged on every back edge (its counter goes through
/// the stack, so it is no counted loop) that fits the budget once runs any number of
/// times, like the interpreter; a budget it does not fit faults in the first run.
#[test]
fn repeated_runs_reset_the_budget_of_loops() {
    const LOOP: &str = "
        mov %r0, 0
        stxdw [%r10-8], %r0
        ldxdw %r0, [%r10-8]
        add %r0, 1
        stxdw [%r10-8], %r0
        jlt %r0, 100, -4
        exit";
    let packet = [0u8; 64];
    let mut obj = object();
    obj.programs[0].insns = bpfkit_asm::assemble(LOOP).unwrap();
    for (limit, ok) in [(1_000u64, true), (300, false)] {
        let config = Config {
            insn_limit: limit,
            ..Config::default()
        };
        for repeat in [1u32, 2, 20] {
            let mut interp = Interpreter::new(&obj, config.clone()).unwrap();
            // SAFETY (test): a verifier-valid bounded loop on the stack.
            let mut fast = unsafe { Jit::new_unchecked(&obj, config.clone()) }.unwrap();
            let inp = input(&packet, 0, 0);
            let (mut want, mut got) = (XdpOutput::default(), XdpOutput::default());
            let w = interp.run_xdp_repeat(0, &inp, repeat, &mut want);
            let g = fast.run_xdp_repeat(0, &inp, repeat, &mut got);
            assert_eq!(w.is_ok(), ok, "interp limit {limit} x{repeat}: {w:?}");
            assert_eq!(g.is_ok(), ok, "fast limit {limit} x{repeat}: {g:?}");
            if ok {
                assert_eq!((got.retval, want.retval), (100, 100), "x{repeat}");
            }
        }
    }
}
