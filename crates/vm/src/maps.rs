//! Maps with the kernel's semantics for update flags, `max_entries` and error codes.
//!
//! Values that programs can point into (array elements, hash values, LPM values, global
//! data) live in [`Buf`]s registered in the runtime's [`Regions`] table, so a pointer
//! returned by `bpf_map_lookup_elem` is a real host address checked on every access.
//! Values of deleted or replaced elements stay readable until the end of the run (the
//! kernel frees them after an RCU grace period); see [`MapSet::end_run`].

use crate::memory::{Buf, Region, RegionKind, Regions};
use bpfkit_object::model::{map_type as mt, MapDef, MapInit};
use std::collections::{BTreeMap, VecDeque};

// errno values, as the kernel returns them (negated) to programs and the syscall.
pub const EPERM: i64 = 1;
pub const ENOENT: i64 = 2;
pub const E2BIG: i64 = 7;
pub const ENOMEM: i64 = 12;
pub const EBUSY: i64 = 16;
pub const EEXIST: i64 = 17;
pub const ENODEV: i64 = 19;
pub const EINVAL: i64 = 22;
pub const ENOSPC: i64 = 28;
pub const ERANGE: i64 = 34;
pub const EOVERFLOW: i64 = 75;
pub const EOPNOTSUPP: i64 = 95;
pub const ENOTSUPP: i64 = 524;

// Update flags.
pub const BPF_ANY: u64 = 0;
pub const BPF_NOEXIST: u64 = 1;
pub const BPF_EXIST: u64 = 2;
pub const BPF_F_LOCK: u64 = 4;

// Map flags.
pub const BPF_F_NO_PREALLOC: u32 = 1 << 0;
pub const BPF_F_RDONLY_PROG: u32 = 1 << 7;

/// Base of the fake kernel addresses that stand for maps (`lddw r1, map`).
pub const MAP_HANDLE_BASE: u64 = 0xffff_a000_0000_0000;

/// `BPF_F_INNER_MAP`: an inner-map template whose arrays may differ in `max_entries`.
pub const BPF_F_INNER_MAP: u32 = 1 << 12;

/// Why the kernel refuses `inner` as a value of a map-in-map whose inner-map template is
/// `template` (`bpf_map_fd_get_ptr`: the template's `map_meta_equal`, else -EINVAL), or
/// `None` when it accepts it. Compares what `bpf_map_meta_equal` compares (type, key and
/// value size, flags; the BTF record of spin locks and timers is not compared here) and,
/// for arrays, `max_entries` unless the template has `BPF_F_INNER_MAP`
/// (`array_map_meta_equal`); map-in-maps and the other types without `map_meta_equal`
/// cannot be inner maps at all.
pub fn inner_map_mismatch(template: &MapDef, inner: &MapDef) -> Option<String> {
    let no_meta_equal = matches!(
        inner.map_type,
        mt::PROG_ARRAY | mt::ARRAY_OF_MAPS | mt::HASH_OF_MAPS | mt::PERF_EVENT_ARRAY
    );
    if no_meta_equal {
        return Some(format!(
            "map type {} cannot be an inner map",
            inner.map_type
        ));
    }
    let fields = [
        ("map type", template.map_type, inner.map_type),
        ("key size", template.key_size, inner.key_size),
        ("value size", template.value_size, inner.value_size),
        ("map flags", template.map_flags, inner.map_flags),
    ];
    for (what, want, got) in fields {
        if want != got {
            return Some(format!(
                "{what} {got} differs from the inner-map template's {want}"
            ));
        }
    }
    let array = matches!(template.map_type, mt::ARRAY | mt::PERCPU_ARRAY);
    if array
        && template.map_flags & BPF_F_INNER_MAP == 0
        && template.max_entries != inner.max_entries
    {
        return Some(format!(
            "max_entries {} differs from the inner-map template's {} (the template has no BPF_F_INNER_MAP)",
            inner.max_entries, template.max_entries
        ));
    }
    None
}
const MAP_HANDLE_STRIDE: u64 = 0x1_0000;

/// The value a program sees for map `idx`.
pub fn map_handle(idx: usize) -> u64 {
    MAP_HANDLE_BASE + idx as u64 * MAP_HANDLE_STRIDE
}

/// The map index a handle stands for, if it is one.
pub fn handle_to_index(h: u64) -> Option<usize> {
    let off = h.checked_sub(MAP_HANDLE_BASE)?;
    (off % MAP_HANDLE_STRIDE == 0).then_some((off / MAP_HANDLE_STRIDE) as usize)
}

/// A failed map operation: the errno and a sentence saying why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("map {map:?}: {msg} (errno {errno})")]
pub struct MapError {
    /// The map's name (shared with the map: no copy per error).
    pub map: std::sync::Arc<str>,
    pub errno: i64,
    /// Fixed sentences are not copied either, and the numbers of the common ones are only
    /// formatted when the error is shown: a program whose map updates fail on every packet
    /// builds its errors without allocating or formatting (only the errno reaches it).
    pub msg: ErrMsg,
}

/// A failed map operation before the map's name is attached ([`Map::try_update`] and
/// the like): helpers only need the errno, and cloning the map's `Arc<str>` name into
/// every error cost two atomic operations per failing call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub errno: i64,
    pub msg: ErrMsg,
}

impl Failure {
    fn new(errno: i64, msg: impl Into<ErrMsg>) -> Failure {
        Failure {
            errno,
            msg: msg.into(),
        }
    }

    /// The error as callers outside the helpers see it.
    pub fn named(self, map: &std::sync::Arc<str>) -> MapError {
        MapError {
            map: map.clone(),
            errno: self.errno,
            msg: self.msg,
        }
    }
}

/// Why a map operation failed ([`MapError::msg`]): a sentence, or one whose numbers are
/// formatted only by `Display`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrMsg {
    Text(std::borrow::Cow<'static, str>),
    /// "invalid {what} flags {flags:#x}".
    Flags(&'static str, u64),
    /// "index {i} >= max_entries {max}" (without the number when `None`).
    Index(u32, Option<u32>),
    /// "{what} ({max} entries)".
    Full(&'static str, usize),
}

impl std::fmt::Display for ErrMsg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ErrMsg::Text(t) => f.write_str(t),
            ErrMsg::Flags(what, flags) => write!(f, "invalid {what} flags {flags:#x}"),
            ErrMsg::Index(i, Some(max)) => write!(f, "index {i} >= max_entries {max}"),
            ErrMsg::Index(i, None) => write!(f, "index {i} >= max_entries"),
            ErrMsg::Full(what, max) => write!(f, "{what} ({max} entries)"),
        }
    }
}

impl From<&'static str> for ErrMsg {
    fn from(s: &'static str) -> Self {
        ErrMsg::Text(s.into())
    }
}

impl From<String> for ErrMsg {
    fn from(s: String) -> Self {
        ErrMsg::Text(s.into())
    }
}

fn round8(n: u32) -> u64 {
    (n as u64 + 7) & !7
}

/// A hash map element: key bytes, value buffer (one value per CPU for per-CPU maps).
#[derive(Debug)]
struct Elem {
    /// The key (`key_size` bytes).
    key: Box<[u8]>,
    /// [`HashElems::hash`] of `key`, kept so that growing the index does not rehash keys.
    hash: u64,
    /// Never replaced while the element lives: programs hold pointers into it (an update
    /// puts a new buffer in and the old one in the graveyard).
    value: Buf,
    /// LRU recency stamp (the map's clock at the last lookup or update); unique per map.
    used: u64,
    /// LRU maps: the elements stamped just before and just after this one ([`NIL`] at
    /// the ends), so that the list runs in `used` order. Unused ([`NIL`]) otherwise.
    prev: u32,
    next: u32,
}

/// No element (LRU list ends).
const NIL: u32 = u32::MAX;

/// Up to the first 8 bytes of a key as one integer. For keys of one length `n <= 8` it is
/// injective (the loads below cover every byte), so equal heads mean equal keys; longer
/// keys also compare the bytes after the eighth.
fn key_head(k: &[u8]) -> u64 {
    if let Some(h) = key_head_common(k) {
        return h;
    }
    let r2 = |i: usize| u16::from_le_bytes([k[i], k[i + 1]]) as u64;
    let r4 = |i: usize| u32::from_le_bytes([k[i], k[i + 1], k[i + 2], k[i + 3]]) as u64;
    match k.len() {
        0 => 0,
        1 => k[0] as u64,
        2 => r2(0),
        3 => r2(0) | (k[2] as u64) << 16,
        n if n < 8 => r4(0) | r4(n - 4) << 32,
        _ => u64::from_le_bytes(k[..8].try_into().expect("8 bytes")),
    }
}

/// [`key_head`] of a key of the common sizes (__u16, __u32, __u64 keys), a compare each
/// (where a `match` on every size would become a jump table); `None` for other sizes.
#[inline(always)]
fn key_head_common(k: &[u8]) -> Option<u64> {
    if let Ok(b) = <[u8; 2]>::try_from(k) {
        Some(u16::from_le_bytes(b) as u64)
    } else if let Ok(b) = <[u8; 4]>::try_from(k) {
        Some(u32::from_le_bytes(b) as u64)
    } else if let Ok(b) = <[u8; 8]>::try_from(k) {
        Some(u64::from_le_bytes(b))
    } else {
        None
    }
}

/// An odd constant with well spread bits (2^64 / the golden ratio).
const HASH_K: u64 = 0x9e37_79b9_7f4a_7c15;

/// 64x64 -> 128-bit multiply, halves xored: the mixing step of foldhash and wyhash.
#[inline(always)]
fn fold_mul(a: u64, b: u64) -> u64 {
    let p = a as u128 * b as u128;
    p as u64 ^ (p >> 64) as u64
}

/// One slot of [`HashElems`]'s index.
#[derive(Debug, Clone, Copy)]
struct Slot {
    /// [`key_head`] of the element's key.
    head: u64,
    /// The low 32 bits of the element's hash (its home slot is `hash & mask`).
    hash: u32,
    /// Position of the element in `elems`, or [`EMPTY`].
    idx: u32,
}

const EMPTY: u32 = u32::MAX;
const FREE: Slot = Slot {
    head: 0,
    hash: 0,
    idx: EMPTY,
};

/// The elements of a HASH / PERCPU_HASH / LRU_HASH / LRU_PERCPU_HASH map.
///
/// `elems` holds the elements densely (a delete moves the last one into the gap); `slots`
/// is an open-addressing index over them (linear probing, at most half full, deletion by
/// backward shift, so no tombstones) keyed by a hash with a per-map random seed (keys come
/// from packets: a fixed hash would let a capture pile keys into one probe chain). Each
/// slot carries the key's first 8 bytes, so keys of up to 8 bytes are found with one
/// integer compare and no access to the element. Neither order is observable: everything
/// that lists elements (dumps, `bpf_for_each_map_elem`, LRU ties) goes by key bytes, as
/// with the B-tree this replaced.
#[derive(Debug)]
struct HashElems {
    slots: Box<[Slot]>,
    /// `slots.len() - 1` (a power of two minus one).
    mask: usize,
    elems: Vec<Elem>,
    seed: u64,
    /// Distance between two CPUs' values in a value buffer; 0 for maps that are not
    /// per-CPU (every CPU sees the one value).
    cpu_stride: u64,
    /// LRU maps keep `elems` in a doubly linked list in `used` order (every stamp moves
    /// its element to the tail), so the victim is the head, without a scan.
    lru: bool,
    /// Least and most recently used elements ([`NIL`] when empty or not an LRU map).
    lru_head: u32,
    lru_tail: u32,
}

impl HashElems {
    const MIN_SLOTS: usize = 8;

    fn new(cpu_stride: u64, lru: bool, index: usize) -> HashElems {
        use std::hash::BuildHasher;
        HashElems {
            slots: vec![FREE; Self::MIN_SLOTS].into_boxed_slice(),
            mask: Self::MIN_SLOTS - 1,
            elems: Vec::new(),
            // Odd, so that no seed turns the first multiply into a constant.
            seed: std::hash::RandomState::new().hash_one(index) | 1,
            cpu_stride,
            lru,
            lru_head: NIL,
            lru_tail: NIL,
        }
    }

    /// Takes element `idx` out of the LRU list.
    fn unlink(&mut self, idx: usize) {
        let (p, n) = (self.elems[idx].prev, self.elems[idx].next);
        match p {
            NIL => self.lru_head = n,
            p => self.elems[p as usize].next = n,
        }
        match n {
            NIL => self.lru_tail = p,
            n => self.elems[n as usize].prev = p,
        }
    }

    /// Appends element `idx` (not in the list) at the most recently used end.
    fn link_tail(&mut self, idx: usize) {
        let t = self.lru_tail;
        self.elems[idx].prev = t;
        self.elems[idx].next = NIL;
        match t {
            NIL => self.lru_head = idx as u32,
            t => self.elems[t as usize].next = idx as u32,
        }
        self.lru_tail = idx as u32;
    }

    /// Stamps element `idx` with `clock` (the newest stamp): for LRU maps it moves to the
    /// tail of the list.
    fn stamp(&mut self, idx: usize, clock: u64) {
        self.elems[idx].used = clock;
        if self.lru && self.lru_tail != idx as u32 {
            self.unlink(idx);
            self.link_tail(idx);
        }
    }

    fn len(&self) -> usize {
        self.elems.len()
    }

    /// The key's hash (`head` is its [`key_head`]).
    #[inline(always)]
    fn hash(&self, key: &[u8], head: u64) -> u64 {
        let mut h = fold_mul(head ^ self.seed, HASH_K);
        if key.len() > 8 {
            for c in key[8..].chunks(8) {
                h = fold_mul(h ^ key_head(c) ^ self.seed.rotate_left(32), HASH_K);
            }
        }
        h
    }

    /// Slot `i & mask`.
    #[inline(always)]
    fn slot(&self, i: usize) -> Slot {
        let i = i & self.mask;
        debug_assert_eq!(self.slots.len(), self.mask + 1);
        // SAFETY: `slots` always has `mask + 1` entries (`new` and `insert_new` set both
        // together), so `i & mask` is in bounds.
        unsafe { *self.slots.get_unchecked(i) }
    }

    /// The slot holding key `key` (of the map's `key_size`, which the caller checked) and
    /// the position of its element.
    fn find(&self, key: &[u8]) -> Option<(usize, usize)> {
        if key.len() > 8 {
            return self.find_slot_long(key);
        }
        self.find_short(key_head(key))
    }

    /// [`HashElems::find`] for a key of at most 8 bytes, whose [`key_head`] is `head`.
    #[inline(always)]
    fn find_short(&self, head: u64) -> Option<(usize, usize)> {
        // The head is the whole key: one integer compare per occupied slot.
        let mut i = fold_mul(head ^ self.seed, HASH_K) as usize;
        loop {
            let s = self.slot(i);
            if s.idx == EMPTY {
                return None;
            }
            if s.head == head {
                return Some((i & self.mask, s.idx as usize));
            }
            i = (i & self.mask) + 1;
        }
    }

    /// [`HashElems::find`] for keys longer than 8 bytes, out of line so that the
    /// short-key path stays small.
    #[inline(never)]
    fn find_slot_long(&self, key: &[u8]) -> Option<(usize, usize)> {
        let head = key_head(key);
        let h = self.hash(key, head);
        let mut i = h as usize;
        loop {
            let s = self.slot(i);
            if s.idx == EMPTY {
                return None;
            }
            if s.head == head
                && s.hash == h as u32
                && self.elems[s.idx as usize].key[8..] == key[8..]
            {
                return Some((i & self.mask, s.idx as usize));
            }
            i = (i & self.mask) + 1;
        }
    }

    fn contains(&self, key: &[u8]) -> bool {
        self.find(key).is_some()
    }

    /// A program's lookup: the value's address for `cpu` (0 if absent), stamping the
    /// element with `clock`. `key` has `key_size` bytes (the caller checked).
    #[inline(always)]
    /// `LRU`: this is an LRU map (`self.lru`), known where the map's variant is matched
    /// so that plain hash maps do not test it on every lookup.
    fn lookup<const LRU: bool>(&mut self, key: &[u8], cpu: u32, clock: u64) -> u64 {
        debug_assert_eq!(LRU, self.lru);
        // The common key sizes inline; the others through a tail call, so that nothing
        // stays live across a call and this path needs no saved registers.
        match key_head_common(key) {
            Some(head) => self.lookup_found::<LRU>(self.find_short(head), cpu, clock),
            None => self.lookup_any::<LRU>(key, cpu, clock),
        }
    }

    /// [`HashElems::lookup`] for keys of any size.
    #[inline(never)]
    fn lookup_any<const LRU: bool>(&mut self, key: &[u8], cpu: u32, clock: u64) -> u64 {
        self.lookup_found::<LRU>(self.find(key), cpu, clock)
    }

    #[inline(always)]
    fn lookup_found<const LRU: bool>(
        &mut self,
        found: Option<(usize, usize)>,
        cpu: u32,
        clock: u64,
    ) -> u64 {
        match found {
            Some((_, idx)) => {
                let stride = self.cpu_stride;
                debug_assert!(idx < self.elems.len());
                // SAFETY: `idx` comes from an occupied slot, and occupied slots always
                // hold positions below `elems.len()`: `insert_new` stores the position the
                // element is pushed at, `remove_slot` empties the removed element's slot
                // and repoints the slot of the element `swap_remove` moves, and growing
                // copies the positions as they are.
                let e = unsafe { self.elems.get_unchecked_mut(idx) };
                e.used = clock;
                let addr = e.value.addr() + cpu as u64 * stride;
                if LRU && self.lru_tail != idx as u32 {
                    self.touch_slow(idx);
                }
                addr
            }
            None => 0,
        }
    }

    /// [`HashElems::stamp`]'s list move, out of the lookup path.
    #[inline(never)]
    fn touch_slow(&mut self, idx: usize) {
        self.unlink(idx);
        self.link_tail(idx);
    }

    /// Puts element `idx` into the index (its key is not there yet).
    fn place(slots: &mut [Slot], mask: usize, head: u64, hash: u64, idx: u32) {
        let mut i = hash as usize & mask;
        while slots[i].idx != EMPTY {
            i = (i + 1) & mask;
        }
        slots[i] = Slot {
            head,
            hash: hash as u32,
            idx,
        };
    }

    /// Adds an element whose key is not in the map.
    fn insert_new(&mut self, key: &[u8], value: Buf, used: u64) {
        if (self.elems.len() + 1) * 2 > self.slots.len() {
            let n = self.slots.len() * 2;
            let mut slots = vec![FREE; n].into_boxed_slice();
            for (i, e) in self.elems.iter().enumerate() {
                Self::place(&mut slots, n - 1, key_head(&e.key), e.hash, i as u32);
            }
            self.slots = slots;
            self.mask = n - 1;
        }
        let head = key_head(key);
        let hash = self.hash(key, head);
        let idx = u32::try_from(self.elems.len()).expect("fewer than 2^32 - 1 elements");
        Self::place(&mut self.slots, self.mask, head, hash, idx);
        self.elems.push(Elem {
            key: key.into(),
            hash,
            value,
            used,
            prev: NIL,
            next: NIL,
        });
        if self.lru {
            self.link_tail(idx as usize);
        }
    }

    /// Removes the element in slot `at`: the slots after it in its probe run move back
    /// (so that every key stays reachable from its home slot without tombstones), and the
    /// last element moves into its place in `elems`.
    fn remove_slot(&mut self, at: usize) -> Elem {
        let mask = self.mask;
        let idx = self.slots[at].idx as usize;
        let mut hole = at;
        let mut j = at;
        loop {
            j = (j + 1) & mask;
            let s = self.slots[j];
            if s.idx == EMPTY {
                break;
            }
            // `s` may fill the hole if the hole lies between its home slot and `j`.
            let home = s.hash as usize & mask;
            if j.wrapping_sub(home) & mask >= j.wrapping_sub(hole) & mask {
                self.slots[hole] = s;
                hole = j;
            }
        }
        self.slots[hole] = FREE;
        if self.lru {
            self.unlink(idx);
        }
        let e = self.elems.swap_remove(idx);
        if idx < self.elems.len() {
            // The former last element now lives at `idx`: repoint its slot.
            let last = self.elems.len() as u32;
            let mut i = self.elems[idx].hash as usize & mask;
            while self.slots[i].idx != last {
                i = (i + 1) & mask;
            }
            self.slots[i].idx = idx as u32;
            if self.lru {
                // ... and its neighbours in the LRU list.
                let (p, n) = (self.elems[idx].prev, self.elems[idx].next);
                match p {
                    NIL => self.lru_head = idx as u32,
                    p => self.elems[p as usize].next = idx as u32,
                }
                match n {
                    NIL => self.lru_tail = idx as u32,
                    n => self.elems[n as usize].prev = idx as u32,
                }
            }
        }
        e
    }

    fn remove(&mut self, key: &[u8]) -> Option<Elem> {
        let (at, _) = self.find(key)?;
        Some(self.remove_slot(at))
    }

    /// Removes the least recently used element of an LRU map: the head of its list,
    /// which is the element with the smallest stamp (stamps are unique, so this is the
    /// victim of the key-ordered scan for the smallest stamp it replaced).
    fn evict_lru(&mut self) -> Option<Elem> {
        debug_assert!(self.lru);
        if self.lru_head == NIL {
            return None;
        }
        let victim = &self.elems[self.lru_head as usize];
        debug_assert_eq!(
            Some(victim.used),
            self.elems.iter().map(|e| e.used).min(),
            "the LRU list is in stamp order"
        );
        let key = victim.key.clone();
        self.remove(&key)
    }

    /// Every element, sorted by key bytes.
    fn sorted(&self) -> Vec<&Elem> {
        let mut v: Vec<&Elem> = self.elems.iter().collect();
        v.sort_unstable_by(|a, b| a.key.cmp(&b.key));
        v
    }
}

#[derive(Debug)]
enum Store {
    /// ARRAY / PERCPU_ARRAY: one buffer per CPU (one for plain arrays), `max_entries`
    /// elements of `round8(value_size)` bytes.
    Array { cpus: Vec<Buf> },
    /// HASH / PERCPU_HASH / LRU_HASH / LRU_PERCPU_HASH.
    Hash(HashElems),
    /// LRU_HASH / LRU_PERCPU_HASH: the same, with the LRU list kept (a variant of its
    /// own so that the lookup path knows it from the match it makes anyway).
    LruHash(HashElems),
    /// LPM_TRIE: keyed by (prefixlen, masked data); stores the key as first inserted.
    Lpm {
        elems: BTreeMap<(u32, Vec<u8>), (Vec<u8>, Buf)>,
    },
    /// PROG_ARRAY, ARRAY_OF_MAPS, DEVMAP, CPUMAP, XSKMAP, PERF_EVENT_ARRAY: raw slot values.
    Slots { slots: BTreeMap<u32, Buf> },
    /// DEVMAP_HASH, HASH_OF_MAPS: keyed slots.
    KeyedSlots { slots: BTreeMap<Vec<u8>, Buf> },
    /// QUEUE / STACK.
    /// `spare`: buffers of popped or overwritten elements, reused by the next pushes (no
    /// allocation per push or pop once the queue has been full).
    Fifo {
        items: VecDeque<Vec<u8>>,
        spare: Vec<Vec<u8>>,
    },
    /// RINGBUF: records waiting to be read, and bytes in use.
    Ringbuf { used: u64 },
    /// BLOOM_FILTER, kept as an exact set (see docs/vm.md).
    Bloom {
        items: std::collections::BTreeSet<Vec<u8>>,
    },
}

/// One map and its contents.
#[derive(Debug)]
pub struct Map {
    pub def: MapDef,
    pub index: usize,
    ncpus: u32,
    store: Store,
    clock: u64,
    /// The value holds a `struct bpf_spin_lock` (allows `BPF_F_LOCK`). Unknown without
    /// BTF, so false unless set with [`Map::set_spin_lock`].
    spin_lock: bool,
    /// `def.name`, shared by the errors of this map.
    name: std::sync::Arc<str>,
    /// Hash maps: value buffers of elements replaced, deleted or evicted in earlier runs
    /// (their regions removed), reused by the next inserts instead of allocating: the
    /// kernel's preallocated elements come from a free list the same way.
    free: Vec<Buf>,
}

/// What a lookup from a program returns.
pub enum Lookup {
    /// Address of the value (for this CPU).
    Value(u64),
    /// Not found: NULL.
    Null,
}

impl Map {
    fn err(&self, errno: i64, msg: impl Into<ErrMsg>) -> MapError {
        MapError {
            map: self.name.clone(),
            errno,
            msg: msg.into(),
        }
    }

    /// Declares that the value holds a `struct bpf_spin_lock` (so `BPF_F_LOCK` is allowed).
    pub fn set_spin_lock(&mut self, yes: bool) {
        self.spin_lock = yes;
    }

    pub fn map_type(&self) -> u32 {
        self.def.map_type
    }

    pub fn is_percpu(&self) -> bool {
        matches!(
            self.def.map_type,
            mt::PERCPU_ARRAY | mt::PERCPU_HASH | mt::LRU_PERCPU_HASH
        )
    }

    fn is_lru(&self) -> bool {
        matches!(self.def.map_type, mt::LRU_HASH | mt::LRU_PERCPU_HASH)
    }

    /// Programs may not write into this map's values.
    pub fn read_only_prog(&self) -> bool {
        self.def.map_flags & BPF_F_RDONLY_PROG != 0
            || self.def.section.starts_with(".rodata")
            || matches!(self.def.map_type, mt::DEVMAP | mt::DEVMAP_HASH)
    }

    fn stride(&self) -> u64 {
        round8(self.def.value_size)
    }

    /// Size of one (all-CPU) hash value buffer.
    /// Whether `b`, a value buffer of this map no longer reachable, joins the free list.
    fn keeps_free(&self, b: &Buf) -> bool {
        matches!(self.store, Store::Hash(_) | Store::LruHash(_))
            && b.len() == self.value_buf_len()
            && self.free.len() < self.def.max_entries as usize
    }

    fn value_buf_len(&self) -> usize {
        if self.is_percpu() {
            (self.stride() * self.ncpus as u64) as usize
        } else {
            self.def.value_size as usize
        }
    }

    fn value_region(&self, buf: &Buf) -> Region {
        let kind = RegionKind::MapValue(self.index as u32);
        if self.is_percpu() {
            Region::strided(
                buf.addr(),
                self.ncpus as u64,
                self.stride(),
                self.def.value_size as u64,
                kind,
                !self.read_only_prog(),
            )
        } else {
            Region::new(
                buf.addr(),
                self.def.value_size as u64,
                kind,
                !self.read_only_prog(),
            )
        }
    }

    fn new(def: MapDef, index: usize, ncpus: u32, regions: &mut Regions) -> Result<Map, MapError> {
        let def_name: std::sync::Arc<str> = def.name.as_str().into();
        let mut m = Map {
            def,
            index,
            ncpus,
            store: Store::Fifo {
                items: VecDeque::new(),
                spare: Vec::new(),
            },
            clock: 0,
            spin_lock: false,
            name: def_name,
            free: Vec::new(),
        };
        let d = &m.def;
        let bad = |msg: &'static str| {
            Err(MapError {
                map: m.name.clone(),
                errno: EINVAL,
                msg: msg.into(),
            })
        };
        let key4 = d.key_size == 4;
        m.store = match d.map_type {
            mt::ARRAY | mt::PERCPU_ARRAY => {
                if !key4 || d.value_size == 0 || d.max_entries == 0 {
                    return bad("array maps need key_size 4, value_size > 0, max_entries > 0");
                }
                let n = if d.map_type == mt::PERCPU_ARRAY {
                    ncpus
                } else {
                    1
                };
                let len = (round8(d.value_size) as usize).saturating_mul(d.max_entries as usize);
                if len > (1 << 30) {
                    return Err(m.err(
                        ENOMEM,
                        format!("array of {len} bytes is too large for the emulator"),
                    ));
                }
                let total = len.saturating_mul(n as usize);
                if total > crate::arena::reserved() / 2 {
                    return Err(m.err(
                        ENOMEM,
                        format!(
                            "array of {total} bytes ({n} CPUs) does not fit the engines' memory ({} bytes reserved)",
                            crate::arena::reserved()
                        ),
                    ));
                }
                let cpus: Vec<Buf> = (0..n).map(|_| Buf::new(len)).collect();
                for b in &cpus {
                    regions.insert(Region::strided(
                        b.addr(),
                        d.max_entries as u64,
                        round8(d.value_size),
                        d.value_size as u64,
                        RegionKind::MapValue(index as u32),
                        !m.read_only_prog(),
                    ));
                }
                Store::Array { cpus }
            }
            mt::HASH | mt::PERCPU_HASH | mt::LRU_HASH | mt::LRU_PERCPU_HASH => {
                if d.key_size == 0 || d.value_size == 0 || d.max_entries == 0 {
                    return bad("hash maps need key_size > 0, value_size > 0, max_entries > 0");
                }
                let cpu_stride = if m.is_percpu() {
                    round8(d.value_size)
                } else {
                    0
                };
                let lru = matches!(d.map_type, mt::LRU_HASH | mt::LRU_PERCPU_HASH);
                let h = HashElems::new(cpu_stride, lru, index);
                if lru {
                    Store::LruHash(h)
                } else {
                    Store::Hash(h)
                }
            }
            mt::LPM_TRIE => {
                if d.key_size <= 4
                    || d.key_size > 4 + 256
                    || d.value_size == 0
                    || d.max_entries == 0
                {
                    return bad(
                        "LPM_TRIE needs key_size in 5..=260, value_size > 0, max_entries > 0",
                    );
                }
                if d.map_flags & BPF_F_NO_PREALLOC == 0 {
                    return bad("LPM_TRIE needs BPF_F_NO_PREALLOC");
                }
                Store::Lpm {
                    elems: BTreeMap::new(),
                }
            }
            mt::PROG_ARRAY
            | mt::ARRAY_OF_MAPS
            | mt::DEVMAP
            | mt::CPUMAP
            | mt::XSKMAP
            | mt::PERF_EVENT_ARRAY => {
                if !key4 || d.max_entries == 0 {
                    return bad("needs key_size 4 and max_entries > 0");
                }
                Store::Slots {
                    slots: BTreeMap::new(),
                }
            }
            mt::DEVMAP_HASH | mt::HASH_OF_MAPS => {
                if d.key_size == 0 || d.max_entries == 0 {
                    return bad("needs key_size > 0 and max_entries > 0");
                }
                Store::KeyedSlots {
                    slots: BTreeMap::new(),
                }
            }
            mt::QUEUE | mt::STACK => {
                if d.key_size != 0 || d.value_size == 0 || d.max_entries == 0 {
                    return bad(
                        "queue/stack maps need key_size 0, value_size > 0, max_entries > 0",
                    );
                }
                Store::Fifo {
                    items: VecDeque::new(),
                    spare: Vec::new(),
                }
            }
            mt::BLOOM_FILTER => {
                if d.key_size != 0 || d.value_size == 0 || d.max_entries == 0 {
                    return bad("BLOOM_FILTER needs key_size 0, value_size > 0, max_entries > 0");
                }
                Store::Bloom {
                    items: Default::default(),
                }
            }
            mt::RINGBUF | mt::USER_RINGBUF => {
                let n = d.max_entries;
                if d.key_size != 0 || d.value_size != 0 || !n.is_power_of_two() || n & 4095 != 0 {
                    return bad("RINGBUF needs key_size 0, value_size 0 and max_entries a power-of-2 multiple of the page size");
                }
                Store::Ringbuf { used: 0 }
            }
            t => {
                let name = mt::name(t).unwrap_or("unknown map type");
                return Err(m.err(
                    EOPNOTSUPP,
                    format!("map type {t} ({name}) is not supported by the interpreter"),
                ));
            }
        };
        Ok(m)
    }

    fn check_key<'k>(&self, key: &'k [u8]) -> Result<&'k [u8], Failure> {
        if key.len() != self.def.key_size as usize {
            return Err(Failure::new(
                EINVAL,
                format!(
                    "key is {} bytes, key_size is {}",
                    key.len(),
                    self.def.key_size
                ),
            ));
        }
        Ok(key)
    }

    fn index_of(key: &[u8]) -> u32 {
        u32::from_le_bytes(key[..4].try_into().expect("4-byte key"))
    }

    /// LPM key normalisation: (prefixlen, data with bits past prefixlen cleared).
    fn lpm_norm(&self, key: &[u8]) -> Result<(u32, Vec<u8>), Failure> {
        let plen = Self::index_of(key);
        let data = &key[4..];
        if plen as usize > data.len() * 8 {
            return Err(Failure::new(
                EINVAL,
                format!("prefixlen {plen} exceeds {} bits", data.len() * 8),
            ));
        }
        let mut d = data.to_vec();
        for (i, b) in d.iter_mut().enumerate() {
            let bits = (plen as i64 - (i as i64) * 8).clamp(0, 8);
            *b &= if bits == 8 { 0xff } else { !(0xffu8 >> bits) };
        }
        Ok((plen, d))
    }

    fn lpm_match(&self, key: &[u8]) -> Option<&(Vec<u8>, Buf)> {
        let Store::Lpm { elems } = &self.store else {
            return None;
        };
        let want = Self::index_of(key).min((key.len() as u32 - 4) * 8);
        let data = &key[4..];
        // Longest prefix first (the tree is ordered by prefix length): the first entry that
        // matches is the answer. Two entries of one length cannot both match a key.
        for ((plen, pd), e) in elems.iter().rev() {
            if *plen > want {
                continue;
            }
            let full = (*plen / 8) as usize;
            let rem = plen % 8;
            let ok = data[..full] == pd[..full]
                && (rem == 0 || (data[full] ^ pd[full]) & !(0xffu8 >> rem) == 0);
            if ok {
                return Some(e);
            }
        }
        None
    }

    /// Validates update flags like the kernel's `check_flags` (BPF_F_LOCK allowed).
    fn check_flags(&self, flags: u64) -> Result<u64, Failure> {
        let f = flags & !BPF_F_LOCK;
        if f > BPF_EXIST {
            return Err(Failure::new(EINVAL, ErrMsg::Flags("update", flags)));
        }
        // BPF_F_LOCK needs a `struct bpf_spin_lock` in the value (a BTF fact); the kernel
        // refuses it with EINVAL otherwise.
        if flags & BPF_F_LOCK != 0 && !self.spin_lock {
            return Err(Failure::new(
                EINVAL,
                "BPF_F_LOCK on a map whose value has no bpf_spin_lock",
            ));
        }
        Ok(f)
    }

    /// For a HASH or PERCPU_HASH map, the address a program sees for key `key` on `cpu`
    /// (0 if absent), as [`Map::lookup_addr`]; `None` for other map types, LRU maps
    /// included (nothing done). The JIT's fast path calls this first: it makes no call, so
    /// it stays small.
    #[inline(always)]
    pub fn plain_hash_lookup_addr(&mut self, key: &[u8], cpu: u32) -> Option<u64> {
        let Store::Hash(h) = &mut self.store else {
            return None;
        };
        self.clock += 1;
        if key.len() != self.def.key_size as usize {
            return Some(0);
        }
        Some(h.lookup::<false>(key, cpu, self.clock))
    }

    /// For any hash map (LRU ones included), the address a program sees for key `key` on
    /// `cpu` (0 if absent), as [`Map::lookup_addr`]; `None` for other map types (nothing
    /// done).
    #[inline]
    pub fn hash_lookup_addr(&mut self, key: &[u8], cpu: u32) -> Option<u64> {
        if let Some(a) = self.plain_hash_lookup_addr(key, cpu) {
            return Some(a);
        }
        let Store::LruHash(h) = &mut self.store else {
            return None;
        };
        self.clock += 1;
        if key.len() != self.def.key_size as usize {
            return Some(0);
        }
        Some(h.lookup::<true>(key, cpu, self.clock))
    }

    /// The address a program sees for key `key`, on `cpu`.
    pub fn lookup_addr(&mut self, key: &[u8], cpu: u32) -> Lookup {
        if let Some(a) = self.hash_lookup_addr(key, cpu) {
            return if a == 0 {
                Lookup::Null
            } else {
                Lookup::Value(a)
            };
        }
        self.clock += 1;
        let stride = self.stride();
        let percpu = self.is_percpu();
        match &mut self.store {
            Store::Array { cpus } => {
                let i = Self::index_of(key);
                if i >= self.def.max_entries {
                    return Lookup::Null;
                }
                let b = &cpus[if percpu { cpu as usize } else { 0 }];
                Lookup::Value(b.addr() + i as u64 * stride)
            }
            Store::Hash(_) | Store::LruHash(_) => unreachable!("served by hash_lookup_addr"),
            Store::Lpm { .. } => match self.lpm_match(key) {
                Some((_, b)) => Lookup::Value(b.addr()),
                None => Lookup::Null,
            },
            Store::Slots { slots } => match slots.get(&Self::index_of(key)) {
                Some(b) => Lookup::Value(b.addr()),
                None => Lookup::Null,
            },
            Store::KeyedSlots { slots } => match slots.get(key) {
                Some(b) => Lookup::Value(b.addr()),
                None => Lookup::Null,
            },
            Store::Fifo { .. } | Store::Ringbuf { .. } | Store::Bloom { .. } => Lookup::Null,
        }
    }

    /// Raw slot contents (prog array, map-in-map, devmap...), for helpers.
    pub fn slot(&self, key: &[u8]) -> Option<&[u8]> {
        match &self.store {
            Store::Slots { slots } => slots.get(&Self::index_of(key)).map(|b| b.as_slice()),
            Store::KeyedSlots { slots } => slots.get(key).map(|b| b.as_slice()),
            _ => None,
        }
    }

    /// `bpf_map_update_elem`. `from_prog`: the value is one CPU's (for `cpu`), otherwise
    /// per-CPU maps take `ncpus` values each rounded up to 8 bytes. `graveyard` receives
    /// replaced value buffers (they stay valid until the end of the run).
    pub(crate) fn try_update(
        &mut self,
        key: &[u8],
        value: &[u8],
        flags: u64,
        from_prog: Option<u32>,
        regions: &mut Regions,
        graveyard: &mut Vec<Buf>,
    ) -> Result<(), Failure> {
        self.clock += 1;
        let key = self.check_key(key)?;
        let vs = self.def.value_size as usize;
        let stride = self.stride() as usize;
        let percpu = self.is_percpu();
        let want = if percpu && from_prog.is_none() {
            stride * self.ncpus as usize
        } else {
            vs
        };
        let fifo = matches!(self.store, Store::Fifo { .. } | Store::Bloom { .. });
        if !fifo
            && !matches!(self.store, Store::Slots { .. } | Store::KeyedSlots { .. })
            && value.len() != want
        {
            return Err(Failure::new(
                EINVAL,
                format!("value is {} bytes, expected {want}", value.len()),
            ));
        }
        let max = self.def.max_entries as usize;
        let lru = self.is_lru();
        let clock = self.clock;
        match self.def.map_type {
            mt::ARRAY | mt::PERCPU_ARRAY => {
                // `array_map_update_elem` checks in this order: unknown flags, index,
                // BPF_NOEXIST, and only then BPF_F_LOCK without a spin lock.
                let f = flags & !BPF_F_LOCK;
                if f > BPF_EXIST {
                    return Err(Failure::new(EINVAL, ErrMsg::Flags("update", flags)));
                }
                let i = Self::index_of(key);
                if i >= self.def.max_entries {
                    return Err(Failure::new(
                        E2BIG,
                        ErrMsg::Index(i, Some(self.def.max_entries)),
                    ));
                }
                if f == BPF_NOEXIST {
                    return Err(Failure::new(
                        EEXIST,
                        "BPF_NOEXIST: array elements always exist",
                    ));
                }
                self.check_flags(flags)?;
                let Store::Array { cpus } = &mut self.store else {
                    unreachable!()
                };
                let off = i as usize * stride;
                match (percpu, from_prog) {
                    (true, Some(cpu)) => {
                        cpus[cpu as usize].as_mut_slice()[off..off + vs].copy_from_slice(value)
                    }
                    (true, None) => {
                        for (c, b) in cpus.iter_mut().enumerate() {
                            b.as_mut_slice()[off..off + vs]
                                .copy_from_slice(&value[c * stride..c * stride + vs]);
                        }
                    }
                    (false, _) => cpus[0].as_mut_slice()[off..off + vs].copy_from_slice(value),
                }
                Ok(())
            }
            mt::HASH | mt::PERCPU_HASH | mt::LRU_HASH | mt::LRU_PERCPU_HASH => {
                let f = self.check_flags(flags)?;
                let ncpus = self.ncpus as usize;
                let buf_len = self.value_buf_len();
                let (Store::Hash(elems) | Store::LruHash(elems)) = &mut self.store else {
                    unreachable!()
                };
                let exists = elems.contains(key);
                if exists && f == BPF_NOEXIST {
                    return Err(Failure {
                        errno: EEXIST,
                        msg: "BPF_NOEXIST: key exists".into(),
                    });
                }
                if !exists && f == BPF_EXIST {
                    return Err(Failure {
                        errno: ENOENT,
                        msg: "BPF_EXIST: key does not exist".into(),
                    });
                }
                if !exists && elems.len() >= max {
                    if lru {
                        if let Some(e) = elems.evict_lru() {
                            graveyard.push(e.value);
                        }
                    } else {
                        return Err(Failure {
                            errno: E2BIG,
                            msg: ErrMsg::Full("map is full", max),
                        });
                    }
                }
                // Per-CPU update from a program on an existing element only touches this CPU.
                if let (true, Some(cpu), true) = (percpu, from_prog, exists) {
                    let (_, idx) = elems.find(key).expect("the element exists");
                    let off = cpu as usize * stride;
                    elems.elems[idx].value.as_mut_slice()[off..off + vs].copy_from_slice(value);
                    elems.stamp(idx, clock);
                    return Ok(());
                }
                // The kernel allocates a new element and frees the old one after a grace
                // period; the buffer comes from the free list when there is one (zeroed,
                // as a new one).
                let mut nb = match self.free.pop() {
                    Some(mut b) => {
                        b.as_mut_slice().fill(0);
                        b
                    }
                    None => Buf::new(buf_len),
                };
                match (percpu, from_prog) {
                    (true, Some(cpu)) => {
                        let off = cpu as usize * stride;
                        nb.as_mut_slice()[off..off + vs].copy_from_slice(value);
                    }
                    (true, None) => {
                        for c in 0..ncpus {
                            nb.as_mut_slice()[c * stride..c * stride + vs]
                                .copy_from_slice(&value[c * stride..c * stride + vs]);
                        }
                    }
                    (false, _) => nb.as_mut_slice().copy_from_slice(value),
                }
                let region = self.value_region(&nb);
                let (Store::Hash(elems) | Store::LruHash(elems)) = &mut self.store else {
                    unreachable!()
                };
                match elems.find(key) {
                    // Same key, new buffer: the old one stays readable until the run ends.
                    Some((_, idx)) => {
                        graveyard.push(std::mem::replace(&mut elems.elems[idx].value, nb));
                        elems.stamp(idx, clock);
                    }
                    None => elems.insert_new(key, nb, clock),
                }
                regions.insert(region);
                Ok(())
            }
            mt::LPM_TRIE => {
                let f = self.check_flags(flags)?;
                let norm = self.lpm_norm(key)?;
                let Store::Lpm { elems } = &mut self.store else {
                    unreachable!()
                };
                let exists = elems.contains_key(&norm);
                if exists && f == BPF_NOEXIST {
                    return Err(Failure {
                        errno: EEXIST,
                        msg: "BPF_NOEXIST: prefix exists".into(),
                    });
                }
                if !exists && f == BPF_EXIST {
                    return Err(Failure {
                        errno: ENOENT,
                        msg: "BPF_EXIST: prefix does not exist".into(),
                    });
                }
                if !exists && elems.len() >= max {
                    return Err(Failure {
                        errno: ENOSPC,
                        msg: ErrMsg::Full("trie is full", max),
                    });
                }
                let nb = Buf::from_slice(value);
                let region = Region::new(
                    nb.addr(),
                    vs as u64,
                    RegionKind::MapValue(self.index as u32),
                    true,
                );
                regions.insert(region);
                let Store::Lpm { elems } = &mut self.store else {
                    unreachable!()
                };
                let stored_key = elems
                    .get(&norm)
                    .map(|(k, _)| k.clone())
                    .unwrap_or_else(|| key.to_vec());
                if let Some((_, old)) = elems.insert(norm, (stored_key, nb)) {
                    graveyard.push(old);
                }
                Ok(())
            }
            mt::PROG_ARRAY
            | mt::ARRAY_OF_MAPS
            | mt::DEVMAP
            | mt::CPUMAP
            | mt::XSKMAP
            | mt::PERF_EVENT_ARRAY => {
                if from_prog.is_some() {
                    return Err(Failure::new(EINVAL, "programs cannot update this map type"));
                }
                let f = self.check_flags(flags)?;
                let i = Self::index_of(key);
                if i >= self.def.max_entries {
                    return Err(Failure::new(
                        E2BIG,
                        ErrMsg::Index(i, Some(self.def.max_entries)),
                    ));
                }
                if f == BPF_NOEXIST {
                    return Err(Failure::new(
                        EEXIST,
                        "BPF_NOEXIST: array elements always exist",
                    ));
                }
                self.check_slot_value(value)?;
                let ro = self.read_only_prog();
                let nb = Buf::from_slice(value);
                regions.insert(Region::new(
                    nb.addr(),
                    value.len() as u64,
                    RegionKind::MapValue(self.index as u32),
                    !ro,
                ));
                let Store::Slots { slots } = &mut self.store else {
                    unreachable!()
                };
                if let Some(old) = slots.insert(i, nb) {
                    graveyard.push(old);
                }
                Ok(())
            }
            mt::DEVMAP_HASH | mt::HASH_OF_MAPS => {
                if from_prog.is_some() {
                    return Err(Failure::new(EINVAL, "programs cannot update this map type"));
                }
                let f = self.check_flags(flags)?;
                self.check_slot_value(value)?;
                let Store::KeyedSlots { slots } = &mut self.store else {
                    unreachable!()
                };
                let exists = slots.contains_key(key);
                if exists && f == BPF_NOEXIST {
                    return Err(Failure {
                        errno: EEXIST,
                        msg: "BPF_NOEXIST: key exists".into(),
                    });
                }
                if !exists && f == BPF_EXIST {
                    return Err(Failure {
                        errno: ENOENT,
                        msg: "BPF_EXIST: key does not exist".into(),
                    });
                }
                if !exists && slots.len() >= max {
                    return Err(Failure {
                        errno: E2BIG,
                        msg: ErrMsg::Full("map is full", max),
                    });
                }
                let nb = Buf::from_slice(value);
                regions.insert(Region::new(
                    nb.addr(),
                    value.len() as u64,
                    RegionKind::MapValue(self.index as u32),
                    false,
                ));
                let Store::KeyedSlots { slots } = &mut self.store else {
                    unreachable!()
                };
                if let Some(old) = slots.insert(key.to_vec(), nb) {
                    graveyard.push(old);
                }
                Ok(())
            }
            mt::QUEUE | mt::STACK | mt::BLOOM_FILTER => self.try_push(value, flags),
            _ => Err(Failure::new(
                EINVAL,
                "this map type has no update operation",
            )),
        }
    }

    fn check_slot_value(&self, value: &[u8]) -> Result<(), Failure> {
        let ok = match self.def.map_type {
            // bpf_devmap_val: ifindex, or ifindex + program fd.
            mt::DEVMAP | mt::DEVMAP_HASH => value.len() == 4 || value.len() == 8,
            // bpf_cpumap_val: qsize, or qsize + program fd.
            mt::CPUMAP => value.len() == 4 || value.len() == 8,
            _ => value.len() == 4,
        };
        if !ok {
            return Err(Failure::new(
                EINVAL,
                format!("value is {} bytes, expected 4", value.len()),
            ));
        }
        if self.def.map_type == mt::CPUMAP {
            let qsize = u32::from_le_bytes(value[..4].try_into().expect("4 bytes"));
            if qsize > 16384 {
                return Err(Failure::new(
                    EOVERFLOW,
                    format!("cpumap qsize {qsize} > 16384"),
                ));
            }
        }
        Ok(())
    }

    /// `bpf_map_delete_elem`.
    pub(crate) fn try_delete(
        &mut self,
        key: &[u8],
        graveyard: &mut Vec<Buf>,
    ) -> Result<(), Failure> {
        let key = self.check_key(key)?;
        let max_entries = self.def.max_entries;
        // `what` is one of a few fixed words: the message is built without allocating.
        let noent = |what: &'static str| {
            Err(Failure {
                errno: ENOENT,
                msg: match what {
                    "key" => "key does not exist".into(),
                    "slot" => "slot does not exist".into(),
                    w => format!("{w} does not exist").into(),
                },
            })
        };
        match &mut self.store {
            Store::Array { .. } => Err(Failure::new(EINVAL, "array elements cannot be deleted")),
            Store::Hash(elems) | Store::LruHash(elems) => match elems.remove(key) {
                Some(e) => {
                    graveyard.push(e.value);
                    Ok(())
                }
                None => noent("key"),
            },
            Store::Lpm { .. } => {
                let norm = self.lpm_norm(key)?;
                let Store::Lpm { elems } = &mut self.store else {
                    unreachable!()
                };
                match elems.remove(&norm) {
                    Some((_, b)) => {
                        graveyard.push(b);
                        Ok(())
                    }
                    None => Err(Failure {
                        errno: ENOENT,
                        msg: "prefix does not exist".into(),
                    }),
                }
            }
            Store::Slots { slots } => {
                let i = Self::index_of(key);
                if i >= max_entries {
                    return Err(Failure {
                        errno: E2BIG,
                        msg: ErrMsg::Index(i, None),
                    });
                }
                match slots.remove(&i) {
                    Some(b) => {
                        graveyard.push(b);
                        Ok(())
                    }
                    // DEVMAP/CPUMAP/XSKMAP delete of an empty slot succeeds; PROG_ARRAY and
                    // map-in-map return -ENOENT, like fd_array_map_delete_elem.
                    None if matches!(self.def.map_type, mt::DEVMAP | mt::CPUMAP | mt::XSKMAP) => {
                        Ok(())
                    }
                    None => noent("slot"),
                }
            }
            Store::KeyedSlots { slots } => match slots.remove(key) {
                Some(b) => {
                    graveyard.push(b);
                    Ok(())
                }
                None => noent("key"),
            },
            Store::Fifo { .. } | Store::Ringbuf { .. } | Store::Bloom { .. } => Err(Failure::new(
                EINVAL,
                "this map type has no delete operation",
            )),
        }
    }

    /// `bpf_map_push_elem`.
    pub(crate) fn try_push(&mut self, value: &[u8], flags: u64) -> Result<(), Failure> {
        let vs = self.def.value_size as usize;
        let max = self.def.max_entries as usize;
        if value.len() != vs {
            return Err(Failure::new(
                EINVAL,
                format!("value is {} bytes, expected {vs}", value.len()),
            ));
        }
        if flags & !BPF_EXIST != 0 {
            return Err(Failure::new(EINVAL, ErrMsg::Flags("push", flags)));
        }
        if let Store::Bloom { items } = &mut self.store {
            if flags != BPF_ANY {
                return Err(Failure {
                    errno: EINVAL,
                    msg: ErrMsg::Flags("bloom filter", flags),
                });
            }
            items.insert(value.to_vec());
            return Ok(());
        }
        let Store::Fifo { items, spare } = &mut self.store else {
            return Err(Failure::new(EINVAL, "not a queue or stack"));
        };
        if items.len() >= max {
            if flags & BPF_EXIST == 0 {
                return Err(Failure {
                    errno: E2BIG,
                    msg: ErrMsg::Full("full", max),
                });
            }
            // BPF_EXIST overwrites the oldest element (queue and stack alike).
            if let Some(old) = items.pop_front() {
                spare.push(old);
            }
        }
        let mut b = spare.pop().unwrap_or_default();
        b.clear();
        b.extend_from_slice(value);
        items.push_back(b);
        Ok(())
    }

    /// `bpf_map_pop_elem` (`delete`) / `bpf_map_peek_elem`: the value, copied.
    pub fn pop(&mut self, delete: bool) -> Result<Vec<u8>, MapError> {
        self.pop_with(delete, |v| v.to_vec())
    }

    /// `bpf_map_pop_elem` (`delete`) / `bpf_map_peek_elem`: calls `f` with the value in
    /// place (a popped element's buffer goes to the spare list, nothing is allocated).
    pub fn pop_with<R>(&mut self, delete: bool, f: impl FnOnce(&[u8]) -> R) -> Result<R, MapError> {
        self.try_pop_with(delete, f)
            .map_err(|e| e.named(&self.name))
    }

    /// `BPF_MAP_UPDATE_ELEM` / `bpf_map_update_elem`.
    pub fn update(
        &mut self,
        key: &[u8],
        value: &[u8],
        flags: u64,
        from_prog: Option<u32>,
        regions: &mut Regions,
        graveyard: &mut Vec<Buf>,
    ) -> Result<(), MapError> {
        self.try_update(key, value, flags, from_prog, regions, graveyard)
            .map_err(|e| e.named(&self.name))
    }

    /// `BPF_MAP_DELETE_ELEM` / `bpf_map_delete_elem`.
    pub fn delete(&mut self, key: &[u8], graveyard: &mut Vec<Buf>) -> Result<(), MapError> {
        self.try_delete(key, graveyard)
            .map_err(|e| e.named(&self.name))
    }

    /// `bpf_map_push_elem`.
    pub fn push(&mut self, value: &[u8], flags: u64) -> Result<(), MapError> {
        self.try_push(value, flags).map_err(|e| e.named(&self.name))
    }

    /// [`Map::pop_with`] with the error unnamed (helpers only need its errno).
    pub(crate) fn try_pop_with<R>(
        &mut self,
        delete: bool,
        f: impl FnOnce(&[u8]) -> R,
    ) -> Result<R, Failure> {
        let is_stack = self.def.map_type == mt::STACK;
        let Store::Fifo { items, spare } = &mut self.store else {
            return Err(Failure::new(EINVAL, "not a queue or stack"));
        };
        let r = match (is_stack, delete) {
            (true, true) => items.pop_back().map(|v| {
                let r = f(&v);
                spare.push(v);
                r
            }),
            (false, true) => items.pop_front().map(|v| {
                let r = f(&v);
                spare.push(v);
                r
            }),
            (true, false) => items.back().map(|v| f(v)),
            (false, false) => items.front().map(|v| f(v)),
        };
        r.ok_or_else(|| Failure {
            errno: ENOENT,
            msg: "empty".into(),
        })
    }

    /// Ring buffer space accounting: reserves `len` bytes (plus the 8-byte header, rounded up
    /// to 8) if they fit.
    pub fn ringbuf_reserve(&mut self, len: u64) -> bool {
        let cap = self.def.max_entries as u64;
        let Store::Ringbuf { used } = &mut self.store else {
            return false;
        };
        // __bpf_ringbuf_reserve fails when the producer would get more than `mask`
        // (size - 1) bytes ahead of the consumer: a record never fills the whole ring.
        let need = (len + 8 + 7) & !7;
        if *used + need > cap - 1 {
            return false;
        }
        *used += need;
        true
    }

    /// Ring buffer bytes in use (records not yet read by the caller).
    pub fn ringbuf_used(&self) -> u64 {
        match &self.store {
            Store::Ringbuf { used } => *used,
            _ => 0,
        }
    }

    /// The caller read every record: the ring is empty again.
    pub fn ringbuf_drain(&mut self) {
        if let Store::Ringbuf { used } = &mut self.store {
            *used = 0;
        }
    }

    /// All entries as the syscall returns them (per-CPU values concatenated, each rounded up
    /// to 8 bytes), sorted by key.
    pub fn entries(&self) -> Vec<(Vec<u8>, Vec<u8>)> {
        let vs = self.def.value_size as usize;
        let stride = self.stride() as usize;
        match &self.store {
            Store::Array { cpus } => (0..self.def.max_entries)
                .map(|i| {
                    let off = i as usize * stride;
                    let v = if self.is_percpu() {
                        let mut v = vec![0u8; stride * cpus.len()];
                        for (c, b) in cpus.iter().enumerate() {
                            v[c * stride..c * stride + vs]
                                .copy_from_slice(&b.as_slice()[off..off + vs]);
                        }
                        v
                    } else {
                        cpus[0].as_slice()[off..off + vs].to_vec()
                    };
                    (i.to_le_bytes().to_vec(), v)
                })
                .collect(),
            Store::Hash(elems) | Store::LruHash(elems) => elems
                .sorted()
                .into_iter()
                .map(|e| (e.key.to_vec(), e.value.as_slice().to_vec()))
                .collect(),
            Store::Lpm { elems } => {
                let mut v: Vec<_> = elems
                    .values()
                    .map(|(k, b)| (k.clone(), b.as_slice().to_vec()))
                    .collect();
                v.sort();
                v
            }
            Store::Slots { slots } => slots
                .iter()
                .map(|(i, b)| (i.to_le_bytes().to_vec(), b.as_slice().to_vec()))
                .collect(),
            Store::KeyedSlots { slots } => slots
                .iter()
                .map(|(k, b)| (k.clone(), b.as_slice().to_vec()))
                .collect(),
            Store::Fifo { items, .. } => {
                let mut v: Vec<_> = items.iter().map(|i| (Vec::new(), i.clone())).collect();
                if self.def.map_type == mt::STACK {
                    v.reverse();
                }
                v
            }
            Store::Ringbuf { .. } | Store::Bloom { .. } => Vec::new(),
        }
    }

    /// `bpf_map_peek_elem` on a bloom filter: is `value` in the set.
    pub fn bloom_contains(&self, value: &[u8]) -> Option<bool> {
        match &self.store {
            Store::Bloom { items } => Some(items.contains(value)),
            _ => None,
        }
    }

    /// Iteration order for `bpf_for_each_map_elem`: (key bytes, value address for `cpu`).
    pub fn iter_addrs(&self, cpu: u32) -> Vec<(Vec<u8>, u64)> {
        let stride = self.stride();
        match &self.store {
            Store::Array { cpus } => {
                let b = &cpus[if self.is_percpu() { cpu as usize } else { 0 }];
                (0..self.def.max_entries)
                    .map(|i| (i.to_le_bytes().to_vec(), b.addr() + i as u64 * stride))
                    .collect()
            }
            Store::Hash(elems) | Store::LruHash(elems) => elems
                .sorted()
                .into_iter()
                .map(|e| {
                    (
                        e.key.to_vec(),
                        e.value.addr() + cpu as u64 * elems.cpu_stride,
                    )
                })
                .collect(),
            _ => Vec::new(),
        }
    }

    /// `BPF_MAP_LOOKUP_ELEM` from user space: the value as [`Map::entries`] lists it (no
    /// LRU refresh). Hash maps answer from their index, other types from `entries()`.
    pub fn user_lookup(&self, key: &[u8]) -> Option<Vec<u8>> {
        match &self.store {
            Store::Hash(h) | Store::LruHash(h) => {
                if key.len() != self.def.key_size as usize {
                    return None;
                }
                let (_, idx) = h.find(key)?;
                Some(h.elems[idx].value.as_slice().to_vec())
            }
            _ => self
                .entries()
                .into_iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v),
        }
    }

    /// The key of the element whose value (CPU 0's for per-CPU maps) is at `addr`, as
    /// `iter_addrs(0)` would find it, without sorting hash maps' keys (timer callbacks).
    pub fn key_of_value(&self, addr: u64) -> Option<Vec<u8>> {
        match &self.store {
            Store::Hash(h) | Store::LruHash(h) => h
                .elems
                .iter()
                .find(|e| e.value.addr() == addr)
                .map(|e| e.key.to_vec()),
            _ => self
                .iter_addrs(0)
                .into_iter()
                .find(|(_, v)| *v == addr)
                .map(|(k, _)| k),
        }
    }

    /// Address of element 0's value (global data, `BPF_PSEUDO_MAP_VALUE`).
    pub fn direct_value_addr(&self) -> Option<u64> {
        match &self.store {
            Store::Array { cpus } if !self.is_percpu() => Some(cpus[0].addr()),
            _ => None,
        }
    }
}

/// Every map of a loaded object.
#[derive(Debug, Default)]
pub struct MapSet {
    pub maps: Vec<Map>,
    /// Value buffers removed during the run, kept alive (and accessible) until it ends.
    pub graveyard: Vec<Buf>,
}

impl MapSet {
    /// Creates the maps of an object and fills in their initial contents. `programs` maps a
    /// program name to its index (for PROG_ARRAY `.values`).
    pub fn new(
        defs: &[MapDef],
        ncpus: u32,
        programs: &dyn Fn(&str) -> Option<usize>,
        regions: &mut Regions,
    ) -> Result<MapSet, MapError> {
        let mut set = MapSet::default();
        for (i, d) in defs.iter().enumerate() {
            let mut d = d.clone();
            if d.map_type == mt::PERF_EVENT_ARRAY && d.max_entries == 0 {
                // libbpf sizes perf event arrays to the number of possible CPUs.
                d.max_entries = ncpus;
            }
            if matches!(d.map_type, mt::RINGBUF | mt::USER_RINGBUF)
                && d.max_entries != 0
                && d.max_entries % 4096 != 0
            {
                // libbpf rounds ring buffer sizes up to a page multiple (power of two).
                d.max_entries = d.max_entries.next_power_of_two().max(4096);
            }
            set.maps.push(Map::new(d, i, ncpus, regions)?);
        }
        for i in 0..set.maps.len() {
            let init = set.maps[i].def.init.clone();
            let name = set.maps[i].name.clone();
            match init {
                MapInit::None => {}
                MapInit::Data(bytes) => {
                    let m = &mut set.maps[i];
                    let Store::Array { cpus } = &mut m.store else {
                        return Err(MapError {
                            map: name,
                            errno: EINVAL,
                            msg: "initial data for a non-array map".into(),
                        });
                    };
                    let n = bytes.len().min(cpus[0].len());
                    cpus[0].as_mut_slice()[..n].copy_from_slice(&bytes[..n]);
                }
                MapInit::Programs(list) => {
                    for (slot, prog) in list {
                        let p = programs(&prog).ok_or_else(|| MapError {
                            map: name.clone(),
                            errno: ENOENT,
                            msg: format!("slot {slot}: no program named {prog:?}").into(),
                        })?;
                        let mut g = Vec::new();
                        set.maps[i].update(
                            &slot.to_le_bytes(),
                            &(p as u32).to_le_bytes(),
                            BPF_ANY,
                            None,
                            regions,
                            &mut g,
                        )?;
                    }
                }
                MapInit::Maps(list) => {
                    for (slot, inner) in list {
                        let j =
                            defs.iter()
                                .position(|d| d.name == inner)
                                .ok_or_else(|| MapError {
                                    map: name.clone(),
                                    errno: ENOENT,
                                    msg: format!("slot {slot}: no map named {inner:?}").into(),
                                })?;
                        if let Some(t) = &set.maps[i].def.inner {
                            if let Some(why) = inner_map_mismatch(t, &set.maps[j].def) {
                                return Err(MapError {
                                    map: name.clone(),
                                    errno: EINVAL,
                                    msg: format!("slot {slot}: map {inner:?}: {why}").into(),
                                });
                            }
                        }
                        let mut g = Vec::new();
                        let key = slot.to_le_bytes();
                        let ks = set.maps[i].def.key_size as usize;
                        let mut k = vec![0u8; ks];
                        k[..ks.min(4)].copy_from_slice(&key[..ks.min(4)]);
                        set.maps[i].update(
                            &k,
                            &(j as u32).to_le_bytes(),
                            BPF_ANY,
                            None,
                            regions,
                            &mut g,
                        )?;
                    }
                }
            }
        }
        Ok(set)
    }

    /// Ends a run: values removed during it become unreachable. Inline, so that the
    /// common case (no map value removed) costs a compare per run.
    #[inline]
    pub fn end_run(&mut self, regions: &mut Regions) {
        if !self.graveyard.is_empty() {
            self.bury(regions);
        }
    }

    #[cold]
    #[inline(never)]
    fn bury(&mut self, regions: &mut Regions) {
        for b in self.graveyard.drain(..) {
            let Some(r) = regions.remove(b.addr()) else {
                continue;
            };
            // A hash map's value buffer goes to that map's free list (at most
            // max_entries of them); anything else is freed.
            if let RegionKind::MapValue(m) = r.kind {
                if let Some(map) = self.maps.get_mut(m as usize) {
                    if map.keeps_free(&b) {
                        map.free.push(b);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ErrMsg;

    /// The lazily formatted sentences read as the `format!` calls they replaced.
    #[test]
    fn error_sentences() {
        let cases = [
            (ErrMsg::Flags("update", 4), "invalid update flags 0x4"),
            (ErrMsg::Flags("push", 0x10), "invalid push flags 0x10"),
            (
                ErrMsg::Flags("bloom filter", 2),
                "invalid bloom filter flags 0x2",
            ),
            (ErrMsg::Index(5, Some(4)), "index 5 >= max_entries 4"),
            (ErrMsg::Index(7, None), "index 7 >= max_entries"),
            (ErrMsg::Full("map is full", 4), "map is full (4 entries)"),
            (ErrMsg::Full("trie is full", 9), "trie is full (9 entries)"),
            (ErrMsg::Full("full", 2), "full (2 entries)"),
            (ErrMsg::from("empty"), "empty"),
            (ErrMsg::from(format!("x {}", 1)), "x 1"),
        ];
        for (m, want) in cases {
            assert_eq!(m.to_string(), want);
        }
    }

    use super::*;
    use proptest::prelude::*;

    impl HashElems {
        /// The index's invariants: every element in exactly one slot, every occupied slot
        /// reachable from its home slot without crossing an empty one, at most half full.
        fn check(&self) {
            assert_eq!(self.slots.len(), self.mask + 1);
            assert!(self.slots.len().is_power_of_two());
            assert!(self.elems.len() * 2 <= self.slots.len());
            let mut seen = vec![false; self.elems.len()];
            for (i, s) in self.slots.iter().enumerate() {
                if s.idx == EMPTY {
                    continue;
                }
                let e = &self.elems[s.idx as usize];
                assert!(!seen[s.idx as usize], "element {} in two slots", s.idx);
                seen[s.idx as usize] = true;
                assert_eq!(s.head, key_head(&e.key));
                assert_eq!(s.hash, e.hash as u32);
                assert_eq!(e.hash, self.hash(&e.key, s.head));
                let mut j = e.hash as usize & self.mask;
                while j != i {
                    assert_ne!(self.slots[j].idx, EMPTY, "slot {i} cut off from its home");
                    j = (j + 1) & self.mask;
                }
                assert_eq!(self.find(&e.key), Some((i, s.idx as usize)));
            }
            assert!(seen.iter().all(|&s| s), "an element without a slot");
            // The LRU list: every element once, in increasing stamp order.
            if !self.lru {
                assert_eq!((self.lru_head, self.lru_tail), (NIL, NIL));
                assert!(self.elems.iter().all(|e| e.prev == NIL && e.next == NIL));
                return;
            }
            let mut order = Vec::new();
            let (mut i, mut prev) = (self.lru_head, NIL);
            while i != NIL {
                assert!(order.len() < self.elems.len(), "the LRU list has a cycle");
                let e = &self.elems[i as usize];
                assert_eq!(e.prev, prev);
                order.push(e.used);
                prev = i;
                i = e.next;
            }
            assert_eq!(self.lru_tail, prev);
            assert_eq!(order.len(), self.elems.len());
            assert!(
                order.windows(2).all(|w| w[0] < w[1]),
                "LRU list out of order"
            );
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 400, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn index_invariants_hold(
            lru in any::<bool>(),
            ks in prop_oneof![Just(1usize), Just(2), Just(3), Just(4), Just(6), Just(8), Just(9), Just(20)],
            ops in proptest::collection::vec((any::<bool>(), 0u16..40), 1..200),
        ) {
            let mut h = HashElems::new(0, lru, 0);
            let mut model = std::collections::BTreeSet::new();
            let mut clock = 0;
            for (insert, k) in ops {
                let mut key = vec![0u8; ks];
                let kb = k.to_le_bytes();
                key[0] = kb[0];
                key[ks - 1] ^= kb[1] | (kb[0] >> 3) << 2;
                clock += 1;
                if insert {
                    // A present key gets a new stamp (a lookup or an update).
                    if let Some((_, idx)) = h.find(&key) {
                        prop_assert!(model.contains(&key));
                        h.stamp(idx, clock);
                    } else {
                        prop_assert!(model.insert(key.clone()));
                        h.insert_new(&key, Buf::new(8), clock);
                    }
                } else if lru && k % 5 == 0 {
                    // An eviction takes the element with the smallest stamp.
                    let oldest = h.elems.iter().min_by_key(|e| e.used).map(|e| e.key.clone());
                    let evicted = h.evict_lru().map(|e| e.key);
                    prop_assert_eq!(&evicted, &oldest);
                    if let Some(k) = evicted {
                        model.remove(&k[..]);
                    }
                } else {
                    prop_assert_eq!(h.remove(&key).is_some(), model.remove(&key));
                }
                h.check();
                let keys: Vec<&[u8]> = h.sorted().into_iter().map(|e| &e.key[..]).collect();
                let want: Vec<&[u8]> = model.iter().map(|k| &k[..]).collect();
                prop_assert_eq!(keys, want);
            }
        }
    }

    /// Four keys with the same home slot in the smallest index (the last slot, so the run
    /// wraps around), then every deletion order: backward shifts across the wrap and
    /// elements moving in `elems`.
    #[test]
    fn colliding_keys_wrap_around() {
        let h0 = HashElems::new(0, false, 0);
        let last = HashElems::MIN_SLOTS - 1;
        let keys: Vec<[u8; 4]> = (0u32..)
            .map(u32::to_le_bytes)
            .filter(|k| h0.hash(k, key_head(k)) as usize & h0.mask == last)
            .take(4)
            .collect();
        let orders: Vec<[usize; 4]> = (0..256usize)
            .map(|n| [n & 3, n >> 2 & 3, n >> 4 & 3, n >> 6])
            .filter(|o| (0..4).all(|i| o.contains(&i)))
            .collect();
        assert_eq!(orders.len(), 24);
        for order in orders {
            let mut h = HashElems::new(0, true, 0);
            h.seed = h0.seed;
            for (used, k) in (1..).zip(&keys) {
                h.insert_new(k, Buf::new(8), used);
            }
            assert_eq!(h.slots.len(), HashElems::MIN_SLOTS, "no growth yet");
            h.check();
            for (n, &i) in order.iter().enumerate() {
                assert!(h.remove(&keys[i]).is_some());
                h.check();
                for (j, k) in keys.iter().enumerate() {
                    assert_eq!(h.contains(k), !order[..=n].contains(&j));
                }
            }
        }
    }

    #[test]
    fn key_head_is_injective_per_length() {
        for n in 1..=8usize {
            let mut seen = std::collections::HashMap::new();
            // Every key of up to two distinct non-zero bytes at any two positions.
            for i in 0..n {
                for j in 0..n {
                    for (a, b) in [(1u8, 2u8), (0x80, 1), (0xff, 0xfe)] {
                        let mut k = vec![0u8; n];
                        k[i] = a;
                        k[j] = b;
                        if let Some(prev) = seen.insert(key_head(&k), k.clone()) {
                            assert_eq!(prev, k, "two keys of {n} bytes with one head");
                        }
                    }
                }
            }
        }
    }
}
