//! Loader: the `bpf()` syscall spoken directly through `libc` (no C library): maps,
//! program loading with the verifier log, `BPF_PROG_TEST_RUN`, and [`KernelEngine`], the
//! running kernel behind the [`bpfkit_vm::engine::Engine`] interface.
//!
//! Every `unsafe` block is a `bpf()` call in [`sys`] or its callers; file descriptors
//! are [`std::os::fd::OwnedFd`] and close on drop.

pub mod attach;
pub mod btf_load;
pub mod caps;
pub mod engine;
pub mod error;
pub mod features;
pub mod map;
pub mod netlink;
pub mod object_load;
pub mod pin;
pub mod probe;
pub mod prog;
pub mod sys;

pub use attach::{attach_xdp, detach_all, AttachMethod, XdpAttachment, XdpMode};
pub use bpfkit_vm::engine::Engine;
pub use engine::KernelEngine;
pub use error::{Error, Result};
pub use features::{
    object_or_skip, probe_kernel, program_or_skip, refused_xdp_helpers, xdp_helper_available,
    xdp_helpers_or_skip,
};
pub use map::{Map, MapInfo, MapSpec, BPF_ANY, BPF_EXIST, BPF_NOEXIST};
pub use object_load::{LoadOptions, LoadedObject};
pub use probe::{kernel_available, kernel_or_skip, pin_current_thread};
pub use prog::{ProgInfo, Program, ProgramSpec, TestRunOptions, TestRunOutput, XdpRun};
pub use sys::XdpMd;
