//! The memory model: host buffers that never move, and the table of regions a program may
//! touch at a given moment.
//!
//! Programs see real host addresses (the packet, stack frames, map values, ring buffer
//! records all live in [`Buf`]s whose address is fixed for their lifetime). Every load and
//! store goes through [`Regions::check`] first, which finds the live region containing the
//! whole access or returns a [`MemFault`] naming the address, size and nearest region.
//! Only after that check does [`Regions::load`]/[`Regions::store`] touch memory. The JIT's
//! checked mode calls the same functions.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::fmt;
use std::ptr::NonNull;

/// A zero-initialised, 8-byte aligned buffer whose address never changes, allocated in the
/// engines' one address range ([`crate::arena`]).
///
/// Unlike `Box<[u8]>`, the bytes are only ever accessed through the raw pointer (slices are
/// created on demand and never kept), so a program writing through a region pointer while
/// the Rust side holds a `&Buf` is not an aliasing violation.
pub struct Buf {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: `Buf` owns its allocation exclusively, like `Box<[u8]>`.
unsafe impl Send for Buf {}
// SAFETY: shared access only hands out `&[u8]` (see `as_slice`), like `Box<[u8]>`.
unsafe impl Sync for Buf {}

impl Buf {
    /// A zeroed buffer of `len` bytes, inside the engines' address range
    /// ([`crate::arena`]).
    pub fn new(len: usize) -> Buf {
        // At least 8 bytes so that a zero-length buffer still has a unique address.
        let n = len.max(8);
        let Some(a) = crate::arena::alloc_zeroed(n) else {
            eprintln!(
                "bpfkit: the engines' memory ({} bytes reserved) cannot hold {n} more bytes",
                crate::arena::reserved()
            );
            std::process::abort();
        };
        // `alloc_zeroed` never returns 0 (the range starts after a guard area).
        let ptr = NonNull::new(a as *mut u8).expect("arena blocks are not null");
        Buf { ptr, len }
    }

    pub fn from_slice(bytes: &[u8]) -> Buf {
        let mut b = Buf::new(bytes.len());
        b.as_mut_slice().copy_from_slice(bytes);
        b
    }

    /// Host address of the first byte.
    pub fn addr(&self) -> u64 {
        self.ptr.as_ptr() as u64
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: `ptr` is a live block of at least `len` initialised bytes owned by
        // `self`; the only other writers are program stores, which cannot run while the
        // caller holds this borrow (the interpreter is single-threaded and does not keep
        // slices across instructions).
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as for `as_slice`, and `&mut self` makes this the only Rust borrow.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for Buf {
    fn drop(&mut self) {
        crate::arena::free(self.addr(), self.len.max(8));
    }
}

impl Clone for Buf {
    fn clone(&self) -> Self {
        Buf::from_slice(self.as_slice())
    }
}

impl fmt::Debug for Buf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Buf({:#x}, {} bytes)", self.addr(), self.len)
    }
}

/// What a region is, for error messages and for the special handling of the context.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegionKind {
    /// The 512-byte stack of call frame `n` (0 = the entry function).
    Stack(u8),
    /// Packet data, `data .. data_end`.
    Packet,
    /// Packet metadata, `data_meta .. data`.
    Meta,
    /// The program context (`struct xdp_md`); loads from it are rewritten.
    Context,
    /// The memory given to a raw-mode run (`r1`).
    Memory,
    /// A value of map `n` (index into the object's map table).
    MapValue(u32),
    /// A reserved ring buffer record of map `n`.
    RingbufRecord(u32),
}

impl fmt::Display for RegionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RegionKind::Stack(n) => write!(f, "stack of frame {n}"),
            RegionKind::Packet => write!(f, "packet"),
            RegionKind::Meta => write!(f, "packet metadata"),
            RegionKind::Context => write!(f, "context"),
            RegionKind::Memory => write!(f, "input memory"),
            RegionKind::MapValue(m) => write!(f, "value of map #{m}"),
            RegionKind::RingbufRecord(m) => write!(f, "ring buffer record of map #{m}"),
        }
    }
}

/// One accessible range of host memory.
///
/// A region may be *strided*: `len` bytes made of elements `stride` bytes apart of which
/// only the first `elem` bytes are accessible, and an access must stay inside one element
/// (array maps: `stride` = value size rounded up to 8, `elem` = value size).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region {
    pub start: u64,
    pub len: u64,
    pub stride: u64,
    pub elem: u64,
    pub kind: RegionKind,
    pub writable: bool,
}

impl Region {
    #[inline]
    pub fn new(start: u64, len: u64, kind: RegionKind, writable: bool) -> Region {
        Region {
            start,
            len,
            stride: len.max(1),
            elem: len,
            kind,
            writable,
        }
    }

    pub fn strided(
        start: u64,
        count: u64,
        stride: u64,
        elem: u64,
        kind: RegionKind,
        writable: bool,
    ) -> Region {
        Region {
            start,
            len: count * stride,
            stride: stride.max(1),
            elem,
            kind,
            writable,
        }
    }

    pub fn end(&self) -> u64 {
        self.start + self.len
    }

    fn contains(&self, addr: u64, size: u64) -> bool {
        if addr < self.start || addr >= self.end() {
            return false;
        }
        let off = addr - self.start;
        let in_elem = off % self.stride;
        in_elem.checked_add(size).is_some_and(|e| e <= self.elem)
    }
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} [{:#x}..{:#x})", self.kind, self.start, self.end())?;
        if self.stride != self.len.max(1) {
            write!(
                f,
                " in elements of {} bytes every {}",
                self.elem, self.stride
            )?;
        }
        Ok(())
    }
}

/// A rejected memory access.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemFault {
    pub addr: u64,
    pub size: u64,
    pub write: bool,
    /// The region the address falls in (access too large or read-only), or the nearest one.
    pub region: Option<Region>,
    /// True when the address is inside `region` (so the problem is size, element bounds or
    /// write permission).
    pub inside: bool,
}

impl fmt::Display for MemFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = if self.write { "write" } else { "read" };
        write!(f, "invalid {}-byte {what} at {:#x}", self.size, self.addr)?;
        match (&self.region, self.inside) {
            (Some(r), true) if self.write && !r.writable => write!(f, ": {r} is read-only"),
            (Some(r), true) => write!(f, ": offset {} crosses the end of {r}", self.addr - r.start),
            (Some(r), false) => {
                let dist = if self.addr < r.start {
                    format!("{} bytes before", r.start - self.addr)
                } else if self.addr == r.end() {
                    "just past the end of".to_string()
                } else {
                    format!("{} bytes past the end of", self.addr - r.end())
                };
                write!(f, ": outside every region ({dist} {r})")
            }
            (None, _) => write!(f, ": outside every region (no region exists)"),
        }
    }
}

/// Number of call-frame stacks kept in fixed slots (`MAX_CALL_FRAMES`).
const STACK_SLOTS: usize = 8;
/// Size of one call frame's stack (`MAX_BPF_STACK`).
const STACK_BYTES: u64 = 512;

/// Fixed slot of the per-run regions other than stacks.
fn fixed_slot(kind: RegionKind) -> Option<usize> {
    match kind {
        RegionKind::Packet => Some(0),
        RegionKind::Meta => Some(1),
        RegionKind::Context => Some(2),
        RegionKind::Memory => Some(3),
        _ => None,
    }
}

/// The live regions.
///
/// The per-run regions (the stacks of frames 0-7, packet, metadata, context, raw-mode
/// memory) live in fixed slots, so setting up and tearing down a run costs no tree
/// operations, and the stacks of the active frames (contiguous in the runtime's stack
/// area) are checked with two comparisons. Everything else (map values, ring buffer
/// records, ...) is kept in a tree keyed by start address, which remembers the region it
/// found last (map values are usually accessed several times in a row; this makes
/// `Regions` not `Sync`). Regions never overlap.
#[derive(Debug, Default, Clone)]
pub struct Regions {
    map: BTreeMap<u64, Region>,
    /// Copy of the tree region found last (`len` 0: none); cleared whenever the tree
    /// changes.
    last: Cell<Region>,
    stacks: [Option<Region>; STACK_SLOTS],
    fixed: [Option<Region>; 4],
    /// Start of frame 0's stack, and the length of the run of present frames 0..n laid
    /// out contiguously from there (`n * 512`, 0 if frame 0 is absent).
    stack_base: u64,
    stack_span: u64,
    /// Regions of a fixed-slot kind that went into the tree (their slot was taken by a
    /// region with another start); normally 0.
    overflow: usize,
    /// Some stack slot holds a region outside the contiguous run `stack_base ..
    /// stack_base + stack_span`.
    stacks_outside: bool,
    /// Per stack slot: the lowest offset written through a checked access since the
    /// frame was last cleared (512: clean), so that `Runtime::enter_frame` clears only
    /// what was written ([`Regions::stack_dirty_from`], [`Regions::insert_cleared_stack`]).
    /// Code that writes a stack frame registered by `enter_frame` without
    /// [`Regions::check`] / [`Regions::check_fast`] must call
    /// [`Regions::mark_stack_dirty`]; stacks registered with [`Regions::insert`] turn the
    /// tracking off (`stacks_unchecked`).
    stack_dirty: [Cell<u16>; STACK_SLOTS],
    /// A stack region was registered with [`Regions::insert`] (by code that may write
    /// stacks without checks, e.g. the JIT's fast mode): from then on every frame counts
    /// as entirely dirty.
    stacks_unchecked: bool,
}

impl Default for Region {
    /// An empty region (contains nothing).
    fn default() -> Region {
        Region::new(0, 0, RegionKind::Memory, false)
    }
}

impl Regions {
    pub fn new() -> Self {
        Self::default()
    }

    fn recompute_stack_span(&mut self) {
        self.update_stack_span();
        let (base, span) = (self.stack_base, self.stack_span);
        self.stacks_outside = self
            .stacks
            .iter()
            .flatten()
            .any(|r| r.start.wrapping_sub(base) >= span);
    }

    fn update_stack_span(&mut self) {
        let mut n = 0u64;
        if let Some(r0) = &self.stacks[0] {
            self.stack_base = r0.start;
            for s in &self.stacks {
                match s {
                    Some(r)
                        if r.start == self.stack_base + n * STACK_BYTES
                            && r.len == STACK_BYTES
                            && r.elem == STACK_BYTES
                            && r.writable =>
                    {
                        n += 1
                    }
                    _ => break,
                }
            }
        }
        self.stack_span = n * STACK_BYTES;
    }

    fn is_fixed_kind(kind: RegionKind) -> bool {
        match kind {
            RegionKind::Stack(d) => (d as usize) < STACK_SLOTS,
            k => fixed_slot(k).is_some(),
        }
    }

    /// Adds a region (replacing one with the same start).
    pub fn insert(&mut self, r: Region) {
        if let RegionKind::Stack(_) = r.kind {
            // Unknown writers may use stacks from now on (see `stack_dirty`).
            self.stacks_unchecked = true;
        }
        self.insert_region(r);
    }

    /// Registers the stack of frame `depth` for `Runtime::enter_frame`, which has just
    /// cleared its dirty part; its writers go through the checks.
    pub fn insert_cleared_stack(&mut self, r: Region, depth: usize) {
        self.insert_region(r);
        if let Some(c) = self.stack_dirty.get(depth) {
            c.set(STACK_BYTES as u16);
        }
    }

    fn insert_region(&mut self, r: Region) {
        let slot = match r.kind {
            RegionKind::Stack(d) if (d as usize) < STACK_SLOTS => &mut self.stacks[d as usize],
            k => match fixed_slot(k) {
                Some(i) => &mut self.fixed[i],
                None => {
                    self.last.set(Region::default());
                    self.map.insert(r.start, r);
                    return;
                }
            },
        };
        match slot {
            Some(old) if old.start != r.start => {
                self.overflow += 1;
                self.last.set(Region::default());
                self.map.insert(r.start, r);
                return;
            }
            _ => *slot = Some(r),
        }
        if let RegionKind::Stack(d) = r.kind {
            // Usually the next frame on top of the contiguous ones.
            let d = d as u64;
            if !self.stacks_outside
                && d * STACK_BYTES == self.stack_span
                && (d == 0 || r.start == self.stack_base + self.stack_span)
                && r.len == STACK_BYTES
                && r.elem == STACK_BYTES
                && r.writable
            {
                self.stack_base = r.start - self.stack_span;
                self.stack_span += STACK_BYTES;
            } else {
                self.recompute_stack_span();
            }
        }
    }

    /// Removes the region starting at `start`.
    pub fn remove(&mut self, start: u64) -> Option<Region> {
        for (d, s) in self.stacks.iter_mut().enumerate() {
            if s.is_some_and(|r| r.start == start) {
                let r = s.take();
                if (d as u64) * STACK_BYTES < self.stack_span {
                    self.recompute_stack_span();
                }
                return r;
            }
        }
        for s in &mut self.fixed {
            if s.is_some_and(|r| r.start == start) {
                return s.take();
            }
        }
        if self.map.is_empty() {
            return None;
        }
        self.last.set(Region::default());
        let r = self.map.remove(&start);
        if let Some(r) = &r {
            if Self::is_fixed_kind(r.kind) {
                self.overflow -= 1;
            }
        }
        r
    }

    /// Removes the stack region of frame `depth` if it starts at `start` (a stack region
    /// of that frame that went to the tree is removed too).
    pub fn remove_stack(&mut self, depth: usize, start: u64) -> Option<Region> {
        if let Some(s) = self.stacks.get_mut(depth) {
            if s.is_some_and(|r| r.start == start) {
                let r = s.take();
                let d = depth as u64;
                if !self.stacks_outside && (d + 1) * STACK_BYTES == self.stack_span {
                    // The top frame of the contiguous ones.
                    self.stack_span -= STACK_BYTES;
                } else if d * STACK_BYTES < self.stack_span || self.stacks_outside {
                    self.recompute_stack_span();
                }
                return r;
            }
        }
        if self.overflow > 0 {
            return self.remove(start);
        }
        None
    }

    /// Sets the packet and metadata regions (`None`: no such region) in place, as
    /// `remove_kind(Packet)`, `remove_kind(Meta)` and `insert` of the new ones would.
    pub fn set_packet(&mut self, packet: Option<Region>, meta: Option<Region>) {
        if self.overflow == 0 {
            self.fixed[0] = packet.filter(|r| r.kind == RegionKind::Packet);
            self.fixed[1] = meta.filter(|r| r.kind == RegionKind::Meta);
            if packet.is_some_and(|r| r.kind == RegionKind::Packet)
                && meta.is_none_or(|r| r.kind == RegionKind::Meta)
            {
                return;
            }
        }
        self.remove_kind(RegionKind::Packet);
        self.remove_kind(RegionKind::Meta);
        for r in [packet, meta].into_iter().flatten() {
            self.insert(r);
        }
    }

    /// Registers the regions of a new XDP run: the `ctx_len`-byte read-only context at
    /// `ctx` and the writable `len`-byte packet at `data` (no metadata yet), as
    /// `insert(ctx)` and `set_packet(Some(packet), None)` would, but written straight into
    /// the fixed slots when they are free (the common case: the previous run's were
    /// removed by [`Regions::clear_xdp_at`]).
    #[inline]
    pub fn set_xdp(&mut self, ctx: u64, ctx_len: u64, data: u64, len: u64) {
        if self.overflow == 0 && self.fixed[2].is_none() {
            // Built in place (`Region::new` is inlined): a region built by an out-of-line
            // call and copied in costs a store-forwarding stall (scalar stores read back
            // as vectors).
            self.fixed[2] = Some(Region::new(ctx, ctx_len, RegionKind::Context, false));
            self.fixed[0] = Some(Region::new(data, len, RegionKind::Packet, true));
            self.fixed[1] = None;
            return;
        }
        self.insert(Region::new(ctx, ctx_len, RegionKind::Context, false));
        self.set_packet(Some(Region::new(data, len, RegionKind::Packet, true)), None);
    }

    /// Starts another XDP run on the regions the previous one left registered (see
    /// `Runtime::end_run`): when the context region at `ctx` is still in its fixed slot,
    /// sets the packet region to the `len` bytes at `data` and removes the metadata
    /// region, and returns true. Otherwise changes nothing and returns false.
    #[inline]
    pub fn reuse_xdp(&mut self, ctx: u64, data: u64, len: u64) -> bool {
        if self.overflow != 0 || self.fixed[2].is_none_or(|r| r.start != ctx) {
            return false;
        }
        match &mut self.fixed[0] {
            Some(p) if p.start == data => {
                p.len = len;
                p.stride = len.max(1);
                p.elem = len;
            }
            slot => *slot = Some(Region::new(data, len, RegionKind::Packet, true)),
        }
        if self.fixed[1].is_some() {
            self.fixed[1] = None;
        }
        true
    }

    /// Removes the context region starting at `ctx` together with the packet and
    /// metadata regions (the end of an XDP run), as `remove(ctx)`,
    /// `remove_kind(Packet)` and `remove_kind(Meta)` would.
    #[inline]
    pub fn clear_xdp_at(&mut self, ctx: u64) {
        if self.overflow == 0 && self.fixed[2].is_some_and(|r| r.start == ctx) {
            self.fixed = [None, None, None, self.fixed[3]];
            return;
        }
        if self.fixed[2].is_some_and(|r| r.start == ctx) {
            self.clear_xdp();
        } else {
            self.remove(ctx);
            self.remove_kind(RegionKind::Packet);
            self.remove_kind(RegionKind::Meta);
        }
    }

    /// The packet (`data .. end`) and metadata (`meta .. data`) regions after a helper
    /// moved the pointers, written in place (an empty range: no region), as
    /// [`Regions::set_packet`] would set them. Returns false, changing nothing, when
    /// regions overflowed into the tree (then `set_packet` must do it).
    #[inline]
    pub fn set_packet_bounds(&mut self, meta: u64, data: u64, end: u64) -> bool {
        if self.overflow != 0 {
            return false;
        }
        let set = |slot: &mut Option<Region>, start: u64, stop: u64, kind| {
            if stop > start {
                let len = stop - start;
                *slot = Some(Region {
                    start,
                    len,
                    stride: len,
                    elem: len,
                    kind,
                    writable: true,
                });
            } else {
                *slot = None;
            }
        };
        let [p, m, ..] = &mut self.fixed;
        set(p, data, end, RegionKind::Packet);
        set(m, meta, data, RegionKind::Meta);
        true
    }

    /// Removes the context, packet and metadata regions (the end of an XDP run).
    pub fn clear_xdp(&mut self) {
        self.fixed[0] = None;
        self.fixed[1] = None;
        self.fixed[2] = None;
        if self.overflow > 0 {
            self.remove_kind(RegionKind::Packet);
            self.remove_kind(RegionKind::Meta);
            self.remove_kind(RegionKind::Context);
        }
    }

    /// Removes the stack regions of frames `0..frames` laid out from `base` (the
    /// runtime's stack area) at the end of a run. Inline when no stack is registered
    /// (every run of a program that calls no helper checking its arguments).
    #[inline(always)]
    pub fn clear_stacks(&mut self, base: u64, frames: usize) {
        if self.stack_span == 0 && !self.stacks_outside && self.overflow == 0 {
            return;
        }
        self.clear_registered_stacks(base, frames);
    }

    /// [`Regions::clear_stacks`] when some stack may be registered.
    #[inline(never)]
    fn clear_registered_stacks(&mut self, base: u64, frames: usize) {
        if !self.stacks_outside
            && self.overflow == 0
            && (self.stack_span == 0 || self.stack_base == base)
            && self.stack_span <= frames as u64 * STACK_BYTES
        {
            // Only the contiguous frames from `base` are registered.
            let n = (self.stack_span / STACK_BYTES) as usize;
            for s in &mut self.stacks[..n] {
                *s = None;
            }
            self.stack_span = 0;
            return;
        }
        let mut any = false;
        for (d, s) in self.stacks.iter_mut().enumerate().take(frames) {
            if s.is_some_and(|r| r.start == base + d as u64 * STACK_BYTES) {
                *s = None;
                any = true;
            }
        }
        if any {
            self.recompute_stack_span();
        }
        if self.overflow > 0 {
            for d in 0..frames {
                self.remove(base + d as u64 * STACK_BYTES);
            }
        }
    }

    /// Removes every region of the given kind (fixed slots and tree).
    pub fn remove_kind(&mut self, kind: RegionKind) {
        match kind {
            RegionKind::Stack(d) if (d as usize) < STACK_SLOTS => {
                if self.stacks[d as usize].take().is_some() {
                    self.recompute_stack_span();
                }
            }
            k => {
                if let Some(i) = fixed_slot(k) {
                    self.fixed[i] = None;
                }
            }
        }
        if Self::is_fixed_kind(kind) && self.overflow == 0 {
            return;
        }
        let starts: Vec<u64> = self
            .map
            .values()
            .filter(|r| r.kind == kind)
            .map(|r| r.start)
            .collect();
        for s in starts {
            self.remove(s);
        }
    }

    /// Every live region, fixed slots first, then the others by start address.
    pub fn iter(&self) -> impl Iterator<Item = &Region> {
        self.stacks
            .iter()
            .chain(self.fixed.iter())
            .flatten()
            .chain(self.map.values())
    }

    /// The live region containing `addr`, if any (a copy).
    #[inline]
    fn containing(&self, addr: u64) -> Option<Region> {
        let off = addr.wrapping_sub(self.stack_base);
        if off < self.stack_span {
            return self.stacks[(off / STACK_BYTES) as usize];
        }
        for r in self.fixed.iter().flatten() {
            if addr.wrapping_sub(r.start) < r.len {
                return Some(*r);
            }
        }
        if self.stacks_outside {
            for r in self.stacks.iter().flatten() {
                if addr.wrapping_sub(r.start) < r.len {
                    return Some(*r);
                }
            }
        }
        if self.map.is_empty() {
            return None;
        }
        let last = self.last.get();
        if addr.wrapping_sub(last.start) < last.len {
            return Some(last);
        }
        let (_, r) = self.map.range(..=addr).next_back()?;
        if addr < r.end() {
            self.last.set(*r);
            Some(*r)
        } else {
            None
        }
    }

    /// The region containing `addr`, if any.
    pub fn find(&self, addr: u64) -> Option<&Region> {
        let off = addr.wrapping_sub(self.stack_base);
        if off < self.stack_span {
            return self.stacks[(off / STACK_BYTES) as usize].as_ref();
        }
        let fixed = self.fixed.iter().chain(self.stacks.iter()).flatten();
        if let Some(r) = fixed
            .into_iter()
            .find(|r| addr.wrapping_sub(r.start) < r.len)
        {
            return Some(r);
        }
        let (_, r) = self.map.range(..=addr).next_back()?;
        (addr < r.end()).then_some(r)
    }

    /// The common cases of [`Regions::check`] without building a result: true when
    /// `[addr, addr + size)` lies in an active stack frame, in the packet, or in the tree
    /// region found last, and is writable if `write`. False means "ask `check`" (which
    /// may still succeed, or names the fault). Never true for the context.
    #[inline(always)]
    pub fn check_fast(&self, addr: u64, size: u64, write: bool) -> bool {
        let off = addr.wrapping_sub(self.stack_base);
        if off < self.stack_span {
            if write {
                self.note_stack_write(off);
            }
            return size <= STACK_BYTES - off % STACK_BYTES;
        }
        if let Some(p) = &self.fixed[0] {
            let off = addr.wrapping_sub(p.start);
            if off < p.len {
                return size <= p.len - off && (!write || p.writable);
            }
        }
        let l = self.last.get();
        let off = addr.wrapping_sub(l.start);
        if off < l.len {
            let in_elem = if l.stride == l.len {
                off
            } else {
                off % l.stride
            };
            return size <= l.elem.saturating_sub(in_elem) && (!write || l.writable);
        }
        false
    }

    /// The offset of `addr` in the context region of the fixed slot, if it lies there
    /// (for the interpreter's loads from `struct xdp_md`: `check` would find that region
    /// for such an address, since regions never overlap).
    #[inline(always)]
    pub fn context_offset(&self, addr: u64) -> Option<u64> {
        match &self.fixed[2] {
            Some(c) if addr.wrapping_sub(c.start) < c.len => Some(addr - c.start),
            _ => None,
        }
    }

    /// Whether `addr` lies in the packet region (`data .. data_end`).
    #[inline]
    pub fn in_packet(&self, addr: u64) -> bool {
        let in_slot = self.fixed[0].is_some_and(|p| addr.wrapping_sub(p.start) < p.len);
        in_slot
            || (self.overflow > 0
                && self
                    .find(addr)
                    .is_some_and(|r| r.kind == RegionKind::Packet))
    }

    /// Checks that `[addr, addr + size)` is inside one live region (and one element of it),
    /// writable if `write`.
    #[inline]
    pub fn check(&self, addr: u64, size: u64, write: bool) -> Result<Region, MemFault> {
        // Fast path: an access inside the stack of one of the active frames.
        let off = addr.wrapping_sub(self.stack_base);
        if off < self.stack_span && size <= STACK_BYTES - off % STACK_BYTES {
            if let Some(r) = self.stacks[(off / STACK_BYTES) as usize] {
                if write {
                    self.note_stack_write(off);
                }
                return Ok(r);
            }
        }
        self.check_slow(addr, size, write)
    }

    /// A checked write at offset `off` from `stack_base`, inside the contiguous frames.
    #[inline(always)]
    fn note_stack_write(&self, off: u64) {
        let c = &self.stack_dirty[(off / STACK_BYTES) as usize];
        let o = (off % STACK_BYTES) as u16;
        if o < c.get() {
            c.set(o);
        }
    }

    /// Records that frame `depth`'s stack may have been written from offset `off` (from
    /// the frame's lowest address) up, by code that did not go through `check`.
    pub fn mark_stack_dirty(&self, depth: usize, off: u64) {
        if let Some(c) = self.stack_dirty.get(depth) {
            c.set(c.get().min(off.min(STACK_BYTES) as u16));
        }
    }

    /// The lowest offset of frame `depth`'s stack that may be non-zero (512: none).
    pub fn stack_dirty_from(&self, depth: usize) -> u64 {
        if self.stacks_unchecked {
            return 0;
        }
        self.stack_dirty.get(depth).map_or(0, |c| c.get() as u64)
    }

    fn check_slow(&self, addr: u64, size: u64, write: bool) -> Result<Region, MemFault> {
        if let Some(r) = self.containing(addr) {
            if r.contains(addr, size) && (!write || r.writable) {
                if let (true, RegionKind::Stack(d)) = (write, r.kind) {
                    self.mark_stack_dirty(d as usize, addr - r.start);
                }
                return Ok(r);
            }
            return Err(MemFault {
                addr,
                size,
                write,
                region: Some(r),
                inside: true,
            });
        }
        // The nearest region before (greatest start <= addr) and after (least start >
        // addr), over the fixed slots and the tree.
        let mut before: Option<Region> = self.map.range(..=addr).next_back().map(|(_, r)| *r);
        let mut after: Option<Region> = self
            .map
            .range(addr.saturating_add(1)..)
            .next()
            .map(|(_, r)| *r);
        for r in self.stacks.iter().chain(self.fixed.iter()).flatten() {
            if r.start <= addr {
                if before.is_none_or(|b| r.start > b.start) {
                    before = Some(*r);
                }
            } else if after.is_none_or(|a| r.start < a.start) {
                after = Some(*r);
            }
        }
        let nearest = match (before, after) {
            (Some(b), Some(a)) => Some(if addr - b.end() <= a.start - addr {
                b
            } else {
                a
            }),
            (b, a) => b.or(a),
        };
        Err(MemFault {
            addr,
            size,
            write,
            region: nearest,
            inside: false,
        })
    }

    /// A checked little-endian load of 1, 2, 4 or 8 bytes.
    pub fn load(&self, addr: u64, size: u64) -> Result<u64, MemFault> {
        self.check(addr, size, false)?;
        // SAFETY: `check` proved `[addr, addr+size)` lies inside a live region, and every
        // region is backed by a `Buf` (or other allocation) owned by the runtime that
        // outlives its registration in this table.
        Ok(unsafe { raw_load(addr, size) })
    }

    /// A checked little-endian store of the low `size` bytes of `value`.
    pub fn store(&self, addr: u64, size: u64, value: u64) -> Result<(), MemFault> {
        self.check(addr, size, true)?;
        // SAFETY: as in `load`; `check` also proved the region writable.
        unsafe { raw_store(addr, size, value) };
        Ok(())
    }

    /// Copies `len` bytes from checked program memory.
    pub fn read_bytes(&self, addr: u64, len: u64) -> Result<Vec<u8>, MemFault> {
        if len == 0 {
            return Ok(Vec::new());
        }
        self.check(addr, len, false)?;
        // SAFETY: `check` proved the source range lies in a live region, which nothing
        // writes while the bytes are copied into the new `Vec` (not zeroed first).
        Ok(unsafe { std::slice::from_raw_parts(addr as *const u8, len as usize) }.to_vec())
    }

    /// Copies `len` bytes from checked program memory without allocating when they fit in
    /// [`ARG_INLINE`] bytes (map keys and values read by helpers).
    #[inline]
    pub fn read_arg(&self, addr: u64, len: u64) -> Result<ArgBytes, MemFault> {
        let mut out = ArgBytes {
            len: len as usize,
            inline: [0; ARG_INLINE],
            heap: Vec::new(),
        };
        if len == 0 {
            return Ok(out);
        }
        self.check(addr, len, false)?;
        let dst = if out.len <= ARG_INLINE {
            out.inline.as_mut_ptr()
        } else {
            out.heap = vec![0u8; out.len];
            out.heap.as_mut_ptr()
        };
        // SAFETY: `check` proved the source range lies in a live region; `dst` is a buffer
        // of at least `len` bytes owned by `out`, which cannot overlap program memory.
        unsafe { std::ptr::copy_nonoverlapping(addr as *const u8, dst, out.len) };
        Ok(out)
    }

    /// Copies `bytes` into checked, writable program memory.
    pub fn write_bytes(&self, addr: u64, bytes: &[u8]) -> Result<(), MemFault> {
        if bytes.is_empty() {
            return Ok(());
        }
        self.check(addr, bytes.len() as u64, true)?;
        // SAFETY: `check` proved the destination lies in a live writable region. `copy`
        // (memmove) tolerates overlap in case `bytes` was itself read from program memory.
        unsafe { std::ptr::copy(bytes.as_ptr(), addr as *mut u8, bytes.len()) };
        Ok(())
    }
}

/// Bytes a helper argument fits in without a heap allocation ([`Regions::read_arg`]).
pub const ARG_INLINE: usize = 128;

/// A copy of helper argument bytes ([`Regions::read_arg`]); dereferences to `[u8]`.
pub struct ArgBytes {
    len: usize,
    inline: [u8; ARG_INLINE],
    heap: Vec<u8>,
}

impl std::ops::Deref for ArgBytes {
    type Target = [u8];
    #[inline]
    fn deref(&self) -> &[u8] {
        if self.len <= ARG_INLINE {
            &self.inline[..self.len]
        } else {
            &self.heap
        }
    }
}

impl fmt::Debug for ArgBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

/// Loads `size` bytes at `addr` without any check.
///
/// # Safety
/// `[addr, addr + size)` must be readable memory (callers check it with [`Regions::check`]).
#[inline]
pub unsafe fn raw_load(addr: u64, size: u64) -> u64 {
    let p = addr as *const u8;
    // SAFETY: guaranteed by the caller; unaligned reads are allowed.
    unsafe {
        match size {
            1 => p.read() as u64,
            2 => (p as *const u16).read_unaligned() as u64,
            4 => (p as *const u32).read_unaligned() as u64,
            _ => (p as *const u64).read_unaligned(),
        }
    }
}

/// Stores the low `size` bytes of `value` at `addr` without any check.
///
/// # Safety
/// `[addr, addr + size)` must be writable memory (callers check it with [`Regions::check`]).
#[inline]
pub unsafe fn raw_store(addr: u64, size: u64, value: u64) {
    let p = addr as *mut u8;
    // SAFETY: guaranteed by the caller; unaligned writes are allowed.
    unsafe {
        match size {
            1 => p.write(value as u8),
            2 => (p as *mut u16).write_unaligned(value as u16),
            4 => (p as *mut u32).write_unaligned(value as u32),
            _ => (p as *mut u64).write_unaligned(value),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checked_access() {
        let b = Buf::new(16);
        let mut r = Regions::new();
        r.insert(Region::new(b.addr(), 16, RegionKind::Memory, true));
        r.store(b.addr() + 8, 8, 0x1122_3344_5566_7788).unwrap();
        assert_eq!(r.load(b.addr() + 8, 4).unwrap(), 0x5566_7788);
        assert_eq!(b.as_slice()[8], 0x88);
        let e = r.load(b.addr() + 12, 8).unwrap_err();
        assert!(e.inside);
        assert!(
            e.to_string().contains("crosses the end of input memory"),
            "{e}"
        );
        let e = r.load(b.addr() + 16, 1).unwrap_err();
        assert!(!e.inside);
        assert!(
            e.to_string().contains("just past the end of input memory"),
            "{e}"
        );
        let e = r.load(b.addr() - 3, 1).unwrap_err();
        assert!(e.to_string().contains("3 bytes before"), "{e}");
    }

    #[test]
    fn strided_and_read_only() {
        let b = Buf::new(32);
        let mut r = Regions::new();
        r.insert(Region::strided(
            b.addr(),
            4,
            8,
            6,
            RegionKind::MapValue(0),
            false,
        ));
        assert!(r.load(b.addr() + 8, 4).is_ok());
        assert!(r.load(b.addr() + 12, 4).is_err());
        let e = r.store(b.addr(), 1, 0).unwrap_err();
        assert!(e.to_string().contains("read-only"), "{e}");
    }

    #[test]
    fn fixed_slots_and_tree_agree_with_one_table() {
        // Four stack frames in one buffer, a packet, and map values in the tree.
        let stacks = Buf::new(8 * 512);
        let pkt = Buf::new(100);
        let vals = Buf::new(64);
        let mut r = Regions::new();
        for d in 0..3u64 {
            r.insert(Region::new(
                stacks.addr() + d * 512,
                512,
                RegionKind::Stack(d as u8),
                true,
            ));
        }
        r.insert(Region::new(pkt.addr(), 100, RegionKind::Packet, true));
        r.insert(Region::new(vals.addr(), 16, RegionKind::MapValue(0), true));
        r.insert(Region::new(
            vals.addr() + 32,
            16,
            RegionKind::MapValue(1),
            false,
        ));
        // Inside a frame, at its top, across two frames, past the last active one.
        assert!(r.check(stacks.addr() + 512 + 504, 8, true).is_ok());
        let e = r.check(stacks.addr() + 508, 8, false).unwrap_err();
        assert!(
            e.inside && e.region.unwrap().kind == RegionKind::Stack(0),
            "{e}"
        );
        let e = r.check(stacks.addr() + 3 * 512, 1, false).unwrap_err();
        assert!(!e.inside, "{e}");
        assert!(
            e.to_string()
                .contains("just past the end of stack of frame 2"),
            "{e}"
        );
        assert!(r.check(stacks.addr() + 100, u64::MAX - 50, false).is_err());
        // Tree regions, twice (the second time through the cache), then removed.
        for _ in 0..2 {
            assert!(r.check(vals.addr() + 8, 8, true).is_ok());
            assert!(r.check(vals.addr() + 40, 8, true).is_err());
            assert!(r.check(vals.addr() + 40, 8, false).is_ok());
        }
        assert_eq!(r.find(pkt.addr() + 99).unwrap().kind, RegionKind::Packet);
        r.remove(vals.addr());
        let e = r.check(vals.addr() + 8, 8, false).unwrap_err();
        assert!(!e.inside, "{e}");
        // A frame left in the middle: the frames above it are still checked.
        r.remove_stack(1, stacks.addr() + 512);
        assert!(r.check(stacks.addr() + 512, 8, false).is_err());
        assert!(r.check(stacks.addr() + 1024, 8, false).is_ok());
        assert!(r.check(stacks.addr(), 8, false).is_ok());
        r.remove_kind(RegionKind::Packet);
        assert!(r.check(pkt.addr(), 1, false).is_err());
        assert_eq!(r.iter().count(), 3);
    }
}
