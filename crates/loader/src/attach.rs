//! XDP attach and detach: `BPF_LINK_CREATE` (attach type `BPF_XDP`), with rtnetlink
//! `IFLA_XDP` as the fallback on kernels without XDP links. An [`XdpAttachment`] detaches
//! on drop unless it was pinned (links) or [`XdpAttachment::keep`] was called.

use crate::error::{Error, Result};
use crate::netlink;
use crate::pin::{self, ObjKind, BPF_LINK_TYPE_XDP};
use crate::sys;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

pub const BPF_LINK_CREATE: u32 = 28;
pub const BPF_LINK_DETACH: u32 = 34;
/// `enum bpf_attach_type` `BPF_XDP`.
pub const BPF_XDP: u32 = 37;

pub const XDP_FLAGS_UPDATE_IF_NOEXIST: u32 = 1;
pub const XDP_FLAGS_SKB_MODE: u32 = 2;
pub const XDP_FLAGS_DRV_MODE: u32 = 4;
pub const XDP_FLAGS_HW_MODE: u32 = 8;

/// Generic (`skb`), native (`drv`) or offloaded (`hw`) XDP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XdpMode {
    Skb,
    Drv,
    Hw,
}

impl XdpMode {
    pub fn flags(self) -> u32 {
        match self {
            XdpMode::Skb => XDP_FLAGS_SKB_MODE,
            XdpMode::Drv => XDP_FLAGS_DRV_MODE,
            XdpMode::Hw => XDP_FLAGS_HW_MODE,
        }
    }
}

/// How to attach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttachMethod {
    /// `BPF_LINK_CREATE`, falling back to netlink when the kernel has no XDP links.
    Link,
    /// Netlink only (the attachment outlives the process; detach explicitly).
    Netlink,
}

#[repr(C)]
#[derive(Default)]
struct LinkCreateAttr {
    prog_fd: u32,
    target_ifindex: u32,
    attach_type: u32,
    flags: u32,
    _rest: [u64; 4],
}

#[repr(C)]
#[derive(Default)]
struct LinkDetachAttr {
    link_fd: u32,
}

/// An attached XDP program.
#[derive(Debug)]
pub enum XdpAttachment {
    Link {
        fd: OwnedFd,
        ifindex: u32,
        pinned: Option<PathBuf>,
    },
    Netlink {
        ifindex: u32,
        flags: u32,
        keep: bool,
    },
}

/// The interface index of `name` in the caller's network namespace.
pub fn ifindex(name: &str) -> Result<u32> {
    let c = std::ffi::CString::new(name)
        .map_err(|_| Error::Invalid(format!("interface name {name:?} contains NUL")))?;
    // SAFETY: c is a NUL-terminated string valid for the call.
    let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if i == 0 {
        return Err(Error::Invalid(format!(
            "no network interface named `{name}` (in this network namespace): check `ip link`"
        )));
    }
    Ok(i)
}

/// Whether an XDP program (link or netlink) is attached: program id, or 0.
pub fn attached_prog(ifindex: u32) -> Result<u32> {
    Ok(netlink::query_xdp(ifindex)?.1)
}

/// Attaches `prog` to `ifindex`. Refuses if a program is already attached in that mode
/// unless `replace` (which first removes the old one, link or not).
pub fn attach_xdp(
    prog: BorrowedFd<'_>,
    ifindex: u32,
    mode: XdpMode,
    method: AttachMethod,
    replace: bool,
) -> Result<XdpAttachment> {
    let existing = attached_prog(ifindex)?;
    if existing != 0 {
        if !replace {
            return Err(Error::Invalid(format!(
                "ifindex {ifindex} already has XDP program id {existing} attached: \
                 detach it first (bpfkit detach) or pass --replace"
            )));
        }
        detach_all(ifindex)?;
    }
    if method == AttachMethod::Link {
        let mut attr = LinkCreateAttr {
            prog_fd: prog.as_raw_fd() as u32,
            target_ifindex: ifindex,
            attach_type: BPF_XDP,
            flags: mode.flags(),
            ..Default::default()
        };
        // SAFETY: LinkCreateAttr carries no pointers.
        match unsafe { sys::sys_bpf(BPF_LINK_CREATE, &mut attr) } {
            Ok(fd) => {
                return Ok(XdpAttachment::Link {
                    // SAFETY: the kernel just returned this fd; nobody else owns it.
                    fd: unsafe { OwnedFd::from_raw_fd(fd as i32) },
                    ifindex,
                    pinned: None,
                });
            }
            // No XDP links on this kernel (before 5.9): fall back to netlink.
            Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL) | Some(libc::ENOSYS)) => {
                let _ = e;
            }
            Err(e) => {
                let hint = match e.raw_os_error() {
                    Some(libc::EBUSY) => "; another program or link holds the interface",
                    Some(libc::EOPNOTSUPP) => "; the driver has no native XDP: use --mode skb",
                    _ => "",
                };
                return Err(Error::Sys {
                    cmd: "BPF_LINK_CREATE",
                    what: format!("XDP on ifindex {ifindex}, {mode:?} mode{hint}"),
                    source: e,
                });
            }
        }
    }
    let flags = mode.flags()
        | if replace {
            0
        } else {
            XDP_FLAGS_UPDATE_IF_NOEXIST
        };
    netlink::set_xdp(ifindex, prog.as_raw_fd(), flags)?;
    Ok(XdpAttachment::Netlink {
        ifindex,
        flags: mode.flags(),
        keep: false,
    })
}

impl XdpAttachment {
    pub fn ifindex(&self) -> u32 {
        match self {
            XdpAttachment::Link { ifindex, .. } | XdpAttachment::Netlink { ifindex, .. } => {
                *ifindex
            }
        }
    }

    /// Pins a link at `path` (it then survives this handle and the process). Netlink
    /// attachments have nothing to pin: they are kept instead.
    pub fn pin(&mut self, path: &Path) -> Result<()> {
        match self {
            XdpAttachment::Link { fd, pinned, .. } => {
                pin::pin(fd.as_fd(), path)?;
                *pinned = Some(path.to_path_buf());
            }
            XdpAttachment::Netlink { keep, .. } => *keep = true,
        }
        Ok(())
    }

    /// Leaves the program attached after this handle is dropped.
    pub fn keep(&mut self) {
        if let XdpAttachment::Netlink { keep, .. } = self {
            *keep = true;
        }
    }

    /// The kernel's id of the link (None for netlink attachments).
    pub fn link_id(&self) -> Option<u32> {
        match self {
            XdpAttachment::Link { fd, .. } => pin::link_info(fd.as_fd()).ok().map(|i| i.id),
            _ => None,
        }
    }
}

impl Drop for XdpAttachment {
    fn drop(&mut self) {
        match self {
            // Closing the fd releases the link unless a pin holds it.
            XdpAttachment::Link { .. } => {}
            XdpAttachment::Netlink {
                ifindex,
                flags,
                keep,
            } => {
                if !*keep {
                    let _ = netlink::set_xdp(*ifindex, -1, *flags);
                }
            }
        }
    }
}

fn link_detach(fd: BorrowedFd<'_>) -> Result<()> {
    let mut attr = LinkDetachAttr {
        link_fd: fd.as_raw_fd() as u32,
    };
    // SAFETY: LinkDetachAttr carries no pointers.
    unsafe { sys::sys_bpf(BPF_LINK_DETACH, &mut attr) }.map_err(|e| Error::Sys {
        cmd: "BPF_LINK_DETACH",
        what: "XDP link".into(),
        source: e,
    })?;
    Ok(())
}

/// What [`detach_all`] removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Detached {
    /// Ids of XDP links detached.
    pub links: Vec<u32>,
    /// Program id that was attached (0 if none).
    pub prog_id: u32,
}

/// Removes every XDP program from `ifindex`: XDP links on it are detached
/// (`BPF_LINK_DETACH`; their pins stay but no longer attach anything), netlink
/// attachments removed in both modes.
pub fn detach_all(ifindex: u32) -> Result<Detached> {
    let prog_id = attached_prog(ifindex)?;
    let mut out = Detached {
        prog_id,
        ..Default::default()
    };
    for id in pin::list_ids(ObjKind::Link)? {
        let Ok(fd) = pin::fd_by_id(ObjKind::Link, id) else {
            continue;
        };
        let Ok(info) = pin::link_info(fd.as_fd()) else {
            continue;
        };
        // An XDP link names only an ifindex, and ifindexes repeat across network
        // namespaces: the link is this interface's only when its program is the one
        // netlink reports attached here (in this process's namespace).
        if info.link_type == BPF_LINK_TYPE_XDP
            && info.ifindex == ifindex
            && prog_id != 0
            && info.prog_id == prog_id
        {
            link_detach(fd.as_fd())?;
            out.links.push(id);
        }
    }
    for flags in [XDP_FLAGS_SKB_MODE, XDP_FLAGS_DRV_MODE] {
        match netlink::set_xdp(ifindex, -1, flags) {
            Ok(()) => {}
            // No native XDP on this driver: nothing attached in that mode.
            Err(e) if e.errno() == Some(libc::EOPNOTSUPP) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}
