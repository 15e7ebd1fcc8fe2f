//! Abstract state: registers, stack frames, references (`struct bpf_reg_state`,
//! `struct bpf_func_state`, `struct bpf_verifier_state`).

use crate::bounds::{fmt_scalar, Bounds};

/// The kernel object a `PTR_TO_BTF_ID` register points to (only what helpers XDP may
/// call can produce).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum BtfObj {
    /// `struct task_struct` (trusted, from `bpf_get_current_task_btf`).
    Task,
    /// `struct pt_regs` (from `bpf_task_pt_regs`).
    PtRegs,
    /// A socket type (from the `bpf_skc_to_*` casts).
    Sock,
    /// `struct vm_area_struct` (the `bpf_find_vma` callback's argument).
    Vma,
}

impl BtfObj {
    /// `reg_type_str` of a non-null pointer to this object.
    pub fn type_name(self) -> &'static str {
        match self {
            BtfObj::Task => "trusted_ptr_",
            _ => "ptr_",
        }
    }
}

/// Register types (`enum bpf_reg_type`, with the `PTR_MAYBE_NULL` flag folded in).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum RegType {
    NotInit,
    Scalar,
    Ctx,
    /// `CONST_PTR_TO_MAP`.
    MapPtr,
    /// Result of a lookup in a map-in-map.
    MapPtrOrNull,
    MapValue,
    MapValueOrNull,
    /// `PTR_TO_MAP_KEY` (callback arguments).
    MapKey,
    Stack,
    Packet,
    PacketMeta,
    PacketEnd,
    /// `PTR_TO_MEM | MEM_RINGBUF` (ring buffer record).
    RingbufMem,
    RingbufMemOrNull,
    Socket,
    SocketOrNull,
    SockCommon,
    SockCommonOrNull,
    /// `PTR_TO_FUNC` (address of a sub-program, for callbacks).
    Func,
    /// `PTR_TO_BTF_ID` (a BTF-typed kernel object); fields are not modelled.
    BtfId(BtfObj),
    /// `PTR_TO_BTF_ID | PTR_MAYBE_NULL`.
    BtfIdOrNull(BtfObj),
    /// A lookup in an XSKMAP before its NULL check; becomes `PTR_TO_XDP_SOCK`.
    MapXskOrNull,
    /// `PTR_TO_XDP_SOCK`: `struct bpf_xdp_sock` (only `queue_id` is readable).
    XdpSock,
    /// `CONST_PTR_TO_DYNPTR` (the dynptr a `bpf_user_ringbuf_drain` callback gets).
    ConstDynptr,
    /// `PTR_TO_MEM` (a dynptr slice from `bpf_dynptr_data`), `mem_size` bytes.
    Mem,
    /// `PTR_TO_MEM | PTR_MAYBE_NULL`.
    MemOrNull,
}

impl RegType {
    /// The kernel's `reg_type_str`.
    pub fn name(self) -> &'static str {
        match self {
            RegType::NotInit => "?",
            RegType::Scalar => "scalar",
            RegType::Ctx => "ctx",
            RegType::MapPtr => "map_ptr",
            RegType::MapPtrOrNull => "map_ptr_or_null",
            RegType::MapValue => "map_value",
            RegType::MapValueOrNull => "map_value_or_null",
            RegType::MapXskOrNull => "map_value_or_null",
            RegType::XdpSock => "xdp_sock",
            RegType::MapKey => "map_key",
            RegType::Stack => "fp",
            RegType::Packet => "pkt",
            RegType::PacketMeta => "pkt_meta",
            RegType::PacketEnd => "pkt_end",
            RegType::RingbufMem => "ringbuf_mem",
            RegType::RingbufMemOrNull => "ringbuf_mem_or_null",
            RegType::Socket => "sock",
            RegType::SocketOrNull => "sock_or_null",
            RegType::SockCommon => "sock_common",
            RegType::SockCommonOrNull => "sock_common_or_null",
            RegType::Func => "func",
            RegType::BtfId(o) => o.type_name(),
            RegType::BtfIdOrNull(_) => "ptr_or_null_",
            RegType::ConstDynptr => "dynptr_ptr",
            RegType::Mem => "mem",
            RegType::MemOrNull => "mem_or_null",
        }
    }
    pub fn is_pointer(self) -> bool {
        !matches!(self, RegType::NotInit | RegType::Scalar)
    }
    pub fn may_be_null(self) -> bool {
        matches!(
            self,
            RegType::MapValueOrNull
                | RegType::MapXskOrNull
                | RegType::MapPtrOrNull
                | RegType::RingbufMemOrNull
                | RegType::SocketOrNull
                | RegType::SockCommonOrNull
                | RegType::BtfIdOrNull(_)
                | RegType::MemOrNull
        )
    }
    pub fn non_null(self) -> RegType {
        match self {
            RegType::MapValueOrNull => RegType::MapValue,
            RegType::MapXskOrNull => RegType::XdpSock,
            RegType::MapPtrOrNull => RegType::MapPtr,
            RegType::RingbufMemOrNull => RegType::RingbufMem,
            RegType::SocketOrNull => RegType::Socket,
            RegType::SockCommonOrNull => RegType::SockCommon,
            RegType::BtfIdOrNull(o) => RegType::BtfId(o),
            RegType::MemOrNull => RegType::Mem,
            t => t,
        }
    }
    pub fn is_pkt(self) -> bool {
        matches!(self, RegType::Packet | RegType::PacketMeta)
    }
    pub fn is_pkt_any(self) -> bool {
        matches!(
            self,
            RegType::Packet | RegType::PacketMeta | RegType::PacketEnd
        )
    }
    /// `reg_not_null` for a register of this type.
    /// The kernel's `reg_not_null` (CONST_PTR_TO_DYNPTR, ctx, stack and packet
    /// pointers are not in it: a comparison of them with 0 explores both branches;
    /// an XDP socket is, as measured on 6.18).
    pub fn not_null(self) -> bool {
        matches!(
            self,
            RegType::Socket
                | RegType::MapValue
                | RegType::MapKey
                | RegType::SockCommon
                | RegType::XdpSock
                | RegType::RingbufMem
                | RegType::MapPtr
                | RegType::BtfId(BtfObj::Task)
                | RegType::Mem
        )
    }
}

/// Packet range markers set by comparisons that prove a pointer is at/beyond `data_end`.
pub const AT_PKT_END: i32 = -1;
pub const BEYOND_PKT_END: i32 = -2;

#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Reg {
    pub ty: RegType,
    /// Fixed offset of a pointer.
    pub off: i32,
    /// Scalar value, or the variable part of a pointer's offset.
    pub b: Bounds,
    /// Identity shared by copies (null checks, packet ranges, linked scalars).
    pub id: u32,
    /// Reference this pointer holds (0 if none).
    pub ref_obj_id: u32,
    /// Verified packet range (bytes after `off` known to be below `data_end`).
    pub range: i32,
    /// Map index (map pointers and map values).
    pub map: Option<usize>,
    /// Frame a stack pointer points into.
    pub frameno: u8,
    /// Size of PTR_TO_MEM memory.
    pub mem_size: u32,
    /// Sub-program entry for PTR_TO_FUNC.
    pub subprog: usize,
    /// Scalar whose exact range matters to some later check (kernel `precise`); only
    /// precise scalars of an explored state constrain pruning.
    pub precise: bool,
    /// Dynptr a slice (`Mem`) was taken from (`dynptr_id`); for dynptr stack slots and
    /// `ConstDynptr`, the dynptr's kind (see `check::dynptr`).
    pub dynptr_id: u32,
    /// Type flags of `Mem`/`MemOrNull` ([`MEM_RDONLY`], [`MEM_PKT`]).
    pub mem_flags: u8,
}

/// `MEM_RDONLY`: a slice from `bpf_dynptr_slice` may not be written.
pub const MEM_RDONLY: u8 = 1;
/// `DYNPTR_TYPE_XDP` on a `PTR_TO_MEM`: a slice of the packet, which dies with packet
/// pointers when a call changes packet data (`reg_is_dynptr_slice_pkt`).
pub const MEM_PKT: u8 = 2;
/// A dynptr-typed `PTR_TO_MEM` (`DYNPTR_TYPE_*`: a kfunc slice). The kernel's
/// `destroy_if_dynptr_stack_slot` only invalidates plain `PTR_TO_MEM` slices
/// (`bpf_dynptr_data`), so overwriting the dynptr leaves these alive.
pub const MEM_DYNPTR_TYPED: u8 = 4;

impl Reg {
    pub fn not_init() -> Reg {
        Reg {
            ty: RegType::NotInit,
            off: 0,
            b: Bounds::unknown(),
            id: 0,
            ref_obj_id: 0,
            range: 0,
            map: None,
            frameno: 0,
            mem_size: 0,
            subprog: 0,
            precise: false,
            dynptr_id: 0,
            mem_flags: 0,
        }
    }
    pub fn unknown() -> Reg {
        Reg {
            ty: RegType::Scalar,
            ..Reg::not_init()
        }
    }
    pub fn konst(v: u64) -> Reg {
        Reg {
            ty: RegType::Scalar,
            b: Bounds::konst(v),
            ..Reg::not_init()
        }
    }
    /// A pointer of type `ty` with offset zero (`mark_reg_known_zero` + type).
    pub fn ptr(ty: RegType) -> Reg {
        Reg {
            ty,
            b: Bounds::konst(0),
            ..Reg::not_init()
        }
    }
    /// The kernel's `reg_type_str` of this register (type flags included).
    pub fn type_str(&self) -> String {
        if self.mem_flags & MEM_RDONLY != 0 {
            format!("rdonly_{}", self.ty.name())
        } else {
            self.ty.name().to_string()
        }
    }
    pub fn is_scalar(&self) -> bool {
        self.ty == RegType::Scalar
    }
    pub fn is_const_zero(&self) -> bool {
        self.is_scalar() && self.b.is_const() && self.b.var_off.value == 0
    }

    /// Kernel-log style rendering, e.g. `pkt(off=14,r=34)`, `scalar(umax=255)`, `fp-8`.
    pub fn describe(&self, maps: &[bpfkit_object::model::MapDef]) -> String {
        let mut extra: Vec<String> = vec![];
        if self.id != 0 {
            extra.push(format!("id={}", self.id));
        }
        if self.ref_obj_id != 0 {
            extra.push(format!("ref_obj_id={}", self.ref_obj_id));
        }
        match self.ty {
            RegType::NotInit => return "uninitialized".into(),
            RegType::Scalar => {
                let s = fmt_scalar(&self.b);
                if extra.is_empty() {
                    return s;
                }
                if let Some(inner) = s.strip_prefix("scalar(") {
                    let inner = inner.trim_end_matches(')');
                    let mut v = extra;
                    if !inner.is_empty() {
                        v.push(inner.to_string());
                    }
                    return format!("scalar({})", v.join(","));
                }
                return s;
            }
            RegType::Stack if self.b.is_const() && self.b.var_off.value == 0 => {
                return format!("fp{}", self.off);
            }
            _ => {}
        }
        if self.ty.is_pkt() || self.off != 0 {
            extra.push(format!("off={}", self.off));
        }
        if self.ty.is_pkt() {
            extra.push(format!("r={}", self.range));
        }
        if let Some(m) = self.map {
            if let Some(md) = maps.get(m) {
                extra.push(format!("map={}", md.name));
                if matches!(self.ty, RegType::MapValue | RegType::MapValueOrNull) {
                    extra.push(format!("vs={}", md.value_size));
                } else {
                    extra.push(format!("ks={},vs={}", md.key_size, md.value_size));
                }
            }
        }
        if matches!(self.ty, RegType::RingbufMem | RegType::RingbufMemOrNull) {
            extra.push(format!("size={}", self.mem_size));
        }
        if !self.b.is_const() {
            let s = fmt_scalar(&self.b);
            let inner = s.trim_start_matches("scalar(").trim_end_matches(')');
            if !inner.is_empty() {
                extra.push(inner.to_string());
            }
        } else if self.b.var_off.value != 0 {
            extra.push(format!("var={}", self.b.var_off.value as i64));
        }
        format!("{}({})", self.type_str(), extra.join(","))
    }
}

/// Per-byte stack slot types (`STACK_*`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Slot {
    Invalid,
    Spill,
    Misc,
    Zero,
    /// `STACK_DYNPTR`: half of a 16-byte `struct bpf_dynptr` (see `check::dynptr`).
    Dynptr,
}

pub const REG_SIZE: usize = 8;
pub const MAX_BPF_STACK: i32 = 512;
pub const SLOTS: usize = (MAX_BPF_STACK as usize) / REG_SIZE;

#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct StackSlot {
    /// Index `i` describes the byte at `fp - 8*spi - 8 + (7 - i)`... kernel layout:
    /// byte at address `a` (negative) lives in `slot_type[(-a - 1) % 8]`.
    pub ty: [Slot; REG_SIZE],
    pub spilled: Reg,
}

impl Default for StackSlot {
    fn default() -> Self {
        StackSlot {
            ty: [Slot::Invalid; REG_SIZE],
            spilled: Reg::not_init(),
        }
    }
}

impl StackSlot {
    pub fn is_spilled(&self) -> bool {
        self.ty[REG_SIZE - 1] == Slot::Spill
    }
}

#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Frame {
    pub regs: [Reg; 11],
    /// Slots 0.. (slot `spi` covers `fp - 8*spi - 8 .. fp - 8*spi`), stored only up to
    /// the deepest slot written; use [`Frame::slot`] / [`Frame::slot_mut`].
    pub stack: Vec<StackSlot>,
    /// Bytes of stack touched (rounded up to 8), `allocated_stack`.
    pub allocated: i32,
    /// Instruction index of the call that created this frame (for frame > 0).
    pub callsite: usize,
    pub frameno: u8,
    /// Sub-program index this frame executes.
    pub subprog: usize,
    /// Frame of a synchronous callback (bpf_loop): returns to its call instruction.
    pub in_callback: bool,
    /// Frame 0 of an asynchronous callback (timer), verified as its own program.
    pub async_cb: bool,
    /// `callback_depth`: how many times the callback called from this frame has been
    /// simulated on this path (bounds `bpf_loop` by its R1).
    pub callback_depth: u32,
}

/// An untouched stack slot (what slots past `Frame::stack`'s length hold).
fn empty_slot() -> &'static StackSlot {
    static EMPTY: std::sync::OnceLock<StackSlot> = std::sync::OnceLock::new();
    EMPTY.get_or_init(StackSlot::default)
}

impl Frame {
    /// Slot `spi` (8 bytes at `fp - 8*spi - 8`); slots never written are invalid.
    pub fn slot(&self, spi: usize) -> &StackSlot {
        self.stack.get(spi).unwrap_or_else(|| empty_slot())
    }
    /// Slot `spi` for writing; the stored stack grows to include it. (Only the slots
    /// up to the deepest one touched are stored, so copying a state is cheap.)
    pub fn slot_mut(&mut self, spi: usize) -> &mut StackSlot {
        if spi >= self.stack.len() {
            self.stack.resize(spi + 1, StackSlot::default());
        }
        &mut self.stack[spi]
    }
    pub fn new(frameno: u8, callsite: usize, subprog: usize) -> Frame {
        let mut regs: [Reg; 11] = std::array::from_fn(|_| Reg::not_init());
        regs[10] = Reg::ptr(RegType::Stack);
        regs[10].frameno = frameno;
        Frame {
            regs,
            stack: Vec::new(),
            allocated: 0,
            callsite,
            frameno,
            subprog,
            in_callback: false,
            async_cb: false,
            callback_depth: 0,
        }
    }
}

#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct RefState {
    pub id: u32,
    pub insn: usize,
}

/// One executed instruction, for precision backtracking.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Hist {
    pub insn: u32,
    /// Frame the instruction executed in.
    pub frame: u8,
    /// Stack slot a register was spilled to or filled from, as the kernel records
    /// it (`INSN_F_STACK_ACCESS`): (frame, slot index). Other stack accesses: None.
    pub slot: Option<(u8, u8)>,
    /// Registers and spilled scalars linked (same scalar id) to the operands of a
    /// conditional jump: 0 none, else index + 1 into the verifier's table of sets.
    pub linked: u32,
}

/// One branch decision on the path that led to a state.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, serde::Serialize)]
pub struct Decision {
    pub insn: usize,
    pub taken: bool,
}

#[derive(Clone, Debug)]
pub struct State {
    pub frames: Vec<Frame>,
    pub refs: Vec<RefState>,
    /// Index of the parent checkpoint in the explored-state arena.
    pub parent: Option<usize>,
    /// Branch decisions along this path (most recent last).
    pub path: Vec<Decision>,
    /// Instructions executed since the parent checkpoint.
    pub hist: Vec<Hist>,
    /// The `bpf_spin_lock` held: (map index, id of the map value pointer).
    pub lock: Option<(usize, u32)>,
    /// `callback_unroll_depth`: callback iterations entered on this path; states of
    /// different iterations are never an infinite loop.
    pub cb_unroll: u32,
    /// `may_goto_depth`: may_goto fallthroughs (extra loop iterations) taken on this
    /// path; states of different depths are never an infinite loop.
    pub may_goto_depth: u32,
    /// A path the kernel walks only as it could run under speculative execution
    /// (`bpf_verifier_state.speculative`, see `check/spectre.rs`).
    pub speculative: bool,
}

impl State {
    /// The state at the start of a verified function (the program or a global function
    /// verified on its own): one frame, nothing held, no history.
    pub fn entry(frame: Frame) -> State {
        State {
            frames: vec![frame],
            refs: vec![],
            parent: None,
            path: vec![],
            hist: vec![],
            lock: None,
            cb_unroll: 0,
            may_goto_depth: 0,
            speculative: false,
        }
    }

    pub fn cur(&self) -> &Frame {
        self.frames.last().expect("at least one frame")
    }
    pub fn cur_mut(&mut self) -> &mut Frame {
        self.frames.last_mut().expect("at least one frame")
    }
    pub fn curframe(&self) -> usize {
        self.frames.len() - 1
    }
    /// Every register and spilled register in every frame.
    pub fn for_each_reg(&mut self, mut f: impl FnMut(&mut Reg)) {
        for fr in &mut self.frames {
            for r in fr.regs.iter_mut() {
                f(r);
            }
            for s in fr.stack.iter_mut() {
                if s.is_spilled() {
                    f(&mut s.spilled);
                }
            }
        }
    }
}
