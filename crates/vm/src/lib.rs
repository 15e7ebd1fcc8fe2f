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

pub mod engine;
pub mod error;
pub mod helpers;
pub mod interp;
pub mod maps;
pub mod memory;
pub mod runtime;

pub use engine::{Engine, Event, Redirect, XdpInput, XdpOutput};
pub use error::{Fault, FaultKind, VmError};
pub use runtime::{Config, Device, FibRoute, Program};

use bpfkit_isa::RawInsn;
use bpfkit_object::model::{prog_type, LinkedObject, MapDef};
use maps::MapSet;
use memory::Regions;
use runtime::Runtime;

/// `BPF_XDP_DEVMAP` (`enum bpf_attach_type`).
const BPF_XDP_DEVMAP: u32 = 33;
/// `BPF_XDP_CPUMAP`.
const BPF_XDP_CPUMAP: u32 = 35;
/// `XDP_REDIRECT`.
const XDP_REDIRECT: u64 = 4;

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
        Ok(Interpreter {
            rt: Runtime::new(programs, set, regions, config),
        })
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
        let m = self.map(map)?;
        Ok(m.entries()
            .into_iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v))
    }

    /// `BPF_MAP_DELETE_ELEM` from user space.
    pub fn map_delete(&mut self, map: usize, key: &[u8]) -> Result<(), VmError> {
        self.map(map)?;
        let set = &mut self.rt.maps;
        set.maps[map].delete(key, &mut set.graveyard)?;
        self.rt.maps.end_run(&mut self.rt.regions);
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
        self.check_prog(prog)?;
        if input.cpu >= self.rt.config.ncpus {
            return Err(VmError::Setup(format!(
                "CPU {} does not exist (ncpus = {})",
                input.cpu, self.rt.config.ncpus
            )));
        }
        let p = &self.rt.programs[prog];
        if p.prog_type != prog_type::XDP && p.prog_type != prog_type::UNSPEC {
            return Err(VmError::Setup(format!(
                "program {:?} is not an XDP program (type {})",
                p.name, p.prog_type
            )));
        }
        let devmap = p.expected_attach_type == Some(BPF_XDP_DEVMAP);
        let cpumap = p.expected_attach_type == Some(BPF_XDP_CPUMAP);
        if (devmap || cpumap) && !self.rt.config.allow_devmap_progs {
            return Err(VmError::Setup(format!(
                "program {:?} is a {} program; BPF_PROG_TEST_RUN refuses those with EINVAL (Config::allow_devmap_progs runs them anyway)",
                p.name,
                if devmap { "devmap" } else { "cpumap" }
            )));
        }
        self.rt.begin_run(input.cpu, input.time_ns);
        let ctx = match self.rt.set_xdp(
            input.packet,
            input.ingress_ifindex,
            input.rx_queue_index,
            devmap,
        ) {
            Ok(c) => c,
            Err(e) => {
                self.rt.end_run();
                return Err(VmError::Setup(e));
            }
        };
        if let Some(x) = self.rt.xdp.as_mut() {
            x.egress_ifindex = self.rt.config.egress_ifindex;
        }
        let r = interp::run_function(&mut self.rt, prog, 0, &[ctx], 0);
        let packet = self.rt.xdp_output();
        let events = std::mem::take(&mut self.rt.events);
        let redirect = self.rt.redirect.take();
        self.rt.end_run();
        let retval = r.map_err(VmError::Fault)?;
        let redirect = if retval as u32 as u64 == XDP_REDIRECT {
            redirect
        } else {
            None
        };
        Ok(XdpOutput {
            retval,
            packet,
            redirect,
            events,
        })
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
        let Runtime { maps, regions, .. } = &mut self.rt;
        maps.maps[map].update(key, value, flags, None, regions, &mut maps.graveyard)?;
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
