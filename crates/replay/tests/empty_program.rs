//! A program of 0 instructions: the interpreter faults (it runs past the last
//! instruction); the JIT used to skip every packet as "refused". Every bpfkit engine now
//! reports the same fault.

use bpfkit_replay::engines::{create, EngineKind, EngineSettings, RunError};
use bpfkit_vm::engine::XdpInput;

#[test]
fn zero_instructions_is_the_same_fault_on_every_engine() {
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let bytes = std::fs::read(root.join("corpus/obj/xdp_counter.o")).unwrap();
    let mut obj = bpfkit_object::Object::parse(&bytes)
        .unwrap()
        .link()
        .unwrap();
    obj.programs[0].insns.clear();
    obj.programs[0].origins.clear();
    let packet = std::fs::read(root.join("corpus/packets/00_ipv4_tcp_syn.bin")).unwrap();
    let input = XdpInput {
        packet: &packet,
        ingress_ifindex: 1,
        rx_queue_index: 0,
        time_ns: 0,
        cpu: 0,
    };
    let settings = EngineSettings::default();
    let mut results = Vec::new();
    for kind in [EngineKind::Interp, EngineKind::Jit, EngineKind::JitChecked] {
        let mut e = create(kind, &obj, &settings, 0).unwrap();
        let r = e.run(0, &input).map(|o| o.retval);
        assert!(matches!(r, Err(RunError::Fault(_))), "{kind:?}: {r:?}");
        results.push(r);
    }
    assert!(results.windows(2).all(|w| w[0] == w[1]), "{results:?}");
    // jit-fast refuses the object (the verifier does not accept an empty program).
    assert!(create(EngineKind::JitFast, &obj, &settings, 0).is_err());
}
