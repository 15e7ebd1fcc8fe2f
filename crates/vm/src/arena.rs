//! The engines' memory: one reserved address range that holds every byte a program may
//! address.
//!
//! Every [`Buf`](crate::memory::Buf) (packet frame and metadata, context, stack frames, map
//! keys and values, global data, per-CPU slots, ring buffer records, timer and dynptr
//! storage, raw-mode memory) is carved out of one range of virtual memory that the process
//! reserves the first time it needs one:
//!
//! ```text
//!  guard     | pad (rw, never | committed: rw, handed out as Bufs, | reserved    | guard
//!  PROT_NONE | handed out)    | then JIT_SLACK never handed out   | PROT_NONE   | PROT_NONE
//!            ^ base - PAD     ^ base                     base + committed ^     ^ base + size
//! ```
//!
//! The range is committed (made read-write) from its start as allocations need it and never
//! shrinks, and no allocation ends within [`JIT_SLACK`] bytes of the committed end. So an
//! access of at most 8 bytes whose offset from [`base`] is below [`limit`] lies entirely in
//! committed, read-write memory of the range: a single unsigned comparison confines a
//! load, store or atomic whatever address a program computed. The JIT's fast mode emits
//! such a comparison before memory accesses (against [`jit_base`] / [`jit_limit`], which
//! also admit the pad; see there), and the fast paths of [`crate::fastpath`] check their
//! raw key and value pointers with [`contains`]. A wrong access then faults, or at worst
//! reads or writes bytes of another buffer inside the range; it never reaches the host's
//! own memory (Rust heap, stacks, code, the JIT's tables). The guard pages at both ends are
//! never made accessible.
//!
//! Allocation: sizes up to 2048 bytes use power-of-two size classes with free lists (a
//! freed buffer is zeroed when handed out again); larger ones are whole pages with free
//! lists per page count (zeroed on reuse; from 1 MiB up returned to the kernel with
//! `MADV_DONTNEED` when freed, which also zeroes them). One mutex guards the allocator;
//! reads and writes of the memory itself never take it.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

/// Size of each guard area at the ends of the range.
pub const GUARD: usize = 1 << 16;
/// Read-write bytes below `base` that are never handed out (see [`jit_base`]).
pub const PAD: usize = 1 << 18;
/// Bytes kept free between the last allocation and the committed end: the largest single
/// access (8 bytes), so that one comparison of the start offset covers the whole access.
pub const SLACK: usize = 8;
/// What the commit keeps free above the last allocation (see [`jit_limit`]): the span of
/// offsets an instruction can reach from one register (16-bit offsets, 8-byte access).
pub const JIT_SLACK: usize = (1 << 16) + 16;
/// Commit granularity.
const COMMIT_STEP: usize = 1 << 20;
/// Largest size served from the small size classes.
const SMALL_MAX: usize = 2048;
const PAGE: usize = 4096;
/// Freed large blocks from this size up are given back to the kernel.
const RELEASE_MIN: usize = 1 << 20;

struct Alloc {
    /// Offset (from `base`) of the first never-allocated byte.
    top: usize,
    /// Committed bytes from `base`.
    committed: usize,
    /// Free lists of the small classes 16, 32, ..., 2048 (offsets).
    small: [Vec<usize>; 8],
    /// Free large blocks by page count (offsets).
    large: BTreeMap<usize, Vec<usize>>,
}

struct Arena {
    base: u64,
    size: usize,
    alloc: Mutex<Alloc>,
}

static ARENA: OnceLock<Arena> = OnceLock::new();
/// `committed - SLACK + 1` once the arena exists: an access of at most 8 bytes at offset
/// `off` from [`base`] is inside committed memory iff `off < LIMIT`. Only grows.
static LIMIT: AtomicU64 = AtomicU64::new(0);

fn arena() -> &'static Arena {
    ARENA.get_or_init(reserve)
}

fn reserve() -> Arena {
    // From 64 GiB down: the address space is what is reserved, not memory; a system with
    // a small address-space limit gets a smaller range.
    let mut size: usize = 64 << 30;
    loop {
        let total = size + 2 * GUARD + PAD;
        // SAFETY: an anonymous private mapping at an address the kernel picks; nothing
        // else refers to it.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                total,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if p != libc::MAP_FAILED {
            let pad = p as usize + GUARD;
            // SAFETY: the pad lies inside the reservation just made.
            let r = unsafe {
                libc::mprotect(
                    pad as *mut libc::c_void,
                    PAD,
                    libc::PROT_READ | libc::PROT_WRITE,
                )
            };
            if r != 0 {
                eprintln!(
                    "bpfkit: cannot map the engines' memory: {}",
                    std::io::Error::last_os_error()
                );
                std::process::abort();
            }
            return Arena {
                base: (pad + PAD) as u64,
                size,
                alloc: Mutex::new(Alloc {
                    top: 0,
                    committed: 0,
                    small: Default::default(),
                    large: BTreeMap::new(),
                }),
            };
        }
        if size <= 64 << 20 {
            eprintln!(
                "bpfkit: cannot reserve address space for the engines' memory: {}",
                std::io::Error::last_os_error()
            );
            std::process::abort();
        }
        size /= 2;
    }
}

/// Start address of the range (creates it on first use).
pub fn base() -> u64 {
    arena().base
}

/// Bytes reserved for the range (its guard areas not included).
pub fn reserved() -> usize {
    arena().size
}

/// The current confinement limit: an access of at most 8 bytes at `addr` lies in
/// committed memory of the range iff `addr.wrapping_sub(base()) < limit()`. Only grows.
#[inline]
pub fn limit() -> u64 {
    LIMIT.load(Ordering::Acquire)
}

/// Start of the span the JIT's fast mode confines to: `base - PAD / 2`.
///
/// An access of at most 8 bytes at `addr` lies in read-write memory of the range iff
/// `addr.wrapping_sub(jit_base()) < jit_limit()`; moreover every byte from `PAD / 2`
/// below such an address up to its end is read-write too (the pad), and so is every byte
/// up to [`JIT_SLACK`] above any allocated byte. That lets the JIT check a whole group of
/// accesses through one register (offsets within a 16-bit span) with one comparison at the
/// group's highest 8-byte window: a valid access in the group keeps that window within
/// the slack above it, and the group's lowest byte within the pad below it.
pub fn jit_base() -> u64 {
    arena().base - (PAD / 2) as u64
}

/// The JIT's confinement limit, relative to [`jit_base`]: [`limit`] + `PAD / 2` (grows as
/// [`limit`] does; before anything is committed it admits only the pad, which is
/// read-write).
#[inline]
pub fn jit_limit() -> u64 {
    LIMIT.load(Ordering::Acquire) + jit_limit_offset()
}

/// Address of [`limit`]'s value, for generated code that reloads it after calls into Rust
/// (and adds [`jit_limit_offset`]).
pub fn limit_addr() -> u64 {
    &LIMIT as *const AtomicU64 as u64
}

/// [`jit_limit`] minus [`limit`].
pub const fn jit_limit_offset() -> u64 {
    (PAD / 2) as u64
}

/// Whether `[addr, addr + len)` lies in committed memory of the range (so reading or
/// writing it cannot touch the host's memory, whatever a program made of it).
#[inline]
pub fn contains(addr: u64, len: u64) -> bool {
    let Some(a) = ARENA.get() else {
        return false;
    };
    let committed = LIMIT.load(Ordering::Acquire) + SLACK as u64 - 1;
    let off = addr.wrapping_sub(a.base);
    off < committed && len <= committed - off
}

fn class_of(len: usize) -> Option<(usize, usize)> {
    if len > SMALL_MAX {
        return None;
    }
    let size = len.max(16).next_power_of_two();
    Some((size.trailing_zeros() as usize - 4, size))
}

fn large_size(len: usize) -> usize {
    len.div_ceil(PAGE) * PAGE
}

impl Arena {
    /// Makes `[0, end + SLACK)` committed.
    fn commit(&self, a: &mut Alloc, end: usize) -> bool {
        let need = end + JIT_SLACK;
        if need <= a.committed {
            return true;
        }
        if need > self.size {
            return false;
        }
        let new = need
            .div_ceil(COMMIT_STEP)
            .saturating_mul(COMMIT_STEP)
            .min(self.size);
        // SAFETY: `[base + committed, base + new)` lies inside the reservation made in
        // `reserve`, which this arena owns and never unmaps.
        let r = unsafe {
            libc::mprotect(
                (self.base as usize + a.committed) as *mut libc::c_void,
                new - a.committed,
                libc::PROT_READ | libc::PROT_WRITE,
            )
        };
        if r != 0 {
            return false;
        }
        a.committed = new;
        LIMIT.store((new - SLACK + 1) as u64, Ordering::Release);
        true
    }

    fn bump(&self, a: &mut Alloc, size: usize, align: usize) -> Option<usize> {
        let start = a.top.div_ceil(align) * align;
        let end = start.checked_add(size)?;
        if !self.commit(a, end) {
            return None;
        }
        a.top = end;
        Some(start)
    }

    fn alloc(&self, len: usize) -> Option<u64> {
        let mut a = self.alloc.lock().unwrap_or_else(|e| e.into_inner());
        let (off, zero) = match class_of(len) {
            Some((c, size)) => match a.small[c].pop() {
                Some(off) => (off, size),
                None => (self.bump(&mut a, size, 16)?, 0),
            },
            None => {
                let size = large_size(len);
                let pages = size / PAGE;
                let reused = a.large.get_mut(&pages).and_then(|v| v.pop());
                match reused {
                    // Released blocks came back zeroed from MADV_DONTNEED.
                    Some(off) => (off, if size >= RELEASE_MIN { 0 } else { size }),
                    None => (self.bump(&mut a, size, PAGE)?, 0),
                }
            }
        };
        drop(a);
        let addr = self.base + off as u64;
        if zero > 0 {
            // SAFETY: `[addr, addr + zero)` is a committed block of the range that was
            // freed and now belongs to the caller alone.
            unsafe { std::ptr::write_bytes(addr as *mut u8, 0, zero) };
        }
        Some(addr)
    }

    fn free(&self, addr: u64, len: usize) {
        let off = (addr - self.base) as usize;
        match class_of(len) {
            Some((c, _)) => {
                let mut a = self.alloc.lock().unwrap_or_else(|e| e.into_inner());
                a.small[c].push(off);
            }
            None => {
                let size = large_size(len);
                if size >= RELEASE_MIN {
                    // SAFETY: the block belongs to the range and nothing refers to it any
                    // more; afterwards it reads as zeros and stays read-write.
                    unsafe { libc::madvise(addr as *mut libc::c_void, size, libc::MADV_DONTNEED) };
                }
                let mut a = self.alloc.lock().unwrap_or_else(|e| e.into_inner());
                a.large.entry(size / PAGE).or_default().push(off);
            }
        }
    }
}

/// A zeroed block of at least `len` bytes (8-byte aligned) inside the range, or `None`
/// when the range is exhausted.
pub fn alloc_zeroed(len: usize) -> Option<u64> {
    arena().alloc(len)
}

/// Gives back a block from [`alloc_zeroed`] with the same `len`.
pub fn free(addr: u64, len: usize) {
    arena().free(addr, len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_zeroed_inside_and_reused() {
        let a = alloc_zeroed(100).unwrap();
        assert!(contains(a, 100));
        // SAFETY: 100 bytes at `a` belong to this test.
        unsafe { std::ptr::write_bytes(a as *mut u8, 0xff, 100) };
        free(a, 100);
        let b = alloc_zeroed(100).unwrap();
        // SAFETY: as above.
        let s = unsafe { std::slice::from_raw_parts(b as *const u8, 100) };
        assert!(s.iter().all(|&x| x == 0));
        free(b, 100);
        let big = alloc_zeroed(3 << 20).unwrap();
        assert!(contains(big, 3 << 20));
        assert_eq!(big % PAGE as u64, 0);
        free(big, 3 << 20);
        assert!(!contains(base() - 1, 1));
        assert!(!contains(base() + limit() + 7, 2));
        assert!(!contains(0x1000, 8));
        // The JIT's span: the pad below base, and the slack above the last allocation.
        let top = big + (3 << 20);
        assert!(jit_limit() > (top + JIT_SLACK as u64 - 16) - jit_base());
        assert!(base() - jit_base() == (PAD / 2) as u64);
        let host = Box::new(0u64);
        assert!(!contains(&*host as *const u64 as u64, 8));
    }
}
