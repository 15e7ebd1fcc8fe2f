//! eBPF assembler and disassembler.
