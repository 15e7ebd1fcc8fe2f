//! Developer tool: asks the running kernel which helper ids an XDP program may call
//! (root loader). Prints `id name allowed|denied`.

#[path = "../tests/common/btf.rs"]
mod btf;
#[path = "../tests/common/kernel.rs"]
mod kernel;

use bpfkit_isa::RawInsn;

fn main() {
    for id in 1..bpfkit_verifier::helpers::FUNC_MAX_ID {
        let p = [
            RawInsn::new(0x85, 0, 0, 0, id),
            RawInsn::new(0xb7, 0, 0, 0, 2),
            RawInsn::new(0x95, 0, 0, 0, 0),
        ];
        let v = kernel::load_xdp(&p, &[]).expect("bpf(2) usable");
        let denied = v.log.contains("program of this type cannot use helper")
            || v.log.contains("invalid func");
        println!(
            "{} {} {}",
            id,
            bpfkit_verifier::helpers::name(id),
            if denied { "denied" } else { "allowed" }
        );
    }
}
