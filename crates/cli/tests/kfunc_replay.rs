//! Programs calling the XDP dynptr kfuncs replay on every engine with the same result,
//! per packet, as the running kernel (`--engine kernel`) where that kernel runs them:
//! `bpf_dynptr_from_xdp` + `bpf_dynptr_slice` (read the Ethernet type) and
//! `bpf_dynptr_slice_rdwr` (decrement the IPv4 TTL in place).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The per-packet trace (JSONL) of a replay, or the error output when it fails.
fn trace(engine: &str, obj: &Path) -> Result<String, String> {
    let t = common::scratch(&format!(
        "{engine}-{}.jsonl",
        obj.file_stem().unwrap().to_string_lossy()
    ));
    let o = Command::new(env!("CARGO_BIN_EXE_bpfkit"))
        .args(["replay", "--engine", engine, "--trace"])
        .arg(&t)
        .arg(obj)
        .arg(root().join("corpus/pcap/mixed.pcap"))
        .output()
        .unwrap();
    if !o.status.success() {
        return Err(String::from_utf8_lossy(&o.stderr).into_owned());
    }
    let s = std::fs::read_to_string(&t).unwrap();
    let _ = std::fs::remove_file(&t);
    assert!(!s.contains("\"fault\""), "{engine}: faults in the trace");
    Ok(s)
}

#[test]
fn dynptr_kfunc_programs_agree_on_every_engine_and_the_kernel() {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    for name in ["xdp_dynptr_kfunc.o", "xdp_dynptr_rdwr.o"] {
        let obj = data.join(name);
        let reference = trace("interp", &obj).unwrap_or_else(|e| panic!("{name}: interp: {e}"));
        assert_eq!(reference.lines().count(), 300, "{name}");
        for e in ["jit", "jit-checked", "jit-fast"] {
            let t = trace(e, &obj).unwrap_or_else(|err| panic!("{name}: {e}: {err}"));
            assert!(t == reference, "{name}: {e} differs from the interpreter");
        }
        if let Err(why) = bpfkit_loader::probe::kernel_available() {
            eprintln!("SKIPPED: {name}: kernel half: {why}");
            continue;
        }
        match trace("kernel", &obj) {
            Ok(k) => {
                for (i, (a, b)) in reference.lines().zip(k.lines()).enumerate() {
                    assert_eq!(a, b, "{name}: packet {i}: bpfkit vs the kernel");
                }
                assert_eq!(reference.lines().count(), k.lines().count(), "{name}");
            }
            Err(e) if e.contains("is not allowed") || e.contains("not found in kernel") => {
                eprintln!("SKIPPED: {name}: kernel half: this kernel build refuses a kfunc of it to XDP programs: {}", e.lines().next().unwrap_or(""));
            }
            Err(e) => panic!("{name}: kernel engine: {e}"),
        }
    }
}
