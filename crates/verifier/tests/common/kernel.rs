//! A tiny private `bpf(2)` wrapper for the tests: create maps, load a program with a
//! verifier log, and report the kernel's verdict. Tests print a loud skip when the
//! kernel cannot be used.

#![allow(dead_code)]

use bpfkit_isa::RawInsn;
use bpfkit_object::model::MapDef;

const BPF_MAP_CREATE: libc::c_long = 0;
const BPF_PROG_LOAD: libc::c_long = 5;

pub struct KernelVerdict {
    pub accepted: bool,
    pub errno: i32,
    pub log: String,
}

fn sys_bpf(cmd: libc::c_long, attr: &mut [u8]) -> i64 {
    // SAFETY: `attr` is a valid, writable buffer of `attr.len()` bytes laid out as the
    // kernel's `union bpf_attr` prefix for `cmd`; the kernel reads/writes only that much.
    unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr.as_mut_ptr(),
            attr.len() as libc::c_uint,
        )
    }
}

fn put32(b: &mut [u8], off: usize, v: u32) {
    b[off..off + 4].copy_from_slice(&v.to_le_bytes());
}
fn put64(b: &mut [u8], off: usize, v: u64) {
    b[off..off + 8].copy_from_slice(&v.to_le_bytes());
}

pub struct Fd(pub i32);
impl Drop for Fd {
    fn drop(&mut self) {
        // SAFETY: we own this descriptor, it was returned by bpf(2).
        unsafe {
            libc::close(self.0);
        }
    }
}

pub fn map_create(m: &MapDef) -> Result<Fd, String> {
    let mut a = [0u8; 128];
    put32(&mut a, 0, m.map_type);
    put32(&mut a, 4, m.key_size);
    put32(&mut a, 8, m.value_size);
    put32(&mut a, 12, m.max_entries);
    put32(&mut a, 16, m.map_flags);
    let r = sys_bpf(BPF_MAP_CREATE, &mut a);
    if r < 0 {
        return Err(format!(
            "BPF_MAP_CREATE {:?}: {}",
            m.name,
            std::io::Error::last_os_error()
        ));
    }
    Ok(Fd(r as i32))
}

/// Loads `insns` (map references as bpfkit's linked form: `lddw` src 5/6 with a map index)
/// as an XDP program. `maps` are created first.
pub fn load_xdp(insns: &[RawInsn], maps: &[MapDef]) -> Result<KernelVerdict, String> {
    let mut fds = vec![];
    for m in maps {
        fds.push(map_create(m)?);
    }
    let mut prog: Vec<RawInsn> = insns.to_vec();
    let mut i = 0;
    while i < prog.len() {
        if prog[i].code == 0x18 && (prog[i].src == 5 || prog[i].src == 6) {
            let idx = prog[i].imm as usize;
            if let Some(fd) = fds.get(idx) {
                prog[i].src = if prog[i].src == 5 { 1 } else { 2 };
                prog[i].imm = fd.0;
            }
            i += 2;
            continue;
        }
        i += 1;
    }
    let bytes = bpfkit_isa::to_bytes(&prog);
    let license = b"GPL\0";
    let mut log = vec![0u8; 1 << 22];
    let mut a = [0u8; 152];
    put32(&mut a, 0, 6); // prog_type XDP
    put32(&mut a, 4, prog.len() as u32);
    put64(&mut a, 8, bytes.as_ptr() as u64);
    put64(&mut a, 16, license.as_ptr() as u64);
    put32(&mut a, 24, 2); // log_level: BPF_LOG_LEVEL2 (full trace)
    put32(&mut a, 28, log.len() as u32);
    put64(&mut a, 32, log.as_mut_ptr() as u64);
    let mut r = sys_bpf(BPF_PROG_LOAD, &mut a);
    let mut errno = if r < 0 {
        std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
    } else {
        0
    };
    if errno == libc::ENOSPC {
        // The full trace of a long (looping) program does not fit: load again with
        // BPF_LOG_STATS only, which still prints the error lines and the statistics.
        log.iter_mut().for_each(|b| *b = 0);
        put32(&mut a, 24, 4);
        r = sys_bpf(BPF_PROG_LOAD, &mut a);
        errno = if r < 0 {
            std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
        } else {
            0
        };
    }
    let end = log.iter().position(|&b| b == 0).unwrap_or(0);
    let log = String::from_utf8_lossy(&log[..end]).into_owned();
    if r >= 0 {
        drop(Fd(r as i32));
    }
    drop(fds);
    Ok(KernelVerdict {
        accepted: r >= 0,
        errno,
        log,
    })
}

/// Why the kernel cannot be used here, if it cannot.
pub fn unavailable() -> Option<String> {
    if std::env::var_os("BPFKIT_NO_KERNEL").is_some() {
        return Some("BPFKIT_NO_KERNEL is set".into());
    }
    // Probe: the smallest valid XDP program (r0 = 2; exit).
    let p = [
        RawInsn::new(0xb7, 0, 0, 0, 2),
        RawInsn::new(0x95, 0, 0, 0, 0),
    ];
    match load_xdp(&p, &[]) {
        Ok(v) if v.accepted => None,
        Ok(v) => Some(format!(
            "BPF_PROG_LOAD failed with errno {} (need root/CAP_BPF): {}",
            v.errno, v.log
        )),
        Err(e) => Some(e),
    }
}

/// The kernel's error line(s): the log without the trailing statistics.
pub fn error_text(log: &str) -> String {
    log.lines()
        .filter(|l| !l.starts_with("processed ") && !l.starts_with("verification time"))
        .collect::<Vec<_>>()
        .join("\n")
}
