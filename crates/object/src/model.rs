//! The linked form of an object that downstream crates consume.
//!
//! Conventions of a linked instruction stream ([`LinkedProgram::insns`]):
//! - map references are `lddw` with `src = BPF_PSEUDO_MAP_IDX` (5) and `imm` = index into
//!   [`LinkedObject::maps`];
//! - global-variable references are `lddw` with `src = BPF_PSEUDO_MAP_IDX_VALUE` (6),
//!   `imm` = map index and the second slot's `imm` = offset into the map value;
//! - sub-programs are appended after the entry function, local calls (`src = 1`) have
//!   their `imm` fixed to the relative slot offset, as libbpf does.

use bpfkit_isa::RawInsn;

/// Kernel map type numbers (`enum bpf_map_type`).
pub mod map_type {
    pub const UNSPEC: u32 = 0;
    pub const HASH: u32 = 1;
    pub const ARRAY: u32 = 2;
    pub const PROG_ARRAY: u32 = 3;
    pub const PERF_EVENT_ARRAY: u32 = 4;
    pub const PERCPU_HASH: u32 = 5;
    pub const PERCPU_ARRAY: u32 = 6;
    pub const STACK_TRACE: u32 = 7;
    pub const CGROUP_ARRAY: u32 = 8;
    pub const LRU_HASH: u32 = 9;
    pub const LRU_PERCPU_HASH: u32 = 10;
    pub const LPM_TRIE: u32 = 11;
    pub const ARRAY_OF_MAPS: u32 = 12;
    pub const HASH_OF_MAPS: u32 = 13;
    pub const DEVMAP: u32 = 14;
    pub const SOCKMAP: u32 = 15;
    pub const CPUMAP: u32 = 16;
    pub const XSKMAP: u32 = 17;
    pub const SOCKHASH: u32 = 18;
    pub const CGROUP_STORAGE: u32 = 19;
    pub const REUSEPORT_SOCKARRAY: u32 = 20;
    pub const PERCPU_CGROUP_STORAGE: u32 = 21;
    pub const QUEUE: u32 = 22;
    pub const STACK: u32 = 23;
    pub const SK_STORAGE: u32 = 24;
    pub const DEVMAP_HASH: u32 = 25;
    pub const STRUCT_OPS: u32 = 26;
    pub const RINGBUF: u32 = 27;
    pub const INODE_STORAGE: u32 = 28;
    pub const TASK_STORAGE: u32 = 29;
    pub const BLOOM_FILTER: u32 = 30;
    pub const USER_RINGBUF: u32 = 31;
    pub const CGRP_STORAGE: u32 = 32;
    pub const ARENA: u32 = 33;

    /// The kernel's name for a map type, e.g. `BPF_MAP_TYPE_LRU_HASH`.
    pub fn name(t: u32) -> Option<&'static str> {
        const NAMES: [&str; 34] = [
            "BPF_MAP_TYPE_UNSPEC",
            "BPF_MAP_TYPE_HASH",
            "BPF_MAP_TYPE_ARRAY",
            "BPF_MAP_TYPE_PROG_ARRAY",
            "BPF_MAP_TYPE_PERF_EVENT_ARRAY",
            "BPF_MAP_TYPE_PERCPU_HASH",
            "BPF_MAP_TYPE_PERCPU_ARRAY",
            "BPF_MAP_TYPE_STACK_TRACE",
            "BPF_MAP_TYPE_CGROUP_ARRAY",
            "BPF_MAP_TYPE_LRU_HASH",
            "BPF_MAP_TYPE_LRU_PERCPU_HASH",
            "BPF_MAP_TYPE_LPM_TRIE",
            "BPF_MAP_TYPE_ARRAY_OF_MAPS",
            "BPF_MAP_TYPE_HASH_OF_MAPS",
            "BPF_MAP_TYPE_DEVMAP",
            "BPF_MAP_TYPE_SOCKMAP",
            "BPF_MAP_TYPE_CPUMAP",
            "BPF_MAP_TYPE_XSKMAP",
            "BPF_MAP_TYPE_SOCKHASH",
            "BPF_MAP_TYPE_CGROUP_STORAGE",
            "BPF_MAP_TYPE_REUSEPORT_SOCKARRAY",
            "BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE",
            "BPF_MAP_TYPE_QUEUE",
            "BPF_MAP_TYPE_STACK",
            "BPF_MAP_TYPE_SK_STORAGE",
            "BPF_MAP_TYPE_DEVMAP_HASH",
            "BPF_MAP_TYPE_STRUCT_OPS",
            "BPF_MAP_TYPE_RINGBUF",
            "BPF_MAP_TYPE_INODE_STORAGE",
            "BPF_MAP_TYPE_TASK_STORAGE",
            "BPF_MAP_TYPE_BLOOM_FILTER",
            "BPF_MAP_TYPE_USER_RINGBUF",
            "BPF_MAP_TYPE_CGRP_STORAGE",
            "BPF_MAP_TYPE_ARENA",
        ];
        NAMES.get(t as usize).copied()
    }
}

/// Kernel program type numbers (`enum bpf_prog_type`), the ones bpfkit names.
pub mod prog_type {
    pub const UNSPEC: u32 = 0;
    pub const SOCKET_FILTER: u32 = 1;
    pub const KPROBE: u32 = 2;
    pub const SCHED_CLS: u32 = 3;
    pub const SCHED_ACT: u32 = 4;
    pub const TRACEPOINT: u32 = 5;
    pub const XDP: u32 = 6;
    pub const PERF_EVENT: u32 = 7;
    pub const RAW_TRACEPOINT: u32 = 17;
    pub const TRACING: u32 = 26;
    pub const LSM: u32 = 29;
}

/// Where the initial contents of a map come from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum MapInit {
    /// Starts empty (or zeroed, for arrays).
    #[default]
    None,
    /// Global data (`.data`, `.rodata`, `.bss`, ...): the single value at key 0.
    Data(Vec<u8>),
    /// `.values` of a PROG_ARRAY: (slot, program name).
    Programs(Vec<(u32, String)>),
    /// `.values` of a map-in-map: (slot, inner map name).
    Maps(Vec<(u32, String)>),
}

/// What kind of ELF construct a map came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapOrigin {
    /// BTF-defined map in `.maps`.
    Btf,
    /// Legacy `struct bpf_map_def` in `maps`.
    Legacy,
    /// Global data section turned into a single-entry array (name of the section).
    GlobalData,
}

/// One map of the object, as the kernel would create it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapDef {
    pub name: String,
    /// `enum bpf_map_type` (see [`map_type`]).
    pub map_type: u32,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
    pub map_flags: u32,
    /// `LIBBPF_PIN_NONE` (0) or `LIBBPF_PIN_BY_NAME` (1).
    pub pinning: u32,
    /// Template of the inner map for ARRAY_OF_MAPS / HASH_OF_MAPS.
    pub inner: Option<Box<MapDef>>,
    pub init: MapInit,
    pub origin: MapOrigin,
    /// Section the map was defined in (e.g. `.maps`, `maps`, `.rodata`).
    pub section: String,
    /// BTF type ids of key and value, when known (0 otherwise).
    pub btf_key_type_id: u32,
    pub btf_value_type_id: u32,
}

impl MapDef {
    /// A map as a plain `.maps` declaration without BTF ids, initial contents or an inner
    /// map: what tests and generated programs define.
    pub fn plain(
        name: &str,
        map_type: u32,
        key_size: u32,
        value_size: u32,
        max_entries: u32,
        map_flags: u32,
    ) -> MapDef {
        MapDef {
            name: name.into(),
            map_type,
            key_size,
            value_size,
            max_entries,
            map_flags,
            pinning: 0,
            inner: None,
            init: MapInit::None,
            origin: MapOrigin::Btf,
            section: ".maps".into(),
            btf_key_type_id: 0,
            btf_value_type_id: 0,
        }
    }

    /// The name the kernel reports (`BPF_OBJ_NAME_LEN` - 1 = 15 bytes at most); pass this
    /// as `map_name` to `BPF_MAP_CREATE`.
    pub fn kernel_name(&self) -> &str {
        let mut end = self.name.len().min(15);
        while !self.name.is_char_boundary(end) {
            end -= 1;
        }
        &self.name[..end]
    }

    /// libbpf's "real name": the section (`.data`, `.rodata.str1.1`, ...) for global data,
    /// the variable/symbol name otherwise. `name` holds libbpf's map name, which for global
    /// data is prefixed with the object name (e.g. `xdp_coun.rodata`).
    pub fn real_name(&self) -> &str {
        match self.origin {
            MapOrigin::GlobalData => &self.section,
            _ => &self.name,
        }
    }

    /// `map_flags` as the kernel reports them after creation: the kernel adds
    /// `BPF_F_RDONLY_PROG` to DEVMAP and DEVMAP_HASH (`dev_map_init_map`, kernel/bpf/devmap.c).
    pub fn kernel_flags(&self) -> u32 {
        match self.map_type {
            map_type::DEVMAP | map_type::DEVMAP_HASH => self.map_flags | (1 << 7),
            _ => self.map_flags,
        }
    }
}

/// Where a linked instruction came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InsnOrigin {
    /// ELF section of the original instruction.
    pub section: String,
    /// Function symbol the instruction belongs to.
    pub function: String,
    /// Slot index within that section.
    pub insn_index: usize,
    /// Source position from line info, when present.
    pub line: Option<SourceLine>,
}

/// A source position from `.BTF.ext` line info.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceLine {
    pub file: String,
    pub line: u32,
    pub column: u32,
    /// Text of the source line, as recorded in BTF.
    pub text: String,
}

/// One program, linked for execution or loading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkedProgram {
    pub name: String,
    pub section: String,
    /// `enum bpf_prog_type` (see [`prog_type`]).
    pub prog_type: u32,
    /// `enum bpf_attach_type` where the section name implies one (e.g. `xdp/devmap`).
    pub expected_attach_type: Option<u32>,
    /// `BPF_F_XDP_HAS_FRAGS` etc., from the section name (`xdp.frags`).
    pub prog_flags: u32,
    pub insns: Vec<RawInsn>,
    /// One entry per slot of `insns`.
    pub origins: Vec<InsnOrigin>,
}

/// Every program of an object, linked, with the object's map table.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LinkedObject {
    pub programs: Vec<LinkedProgram>,
    pub maps: Vec<MapDef>,
    pub license: String,
    pub kernel_version: Option<u32>,
}

impl LinkedObject {
    pub fn program(&self, name: &str) -> Option<&LinkedProgram> {
        self.programs.iter().find(|p| p.name == name)
    }
    /// Map by libbpf name (`counts`, `xdp_coun.rodata`) or real name (`.rodata`).
    pub fn map_index(&self, name: &str) -> Option<usize> {
        self.maps
            .iter()
            .position(|m| m.name == name)
            .or_else(|| self.maps.iter().position(|m| m.real_name() == name))
    }
}
