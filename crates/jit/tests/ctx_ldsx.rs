//! A sign-extending load (`ldsx`) from the XDP context is an invalid context access on
//! every engine, at the load itself (the kernel: `invalid bpf_context access off=0
//! size=4`). Before, its rewrite sign-extended the low half of the `data` pointer, so
//! whether the program faulted later depended on where the packet happened to be mapped.

use bpfkit_jit::Jit;
use bpfkit_object::model::{prog_type, LinkedObject, LinkedProgram};
use bpfkit_vm::{Config, Engine, FaultKind, Interpreter, VmError, XdpInput};

fn object(text: &str) -> LinkedObject {
    LinkedObject {
        programs: vec![LinkedProgram {
            name: "prog".into(),
            section: "xdp".into(),
            prog_type: prog_type::XDP,
            expected_attach_type: None,
            prog_flags: 0,
            origins: Vec::new(),
            insns: bpfkit_asm::assemble(text).unwrap(),
        }],
        maps: Vec::new(),
        license: "GPL".into(),
        kernel_version: None,
    }
}

fn fault(r: Result<bpfkit_vm::XdpOutput, VmError>, what: &str) -> (usize, FaultKind) {
    match r {
        Err(VmError::Fault(f)) => (f.pc, f.kind),
        other => panic!("{what}: expected a fault, got {other:?}"),
    }
}

#[test]
fn ldsx_from_the_context_faults_on_every_engine() {
    let packet = [0u8; 64];
    let input = XdpInput {
        packet: &packet,
        ..Default::default()
    };
    for (load, off, size) in [
        ("ldxsw %r2, [%r1+0]", 0, 4),
        ("ldxsw %r2, [%r1+4]", 4, 4),
        ("ldxsw %r2, [%r1+12]", 12, 4),
        ("ldxsh %r2, [%r1+8]", 8, 2),
        ("ldxsb %r2, [%r1+16]", 16, 1),
    ] {
        // Through r1 directly and through a copy (the JIT's fast mode compiles these two
        // differently).
        for text in [
            format!("mov %r0, 2\n{load}\nexit"),
            format!(
                "mov %r0, 2\nmov %r3, %r1\n{}\nexit",
                load.replace("%r1", "%r3")
            ),
        ] {
            let o = object(&text);
            let pc = text.lines().count() - 2;
            let want = (pc, FaultKind::ContextSx { off, size });
            let mut i = Interpreter::new(&o, Config::default()).unwrap();
            assert_eq!(
                fault(i.run_xdp(0, &input), &format!("interp: {text}")),
                want
            );
            let mut c = Jit::new(&o, Config::default()).unwrap();
            assert_eq!(
                fault(c.run_xdp(0, &input), &format!("checked JIT: {text}")),
                want
            );
            let mut f = Jit::new_fast(&o, Config::default()).unwrap();
            assert_eq!(
                fault(f.run_xdp(0, &input), &format!("fast JIT: {text}")),
                want
            );
            // The plain load of 4 bytes reads the field; of 1 or 2 bytes it faults too.
            let plain = text.replace("ldxs", "ldx");
            let o = object(&plain);
            let a = Interpreter::new(&o, Config::default())
                .unwrap()
                .run_xdp(0, &input);
            let b = Jit::new(&o, Config::default()).unwrap().run_xdp(0, &input);
            let c = Jit::new_fast(&o, Config::default())
                .unwrap()
                .run_xdp(0, &input);
            if size == 4 {
                let a = a.unwrap();
                assert_eq!(a, b.unwrap(), "{plain}");
                assert_eq!(a, c.unwrap(), "{plain}");
            } else {
                let want = (
                    pc,
                    FaultKind::Context {
                        off,
                        size,
                        write: false,
                    },
                );
                assert_eq!(fault(a, &plain), want);
                assert_eq!(fault(b, &plain), want);
                assert_eq!(fault(c, &plain), want, "fast JIT");
            }
        }
    }
}
