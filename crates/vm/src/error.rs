//! Errors: faults (the program did something the kernel would not allow or cannot run
//! here) and setup errors (bad object, bad input).

use crate::maps::MapError;
use crate::memory::MemFault;
use bpfkit_isa::RawInsn;
use std::fmt;

/// What went wrong at one instruction.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FaultKind {
    #[error("{0}")]
    Memory(MemFault),
    #[error("unknown opcode {0:#04x}")]
    UnknownOpcode(u8),
    #[error("{0}")]
    Unsupported(String),
    #[error("helper {id} (bpf_{name}) is not supported by the interpreter (see docs/vm.md)")]
    UnsupportedHelper { id: i32, name: &'static str },
    #[error("call to unknown helper {0}")]
    UnknownHelper(i64),
    #[error("jump target {target} is outside the program (0..{len})")]
    JumpOutOfRange { target: i64, len: usize },
    #[error("execution ran past the last instruction")]
    FellOffEnd,
    #[error("lddw at the last slot has no second half")]
    TruncatedLddw,
    #[error("call depth exceeds {0} frames")]
    CallDepth(usize),
    #[error("instruction limit of {0} reached (infinite loop?)")]
    InsnLimit(u64),
    #[error("invalid {size}-byte context {} at offset {off} (struct xdp_md allows aligned 4-byte reads{})", if *.write { "write" } else { "read" }, if *.off == 20 { " and egress_ifindex only in devmap programs" } else { "" })]
    Context { off: i64, size: u64, write: bool },
    /// A sign-extending load (`ldsx`) from the context: its rewrite would truncate a
    /// pointer; the kernel's verifier refuses it.
    #[error("invalid sign-extending {size}-byte context read at offset {off} (the kernel refuses it: invalid bpf_context access off={off} size={size})")]
    ContextSx { off: i64, size: u64 },
    #[error("{helper}: {msg}")]
    Helper { helper: &'static str, msg: String },
    #[error("{0:#x} is not a map (expected a map reference loaded by lddw)")]
    NotAMap(u64),
    #[error("{0}")]
    Map(MapError),
}

impl From<MemFault> for FaultKind {
    fn from(m: MemFault) -> Self {
        FaultKind::Memory(m)
    }
}

/// A run-time fault, located at an instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    /// Program name.
    pub prog: String,
    /// Slot index in the linked program.
    pub pc: usize,
    pub insn: RawInsn,
    /// The instruction as text (llvm-objdump syntax), when it decodes.
    pub text: Option<String>,
    /// Function, section slot and source line, when the program came from an object.
    pub origin: Option<String>,
    pub kind: FaultKind,
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &self.insn;
        write!(f, "{}: instruction {} ", self.prog, self.pc)?;
        match &self.text {
            Some(t) => write!(f, "`{t}`")?,
            None => write!(
                f,
                "(code {:#04x} dst r{} src r{} off {} imm {})",
                i.code, i.dst, i.src, i.off, i.imm
            )?,
        }
        if let Some(o) = &self.origin {
            write!(f, " [{o}]")?;
        }
        write!(f, ": {}", self.kind)
    }
}

impl std::error::Error for Fault {}

/// Every error the VM reports.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VmError {
    /// The program faulted.
    #[error("fault: {0}")]
    Fault(Box<Fault>),
    /// A map operation from the caller failed.
    #[error("{0}")]
    Map(#[from] MapError),
    /// The object, program or input cannot be run (names what and why).
    #[error("{0}")]
    Setup(String),
}

impl VmError {
    /// The fault, if this is one.
    pub fn fault(&self) -> Option<&Fault> {
        match self {
            VmError::Fault(f) => Some(f),
            _ => None,
        }
    }
}
