//! `bpf_fib_lookup` against the kernel: corpus `xdp_fib` runs through `BPF_PROG_TEST_RUN`
//! (bpftool, from inside a network namespace built with `ip`: a veth device, a neighbour,
//! gateway/blackhole/unreachable/prohibit routes) and on the interpreter with the equivalent
//! `Config::fib` table; return values and the whole output `struct bpf_fib_lookup` must be
//! equal. Needs root, `ip`, `nsenter` and `bpftool`; prints `SKIPPED: reason` otherwise.

use bpfkit_vm::{Config, Device, Engine, FibRoute, Interpreter, XdpInput};
use std::path::PathBuf;
use std::process::Command;

fn run(cmd: &[&str]) -> Result<String, String> {
    let o = Command::new(cmd[0])
        .args(&cmd[1..])
        .output()
        .map_err(|e| format!("{}: {e}", cmd.join(" ")))?;
    if !o.status.success() {
        return Err(format!(
            "{}: {}",
            cmd.join(" "),
            String::from_utf8_lossy(&o.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&o.stdout).into_owned())
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false)
}

/// The namespace and the pinned program, removed on drop.
struct Netns {
    name: String,
    pin: String,
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = run(&["ip", "netns", "del", &self.name]);
        let _ = std::fs::remove_file(&self.pin);
    }
}

const SMAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
const NMAC: [u8; 6] = [2, 0, 0, 0, 0, 2];

fn ifindex_of(ns: &str, dev: &str) -> Result<u32, String> {
    let link = run(&["ip", "-n", ns, "-o", "link", "show", dev])?;
    link.split(':')
        .next()
        .and_then(|s| s.trim().parse().ok())
        .ok_or_else(|| format!("cannot read the ifindex of {dev} from {link:?}"))
}

/// The namespace: d1 (02:00:00:00:00:01, 10.1.0.1/24, 2001:db8:1::1/64) with neighbour
/// .2 / ::2 and gateway, blackhole, unreachable and prohibit routes for both families;
/// d2 with forwarding disabled.
const SETUP: &str = "\
ip -n NS link set lo up
ip -n NS link add d1 type veth peer name d1p
ip -n NS link set d1 address 02:00:00:00:00:01 mtu 1500 up
ip -n NS link set d1p up
ip -n NS addr add 10.1.0.1/24 dev d1
ip -n NS neigh add 10.1.0.2 lladdr 02:00:00:00:00:02 dev d1 nud permanent
ip -n NS route add 10.2.0.0/16 via 10.1.0.2
ip -n NS route add 10.3.0.0/16 via 10.1.0.3
ip -n NS route add 10.7.0.0/16 via 10.1.0.2 metric 7
ip -n NS route add blackhole 10.4.0.0/16
ip -n NS route add unreachable 10.5.0.0/16
ip -n NS route add prohibit 10.6.0.0/16
ip netns exec NS sysctl -qw net.ipv4.conf.all.forwarding=1
ip netns exec NS sysctl -qw net.ipv6.conf.all.forwarding=1
ip -n NS link add d2 type veth peer name d2p
ip -n NS link set d2 up
ip -n NS link set d2p up
ip netns exec NS sysctl -qw net.ipv4.conf.d2.forwarding=0
ip netns exec NS sysctl -qw net.ipv6.conf.d2.forwarding=0
ip -n NS -6 addr add 2001:db8:1::1/64 dev d1 nodad
ip -n NS -6 neigh add 2001:db8:1::2 lladdr 02:00:00:00:00:02 dev d1 nud permanent
ip -n NS -6 route add 2001:db8:2::/48 via 2001:db8:1::2
ip -n NS -6 route add 2001:db8:3::/48 via 2001:db8:1::3
ip -n NS -6 route add blackhole 2001:db8:4::/48
ip -n NS -6 route add unreachable 2001:db8:5::/48
ip -n NS -6 route add prohibit 2001:db8:6::/48";

fn setup(obj: &str) -> Result<(Netns, u32, u32), String> {
    let ns = Netns {
        name: format!("bpfkit-fib-{}", std::process::id()),
        pin: format!("/sys/fs/bpf/bpfkit_fib_{}", std::process::id()),
    };
    let n = ns.name.as_str();
    run(&["ip", "netns", "add", n])?;
    for line in SETUP.lines() {
        let words: Vec<&str> = line
            .split_whitespace()
            .map(|w| if w == "NS" { n } else { w })
            .collect();
        run(&words)?;
    }
    let (d1, d2) = (ifindex_of(n, "d1")?, ifindex_of(n, "d2")?);
    let _ = std::fs::remove_file(&ns.pin);
    run(&["bpftool", "prog", "load", obj, &ns.pin, "type", "xdp"])?;
    Ok((ns, d1, d2))
}

/// The frame `xdp_fib` reads: Ethernet header (EtherType 0x88b6), params, flags, pad, ret.
fn frame(dst: [u8; 4], tot_len: u16, ifindex: u32, family: u8, flags: u32) -> Vec<u8> {
    frame_any(&dst, &[10, 1, 0, 1], tot_len, ifindex, family, flags)
}

fn v6(words: &[u16]) -> [u8; 16] {
    let mut a = [0u8; 16];
    for (i, w) in words.iter().enumerate() {
        a[2 * i..2 * i + 2].copy_from_slice(&w.to_be_bytes());
    }
    a
}

/// 2001:db8:NET::HOST
fn db8(net: u16, host: u16) -> [u8; 16] {
    v6(&[0x2001, 0xdb8, net, 0, 0, 0, 0, host])
}

/// Sets `params->tbid` (offset 48).
fn tbid(mut f: Vec<u8>, id: u32) -> Vec<u8> {
    f[14 + 48..14 + 52].copy_from_slice(&id.to_le_bytes());
    f
}

fn frame6(dst: [u8; 16], tot_len: u16, ifindex: u32, flags: u32) -> Vec<u8> {
    frame_any(&dst, &db8(1, 1), tot_len, ifindex, 10, flags)
}

fn frame_any(
    dst: &[u8],
    src: &[u8],
    tot_len: u16,
    ifindex: u32,
    family: u8,
    flags: u32,
) -> Vec<u8> {
    let mut p = [0u8; 64];
    p[0] = family;
    p[1] = 6;
    p[6..8].copy_from_slice(&tot_len.to_le_bytes());
    p[8..12].copy_from_slice(&ifindex.to_le_bytes());
    p[16..16 + src.len()].copy_from_slice(src);
    p[32..32 + dst.len()].copy_from_slice(dst);
    let mut f = vec![0u8; 12];
    f.extend_from_slice(&[0x88, 0xb6]);
    f.extend_from_slice(&p);
    f.extend_from_slice(&flags.to_le_bytes());
    f.extend_from_slice(&[0; 4]);
    f.extend_from_slice(&0x5555i64.to_le_bytes());
    f
}

#[allow(clippy::too_many_arguments)]
fn route_any(
    family: u8,
    prefix: &[u8],
    len: u32,
    ret: u32,
    ifindex: u32,
    gw: Option<&[u8]>,
    dmac: [u8; 6],
    metric: u32,
) -> FibRoute {
    FibRoute {
        family,
        prefix: prefix.to_vec(),
        prefix_len: len,
        ret,
        ifindex,
        gateway: gw.map(|g| g.to_vec()),
        smac: SMAC,
        dmac,
        metric,
        // The output device's address (d1's; the reject routes have no device).
        src: (ifindex != 0).then(|| {
            if family == 2 {
                vec![10, 1, 0, 1]
            } else {
                db8(1, 1).to_vec()
            }
        }),
    }
}

fn route6(
    prefix: [u8; 16],
    len: u32,
    ret: u32,
    ifindex: u32,
    gw: Option<[u8; 16]>,
    dmac: [u8; 6],
    metric: u32,
) -> FibRoute {
    route_any(
        10,
        &prefix,
        len,
        ret,
        ifindex,
        gw.as_ref().map(|g| &g[..]),
        dmac,
        metric,
    )
}

fn route(
    prefix: [u8; 4],
    len: u32,
    ret: u32,
    ifindex: u32,
    gw: Option<[u8; 4]>,
    dmac: [u8; 6],
    metric: u32,
) -> FibRoute {
    route_any(
        2,
        &prefix,
        len,
        ret,
        ifindex,
        gw.as_ref().map(|g| &g[..]),
        dmac,
        metric,
    )
}

#[test]
fn fib_lookup_matches_the_kernel_in_a_network_namespace() {
    if !is_root() {
        println!("SKIPPED: fib kernel comparison needs root (ip netns, BPF_PROG_TEST_RUN)");
        return;
    }
    for tool in ["ip", "nsenter", "bpftool"] {
        if run(&["which", tool]).is_err() {
            println!("SKIPPED: fib kernel comparison needs `{tool}`");
            return;
        }
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let obj = root.join("corpus/obj/xdp_fib.o");
    let obj_s = obj.to_string_lossy().into_owned();
    let (ns, d1, d2) = match setup(&obj_s) {
        Ok(x) => x,
        Err(e) => {
            println!("SKIPPED: cannot build the network namespace: {e}");
            return;
        }
    };
    // The interpreter's equivalent of that namespace.
    let none = [0u8; 6];
    let config = Config {
        devices: vec![Device::ethernet(d1, 1500), Device::ethernet(d2, 1500)],
        fib_no_forwarding: vec![d2],
        fib: vec![
            route([10, 1, 0, 0], 24, 0, d1, None, none, 0), // connected, no neighbour
            route([10, 1, 0, 2], 32, 0, d1, None, NMAC, 0), // the neighbour
            route([10, 2, 0, 0], 16, 0, d1, Some([10, 1, 0, 2]), NMAC, 0),
            route([10, 3, 0, 0], 16, 0, d1, Some([10, 1, 0, 3]), none, 0),
            route([10, 7, 0, 0], 16, 0, d1, Some([10, 1, 0, 2]), NMAC, 7),
            route([10, 4, 0, 0], 16, 1, 0, None, none, 0),
            route([10, 5, 0, 0], 16, 2, 0, None, none, 0),
            route([10, 6, 0, 0], 16, 3, 0, None, none, 0),
            route6(db8(1, 0), 64, 0, d1, None, none, 256),
            route6(db8(1, 2), 128, 0, d1, None, NMAC, 256),
            route6(db8(2, 0), 48, 0, d1, Some(db8(1, 2)), NMAC, 1024),
            route6(db8(3, 0), 48, 0, d1, Some(db8(1, 3)), none, 1024),
            route6(db8(4, 0), 48, 1, 0, None, none, 1024),
            route6(db8(5, 0), 48, 2, 0, None, none, 1024),
            route6(db8(6, 0), 48, 3, 0, None, none, 1024),
        ],
        ..Config::default()
    };
    let linked = bpfkit_object::Object::parse(&std::fs::read(&obj).expect("object"))
        .expect("parse")
        .link()
        .expect("link");
    let mut vm = Interpreter::new(&linked, config).expect("interpreter");
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("via gateway", frame([10, 2, 0, 9], 0, d1, 2, 0)),
        ("connected neighbour", frame([10, 1, 0, 2], 0, d1, 2, 0)),
        (
            "connected, no neighbour",
            frame([10, 1, 0, 77], 0, d1, 2, 0),
        ),
        (
            "gateway without neighbour",
            frame([10, 3, 0, 9], 0, d1, 2, 0),
        ),
        ("route metric", frame([10, 7, 0, 9], 1000, d1, 2, 0)),
        ("blackhole", frame([10, 4, 0, 1], 0, d1, 2, 0)),
        ("unreachable", frame([10, 5, 0, 1], 0, d1, 2, 0)),
        ("prohibit", frame([10, 6, 0, 1], 0, d1, 2, 0)),
        ("MTU exceeded", frame([10, 2, 0, 9], 2000, d1, 2, 0)),
        ("MTU equal", frame([10, 2, 0, 9], 1500, d1, 2, 0)),
        ("no route", frame([192, 168, 99, 1], 0, d1, 2, 0)),
        ("SKIP_NEIGH", frame([10, 3, 0, 9], 0, d1, 2, 4)),
        ("OUTPUT flag", frame([10, 2, 0, 9], 0, d1, 2, 2)),
        ("input on lo", frame([10, 2, 0, 9], 0, 1, 2, 0)),
        ("unknown ifindex", frame([10, 2, 0, 9], 0, 777, 2, 0)),
        ("unknown family", frame([10, 2, 0, 9], 0, d1, 99, 0)),
        ("bad flags", frame([10, 2, 0, 9], 0, d1, 2, 0x40)),
        ("forwarding disabled", frame([10, 2, 0, 9], 0, d2, 2, 0)),
        ("v6 via gateway", frame6(db8(2, 9), 0, d1, 0)),
        ("v6 connected neighbour", frame6(db8(1, 2), 0, d1, 0)),
        ("v6 connected, no neighbour", frame6(db8(1, 0x77), 0, d1, 0)),
        ("v6 gateway without neighbour", frame6(db8(3, 9), 0, d1, 0)),
        ("v6 blackhole", frame6(db8(4, 1), 0, d1, 0)),
        ("v6 unreachable", frame6(db8(5, 1), 0, d1, 0)),
        ("v6 prohibit", frame6(db8(6, 1), 0, d1, 0)),
        ("v6 MTU exceeded", frame6(db8(2, 9), 1501, d1, 0)),
        ("v6 no route", frame6(db8(0x99, 1), 0, d1, 0)),
        ("v6 SKIP_NEIGH", frame6(db8(3, 9), 0, d1, 4)),
        (
            "v6 link-local destination",
            frame6(v6(&[0xfe80, 0, 0, 0, 0, 0, 0, 1]), 0, d1, 0),
        ),
        (
            "v6 multicast, unknown ifindex",
            frame6(v6(&[0xff02, 0, 0, 0, 0, 0, 0, 1]), 0, 777, 0),
        ),
        ("v6 unknown ifindex", frame6(db8(2, 9), 0, 777, 0)),
        ("v6 forwarding disabled", frame6(db8(2, 9), 0, d2, 0)),
        (
            "SRC flag",
            frame_any(&[10, 2, 0, 9], &[0; 4], 0, d1, 2, 0x10),
        ),
        (
            "v6 SRC flag",
            frame_any(&db8(2, 9), &[0; 16], 0, d1, 10, 0x10),
        ),
        ("DIRECT", frame([10, 2, 0, 9], 0, d1, 2, 1)),
        (
            "DIRECT|TBID main",
            tbid(frame([10, 2, 0, 9], 0, d1, 2, 9), 254),
        ),
        (
            "DIRECT|TBID 100",
            tbid(frame([10, 2, 0, 9], 0, d1, 2, 9), 100),
        ),
        (
            "TBID without DIRECT",
            tbid(frame([10, 2, 0, 9], 0, d1, 2, 8), 100),
        ),
        ("v6 DIRECT|TBID 100", tbid(frame6(db8(2, 9), 0, d1, 9), 100)),
        ("MARK", frame([10, 2, 0, 9], 0, d1, 2, 0x20)),
    ];
    let dir = std::env::temp_dir();
    let fin = dir.join(format!("bpfkit_fib_in_{}", std::process::id()));
    let fout = dir.join(format!("bpfkit_fib_out_{}", std::process::id()));
    let netns = format!("--net=/run/netns/{}", ns.name);
    let mut diffs = Vec::new();
    for (name, f) in &cases {
        std::fs::write(&fin, f).expect("write input");
        let out = run(&[
            "nsenter",
            &netns,
            "bpftool",
            "prog",
            "run",
            "pinned",
            &ns.pin,
            "data_in",
            &fin.to_string_lossy(),
            "data_out",
            &fout.to_string_lossy(),
        ])
        .expect("bpftool prog run");
        assert!(out.contains("Return value: 3"), "{name}: {out}");
        let kernel = std::fs::read(&fout).expect("data_out");
        let o = vm
            .run_xdp(
                0,
                &XdpInput {
                    packet: f,
                    ..Default::default()
                },
            )
            .expect("interpreter run");
        assert_eq!(o.retval, 3, "{name}");
        let ret = |b: &[u8]| i64::from_le_bytes(b[14 + 72..14 + 80].try_into().unwrap());
        if kernel != o.packet {
            diffs.push(format!(
                "{name}: kernel ret {} params {}\n{:>w$} interp ret {} params {}",
                ret(&kernel),
                hex(&kernel[14..78]),
                "",
                ret(&o.packet),
                hex(&o.packet[14..78]),
                w = name.len()
            ));
        }
    }
    let _ = std::fs::remove_file(&fin);
    let _ = std::fs::remove_file(&fout);
    assert!(
        diffs.is_empty(),
        "{} of {} lookups differ:\n{}",
        diffs.len(),
        cases.len(),
        diffs.join("\n")
    );
    println!("fib_lookup: {} lookups equal to the kernel", cases.len());
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
