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
    map_create_btf(m, None)
}

/// Creates a map, with BTF key/value types when `btf` = (btf fd, key id, value id).
pub fn map_create_btf(m: &MapDef, btf: Option<(i32, u32, u32)>) -> Result<Fd, String> {
    let mut a = [0u8; 128];
    put32(&mut a, 0, m.map_type);
    put32(&mut a, 4, m.key_size);
    put32(&mut a, 8, m.value_size);
    put32(&mut a, 12, m.max_entries);
    put32(&mut a, 16, m.map_flags);
    let name = m.kernel_name().as_bytes();
    a[28..28 + name.len()].copy_from_slice(name);
    // map-in-map: the template inner map only needs to live until the outer one exists
    let _inner = match &m.inner {
        Some(inner) => {
            let fd = map_create(inner)?;
            put32(&mut a, 20, fd.0 as u32);
            Some(fd)
        }
        None => None,
    };
    if let Some((fd, k, v)) = btf {
        put32(&mut a, 48, fd as u32);
        put32(&mut a, 52, k);
        put32(&mut a, 56, v);
    }
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
    load_xdp_license(insns, maps, "GPL")
}

/// Like [`load_xdp`], with the given license string.
pub fn load_xdp_license(
    insns: &[RawInsn],
    maps: &[MapDef],
    license: &str,
) -> Result<KernelVerdict, String> {
    load_xdp_ext(
        insns,
        maps,
        &Extra {
            license: license.into(),
            ..Default::default()
        },
    )
}

/// What a test program needs beyond instructions and plain maps.
#[derive(Default)]
pub struct Extra {
    /// License ("GPL" when empty).
    pub license: String,
    /// Per map: value BTF with these special fields (None: no BTF).
    pub fields: Vec<Option<super::btf::ValueFields>>,
    /// Per map: initial value of key 0 (the map is frozen when it is BPF_F_RDONLY_PROG).
    pub init: Vec<Option<Vec<u8>>>,
    /// Give the program BTF func_info (one FUNC per sub-program), as callbacks need.
    pub func_info: bool,
    /// (instruction, name) of kfunc calls: their `imm` becomes the running kernel's
    /// vmlinux BTF id for the name.
    pub kfuncs: Vec<(usize, String)>,
}

/// When the running kernel build refused one of the program's kfuncs to XDP programs
/// (`NAME() is not allowed`, `calling kernel function NAME is not allowed`): a fact of
/// this build, not of the case, so the kernel half is skipped with this reason.
pub fn kfunc_refused(k: &KernelVerdict, kfuncs: &[(usize, String)]) -> Option<String> {
    if k.accepted {
        return None;
    }
    let text = error_text(&k.log);
    kfuncs.iter().find_map(|(_, n)| {
        (text.contains(&format!("{n}() is not allowed"))
            || text.contains(&format!("calling kernel function {n} is not allowed")))
        .then(|| format!("this kernel build refuses the kfunc {n} to XDP programs"))
    })
}

/// Why the running kernel cannot run a program calling these kfuncs (None: it can).
pub fn kfuncs_unavailable(kfuncs: &[(usize, String)]) -> Option<String> {
    if kfuncs.is_empty() {
        return None;
    }
    match bpfkit_loader::features::vmlinux_kfuncs() {
        Err(e) => Some(format!("no vmlinux kfunc ids: {e}")),
        Ok(ids) => kfuncs
            .iter()
            .find(|(_, n)| !ids.contains_key(n))
            .map(|(_, n)| format!("the running kernel has no kfunc `{n}`")),
    }
}

const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;
const BPF_BTF_LOAD: libc::c_long = 18;
const BPF_MAP_FREEZE: libc::c_long = 22;

/// Sub-program entry points: 0, targets of bpf-to-bpf calls and of `lddw` of functions.
pub fn subprog_starts(insns: &[RawInsn]) -> Vec<u32> {
    let mut v = vec![0u32];
    let mut i = 0;
    while i < insns.len() {
        let x = insns[i];
        let t = i as i64 + x.imm as i64 + 1;
        if ((x.code == 0x85 && x.src == 1) || (x.code == 0x18 && x.src == 4))
            && t >= 0
            && !v.contains(&(t as u32))
        {
            v.push(t as u32);
        }
        i += if x.code == 0x18 { 2 } else { 1 };
    }
    v.sort();
    v
}

fn btf_load(bytes: &[u8]) -> Result<Fd, String> {
    let mut log = vec![0u8; 1 << 16];
    let mut a = [0u8; 40];
    put64(&mut a, 0, bytes.as_ptr() as u64);
    put64(&mut a, 8, log.as_mut_ptr() as u64);
    put32(&mut a, 16, bytes.len() as u32);
    put32(&mut a, 20, log.len() as u32);
    put32(&mut a, 24, 1);
    let r = sys_bpf(BPF_BTF_LOAD, &mut a);
    if r < 0 {
        let end = log.iter().position(|&b| b == 0).unwrap_or(0);
        return Err(format!(
            "BPF_BTF_LOAD: {}: {}",
            std::io::Error::last_os_error(),
            String::from_utf8_lossy(&log[..end])
        ));
    }
    Ok(Fd(r as i32))
}

fn map_init(fd: &Fd, m: &MapDef, data: &[u8]) -> Result<(), String> {
    let key = 0u32.to_le_bytes();
    let mut val = data.to_vec();
    val.resize(m.value_size as usize, 0);
    let mut a = [0u8; 32];
    put32(&mut a, 0, fd.0 as u32);
    put64(&mut a, 8, key.as_ptr() as u64);
    put64(&mut a, 16, val.as_ptr() as u64);
    if sys_bpf(BPF_MAP_UPDATE_ELEM, &mut a) < 0 {
        return Err(format!(
            "BPF_MAP_UPDATE_ELEM {:?}: {}",
            m.name,
            std::io::Error::last_os_error()
        ));
    }
    if m.map_flags & (1 << 7) != 0 {
        let mut a = [0u8; 8];
        put32(&mut a, 0, fd.0 as u32);
        if sys_bpf(BPF_MAP_FREEZE, &mut a) < 0 {
            return Err(format!(
                "BPF_MAP_FREEZE {:?}: {}",
                m.name,
                std::io::Error::last_os_error()
            ));
        }
    }
    Ok(())
}

/// Loads `insns` as an XDP program with the extras (BTF for map values, initial map
/// data, func_info).
pub fn load_xdp_ext(
    insns: &[RawInsn],
    maps: &[MapDef],
    extra: &Extra,
) -> Result<KernelVerdict, String> {
    let starts = subprog_starts(insns);
    let need_btf = extra.func_info || extra.fields.iter().any(|f| f.is_some());
    let mut btf_fd = None;
    let mut blob = None;
    if need_btf {
        let spec: Vec<_> = maps
            .iter()
            .enumerate()
            .map(|(i, m)| {
                (
                    m.key_size,
                    m.value_size,
                    extra.fields.get(i).copied().flatten(),
                )
            })
            .collect();
        let b = super::btf::build(&spec, if extra.func_info { starts.len() } else { 0 });
        btf_fd = Some(btf_load(&b.bytes)?);
        blob = Some(b);
    }
    let mut fds = vec![];
    for (i, m) in maps.iter().enumerate() {
        let bt = match (&btf_fd, &blob) {
            (Some(fd), Some(b)) if b.map_types[i].1 != 0 => {
                Some((fd.0, b.map_types[i].0, b.map_types[i].1))
            }
            _ => None,
        };
        let fd = map_create_btf(m, bt)?;
        if let Some(Some(data)) = extra.init.get(i) {
            map_init(&fd, m, data)?;
        }
        fds.push(fd);
    }
    let license = if extra.license.is_empty() {
        "GPL"
    } else {
        extra.license.as_str()
    };
    let func_info: Vec<u32> = match (&blob, extra.func_info) {
        (Some(b), true) => starts
            .iter()
            .zip(b.funcs.iter())
            .flat_map(|(&s, &t)| [s, t])
            .collect(),
        _ => vec![],
    };
    let mut prog: Vec<RawInsn> = insns.to_vec();
    if !extra.kfuncs.is_empty() {
        let ids = bpfkit_loader::features::vmlinux_kfuncs()?;
        for (at, name) in &extra.kfuncs {
            let id = ids
                .get(name)
                .ok_or_else(|| format!("the running kernel has no kfunc `{name}`"))?;
            prog[*at].imm = *id as i32;
        }
    }
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
    // A kernel build emulated by BPFKIT_KERNEL_DENY_HELPERS refuses here, as the loader does.
    if let Some(log) = bpfkit_loader::sys::emulated_refusal(&bytes) {
        return Ok(KernelVerdict {
            accepted: false,
            errno: libc::EINVAL,
            log,
        });
    }
    let license = format!("{license}\0");
    let mut log = vec![0u8; 1 << 22];
    let mut a = [0u8; 152];
    put32(&mut a, 0, 6); // prog_type XDP
    put32(&mut a, 4, prog.len() as u32);
    put64(&mut a, 8, bytes.as_ptr() as u64);
    put64(&mut a, 16, license.as_ptr() as u64);
    put32(&mut a, 24, 2); // log_level: BPF_LOG_LEVEL2 (full trace)
    put32(&mut a, 28, log.len() as u32);
    put64(&mut a, 32, log.as_mut_ptr() as u64);
    if let Some(fd) = &btf_fd {
        put32(&mut a, 72, fd.0 as u32);
    }
    if !func_info.is_empty() {
        put32(&mut a, 76, 8);
        put64(&mut a, 80, func_info.as_ptr() as u64);
        put32(&mut a, 88, (func_info.len() / 2) as u32);
    }
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

/// The running kernel as a verifier target (`--kernel live`), probed once: comparisons
/// with the kernel verify for it, so a helper this kernel build refuses is expected to be
/// refused.
pub fn live_target() -> std::sync::Arc<bpfkit_target::KernelTarget> {
    static T: std::sync::OnceLock<std::sync::Arc<bpfkit_target::KernelTarget>> =
        std::sync::OnceLock::new();
    T.get_or_init(|| std::sync::Arc::new(bpfkit_loader::probe_kernel()))
        .clone()
}
