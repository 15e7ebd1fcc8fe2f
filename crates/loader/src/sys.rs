//! Raw `bpf()` syscall: command numbers, `#[repr(C)]` attribute structs (the members of
//! `union bpf_attr` in `include/uapi/linux/bpf.h` that bpfkit uses) and the one `unsafe`
//! entry point. Everything above this module is safe.

use std::io;

pub const BPF_MAP_CREATE: u32 = 0;
pub const BPF_MAP_LOOKUP_ELEM: u32 = 1;
pub const BPF_MAP_UPDATE_ELEM: u32 = 2;
pub const BPF_MAP_DELETE_ELEM: u32 = 3;
pub const BPF_MAP_GET_NEXT_KEY: u32 = 4;
pub const BPF_PROG_LOAD: u32 = 5;
pub const BPF_PROG_TEST_RUN: u32 = 10;
pub const BPF_OBJ_GET_INFO_BY_FD: u32 = 15;
pub const BPF_MAP_FREEZE: u32 = 22;

/// Name of a command, for error messages.
pub fn cmd_name(cmd: u32) -> &'static str {
    match cmd {
        BPF_MAP_CREATE => "BPF_MAP_CREATE",
        BPF_MAP_LOOKUP_ELEM => "BPF_MAP_LOOKUP_ELEM",
        BPF_MAP_UPDATE_ELEM => "BPF_MAP_UPDATE_ELEM",
        BPF_MAP_DELETE_ELEM => "BPF_MAP_DELETE_ELEM",
        BPF_MAP_GET_NEXT_KEY => "BPF_MAP_GET_NEXT_KEY",
        BPF_PROG_LOAD => "BPF_PROG_LOAD",
        BPF_PROG_TEST_RUN => "BPF_PROG_TEST_RUN",
        BPF_OBJ_GET_INFO_BY_FD => "BPF_OBJ_GET_INFO_BY_FD",
        BPF_MAP_FREEZE => "BPF_MAP_FREEZE",
        _ => "bpf()",
    }
}

pub const BPF_OBJ_NAME_LEN: usize = 16;

/// `BPF_MAP_CREATE`.
#[repr(C)]
#[derive(Default)]
pub struct MapCreateAttr {
    pub map_type: u32,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
    pub map_flags: u32,
    pub inner_map_fd: u32,
    pub numa_node: u32,
    pub map_name: [u8; BPF_OBJ_NAME_LEN],
    pub map_ifindex: u32,
    pub btf_fd: u32,
    pub btf_key_type_id: u32,
    pub btf_value_type_id: u32,
    pub btf_vmlinux_value_type_id: u32,
    pub map_extra: u64,
}

/// `BPF_MAP_*_ELEM`, `BPF_MAP_GET_NEXT_KEY` (`value` is `next_key` there).
#[repr(C)]
#[derive(Default)]
pub struct MapElemAttr {
    pub map_fd: u32,
    pub _pad: u32,
    pub key: u64,
    pub value: u64,
    pub flags: u64,
}

/// `BPF_MAP_FREEZE` (only `map_fd` of the elem struct).
#[repr(C)]
#[derive(Default)]
pub struct MapFdAttr {
    pub map_fd: u32,
}

/// `BPF_PROG_LOAD`.
#[repr(C)]
#[derive(Default)]
pub struct ProgLoadAttr {
    pub prog_type: u32,
    pub insn_cnt: u32,
    pub insns: u64,
    pub license: u64,
    pub log_level: u32,
    pub log_size: u32,
    pub log_buf: u64,
    pub kern_version: u32,
    pub prog_flags: u32,
    pub prog_name: [u8; BPF_OBJ_NAME_LEN],
    pub prog_ifindex: u32,
    pub expected_attach_type: u32,
    pub prog_btf_fd: u32,
    pub func_info_rec_size: u32,
    pub func_info: u64,
    pub func_info_cnt: u32,
    pub line_info_rec_size: u32,
    pub line_info: u64,
    pub line_info_cnt: u32,
    pub attach_btf_id: u32,
    pub attach_prog_fd: u32,
    pub core_relo_cnt: u32,
    pub fd_array: u64,
    pub core_relos: u64,
    pub core_relo_rec_size: u32,
    /// Output (Linux >= 6.4): log size the verifier needed.
    pub log_true_size: u32,
}

/// `BPF_PROG_TEST_RUN`.
#[repr(C)]
#[derive(Default)]
pub struct TestRunAttr {
    pub prog_fd: u32,
    pub retval: u32,
    pub data_size_in: u32,
    pub data_size_out: u32,
    pub data_in: u64,
    pub data_out: u64,
    pub repeat: u32,
    pub duration: u32,
    pub ctx_size_in: u32,
    pub ctx_size_out: u32,
    pub ctx_in: u64,
    pub ctx_out: u64,
    pub flags: u32,
    pub cpu: u32,
    pub batch_size: u32,
    pub _pad: u32,
}

/// `BPF_OBJ_GET_INFO_BY_FD`.
#[repr(C)]
#[derive(Default)]
pub struct InfoAttr {
    pub bpf_fd: u32,
    pub info_len: u32,
    pub info: u64,
}

/// `struct bpf_prog_info` (up to `attach_btf_id`; the kernel copies
/// `min(sizeof, info_len)`).
#[repr(C)]
#[derive(Default, Clone, Copy)]
pub struct BpfProgInfo {
    pub prog_type: u32,
    pub id: u32,
    pub tag: [u8; 8],
    pub jited_prog_len: u32,
    pub xlated_prog_len: u32,
    pub jited_prog_insns: u64,
    pub xlated_prog_insns: u64,
    pub load_time: u64,
    pub created_by_uid: u32,
    pub nr_map_ids: u32,
    pub map_ids: u64,
    pub name: [u8; BPF_OBJ_NAME_LEN],
    pub ifindex: u32,
    pub gpl_compatible: u32,
    pub netns_dev: u64,
    pub netns_ino: u64,
    pub nr_jited_ksyms: u32,
    pub nr_jited_func_lens: u32,
    pub jited_ksyms: u64,
    pub jited_func_lens: u64,
    pub btf_id: u32,
    pub func_info_rec_size: u32,
    pub func_info: u64,
    pub nr_func_info: u32,
    pub nr_line_info: u32,
    pub line_info: u64,
    pub jited_line_info: u64,
    pub nr_jited_line_info: u32,
    pub line_info_rec_size: u32,
    pub jited_line_info_rec_size: u32,
    pub nr_prog_tags: u32,
    pub prog_tags: u64,
    pub run_time_ns: u64,
    pub run_cnt: u64,
    pub recursion_misses: u64,
    pub verified_insns: u32,
    pub attach_btf_obj_id: u32,
    pub attach_btf_id: u32,
    pub _pad: u32,
}

/// `struct bpf_map_info`.
#[repr(C)]
#[derive(Default, Clone, Copy)]
pub struct BpfMapInfo {
    pub map_type: u32,
    pub id: u32,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
    pub map_flags: u32,
    pub name: [u8; BPF_OBJ_NAME_LEN],
    pub ifindex: u32,
    pub btf_vmlinux_value_type_id: u32,
    pub netns_dev: u64,
    pub netns_ino: u64,
    pub btf_id: u32,
    pub btf_key_type_id: u32,
    pub btf_value_type_id: u32,
    pub _pad: u32,
    pub map_extra: u64,
}

/// `struct xdp_md`, the XDP context as `BPF_PROG_TEST_RUN` takes it in `ctx_in`.
#[repr(C)]
#[derive(Default, Clone, Copy, Debug, PartialEq, Eq)]
pub struct XdpMd {
    pub data: u32,
    pub data_end: u32,
    pub data_meta: u32,
    pub ingress_ifindex: u32,
    pub rx_queue_index: u32,
    pub egress_ifindex: u32,
}

/// Issues `bpf(cmd, attr, sizeof(*attr))`; returns the non-negative result or the errno.
///
/// # Safety
/// Every pointer stored (as `u64`) in `attr` must point to memory that is valid for the
/// access the kernel makes for `cmd` (reads of the stated input sizes, writes of the
/// stated output sizes) for the duration of the call.
pub unsafe fn sys_bpf<T>(cmd: u32, attr: &mut T) -> io::Result<i64> {
    let size = std::mem::size_of::<T>() as libc::c_uint;
    // SAFETY: `attr` is a live, exclusively borrowed `#[repr(C)]` struct of `size` bytes,
    // so the kernel may read and write it; the pointers inside it are valid per this
    // function's contract.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd as libc::c_long,
            attr as *mut T as *mut libc::c_void,
            size,
        )
    };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret as i64)
    }
}

/// Environment variable that makes the loader behave like a kernel build that refuses
/// some helpers (as one `6.18.44` build refuses `bpf_xdp_adjust_meta` in XDP programs):
/// a comma-separated list of helper names (`bpf_xdp_adjust_meta`, `xdp_adjust_meta`) or
/// ids (`54`). Every `BPF_PROG_LOAD` whose instructions call one of them fails with
/// `EINVAL` and the kernel's message, before the syscall. Tests and `bpfkit probe` then
/// see exactly what such a kernel shows them.
pub const DENY_HELPERS_ENV: &str = "BPFKIT_KERNEL_DENY_HELPERS";

/// Helper ids denied by [`DENY_HELPERS_ENV`] (read once per process).
pub fn denied_helpers() -> &'static [i32] {
    static DENIED: std::sync::OnceLock<Vec<i32>> = std::sync::OnceLock::new();
    DENIED.get_or_init(|| {
        let Ok(v) = std::env::var(DENY_HELPERS_ENV) else {
            return Vec::new();
        };
        v.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .filter_map(|s| {
                s.parse::<i32>().ok().or_else(|| {
                    let n = s.strip_prefix("bpf_").unwrap_or(s);
                    bpfkit_isa::helper::NAMES
                        .iter()
                        .position(|&h| h == n)
                        .map(|i| i as i32)
                })
            })
            .collect()
    })
}

/// The refusal [`DENY_HELPERS_ENV`] asks for, if `insns` (raw bytes) call a denied helper:
/// the verifier log the kernel would write.
pub fn emulated_refusal(insns: &[u8]) -> Option<String> {
    let denied = denied_helpers();
    if denied.is_empty() {
        return None;
    }
    insns.chunks_exact(8).enumerate().find_map(|(i, b)| {
        let imm = i32::from_le_bytes([b[4], b[5], b[6], b[7]]);
        // `call imm` with src_reg 0: a helper call.
        (b[0] == 0x85 && b[1] >> 4 == 0 && denied.contains(&imm)).then(|| {
            let name = bpfkit_isa::helper::name(imm).unwrap_or("unknown");
            format!(
                "{i}: (85) call bpf_{name}#{imm}\n\
                 program of this type cannot use helper bpf_{name}#{imm}\n\
                 processed 0 insns (limit 1000000) max_states_per_insn 0 total_states 0 peak_states 0 mark_read 0\n"
            )
        })
    })
}

/// `BPF_PROG_LOAD`, through [`DENY_HELPERS_ENV`]'s emulation of a kernel build that
/// refuses some helpers.
///
/// # Safety
/// As [`sys_bpf`]: `attr.insns` points to `insn_cnt * 8` readable bytes, `attr.log_buf`
/// (if non-zero) to `log_size` writable bytes, and every other pointer is valid.
pub unsafe fn prog_load(attr: &mut ProgLoadAttr) -> io::Result<i64> {
    if !denied_helpers().is_empty() && attr.insns != 0 {
        // SAFETY: the caller guarantees insns points to insn_cnt * 8 readable bytes.
        let insns = unsafe {
            std::slice::from_raw_parts(attr.insns as *const u8, attr.insn_cnt as usize * 8)
        };
        if let Some(log) = emulated_refusal(insns) {
            if attr.log_buf != 0 && attr.log_size > 0 {
                let n = log.len().min(attr.log_size as usize - 1);
                // SAFETY: the caller guarantees log_buf points to log_size writable bytes;
                // n + 1 <= log_size.
                unsafe {
                    std::ptr::copy_nonoverlapping(log.as_ptr(), attr.log_buf as *mut u8, n);
                    *(attr.log_buf as *mut u8).add(n) = 0;
                }
            }
            attr.log_true_size = log.len() as u32 + 1;
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
    }
    // SAFETY: forwarded from this function's contract.
    unsafe { sys_bpf(BPF_PROG_LOAD, attr) }
}

/// Copies `name` into a kernel object name: at most 15 bytes of `[A-Za-z0-9_.]`, other
/// bytes replaced by `_`, NUL-terminated.
pub fn obj_name(name: &str) -> [u8; BPF_OBJ_NAME_LEN] {
    let mut out = [0u8; BPF_OBJ_NAME_LEN];
    for (o, b) in out.iter_mut().zip(name.bytes().take(BPF_OBJ_NAME_LEN - 1)) {
        *o = if b.is_ascii_alphanumeric() || b == b'_' || b == b'.' {
            b
        } else {
            b'_'
        };
    }
    out
}

/// Reads a NUL-terminated kernel name.
pub fn name_str(name: &[u8]) -> String {
    let end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
    String::from_utf8_lossy(&name[..end]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::{offset_of, size_of};

    // Offsets from include/uapi/linux/bpf.h (checked with pahole-equivalent arithmetic).
    #[test]
    fn attr_layouts_match_uapi() {
        assert_eq!(offset_of!(MapCreateAttr, map_name), 28);
        assert_eq!(offset_of!(MapCreateAttr, btf_fd), 48);
        assert_eq!(offset_of!(MapCreateAttr, map_extra), 64);
        assert_eq!(size_of::<MapElemAttr>(), 32);
        assert_eq!(offset_of!(ProgLoadAttr, prog_name), 48);
        assert_eq!(offset_of!(ProgLoadAttr, expected_attach_type), 68);
        assert_eq!(offset_of!(ProgLoadAttr, fd_array), 120);
        assert_eq!(offset_of!(ProgLoadAttr, log_true_size), 140);
        assert_eq!(offset_of!(TestRunAttr, ctx_in), 48);
        assert_eq!(offset_of!(TestRunAttr, batch_size), 72);
        assert_eq!(size_of::<BpfProgInfo>(), 232);
        assert_eq!(offset_of!(BpfProgInfo, verified_insns), 216);
        assert_eq!(size_of::<BpfMapInfo>(), 88);
        assert_eq!(size_of::<XdpMd>(), 24);
    }

    #[test]
    fn names_are_sanitized() {
        assert_eq!(name_str(&obj_name("xdp-prog/with:bad")), "xdp_prog_with_b");
        assert_eq!(name_str(&obj_name(".rodata")), ".rodata");
    }
}
