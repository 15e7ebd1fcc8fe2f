//! Developer tool: assemble a case file's program, run bpfkit's verifier and the
//! kernel's on it, print both. `cargo run -p bpfkit-verifier --example kprobe FILE`.

#[path = "../tests/common/btf.rs"]
mod btf;
#[path = "../tests/common/case.rs"]
mod case;
#[path = "../tests/common/kernel.rs"]
mod kernel;

fn main() {
    let path = std::env::args().nth(1).expect("usage: kprobe CASE_FILE");
    let c = case::Case::load(std::path::Path::new(&path)).unwrap_or_else(|e| panic!("{e}"));
    let prog = c.program();
    let rep = bpfkit_verifier::verify(&prog, &c.maps, &c.options());
    println!("bpfkit: {}", serde_json::to_string_pretty(&rep).unwrap());
    match kernel::load_xdp_ext(&prog.insns, &c.maps, &c.extra()) {
        Ok(v) => println!(
            "kernel: accepted={} errno={}\n{}",
            v.accepted, v.errno, v.log
        ),
        Err(e) => println!("kernel: unavailable: {e}"),
    }
}
