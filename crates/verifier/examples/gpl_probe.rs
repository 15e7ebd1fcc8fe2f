//! Developer tool: for every helper id XDP may call, asks the running kernel whether it
//! is GPL-only (loads `call N` from a program with a non-GPL license) and prints the
//! first error line the kernel gives for the call with all arguments uninitialised.

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
        let v = kernel::load_xdp_license(&p, &[], "MIT").expect("bpf(2) usable");
        if v.log.contains("program of this type cannot use helper")
            || v.log.contains("invalid func")
        {
            continue;
        }
        let gpl = v.log.contains("GPL-restricted");
        let g = kernel::load_xdp(&p, &[]).expect("bpf(2) usable");
        let err = kernel::error_text(&g.log);
        let last = err.lines().rev().find(|l| !l.is_empty()).unwrap_or("");
        println!(
            "{} {} gpl={} first_error={:?}",
            id,
            bpfkit_verifier::helpers::name(id),
            gpl,
            last
        );
    }
}
