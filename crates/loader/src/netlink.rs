//! rtnetlink `RTM_SETLINK` with `IFLA_XDP`: the legacy way to attach an XDP program
//! (the fallback when the kernel has no XDP links, and what a detached-from-process
//! attachment uses), and `RTM_GETLINK` to read what is attached.

use crate::error::{Error, Result};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

const RTM_NEWLINK: u16 = 16;
const RTM_GETLINK: u16 = 18;
const RTM_SETLINK: u16 = 19;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_ACK: u16 = 4;
const NLMSG_ERROR: u16 = 2;
const IFLA_XDP: u16 = 43;
const NETLINK_EXT_ACK: libc::c_int = 11;
const NLM_F_ACK_TLVS: u16 = 0x200;
const NLM_F_CAPPED: u16 = 0x100;
const NLMSGERR_ATTR_MSG: u16 = 1;
const NLA_F_NESTED: u16 = 1 << 15;
const IFLA_XDP_FD: u16 = 1;
const IFLA_XDP_ATTACHED: u16 = 2;
const IFLA_XDP_FLAGS: u16 = 3;
const IFLA_XDP_PROG_ID: u16 = 4;

fn attr(buf: &mut Vec<u8>, ty: u16, payload: &[u8]) {
    let len = 4 + payload.len();
    buf.extend_from_slice(&(len as u16).to_ne_bytes());
    buf.extend_from_slice(&ty.to_ne_bytes());
    buf.extend_from_slice(payload);
    while !buf.len().is_multiple_of(4) {
        buf.push(0);
    }
}

fn message(ty: u16, flags: u16, ifindex: u32, attrs: &[u8]) -> Vec<u8> {
    let mut m = Vec::new();
    let len = 16 + 16 + attrs.len();
    m.extend_from_slice(&(len as u32).to_ne_bytes());
    m.extend_from_slice(&ty.to_ne_bytes());
    m.extend_from_slice(&flags.to_ne_bytes());
    m.extend_from_slice(&1u32.to_ne_bytes()); // seq
    m.extend_from_slice(&0u32.to_ne_bytes()); // pid
                                              // struct ifinfomsg
    m.push(libc::AF_UNSPEC as u8);
    m.push(0);
    m.extend_from_slice(&0u16.to_ne_bytes());
    m.extend_from_slice(&(ifindex as i32).to_ne_bytes());
    m.extend_from_slice(&0u32.to_ne_bytes());
    m.extend_from_slice(&0u32.to_ne_bytes());
    m.extend_from_slice(attrs);
    m
}

fn socket() -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2) call, no pointers.
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::NETLINK_ROUTE,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: socket() just returned this fd; nobody else owns it.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let one: libc::c_int = 1;
    // SAFETY: `one` is a valid c_int for the duration of the call. Extended acks carry
    // the kernel's error message; failure to enable them is harmless.
    unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_NETLINK,
            NETLINK_EXT_ACK,
            &one as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as u32,
        )
    };
    Ok(fd)
}

/// Sends one request and returns the reply datagrams until the ack (or the error with
/// the kernel's extended-ack message, if any).
fn transact(req: &[u8]) -> Result<Vec<Vec<u8>>, (io::Error, Option<String>)> {
    transact_inner(req).map_err(|e| {
        let msg = LAST_EXT_ACK.with(|m| m.borrow_mut().take());
        (e, msg)
    })
}

thread_local! {
    static LAST_EXT_ACK: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

fn transact_inner(req: &[u8]) -> io::Result<Vec<Vec<u8>>> {
    LAST_EXT_ACK.with(|m| m.borrow_mut().take());
    let sock = socket()?;
    // SAFETY: req is a valid buffer of req.len() bytes for the duration of the call.
    let n = unsafe { libc::send(sock.as_raw_fd(), req.as_ptr().cast(), req.len(), 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut replies = Vec::new();
    loop {
        let mut buf = vec![0u8; 65536];
        // SAFETY: buf is writable for buf.len() bytes.
        let n = unsafe { libc::recv(sock.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        buf.truncate(n as usize);
        let mut off = 0;
        let mut done = false;
        while off + 16 <= buf.len() {
            let len = u32::from_ne_bytes(buf[off..off + 4].try_into().expect("4")) as usize;
            let ty = u16::from_ne_bytes(buf[off + 4..off + 6].try_into().expect("2"));
            if len < 16 || off + len > buf.len() {
                break;
            }
            if ty == NLMSG_ERROR {
                let err = i32::from_ne_bytes(buf[off + 16..off + 20].try_into().expect("4"));
                if err != 0 {
                    let flags = u16::from_ne_bytes(buf[off + 6..off + 8].try_into().expect("2"));
                    let msg = ext_ack_message(&buf[off..off + len], flags);
                    LAST_EXT_ACK.with(|m| *m.borrow_mut() = msg);
                    return Err(io::Error::from_raw_os_error(-err));
                }
                done = true;
            } else if ty == RTM_NEWLINK {
                replies.push(buf[off..off + len].to_vec());
                // A GETLINK reply comes without an ack when NLM_F_ACK is not set.
                done = true;
            }
            off += len.div_ceil(4) * 4;
        }
        if done {
            return Ok(replies);
        }
    }
}

/// Attaches `prog_fd` (or detaches, with `-1`) on `ifindex` with `XDP_FLAGS_*` `flags`.
pub fn set_xdp(ifindex: u32, prog_fd: i32, flags: u32) -> Result<()> {
    let mut nested = Vec::new();
    attr(&mut nested, IFLA_XDP_FD, &prog_fd.to_ne_bytes());
    if flags != 0 {
        attr(&mut nested, IFLA_XDP_FLAGS, &flags.to_ne_bytes());
    }
    let mut attrs = Vec::new();
    attr(&mut attrs, IFLA_XDP | NLA_F_NESTED, &nested);
    let req = message(RTM_SETLINK, NLM_F_REQUEST | NLM_F_ACK, ifindex, &attrs);
    transact(&req).map(|_| ()).map_err(|(e, msg)| {
        let msg = msg
            .map(|m| format!("; kernel says: {m}"))
            .unwrap_or_default();
        let hint = match e.raw_os_error() {
            Some(libc::EEXIST) => "; a program is already attached: pass --replace to replace it",
            Some(libc::EBUSY) => {
                "; a BPF link holds the interface: detach the link (bpfkit detach)"
            }
            Some(libc::EOPNOTSUPP) => "; the driver has no native XDP: use --mode skb",
            _ => "",
        };
        Error::Sys {
            cmd: "RTM_SETLINK IFLA_XDP",
            what: format!("ifindex {ifindex}, fd {prog_fd}, flags {flags:#x}{msg}{hint}"),
            source: e,
        }
    })
}

/// What `RTM_GETLINK` says is attached: (`XDP_ATTACHED_*` mode, program id).
pub fn query_xdp(ifindex: u32) -> Result<(u8, u32)> {
    let req = message(RTM_GETLINK, NLM_F_REQUEST, ifindex, &[]);
    let replies = transact(&req).map_err(|(e, _)| Error::Sys {
        cmd: "RTM_GETLINK",
        what: format!("ifindex {ifindex}"),
        source: e,
    })?;
    for r in replies {
        let mut off = 32;
        while off + 4 <= r.len() {
            let len = u16::from_ne_bytes([r[off], r[off + 1]]) as usize;
            let ty = u16::from_ne_bytes([r[off + 2], r[off + 3]]) & !NLA_F_NESTED;
            if len < 4 || off + len > r.len() {
                break;
            }
            if ty == IFLA_XDP {
                let (mut mode, mut id) = (0u8, 0u32);
                let mut o = off + 4;
                while o + 4 <= off + len {
                    let l = u16::from_ne_bytes([r[o], r[o + 1]]) as usize;
                    let t = u16::from_ne_bytes([r[o + 2], r[o + 3]]);
                    if l < 4 || o + l > off + len {
                        break;
                    }
                    match t {
                        IFLA_XDP_ATTACHED if l >= 5 => mode = r[o + 4],
                        IFLA_XDP_PROG_ID if l >= 8 => {
                            id = u32::from_ne_bytes(r[o + 4..o + 8].try_into().expect("4"))
                        }
                        _ => {}
                    }
                    o += l.div_ceil(4) * 4;
                }
                return Ok((mode, id));
            }
            off += len.div_ceil(4) * 4;
        }
    }
    Ok((0, 0))
}

/// The `NLMSGERR_ATTR_MSG` of an error message with extended-ack TLVs.
fn ext_ack_message(msg: &[u8], flags: u16) -> Option<String> {
    if flags & NLM_F_ACK_TLVS == 0 {
        return None;
    }
    // nlmsghdr (16) + error (4) + the offending request's header (16), or all of the
    // request unless NLM_F_CAPPED.
    let req_len = if flags & NLM_F_CAPPED != 0 {
        16
    } else {
        u32::from_ne_bytes(msg.get(20..24)?.try_into().ok()?) as usize
    };
    let mut off = 20 + req_len.div_ceil(4) * 4;
    while off + 4 <= msg.len() {
        let l = u16::from_ne_bytes([msg[off], msg[off + 1]]) as usize;
        let t = u16::from_ne_bytes([msg[off + 2], msg[off + 3]]);
        if l < 4 || off + l > msg.len() {
            return None;
        }
        if t == NLMSGERR_ATTR_MSG {
            let s = &msg[off + 4..off + l];
            let end = s.iter().position(|&b| b == 0).unwrap_or(s.len());
            return Some(String::from_utf8_lossy(&s[..end]).into_owned());
        }
        off += l.div_ceil(4) * 4;
    }
    None
}
