//! `bpf_fib_lookup` from the user-supplied table (`Config::fib`, `Config::devices`), with
//! the kernel's order of checks and the fields it writes (net/core/filter.c,
//! `bpf_xdp_fib_lookup` / `bpf_ipv4_fib_lookup`, Linux 6.18), compared with the kernel in
//! a network namespace by `tests/fib_kernel.rs`:
//!
//! - `plen` < 64 or flags outside `DIRECT|OUTPUT|SKIP_NEIGH|TBID|SRC|MARK` → -EINVAL;
//!   a family other than AF_INET/AF_INET6 → -EAFNOSUPPORT; IPv6 link-local, multicast or
//!   loopback source/destination → `NOT_FWDED`; `params->ifindex` not a known device →
//!   -ENODEV; an input device listed in `Config::fib_no_forwarding` → `FWD_DISABLED` (5);
//! - no route → `NOT_FWDED` (4); a route with `ret` (blackhole 1, unreachable 2,
//!   prohibit 3, ...) → that code, nothing written;
//! - `tot_len` above the output device's MTU → `FRAG_NEEDED` (8) with `mtu_result` = MTU;
//! - `DIRECT|TBID`: `tbid` is zeroed; a table other than main (254, the only one
//!   emulated) → `NOT_FWDED`;
//! - then `rt_metric`, `ifindex`, (for a gateway route) the destination = gateway and, with
//!   `BPF_FIB_LOOKUP_SRC`, the source = the route's `src` (IPv6 without one →
//!   `NO_SRC_ADDR` (9)) are written; with `BPF_FIB_LOOKUP_SKIP_NEIGH` it succeeds without MACs; a route whose
//!   `dmac` is all zeros has no resolved neighbour → `NO_NEIGH` (7) (fields above written);
//! - success: `smac`, `dmac`, VLAN fields zeroed, `mtu_result` = MTU, 0.

use crate::error::FaultKind;
use crate::runtime::Runtime;

const AF_INET: u8 = 2;
const AF_INET6: u8 = 10;
const EINVAL: i64 = 22;
const ENODEV: i64 = 19;
const EAFNOSUPPORT: i64 = 97;
/// `BPF_FIB_LOOKUP_DIRECT | OUTPUT | SKIP_NEIGH | TBID | SRC | MARK`.
const FLAGS: u32 = 0x3f;
const DIRECT: u32 = 1 << 0;
const SKIP_NEIGH: u32 = 1 << 2;
const TBID: u32 = 1 << 3;
const SRC: u32 = 1 << 4;
/// `RT_TABLE_MAIN`: the table `Config::fib` stands for.
const RT_TABLE_MAIN: u32 = 254;
const RET_NOT_FWDED: u64 = 4;
const RET_FWD_DISABLED: u64 = 5;
const RET_NO_NEIGH: u64 = 7;
const RET_FRAG_NEEDED: u64 = 8;
const RET_NO_SRC_ADDR: u64 = 9;

fn neg(errno: i64) -> u64 {
    (-errno) as u64
}

fn prefix_match(prefix: &[u8], plen: u32, addr: &[u8]) -> bool {
    if prefix.len() != addr.len() || plen as usize > prefix.len() * 8 {
        return false;
    }
    (0..plen as usize).all(|bit| {
        let m = 0x80u8 >> (bit % 8);
        prefix[bit / 8] & m == addr[bit / 8] & m
    })
}

/// `bpf_fib_lookup(ctx, params, plen, flags)`.
pub fn lookup(rt: &mut Runtime, a: &[u64; 5]) -> Result<u64, FaultKind> {
    if rt.xdp.is_none() {
        return Err(FaultKind::Helper {
            helper: "bpf_fib_lookup",
            msg: "needs an XDP context (this run has none)".into(),
        });
    }
    let (p, plen, flags) = (a[1], a[2] as u32 as i32, a[3] as u32);
    if plen < 64 || flags & !FLAGS != 0 {
        return Ok(neg(EINVAL));
    }
    let mut params = rt.regions.read_bytes(p, 64)?;
    let family = params[0];
    let alen = match family {
        AF_INET => 4,
        AF_INET6 => 16,
        _ => return Ok(neg(EAFNOSUPPORT)),
    };
    let dst = params[32..32 + alen].to_vec();
    // rt6_need_strict: link-local, multicast and loopback addresses are never forwarded.
    let strict = |a: &[u8]| {
        a[0] == 0xff
            || (a[0] == 0xfe && a[1] & 0xc0 == 0x80)
            || a[..15].iter().all(|b| *b == 0) && a[15] == 1
    };
    if family == AF_INET6 && (strict(&dst) || strict(&params[16..32])) {
        return Ok(RET_NOT_FWDED);
    }
    let ifindex = u32::from_le_bytes(params[8..12].try_into().expect("4 bytes"));
    if rt.config.device(ifindex).is_none() {
        return Ok(neg(ENODEV));
    }
    if rt.config.fib_no_forwarding.contains(&ifindex) {
        return Ok(RET_FWD_DISABLED);
    }
    // DIRECT|TBID looks up table `params->tbid` only; the emulated table is the main one.
    let tbid = u32::from_le_bytes(params[48..52].try_into().expect("4 bytes"));
    if flags & (DIRECT | TBID) == DIRECT | TBID {
        params[48..52].fill(0); // "zero out for vlan output"
        if tbid != RT_TABLE_MAIN {
            rt.regions.write_bytes(p, &params)?;
            return Ok(RET_NOT_FWDED);
        }
    }
    let best = rt
        .config
        .fib
        .iter()
        .filter(|r| r.family == family && prefix_match(&r.prefix, r.prefix_len, &dst))
        .max_by_key(|r| (r.prefix_len, std::cmp::Reverse(r.metric)))
        .cloned();
    let Some(route) = best else {
        return Ok(RET_NOT_FWDED);
    };
    if route.ret != 0 {
        return Ok(route.ret as u64);
    }
    let mtu = rt
        .config
        .device(route.ifindex)
        .map_or(1500, |d| d.mtu)
        .min(0xffff);
    let tot_len = u16::from_le_bytes([params[6], params[7]]) as u32;
    let ret = if tot_len > mtu {
        params[6..8].copy_from_slice(&(mtu as u16).to_le_bytes());
        RET_FRAG_NEEDED
    } else {
        params[12..16].copy_from_slice(&route.metric.to_le_bytes());
        params[8..12].copy_from_slice(&route.ifindex.to_le_bytes());
        if let Some(gw) = &route.gateway {
            let n = gw.len().min(alen);
            params[32..32 + n].copy_from_slice(&gw[..n]);
        }
        let no_src = flags & SRC != 0
            && match &route.src {
                Some(a) => {
                    let n = a.len().min(alen);
                    params[16..16 + alen].fill(0);
                    params[16..16 + n].copy_from_slice(&a[..n]);
                    false
                }
                None => {
                    params[16..16 + alen].fill(0);
                    family == AF_INET6
                }
            };
        if no_src {
            // IPv6 without a source address for the output device (IPv4 gets 0.0.0.0).
            RET_NO_SRC_ADDR
        } else if flags & SKIP_NEIGH == 0 && route.dmac == [0; 6] {
            RET_NO_NEIGH
        } else {
            if flags & SKIP_NEIGH == 0 {
                params[52..58].copy_from_slice(&route.smac);
                params[58..64].copy_from_slice(&route.dmac);
            }
            params[48..52].fill(0); // h_vlan_proto, h_vlan_TCI
            params[6..8].copy_from_slice(&(mtu as u16).to_le_bytes());
            0
        }
    };
    rt.regions.write_bytes(p, &params)?;
    Ok(ret)
}
