//! Helper functions, each a plain Rust function over the [`Runtime`] (so the JIT can call
//! the same implementations through a trampoline).
//!
//! A helper returns the value of r0, or a [`FaultKind`] that stops the run (arguments the
//! kernel's verifier would have rejected, unsupported helpers).

use crate::callback::{CallbackRunner, InterpRunner};
use crate::engine::{Event, Redirect};
use crate::error::FaultKind;
use crate::maps::{self, handle_to_index, map_handle, Lookup};
use crate::memory::{Buf, Region, RegionKind};
use crate::runtime::{handle_to_func, Runtime, XdpState, ETH_HLEN, MAX_TAIL_CALL_CNT, PAGE_SIZE};
use bpfkit_object::model::map_type as mt;

/// Helper numbers (`enum bpf_func_id`) the interpreter implements.
pub const MAP_LOOKUP_ELEM: i32 = 1;
pub const MAP_UPDATE_ELEM: i32 = 2;
pub const MAP_DELETE_ELEM: i32 = 3;
pub const KTIME_GET_NS: i32 = 5;
pub const TRACE_PRINTK: i32 = 6;
pub const GET_PRANDOM_U32: i32 = 7;
pub const GET_SMP_PROCESSOR_ID: i32 = 8;
pub const TAIL_CALL: i32 = 12;
pub const GET_CURRENT_PID_TGID: i32 = 14;
pub const GET_CURRENT_UID_GID: i32 = 15;
pub const GET_CURRENT_COMM: i32 = 16;
pub const REDIRECT: i32 = 23;
pub const PERF_EVENT_OUTPUT: i32 = 25;
pub const CSUM_DIFF: i32 = 28;
pub const GET_NUMA_NODE_ID: i32 = 42;
pub const STRTOL: i32 = 105;
pub const STRTOUL: i32 = 106;
pub const JIFFIES64: i32 = 118;
pub const XDP_ADJUST_HEAD: i32 = 44;
pub const REDIRECT_MAP: i32 = 51;
pub const XDP_ADJUST_META: i32 = 54;
pub const XDP_ADJUST_TAIL: i32 = 65;
pub const FIB_LOOKUP: i32 = 69;
pub const MAP_PUSH_ELEM: i32 = 87;
pub const MAP_POP_ELEM: i32 = 88;
pub const MAP_PEEK_ELEM: i32 = 89;
pub const SPIN_LOCK: i32 = 93;
pub const SPIN_UNLOCK: i32 = 94;
pub const KTIME_GET_BOOT_NS: i32 = 125;
pub const RINGBUF_OUTPUT: i32 = 130;
pub const RINGBUF_RESERVE: i32 = 131;
pub const RINGBUF_SUBMIT: i32 = 132;
pub const RINGBUF_DISCARD: i32 = 133;
pub const RINGBUF_QUERY: i32 = 134;
pub const KTIME_GET_COARSE_NS: i32 = 160;
pub const CHECK_MTU: i32 = 163;
pub const FOR_EACH_MAP_ELEM: i32 = 164;
pub const SNPRINTF: i32 = 165;
pub const TRACE_VPRINTK: i32 = 177;
pub const LOOP: i32 = 181;
pub const STRNCMP: i32 = 182;
pub const XDP_GET_BUFF_LEN: i32 = 188;
pub const XDP_LOAD_BYTES: i32 = 189;
pub const XDP_STORE_BYTES: i32 = 190;
pub const MAP_LOOKUP_PERCPU_ELEM: i32 = 195;
pub const DYNPTR_FROM_MEM: i32 = 197;
pub const RINGBUF_RESERVE_DYNPTR: i32 = 198;
pub const RINGBUF_SUBMIT_DYNPTR: i32 = 199;
pub const RINGBUF_DISCARD_DYNPTR: i32 = 200;
pub const DYNPTR_READ: i32 = 201;
pub const DYNPTR_WRITE: i32 = 202;
pub const DYNPTR_DATA: i32 = 203;
pub const KTIME_GET_TAI_NS: i32 = 208;

/// Every helper the interpreter implements, with a one-line note (for docs and `--help`).
pub const SUPPORTED: &[(i32, &str)] = &[
    (
        MAP_LOOKUP_ELEM,
        "pointer to the value for this CPU, or NULL",
    ),
    (
        MAP_UPDATE_ELEM,
        "BPF_ANY/BPF_NOEXIST/BPF_EXIST, kernel errno values",
    ),
    (MAP_DELETE_ELEM, "kernel errno values"),
    (KTIME_GET_NS, "virtual clock (XdpInput::time_ns)"),
    (TRACE_PRINTK, "captured as Event::Printk"),
    (GET_PRANDOM_U32, "seeded generator (Config::seed)"),
    (GET_SMP_PROCESSOR_ID, "XdpInput::cpu"),
    (
        TAIL_CALL,
        "PROG_ARRAY, at most MAX_TAIL_CALL_CNT (33) per run",
    ),
    (GET_CURRENT_PID_TGID, "Config::current_pid_tgid"),
    (GET_CURRENT_UID_GID, "Config::current_uid_gid"),
    (
        GET_CURRENT_COMM,
        "Config::current_comm, NUL-padded like strscpy_pad",
    ),
    (REDIRECT, "recorded as Redirect::Ifindex"),
    (
        PERF_EVENT_OUTPUT,
        "captured as Event::Record when the slot is open",
    ),
    (
        CSUM_DIFF,
        "folded to 16 bits, any sizes, as in Linux >= 6.13",
    ),
    (GET_NUMA_NODE_ID, "always 0"),
    (
        STRTOL,
        "kernel parsing rules (base 0/8/10/16, leading spaces, sign, -ERANGE)",
    ),
    (STRTOUL, "kernel parsing rules; a minus sign is -EINVAL"),
    (
        JIFFIES64,
        "INITIAL_JIFFIES + virtual clock at Config::hz (250 here)",
    ),
    (
        XDP_ADJUST_HEAD,
        "kernel limits (xdp_frame reserve, ETH_HLEN)",
    ),
    (
        REDIRECT_MAP,
        "DEVMAP, DEVMAP_HASH, CPUMAP, XSKMAP; recorded as Redirect::Map",
    ),
    (
        XDP_ADJUST_META,
        "kernel limits (4-byte aligned, xdp_frame reserve)",
    ),
    (
        XDP_ADJUST_TAIL,
        "kernel limits (tailroom, ETH_HLEN, fragments)",
    ),
    (FIB_LOOKUP, "from the user-supplied table (Config::fib)"),
    (MAP_PUSH_ELEM, "QUEUE, STACK, BLOOM_FILTER"),
    (MAP_POP_ELEM, "QUEUE, STACK"),
    (MAP_PEEK_ELEM, "QUEUE, STACK, BLOOM_FILTER (exact set)"),
    (SPIN_LOCK, "single-threaded; double locking faults"),
    (SPIN_UNLOCK, "single-threaded"),
    (KTIME_GET_BOOT_NS, "virtual clock"),
    (RINGBUF_OUTPUT, "captured as Event::Record"),
    (
        RINGBUF_RESERVE,
        "record memory is a checked region until submit/discard",
    ),
    (RINGBUF_SUBMIT, "captured as Event::Record"),
    (RINGBUF_DISCARD, "dropped"),
    (RINGBUF_QUERY, "AVAIL_DATA, RING_SIZE, CONS_POS, PROD_POS"),
    (KTIME_GET_COARSE_NS, "virtual clock"),
    (
        CHECK_MTU,
        "devices from Config::devices (loopback: MTU 65536)",
    ),
    (FOR_EACH_MAP_ELEM, "ARRAY, PERCPU_ARRAY, HASH family"),
    (SNPRINTF, "same conversions as bpf_trace_printk"),
    (TRACE_VPRINTK, "captured as Event::Printk"),
    (LOOP, "callback runs in a new frame"),
    (STRNCMP, "kernel strncmp (-1/0/1)"),
    (XDP_GET_BUFF_LEN, "linear part plus fragments"),
    (XDP_LOAD_BYTES, "across fragments"),
    (XDP_STORE_BYTES, "across fragments"),
    (MAP_LOOKUP_PERCPU_ELEM, "any CPU below Config::ncpus"),
    (
        DYNPTR_FROM_MEM,
        "local dynptrs, kernel layout (struct bpf_dynptr_kern)",
    ),
    (RINGBUF_RESERVE_DYNPTR, "ring buffer dynptrs"),
    (RINGBUF_SUBMIT_DYNPTR, "captured as Event::Record"),
    (RINGBUF_DISCARD_DYNPTR, "dropped"),
    (DYNPTR_READ, "local and ring buffer dynptrs"),
    (DYNPTR_WRITE, "local and ring buffer dynptrs"),
    (DYNPTR_DATA, "local and ring buffer dynptrs"),
    (KTIME_GET_TAI_NS, "virtual clock"),
    (
        crate::timer::TIMER_INIT,
        "timer in a map value; -EBUSY/-EINVAL as the kernel",
    ),
    (
        crate::timer::TIMER_SET_CALLBACK,
        "callback run on the virtual clock",
    ),
    (
        crate::timer::TIMER_START,
        "fires before the next run at/after expiry, in expiry order",
    ),
    (
        crate::timer::TIMER_CANCEL,
        "1 if armed; drops the callback; -EDEADLK from its own callback",
    ),
    (
        crate::user_ringbuf::USER_RINGBUF_DRAIN,
        "samples from Interpreter::user_ringbuf_push, one callback each",
    ),
    (
        crate::task::GET_CGROUP_CLASSID,
        "Config::current_classid (the task's net_cls class)",
    ),
    (
        crate::task::GET_CURRENT_CGROUP_ID,
        "last of Config::current_cgroup",
    ),
    (
        crate::task::GET_NS_CURRENT_PID_TGID,
        "Config::current_pidns / current_pid_tgid; -EINVAL and zeroed otherwise",
    ),
    (
        crate::task::GET_CURRENT_ANCESTOR_CGROUP_ID,
        "Config::current_cgroup[level], 0 past it",
    ),
];

/// Kernel helper names by number (`__BPF_FUNC_MAPPER`), for error messages.
pub use bpfkit_isa::helper::{name, NAMES};

// XDP actions.
const XDP_ABORTED: u64 = 0;
const XDP_REDIRECT: u64 = 4;

pub(crate) fn neg(errno: i64) -> u64 {
    (-errno) as u64
}

pub(crate) fn herr(helper: &'static str, msg: impl Into<String>) -> FaultKind {
    FaultKind::Helper {
        helper,
        msg: msg.into(),
    }
}

fn map_arg(rt: &Runtime, v: u64) -> Result<usize, FaultKind> {
    match handle_to_index(v) {
        Some(i) if i < rt.maps.maps.len() => Ok(i),
        _ => Err(FaultKind::NotAMap(v)),
    }
}

pub(crate) fn xdp_required(rt: &Runtime, helper: &'static str) -> Result<(), FaultKind> {
    if rt.xdp.is_none() {
        return Err(herr(helper, "needs an XDP context (this run has none)"));
    }
    Ok(())
}

/// Helpers that run BPF callbacks on the interpreter in a new frame (the JIT's fast mode
/// re-registers its frames after them).
pub fn runs_callbacks(id: i32) -> bool {
    matches!(
        id,
        LOOP | FOR_EACH_MAP_ELEM | crate::user_ringbuf::USER_RINGBUF_DRAIN
    )
}

/// Helpers that read or write no memory through their arguments (the context pointer of
/// `bpf_xdp_adjust_*` and `bpf_xdp_get_buff_len` is not checked against the regions): the
/// JIT's fast mode calls them without registering its stack frames first.
pub fn touches_no_memory(id: i32) -> bool {
    matches!(
        id,
        KTIME_GET_NS
            | KTIME_GET_BOOT_NS
            | KTIME_GET_COARSE_NS
            | KTIME_GET_TAI_NS
            | GET_PRANDOM_U32
            | GET_SMP_PROCESSOR_ID
            | GET_NUMA_NODE_ID
            | GET_CURRENT_PID_TGID
            | GET_CURRENT_UID_GID
            | JIFFIES64
            | REDIRECT
            | REDIRECT_MAP
            | XDP_ADJUST_HEAD
            | XDP_ADJUST_META
            | XDP_ADJUST_TAIL
            | XDP_GET_BUFF_LEN
    )
}

/// Helpers the JIT's fast mode calls through a trampoline of their own (one per helper,
/// the id a constant there, so [`call_direct`] compiles to a direct call of the helper's
/// body): none runs a callback or is a kfunc. The result is exactly [`call`]'s.
pub const DIRECT: &[i32] = &[
    KTIME_GET_NS,
    KTIME_GET_BOOT_NS,
    KTIME_GET_COARSE_NS,
    KTIME_GET_TAI_NS,
    GET_PRANDOM_U32,
    GET_SMP_PROCESSOR_ID,
    REDIRECT,
    REDIRECT_MAP,
    CSUM_DIFF,
    XDP_ADJUST_HEAD,
    XDP_ADJUST_META,
    XDP_ADJUST_TAIL,
    XDP_GET_BUFF_LEN,
    XDP_LOAD_BYTES,
    XDP_STORE_BYTES,
    MAP_PUSH_ELEM,
    MAP_POP_ELEM,
    MAP_PEEK_ELEM,
    RINGBUF_OUTPUT,
    RINGBUF_RESERVE,
    RINGBUF_SUBMIT,
    RINGBUF_DISCARD,
    CHECK_MTU,
];

/// Helpers that move the packet pointers (`data`, `data_meta`, `data_end`): after them the
/// JIT's fast mode refreshes its copy of the context fields.
pub fn moves_packet(id: i32) -> bool {
    matches!(id, XDP_ADJUST_HEAD | XDP_ADJUST_META | XDP_ADJUST_TAIL)
}

/// [`call`] for an id of [`DIRECT`]: the same helper bodies, selected by a `match` that a
/// constant `id` folds away when this is inlined (the JIT's per-helper trampolines).
#[inline(always)]
pub fn call_direct(rt: &mut Runtime, id: i32, a: &[u64; 5]) -> Result<u64, FaultKind> {
    match id {
        KTIME_GET_NS | KTIME_GET_BOOT_NS | KTIME_GET_COARSE_NS | KTIME_GET_TAI_NS => Ok(rt.time_ns),
        GET_PRANDOM_U32 => Ok(rt.prandom_u32() as u64),
        GET_SMP_PROCESSOR_ID => Ok(rt.cpu as u64),
        REDIRECT => redirect(rt, a),
        REDIRECT_MAP => redirect_map(rt, a),
        CSUM_DIFF => csum_diff(rt, a),
        XDP_ADJUST_HEAD => xdp_adjust_head(rt, a),
        XDP_ADJUST_META => xdp_adjust_meta(rt, a),
        XDP_ADJUST_TAIL => xdp_adjust_tail(rt, a),
        XDP_GET_BUFF_LEN => xdp_get_buff_len(rt),
        XDP_LOAD_BYTES => xdp_load_store(rt, a, false),
        XDP_STORE_BYTES => xdp_load_store(rt, a, true),
        MAP_PUSH_ELEM => map_push_elem(rt, a),
        MAP_POP_ELEM => map_pop_peek(rt, a, true),
        MAP_PEEK_ELEM => map_pop_peek(rt, a, false),
        RINGBUF_OUTPUT => ringbuf_output(rt, a),
        RINGBUF_RESERVE => ringbuf_reserve(rt, a),
        RINGBUF_SUBMIT => ringbuf_submit(rt, a, true),
        RINGBUF_DISCARD => ringbuf_submit(rt, a, false),
        CHECK_MTU => check_mtu(rt, a),
        _ => call(rt, id, a),
    }
}

fn xdp_get_buff_len(rt: &mut Runtime) -> Result<u64, FaultKind> {
    xdp_required(rt, "bpf_xdp_get_buff_len")?;
    let x = rt.xdp.as_ref().expect("checked");
    Ok(x.data_end - x.data + x.frags_len())
}

/// Calls helper `id` with r1..r5; callbacks run on the interpreter.
pub fn call(rt: &mut Runtime, id: i32, a: &[u64; 5]) -> Result<u64, FaultKind> {
    match id {
        LOOP | FOR_EACH_MAP_ELEM | crate::user_ringbuf::USER_RINGBUF_DRAIN => {
            call_with(rt, id, a, &mut InterpRunner)
        }
        _ => call_plain(rt, id, a),
    }
}

/// Calls helper `id` with r1..r5; the callbacks of `bpf_loop`, `bpf_for_each_map_elem`
/// and `bpf_user_ringbuf_drain` run on `runner` (the JIT passes one that runs its code).
pub fn call_with(
    rt: &mut Runtime,
    id: i32,
    a: &[u64; 5],
    runner: &mut dyn CallbackRunner,
) -> Result<u64, FaultKind> {
    match id {
        LOOP => bpf_loop(rt, a, runner),
        FOR_EACH_MAP_ELEM => for_each_map_elem(rt, a, runner),
        crate::user_ringbuf::USER_RINGBUF_DRAIN => crate::user_ringbuf::drain(rt, a, runner),
        _ => call_plain(rt, id, a),
    }
}

/// Every helper that runs no callback.
#[inline]
fn call_plain(rt: &mut Runtime, id: i32, a: &[u64; 5]) -> Result<u64, FaultKind> {
    match id {
        MAP_LOOKUP_ELEM => map_lookup_elem(rt, a),
        MAP_UPDATE_ELEM => map_update_elem(rt, a),
        MAP_DELETE_ELEM => map_delete_elem(rt, a),
        KTIME_GET_NS | KTIME_GET_BOOT_NS | KTIME_GET_COARSE_NS | KTIME_GET_TAI_NS => Ok(rt.time_ns),
        TRACE_PRINTK => trace_printk(rt, a),
        GET_PRANDOM_U32 => Ok(rt.prandom_u32() as u64),
        GET_SMP_PROCESSOR_ID => Ok(rt.cpu as u64),
        GET_NUMA_NODE_ID => Ok(0),
        GET_CURRENT_PID_TGID => Ok(rt.config.current_pid_tgid),
        GET_CURRENT_UID_GID => Ok(rt.config.current_uid_gid),
        GET_CURRENT_COMM => {
            let size = a[1] as u32 as usize;
            rt.regions.check(a[0], size as u64, true)?;
            let mut buf = vec![0u8; size];
            let comm = rt.config.current_comm.as_bytes();
            // task->comm holds at most 15 characters; strscpy_pad keeps size - 1 of them.
            let n = comm.len().min(15).min(size.saturating_sub(1));
            buf[..n].copy_from_slice(&comm[..n]);
            rt.regions.write_bytes(a[0], &buf)?;
            Ok(0)
        }
        STRTOL => strtox(rt, a, true),
        STRTOUL => strtox(rt, a, false),
        JIFFIES64 => {
            let hz = rt.config.hz.max(1) as u64;
            let initial = (-300i64 * hz as i64) as u32 as u64; // INITIAL_JIFFIES
            Ok(initial.wrapping_add(rt.time_ns / (1_000_000_000 / hz)))
        }
        REDIRECT => redirect(rt, a),
        PERF_EVENT_OUTPUT => perf_event_output(rt, a),
        CSUM_DIFF => csum_diff(rt, a),
        XDP_ADJUST_HEAD => xdp_adjust_head(rt, a),
        XDP_ADJUST_META => xdp_adjust_meta(rt, a),
        XDP_ADJUST_TAIL => xdp_adjust_tail(rt, a),
        REDIRECT_MAP => redirect_map(rt, a),
        FIB_LOOKUP => crate::fib::lookup(rt, a),
        MAP_PUSH_ELEM => map_push_elem(rt, a),
        MAP_POP_ELEM => map_pop_peek(rt, a, true),
        MAP_PEEK_ELEM => map_pop_peek(rt, a, false),
        SPIN_LOCK => spin_lock(rt, a),
        SPIN_UNLOCK => spin_unlock(rt, a),
        RINGBUF_OUTPUT => ringbuf_output(rt, a),
        RINGBUF_RESERVE => ringbuf_reserve(rt, a),
        RINGBUF_SUBMIT => ringbuf_submit(rt, a, true),
        RINGBUF_DISCARD => ringbuf_submit(rt, a, false),
        RINGBUF_QUERY => ringbuf_query(rt, a),
        CHECK_MTU => check_mtu(rt, a),
        SNPRINTF => snprintf(rt, a),
        TRACE_VPRINTK => trace_vprintk(rt, a),
        STRNCMP => strncmp(rt, a),
        XDP_GET_BUFF_LEN => xdp_get_buff_len(rt),
        XDP_LOAD_BYTES => xdp_load_store(rt, a, false),
        XDP_STORE_BYTES => xdp_load_store(rt, a, true),
        MAP_LOOKUP_PERCPU_ELEM => map_lookup_percpu_elem(rt, a),
        DYNPTR_FROM_MEM => dynptr_from_mem(rt, a),
        RINGBUF_RESERVE_DYNPTR => ringbuf_reserve_dynptr(rt, a),
        RINGBUF_SUBMIT_DYNPTR => ringbuf_submit_dynptr(rt, a, true),
        RINGBUF_DISCARD_DYNPTR => ringbuf_submit_dynptr(rt, a, false),
        DYNPTR_READ => dynptr_read(rt, a),
        DYNPTR_WRITE => dynptr_write(rt, a),
        DYNPTR_DATA => dynptr_data(rt, a),
        crate::timer::TIMER_INIT..=crate::timer::TIMER_CANCEL => crate::timer::call(rt, id, a),
        id if id > crate::kfunc::HELPER_BASE => {
            crate::kfunc::call(rt, id - crate::kfunc::HELPER_BASE, a)
        }
        crate::task::GET_CGROUP_CLASSID
        | crate::task::GET_CURRENT_CGROUP_ID
        | crate::task::GET_NS_CURRENT_PID_TGID
        | crate::task::GET_CURRENT_ANCESTOR_CGROUP_ID => crate::task::call(rt, id, a),
        _ => match name(id) {
            Some(name) => Err(FaultKind::UnsupportedHelper { id, name }),
            None => Err(FaultKind::UnknownHelper(id as i64)),
        },
    }
}

fn map_err_code(e: &maps::Failure) -> u64 {
    neg(e.errno)
}

fn map_lookup_elem(rt: &mut Runtime, a: &[u64; 5]) -> Result<u64, FaultKind> {
    let m = map_arg(rt, a[0])?;
    let map = &rt.maps.maps[m];
    let t = map.map_type();
    if matches!(
        t,
        mt::PROG_ARRAY | mt::PERF_EVENT_ARRAY | mt::RINGBUF | mt::QUEUE | mt::STACK | mt::CPUMAP
    ) {
        return Err(herr(
            "bpf_map_lookup_elem",
            format!("not allowed on map {:?} of this type", map.def.name),
        ));
    }
    let key = rt.regions.read_arg(a[1], map.def.key_size as u64)?;
    if matches!(t, mt::ARRAY_OF_MAPS | mt::HASH_OF_MAPS) {
        // The value is the inner map itself.
        return Ok(match map.slot(&key) {
            Some(v) => {
                map_handle(u32::from_le_bytes(v[..4].try_into().expect("4-byte slot")) as usize)
            }
            None => 0,
        });
    }
    let cpu = rt.cpu;
    Ok(match rt.maps.maps[m].lookup_addr(&key, cpu) {
        Lookup::Value(addr) => addr,
        Lookup::Null => 0,
    })
}

fn map_lookup_percpu_elem(rt: &mut Runtime, a: &[u64; 5]) -> Result<u64, FaultKind> {
    let m = map_arg(rt, a[0])?;
    let map = &rt.maps.maps[m];
    if !map.is_percpu() {
        return Err(herr(
            "bpf_map_lookup_percpu_elem",
            format!("map {:?} is not a per-CPU map", map.def.name),
        ));
    }
    let key = rt.regions.read_arg(a[1], map.def.key_size as u64)?;
    let cpu = a[2] as u32;
    if a[2] >= rt.config.ncpus as u64 {
        return Ok(0);
    }
    Ok(match rt.maps.maps[m].lookup_addr(&key, cpu) {
        Lookup::Value(addr) => addr,
        Lookup::Null => 0,
    })
}

fn map_update_elem(rt: &mut Runtime, a: &[u64; 5]) -> Result<u64, FaultKind> {
    let m = map_arg(rt, a[0])?;
    let map = &rt.maps.maps[m];
    if matches!(map.map_type(), mt::QUEUE | mt::STACK) {
        return Err(herr(
            "bpf_map_update_elem",
            "use bpf_map_push_elem on queue/stack maps",
        ));
    }
    let key = rt.regions.read_arg(a[1], map.def.key_size as u64)?;
    let value = rt.regions.read_arg(a[2], map.def.value_size as u64)?;
    Ok(map_update_bytes(rt, m, &key, &value, a[3]))
}

/// What `bpf_map_update_elem` does once its key and value are read (`key_size` and
/// `value_size` bytes; `m` a valid map index, not a queue/stack): returns r0. Shared by
/// the helper and the JIT's fast path.
pub fn map_update_bytes(rt: &mut Runtime, m: usize, key: &[u8], value: &[u8], flags: u64) -> u64 {
    let cpu = rt.cpu;
    let Runtime { maps, regions, .. } = rt;
    let r = maps.maps[m].try_update(key, value, flags, Some(cpu), regions, &mut maps.graveyard);
    if r.is_ok() {
        crate::timer::elem_changed(rt, m, key);
    }
    match r {
        Ok(()) => 0,
        Err(e) => map_err_code(&e),
    }
}

fn map_delete_elem(rt: &mut Runtime, a: &[u64; 5]) -> Result<u64, FaultKind> {
    let m = map_arg(rt, a[0])?;
    let map = &rt.maps.maps[m];
    let key = rt.regions.read_arg(a[1], map.def.key_size as u64)?;
    Ok(map_delete_bytes(rt, m, &key))
}

/// What `bpf_map_delete_elem` does once its key is read (`m` a valid map index): returns
/// r0. Shared by the helper and the JIT's fast path.
pub fn map_delete_bytes(rt: &mut Runtime, m: usize, key: &[u8]) -> u64 {
    let maps = &mut rt.maps;
    let r = maps.maps[m].try_delete(key, &mut maps.graveyard);
    if r.is_ok() {
        crate::timer::elem_changed(rt, m, key);
    }
    match r {
        Ok(()) => 0,
        Err(e) => map_err_code(&e),
    }
}

fn map_push_elem(rt: &mut Runtime, a: &[u64; 5]) -> Result<u64, FaultKind> {
    let m = map_arg(rt, a[0])?;
    let map = &rt.maps.maps[m];
    if !matches!(map.map_type(), mt::QUEUE | mt::STACK | mt::BLOOM_FILTER) {
        return Err(herr(
            "bpf_map_push_elem",
            format!(
                "map {:?} is not a queue, stack or bloom filter",
                map.def.name
            ),
        ));
    }
    let value = rt.regions.read_arg(a[1], map.def.value_size as u64)?;
    Ok(match rt.maps.maps[m].try_push(&value, a[2]) {
        Ok(()) => 0,
        Err(e) => map_err_code(&e),
    })
}

fn map_pop_peek(rt: &mut Runtime, a: &[u64; 5], delete: bool) -> Result<u64, FaultKind> {
    let m = map_arg(rt, a[0])?;
    let map = &rt.maps.maps[m];
    let helper = if delete {
        "bpf_map_pop_elem"
    } else {
        "bpf_map_peek_elem"
    };
    if !delete && map.map_type() == mt::BLOOM_FILTER {
        let value = rt.regions.read_arg(a[1], map.def.value_size as u64)?;
        return Ok(match map.bloom_contains(&value) {
            Some(true) => 0,
            _ => neg(maps::ENOENT),
        });
    }
    if !matches!(map.map_type(), mt::QUEUE | mt::STACK) {
        return Err(herr(
            helper,
            format!("map {:?} is not a queue or stack", map.def.name),
        ));
    }
    // The destination must be writable even when the map is empty.
    rt.regions.check(a[1], map.def.value_size as u64, true)?;
    // Written straight from the element (no copy of the value).
    let regions = &rt.regions;
    match rt.maps.maps[m].try_pop_with(delete, |v| regions.write_bytes(a[1], v)) {
        Ok(w) => {
            w?;
            Ok(0)
        }
        Err(e) => Ok(map_err_code(&e)),
    }
}

/// Resolves `bpf_tail_call(ctx, prog_array, index)`: the program to continue with, or
/// `None` when the call falls through (bad index, empty slot, limit reached).
pub fn tail_call_target(rt: &mut Runtime, a: &[u64; 5]) -> Result<Option<usize>, FaultKind> {
    let m = map_arg(rt, a[1])?;
    let map = &rt.maps.maps[m];
    if map.map_type() != mt::PROG_ARRAY {
        return Err(herr(
            "bpf_tail_call",
            format!("map {:?} is not a PROG_ARRAY", map.def.name),
        ));
    }
    let index = a[2] as u32;
    if index >= map.def.max_entries {
        return Ok(None);
    }
    if rt.tail_calls >= MAX_TAIL_CALL_CNT {
        return Ok(None);
    }
    let Some(slot) = map.slot(&index.to_le_bytes()) else {
        return Ok(None);
    };
    let p = u32::from_le_bytes(slot[..4].try_into().expect("4-byte slot")) as usize;
    if p >= rt.programs.len() {
        return Err(herr(
            "bpf_tail_call",
            format!("slot {index} holds program #{p}, which does not exist"),
        ));
    }
    rt.tail_calls += 1;
    Ok(Some(p))
}

fn redirect(rt: &mut Runtime, a: &[u64; 5]) -> Result<u64, FaultKind> {
    if a[1] != 0 {
        return Ok(XDP_ABORTED);
    }
    rt.redirect = Some(Redirect::Ifindex(a[0] as u32));
    Ok(XDP_REDIRECT)
}

const BPF_F_BROADCAST: u64 = 1 << 3;
const BPF_F_EXCLUDE_INGRESS: u64 = 1 << 4;

fn redirect_map(rt: &mut Runtime, a: &[u64; 5]) -> Result<u64, FaultKind> {
    let m = map_arg(rt, a[0])?;
    let map = &rt.maps.maps[m];
    let flags = a[2];
    let flag_mask = match map.map_type() {
        mt::DEVMAP | mt::DEVMAP_HASH => BPF_F_BROADCAST | BPF_F_EXCLUDE_INGRESS,
        mt::CPUMAP | mt::XSKMAP => 0,
        _ => {
            return Err(herr(
                "bpf_redirect_map",
                format!(
                    "map {:?} is not a DEVMAP, DEVMAP_HASH, CPUMAP or XSKMAP",
                    map.def.name
                ),
            ))
        }
    };
    let action_mask = 3u64;
    if flags & !(action_mask | flag_mask) != 0 {
        return Ok(XDP_ABORTED);
    }
    let key = a[1] as u32;
    // The key as the map's key size (4 for every type but DEVMAP_HASH's wider keys),
    // without allocating.
    let ks = map.def.key_size as usize;
    let found = if ks <= 16 {
        let mut k = [0u8; 16];
        k[..4.min(ks)].copy_from_slice(&key.to_le_bytes()[..4.min(ks)]);
        map.slot(&k[..ks]).is_some()
    } else {
        let mut k = key.to_le_bytes().to_vec();
        k.resize(ks, 0);
        map.slot(&k).is_some()
    };
    if !found && flags & BPF_F_BROADCAST == 0 {
        rt.redirect = None;
        return Ok(flags & action_mask);
    }
    rt.redirect = Some(Redirect::Map { map: m, key });
    Ok(XDP_REDIRECT)
}

const BPF_F_INDEX_MASK: u64 = 0xffff_ffff;
const BPF_F_CTXLEN_MASK: u64 = 0xfffff << 32;

fn perf_event_output(rt: &mut Runtime, a: &[u64; 5]) -> Result<u64, FaultKind> {
    let m = map_arg(rt, a[1])?;
    let flags = a[2];
    let map = &rt.maps.maps[m];
    if map.map_type() != mt::PERF_EVENT_ARRAY {
        return Err(herr(
            "bpf_perf_event_output",
            format!("map {:?} is not a PERF_EVENT_ARRAY", map.def.name),
        ));
    }
    if flags & !(BPF_F_CTXLEN_MASK | BPF_F_INDEX_MASK) != 0 {
        return Ok(neg(maps::EINVAL));
    }
    let ctx_len = (flags & BPF_F_CTXLEN_MASK) >> 32;
    let data = rt.regions.read_bytes(a[3], a[4])?;
    let buff_len = rt
        .xdp
        .as_ref()
        .map(|x| x.data_end - x.data + x.frags_len())
        .unwrap_or(0);
    if ctx_len > buff_len {
        return Ok(neg(14)); // -EFAULT
    }
    let mut index = flags & BPF_F_INDEX_MASK;
    if index == BPF_F_INDEX_MASK {
        index = rt.cpu as u64;
    }
    if index >= map.def.max_entries as u64 {
        return Ok(neg(maps::E2BIG));
    }
    let open = rt.config.perf_events_open || map.slot(&(index as u32).to_le_bytes()).is_some();
    if !open {
        return Ok(neg(maps::ENOENT));
    }
    let mut record = data;
    if ctx_len > 0 {
        read_packet(rt, 0, ctx_len, &mut record);
    }
    rt.events.push(Event::Record {
        map: m,
        data: record,
    });
    Ok(0)
}

/// Copies `len` bytes at `off` from the start of packet data, across fragments (the caller
/// checked the bounds).
pub(crate) fn read_packet(rt: &Runtime, off: u64, len: u64, out: &mut Vec<u8>) {
    let Some(x) = &rt.xdp else { return };
    out.reserve(len as usize);
    packet_segments(x, off, len, |p, n, _| {
        // SAFETY: `packet_segments` hands out `n` initialised bytes of the packet page or a
        // fragment, which nothing writes while `out` (a separate allocation) is extended.
        out.extend_from_slice(unsafe { std::slice::from_raw_parts(p, n) })
    });
}

/// [`packet_segments`] for writing: the same pieces as pointers that may be written.
#[inline]
pub(crate) fn packet_segments_mut(
    x: &mut XdpState,
    off: u64,
    len: u64,
    mut f: impl FnMut(*mut u8, usize, usize),
) {
    let (mut off, mut left, mut at) = (off as usize, len as usize, 0usize);
    // The page is raw memory the runtime owns; `data` is an address inside it.
    let lin = (x.data as *mut u8, (x.data_end - x.data) as usize);
    let frags = x.frags.iter_mut().map(|f| (f.as_mut_ptr(), f.len()));
    for (p, seg_len) in std::iter::once(lin).chain(frags) {
        if left == 0 {
            break;
        }
        if off >= seg_len {
            off -= seg_len;
            continue;
        }
        let n = left.min(seg_len - off);
        f(p.wrapping_add(off), n, at);
        at += n;
        left -= n;
        off = 0;
    }
}

/// Calls `f(ptr, n, at)` for the pieces of packet bytes `off .. off + len` (linear part,
/// then fragments) in order: `n` bytes at `ptr`, `at` bytes from `off`. The caller checked
/// that the range lies inside the packet. Nothing is copied or allocated; the pieces are
/// raw pointers so that `f` may write memory that overlaps them (the packet itself).
#[inline]
pub(crate) fn packet_segments(
    x: &XdpState,
    off: u64,
    len: u64,
    mut f: impl FnMut(*const u8, usize, usize),
) {
    let (mut off, mut left, mut at) = (off as usize, len as usize, 0usize);
    let lin = (x.data as *const u8, (x.data_end - x.data) as usize);
    let frags = x.frags.iter().map(|f| (f.as_ptr(), f.len()));
    for (p, seg_len) in std::iter::once(lin).chain(frags) {
        if left == 0 {
            break;
        }
        if off >= seg_len {
            off -= seg_len;
            continue;
        }
        let n = left.min(seg_len - off);
        // `off < seg_len`: still inside the piece.
        f(p.wrapping_add(off), n, at);
        at += n;
        left -= n;
        off = 0;
    }
}

/// `csum_partial` followed by nothing: a 32-bit ones' complement sum (as a `__wsum`).
fn csum_partial(bytes: &[u8], seed: u32) -> u32 {
    let mut acc: u64 = seed as u64;
    let mut chunks = bytes.chunks_exact(4);
    for c in &mut chunks {
        acc += u32::from_le_bytes(c.try_into().expect("4 bytes")) as u64;
    }
    let rest = chunks.remainder();
    let mut tail = [0u8; 4];
    tail[..rest.len()].copy_from_slice(rest);
    acc += u32::from_le_bytes(tail) as u64;
    while acc >> 32 != 0 {
        acc = (acc & 0xffff_ffff) + (acc >> 32);
    }
    acc as u32
}

fn csum_add(a: u32, b: u32) -> u32 {
    let (s, c) = a.overflowing_add(b);
    s.wrapping_add(c as u32)
}

fn from32to16(x: u32) -> u32 {
    let x = (x & 0xffff) + (x >> 16);
    (x & 0xffff) + (x >> 16)
}

fn csum_diff(rt: &mut Runtime, a: &[u64; 5]) -> Result<u64, FaultKind> {
    let (from_size, to_size) = (a[1] as u32, a[3] as u32);
    let seed = a[4] as u32;
    // Since Linux 6.13 there is no size check left in the helper (the verifier bounds the
    // buffers); sizes need not be multiples of 4 (measured on 6.18).
    // Summed in place: no copy of either buffer (the helper is called per packet).
    let from = checked_slice(rt, a[0], from_size as u64)?;
    let to = checked_slice(rt, a[2], to_size as u64)?;
    let r = if from_size > 0 && to_size > 0 {
        csum_add(csum_partial(to, seed), !csum_partial(from, 0))
    } else if to_size > 0 {
        csum_partial(to, seed)
    } else if from_size > 0 {
        !csum_partial(from, !seed)
    } else {
        seed
    };
    Ok(from32to16(r) as u64)
}

/// `len` readable bytes at `addr`, checked against the regions like
/// `Regions::read_bytes`, borrowed instead of copied.
fn checked_slice(rt: &Runtime, addr: u64, len: u64) -> Result<&[u8], FaultKind> {
    if len == 0 {
        return Ok(&[]);
    }
    rt.regions.check(addr, len, false)?;
    // SAFETY: `check` proved `[addr, addr + len)` lies inside a live region, backed by
    // memory the runtime owns and keeps in place while the region is registered; the
    // slice borrows `rt`, so no region can go away or be written while it is used.
    Ok(unsafe { std::slice::from_raw_parts(addr as *const u8, len as usize) })
}

fn xdp_adjust_head(rt: &mut Runtime, a: &[u64; 5]) -> Result<u64, FaultKind> {
    xdp_required(rt, "bpf_xdp_adjust_head")?;
    let x = rt.xdp.as_mut().expect("checked");
    let offset = a[1] as i32 as i64;
    let metalen = x.data - x.data_meta;
    let data_start = x.frame_end() + metalen;
    let data = (x.data as i64 + offset) as u64;
    if data < data_start || data > x.data_end - ETH_HLEN {
        return Ok(neg(maps::EINVAL));
    }
    let base = x.page.addr();
    if metalen > 0 {
        let from = (x.data_meta - base) as usize;
        let to = (x.data_meta as i64 + offset) as u64 - base;
        x.page
            .as_mut_slice()
            .copy_within(from..from + metalen as usize, to as usize);
    }
    x.data_meta = (x.data_meta as i64 + offset) as u64;
    x.data = data;
    rt.sync_packet_regions();
    Ok(0)
}

fn xdp_adjust_meta(rt: &mut Runtime, a: &[u64; 5]) -> Result<u64, FaultKind> {
    xdp_required(rt, "bpf_xdp_adjust_meta")?;
    let x = rt.xdp.as_mut().expect("checked");
    let offset = a[1] as i32 as i64;
    let meta = (x.data_meta as i64 + offset) as u64;
    if meta < x.frame_end() || meta > x.data {
        return Ok(neg(maps::EINVAL));
    }
    let metalen = x.data - meta;
    // xdp_metalen_invalid: 4-byte aligned and at most what skb_shared_info.meta_len holds.
    if metalen & 3 != 0 || metalen > 255 {
        return Ok(neg(13)); // -EACCES
    }
    x.data_meta = meta;
    rt.sync_packet_regions();
    Ok(0)
}

fn xdp_adjust_tail(rt: &mut Runtime, a: &[u64; 5]) -> Result<u64, FaultKind> {
    xdp_required(rt, "bpf_xdp_adjust_tail")?;
    let x = rt.xdp.as_mut().expect("checked");
    let offset = a[1] as i32 as i64;
    if !x.frags.is_empty() {
        // bpf_xdp_frags_increase_tail / bpf_xdp_frags_shrink_tail.
        if offset >= 0 {
            let last = x.frags.last_mut().expect("non-empty");
            let tailroom = PAGE_SIZE as i64 - last.len() as i64;
            if offset > tailroom {
                return Ok(neg(maps::EINVAL));
            }
            last.resize(last.len() + offset as usize, 0);
        } else {
            let shrink = -offset as u64;
            let total = x.data_end - x.data + x.frags_len();
            if shrink > total - ETH_HLEN {
                return Ok(neg(maps::EINVAL));
            }
            let mut left = shrink;
            while left > 0 {
                let Some(last) = x.frags.last_mut() else {
                    break;
                };
                let take = left.min(last.len() as u64);
                last.truncate(last.len() - take as usize);
                left -= take;
                if last.is_empty() {
                    x.frags.pop();
                }
            }
            x.data_end -= left;
        }
        rt.sync_packet_regions();
        return Ok(0);
    }
    let data_end = (x.data_end as i64 + offset) as u64;
    if data_end > x.hard_end() || data_end < x.data + ETH_HLEN {
        return Ok(neg(maps::EINVAL));
    }
    if offset > 0 {
        let base = x.page.addr();
        let from = (x.data_end - base) as usize;
        x.page.as_mut_slice()[from..from + offset as usize].fill(0);
    }
    x.data_end = data_end;
    rt.sync_packet_regions();
    Ok(0)
}

pub(crate) fn xdp_load_store(
    rt: &mut Runtime,
    a: &[u64; 5],
    store: bool,
) -> Result<u64, FaultKind> {
    let helper = if store {
        "bpf_xdp_store_bytes"
    } else {
        "bpf_xdp_load_bytes"
    };
    xdp_required(rt, helper)?;
    let (off, len) = (a[1] as u32 as u64, a[3] as u32 as u64);
    let buf = a[2];
    if off > 0xffff || len > 0xffff {
        return Ok(neg(14)); // -EFAULT
    }
    let x = rt.xdp.as_ref().expect("checked");
    let lin = x.data_end - x.data;
    if off + len > lin + x.frags_len() {
        return Ok(neg(maps::EINVAL));
    }
    if store {
        if len == 0 {
            return Ok(0);
        }
        if off + len <= lin {
            // Inside the linear part: one memmove from the checked source (which may be
            // the packet itself: memmove reads it all before the overlap is written).
            rt.regions.check(buf, len, false)?;
            let x = rt.xdp.as_mut().expect("checked");
            packet_segments_mut(x, off, len, |p, n, at| {
                // SAFETY: `check` proved `[buf, buf + len)` lies in a live region owned by
                // the runtime, and `at + n <= len`; `p` is `n` writable bytes of the packet
                // page.
                unsafe { std::ptr::copy((buf as *const u8).add(at), p, n) };
            });
        } else {
            // Across pieces: the source is copied first (inline up to `ARG_INLINE` bytes),
            // since writing the first piece could change a source lying in the packet.
            let bytes = rt.regions.read_arg(buf, len)?;
            let x = rt.xdp.as_mut().expect("checked");
            packet_segments_mut(x, off, len, |p, n, at| {
                // SAFETY: `p` is `n` writable bytes of the packet page or a fragment, and
                // `bytes` (a separate buffer) holds `at + n <= len` bytes.
                unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr().add(at), p, n) };
            });
        }
    } else {
        rt.regions.check(buf, len, true)?;
        if len > 0 {
            // Straight from the packet's pieces into the checked destination.
            packet_segments(x, off, len, |p, n, at| {
                // SAFETY: `check` proved `[buf, buf + len)` lies in a live writable region
                // owned by the runtime, and `at + n <= len`; the `n` source bytes are packet
                // memory (checked bounds). `copy` (memmove): the destination may be the
                // packet itself.
                unsafe { std::ptr::copy(p, (buf as *mut u8).add(at), n) };
            });
        }
    }
    Ok(0)
}

fn check_mtu(rt: &mut Runtime, a: &[u64; 5]) -> Result<u64, FaultKind> {
    xdp_required(rt, "bpf_check_mtu")?;
    let x = rt.xdp.as_ref().expect("checked");
    let flags = a[4];
    if flags != 0 {
        return Ok(neg(maps::EINVAL));
    }
    let ifindex = if a[1] as u32 == 0 {
        x.ingress_ifindex
    } else {
        a[1] as u32
    };
    let Some(dev) = rt.config.device(ifindex) else {
        return Ok(neg(maps::ENODEV));
    };
    let mtu_in = rt.regions.load(a[2], 4)? as u32;
    let mut xdp_len = (x.data_end - x.data) as i64;
    let dev_len = dev.mtu as i64 + dev.hard_header_len as i64;
    if mtu_in != 0 {
        xdp_len = mtu_in as i64 + dev.hard_header_len as i64;
    }
    xdp_len += a[3] as i32 as i64;
    let ret = if xdp_len > dev_len { 1 } else { 0 }; // BPF_MTU_CHK_RET_FRAG_NEEDED
    rt.regions.store(a[2], 4, dev.mtu as u64)?;
    Ok(ret)
}

fn spin_lock(rt: &mut Runtime, a: &[u64; 5]) -> Result<u64, FaultKind> {
    let v = rt.regions.load(a[0], 4)?;
    rt.regions.check(a[0], 4, true)?;
    if v != 0 || rt.locks.contains(&a[0]) {
        return Err(herr(
            "bpf_spin_lock",
            format!(
                "lock at {:#x} is already held (the kernel would deadlock)",
                a[0]
            ),
        ));
    }
    if !rt.locks.is_empty() {
        return Err(herr(
            "bpf_spin_lock",
            "a program may hold only one spin lock at a time",
        ));
    }
    rt.regions.store(a[0], 4, 1)?;
    rt.locks.push(a[0]);
    Ok(0)
}

fn spin_unlock(rt: &mut Runtime, a: &[u64; 5]) -> Result<u64, FaultKind> {
    if !rt.locks.contains(&a[0]) {
        return Err(herr(
            "bpf_spin_unlock",
            format!("lock at {:#x} is not held", a[0]),
        ));
    }
    rt.regions.store(a[0], 4, 0)?;
    rt.locks.retain(|l| *l != a[0]);
    Ok(0)
}

const BPF_RB_NO_WAKEUP: u64 = 1;
const BPF_RB_FORCE_WAKEUP: u64 = 2;
const RINGBUF_MAX_RECORD_SZ: u64 = u32::MAX as u64 / 4;

fn ringbuf_map(rt: &Runtime, v: u64, helper: &'static str) -> Result<usize, FaultKind> {
    let m = map_arg(rt, v)?;
    if rt.maps.maps[m].map_type() != mt::RINGBUF {
        return Err(herr(
            helper,
            format!("map {:?} is not a RINGBUF", rt.maps.maps[m].def.name),
        ));
    }
    Ok(m)
}

fn ringbuf_output(rt: &mut Runtime, a: &[u64; 5]) -> Result<u64, FaultKind> {
    let m = ringbuf_map(rt, a[0], "bpf_ringbuf_output")?;
    if a[3] & !(BPF_RB_NO_WAKEUP | BPF_RB_FORCE_WAKEUP) != 0 {
        return Ok(neg(maps::EINVAL));
    }
    let data = rt.regions.read_bytes(a[1], a[2])?;
    if a[2] > RINGBUF_MAX_RECORD_SZ || !rt.maps.maps[m].ringbuf_reserve(a[2]) {
        return Ok(neg(11)); // -EAGAIN
    }
    rt.events.push(Event::Record { map: m, data });
    Ok(0)
}

fn ringbuf_reserve(rt: &mut Runtime, a: &[u64; 5]) -> Result<u64, FaultKind> {
    let m = ringbuf_map(rt, a[0], "bpf_ringbuf_reserve")?;
    if a[2] != 0 || a[1] > RINGBUF_MAX_RECORD_SZ || !rt.maps.maps[m].ringbuf_reserve(a[1]) {
        return Ok(0);
    }
    let b = Buf::new(a[1] as usize);
    let addr = b.addr();
    rt.regions.insert(Region::new(
        addr,
        a[1],
        RegionKind::RingbufRecord(m as u32),
        true,
    ));
    rt.reserved.insert(addr, (m, b));
    Ok(addr)
}

fn ringbuf_submit(rt: &mut Runtime, a: &[u64; 5], submit: bool) -> Result<u64, FaultKind> {
    let helper = if submit {
        "bpf_ringbuf_submit"
    } else {
        "bpf_ringbuf_discard"
    };
    let Some((m, b)) = rt.reserved.remove(&a[0]) else {
        return Err(herr(
            helper,
            format!("{:#x} is not a reserved ring buffer record", a[0]),
        ));
    };
    rt.regions.remove(a[0]);
    if submit {
        rt.events.push(Event::Record {
            map: m,
            data: b.as_slice().to_vec(),
        });
    }
    Ok(0)
}

fn ringbuf_query(rt: &mut Runtime, a: &[u64; 5]) -> Result<u64, FaultKind> {
    let m = ringbuf_map(rt, a[0], "bpf_ringbuf_query")?;
    let map = &rt.maps.maps[m];
    Ok(match a[1] {
        0 => map.ringbuf_used(),
        1 => map.def.max_entries as u64,
        2 => 0,
        3 => map.ringbuf_used(),
        _ => 0,
    })
}

// `struct bpf_dynptr_kern` { void *data; u32 size; u32 offset; }: size in bits 0-23, type
// in bits 28-30, read-only flag in bit 31.
const DYNPTR_MAX_SIZE: u64 = (1 << 24) - 1;
pub(crate) const DYNPTR_TYPE_SHIFT: u32 = 28;
const DYNPTR_RDONLY_BIT: u32 = 1 << 31;
const DYNPTR_TYPE_LOCAL: u32 = 1;
const DYNPTR_TYPE_RINGBUF: u32 = 2;
/// `BPF_DYNPTR_TYPE_XDP` (from the kfunc `bpf_dynptr_from_xdp`): `data` holds the
/// context's address (the kernel's holds the `xdp_buff`), bytes are the packet's.
pub(crate) const DYNPTR_TYPE_XDP: u32 = 4;

/// (data, size, offset, type, read-only) of the dynptr at `addr`.
pub(crate) fn dynptr_get(rt: &Runtime, addr: u64) -> Result<(u64, u64, u64, u32, bool), FaultKind> {
    let data = rt.regions.load(addr, 8)?;
    let size = rt.regions.load(addr + 8, 4)? as u32;
    let offset = rt.regions.load(addr + 12, 4)?;
    let ty = (size >> DYNPTR_TYPE_SHIFT) & 0x7;
    Ok((
        data,
        (size & DYNPTR_MAX_SIZE as u32) as u64,
        offset,
        ty,
        size & DYNPTR_RDONLY_BIT != 0,
    ))
}

fn dynptr_set(rt: &Runtime, addr: u64, data: u64, size: u64, ty: u32) -> Result<(), FaultKind> {
    rt.regions.store(addr, 8, data)?;
    rt.regions
        .store(addr + 8, 4, size | ((ty as u64) << DYNPTR_TYPE_SHIFT))?;
    rt.regions.store(addr + 12, 4, 0)?;
    Ok(())
}

fn dynptr_from_mem(rt: &mut Runtime, a: &[u64; 5]) -> Result<u64, FaultKind> {
    let size = a[1] as u32 as u64;
    // The kernel checks the size before the flags (ringbuf_reserve_dynptr: the reverse).
    let err = if size > DYNPTR_MAX_SIZE {
        maps::E2BIG
    } else if a[2] != 0 {
        maps::EINVAL
    } else {
        rt.regions
            .check(a[0], size, false)
            .map(|_| ())
            .or_else(|e| if size == 0 { Ok(()) } else { Err(e) })?;
        dynptr_set(rt, a[3], a[0], size, DYNPTR_TYPE_LOCAL)?;
        return Ok(0);
    };
    dynptr_set(rt, a[3], 0, 0, 0)?;
    Ok(neg(err))
}

fn ringbuf_reserve_dynptr(rt: &mut Runtime, a: &[u64; 5]) -> Result<u64, FaultKind> {
    let m = ringbuf_map(rt, a[0], "bpf_ringbuf_reserve_dynptr")?;
    let size = a[1] as u32 as u64;
    let err = if a[2] != 0 {
        maps::EINVAL
    } else if size > DYNPTR_MAX_SIZE {
        maps::E2BIG
    } else if !rt.maps.maps[m].ringbuf_reserve(size) {
        maps::EINVAL // what the kernel returns when the ring is full
    } else {
        let b = Buf::new(size as usize);
        let addr = b.addr();
        rt.regions.insert(Region::new(
            addr,
            size,
            RegionKind::RingbufRecord(m as u32),
            true,
        ));
        rt.reserved.insert(addr, (m, b));
        dynptr_set(rt, a[3], addr, size, DYNPTR_TYPE_RINGBUF)?;
        return Ok(0);
    };
    dynptr_set(rt, a[3], 0, 0, 0)?;
    Ok(neg(err))
}

fn ringbuf_submit_dynptr(rt: &mut Runtime, a: &[u64; 5], submit: bool) -> Result<u64, FaultKind> {
    let (data, ..) = dynptr_get(rt, a[0])?;
    if data == 0 {
        return Ok(0);
    }
    ringbuf_submit(rt, &[data, a[1], 0, 0, 0], submit)?;
    dynptr_set(rt, a[0], 0, 0, 0)?;
    Ok(0)
}

/// `bpf_dynptr_check_off_len`.
pub(crate) fn dynptr_range(size: u64, offset: u64, len: u64) -> Result<(), i64> {
    if offset > size || len > size - offset {
        return Err(maps::E2BIG);
    }
    Ok(())
}

fn dynptr_read(rt: &mut Runtime, a: &[u64; 5]) -> Result<u64, FaultKind> {
    let (dst, len, off) = (a[0], a[1] as u32 as u64, a[3] as u32 as u64);
    let (data, size, base, ty, _) = dynptr_get(rt, a[2])?;
    if data == 0 || a[4] != 0 {
        return Ok(neg(maps::EINVAL));
    }
    if let Err(e) = dynptr_range(size, off, len) {
        return Ok(neg(e));
    }
    if ty == DYNPTR_TYPE_XDP {
        // __bpf_xdp_load_bytes
        rt.regions.check(dst, len, true)?;
        let mut out = Vec::new();
        read_packet(rt, base + off, len, &mut out);
        rt.regions.write_bytes(dst, &out)?;
        return Ok(0);
    }
    if !matches!(ty, DYNPTR_TYPE_LOCAL | DYNPTR_TYPE_RINGBUF) {
        return Err(herr(
            "bpf_dynptr_read",
            format!("dynptr type {ty} is not supported"),
        ));
    }
    let bytes = rt.regions.read_bytes(data + base + off, len)?;
    rt.regions.write_bytes(dst, &bytes)?;
    Ok(0)
}

fn dynptr_write(rt: &mut Runtime, a: &[u64; 5]) -> Result<u64, FaultKind> {
    let (off, src, len) = (a[1] as u32 as u64, a[2], a[3] as u32 as u64);
    let (data, size, base, ty, rdonly) = dynptr_get(rt, a[0])?;
    if data == 0 || rdonly {
        return Ok(neg(maps::EINVAL));
    }
    if let Err(e) = dynptr_range(size, off, len) {
        return Ok(neg(e));
    }
    if ty == DYNPTR_TYPE_XDP {
        // __bpf_xdp_store_bytes (flags are not checked for XDP dynptrs)
        return xdp_load_store(rt, &[0, base + off, src, len, 0], true);
    }
    if !matches!(ty, DYNPTR_TYPE_LOCAL | DYNPTR_TYPE_RINGBUF) {
        return Err(herr(
            "bpf_dynptr_write",
            format!("dynptr type {ty} is not supported"),
        ));
    }
    if a[4] != 0 {
        return Ok(neg(maps::EINVAL));
    }
    let bytes = rt.regions.read_bytes(src, len)?;
    rt.regions.write_bytes(data + base + off, &bytes)?;
    Ok(0)
}

fn dynptr_data(rt: &mut Runtime, a: &[u64; 5]) -> Result<u64, FaultKind> {
    let (off, len) = (a[1] as u32 as u64, a[2] as u32 as u64);
    let (data, size, base, ty, rdonly) = dynptr_get(rt, a[0])?;
    if data == 0 || dynptr_range(size, off, len).is_err() || rdonly {
        return Ok(0);
    }
    Ok(match ty {
        DYNPTR_TYPE_LOCAL | DYNPTR_TYPE_RINGBUF => data + base + off,
        _ => 0,
    })
}

fn callback(rt: &Runtime, v: u64, helper: &'static str) -> Result<(usize, usize), FaultKind> {
    match handle_to_func(v) {
        Some((p, pc)) if p < rt.programs.len() && pc < rt.programs[p].insns.len() => Ok((p, pc)),
        _ => Err(herr(
            helper,
            format!("{v:#x} is not a BPF function (expected lddw of a callback)"),
        )),
    }
}

fn run_callback(
    rt: &mut Runtime,
    runner: &mut dyn CallbackRunner,
    p: usize,
    pc: usize,
    args: &[u64],
) -> Result<u64, FaultKind> {
    let depth = rt.depth + 1;
    let saved_prog = rt.current_prog;
    let r = runner.run(rt, p, pc, args, depth);
    rt.depth = depth - 1;
    rt.current_prog = saved_prog;
    r.map_err(|f| herr("callback", f.to_string()))
}

fn bpf_loop(
    rt: &mut Runtime,
    a: &[u64; 5],
    runner: &mut dyn CallbackRunner,
) -> Result<u64, FaultKind> {
    let (p, pc) = callback(rt, a[1], "bpf_loop")?;
    if a[3] != 0 {
        return Ok(neg(maps::EINVAL));
    }
    let n = a[0] as u32 as u64;
    if n > 1 << 23 {
        // With flags 0 the verifier inlines bpf_loop, and the inlined code sets the error
        // with a 32-bit move: r0 = (u32)-E2BIG (recorded on 6.18 by corpus/xdp_helper_errors).
        return Ok(neg(maps::E2BIG) as u32 as u64);
    }
    let depth = rt.depth + 1;
    let saved_prog = rt.current_prog;
    let r = runner.run_loop(rt, p, pc, n, a[2], depth);
    rt.depth = depth - 1;
    rt.current_prog = saved_prog;
    r.map_err(|f| herr("callback", f.to_string()))
}

fn for_each_map_elem(
    rt: &mut Runtime,
    a: &[u64; 5],
    runner: &mut dyn CallbackRunner,
) -> Result<u64, FaultKind> {
    let m = map_arg(rt, a[0])?;
    let (p, pc) = callback(rt, a[1], "bpf_for_each_map_elem")?;
    if a[3] != 0 {
        return Ok(neg(maps::EINVAL));
    }
    let map = &rt.maps.maps[m];
    if !matches!(
        map.map_type(),
        mt::ARRAY
            | mt::PERCPU_ARRAY
            | mt::HASH
            | mt::PERCPU_HASH
            | mt::LRU_HASH
            | mt::LRU_PERCPU_HASH
    ) {
        return Err(herr(
            "bpf_for_each_map_elem",
            format!("map {:?}: type not supported", map.def.name),
        ));
    }
    let elems = map.iter_addrs(rt.cpu);
    let mut n = 0;
    for (key, value) in elems {
        n += 1;
        let kb = Buf::from_slice(&key);
        rt.regions.insert(Region::new(
            kb.addr(),
            key.len() as u64,
            RegionKind::MapValue(m as u32),
            false,
        ));
        let r = run_callback(rt, runner, p, pc, &[a[0], kb.addr(), value, a[2]]);
        rt.regions.remove(kb.addr());
        if r? != 0 {
            break;
        }
    }
    Ok(n)
}

/// `__bpf_strtoull`: (characters consumed, value, negative) or an errno.
fn parse_strtoull(buf: &[u8], flags: u64) -> Result<(u64, u64, bool), i64> {
    let mut base = (flags & 0x1f) as u32;
    if buf.is_empty() || !matches!(base, 0 | 8 | 10 | 16) || flags & !0x1f != 0 {
        return Err(maps::EINVAL);
    }
    let is_space = |c: u8| matches!(c, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r');
    let mut i = 0;
    while i < buf.len() && is_space(buf[i]) {
        i += 1;
    }
    let negative = i < buf.len() && buf[i] == b'-';
    if negative {
        i += 1;
    }
    let consumed = i;
    if consumed == buf.len() {
        return Err(maps::EINVAL);
    }
    // The kernel copies at most 63 bytes into a NUL-terminated buffer.
    let rest = &buf[consumed..buf.len().min(consumed + 63)];
    let str_at = |j: usize| rest.get(j).copied().unwrap_or(0);
    let mut j = 0;
    if base == 0 {
        base = if str_at(0) == b'0' {
            if str_at(1).eq_ignore_ascii_case(&b'x') && str_at(2).is_ascii_hexdigit() {
                16
            } else {
                8
            }
        } else {
            10
        };
    }
    if base == 16 && str_at(0) == b'0' && str_at(1).eq_ignore_ascii_case(&b'x') {
        j = 2;
    }
    let start = j;
    let (mut value, mut overflow) = (0u64, false);
    loop {
        let c = str_at(j);
        let d = match c {
            b'0'..=b'9' => (c - b'0') as u32,
            b'a'..=b'f' => (c - b'a' + 10) as u32,
            b'A'..=b'F' => (c - b'A' + 10) as u32,
            _ => break,
        };
        if d >= base {
            break;
        }
        match value
            .checked_mul(base as u64)
            .and_then(|v| v.checked_add(d as u64))
        {
            Some(v) => value = v,
            None => overflow = true,
        }
        j += 1;
    }
    if overflow {
        return Err(maps::ERANGE);
    }
    if j == start {
        return Err(maps::EINVAL);
    }
    Ok(((consumed + j) as u64, value, negative))
}

fn strtox(rt: &mut Runtime, a: &[u64; 5], signed: bool) -> Result<u64, FaultKind> {
    let buf = rt.regions.read_bytes(a[0], a[1])?;
    // `res` is MEM_UNINIT: the helper always writes it, 0 on failure.
    rt.regions.store(a[3], 8, 0)?;
    let (n, v, neg_) = match parse_strtoull(&buf, a[2]) {
        Ok(r) => r,
        Err(e) => return Ok(neg(e)),
    };
    let v = if signed {
        if neg_ {
            if (v.wrapping_neg() as i64) > 0 {
                return Ok(neg(maps::ERANGE));
            }
            v.wrapping_neg()
        } else {
            if (v as i64) < 0 {
                return Ok(neg(maps::ERANGE));
            }
            v
        }
    } else {
        if neg_ {
            return Ok(neg(maps::EINVAL));
        }
        v
    };
    rt.regions.store(a[3], 8, v)?;
    Ok(n)
}

fn strncmp(rt: &mut Runtime, a: &[u64; 5]) -> Result<u64, FaultKind> {
    let s1 = rt.regions.read_bytes(a[0], a[1])?;
    let s2 = read_cstr(rt, a[2], a[1].max(1))?;
    for (i, &c1) in s1.iter().enumerate() {
        let c2 = s2.get(i).copied().unwrap_or(0);
        if c1 != c2 {
            return Ok(if c1 < c2 { -1i64 as u64 } else { 1 });
        }
        if c1 == 0 {
            break;
        }
    }
    Ok(0)
}

/// Reads a NUL-terminated string of at most `max` bytes (without the NUL).
fn read_cstr(rt: &Runtime, addr: u64, max: u64) -> Result<Vec<u8>, FaultKind> {
    let mut out = Vec::new();
    for i in 0..max {
        let c = rt.regions.load(addr + i, 1)? as u8;
        if c == 0 {
            break;
        }
        out.push(c);
    }
    Ok(out)
}

/// `MAX_BPRINTF_BUF`: the kernel formats into a buffer of this size; longer output is cut.
const MAX_BPRINTF_BUF: usize = 1024;

/// Appends the decimal digits of `v`.
fn push_dec(out: &mut Vec<u8>, mut v: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

/// Appends the hex digits of `v` (no leading zeros), lower or upper case.
fn push_hex(out: &mut Vec<u8>, mut v: u64, upper: bool) {
    let digits: &[u8; 16] = if upper {
        b"0123456789ABCDEF"
    } else {
        b"0123456789abcdef"
    };
    let mut buf = [0u8; 16];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = digits[(v & 15) as usize];
        v >>= 4;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

/// Appends `v` as 16 lower-case hex digits.
fn push_hex16(out: &mut Vec<u8>, v: u64) {
    for s in (0..16).rev() {
        out.push(b"0123456789abcdef"[((v >> (s * 4)) & 15) as usize]);
    }
}

// printf flags, as bits.
const F_ZERO: u8 = 1;
const F_PLUS: u8 = 2;
const F_MINUS: u8 = 4;
const F_SPACE: u8 = 8;
const F_HASH: u8 = 16;

/// Formats like the kernel's `bpf_bprintf_prepare` + `bstr_printf`; `Err(errno)` for a
/// format the kernel rejects.
///
/// Conversions produce Latin-1 text: every output byte is one character (bytes of `%s`
/// and `%c` survive as-is). Each conversion is written straight into the output and its
/// padding inserted after, without a `String` per conversion.
fn format(rt: &Runtime, fmt: &[u8], args: &[u64]) -> Result<Result<Vec<u8>, i64>, FaultKind> {
    let Some(nul) = fmt.iter().position(|&c| c == 0) else {
        return Ok(Err(maps::EINVAL));
    };
    let fmt = &fmt[..nul];
    let mut out: Vec<u8> = Vec::with_capacity(fmt.len() + 32);
    let mut i = 0;
    let mut argi = 0;
    while i < fmt.len() {
        let c = fmt[i];
        if c != b'%' {
            if !(c.is_ascii_graphic() || c.is_ascii_whitespace()) {
                return Ok(Err(maps::EINVAL));
            }
            out.push(c);
            i += 1;
            continue;
        }
        i += 1;
        if fmt.get(i) == Some(&b'%') {
            out.push(b'%');
            i += 1;
            continue;
        }
        let mut flags = 0u8;
        while let Some(&f) = fmt.get(i).filter(|f| b"0+- #".contains(f)) {
            flags |= match f {
                b'0' => F_ZERO,
                b'+' => F_PLUS,
                b'-' => F_MINUS,
                b' ' => F_SPACE,
                _ => F_HASH,
            };
            i += 1;
        }
        let mut width = 0usize;
        while let Some(d) = fmt.get(i).filter(|d| d.is_ascii_digit()) {
            width = (width * 10 + (d - b'0') as usize).min(MAX_BPRINTF_BUF);
            i += 1;
        }
        let mut prec: Option<usize> = None;
        if fmt.get(i) == Some(&b'.') {
            i += 1;
            let mut p = 0;
            while let Some(d) = fmt.get(i).filter(|d| d.is_ascii_digit()) {
                p = (p * 10 + (d - b'0') as usize).min(MAX_BPRINTF_BUF);
                i += 1;
            }
            prec = Some(p);
        }
        if argi >= args.len() {
            return Ok(Err(maps::EINVAL));
        }
        let arg = args[argi];
        argi += 1;
        let conv = fmt.get(i).copied().unwrap_or(0);
        // This conversion's text starts here; padding is inserted once it is known.
        let start = out.len();
        match conv {
            b'c' => {
                i += 1;
                out.push(arg as u8);
            }
            b's' => {
                i += 1;
                let s = read_cstr(rt, arg, 4096).unwrap_or_else(|_| b"(efault)".to_vec());
                // The precision counts bytes of the text's UTF-8 form (each byte >= 0x80
                // is a two-byte character there); a character it would split is left out.
                let mut keep = s.len();
                if let Some(p) = prec {
                    let mut utf8 = 0;
                    for (k, &b) in s.iter().enumerate() {
                        utf8 += if b < 0x80 { 1 } else { 2 };
                        if utf8 > p {
                            keep = k;
                            break;
                        }
                    }
                }
                out.extend_from_slice(&s[..keep]);
            }
            b'p' => {
                i += 1;
                match (fmt.get(i).copied(), fmt.get(i + 1).copied()) {
                    (Some(b'i' | b'I'), Some(b'4')) => {
                        // %pI4 / %pi4: an IPv4 address read from memory.
                        let dotted = fmt[i] == b'I';
                        i += 2;
                        let b = checked_slice(rt, arg, 4)?;
                        for (k, &octet) in b.iter().enumerate() {
                            if k > 0 {
                                out.push(b'.');
                            }
                            if dotted {
                                push_dec(&mut out, octet as u64);
                            } else {
                                out.extend_from_slice(&[
                                    b'0' + octet / 100,
                                    b'0' + octet / 10 % 10,
                                    b'0' + octet % 10,
                                ]);
                            }
                        }
                    }
                    (Some(b'i' | b'I'), Some(b'6')) => {
                        // %pI6: 8 colon-separated groups; %pi6: 32 hex digits.
                        let colons = fmt[i] == b'I';
                        i += 2;
                        let b = checked_slice(rt, arg, 16)?;
                        for (k, c) in b.chunks(2).enumerate() {
                            if colons && k > 0 {
                                out.push(b':');
                            }
                            for x in c {
                                out.push(b"0123456789abcdef"[(x >> 4) as usize]);
                                out.push(b"0123456789abcdef"[(x & 15) as usize]);
                            }
                        }
                    }
                    (Some(b'x' | b'K'), _) => {
                        i += 1;
                        push_hex16(&mut out, arg);
                    }
                    (Some(m), _) if m.is_ascii_alphanumeric() => return Ok(Err(maps::EINVAL)),
                    // Plain %p: the kernel prints a hashed pointer; we print the value.
                    _ => push_hex16(&mut out, arg),
                }
            }
            _ => {
                let mut long = 0;
                while fmt.get(i) == Some(&b'l') && long < 2 {
                    long += 1;
                    i += 1;
                }
                let conv = fmt.get(i).copied().unwrap_or(0);
                i += 1;
                let v = if long == 0 { arg as u32 as u64 } else { arg };
                let sv = if long == 0 {
                    arg as u32 as i32 as i64
                } else {
                    arg as i64
                };
                match conv {
                    b'd' | b'i' => {
                        if sv < 0 {
                            out.push(b'-');
                        } else if flags & F_PLUS != 0 {
                            out.push(b'+');
                        } else if flags & F_SPACE != 0 {
                            out.push(b' ');
                        }
                        push_dec(&mut out, sv.unsigned_abs());
                    }
                    b'u' => push_dec(&mut out, v),
                    b'x' | b'X' => {
                        let upper = conv == b'X';
                        if flags & F_HASH != 0 {
                            out.extend_from_slice(if upper { b"0X" } else { b"0x" });
                        }
                        push_hex(&mut out, v, upper);
                    }
                    _ => return Ok(Err(maps::EINVAL)),
                }
            }
        }
        // Width: compared with the UTF-8 length of the text, padded in characters.
        let chars = out.len() - start;
        let utf8 = chars + out[start..].iter().filter(|&&b| b >= 0x80).count();
        if utf8 >= width {
        } else if flags & F_MINUS != 0 {
            out.resize(out.len() + (width - chars), b' ');
        } else if flags & F_ZERO != 0 && !matches!(conv, b's' | b'c') {
            let sign = usize::from(out[start..].first() == Some(&b'-'));
            let (digits, w) = (chars - sign, width - sign);
            if digits < w {
                let at = start + sign;
                out.splice(at..at, std::iter::repeat_n(b'0', w - digits));
            }
        } else {
            out.splice(start..start, std::iter::repeat_n(b' ', width - chars));
        }
    }
    Ok(Ok(out))
}

/// The line `bpf_trace_printk` shows for formatted bytes `s` (cut to the kernel's buffer),
/// as `String::from_utf8_lossy` gives it, without a copy when the bytes are UTF-8.
fn printk_line(mut s: Vec<u8>) -> String {
    s.truncate(MAX_BPRINTF_BUF - 1);
    match String::from_utf8(s) {
        Ok(line) => line,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    }
}

fn trace_printk(rt: &mut Runtime, a: &[u64; 5]) -> Result<u64, FaultKind> {
    // The format is read in place (the verifier proved it a read-only constant).
    let fmt = checked_slice(rt, a[0], a[1])?;
    match format(rt, fmt, &a[2..5])? {
        Ok(s) => {
            let n = s.len() as u64;
            rt.events.push(Event::Printk(printk_line(s)));
            Ok(n)
        }
        Err(e) => Ok(neg(e)),
    }
}

fn array_args(rt: &Runtime, data: u64, len: u64) -> Result<Result<Vec<u64>, i64>, FaultKind> {
    if len & 7 != 0 || len > 12 * 8 || (len > 0 && data == 0) {
        return Ok(Err(maps::EINVAL));
    }
    let bytes = rt.regions.read_bytes(data, len)?;
    Ok(Ok(bytes
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")))
        .collect()))
}

fn trace_vprintk(rt: &mut Runtime, a: &[u64; 5]) -> Result<u64, FaultKind> {
    let fmt = rt.regions.read_bytes(a[0], a[1])?;
    let args = match array_args(rt, a[2], a[3])? {
        Ok(v) => v,
        Err(e) => return Ok(neg(e)),
    };
    match format(rt, &fmt, &args)? {
        Ok(s) => {
            let n = s.len() as u64;
            rt.events.push(Event::Printk(printk_line(s)));
            Ok(n)
        }
        Err(e) => Ok(neg(e)),
    }
}

fn snprintf(rt: &mut Runtime, a: &[u64; 5]) -> Result<u64, FaultKind> {
    let (out, out_size) = (a[0], a[1] as u32 as u64);
    let fmt = read_cstr(rt, a[2], 4096)?;
    let mut fmt = fmt;
    fmt.push(0);
    let args = match array_args(rt, a[3], a[4])? {
        Ok(v) => v,
        Err(e) => return Ok(neg(e)),
    };
    let s = match format(rt, &fmt, &args)? {
        Ok(s) => s,
        Err(e) => return Ok(neg(e)),
    };
    if out_size > 0 {
        let mut b = s.clone();
        b.truncate(out_size as usize - 1);
        b.push(0);
        rt.regions.write_bytes(out, &b)?;
    }
    Ok(s.len() as u64 + 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::maps::MapSet;
    use crate::memory::Regions;
    use crate::runtime::MAX_SKB_FRAGS;

    #[test]
    fn names_match_numbers() {
        assert_eq!(name(1), Some("map_lookup_elem"));
        assert_eq!(name(44), Some("xdp_adjust_head"));
        assert_eq!(name(130), Some("ringbuf_output"));
        assert_eq!(name(181), Some("loop"));
        assert_eq!(name(188), Some("xdp_get_buff_len"));
        assert_eq!(name(208), Some("ktime_get_tai_ns"));
        assert_eq!(NAMES.len(), 212);
        assert_eq!(name(211), Some("cgrp_storage_delete"));
        for (id, _) in SUPPORTED {
            assert!(name(*id).is_some());
        }
    }

    #[test]
    fn csum_partial_folds() {
        // 0x0001 + 0xffff wraps around to 0x0001 in ones' complement.
        let r = from32to16(csum_partial(&[0x01, 0x00, 0xff, 0xff], 0));
        assert_eq!(r, 0x0001);
    }

    #[test]
    fn max_frags_constant() {
        assert_eq!(MAX_SKB_FRAGS, 17);
    }

    /// The formatter before it stopped building a `String` per conversion (4d3c1bf),
    /// kept as the reference the new one must match byte for byte.
    fn format_reference(
        rt: &Runtime,
        fmt: &[u8],
        args: &[u64],
    ) -> Result<Result<Vec<u8>, i64>, FaultKind> {
        let Some(nul) = fmt.iter().position(|&c| c == 0) else {
            return Ok(Err(maps::EINVAL));
        };
        let fmt = &fmt[..nul];
        // Conversions build Latin-1 strings (every char < 256) so that bytes survive as-is.
        let mut out: Vec<u8> = Vec::new();
        let mut i = 0;
        let mut argi = 0;
        while i < fmt.len() {
            let c = fmt[i];
            if c != b'%' {
                if !(c.is_ascii_graphic() || c.is_ascii_whitespace()) {
                    return Ok(Err(maps::EINVAL));
                }
                out.push(c);
                i += 1;
                continue;
            }
            i += 1;
            if fmt.get(i) == Some(&b'%') {
                out.push(b'%');
                i += 1;
                continue;
            }
            let mut flags = String::new();
            while let Some(&f) = fmt.get(i).filter(|f| b"0+- #".contains(f)) {
                flags.push(f as char);
                i += 1;
            }
            let mut width = 0usize;
            while let Some(d) = fmt.get(i).filter(|d| d.is_ascii_digit()) {
                width = (width * 10 + (d - b'0') as usize).min(MAX_BPRINTF_BUF);
                i += 1;
            }
            let mut prec: Option<usize> = None;
            if fmt.get(i) == Some(&b'.') {
                i += 1;
                let mut p = 0;
                while let Some(d) = fmt.get(i).filter(|d| d.is_ascii_digit()) {
                    p = (p * 10 + (d - b'0') as usize).min(MAX_BPRINTF_BUF);
                    i += 1;
                }
                prec = Some(p);
            }
            if argi >= args.len() {
                return Ok(Err(maps::EINVAL));
            }
            let arg = args[argi];
            argi += 1;
            let conv = fmt.get(i).copied().unwrap_or(0);
            let body = match conv {
                b'c' => {
                    i += 1;
                    ((arg as u8) as char).to_string()
                }
                b's' => {
                    i += 1;
                    let s = read_cstr(rt, arg, 4096).unwrap_or_else(|_| b"(efault)".to_vec());
                    let mut s: String = s.iter().map(|&b| b as char).collect();
                    if let Some(p) = prec {
                        s.truncate(p);
                    }
                    s
                }
                b'p' => {
                    i += 1;
                    match (fmt.get(i).copied(), fmt.get(i + 1).copied()) {
                        (Some(b'i' | b'I'), Some(b'4')) => {
                            // %pI4 / %pi4: an IPv4 address read from memory.
                            let dotted = fmt[i] == b'I';
                            i += 2;
                            let b = rt.regions.read_bytes(arg, 4)?;
                            if dotted {
                                format!("{}.{}.{}.{}", b[0], b[1], b[2], b[3])
                            } else {
                                format!("{:03}.{:03}.{:03}.{:03}", b[0], b[1], b[2], b[3])
                            }
                        }
                        (Some(b'i' | b'I'), Some(b'6')) => {
                            // %pI6: 8 colon-separated groups; %pi6: 32 hex digits.
                            let colons = fmt[i] == b'I';
                            i += 2;
                            let b = rt.regions.read_bytes(arg, 16)?;
                            let groups: Vec<String> = b
                                .chunks(2)
                                .map(|c| format!("{:02x}{:02x}", c[0], c[1]))
                                .collect();
                            groups.join(if colons { ":" } else { "" })
                        }
                        (Some(b'x' | b'K'), _) => {
                            i += 1;
                            format!("{arg:016x}")
                        }
                        (Some(m), _) if m.is_ascii_alphanumeric() => return Ok(Err(maps::EINVAL)),
                        // Plain %p: the kernel prints a hashed pointer; we print the value.
                        _ => format!("{arg:016x}"),
                    }
                }
                _ => {
                    let mut long = 0;
                    while fmt.get(i) == Some(&b'l') && long < 2 {
                        long += 1;
                        i += 1;
                    }
                    let conv = fmt.get(i).copied().unwrap_or(0);
                    i += 1;
                    let v = if long == 0 { arg as u32 as u64 } else { arg };
                    let sv = if long == 0 {
                        arg as u32 as i32 as i64
                    } else {
                        arg as i64
                    };
                    match conv {
                        b'd' | b'i' => {
                            let s = sv.unsigned_abs().to_string();
                            let sign = if sv < 0 {
                                "-"
                            } else if flags.contains('+') {
                                "+"
                            } else if flags.contains(' ') {
                                " "
                            } else {
                                ""
                            };
                            format!("{sign}{s}")
                        }
                        b'u' => v.to_string(),
                        b'x' => {
                            let s = format!("{v:x}");
                            if flags.contains('#') {
                                format!("0x{s}")
                            } else {
                                s
                            }
                        }
                        b'X' => {
                            let s = format!("{v:X}");
                            if flags.contains('#') {
                                format!("0X{s}")
                            } else {
                                s
                            }
                        }
                        _ => return Ok(Err(maps::EINVAL)),
                    }
                }
            };
            let padded = if body.len() >= width {
                body
            } else if flags.contains('-') {
                format!("{body:<width$}")
            } else if flags.contains('0') && !matches!(conv, b's' | b'c') {
                let (sign, digits) = match body.strip_prefix('-') {
                    Some(d) => ("-", d.to_string()),
                    None => ("", body.clone()),
                };
                format!("{sign}{digits:0>w$}", w = width - sign.len())
            } else {
                format!("{body:>width$}")
            };
            out.extend(padded.chars().map(|c| c as u32 as u8));
        }
        Ok(Ok(out))
    }

    #[test]
    fn format_matches_reference() {
        let mut packet = vec![0u8; 64];
        for (k, b) in packet.iter_mut().enumerate() {
            *b = (k as u8).wrapping_mul(37).wrapping_add(200);
        }
        packet[40..44].copy_from_slice(b"ab\xe9\0");
        let mut rt = Runtime::new(
            Vec::new(),
            MapSet::default(),
            Regions::new(),
            Default::default(),
        );
        let base = packet.as_ptr() as u64;
        rt.regions
            .insert(Region::new(base, 64, RegionKind::Stack(0), false));
        let convs = [
            "d", "i", "u", "x", "X", "ld", "lld", "lu", "llx", "lX", "c", "s", "p", "px", "pK",
            "pI4", "pi4", "pI6", "pi6", "pZ",
        ];
        let flags = ["", "0", "-", "+", " ", "#", "0+", "-0", "#0", " -"];
        let widths = ["", "1", "3", "8", "17"];
        let precs = ["", ".0", ".1", ".3"];
        let args: [u64; 8] = [
            0,
            1,
            u64::MAX,
            0x8000_0000,
            0xdead_beef_1234,
            (-42i64) as u64,
            base,
            base + 40,
        ];
        let (mut n, mut panicked) = (0, 0);
        for conv in convs {
            for fl in flags {
                for w in widths {
                    for p in precs {
                        for &arg in &args {
                            let mut f = format!("a%{fl}{w}{p}{conv}b").into_bytes();
                            f.push(0);
                            let mem = matches!(conv, "s" | "pI4" | "pi4" | "pI6" | "pi6");
                            if mem && arg != base && arg != base + 40 {
                                continue;
                            }
                            let got = format(&rt, &f, &[arg]);
                            // The reference panicked when a `%.Ns` precision split a
                            // two-byte character (`String::truncate`); the new one cuts
                            // before that character.
                            if conv == "s" && !p.is_empty() {
                                let cut: usize = p[1..].parse().unwrap();
                                let text = read_cstr(&rt, arg, 4096).unwrap();
                                let mut utf8 = 0;
                                let splits = text.iter().any(|&b| {
                                    let before = utf8;
                                    utf8 += if b < 0x80 { 1 } else { 2 };
                                    before < cut && utf8 > cut
                                });
                                if splits {
                                    panicked += 1;
                                    continue;
                                }
                            }
                            let want = format_reference(&rt, &f, &[arg]);
                            assert_eq!(
                                format!("{got:?}"),
                                format!("{want:?}"),
                                "{}",
                                String::from_utf8_lossy(&f)
                            );
                            n += 1;
                        }
                    }
                }
            }
        }
        assert!(n > 10_000, "{n}");
        assert!(panicked > 0 && panicked < n, "{panicked}");
        // Several conversions, escapes and errors in one format.
        for f in [
            &b"%d %u %% %x\0"[..],
            b"%d %d %d %d\0",
            b"bad \x01\0",
            b"no nul",
            b"%q\0",
        ] {
            let args = [5, (-1i64) as u64, 255];
            assert_eq!(
                format!("{:?}", format(&rt, f, &args)),
                format!("{:?}", format_reference(&rt, f, &args))
            );
        }
        drop(packet);
    }

    /// `bpf_xdp_load_bytes` / `bpf_xdp_store_bytes` over the linear part and fragments,
    /// against the packet as one flat array; the store's source may be the packet itself.
    #[test]
    fn load_store_bytes_across_fragments() {
        let mut rt = Runtime::new(
            Vec::new(),
            MapSet::default(),
            Regions::new(),
            Default::default(),
        );
        let packet: Vec<u8> = (0..9000u32).map(|i| (i * 7 + i / 251) as u8).collect();
        let ctx = rt.set_xdp(&packet, 1, 0, false).unwrap();
        let (data, lin) = {
            let x = rt.xdp.as_ref().unwrap();
            assert!(!x.frags.is_empty());
            (x.data, x.data_end - x.data)
        };
        let mut flat = packet.clone();
        let scratch = Buf::new(64);
        let sa = scratch.addr();
        rt.regions
            .insert(Region::new(sa, 64, RegionKind::Memory, true));
        let read_all = |rt: &Runtime| {
            let mut all = Vec::new();
            read_packet(rt, 0, packet.len() as u64, &mut all);
            all
        };
        for (off, len) in [
            (0u64, 8u64),
            (lin - 5, 10),
            (lin + 4090, 20),
            (8990, 10),
            (3, 0),
        ] {
            // Load into the scratch buffer.
            let r = xdp_load_store(&mut rt, &[ctx, off, sa, len, 0], false).unwrap();
            assert_eq!(r, 0);
            assert_eq!(
                &scratch.as_slice()[..len as usize],
                &flat[off as usize..(off + len) as usize]
            );
            // Store a pattern from the scratch buffer.
            let pat: Vec<u8> = (0..len).map(|i| 0xa0 ^ i as u8 ^ off as u8).collect();
            rt.regions.write_bytes(sa, &pat).unwrap();
            let r = xdp_load_store(&mut rt, &[ctx, off, sa, len, 0], true).unwrap();
            assert_eq!(r, 0);
            flat[off as usize..(off + len) as usize].copy_from_slice(&pat);
            assert_eq!(read_all(&rt), flat);
        }
        // A source inside the linear part, overlapping a destination that crosses into the
        // first fragment: the bytes written are the source as it was before the call.
        for (src, off, len) in [(lin - 12, lin - 6, 12u64), (lin - 40, lin - 30, 20)] {
            let want: Vec<u8> = flat[src as usize..(src + len) as usize].to_vec();
            let r = xdp_load_store(&mut rt, &[ctx, off, data + src, len, 0], true).unwrap();
            assert_eq!(r, 0);
            flat[off as usize..(off + len) as usize].copy_from_slice(&want);
            assert_eq!(read_all(&rt), flat);
        }
        // Out of range.
        let r = xdp_load_store(&mut rt, &[ctx, 8995, sa, 10, 0], false).unwrap();
        assert_eq!(r, neg(maps::EINVAL));
        drop(scratch);
    }
}
