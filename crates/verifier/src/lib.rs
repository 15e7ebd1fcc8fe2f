//! `bpfkit-verifier`: decides, for a linked eBPF program, what the Linux verifier
//! (the kernel on our machines, 6.18) would decide, by the same kind of analysis:
//! path-sensitive abstract interpretation over register/stack states with the kernel's
//! scalar domain (tnum + signed/unsigned 64/32-bit ranges), with state pruning.
//!
//! Entry point: [`verify`]. See `docs/verifier.md` for what is covered.

pub mod bounds;
pub mod btf_fields;
pub mod btf_funcs;
pub mod cfg;
mod check;
pub use bpfkit_isa::helper as helper_names;
pub mod helpers;
pub mod render;
pub mod state;
pub mod tailcall;
mod target;
pub mod tnum;

use bpfkit_object::model::{LinkedProgram, MapDef};
pub use bpfkit_target::Caps;
use serde::Serialize;
use state::Decision;
use std::time::Duration;

/// Kernel limits.
pub const BPF_COMPLEXITY_LIMIT_INSNS: u64 = 1_000_000;
pub const BPF_COMPLEXITY_LIMIT_JMP_SEQ: usize = 8192;
pub const MAX_CALL_FRAMES: usize = 8;

#[derive(Clone, Debug)]
pub struct Options {
    /// The capabilities of the loader (`--caps`): what the kernel derives from them
    /// (`allow_ptr_leaks`, `allow_uninit_stack`, `bypass_spec_v1`, `bpf_capable`, helpers
    /// that need CAP_PERFMON, whether XDP loads at all) is applied as 6.18 does.
    /// Default: root.
    pub caps: Caps,
    /// Processed-instruction budget (the kernel's is 1,000,000).
    pub insn_limit: u64,
    /// The object's license is GPL-compatible (GPL-only helpers allowed).
    pub gpl_compatible: bool,
    /// Special BTF fields of each map's value (`btf_fields::from_btf`), index = map index.
    /// `None`: not known; spin locks and timers are then reported as undecided.
    pub map_fields: Option<Vec<btf_fields::MapFields>>,
    /// The object's functions with their BTF linkage and prototypes
    /// (`btf_funcs::from_object`). With it, global functions are verified on their own
    /// as the kernel does; `None`: every function is verified inline (as the kernel does
    /// for a program loaded without `func_info`).
    pub funcs: Option<std::sync::Arc<btf_funcs::ObjectFuncs>>,
    /// The kernel to answer for (`--kernel`): what it lacks (helpers per program type,
    /// map types, ISA groups, bounded loops, size limits) is refused with its words.
    /// `None`: upstream 6.18, the release the analysis models.
    pub target: Option<std::sync::Arc<bpfkit_target::KernelTarget>>,
    /// Names of the program's kfunc calls by instruction, for programs without an object
    /// (`funcs` gives them for objects): (instruction index, kfunc name).
    pub kfuncs: Vec<(usize, String)>,
}

/// A kfunc bpfkit models, as its vmlinux prototype should read: parameter kinds
/// (`ctx`, `scalar`, `dynptr`, `dynptr__uninit`, `mem__opt`, `size__szk`) and the
/// return kind (`int`, `ptr`).
#[derive(Debug, Clone)]
pub struct KfuncModel {
    pub name: &'static str,
    pub params: Vec<&'static str>,
    pub ret: &'static str,
}

/// The kfuncs the verifier models (see docs/verifier.md).
pub fn modelled_kfuncs() -> Vec<KfuncModel> {
    check::kfunc_models()
}

/// The kernel's `license_is_gpl_compatible`.
pub fn license_is_gpl_compatible(license: &str) -> bool {
    matches!(
        license,
        "GPL"
            | "GPL v2"
            | "GPL and additional rights"
            | "Dual BSD/GPL"
            | "Dual MIT/GPL"
            | "Dual MPL/GPL"
    )
}

impl Default for Options {
    fn default() -> Self {
        Options {
            caps: Caps::ROOT,
            insn_limit: BPF_COMPLEXITY_LIMIT_INSNS,
            gpl_compatible: true,
            map_fields: None,
            funcs: None,
            target: None,
            kfuncs: vec![],
        }
    }
}

impl Options {
    /// The defaults, with what a loader learns from the object itself: whether its
    /// license is GPL-compatible, the special BTF fields of its maps' values and its
    /// functions' BTF linkage and prototypes (global functions verified on their own).
    pub fn for_object(
        obj: &bpfkit_object::Object,
        linked: &bpfkit_object::model::LinkedObject,
    ) -> Options {
        Options {
            gpl_compatible: license_is_gpl_compatible(&linked.license),
            map_fields: Some(btf_fields::from_btf(obj.btf.as_ref(), &linked.maps)),
            funcs: btf_funcs::from_object(obj, linked),
            ..Default::default()
        }
    }
}

/// A register's state at the point of rejection.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct RegDump {
    pub reg: u8,
    pub state: String,
}

/// Why a program is rejected.
#[derive(Clone, Debug, Serialize)]
pub struct Rejection {
    /// Instruction (slot index in the linked program) that failed.
    pub insn: usize,
    /// The kernel's log line for this error, same wording (searchable).
    pub kernel_message: String,
    /// A concrete suggestion, when we have one.
    pub hint: Option<String>,
    /// Registers involved in the failing instruction, rendered like the kernel log.
    pub regs: Vec<RegDump>,
    /// Branch decisions on the path that reached the failing instruction.
    pub path: Vec<Decision>,
}

#[derive(Clone, Debug, Serialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    Accepted,
    Rejected(Rejection),
    /// The program uses something bpfkit cannot model yet; no verdict is claimed.
    Unsupported {
        insn: usize,
        what: String,
    },
}

impl Verdict {
    pub fn is_accepted(&self) -> bool {
        matches!(self, Verdict::Accepted)
    }
}

/// veristat's statistics.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Stats {
    pub duration_us: u64,
    /// Instructions processed (the kernel's `insn_processed`).
    pub processed_insns: u64,
    pub total_states: u64,
    pub peak_states: u64,
    pub max_states_per_insn: u64,
    /// Stack depth per sub-program (bytes), as the kernel logs it.
    pub stack_depth: Vec<u32>,
    /// Tail-call sites: (prog-array map index, constant slot if known).
    pub tail_calls: Vec<(usize, Option<u64>)>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub program: String,
    pub section: String,
    #[serde(flatten)]
    pub verdict: Verdict,
    pub stats: Stats,
    /// What the verdict does not cover (e.g. verifier rules of an older target).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// Internal failure: a rejection or "cannot model".
#[derive(Debug)]
pub(crate) enum Fail {
    Reject(Rejection),
    Unsupported { insn: usize, what: String },
}

impl Fail {
    pub(crate) fn reject(insn: usize, msg: String) -> Fail {
        Fail::Reject(Rejection {
            insn,
            kernel_message: msg,
            hint: None,
            regs: vec![],
            path: vec![],
        })
    }
}

/// Verifies one linked program against the object's maps.
pub fn verify(prog: &LinkedProgram, maps: &[MapDef], opts: &Options) -> Report {
    let start = std::time::Instant::now();
    let (verdict, mut stats) = check::run(prog, maps, opts);
    stats.duration_us = start.elapsed().as_micros() as u64;
    Report {
        program: prog.name.clone(),
        section: prog.section.clone(),
        notes: opts
            .target
            .as_deref()
            .and_then(target::caveat)
            .into_iter()
            .collect(),
        verdict,
        stats,
    }
}

pub fn duration(stats: &Stats) -> Duration {
    Duration::from_micros(stats.duration_us)
}
