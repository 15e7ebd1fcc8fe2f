//! End-to-end: corpus programs attached with the `bpfkit` binary to one end of a veth
//! pair inside a network namespace of this test's own; frames are sent into the other
//! end with a raw AF_PACKET socket (no traffic leaves the namespace, no IP routing), and
//! the test checks which frames arrive and the map counters (read with `bpfkit map`).
//!
//! Namespaces, pins and attachments are removed by Drop guards, also when a test fails.
//! Without root/CAP_BPF, `ip` or `nsenter` the tests print `*** SKIPPED: ... ***`.

mod common;

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use bpfkit_loader::pin::KernelObjects;

const BPFKIT: &str = env!("CARGO_BIN_EXE_bpfkit");

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn skip(test: &str) -> bool {
    if !bpfkit_loader::kernel_or_skip(test) {
        return true;
    }
    for tool in ["ip", "nsenter"] {
        let ok = Command::new(tool).arg("-V").output().is_ok()
            || Command::new(tool).arg("--version").output().is_ok();
        if !ok {
            eprintln!("*** SKIPPED: {test}: `{tool}` (iproute2/util-linux) not installed ***");
            return true;
        }
    }
    if !Path::new("/sys/fs/bpf").is_dir() {
        eprintln!("*** SKIPPED: {test}: no bpffs at /sys/fs/bpf ***");
        return true;
    }
    false
}

fn run(cmd: &mut Command) -> std::process::Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    out
}

fn must(cmd: &mut Command) -> String {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

static SEQ: AtomicU32 = AtomicU32::new(0);

/// A network namespace with a veth pair `va` <-> `vb`, both up, IPv6 off (so the
/// kernel sends nothing of its own), and a pin directory; all removed on drop.
struct Lab {
    ns: String,
    pins: PathBuf,
}

impl Lab {
    fn new() -> Lab {
        let n = SEQ.fetch_add(1, Ordering::Relaxed);
        let ns = format!("bpfkit-e2e-{}-{n}", std::process::id());
        let pins = PathBuf::from(format!("/sys/fs/bpf/{ns}"));
        must(Command::new("ip").args(["netns", "add", &ns]));
        let lab = Lab { ns, pins };
        for key in ["all", "default"] {
            must(lab.exec("sysctl").args([
                "-q",
                "-w",
                &format!("net.ipv6.conf.{key}.disable_ipv6=1"),
            ]));
        }
        must(Command::new("ip").args([
            "-n", &lab.ns, "link", "add", "va", "type", "veth", "peer", "name", "vb",
        ]));
        for dev in ["va", "vb"] {
            must(Command::new("ip").args(["-n", &lab.ns, "link", "set", dev, "up"]));
        }
        lab
    }

    /// A command run inside the namespace (network only: bpffs stays visible).
    fn exec(&self, prog: &str) -> Command {
        let mut c = Command::new("nsenter");
        c.arg(format!("--net=/var/run/netns/{}", self.ns))
            .arg("--")
            .arg(prog);
        c
    }

    fn bpfkit(&self) -> Command {
        self.exec(BPFKIT)
    }

    /// Runs `f` on a thread that entered the namespace.
    fn inside<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let path = format!("/var/run/netns/{}", self.ns);
        std::thread::scope(|s| {
            s.spawn(|| {
                let ns = std::fs::File::open(&path).unwrap();
                // SAFETY: setns on this thread only, with a valid netns fd.
                let r = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
                assert_eq!(r, 0, "setns: {}", std::io::Error::last_os_error());
                f()
            })
            .join()
            .unwrap()
        })
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).output();
        if let Ok(rd) = std::fs::read_dir(&self.pins) {
            for e in rd.flatten() {
                let _ = std::fs::remove_file(e.path());
            }
        }
        let _ = std::fs::remove_dir(&self.pins);
    }
}

fn packet_socket(ifname: &str, proto: u16) -> OwnedFd {
    // SAFETY: plain socket(2) call.
    let fd = unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            (proto.to_be()) as i32,
        )
    };
    assert!(
        fd >= 0,
        "socket(AF_PACKET): {}",
        std::io::Error::last_os_error()
    );
    // SAFETY: socket() just returned this fd.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let c = std::ffi::CString::new(ifname).unwrap();
    // SAFETY: c is NUL-terminated.
    let ifindex = unsafe { libc::if_nametoindex(c.as_ptr()) };
    assert!(ifindex != 0, "no interface {ifname}");
    // SAFETY: an all-zero sockaddr_ll is valid; fields set below.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = proto.to_be();
    sll.sll_ifindex = ifindex as i32;
    // SAFETY: sll is a valid sockaddr_ll of the given size.
    let r = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            &sll as *const libc::sockaddr_ll as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_ll>() as u32,
        )
    };
    assert_eq!(r, 0, "bind: {}", std::io::Error::last_os_error());
    let tv = libc::timeval {
        tv_sec: 0,
        tv_usec: 200_000,
    };
    // SAFETY: tv is a valid timeval of the given size.
    unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            &tv as *const libc::timeval as *const libc::c_void,
            std::mem::size_of::<libc::timeval>() as u32,
        )
    };
    fd
}

const SRC_MAC: [u8; 6] = [0x02, 0xbf, 0x6b, 0x69, 0x74, 0x01];

/// An Ethernet frame from our test MAC; `tag` (2 bytes) is written at the end so the
/// receiver can tell frames apart.
fn frame(ethertype: u16, l3: &[u8], tag: u16) -> Vec<u8> {
    let mut f = vec![0xff; 6];
    f.extend_from_slice(&SRC_MAC);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(l3);
    f.extend_from_slice(&tag.to_be_bytes());
    f
}

fn ipv4(src: [u8; 4], proto: u8) -> Vec<u8> {
    let mut h = vec![0x45, 0, 0, 40, 0, 0, 0x40, 0, 64, proto, 0, 0];
    h.extend_from_slice(&src);
    h.extend_from_slice(&[10, 9, 9, 9]);
    h.extend_from_slice(&[0u8; 20]);
    h
}

fn ipv6(nexthdr: u8) -> Vec<u8> {
    let mut h = vec![0x60, 0, 0, 0, 0, 8, nexthdr, 64];
    h.extend_from_slice(&[0xfd; 32]);
    h.extend_from_slice(&[0u8; 8]);
    h
}

/// Sends `frames` from `va`, the last one being a sentinel the program passes, and
/// returns the tags of the frames (from our MAC) that arrived on `vb`.
fn exchange(lab: &Lab, frames: &[Vec<u8>]) -> Vec<u16> {
    lab.inside(|| {
        let rx = packet_socket("vb", libc::ETH_P_ALL as u16);
        let tx = packet_socket("va", 0);
        for f in frames {
            // SAFETY: f is a valid buffer of f.len() bytes.
            let n = unsafe { libc::send(tx.as_raw_fd(), f.as_ptr().cast(), f.len(), 0) };
            assert_eq!(
                n as usize,
                f.len(),
                "send: {}",
                std::io::Error::last_os_error()
            );
        }
        let sentinel = u16::from_be_bytes(
            frames.last().unwrap()[frames.last().unwrap().len() - 2..]
                .try_into()
                .unwrap(),
        );
        let mut tags = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut quiet_after_sentinel = false;
        while Instant::now() < deadline && !quiet_after_sentinel {
            let mut buf = [0u8; 2048];
            // SAFETY: buf is writable for its length.
            let n = unsafe { libc::recv(rx.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n < 0 {
                // Timeout: stop once the sentinel came and nothing followed.
                quiet_after_sentinel = tags.contains(&sentinel);
                continue;
            }
            let f = &buf[..n as usize];
            if f.len() >= 16 && f[6..12] == SRC_MAC {
                tags.push(u16::from_be_bytes([f[f.len() - 2], f[f.len() - 1]]));
            }
        }
        tags
    })
}

fn json(out: &str) -> serde_json::Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("bad JSON ({e}): {out}"))
}

fn bytes_of(v: &serde_json::Value) -> Vec<u8> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|b| u8::from_str_radix(b.as_str().unwrap().trim_start_matches("0x"), 16).unwrap())
        .collect()
}

fn u64_at(b: &[u8], off: usize) -> u64 {
    u64::from_le_bytes(b[off..off + 8].try_into().unwrap())
}

/// Sum over CPUs of the u64 at `off` of a per-CPU entry (`bpfkit map lookup --format
/// bpftool`).
fn percpu_sum(entry: &serde_json::Value, off: usize) -> u64 {
    entry["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| u64_at(&bytes_of(&v["value"]), off))
        .sum()
}

fn lookup(map: &Path, key: &str) -> serde_json::Value {
    json(&must(
        Command::new(BPFKIT)
            .args(["map", "lookup"])
            .arg(map)
            .args(["--key", key, "--format", "bpftool"]),
    ))
}

fn attached_prog_id(lab: &Lab) -> u32 {
    lab.inside(|| {
        let i = bpfkit_loader::attach::ifindex("vb").unwrap();
        bpfkit_loader::attach::attached_prog(i).unwrap()
    })
}

#[test]
fn firewall_drops_blocked_sources_and_counts() {
    if skip("firewall_drops_blocked_sources_and_counts") {
        return;
    }
    let lab = Lab::new();
    let obj = root().join("corpus/obj/xdp_firewall.o");
    let out = must(
        lab.bpfkit()
            .arg("attach")
            .arg(&obj)
            .args([
                "--prog",
                "xdp_firewall",
                "--iface",
                "vb",
                "--mode",
                "skb",
                "--pin-dir",
            ])
            .arg(&lab.pins),
    );
    assert!(out.contains("via link id"), "{out}");
    assert_ne!(attached_prog_id(&lab), 0);
    // A second attach is refused without --replace.
    let again =
        run(lab
            .bpfkit()
            .arg("attach")
            .arg(&obj)
            .args(["--prog", "xdp_firewall", "--iface", "vb"]));
    assert_eq!(
        again.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    assert!(String::from_utf8_lossy(&again.stderr).contains("--replace"));

    must(
        Command::new(BPFKIT)
            .args(["map", "update"])
            .arg(lab.pins.join("blocklist"))
            .args(["--key", "0a000042", "--value", "0000000000000000"]),
    );
    must(
        Command::new(BPFKIT)
            .args(["map", "update"])
            .arg(lab.pins.join("prefix_blocklist"))
            .args(["--key", "18000000cb007100", "--value", "01"]),
    );

    let mut frames = Vec::new();
    for i in 0..3 {
        frames.push(frame(0x0800, &ipv4([10, 0, 0, 66], 17), 0x100 + i)); // exact drop
    }
    for i in 0..2 {
        frames.push(frame(0x0800, &ipv4([203, 0, 113, 9], 6), 0x200 + i)); // prefix drop
    }
    for i in 0..4 {
        frames.push(frame(0x0800, &ipv4([192, 0, 2, 1], 17), 0x300 + i)); // pass
    }
    frames.push(frame(0x0800, &[0x45, 0, 0, 20, 0, 0, 0, 0], 0x400)); // truncated: malformed
    frames.push(frame(0x0806, &[0u8; 28], 0x500)); // ARP: pass (sentinel)
    let got = exchange(&lab, &frames);
    let mut sorted = got.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        vec![0x300, 0x301, 0x302, 0x303, 0x500],
        "frames that arrived"
    );

    let stats = lab.pins.join("fw_stats");
    let count = |k: &str| percpu_sum(&lookup(&stats, k), 0);
    assert_eq!(count("00000000"), 5, "FW_PASS");
    assert_eq!(count("01000000"), 3, "FW_DROP_EXACT");
    assert_eq!(count("02000000"), 2, "FW_DROP_PREFIX");
    assert_eq!(count("03000000"), 1, "FW_MALFORMED");
    let drops = lookup(&lab.pins.join("blocklist"), "0a000042");
    assert_eq!(
        u64_at(&bytes_of(&drops["value"]), 0),
        3,
        "per-address drop count"
    );

    let out = must(lab.bpfkit().args(["detach", "--iface", "vb"]));
    assert!(out.contains("detached"), "{out}");
    assert_eq!(attached_prog_id(&lab), 0);
    // Detached: everything passes now.
    let got = exchange(&lab, &frames);
    assert_eq!(
        got.len(),
        frames.len(),
        "after detach every frame arrives: {got:x?}"
    );
}

fn counter_case(mode: &str) {
    let lab = Lab::new();
    let obj = root().join("corpus/obj/xdp_counter.o");
    must(
        lab.bpfkit()
            .arg("attach")
            .arg(&obj)
            .args([
                "--prog",
                "xdp_count",
                "--iface",
                "vb",
                "--mode",
                mode,
                "--pin-dir",
            ])
            .arg(&lab.pins),
    );
    let mut frames = Vec::new();
    for i in 0..3 {
        frames.push(frame(0x0800, &ipv4([192, 0, 2, 7], 17), 0x100 + i));
    }
    for i in 0..2 {
        frames.push(frame(0x86dd, &ipv6(58), 0x200 + i));
    }
    for i in 0..4 {
        frames.push(frame(0x88b5, &[0xab; 46], 0x300 + i));
    }
    let (l4, l6, lx) = (
        frames[0].len() as u64,
        frames[3].len() as u64,
        frames[5].len() as u64,
    );
    let got = exchange(&lab, &frames);
    assert_eq!(got.len(), 9, "{mode}: every frame passes: {got:x?}");

    let verdicts = lab.pins.join("verdicts");
    let pass = lookup(&verdicts, "02000000");
    assert_eq!(
        u64_at(&bytes_of(&pass["value"]), 0),
        9,
        "{mode}: XDP_PASS verdicts"
    );
    let drop = lookup(&verdicts, "01000000");
    assert_eq!(
        u64_at(&bytes_of(&drop["value"]), 0),
        0,
        "{mode}: XDP_DROP verdicts"
    );
    let proto = lab.pins.join("proto_stats");
    let udp = lookup(&proto, "11000000");
    assert_eq!(
        (percpu_sum(&udp, 0), percpu_sum(&udp, 8)),
        (3, 3 * l4),
        "{mode}: proto 17"
    );
    let icmp6 = lookup(&proto, "3a000000");
    assert_eq!(
        (percpu_sum(&icmp6, 0), percpu_sum(&icmp6, 8)),
        (2, 2 * l6),
        "{mode}: proto 58"
    );
    let et = lab.pins.join("ethertype_stats");
    for (key, n, len) in [("0008", 3, l4), ("dd86", 2, l6), ("b588", 4, lx)] {
        let v = bytes_of(&lookup(&et, key)["value"]);
        assert_eq!(
            (u64_at(&v, 0), u64_at(&v, 8)),
            (n, n * len),
            "{mode}: ethertype {key}"
        );
    }
    let dump = json(&must(
        Command::new(BPFKIT)
            .args(["map", "dump"])
            .arg(&et)
            .arg("--json"),
    ));
    assert_eq!(
        dump["ethertype_stats"].as_array().unwrap().len(),
        3,
        "{mode}: ethertypes seen: {dump}"
    );
    let bpftool = json(&must(
        Command::new(BPFKIT)
            .args(["map", "dump"])
            .arg(&et)
            .args(["--format", "bpftool"]),
    ));
    assert_eq!(bpftool.as_array().unwrap().len(), 3, "{mode}: {bpftool}");
    must(lab.bpfkit().args(["detach", "--iface", "vb"]));
    assert_eq!(attached_prog_id(&lab), 0);
}

#[test]
fn counter_counts_protocols_and_ethertypes_generic_xdp() {
    if skip("counter_counts_protocols_and_ethertypes_generic_xdp") {
        return;
    }
    counter_case("skb");
}

#[test]
fn counter_counts_protocols_and_ethertypes_native_xdp() {
    if skip("counter_counts_protocols_and_ethertypes_native_xdp") {
        return;
    }
    counter_case("drv");
}

#[test]
fn every_accepted_corpus_xdp_program_attaches() {
    if skip("every_accepted_corpus_xdp_program_attaches") {
        return;
    }
    let lab = Lab::new();
    let mut attached = 0;
    let mut dir: Vec<_> = std::fs::read_dir(root().join("corpus/obj"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "o"))
        .collect();
    dir.sort();
    for path in dir {
        let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
        let obj = bpfkit_object::Object::parse(&std::fs::read(&path).unwrap()).unwrap();
        // What libbpf made of it (corpus/expected/<name>.kernel.json); an object added
        // without expectations yet is tried, and skipped with a note if the kernel
        // refuses it.
        let expected =
            std::fs::read_to_string(root().join(format!("corpus/expected/{stem}.kernel.json")))
                .ok()
                .map(|s| json(&s));
        let programs: Vec<(String, Option<bool>, u32)> = match &expected {
            Some(e) => e["programs"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| {
                    (
                        p["name"].as_str().unwrap().to_string(),
                        Some(p["accepted"] == true),
                        p["type"].as_u64().unwrap() as u32,
                    )
                })
                .collect(),
            None => obj
                .programs
                .iter()
                .map(|p| (p.name.clone(), None, p.prog_type))
                .collect(),
        };
        for (name, accepted, ty) in &programs {
            if *accepted == Some(false) || *ty != 6 {
                continue;
            }
            let name = name.as_str();
            // Programs for devmap/cpumap entries cannot be attached to an interface.
            // (expected_attach_type BPF_XDP_DEVMAP / BPF_XDP_CPUMAP rather than BPF_XDP = 37).
            if obj
                .program(name)
                .is_some_and(|p| p.expected_attach_type.is_some_and(|t| t != 37))
            {
                continue;
            }
            let linked = obj.link().ok();
            if let Some(p) = linked.as_ref().and_then(|l| l.program(name)) {
                if !bpfkit_loader::program_or_skip(
                    "every_accepted_corpus_xdp_program_attaches",
                    &format!("{stem}/{name}"),
                    &p.insns,
                ) {
                    continue;
                }
            }
            let out = run(lab
                .bpfkit()
                .arg("attach")
                .arg(&path)
                .args(["--prog", name, "--iface", "vb", "--mode", "skb"]));
            let err = String::from_utf8_lossy(&out.stderr);
            if accepted.is_none() && out.status.code() == Some(1) && err.contains("kernel rejected")
            {
                eprintln!(
                    "note: {stem}/{name} (no kernel.json) rejected by the kernel: not attached"
                );
                continue;
            }
            assert!(out.status.success(), "{stem}/{name}: {err}");
            let id = attached_prog_id(&lab);
            assert_ne!(id, 0, "{stem}/{name}: nothing attached");
            must(lab.bpfkit().args(["detach", "--iface", "vb"]));
            assert_eq!(attached_prog_id(&lab), 0, "{stem}/{name}: still attached");
            attached += 1;
        }
    }
    assert!(attached >= 25, "only {attached} programs attached");
    eprintln!("{attached} corpus XDP programs attached and detached through bpfkit");
}

#[test]
fn failed_load_leaves_nothing_behind() {
    if skip("failed_load_leaves_nothing_behind") {
        return;
    }
    let lab = Lab::new();
    std::fs::create_dir_all(&lab.pins).unwrap();
    for name in ["map_value_oob", "null_map_value", "unchecked_access"] {
        let path = root().join(format!("corpus/obj/rejected/{name}.o"));
        let obj = bpfkit_object::Object::parse_named(&std::fs::read(&path).unwrap(), name).unwrap();
        let mut names: Vec<String> = obj
            .maps
            .iter()
            .map(|m| m.kernel_name().to_string())
            .collect();
        names.extend(
            obj.programs
                .iter()
                .map(|p| p.name.chars().take(15).collect()),
        );
        let names: Vec<&str> = names.iter().map(|s| s.as_str()).collect();
        let before = KernelObjects::snapshot().unwrap();
        let out = run(lab
            .bpfkit()
            .arg("attach")
            .arg(&path)
            .args([
                "--prog",
                obj.programs[0].name.as_str(),
                "--iface",
                "vb",
                "--pin-dir",
            ])
            .arg(&lab.pins));
        assert_eq!(
            out.status.code(),
            Some(1),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("verifier log") && err.contains("bpfkit: rejected at instruction"),
            "{name}: {err}"
        );
        assert!(err.contains(".c:"), "{name}: no C line: {err}");
        // Ids freed asynchronously: wait (bounded) before judging.
        let mut left = KernelObjects::snapshot()
            .unwrap()
            .new_since(&before)
            .named(&names);
        for _ in 0..300 {
            if left.progs.is_empty() && left.maps.is_empty() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
            left = KernelObjects::snapshot()
                .unwrap()
                .new_since(&before)
                .named(&names);
        }
        assert!(
            left.progs.is_empty() && left.maps.is_empty(),
            "{name}: left behind {left:?}"
        );
        assert!(
            !lab.pins.exists() || std::fs::read_dir(&lab.pins).unwrap().next().is_none(),
            "{name}: pins left"
        );
        assert_eq!(attached_prog_id(&lab), 0);
    }
}

#[test]
fn link_detaches_on_drop_unless_pinned_and_replace_is_explicit() {
    if skip("link_detaches_on_drop_unless_pinned_and_replace_is_explicit") {
        return;
    }
    use bpfkit_loader::attach::{attach_xdp, AttachMethod, XdpMode};
    use bpfkit_loader::object_load::{LoadOptions, LoadedObject};
    use std::os::fd::AsFd;
    let lab = Lab::new();
    let obj = LoadedObject::open(
        &root().join("corpus/obj/xdp_counter.o"),
        &LoadOptions::default(),
    )
    .unwrap();
    let prog = &obj.program("xdp_count").unwrap().program;
    let pin = lab.pins.clone();
    lab.inside(|| {
        let ifindex = bpfkit_loader::attach::ifindex("vb").unwrap();
        let attached = || bpfkit_loader::attach::attached_prog(ifindex).unwrap();
        // Link, dropped: detached.
        let link = attach_xdp(
            prog.as_fd(),
            ifindex,
            XdpMode::Skb,
            AttachMethod::Link,
            false,
        )
        .unwrap();
        assert!(link.link_id().is_some());
        assert_ne!(attached(), 0);
        // Busy: a second attach is refused, whatever the method.
        for m in [AttachMethod::Link, AttachMethod::Netlink] {
            let e = attach_xdp(prog.as_fd(), ifindex, XdpMode::Skb, m, false).unwrap_err();
            assert!(e.to_string().contains("--replace"), "{e}");
        }
        drop(link);
        assert_eq!(attached(), 0, "link not released on drop");
        // Netlink, dropped: detached too; kept: stays.
        let mut nl = attach_xdp(
            prog.as_fd(),
            ifindex,
            XdpMode::Skb,
            AttachMethod::Netlink,
            false,
        )
        .unwrap();
        assert_ne!(attached(), 0);
        // --replace swaps it for a link.
        let mut link = attach_xdp(
            prog.as_fd(),
            ifindex,
            XdpMode::Skb,
            AttachMethod::Link,
            true,
        )
        .unwrap();
        assert!(link.link_id().is_some());
        nl.keep();
        drop(nl); // already replaced; must not detach the link
        assert_ne!(attached(), 0);
        // Pinned link survives its handle; removing the pin releases it.
        std::fs::create_dir_all(&pin).unwrap();
        let path = pin.join("link");
        link.pin(&path).unwrap();
        drop(link);
        assert_ne!(attached(), 0, "pinned link was detached on drop");
        std::fs::remove_file(&path).unwrap();
        for _ in 0..300 {
            if attached() == 0 {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(attached(), 0, "unpinned link still attached");
        let nl = attach_xdp(
            prog.as_fd(),
            ifindex,
            XdpMode::Skb,
            AttachMethod::Netlink,
            false,
        )
        .unwrap();
        drop(nl);
        assert_eq!(attached(), 0, "netlink attachment not removed on drop");
    });
}

#[test]
fn prog_list_and_map_by_id_agree_with_the_load() {
    if skip("prog_list_and_map_by_id_agree_with_the_load") {
        return;
    }
    let lab = Lab::new();
    let out = json(&must(
        Command::new(BPFKIT)
            .args(["load", "--json"])
            .arg(root().join("corpus/obj/xdp_global_data.o"))
            .arg("--pin-dir")
            .arg(&lab.pins),
    ));
    let expected = json(
        &std::fs::read_to_string(root().join("corpus/expected/xdp_global_data.kernel.json"))
            .unwrap(),
    );
    let listed = json(&must(Command::new(BPFKIT).args(["prog", "list", "--json"])));
    for p in out["programs"].as_array().unwrap() {
        let row = listed
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == p["id"])
            .unwrap_or_else(|| panic!("prog {} not listed", p["id"]));
        assert_eq!(row["type"], "xdp");
        assert_eq!(row["tag"], p["tag"]);
        let want = expected["programs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == p["name"])
            .unwrap();
        assert_eq!(row["tag"], want["tag"], "tag differs from libbpf's");
    }
    // .rodata by id: initial values as compiled, and frozen (updates refused).
    let rodata = out["maps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"].as_str().unwrap().ends_with(".rodata"))
        .unwrap();
    let id = rodata["id"].to_string();
    let dump = json(&must(
        Command::new(BPFKIT).args(["map", "dump", "--id", &id, "--json"]),
    ));
    // The `replay --maps-in` layout: {kernel name: [[key hex, value hex]]} (no BTF key
    // type for global data, so no `formatted`).
    let name = rodata["name"].as_str().unwrap();
    let entries = dump[name].as_array().unwrap_or_else(|| panic!("{dump}"));
    assert_eq!(entries.len(), 1, "{dump}");
    let obj = bpfkit_object::Object::parse_named(
        &std::fs::read(root().join("corpus/obj/xdp_global_data.o")).unwrap(),
        "xdp_global_data",
    )
    .unwrap();
    let def = obj.maps.iter().find(|m| m.section == ".rodata").unwrap();
    let bpfkit_object::MapInit::Data(init) = &def.init else {
        panic!("no initial data")
    };
    let value: Vec<u8> = (0..entries[0][1].as_str().unwrap().len() / 2)
        .map(|i| {
            u8::from_str_radix(&entries[0][1].as_str().unwrap()[2 * i..2 * i + 2], 16).unwrap()
        })
        .collect();
    assert_eq!(&value[..init.len()], &init[..]);
    let zeros = "00".repeat(value.len());
    let upd = run(Command::new(BPFKIT).args([
        "map", "update", "--id", &id, "--key", "00000000", "--value", &zeros,
    ]));
    assert_eq!(
        upd.status.code(),
        Some(1),
        "frozen .rodata accepted an update"
    );
    // Malformed input: a clear error, exit 1, no panic.
    let bad = run(Command::new(BPFKIT).args(["map", "lookup", "--id", &id, "--key", "0000"]));
    assert_eq!(bad.status.code(), Some(1));
    let garbage = common::scratch("garbage.o");
    std::fs::write(&garbage, b"\x7fELF garbage").unwrap();
    let bad = run(Command::new(BPFKIT).arg("load").arg(&garbage));
    std::fs::remove_file(&garbage).unwrap();
    assert_eq!(
        bad.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
    assert!(!String::from_utf8_lossy(&bad.stderr).contains("panicked"));
}

/// `detach` in one network namespace leaves another namespace's XDP link alone, although
/// both interfaces have the same ifindex (XDP links name only the ifindex).
#[test]
fn detach_stays_in_its_network_namespace() {
    if skip("detach_stays_in_its_network_namespace") {
        return;
    }
    let (a, b) = (Lab::new(), Lab::new());
    let ifindex = |lab: &Lab| lab.inside(|| bpfkit_loader::attach::ifindex("vb").unwrap());
    assert_eq!(ifindex(&a), ifindex(&b), "fresh namespaces number vb alike");
    for lab in [&a, &b] {
        must(
            lab.bpfkit()
                .arg("attach")
                .arg(root().join("corpus/obj/xdp_counter.o"))
                .args([
                    "--prog",
                    "xdp_count",
                    "--iface",
                    "vb",
                    "--mode",
                    "skb",
                    "--pin-dir",
                ])
                .arg(&lab.pins),
        );
        assert_ne!(attached_prog_id(lab), 0);
    }
    let out = must(b.bpfkit().args(["detach", "--iface", "vb"]));
    assert!(out.contains("detached"), "{out}");
    assert_eq!(attached_prog_id(&b), 0, "detached where asked");
    assert_ne!(
        attached_prog_id(&a),
        0,
        "the other namespace's link was detached"
    );
    must(a.bpfkit().args(["detach", "--iface", "vb"]));
}

/// xdp-loader's habits: `attach -m skb|native` (native the default), `status [IFACE]`
/// with the mode, id, name and tag of what is attached, `unload IFACE`; and bpftool's
/// fields in `prog list --json` (map_ids, btf_id, loaded_at, uid, bytes_memlock).
#[test]
fn attach_modes_status_unload_and_bpftool_fields() {
    if skip("attach_modes_status_unload_and_bpftool_fields") {
        return;
    }
    let lab = Lab::new();
    let obj = root().join("corpus/obj/xdp_counter.o");
    let status = |lab: &Lab| json(&must(lab.bpfkit().args(["status", "vb", "--json"])))[0].clone();
    assert!(status(&lab)["id"].is_null());
    for (args, mode) in [(vec!["-m", "skb"], "skb"), (vec![], "native")] {
        let out = run(lab
            .bpfkit()
            .arg("attach")
            .arg(&obj)
            .args(["--prog", "xdp_count", "--iface", "vb"])
            .args(&args));
        let err = String::from_utf8_lossy(&out.stderr);
        if mode == "native" && !out.status.success() && err.contains("no native XDP") {
            eprintln!("note: veth without native XDP on this kernel: {err}");
            continue;
        }
        assert!(out.status.success(), "{args:?}: {err}");
        assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("in {mode} mode")));
        let s = status(&lab);
        assert_eq!(s["mode"], mode, "{s}");
        assert_eq!(s["id"], attached_prog_id(&lab), "{s}");
        assert_eq!(s["name"], "xdp_count", "{s}");
        assert_eq!(s["tag"].as_str().unwrap().len(), 16, "{s}");
        let text = must(lab.bpfkit().args(["status"]));
        assert!(
            text.lines()
                .any(|l| l.starts_with("vb ") && l.contains(mode)),
            "{text}"
        );
        // bpftool's fields for the attached program
        let listed = json(&must(Command::new(BPFKIT).args(["prog", "list", "--json"])));
        let row = listed
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == s["id"])
            .unwrap()
            .clone();
        assert_eq!(
            row["map_ids"].as_array().unwrap().len() as u64,
            row["nr_map_ids"].as_u64().unwrap(),
            "{row}"
        );
        assert!(row["nr_map_ids"].as_u64().unwrap() >= 1, "{row}");
        assert!(row["btf_id"].as_u64().unwrap() > 0, "{row}");
        let uid = std::os::unix::fs::MetadataExt::uid(&std::fs::metadata("/proc/self").unwrap());
        assert_eq!(row["uid"], uid, "{row}");
        assert!(row["bytes_memlock"].as_u64().unwrap() >= 4096, "{row}");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let at = row["loaded_at"].as_u64().unwrap();
        assert!(
            at <= now + 1 && at + 3600 > now,
            "loaded_at {at}, now {now}"
        );
        must(lab.bpfkit().args(["unload", "vb", "--all"]));
        assert_eq!(attached_prog_id(&lab), 0);
        assert!(status(&lab)["id"].is_null());
    }
    let o = run(lab.bpfkit().args(["status", "nosuchif0"]));
    assert_eq!(o.status.code(), Some(2));
}
