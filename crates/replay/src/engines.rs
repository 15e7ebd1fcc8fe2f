//! The engines a replay can run on, behind one object-safe interface.

use bpfkit_object::model::LinkedObject;
use bpfkit_vm::engine::{Engine, XdpInput, XdpOutput};
use bpfkit_vm::runtime::Coverage;
use bpfkit_vm::{Config, Interpreter, VmError};

/// Which engine to run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EngineKind {
    Interp,
    /// The JIT as a user wants it: fast mode when bpfkit's verifier accepts every program
    /// of the object (as the kernel would load it), else checked mode; the engine says
    /// which ([`ReplayEngine::mode`]).
    Jit,
    /// The JIT in checked mode: every memory access checked like the interpreter's.
    JitChecked,
    /// The JIT in fast mode (direct memory accesses, like the kernel's JIT): only for
    /// objects whose every program bpfkit's verifier accepts; refused otherwise.
    JitFast,
    /// The JIT in fast mode without asking the verifier (`jit-fast-unverified`): for
    /// reproducing what a wrongly accepted program does under fast mode, and for testing
    /// that fast mode stays confined to the engine's memory (`docs/vm.md`). Results of a
    /// program the kernel would reject mean nothing; a wild access is a fault.
    JitFastUnverified,
    Kernel,
}

impl EngineKind {
    pub fn parse(s: &str) -> Result<EngineKind, String> {
        match s {
            "interp" | "interpreter" => Ok(EngineKind::Interp),
            "jit" => Ok(EngineKind::Jit),
            "jit-checked" => Ok(EngineKind::JitChecked),
            "jit-fast" => Ok(EngineKind::JitFast),
            "jit-fast-unverified" => Ok(EngineKind::JitFastUnverified),
            "kernel" => Ok(EngineKind::Kernel),
            other => Err(format!(
                "unknown engine `{other}` (expected interp, jit, jit-checked, jit-fast, jit-fast-unverified or kernel)"
            )),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            EngineKind::Interp => "interp",
            EngineKind::Jit => "jit",
            EngineKind::JitChecked => "jit-checked",
            EngineKind::JitFast => "jit-fast",
            EngineKind::JitFastUnverified => "jit-fast-unverified",
            EngineKind::Kernel => "kernel",
        }
    }
}

/// Why a packet produced no result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunError {
    /// The engine refused to run the program on this input, as `BPF_PROG_TEST_RUN` does
    /// (frame shorter than an Ethernet header, more fragments than `MAX_SKB_FRAGS`,
    /// devmap programs): the program did not run and maps are untouched.
    Refused(String),
    /// The program faulted (interpreter/JIT only: the kernel's verifier would have
    /// rejected a program that can fault).
    Fault(String),
}

impl std::fmt::Display for RunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunError::Refused(m) => write!(f, "refused: {m}"),
            RunError::Fault(m) => write!(f, "fault: {m}"),
        }
    }
}

/// Map contents as `BPF_MAP_LOOKUP_ELEM` returns them: (key, value) pairs sorted by key.
pub type Entries = Vec<(Vec<u8>, Vec<u8>)>;

/// An engine as the replay uses it.
pub trait ReplayEngine {
    fn name(&self) -> &'static str;
    fn run(&mut self, prog: usize, input: &XdpInput<'_>) -> Result<XdpOutput, RunError>;
    /// Like [`ReplayEngine::run`], into `out`, whose buffers are reused from run to run
    /// (bpfkit's engines allocate nothing per run then). With `want_packet` false the
    /// output packet may be left empty (count-only replays skip its copy). On error `out`
    /// is unspecified.
    fn run_into(
        &mut self,
        prog: usize,
        input: &XdpInput<'_>,
        out: &mut XdpOutput,
        want_packet: bool,
    ) -> Result<(), RunError> {
        let _ = want_packet;
        *out = self.run(prog, input)?;
        Ok(())
    }
    /// Bytes of XDP metadata at the front of the last successful run's output packet
    /// (where the frame itself starts); 0 when the engine cannot tell (the kernel).
    fn meta_len(&self) -> usize {
        0
    }
    /// Whether [`ReplayEngine::frame`] shows the output of every successful run on an
    /// input of at most [`FRAME_MAX`] bytes, so outputs need no copy of it
    /// (`want_packet` false).
    fn shows_frame(&self) -> bool {
        false
    }
    /// The output packet of the last run (metadata included) where it lies in the
    /// engine's XDP frame, until the next run: what `run_into` with `want_packet` would
    /// have copied into [`XdpOutput::packet`]. `None` when the engine cannot show it
    /// (the kernel; a frame with fragments, which the runtime releases after the run).
    fn frame(&self) -> Option<&[u8]> {
        None
    }
    /// The engine as `Any`, for loops specialised to its type (the JIT).
    fn as_any_mut(&mut self) -> Option<&mut dyn std::any::Any> {
        None
    }
    fn map_entries(&self, map: usize) -> Result<Entries, String>;
    fn map_update(&mut self, map: usize, key: &[u8], value: &[u8]) -> Result<(), String>;
    /// The value a PROG_ARRAY slot needs to hold program `prog` (an index for bpfkit's
    /// engines, a program fd for the kernel).
    fn prog_slot_value(&self, prog: usize) -> Result<u32, String>;
    /// The value a map-in-map slot needs to hold map `map`.
    fn map_slot_value(&self, map: usize) -> Result<u32, String>;
    /// Turns instruction coverage on (interpreter only).
    fn enable_coverage(&mut self) -> bool {
        false
    }
    fn coverage(&self) -> Option<&Coverage> {
        None
    }
    /// How the engine runs programs when its kind leaves a choice (`jit`: fast or checked
    /// mode, and why).
    fn mode(&self) -> Option<&str> {
        None
    }
}

/// Settings every engine of a replay shares.
#[derive(Debug, Clone)]
pub struct EngineSettings {
    /// CPUs (per-CPU map slots, `bpf_get_smp_processor_id` range).
    pub ncpus: u32,
    pub seed: u64,
    /// The receiving device as bpfkit's engines emulate it (its ifindex and number of
    /// receive queues); the kernel engine uses the real device of that ifindex.
    pub device: Option<bpfkit_vm::Device>,
    /// The object file, when known: the kernel engine then loads it with BTF, func and
    /// line info (as libbpf does) if the plain load of the linked object is refused.
    pub object_path: Option<std::path::PathBuf>,
    /// Instructions one run may execute (bpfkit's engines).
    pub insn_limit: u64,
    /// [`fast_gate`]'s answer for this object when the replay already has it (it runs
    /// the verifier). Only this crate can fill it: the fast JIT's safety rests on it.
    pub gate: Gate,
}

/// A verdict of [`fast_gate`] computed by this crate, or none (the default).
#[derive(Debug, Clone, Default)]
pub struct Gate(pub(crate) Option<Result<(), String>>);

impl Default for EngineSettings {
    fn default() -> Self {
        EngineSettings {
            ncpus: 1,
            seed: 0x5eed,
            device: None,
            object_path: None,
            insn_limit: Config::default().insn_limit,
            gate: Gate::default(),
        }
    }
}

fn vm_config(s: &EngineSettings) -> Config {
    Config {
        ncpus: s.ncpus,
        seed: s.seed,
        devices: s.device.iter().cloned().collect(),
        insn_limit: s.insn_limit,
        ..Config::default()
    }
}

/// The longest input whose output [`ReplayEngine::frame`] shows: the linear part of an
/// XDP frame (longer ones get fragments, and only a run's set-up makes fragments).
pub const FRAME_MAX: usize = bpfkit_vm::runtime::MAX_LINEAR as usize;

/// The parked frame of the runtime's last XDP run (see [`ReplayEngine::frame`]).
#[inline]
fn parked_frame(rt: &bpfkit_vm::runtime::Runtime) -> Option<&[u8]> {
    rt.xdp
        .as_deref()
        .filter(|x| x.frags.is_empty())
        .map(|x| x.linear(x.data_meta, x.data_end))
}

fn run_error(e: VmError) -> RunError {
    match e {
        VmError::Setup(m) => RunError::Refused(m),
        other => RunError::Fault(other.to_string()),
    }
}

struct InterpEngine(Interpreter);

impl ReplayEngine for InterpEngine {
    fn name(&self) -> &'static str {
        "interp"
    }
    fn meta_len(&self) -> usize {
        self.0.last_xdp_meta_len()
    }
    fn shows_frame(&self) -> bool {
        true
    }
    fn frame(&self) -> Option<&[u8]> {
        parked_frame(self.0.runtime())
    }
    fn run(&mut self, prog: usize, input: &XdpInput<'_>) -> Result<XdpOutput, RunError> {
        self.0.run_xdp(prog, input).map_err(run_error)
    }
    fn run_into(
        &mut self,
        prog: usize,
        input: &XdpInput<'_>,
        out: &mut XdpOutput,
        want_packet: bool,
    ) -> Result<(), RunError> {
        self.0
            .run_xdp_into_with(prog, input, out, want_packet)
            .map_err(run_error)
    }
    fn map_entries(&self, map: usize) -> Result<Entries, String> {
        self.0.map_entries(map).map_err(|e| e.to_string())
    }
    fn map_update(&mut self, map: usize, key: &[u8], value: &[u8]) -> Result<(), String> {
        self.0
            .map_update(map, key, value, 0)
            .map_err(|e| e.to_string())
    }
    fn prog_slot_value(&self, prog: usize) -> Result<u32, String> {
        Ok(prog as u32)
    }
    fn map_slot_value(&self, map: usize) -> Result<u32, String> {
        Ok(map as u32)
    }
    fn enable_coverage(&mut self) -> bool {
        self.0.runtime_mut().coverage = Some(Coverage::default());
        true
    }
    fn coverage(&self) -> Option<&Coverage> {
        self.0.runtime().coverage.as_ref()
    }
}

/// A JIT, its engine name, and for `jit` the mode it chose and why.
pub(crate) struct JitEngine(bpfkit_jit::Jit, &'static str, Option<String>);

impl ReplayEngine for JitEngine {
    fn name(&self) -> &'static str {
        self.1
    }
    fn meta_len(&self) -> usize {
        // Set by the runtime's finish_xdp_into_with, which run_into goes through.
        self.0.runtime().last_xdp_meta_len
    }
    fn shows_frame(&self) -> bool {
        true
    }
    fn frame(&self) -> Option<&[u8]> {
        parked_frame(self.0.runtime())
    }
    fn as_any_mut(&mut self) -> Option<&mut dyn std::any::Any> {
        Some(self)
    }
    fn run(&mut self, prog: usize, input: &XdpInput<'_>) -> Result<XdpOutput, RunError> {
        self.empty_program(prog)?;
        self.0.run_xdp(prog, input).map_err(run_error)
    }
    #[inline]
    fn run_into(
        &mut self,
        prog: usize,
        input: &XdpInput<'_>,
        out: &mut XdpOutput,
        want_packet: bool,
    ) -> Result<(), RunError> {
        self.empty_program(prog)?;
        self.0
            .run_xdp_into_with(prog, input, out, want_packet)
            .map_err(run_error)
    }
    fn map_entries(&self, map: usize) -> Result<Entries, String> {
        self.0.map_entries(map).map_err(|e| e.to_string())
    }
    fn map_update(&mut self, map: usize, key: &[u8], value: &[u8]) -> Result<(), String> {
        self.0
            .map_update(map, key, value, 0)
            .map_err(|e| e.to_string())
    }
    fn prog_slot_value(&self, prog: usize) -> Result<u32, String> {
        Ok(prog as u32)
    }
    fn map_slot_value(&self, map: usize) -> Result<u32, String> {
        Ok(map as u32)
    }
    fn mode(&self) -> Option<&str> {
        self.2.as_deref()
    }
}

impl JitEngine {
    /// A program of 0 instructions: the JIT has no code for it; the interpreter runs past
    /// its (absent) last instruction. Both report the interpreter's fault, so every engine
    /// of bpfkit answers the same (the kernel refuses to load such a program).
    #[inline(always)]
    fn empty_program(&self, prog: usize) -> Result<(), RunError> {
        match self.0.runtime().programs.get(prog) {
            Some(p) if p.insns.is_empty() => Err(empty_program_fault(&p.name)),
            _ => Ok(()),
        }
    }
}

/// The interpreter's fault for a program of 0 instructions (it runs past the last one).
#[cold]
pub fn empty_program_fault(name: &str) -> RunError {
    run_error(empty_program_error(name))
}

/// [`empty_program_fault`] as the vm reports it.
pub fn empty_program_error(name: &str) -> VmError {
    // The interpreter shows the absent slot as an all-zero instruction, which does not
    // decode (opcode 0x00), so without text.
    VmError::Fault(Box::new(bpfkit_vm::Fault {
        prog: name.to_string(),
        pc: 0,
        insn: bpfkit_isa::RawInsn::default(),
        text: None,
        origin: None,
        kind: bpfkit_vm::FaultKind::FellOffEnd,
    }))
}

/// The kernel engine; `only` is set when just one program of the object was loaded
/// (its index in the object), see [`create`].
struct KernelEngine(bpfkit_loader::KernelEngine, Option<usize>);

impl ReplayEngine for KernelEngine {
    fn name(&self) -> &'static str {
        "kernel"
    }
    fn meta_len(&self) -> usize {
        use bpfkit_vm::engine::Engine as _;
        self.0.last_xdp_meta_len()
    }
    fn run(&mut self, prog: usize, input: &XdpInput<'_>) -> Result<XdpOutput, RunError> {
        let prog = match self.1 {
            None => prog,
            Some(p) if p == prog => 0,
            Some(p) => {
                return Err(RunError::Refused(format!(
                    "program #{prog} was not loaded into the kernel (only #{p} could be)"
                )))
            }
        };
        // The kernel cannot fault after verification: every error is a refusal.
        self.0.run_xdp(prog, input).map_err(|e| {
            let errno = e
                .errno()
                .map(|n| format!(" (errno {n})"))
                .unwrap_or_default();
            RunError::Refused(format!("BPF_PROG_TEST_RUN: {e}{errno}"))
        })
    }
    fn map_entries(&self, map: usize) -> Result<Entries, String> {
        self.0.map_entries(map).map_err(|e| e.to_string())
    }
    fn map_update(&mut self, map: usize, key: &[u8], value: &[u8]) -> Result<(), String> {
        self.0
            .map_update(map, key, value, 0)
            .map_err(|e| e.to_string())
    }
    fn prog_slot_value(&self, prog: usize) -> Result<u32, String> {
        use std::os::fd::{AsFd, AsRawFd};
        let prog = if self.1 == Some(prog) { 0 } else { prog };
        self.0
            .program(prog)
            .map(|p| p.as_fd().as_raw_fd() as u32)
            .ok_or_else(|| format!("program #{prog} does not exist"))
    }
    fn map_slot_value(&self, map: usize) -> Result<u32, String> {
        use std::os::fd::{AsFd, AsRawFd};
        self.0
            .map(map)
            .map(|m| m.as_fd().as_raw_fd() as u32)
            .ok_or_else(|| format!("map #{map} does not exist"))
    }
}

/// `Ok(())` when the kernel engine can be used here, else the reason (see
/// `bpfkit_loader::kernel_available`).
pub fn kernel_available() -> Result<(), String> {
    bpfkit_loader::kernel_available()
}

/// Creates an engine for `obj`. For the kernel, when loading the whole object fails and
/// it has no PROG_ARRAY (so no program can reach another), only program `prog` is loaded
/// (with every map): another program the kernel refuses does not prevent replaying this
/// one.
pub fn create(
    kind: EngineKind,
    obj: &LinkedObject,
    s: &EngineSettings,
    prog: usize,
) -> Result<Box<dyn ReplayEngine>, String> {
    match kind {
        EngineKind::Interp => Interpreter::new(obj, vm_config(s))
            .map(|i| Box::new(InterpEngine(i)) as Box<dyn ReplayEngine>)
            .map_err(|e| format!("interpreter: {e}")),
        EngineKind::Kernel => match bpfkit_loader::KernelEngine::new(obj).or_else(|e| {
            // Some programs load only with the object's BTF (callbacks, spin locks).
            match &s.object_path {
                Some(path) => {
                    bpfkit_loader::LoadedObject::open(path, &bpfkit_loader::LoadOptions::default())
                        .map(bpfkit_loader::KernelEngine::from_loaded)
                        .map_err(|_| e)
                }
                None => Err(e),
            }
        }) {
            Ok(k) => Ok(Box::new(KernelEngine(k, None)) as Box<dyn ReplayEngine>),
            Err(e) => {
                let no_prog_array = !obj.maps.iter().any(|m| {
                    m.map_type == bpfkit_object::model::map_type::PROG_ARRAY
                        || matches!(m.init, bpfkit_object::model::MapInit::Programs(_))
                });
                if obj.programs.len() < 2 || !no_prog_array || prog >= obj.programs.len() {
                    return Err(format!("kernel: {e}"));
                }
                let one = LinkedObject {
                    programs: vec![obj.programs[prog].clone()],
                    ..obj.clone()
                };
                bpfkit_loader::KernelEngine::new(&one)
                    .map(|k| Box::new(KernelEngine(k, Some(prog))) as Box<dyn ReplayEngine>)
                    .map_err(|e| format!("kernel: {e}"))
            }
        },
        // Checked mode: every memory access is checked like the interpreter's, so any
        // program is safe to run without a verifier's verdict.
        EngineKind::JitChecked => checked_jit(obj, s, "jit-checked", None),
        EngineKind::JitFast => match gate(obj, s) {
            Ok(()) => fast_jit(obj, s, "jit-fast", None),
            Err(why) => Err(format!(
                "jit-fast: {why}, so it cannot run without memory checks; use --engine jit or jit-checked"
            )),
        },
        EngineKind::JitFastUnverified => fast_jit(obj, s, "jit-fast-unverified", None),
        EngineKind::Jit => match gate(obj, s) {
            Ok(()) => fast_jit(
                obj,
                s,
                "jit",
                Some("fast mode: bpfkit's verifier accepts every program of the object".into()),
            ),
            Err(why) => checked_jit(
                obj,
                s,
                "jit",
                Some(format!("checked mode, every memory access checked: {why}")),
            ),
        },
    }
}

fn checked_jit(
    obj: &LinkedObject,
    s: &EngineSettings,
    name: &'static str,
    mode: Option<String>,
) -> Result<Box<dyn ReplayEngine>, String> {
    bpfkit_jit::Jit::new(obj, vm_config(s))
        .map(|j| Box::new(JitEngine(j, name, mode)) as Box<dyn ReplayEngine>)
        .map_err(|e| format!("{name}: {e}"))
}

/// The JIT in fast mode; only after [`fast_gate`] accepted `obj`.
fn fast_jit(
    obj: &LinkedObject,
    s: &EngineSettings,
    name: &'static str,
    mode: Option<String>,
) -> Result<Box<dyn ReplayEngine>, String> {
    // Fast mode confines every access to the engines' memory, so any program is safe to
    // run; its results only equal the interpreter's for programs a verifier accepts,
    // which is why `jit` and `jit-fast` ask `gate` first.
    bpfkit_jit::Jit::new_fast(obj, vm_config(s))
        .map(|j| Box::new(JitEngine(j, name, mode)) as Box<dyn ReplayEngine>)
        .map_err(|e| format!("{name}: {e}"))
}

/// [`fast_gate`], or its answer computed earlier by this crate for the same object.
fn gate(obj: &LinkedObject, s: &EngineSettings) -> Result<(), String> {
    match &s.gate.0 {
        Some(g) => g.clone(),
        None => fast_gate(obj, s.object_path.as_deref()),
    }
}

/// `Ok` when bpfkit's verifier accepts every program of `obj` (as the kernel loads the
/// whole object), so the fast JIT may run them without memory checks; else which program
/// it does not accept and why.
pub fn fast_gate(obj: &LinkedObject, object_path: Option<&std::path::Path>) -> Result<(), String> {
    let opts = verifier_options(obj, object_path);
    for p in &obj.programs {
        let name = &p.name;
        return Err(match bpfkit_verifier::verify(p, &obj.maps, &opts).verdict {
            bpfkit_verifier::Verdict::Accepted => continue,
            bpfkit_verifier::Verdict::Rejected(r) => format!(
                "bpfkit's verifier rejects program `{name}` at instruction {} ({})",
                r.insn,
                r.kernel_message.trim().replace('\n', "; ")
            ),
            bpfkit_verifier::Verdict::Unsupported { insn, what } => format!(
                "bpfkit's verifier cannot decide program `{name}` (instruction {insn}: {what})"
            ),
        });
    }
    Ok(())
}

/// The verifier options for `obj`, as `bpfkit verify` sets them: GPL compatibility from
/// its license, the spin lock / timer fields of map values and the global functions'
/// prototypes from the object's BTF. The linked object does not carry the BTF, so it is
/// read again from the file when its path is known (without it, programs using such
/// fields are undecided, which callers treat as not accepted, and global functions are
/// verified inline: both sound for running the program, only less like the kernel).
pub fn verifier_options(
    obj: &LinkedObject,
    object_path: Option<&std::path::Path>,
) -> bpfkit_verifier::Options {
    let parsed = object_path.and_then(|path| {
        let bytes = std::fs::read(path).ok()?;
        bpfkit_object::Object::parse(&bytes).ok()
    });
    bpfkit_verifier::Options {
        gpl_compatible: bpfkit_verifier::license_is_gpl_compatible(&obj.license),
        map_fields: parsed
            .as_ref()
            .map(|p| bpfkit_verifier::btf_fields::from_btf(p.btf.as_ref(), &obj.maps)),
        // Global functions verified on their own, as `bpfkit verify` and the kernel do.
        funcs: parsed
            .as_ref()
            .and_then(|p| bpfkit_verifier::btf_funcs::from_object(p, obj)),
        ..bpfkit_verifier::Options::default()
    }
}
