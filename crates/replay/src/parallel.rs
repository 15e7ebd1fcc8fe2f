//! May the RSS queues of a replay run on worker threads? A static look at how the
//! object's programs use their maps decides it (see docs/replay.md, "Multi-queue").
//!
//! With `--queues N`, each queue is its own CPU. Per-CPU maps are private to a queue, so
//! queues only interact through shared (non-per-CPU) maps. Queues can run on separate
//! threads, each on its own engine, with results independent of the thread count, when
//! every shared map is either
//! - read only (the programs never write it), or
//! - a counter map: an ARRAY or HASH whose values the programs never read and only change
//!   with atomic adds (`lock *(u32|u64 *)(v + off) += r`, no fetch) of one width, and,
//!   for a HASH, only insert with `BPF_NOEXIST` and an all-zero value.
//!
//! Counter maps are then merged at the end: each word of a value is the initial word plus
//! the sum of every queue's change (wrapping at the width of the adds), and a HASH holds
//! the union of the keys. Nothing a program does can depend on a counter's value (it never
//! reads one); it can only see whether a HASH key exists yet, and a queue sees its own
//! inserts only — as when every CPU looks the key up before any inserts it, which the
//! kernel allows (the insert of all but one then fails with EEXIST, leaving the same zero
//! value). Per-packet results and final maps are therefore one of the kernel's possible
//! outcomes, and the same for any number of threads.
//!
//! The analysis follows pointer provenance through registers and 8-byte stack spills:
//! map pointers (`lddw` of a map), value pointers (from `bpf_map_lookup_elem` or `lddw`
//! of a global-data value) and stack pointers. Anything it cannot follow (a value pointer
//! handed to a helper or a sub-program, stored outside the stack, used in arithmetic other
//! than adding an offset; a map lookup on a map pointer it cannot name) makes it answer
//! "no", with the reason. It relies on the verifier's guarantee that pointers are not
//! forged from numbers, so [`analyze`] also requires bpfkit's verifier to accept every
//! program of the object.

use bpfkit_object::model::{map_type, LinkedObject, MapDef};

/// How the programs use one shared map, when they may run on several threads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SharedUse {
    /// Per-CPU: each queue (CPU) has its own slot. `merge` takes each CPU's slot from
    /// that CPU's queue.
    PerCpu,
    /// Never written by the programs (reads, redirects, tail calls, records).
    ReadOnly,
    /// Values only changed by atomic adds of `width` bytes; `inserts` when the programs
    /// insert zero values into this HASH.
    Counters { width: usize, inserts: bool },
}

/// The answer: how every map is used, or why queues must run in capture order on one
/// thread.
pub type Plan = Result<Vec<SharedUse>, String>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum V {
    /// A number, or a pointer the analysis does not need to follow (packet, context,
    /// ring-buffer record, callee's stack). `Some` when the value is a known constant.
    Scalar(Option<u64>),
    /// The address of map `m` (`lddw` of a map).
    Map(usize),
    /// A pointer into a value of map `m`, at a known offset or not.
    Val(usize, Option<i64>),
    /// The stack frame pointer plus an offset.
    Frame(i64),
    /// Unknown: may be a pointer into a map value.
    Top,
}

fn join(a: V, b: V) -> V {
    use V::*;
    match (a, b) {
        _ if a == b => a,
        (Scalar(_), Scalar(_)) => Scalar(None),
        (Val(m, o1), Val(m2, o2)) if m == m2 => Val(m, if o1 == o2 { o1 } else { None }),
        // A null pointer on one path (lookup failed).
        (Val(m, o), Scalar(Some(0))) | (Scalar(Some(0)), Val(m, o)) => Val(m, o),
        _ => Top,
    }
}

const STACK: i64 = 512;

#[derive(Clone, PartialEq, Eq)]
struct State {
    regs: [V; 11],
    /// Bit i: stack byte at frame offset i - 512 is known to be zero.
    zero: [u64; 8],
    /// 8-byte slot i (frame offset 8 * i - 512): what was spilled there.
    spill: [V; 64],
}

impl State {
    fn entry() -> State {
        let mut regs = [V::Scalar(None); 11];
        regs[10] = V::Frame(0);
        State {
            regs,
            zero: [0; 8],
            spill: [V::Scalar(None); 64],
        }
    }

    fn join_from(&mut self, o: &State) -> bool {
        let old = self.clone();
        for i in 0..11 {
            self.regs[i] = join(self.regs[i], o.regs[i]);
        }
        for i in 0..8 {
            self.zero[i] &= o.zero[i];
        }
        for i in 0..64 {
            self.spill[i] = join(self.spill[i], o.spill[i]);
        }
        *self != old
    }

    fn zero_range(&self, off: i64, len: i64) -> bool {
        (off..off + len).all(|o| {
            let i = o + STACK;
            (0..STACK).contains(&i) && self.zero[(i / 64) as usize] & (1 << (i % 64)) != 0
        })
    }

    fn set_zero(&mut self, off: i64, len: i64, zero: bool) {
        for o in off..off + len {
            let i = o + STACK;
            if (0..STACK).contains(&i) {
                let (w, b) = ((i / 64) as usize, i % 64);
                if zero {
                    self.zero[w] |= 1 << b;
                } else {
                    self.zero[w] &= !(1 << b);
                }
            }
        }
    }
}

#[derive(Debug, Default, Clone)]
struct Usage {
    loads: bool,
    stores: bool,
    /// Atomic adds without fetch, by width.
    atomic_widths: Vec<usize>,
    /// Other atomics (fetch, xchg, cmpxchg, and/or/xor): they read or overwrite.
    other_atomic: bool,
    /// `bpf_map_update_elem` calls: (flags known to be BPF_NOEXIST, value known zero).
    updates: Vec<(bool, bool)>,
    deletes: bool,
    /// push/pop on queues and stacks.
    fifo_write: bool,
    /// A value or map pointer went where the analysis cannot follow it.
    escape: Option<String>,
}

struct Analysis<'a> {
    maps: &'a [MapDef],
    usage: Vec<Usage>,
    unsafe_reason: Option<String>,
}

impl Analysis<'_> {
    fn escape(&mut self, v: V, what: &str, prog: &str, pc: usize) {
        match v {
            V::Val(m, _) | V::Map(m) => {
                if let Some(u) = self.usage.get_mut(m) {
                    u.escape
                        .get_or_insert_with(|| format!("{what} ({prog}, instruction {pc})"));
                }
            }
            V::Top => self.fail(format!(
                "{prog}, instruction {pc}: {what} (a pointer of unknown origin)"
            )),
            _ => {}
        }
    }

    fn fail(&mut self, reason: String) {
        self.unsafe_reason.get_or_insert(reason);
    }

    fn map_name(&self, m: usize) -> String {
        self.maps
            .get(m)
            .map(|d| d.real_name().to_string())
            .unwrap_or_else(|| format!("#{m}"))
    }
}

const BPF_NOEXIST: u64 = 1;

/// Decides whether queues may run on worker threads; see the module documentation.
/// `object_path` (the file `obj` was linked from, when known) lets the verifier see the
/// spin lock / timer fields of map values.
pub fn analyze(obj: &LinkedObject, object_path: Option<&std::path::Path>) -> Plan {
    let opts = crate::engines::verifier_options(obj, object_path);
    for p in &obj.programs {
        if !bpfkit_verifier::verify(p, &obj.maps, &opts)
            .verdict
            .is_accepted()
        {
            return Err(format!(
                "bpfkit's verifier does not accept program `{}`, and the map analysis relies on it",
                p.name
            ));
        }
    }
    let mut a = Analysis {
        maps: &obj.maps,
        usage: vec![Usage::default(); obj.maps.len()],
        unsafe_reason: None,
    };
    for p in &obj.programs {
        analyze_program(&mut a, &p.name, &p.insns);
        if let Some(r) = a.unsafe_reason.take() {
            return Err(r);
        }
    }
    let mut plan = Vec::with_capacity(obj.maps.len());
    for (m, def) in obj.maps.iter().enumerate() {
        plan.push(decide(def, &a.usage[m])?);
    }
    Ok(plan)
}

fn decide(def: &MapDef, u: &Usage) -> Result<SharedUse, String> {
    let name = def.real_name();
    let writes = u.stores
        || !u.atomic_widths.is_empty()
        || u.other_atomic
        || !u.updates.is_empty()
        || u.deletes
        || u.fifo_write;
    match def.map_type {
        map_type::PERCPU_ARRAY => return Ok(SharedUse::PerCpu),
        map_type::PERCPU_HASH | map_type::LRU_PERCPU_HASH => {
            if !u.updates.is_empty() || u.deletes {
                return Err(format!(
                    "per-CPU hash `{name}` gains or loses keys, and its keys are shared by all CPUs"
                ));
            }
            return Ok(SharedUse::PerCpu);
        }
        _ => {}
    }
    if let Some(e) = &u.escape {
        return Err(format!(
            "map `{name}`: a pointer to it or its values goes where the analysis cannot follow: {e}"
        ));
    }
    if !writes {
        return Ok(SharedUse::ReadOnly);
    }
    if u.loads {
        return Err(format!(
            "shared map `{name}` is both read and written by the program: results would depend on the order of CPUs"
        ));
    }
    if u.stores || u.other_atomic || u.deletes || u.fifo_write {
        return Err(format!(
            "shared map `{name}` is written other than by atomic adds (plain stores, fetching atomics, deletes or push/pop)"
        ));
    }
    let hash = def.map_type == map_type::HASH;
    if def.map_type != map_type::ARRAY && !hash {
        return Err(format!(
            "shared map `{name}` (type {}) is written; only ARRAY and HASH counters are merged",
            def.map_type
        ));
    }
    let inserts = !u.updates.is_empty();
    if inserts && (!hash || u.updates.iter().any(|&(nx, zero)| !nx || !zero)) {
        return Err(format!(
            "shared map `{name}` is updated with bpf_map_update_elem other than a BPF_NOEXIST insert of a zero value"
        ));
    }
    let mut widths = u.atomic_widths.clone();
    widths.sort_unstable();
    widths.dedup();
    let width = match widths.as_slice() {
        [] => 1,
        [w] => *w,
        _ => {
            return Err(format!(
                "shared map `{name}` is updated with atomic adds of several widths"
            ))
        }
    };
    if !(def.value_size as usize).is_multiple_of(width) {
        return Err(format!(
            "shared map `{name}`: value size {} is not a multiple of its {width}-byte counters",
            def.value_size
        ));
    }
    Ok(SharedUse::Counters { width, inserts })
}

fn size_of(code: u8) -> i64 {
    match code & 0x18 {
        0x00 => 4,
        0x08 => 2,
        0x10 => 1,
        _ => 8,
    }
}

fn analyze_program(a: &mut Analysis<'_>, prog: &str, insns: &[bpfkit_isa::RawInsn]) {
    let n = insns.len();
    let mut states: Vec<Option<State>> = vec![None; n];
    let mut work: Vec<usize> = Vec::new();
    let mut push =
        |states: &mut Vec<Option<State>>, work: &mut Vec<usize>, pc: usize, s: &State| {
            if pc >= n {
                return;
            }
            let changed = match &mut states[pc] {
                None => {
                    states[pc] = Some(s.clone());
                    true
                }
                Some(old) => old.join_from(s),
            };
            if changed {
                work.push(pc);
            }
        };
    push(&mut states, &mut work, 0, &State::entry());
    let mut steps = 0usize;
    while let Some(pc) = work.pop() {
        steps += 1;
        if steps > 2_000_000 {
            a.fail(format!("{prog}: the map analysis did not converge"));
            return;
        }
        let Some(mut s) = states[pc].clone() else {
            continue;
        };
        let i = insns[pc];
        let (dst, src) = (i.dst as usize, i.src as usize);
        if dst > 10 || src > 10 {
            a.fail(format!("{prog}, instruction {pc}: bad register"));
            return;
        }
        let class = i.code & 7;
        let mut next = vec![pc + 1];
        match class {
            // LD: lddw (others are refused for XDP).
            0x00 => {
                if i.code == 0x18 {
                    let hi = insns.get(pc + 1).map(|h| h.imm).unwrap_or(0);
                    s.regs[dst] = match i.src {
                        0 => V::Scalar(Some(i.imm as u32 as u64 | ((hi as u32 as u64) << 32))),
                        1 | 5 => V::Map(i.imm.max(0) as usize),
                        2 | 6 => V::Val(i.imm.max(0) as usize, Some(hi as u32 as i64)),
                        4 => {
                            // A callback: analyzed from its own entry state.
                            let t = pc as i64 + 1 + i.imm as i64;
                            if t >= 0 {
                                push(&mut states, &mut work, t as usize, &State::entry());
                            }
                            V::Scalar(None)
                        }
                        _ => V::Scalar(None),
                    };
                    next = vec![pc + 2];
                } else {
                    s.regs[0] = V::Scalar(None);
                }
            }
            // LDX
            0x01 => {
                let size = size_of(i.code);
                let v = match s.regs[src] {
                    V::Frame(o) => {
                        let at = o + i.off as i64;
                        let slot = (at + STACK) / 8;
                        if size == 8 && at % 8 == 0 && (0..64).contains(&slot) {
                            s.spill[slot as usize]
                        } else {
                            // A partial read of a spilled pointer.
                            for b in [at, at + size - 1] {
                                let sl = (b + STACK).div_euclid(8);
                                if (0..64).contains(&sl) {
                                    let sp = s.spill[sl as usize];
                                    a.escape(sp, "partial load of a spilled pointer", prog, pc);
                                }
                            }
                            V::Scalar(None)
                        }
                    }
                    V::Val(m, _) => {
                        if let Some(u) = a.usage.get_mut(m) {
                            u.loads = true;
                        }
                        V::Scalar(None)
                    }
                    V::Top => {
                        a.escape(V::Top, "load", prog, pc);
                        V::Scalar(None)
                    }
                    _ => V::Scalar(None),
                };
                s.regs[dst] = v;
            }
            // ST, STX
            0x02 | 0x03 => {
                let size = size_of(i.code);
                let atomic = class == 0x03 && i.code & 0xe0 == 0xc0;
                let v = if class == 0x02 {
                    V::Scalar(Some(i.imm as i64 as u64))
                } else {
                    s.regs[src]
                };
                match s.regs[dst] {
                    V::Frame(o) => {
                        let at = o + i.off as i64;
                        let zero = !atomic && v == V::Scalar(Some(0));
                        s.set_zero(at, size, zero);
                        let slot = (at + STACK) / 8;
                        if !atomic && size == 8 && at % 8 == 0 && (0..64).contains(&slot) {
                            s.spill[slot as usize] = v;
                        } else {
                            for b in [at, at + size - 1] {
                                let sl = (b + STACK).div_euclid(8);
                                if (0..64).contains(&sl) {
                                    s.spill[sl as usize] = V::Scalar(None);
                                }
                            }
                            a.escape(v, "pointer stored in part of a stack slot", prog, pc);
                        }
                    }
                    V::Val(m, _) => {
                        if let Some(u) = a.usage.get_mut(m) {
                            if atomic && i.imm == 0 {
                                u.atomic_widths.push(size as usize);
                            } else if atomic {
                                u.other_atomic = true;
                            } else {
                                u.stores = true;
                            }
                        }
                        a.escape(v, "pointer stored into a map value", prog, pc);
                    }
                    V::Top => a.escape(V::Top, "store", prog, pc),
                    _ => a.escape(v, "pointer stored outside the stack", prog, pc),
                }
                if atomic && i.imm & 1 != 0 {
                    // BPF_FETCH (and xchg/cmpxchg): the old value lands in a register.
                    if i.imm == 0xf1 {
                        s.regs[0] = V::Scalar(None);
                    } else {
                        s.regs[src] = V::Scalar(None);
                    }
                }
            }
            // ALU, ALU64
            0x04 | 0x07 => {
                let op = i.code & 0xf0;
                let x = i.code & 0x08 != 0;
                let alu64 = class == 0x07;
                let sv = if x {
                    s.regs[src]
                } else {
                    V::Scalar(Some(if alu64 {
                        i.imm as i64 as u64
                    } else {
                        i.imm as u32 as u64
                    }))
                };
                let d = s.regs[dst];
                let r = match (op, alu64) {
                    // mov
                    (0xb0, true) if i.off == 0 => sv,
                    (0xb0, _) => {
                        a.escape(sv, "pointer truncated or sign-extended", prog, pc);
                        match sv {
                            V::Scalar(Some(c)) if !alu64 => V::Scalar(Some(c as u32 as u64)),
                            _ => V::Scalar(None),
                        }
                    }
                    // add, sub
                    (0x00 | 0x10, true) => {
                        let neg = op == 0x10;
                        match (d, sv) {
                            (V::Scalar(Some(p)), V::Scalar(Some(q))) => V::Scalar(Some(if neg {
                                p.wrapping_sub(q)
                            } else {
                                p.wrapping_add(q)
                            })),
                            (V::Scalar(_), V::Scalar(_)) => V::Scalar(None),
                            (V::Val(m, o), V::Scalar(c)) => V::Val(
                                m,
                                match (o, c) {
                                    (Some(o), Some(c)) => {
                                        Some(if neg { o - c as i64 } else { o + c as i64 })
                                    }
                                    _ => None,
                                },
                            ),
                            (V::Scalar(_), V::Val(m, _)) if !neg => V::Val(m, None),
                            (V::Frame(o), V::Scalar(Some(c))) => {
                                V::Frame(if neg { o - c as i64 } else { o + c as i64 })
                            }
                            (V::Frame(_), V::Frame(_)) if neg => V::Scalar(None),
                            (V::Map(_), _) | (_, V::Map(_)) => {
                                a.escape(d, "arithmetic on a map pointer", prog, pc);
                                a.escape(sv, "arithmetic on a map pointer", prog, pc);
                                V::Scalar(None)
                            }
                            (V::Val(..), V::Val(..)) if neg => V::Scalar(None),
                            _ => V::Top,
                        }
                    }
                    _ => {
                        a.escape(d, "arithmetic on a pointer", prog, pc);
                        if x {
                            a.escape(sv, "arithmetic on a pointer", prog, pc);
                        }
                        match (d, sv) {
                            (V::Top, _) | (_, V::Top) => V::Top,
                            _ => V::Scalar(None),
                        }
                    }
                };
                s.regs[dst] = r;
            }
            // JMP, JMP32
            0x05 | 0x06 => {
                let op = i.code & 0xf0;
                match op {
                    0x00 => {
                        let off = if class == 0x06 {
                            i.imm as i64
                        } else {
                            i.off as i64
                        };
                        next = vec![(pc as i64 + 1 + off).max(0) as usize];
                    }
                    0x80 => {
                        call(a, &mut s, &mut states, &mut work, &mut push, prog, pc, i);
                    }
                    0x90 => {
                        a.escape(s.regs[0], "pointer returned", prog, pc);
                        next = vec![];
                    }
                    _ => {
                        next.push((pc as i64 + 1 + i.off as i64).max(0) as usize);
                    }
                }
            }
            _ => {}
        }
        if a.unsafe_reason.is_some() {
            return;
        }
        for t in next {
            push(&mut states, &mut work, t, &s);
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn call(
    a: &mut Analysis<'_>,
    s: &mut State,
    states: &mut Vec<Option<State>>,
    work: &mut Vec<usize>,
    push: &mut impl FnMut(&mut Vec<Option<State>>, &mut Vec<usize>, usize, &State),
    prog: &str,
    pc: usize,
    i: bpfkit_isa::RawInsn,
) {
    let args = [s.regs[1], s.regs[2], s.regs[3], s.regs[4], s.regs[5]];
    match i.src {
        1 => {
            // bpf-to-bpf call: the callee starts from an unknown state; pointers to map
            // values must not be handed over.
            for v in args {
                if !matches!(v, V::Frame(_)) {
                    a.escape(v, "pointer passed to a sub-program", prog, pc);
                }
            }
            let t = pc as i64 + 1 + i.imm as i64;
            if t >= 0 {
                push(states, work, t as usize, &State::entry());
            }
            // The callee may write the caller's stack through a frame pointer argument.
            if args.iter().any(|v| matches!(v, V::Frame(_))) {
                s.zero = [0; 8];
            }
        }
        0 => {
            let id = i.imm;
            let map_of = |a: &mut Analysis<'_>, v: V| -> Option<usize> {
                match v {
                    V::Map(m) => Some(m),
                    _ => {
                        a.fail(format!(
                            "{prog}, instruction {pc}: helper {id} on a map the analysis cannot name"
                        ));
                        None
                    }
                }
            };
            let mut r0 = V::Scalar(None);
            match id {
                // bpf_map_lookup_elem
                1 => {
                    if let Some(m) = map_of(a, args[0]) {
                        let inner = a.maps.get(m).is_some_and(|d| {
                            matches!(
                                d.map_type,
                                map_type::ARRAY_OF_MAPS | map_type::HASH_OF_MAPS
                            )
                        });
                        r0 = if inner { V::Top } else { V::Val(m, Some(0)) };
                    }
                    a.escape(args[1], "value pointer used as a map key", prog, pc);
                }
                // bpf_map_update_elem
                2 => {
                    if let Some(m) = map_of(a, args[0]) {
                        let size = a.maps.get(m).map(|d| d.value_size as i64).unwrap_or(0);
                        let zero = match args[2] {
                            V::Frame(o) => s.zero_range(o, size),
                            _ => false,
                        };
                        let nx = args[3] == V::Scalar(Some(BPF_NOEXIST));
                        if let Some(u) = a.usage.get_mut(m) {
                            u.updates.push((nx, zero));
                        }
                    }
                    a.escape(args[1], "value pointer used as a map key", prog, pc);
                    a.escape(args[2], "value pointer copied into a map", prog, pc);
                }
                // bpf_map_delete_elem
                3 => {
                    if let Some(m) = map_of(a, args[0]) {
                        if let Some(u) = a.usage.get_mut(m) {
                            u.deletes = true;
                        }
                    }
                    a.escape(args[1], "value pointer used as a map key", prog, pc);
                }
                // bpf_get_prandom_u32: one random stream per engine, not per CPU.
                7 => a.fail(format!(
                    "{prog} calls bpf_get_prandom_u32: one random stream is shared by all CPUs, so values would depend on the order of queues"
                )),
                // bpf_tail_call, bpf_redirect_map: read only.
                12 | 51 => {
                    for v in args {
                        if !matches!(v, V::Map(_)) {
                            a.escape(v, "pointer passed to a helper", prog, pc);
                        }
                    }
                }
                // bpf_map_push_elem, bpf_map_pop_elem, bpf_map_peek_elem.
                87..=89 => {
                    if let Some(m) = map_of(a, args[0]) {
                        if id != 89 {
                            if let Some(u) = a.usage.get_mut(m) {
                                u.fifo_write = true;
                            }
                        }
                    }
                    a.escape(args[1], "pointer passed to a helper", prog, pc);
                }
                _ => {
                    // Any other helper: map arguments must be record maps (ring buffers,
                    // perf event arrays), and no value pointer may be handed over.
                    for v in args {
                        match v {
                            V::Map(m)
                                if a.maps.get(m).is_some_and(|d| {
                                    matches!(
                                        d.map_type,
                                        map_type::RINGBUF | map_type::PERF_EVENT_ARRAY
                                    )
                                }) => {}
                            V::Map(m) => {
                                let name = a.map_name(m);
                                a.fail(format!(
                                    "{prog}, instruction {pc}: helper {id} takes map `{name}`"
                                ));
                            }
                            other => a.escape(other, "pointer passed to a helper", prog, pc),
                        }
                    }
                }
            }
            s.regs[0] = r0;
        }
        _ => a.fail(format!(
            "{prog}, instruction {pc}: kfunc calls are not analyzed"
        )),
    }
    for r in 1..=5 {
        s.regs[r] = V::Scalar(None);
    }
    if i.src == 1 {
        s.regs[0] = V::Scalar(None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(name: &str) -> LinkedObject {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../corpus/obj")
            .join(format!("{name}.o"));
        let bytes = std::fs::read(&p).expect("corpus object");
        bpfkit_object::Object::parse_named(&bytes, name)
            .and_then(|o| o.link())
            .expect("links")
    }

    #[test]
    fn counter_program_runs_on_threads() {
        let o = obj("xdp_counter");
        let plan = analyze(&o, None).expect("xdp_counter's maps are counters");
        let by_name =
            |n: &str| plan[o.maps.iter().position(|m| m.real_name() == n).expect("map")].clone();
        assert_eq!(by_name("proto_stats"), SharedUse::PerCpu);
        assert_eq!(
            by_name("ethertype_stats"),
            SharedUse::Counters {
                width: 8,
                inserts: true
            }
        );
        assert_eq!(
            by_name("verdicts"),
            SharedUse::Counters {
                width: 8,
                inserts: false
            }
        );
    }

    #[test]
    fn programs_that_read_shared_state_stay_on_one_thread() {
        // xdp_time stores the time, random numbers and the CPU into shared maps.
        let why = analyze(&obj("xdp_time"), None).expect_err("xdp_time must run in order");
        assert!(!why.is_empty());
    }
}
