//! Loader errors: what the kernel said (errno, verifier log) and what to do about it.

use std::io;

/// An error from the loader.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A `bpf()` command failed.
    #[error("{cmd} ({what}): {source}{}", hint(.source))]
    Sys {
        /// Command name, e.g. `BPF_MAP_CREATE`.
        cmd: &'static str,
        /// Which object it was about, e.g. "map `counts`".
        what: String,
        #[source]
        source: io::Error,
    },
    /// `BPF_PROG_LOAD` was refused; `log` is the verifier log (may be empty when the
    /// kernel refused before verification).
    #[error("kernel rejected program `{prog}`: {source}{}{}", rejected_hint(.source, .log), log_tail(.log))]
    Rejected {
        prog: String,
        #[source]
        source: io::Error,
        log: String,
    },
    /// The request itself is malformed (bad map index, wrong key size, ...).
    #[error("{0}")]
    Invalid(String),
}

impl Error {
    /// The errno the kernel returned, if any.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Error::Sys { source, .. } | Error::Rejected { source, .. } => source.raw_os_error(),
            Error::Invalid(_) => None,
        }
    }

    /// The verifier log of a rejected program.
    pub fn verifier_log(&self) -> Option<&str> {
        match self {
            Error::Rejected { log, .. } => Some(log),
            _ => None,
        }
    }

    pub(crate) fn sys(cmd: u32, what: impl Into<String>, source: io::Error) -> Self {
        Error::Sys {
            cmd: crate::sys::cmd_name(cmd),
            what: what.into(),
            source,
        }
    }
}

/// A hint on what to do for the errnos whose cause is usually the environment.
pub fn hint(e: &io::Error) -> &'static str {
    match e.raw_os_error() {
        Some(libc::EPERM) => {
            "; needs CAP_BPF, and CAP_NET_ADMIN for XDP programs (or CAP_SYS_ADMIN): run as root"
        }
        Some(libc::ENOSYS) => "; the kernel has no bpf() syscall (CONFIG_BPF_SYSCALL is off)",
        Some(libc::E2BIG) => {
            "; the kernel does not know an attribute bpfkit passed (kernel too old?)"
        }
        Some(libc::ENOMEM) => "; out of memory or locked-memory limit (RLIMIT_MEMLOCK) too low",
        _ => "",
    }
}

/// [`hint`], unless the verifier ran and said why (an EPERM from the verifier, e.g. a
/// kfunc this kernel build refuses, is not a missing capability).
fn rejected_hint(e: &io::Error, log: &str) -> &'static str {
    if log.contains("processed ") {
        ""
    } else {
        hint(e)
    }
}

fn log_tail(log: &str) -> String {
    if log.trim().is_empty() {
        return String::new();
    }
    // The cause is at the end of the verifier log; show its last lines.
    let lines: Vec<&str> = log.trim_end().lines().collect();
    let start = lines.len().saturating_sub(12);
    let mut s = String::from("\nverifier log");
    if start > 0 {
        s.push_str(&format!(" (last 12 of {} lines)", lines.len()));
    }
    s.push_str(":\n");
    for l in &lines[start..] {
        s.push_str("  ");
        s.push_str(l);
        s.push('\n');
    }
    s.truncate(s.trim_end().len());
    s
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
