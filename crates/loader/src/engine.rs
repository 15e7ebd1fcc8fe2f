//! The kernel as an [`Engine`]: maps created with `BPF_MAP_CREATE`, programs loaded with
//! `BPF_PROG_LOAD`, XDP runs through `BPF_PROG_TEST_RUN`.

use crate::error::{Error, Result};
use crate::map::{Map, MapSpec, BPF_F_MMAPABLE, BPF_F_RDONLY_PROG};
use crate::prog::{Program, ProgramSpec};
use bpfkit_isa::{opcode, RawInsn};
use bpfkit_object::model::{map_type, LinkedObject, LinkedProgram, MapDef, MapInit, MapOrigin};
use bpfkit_vm::engine::{Engine, XdpInput, XdpOutput};
use std::os::fd::{AsFd, AsRawFd};

/// A [`LinkedObject`] loaded into the running kernel.
///
/// What `BPF_PROG_TEST_RUN` cannot show is absent from [`XdpOutput`]: `redirect` is
/// always `None` and `events` empty; `retval` is r0 truncated to 32 bits. `time_ns` and
/// `cpu` of [`XdpInput`] are ignored (the kernel uses its own clock and CPU).
#[derive(Debug)]
pub struct KernelEngine {
    maps: Vec<Map>,
    programs: Vec<Program>,
    /// Metadata bytes in front of the last run's output packet (the kernel reports
    /// `data - data_meta` in the `xdp_md` it writes back).
    last_meta_len: usize,
}

/// True for a global-data map that libbpf freezes after writing its initial value.
fn is_read_only_data(def: &MapDef) -> bool {
    def.origin == MapOrigin::GlobalData
        && (def.section.starts_with(".rodata") || def.section == ".kconfig")
}

/// The spec the kernel gets for a map of the object, with libbpf's flags for global data
/// (`BPF_F_MMAPABLE`; read-only sections also `BPF_F_RDONLY_PROG`).
pub fn map_spec(def: &MapDef) -> MapSpec {
    let mut spec = MapSpec::from(def);
    if def.origin == MapOrigin::GlobalData {
        spec.map_flags |= BPF_F_MMAPABLE;
        if is_read_only_data(def) {
            spec.map_flags |= BPF_F_RDONLY_PROG;
        }
    }
    spec
}

/// Rewrites the linked stream's map references (`lddw` with src 5/6 and a map index) to
/// the kernel's (`BPF_PSEUDO_MAP_FD`/`BPF_PSEUDO_MAP_VALUE` with the map's fd).
/// The BTF id kfunc `name` has in the running kernel's vmlinux, for a call in program
/// `prog` (libbpf's `bpf_object__resolve_ksym_func_btf_id`; module kfuncs are not looked
/// up).
pub(crate) fn kfunc_btf_id(prog: &str, name: &str) -> Result<i32> {
    let ids = crate::features::vmlinux_kfuncs().map_err(|e| {
        Error::Invalid(format!(
            "program `{prog}` calls kfuncs, but their BTF ids are unknown: {e}"
        ))
    })?;
    ids.get(name).map(|&id| id as i32).ok_or_else(|| {
        Error::Invalid(format!(
            "program `{prog}`: libbpf: extern (func ksym) '{name}': not found in kernel or module BTFs"
        ))
    })
}

/// Kfunc calls of a linked program carry bpfkit's kfunc number (`bpfkit_isa::kfunc`);
/// the kernel wants the kfunc's BTF id in the running vmlinux.
fn resolve_kfunc_numbers(prog: &LinkedProgram, insns: &mut [RawInsn]) -> Result<()> {
    for insn in insns.iter_mut() {
        if insn.code != 0x85 || insn.src != bpfkit_isa::opcode::BPF_PSEUDO_KFUNC_CALL {
            continue;
        }
        let name = bpfkit_isa::kfunc::name(insn.imm).ok_or_else(|| {
            Error::Invalid(format!(
                "program `{}` calls a kfunc bpfkit does not know by number; load the object (with its BTF) instead",
                prog.name
            ))
        })?;
        insn.imm = kfunc_btf_id(&prog.name, name)?;
        insn.off = 0;
    }
    Ok(())
}

pub fn resolve_map_refs(prog: &LinkedProgram, map_fds: &[i32]) -> Result<Vec<RawInsn>> {
    let mut insns = prog.insns.clone();
    let mut i = 0;
    while i < insns.len() {
        let ins = insns[i];
        if ins.is_lddw() {
            if matches!(
                ins.src,
                opcode::BPF_PSEUDO_MAP_IDX | opcode::BPF_PSEUDO_MAP_IDX_VALUE
            ) {
                let idx = ins.imm;
                let fd = usize::try_from(idx).ok().and_then(|i| map_fds.get(i)).ok_or_else(|| {
                    Error::Invalid(format!(
                        "program `{}`, instruction {i}: lddw refers to map index {idx}, the object has {} maps",
                        prog.name,
                        map_fds.len()
                    ))
                })?;
                insns[i].imm = *fd;
                insns[i].src = if ins.src == opcode::BPF_PSEUDO_MAP_IDX {
                    opcode::BPF_PSEUDO_MAP_FD
                } else {
                    opcode::BPF_PSEUDO_MAP_VALUE
                };
            }
            if i + 1 >= insns.len() {
                return Err(Error::Invalid(format!(
                    "program `{}`, instruction {i}: lddw without its second slot",
                    prog.name
                )));
            }
            i += 2;
        } else {
            i += 1;
        }
    }
    Ok(insns)
}

impl KernelEngine {
    /// Creates every map (initial values written, read-only data frozen), loads every
    /// program and fills PROG_ARRAYs and map-in-maps from their `.values`.
    pub fn new(obj: &LinkedObject) -> Result<KernelEngine> {
        let mut maps = Vec::with_capacity(obj.maps.len());
        for def in &obj.maps {
            let inner = match &def.inner {
                Some(inner) => Some(Map::create(&map_spec(inner), None)?),
                None if matches!(
                    def.map_type,
                    map_type::ARRAY_OF_MAPS | map_type::HASH_OF_MAPS
                ) =>
                {
                    return Err(Error::Invalid(format!(
                        "map `{}`: map-in-map without an inner map definition",
                        def.name
                    )))
                }
                None => None,
            };
            let map = Map::create(&map_spec(def), inner.as_ref().map(|m| m.as_fd()))?;
            if let MapInit::Data(data) = &def.init {
                if data.len() > def.value_size as usize {
                    return Err(Error::Invalid(format!(
                        "map `{}`: initial data is {} bytes, value_size is {}",
                        def.name,
                        data.len(),
                        def.value_size
                    )));
                }
                let mut value = data.clone();
                value.resize(map.value_len(), 0);
                map.update(&0u32.to_ne_bytes(), &value, 0)?;
            }
            if is_read_only_data(def) {
                map.freeze()?;
            }
            maps.push(map);
        }
        let fds: Vec<i32> = maps.iter().map(|m| m.as_fd().as_raw_fd()).collect();

        let license = if obj.license.is_empty() {
            "GPL"
        } else {
            obj.license.as_str()
        };
        let mut programs = Vec::with_capacity(obj.programs.len());
        for p in &obj.programs {
            let mut insns = resolve_map_refs(p, &fds)?;
            resolve_kfunc_numbers(p, &mut insns)?;
            let spec = ProgramSpec {
                name: &p.name,
                prog_type: p.prog_type,
                expected_attach_type: p.expected_attach_type.unwrap_or(0),
                prog_flags: p.prog_flags,
                insns: &insns,
                license,
                kern_version: obj.kernel_version.unwrap_or(0),
                log_level: 0,
            };
            programs.push(Program::load(&spec)?);
        }

        for (def, map) in obj.maps.iter().zip(&maps) {
            let slots = match &def.init {
                MapInit::Programs(slots) => slots
                    .iter()
                    .map(|(slot, name)| {
                        let i = obj
                            .programs
                            .iter()
                            .position(|p| &p.name == name)
                            .ok_or_else(|| {
                                Error::Invalid(format!(
                                    "map `{}` slot {slot}: no program named `{name}`",
                                    def.name
                                ))
                            })?;
                        Ok((*slot, programs[i].as_fd().as_raw_fd()))
                    })
                    .collect::<Result<Vec<_>>>()?,
                MapInit::Maps(slots) => slots
                    .iter()
                    .map(|(slot, name)| {
                        let i = obj.map_index(name).ok_or_else(|| {
                            Error::Invalid(format!(
                                "map `{}` slot {slot}: no map named `{name}`",
                                def.name
                            ))
                        })?;
                        Ok((*slot, fds[i]))
                    })
                    .collect::<Result<Vec<_>>>()?,
                _ => continue,
            };
            for (slot, fd) in slots {
                map.update(&slot.to_ne_bytes(), &(fd as u32).to_ne_bytes(), 0)?;
            }
        }
        Ok(KernelEngine {
            maps,
            programs,
            last_meta_len: 0,
        })
    }

    /// Takes over an object loaded by [`crate::LoadedObject`], which gives the kernel the
    /// object's BTF, func info and line info as libbpf does (programs with `bpf_loop`
    /// callbacks, spin locks in map values or global functions need them). Maps and
    /// programs keep the order of the [`LinkedObject`] the object links to.
    pub fn from_loaded(obj: crate::LoadedObject) -> KernelEngine {
        KernelEngine {
            maps: obj.maps.into_iter().map(|m| m.map).collect(),
            programs: obj.programs.into_iter().map(|p| p.program).collect(),
            last_meta_len: 0,
        }
    }

    pub fn program(&self, i: usize) -> Option<&Program> {
        self.programs.get(i)
    }

    pub fn map(&self, i: usize) -> Option<&Map> {
        self.maps.get(i)
    }

    fn map_checked(&self, i: usize) -> Result<&Map> {
        self.maps.get(i).ok_or_else(|| {
            Error::Invalid(format!(
                "map index {i} out of range ({} maps)",
                self.maps.len()
            ))
        })
    }
}

impl KernelEngine {
    /// One `BPF_PROG_TEST_RUN` of program `prog` with `repeat`; the output and the
    /// kernel's `duration` (mean ns per run).
    fn run_xdp_timed(
        &mut self,
        prog: usize,
        input: &XdpInput<'_>,
        repeat: u32,
    ) -> Result<(XdpOutput, u32)> {
        let p = self.programs.get(prog).ok_or_else(|| {
            Error::Invalid(format!(
                "program index {prog} out of range ({} programs)",
                self.programs.len()
            ))
        })?;
        let run = p.test_run_xdp(
            input.packet,
            input.ingress_ifindex,
            input.rx_queue_index,
            repeat,
        )?;
        // `xdp_convert_buff_to_md`: the returned `data` is the metadata length (the output
        // starts at data_meta); clamped to what was returned.
        self.last_meta_len = (run.ctx.data as usize).min(run.packet.len());
        Ok((
            XdpOutput {
                retval: run.retval as u64,
                packet: run.packet,
                redirect: None,
                events: Vec::new(),
            },
            run.duration_ns,
        ))
    }
}

impl Engine for KernelEngine {
    type Error = Error;

    fn name(&self) -> &'static str {
        "kernel"
    }

    fn run_xdp(&mut self, prog: usize, input: &XdpInput<'_>) -> Result<XdpOutput> {
        Ok(self.run_xdp_timed(prog, input, 1)?.0)
    }

    /// `BPF_PROG_TEST_RUN` with `repeat`: the kernel's own `duration` (mean ns per run,
    /// an integer).
    fn run_xdp_repeat(
        &mut self,
        prog: usize,
        input: &XdpInput<'_>,
        repeat: u32,
        out: &mut XdpOutput,
    ) -> Result<f64> {
        let (o, duration) = self.run_xdp_timed(prog, input, repeat.max(1))?;
        *out = o;
        Ok(f64::from(duration))
    }

    fn last_xdp_meta_len(&self) -> usize {
        self.last_meta_len
    }

    fn map_entries(&self, map: usize) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        self.map_checked(map)?.entries()
    }

    fn map_update(&mut self, map: usize, key: &[u8], value: &[u8], flags: u64) -> Result<()> {
        self.map_checked(map)?.update(key, value, flags)
    }
}
