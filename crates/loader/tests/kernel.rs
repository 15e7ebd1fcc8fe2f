//! Tests against the running kernel. Each one skips loudly (`SKIPPED:` on stderr) when
//! the kernel is not usable here (not root, no CAP_BPF, no bpf()).

use bpfkit_isa::RawInsn;
use bpfkit_loader::{
    kernel_or_skip, Engine, Error, KernelEngine, Map, MapSpec, Program, ProgramSpec,
};
use bpfkit_object::model::{
    map_type, prog_type, InsnOrigin, LinkedObject, LinkedProgram, MapDef, MapInit, MapOrigin,
};
use bpfkit_vm::engine::XdpInput;

fn i(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> RawInsn {
    RawInsn::new(code, dst, src, off, imm)
}
fn mov(dst: u8, imm: i32) -> RawInsn {
    i(0xb7, dst, 0, 0, imm)
}
fn exit() -> RawInsn {
    i(0x95, 0, 0, 0, 0)
}
/// `lddw dst, map[idx]` in the linked-stream convention (src 5), two slots.
fn ld_map(dst: u8, idx: i32) -> [RawInsn; 2] {
    [i(0x18, dst, 5, 0, idx), i(0, 0, 0, 0, 0)]
}
/// `lddw dst, &map[idx] + off` (src 6).
fn ld_map_value(dst: u8, idx: i32, off: i32) -> [RawInsn; 2] {
    [i(0x18, dst, 6, 0, idx), i(0, 0, 0, 0, off)]
}

fn program(name: &str, insns: Vec<RawInsn>) -> LinkedProgram {
    let origins = (0..insns.len())
        .map(|n| InsnOrigin {
            section: "xdp".into(),
            function: name.into(),
            insn_index: n,
            line: None,
        })
        .collect();
    LinkedProgram {
        name: name.into(),
        section: "xdp".into(),
        prog_type: prog_type::XDP,
        expected_attach_type: None,
        prog_flags: 0,
        insns,
        origins,
    }
}

fn map(name: &str, t: u32, key: u32, value: u32, entries: u32) -> MapDef {
    MapDef::plain(name, t, key, value, entries, 0)
}

#[test]
fn map_commands() {
    if !kernel_or_skip("map_commands") {
        return;
    }
    let spec = MapSpec {
        name: "t_hash".into(),
        map_type: map_type::HASH,
        key_size: 4,
        value_size: 8,
        max_entries: 2,
        map_flags: 0,
    };
    let m = Map::create(&spec, None).unwrap();
    assert_eq!(m.lookup(&1u32.to_ne_bytes()).unwrap(), None);
    m.update(
        &1u32.to_ne_bytes(),
        &11u64.to_ne_bytes(),
        bpfkit_loader::BPF_NOEXIST,
    )
    .unwrap();
    m.update(&2u32.to_ne_bytes(), &22u64.to_ne_bytes(), 0)
        .unwrap();
    // Full: a third key is refused with E2BIG.
    let e = m
        .update(&3u32.to_ne_bytes(), &33u64.to_ne_bytes(), 0)
        .unwrap_err();
    assert_eq!(e.errno(), Some(libc::E2BIG), "{e}");
    // NOEXIST on an existing key: EEXIST, and the message names the map and key.
    let e = m
        .update(
            &1u32.to_ne_bytes(),
            &0u64.to_ne_bytes(),
            bpfkit_loader::BPF_NOEXIST,
        )
        .unwrap_err();
    assert_eq!(e.errno(), Some(libc::EEXIST));
    assert!(
        e.to_string().contains("map `t_hash`, key 01 00 00 00"),
        "{e}"
    );
    let entries = m.entries().unwrap();
    assert_eq!(
        entries,
        vec![
            (1u32.to_ne_bytes().to_vec(), 11u64.to_ne_bytes().to_vec()),
            (2u32.to_ne_bytes().to_vec(), 22u64.to_ne_bytes().to_vec())
        ]
    );
    assert!(m.delete(&1u32.to_ne_bytes()).unwrap());
    assert!(!m.delete(&1u32.to_ne_bytes()).unwrap());
    assert_eq!(m.keys().unwrap(), vec![2u32.to_ne_bytes().to_vec()]);
    // Wrong key size is our error, before the kernel.
    assert!(matches!(m.lookup(&[0u8; 3]), Err(Error::Invalid(_))));
    let info = m.info().unwrap();
    assert_eq!(
        (info.name.as_str(), info.map_type, info.max_entries),
        ("t_hash", map_type::HASH, 2)
    );

    // Frozen maps refuse syscall-side writes.
    let a = Map::create(
        &MapSpec {
            name: "t_frozen".into(),
            map_type: map_type::ARRAY,
            key_size: 4,
            value_size: 4,
            max_entries: 1,
            map_flags: 0,
        },
        None,
    )
    .unwrap();
    a.update(&0u32.to_ne_bytes(), &5u32.to_ne_bytes(), 0)
        .unwrap();
    a.freeze().unwrap();
    let e = a
        .update(&0u32.to_ne_bytes(), &6u32.to_ne_bytes(), 0)
        .unwrap_err();
    assert_eq!(e.errno(), Some(libc::EPERM), "{e}");
    assert_eq!(
        a.lookup(&0u32.to_ne_bytes()).unwrap(),
        Some(5u32.to_ne_bytes().to_vec())
    );
}

#[test]
fn per_cpu_values_cover_every_possible_cpu() {
    if !kernel_or_skip("per_cpu_values_cover_every_possible_cpu") {
        return;
    }
    let cpus = bpfkit_loader::map::possible_cpus().unwrap();
    let m = Map::create(
        &MapSpec {
            name: "t_pcpu".into(),
            map_type: map_type::PERCPU_ARRAY,
            key_size: 4,
            value_size: 4,
            max_entries: 2,
            map_flags: 0,
        },
        None,
    )
    .unwrap();
    assert_eq!(m.value_len(), 8 * cpus);
    let v: Vec<u8> = (0..m.value_len() as u8).collect();
    m.update(&1u32.to_ne_bytes(), &v, 0).unwrap();
    let got = m.lookup(&1u32.to_ne_bytes()).unwrap().unwrap();
    // The kernel copies whole 8-byte chunks per CPU (`bpf_long_memcpy`): even the
    // padding after the 4-byte value comes back as written.
    assert_eq!(got, v);
}

#[test]
fn rejection_carries_errno_and_verifier_log() {
    if !kernel_or_skip("rejection_carries_errno_and_verifier_log") {
        return;
    }
    // exit with r0 never written
    let insns = [exit()];
    let e = Program::load(&ProgramSpec::new("t_bad", prog_type::XDP, &insns)).unwrap_err();
    assert_eq!(e.errno(), Some(libc::EACCES), "{e}");
    let log = e.verifier_log().unwrap();
    assert!(log.contains("R0 !read_ok"), "log: {log}");
    assert!(
        e.to_string().contains("kernel rejected program `t_bad`"),
        "{e}"
    );

    // A requested log is kept on success.
    let ok = [mov(0, 2), exit()];
    let mut spec = ProgramSpec::new("t_logged", prog_type::XDP, &ok);
    spec.log_level = 2;
    let p = Program::load(&spec).unwrap();
    assert!(p.log.contains("processed 2 insns"), "log: {}", p.log);
    let info = p.info().unwrap();
    assert_eq!(
        (info.name.as_str(), info.prog_type, info.verified_insns),
        ("t_logged", prog_type::XDP, 2)
    );
    assert_eq!(p.xlated_insns().unwrap().len(), 2);
}

#[test]
fn xdp_test_run_packet_and_context() {
    if !kernel_or_skip("xdp_test_run_packet_and_context") {
        return;
    }
    // r2 = data; r3 = data_end; if r2 + 2 > r3 goto out; byte[1] = ingress_ifindex;
    // byte[0] += 1; r0 = rx_queue_index + 3; exit
    let insns = vec![
        i(0x61, 2, 1, 0, 0),  // r2 = ctx->data
        i(0x61, 3, 1, 4, 0),  // r3 = ctx->data_end
        i(0x61, 5, 1, 12, 0), // r5 = ctx->ingress_ifindex
        i(0x61, 0, 1, 16, 0), // r0 = ctx->rx_queue_index
        i(0x07, 0, 0, 0, 3),  // r0 += 3
        i(0xbf, 4, 2, 0, 0),  // r4 = r2
        i(0x07, 4, 0, 0, 2),  // r4 += 2
        i(0x2d, 4, 3, 5, 0),  // if r4 > r3 goto +5
        i(0x73, 2, 5, 1, 0),  // *(u8 *)(r2 + 1) = r5
        i(0x71, 5, 2, 0, 0),  // r5 = *(u8 *)(r2 + 0)
        i(0x07, 5, 0, 0, 1),  // r5 += 1
        i(0x73, 2, 5, 0, 0),  // *(u8 *)(r2 + 0) = r5
        i(0x05, 0, 0, 0, 0),  // goto +0
        exit(),
    ];
    let obj = LinkedObject {
        programs: vec![program("t_ctx", insns)],
        maps: vec![],
        license: "GPL".into(),
        kernel_version: None,
    };
    let mut k = KernelEngine::new(&obj).unwrap();
    let mut pkt = [7u8; 14];
    pkt[0] = 9;
    let out = k
        .run_xdp(
            0,
            &XdpInput {
                packet: &pkt,
                ..Default::default()
            },
        )
        .unwrap();
    // ifindex 0 in ctx_in means the kernel's default: the loopback device (ifindex 1).
    assert_eq!(out.retval, 3);
    let mut want = pkt.to_vec();
    want[..2].copy_from_slice(&[10, 1]);
    assert_eq!(out.packet, want);
    // Naming the loopback device explicitly is the same.
    let out = k
        .run_xdp(
            0,
            &XdpInput {
                packet: &pkt,
                ingress_ifindex: 1,
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(out.packet, want);
    // Packets shorter than an Ethernet header are refused by the kernel (EINVAL).
    let e = k
        .run_xdp(
            0,
            &XdpInput {
                packet: &[5],
                ..Default::default()
            },
        )
        .unwrap_err();
    assert_eq!(e.errno(), Some(libc::EINVAL), "{e}");
    // A device that does not exist is the kernel's ENODEV, reported as such.
    let e = k
        .run_xdp(
            0,
            &XdpInput {
                packet: &pkt,
                ingress_ifindex: 999_999,
                ..Default::default()
            },
        )
        .unwrap_err();
    assert_eq!(e.errno(), Some(libc::ENODEV), "{e}");
}

#[test]
fn engine_global_data_and_map_refs() {
    if !kernel_or_skip("engine_global_data_and_map_refs") {
        return;
    }
    let mut rodata = map(".rodata", map_type::ARRAY, 4, 8, 1);
    rodata.origin = MapOrigin::GlobalData;
    rodata.section = ".rodata".into();
    rodata.init = MapInit::Data(vec![1, 2, 3, 4, 40, 0, 0, 0]);
    let mut bss = map(".bss", map_type::ARRAY, 4, 8, 1);
    bss.origin = MapOrigin::GlobalData;
    bss.section = ".bss".into();
    let counts = map("counts", map_type::HASH, 4, 8, 8);
    // r1 = &rodata + 4; r6 = *(u32 *)r1 (40, known to the verifier since .rodata is
    // frozen and read-only); r1 = &bss; *(u64 *)r1 += r6 via r2;
    // key 7 -> counts[7] = r6 with map_update_elem; r0 = 2
    let mut insns = Vec::new();
    insns.extend(ld_map_value(1, 0, 4));
    insns.push(i(0x61, 6, 1, 0, 0));
    insns.extend(ld_map_value(1, 1, 0));
    insns.push(i(0x79, 2, 1, 0, 0));
    insns.push(i(0x0f, 2, 6, 0, 0));
    insns.push(i(0x7b, 1, 2, 0, 0));
    insns.push(i(0x62, 10, 0, -4, 7)); // *(u32 *)(r10 - 4) = 7
    insns.push(i(0x7b, 10, 6, -16, 0)); // *(u64 *)(r10 - 16) = r6
    insns.extend(ld_map(1, 2));
    insns.push(i(0xbf, 2, 10, 0, 0));
    insns.push(i(0x07, 2, 0, 0, -4));
    insns.push(i(0xbf, 3, 10, 0, 0));
    insns.push(i(0x07, 3, 0, 0, -16));
    insns.push(mov(4, 0));
    insns.push(i(0x85, 0, 0, 0, 2)); // map_update_elem
    insns.push(mov(0, 2));
    insns.push(exit());
    let obj = LinkedObject {
        programs: vec![program("t_data", insns)],
        maps: vec![rodata, bss, counts],
        license: "GPL".into(),
        kernel_version: None,
    };
    let mut k = KernelEngine::new(&obj).unwrap();
    // .rodata was frozen after its initial value went in.
    let e = k
        .map_update(0, &0u32.to_ne_bytes(), &[0; 8], 0)
        .unwrap_err();
    assert_eq!(e.errno(), Some(libc::EPERM), "{e}");
    for _ in 0..2 {
        let out = k
            .run_xdp(
                0,
                &XdpInput {
                    packet: &[0; 14],
                    ..Default::default()
                },
            )
            .unwrap();
        assert_eq!(out.retval, 2);
    }
    assert_eq!(
        k.map_entries(1).unwrap(),
        vec![(vec![0; 4], 80u64.to_ne_bytes().to_vec())]
    );
    assert_eq!(
        k.map_entries(2).unwrap(),
        vec![(7u32.to_ne_bytes().to_vec(), 40u64.to_ne_bytes().to_vec())]
    );
    assert_eq!(
        k.map_entries(0).unwrap(),
        vec![(vec![0; 4], vec![1, 2, 3, 4, 40, 0, 0, 0])]
    );
    // Flags libbpf gives global data.
    let info = k.map(0).unwrap().info().unwrap();
    assert_eq!(
        info.map_flags,
        bpfkit_loader::map::BPF_F_MMAPABLE | bpfkit_loader::map::BPF_F_RDONLY_PROG
    );
}

#[test]
fn bad_map_index_is_reported_with_instruction() {
    // No kernel needed up to the map-index check, but the engine creates maps first.
    if !kernel_or_skip("bad_map_index_is_reported_with_instruction") {
        return;
    }
    let mut insns = vec![mov(0, 0)];
    insns.extend(ld_map(1, 3));
    insns.push(exit());
    let obj = LinkedObject {
        programs: vec![program("t_idx", insns)],
        ..Default::default()
    };
    let e = KernelEngine::new(&obj).unwrap_err();
    assert!(
        e.to_string()
            .contains("program `t_idx`, instruction 1: lddw refers to map index 3"),
        "{e}"
    );
}

/// Measures the running kernel's tail-call limit: a program that counts its runs in an
/// ARRAY map and tail-calls itself through a PROG_ARRAY.
#[test]
fn tail_call_limit_of_running_kernel() {
    if !kernel_or_skip("tail_call_limit_of_running_kernel") {
        return;
    }
    let mut insns = vec![
        i(0xbf, 6, 1, 0, 0),   // r6 = r1
        i(0x62, 10, 0, -4, 0), // *(u32 *)(r10 - 4) = 0
        i(0xbf, 2, 10, 0, 0),  // r2 = r10
        i(0x07, 2, 0, 0, -4),  // r2 += -4
    ];
    insns.extend(ld_map(1, 0)); // r1 = counts
    insns.extend([
        i(0x85, 0, 0, 0, 1), // call map_lookup_elem
        i(0x15, 0, 0, 2, 0), // if r0 == 0 goto +2
        mov(1, 1),           // r1 = 1
        i(0xdb, 0, 1, 0, 0), // lock *(u64 *)(r0 + 0) += r1
        i(0xbf, 1, 6, 0, 0), // r1 = r6
    ]);
    insns.extend(ld_map(2, 1)); // r2 = jmp_table
    insns.extend([mov(3, 0), i(0x85, 0, 0, 0, 12), mov(0, 2), exit()]);
    let mut table = map("jmp_table", map_type::PROG_ARRAY, 4, 4, 1);
    table.init = MapInit::Programs(vec![(0, "t_tail".into())]);
    let obj = LinkedObject {
        programs: vec![program("t_tail", insns)],
        maps: vec![map("counts", map_type::ARRAY, 4, 8, 1), table],
        license: "GPL".into(),
        kernel_version: None,
    };
    let mut k = KernelEngine::new(&obj).unwrap();
    let out = k
        .run_xdp(
            0,
            &XdpInput {
                packet: &[0; 14],
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(out.retval, 2);
    let entries = k.map_entries(0).unwrap();
    let runs = u64::from_ne_bytes(entries[0].1[..8].try_into().unwrap());
    let tail_calls = runs - 1;
    eprintln!("running kernel: {runs} runs, MAX_TAIL_CALL_CNT = {tail_calls}");
    // The interpreter's limit must be the running kernel's (33 since Linux 5.17: the
    // first program plus 33 tail calls run).
    assert_eq!(
        tail_calls,
        bpfkit_vm::runtime::MAX_TAIL_CALL_CNT as u64,
        "the running kernel's tail-call limit differs from bpfkit_vm::runtime::MAX_TAIL_CALL_CNT"
    );
    assert_eq!(tail_calls, 33, "kernel tail-call limit changed");
    // The interpreter runs the same object to the same count.
    let mut interp = bpfkit_vm::Interpreter::new(&obj, bpfkit_vm::Config::default()).unwrap();
    let out = interp
        .run_xdp(
            0,
            &XdpInput {
                packet: &[0; 14],
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(out.retval, 2);
    assert_eq!(
        interp.map_entries(0).unwrap(),
        entries,
        "interpreter tail-call count differs from the kernel's"
    );
    // The PROG_ARRAY reads back the program's id.
    let id = k.program(0).unwrap().info().unwrap().id;
    assert_eq!(
        k.map_entries(1).unwrap(),
        vec![(vec![0; 4], id.to_ne_bytes().to_vec())]
    );
}
