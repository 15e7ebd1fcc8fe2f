//! Scratch directories for integration tests (also used by `crates/cli/tests`, which
//! includes this file by path).

use std::path::PathBuf;

thread_local! {
    /// The running test's scratch directory. libtest runs every test on a thread of its
    /// own, so each test gets its own directory, removed when the test's thread ends
    /// (pass or fail): nothing is left in the system's temporary directory, and runs as
    /// different users never meet another run's files.
    static SCRATCH: tempfile::TempDir = tempfile::Builder::new()
        .prefix("bpfkit-test-")
        .tempdir()
        .expect("create a scratch directory in the system's temporary directory");
}

/// `name` inside the running test's scratch directory (not created).
pub fn scratch(name: &str) -> PathBuf {
    SCRATCH.with(|d| d.path().join(name))
}

/// A directory `name` inside the running test's scratch directory, created empty.
pub fn scratch_dir(name: &str) -> PathBuf {
    let d = scratch(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("create a scratch subdirectory");
    d
}
