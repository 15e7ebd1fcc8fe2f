//! Bad arguments to the timer, user ring buffer and task helpers stop the run with an
//! error naming the problem (what the verifier would have rejected), never a panic or a
//! huge allocation; and the order of the dynptr helpers' argument checks.

use bpfkit_isa::{opcode, RawInsn};
use bpfkit_object::model::{map_type as mt, MapDef};
use bpfkit_vm::{Config, Engine, Interpreter, Program, XdpInput};

fn asm(text: &str) -> Vec<RawInsn> {
    bpfkit_asm::assemble(text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

fn map(t: u32, key: u32, value: u32, max: u32) -> MapDef {
    MapDef::plain("m", t, key, value, max, 0)
}

/// Runs `text` (every `lddw` becomes a reference to map 0) and returns the error text.
fn fails(text: &str, maps: &[MapDef]) -> String {
    let mut insns = asm(text);
    for x in insns.iter_mut().filter(|x| x.code == opcode::LDDW) {
        x.src = opcode::BPF_PSEUDO_MAP_IDX;
        x.imm = 0;
    }
    let prog = Program {
        name: "p".into(),
        insns,
        origins: Vec::new(),
        prog_type: 6,
        expected_attach_type: None,
    };
    let mut vm = Interpreter::with_programs(vec![prog], maps, Config::default()).expect("vm");
    match vm.run_xdp(
        0,
        &XdpInput {
            packet: &[0; 64],
            ..Default::default()
        },
    ) {
        Ok(o) => panic!("ran: r0 = {:#x}\n{text}", o.retval),
        Err(e) => e.to_string(),
    }
}

#[test]
fn timer_on_the_stack_is_refused() {
    let e = fails(
        "mov %r1, %r10\nadd %r1, -16\nlddw %r2, 0\nmov %r3, 1\ncall 169\nexit\n",
        &[map(mt::ARRAY, 4, 16, 1)],
    );
    assert!(
        e.contains("bpf_timer_init") && e.contains("not a struct bpf_timer"),
        "{e}"
    );
}

#[test]
fn timer_callback_must_be_a_function() {
    // r1 = &value[0] of the array (lookup of key 0), callback = 1234.
    let e = fails(
        "mov %r2, %r10\nadd %r2, -4\nstw [%r10-4], 0\nlddw %r1, 0\ncall 1\njeq %r0, 0, +3\nmov %r1, %r0\nmov %r2, 1234\ncall 170\nexit\n",
        &[map(mt::ARRAY, 4, 16, 1)],
    );
    assert!(
        e.contains("bpf_timer_set_callback") && e.contains("not a BPF function"),
        "{e}"
    );
}

#[test]
fn timer_in_a_percpu_map_is_refused() {
    let e = fails(
        "mov %r2, %r10\nadd %r2, -4\nstw [%r10-4], 0\nlddw %r1, 0\ncall 1\njeq %r0, 0, +5\nmov %r1, %r0\nlddw %r2, 0\nmov %r3, 1\ncall 169\nexit\n",
        &[map(mt::PERCPU_ARRAY, 4, 16, 1)],
    );
    assert!(e.contains("bpf_timer_init"), "{e}");
}

#[test]
fn user_ringbuf_drain_needs_a_user_ring() {
    let e = fails(
        "lddw %r1, 0\nmov %r2, 0\nmov %r3, 0\nmov %r4, 0\ncall 209\nexit\n",
        &[map(mt::ARRAY, 4, 8, 1)],
    );
    assert!(e.contains("not a USER_RINGBUF"), "{e}");
}

#[test]
fn ns_pid_tgid_with_a_huge_size_faults_without_allocating() {
    let e = fails(
        "mov %r1, 1\nmov %r2, 2\nmov %r3, %r10\nadd %r3, -8\nmov32 %r4, -1\ncall 120\nexit\n",
        &[],
    );
    assert!(e.contains("invalid") && e.contains("write"), "{e}");
}

/// Runs `text` without maps and returns r0.
fn r0(text: &str) -> u64 {
    let prog = Program {
        name: "p".into(),
        insns: asm(text),
        origins: Vec::new(),
        prog_type: 6,
        expected_attach_type: None,
    };
    let mut vm = Interpreter::with_programs(vec![prog], &[], Config::default()).expect("vm");
    vm.run_xdp(
        0,
        &XdpInput {
            packet: &[0; 64],
            ..Default::default()
        },
    )
    .expect("run")
    .retval
}

#[test]
fn dynptr_from_mem_checks_the_size_before_the_flags() {
    // bpf_dynptr_from_mem(r10 - 16, size, flags, r10 - 32): kernel/bpf/helpers.c checks
    // bpf_dynptr_check_size (-E2BIG) first, then flags (-EINVAL); both null the dynptr.
    let call = |size: &str, flags: u32| {
        r0(&format!(
            "mov %r1, %r10\nadd %r1, -16\n{size}\nmov %r3, {flags}\nmov %r4, %r10\nadd %r4, -32\ncall 197\nexit\n"
        )) as i64
    };
    assert_eq!(call("lddw %r2, 0x1000000", 1), -7);
    assert_eq!(call("lddw %r2, 0x1000000", 0), -7);
    assert_eq!(call("mov %r2, 8", 1), -22);
    assert_eq!(call("mov %r2, 8", 0), 0);
}
