//! The engine interface shared by the interpreter, the JIT and the kernel
//! (`BPF_PROG_TEST_RUN`), so that replay and tests can run any of them and compare them
//! packet by packet.
//!
//! An engine is created from a [`bpfkit_object::model::LinkedObject`] (every program and
//! the map table, so tail calls can reach the other programs) and owns its own map state.

/// Context and input of one XDP run.
#[derive(Debug, Clone, Default)]
pub struct XdpInput<'a> {
    /// Packet bytes (from the Ethernet header on). Fewer than 14 bytes is an error (the
    /// kernel's EINVAL); past 3520 bytes the rest goes into fragments.
    pub packet: &'a [u8],
    /// 0: the kernel's default, the loopback device (ifindex 1). Other values must name a
    /// known device (ENODEV otherwise).
    pub ingress_ifindex: u32,
    /// Must be below the device's number of receive queues (EINVAL otherwise).
    pub rx_queue_index: u32,
    /// Virtual time returned by `bpf_ktime_get_*_ns`.
    pub time_ns: u64,
    /// CPU the run is on (`bpf_get_smp_processor_id`, per-CPU maps).
    pub cpu: u32,
}

/// Where `bpf_redirect`/`bpf_redirect_map` sent the packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Redirect {
    /// `bpf_redirect(ifindex, flags)`.
    Ifindex(u32),
    /// `bpf_redirect_map(map, key, flags)`: map index in the object's map table and key.
    Map { map: usize, key: u32 },
}

/// A side effect of a helper, captured in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A line printed by `bpf_trace_printk`.
    Printk(String),
    /// A record submitted to a ring buffer (map index) or output to a perf event array.
    Record { map: usize, data: Vec<u8> },
}

/// The result of one XDP run.
///
/// `Default` gives an empty output to pass to [`Engine::run_xdp_into`], which reuses its
/// buffers from one run to the next.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct XdpOutput {
    /// The raw return value (r0); the XDP action is its low 32 bits. The kernel only
    /// reports those 32 bits: compare `retval as u32`.
    pub retval: u64,
    /// What `BPF_PROG_TEST_RUN` returns in `data_out`: the metadata (`data_meta .. data`),
    /// then the packet as the program left it (after head/tail adjustments), then the
    /// fragments.
    pub packet: Vec<u8>,
    /// Only when the action is `XDP_REDIRECT`.
    pub redirect: Option<Redirect>,
    /// printk lines and ring buffer / perf records, in the order they happened.
    pub events: Vec<Event>,
}

/// Map contents as `(key, value)` pairs.
pub type MapEntries = Vec<(Vec<u8>, Vec<u8>)>;

/// Runs programs of a loaded object.
///
/// Programs are addressed by their index in `LinkedObject::programs`, maps by their index in
/// `LinkedObject::maps`. Map keys and values are raw bytes; per-CPU maps use one value per
/// CPU concatenated (as `BPF_MAP_LOOKUP_ELEM` returns them, each rounded up to 8 bytes).
pub trait Engine {
    type Error: std::error::Error + Send + Sync + 'static;

    /// A short name (`interp`, `jit`, `kernel`).
    fn name(&self) -> &'static str;

    /// Runs program `prog` as XDP on one packet.
    fn run_xdp(&mut self, prog: usize, input: &XdpInput<'_>) -> Result<XdpOutput, Self::Error>;

    /// [`Engine::run_xdp`] writing the result into `out`, whose buffers (`packet`,
    /// `events`) are reused: an engine that implements it allocates nothing per run, which
    /// is what replaying millions of packets needs. On error the contents of `out` are
    /// unspecified. The default calls `run_xdp`.
    fn run_xdp_into(
        &mut self,
        prog: usize,
        input: &XdpInput<'_>,
        out: &mut XdpOutput,
    ) -> Result<(), Self::Error> {
        *out = self.run_xdp(prog, input)?;
        Ok(())
    }

    /// [`Engine::run_xdp_into`], leaving `out.packet` empty when `want_packet` is false (a
    /// caller that only counts verdicts saves the copy of the output packet). The default
    /// calls `run_xdp_into` and clears the packet.
    fn run_xdp_into_with(
        &mut self,
        prog: usize,
        input: &XdpInput<'_>,
        out: &mut XdpOutput,
        want_packet: bool,
    ) -> Result<(), Self::Error> {
        self.run_xdp_into(prog, input, out)?;
        if !want_packet {
            out.packet.clear();
        }
        Ok(())
    }

    /// Runs program `prog` `repeat` times on one packet the way `BPF_PROG_TEST_RUN` with
    /// `repeat` does (and `bpftool prog run ... repeat N`): the XDP buffer is set up once
    /// and every run sees what the previous run left in it (head/tail adjustments,
    /// metadata, writes), map state carries over; `out` receives the last run's result
    /// (return value, packet, redirect, the last run's events). Returns the mean time per
    /// run in nanoseconds, measured around the runs only (the kernel's `duration`).
    /// `repeat` 0 counts as 1, as in the kernel. A fault ends the runs with the fault.
    ///
    /// The default (engines without a way to keep the buffer) runs
    /// [`Engine::run_xdp_into`] `repeat` times, each on a fresh buffer.
    fn run_xdp_repeat(
        &mut self,
        prog: usize,
        input: &XdpInput<'_>,
        repeat: u32,
        out: &mut XdpOutput,
    ) -> Result<f64, Self::Error> {
        let repeat = repeat.max(1);
        let t = std::time::Instant::now();
        for _ in 0..repeat {
            self.run_xdp_into(prog, input, out)?;
        }
        Ok(t.elapsed().as_nanos() as f64 / f64::from(repeat))
    }

    /// Bytes of XDP metadata (`data_meta .. data`) at the front of `XdpOutput::packet` of
    /// the last successful XDP run, i.e. where the frame itself starts in that output. The
    /// default (engines that cannot tell) is 0.
    fn last_xdp_meta_len(&self) -> usize {
        0
    }

    /// All entries of a map, sorted by key.
    fn map_entries(&self, map: usize) -> Result<MapEntries, Self::Error>;

    /// `BPF_MAP_UPDATE_ELEM` with `flags` (`BPF_ANY`, `BPF_NOEXIST`, `BPF_EXIST`).
    fn map_update(
        &mut self,
        map: usize,
        key: &[u8],
        value: &[u8],
        flags: u64,
    ) -> Result<(), Self::Error>;
}
