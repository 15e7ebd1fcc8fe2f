//! Fast mode calls some helpers through trampolines of their own (`tramp::tr_direct`), and
//! `bpf_xdp_load_bytes` / `bpf_xdp_store_bytes` with the buffer confined to the arena
//! instead of checked against the regions (`bpfkit_vm::fastpath::xdp_load_store`). Both
//! must give the interpreter's results: r0, packet bytes (linear part and fragments),
//! faults.

use bpfkit_isa::opcode::{BPF_PSEUDO_MAP_IDX, LDDW};
use bpfkit_jit::Jit;
use bpfkit_object::model::map_type as mt;
use bpfkit_object::model::{prog_type, LinkedObject, LinkedProgram, MapDef};
use bpfkit_vm::{Config, Engine, Interpreter, XdpInput};

fn object(text: &str) -> LinkedObject {
    object_with_maps(text, Vec::new())
}

/// Every `lddw %rN, M` of `text` names map #M of `maps`.
fn object_with_maps(text: &str, maps: Vec<MapDef>) -> LinkedObject {
    let mut insns = bpfkit_asm::assemble(text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    for i in insns.iter_mut().filter(|i| i.code == LDDW) {
        i.src = BPF_PSEUDO_MAP_IDX;
    }
    LinkedObject {
        programs: vec![LinkedProgram {
            name: "p".into(),
            section: "xdp".into(),
            prog_type: prog_type::XDP,
            expected_attach_type: None,
            prog_flags: 0,
            origins: Vec::new(),
            insns,
        }],
        maps,
        license: "GPL".into(),
        kernel_version: None,
    }
}

/// Runs the program on the interpreter, the checked JIT and the fast JIT (twice each, so
/// the fast JIT's second run starts from the parked frame) over every packet length.
fn same_on_all(text: &str, lens: &[usize]) -> usize {
    same_on_all_obj(&object(text), text, lens)
}

fn same_on_all_obj(obj: &LinkedObject, text: &str, lens: &[usize]) -> usize {
    let obj = obj.clone();
    let config = Config::default();
    let mut interp = Interpreter::new(&obj, config.clone()).unwrap();
    let mut checked = Jit::new(&obj, config.clone()).unwrap();
    // SAFETY: the programs keep their buffers on their own stack; the one that does not
    // passes an address outside the engines' memory, which fast mode confines.
    let mut fast = unsafe { Jit::new_unchecked(&obj, config) }.unwrap();
    let mut ok = 0;
    for &len in lens {
        let packet: Vec<u8> = (0..len).map(|b| (b * 13 + len) as u8).collect();
        let input = XdpInput {
            packet: &packet,
            ..Default::default()
        };
        for _ in 0..2 {
            let a = interp
                .run_xdp(0, &input)
                .map_err(|e| fault_text(&e.to_string()));
            let c = checked
                .run_xdp(0, &input)
                .map_err(|e| fault_text(&e.to_string()));
            let f = fast
                .run_xdp(0, &input)
                .map_err(|e| fault_text(&e.to_string()));
            assert_eq!(a, c, "checked JIT, {len} bytes\n{text}");
            assert_eq!(a, f, "fast JIT, {len} bytes\n{text}");
            for m in 0..obj.maps.len() {
                let x = interp.map_entries(m).unwrap();
                assert_eq!(x, checked.map_entries(m).unwrap(), "map {m}, checked JIT");
                assert_eq!(x, fast.map_entries(m).unwrap(), "map {m}, fast JIT");
            }
            ok += a.is_ok() as usize;
        }
    }
    ok
}

/// A fault's text without the distance to the nearest region, which names each engine's
/// own buffer addresses.
fn fault_text(s: &str) -> String {
    s.split(" (").next().unwrap_or(s).to_string()
}

const LENS: &[usize] = &[60, 1514, 3520, 3521, 3600, 9000];

#[test]
fn load_and_store_bytes_match_the_interpreter_across_fragments() {
    let mut runs = 0;
    for (off, len, off2) in [
        (0u32, 1u32, 20u32),
        (10, 8, 0),
        (14, 40, 3500),
        (3500, 40, 14),
        (3515, 256, 3400),
        (5000, 256, 3510),
        (8744, 256, 0),
        (8745, 256, 0),
        (70000, 4, 0),
    ] {
        // Load `len` bytes at `off` onto the stack, store them back at `off2`; r0 mixes
        // both results and the first loaded byte.
        let text = format!(
            "
            mov %r6, %r1
            mov %r2, {off}
            mov %r3, %r10
            add %r3, -256
            mov %r4, {len}
            call 189
            mov %r8, %r0
            ldxb %r9, [%r10-256]
            mov %r1, %r6
            mov %r2, {off2}
            mov %r3, %r10
            add %r3, -256
            mov %r4, {len}
            call 190
            lsh %r8, 20
            xor %r0, %r8
            lsh %r9, 40
            xor %r0, %r9
            exit"
        );
        runs += same_on_all(&text, LENS);
    }
    assert!(runs > 0, "no run succeeded");
}

#[test]
fn load_bytes_into_memory_outside_the_engines_faults_alike() {
    // A buffer address no region holds (and outside the arena): every engine faults with
    // the interpreter's fault, the fast one through the generic helper.
    let text = "
        mov %r2, 0
        mov %r3, 4096
        mov %r4, 8
        call 189
        exit";
    assert_eq!(same_on_all(text, &[60, 9000]), 0);
}

#[test]
fn packet_adjustments_and_plain_helpers_match_the_interpreter() {
    // head, meta and tail adjustments (valid and refused), then the length, the packet
    // pointers as the program sees them, the clock, the CPU and a redirect.
    let text = "
        mov %r6, %r1
        mov %r2, -8
        call 54
        mov %r7, %r0
        mov %r1, %r6
        mov %r2, 14
        call 44
        lsh %r0, 4
        add %r7, %r0
        mov %r1, %r6
        mov %r2, -4000
        call 65
        lsh %r0, 8
        add %r7, %r0
        mov %r1, %r6
        mov %r2, 20
        call 65
        lsh %r0, 12
        add %r7, %r0
        mov %r1, %r6
        mov %r2, -6
        call 44
        lsh %r0, 16
        add %r7, %r0
        mov %r1, %r6
        call 188
        lsh %r0, 20
        add %r7, %r0
        ldxw %r2, [%r6+0]
        ldxw %r3, [%r6+4]
        ldxw %r4, [%r6+8]
        sub %r3, %r2
        sub %r2, %r4
        lsh %r3, 32
        add %r7, %r3
        lsh %r2, 48
        add %r7, %r2
        call 5
        add %r7, %r0
        call 8
        add %r7, %r0
        mov %r1, 1
        mov %r2, 0
        call 23
        add %r0, %r7
        exit";
    assert_eq!(same_on_all(text, LENS), 2 * LENS.len());
}

#[test]
fn queue_stack_and_bloom_operations_match_the_interpreter() {
    // Three pushes into 2-entry maps (the third refused, or with BPF_EXIST replacing the
    // oldest), a peek, two pops and a pop of the empty map; r0 mixes every result and the
    // values read.
    let ops = |map: u32, flags: u32| {
        format!(
            "
            ldxw %r6, [%r1+0]
            ldxb %r7, [%r6+12]
            mov %r8, %r7
            lsh %r8, 40
            or %r7, %r8
            mov %r9, 0
            stxdw [%r10-16], %r9
            stxdw [%r10-8], %r7
            lddw %r1, {map}
            mov %r2, %r10
            add %r2, -8
            mov %r3, {flags}
            call 87
            add %r9, %r0
            add %r7, 1
            stxdw [%r10-8], %r7
            lddw %r1, {map}
            mov %r2, %r10
            add %r2, -8
            mov %r3, {flags}
            call 87
            lsh %r9, 4
            add %r9, %r0
            add %r7, 1
            stxdw [%r10-8], %r7
            lddw %r1, {map}
            mov %r2, %r10
            add %r2, -8
            mov %r3, {flags}
            call 87
            lsh %r9, 4
            add %r9, %r0
            lddw %r1, {map}
            mov %r2, %r10
            add %r2, -16
            call 89
            lsh %r9, 4
            add %r9, %r0
            ldxdw %r8, [%r10-16]
            lsh %r9, 8
            add %r9, %r8
            lddw %r1, {map}
            mov %r2, %r10
            add %r2, -16
            call 88
            lsh %r9, 4
            add %r9, %r0
            lddw %r1, {map}
            mov %r2, %r10
            add %r2, -16
            call 88
            lsh %r9, 4
            add %r9, %r0
            lddw %r1, {map}
            mov %r2, %r10
            add %r2, -16
            call 88
            lsh %r9, 4
            add %r9, %r0
            ldxdw %r8, [%r10-16]
            lsh %r9, 8
            add %r9, %r8
            mov %r0, %r9
            exit"
        )
    };
    let maps = vec![
        MapDef::plain("q", mt::QUEUE, 0, 8, 2, 0),
        MapDef::plain("s", mt::STACK, 0, 8, 2, 0),
        MapDef::plain("b", mt::BLOOM_FILTER, 0, 8, 4, 0),
    ];
    let mut runs = 0;
    for map in 0..3 {
        for flags in [0u32, 2] {
            let text = ops(map, flags);
            let obj = object_with_maps(&text, maps.clone());
            runs += same_on_all_obj(&obj, &text, &[60, 1514]);
        }
    }
    assert!(runs > 0, "no run succeeded");
}
