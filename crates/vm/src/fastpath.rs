//! Fast entry points for the JIT's fast mode (programs a verifier accepted).
//!
//! The kernel's verifier proves that the key and value arguments of the map helpers point
//! at `key_size` / `value_size` readable bytes, so its helpers take raw pointers and never
//! check them. These functions do the same for bpfkit's JIT in fast mode: they read the key
//! and value straight from the program's memory (no region check, no `Vec`) and then call
//! what the helpers in [`crate::helpers`] call once they have read their arguments
//! ([`crate::maps::Map::lookup_addr`], [`crate::helpers::map_update_bytes`],
//! [`crate::helpers::map_delete_bytes`]); the map semantics (flags, errors, LRU, per-CPU
//! values, timers) stay in one place.
//!
//! The pointers come from a program, and the verifier that let it run may be wrong, so
//! each one is first confined: unless `[ptr, ptr + size)` lies inside the engines' address
//! range ([`crate::arena::contains`]), the function answers `None` and the caller takes the
//! generic helper, which checks the pointer against the live regions and reports the
//! fault as the interpreter does. Inside the range the bytes are always mapped memory of
//! some buffer (at worst not the one the program meant), so a wrong pointer can never make
//! these functions read host memory. The checked mode never uses this module.

use crate::maps::{map_handle, Lookup};
use crate::runtime::{Runtime, MAX_TAIL_CALL_CNT};
use bpfkit_object::model::map_type as mt;

/// Largest key or value copied into a stack buffer; longer ones go through a `Vec`.
const INLINE_BYTES: usize = 512;

/// The map types whose `bpf_map_lookup_elem` [`map_lookup`] serves (the helper refuses
/// the others with a fault, which the JIT leaves to the generic helper call).
pub fn lookup_supported(map_type: u32) -> bool {
    !matches!(
        map_type,
        mt::PROG_ARRAY | mt::PERF_EVENT_ARRAY | mt::RINGBUF | mt::QUEUE | mt::STACK | mt::CPUMAP
    )
}

/// The map types whose `bpf_map_update_elem` / `bpf_map_delete_elem` [`map_update`] and
/// [`map_delete`] serve.
pub fn update_supported(map_type: u32) -> bool {
    !matches!(map_type, mt::QUEUE | mt::STACK)
}

/// Where the values of an ARRAY or PERCPU_ARRAY map live, for lookups inlined into
/// generated code (the kernel's `array_map_gen_lookup`): the value of index `i` on CPU
/// `c` is at `bases[c] + i * stride` when `i < max_entries` (one base for plain arrays).
/// The buffers are allocated once when the map is created and never move.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArrayLayout {
    pub bases: Vec<u64>,
    pub stride: u64,
    pub max_entries: u32,
}

/// The layout of array map `map`, or `None` for any other map type.
pub fn array_layout(rt: &mut Runtime, map: usize) -> Option<ArrayLayout> {
    let ncpus = rt.config.ncpus;
    let m = rt.maps.maps.get_mut(map)?;
    let t = m.map_type();
    if t != mt::ARRAY && t != mt::PERCPU_ARRAY {
        return None;
    }
    let max_entries = m.def.max_entries;
    let stride = (m.def.value_size as u64 + 7) & !7;
    let cpus = if t == mt::PERCPU_ARRAY { ncpus } else { 1 };
    let mut bases = Vec::with_capacity(cpus as usize);
    for c in 0..cpus {
        // Element 0 always exists (max_entries > 0 is checked when the map is created).
        match m.lookup_addr(&0u32.to_le_bytes(), c) {
            Lookup::Value(a) => bases.push(a),
            Lookup::Null => return None,
        }
    }
    Some(ArrayLayout {
        bases,
        stride,
        max_entries,
    })
}

/// Calls `f` with a copy of the `len` bytes at `p`: in an uninitialised stack buffer up
/// to [`INLINE_BYTES`] (nothing zeroed, nothing moved), else in a `Vec`.
///
/// # Safety
/// `p` must be valid for reads of `len` bytes (checked with [`crate::arena::contains`]).
#[inline(always)]
unsafe fn with_copy<R>(p: u64, len: usize, f: impl FnOnce(&[u8]) -> R) -> R {
    if len <= INLINE_BYTES {
        let mut buf = std::mem::MaybeUninit::<[u8; INLINE_BYTES]>::uninit();
        let dst = buf.as_mut_ptr() as *mut u8;
        // SAFETY: the caller guarantees `len` readable bytes at `p`; `buf` has room for
        // them, and the slice covers exactly the bytes just written.
        let bytes = unsafe {
            std::ptr::copy_nonoverlapping(p as *const u8, dst, len);
            std::slice::from_raw_parts(dst as *const u8, len)
        };
        f(bytes)
    } else {
        // A real copy: the bytes may live in a map value the operation overwrites.
        // SAFETY: as above.
        #[allow(clippy::unnecessary_to_owned)]
        f(&unsafe { std::slice::from_raw_parts(p as *const u8, len) }.to_vec())
    }
}

/// `bpf_map_lookup_elem(map, key)` for a map whose type passes [`lookup_supported`]:
/// same result as [`crate::helpers::call`] with `MAP_LOOKUP_ELEM`; `None` when the key
/// pointer is not inside the engines' address range (take the generic helper).
///
/// `map` must be a map index of `rt` (panics otherwise).
#[inline]
pub fn map_lookup(rt: &mut Runtime, map: usize, key: u64) -> Option<u64> {
    let cpu = rt.cpu;
    let m = &mut rt.maps.maps[map];
    let ks = m.def.key_size as usize;
    if !crate::arena::contains(key, ks as u64) {
        return None;
    }
    // SAFETY: `[key, key + ks)` is committed read-write memory of the engines' range
    // (checked just above; the range never shrinks); lookups never write map buffers, so
    // the bytes do not change while the slice is used.
    let k = unsafe { std::slice::from_raw_parts(key as *const u8, ks) };
    // HASH / PERCPU_HASH maps first, in this small function (the key read in place, no
    // copy); the other types, LRU maps included, out of line.
    Some(match m.plain_hash_lookup_addr(k, cpu) {
        Some(a) => a,
        None => lookup_other(m, k, cpu),
    })
}

/// [`map_lookup`] for the map types that are not HASH / PERCPU_HASH.
#[inline(never)]
fn lookup_other(m: &mut crate::maps::Map, k: &[u8], cpu: u32) -> u64 {
    if let Some(a) = m.hash_lookup_addr(k, cpu) {
        return a;
    }
    if matches!(m.map_type(), mt::ARRAY_OF_MAPS | mt::HASH_OF_MAPS) {
        // The value is the inner map itself.
        return match m.slot(k) {
            Some(v) => map_handle(u32::from_le_bytes([v[0], v[1], v[2], v[3]]) as usize),
            None => 0,
        };
    }
    match m.lookup_addr(k, cpu) {
        Lookup::Value(a) => a,
        Lookup::Null => 0,
    }
}

/// `bpf_map_update_elem(map, key, value, flags)` for a map whose type passes
/// [`update_supported`]: r0 as the helper returns it (0 or a negated errno); `None` when
/// the key or value pointer is not inside the engines' address range.
///
/// `map` must be a map index of `rt` (panics otherwise).
pub fn map_update(rt: &mut Runtime, map: usize, key: u64, value: u64, flags: u64) -> Option<u64> {
    let (ks, vs) = {
        let d = &rt.maps.maps[map].def;
        (d.key_size as usize, d.value_size as usize)
    };
    if !crate::arena::contains(key, ks as u64) || !crate::arena::contains(value, vs as u64) {
        return None;
    }
    // Key and value are copied first: they may point into this map's own values, which
    // the update overwrites or replaces.
    // SAFETY: both ranges are committed memory of the engines' range (checked above).
    Some(unsafe {
        with_copy(key, ks, |k| {
            with_copy(value, vs, |v| {
                crate::helpers::map_update_bytes(rt, map, k, v, flags)
            })
        })
    })
}

/// `bpf_map_delete_elem(map, key)` for a map whose type passes [`update_supported`];
/// `None` when the key pointer is not inside the engines' address range.
///
/// `map` must be a map index of `rt` (panics otherwise).
pub fn map_delete(rt: &mut Runtime, map: usize, key: u64) -> Option<u64> {
    let ks = rt.maps.maps[map].def.key_size as usize;
    if !crate::arena::contains(key, ks as u64) {
        return None;
    }
    // SAFETY: committed memory of the engines' range (checked above).
    Some(unsafe { with_copy(key, ks, |k| crate::helpers::map_delete_bytes(rt, map, k)) })
}

/// `bpf_xdp_load_bytes` (`store` false) / `bpf_xdp_store_bytes` (`store` true) with
/// `off`, `buf` and `len` from r2..r4: the same bytes moved and the same r0 as
/// [`crate::helpers::call`], with `buf` confined to the engines' address range instead of
/// checked against the live regions (so the fast mode needs no stack regions for it).
/// `None` (take the generic helper, which reports the fault or the result) when the run has
/// no XDP context, `len` is 0 or `[buf, buf + len)` is not inside the engines' range.
pub fn xdp_load_store(rt: &mut Runtime, off: u64, buf: u64, len: u64, store: bool) -> Option<u64> {
    let (off, len) = (off as u32 as u64, len as u32 as u64);
    let x = rt.xdp.as_mut()?;
    if off > 0xffff || len > 0xffff {
        return Some(crate::helpers::neg(14)); // -EFAULT, before any pointer is looked at
    }
    let lin = x.data_end - x.data;
    if off + len > lin + x.frags_len() {
        return Some(crate::helpers::neg(crate::maps::EINVAL));
    }
    if len == 0 || !crate::arena::contains(buf, len) {
        return None;
    }
    if !store {
        crate::helpers::packet_segments(x, off, len, |p, n, at| {
            // SAFETY: `[buf, buf + len)` is committed memory of the engines' range (checked
            // above) and `at + n <= len`; the `n` source bytes are packet memory (bounds
            // checked above). `copy` (memmove): the destination may be the packet itself.
            unsafe { std::ptr::copy(p, (buf as *mut u8).add(at), n) };
        });
    } else if off + len <= lin {
        crate::helpers::packet_segments_mut(x, off, len, |p, n, at| {
            // SAFETY: `[buf, buf + len)` is committed memory of the engines' range and
            // `at + n <= len`; `p` is `n` writable bytes of the packet page (memmove: the
            // source may lie in the packet).
            unsafe { std::ptr::copy((buf as *const u8).add(at), p, n) };
        });
    } else {
        // Across pieces: the source is copied first, as the helper does, since writing the
        // first piece could change a source lying in the packet.
        // SAFETY: `[buf, buf + len)` is committed memory of the engines' range.
        unsafe {
            with_copy(buf, len as usize, |bytes| {
                crate::helpers::packet_segments_mut(x, off, len, |p, n, at| {
                    // SAFETY: `p` is `n` writable bytes of the packet page or a fragment,
                    // and `bytes` (a separate buffer) holds `at + n <= len` bytes.
                    std::ptr::copy_nonoverlapping(bytes.as_ptr().add(at), p, n)
                });
            })
        };
    }
    Some(0)
}

/// `bpf_map_push_elem(map, value, flags)` on a QUEUE, STACK or BLOOM_FILTER: r0 as the
/// helper returns it, the value read in place (copied to the stack first, as the helper
/// copies it). `None` (take the generic helper) when `map` is no such map's handle or the
/// value is not inside the engines' range.
pub fn map_push(rt: &mut Runtime, map: u64, value: u64, flags: u64) -> Option<u64> {
    let m = crate::maps::handle_to_index(map).filter(|&m| m < rt.maps.maps.len())?;
    let map = &mut rt.maps.maps[m];
    if !matches!(map.map_type(), mt::QUEUE | mt::STACK | mt::BLOOM_FILTER) {
        return None;
    }
    let vs = map.def.value_size as usize;
    if !crate::arena::contains(value, vs as u64) {
        return None;
    }
    // SAFETY: `[value, value + vs)` is committed memory of the engines' range.
    Some(unsafe {
        with_copy(value, vs, |v| match map.try_push(v, flags) {
            Ok(()) => 0,
            Err(e) => crate::helpers::neg(e.errno),
        })
    })
}

/// `bpf_map_pop_elem` (`delete`) / `bpf_map_peek_elem(map, value)` on a QUEUE or STACK
/// (and peek on a BLOOM_FILTER): r0 as the helper returns it, the element written straight
/// to `value`. `None` (take the generic helper) when `map` is no such map's handle or
/// `value` is not inside the engines' range.
pub fn map_pop_peek(rt: &mut Runtime, map: u64, value: u64, delete: bool) -> Option<u64> {
    let m = crate::maps::handle_to_index(map).filter(|&m| m < rt.maps.maps.len())?;
    let map = &mut rt.maps.maps[m];
    let t = map.map_type();
    let vs = map.def.value_size as usize;
    if !crate::arena::contains(value, vs as u64) {
        return None;
    }
    if !delete && t == mt::BLOOM_FILTER {
        // SAFETY: `[value, value + vs)` is committed memory of the engines' range.
        return Some(unsafe {
            with_copy(value, vs, |v| match map.bloom_contains(v) {
                Some(true) => 0,
                _ => crate::helpers::neg(crate::maps::ENOENT),
            })
        });
    }
    if !matches!(t, mt::QUEUE | mt::STACK) {
        return None;
    }
    let r = map.try_pop_with(delete, |v| {
        // SAFETY: `[value, value + vs)` is committed memory of the engines' range and at
        // most `vs` bytes are written; `v` is the element's own buffer (memmove anyway).
        unsafe { std::ptr::copy(v.as_ptr(), value as *mut u8, v.len().min(vs)) }
    });
    Some(match r {
        Ok(()) => 0,
        Err(e) => crate::helpers::neg(e.errno),
    })
}

/// Largest PROG_ARRAY [`prog_array_slots`] lists.
pub const MAX_JUMP_TABLE: u32 = 1 << 16;

/// The program in each slot of PROG_ARRAY `map` (`None` for an empty slot), for a
/// tail-call jump table in generated code. `None` if `map` is not a PROG_ARRAY, has more
/// than [`MAX_JUMP_TABLE`] slots, or a slot names a program that does not exist (the
/// helper faults on that one, so such maps stay on the generic path).
pub fn prog_array_slots(rt: &Runtime, map: usize) -> Option<Vec<Option<usize>>> {
    let m = rt.maps.maps.get(map)?;
    if m.map_type() != mt::PROG_ARRAY || m.def.max_entries > MAX_JUMP_TABLE {
        return None;
    }
    let mut out = Vec::with_capacity(m.def.max_entries as usize);
    for i in 0..m.def.max_entries {
        match m.slot(&i.to_le_bytes()) {
            Some(s) => {
                let p = u32::from_le_bytes([s[0], s[1], s[2], s[3]]) as usize;
                if p >= rt.programs.len() {
                    return None;
                }
                out.push(Some(p));
            }
            None => out.push(None),
        }
    }
    Some(out)
}

/// The tail-call limit the helper enforces per run (`MAX_TAIL_CALL_CNT`).
pub const TAIL_CALL_LIMIT: u32 = MAX_TAIL_CALL_CNT;
