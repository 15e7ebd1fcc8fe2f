//! Developer tool: asks the running kernel which helper ids an XDP program may call
//! (root loader, or with `--caps SET` a loader with only those capabilities, e.g.
//! `--caps bpf,net_admin`). Prints `id name allowed|denied`.

#[path = "../tests/common/btf.rs"]
mod btf;
#[path = "../tests/common/kernel.rs"]
mod kernel;

use bpfkit_isa::RawInsn;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let caps = match args.iter().position(|a| a == "--caps") {
        Some(i) => bpfkit_verifier::Caps::parse(args.get(i + 1).expect("--caps SET"))
            .unwrap_or_else(|e| panic!("{e}")),
        None => bpfkit_verifier::Caps::ROOT,
    };
    bpfkit_loader::caps::with_caps(caps, probe).unwrap_or_else(|e| panic!("{e}"));
}

fn probe() {
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
