//! The bpfkit VM: the [`engine::Engine`] interface, and the interpreter that implements it.
//!
//! - [`Interpreter`] runs the programs of a [`LinkedObject`] as XDP programs
//!   ([`engine::Engine::run_xdp`]) or on raw memory ([`Interpreter::run_raw`]: r1 = memory,
//!   r2 = its length, the bpf_conformance contract).
//! - [`memory`] is the region table every load and store is checked against (shared with
//!   the JIT's checked mode), [`helpers`] the helper implementations, [`maps`] the maps.
//!
//! See `docs/vm.md` for the memory model, supported maps and helpers, and the known
//! differences from the kernel.

pub mod arena;
pub mod audit;
pub mod callback;
pub mod engine;
pub mod error;
pub mod fastpath;
pub mod fib;
pub mod helpers;
pub mod interp;
pub mod kfunc;
pub mod maps;
pub mod memory;
pub mod runtime;
pub mod task;
pub mod timer;
pub mod user_ringbuf;

pub use engine::{Engine, Event, Redirect, XdpInput, XdpOutput};
pub use error::{Fault, FaultKind, VmError};
pub use runtime::{Config, Device, FibRoute, Program};

use bpfkit_isa::RawInsn;
use bpfkit_object::model::{LinkedObject, MapDef};
use maps::MapSet;
use memory::Regions;
use runtime::Runtime;

/// The result of a raw-memory run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawOutput {
    pub r0: u64,
    /// The memory after the run.
    pub mem: Vec<u8>,
    pub events: Vec<Event>,
}

/// The interpreter engine: programs, maps and their state.
pub struct Interpreter {
    rt: Runtime,
}

impl Interpreter {
    /// Loads every program and map of a linked object (maps get their initial contents:
    /// global data, PROG_ARRAY and map-in-map `.values`).
    pub fn new(obj: &LinkedObject, config: Config) -> Result<Interpreter, VmError> {
        let programs = obj
            .programs
            .iter()
            .map(|p| Program {
                name: p.name.clone(),
                insns: p.insns.clone(),
                origins: p
                    .origins
                    .iter()
                    .map(|o| {
                        let mut s = format!("{} {}+{}", o.function, o.section, o.insn_index);
                        if let Some(l) = &o.line {
                            s.push_str(&format!(" at {}:{}: {}", l.file, l.line, l.text.trim()));
                        }
                        Some(s)
                    })
                    .collect(),
                prog_type: p.prog_type,
                expected_attach_type: p.expected_attach_type,
            })
            .collect();
        Self::with_programs(programs, &obj.maps, config)
    }

    /// An interpreter over explicit programs and map definitions.
    pub fn with_programs(
        programs: Vec<Program>,
        maps: &[MapDef],
        config: Config,
    ) -> Result<Interpreter, VmError> {
        if config.ncpus == 0 {
            return Err(VmError::Setup(
                "the number of CPUs must be at least 1".into(),
            ));
        }
        let mut regions = Regions::new();
        let names: Vec<String> = programs.iter().map(|p| p.name.clone()).collect();
        let set = MapSet::new(
            maps,
            config.ncpus,
            &|n| names.iter().position(|p| p == n),
            &mut regions,
        )?;
        let mut rt = Runtime::new(programs, set, regions, config);
        interp::predecode(&mut rt);
        Ok(Interpreter { rt })
    }

    /// An interpreter for one program without maps (raw instructions).
    pub fn from_insns(insns: Vec<RawInsn>) -> Interpreter {
        Self::with_programs(vec![Program::raw("prog", insns)], &[], Config::default())
            .expect("no maps, one CPU")
    }

    pub fn runtime(&self) -> &Runtime {
        &self.rt
    }

    pub fn runtime_mut(&mut self) -> &mut Runtime {
        &mut self.rt
    }

    fn check_prog(&self, prog: usize) -> Result<(), VmError> {
        if prog >= self.rt.programs.len() {
            return Err(VmError::Setup(format!(
                "program #{prog} does not exist (the object has {})",
                self.rt.programs.len()
            )));
        }
        Ok(())
    }

    /// Runs program `prog` with r1 = a copy of `mem`, r2 = its length.
    pub fn run_raw(&mut self, prog: usize, mem: &[u8]) -> Result<RawOutput, VmError> {
        self.check_prog(prog)?;
        self.rt.begin_run(0, 0);
        let addr = self.rt.set_raw_memory(mem);
        let r = interp::run_function(&mut self.rt, prog, 0, &[addr, mem.len() as u64], 0);
        let out = self
            .rt
            .raw_mem
            .as_ref()
            .map(|m| m.as_slice().to_vec())
            .unwrap_or_default();
        let events = std::mem::take(&mut self.rt.events);
        self.rt.end_run();
        let r0 = r.map_err(VmError::Fault)?;
        Ok(RawOutput {
            r0,
            mem: out,
            events,
        })
    }

    /// `BPF_MAP_LOOKUP_ELEM` from user space (per-CPU values concatenated).
    pub fn map_lookup(&self, map: usize, key: &[u8]) -> Result<Option<Vec<u8>>, VmError> {
        Ok(self.map(map)?.user_lookup(key))
    }

    /// `BPF_MAP_DELETE_ELEM` from user space.
    pub fn map_delete(&mut self, map: usize, key: &[u8]) -> Result<(), VmError> {
        self.map(map)?;
        let set = &mut self.rt.maps;
        set.maps[map].delete(key, &mut set.graveyard)?;
        timer::elem_changed(&mut self.rt, map, key);
        self.rt.maps.end_run(&mut self.rt.regions);
        Ok(())
    }

    /// What `BPF_MAP_UPDATE_ELEM` checks of a map-in-map or PROG_ARRAY value before the
    /// map stores it (values here are indices): the inner map exists and matches the
    /// outer map's inner-map template (else -EINVAL, as `bpf_map_fd_get_ptr`), the
    /// program exists.
    fn check_fd_value(&self, map: usize, value: &[u8]) -> Result<(), VmError> {
        use bpfkit_object::model::map_type as mt;
        let m = &self.rt.maps.maps[map];
        let t = m.map_type();
        let in_maps = matches!(t, mt::ARRAY_OF_MAPS | mt::HASH_OF_MAPS);
        let Ok(v) = <[u8; 4]>::try_from(value) else {
            // The map's own size check reports it.
            return Ok(());
        };
        let v = u32::from_le_bytes(v) as usize;
        let err = |msg: String| {
            VmError::from(maps::MapError {
                map: m.def.name.as_str().into(),
                errno: maps::EINVAL,
                msg: msg.into(),
            })
        };
        if in_maps {
            let Some(inner) = self.rt.maps.maps.get(v) else {
                return Err(err(format!("map #{v} does not exist")));
            };
            if let Some(why) = m
                .def
                .inner
                .as_deref()
                .and_then(|tpl| maps::inner_map_mismatch(tpl, &inner.def))
            {
                return Err(err(format!("map #{v} ({}): {why}", inner.def.name)));
            }
        } else if t == mt::PROG_ARRAY && v >= self.rt.programs.len() {
            return Err(err(format!(
                "program #{v} does not exist (the object has {})",
                self.rt.programs.len()
            )));
        }
        Ok(())
    }

    fn map(&self, map: usize) -> Result<&maps::Map, VmError> {
        self.rt.maps.maps.get(map).ok_or_else(|| {
            VmError::Setup(format!(
                "map #{map} does not exist (the object has {})",
                self.rt.maps.maps.len()
            ))
        })
    }
}

impl Engine for Interpreter {
    type Error = VmError;

    fn name(&self) -> &'static str {
        "interp"
    }

    fn run_xdp(&mut self, prog: usize, input: &XdpInput<'_>) -> Result<XdpOutput, VmError> {
        let mut out = XdpOutput::default();
        self.run_xdp_into(prog, input, &mut out)?;
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

    fn run_xdp_into_with(
        &mut self,
        prog: usize,
        input: &XdpInput<'_>,
        out: &mut XdpOutput,
        want_packet: bool,
    ) -> Result<(), VmError> {
        let ctx = self.rt.begin_xdp(prog, input)?;
        let r = interp::run_function(&mut self.rt, prog, 0, &[ctx], 0);
        self.rt.finish_xdp_into_with(r, out, want_packet)
    }

    /// One XDP buffer for all runs (as the kernel's `BPF_PROG_TEST_RUN` with `repeat`);
    /// per-run counters (tail calls, instruction budget) and events start afresh each run.
    fn run_xdp_repeat(
        &mut self,
        prog: usize,
        input: &XdpInput<'_>,
        repeat: u32,
        out: &mut XdpOutput,
    ) -> Result<f64, VmError> {
        let repeat = repeat.max(1);
        let ctx = self.rt.begin_xdp(prog, input)?;
        let t = std::time::Instant::now();
        let mut r = Ok(0);
        for i in 0..repeat {
            if i > 0 {
                // per-run state, as a fresh run has it (same CPU and clock)
                let (cpu, time_ns) = (self.rt.cpu, self.rt.time_ns);
                self.rt.begin_run(cpu, time_ns);
            }
            r = interp::run_function(&mut self.rt, prog, 0, &[ctx], 0);
            if r.is_err() {
                break;
            }
        }
        let ns = t.elapsed().as_nanos() as f64 / f64::from(repeat);
        self.rt.finish_xdp_into_with(r, out, true)?;
        Ok(ns)
    }

    fn last_xdp_meta_len(&self) -> usize {
        self.rt.last_xdp_meta_len
    }

    fn map_entries(&self, map: usize) -> Result<engine::MapEntries, VmError> {
        Ok(self.map(map)?.entries())
    }

    fn map_update(
        &mut self,
        map: usize,
        key: &[u8],
        value: &[u8],
        flags: u64,
    ) -> Result<(), VmError> {
        self.map(map)?;
        self.check_fd_value(map, value)?;
        let Runtime { maps, regions, .. } = &mut self.rt;
        maps.maps[map].update(key, value, flags, None, regions, &mut maps.graveyard)?;
        timer::elem_changed(&mut self.rt, map, key);
        self.rt.maps.end_run(&mut self.rt.regions);
        Ok(())
    }
}

/// Runs raw instructions on `mem` (r1 = memory, r2 = length) and returns r0.
pub fn run_raw(insns: &[RawInsn], mem: &[u8]) -> Result<u64, VmError> {
    Interpreter::from_insns(insns.to_vec())
        .run_raw(0, mem)
        .map(|o| o.r0)
}
