//! Helpers that describe the "current task" beyond pid/uid/comm: its cgroup
//! (`bpf_get_current_cgroup_id`, `bpf_get_current_ancestor_cgroup_id`), its net_cls class
//! (`bpf_get_cgroup_classid`, the task variant XDP programs get from `bpf_base_func_proto`)
//! and its pid namespace (`bpf_get_ns_current_pid_tgid`). Under `BPF_PROG_TEST_RUN` the
//! current task is the caller; here it is described by `Config::current_cgroup`,
//! `current_classid`, `current_pidns` and `current_pid_tgid`. `tests/task.rs` compares
//! them with the kernel (corpus `xdp_task` run by bpftool, the emulator configured with
//! bpftool's cgroup and pid namespace).

use crate::error::FaultKind;
use crate::runtime::Runtime;

pub const GET_CGROUP_CLASSID: i32 = 17;
pub const GET_CURRENT_CGROUP_ID: i32 = 80;
pub const GET_NS_CURRENT_PID_TGID: i32 = 120;
pub const GET_CURRENT_ANCESTOR_CGROUP_ID: i32 = 123;

const EINVAL: i64 = 22;

/// Dispatches the four helpers above.
pub fn call(rt: &mut Runtime, id: i32, a: &[u64; 5]) -> Result<u64, FaultKind> {
    let c = &rt.config;
    match id {
        GET_CGROUP_CLASSID => Ok(c.current_classid as u64),
        GET_CURRENT_CGROUP_ID => Ok(c.current_cgroup.last().copied().unwrap_or(1)),
        // cgroup_ancestor: NULL (id 0) for a level below 0 or past the task's own level.
        GET_CURRENT_ANCESTOR_CGROUP_ID => {
            let level = a[0] as i32;
            Ok(usize::try_from(level)
                .ok()
                .and_then(|l| c.current_cgroup.get(l).copied())
                .unwrap_or(0))
        }
        GET_NS_CURRENT_PID_TGID => ns_current_pid_tgid(rt, a),
        _ => Err(FaultKind::UnknownHelper(id as i64)),
    }
}

/// `bpf_get_ns_current_pid_tgid(dev, ino, nsdata, size)`: -EINVAL (and `size` bytes of
/// `nsdata` zeroed) unless `size` is 8, `dev` fits a `dev_t` (32 bits) and (dev, ino) is
/// the task's pid namespace.
fn ns_current_pid_tgid(rt: &mut Runtime, a: &[u64; 5]) -> Result<u64, FaultKind> {
    let (dev, ino, p, size) = (a[0], a[1], a[2], a[3] as u32 as u64);
    let ok = size == 8 && dev as u32 as u64 == dev && (dev, ino) == rt.config.current_pidns;
    if !ok {
        // Checked before allocating: `size` comes from the program (up to 4 GiB).
        rt.regions.check(p, size, true)?;
        rt.regions.write_bytes(p, &vec![0; size as usize])?;
        return Ok((-EINVAL) as u64);
    }
    let pt = rt.config.current_pid_tgid;
    let mut out = [0u8; 8];
    out[..4].copy_from_slice(&(pt as u32).to_le_bytes());
    out[4..].copy_from_slice(&((pt >> 32) as u32).to_le_bytes());
    rt.regions.write_bytes(p, &out)?;
    Ok(0)
}
