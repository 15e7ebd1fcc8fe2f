//! `BPF_MAP_TYPE_USER_RINGBUF` and `bpf_user_ringbuf_drain`: samples pushed by the user
//! ([`Interpreter::user_ringbuf_push`], the emulator's `user_ring_buffer__reserve` +
//! `__submit`), consumed by programs one callback per sample.
//!
//! Kernel semantics (kernel/bpf/ringbuf.c, Linux 6.18):
//! - flags other than `BPF_RB_NO_WAKEUP | BPF_RB_FORCE_WAKEUP` → -EINVAL;
//! - a drain of the same ring from inside a drain callback → -EBUSY;
//! - each sample is handed to the callback as a local dynptr (`struct bpf_dynptr_kern`,
//!   16 bytes: data, size | `BPF_DYNPTR_TYPE_LOCAL` << 28, offset 0) with `ctx` as the
//!   second argument; a callback returning non-zero stops after that sample;
//! - at most `BPF_MAX_USER_RINGBUF_SAMPLES` (128 Ki) samples per call, discarded samples
//!   included; the result is the number of samples handed to the callback;
//! - a sample larger than a dynptr can describe (2^24 - 1 bytes) stops the drain with
//!   -E2BIG and stays in the ring.
//!
//! User-side limits are libbpf's: a sample needs `round_up(len + 8, 8)` bytes; more than
//! the ring size is E2BIG, more than the free space is ENOSPC. Unlike the kernel-to-user
//! ring, a user ring can be filled completely.

use crate::error::FaultKind;
use crate::maps::{handle_to_index, MapError};
use crate::memory::{Buf, Region, RegionKind};
use crate::runtime::{handle_to_func, Runtime};
use crate::{Interpreter, VmError};
use bpfkit_object::model::map_type as mt;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

pub const USER_RINGBUF_DRAIN: i32 = 209;
/// `BPF_MAX_USER_RINGBUF_SAMPLES`.
pub const MAX_SAMPLES: u64 = 128 * 1024;
/// `BPF_RB_NO_WAKEUP | BPF_RB_FORCE_WAKEUP`.
const WAKEUP_FLAGS: u64 = 3;
/// `DYNPTR_MAX_SIZE`.
const DYNPTR_MAX_SIZE: usize = (1 << 24) - 1;
/// `BPF_DYNPTR_TYPE_LOCAL << DYNPTR_TYPE_SHIFT`.
const DYNPTR_LOCAL: u32 = 1 << 28;

const EINVAL: i64 = 22;
const EBUSY: i64 = 16;
const E2BIG: i64 = 7;
const ENOSPC: i64 = 28;

/// One sample in a user ring: bytes, and whether the producer discarded it.
#[derive(Debug, Clone)]
struct Sample {
    data: Vec<u8>,
    discarded: bool,
}

/// Samples waiting in every USER_RINGBUF map of an engine.
#[derive(Debug, Default, Clone)]
pub struct UserRingbufs {
    rings: BTreeMap<usize, VecDeque<Sample>>,
    /// Rings being drained (the kernel's `rb->busy`).
    busy: BTreeSet<usize>,
}

fn space(len: usize) -> u64 {
    (len as u64 + 8 + 7) & !7
}

impl UserRingbufs {
    /// Bytes in use in ring `map` (headers included).
    pub fn used(&self, map: usize) -> u64 {
        self.rings
            .get(&map)
            .map(|q| q.iter().map(|s| space(s.data.len())).sum())
            .unwrap_or(0)
    }

    /// Samples waiting in ring `map` (discarded ones included).
    pub fn pending(&self, map: usize) -> usize {
        self.rings.get(&map).map_or(0, |q| q.len())
    }
}

fn neg(errno: i64) -> u64 {
    (-errno) as u64
}

fn herr(msg: impl Into<String>) -> FaultKind {
    FaultKind::Helper {
        helper: "bpf_user_ringbuf_drain",
        msg: msg.into(),
    }
}

/// `bpf_user_ringbuf_drain(map, callback_fn, ctx, flags)`.
pub fn drain(
    rt: &mut Runtime,
    a: &[u64; 5],
    runner: &mut dyn crate::callback::CallbackRunner,
) -> Result<u64, FaultKind> {
    let m = match handle_to_index(a[0]) {
        Some(i) if i < rt.maps.maps.len() => i,
        _ => return Err(FaultKind::NotAMap(a[0])),
    };
    if rt.maps.maps[m].map_type() != mt::USER_RINGBUF {
        return Err(herr(format!(
            "map {:?} is not a USER_RINGBUF (the verifier rejects this)",
            rt.maps.maps[m].def.name
        )));
    }
    let (prog, pc) = match handle_to_func(a[1]) {
        Some((p, pc)) if p < rt.programs.len() && pc < rt.programs[p].insns.len() => (p, pc),
        _ => {
            return Err(herr(format!(
                "{:#x} is not a BPF function (expected lddw of a callback)",
                a[1]
            )))
        }
    };
    if a[3] & !WAKEUP_FLAGS != 0 {
        return Ok(neg(EINVAL));
    }
    if !rt.user_ringbufs.busy.insert(m) {
        return Ok(neg(EBUSY));
    }
    let r = drain_samples(rt, runner, m, prog, pc, a[2]);
    rt.user_ringbufs.busy.remove(&m);
    r
}

fn drain_samples(
    rt: &mut Runtime,
    runner: &mut dyn crate::callback::CallbackRunner,
    m: usize,
    prog: usize,
    pc: usize,
    ctx: u64,
) -> Result<u64, FaultKind> {
    let mut samples = 0u64;
    let mut discarded = 0u64;
    let mut ret = 0u64;
    while samples < MAX_SAMPLES && ret == 0 {
        let Some(q) = rt.user_ringbufs.rings.get_mut(&m) else {
            break;
        };
        let Some(front) = q.front() else { break };
        if front.data.len() > DYNPTR_MAX_SIZE {
            return Ok(neg(E2BIG));
        }
        let s = q.pop_front().expect("front exists");
        samples += 1;
        if s.discarded {
            discarded += 1;
            continue;
        }
        // The sample and the dynptr describing it are read-only kernel memory.
        let data = Buf::from_slice(&s.data);
        let mut dynptr = Buf::new(16);
        {
            let d = dynptr.as_mut_slice();
            d[..8].copy_from_slice(&data.addr().to_le_bytes());
            d[8..12].copy_from_slice(&(s.data.len() as u32 | DYNPTR_LOCAL).to_le_bytes());
        }
        let kind = RegionKind::RingbufRecord(m as u32);
        if !s.data.is_empty() {
            rt.regions
                .insert(Region::new(data.addr(), s.data.len() as u64, kind, false));
        }
        rt.regions
            .insert(Region::new(dynptr.addr(), 16, kind, false));
        let depth = rt.depth + 1;
        let saved = rt.current_prog;
        let r = runner.run(rt, prog, pc, &[dynptr.addr(), ctx, 0, 0, 0], depth);
        rt.depth = depth - 1;
        rt.current_prog = saved;
        rt.regions.remove(dynptr.addr());
        if !s.data.is_empty() {
            rt.regions.remove(data.addr());
        }
        ret = r.map_err(|f| FaultKind::Helper {
            helper: "callback",
            msg: f.to_string(),
        })?;
    }
    Ok(samples - discarded)
}

impl Interpreter {
    /// Produces one sample into USER_RINGBUF map `map`, as `user_ring_buffer__reserve` +
    /// `user_ring_buffer__submit` do (E2BIG when it can never fit, ENOSPC when the ring is
    /// full). Samples stay until a program drains them.
    pub fn user_ringbuf_push(&mut self, map: usize, sample: &[u8]) -> Result<(), VmError> {
        self.user_ringbuf_produce(map, sample, false)
    }

    /// Produces a sample that is reserved and then discarded (`user_ring_buffer__discard`):
    /// it takes space and counts against the drain limit, but no callback sees it.
    pub fn user_ringbuf_push_discarded(
        &mut self,
        map: usize,
        sample: &[u8],
    ) -> Result<(), VmError> {
        self.user_ringbuf_produce(map, sample, true)
    }

    /// Samples waiting in USER_RINGBUF map `map`.
    pub fn user_ringbuf_pending(&self, map: usize) -> usize {
        self.rt.user_ringbufs.pending(map)
    }

    fn user_ringbuf_produce(
        &mut self,
        map: usize,
        sample: &[u8],
        discarded: bool,
    ) -> Result<(), VmError> {
        let Some(m) = self.rt.maps.maps.get(map) else {
            return Err(VmError::Setup(format!(
                "map #{map} does not exist (the object has {})",
                self.rt.maps.maps.len()
            )));
        };
        let err = |errno: i64, msg: String| {
            VmError::Map(MapError {
                map: m.def.name.as_str().into(),
                errno,
                msg: msg.into(),
            })
        };
        if m.map_type() != mt::USER_RINGBUF {
            return Err(err(EINVAL, "not a USER_RINGBUF map".into()));
        }
        let size = m.def.max_entries as u64;
        let need = space(sample.len());
        if sample.len() as u64 > u32::MAX as u64 || need > size {
            return Err(err(
                E2BIG,
                format!(
                    "a {}-byte sample needs {need} bytes, the ring has {size}",
                    sample.len()
                ),
            ));
        }
        let used = self.rt.user_ringbufs.used(map);
        if used + need > size {
            return Err(err(
                ENOSPC,
                format!("ring full: {need} bytes needed, {} free", size - used),
            ));
        }
        self.rt
            .user_ringbufs
            .rings
            .entry(map)
            .or_default()
            .push_back(Sample {
                data: sample.to_vec(),
                discarded,
            });
        Ok(())
    }
}
