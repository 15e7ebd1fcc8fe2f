//! Callbacks as generated code: the JIT's [`CallbackRunner`].
//!
//! `bpf_loop`, `bpf_for_each_map_elem`, `bpf_user_ringbuf_drain` and BPF timers call
//! their callback through a runner (`bpfkit_vm::callback`). The JIT's runner re-enters
//! the generated code of the callback function on the same [`JitCtx`]:
//!
//! - through the ordinary entry trampoline, whose target is the callback shim
//!   (`compile.rs`): the shim loads r3..r5 from the save area and jumps to the function's
//!   prologue, so the callback's frame looks exactly like the one of a local call at
//!   depth `depth` (rbp = `frame_top(depth)`, the depth counter, the `may_goto` counter
//!   of the frame, the checked mode's zeroed and registered stack);
//! - the entry trampoline records its own `rsp` as the fault exit's target, so a fault in
//!   the callback returns here (never across the Rust frames of the helper), with the
//!   fault in the context; the runner returns it like the interpreter would;
//! - the fields of the context a nested entry overwrites (fault-exit `rsp`, depth,
//!   location, save area, helper id, `callx` scratch, runtime pointer) are saved and put
//!   back after the callback, so the code that called the helper continues unchanged.
//!
//! Fast mode's confinement holds unchanged: the callback is code of the same compiled
//! object, its frame is one of the runtime's `MAX_CALL_FRAMES` stacks inside the arena
//! (the depth is checked before entering), its loops charge the same instruction budget
//! (`JitCtx::budget`, shared with the caller as the interpreter shares its count) and its
//! `may_goto` counter is the frame's, reset by the prologue as for a local call.
//!
//! A runner for a callback outside a run (timers fired by `begin_xdp` or `advance_time`)
//! sets the per-run fields first, as `Jit::enter` does.

use crate::tramp::{make_fault, JitCtx};
use bpfkit_vm::callback::CallbackRunner;
use bpfkit_vm::error::{Fault, FaultKind};
use bpfkit_vm::interp;
use bpfkit_vm::runtime::{Runtime, MAX_CALL_FRAMES, STACK_SIZE};

/// The entry trampoline's signature (as `crate::EntryFn`).
type EntryFn = extern "sysv64" fn(u64, u64, *mut JitCtx, u64, u64) -> u64;

/// Runs callbacks as generated code on the context `ctx`.
pub(crate) struct JitRunner {
    ctx: *mut JitCtx,
    /// The last callback looked up: (prog, pc, prologue address); a helper calls the same
    /// callback many times.
    last: (usize, usize, u64),
}

impl JitRunner {
    /// A runner on `ctx`. Inside a run (`ctx.rt` set) callbacks nest in the running code's
    /// state; outside (`ctx.rt` null) each callback is a run of its own. Outside a run the
    /// caller must have set `ctx.tail_table` and `ctx.prologues` for this engine.
    pub(crate) fn new(ctx: &mut JitCtx) -> JitRunner {
        JitRunner {
            ctx: ctx as *mut JitCtx,
            last: (usize::MAX, 0, 0),
        }
    }
}

/// Context fields a nested entry overwrites.
struct Saved {
    entry_rsp: u64,
    depth: u64,
    loc: u64,
    saved: [u64; 6],
    helper_id: u64,
    callx_value: u64,
    callx_addr: u64,
    rt: *mut Runtime,
}

impl JitRunner {
    /// The prologue of the function at (prog, pc), 0 if the compiler made none.
    #[inline]
    fn target(&mut self, prog: usize, pc: usize) -> u64 {
        if self.last.0 == prog && self.last.1 == pc {
            return self.last.2;
        }
        // SAFETY: `prologues` points at the engine's table (set by `Jit::enter` for the
        // run, or by the caller outside a run), alive while the engine is.
        let c = unsafe { &*self.ctx };
        // SAFETY: as above.
        let t = unsafe { c.prologues.as_ref() }.and_then(|t| t.get(&(prog, pc)).copied());
        let t = t.unwrap_or(0);
        self.last = (prog, pc, t);
        t
    }

    /// Saves what a nested entry overwrites and sets the context up for callbacks of
    /// the function at `target` on `rt`.
    fn begin(&mut self, rt: &mut Runtime, target: u64) -> (Saved, bool) {
        // SAFETY: `self.ctx` is the engine's boxed context, alive for as long as the `Jit`;
        // the runner only exists during a helper call or a timer firing of that engine,
        // while nothing else uses the context.
        let c = unsafe { &mut *self.ctx };
        let top = c.rt.is_null();
        let keep = Saved {
            entry_rsp: c.entry_rsp,
            depth: c.depth,
            loc: c.loc,
            saved: c.saved,
            helper_id: c.helper_id,
            callx_value: c.callx_value,
            callx_addr: c.callx_addr,
            rt: c.rt,
        };
        if top {
            // A run of its own (a timer callback): the per-run fields, as `Jit::enter`.
            c.ctx_base = 0;
            c.faulted = 0;
            c.static_fault = 0;
            c.budget = rt.config.insn_limit.min(i64::MAX as u64) as i64;
            c.cpu = rt.cpu as u64;
            c.tail_calls = rt.tail_calls as u64;
            c.arena_limit = bpfkit_vm::arena::jit_limit();
            c.frames = 0;
        }
        c.rt = rt as *mut Runtime;
        c.callx_addr = target;
        (keep, top)
    }

    /// One call of the callback (after `begin`): r0 or the fault.
    #[inline]
    fn call(&mut self, rt: &Runtime, args: [u64; 5], depth: usize) -> Result<u64, Box<Fault>> {
        // SAFETY: as in `begin`.
        let c = unsafe { &mut *self.ctx };
        // The prologue increments the depth to `depth`.
        c.depth = (depth as u64).wrapping_sub(1);
        c.saved[3] = args[2];
        c.saved[4] = args[3];
        c.saved[5] = args[4];
        let frame_below = rt.frame_top(depth) - STACK_SIZE;
        // SAFETY: `c.entry` is the address of the entry trampoline of the engine's code,
        // generated for exactly this signature and mapped while the engine lives.
        let entry: EntryFn = unsafe { std::mem::transmute(c.entry as usize) };
        let shim = c.cb_shim;
        c.cb_calls += 1;
        // Calling generated code of the same object, on the same context, as `Jit::enter`
        // does; a fault returns here through the fault exit of this entry.
        let r0 = entry(args[0], args[1], self.ctx, shim, frame_below);
        // SAFETY: as in `begin`; the generated code has returned.
        let c = unsafe { &mut *self.ctx };
        if c.faulted | c.static_fault != 0 {
            let f = take_fault(c, rt);
            c.faulted = 0;
            c.static_fault = 0;
            return Err(f);
        }
        Ok(r0)
    }

    /// Puts back what `begin` saved.
    fn end(&mut self, rt: &mut Runtime, keep: Saved, top: bool) {
        // SAFETY: as in `begin`.
        let c = unsafe { &mut *self.ctx };
        if top && c.fast {
            rt.tail_calls = c.tail_calls as u32;
        }
        c.entry_rsp = keep.entry_rsp;
        c.depth = keep.depth;
        c.loc = keep.loc;
        c.saved = keep.saved;
        c.helper_id = keep.helper_id;
        c.callx_value = keep.callx_value;
        c.callx_addr = keep.callx_addr;
        c.rt = keep.rt;
    }
}

fn depth_fault(rt: &Runtime, prog: usize, pc: usize) -> Box<Fault> {
    Box::new(make_fault(
        rt,
        prog,
        pc,
        FaultKind::CallDepth(MAX_CALL_FRAMES),
    ))
}

impl CallbackRunner for JitRunner {
    fn run(
        &mut self,
        rt: &mut Runtime,
        prog: usize,
        pc: usize,
        args: &[u64],
        depth: usize,
    ) -> Result<u64, Box<Fault>> {
        let target = self.target(prog, pc);
        if target == 0 {
            // Not a function the compiler saw named (no prologue): the interpreter.
            return interp::run_function(rt, prog, pc, args, depth);
        }
        if depth >= MAX_CALL_FRAMES {
            return Err(depth_fault(rt, prog, pc));
        }
        let mut a = [0u64; 5];
        let n = args.len().min(5);
        a[..n].copy_from_slice(&args[..n]);
        let (keep, top) = self.begin(rt, target);
        let r = self.call(rt, a, depth);
        self.end(rt, keep, top);
        r
    }

    fn run_loop(
        &mut self,
        rt: &mut Runtime,
        prog: usize,
        pc: usize,
        n: u64,
        arg: u64,
        depth: usize,
    ) -> Result<u64, Box<Fault>> {
        let target = self.target(prog, pc);
        if target == 0 {
            return bpfkit_vm::callback::InterpRunner.run_loop(rt, prog, pc, n, arg, depth);
        }
        if n == 0 {
            return Ok(0);
        }
        if depth >= MAX_CALL_FRAMES {
            return Err(depth_fault(rt, prog, pc));
        }
        // The context is set up once for all iterations.
        let (keep, top) = self.begin(rt, target);
        let mut r = Ok(n);
        for i in 0..n {
            match self.call(rt, [i, arg, 0, 0, 0], depth) {
                Ok(0) => {}
                Ok(_) => {
                    r = Ok(i + 1);
                    break;
                }
                Err(f) => {
                    r = Err(f);
                    break;
                }
            }
        }
        self.end(rt, keep, top);
        r
    }
}

/// The fault the callback ended with (a static fault stub's or a trampoline's).
#[cold]
#[inline(never)]
fn take_fault(c: &mut JitCtx, rt: &Runtime) -> Box<Fault> {
    if c.static_fault != 0 && (c.static_fault as usize) <= c.n_static_faults {
        // SAFETY: `static_faults` points at the engine's table of `n_static_faults`
        // entries (a `Vec` owned by the `Jit`, never changed after compilation).
        let sf = unsafe { &*c.static_faults.add(c.static_fault as usize - 1) };
        return Box::new(make_fault(rt, sf.prog, sf.pc, sf.kind.clone()));
    }
    c.fault.take().unwrap_or_else(|| {
        Box::new(make_fault(
            rt,
            0,
            0,
            FaultKind::Unsupported("JIT: fault flag without a fault".into()),
        ))
    })
}
