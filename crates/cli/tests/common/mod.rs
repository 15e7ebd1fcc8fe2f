//! Shared by the CLI's integration tests.
#![allow(dead_code)]

#[path = "../../../replay/tests/common/scratch.rs"]
mod scratch;
#[allow(unused_imports)]
pub use scratch::{scratch, scratch_dir};
