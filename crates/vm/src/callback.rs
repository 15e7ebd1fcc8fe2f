//! Who runs a BPF callback (`bpf_loop`, `bpf_for_each_map_elem`, `bpf_user_ringbuf_drain`,
//! BPF timers): the helpers and the timer code ask a [`CallbackRunner`] instead of
//! calling the interpreter, so an engine runs callbacks as its own code. The interpreter's
//! runner ([`InterpRunner`]) re-enters the interpreter; the JIT's enters its generated
//! code of the callback function (`bpfkit_jit`, `callback.rs`). Both start the function
//! in frame `depth` with r1.. = `args` and every other register 0, count its instructions
//! against the same budget as the code that called the helper, and return its r0 or the
//! fault at the instruction that failed.

use crate::error::Fault;
use crate::interp;
use crate::runtime::Runtime;

/// Runs one callback invocation.
pub trait CallbackRunner {
    /// Runs the BPF function starting at slot `pc` of program `prog` in call frame `depth`
    /// (0 for a timer callback, the helper caller's depth + 1 otherwise) with r1.. = `args`.
    fn run(
        &mut self,
        rt: &mut Runtime,
        prog: usize,
        pc: usize,
        args: &[u64],
        depth: usize,
    ) -> Result<u64, Box<Fault>>;

    /// `bpf_loop`'s iterations: calls the callback with r1 = i, r2 = `arg` for i in
    /// `0..n` until one returns non-zero; returns the number of calls made. An engine may
    /// set its state up once for all iterations.
    fn run_loop(
        &mut self,
        rt: &mut Runtime,
        prog: usize,
        pc: usize,
        n: u64,
        arg: u64,
        depth: usize,
    ) -> Result<u64, Box<Fault>> {
        for i in 0..n {
            if self.run(rt, prog, pc, &[i, arg], depth)? != 0 {
                return Ok(i + 1);
            }
        }
        Ok(n)
    }
}

/// Runs callbacks on the interpreter (the runner of [`crate::helpers::call`]).
#[derive(Debug, Default, Clone, Copy)]
pub struct InterpRunner;

impl CallbackRunner for InterpRunner {
    #[inline]
    fn run(
        &mut self,
        rt: &mut Runtime,
        prog: usize,
        pc: usize,
        args: &[u64],
        depth: usize,
    ) -> Result<u64, Box<Fault>> {
        interp::run_function(rt, prog, pc, args, depth)
    }
}
