//! Is a usable kernel here? Tests call [`kernel_available`] and skip loudly when not.

use crate::map::{Map, MapSpec};
use crate::prog::{Program, ProgramSpec};
use bpfkit_isa::RawInsn;
use bpfkit_object::model::{map_type, prog_type};
use std::sync::OnceLock;

const CAP_NET_ADMIN: u32 = 12;
const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

/// `Ok(())` when this process can create maps, load an XDP program and run it with
/// `BPF_PROG_TEST_RUN`; otherwise the precise reason (not root, no CAP_BPF, `bpf()`
/// missing or refused). Probed once per process.
pub fn kernel_available() -> Result<(), String> {
    static PROBE: OnceLock<Result<(), String>> = OnceLock::new();
    PROBE.get_or_init(probe).clone()
}

/// Effective capability mask from `/proc/self/status`.
fn effective_caps() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("CapEff:"))?;
    u64::from_str_radix(line["CapEff:".len()..].trim(), 16).ok()
}

fn probe() -> Result<(), String> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    if let Some(caps) = effective_caps() {
        let has = |c: u32| caps & (1u64 << c) != 0;
        if !has(CAP_BPF) && !has(CAP_SYS_ADMIN) {
            return Err(format!(
                "no CAP_BPF or CAP_SYS_ADMIN (euid {euid}, CapEff {caps:#x}): run as root"
            ));
        }
        if !has(CAP_NET_ADMIN) && !has(CAP_SYS_ADMIN) {
            return Err(format!(
                "no CAP_NET_ADMIN (euid {euid}, CapEff {caps:#x}): XDP programs need it; run as root"
            ));
        }
        if !has(CAP_PERFMON) && !has(CAP_SYS_ADMIN) {
            return Err(format!(
                "no CAP_PERFMON (euid {euid}, CapEff {caps:#x}): the verifier would refuse pointer arithmetic; run as root"
            ));
        }
    }
    let map = Map::create(
        &MapSpec {
            name: "bpfkit_probe".into(),
            map_type: map_type::ARRAY,
            key_size: 4,
            value_size: 8,
            max_entries: 1,
            map_flags: 0,
        },
        None,
    )
    .map_err(|e| format!("probe map: {e}"))?;
    map.update(&0u32.to_ne_bytes(), &7u64.to_ne_bytes(), 0)
        .map_err(|e| format!("probe map update: {e}"))?;
    // r0 = 2 (XDP_PASS); exit
    let insns = [
        RawInsn::new(0xb7, 0, 0, 0, 2),
        RawInsn::new(0x95, 0, 0, 0, 0),
    ];
    let prog = Program::load(&ProgramSpec::new("bpfkit_probe", prog_type::XDP, &insns))
        .map_err(|e| format!("probe program: {e}"))?;
    let run = prog
        .test_run_xdp(&[0u8; 64], 0, 0, 1)
        .map_err(|e| format!("probe BPF_PROG_TEST_RUN: {e}"))?;
    if run.retval != 2 || run.packet.len() != 64 {
        return Err(format!(
            "probe BPF_PROG_TEST_RUN returned retval {} and {} bytes, expected 2 and 64",
            run.retval,
            run.packet.len()
        ));
    }
    Ok(())
}

/// For tests: returns `true` when the kernel is usable, otherwise prints a loud
/// `SKIPPED: <test>: <reason>` line to stderr and returns `false`.
pub fn kernel_or_skip(test: &str) -> bool {
    match kernel_available() {
        Ok(()) => true,
        Err(reason) => {
            eprintln!("\n*** SKIPPED: {test}: kernel not usable: {reason} ***\n");
            false
        }
    }
}

/// Pins the calling thread to CPU `cpu`. `BPF_PROG_TEST_RUN` runs the program on the
/// calling thread's CPU, so pinning makes per-CPU map values and
/// `bpf_get_smp_processor_id` deterministic.
pub fn pin_current_thread(cpu: usize) -> Result<(), String> {
    // SAFETY: cpu_set_t is plain data; zeroed is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    if cpu >= libc::CPU_SETSIZE as usize {
        return Err(format!("CPU {cpu} is beyond CPU_SETSIZE"));
    }
    // SAFETY: cpu < CPU_SETSIZE, so CPU_SET stays inside `set`.
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: `set` is a valid cpu_set_t of the size passed; pid 0 is the calling thread.
    let r = unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    if r != 0 {
        return Err(format!(
            "sched_setaffinity(CPU {cpu}): {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}
