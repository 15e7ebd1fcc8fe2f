//! eBPF assembler and disassembler.
//!
//! * [`assemble`]: text in the LLVM (`llvm-objdump`) syntax or the ubpf/rbpf mnemonic
//!   syntax (mixed freely, line by line) → raw instruction slots.
//! * [`disasm`]: instructions → text in either syntax.

mod asm;
pub mod disasm;
pub mod lexer;
pub mod listing;

pub use asm::{assemble, assemble_insns, AsmError};
pub use disasm::Syntax;
