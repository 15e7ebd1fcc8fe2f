//! Helper prototypes (`struct bpf_func_proto`) for the helpers an XDP program may call
//! (net/core/filter.c `xdp_func_proto` + kernel/bpf/helpers.c `bpf_base_func_proto`).

use bpfkit_isa::helper::NAMES as HELPER_NAMES;
use bpfkit_object::model::map_type as mt;

/// Argument types (`enum bpf_arg_type`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Arg {
    DontCare,
    Anything,
    Ctx,
    ConstMapPtr,
    /// Pointer to `key_size` readable bytes.
    MapKey,
    /// Pointer to `value_size` readable bytes.
    MapValue,
    /// Pointer to `value_size` writable bytes (may be uninitialised).
    UninitMapValue,
    /// Readable memory whose size is the next argument.
    Mem,
    /// Like `Mem`, but NULL (a known zero) is also accepted.
    MemOrNull,
    /// Writable memory whose size is the next argument (may be uninitialised).
    UninitMem,
    /// Writable memory of a fixed size (`ARG_PTR_TO_FIXED_SIZE_MEM | MEM_UNINIT`).
    FixedUninitMem(u32),
    ConstSize,
    ConstSizeOrZero,
    /// `ARG_CONST_ALLOC_SIZE_OR_ZERO` (ring buffer reserve size).
    AllocSizeOrZero,
    /// Ring buffer record obtained from `bpf_ringbuf_reserve` (released by the call).
    RingbufMemRelease,
    /// Socket reference (released by the call).
    SockRelease,
    /// `ARG_PTR_TO_FUNC`: a static sub-program used as a callback.
    Func,
    /// `ARG_PTR_TO_STACK_OR_NULL`.
    StackOrNull,
}

/// Return types (`enum bpf_return_type`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Ret {
    Integer,
    Void,
    MapValueOrNull,
    RingbufMemOrNull,
    SocketOrNull,
    SockCommonOrNull,
}

#[derive(Clone, Copy, Debug)]
pub struct Proto {
    pub id: u32,
    pub args: [Arg; 5],
    pub ret: Ret,
    /// Helper changes packet data (`bpf_helper_changes_pkt_data`): packet pointers die.
    pub changes_pkt_data: bool,
    /// Return value is a new reference that must be released.
    pub acquires: bool,
}

/// Helpers with `gpl_only = true` among the ones XDP may call.
pub const GPL_ONLY: &[u32] = &[6, 25, 35, 112, 113, 114, 115, 141, 148, 158, 165, 177, 191];

use Arg::*;

const fn p(id: u32, args: [Arg; 5], ret: Ret) -> Proto {
    Proto {
        id,
        args,
        ret,
        changes_pkt_data: false,
        acquires: false,
    }
}
const fn pkt(mut pr: Proto) -> Proto {
    pr.changes_pkt_data = true;
    pr
}
const fn acq(mut pr: Proto) -> Proto {
    pr.acquires = true;
    pr
}
const D: Arg = DontCare;

/// Helpers that bpfkit models. Others known to the kernel are reported as unsupported.
pub const PROTOS: &[Proto] = &[
    p(1, [ConstMapPtr, MapKey, D, D, D], Ret::MapValueOrNull),
    p(
        2,
        [ConstMapPtr, MapKey, MapValue, Anything, D],
        Ret::Integer,
    ),
    p(3, [ConstMapPtr, MapKey, D, D, D], Ret::Integer),
    p(5, [D; 5], Ret::Integer),
    p(6, [Mem, ConstSize, D, D, D], Ret::Integer),
    p(7, [D; 5], Ret::Integer),
    p(8, [D; 5], Ret::Integer),
    p(12, [Ctx, ConstMapPtr, Anything, D, D], Ret::Void),
    p(23, [Anything, Anything, D, D, D], Ret::Integer),
    p(
        25,
        [Ctx, ConstMapPtr, Anything, Mem, ConstSizeOrZero],
        Ret::Integer,
    ),
    p(
        28,
        [
            MemOrNull,
            ConstSizeOrZero,
            MemOrNull,
            ConstSizeOrZero,
            Anything,
        ],
        Ret::Integer,
    ),
    p(14, [D; 5], Ret::Integer),
    p(15, [D; 5], Ret::Integer),
    p(80, [D; 5], Ret::Integer),
    p(42, [D; 5], Ret::Integer),
    pkt(p(44, [Ctx, Anything, D, D, D], Ret::Integer)),
    p(51, [ConstMapPtr, Anything, Anything, D, D], Ret::Integer),
    pkt(p(54, [Ctx, Anything, D, D, D], Ret::Integer)),
    pkt(p(65, [Ctx, Anything, D, D, D], Ret::Integer)),
    p(69, [Ctx, UninitMem, ConstSize, Anything, D], Ret::Integer),
    acq(p(
        84,
        [Ctx, Mem, ConstSize, Anything, Anything],
        Ret::SocketOrNull,
    )),
    acq(p(
        85,
        [Ctx, Mem, ConstSize, Anything, Anything],
        Ret::SocketOrNull,
    )),
    p(86, [SockRelease, D, D, D, D], Ret::Integer),
    p(87, [ConstMapPtr, MapValue, Anything, D, D], Ret::Integer),
    p(88, [ConstMapPtr, UninitMapValue, D, D, D], Ret::Integer),
    p(89, [ConstMapPtr, UninitMapValue, D, D, D], Ret::Integer),
    acq(p(
        99,
        [Ctx, Mem, ConstSize, Anything, Anything],
        Ret::SockCommonOrNull,
    )),
    p(
        113,
        [UninitMem, ConstSizeOrZero, Anything, D, D],
        Ret::Integer,
    ),
    p(118, [D; 5], Ret::Integer),
    p(125, [D; 5], Ret::Integer),
    p(
        130,
        [ConstMapPtr, Mem, ConstSizeOrZero, Anything, D],
        Ret::Integer,
    ),
    acq(p(
        131,
        [ConstMapPtr, AllocSizeOrZero, Anything, D, D],
        Ret::RingbufMemOrNull,
    )),
    p(132, [RingbufMemRelease, Anything, D, D, D], Ret::Void),
    p(133, [RingbufMemRelease, Anything, D, D, D], Ret::Void),
    p(134, [ConstMapPtr, Anything, D, D, D], Ret::Integer),
    p(160, [D; 5], Ret::Integer),
    p(
        163,
        [Ctx, Anything, FixedUninitMem(4), Anything, Anything],
        Ret::Integer,
    ),
    p(
        181,
        [Anything, Func, StackOrNull, Anything, D],
        Ret::Integer,
    ),
    p(188, [Ctx, D, D, D, D], Ret::Integer),
    p(189, [Ctx, Anything, UninitMem, ConstSize, D], Ret::Integer),
    p(190, [Ctx, Anything, Mem, ConstSize, D], Ret::Integer),
    p(
        195,
        [ConstMapPtr, MapKey, Anything, D, D],
        Ret::MapValueOrNull,
    ),
    p(208, [D; 5], Ret::Integer),
];

/// Helpers the 6.18 kernel offers XDP programs (root loader; measured with
/// `examples/helper_probe.rs`) that bpfkit does not model yet.
pub const KNOWN_UNMODELED: &[u32] = &[
    16, 17, 22, 35, 37, 55, 93, 94, 100, 105, 106, 109, 110, 112, 114, 115, 117, 120, 123, 136,
    137, 138, 139, 140, 141, 148, 149, 153, 154, 156, 157, 158, 164, 165, 169, 170, 171, 172, 175,
    176, 177, 178, 180, 182, 191, 194, 196, 197, 198, 199, 200, 201, 202, 203, 204, 205, 206, 207,
    209, 210, 211,
];

/// `__BPF_FUNC_MAX_ID` of Linux 6.18.
pub const FUNC_MAX_ID: i32 = 212;

pub fn proto(id: i32) -> Option<&'static Proto> {
    PROTOS.iter().find(|p| p.id as i32 == id)
}

/// The kernel's `func_id_name`: `bpf_<name>` or `unknown`.
pub fn name(id: i32) -> String {
    match usize::try_from(id).ok().and_then(|i| HELPER_NAMES.get(i)) {
        Some(n) if id > 0 => format!("bpf_{n}"),
        _ => "unknown".to_string(),
    }
}

/// `check_map_func_compatibility`: may helper `func` take a map of type `map_type`?
pub fn map_func_compatible(map_type: u32, func: u32) -> bool {
    // Map type -> helpers allowed on it.
    let by_map = match map_type {
        mt::PROG_ARRAY => func == 12,
        mt::PERF_EVENT_ARRAY => matches!(func, 25 | 22 | 55 | 41),
        mt::RINGBUF => matches!(func, 130 | 131 | 134),
        mt::DEVMAP | mt::DEVMAP_HASH => matches!(func, 51 | 1),
        mt::CPUMAP => func == 51,
        mt::XSKMAP => matches!(func, 51 | 1),
        mt::QUEUE | mt::STACK => matches!(func, 87..=89),
        mt::BLOOM_FILTER => matches!(func, 89 | 87),
        mt::SOCKMAP | mt::SOCKHASH | mt::ARRAY_OF_MAPS | mt::HASH_OF_MAPS => {
            matches!(func, 1..=3)
        }
        mt::USER_RINGBUF => func == 209,
        _ => true,
    };
    if !by_map {
        return false;
    }
    // Helper -> map types it accepts.
    match func {
        12 => map_type == mt::PROG_ARRAY,
        25 => map_type == mt::PERF_EVENT_ARRAY,
        130 | 131 | 134 => map_type == mt::RINGBUF,
        51 => matches!(
            map_type,
            mt::DEVMAP | mt::DEVMAP_HASH | mt::CPUMAP | mt::XSKMAP
        ),
        87 => matches!(map_type, mt::QUEUE | mt::STACK | mt::BLOOM_FILTER),
        88 => matches!(map_type, mt::QUEUE | mt::STACK),
        89 => matches!(map_type, mt::QUEUE | mt::STACK | mt::BLOOM_FILTER),
        195 => matches!(
            map_type,
            mt::PERCPU_ARRAY | mt::PERCPU_HASH | mt::LRU_PERCPU_HASH
        ),
        _ => true,
    }
}
