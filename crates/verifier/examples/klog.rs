//! Developer tool: load an object's XDP programs into the running kernel and print each
//! one's `verified_insns` (or the kernel's rejection), optionally writing the verifier
//! logs (`cargo run -p bpfkit-verifier --example klog FILE.o [LEVEL OUT_DIR]`).
//! Used to compare bpfkit's processed-instruction counts with the kernel's
//! (`docs/verifier.md`, pruning and precision).
//!
//! As loaders do for such objects: programs in sections libbpf does not recognise are
//! XDP (`--prog-type xdp`), maps declared with `max_entries = 0` get 64 entries, programs
//! of other types are left out (tracing programs need attach targets), and iproute2's
//! `struct bpf_elf_map` maps (Cilium) are created from their parsed definitions,
//! ignoring pinning. A rejected program is reported and left out, and the others are
//! loaded again.

#[path = "common/prepare.rs"]
mod prepare;

fn main() {
    let mut a = std::env::args().skip(1);
    let path = a.next().expect("usage: klog FILE.o [LEVEL OUT_DIR]");
    let level: u32 = a.next().and_then(|x| x.parse().ok()).unwrap_or(0);
    let out = a.next();
    let bytes = std::fs::read(&path).expect("read");
    let name = bpfkit_object::object_name_from_path(std::path::Path::new(&path));
    let mut obj = bpfkit_object::Object::parse_named(&bytes, &name).expect("parse");
    prepare::xdp_only(&mut obj);
    let opts = bpfkit_loader::LoadOptions {
        log_level: level,
        ..Default::default()
    };
    loop {
        if obj.programs.is_empty() {
            return;
        }
        match bpfkit_loader::LoadedObject::load(&obj, &opts) {
            Ok(lo) => {
                for p in &lo.programs {
                    let info = p.program.info().ok();
                    println!(
                        "{}\taccepted\t{}",
                        p.linked.name,
                        info.map(|i| i.verified_insns).unwrap_or(0)
                    );
                    if let Some(dir) = &out {
                        let f = std::path::Path::new(dir).join(format!("{}.log", p.linked.name));
                        std::fs::write(&f, &p.program.log).expect("write log");
                    }
                }
                return;
            }
            Err(bpfkit_loader::Error::Rejected { prog, log, source }) => {
                let processed = log
                    .lines()
                    .rev()
                    .find_map(|l| {
                        l.strip_prefix("processed ")
                            .and_then(|r| r.split(' ').next())
                            .map(str::to_string)
                    })
                    .unwrap_or_default();
                let msg = log
                    .lines()
                    .rev()
                    .find(|l| !l.starts_with("processed ") && !l.trim().is_empty())
                    .unwrap_or("")
                    .to_string();
                println!("{prog}\trejected\t{processed}\t{source}: {msg}");
                if let Some(dir) = &out {
                    let f = std::path::Path::new(dir).join(format!("{prog}.log"));
                    std::fs::write(&f, &log).expect("write log");
                }
                obj.programs.retain(|p| p.name != prog);
            }
            Err(e) => {
                println!("-\terror\t\t{e}");
                return;
            }
        }
    }
}
