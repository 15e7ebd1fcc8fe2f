//! The bpfkit VM: the [`engine::Engine`] interface, and the interpreter that implements it.

pub mod engine;
