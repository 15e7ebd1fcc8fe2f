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
    /// `ARG_PTR_TO_FIXED_SIZE_MEM | MEM_WRITE | MEM_ALIGNED`: initialised memory of a
    /// fixed size that the helper reads and overwrites (`bpf_check_mtu`'s `mtu_len`).
    FixedMemWriteAligned(u32),
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
    /// `ARG_PTR_TO_MEM | MEM_WRITE`: initialised memory the helper overwrites; size is
    /// the next argument.
    MemWrite,
    /// `ARG_PTR_TO_MEM_OR_NULL | MEM_WRITE`.
    MemOrNullWrite,
    /// `ARG_PTR_TO_FIXED_SIZE_MEM | MEM_RDONLY`: readable memory of a fixed size.
    FixedMem(u32),
    /// `ARG_PTR_TO_FIXED_SIZE_MEM | MEM_UNINIT | MEM_WRITE | MEM_ALIGNED`.
    FixedUninitMemAligned(u32),
    /// `ARG_PTR_TO_MAP_VALUE_OR_NULL`.
    MapValueOrNull,
    /// `ARG_PTR_TO_CONST_STR`: a zero-terminated string in a frozen read-only map.
    ConstStr,
    /// `ARG_PTR_TO_SPIN_LOCK`.
    SpinLock,
    /// `ARG_PTR_TO_TIMER`.
    Timer,
    /// `ARG_PTR_TO_BTF_ID_SOCK_COMMON`; `btf` when `PTR_TO_BTF_ID` is also accepted.
    BtfIdSockCommon {
        btf: bool,
    },
    /// `ARG_PTR_TO_BTF_ID` (`struct task_struct`), `or_null` for `_OR_NULL`.
    BtfIdTask {
        or_null: bool,
    },
    /// `ARG_PTR_TO_BTF_ID` (`struct cgroup`), `or_null` for `_OR_NULL`.
    BtfIdCgroup {
        or_null: bool,
    },
    /// `ARG_PTR_TO_PERCPU_BTF_ID` (a per-CPU kernel variable from `lddw` of a ksym).
    PercpuBtfId,
    /// `ARG_KPTR_XCHG_DEST` (a kptr field of a map value).
    KptrXchgDest,
    /// `ARG_PTR_TO_DYNPTR` (any flavour).
    Dynptr,
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
    /// `RET_PTR_TO_BTF_ID_OR_NULL` to a socket type (the `bpf_skc_to_*` casts).
    SockBtfIdOrNull,
    /// `RET_PTR_TO_BTF_ID_TRUSTED` to `struct task_struct` (`bpf_get_current_task_btf`).
    TaskBtfId,
    /// `RET_PTR_TO_BTF_ID` to `struct pt_regs` (`bpf_task_pt_regs`).
    PtRegsBtfId,
    /// `RET_PTR_TO_DYNPTR_MEM_OR_NULL` (`bpf_dynptr_data`: a slice of the dynptr).
    DynptrMemOrNull,
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
    /// `might_sleep`: only sleepable programs may call it (XDP programs are not).
    pub might_sleep: bool,
    /// `is_ptr_cast_function`: R0 keeps the argument's reference (`ref_obj_id`).
    pub ptr_cast: bool,
}

/// Helpers with `pkt_access = true`: only these may take packet pointers as arguments
/// (`may_access_direct_pkt_data`); checked on the running kernel for the ones with
/// memory arguments (`helper access to the packet is not allowed` otherwise).
pub const PKT_ACCESS: &[u32] = &[
    1, 2, 3, 28, 84, 85, 87, 99, 100, 110, 195, 204, 205, 206, 207,
];

/// Helpers with `gpl_only = true` among the ones XDP may call (measured on the running
/// 6.18 kernel with `examples/gpl_probe.rs`: `call N` from a non-GPL program).
pub const GPL_ONLY: &[u32] = &[
    6, 22, 25, 35, 55, 69, 100, 110, 112, 113, 114, 115, 158, 163, 165, 169, 170, 171, 172, 175,
    176, 177, 191, 204, 205, 206, 207,
];

use Arg::*;

const fn p(id: u32, args: [Arg; 5], ret: Ret) -> Proto {
    Proto {
        id,
        args,
        ret,
        changes_pkt_data: false,
        acquires: false,
        might_sleep: false,
        ptr_cast: false,
    }
}
const fn sleeps(mut pr: Proto) -> Proto {
    pr.might_sleep = true;
    pr
}
const fn cast(mut pr: Proto) -> Proto {
    pr.ptr_cast = true;
    pr
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
    // 6.18: ARG_PTR_TO_MEM without MEM_WRITE: the params are checked as a read (measured:
    // `invalid read from stack` for uninitialised bytes without CAP_PERFMON)
    p(69, [Ctx, Mem, ConstSize, Anything, D], Ret::Integer),
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
        [Ctx, Anything, FixedMemWriteAligned(4), Anything, Anything],
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
    // -- kernel/bpf/helpers.c, kernel/trace/bpf_trace.c, net/core/filter.c (6.18)
    p(16, [UninitMem, ConstSize, D, D, D], Ret::Integer),
    p(17, [D; 5], Ret::Integer),
    p(22, [ConstMapPtr, Anything, D, D, D], Ret::Integer),
    p(35, [D; 5], Ret::Integer),
    p(37, [ConstMapPtr, Anything, D, D, D], Ret::Integer),
    p(
        55,
        [ConstMapPtr, Anything, UninitMem, ConstSize, D],
        Ret::Integer,
    ),
    p(93, [SpinLock, D, D, D, D], Ret::Void),
    p(94, [SpinLock, D, D, D, D], Ret::Void),
    p(
        100,
        [
            BtfIdSockCommon { btf: true },
            Mem,
            ConstSize,
            Mem,
            ConstSize,
        ],
        Ret::Integer,
    ),
    p(
        105,
        [Mem, ConstSize, Anything, FixedUninitMemAligned(8), D],
        Ret::Integer,
    ),
    p(
        106,
        [Mem, ConstSize, Anything, FixedUninitMemAligned(8), D],
        Ret::Integer,
    ),
    p(109, [Anything, D, D, D, D], Ret::Integer),
    p(
        110,
        [
            BtfIdSockCommon { btf: true },
            Mem,
            ConstSize,
            Mem,
            ConstSize,
        ],
        Ret::Integer,
    ),
    p(
        112,
        [UninitMem, ConstSizeOrZero, Anything, D, D],
        Ret::Integer,
    ),
    p(
        114,
        [UninitMem, ConstSizeOrZero, Anything, D, D],
        Ret::Integer,
    ),
    p(
        115,
        [UninitMem, ConstSizeOrZero, Anything, D, D],
        Ret::Integer,
    ),
    p(117, [Anything, D, D, D, D], Ret::Integer),
    p(
        120,
        [Anything, Anything, UninitMem, ConstSize, D],
        Ret::Integer,
    ),
    p(123, [Anything, D, D, D, D], Ret::Integer),
    cast(p(
        136,
        [BtfIdSockCommon { btf: true }, D, D, D, D],
        Ret::SockBtfIdOrNull,
    )),
    cast(p(
        137,
        [BtfIdSockCommon { btf: true }, D, D, D, D],
        Ret::SockBtfIdOrNull,
    )),
    cast(p(
        138,
        [BtfIdSockCommon { btf: true }, D, D, D, D],
        Ret::SockBtfIdOrNull,
    )),
    cast(p(
        139,
        [BtfIdSockCommon { btf: true }, D, D, D, D],
        Ret::SockBtfIdOrNull,
    )),
    cast(p(
        140,
        [BtfIdSockCommon { btf: true }, D, D, D, D],
        Ret::SockBtfIdOrNull,
    )),
    p(
        141,
        [
            BtfIdTask { or_null: false },
            UninitMem,
            ConstSizeOrZero,
            Anything,
            D,
        ],
        Ret::Integer,
    ),
    sleeps(p(
        148,
        [UninitMem, ConstSizeOrZero, Anything, D, D],
        Ret::Integer,
    )),
    p(
        149,
        [MemWrite, ConstSize, Mem, ConstSize, Anything],
        Ret::Integer,
    ),
    p(153, [PercpuBtfId, Anything, D, D, D], Ret::Integer),
    p(154, [PercpuBtfId, D, D, D, D], Ret::Integer),
    p(
        156,
        [
            ConstMapPtr,
            BtfIdTask { or_null: true },
            MapValueOrNull,
            Anything,
            D,
        ],
        Ret::MapValueOrNull,
    ),
    p(
        157,
        [ConstMapPtr, BtfIdTask { or_null: false }, D, D, D],
        Ret::Integer,
    ),
    p(158, [D; 5], Ret::TaskBtfId),
    p(
        164,
        [ConstMapPtr, Func, StackOrNull, Anything, D],
        Ret::Integer,
    ),
    p(
        165,
        [
            MemOrNullWrite,
            ConstSizeOrZero,
            ConstStr,
            MemOrNull,
            ConstSizeOrZero,
        ],
        Ret::Integer,
    ),
    p(169, [Timer, ConstMapPtr, Anything, D, D], Ret::Integer),
    p(170, [Timer, Func, D, D, D], Ret::Integer),
    p(171, [Timer, Anything, Anything, D, D], Ret::Integer),
    p(172, [Timer, D, D, D, D], Ret::Integer),
    p(
        175,
        [BtfIdTask { or_null: false }, D, D, D, D],
        Ret::PtRegsBtfId,
    ),
    p(
        176,
        [UninitMem, ConstSizeOrZero, Anything, D, D],
        Ret::Integer,
    ),
    p(
        177,
        [Mem, ConstSize, MemOrNull, ConstSizeOrZero, D],
        Ret::Integer,
    ),
    cast(p(
        178,
        [BtfIdSockCommon { btf: true }, D, D, D, D],
        Ret::SockBtfIdOrNull,
    )),
    p(
        180,
        [
            BtfIdTask { or_null: false },
            Anything,
            Func,
            StackOrNull,
            Anything,
        ],
        Ret::Integer,
    ),
    p(182, [Mem, ConstSize, ConstStr, D, D], Ret::Integer),
    sleeps(p(
        191,
        [
            UninitMem,
            ConstSizeOrZero,
            Anything,
            BtfIdTask { or_null: false },
            Anything,
        ],
        Ret::Integer,
    )),
    p(194, [KptrXchgDest, D, D, D, D], Ret::Integer),
    cast(p(
        196,
        [BtfIdSockCommon { btf: false }, D, D, D, D],
        Ret::SockBtfIdOrNull,
    )),
    p(
        197,
        [UninitMem, ConstSizeOrZero, Anything, Dynptr, D],
        Ret::Integer,
    ),
    p(
        198,
        [ConstMapPtr, Anything, Anything, Dynptr, D],
        Ret::Integer,
    ),
    p(199, [Dynptr, Anything, D, D, D], Ret::Void),
    p(200, [Dynptr, Anything, D, D, D], Ret::Void),
    p(
        201,
        [UninitMem, ConstSizeOrZero, Dynptr, Anything, Anything],
        Ret::Integer,
    ),
    p(
        202,
        [Dynptr, Anything, Mem, ConstSizeOrZero, Anything],
        Ret::Integer,
    ),
    p(
        203,
        [Dynptr, Anything, AllocSizeOrZero, D, D],
        Ret::DynptrMemOrNull,
    ),
    p(
        204,
        [FixedMem(20), Mem, ConstSizeOrZero, D, D],
        Ret::Integer,
    ),
    p(
        205,
        [FixedMem(40), Mem, ConstSizeOrZero, D, D],
        Ret::Integer,
    ),
    p(206, [FixedMem(20), FixedMem(20), D, D, D], Ret::Integer),
    p(207, [FixedMem(40), FixedMem(20), D, D, D], Ret::Integer),
    p(
        209,
        [ConstMapPtr, Func, StackOrNull, Anything, D],
        Ret::Integer,
    ),
    p(
        210,
        [
            ConstMapPtr,
            BtfIdCgroup { or_null: true },
            MapValueOrNull,
            Anything,
            D,
        ],
        Ret::MapValueOrNull,
    ),
    p(
        211,
        [ConstMapPtr, BtfIdCgroup { or_null: false }, D, D, D],
        Ret::Integer,
    ),
];

/// Helpers whose prototype is modelled but whose semantics need a feature bpfkit does
/// not have yet; a call that gets past the argument types is reported as undecided.
/// (id, what is missing)
pub const NEEDS_FEATURE: &[(u32, &str)] = &[(194, "kptrs (BTF type tags on map value fields)")];

/// Helpers the 6.18 kernel offers XDP programs (root loader; measured with
/// `examples/helper_probe.rs`) that bpfkit does not model yet.
/// Empty: every helper the 6.18 kernel offers XDP has its prototype in [`PROTOS`]; the
/// few whose semantics are not modelled are in [`NEEDS_FEATURE`].
pub const KNOWN_UNMODELED: &[u32] = &[];

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
/// Both switches of the kernel's function, in its order: the helpers each map type
/// allows, then the map types each helper allows. Helper ids: 1 lookup, 2 update,
/// 3 delete, 12 tail_call, 22/25/55 perf_event_read/output/read_value, 27 get_stackid,
/// 37/79 current_task_under_cgroup/skb_under_cgroup, 51 redirect_map, 52/53
/// sk_redirect_map/sock_map_update, 60 msg_redirect_map, 70-72 sock_hash_update,
/// msg_redirect_hash, sk_redirect_hash, 81 get_local_storage, 82 sk_select_reuseport,
/// 87-89 push/pop/peek, 107/108 sk_storage, 111 skb_output, 121 xdp_output, 130/131/134
/// ringbuf output/reserve/query, 145/146 inode_storage, 156/157 task_storage, 194
/// kptr_xchg, 195 map_lookup_percpu_elem, 198 ringbuf_reserve_dynptr, 209
/// user_ringbuf_drain, 210/211 cgrp_storage. (`may_update_sockmap` is true for XDP.)
pub fn map_func_compatible(map_type: u32, func: u32) -> bool {
    let by_map = match map_type {
        mt::PROG_ARRAY => func == 12,
        mt::PERF_EVENT_ARRAY => matches!(func, 22 | 25 | 55 | 111 | 121),
        mt::RINGBUF => matches!(func, 130 | 131 | 134 | 198),
        mt::USER_RINGBUF => func == 209,
        mt::STACK_TRACE => func == 27,
        mt::CGROUP_ARRAY => matches!(func, 37 | 79),
        mt::CGROUP_STORAGE | mt::PERCPU_CGROUP_STORAGE => func == 81,
        mt::DEVMAP | mt::DEVMAP_HASH => matches!(func, 51 | 1),
        mt::CPUMAP => func == 51,
        mt::XSKMAP => matches!(func, 51 | 1),
        mt::ARRAY_OF_MAPS | mt::HASH_OF_MAPS => func == 1,
        mt::SOCKMAP => matches!(func, 52 | 53 | 60 | 82 | 1 | 2 | 3),
        mt::SOCKHASH => matches!(func, 72 | 70 | 71 | 82 | 1 | 2 | 3),
        mt::REUSEPORT_SOCKARRAY => func == 82,
        mt::QUEUE | mt::STACK => matches!(func, 87..=89),
        mt::SK_STORAGE => matches!(func, 107 | 108 | 194),
        mt::INODE_STORAGE => matches!(func, 145 | 146 | 194),
        mt::TASK_STORAGE => matches!(func, 156 | 157 | 194),
        mt::CGRP_STORAGE => matches!(func, 210 | 211 | 194),
        mt::BLOOM_FILTER => matches!(func, 89 | 87),
        _ => true,
    };
    if !by_map {
        return false;
    }
    match func {
        12 => map_type == mt::PROG_ARRAY,
        22 | 25 | 55 | 111 | 121 => map_type == mt::PERF_EVENT_ARRAY,
        130 | 131 | 134 | 198 => map_type == mt::RINGBUF,
        209 => map_type == mt::USER_RINGBUF,
        27 => map_type == mt::STACK_TRACE,
        37 | 79 => map_type == mt::CGROUP_ARRAY,
        51 => matches!(
            map_type,
            mt::DEVMAP | mt::DEVMAP_HASH | mt::CPUMAP | mt::XSKMAP
        ),
        52 | 53 | 60 => map_type == mt::SOCKMAP,
        70..=72 => map_type == mt::SOCKHASH,
        81 => matches!(map_type, mt::CGROUP_STORAGE | mt::PERCPU_CGROUP_STORAGE),
        82 => matches!(
            map_type,
            mt::REUSEPORT_SOCKARRAY | mt::SOCKMAP | mt::SOCKHASH
        ),
        88 => matches!(map_type, mt::QUEUE | mt::STACK),
        87 | 89 => matches!(map_type, mt::QUEUE | mt::STACK | mt::BLOOM_FILTER),
        195 => matches!(
            map_type,
            mt::PERCPU_ARRAY | mt::PERCPU_HASH | mt::LRU_PERCPU_HASH
        ),
        107 | 108 => map_type == mt::SK_STORAGE,
        145 | 146 => map_type == mt::INODE_STORAGE,
        156 | 157 => map_type == mt::TASK_STORAGE,
        210 | 211 => map_type == mt::CGRP_STORAGE,
        _ => true,
    }
}
