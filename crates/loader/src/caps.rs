//! Running kernel calls with a smaller capability set, as a loader that has only those
//! capabilities would (`bpfkit load --caps`, and the tests that compare `bpfkit verify
//! --caps` with the kernel).
//!
//! Linux capabilities belong to each thread: [`with_caps`] runs the closure on a new
//! thread that first lowers its own effective and permitted sets with `capset(2)`, so the
//! rest of the process keeps its capabilities and nothing has to fork. The effective set
//! is what the kernel's `capable()` checks, also for uid 0.

use bpfkit_target::Caps;

const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

fn capget() -> Result<[CapData; 2], String> {
    let mut h = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let mut d = [CapData::default(); 2];
    // SAFETY: `h` and `d` are valid, writable structures of the layout capget(2) expects
    // for version 3 (a header and two data elements); pid 0 is the calling thread.
    let r = unsafe { libc::syscall(libc::SYS_capget, &mut h as *mut CapHeader, d.as_mut_ptr()) };
    if r != 0 {
        return Err(format!("capget: {}", std::io::Error::last_os_error()));
    }
    Ok(d)
}

fn has(d: &[CapData; 2], cap: u32) -> bool {
    d[(cap / 32) as usize].effective & (1 << (cap % 32)) != 0
}

/// The capabilities among those `--caps` knows that the calling thread has in its
/// effective set.
pub fn current() -> Result<Caps, String> {
    let d = capget()?;
    Ok(Caps {
        sys_admin: has(&d, bpfkit_target::caps::CAP_SYS_ADMIN),
        bpf: has(&d, bpfkit_target::caps::CAP_BPF),
        perfmon: has(&d, bpfkit_target::caps::CAP_PERFMON),
        net_admin: has(&d, bpfkit_target::caps::CAP_NET_ADMIN),
        mitigations_off: false,
    })
}

/// Why this process cannot act as a loader with exactly `caps` (it lacks one of them),
/// or `None` when [`with_caps`] can.
pub fn cannot_emulate(caps: Caps) -> Option<String> {
    let d = match capget() {
        Ok(d) => d,
        Err(e) => return Some(e),
    };
    let missing: Vec<String> = caps
        .numbers()
        .into_iter()
        .filter(|&c| !has(&d, c))
        .map(|c| format!("capability {c}"))
        .collect();
    if missing.is_empty() {
        None
    } else {
        Some(format!(
            "this process lacks {} (needed to act as a loader with --caps {caps})",
            missing.join(", ")
        ))
    }
}

fn lower_to(caps: Caps) -> Result<(), String> {
    let mut d = [CapData::default(); 2];
    for c in caps.numbers() {
        d[(c / 32) as usize].effective |= 1 << (c % 32);
    }
    for x in d.iter_mut() {
        x.permitted = x.effective;
    }
    let mut h = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    // SAFETY: `h` and `d` have the layout capset(2) expects for version 3; pid 0 changes
    // only the calling thread, a thread `with_caps` created for this purpose.
    let r = unsafe { libc::syscall(libc::SYS_capset, &mut h as *mut CapHeader, d.as_ptr()) };
    if r != 0 {
        return Err(format!(
            "capset to {caps}: {}",
            std::io::Error::last_os_error()
        ));
    }
    let now = current()?;
    let want = Caps {
        mitigations_off: false,
        ..caps
    };
    if now != want {
        return Err(format!("capset to {caps} left {now}"));
    }
    Ok(())
}

/// Runs `f` on a thread whose capabilities are exactly `caps` (effective and permitted;
/// inheritable empty). Fails, without running `f`, when this process lacks one of
/// them or `capset` refuses.
pub fn with_caps<T: Send>(caps: Caps, f: impl FnOnce() -> T + Send) -> Result<T, String> {
    if let Some(why) = cannot_emulate(caps) {
        return Err(why);
    }
    std::thread::scope(|s| {
        s.spawn(move || {
            lower_to(caps)?;
            Ok(f())
        })
        .join()
        .map_err(|_| "the thread with lowered capabilities panicked".to_string())?
    })
}

/// Why the running kernel's answers for a loader with `caps` cannot be compared with
/// bpfkit's model of 6.18 (`--caps`): the kernel's `mitigations=off` differs from the
/// set's (the Spectre rules are on in one and off in the other) or another release (the
/// rules and their messages changed between releases, e.g. 6.17 turned errors on
/// speculative paths into barriers). `None`: comparable.
pub fn kernel_not_comparable(caps: Caps) -> Option<String> {
    match (mitigations_off(), caps.mitigations_off) {
        (true, false) => {
            return Some(format!(
                "the kernel runs with mitigations=off (its Spectre rules are off) and --caps {caps} models them on"
            ))
        }
        (false, true) => {
            return Some(format!(
                "the kernel runs with mitigations on and --caps {caps} models mitigations=off"
            ))
        }
        _ => {}
    }
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    match bpfkit_target::Version::parse(release.trim()) {
        Some(v) if v == bpfkit_target::MODELLED => None,
        _ => Some(format!(
            "the kernel is {} and --caps models the Spectre rules of {}",
            release.trim(),
            bpfkit_target::MODELLED
        )),
    }
}

/// `cpu_mitigations_off()` of the running kernel: `mitigations=off` on its command line.
pub fn mitigations_off() -> bool {
    std::fs::read_to_string("/proc/cmdline")
        .map(|s| s.split_whitespace().any(|w| w == "mitigations=off"))
        .unwrap_or(false)
}
