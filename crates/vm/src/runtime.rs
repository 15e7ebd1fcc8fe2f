//! The runtime state of a run (memory regions, maps, packet, clock, captured output) and
//! the XDP packet buffer laid out as the kernel's `BPF_PROG_TEST_RUN` lays it out.

use crate::engine::{Event, Redirect, XdpInput, XdpOutput};
use crate::error::{Fault, FaultKind, VmError};
use crate::maps::MapSet;
use crate::memory::{Buf, Region, RegionKind, Regions};
use bpfkit_isa::RawInsn;
use bpfkit_object::model::prog_type;
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
    /// The next hop's MAC; all zeros: no resolved neighbour (`BPF_FIB_LKUP_RET_NO_NEIGH`).
    pub dmac: [u8; 6],
    /// `rt_metric` written on success (the route's priority).
    pub metric: u32,
    /// Preferred source address (`ip route ... src`, else the output device's address),
    /// written with `BPF_FIB_LOOKUP_SRC`; `None`: IPv6 gives `NO_SRC_ADDR`, IPv4 zeros.
    pub src: Option<Vec<u8>>,
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
    /// Devices (ifindex) with forwarding disabled (`net.ipv{4,6}.conf.DEV.forwarding = 0`):
    /// `bpf_fib_lookup` with that input `ifindex` returns `BPF_FIB_LKUP_RET_FWD_DISABLED`.
    pub fib_no_forwarding: Vec<u32>,
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
    /// The current task's cgroup in the default (v2) hierarchy: cgroup ids from the root
    /// (1) down to its own (`bpf_get_current_cgroup_id` is the last,
    /// `bpf_get_current_ancestor_cgroup_id(level)` the one at `level`).
    pub current_cgroup: Vec<u64>,
    /// The current task's net_cls class id (`bpf_get_cgroup_classid`; 0 without net_cls).
    pub current_classid: u32,
    /// (device, inode) of the current task's pid namespace, as `stat /proc/self/ns/pid`
    /// shows them (`bpf_get_ns_current_pid_tgid`; the pid and tgid in it are those of
    /// `current_pid_tgid`). Default: the initial pid namespace on nsfs device 4.
    pub current_pidns: (u64, u64),
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
            fib_no_forwarding: Vec::new(),
            allow_devmap_progs: false,
            egress_ifindex: 0,
            hz: 250,
            current_pid_tgid: 0,
            current_uid_gid: 0,
            current_comm: "bpfkit".into(),
            current_cgroup: vec![1],
            current_classid: 0,
            current_pidns: (4, 0xefff_fffc),
        }
    }
}

impl Config {
    #[inline]
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
    /// Points the state at a fresh packet of `linear` bytes at the headroom (no metadata,
    /// no egress device) and returns what loads of `struct xdp_md` fields 0..20 give.
    #[inline(always)]
    fn start(
        &mut self,
        linear: u64,
        ifindex: u32,
        rx_queue_index: u32,
        devmap_prog: bool,
    ) -> [u64; 5] {
        let data = self.page.addr() + XDP_PACKET_HEADROOM;
        self.data_meta = data;
        self.data = data;
        self.data_end = data + linear;
        self.ingress_ifindex = ifindex;
        self.rx_queue_index = rx_queue_index;
        self.egress_ifindex = 0;
        self.devmap_prog = devmap_prog;
        [
            data,
            data + linear,
            data,
            ifindex as u64,
            rx_queue_index as u64,
        ]
    }

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
    /// Boxed so that starting and ending a run moves a pointer, not the state.
    pub xdp: Option<Box<XdpState>>,
    /// Raw-mode memory (r1).
    pub raw_mem: Option<Buf>,
    pub cpu: u32,
    pub time_ns: u64,
    rng: u64,
    pub events: Vec<Event>,
    pub redirect: Option<Redirect>,
    pub tail_calls: u32,
    pub insn_count: u64,
    /// Per call frame: `may_goto` iterations left (the kernel's hidden stack slot, set to
    /// `BPF_MAX_LOOPS` when the frame is entered).
    pub may_goto: [u64; MAX_CALL_FRAMES],
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
    /// BPF timers (`timer.rs`) and user ring buffer samples (`user_ringbuf.rs`).
    pub timers: crate::timer::Timers,
    pub user_ringbufs: crate::user_ringbuf::UserRingbufs,
    /// The XDP state of the previous run (page, context buffer, fragment list), reused by
    /// the next one (no allocation per run).
    spare_xdp: Option<Box<XdpState>>,
    /// `xdp` holds the state of a finished run, kept set up for the next XDP run (its
    /// context and packet regions stay registered; see `end_run`).
    xdp_parked: bool,
    /// (number of maps, whether one of them is a ring buffer), for `end_run`.
    ringbuf_maps: (usize, bool),
    /// Byte range of the XDP page (current or spare) that may be non-zero: the union of
    /// every packet and metadata range registered since the page was last cleared.
    page_dirty: (u64, u64),
    /// The interpreter's pre-decoded programs (built on the first run).
    pub(crate) decoded: Option<Arc<crate::interp::Decoded>>,
    /// Pre-decoded programs replaced since (kept: a run may still use them).
    pub(crate) decoded_retired: Vec<Arc<crate::interp::Decoded>>,
    /// Run the interpreter's exact loop only (each raw instruction decoded and counted
    /// as it runs), as it does while coverage is recorded; for tests comparing it with
    /// the fast loop.
    pub exact_interp: bool,
    /// Metadata bytes at the front of the output of the last XDP run finished with
    /// [`Runtime::finish_xdp_into_with`] (see `Engine::last_xdp_meta_len`).
    pub last_xdp_meta_len: usize,
}

/// `BPF_XDP_DEVMAP` (`enum bpf_attach_type`).
const BPF_XDP_DEVMAP: u32 = 33;
/// `BPF_XDP_CPUMAP`.
const BPF_XDP_CPUMAP: u32 = 35;
/// `XDP_REDIRECT`.
const XDP_REDIRECT: u64 = 4;

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
            may_goto: [bpfkit_isa::opcode::BPF_MAX_LOOPS; MAX_CALL_FRAMES],
            depth: 0,
            reserved: BTreeMap::new(),
            locks: Vec::new(),
            current_prog: 0,
            coverage: None,
            timers: Default::default(),
            user_ringbufs: Default::default(),
            spare_xdp: None,
            ringbuf_maps: (usize::MAX, true),
            xdp_parked: false,
            page_dirty: (0, 0),
            decoded: None,
            decoded_retired: Vec::new(),
            exact_interp: false,
            last_xdp_meta_len: 0,
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
        self.may_goto[depth] = bpfkit_isa::opcode::BPF_MAX_LOOPS;
        let start = depth * STACK_SIZE as usize;
        // Only what checked writes touched since the frame was last cleared (every write
        // to a frame registered here goes through `Regions::check`/`check_fast`).
        let dirty = self.regions.stack_dirty_from(depth) as usize;
        if dirty < STACK_SIZE as usize {
            self.stacks.as_mut_slice()[start + dirty..start + STACK_SIZE as usize].fill(0);
        }
        let base = self.stacks.addr() + start as u64;
        self.regions.insert_cleared_stack(
            Region::new(base, STACK_SIZE, RegionKind::Stack(depth as u8), true),
            depth,
        );
        Ok(base + STACK_SIZE)
    }

    /// Frame `depth` returned: its stack is no longer accessible.
    pub fn leave_frame(&mut self, depth: usize) {
        self.regions
            .remove_stack(depth, self.stacks.addr() + depth as u64 * STACK_SIZE);
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
    #[inline]
    pub fn begin_run(&mut self, cpu: u32, time_ns: u64) {
        self.cpu = cpu;
        self.time_ns = time_ns;
        self.events.clear();
        // Repeated runs without `end_run` in between (`run --repeat`, the bench): values
        // replaced or deleted by the last run go to the free lists now, as the kernel frees
        // them, instead of piling up for the whole loop. Empty after every `end_run`.
        if !self.maps.graveyard.is_empty() {
            self.maps.end_run(&mut self.regions);
        }
        self.redirect = None;
        self.tail_calls = 0;
        self.insn_count = 0;
        self.depth = 0;
        self.locks.clear();
    }

    /// Releases per-run memory after a run (raw memory, packet, records never submitted,
    /// values of deleted map elements).
    #[inline(always)]
    pub fn end_run(&mut self) {
        self.regions
            .clear_stacks(self.stacks.addr(), MAX_CALL_FRAMES);
        if let Some(m) = self.raw_mem.take() {
            self.regions.remove(m.addr());
        }
        // The XDP frame stays set up for the next run ("parked"), which then only rewrites
        // what differs; anything else that runs code first releases it
        // (`release_parked_xdp`). Fragments are released now (rare, and each run builds
        // its own).
        if let Some(x) = &self.xdp {
            if x.frags.is_empty() {
                self.xdp_parked = true;
            } else {
                self.release_xdp();
            }
        }
        if !self.reserved.is_empty() {
            let reserved = std::mem::take(&mut self.reserved);
            for addr in reserved.keys() {
                self.regions.remove(*addr);
            }
        }
        if !self.maps.graveyard.is_empty() {
            self.maps.end_run(&mut self.regions);
        }
        // Ring buffers: every record was captured as an event, so the rings are empty
        // again. Which maps are ring buffers is remembered per map count (maps are only
        // ever added, and never change type).
        if self.ringbuf_maps.0 != self.maps.maps.len() {
            self.ringbuf_maps = (
                self.maps.maps.len(),
                self.maps.maps.iter().any(|m| {
                    use bpfkit_object::model::map_type as mt;
                    matches!(m.map_type(), mt::RINGBUF | mt::USER_RINGBUF)
                }),
            );
        }
        if self.ringbuf_maps.1 {
            for m in &mut self.maps.maps {
                m.ringbuf_drain();
            }
        }
    }

    /// Releases the XDP frame a finished run left set up (see `end_run`), before code runs
    /// that is not part of an XDP run (raw-mode runs, timer callbacks).
    #[inline]
    pub fn release_parked_xdp(&mut self) {
        if self.xdp_parked {
            self.release_xdp();
        }
    }

    /// Installs raw-mode memory and returns its address.
    pub fn set_raw_memory(&mut self, mem: &[u8]) -> u64 {
        self.release_parked_xdp();
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
        let mut md = [0; 5];
        self.set_xdp_md(
            packet,
            ingress_ifindex,
            rx_queue_index,
            devmap_prog,
            &mut md,
        )
    }

    /// [`Runtime::set_xdp`], also writing what loads of `struct xdp_md` fields 0..20 give
    /// (data, data_end, data_meta, ingress_ifindex, rx_queue_index) into `md` as it sets
    /// them (the JIT's copy of those fields; reading them back from the state just written
    /// would stall on store forwarding).
    #[inline]
    fn set_xdp_md(
        &mut self,
        packet: &[u8],
        ingress_ifindex: u32,
        rx_queue_index: u32,
        devmap_prog: bool,
        md: &mut [u64; 5],
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
        let nfrags = rest.len().div_ceil(PAGE_SIZE as usize);
        if nfrags > MAX_SKB_FRAGS {
            return Err(format!(
                "packet of {len} bytes needs {nfrags} fragments, more than MAX_SKB_FRAGS ({MAX_SKB_FRAGS}); the kernel rejects it with ENOMEM"
            ));
        }
        if self.xdp_parked && rest.is_empty() {
            // The previous run's frame, still set up: rewrite what differs.
            self.xdp_parked = false;
            if let Some(x) = self.xdp.as_mut() {
                let data = x.page.addr() + XDP_PACKET_HEADROOM;
                if x.frags.is_empty() && self.regions.reuse_xdp(x.ctx.addr(), data, linear) {
                    Self::load_page(&mut x.page, &mut self.page_dirty, packet);
                    *md = x.start(linear, ifindex, rx_queue_index, devmap_prog);
                    return Ok(x.ctx.addr());
                }
            }
        }
        self.release_xdp();
        // The state of the previous run: its page, cleared where that run may have
        // written, is what `bpf_prog_test_run_xdp` gives: a zeroed frame with the packet
        // at the headroom.
        let mut x = self.spare_xdp.take().unwrap_or_else(|| {
            Box::new(XdpState {
                page: Buf::new(PAGE_SIZE as usize),
                data_meta: 0,
                data: 0,
                data_end: 0,
                frags: Vec::new(),
                ctx: Buf::new(XDP_MD_SIZE as usize),
                ingress_ifindex: 0,
                rx_queue_index: 0,
                egress_ifindex: 0,
                devmap_prog: false,
            })
        });
        x.frags.clear();
        for c in rest.chunks(PAGE_SIZE as usize) {
            x.frags.push(c.to_vec());
        }
        Self::load_page(
            &mut x.page,
            &mut self.page_dirty,
            &packet[..linear as usize],
        );
        let ctx_addr = x.ctx.addr();
        *md = x.start(linear, ifindex, rx_queue_index, devmap_prog);
        // No metadata yet (data_meta == data); the packet is `linear` > 0 bytes.
        self.regions.set_xdp(ctx_addr, XDP_MD_SIZE, x.data, linear);
        self.xdp = Some(x);
        Ok(ctx_addr)
    }

    /// Puts the linear part of a packet at the headroom of the XDP page and zeroes what the
    /// previous run may have written elsewhere (`dirty`, a byte range of the page), so the
    /// page is what `bpf_prog_test_run_xdp` gives: a zeroed frame with the packet at the
    /// headroom. Then `dirty` is the packet: what the program or a helper may write from
    /// now on lies in the packet and metadata ranges, which `sync_packet_regions` adds as
    /// they move.
    #[inline(always)]
    fn load_page(page: &mut Buf, dirty: &mut (u64, u64), linear: &[u8]) {
        let h = XDP_PACKET_HEADROOM as usize;
        let n = linear.len();
        let bytes = page.as_mut_slice();
        let (lo, hi) = (dirty.0 as usize, dirty.1 as usize);
        if lo < hi {
            // Clear the dirty range except what the packet copy overwrites.
            if lo < h {
                bytes[lo..h.min(hi)].fill(0);
            }
            if hi > h + n {
                bytes[(h + n).max(lo)..hi].fill(0);
            }
        }
        bytes[h..h + n].copy_from_slice(linear);
        *dirty = (h as u64, (h + n) as u64);
    }

    /// Ends the XDP part of a run: unregisters the context, packet and metadata and keeps
    /// the page and context buffers for the next run.
    #[inline(always)]
    fn release_xdp(&mut self) {
        self.xdp_parked = false;
        if let Some(x) = self.xdp.take() {
            self.regions.clear_xdp_at(x.ctx.addr());
            self.spare_xdp = Some(x);
        }
    }

    /// Re-registers the packet and metadata regions after the pointers moved.
    pub fn sync_packet_regions(&mut self) {
        let Some(x) = &self.xdp else {
            self.regions.set_packet(None, None);
            return;
        };
        let (meta, data, end) = (x.data_meta, x.data, x.data_end);
        // Everything the program or a helper can write in the page lies in a packet or
        // metadata range registered here: remember it for clearing before the next run.
        let base = x.page.addr();
        let (lo, hi) = (
            meta.min(data).saturating_sub(base),
            end.saturating_sub(base),
        );
        let d = &mut self.page_dirty;
        *d = if d.0 < d.1 {
            (d.0.min(lo), d.1.max(hi).min(PAGE_SIZE))
        } else {
            (lo, hi.min(PAGE_SIZE))
        };
        if self.regions.set_packet_bounds(meta, data, end) {
            return;
        }
        let packet = (end > data).then(|| Region::new(data, end - data, RegionKind::Packet, true));
        let metadata =
            (data > meta).then(|| Region::new(meta, data - meta, RegionKind::Meta, true));
        self.regions.set_packet(packet, metadata);
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
        let mut out = Vec::new();
        self.xdp_output_into(&mut out);
        out
    }

    /// [`Runtime::xdp_output`] into `out` (cleared first; its capacity is reused, so a
    /// caller running many packets allocates nothing once the buffer is large enough).
    pub fn xdp_output_into(&self, out: &mut Vec<u8>) {
        out.clear();
        let Some(x) = &self.xdp else {
            return;
        };
        out.extend_from_slice(x.linear(x.data_meta, x.data_end));
        for f in &x.frags {
            out.extend_from_slice(f);
        }
    }

    /// Checks that program `prog` can run as XDP with `input` (program index, CPU, program
    /// type, devmap/cpumap programs; then packet length, device and queue as the kernel's
    /// `BPF_PROG_TEST_RUN` does), fires the BPF timers due by `input.time_ns`, and starts
    /// the run: [`Runtime::begin_run`] and the XDP buffer ([`Runtime::set_xdp`], egress
    /// ifindex of devmap programs). Returns the address of the context (r1). On error
    /// nothing is left set up.
    ///
    /// Engines run the program next, then call [`Runtime::finish_xdp_into`]. Neither
    /// allocates in the steady state (the page, context and output buffers are reused).
    #[inline]
    pub fn begin_xdp(&mut self, prog: usize, input: &XdpInput<'_>) -> Result<u64, VmError> {
        let mut md = [0; 5];
        self.begin_xdp_md(prog, input, &mut md)
    }

    /// [`Runtime::begin_xdp`], also writing the values of `struct xdp_md` fields 0..20 into
    /// `md` (see `set_xdp_md`).
    #[inline]
    pub fn begin_xdp_md(
        &mut self,
        prog: usize,
        input: &XdpInput<'_>,
        md: &mut [u64; 5],
    ) -> Result<u64, VmError> {
        self.begin_xdp_md_with(prog, input, md, &mut crate::callback::InterpRunner)
    }

    /// [`Runtime::begin_xdp_md`]; the callbacks of timers due run on `runner`.
    #[inline]
    pub fn begin_xdp_md_with(
        &mut self,
        prog: usize,
        input: &XdpInput<'_>,
        md: &mut [u64; 5],
        runner: &mut dyn crate::callback::CallbackRunner,
    ) -> Result<u64, VmError> {
        let Some(p) = self.programs.get(prog) else {
            return Err(VmError::Setup(format!(
                "program #{prog} does not exist (the object has {})",
                self.programs.len()
            )));
        };
        if input.cpu >= self.config.ncpus {
            return Err(VmError::Setup(format!(
                "CPU {} does not exist (ncpus = {})",
                input.cpu, self.config.ncpus
            )));
        }
        if p.prog_type != prog_type::XDP && p.prog_type != prog_type::UNSPEC {
            return Err(VmError::Setup(format!(
                "program {:?} is not an XDP program (type {})",
                p.name, p.prog_type
            )));
        }
        let devmap = p.expected_attach_type == Some(BPF_XDP_DEVMAP);
        let cpumap = p.expected_attach_type == Some(BPF_XDP_CPUMAP);
        if (devmap || cpumap) && !self.config.allow_devmap_progs {
            return Err(VmError::Setup(format!(
                "program {:?} is a {} program; BPF_PROG_TEST_RUN refuses those with EINVAL (Config::allow_devmap_progs runs them anyway)",
                p.name,
                if devmap { "devmap" } else { "cpumap" }
            )));
        }
        // Timers due by this run's time fire first (their events come first).
        if self.timers.is_empty() {
            self.begin_run(input.cpu, input.time_ns);
        } else {
            let fired = crate::timer::fire_due_with(self, input.time_ns, runner)?;
            self.begin_run(input.cpu, input.time_ns);
            self.events.extend(fired);
        }
        let ctx = match self.set_xdp_md(
            input.packet,
            input.ingress_ifindex,
            input.rx_queue_index,
            devmap,
            md,
        ) {
            Ok(c) => c,
            Err(e) => {
                self.end_run();
                return Err(VmError::Setup(e));
            }
        };
        let egress = self.config.egress_ifindex;
        if let Some(x) = self.xdp.as_mut() {
            x.egress_ifindex = egress;
        }
        Ok(ctx)
    }

    /// The per-packet part of [`Runtime::begin_xdp_md`] for an engine that already ran
    /// the same program with the same CPU, device and queue (`input`'s), so that what
    /// depends on those alone was checked then: when the previous run's frame is parked,
    /// no timer is armed and the packet fits the linear part, starts the run on that
    /// frame (as `begin_xdp_md` would: [`Runtime::begin_run`], the packet copied in, the
    /// packet region resized) and returns the context address; otherwise changes nothing
    /// and returns `None` (the caller then takes `begin_xdp_md`). `ifindex` and `devmap`
    /// are what the checked run's frame recorded ([`Runtime::xdp_input_settings`]).
    ///
    /// The caller must forget its check when the configuration may have changed
    /// (`Config` is public).
    #[inline(always)]
    pub fn rebegin_xdp_md(
        &mut self,
        input: &XdpInput<'_>,
        ifindex: u32,
        devmap: bool,
        md: &mut [u64; 5],
    ) -> Option<u64> {
        let len = input.packet.len() as u64;
        if !self.xdp_parked || !self.timers.is_empty() || !(ETH_HLEN..=MAX_LINEAR).contains(&len) {
            return None;
        }
        let x = self.xdp.as_mut()?;
        let data = x.page.addr() + XDP_PACKET_HEADROOM;
        // A parked frame has no fragments (`end_run` releases those).
        if !self.regions.reuse_xdp(x.ctx.addr(), data, len) {
            return None;
        }
        self.xdp_parked = false;
        Self::load_page(&mut x.page, &mut self.page_dirty, input.packet);
        *md = x.start(len, ifindex, input.rx_queue_index, devmap);
        x.egress_ifindex = self.config.egress_ifindex;
        let ctx = x.ctx.addr();
        self.begin_run(input.cpu, input.time_ns);
        Some(ctx)
    }

    /// The device and devmap flag the current XDP frame was set up with (for
    /// [`Runtime::rebegin_xdp_md`]), if there is one.
    pub fn xdp_input_settings(&self) -> Option<(u32, bool)> {
        self.xdp
            .as_ref()
            .map(|x| (x.ingress_ifindex, x.devmap_prog))
    }

    /// Ends an XDP run started with [`Runtime::begin_xdp`]: `result` is the program's r0
    /// or its fault. On success writes the return value, the packet (as
    /// [`Runtime::xdp_output_into`]), the redirect target (only for `XDP_REDIRECT`) and the
    /// events into `out`, reusing its buffers (`out.events` and the runtime's event list
    /// swap their storage). Always ends the run ([`Runtime::end_run`]).
    pub fn finish_xdp_into(
        &mut self,
        result: Result<u64, Box<Fault>>,
        out: &mut XdpOutput,
    ) -> Result<(), VmError> {
        self.finish_xdp_into_with(result, out, true)
    }

    /// [`Runtime::finish_xdp_into`]; with `want_packet` false, `out.packet` is left empty
    /// (no copy of the output packet).
    #[inline(always)]
    pub fn finish_xdp_into_with(
        &mut self,
        result: Result<u64, Box<Fault>>,
        out: &mut XdpOutput,
        want_packet: bool,
    ) -> Result<(), VmError> {
        let retval = match result {
            Ok(v) => v,
            Err(f) => {
                self.end_run();
                return Err(VmError::Fault(f));
            }
        };
        self.last_xdp_meta_len = self
            .xdp
            .as_ref()
            .map_or(0, |x| (x.data - x.data_meta) as usize);
        if want_packet {
            self.xdp_output_into(&mut out.packet);
        } else {
            out.packet.clear();
        }
        // Most runs have no events and the last output none either: nothing to swap.
        if !(self.events.is_empty() && out.events.is_empty()) {
            out.events.clear();
            std::mem::swap(&mut out.events, &mut self.events);
        }
        out.redirect = match self.redirect.take() {
            Some(r) if retval as u32 as u64 == XDP_REDIRECT => Some(r),
            _ => None,
        };
        out.retval = retval;
        self.end_run();
        Ok(())
    }
}
