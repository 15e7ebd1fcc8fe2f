//! The run-time context generated code sees (`JitCtx`, pinned in `r12`) and the
//! `extern "sysv64"` trampolines it calls: helpers, checked memory accesses, frames.
//!
//! Every trampoline calls the VM's own implementation (`bpfkit_vm::helpers::call`,
//! `bpfkit_vm::interp::{load, store}`, `Runtime::enter_frame`): there is no second copy of
//! any helper or of the memory checks. A trampoline never unwinds into generated code: on a
//! fault it records the fault in the context and returns; the generated code tests
//! `JitCtx::faulted` after the call and leaves through the fault exit.

use crate::callback::JitRunner;
use bpfkit_isa::opcode::BPF_CMPXCHG;
use bpfkit_vm::error::{Fault, FaultKind};
use bpfkit_vm::fastpath;
use bpfkit_vm::helpers;
use bpfkit_vm::interp;
use bpfkit_vm::memory::{Region, RegionKind};
use bpfkit_vm::runtime::{handle_to_func, Runtime, MAX_CALL_FRAMES, STACK_SIZE};
use std::collections::HashMap;

/// Field offsets of [`JitCtx`] used by generated code (checked by a unit test).
pub const OFF_CTX_BASE: i32 = 8;
pub const OFF_DEPTH: i32 = 16;
pub const OFF_FAULTED: i32 = 24;
pub const OFF_ENTRY_RSP: i32 = 32;
pub const OFF_TAIL_TABLE: i32 = 40;
pub const OFF_HELPER_ID: i32 = 48;
pub const OFF_LOC: i32 = 56;
pub const OFF_BUDGET: i32 = 64;
pub const OFF_CALLX_VALUE: i32 = 72;
pub const OFF_CALLX_ADDR: i32 = 80;
pub const OFF_STATIC_FAULT: i32 = 88;
pub const OFF_SAVED: i32 = 96;
pub const OFF_XDP_MD: i32 = 144;
pub const OFF_CPU: i32 = 184;
pub const OFF_TAIL_CALLS: i32 = 192;
pub const OFF_ARENA_BASE: i32 = 200;
pub const OFF_ARENA_LIMIT: i32 = 208;
pub const OFF_MAY_GOTO: i32 = 216;
pub const OFF_TOUCHED: i32 = 280;
pub const OFF_REP_LEFT: i32 = 288;
pub const OFF_REP_R1: i32 = 296;
pub const OFF_REP_TARGET: i32 = 304;
pub const OFF_REP_BUDGET: i32 = 312;

/// The context of one JIT run. `#[repr(C)]` so generated code can address its leading
/// fields at the fixed offsets above.
#[repr(C)]
pub struct JitCtx {
    pub rt: *mut Runtime,
    /// Address of `struct xdp_md` (0 in raw mode): fast-mode 4-byte loads inside
    /// `[ctx_base, ctx_base + 24)` are context loads and go to the slow path.
    pub ctx_base: u64,
    /// Current call depth (0 = the entry function).
    pub depth: u64,
    /// Non-zero once a trampoline recorded a fault.
    pub faulted: u64,
    /// `rsp` of the entry trampoline, restored by the fault exit.
    pub entry_rsp: u64,
    /// Body address of every program (tail calls jump there).
    pub tail_table: *const u64,
    pub helper_id: u64,
    /// `prog << 32 | pc` of the instruction calling a trampoline.
    pub loc: u64,
    /// Checked mode: instructions left before `InsnLimit` (decremented on back edges).
    pub budget: i64,
    pub callx_value: u64,
    pub callx_addr: u64,
    /// 1 + index into the static fault table, set by a fault stub.
    pub static_fault: u64,
    /// Save area for r0..r5 around trampoline calls.
    pub saved: [u64; 6],
    /// Fast mode: what loads of `struct xdp_md` fields 0..20 return (data, data_end,
    /// data_meta, ingress_ifindex, rx_queue_index), one u64 per 4-byte field, kept up to
    /// date after every helper call (helpers move the packet pointers).
    pub xdp_md: [u64; 5],
    /// The run's CPU (fast mode: index into per-CPU array bases).
    pub cpu: u64,
    /// Fast mode: tail calls taken in this run (the inline tail call counts here; the
    /// runtime's counter is synchronised around the generic path and at the end).
    pub tail_calls: u64,
    /// Fast mode: where the confinement span starts ([`bpfkit_vm::arena::jit_base`]).
    pub arena_base: u64,
    /// Fast mode: [`bpfkit_vm::arena::jit_limit`], reloaded at the start of every run and
    /// after every call into Rust (allocations only make it grow, so a stale copy can
    /// only refuse an access, never allow one outside read-write memory).
    pub arena_limit: u64,
    /// Per call depth (masked with 7): `may_goto` iterations left in that frame, set to
    /// `BPF_MAX_LOOPS` on function entry and when a tail call enters a program.
    pub may_goto: [u64; 8],
    /// Fast mode: non-zero once generated code called into Rust (a trampoline) since
    /// the repeat loop last reset it: the runtime's per-run state may have changed, so
    /// the next repeated run starts with [`tr_rerun`].
    pub touched: u64,
    /// Fast mode's repeat loop (`Compiled::rep_entry`): runs left, r1, the entry
    /// function's prologue and the instruction budget of each run.
    pub rep_left: u64,
    pub rep_r1: u64,
    pub rep_target: u64,
    pub rep_budget: i64,
    // ---- Rust-only fields below ----
    pub fault: Option<Box<Fault>>,
    /// Fast mode: stack regions are registered for the whole run (not per frame).
    pub fast: bool,
    /// Fast mode: frames `0..frames` have their stack regions registered in this run.
    /// Only generic helpers (which check their pointer arguments against the regions)
    /// and the out-of-line checked paths need them, and only up to the current depth, so
    /// such a call registers what is missing.
    pub frames: usize,
    /// (prog, pc) -> address of the function prologue, for `callx`.
    pub prologues: *const HashMap<(usize, usize), u64>,
    /// Callbacks (`crate::callback`): the entry trampoline, the callback shim and the
    /// static fault table (set once when the code is built; all live as long as the `Jit`).
    pub entry: u64,
    pub cb_shim: u64,
    pub static_faults: *const crate::compile::StaticFault,
    pub n_static_faults: usize,
    /// Callback invocations that ran as generated code (for tests and listings).
    pub cb_calls: u64,
}

impl JitCtx {
    pub fn new() -> JitCtx {
        JitCtx {
            rt: std::ptr::null_mut(),
            ctx_base: 0,
            depth: 0,
            faulted: 0,
            entry_rsp: 0,
            tail_table: std::ptr::null(),
            helper_id: 0,
            loc: 0,
            budget: 0,
            callx_value: 0,
            callx_addr: 0,
            static_fault: 0,
            saved: [0; 6],
            xdp_md: [0; 5],
            cpu: 0,
            tail_calls: 0,
            arena_base: bpfkit_vm::arena::jit_base(),
            arena_limit: 0,
            may_goto: [0; 8],
            touched: 0,
            rep_left: 0,
            rep_r1: 0,
            rep_target: 0,
            rep_budget: 0,
            fault: None,
            fast: false,
            frames: 0,
            prologues: std::ptr::null(),
            entry: 0,
            cb_shim: 0,
            static_faults: std::ptr::null(),
            n_static_faults: 0,
            cb_calls: 0,
        }
    }
}

impl Default for JitCtx {
    fn default() -> Self {
        Self::new()
    }
}

/// Builds a fault located at `loc` (`prog << 32 | pc`) the way the interpreter does.
pub fn make_fault(rt: &Runtime, prog: usize, pc: usize, kind: FaultKind) -> Fault {
    let p = &rt.programs[prog];
    let insn = p.insns.get(pc).copied().unwrap_or_default();
    let text = bpfkit_isa::insn::decode_one(&insn, p.insns.get(pc + 1))
        .ok()
        .map(|(i, _)| bpfkit_asm::disasm::llvm(&i));
    Fault {
        prog: p.name.clone(),
        pc,
        insn,
        text,
        origin: p.origins.get(pc).cloned().flatten(),
        kind,
    }
}

fn split_loc(loc: u64) -> (usize, usize) {
    ((loc >> 32) as usize, (loc & 0xffff_ffff) as usize)
}

/// Records a fault (the first one wins).
pub(crate) fn set_fault(ctx: &mut JitCtx, rt: &Runtime, kind: FaultKind) {
    if ctx.faulted == 0 {
        let (prog, pc) = split_loc(ctx.loc);
        ctx.fault = Some(Box::new(make_fault(rt, prog, pc, kind)));
        ctx.faulted = 1;
    }
}

/// Registers the stack regions of frames `from..to` (fast mode keeps them accessible for
/// the rest of the run; the verifier already proved the accesses).
pub fn register_frames(rt: &mut Runtime, from: usize, to: usize) {
    for d in from..to {
        let top = rt.frame_top(d);
        rt.regions.insert(Region::new(
            top - STACK_SIZE,
            STACK_SIZE,
            RegionKind::Stack(d as u8),
            true,
        ));
    }
}

/// `call helper`: r1..r5 arrive in the SysV argument registers unchanged, the context as
/// the sixth argument (r9); the helper id is in `ctx.helper_id`.
pub(crate) extern "sysv64" fn tr_helper(
    a1: u64,
    a2: u64,
    a3: u64,
    a4: u64,
    a5: u64,
    ctx: *mut JitCtx,
) -> u64 {
    // SAFETY: generated code passes the context it was given by `Jit::enter`, which lives
    // on the Rust stack for the whole run; `rt` points at the engine's runtime, which the
    // engine does not touch while generated code runs (it holds `&mut self`).
    let ctx = unsafe { &mut *ctx };
    // SAFETY: see above.
    let rt = unsafe { &mut *ctx.rt };
    let (prog, _) = split_loc(ctx.loc);
    rt.depth = ctx.depth as usize;
    rt.current_prog = prog;
    let id = ctx.helper_id as i32;
    // Helpers that check no pointer against the regions do not need the fast mode's
    // frames registered (`bpf_xdp_adjust_*` then cost what the adjustment costs).
    if !helpers::touches_no_memory(id) {
        ensure_frames(ctx, rt);
    }
    let r = if helpers::runs_callbacks(id) {
        // The callbacks run as generated code (`crate::callback`), re-entering through the
        // entry trampoline on the same context.
        let r = helpers::call_with(rt, id, &[a1, a2, a3, a4, a5], &mut JitRunner::new(ctx));
        if ctx.fast {
            // A callback the interpreter ran (one without a compiled prologue) removed
            // its frame's region.
            ctx.frames = ctx.frames.min(ctx.depth as usize + 1);
        }
        r
    } else {
        helpers::call(rt, id, &[a1, a2, a3, a4, a5])
    };
    sync_xdp_md(ctx, rt);
    match r {
        Ok(v) => v,
        Err(k) => {
            set_fault(ctx, rt, k);
            0
        }
    }
}

/// Fast mode: helper `ID` (one of [`helpers::DIRECT`]) through a trampoline of its own.
/// It does what [`tr_helper`] does for that id, minus what the constant id makes
/// unnecessary: no id in the context, no callback or frame test for helpers that need
/// none, no dispatch over every helper ([`helpers::call_direct`] folds to the one body),
/// and the context fields refreshed only after helpers that move the packet.
pub(crate) extern "sysv64" fn tr_direct<const ID: i32>(
    a1: u64,
    a2: u64,
    a3: u64,
    a4: u64,
    a5: u64,
    ctx: *mut JitCtx,
) -> u64 {
    // SAFETY: as in `tr_helper`.
    let ctx = unsafe { &mut *ctx };
    // SAFETY: as in `tr_helper`.
    let rt = unsafe { &mut *ctx.rt };
    rt.depth = ctx.depth as usize;
    rt.current_prog = split_loc(ctx.loc).0;
    if ID == helpers::XDP_LOAD_BYTES || ID == helpers::XDP_STORE_BYTES {
        // The buffer confined to the arena, not checked against the regions: no frames.
        if let Some(v) = fastpath::xdp_load_store(rt, a2, a3, a4, ID == helpers::XDP_STORE_BYTES) {
            return v;
        }
    }
    if ID == helpers::MAP_PUSH_ELEM || ID == helpers::MAP_POP_ELEM || ID == helpers::MAP_PEEK_ELEM {
        // The value pointer confined to the arena, not checked against the regions.
        let r = if ID == helpers::MAP_PUSH_ELEM {
            fastpath::map_push(rt, a1, a2, a3)
        } else {
            fastpath::map_pop_peek(rt, a1, a2, ID == helpers::MAP_POP_ELEM)
        };
        if let Some(v) = r {
            return v;
        }
    }
    if !helpers::touches_no_memory(ID) {
        ensure_frames(ctx, rt);
    }
    let r = helpers::call_direct(rt, ID, &[a1, a2, a3, a4, a5]);
    if helpers::moves_packet(ID) {
        sync_xdp_md(ctx, rt);
    }
    match r {
        Ok(v) => v,
        Err(k) => direct_fault(ctx, rt, k),
    }
}

#[cold]
#[inline(never)]
fn direct_fault(ctx: &mut JitCtx, rt: &Runtime, k: FaultKind) -> u64 {
    set_fault(ctx, rt, k);
    0
}

/// The trampoline of helper `id` in fast mode when it has one of its own ([`tr_direct`]).
pub(crate) fn direct_tramp(id: i32) -> Option<u64> {
    use helpers as h;
    macro_rules! t {
        ($($c:ident),*) => {
            match id {
                $(h::$c => Some(tr_direct::<{ h::$c }> as *const () as u64),)*
                _ => None,
            }
        };
    }
    t!(
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
        CHECK_MTU
    )
}

/// Refreshes the fast-mode copy of the context fields from the runtime.
pub fn sync_xdp_md(ctx: &mut JitCtx, rt: &Runtime) {
    if let Some(x) = &rt.xdp {
        ctx.xdp_md = [
            x.data,
            x.data_end,
            x.data_meta,
            x.ingress_ifindex as u64,
            x.rx_queue_index as u64,
        ];
    }
}

/// Fast mode: registers the stack regions of frames up to the current depth that are not
/// registered yet, before a call that checks memory against them.
#[inline]
pub fn ensure_frames(ctx: &mut JitCtx, rt: &mut Runtime) {
    let want = (ctx.depth as usize + 1).min(MAX_CALL_FRAMES);
    if ctx.fast && ctx.frames < want {
        register_frames(rt, ctx.frames, want);
        ctx.frames = want;
    }
}

/// `bpf_tail_call`: returns the program to continue with, or `u64::MAX` to fall through.
pub(crate) extern "sysv64" fn tr_tail_call(
    a1: u64,
    a2: u64,
    a3: u64,
    a4: u64,
    a5: u64,
    ctx: *mut JitCtx,
) -> u64 {
    // SAFETY: as in `tr_helper`.
    let ctx = unsafe { &mut *ctx };
    // SAFETY: as in `tr_helper`.
    let rt = unsafe { &mut *ctx.rt };
    let (prog, _) = split_loc(ctx.loc);
    rt.depth = ctx.depth as usize;
    rt.current_prog = prog;
    if ctx.fast {
        rt.tail_calls = ctx.tail_calls as u32;
    }
    let r = helpers::tail_call_target(rt, &[a1, a2, a3, a4, a5]);
    if ctx.fast {
        ctx.tail_calls = rt.tail_calls as u64;
    }
    match r {
        Ok(Some(p)) => p as u64,
        Ok(None) => u64::MAX,
        Err(k) => {
            set_fault(ctx, rt, k);
            u64::MAX
        }
    }
}

/// `callx`: a function handle of the running program (sets `callx_addr` to its prologue)
/// or a helper number (calls it; r1..r5 come from the save area).
pub(crate) extern "sysv64" fn tr_callx(ctx: *mut JitCtx) -> u64 {
    // SAFETY: as in `tr_helper`.
    let ctx = unsafe { &mut *ctx };
    // SAFETY: as in `tr_helper`.
    let rt = unsafe { &mut *ctx.rt };
    let (prog, pc) = split_loc(ctx.loc);
    let v = ctx.callx_value;
    ctx.callx_addr = 0;
    if let Some((p, t)) = handle_to_func(v) {
        if p == prog {
            let len = rt.programs[prog].insns.len();
            if t >= len {
                set_fault(
                    ctx,
                    rt,
                    FaultKind::JumpOutOfRange {
                        target: t as i64,
                        len,
                    },
                );
                return 0;
            }
            if ctx.depth as usize + 1 >= MAX_CALL_FRAMES {
                set_fault(ctx, rt, FaultKind::CallDepth(MAX_CALL_FRAMES));
                return 0;
            }
            // SAFETY: `prologues` points at the engine's table, alive during the run.
            let table = unsafe { &*ctx.prologues };
            match table.get(&(p, t)) {
                Some(&a) => ctx.callx_addr = a,
                None => set_fault(
                    ctx,
                    rt,
                    FaultKind::Unsupported(format!(
                        "callx to slot {t}, which no lddw or call names as a function (pc {pc})"
                    )),
                ),
            }
            return 0;
        }
    }
    let value = v as i64;
    let s = ctx.saved;
    if value == helpers::TAIL_CALL as i64 {
        set_fault(
            ctx,
            rt,
            FaultKind::Unsupported(
                "bpf_tail_call through callx is not supported by the JIT".into(),
            ),
        );
        return 0;
    }
    let Ok(id) = i32::try_from(value) else {
        set_fault(ctx, rt, FaultKind::UnknownHelper(value));
        return 0;
    };
    ctx.helper_id = id as u64;
    tr_helper(s[1], s[2], s[3], s[4], s[5], ctx)
}

/// Checked load: `meta` = size | memsx << 8.
pub(crate) extern "sysv64" fn tr_load(ctx: *mut JitCtx, addr: u64, meta: u64) -> u64 {
    // SAFETY: as in `tr_helper`.
    let ctx = unsafe { &mut *ctx };
    // SAFETY: as in `tr_helper`.
    let rt = unsafe { &mut *ctx.rt };
    let size = meta & 0xff;
    ensure_frames(ctx, rt);
    // The interpreter's inline check first (active stack frames, the packet, the map
    // value accessed last); anything else, and every fault, takes the full check.
    let fast = if rt.regions.check_fast(addr, size, false) {
        // SAFETY: `check_fast` proved `[addr, addr + size)` lies inside a live region,
        // backed by memory the runtime owns while the region is registered.
        Ok(unsafe { bpfkit_vm::memory::raw_load(addr, size) })
    } else {
        interp::load_ext(rt, addr, size, meta & 0x100 != 0)
    };
    match fast {
        Ok(v) => {
            if meta & 0x100 != 0 {
                match size {
                    1 => v as u8 as i8 as i64 as u64,
                    2 => v as u16 as i16 as i64 as u64,
                    4 => v as u32 as i32 as i64 as u64,
                    _ => v,
                }
            } else {
                v
            }
        }
        Err(k) => {
            set_fault(ctx, rt, k);
            0
        }
    }
}

/// Checked store of the low `size` bytes of `value`.
pub(crate) extern "sysv64" fn tr_store(ctx: *mut JitCtx, addr: u64, value: u64, size: u64) {
    // SAFETY: as in `tr_helper`.
    let ctx = unsafe { &mut *ctx };
    // SAFETY: as in `tr_helper`.
    let rt = unsafe { &mut *ctx.rt };
    ensure_frames(ctx, rt);
    if rt.regions.check_fast(addr, size, true) {
        // SAFETY: `check_fast` proved `[addr, addr + size)` lies inside a live writable
        // region (never the context), backed by memory the runtime owns.
        unsafe { bpfkit_vm::memory::raw_store(addr, size, value) };
        return;
    }
    if let Err(k) = interp::store(rt, addr, size, value) {
        set_fault(ctx, rt, k);
    }
}

/// Checked mode: the checks the interpreter makes before an atomic read-modify-write
/// (`meta` = size | imm << 8). The operation itself then runs inline (see `compile.rs`
/// on why without `lock`).
pub(crate) extern "sysv64" fn tr_atomic_check(ctx: *mut JitCtx, addr: u64, meta: u64, r0: u64) {
    // SAFETY: as in `tr_helper`.
    let ctx = unsafe { &mut *ctx };
    // SAFETY: as in `tr_helper`.
    let rt = unsafe { &mut *ctx.rt };
    let size = meta & 0xff;
    let imm = (meta >> 8) as u32 as i32;
    ensure_frames(ctx, rt);
    if size != 4 && size != 8 {
        let k = FaultKind::Unsupported(format!(
            "atomic operation {imm:#x} on {size} bytes (only 4 and 8)"
        ));
        set_fault(ctx, rt, k);
        return;
    }
    // The common case (a counter in a map value or on the stack): the interpreter's
    // inline check for a writable region that is not the packet (`check_fast` never
    // answers for the context or the metadata) proves both the read and the write.
    if rt.regions.check_fast(addr, size, true) && !rt.regions.in_packet(addr) {
        return;
    }
    if let Some(r) = rt.regions.find(addr) {
        if matches!(
            r.kind,
            RegionKind::Context | RegionKind::Packet | RegionKind::Meta
        ) {
            let k = FaultKind::Unsupported(format!(
                "atomic operation on the {} is not allowed",
                r.kind
            ));
            set_fault(ctx, rt, k);
            return;
        }
    }
    let old = match rt.regions.load(addr, size) {
        Ok(v) => v,
        Err(e) => {
            set_fault(ctx, rt, FaultKind::Memory(e));
            return;
        }
    };
    if meta & 0x1_0000_0000_0000 != 0 {
        // Unknown operation: the caller raises its own fault after this read check.
        return;
    }
    let mask = if size == 4 { 0xffff_ffffu64 } else { u64::MAX };
    let writes = imm != BPF_CMPXCHG || old == r0 & mask;
    if writes {
        if let Err(e) = rt.regions.check(addr, size, true) {
            set_fault(ctx, rt, FaultKind::Memory(e));
        }
    }
}

/// Checked mode: a new frame's stack (zeroed and registered, as the interpreter does).
pub(crate) extern "sysv64" fn tr_enter_frame(ctx: *mut JitCtx) {
    // SAFETY: as in `tr_helper`.
    let ctx = unsafe { &mut *ctx };
    // SAFETY: as in `tr_helper`.
    let rt = unsafe { &mut *ctx.rt };
    if let Err(k) = rt.enter_frame(ctx.depth as usize) {
        set_fault(ctx, rt, k);
    }
}

/// Checked mode: the frame returned, its stack is no longer accessible.
pub(crate) extern "sysv64" fn tr_leave_frame(ctx: *mut JitCtx) {
    // SAFETY: as in `tr_helper`.
    let ctx = unsafe { &mut *ctx };
    // SAFETY: as in `tr_helper`.
    let rt = unsafe { &mut *ctx.rt };
    rt.leave_frame(ctx.depth as usize);
}

/// Fast mode: `bpf_map_lookup_elem` on map `map` (a type `fastpath::lookup_supported`
/// accepts); `key` arrives in rsi unchanged from r2. A key pointer outside the engines'
/// memory takes the generic helper, which reports the fault (`ctx.loc` is set).
pub(crate) extern "sysv64" fn tr_fast_lookup(
    map: u64,
    key: u64,
    ctx: *mut JitCtx,
    loc: u64,
) -> u64 {
    // SAFETY: as in `tr_helper`.
    let c = unsafe { &mut *ctx };
    // SAFETY: as in `tr_helper`.
    let rt = unsafe { &mut *c.rt };
    // `map` is the index generated code compiled in for this call site after checking
    // r1 against that map's handle.
    match fastpath::map_lookup(rt, map as usize, key) {
        Some(r) => r,
        None => {
            c.loc = loc;
            generic_map_op(ctx, helpers::MAP_LOOKUP_ELEM, map, key, 0, 0)
        }
    }
}

/// Fast mode: `bpf_map_update_elem` (r1 replaced by the map index, r5 by the context;
/// the location in the sixth argument).
pub(crate) extern "sysv64" fn tr_fast_update(
    map: u64,
    key: u64,
    value: u64,
    flags: u64,
    ctx: *mut JitCtx,
    loc: u64,
) -> u64 {
    // SAFETY: as in `tr_helper`.
    let c = unsafe { &mut *ctx };
    // SAFETY: as in `tr_helper`.
    let rt = unsafe { &mut *c.rt };
    match fastpath::map_update(rt, map as usize, key, value, flags) {
        Some(r) => r,
        None => {
            c.loc = loc;
            generic_map_op(ctx, helpers::MAP_UPDATE_ELEM, map, key, value, flags)
        }
    }
}

/// A fast map operation whose pointers were not inside the engines' memory: the generic
/// helper, with the region checks and faults of the interpreter.
#[cold]
#[inline(never)]
fn generic_map_op(ctx: *mut JitCtx, id: i32, map: u64, a2: u64, a3: u64, a4: u64) -> u64 {
    // SAFETY: as in `tr_helper`.
    unsafe { (*ctx).helper_id = id as u64 };
    tr_helper(
        bpfkit_vm::maps::map_handle(map as usize),
        a2,
        a3,
        a4,
        0,
        ctx,
    )
}

/// Fast mode: a map lookup, update or delete (`ctx.helper_id`) where the compiler did not
/// know the map (e.g. an inner map of a map-in-map): the direct path when r1 is a map
/// handle of a type it serves and the pointers are inside the engines' memory, else the
/// generic helper.
pub(crate) extern "sysv64" fn tr_map_dyn(
    a1: u64,
    a2: u64,
    a3: u64,
    a4: u64,
    a5: u64,
    ctx: *mut JitCtx,
) -> u64 {
    {
        // SAFETY: as in `tr_helper`.
        let c = unsafe { &mut *ctx };
        // SAFETY: as in `tr_helper`.
        let rt = unsafe { &mut *c.rt };
        if let Some(m) = bpfkit_vm::maps::handle_to_index(a1).filter(|&m| m < rt.maps.maps.len()) {
            let t = rt.maps.maps[m].map_type();
            let direct = match c.helper_id as i32 {
                helpers::MAP_LOOKUP_ELEM if fastpath::lookup_supported(t) => {
                    fastpath::map_lookup(rt, m, a2)
                }
                helpers::MAP_UPDATE_ELEM if fastpath::update_supported(t) => {
                    fastpath::map_update(rt, m, a2, a3, a4)
                }
                helpers::MAP_DELETE_ELEM if fastpath::update_supported(t) => {
                    fastpath::map_delete(rt, m, a2)
                }
                _ => None,
            };
            if let Some(r) = direct {
                return r;
            }
        }
    }
    tr_helper(a1, a2, a3, a4, a5, ctx)
}

/// Fast mode: `bpf_map_delete_elem`.
pub(crate) extern "sysv64" fn tr_fast_delete(
    map: u64,
    key: u64,
    ctx: *mut JitCtx,
    loc: u64,
) -> u64 {
    // SAFETY: as in `tr_helper`.
    let c = unsafe { &mut *ctx };
    // SAFETY: as in `tr_helper`.
    let rt = unsafe { &mut *c.rt };
    match fastpath::map_delete(rt, map as usize, key) {
        Some(r) => r,
        None => {
            c.loc = loc;
            generic_map_op(ctx, helpers::MAP_DELETE_ELEM, map, key, 0, 0)
        }
    }
}

/// Fast mode: a load, store or atomic whose address is outside the engines' memory
/// (`meta` = size | write << 8). Records the fault the interpreter reports for that
/// address (no region contains it); generated code then leaves through the fault exit.
pub(crate) extern "sysv64" fn tr_confine_fault(ctx: *mut JitCtx, addr: u64, meta: u64) {
    // SAFETY: as in `tr_helper`.
    let ctx = unsafe { &mut *ctx };
    // SAFETY: as in `tr_helper`.
    let rt = unsafe { &mut *ctx.rt };
    ensure_frames(ctx, rt);
    let size = meta & 0xff;
    let write = meta & 0x100 != 0;
    let k = match rt.regions.check(addr, size, write) {
        Err(e) => FaultKind::Memory(e),
        // The compare covered this access and later ones through the same register (see
        // `compile::Gen::confine`): one of those leaves the engine's memory.
        Ok(_) => FaultKind::Unsupported(format!(
            "an access after the {size}-byte access at {addr:#x} through the same register leaves the engine's memory"
        )),
    };
    set_fault(ctx, rt, k);
}

/// Fast mode's repeat loop, between two runs of which the first called into Rust: the
/// per-run reset `Jit::repeat_runs` does between runs (`Runtime::begin_run`, stack
/// registrations forgotten, the confinement limit reloaded).
pub extern "sysv64" fn tr_rerun(ctx: *mut JitCtx) {
    // SAFETY: generated code passes its own context (r12), which the `Jit` owns and which
    // outlives the run; `rt` was set by `Jit::enter_repeat` for this loop.
    let c = unsafe { &mut *ctx };
    // SAFETY: as above; the runtime is not otherwise borrowed while generated code runs.
    let rt = unsafe { &mut *c.rt };
    let (cpu, time_ns) = (rt.cpu, rt.time_ns);
    rt.begin_run(cpu, time_ns);
    c.frames = 0;
    c.touched = 0;
    c.arena_limit = bpfkit_vm::arena::jit_limit();
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::offset_of;

    #[test]
    fn every_direct_helper_has_its_trampoline() {
        for &id in helpers::DIRECT {
            assert!(direct_tramp(id).is_some(), "helper {id}");
            assert!(!helpers::runs_callbacks(id), "helper {id}");
        }
        let n = (0..300).filter(|&id| direct_tramp(id).is_some()).count();
        assert_eq!(n, helpers::DIRECT.len());
    }

    #[test]
    fn offsets_match_the_generated_code() {
        assert_eq!(offset_of!(JitCtx, ctx_base) as i32, OFF_CTX_BASE);
        assert_eq!(offset_of!(JitCtx, depth) as i32, OFF_DEPTH);
        assert_eq!(offset_of!(JitCtx, faulted) as i32, OFF_FAULTED);
        assert_eq!(offset_of!(JitCtx, entry_rsp) as i32, OFF_ENTRY_RSP);
        assert_eq!(offset_of!(JitCtx, tail_table) as i32, OFF_TAIL_TABLE);
        assert_eq!(offset_of!(JitCtx, helper_id) as i32, OFF_HELPER_ID);
        assert_eq!(offset_of!(JitCtx, loc) as i32, OFF_LOC);
        assert_eq!(offset_of!(JitCtx, budget) as i32, OFF_BUDGET);
        assert_eq!(offset_of!(JitCtx, callx_value) as i32, OFF_CALLX_VALUE);
        assert_eq!(offset_of!(JitCtx, callx_addr) as i32, OFF_CALLX_ADDR);
        assert_eq!(offset_of!(JitCtx, static_fault) as i32, OFF_STATIC_FAULT);
        assert_eq!(offset_of!(JitCtx, saved) as i32, OFF_SAVED);
        assert_eq!(offset_of!(JitCtx, xdp_md) as i32, OFF_XDP_MD);
        assert_eq!(offset_of!(JitCtx, cpu) as i32, OFF_CPU);
        assert_eq!(offset_of!(JitCtx, tail_calls) as i32, OFF_TAIL_CALLS);
        assert_eq!(offset_of!(JitCtx, arena_base) as i32, OFF_ARENA_BASE);
        assert_eq!(offset_of!(JitCtx, arena_limit) as i32, OFF_ARENA_LIMIT);
        assert_eq!(offset_of!(JitCtx, may_goto) as i32, OFF_MAY_GOTO);
        assert_eq!(offset_of!(JitCtx, touched) as i32, OFF_TOUCHED);
        assert_eq!(offset_of!(JitCtx, rep_left) as i32, OFF_REP_LEFT);
        assert_eq!(offset_of!(JitCtx, rep_r1) as i32, OFF_REP_R1);
        assert_eq!(offset_of!(JitCtx, rep_target) as i32, OFF_REP_TARGET);
        assert_eq!(offset_of!(JitCtx, rep_budget) as i32, OFF_REP_BUDGET);
    }
}
