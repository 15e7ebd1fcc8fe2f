//! The two engines `bpfkit run --engine` offers must agree: small XDP programs that hit
//! helper edge cases (buffer adjustment limits, checksums, MTU checks, packet byte access
//! across fragments, redirect flags, map update flags and errors, LPM matching, tail-call
//! limit, printk return values) run on the interpreter and through `BPF_PROG_TEST_RUN`,
//! comparing the return value, the output bytes and the maps afterwards.
//!
//! Needs root (CAP_BPF); without it the test prints a loud SKIPPED banner.

use bpfkit_isa::{opcode, RawInsn};
use bpfkit_loader::engine::KernelEngine;
use bpfkit_object::model::{map_type as mt, LinkedObject, LinkedProgram, MapDef, MapInit};
use bpfkit_vm::{Config, Engine, Interpreter, XdpInput};

fn kernel_or_skip() -> bool {
    match bpfkit_loader::probe::kernel_available() {
        Ok(()) => true,
        Err(why) => {
            eprintln!("==================================================================");
            eprintln!(
                "SKIPPED: interpreter-vs-kernel helper tests: the kernel cannot be used: {why}"
            );
            eprintln!("==================================================================");
            false
        }
    }
}

fn map(name: &str, t: u32, key: u32, value: u32, max: u32, flags: u32) -> MapDef {
    MapDef::plain(name, t, key, value, max, flags)
}

/// Assembles `text`; the n-th `lddw` whose immediate is `0x7e5700nn` becomes a reference
/// to map `nn`.
fn prog(name: &str, text: &str) -> LinkedProgram {
    let mut insns: Vec<RawInsn> =
        bpfkit_asm::assemble(text).unwrap_or_else(|e| panic!("{name}: {e}\n{text}"));
    for i in 0..insns.len() {
        if insns[i].code == opcode::LDDW && (insns[i].imm as u32) >> 8 == 0x7e5700 {
            insns[i].src = opcode::BPF_PSEUDO_MAP_IDX;
            insns[i].imm &= 0xff;
            insns[i + 1].imm = 0;
        }
    }
    LinkedProgram {
        name: name.into(),
        section: "xdp".into(),
        prog_type: 6,
        expected_attach_type: None,
        prog_flags: 0,
        insns,
        origins: Vec::new(),
    }
}

struct Case {
    name: String,
    obj: LinkedObject,
    packets: Vec<Vec<u8>>,
    setup: Vec<(usize, Vec<u8>, Vec<u8>)>,
}

fn case(name: &str, text: &str, maps: Vec<MapDef>, packets: Vec<Vec<u8>>) -> Case {
    let obj = LinkedObject {
        programs: vec![prog(name, text)],
        maps,
        license: "GPL".into(),
        kernel_version: None,
    };
    Case {
        name: name.into(),
        obj,
        packets,
        setup: Vec::new(),
    }
}

fn pkt(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + 3) as u8).collect()
}

fn current_pid_tgid() -> u64 {
    // SAFETY: gettid has no preconditions and cannot fail.
    let tid = unsafe { libc::syscall(libc::SYS_gettid) } as u64;
    ((std::process::id() as u64) << 32) | tid
}

fn current_comm() -> String {
    std::fs::read_to_string("/proc/thread-self/comm")
        .unwrap_or_default()
        .trim_end()
        .to_string()
}

/// Runs every case on both engines; returns the differences.
fn compare(cases: &[Case]) -> Vec<String> {
    let ncpus = bpfkit_loader::map::possible_cpus().unwrap_or(1) as u32;
    let mut diffs = Vec::new();
    for c in cases {
        if !bpfkit_loader::object_or_skip(
            "helper_edge_cases_agree_with_the_kernel",
            &c.name,
            &c.obj,
        ) {
            continue;
        }
        let mut k = match KernelEngine::new(&c.obj) {
            Ok(k) => k,
            Err(e) => {
                diffs.push(format!(
                    "{}: the kernel refused the test program: {e}",
                    c.name
                ));
                continue;
            }
        };
        // BPF_PROG_TEST_RUN runs in the calling thread: that is the kernel's current task.
        let config = Config {
            ncpus,
            current_pid_tgid: current_pid_tgid(),
            current_comm: current_comm(),
            ..Config::default()
        };
        let mut v = Interpreter::new(&c.obj, config).expect("interpreter");
        for (m, key, value) in &c.setup {
            k.map_update(*m, key, value, 0).expect("kernel map setup");
            v.map_update(*m, key, value, 0)
                .expect("interpreter map setup");
        }
        for p in &c.packets {
            let input = XdpInput {
                packet: p,
                ingress_ifindex: 1,
                ..XdpInput::default()
            };
            let ko = k.run_xdp(0, &input);
            let vo = v.run_xdp(0, &input);
            match (ko, vo) {
                (Ok(ko), Ok(vo)) => {
                    if ko.retval as u32 != vo.retval as u32 {
                        diffs.push(format!(
                            "{} ({}-byte packet): retval kernel {:#x} interpreter {:#x}",
                            c.name,
                            p.len(),
                            ko.retval as u32,
                            vo.retval as u32
                        ));
                    }
                    if ko.packet != vo.packet {
                        diffs.push(format!(
                            "{} ({}-byte packet): output differs (kernel {} bytes, interpreter {} bytes)",
                            c.name,
                            p.len(),
                            ko.packet.len(),
                            vo.packet.len()
                        ));
                    }
                }
                (Err(_), Err(_)) => {}
                (ko, vo) => diffs.push(format!(
                    "{} ({}-byte packet): kernel {:?} interpreter {:?}",
                    c.name,
                    p.len(),
                    ko.map(|o| o.retval).map_err(|e| e.to_string()),
                    vo.map(|o| o.retval).map_err(|e| e.to_string())
                )),
            }
        }
        for (i, m) in c.obj.maps.iter().enumerate() {
            // Not enumerable through the kernel engine (it reads maps with GET_NEXT_KEY);
            // queue and stack behaviour shows in the return values.
            if matches!(
                m.map_type,
                mt::PROG_ARRAY | mt::RINGBUF | mt::PERF_EVENT_ARRAY | mt::QUEUE | mt::STACK
            ) {
                continue;
            }
            let ke = k.map_entries(i).expect("kernel map");
            let ve = v.map_entries(i).expect("interpreter map");
            if ke != ve {
                diffs.push(format!(
                    "{}: map {} kernel {ke:?} interpreter {ve:?}",
                    c.name, m.name
                ));
            }
        }
    }
    diffs
}

fn adjust_cases() -> Vec<Case> {
    let sizes = vec![pkt(14), pkt(64), pkt(1500), pkt(3520), pkt(4000)];
    let mut cases = Vec::new();
    for off in [-300, -217, -216, -100, -1, 0, 1, 50, 51, 1486, 3506] {
        let t = format!("mov %r2, {off}\ncall 44\nexit\n");
        cases.push(case(
            &format!("adjust_head {off}"),
            &t,
            vec![],
            sizes.clone(),
        ));
    }
    for off in [
        -4000, -3507, -3506, -1487, -51, -50, -1, 0, 1, 100, 576, 3456, 3457, 4096, 4097,
    ] {
        let t = format!("mov %r2, {off}\ncall 65\nexit\n");
        cases.push(case(
            &format!("adjust_tail {off}"),
            &t,
            vec![],
            sizes.clone(),
        ));
    }
    for off in [-256, -220, -216, -212, -40, -33, -32, -6, -4, -1, 0, 4] {
        let t = format!("mov %r2, {off}\ncall 54\nexit\n");
        cases.push(case(
            &format!("adjust_meta {off}"),
            &t,
            vec![],
            sizes.clone(),
        ));
        let t = format!(
            "mov %r6, %r1\nmov %r2, -32\ncall 54\nmov %r1, %r6\nmov %r2, {off}\ncall 44\nexit\n"
        );
        cases.push(case(
            &format!("adjust_meta -32 then head {off}"),
            &t,
            vec![],
            sizes.clone(),
        ));
    }
    cases
}

fn csum_cases() -> Vec<Case> {
    let mut cases = Vec::new();
    let consts = [
        [
            0x1234_5678_9abc_def0u64,
            0x0fed_cba9_8765_4321,
            0xffff_ffff_ffff_ffff,
            0x0000_0001_0000_ffff,
        ],
        [0, 0, 0, 0],
        [
            0xffff_0000_ffff_0000,
            0x0001_0001_0001_0001,
            0x8000_0000_0000_0001,
            0x7fff_ffff_ffff_fffe,
        ],
    ];
    for (ci, c) in consts.iter().enumerate() {
        for (from, to) in [
            (0, 4),
            (4, 0),
            (0, 0),
            (8, 16),
            (16, 32),
            (4, 12),
            (3, 4),
            (16, 500),
        ] {
            for seed in [0u32, 0xffff, 0xdead_beef] {
                let t = format!(
                    "lddw %r1, {:#x}\nstxdw [%r10-8], %r1\nlddw %r1, {:#x}\nstxdw [%r10-16], %r1\n\
                     lddw %r1, {:#x}\nstxdw [%r10-24], %r1\nlddw %r1, {:#x}\nstxdw [%r10-32], %r1\n\
                     mov %r1, %r10\nadd %r1, -16\nmov %r2, {from}\nmov %r3, %r10\nadd %r3, -32\nmov %r4, {to}\n\
                     lddw %r5, {seed:#x}\ncall 28\nexit\n",
                    c[0], c[1], c[2], c[3]
                );
                if to > 32 {
                    // Sizes the verifier would reject for the stack buffer: keep only the
                    // size check of the helper itself (from + to > 512 → -EINVAL).
                    continue;
                }
                cases.push(case(
                    &format!("csum_diff consts {ci} from {from} to {to} seed {seed:#x}"),
                    &t,
                    vec![],
                    vec![pkt(64)],
                ));
            }
        }
    }
    cases
}

fn mtu_cases() -> Vec<Case> {
    let mut cases = Vec::new();
    for ifindex in [0, 1, 4242] {
        for mtu in [0u32, 1500, 65536, 70000] {
            for diff in [-100, 0, 1, 65000] {
                let t = format!(
                    "mov %r6, %r1\nstw [%r10-4], {mtu}\nmov %r1, %r6\nmov %r2, {ifindex}\nmov %r3, %r10\nadd %r3, -4\n\
                     mov %r4, {diff}\nmov %r5, 0\ncall 163\nldxw %r1, [%r10-4]\nlsh %r1, 8\nand %r0, 0xff\nor %r0, %r1\nexit\n"
                );
                cases.push(case(
                    &format!("check_mtu if {ifindex} mtu {mtu} diff {diff}"),
                    &t,
                    vec![],
                    vec![pkt(64), pkt(1500)],
                ));
            }
        }
    }
    let t = "mov %r6, %r1\nstw [%r10-4], 0\nmov %r1, %r6\nmov %r2, 0\nmov %r3, %r10\nadd %r3, -4\nmov %r4, 0\nmov %r5, 1\ncall 163\nexit\n";
    cases.push(case("check_mtu flags 1", t, vec![], vec![pkt(64)]));
    cases
}

fn bytes_cases() -> Vec<Case> {
    let mut cases = Vec::new();
    let sizes = vec![pkt(64), pkt(3520), pkt(4000), pkt(9000)];
    for off in [
        0u32, 56, 57, 3512, 3516, 3520, 3990, 3992, 3993, 8992, 65535, 70000,
    ] {
        let t = format!(
            "mov %r2, {off}\nmov %r3, %r10\nadd %r3, -16\nmov %r4, 8\ncall 189\njne %r0, 0, done\n\
             ldxdw %r1, [%r10-16]\nmov %r0, %r1\nrsh %r1, 32\nxor %r0, %r1\ndone:\nexit\n"
        );
        cases.push(case(
            &format!("xdp_load_bytes {off}"),
            &t,
            vec![],
            sizes.clone(),
        ));
        let t = format!(
            "lddw %r2, 0x1122334455667788\nstxdw [%r10-16], %r2\nmov %r2, {off}\nmov %r3, %r10\nadd %r3, -16\n\
             mov %r4, 8\ncall 190\nexit\n"
        );
        cases.push(case(
            &format!("xdp_store_bytes {off}"),
            &t,
            vec![],
            sizes.clone(),
        ));
    }
    let t = "call 188\nexit\n";
    cases.push(case("xdp_get_buff_len", t, vec![], sizes.clone()));
    cases
}

fn misc_cases() -> Vec<Case> {
    let mut cases = Vec::new();
    for flags in [0, 1, 8] {
        let t = format!("mov %r1, 5\nmov %r2, {flags}\ncall 23\nexit\n");
        cases.push(case(
            &format!("redirect flags {flags}"),
            &t,
            vec![],
            vec![pkt(64)],
        ));
    }
    for (slot, flags) in [
        (0, 0),
        (1, 0),
        (1, 2),
        (1, 3),
        (1, 4),
        (0, 8),
        (0, 16),
        (1, 24),
        (9, 1),
    ] {
        let t = format!("lddw %r1, 0x7e570000\nmov %r2, {slot}\nmov %r3, {flags}\ncall 51\nexit\n");
        let mut c = case(
            &format!("redirect_map devmap slot {slot} flags {flags}"),
            &t,
            vec![map("tx", mt::DEVMAP, 4, 4, 4, 0)],
            vec![pkt(64)],
        );
        c.setup
            .push((0, 0u32.to_le_bytes().to_vec(), 1u32.to_le_bytes().to_vec()));
        cases.push(c);
    }
    // Perf event output with no perf event open: -ENOENT; bad flags: -EINVAL.
    for flags in [
        "0xffffffff",
        "0",
        "0x100000000",
        "0x4000000000",
        "0x10000000000000",
    ] {
        let t = format!(
            "stdw [%r10-8], 7\nlddw %r2, 0x7e570000\nlddw %r3, {flags}\nmov %r4, %r10\nadd %r4, -8\nmov %r5, 8\ncall 25\nexit\n"
        );
        cases.push(case(
            &format!("perf_event_output flags {flags}"),
            &t,
            vec![map("perf", mt::PERF_EVENT_ARRAY, 4, 4, 2, 0)],
            vec![pkt(64)],
        ));
    }
    // Ring buffer: output, reserve/submit, query of the ring size, bad flags.
    let rb = || vec![map("rb", mt::RINGBUF, 0, 0, 4096, 0)];
    let t = "stdw [%r10-8], 7\nlddw %r1, 0x7e570000\nmov %r2, %r10\nadd %r2, -8\nmov %r3, 8\nmov %r4, 0\ncall 130\nexit\n";
    cases.push(case("ringbuf_output", t, rb(), vec![pkt(64)]));
    let t = "stdw [%r10-8], 7\nlddw %r1, 0x7e570000\nmov %r2, %r10\nadd %r2, -8\nmov %r3, 8\nmov %r4, 4\ncall 130\nexit\n";
    cases.push(case("ringbuf_output bad flags", t, rb(), vec![pkt(64)]));
    let t = "lddw %r1, 0x7e570000\nmov %r2, 1\ncall 134\nexit\n";
    cases.push(case("ringbuf_query ring size", t, rb(), vec![pkt(64)]));
    let t = "lddw %r1, 0x7e570000\nmov %r2, 5000\nmov %r3, 0\ncall 131\njeq %r0, 0, none\nmov %r1, %r0\nmov %r2, 0\ncall 133\nmov %r0, 1\nexit\nnone:\nmov %r0, 2\nexit\n";
    cases.push(case(
        "ringbuf_reserve larger than the ring",
        t,
        rb(),
        vec![pkt(64)],
    ));

    // Hash map update flags from a program; results packed one byte each.
    let hash = || vec![map("h", mt::HASH, 4, 4, 2, 0)];
    let step = |key: u32, flags: u32, shift: u32| {
        format!(
            "stw [%r10-4], {key}\nstw [%r10-8], {key}\nlddw %r1, 0x7e570000\nmov %r2, %r10\nadd %r2, -4\nmov %r3, %r10\nadd %r3, -8\n\
             mov %r4, {flags}\ncall 2\nand %r0, 0xff\nlsh %r0, {shift}\nor %r6, %r0\n"
        )
    };
    let t = format!(
        "mov %r6, 0\n{}{}{}{}mov %r0, %r6\nexit\n",
        step(1, 1, 0),
        step(1, 1, 8),
        step(9, 2, 16),
        step(2, 0, 24)
    );
    cases.push(case(
        "hash update flags",
        &t,
        hash(),
        vec![pkt(64), pkt(64)],
    ));
    let t = format!(
        "mov %r6, 0\n{}{}{}stw [%r10-4], 5\nlddw %r1, 0x7e570000\nmov %r2, %r10\nadd %r2, -4\ncall 3\nand %r0, 0xff\nlsh %r0, 24\nor %r6, %r0\nmov %r0, %r6\nexit\n",
        step(1, 0, 0),
        step(2, 0, 8),
        step(3, 0, 16)
    );
    cases.push(case(
        "hash full and delete missing",
        &t,
        hash(),
        vec![pkt(64)],
    ));
    let t = format!(
        "mov %r6, 0\n{}{}{}mov %r0, %r6\nexit\n",
        step(1, 1, 0),
        step(4, 0, 8),
        step(1, 3, 16)
    );
    cases.push(case(
        "array update flags",
        &t,
        vec![map("a", mt::ARRAY, 4, 4, 4, 0)],
        vec![pkt(64)],
    ));

    // LPM trie: prefixes set from user space, lookups with the packet's IPv4 source.
    let t = "ldxw %r2, [%r1+0]\nldxw %r3, [%r1+4]\nmov %r4, %r2\nadd %r4, 34\njgt %r4, %r3, short\n\
             ldxw %r5, [%r2+26]\nstw [%r10-8], 32\nstxw [%r10-4], %r5\nlddw %r1, 0x7e570000\nmov %r2, %r10\nadd %r2, -8\n\
             call 1\njeq %r0, 0, miss\nldxb %r0, [%r0+0]\nexit\nmiss:\nmov %r0, 200\nexit\nshort:\nmov %r0, 99\nexit\n";
    let mut c = case(
        "lpm lookups",
        t,
        vec![map("lpm", mt::LPM_TRIE, 8, 1, 16, 1)],
        [
            [10, 0, 0, 1],
            [10, 1, 2, 3],
            [10, 1, 9, 9],
            [192, 168, 1, 1],
            [192, 169, 0, 0],
            [0, 0, 0, 0],
            [10, 1, 2, 255],
        ]
        .iter()
        .map(|a| {
            let mut p = pkt(64);
            p[26..30].copy_from_slice(a);
            p
        })
        .collect(),
    );
    for (plen, addr, v) in [
        (8u32, [10, 0, 0, 0], 1u8),
        (16, [10, 1, 0, 0], 2),
        (24, [10, 1, 2, 0], 3),
        (32, [10, 1, 2, 255], 4),
        (15, [192, 168, 0, 0], 5),
    ] {
        let mut key = plen.to_le_bytes().to_vec();
        key.extend_from_slice(&addr);
        c.setup.push((0, key, vec![v]));
    }
    cases.push(c);

    // Tail calls: a program that counts itself and tail-calls itself stops after 33.
    let t = "mov %r6, %r1\nstw [%r10-4], 0\nlddw %r1, 0x7e570000\nmov %r2, %r10\nadd %r2, -4\ncall 1\njeq %r0, 0, out\n\
             mov %r1, 1\nlock add [%r0+0], %r1\nmov %r1, %r6\nlddw %r2, 0x7e570001\nmov %r3, 0\ncall 12\nout:\nmov %r0, 7\nexit\n";
    let mut jmp = map("jmp", mt::PROG_ARRAY, 4, 4, 1, 0);
    jmp.init = MapInit::Programs(vec![(0, "tail_self".into())]);
    cases.push(case(
        "tail_self",
        t,
        vec![map("count", mt::ARRAY, 4, 8, 1, 0), jmp],
        vec![pkt(64), pkt(64)],
    ));

    // LRU hash: inserting past max_entries evicts instead of failing.
    let lru_step = |key: u32| {
        format!(
            "stw [%r10-4], {key}\nstw [%r10-8], {key}\nlddw %r1, 0x7e570000\nmov %r2, %r10\nadd %r2, -4\nmov %r3, %r10\nadd %r3, -8\n\
             mov %r4, 0\ncall 2\nor %r6, %r0\n"
        )
    };
    let t = format!(
        "mov %r6, 0\n{}{}{}{}{}mov %r0, %r6\nexit\n",
        lru_step(1),
        lru_step(2),
        lru_step(3),
        lru_step(4),
        lru_step(5)
    );
    cases.push(case(
        "lru insert past max",
        &t,
        vec![map("l", mt::LRU_HASH, 4, 4, 4, 0)],
        vec![pkt(64)],
    ));

    // Queue and stack: push with and without BPF_EXIST when full, pop and peek.
    for (t_name, mt_) in [("queue", mt::QUEUE), ("stack", mt::STACK)] {
        let push = |v: u32, flags: u32, shift: u32| {
            format!(
                "stw [%r10-4], {v}\nlddw %r1, 0x7e570000\nmov %r2, %r10\nadd %r2, -4\nmov %r3, {flags}\ncall 87\n\
                 and %r0, 0xff\nlsh %r0, {shift}\nor %r6, %r0\n"
            )
        };
        let t = format!(
            "mov %r6, 0\n{}{}{}{}lddw %r1, 0x7e570000\nmov %r2, %r10\nadd %r2, -8\ncall 88\nldxw %r1, [%r10-8]\nlsh %r1, 8\nor %r6, %r1\n\
             lddw %r1, 0x7e570000\nmov %r2, %r10\nadd %r2, -12\ncall 89\nldxw %r1, [%r10-12]\nlsh %r1, 24\nor %r6, %r1\nmov %r0, %r6\nexit\n",
            push(1, 0, 0),
            push(2, 0, 0),
            push(3, 0, 0),
            push(4, 2, 16)
        );
        cases.push(case(
            &format!("{t_name} push pop peek"),
            &t,
            vec![map("q", mt_, 0, 4, 2, 0)],
            vec![pkt(64), pkt(64)],
        ));
    }

    // Per-CPU lookups for a CPU that does not exist give NULL.
    for cpu in [0, 1, 2, 100] {
        let t = format!(
            "stw [%r10-4], 0\nlddw %r1, 0x7e570000\nmov %r2, %r10\nadd %r2, -4\nmov %r3, {cpu}\ncall 195\njeq %r0, 0, null\nmov %r0, 1\nexit\nnull:\nmov %r0, 2\nexit\n"
        );
        cases.push(case(
            &format!("lookup_percpu_elem cpu {cpu}"),
            &t,
            vec![map("pa", mt::PERCPU_ARRAY, 4, 4, 1, 0)],
            vec![pkt(64)],
        ));
    }

    // bpf_strtol / bpf_strtoul: consumed length or errno, and the value written.
    for (text, flags) in [
        ("  -123abc", 0u64),
        ("0x1fz", 0),
        ("0777 ", 0),
        ("0x", 0),
        ("0x", 16),
        ("-", 0),
        ("99999999999999999999", 0),
        ("-9223372036854775808", 0),
        ("9223372036854775808", 0),
        ("18446744073709551615", 0),
        ("+5", 0),
        ("ff", 16),
        ("0xff", 16),
        ("12", 3),
        ("12", 0x20),
        ("\t\n 42", 10),
        ("089", 0),
        (
            "1234567890123456789012345678901234567890123456789012345678901234567890",
            10,
        ),
    ] {
        for helper in [105, 106] {
            let bytes = text.as_bytes();
            let mut padded = bytes.to_vec();
            while padded.len() % 8 != 0 {
                padded.push(b'#');
            }
            let n = padded.len();
            let mut t = String::new();
            for (i, chunk) in padded.chunks(8).enumerate() {
                let v = u64::from_le_bytes(chunk.try_into().unwrap());
                t.push_str(&format!(
                    "lddw %r1, {v:#x}\nstxdw [%r10-{}], %r1\n",
                    n + 8 - i * 8
                ));
            }
            t.push_str(&format!(
                "stdw [%r10-8], 77\nmov %r1, %r10\nadd %r1, -{}\nmov %r2, {}\nlddw %r3, {flags:#x}\nmov %r4, %r10\nadd %r4, -8\n\
                 call {helper}\nand %r0, 0xff\nldxdw %r1, [%r10-8]\nmov %r2, %r1\nrsh %r2, 32\nxor %r1, %r2\nlsh %r1, 8\nor %r0, %r1\nexit\n",
                n + 8,
                bytes.len()
            ));
            cases.push(case(
                &format!("helper {helper} on {text:?} flags {flags:#x}"),
                &t,
                vec![],
                vec![pkt(64)],
            ));
        }
    }

    // Dynptrs over stack memory: create (size, flags), read, write, data.
    // The kernel only takes map values (not the stack) as dynptr memory: r7 = value of
    // map 0 (16 bytes), holding 0x11, 0x22.
    let from_mem = |size: u32, flags: u32| {
        format!(
            "stw [%r10-4], 0\nlddw %r1, 0x7e570000\nmov %r2, %r10\nadd %r2, -4\ncall 1\njne %r0, 0, +2\nmov %r0, 99\nexit\nmov %r7, %r0\n\
             stdw [%r7+0], 0x11\nstdw [%r7+8], 0x22\nmov %r1, %r7\nmov %r2, {size}\nmov %r3, {flags}\n\
             mov %r4, %r10\nadd %r4, -48\ncall 197\nmov %r6, %r0\nand %r6, 0xff\n"
        )
    };
    let mem = || vec![map("mem", mt::ARRAY, 4, 16, 1, 0)];
    for (size, flags) in [(0, 0), (8, 0), (16, 0), (16, 1)] {
        for off in [0, 7, 8, 9, 16] {
            let t = format!(
                "{}stdw [%r10-56], 0\nmov %r1, %r10\nadd %r1, -56\nmov %r2, 8\nmov %r3, %r10\nadd %r3, -48\nmov %r4, {off}\nmov %r5, 0\n\
                 call 201\nand %r0, 0xff\nlsh %r0, 8\nor %r6, %r0\nldxdw %r1, [%r10-56]\nlsh %r1, 16\nor %r6, %r1\nmov %r0, %r6\nexit\n",
                from_mem(size, flags)
            );
            cases.push(case(
                &format!("dynptr_read size {size} flags {flags} off {off}"),
                &t,
                mem(),
                vec![pkt(64)],
            ));
            for wflags in [0, 1] {
                let t = format!(
                    "{}stdw [%r10-56], 0x3344\nmov %r1, %r10\nadd %r1, -48\nmov %r2, {off}\nmov %r3, %r10\nadd %r3, -56\nmov %r4, 8\nmov %r5, {wflags}\n\
                     call 202\nand %r0, 0xff\nlsh %r0, 8\nor %r6, %r0\nldxdw %r1, [%r7+0]\nldxdw %r2, [%r7+8]\nlsh %r2, 4\nxor %r1, %r2\nlsh %r1, 16\nor %r6, %r1\nmov %r0, %r6\nexit\n",
                    from_mem(size, flags)
                );
                cases.push(case(
                    &format!("dynptr_write size {size} flags {flags} off {off} wflags {wflags}"),
                    &t,
                    mem(),
                    vec![pkt(64)],
                ));
            }
            let t = format!(
                "{}mov %r1, %r10\nadd %r1, -48\nmov %r2, {off}\nmov %r3, 8\ncall 203\njeq %r0, 0, null\nldxdw %r0, [%r0+0]\nexit\nnull:\nmov %r0, 2\nexit\n",
                from_mem(size, flags)
            );
            cases.push(case(
                &format!("dynptr_data size {size} flags {flags} off {off}"),
                &t,
                mem(),
                vec![pkt(64)],
            ));
        }
    }
    for (size, flags) in [(8, 0), (16, 1), (5000, 0), (4088, 0), (4089, 0)] {
        let t = format!(
            "lddw %r1, 0x7e570000\nmov %r2, {size}\nmov %r3, {flags}\nmov %r4, %r10\nadd %r4, -48\ncall 198\nmov %r6, %r0\n\
             mov %r1, %r10\nadd %r1, -48\nmov %r2, 0\ncall 199\nmov %r0, %r6\nexit\n"
        );
        cases.push(case(
            &format!("ringbuf_reserve_dynptr size {size} flags {flags}"),
            &t,
            rb(),
            vec![pkt(64)],
        ));
    }

    // The current task: under BPF_PROG_TEST_RUN, the calling thread (root here).
    cases.push(case(
        "get_current_pid_tgid",
        "call 14\nmov %r1, %r0\nrsh %r1, 32\nxor %r0, %r1\nexit\n",
        vec![],
        vec![pkt(64)],
    ));
    cases.push(case(
        "get_current_uid_gid",
        "call 15\nmov %r1, %r0\nrsh %r1, 32\nxor %r0, %r1\nexit\n",
        vec![],
        vec![pkt(64)],
    ));
    for size in [1, 4, 8, 16] {
        let t = format!(
            "stdw [%r10-16], -1\nstdw [%r10-8], -1\nmov %r1, %r10\nadd %r1, -16\nmov %r2, {size}\ncall 16\nmov %r6, %r0\n\
             ldxdw %r1, [%r10-16]\nldxdw %r2, [%r10-8]\nxor %r1, %r2\nmov %r2, %r1\nrsh %r2, 32\nxor %r1, %r2\nlsh %r6, 24\nxor %r1, %r6\nmov %r0, %r1\nexit\n"
        );
        cases.push(case(
            &format!("get_current_comm size {size}"),
            &t,
            vec![],
            vec![pkt(64)],
        ));
    }

    // bpf_trace_printk's return value is the formatted length; bad formats are -EINVAL.
    for fmt in [
        "x=%d y=%x\n",
        "%5d|%-4x|%llu|%%",
        "%08x %+d % d",
        "%c%c",
        "%pK",
        "%q",
        "%lx %llx %lld",
    ] {
        let mut bytes = fmt.as_bytes().to_vec();
        bytes.push(0);
        while bytes.len() % 8 != 0 {
            bytes.push(0);
        }
        let mut t = String::new();
        let n = bytes.len();
        for (i, chunk) in bytes.chunks(8).enumerate() {
            let v = u64::from_le_bytes(chunk.try_into().unwrap());
            t.push_str(&format!(
                "lddw %r1, {v:#x}\nstxdw [%r10-{}], %r1\n",
                n - i * 8
            ));
        }
        t.push_str(&format!(
            "mov %r1, %r10\nadd %r1, -{n}\nmov %r2, {}\nmov %r3, -42\nmov %r4, 0x1234\nlddw %r5, 0xffffffff00000041\ncall 6\nexit\n",
            fmt.len() + 1
        ));
        cases.push(case(
            &format!("trace_printk {fmt:?}"),
            &t,
            vec![],
            vec![pkt(64)],
        ));
    }
    cases
}

#[test]
fn helper_edge_cases_agree_with_the_kernel() {
    if !kernel_or_skip() {
        return;
    }
    let mut cases = adjust_cases();
    cases.extend(csum_cases());
    cases.extend(mtu_cases());
    cases.extend(bytes_cases());
    cases.extend(misc_cases());
    let n = cases.len();
    let diffs = compare(&cases);
    for d in &diffs {
        eprintln!("DIFF {d}");
    }
    eprintln!(
        "{n} helper cases compared against the kernel, {} differences",
        diffs.len()
    );
    assert!(
        diffs.is_empty(),
        "{} differences between the interpreter and the kernel",
        diffs.len()
    );
}
