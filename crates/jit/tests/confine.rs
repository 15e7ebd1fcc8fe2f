//! Fast mode stays inside the engines' memory whatever the program does (issue 14 item 1).
//!
//! Each case compiles a program in fast mode without any verifier and makes it reach for
//! host memory: absolute addresses of a live Rust allocation, NULL and kernel-looking
//! addresses, pointer arithmetic out of raw memory / stack / map values, the guard areas
//! and the reserved but uncommitted part of the range, wild key and value pointers passed
//! to the map fast paths (inline array lookup, direct hash calls, the dynamic-map path) and
//! to a generic helper, and a sign-extended context load used as a pointer. A case passes
//! when the run ends in a fault, or (where noted) in a value, and the host allocation is
//! unchanged. Every case runs in its own child process (this test binary re-run with
//! `BPFKIT_CONFINE_CASE`), so a signal fails exactly that case instead of the whole test.

use bpfkit_isa::opcode::BPF_PSEUDO_MAP_IDX;
use bpfkit_jit::Jit;
use bpfkit_object::model::map_type as mt;
use bpfkit_object::model::{prog_type, LinkedObject, LinkedProgram, MapDef};
use bpfkit_vm::{Config, Engine, VmError, XdpInput};
use std::process::Command;

const MARKER: u64 = 0x5eed_c0de_5eed_c0de;

fn asm(text: &str) -> Vec<bpfkit_isa::RawInsn> {
    bpfkit_asm::assemble(text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

/// What a case may end with.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Want {
    /// A fault (the access left the engine's memory).
    Fault,
    /// Either a fault or a value (the access stayed inside the engine's memory, or
    /// faulted): only survival and the host marker count.
    Either,
}

/// Host memory the programs aim at.
struct Host {
    cell: Box<[u64; 4]>,
}

impl Host {
    fn new() -> Host {
        Host {
            cell: Box::new([MARKER; 4]),
        }
    }
    fn addr(&self) -> u64 {
        self.cell.as_ptr() as u64
    }
    fn intact(&self) -> bool {
        // Read through a volatile pointer: generated code may have written it.
        // SAFETY: the box is alive and 4 u64s long.
        (0..4).all(|i| unsafe { std::ptr::read_volatile(self.cell.as_ptr().add(i)) } == MARKER)
    }
}

fn check(name: &str, r: Result<u64, VmError>, want: Want, host: &Host) {
    assert!(host.intact(), "{name}: host memory was written");
    match (&r, want) {
        (Err(VmError::Fault(_)), _) => {}
        (Ok(v), Want::Either) => assert_ne!(*v, MARKER, "{name}: read host memory"),
        _ => panic!("{name}: expected a fault, got {r:?}"),
    }
    if let Err(VmError::Fault(f)) = &r {
        println!("{name}: {f}");
    }
}

fn raw(name: &str, text: &str, want: Want, host: &Host) {
    let mut j = Jit::from_insns_fast(asm(text)).unwrap();
    assert_eq!(j.mode(), bpfkit_jit::Mode::Fast);
    let r = j.run_raw(0, &[0u8; 64]).map(|o| o.r0);
    check(name, r, want, host);
}

/// An XDP object: program text whose `lddw %rN, M` (M < 16) name map #M.
fn xdp(name: &str, text: &str, maps: Vec<MapDef>, want: Want, host: &Host) {
    xdp_insns(name, asm(text), maps, want, host)
}

fn xdp_insns(
    name: &str,
    mut insns: Vec<bpfkit_isa::RawInsn>,
    maps: Vec<MapDef>,
    want: Want,
    host: &Host,
) {
    let mut pc = 0;
    while pc < insns.len() {
        if insns[pc].code == bpfkit_isa::opcode::LDDW {
            if insns[pc].imm >= 0 && insns[pc].imm < 16 && insns[pc + 1].imm == 0 {
                insns[pc].src = BPF_PSEUDO_MAP_IDX;
            }
            pc += 2;
        } else {
            pc += 1;
        }
    }
    let obj = LinkedObject {
        programs: vec![LinkedProgram {
            name: "prog".into(),
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
    };
    let mut j = Jit::new_fast(&obj, Config::default()).unwrap();
    let packet = [0u8; 64];
    // Twice: the second run reuses the parked XDP frame.
    for _ in 0..2 {
        let r = j
            .run_xdp(
                0,
                &XdpInput {
                    packet: &packet,
                    ..Default::default()
                },
            )
            .map(|o| o.retval);
        check(name, r, want, host);
    }
}

fn array() -> MapDef {
    MapDef::plain("arr", mt::ARRAY, 4, 8, 4, 0)
}

fn hash() -> MapDef {
    MapDef::plain("h", mt::HASH, 4, 8, 16, 0)
}

const CASES: &[&str] = &[
    "load_host",
    "store_host",
    "atomic_host",
    "xchg_host",
    "fetch_or_host",
    "load_acquire_host",
    "store_release_host",
    "load_acquire_8_host",
    "load_null",
    "load_kernel_address",
    "raw_memory_plus_2_40",
    "stack_pointer_to_host",
    "stack_far_below",
    "r10_large_offsets",
    "lddw_into_r10",
    "pad_before",
    "guard_before",
    "group_below_the_range",
    "group_above_the_range",
    "reserved_after",
    "last_committed_bytes",
    "map_value_plus_2_32",
    "map_value_to_host",
    "lookup_key_host_hash",
    "lookup_key_host_array",
    "update_value_host",
    "delete_key_host",
    "dynamic_map_key_host",
    "helper_arg_host",
    "ctx_ldsx_as_pointer",
    "ctx_store_then_load",
    "global_value_far_offsets",
    "global_value_wild_lddw_offset",
    "checked_register_then_moved",
    "checked_register_in_a_loop",
    "counted_loop_wild_base",
    "counted_loop_base_past_raw_memory",
    "counted_loop_wide_span",
    "ctx_pair_host_base",
    "ctx_pair_base_past_the_context",
];

fn run_case(case: &str) {
    let host = Host::new();
    let h = host.addr();
    let base = bpfkit_vm::arena::base();
    let reserved = bpfkit_vm::arena::reserved() as u64;
    use Want::*;
    match case {
        "load_host" => raw(case, &format!("lddw %r1, {h:#x}\nldxdw %r0, [%r1+0]\nexit"), Fault, &host),
        "store_host" => raw(
            case,
            &format!("lddw %r1, {h:#x}\nstdw [%r1+8], 7\nmov %r0, 0\nexit"),
            Fault,
            &host,
        ),
        "atomic_host" => raw(
            case,
            &format!("lddw %r1, {h:#x}\nmov %r2, 1\nlock add [%r1+0], %r2\nmov %r0, 0\nexit"),
            Fault,
            &host,
        ),
        "xchg_host" => raw(
            case,
            &format!("lddw %r1, {h:#x}\nmov %r2, 1\nlock xchg [%r1+0], %r2\nmov %r0, %r2\nexit"),
            Fault,
            &host,
        ),
        "fetch_or_host" => raw(
            case,
            &format!("lddw %r1, {h:#x}\nmov %r2, 1\nlock fetch or [%r1+0], %r2\nmov %r0, %r2\nexit"),
            Fault,
            &host,
        ),
        "load_acquire_host" => raw(
            case,
            &format!("r1 = {h:#x} ll\nr0 = load_acquire((u64 *)(r1 + 0x0))\nexit"),
            Fault,
            &host,
        ),
        "load_acquire_8_host" => raw(
            case,
            &format!("r1 = {h:#x} ll\nw0 = load_acquire((u8 *)(r1 + 0x10))\nexit"),
            Fault,
            &host,
        ),
        "store_release_host" => raw(
            case,
            &format!("r1 = {h:#x} ll\nr2 = 7\nstore_release((u64 *)(r1 + 0x8), r2)\nr0 = 0\nexit"),
            Fault,
            &host,
        ),
        "load_null" => raw(case, "mov %r1, 0\nldxb %r0, [%r1+0]\nexit", Fault, &host),
        "load_kernel_address" => raw(
            case,
            "lddw %r1, 0xffff888000001000\nldxdw %r0, [%r1+0]\nexit",
            Fault,
            &host,
        ),
        "raw_memory_plus_2_40" => raw(
            case,
            "mov %r2, 1\nlsh %r2, 40\nadd %r1, %r2\nstxdw [%r1+0], %r2\nldxdw %r0, [%r1+0]\nexit",
            Fault,
            &host,
        ),
        // r3 = r10 + (host - r10): pointer arithmetic from the stack to the host cell.
        "stack_pointer_to_host" => raw(
            case,
            &format!(
                "mov %r3, %r10\nlddw %r2, {h:#x}\nsub %r2, %r3\nadd %r3, %r2\nstdw [%r3+0], 1\nldxdw %r0, [%r3+0]\nexit"
            ),
            Fault,
            &host,
        ),
        "stack_far_below" => raw(
            case,
            "mov %r2, %r10\nadd %r2, -1000000\nstdw [%r2+0], 1\nldxdw %r0, [%r2+0]\nexit",
            Either,
            &host,
        ),
        "r10_large_offsets" => raw(
            case,
            "stdw [%r10+32000], 1\nldxdw %r0, [%r10-32768]\nstdw [%r10-4], 1\nexit",
            Either,
            &host,
        ),
        "lddw_into_r10" => raw(
            case,
            &format!("lddw %r10, {h:#x}\nstdw [%r10-8], 1\nmov %r0, 0\nexit"),
            Fault,
            &host,
        ),
        // The pad below the range is read-write and never handed out: in range.
        "pad_before" => raw(
            case,
            &format!("lddw %r1, {:#x}\nstdw [%r1+0], 1\nldxdw %r0, [%r1+0]\nexit", base - 8),
            Either,
            &host,
        ),
        // The guard below the pad is never accessible: a fault, not SIGSEGV.
        "guard_before" => raw(
            case,
            &format!(
                "lddw %r1, {:#x}\nstdw [%r1+0], 1\nexit",
                base - bpfkit_vm::arena::PAD as u64 - 8
            ),
            Fault,
            &host,
        ),
        // A group of accesses through one register is checked at its highest window;
        // its lowest byte, 32 KiB below, must still be safe (the pad).
        "group_below_the_range" => raw(
            case,
            &format!(
                "lddw %r1, {:#x}\nstdw [%r1-32768], 1\nstdw [%r1+32000], 2\nldxdw %r0, [%r1-32768]\nexit",
                base - bpfkit_vm::arena::PAD as u64 / 2 + 8
            ),
            Either,
            &host,
        ),
        // ... and a group whose highest window is outside faults before any access.
        "group_above_the_range" => raw(
            case,
            &format!(
                "lddw %r1, {:#x}\nstdw [%r1-32768], 1\nstdw [%r1+32000], 2\nexit",
                base + reserved - 32000
            ),
            Fault,
            &host,
        ),
        // The end of the reservation is never committed (PROT_NONE): a fault, not SIGSEGV.
        "reserved_after" => raw(
            case,
            &format!("lddw %r1, {:#x}\nldxdw %r0, [%r1+0]\nexit", base + reserved - 8),
            Fault,
            &host,
        ),
        // The last offset the comparison allows: 8 bytes, all committed.
        "last_committed_bytes" => {
            // Something allocated first, so that the range has committed memory.
            let _b = bpfkit_vm::memory::Buf::new(64);
            let lim = bpfkit_vm::arena::limit();
            assert!(lim > 0);
            raw(
                case,
                &format!("lddw %r1, {:#x}\nldxdw %r0, [%r1+0]\nstxdw [%r1+0], %r0\nexit", base + lim - 1),
                Either,
                &host,
            )
        }
        "map_value_plus_2_32" => xdp(
            case,
            "stw [%r10-4], 0\nmov %r2, %r10\nadd %r2, -4\nlddw %r1, 0\ncall 1\njeq %r0, 0, +5\nmov %r2, 1\nlsh %r2, 32\nadd %r0, %r2\nstdw [%r0+0], 1\nldxdw %r0, [%r0+0]\nexit",
            vec![array()],
            Either,
            &host,
        ),
        "map_value_to_host" => xdp(
            case,
            &format!(
                "stw [%r10-4], 0\nmov %r2, %r10\nadd %r2, -4\nlddw %r1, 0\ncall 1\njeq %r0, 0, +5\nlddw %r2, {h:#x}\nsub %r2, %r0\nadd %r0, %r2\nstdw [%r0+0], 1\nexit"
            ),
            vec![array()],
            Fault,
            &host,
        ),
        "lookup_key_host_hash" => xdp(
            case,
            &format!("lddw %r1, 0\nlddw %r2, {h:#x}\ncall 1\nmov %r0, 2\nexit"),
            vec![hash()],
            Fault,
            &host,
        ),
        "lookup_key_host_array" => xdp(
            case,
            &format!("lddw %r1, 0\nlddw %r2, {h:#x}\ncall 1\nmov %r0, 2\nexit"),
            vec![array()],
            Fault,
            &host,
        ),
        "update_value_host" => xdp(
            case,
            &format!(
                "stw [%r10-4], 1\nmov %r2, %r10\nadd %r2, -4\nlddw %r1, 0\nlddw %r3, {h:#x}\nmov %r4, 0\ncall 2\nmov %r0, 2\nexit"
            ),
            vec![hash()],
            Fault,
            &host,
        ),
        "delete_key_host" => xdp(
            case,
            &format!("lddw %r1, 0\nlddw %r2, {h:#x}\ncall 3\nmov %r0, 2\nexit"),
            vec![hash()],
            Fault,
            &host,
        ),
        // `ja +0` makes the map in r1 unknown to the compiler: the dynamic map path.
        "dynamic_map_key_host" => xdp(
            case,
            &format!("lddw %r1, 0\nja +0\nlddw %r2, {h:#x}\ncall 1\nmov %r0, 2\nexit"),
            vec![hash()],
            Fault,
            &host,
        ),
        // bpf_csum_diff(from = host, 8, NULL, 0, 0).
        "helper_arg_host" => xdp(
            case,
            &format!("lddw %r1, {h:#x}\nmov %r2, 8\nmov %r3, 0\nmov %r4, 0\nmov %r5, 0\ncall 28\nexit"),
            vec![],
            Fault,
            &host,
        ),
        // The reproducer: `r2 = *(s32 *)(r1 + 0)` (data, truncated and
        // sign-extended) used as the packet pointer.
        "ctx_ldsx_as_pointer" => xdp(
            case,
            "ldxsw %r2, [%r1+0]\nldxb %r0, [%r2+0]\nstb [%r2+1], 0\nexit",
            vec![],
            Fault,
            &host,
        ),
        "ctx_store_then_load" => xdp(
            case,
            &format!("lddw %r2, {h:#x}\nstxdw [%r1+0], %r2\nldxw %r3, [%r1+0]\nldxdw %r0, [%r3+0]\nexit"),
            vec![],
            Either,
            &host,
        ),
        // A register loaded with a global-data value's address needs no compare for any
        // 16-bit offset: the bytes around every buffer are the range's pad and slack.
        "global_value_far_offsets" => {
            let mut insns = asm("lddw %r1, 0\nstdw [%r1+32000], 1\nstdw [%r1-32768], 1\nldxdw %r0, [%r1+32760]\nexit");
            insns[0].src = bpfkit_isa::opcode::BPF_PSEUDO_MAP_IDX_VALUE;
            insns[1].imm = 4;
            xdp_insns(case, insns, vec![array()], Either, &host)
        }
        // ... but not when the lddw's offset points far outside the value.
        "global_value_wild_lddw_offset" => {
            let mut insns = asm("lddw %r1, 0\nstdw [%r1+0], 1\nldxdw %r0, [%r1+0]\nexit");
            insns[0].src = bpfkit_isa::opcode::BPF_PSEUDO_MAP_IDX_VALUE;
            insns[1].imm = 0x7fff_fff0;
            xdp_insns(case, insns, vec![array()], Fault, &host)
        }
        // An access through a register already checked at this offset needs no second
        // comparison, but only until the register is written ...
        "checked_register_then_moved" => raw(
            case,
            "ldxdw %r0, [%r1+0]\nmov %r3, 1\nlsh %r3, 44\nadd %r1, %r3\nldxdw %r0, [%r1+0]\nstdw [%r1+0], 1\nexit",
            Fault,
            &host,
        ),
        // ... or control arrives from elsewhere (a loop moving the pointer 256 MiB a turn).
        "checked_register_in_a_loop" => raw(
            case,
            "mov %r3, 0\nldxb %r0, [%r1+0]\nstb [%r1+0], 1\nadd %r1, 0x10000000\nadd %r3, 1\njlt %r3, 100000, -5\nexit",
            Fault,
            &host,
        ),
        // A counted loop addressing `base + i` (fast mode compares the whole span once
        // before the loop and runs a copy without compares when it holds): a host base
        // fails that compare, and the ordinary loop faults at the first access.
        "counted_loop_wild_base" => raw(
            case,
            &format!("lddw %r1, {h:#x}\nmov %r2, 0\nmov %r0, 0\nmov %r5, %r1\nadd %r5, %r2\nldxb %r3, [%r5+0]\nadd %r0, %r3\nadd %r2, 1\njne %r2, 32, -6\nexit"),
            Fault,
            &host,
        ),
        // Raw memory is 64 bytes; the loop reads 0x8000 past it (inside the range's
        // slack, or a fault), writes nothing.
        "counted_loop_base_past_raw_memory" => raw(
            case,
            "mov %r2, 0\nmov %r0, 0\nmov %r5, %r1\nadd %r5, %r2\nldxb %r3, [%r5+0]\nadd %r0, %r3\nadd %r2, 8\njne %r2, 0x8000, -6\nexit",
            Either,
            &host,
        ),
        // A span wider than one compare may prove (no copy): every access compared.
        // Two adjacent 4-byte loads share one compare with the context's address; a
        // base that is not it takes each load's general path (confined).
        "ctx_pair_host_base" => xdp(
            case,
            &format!("lddw %r1, {h:#x}\nldxw %r2, [%r1+0]\nldxw %r3, [%r1+4]\nmov %r0, %r3\nexit"),
            vec![],
            Fault,
            &host,
        ),
        "ctx_pair_base_past_the_context" => xdp(
            case,
            "add %r1, 16\nldxw %r2, [%r1+0]\nldxw %r3, [%r1+8]\nldxdw %r0, [%r3+0]\nexit",
            vec![],
            Either,
            &host,
        ),
        "counted_loop_wide_span" => raw(
            case,
            "mov %r2, 0\nmov %r0, 0\nmov %r5, %r2\nadd %r5, %r1\nstb [%r5+0], 1\nadd %r2, 0x100\njne %r2, 0x4000000, -5\nexit",
            Fault,
            &host,
        ),
        other => panic!("unknown case {other}"),
    }
    println!("CONFINE-OK {case}");
}

/// The child side: runs the case named by `BPFKIT_CONFINE_CASE` (nothing otherwise).
#[test]
fn confine_child() {
    if let Ok(case) = std::env::var("BPFKIT_CONFINE_CASE") {
        run_case(&case);
    }
}

#[test]
fn fast_mode_never_touches_host_memory() {
    use std::os::unix::process::ExitStatusExt;
    let exe = std::env::current_exe().unwrap();
    let mut failures = Vec::new();
    for case in CASES {
        let out = Command::new(&exe)
            .args([
                "confine_child",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("BPFKIT_CONFINE_CASE", case)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        if let Some(sig) = out.status.signal() {
            failures.push(format!("{case}: killed by signal {sig}"));
        } else if !out.status.success() || !stdout.contains(&format!("CONFINE-OK {case}")) {
            failures.push(format!(
                "{case}: {}\n{stdout}{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
