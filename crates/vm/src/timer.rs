//! BPF timers (`bpf_timer_init`, `bpf_timer_set_callback`, `bpf_timer_start`,
//! `bpf_timer_cancel`) on the virtual clock.
//!
//! A `struct bpf_timer` lives in a map value (ARRAY, HASH, LRU_HASH); the kernel keeps a
//! pointer to its `struct bpf_hrtimer` in those 16 bytes. Here the timer state is kept in a
//! side table keyed by the address of the `struct bpf_timer`, and the value bytes are left
//! alone (user space sees them as zeros in the kernel, and programs cannot read them).
//!
//! Time is the engine's virtual clock (`XdpInput::time_ns`). Armed timers fire **before the
//! next run** whose time is at or past their expiry (and in [`crate::Interpreter::advance_time`]),
//! in expiry order (ties: the order they were started), each callback with the clock set
//! to its expiry and on the CPU that started it. A callback may re-arm its own timer; the
//! firing loop stops with an error after [`MAX_FIRINGS`] callbacks in one step (a timer
//! re-armed with delay 0 would otherwise fire forever).
//!
//! Kernel semantics (kernel/bpf/helpers.c, Linux 6.18):
//! - `bpf_timer_init`: flags ≥ 16 or a clock other than `CLOCK_REALTIME`,
//!   `CLOCK_MONOTONIC`, `CLOCK_BOOTTIME` → -EINVAL; already initialised → -EBUSY.
//!   (-EPERM, for a map without user references, cannot happen: the engine holds its
//!   maps, as the process calling `BPF_PROG_TEST_RUN` does. -EOPNOTSUPP is only returned
//!   in NMI context, which XDP never is.)
//! - `bpf_timer_set_callback`: not initialised → -EINVAL.
//! - `bpf_timer_start`: flags other than `BPF_F_TIMER_ABS | BPF_F_TIMER_CPU_PIN` → -EINVAL
//!   (checked first); not initialised or no callback → -EINVAL; relative expiry
//!   saturates like `ktime_add_safe`.
//! - `bpf_timer_cancel`: not initialised → -EINVAL; from the timer's own callback →
//!   -EDEADLK; otherwise the callback is dropped (a later `bpf_timer_start` needs a new
//!   `bpf_timer_set_callback`) and the result is 1 if the timer was armed, else 0.
//! - Updating or deleting the map element (from a program or from user space, also an
//!   LRU eviction) cancels and frees its timer: a later `bpf_timer_init` succeeds again.

use crate::callback::{CallbackRunner, InterpRunner};
use crate::engine::Event;
use crate::error::{Fault, FaultKind};
use crate::maps::{handle_to_index, map_handle, MapSet};
use crate::memory::{Buf, Region, RegionKind};
use crate::runtime::{handle_to_func, Runtime};
use crate::{Interpreter, VmError};
use bpfkit_object::model::map_type as mt;
use std::collections::{BTreeMap, BTreeSet, HashMap};

pub const TIMER_INIT: i32 = 169;
pub const TIMER_SET_CALLBACK: i32 = 170;
pub const TIMER_START: i32 = 171;
pub const TIMER_CANCEL: i32 = 172;

/// `BPF_F_TIMER_ABS`.
pub const BPF_F_TIMER_ABS: u64 = 1;
/// `BPF_F_TIMER_CPU_PIN`.
pub const BPF_F_TIMER_CPU_PIN: u64 = 2;
/// Most callbacks fired by one call of [`fire_due`].
pub const MAX_FIRINGS: u64 = 1 << 16;

const EINVAL: i64 = 22;
const EBUSY: i64 = 16;
const EDEADLK: i64 = 35;
const CLOCK_REALTIME: u64 = 0;
const CLOCK_MONOTONIC: u64 = 1;
const CLOCK_BOOTTIME: u64 = 7;
/// `KTIME_SEC_MAX * NSEC_PER_SEC`: what `ktime_add_safe` saturates to.
const KTIME_SAT: i64 = (i64::MAX / 1_000_000_000) * 1_000_000_000;

/// One initialised timer.
#[derive(Debug, Clone)]
struct Timer {
    map: usize,
    /// Address of the map value holding the timer.
    value: u64,
    /// Key of that element: the index (u32) for arrays; for hash maps found when needed
    /// (callback, inspection), as the kernel finds it in front of the value.
    key: Option<Vec<u8>>,
    /// Callback (program, slot), set by `bpf_timer_set_callback`.
    callback: Option<(usize, usize)>,
    /// Armed: (expiry on the virtual clock, start sequence number).
    armed: Option<(i64, u64)>,
    /// CPU that started it (its callback runs there).
    cpu: u32,
}

/// The timers of one engine.
#[derive(Debug, Default, Clone)]
pub struct Timers {
    timers: BTreeMap<u64, Timer>,
    /// Armed timers in firing order: (expiry, start sequence, timer address).
    queue: BTreeSet<(i64, u64, u64)>,
    /// Map value address -> timer address (a value holds at most one `struct bpf_timer`).
    by_value: HashMap<u64, u64>,
    seq: u64,
    /// The timer whose callback is running (the kernel's per-CPU `hrtimer_running`).
    running: Option<u64>,
}

/// An armed timer, for inspection ([`Interpreter::pending_timers`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingTimer {
    /// Map index and key of the element holding the timer.
    pub map: usize,
    pub key: Vec<u8>,
    /// Expiry on the virtual clock (ns).
    pub expires_ns: i64,
}

impl Timers {
    /// Number of initialised timers (armed or not).
    pub fn len(&self) -> usize {
        self.timers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.timers.is_empty()
    }

    /// Armed timers in firing order.
    pub fn pending(&self, maps: &MapSet) -> Vec<PendingTimer> {
        let mut v: Vec<(i64, u64, PendingTimer)> = self
            .timers
            .values()
            .filter_map(|t| {
                t.armed.map(|(e, s)| {
                    (
                        e,
                        s,
                        PendingTimer {
                            map: t.map,
                            key: key_of(maps, t).unwrap_or_default(),
                            expires_ns: e,
                        },
                    )
                })
            })
            .collect();
        v.sort_by_key(|(e, s, _)| (*e, *s));
        v.into_iter().map(|(_, _, p)| p).collect()
    }

    /// The next timer to fire at or before `now`: (address, expiry).
    fn next_due(&self, now: i64) -> Option<(u64, i64)> {
        let &(e, _, a) = self.queue.first()?;
        (e <= now).then_some((a, e))
    }

    /// Arms (or re-arms) timer `addr`; `None` disarms it. Returns whether it was armed.
    fn set_armed(&mut self, addr: u64, armed: Option<(i64, u64)>) -> bool {
        let Some(t) = self.timers.get_mut(&addr) else {
            return false;
        };
        let was = t.armed.take();
        if let Some((e, s)) = was {
            self.queue.remove(&(e, s, addr));
        }
        if let Some((e, s)) = armed {
            self.queue.insert((e, s, addr));
        }
        t.armed = armed;
        was.is_some()
    }

    /// Cancels and frees timer `addr` (`bpf_timer_cancel_and_free`).
    fn free(&mut self, addr: u64) {
        self.set_armed(addr, None);
        if let Some(t) = self.timers.remove(&addr) {
            self.by_value.remove(&t.value);
        }
    }
}

/// The key of the element holding timer `t` (hash maps: a scan for its value).
fn key_of(maps: &MapSet, t: &Timer) -> Option<Vec<u8>> {
    if let Some(k) = &t.key {
        return Some(k.clone());
    }
    maps.maps[t.map].key_of_value(t.value)
}

fn neg(errno: i64) -> u64 {
    (-errno) as u64
}

fn herr(helper: &'static str, msg: impl Into<String>) -> FaultKind {
    FaultKind::Helper {
        helper,
        msg: msg.into(),
    }
}

/// Dispatches the timer helpers (`id` is one of the four constants).
pub fn call(rt: &mut Runtime, id: i32, a: &[u64; 5]) -> Result<u64, FaultKind> {
    match id {
        TIMER_INIT => init(rt, a),
        TIMER_SET_CALLBACK => set_callback(rt, a),
        TIMER_START => start(rt, a),
        TIMER_CANCEL => cancel(rt, a),
        _ => Err(FaultKind::UnknownHelper(id as i64)),
    }
}

/// Checks that `addr` is a 16-byte `struct bpf_timer` inside a value of some map (what the
/// verifier guarantees for `ARG_PTR_TO_TIMER`) and returns that map and the region's start
/// (a hash value's own start; an array's first element).
fn timer_map(rt: &Runtime, addr: u64, helper: &'static str) -> Result<(usize, u64), FaultKind> {
    let r = rt.regions.check(addr, 16, true)?;
    match r.kind {
        RegionKind::MapValue(m) => Ok((m as usize, r.start)),
        k => Err(herr(
            helper,
            format!("{addr:#x} is in the {k}, not a struct bpf_timer in a map value"),
        )),
    }
}

fn init(rt: &mut Runtime, a: &[u64; 5]) -> Result<u64, FaultKind> {
    const H: &str = "bpf_timer_init";
    let addr = a[0];
    let m = match handle_to_index(a[1]) {
        Some(i) if i < rt.maps.maps.len() => i,
        _ => return Err(FaultKind::NotAMap(a[1])),
    };
    let (in_map, start) = timer_map(rt, addr, H)?;
    let map = &rt.maps.maps[m];
    if in_map != m {
        return Err(herr(
            H,
            format!(
                "the timer is in a value of map #{in_map}, not of map {:?} (the verifier rejects this)",
                map.def.name
            ),
        ));
    }
    if !matches!(map.map_type(), mt::ARRAY | mt::HASH | mt::LRU_HASH) {
        return Err(herr(
            H,
            format!(
                "map {:?}: timers live in ARRAY, HASH or LRU_HASH values (the verifier rejects this map type)",
                map.def.name
            ),
        ));
    }
    let flags = a[2];
    let clock = flags & 15;
    if flags >= 16 || !matches!(clock, CLOCK_REALTIME | CLOCK_MONOTONIC | CLOCK_BOOTTIME) {
        return Ok(neg(EINVAL));
    }
    if rt.timers.timers.contains_key(&addr) {
        return Ok(neg(EBUSY));
    }
    let vs = map.def.value_size as u64;
    let (value, key) = if map.map_type() == mt::ARRAY {
        let base = map
            .direct_value_addr()
            .ok_or_else(|| herr(H, "array without values"))?;
        let stride = (vs + 7) & !7;
        let idx = (addr - base) / stride;
        (
            base + idx * stride,
            Some((idx as u32).to_le_bytes().to_vec()),
        )
    } else {
        (start, None)
    };
    rt.timers.by_value.insert(value, addr);
    rt.timers.timers.insert(
        addr,
        Timer {
            map: m,
            value,
            key,
            callback: None,
            armed: None,
            cpu: rt.cpu,
        },
    );
    Ok(0)
}

fn set_callback(rt: &mut Runtime, a: &[u64; 5]) -> Result<u64, FaultKind> {
    const H: &str = "bpf_timer_set_callback";
    timer_map(rt, a[0], H)?;
    let cb = match handle_to_func(a[1]) {
        Some((p, pc)) if p < rt.programs.len() && pc < rt.programs[p].insns.len() => (p, pc),
        _ => {
            return Err(herr(
                H,
                format!(
                    "{:#x} is not a BPF function (expected lddw of a callback)",
                    a[1]
                ),
            ))
        }
    };
    match rt.timers.timers.get_mut(&a[0]) {
        Some(t) => {
            t.callback = Some(cb);
            Ok(0)
        }
        None => Ok(neg(EINVAL)),
    }
}

fn start(rt: &mut Runtime, a: &[u64; 5]) -> Result<u64, FaultKind> {
    timer_map(rt, a[0], "bpf_timer_start")?;
    let (nsecs, flags) = (a[1] as i64, a[2]);
    if flags & !(BPF_F_TIMER_ABS | BPF_F_TIMER_CPU_PIN) != 0 {
        return Ok(neg(EINVAL));
    }
    let now = rt.time_ns as i64;
    let cpu = rt.cpu;
    rt.timers.seq += 1;
    let seq = rt.timers.seq;
    let Some(t) = rt.timers.timers.get_mut(&a[0]) else {
        return Ok(neg(EINVAL));
    };
    if t.callback.is_none() {
        return Ok(neg(EINVAL));
    }
    let expires = if flags & BPF_F_TIMER_ABS != 0 {
        nsecs
    } else {
        // ktime_add_safe: an overflowing or negative sum saturates.
        let s = now.wrapping_add(nsecs);
        if s < 0 || s < now || s < nsecs {
            KTIME_SAT
        } else {
            s
        }
    };
    t.cpu = cpu;
    // An expiry in the past fires at once, i.e. with the clock of the time it was started.
    rt.timers.set_armed(a[0], Some((expires.max(now), seq)));
    Ok(0)
}

fn cancel(rt: &mut Runtime, a: &[u64; 5]) -> Result<u64, FaultKind> {
    timer_map(rt, a[0], "bpf_timer_cancel")?;
    let running = rt.timers.running;
    let Some(t) = rt.timers.timers.get_mut(&a[0]) else {
        return Ok(neg(EINVAL));
    };
    if running == Some(a[0]) {
        return Ok(neg(EDEADLK));
    }
    // drop_prog_refcnt, then hrtimer_cancel: 1 if the timer was queued.
    t.callback = None;
    Ok(rt.timers.set_armed(a[0], None) as u64)
}

/// Map element `key` of map `m` was updated or deleted (successfully): the kernel cancels
/// and frees the timers of the values that went away (`bpf_obj_free_fields`). Arrays free
/// the timer of the updated element (values are overwritten in place); hash maps move every
/// replaced, deleted or evicted value to the run's graveyard, whose timers are freed.
pub fn elem_changed(rt: &mut Runtime, m: usize, key: &[u8]) {
    let ts = &mut rt.timers;
    if ts.timers.is_empty() {
        return;
    }
    let map = &rt.maps.maps[m];
    let mut gone = Vec::new();
    if map.map_type() == mt::ARRAY && key.len() == 4 {
        if let Some(base) = map.direct_value_addr() {
            let stride = (map.def.value_size as u64 + 7) & !7;
            let idx = u32::from_le_bytes(key.try_into().expect("4 bytes")) as u64;
            gone.extend(ts.by_value.get(&(base + idx * stride)));
        }
    }
    gone.extend(
        rt.maps
            .graveyard
            .iter()
            .filter_map(|b| ts.by_value.get(&b.addr())),
    );
    for t in gone {
        ts.free(t);
    }
}

/// Fires, in order, every armed timer whose expiry is at or before `now` (including timers
/// armed by the callbacks themselves). Returns the events the callbacks produced.
pub fn fire_due(rt: &mut Runtime, now: u64) -> Result<Vec<Event>, VmError> {
    fire_due_with(rt, now, &mut InterpRunner)
}

/// [`fire_due`] with the callbacks run by `runner` (the JIT runs them as its code).
pub fn fire_due_with(
    rt: &mut Runtime,
    now: u64,
    runner: &mut dyn CallbackRunner,
) -> Result<Vec<Event>, VmError> {
    // Callbacks run outside any XDP run: the previous run's frame must not be visible.
    rt.release_parked_xdp();
    let now = now.min(i64::MAX as u64) as i64;
    let mut events = Vec::new();
    let mut fired = 0u64;
    while let Some((addr, expires)) = rt.timers.next_due(now) {
        fired += 1;
        if fired > MAX_FIRINGS {
            return Err(VmError::Setup(format!(
                "more than {MAX_FIRINGS} timer callbacks due by {now} ns (a timer keeps re-arming itself without advancing)"
            )));
        }
        rt.timers.set_armed(addr, None);
        let t = &rt.timers.timers[&addr];
        let Some((prog, pc)) = t.callback else {
            continue;
        };
        let (map, value, cpu) = (t.map, t.value, t.cpu);
        let Some(key) = key_of(&rt.maps, t) else {
            // The element is gone (it would have freed the timer): nothing to call.
            rt.timers.free(addr);
            continue;
        };
        rt.begin_run(cpu, expires.max(0) as u64);
        rt.current_prog = prog;
        // bpf_timer_cb: arrays get a pointer to the index, hash maps to the element's key.
        let kb = Buf::from_slice(&key);
        rt.regions.insert(Region::new(
            kb.addr(),
            key.len() as u64,
            RegionKind::MapValue(map as u32),
            false,
        ));
        rt.timers.running = Some(addr);
        let r = runner.run(rt, prog, pc, &[map_handle(map), kb.addr(), value, 0, 0], 0);
        rt.timers.running = None;
        rt.regions.remove(kb.addr());
        events.append(&mut rt.events);
        rt.end_run();
        r.map_err(|f: Box<Fault>| VmError::Fault(f))?;
    }
    Ok(events)
}

impl Interpreter {
    /// Moves the virtual clock to `now_ns` without a packet: fires every timer due by then
    /// (see [`fire_due`]) and returns what their callbacks printed or submitted. Runs
    /// ([`crate::Engine::run_xdp`]) do the same with their `time_ns` before the program runs.
    pub fn advance_time(&mut self, now_ns: u64) -> Result<Vec<Event>, VmError> {
        fire_due(&mut self.rt, now_ns)
    }

    /// Armed timers in the order they will fire.
    pub fn pending_timers(&self) -> Vec<PendingTimer> {
        self.rt.timers.pending(&self.rt.maps)
    }
}
