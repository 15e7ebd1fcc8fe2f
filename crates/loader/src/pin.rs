//! Kernel object ids and bpffs pins: `BPF_OBJ_PIN`/`BPF_OBJ_GET`,
//! `BPF_{PROG,MAP,LINK}_GET_NEXT_ID`, `BPF_{PROG,MAP,LINK}_GET_FD_BY_ID`, link info.

use crate::error::{Error, Result};
use crate::sys;
use std::ffi::CString;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::Path;

pub const BPF_OBJ_PIN: u32 = 6;
pub const BPF_OBJ_GET: u32 = 7;
pub const BPF_PROG_GET_NEXT_ID: u32 = 11;
pub const BPF_MAP_GET_NEXT_ID: u32 = 12;
pub const BPF_PROG_GET_FD_BY_ID: u32 = 13;
pub const BPF_MAP_GET_FD_BY_ID: u32 = 14;
pub const BPF_LINK_GET_FD_BY_ID: u32 = 30;
pub const BPF_LINK_GET_NEXT_ID: u32 = 31;

/// Kinds of kernel objects that have ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjKind {
    Prog,
    Map,
    Link,
}

impl ObjKind {
    fn cmds(self) -> (u32, u32, &'static str, &'static str) {
        match self {
            ObjKind::Prog => (
                BPF_PROG_GET_NEXT_ID,
                BPF_PROG_GET_FD_BY_ID,
                "BPF_PROG_GET_NEXT_ID",
                "BPF_PROG_GET_FD_BY_ID",
            ),
            ObjKind::Map => (
                BPF_MAP_GET_NEXT_ID,
                BPF_MAP_GET_FD_BY_ID,
                "BPF_MAP_GET_NEXT_ID",
                "BPF_MAP_GET_FD_BY_ID",
            ),
            ObjKind::Link => (
                BPF_LINK_GET_NEXT_ID,
                BPF_LINK_GET_FD_BY_ID,
                "BPF_LINK_GET_NEXT_ID",
                "BPF_LINK_GET_FD_BY_ID",
            ),
        }
    }
}

#[repr(C)]
#[derive(Default)]
struct IdAttr {
    id: u32,
    next_id: u32,
    open_flags: u32,
}

#[repr(C)]
#[derive(Default)]
struct ObjAttr {
    pathname: u64,
    bpf_fd: u32,
    file_flags: u32,
    path_fd: i32,
    /// Explicit padding: the kernel wants every byte past the command's fields zero.
    _pad: u32,
}

/// Every id of `kind` the kernel currently has, ascending.
pub fn list_ids(kind: ObjKind) -> Result<Vec<u32>> {
    let (next, _, name, _) = kind.cmds();
    let mut ids = Vec::new();
    let mut start = 0;
    loop {
        let mut attr = IdAttr {
            id: start,
            ..Default::default()
        };
        // SAFETY: IdAttr carries no pointers.
        match unsafe { sys::sys_bpf(next, &mut attr) } {
            Ok(_) => {
                ids.push(attr.next_id);
                start = attr.next_id;
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(ids),
            Err(e) => {
                return Err(Error::Sys {
                    cmd: name,
                    what: format!("after id {start}"),
                    source: e,
                })
            }
        }
    }
}

/// A new fd for the object with `id`.
pub fn fd_by_id(kind: ObjKind, id: u32) -> Result<OwnedFd> {
    let (_, get, _, name) = kind.cmds();
    let mut attr = IdAttr {
        id,
        ..Default::default()
    };
    // SAFETY: IdAttr carries no pointers.
    let fd = unsafe { sys::sys_bpf(get, &mut attr) }.map_err(|e| Error::Sys {
        cmd: name,
        what: format!("id {id}"),
        source: e,
    })?;
    // SAFETY: the kernel just returned this fd; nobody else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

fn cpath(path: &Path) -> Result<CString> {
    CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|_| Error::Invalid(format!("path {} contains NUL", path.display())))
}

/// `BPF_OBJ_PIN`: pins the object behind `fd` at `path` (in a bpffs mount).
pub fn pin(fd: BorrowedFd<'_>, path: &Path) -> Result<()> {
    let c = cpath(path)?;
    let mut attr = ObjAttr {
        pathname: c.as_ptr() as u64,
        bpf_fd: fd.as_raw_fd() as u32,
        ..Default::default()
    };
    // SAFETY: pathname points to a NUL-terminated string that outlives the call.
    unsafe { sys::sys_bpf(BPF_OBJ_PIN, &mut attr) }.map_err(|e| {
        let dotted = path
            .file_name()
            .is_some_and(|n| n.as_encoded_bytes().contains(&b'.'));
        let hint = match e.raw_os_error() {
            Some(libc::EPERM) if dotted => "; bpffs refuses names containing `.` (see pin_name)",
            Some(libc::EEXIST) => "; a pin already exists there: remove it first",
            Some(libc::EPERM) | Some(libc::EINVAL) => {
                "; the directory must be on a bpffs mount (e.g. under /sys/fs/bpf)"
            }
            Some(libc::ENOENT) => "; the parent directory does not exist",
            _ => "",
        };
        Error::Sys {
            cmd: "BPF_OBJ_PIN",
            what: format!("{}{hint}", path.display()),
            source: e,
        }
    })?;
    Ok(())
}

/// `BPF_OBJ_GET`: opens a pinned object.
pub fn get_pinned(path: &Path) -> Result<OwnedFd> {
    let c = cpath(path)?;
    let mut attr = ObjAttr {
        pathname: c.as_ptr() as u64,
        ..Default::default()
    };
    // SAFETY: pathname points to a NUL-terminated string that outlives the call.
    let fd = unsafe { sys::sys_bpf(BPF_OBJ_GET, &mut attr) }.map_err(|e| Error::Sys {
        cmd: "BPF_OBJ_GET",
        what: path.display().to_string(),
        source: e,
    })?;
    // SAFETY: the kernel just returned this fd; nobody else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// `struct bpf_link_info` up to the XDP member of its union.
#[repr(C)]
#[derive(Default, Clone, Copy)]
struct BpfLinkInfo {
    link_type: u32,
    id: u32,
    prog_id: u32,
    _pad: u32,
    /// First words of the union; for XDP links `[0]` is the ifindex.
    u: [u64; 4],
}

/// `BPF_LINK_TYPE_XDP`.
pub const BPF_LINK_TYPE_XDP: u32 = 6;

/// What the kernel reports about a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkInfo {
    pub link_type: u32,
    pub id: u32,
    pub prog_id: u32,
    /// For XDP links: the interface.
    pub ifindex: u32,
}

/// `BPF_OBJ_GET_INFO_BY_FD` on a link.
pub fn link_info(fd: BorrowedFd<'_>) -> Result<LinkInfo> {
    let mut info = BpfLinkInfo::default();
    let mut attr = sys::InfoAttr {
        bpf_fd: fd.as_raw_fd() as u32,
        info_len: std::mem::size_of::<BpfLinkInfo>() as u32,
        info: &mut info as *mut BpfLinkInfo as u64,
    };
    // SAFETY: info points to a writable BpfLinkInfo of info_len bytes.
    unsafe { sys::sys_bpf(sys::BPF_OBJ_GET_INFO_BY_FD, &mut attr) }
        .map_err(|e| Error::sys(sys::BPF_OBJ_GET_INFO_BY_FD, "link", e))?;
    Ok(LinkInfo {
        link_type: info.link_type,
        id: info.id,
        prog_id: info.prog_id,
        ifindex: info.u[0] as u32,
    })
}

/// Counts of kernel objects, to check that a failed load left nothing behind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelObjects {
    pub progs: Vec<u32>,
    pub maps: Vec<u32>,
    pub links: Vec<u32>,
}

impl KernelObjects {
    pub fn snapshot() -> Result<KernelObjects> {
        Ok(KernelObjects {
            progs: list_ids(ObjKind::Prog)?,
            maps: list_ids(ObjKind::Map)?,
            links: list_ids(ObjKind::Link)?,
        })
    }
    /// Ids present in `self` but not in `before`.
    pub fn new_since(&self, before: &KernelObjects) -> KernelObjects {
        let diff = |a: &[u32], b: &[u32]| a.iter().filter(|x| !b.contains(x)).copied().collect();
        KernelObjects {
            progs: diff(&self.progs, &before.progs),
            maps: diff(&self.maps, &before.maps),
            links: diff(&self.links, &before.links),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.progs.is_empty() && self.maps.is_empty() && self.links.is_empty()
    }
}

/// The kernel name of a program or map by id (None if it is gone or has no name).
pub fn name_of(kind: ObjKind, id: u32) -> Option<String> {
    let fd = fd_by_id(kind, id).ok()?;
    match kind {
        ObjKind::Prog => crate::Program::from_fd(fd, "", 0, String::new())
            .info()
            .ok()
            .map(|i| i.name),
        ObjKind::Map => crate::Map::from_fd(fd, crate::MapSpec::default())
            .ok()?
            .info()
            .ok()
            .map(|i| i.name),
        ObjKind::Link => None,
    }
}

impl KernelObjects {
    /// Keeps the programs and maps whose kernel name is in `names` (other processes
    /// may create objects meanwhile) and every link.
    pub fn named(&self, names: &[&str]) -> KernelObjects {
        let keep = |kind, ids: &[u32]| {
            ids.iter()
                .copied()
                .filter(|&id| name_of(kind, id).is_some_and(|n| names.contains(&n.as_str())))
                .collect()
        };
        KernelObjects {
            progs: keep(ObjKind::Prog, &self.progs),
            maps: keep(ObjKind::Map, &self.maps),
            links: self.links.clone(),
        }
    }
}

/// A pin file name for an object name: bpffs refuses names with `.`, which libbpf
/// replaces with `_` (`sanitize_pin_path`), e.g. `xdp_glob.rodata` -> `xdp_glob_rodata`.
pub fn pin_name(name: &str) -> String {
    name.replace('.', "_")
}

/// `BPF_BTF_GET_FD_BY_ID`.
pub const BPF_BTF_GET_FD_BY_ID: u32 = 19;

/// `struct bpf_btf_info`.
#[repr(C)]
#[derive(Default)]
struct BpfBtfInfo {
    btf: u64,
    btf_size: u32,
    id: u32,
    name: u64,
    name_len: u32,
    kernel_btf: u32,
}

/// The raw BTF (header, types, strings) of the kernel BTF object `id` (a map's or
/// program's `btf_id`), as `bpftool btf dump id N` reads it.
pub fn btf_data_by_id(id: u32) -> Result<Vec<u8>> {
    let mut attr = IdAttr {
        id,
        ..Default::default()
    };
    // SAFETY: IdAttr carries no pointers.
    let fd = unsafe { sys::sys_bpf(BPF_BTF_GET_FD_BY_ID, &mut attr) }.map_err(|e| Error::Sys {
        cmd: "BPF_BTF_GET_FD_BY_ID",
        what: format!("BTF id {id}"),
        source: e,
    })?;
    // SAFETY: the kernel just returned this fd; nobody else owns it.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    let info_of = |buf: &mut Vec<u8>| -> Result<u32> {
        let mut info = BpfBtfInfo {
            btf: if buf.is_empty() {
                0
            } else {
                buf.as_mut_ptr() as u64
            },
            btf_size: buf.len() as u32,
            ..Default::default()
        };
        let mut attr = sys::InfoAttr {
            bpf_fd: fd.as_raw_fd() as u32,
            info_len: std::mem::size_of::<BpfBtfInfo>() as u32,
            info: &mut info as *mut BpfBtfInfo as u64,
        };
        // SAFETY: info points to a writable BpfBtfInfo of info_len bytes, and info.btf
        // (when non-zero) to btf_size writable bytes of `buf`.
        unsafe { sys::sys_bpf(sys::BPF_OBJ_GET_INFO_BY_FD, &mut attr) }
            .map_err(|e| Error::sys(sys::BPF_OBJ_GET_INFO_BY_FD, format!("BTF id {id}"), e))?;
        Ok(info.btf_size)
    };
    let size = info_of(&mut Vec::new())?;
    let mut buf = vec![0u8; size as usize];
    if size > 0 {
        info_of(&mut buf)?;
    }
    Ok(buf)
}
