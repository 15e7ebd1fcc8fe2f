//! bpfkit's x86-64 JIT: compiles the programs of a linked object to machine code with
//! `dynasmrt` and runs them behind the same [`Engine`] interface as the interpreter.
//!
//! - Same state as the interpreter: a [`Jit`] owns a `bpfkit_vm` runtime (maps, regions,
//!   XDP buffer, clock, events), and generated code calls the VM's own helper
//!   implementations and memory checks through `extern "sysv64"` trampolines
//!   (see [`tramp`]); there is no second copy of any helper.
//! - Two modes ([`Mode`]): **checked** (every load, store and atomic is checked against the
//!   interpreter's region table, faults carry the instruction index; safe for any input)
//!   and **fast** (direct memory accesses like the kernel's JIT, each confined to the
//!   engines' address range by one comparison, [`bpfkit_vm::arena`]; results equal the
//!   interpreter's for programs a verifier accepted, and a wrong program faults or at
//!   worst gets wrong values from that range, never host memory: [`Jit::new_fast`]).
//! - Code memory comes from `dynasmrt::Assembler`: it is written while mapped read-write
//!   and remapped read+execute (`mprotect`) before it runs, never writable and executable
//!   at once; the `ExecutableBuffer` unmaps it when the [`Jit`] is dropped.
//!
//! Architecture notes, semantics and measured performance: `docs/performance.md`.

mod callback;
mod compile;
pub mod listing;
mod tramp;

pub use compile::Mode;

use bpfkit_object::model::LinkedObject;
use bpfkit_vm::engine::{Engine, XdpInput, XdpOutput};
use bpfkit_vm::error::{Fault, VmError};
use bpfkit_vm::runtime::{Config, Runtime, STACK_SIZE};
use bpfkit_vm::{Interpreter, RawOutput};
use dynasmrt::ExecutableBuffer;
use std::collections::HashMap;
use std::time::Instant;
use tramp::JitCtx;

type EntryFn = extern "sysv64" fn(u64, u64, *mut JitCtx, u64, u64) -> u64;
/// Fast mode's repeat loop: (r1, runs, ctx, entry function's prologue, frame below) -> r0.
type RepeatFn = extern "sysv64" fn(u64, u64, *mut JitCtx, u64, u64) -> u64;

/// Compiled programs plus the engine state they run on.
pub struct Jit {
    /// The VM state (maps, regions, programs); the interpreter object is only used for its
    /// setup and its user-space map operations, never to run a program.
    vm: Interpreter,
    mode: Mode,
    code: ExecutableBuffer,
    /// The entry trampoline inside `code`.
    entry: EntryFn,
    /// Fast mode: the repeat loop inside `code` (`Jit::enter_repeat`).
    rep_entry: Option<RepeatFn>,
    /// Prologue address of each program's entry function.
    prog_entry: Vec<u64>,
    /// Body address of each program (tail-call targets).
    tail_table: Vec<u64>,
    /// (prog, slot) -> prologue address (`callx`).
    prologues: HashMap<(usize, usize), u64>,
    static_faults: Vec<compile::StaticFault>,
    /// The run context handed to generated code (boxed: its address must not change
    /// during a run, and reusing it keeps the per-run set-up small).
    ctx: Box<JitCtx>,
    /// Fast mode: tables generated code reads (their heap addresses are compiled in).
    tables: FastTables,
    /// The last XDP run's program and input settings, once `Runtime::begin_xdp_md` checked
    /// them, with the device and devmap flag its frame got: the next run with the same
    /// ones only starts on the parked frame (`Runtime::rebegin_xdp_md`). Forgotten when the
    /// runtime is handed out mutably (its configuration may change).
    ready: Option<XdpReady>,
    /// `JitCtx::depth` on entering the entry function: `u64::MAX` when prologues count
    /// the depth (its prologue makes it 0), else 0 (`Compiled::depth_counted`).
    entry_depth: u64,
}

/// See `Jit::ready`.
#[derive(Clone, Copy, PartialEq, Eq)]
struct XdpReady {
    prog: usize,
    cpu: u32,
    ingress_ifindex: u32,
    rx_queue_index: u32,
    ifindex: u32,
    devmap: bool,
}

/// Fast mode: data the generated code addresses directly.
#[derive(Default)]
struct FastTables {
    /// Per-CPU array maps: (map, layout compiled in, per-CPU base table).
    arrays: Vec<(usize, bpfkit_vm::fastpath::ArrayLayout, Box<[u64]>)>,
    /// PROG_ARRAY maps: (map, jump table: 0 empty, 1 generic path, else body address).
    jump_tables: Vec<(usize, Box<[u64]>)>,
    /// Map contents may have changed outside a run (user-space update or delete, or
    /// `runtime_mut`): refresh the jump tables and re-check the array layouts first.
    dirty: bool,
}

impl FastTables {
    /// Builds the tables for the maps of `rt` and what the compiler may inline for them.
    fn new(rt: &mut Runtime) -> (FastTables, Vec<compile::FastMap>) {
        let mut t = FastTables {
            dirty: true,
            ..Default::default()
        };
        let mut info = Vec::new();
        for m in 0..rt.maps.maps.len() {
            let mut fm = compile::FastMap {
                map_type: rt.maps.maps[m].map_type(),
                ..Default::default()
            };
            if let Some(l) = bpfkit_vm::fastpath::array_layout(rt, m) {
                let bases: Box<[u64]> = l.bases.clone().into_boxed_slice();
                fm.array = Some((l.clone(), bases.as_ptr() as u64));
                t.arrays.push((m, l, bases));
            }
            if let Some(slots) = bpfkit_vm::fastpath::prog_array_slots(rt, m) {
                let table: Box<[u64]> = vec![1u64; slots.len()].into_boxed_slice();
                fm.jump_table = Some((table.as_ptr() as u64, slots.len() as u32));
                t.jump_tables.push((m, table));
            }
            info.push(fm);
        }
        (t, info)
    }

    /// Brings the jump tables up to date with the maps; fails if an array map's values
    /// moved (the compiled code addresses them directly).
    fn refresh(&mut self, rt: &mut Runtime, bodies: &[u64]) -> Result<(), VmError> {
        for (m, l, _) in &self.arrays {
            if bpfkit_vm::fastpath::array_layout(rt, *m).as_ref() != Some(l) {
                return Err(VmError::Setup(format!(
                    "JIT: the values of array map #{m} moved since compilation (maps replaced?); compile again"
                )));
            }
        }
        for (m, table) in &mut self.jump_tables {
            match bpfkit_vm::fastpath::prog_array_slots(rt, *m) {
                Some(slots) => {
                    for (e, s) in table.iter_mut().zip(slots) {
                        *e = s.map_or(0, |p| bodies[p]);
                    }
                }
                // A slot the helper faults on: every slot takes the generic path.
                None => table.fill(1),
            }
        }
        self.dirty = false;
        Ok(())
    }
}

// SAFETY: the raw pointers inside `ctx` (runtime, tail table, prologue table) are set at
// the start of every run from `&mut self` and only used during that run; between runs a
// `Jit` is plain owned data (code mapping, runtime, tables), so moving it to another
// thread is sound.
unsafe impl Send for Jit {}

impl Jit {
    /// Compiles every program of `obj` in checked mode (safe for any input).
    pub fn new(obj: &LinkedObject, config: Config) -> Result<Jit, VmError> {
        Self::from_interpreter(Interpreter::new(obj, config)?, Mode::Checked)
    }

    /// Compiles every program of `obj` in fast mode: no per-region checks, only the
    /// confinement of every access to the engines' memory ([`bpfkit_vm::arena`]), so a
    /// wrong program faults or at worst reads or writes wrong bytes of that memory; it
    /// never touches the host's. Results equal the interpreter's for programs a verifier
    /// (the kernel's or bpfkit's) accepts for XDP; for others a fault may come later or
    /// not at all (e.g. a store into another map's value).
    pub fn new_fast(obj: &LinkedObject, config: Config) -> Result<Jit, VmError> {
        Self::from_interpreter(Interpreter::new(obj, config)?, Mode::Fast)
    }

    /// [`Jit::new_fast`] under its former name.
    ///
    /// # Safety
    /// None beyond [`Jit::new_fast`]'s (fast mode is confined since issue 14); kept
    /// `unsafe` so existing callers compile unchanged.
    pub unsafe fn new_unchecked(obj: &LinkedObject, config: Config) -> Result<Jit, VmError> {
        Self::new_fast(obj, config)
    }

    /// Checked-mode JIT over explicit programs and map definitions (as
    /// [`Interpreter::with_programs`]).
    pub fn with_programs(
        programs: Vec<bpfkit_vm::Program>,
        maps: &[bpfkit_object::model::MapDef],
        config: Config,
    ) -> Result<Jit, VmError> {
        Self::from_interpreter(
            Interpreter::with_programs(programs, maps, config)?,
            Mode::Checked,
        )
    }

    /// Checked-mode JIT of raw instructions (one program, no maps).
    pub fn from_insns(insns: Vec<bpfkit_isa::RawInsn>) -> Result<Jit, VmError> {
        Self::from_interpreter(Interpreter::from_insns(insns), Mode::Checked)
    }

    /// Fast-mode JIT of raw instructions (confined as [`Jit::new_fast`]).
    pub fn from_insns_fast(insns: Vec<bpfkit_isa::RawInsn>) -> Result<Jit, VmError> {
        Self::from_interpreter(Interpreter::from_insns(insns), Mode::Fast)
    }

    /// Fast-mode JIT over explicit programs and map definitions (as
    /// [`Jit::with_programs`], confined as [`Jit::new_fast`]).
    pub fn with_programs_fast(
        programs: Vec<bpfkit_vm::Program>,
        maps: &[bpfkit_object::model::MapDef],
        config: Config,
    ) -> Result<Jit, VmError> {
        Self::from_interpreter(
            Interpreter::with_programs(programs, maps, config)?,
            Mode::Fast,
        )
    }

    /// [`Jit::from_insns_fast`] under its former name.
    ///
    /// # Safety
    /// None beyond [`Jit::from_insns_fast`]'s; kept `unsafe` for existing callers.
    pub unsafe fn from_insns_unchecked(insns: Vec<bpfkit_isa::RawInsn>) -> Result<Jit, VmError> {
        Self::from_insns_fast(insns)
    }

    fn from_interpreter(mut vm: Interpreter, mode: Mode) -> Result<Jit, VmError> {
        let (tables, fast_maps) = if mode == Mode::Fast {
            FastTables::new(vm.runtime_mut())
        } else {
            (FastTables::default(), Vec::new())
        };
        let c = compile::compile(vm.runtime(), mode, &fast_maps).map_err(VmError::Setup)?;
        let compile::Compiled {
            mut ops,
            entry,
            progs,
            static_faults,
            cb_shim,
            rep_entry,
            depth_counted,
            ..
        } = c;
        ops.commit()
            .map_err(|e| VmError::Setup(format!("JIT: assembling: {e}")))?;
        let labels = ops.labels().clone();
        let code = ops
            .finalize()
            .map_err(|_| VmError::Setup("JIT: code memory still in use".into()))?;
        let base = code.ptr(dynasmrt::AssemblyOffset(0)) as u64;
        let addr = |l| -> Result<u64, VmError> {
            labels
                .resolve_dynamic(l)
                .map(|o| base + o.0 as u64)
                .map_err(|e| VmError::Setup(format!("JIT: label: {e}")))
        };
        let mut prog_entry = Vec::new();
        let mut tail_table = Vec::new();
        let mut prologues = HashMap::new();
        for (p, pl) in progs.iter().enumerate() {
            for &(t, l) in &pl.prologues {
                prologues.insert((p, t), addr(l)?);
            }
            prog_entry.push(prologues.get(&(p, 0)).copied().unwrap_or(0));
            tail_table.push(addr(pl.body)?);
        }
        // SAFETY: `entry` is the offset of the entry trampoline in `code`, generated for
        // the SysV ABI with exactly this signature; `code` is kept in the same `Jit` as
        // the pointer, so the pointer never outlives the mapping.
        let entry: EntryFn = unsafe { std::mem::transmute(code.ptr(entry)) };
        // SAFETY: as for `entry`: the repeat loop in `code`, generated for the SysV ABI
        // with exactly this signature, kept in the same `Jit` as `code`.
        let rep_entry: Option<RepeatFn> =
            rep_entry.map(|o| unsafe { std::mem::transmute::<*const u8, RepeatFn>(code.ptr(o)) });
        let mut ctx = Box::new(JitCtx::new());
        ctx.fast = mode == Mode::Fast;
        // Callbacks (`callback.rs`) re-enter through the entry trampoline and the shim;
        // the static fault table's heap buffer does not move with the `Jit`.
        ctx.entry = entry as usize as u64;
        ctx.cb_shim = code.ptr(cb_shim) as u64;
        ctx.static_faults = static_faults.as_ptr();
        ctx.n_static_faults = static_faults.len();
        Ok(Jit {
            ctx,
            vm,
            mode,
            code,
            entry,
            rep_entry,
            prog_entry,
            tail_table,
            prologues,
            static_faults,
            tables,
            ready: None,
            // The entry function's prologue increments a counted depth to 0.
            entry_depth: if depth_counted { u64::MAX } else { 0 },
        })
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    pub fn runtime(&self) -> &Runtime {
        self.vm.runtime()
    }

    pub fn runtime_mut(&mut self) -> &mut Runtime {
        self.tables.dirty = true;
        self.ready = None;
        self.vm.runtime_mut()
    }

    /// Size of the generated code in bytes.
    pub fn code_size(&self) -> usize {
        self.code.len()
    }

    /// Address of the generated code (for tests that check the mapping's permissions).
    pub fn code_addr(&self) -> u64 {
        self.code.ptr(dynasmrt::AssemblyOffset(0)) as u64
    }

    fn check_prog(&self, prog: usize) -> Result<(), VmError> {
        let n = self.vm.runtime().programs.len();
        if prog >= n {
            return Err(VmError::Setup(format!(
                "program #{prog} does not exist (the object has {n})"
            )));
        }
        if self.vm.runtime().programs[prog].insns.is_empty() {
            return Err(VmError::Setup(format!("program #{prog} is empty")));
        }
        Ok(())
    }

    /// Runs program `prog` with r1, r2 after `begin_run` and the per-run memory are set up;
    /// returns r0 or the fault.
    #[inline]
    fn enter(&mut self, prog: usize, r1: u64, r2: u64, ctx_base: u64) -> Result<u64, Box<Fault>> {
        if self.tables.dirty {
            self.refresh_tables(prog)?;
        }
        let rt = self.vm.runtime_mut();
        let frame_below = rt.frame_top(0) - STACK_SIZE;
        // The context lives in `self.ctx` (allocated once); only per-run fields are set.
        let ctx = &mut *self.ctx;
        ctx.rt = rt as *mut Runtime;
        ctx.ctx_base = ctx_base;
        ctx.depth = self.entry_depth;
        ctx.faulted = 0;
        ctx.static_fault = 0;
        ctx.budget = rt.config.insn_limit.min(i64::MAX as u64) as i64;
        ctx.tail_table = self.tail_table.as_ptr();
        ctx.prologues = &self.prologues as *const _;
        ctx.cpu = rt.cpu as u64;
        ctx.tail_calls = rt.tail_calls as u64;
        ctx.arena_limit = bpfkit_vm::arena::jit_limit();
        // `ctx.xdp_md` was set up with the XDP buffer (`begin_xdp`); raw-mode runs have no
        // context (`ctx_base` 0).
        let f = self.entry;
        // Calling generated code: it only touches memory through the runtime's regions
        // (checked mode) or inside the engines' committed address range (fast mode: every
        // access compared with `ctx.arena_limit`), and `ctx` outlives the call.
        let r0 = f(r1, r2, ctx, self.prog_entry[prog], frame_below);
        self.after_call(r0)
    }

    /// After generated code returned (`enter`, `enter_again`, `enter_repeat`): the run
    /// context no longer points at the runtime, the fast mode's tail-call count goes back
    /// to the runtime, and a fault the run recorded is taken.
    #[inline(always)]
    fn after_call(&mut self, r0: u64) -> Result<u64, Box<Fault>> {
        let ctx = &mut *self.ctx;
        ctx.rt = std::ptr::null_mut();
        if ctx.fast {
            self.vm.runtime_mut().tail_calls = ctx.tail_calls as u32;
        }
        if ctx.static_fault | ctx.faulted == 0 {
            return Ok(r0);
        }
        Err(self.take_fault())
    }

    /// [`Jit::enter`] for the runs after the first of a repeated run on the same XDP
    /// buffer (`run --repeat`, the benchmark): the run context keeps what `enter` set
    /// (context address, tables, CPU, frame), so only what a run changes is reset.
    /// `budget` is the instruction budget `enter` computed; the caller has reset the
    /// runtime's per-run state (`Runtime::begin_run`) and nothing outside a run touched
    /// the `Jit` since the first run.
    #[inline(always)]
    fn enter_again(
        &mut self,
        entry: u64,
        r1: u64,
        frame_below: u64,
        budget: i64,
    ) -> Result<u64, Box<Fault>> {
        let rt = self.vm.runtime_mut();
        let ctx = &mut *self.ctx;
        ctx.rt = rt as *mut Runtime;
        ctx.depth = self.entry_depth;
        ctx.faulted = 0;
        ctx.static_fault = 0;
        ctx.budget = budget;
        ctx.tail_calls = 0;
        // The range may have grown during the previous run (map values allocated).
        ctx.arena_limit = bpfkit_vm::arena::jit_limit();
        let f = self.entry;
        // As in `enter`: generated code only touches the runtime's regions or the
        // engines' range, and `ctx` outlives the call.
        let r0 = f(r1, 0, ctx, entry, frame_below);
        self.after_call(r0)
    }

    /// Fast mode: `runs` more runs after a first one (`Jit::enter`) on the same XDP
    /// buffer, in the generated repeat loop (`Compiled::rep_entry`): the loop resets the
    /// budget and tail-call count per run and calls `tramp::tr_rerun` (the per-run reset
    /// `repeat_runs` does here otherwise) only after a run that called into Rust. Stops at
    /// the first fault. Returns the last run's r0 or the fault.
    fn enter_repeat(
        &mut self,
        f: RepeatFn,
        entry: u64,
        r1: u64,
        frame_below: u64,
        budget: i64,
        runs: u64,
    ) -> Result<u64, Box<Fault>> {
        let rt = self.vm.runtime_mut();
        let (cpu, time_ns) = (rt.cpu, rt.time_ns);
        rt.begin_run(cpu, time_ns);
        let ctx = &mut *self.ctx;
        ctx.frames = 0;
        ctx.rt = rt as *mut Runtime;
        ctx.depth = self.entry_depth;
        ctx.faulted = 0;
        ctx.static_fault = 0;
        ctx.touched = 0;
        ctx.rep_budget = budget;
        ctx.arena_limit = bpfkit_vm::arena::jit_limit();
        // As in `enter`: generated code only touches the runtime's regions or the
        // engines' range, and `ctx` outlives the call; the loop runs the same code as
        // `enter_again` would, `runs` times.
        let r0 = f(r1, runs, ctx, entry, frame_below);
        self.after_call(r0)
    }

    /// The arguments `enter` gives generated code that stay the same from run to run:
    /// the entry address of `prog`, the frame below the entry function's and the
    /// instruction budget.
    fn entry_args(&self, prog: usize) -> (u64, u64, i64) {
        let rt = self.vm.runtime();
        (
            self.prog_entry[prog],
            rt.frame_top(0) - STACK_SIZE,
            rt.config.insn_limit.min(i64::MAX as u64) as i64,
        )
    }

    /// Fast mode, after a user-space map change: the jump tables and array layouts.
    #[cold]
    #[inline(never)]
    fn refresh_tables(&mut self, prog: usize) -> Result<(), Box<Fault>> {
        let rt = self.vm.runtime_mut();
        self.tables.refresh(rt, &self.tail_table).map_err(|e| {
            Box::new(tramp::make_fault(
                rt,
                prog,
                0,
                bpfkit_vm::FaultKind::Unsupported(e.to_string()),
            ))
        })
    }

    /// The fault a run ended with (a static fault stub's or a trampoline's).
    #[cold]
    #[inline(never)]
    fn take_fault(&mut self) -> Box<Fault> {
        let ctx = &mut *self.ctx;
        if ctx.static_fault != 0 {
            let sf = &self.static_faults[ctx.static_fault as usize - 1];
            return Box::new(tramp::make_fault(
                self.vm.runtime(),
                sf.prog,
                sf.pc,
                sf.kind.clone(),
            ));
        }
        ctx.fault.take().unwrap_or_else(|| {
            Box::new(tramp::make_fault(
                self.vm.runtime(),
                0,
                0,
                bpfkit_vm::FaultKind::Unsupported("JIT: fault flag without a fault".into()),
            ))
        })
    }

    /// Runs program `prog` with r1 = a copy of `mem`, r2 = its length (the bpf_conformance
    /// contract), like [`Interpreter::run_raw`].
    pub fn run_raw(&mut self, prog: usize, mem: &[u8]) -> Result<RawOutput, VmError> {
        self.check_prog(prog)?;
        let rt = self.vm.runtime_mut();
        rt.begin_run(0, 0);
        // Fast mode: the frames' stacks are registered for the whole run by the first
        // call that checks memory against the regions (`tramp::ensure_frames`).
        self.ctx.frames = 0;
        let addr = rt.set_raw_memory(mem);
        let r = self.enter(prog, addr, mem.len() as u64, 0);
        let rt = self.vm.runtime_mut();
        let out = rt
            .raw_mem
            .as_ref()
            .map(|m| m.as_slice().to_vec())
            .unwrap_or_default();
        let events = std::mem::take(&mut rt.events);
        rt.end_run();
        let r0 = r.map_err(VmError::Fault)?;
        Ok(RawOutput {
            r0,
            mem: out,
            events,
        })
    }

    /// Checks and sets up an XDP run (as the interpreter does: `Runtime::begin_xdp`);
    /// returns the context address.
    #[inline]
    fn begin_xdp(&mut self, prog: usize, input: &XdpInput<'_>) -> Result<u64, VmError> {
        self.check_prog(prog)?;
        let rt = self.vm.runtime_mut();
        let ctx = if rt.timers.is_empty() {
            rt.begin_xdp_md(prog, input, &mut self.ctx.xdp_md)?
        } else {
            self.begin_xdp_timers(prog, input)?
        };
        // Fast mode: the frames' stacks are registered for the whole run by the first
        // call that checks memory against the regions (`tramp::ensure_frames`).
        self.ctx.frames = 0;
        Ok(ctx)
    }

    /// [`Runtime::begin_xdp_md`] when timers may be due: their callbacks run as generated
    /// code (`callback.rs`).
    #[cold]
    #[inline(never)]
    fn begin_xdp_timers(&mut self, prog: usize, input: &XdpInput<'_>) -> Result<u64, VmError> {
        if self.tables.dirty {
            self.refresh_tables(prog).map_err(VmError::Fault)?;
        }
        let mut md = [0u64; 5];
        let mut runner = self.callback_runner();
        let rt = self.vm.runtime_mut();
        let r = rt.begin_xdp_md_with(prog, input, &mut md, &mut runner);
        self.ctx.xdp_md = md;
        r
    }

    /// A callback runner for callbacks outside a run (timers), with the tables
    /// `Jit::enter` sets per run.
    fn callback_runner(&mut self) -> callback::JitRunner {
        let ctx = &mut *self.ctx;
        ctx.rt = std::ptr::null_mut();
        ctx.tail_table = self.tail_table.as_ptr();
        ctx.prologues = &self.prologues as *const _;
        callback::JitRunner::new(ctx)
    }

    /// [`Jit::begin_xdp`] for a replay of many packets: after a run with the same program,
    /// CPU, device and queue, only the per-packet part (`Runtime::rebegin_xdp_md`).
    #[inline(always)]
    fn begin_xdp_again(&mut self, prog: usize, input: &XdpInput<'_>) -> Result<u64, VmError> {
        if let Some(r) = self.ready {
            if r.prog == prog
                && r.cpu == input.cpu
                && r.ingress_ifindex == input.ingress_ifindex
                && r.rx_queue_index == input.rx_queue_index
            {
                let rt = self.vm.runtime_mut();
                if let Some(ctx) =
                    rt.rebegin_xdp_md(input, r.ifindex, r.devmap, &mut self.ctx.xdp_md)
                {
                    self.ctx.frames = 0;
                    return Ok(ctx);
                }
            }
        }
        self.begin_xdp_checked(prog, input)
    }

    /// [`Jit::begin_xdp`], remembering the checked settings in `ready`.
    #[inline(never)]
    fn begin_xdp_checked(&mut self, prog: usize, input: &XdpInput<'_>) -> Result<u64, VmError> {
        self.ready = None;
        let ctx = self.begin_xdp(prog, input)?;
        if let Some((ifindex, devmap)) = self.vm.runtime().xdp_input_settings() {
            self.ready = Some(XdpReady {
                prog,
                cpu: input.cpu,
                ingress_ifindex: input.ingress_ifindex,
                rx_queue_index: input.rx_queue_index,
                ifindex,
                devmap,
            });
        }
        Ok(ctx)
    }

    /// Measures program `prog` on one packet the way `BPF_PROG_TEST_RUN` with `repeat`
    /// does: the XDP buffer is set up once, then the program runs `repeat` times on it
    /// (without resetting the packet between runs); returns the last result and the mean
    /// time per run in nanoseconds. Faults end the measurement with the fault.
    pub fn bench_xdp(
        &mut self,
        prog: usize,
        input: &XdpInput<'_>,
        repeat: u32,
    ) -> Result<(u64, f64), VmError> {
        let ctx = self.begin_xdp(prog, input)?;
        let (r, ns) = self.repeat_runs(prog, ctx, repeat);
        self.vm.runtime_mut().end_run();
        let r0 = r.map_err(VmError::Fault)?;
        Ok((r0, ns))
    }

    /// Runs program `prog` `repeat` times (at least once) on the XDP buffer `ctx` set up
    /// by the caller, as `BPF_PROG_TEST_RUN` with `repeat`: per-run state starts afresh
    /// each run (the kernel's tail-call count is per run too) and the run context keeps
    /// the rest (`enter_again`); a fault ends the loop. Returns the last result and the
    /// mean time per run in nanoseconds.
    fn repeat_runs(
        &mut self,
        prog: usize,
        ctx: u64,
        repeat: u32,
    ) -> (Result<u64, Box<Fault>>, f64) {
        let repeat = repeat.max(1);
        let (entry, frame_below, budget) = self.entry_args(prog);
        let t = Instant::now();
        let mut r = self.enter(prog, ctx, 0, ctx);
        if let (Some(f), true) = (self.rep_entry, r.is_ok() && repeat > 1) {
            r = self.enter_repeat(f, entry, ctx, frame_below, budget, u64::from(repeat - 1));
            return (r, t.elapsed().as_nanos() as f64 / f64::from(repeat));
        }
        for _ in 1..repeat {
            if r.is_err() {
                break;
            }
            let rt = self.vm.runtime_mut();
            let (cpu, time_ns) = (rt.cpu, rt.time_ns);
            rt.begin_run(cpu, time_ns);
            self.ctx.frames = 0;
            r = self.enter_again(entry, ctx, frame_below, budget);
        }
        (r, t.elapsed().as_nanos() as f64 / f64::from(repeat))
    }

    /// `BPF_MAP_LOOKUP_ELEM` from user space (per-CPU values concatenated).
    pub fn map_lookup(&self, map: usize, key: &[u8]) -> Result<Option<Vec<u8>>, VmError> {
        self.vm.map_lookup(map, key)
    }

    /// Moves the virtual clock to `now_ns` without a packet: fires the BPF timers due by
    /// then (their callbacks run as generated code, as during a run) and returns their
    /// events, like [`Interpreter::advance_time`].
    pub fn advance_time(&mut self, now_ns: u64) -> Result<Vec<bpfkit_vm::Event>, VmError> {
        // Callbacks may change map contents the fast tables mirror.
        self.tables.dirty = true;
        if self
            .tables
            .refresh(self.vm.runtime_mut(), &self.tail_table)
            .is_err()
        {
            // Array values moved: the next run reports it; the callbacks run on the
            // interpreter meanwhile (their code addresses those values).
            return bpfkit_vm::timer::fire_due(self.vm.runtime_mut(), now_ns);
        }
        self.tables.dirty = true;
        let mut runner = self.callback_runner();
        let rt = self.vm.runtime_mut();
        bpfkit_vm::timer::fire_due_with(rt, now_ns, &mut runner)
    }

    /// Callback invocations (`bpf_loop`, `bpf_for_each_map_elem`,
    /// `bpf_user_ringbuf_drain`, timers) that ran as generated code since the engine was
    /// built.
    pub fn callback_calls(&self) -> u64 {
        self.ctx.cb_calls
    }

    /// Produces one sample into USER_RINGBUF map `map`, as
    /// [`Interpreter::user_ringbuf_push`].
    pub fn user_ringbuf_push(&mut self, map: usize, sample: &[u8]) -> Result<(), VmError> {
        self.vm.user_ringbuf_push(map, sample)
    }

    /// Armed timers in the order they will fire.
    pub fn pending_timers(&self) -> Vec<bpfkit_vm::timer::PendingTimer> {
        self.vm.pending_timers()
    }

    /// `BPF_MAP_DELETE_ELEM` from user space.
    pub fn map_delete(&mut self, map: usize, key: &[u8]) -> Result<(), VmError> {
        self.tables.dirty = true;
        self.vm.map_delete(map, key)
    }
}

impl Engine for Jit {
    type Error = VmError;

    fn name(&self) -> &'static str {
        match self.mode {
            Mode::Checked => "jit",
            Mode::Fast => "jit-fast",
        }
    }

    fn run_xdp(&mut self, prog: usize, input: &XdpInput<'_>) -> Result<XdpOutput, VmError> {
        let mut out = XdpOutput::default();
        self.run_xdp_into_with(prog, input, &mut out, true)?;
        Ok(out)
    }

    fn run_xdp_into(
        &mut self,
        prog: usize,
        input: &XdpInput<'_>,
        out: &mut XdpOutput,
    ) -> Result<(), VmError> {
        self.run_xdp_into_with(prog, input, out, true)
    }

    /// No allocation per run in the steady state: the context, the XDP page and the
    /// output buffers are reused. Inline: a replay calls it once per packet.
    #[inline]
    fn run_xdp_into_with(
        &mut self,
        prog: usize,
        input: &XdpInput<'_>,
        out: &mut XdpOutput,
        want_packet: bool,
    ) -> Result<(), VmError> {
        let ctx = self.begin_xdp_again(prog, input)?;
        let r = self.enter(prog, ctx, 0, ctx);
        self.vm
            .runtime_mut()
            .finish_xdp_into_with(r, out, want_packet)
    }

    /// One XDP buffer for all runs, as the kernel's `BPF_PROG_TEST_RUN` with `repeat`
    /// (see [`Jit::bench_xdp`]); `out` gets the last run's result.
    fn run_xdp_repeat(
        &mut self,
        prog: usize,
        input: &XdpInput<'_>,
        repeat: u32,
        out: &mut XdpOutput,
    ) -> Result<f64, VmError> {
        let ctx = self.begin_xdp(prog, input)?;
        let (r, ns) = self.repeat_runs(prog, ctx, repeat);
        self.vm.runtime_mut().finish_xdp_into_with(r, out, true)?;
        Ok(ns)
    }

    fn last_xdp_meta_len(&self) -> usize {
        self.vm.runtime().last_xdp_meta_len
    }

    fn map_entries(&self, map: usize) -> Result<Vec<(Vec<u8>, Vec<u8>)>, VmError> {
        self.vm.map_entries(map)
    }

    fn map_update(
        &mut self,
        map: usize,
        key: &[u8],
        value: &[u8],
        flags: u64,
    ) -> Result<(), VmError> {
        self.tables.dirty = true;
        self.vm.map_update(map, key, value, flags)
    }
}

/// What fast mode may inline for each map of `rt` (for listings; the tables the code
/// would address are dropped).
pub(crate) fn fast_maps(rt: &mut Runtime) -> Vec<compile::FastMap> {
    FastTables::new(rt).1
}

/// Runs raw instructions on `mem` (r1 = memory, r2 = length) with the checked JIT and
/// returns r0.
pub fn run_raw(insns: &[bpfkit_isa::RawInsn], mem: &[u8]) -> Result<u64, VmError> {
    Jit::from_insns(insns.to_vec())?
        .run_raw(0, mem)
        .map(|o| o.r0)
}
