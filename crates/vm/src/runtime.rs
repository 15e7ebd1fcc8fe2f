//! The runtime state of a run (memory regions, maps, packet, clock, captured output) and
//! the XDP packet buffer laid out as the kernel's `BPF_PROG_TEST_RUN` lays it out.

use crate::engine::{Event, Redirect};
use crate::error::FaultKind;
use crate::maps::MapSet;
use crate::memory::{Buf, Region, RegionKind, Regions};
use bpfkit_isa::RawInsn;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Size of one call frame's stack (`MAX_BPF_STACK`).
pub const STACK_SIZE: u64 = 512;
/// Most nested call frames (`MAX_CALL_FRAMES`), including `bpf_loop` callbacks.
pub const MAX_CALL_FRAMES: usize = 8;
/// Most tail calls in one run (`MAX_TAIL_CALL_CNT` in include/linux/bpf.h; 33 since 5.17).
pub const MAX_TAIL_CALL_CNT: u32 = 33;
/// `PAGE_SIZE` on x86-64: the XDP test-run frame size.
pub const PAGE_SIZE: u64 = 4096;
/// `XDP_PACKET_HEADROOM`.
pub const XDP_PACKET_HEADROOM: u64 = 256;
/// `SKB_DATA_ALIGN(sizeof(struct skb_shared_info))` on x86-64: tailroom reserved at the
/// end of the frame.
pub const SKB_SHARED_INFO_SIZE: u64 = 320;
/// `sizeof(struct xdp_frame)`, reserved at the start of the headroom.
pub const XDP_FRAME_SIZE: u64 = 40;
/// Largest linear packet part: `PAGE_SIZE - XDP_PACKET_HEADROOM - tailroom` = 3520.
pub const MAX_LINEAR: u64 = PAGE_SIZE - XDP_PACKET_HEADROOM - SKB_SHARED_INFO_SIZE;
/// `MAX_SKB_FRAGS`.
pub const MAX_SKB_FRAGS: usize = 17;
/// `ETH_HLEN`.
pub const ETH_HLEN: u64 = 14;
/// Size of `struct xdp_md`.
pub const XDP_MD_SIZE: u64 = 24;

/// Base of the fake addresses that stand for BPF functions (`lddw rX, func` for callbacks).
pub const FUNC_HANDLE_BASE: u64 = 0xffff_b000_0000_0000;

/// The value a program sees for the function at slot `pc` of program `prog`.
pub fn func_handle(prog: usize, pc: usize) -> u64 {
    FUNC_HANDLE_BASE | ((prog as u64) << 24) | pc as u64
}

/// (program, slot) of a function handle.
pub fn handle_to_func(h: u64) -> Option<(usize, usize)> {
    if h & 0xffff_f000_0000_0000 != FUNC_HANDLE_BASE {
        return None;
    }
    let rest = h & 0x0000_0fff_ffff_ffff;
    Some(((rest >> 24) as usize, (rest & 0xff_ffff) as usize))
}

/// A network device known to the emulator (the ingress device of a run, `bpf_check_mtu`,
/// `bpf_fib_lookup`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    pub ifindex: u32,
    pub mtu: u32,
    /// `hard_header_len` (14 for Ethernet and for the loopback device).
    pub hard_header_len: u32,
    /// `real_num_rx_queues`: a run's `rx_queue_index` must be below it.
    pub rx_queues: u32,
}

impl Device {
    /// An Ethernet device with one receive queue.
    pub fn ethernet(ifindex: u32, mtu: u32) -> Device {
        Device {
            ifindex,
            mtu,
            hard_header_len: 14,
            rx_queues: 1,
        }
    }
}

/// One route of the user-supplied FIB table used by `bpf_fib_lookup`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FibRoute {
    /// `AF_INET` (2) or `AF_INET6` (10).
    pub family: u8,
    /// Destination prefix in network byte order (4 or 16 bytes).
    pub prefix: Vec<u8>,
    pub prefix_len: u32,
    /// 0 (`BPF_FIB_LKUP_RET_SUCCESS`) or one of the `BPF_FIB_LKUP_RET_*` codes.
    pub ret: u32,
    /// Output device.
    pub ifindex: u32,
    /// Next hop (gateway) address, if the route has one (network byte order).
    pub gateway: Option<Vec<u8>>,
    pub smac: [u8; 6],
    pub dmac: [u8; 6],
}

/// Run-independent settings of an engine.
#[derive(Debug, Clone)]
pub struct Config {
    /// Number of possible CPUs (per-CPU maps hold one value per CPU).
    pub ncpus: u32,
    /// Seed of `bpf_get_prandom_u32`.
    pub seed: u64,
    /// Instructions a run may execute before it is stopped (the kernel's verifier proves
    /// termination; the interpreter needs a bound for unverified input).
    pub insn_limit: u64,
    /// When true, every PERF_EVENT_ARRAY slot behaves as if a perf event were open on it,
    /// so `bpf_perf_event_output` succeeds and its records are captured. When false (the
    /// kernel's `BPF_PROG_TEST_RUN` situation), only slots set with a map update are open
    /// and the others return `-ENOENT`.
    pub perf_events_open: bool,
    /// Devices, for `bpf_check_mtu`/`bpf_fib_lookup` (the loopback device, ifindex 1, is
    /// always present).
    pub devices: Vec<Device>,
    /// Routes for `bpf_fib_lookup`.
    pub fib: Vec<FibRoute>,
    /// Run programs attached to DEVMAP/CPUMAP entries (`xdp/devmap`, `xdp/cpumap`), which
    /// `BPF_PROG_TEST_RUN` refuses with EINVAL. When true they run, and devmap programs may
    /// read `egress_ifindex` (then `Config::egress_ifindex`).
    pub allow_devmap_progs: bool,
    /// `egress_ifindex` seen by devmap programs when `allow_devmap_progs` is set.
    pub egress_ifindex: u32,
    /// `CONFIG_HZ` for `bpf_jiffies64` (250 on the kernel this project runs on).
    pub hz: u32,
    /// The "current task" seen by `bpf_get_current_pid_tgid` (`tgid << 32 | pid`),
    /// `bpf_get_current_uid_gid` (`gid << 32 | uid`) and `bpf_get_current_comm`. Under
    /// `BPF_PROG_TEST_RUN` the kernel reports the calling thread.
    pub current_pid_tgid: u64,
    pub current_uid_gid: u64,
    pub current_comm: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            ncpus: 1,
            seed: 0x5eed,
            insn_limit: 1 << 27,
            perf_events_open: false,
            devices: Vec::new(),
            fib: Vec::new(),
            allow_devmap_progs: false,
            egress_ifindex: 0,
            hz: 250,
            current_pid_tgid: 0,
            current_uid_gid: 0,
            current_comm: "bpfkit".into(),
        }
    }
}

impl Config {
    pub fn device(&self, ifindex: u32) -> Option<Device> {
        if let Some(d) = self.devices.iter().find(|d| d.ifindex == ifindex) {
            return Some(d.clone());
        }
        (ifindex == 1).then_some(Device {
            ifindex: 1,
            mtu: 65536,
            hard_header_len: 14,
            rx_queues: 1,
        })
    }
}

/// One executable program.
#[derive(Debug, Clone)]
pub struct Program {
    pub name: String,
    pub insns: Vec<RawInsn>,
    /// Where each slot came from (function, section slot, source line), for fault messages.
    pub origins: Vec<Option<String>>,
    pub prog_type: u32,
    pub expected_attach_type: Option<u32>,
}

impl Program {
    /// A program without origin information (raw bytes, assembler text).
    pub fn raw(name: impl Into<String>, insns: Vec<RawInsn>) -> Program {
        Program {
            name: name.into(),
            insns,
            origins: Vec::new(),
            prog_type: 0,
            expected_attach_type: None,
        }
    }
}

/// The XDP buffer of one run: a page with the kernel's headroom and tailroom, plus
/// fragments for packets longer than the linear part.
#[derive(Debug)]
pub struct XdpState {
    pub page: Buf,
    pub data_meta: u64,
    pub data: u64,
    pub data_end: u64,
    /// Fragments (each at most a page), as `BPF_PROG_TEST_RUN` builds them.
    pub frags: Vec<Vec<u8>>,
    /// `struct xdp_md` (its bytes are never read: loads are rewritten).
    pub ctx: Buf,
    pub ingress_ifindex: u32,
    pub rx_queue_index: u32,
    pub egress_ifindex: u32,
    /// The program may read `egress_ifindex` (devmap programs).
    pub devmap_prog: bool,
}

impl XdpState {
    pub fn hard_start(&self) -> u64 {
        self.page.addr()
    }
    /// `xdp_data_hard_end`: the end of the frame minus the reserved tailroom.
    pub fn hard_end(&self) -> u64 {
        self.page.addr() + PAGE_SIZE - SKB_SHARED_INFO_SIZE
    }
    pub fn frame_end(&self) -> u64 {
        self.page.addr() + XDP_FRAME_SIZE
    }
    pub fn frags_len(&self) -> u64 {
        self.frags.iter().map(|f| f.len() as u64).sum()
    }
    /// Linear bytes `from .. to` (absolute addresses inside the page).
    pub fn linear(&self, from: u64, to: u64) -> &[u8] {
        let base = self.page.addr();
        &self.page.as_slice()[(from - base) as usize..(to - base) as usize]
    }
}

/// Execution counts per instruction and outcomes per conditional jump, filled by the
/// interpreter while [`Runtime::coverage`] is `Some` (used by `bpfkit replay --coverage`).
/// Indexed `[program][slot]`; vectors grow on demand.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Coverage {
    pub hits: Vec<Vec<u64>>,
    /// Times each conditional jump was taken / fell through.
    pub taken: Vec<Vec<u64>>,
    pub not_taken: Vec<Vec<u64>>,
}

impl Coverage {
    fn slot(v: &mut Vec<Vec<u64>>, prog: usize, pc: usize) -> &mut u64 {
        if v.len() <= prog {
            v.resize(prog + 1, Vec::new());
        }
        let p = &mut v[prog];
        if p.len() <= pc {
            p.resize(pc + 1, 0);
        }
        &mut p[pc]
    }

    /// Instruction `pc` of program `prog` ran.
    #[inline]
    pub fn hit(&mut self, prog: usize, pc: usize) {
        *Self::slot(&mut self.hits, prog, pc) += 1;
    }

    /// The conditional jump at `pc` was evaluated.
    #[inline]
    pub fn branch(&mut self, prog: usize, pc: usize, taken: bool) {
        let v = if taken {
            &mut self.taken
        } else {
            &mut self.not_taken
        };
        *Self::slot(v, prog, pc) += 1;
    }
}

/// State of one engine: memory, maps, programs, and what the current run has produced.
pub struct Runtime {
    pub regions: Regions,
    pub maps: MapSet,
    pub programs: Arc<Vec<Program>>,
    pub config: Config,
    /// `MAX_CALL_FRAMES` stacks of `STACK_SIZE` bytes.
    stacks: Buf,
    pub xdp: Option<XdpState>,
    /// Raw-mode memory (r1).
    pub raw_mem: Option<Buf>,
    pub cpu: u32,
    pub time_ns: u64,
    rng: u64,
    pub events: Vec<Event>,
    pub redirect: Option<Redirect>,
    pub tail_calls: u32,
    pub insn_count: u64,
    /// Current call depth (0 = entry function), kept up to date by the interpreter so that
    /// helpers with callbacks know where to put the callback's frame.
    pub depth: usize,
    /// Reserved ring buffer records: address -> (map index, buffer).
    pub reserved: BTreeMap<u64, (usize, Buf)>,
    /// Spin locks held (addresses), to report double locking instead of hanging.
    pub locks: Vec<u64>,
    /// Program index of the running program (for fault messages from helpers).
    pub current_prog: usize,
    /// Instruction and branch coverage, recorded when `Some`.
    pub coverage: Option<Coverage>,
}

impl Runtime {
    pub fn new(programs: Vec<Program>, maps: MapSet, regions: Regions, config: Config) -> Runtime {
        let seed = config.seed;
        Runtime {
            regions,
            maps,
            programs: Arc::new(programs),
            config,
            stacks: Buf::new((STACK_SIZE as usize) * MAX_CALL_FRAMES),
            xdp: None,
            raw_mem: None,
            cpu: 0,
            time_ns: 0,
            rng: seed,
            events: Vec::new(),
            redirect: None,
            tail_calls: 0,
            insn_count: 0,
            depth: 0,
            reserved: BTreeMap::new(),
            locks: Vec::new(),
            current_prog: 0,
            coverage: None,
        }
    }

    /// Top of the stack of frame `depth` (the frame pointer `r10`).
    pub fn frame_top(&self, depth: usize) -> u64 {
        self.stacks.addr() + (depth as u64 + 1) * STACK_SIZE
    }

    /// Makes frame `depth`'s stack accessible, zeroed.
    pub fn enter_frame(&mut self, depth: usize) -> Result<u64, FaultKind> {
        if depth >= MAX_CALL_FRAMES {
            return Err(FaultKind::CallDepth(MAX_CALL_FRAMES));
        }
        let start = depth * STACK_SIZE as usize;
        self.stacks.as_mut_slice()[start..start + STACK_SIZE as usize].fill(0);
        let base = self.stacks.addr() + start as u64;
        self.regions.insert(Region::new(
            base,
            STACK_SIZE,
            RegionKind::Stack(depth as u8),
            true,
        ));
        Ok(base + STACK_SIZE)
    }

    /// Frame `depth` returned: its stack is no longer accessible.
    pub fn leave_frame(&mut self, depth: usize) {
        self.regions
            .remove(self.stacks.addr() + depth as u64 * STACK_SIZE);
    }

    /// The next value of `bpf_get_prandom_u32` (splitmix64, seeded by `Config::seed`).
    pub fn prandom_u32(&mut self) -> u32 {
        self.rng = self.rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (z ^ (z >> 31)) as u32
    }

    /// Clears per-run state before a run.
    pub fn begin_run(&mut self, cpu: u32, time_ns: u64) {
        self.cpu = cpu;
        self.time_ns = time_ns;
        self.events.clear();
        self.redirect = None;
        self.tail_calls = 0;
        self.insn_count = 0;
        self.depth = 0;
        self.locks.clear();
    }

    /// Releases per-run memory after a run (raw memory, packet, records never submitted,
    /// values of deleted map elements).
    pub fn end_run(&mut self) {
        for d in 0..MAX_CALL_FRAMES {
            self.leave_frame(d);
        }
        if let Some(m) = self.raw_mem.take() {
            self.regions.remove(m.addr());
        }
        if let Some(x) = self.xdp.take() {
            self.regions.remove(x.ctx.addr());
            let starts: Vec<u64> = self
                .regions
                .iter()
                .filter(|r| matches!(r.kind, RegionKind::Packet | RegionKind::Meta))
                .map(|r| r.start)
                .collect();
            for s in starts {
                self.regions.remove(s);
            }
        }
        let reserved = std::mem::take(&mut self.reserved);
        for addr in reserved.keys() {
            self.regions.remove(*addr);
        }
        self.maps.end_run(&mut self.regions);
        for m in &mut self.maps.maps {
            m.ringbuf_drain();
        }
    }

    /// Installs raw-mode memory and returns its address.
    pub fn set_raw_memory(&mut self, mem: &[u8]) -> u64 {
        let b = Buf::from_slice(mem);
        let addr = b.addr();
        self.regions.insert(Region::new(
            addr,
            mem.len() as u64,
            RegionKind::Memory,
            true,
        ));
        self.raw_mem = Some(b);
        addr
    }

    /// Builds the XDP buffer for `packet` the way `bpf_prog_test_run_xdp` does, and returns
    /// the context address.
    pub fn set_xdp(
        &mut self,
        packet: &[u8],
        ingress_ifindex: u32,
        rx_queue_index: u32,
        devmap_prog: bool,
    ) -> Result<u64, String> {
        let len = packet.len() as u64;
        if len < ETH_HLEN {
            return Err(format!(
                "packet of {len} bytes is shorter than an Ethernet header ({ETH_HLEN}); the kernel rejects it with EINVAL"
            ));
        }
        // xdp_convert_md_to_buff: without a device the run is on the loopback device's
        // queue 0; a device must exist (ENODEV) and have the queue (EINVAL).
        let ifindex = match (ingress_ifindex, rx_queue_index) {
            (0, 0) => 1,
            (0, q) => {
                return Err(format!(
                    "rx_queue_index {q} without ingress_ifindex; the kernel rejects it with EINVAL"
                ))
            }
            (i, _) => i,
        };
        let Some(dev) = self.config.device(ifindex) else {
            return Err(format!(
                "ingress_ifindex {ifindex}: no such device (the kernel rejects it with ENODEV); declare it in Config::devices (bpfkit run --device)"
            ));
        };
        if rx_queue_index >= dev.rx_queues {
            return Err(format!(
                "rx_queue_index {rx_queue_index}: device {ifindex} has {} receive queue(s); the kernel rejects it with EINVAL",
                dev.rx_queues
            ));
        }
        let linear = len.min(MAX_LINEAR);
        let rest = &packet[linear as usize..];
        let frags: Vec<Vec<u8>> = rest
            .chunks(PAGE_SIZE as usize)
            .map(|c| c.to_vec())
            .collect();
        if frags.len() > MAX_SKB_FRAGS {
            return Err(format!(
                "packet of {len} bytes needs {} fragments, more than MAX_SKB_FRAGS ({MAX_SKB_FRAGS}); the kernel rejects it with ENOMEM",
                frags.len()
            ));
        }
        let mut page = Buf::new(PAGE_SIZE as usize);
        let h = XDP_PACKET_HEADROOM as usize;
        page.as_mut_slice()[h..h + linear as usize].copy_from_slice(&packet[..linear as usize]);
        let data = page.addr() + XDP_PACKET_HEADROOM;
        let ctx = Buf::new(XDP_MD_SIZE as usize);
        let ctx_addr = ctx.addr();
        self.regions.insert(Region::new(
            ctx_addr,
            XDP_MD_SIZE,
            RegionKind::Context,
            false,
        ));
        self.xdp = Some(XdpState {
            page,
            data_meta: data,
            data,
            data_end: data + linear,
            frags,
            ctx,
            ingress_ifindex: ifindex,
            rx_queue_index,
            egress_ifindex: 0,
            devmap_prog,
        });
        self.sync_packet_regions();
        Ok(ctx_addr)
    }

    /// Re-registers the packet and metadata regions after the pointers moved.
    pub fn sync_packet_regions(&mut self) {
        let starts: Vec<u64> = self
            .regions
            .iter()
            .filter(|r| matches!(r.kind, RegionKind::Packet | RegionKind::Meta))
            .map(|r| r.start)
            .collect();
        for s in starts {
            self.regions.remove(s);
        }
        let Some(x) = &self.xdp else { return };
        let (meta, data, end) = (x.data_meta, x.data, x.data_end);
        if end > data {
            self.regions
                .insert(Region::new(data, end - data, RegionKind::Packet, true));
        }
        if data > meta {
            self.regions
                .insert(Region::new(meta, data - meta, RegionKind::Meta, true));
        }
    }

    /// A load from the context: the kernel rewrites `struct xdp_md` field loads into loads
    /// of the real pointers and device fields.
    pub fn ctx_load(&self, off: u64, size: u64) -> Result<u64, FaultKind> {
        let bad = Err(FaultKind::Context {
            off: off as i64,
            size,
            write: false,
        });
        let Some(x) = &self.xdp else { return bad };
        if size != 4 || off & 3 != 0 {
            return bad;
        }
        Ok(match off {
            0 => x.data,
            4 => x.data_end,
            8 => x.data_meta,
            12 => x.ingress_ifindex as u64,
            16 => x.rx_queue_index as u64,
            20 if x.devmap_prog => x.egress_ifindex as u64,
            _ => return bad,
        })
    }

    /// The packet as `BPF_PROG_TEST_RUN` returns it in `data_out`: metadata, data and
    /// fragments.
    pub fn xdp_output(&self) -> Vec<u8> {
        let Some(x) = &self.xdp else {
            return Vec::new();
        };
        let mut out = x.linear(x.data_meta, x.data_end).to_vec();
        for f in &x.frags {
            out.extend_from_slice(f);
        }
        out
    }
}
