//! eBPF ELF object reader (see `docs/architecture.md`).
//!
//! The types in [`model`] are the contract between this crate and its consumers
//! (VM, JIT, verifier, loader, replay): a [`model::LinkedObject`] holds every program
//! linked the way libbpf links it, plus the object's map table.

pub mod model;
