//! Random eBPF programs that the Linux verifier accepts, for differential testing of the
//! bpfkit interpreter against the kernel (`BPF_PROG_TEST_RUN`) and against rbpf.
//!
//! - [`ir`]: the structured program form ([`ir::Item`]) and its rendering;
//! - [`strategy`]: proptest strategies (programs, XDP cases, raw cases);
//! - [`mutate`]: mutations that remove a needed check, for verifier tests (programs the
//!   kernel must reject, with the message it gives);
//! - [`harness`]: the object a generated program runs in, running a case on any
//!   [`bpfkit_vm::engine::Engine`], comparing observations.

pub mod harness;
pub mod ir;
pub mod mutate;
pub mod strategy;

pub use ir::{Item, Program, Target};
pub use strategy::{program, raw_case, xdp_case, Features, RawCase, XdpCase};
