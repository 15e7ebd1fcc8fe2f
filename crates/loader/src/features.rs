//! `bpfkit probe`: what the running kernel offers, found the way `bpftool feature probe`
//! finds it: one small program or map per fact, judged by whether the kernel takes it and,
//! when it refuses, by the words of its verifier log.
//!
//! The result is a [`KernelTarget`] whose JSON is a probe file. Facts a probe cannot
//! establish (no CAP_BPF, program types that need a BTF attach target, map types that
//! need BTF) are listed in `not_probed` and taken from the version profile of the
//! running release, so the target is always complete.

use crate::map::{Map, MapSpec};
use crate::prog::{Program, ProgramSpec};
use bpfkit_isa::RawInsn;
use bpfkit_object::btf::{Btf, BtfKind};
use bpfkit_target::{KernelTarget, NotProbed, Source, Version};
use std::collections::BTreeMap;
use std::os::fd::AsFd;

const XDP: u32 = 6;
/// Past the last helper id any released kernel has (6.18: 211): the tail shows where the
/// kernel's ids end.
const LAST_HELPER_PROBED: u32 = 230;

/// Outcome of loading a probe program.
enum Load {
    Ok,
    /// Refused; the verifier log (empty when refused before verification).
    Refused(String),
    /// Refused for lack of privilege (EPERM/EACCES).
    NoPermission(String),
}

fn load(prog_type: u32, attach: u32, flags: u32, insns: &[RawInsn], kver: u32) -> Load {
    let mut spec = ProgramSpec::new("bpfkit_probe", prog_type, insns);
    spec.expected_attach_type = attach;
    spec.prog_flags = flags;
    spec.kern_version = kver;
    match Program::load(&spec) {
        Ok(_) => Load::Ok,
        Err(e) => {
            // The verifier answers EACCES (and EPERM) for some programs it rejects, e.g.
            // a helper's argument of the wrong type: with a verifier log, the load had
            // the privilege it needed.
            let log = e.verifier_log().unwrap_or_default();
            match e.errno() {
                Some(libc::EPERM) | Some(libc::EACCES) if !log.contains("processed ") => {
                    Load::NoPermission(e.to_string())
                }
                _ => Load::Refused(log.to_string()),
            }
        }
    }
}

fn exit0() -> Vec<RawInsn> {
    vec![
        RawInsn::new(0xb7, 0, 0, 0, 0),
        RawInsn::new(0x95, 0, 0, 0, 0),
    ]
}

/// `r1..r5 = 0; call N; r0 = 0; exit`, with `src` 0 (helper) or 2 (kfunc by BTF id).
fn one_call(src: u8, imm: i32) -> Vec<RawInsn> {
    let mut v: Vec<RawInsn> = (1..=5).map(|r| RawInsn::new(0xb7, r, 0, 0, 0)).collect();
    v.push(RawInsn::new(0x85, 0, src, 0, imm));
    v.extend(exit0());
    v
}

/// `bpf_dynptr_from_xdp(ctx, 0, fp-16)`, then kfunc `name` (BTF id `id`) called on that
/// dynptr with valid arguments, for the dynptr kfuncs; None for other kfuncs.
fn dynptr_call(from_xdp: u32, name: &str, id: u32) -> Option<Vec<RawInsn>> {
    let fp = |r: u8, off: i32| {
        [
            RawInsn::new(0xbf, r, 10, 0, 0),  // rR = r10
            RawInsn::new(0x07, r, 0, 0, off), // rR += off
        ]
    };
    let args: Vec<RawInsn> = match name {
        "bpf_dynptr_slice" | "bpf_dynptr_slice_rdwr" => vec![
            RawInsn::new(0xb7, 2, 0, 0, 0),
            RawInsn::new(0xb7, 3, 0, 0, 0),
            RawInsn::new(0xb7, 4, 0, 0, 8),
        ],
        "bpf_dynptr_adjust" => vec![
            RawInsn::new(0xb7, 2, 0, 0, 0),
            RawInsn::new(0xb7, 3, 0, 0, 0),
        ],
        "bpf_dynptr_is_null" | "bpf_dynptr_is_rdonly" | "bpf_dynptr_size" => vec![],
        "bpf_dynptr_clone" => fp(2, -32).to_vec(),
        _ => return None,
    };
    let mut v = vec![RawInsn::new(0xbf, 6, 1, 0, 0)]; // r6 = r1
    v.extend([
        RawInsn::new(0xbf, 1, 6, 0, 0),
        RawInsn::new(0xb7, 2, 0, 0, 0),
    ]);
    v.extend(fp(3, -16));
    v.push(RawInsn::new(0x85, 0, 2, 0, from_xdp as i32));
    v.extend(fp(1, -16));
    v.extend(args);
    v.push(RawInsn::new(0x85, 0, 2, 0, id as i32));
    v.extend(exit0());
    Some(v)
}

fn release() -> String {
    // SAFETY: utsname is plain data; uname fills it and cannot fail with a valid pointer.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: `u` is a valid, writable utsname.
    if unsafe { libc::uname(&mut u) } != 0 {
        return "unknown".into();
    }
    let bytes: Vec<u8> = u
        .release
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

fn kernel_version_code(v: Version) -> u32 {
    (v.0 << 16) | (v.1.min(255) << 8)
}

/// Expected attach type and flags a program type needs to load at all (libbpf's
/// `probe_prog_load`), or `None` when it needs a BTF attach target this probe does not
/// set up.
fn prog_type_setup(name: &str) -> Option<(u32, u32)> {
    match name {
        "tracing" | "ext" | "lsm" | "struct_ops" => None,
        "cgroup_sock_addr" => Some((10, 0)), // BPF_CGROUP_INET4_CONNECT
        "sk_lookup" => Some((36, 0)),        // BPF_SK_LOOKUP
        "cgroup_sockopt" => Some((21, 0)),   // BPF_CGROUP_GETSOCKOPT
        "netfilter" => Some((45, 0)),        // BPF_NETFILTER
        "syscall" => Some((0, 1 << 4)),      // BPF_F_SLEEPABLE
        _ => Some((0, 0)),
    }
}

/// Key size, value size, max entries and flags a map type needs to be created (libbpf's
/// `probe_map_create`), or `None` when it needs BTF or a kernel type.
fn map_type_setup(name: &str) -> Option<(u32, u32, u32, u32)> {
    const NO_PREALLOC: u32 = 1;
    const MMAPABLE: u32 = 1 << 10;
    Some(match name {
        "sk_storage" | "inode_storage" | "task_storage" | "cgrp_storage" | "struct_ops" => {
            return None
        }
        "lpm_trie" => (8, 8, 1, NO_PREALLOC),
        "stack_trace" => (4, 8, 1, 0),
        "queue" | "stack" => (0, 4, 1, 0),
        "bloom_filter" => (0, 4, 1, 0),
        "ringbuf" | "user_ringbuf" => (0, 0, 4096, 0),
        "cgroup_storage" | "percpu_cgroup_storage" => (16, 8, 0, 0),
        "arena" => (0, 0, 1, MMAPABLE),
        _ => (4, 4, 1, 0),
    })
}

/// Whether the log says the kernel does not know or does not offer a helper.
fn helper_refused(log: &str) -> bool {
    log.contains("invalid func ")
        || log.contains("unknown func ")
        || log.contains("program of this type cannot use helper ")
}

/// Probes the running kernel. Never fails: what it cannot find out is listed in
/// `not_probed` and filled from the running release's version profile.
pub fn probe_kernel() -> KernelTarget {
    let release = release();
    let version = Version::parse(&release).unwrap_or(bpfkit_target::MODELLED);
    let profile_version = version.clamp(bpfkit_target::OLDEST, bpfkit_target::MODELLED);
    let mut t = KernelTarget::release(profile_version).expect("clamped into range");
    t.release = release.clone();
    t.version = version;
    t.source = Source::Probe;
    t.jit_enable = std::fs::read_to_string("/proc/sys/net/core/bpf_jit_enable")
        .ok()
        .and_then(|s| s.trim().parse().ok());
    t.btf_vmlinux = Some(std::path::Path::new("/sys/kernel/btf/vmlinux").exists());
    if version > bpfkit_target::MODELLED || version < bpfkit_target::OLDEST {
        t.not_probed.push(NotProbed {
            what: "tail-call limit".into(),
            why: format!(
                "not observable by loading; taken from the {profile_version} profile (release {release} is outside {}..{})",
                bpfkit_target::OLDEST,
                bpfkit_target::MODELLED
            ),
        });
    } else {
        t.not_probed.push(NotProbed {
            what: "tail-call limit".into(),
            why: format!("not observable by loading; taken from the {profile_version} profile"),
        });
    }

    // Can this process load anything?
    let kver = kernel_version_code(version);
    match load(XDP, 0, 0, &exit0(), kver) {
        Load::Ok => {}
        Load::NoPermission(why) | Load::Refused(why) => {
            t.bpf = false;
            t.not_probed.insert(
                0,
                NotProbed {
                    what: "everything loaded: program, map and attach types, helpers, kfuncs, ISA, loops, limits".into(),
                    why: format!(
                        "cannot load a trivial XDP program ({}); all facts are the {profile_version} version profile",
                        why.lines().next().unwrap_or("refused").trim()
                    ),
                },
            );
            return t;
        }
    }

    // Program types.
    let mut prog_types = BTreeMap::new();
    for row in bpfkit_target::prog_type_rows() {
        match prog_type_setup(&row.name) {
            Some((attach, flags)) => {
                let ok = matches!(load(row.id, attach, flags, &exit0(), kver), Load::Ok);
                prog_types.insert(row.name.clone(), ok);
            }
            None => t.not_probed.push(NotProbed {
                what: format!("program type {}", row.name),
                why: format!("needs a BTF attach target; taken from the {profile_version} profile"),
            }),
        }
    }
    for (k, v) in prog_types {
        t.prog_types.insert(k, v);
    }

    t.not_probed.push(NotProbed {
        what: "attach types".into(),
        why: format!(
            "the kernel accepts any expected_attach_type when loading an XDP program; taken from the {profile_version} profile"
        ),
    });

    // Map types.
    for row in bpfkit_target::map_type_rows() {
        let Some((key, value, entries, flags)) = map_type_setup(&row.name) else {
            t.not_probed.push(NotProbed {
                what: format!("map type {}", row.name),
                why: format!(
                    "needs BTF for its key and value; taken from the {profile_version} profile"
                ),
            });
            continue;
        };
        let spec = |map_type, key_size, value_size| MapSpec {
            name: "bpfkit_probe".into(),
            map_type,
            key_size,
            value_size,
            max_entries: entries,
            map_flags: flags,
        };
        let ok = if row.name == "array_of_maps" || row.name == "hash_of_maps" {
            Map::create(&spec(2, 4, 4), None)
                .and_then(|inner| Map::create(&spec(row.id, 4, 4), Some(inner.as_fd())))
                .is_ok()
        } else {
            Map::create(&spec(row.id, key, value), None).is_ok()
        };
        t.map_types.insert(row.name.clone(), ok);
    }

    // Helpers for XDP, and where the kernel's helper ids end.
    let mut xdp = Vec::new();
    let mut max_id = 0;
    let mut new_wording = None;
    for id in 1..=LAST_HELPER_PROBED {
        let log = match load(XDP, 0, 0, &one_call(0, id as i32), kver) {
            Load::Ok => String::new(),
            Load::Refused(log) | Load::NoPermission(log) => log,
        };
        if !log.contains("invalid func ") {
            max_id = id;
        }
        if log.contains("unknown func ") {
            new_wording = Some(false);
        } else if log.contains("program of this type cannot use helper ") {
            new_wording = Some(true);
        }
        if !helper_refused(&log) {
            let name = bpfkit_isa::helper::name(id as i32)
                .map(|n| format!("bpf_{n}"))
                .unwrap_or_else(|| format!("helper#{id}"));
            xdp.push(name);
        }
    }
    t.helpers.insert("xdp".into(), xdp);
    t.helper_max_id = max_id;
    if let Some(w) = new_wording {
        t.new_helper_wording = w;
    }

    // kfuncs from vmlinux BTF, each tried from XDP.
    match vmlinux_kfuncs() {
        Ok(kfuncs) => {
            let mut ok = Vec::new();
            let from_xdp = kfuncs.get("bpf_dynptr_from_xdp").copied();
            for (name, &id) in &kfuncs {
                let log = match load(XDP, 0, 0, &one_call(2, id as i32), kver) {
                    Load::Ok => String::new(),
                    Load::Refused(log) | Load::NoPermission(log) => log,
                };
                let refused = log.contains("is not allowed")
                    || log.contains("kernel function calls are not supported")
                    || log.contains("cannot call kernel function")
                    || log.contains("invalid kernel function");
                // Some refusals come only after the arguments are checked (a kernel
                // build that filters a dynptr kfunc: "bpf_dynptr_slice_rdwr() is not
                // allowed"), so dynptr kfuncs are tried again with a real XDP dynptr.
                let refused = refused
                    || from_xdp.is_some_and(|fx| {
                        dynptr_call(fx, name, id).is_some_and(|p| match load(XDP, 0, 0, &p, kver) {
                            Load::Ok => false,
                            Load::Refused(log) | Load::NoPermission(log) => {
                                log.contains("is not allowed")
                            }
                        })
                    });
                if !refused {
                    ok.push(name.clone());
                }
            }
            t.kfuncs.insert("xdp".into(), ok);
        }
        Err(why) => t.not_probed.push(NotProbed {
            what: "kfuncs".into(),
            why: format!("{why}; taken from the {profile_version} profile"),
        }),
    }

    // ISA groups.
    let isa_prog = |insns: Vec<RawInsn>| matches!(load(XDP, 0, 0, &insns, kver), Load::Ok);
    t.isa.jmp32 = isa_prog(vec![
        RawInsn::new(0xb4, 0, 0, 0, 0), // w0 = 0
        RawInsn::new(0x16, 0, 0, 0, 0), // if w0 == 0 goto +0
        RawInsn::new(0x95, 0, 0, 0, 0),
    ]);
    t.isa.atomics = isa_prog(vec![
        RawInsn::new(0xb7, 1, 0, 0, 0),      // r1 = 0
        RawInsn::new(0x7b, 10, 1, -8, 0),    // *(u64 *)(r10 - 8) = r1
        RawInsn::new(0xb7, 2, 0, 0, 1),      // r2 = 1
        RawInsn::new(0xdb, 10, 2, -8, 0xe1), // r2 = atomic_fetch_xchg((u64 *)(r10 - 8), r2)
        RawInsn::new(0xb7, 0, 0, 0, 0),
        RawInsn::new(0x95, 0, 0, 0, 0),
    ]);
    t.isa.v4 = isa_prog(vec![
        RawInsn::new(0xb7, 0, 0, 0, 0), // r0 = 0
        RawInsn::new(0xbf, 0, 0, 8, 0), // r0 = (s8)r0
        RawInsn::new(0x95, 0, 0, 0, 0),
    ]);

    // may_goto (6.9): r0 = 0; may_goto +1; r0 = 1; exit.
    t.isa.may_goto = Some(isa_prog(vec![
        RawInsn::new(0xb7, 0, 0, 0, 0),
        RawInsn::new(0xe5, 0, 0, 1, 0),
        RawInsn::new(0xb7, 0, 0, 0, 1),
        RawInsn::new(0x95, 0, 0, 0, 0),
    ]));

    // Bounded loops: r0 = 0; r0 += 1; if r0 < 4 goto -2; r0 = 0; exit.
    t.bounded_loops = isa_prog(vec![
        RawInsn::new(0xb7, 0, 0, 0, 0),
        RawInsn::new(0x07, 0, 0, 0, 1),
        RawInsn::new(0xa5, 0, 0, -2, 4),
        RawInsn::new(0xb7, 0, 0, 0, 0),
        RawInsn::new(0x95, 0, 0, 0, 0),
    ]);

    // Limits: a 4,097-instruction program loads from 5.2 on (BPF_COMPLEXITY_LIMIT_INSNS
    // grew in the same change).
    let mut big = vec![RawInsn::new(0xb7, 0, 0, 0, 0); 4096];
    big.push(RawInsn::new(0x95, 0, 0, 0, 0));
    if isa_prog(big) {
        t.limits.max_insns = 1_000_000;
        t.limits.complexity_insns = 1_000_000;
    } else {
        t.limits.max_insns = 4096;
        t.limits.complexity_insns = 131_072;
    }
    t
}

/// The kfuncs of the running kernel's vmlinux BTF (FUNCs tagged `bpf_kfunc`), name →
/// BTF id, sorted by name. Read once per process.
pub fn vmlinux_kfuncs() -> Result<BTreeMap<String, u32>, String> {
    use std::sync::OnceLock;
    static CACHE: OnceLock<Result<BTreeMap<String, u32>, String>> = OnceLock::new();
    CACHE.get_or_init(read_vmlinux_kfuncs).clone()
}

fn read_vmlinux_kfuncs() -> Result<BTreeMap<String, u32>, String> {
    let path = "/sys/kernel/btf/vmlinux";
    let data = std::fs::read(path).map_err(|e| format!("{path}: {e}"))?;
    let btf = Btf::parse(&data, 0).map_err(|e| format!("{path}: {e}"))?;
    let mut out = BTreeMap::new();
    for t in &btf.types {
        if let BtfKind::DeclTag {
            type_id,
            component_idx: -1,
        } = t.kind
        {
            if t.name != "bpf_kfunc" {
                continue;
            }
            if let Some(f) = btf.get(type_id) {
                if matches!(f.kind, BtfKind::Func { .. }) {
                    out.insert(f.name.clone(), type_id);
                }
            }
        }
    }
    if out.is_empty() {
        return Err(format!(
            "{path} has no FUNC tagged `bpf_kfunc` (kernel or pahole too old to tag kfuncs)"
        ));
    }
    Ok(out)
}

/// For tests: `Ok(())` when the running kernel lets XDP programs call helper `name`
/// (`bpf_xdp_adjust_meta`), else the reason, from a one-call program as `probe_kernel`
/// loads it. Cached per helper.
pub fn xdp_helper_available(name: &str) -> Result<(), String> {
    use std::sync::Mutex;
    static CACHE: Mutex<BTreeMap<String, Result<(), String>>> = Mutex::new(BTreeMap::new());
    if let Some(r) = CACHE.lock().unwrap_or_else(|e| e.into_inner()).get(name) {
        return r.clone();
    }
    let bare = name.strip_prefix("bpf_").unwrap_or(name);
    let r = match bpfkit_isa::helper::NAMES.iter().position(|&h| h == bare) {
        None => Err(format!("`{name}` is not a helper name")),
        Some(id) => match load(XDP, 0, 0, &one_call(0, id as i32), 0) {
            Load::Ok => Ok(()),
            Load::NoPermission(why) => Err(why),
            Load::Refused(log) if helper_refused(&log) => Err(format!(
                "this kernel refuses {name} in XDP programs: {}",
                log.lines()
                    .find(|l| helper_refused(l))
                    .unwrap_or("refused")
                    .trim()
            )),
            Load::Refused(_) => Ok(()),
        },
    };
    CACHE
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(name.to_string(), r.clone());
    r
}

/// For tests that compare with the running kernel: `true` when the kernel lets XDP call
/// every helper in `helpers`; otherwise prints `SKIPPED: <test>: <reason>` and returns
/// `false`.
pub fn xdp_helpers_or_skip(test: &str, helpers: &[&str]) -> bool {
    for h in helpers {
        if let Err(why) = xdp_helper_available(h) {
            eprintln!("\n*** SKIPPED: {test}: {why} ***\n");
            return false;
        }
    }
    true
}

/// Helpers that `insns` call (helper-call instructions) and that the running kernel
/// refuses in XDP programs, each with the kernel's reason. Empty when it offers them all,
/// or when this process cannot load programs (the caller skips on that separately).
pub fn refused_xdp_helpers(insns: &[RawInsn]) -> Vec<String> {
    let mut ids: Vec<i32> = insns
        .iter()
        .filter(|i| i.code == 0x85 && i.src == 0)
        .map(|i| i.imm)
        .collect();
    ids.sort_unstable();
    ids.dedup();
    ids.into_iter()
        .filter_map(|id| {
            let name = format!("bpf_{}", bpfkit_isa::helper::name(id)?);
            match xdp_helper_available(&name) {
                Err(why) if why.starts_with("this kernel refuses") => Some(why),
                _ => None,
            }
        })
        .collect()
}

/// For tests that compare a program with the running kernel: `true` when the kernel
/// offers XDP every helper `insns` call; otherwise prints
/// `SKIPPED: <test>: <what>: <reason>` and returns `false`.
pub fn program_or_skip(test: &str, what: &str, insns: &[RawInsn]) -> bool {
    skip_unless_empty(test, what, refused_xdp_helpers(insns))
}

/// [`program_or_skip`] for every program of a linked object.
pub fn object_or_skip(test: &str, what: &str, obj: &bpfkit_object::model::LinkedObject) -> bool {
    let refused: std::collections::BTreeSet<String> = obj
        .programs
        .iter()
        .flat_map(|p| refused_xdp_helpers(&p.insns))
        .collect();
    skip_unless_empty(test, what, refused.into_iter().collect())
}

fn skip_unless_empty(test: &str, what: &str, refused: Vec<String>) -> bool {
    if refused.is_empty() {
        return true;
    }
    eprintln!(
        "\n*** SKIPPED: {test}: {what}: {} (the recorded results assume upstream 6.18) ***\n",
        refused.join("; ")
    );
    false
}
