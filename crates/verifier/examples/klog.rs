//! Developer tool: load an object into the running kernel with a verifier log of the
//! given level and write each program's log to `OUT_DIR/<program>.log`, printing the
//! `verified_insns` of each (`cargo run -p bpfkit-verifier --example klog FILE.o LEVEL OUT_DIR`).
//! Used to compare bpfkit's pruning with the kernel's (`docs/verifier.md`).

fn main() {
    let mut a = std::env::args().skip(1);
    let path = a.next().expect("usage: klog FILE.o [LEVEL] [OUT_DIR]");
    let level: u32 = a.next().and_then(|x| x.parse().ok()).unwrap_or(2);
    let out = a.next();
    let opts = bpfkit_loader::object_load::LoadOptions {
        log_level: level,
        ..Default::default()
    };
    match bpfkit_loader::object_load::LoadedObject::open(std::path::Path::new(&path), &opts) {
        Ok(lo) => {
            for p in &lo.programs {
                let info = p.program.info().ok();
                println!(
                    "{} verified_insns={}",
                    p.linked.name,
                    info.map(|i| i.verified_insns).unwrap_or(0)
                );
                if let Some(dir) = &out {
                    let f = std::path::Path::new(dir).join(format!("{}.log", p.linked.name));
                    std::fs::write(&f, &p.program.log).expect("write log");
                }
            }
        }
        Err(e) => {
            println!("load failed: {e}");
        }
    }
}
