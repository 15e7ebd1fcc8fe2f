//! The capabilities a loader runs with (`--caps`), and what the 6.18 kernel derives from
//! them for `BPF_PROG_LOAD` (`kernel/bpf/syscall.c` `bpf_prog_load`,
//! `kernel/bpf/verifier.c` `bpf_check`, `kernel/bpf/helpers.c` `bpf_base_func_proto`):
//!
//! | kernel flag | true when |
//! |---|---|
//! | `bpf_capable` | CAP_BPF or CAP_SYS_ADMIN |
//! | `perfmon_capable` | CAP_PERFMON or CAP_SYS_ADMIN |
//! | `allow_ptr_leaks` | perfmon_capable |
//! | `allow_uninit_stack` | perfmon_capable |
//! | `bypass_spec_v1`, `bypass_spec_v4` | perfmon_capable, or the kernel booted with `mitigations=off` |
//! | net admin (`bpf_token_capable(CAP_NET_ADMIN)`) | CAP_NET_ADMIN or CAP_SYS_ADMIN |
//!
//! An XDP program (a "net admin" program type) loads only with bpf_capable and net
//! admin; otherwise `bpf(BPF_PROG_LOAD)` fails with EPERM before the verifier runs.

use std::fmt;

/// A set of the capabilities that matter to `BPF_PROG_LOAD`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Caps {
    pub sys_admin: bool,
    pub bpf: bool,
    pub perfmon: bool,
    pub net_admin: bool,
    /// The kernel was booted with `mitigations=off` (`cpu_mitigations_off()`): the
    /// Spectre rules are bypassed whatever the capabilities.
    pub mitigations_off: bool,
}

impl Default for Caps {
    fn default() -> Self {
        Caps::ROOT
    }
}

/// The whole answer of a load refused for lack of a capability: the errno, no log.
pub const EPERM_MESSAGE: &str = "bpf(BPF_PROG_LOAD) fails with EPERM (Operation not permitted)";

/// Capability numbers (`linux/capability.h`).
pub const CAP_NET_ADMIN: u32 = 12;
pub const CAP_SYS_ADMIN: u32 = 21;
pub const CAP_PERFMON: u32 = 38;
pub const CAP_BPF: u32 = 39;

impl Caps {
    /// root, or any loader with CAP_SYS_ADMIN.
    pub const ROOT: Caps = Caps {
        sys_admin: true,
        bpf: true,
        perfmon: true,
        net_admin: true,
        mitigations_off: false,
    };
    /// No capability at all.
    pub const NONE: Caps = Caps {
        sys_admin: false,
        bpf: false,
        perfmon: false,
        net_admin: false,
        mitigations_off: false,
    };
    /// CAP_BPF + CAP_NET_ADMIN: the smallest set that loads XDP; Spectre v1 rules apply.
    pub const BPF_NET_ADMIN: Caps = Caps {
        bpf: true,
        net_admin: true,
        ..Caps::NONE
    };

    /// Parses `root`, `sys_admin`, `none`, or a comma-separated list of `bpf`,
    /// `perfmon`, `net_admin`, `sys_admin` (a `cap_` prefix and upper case are accepted),
    /// each optionally with `mitigations=off`: the loader's kernel was booted with
    /// `mitigations=off`, so its Spectre rules are bypassed whatever the capabilities.
    pub fn parse(s: &str) -> Result<Caps, String> {
        let t = s.trim().to_ascii_lowercase();
        let mut mitigations_off = false;
        let mut names = vec![];
        for part in t.split(',').map(str::trim) {
            match part {
                "mitigations=off" | "mitigations_off" => mitigations_off = true,
                _ => names.push(part),
            }
        }
        let mut c = match names.as_slice() {
            ["root"] | ["all"] => Caps::ROOT,
            ["none"] | [""] | [] => Caps::NONE,
            _ => {
                let mut c = Caps::NONE;
                for part in names {
                    let name = part.strip_prefix("cap_").unwrap_or(part);
                    match name {
                        "sys_admin" => c.sys_admin = true,
                        "bpf" => c.bpf = true,
                        "perfmon" => c.perfmon = true,
                        "net_admin" => c.net_admin = true,
                        _ => {
                            return Err(format!(
                                "unknown capability {part:?} in {s:?} (expected root, none, or a list of bpf, perfmon, net_admin, sys_admin, optionally with mitigations=off)"
                            ))
                        }
                    }
                }
                c
            }
        };
        c.mitigations_off = mitigations_off;
        Ok(c)
    }

    /// `bpf_capable()` / `bpf_token_capable(token, CAP_BPF)`.
    pub fn bpf_capable(&self) -> bool {
        self.bpf || self.sys_admin
    }
    /// `perfmon_capable()`.
    pub fn perfmon_capable(&self) -> bool {
        self.perfmon || self.sys_admin
    }
    /// `bpf_token_capable(token, CAP_NET_ADMIN)`.
    pub fn net_admin_capable(&self) -> bool {
        self.net_admin || self.sys_admin
    }
    /// `env->allow_ptr_leaks`.
    pub fn allow_ptr_leaks(&self) -> bool {
        self.perfmon_capable()
    }
    /// `env->allow_uninit_stack`.
    pub fn allow_uninit_stack(&self) -> bool {
        self.perfmon_capable()
    }
    /// `env->bypass_spec_v1`.
    pub fn bypass_spec_v1(&self) -> bool {
        self.mitigations_off || self.perfmon_capable()
    }
    /// `env->bypass_spec_v4`.
    pub fn bypass_spec_v4(&self) -> bool {
        self.mitigations_off || self.perfmon_capable()
    }
    /// What `bpf_prog_load` answers before the verifier for a program of a "net admin"
    /// type (XDP among them): `None` when the load may proceed, else the capability
    /// that is missing (the load fails with EPERM, [`EPERM_MESSAGE`]).
    pub fn net_prog_load_refusal(&self) -> Option<&'static str> {
        if !self.bpf_capable() {
            Some("CAP_BPF (or CAP_SYS_ADMIN)")
        } else if !self.net_admin_capable() {
            Some("CAP_NET_ADMIN (or CAP_SYS_ADMIN)")
        } else {
            None
        }
    }
    /// The capability numbers in this set.
    pub fn numbers(&self) -> Vec<u32> {
        let mut v = vec![];
        if self.net_admin {
            v.push(CAP_NET_ADMIN);
        }
        if self.sys_admin {
            v.push(CAP_SYS_ADMIN);
        }
        if self.perfmon {
            v.push(CAP_PERFMON);
        }
        if self.bpf {
            v.push(CAP_BPF);
        }
        v
    }
}

impl fmt::Display for Caps {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let caps = Caps {
            mitigations_off: false,
            ..*self
        };
        let mitigations = if self.mitigations_off {
            ",mitigations=off"
        } else {
            ""
        };
        if caps == Caps::ROOT {
            return write!(f, "root{mitigations}");
        }
        let mut parts = vec![];
        if self.sys_admin {
            parts.push("sys_admin");
        }
        if self.bpf {
            parts.push("bpf");
        }
        if self.perfmon {
            parts.push("perfmon");
        }
        if self.net_admin {
            parts.push("net_admin");
        }
        if parts.is_empty() {
            write!(f, "none{mitigations}")
        } else {
            write!(f, "{}{mitigations}", parts.join(","))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_flags() {
        let c = Caps::parse("bpf,net_admin").unwrap();
        assert_eq!(c, Caps::BPF_NET_ADMIN);
        assert!(c.bpf_capable() && !c.allow_ptr_leaks() && !c.bypass_spec_v1());
        assert!(c.net_prog_load_refusal().is_none());
        let p = Caps::parse("CAP_BPF, cap_perfmon,net_admin").unwrap();
        assert!(p.allow_ptr_leaks() && p.bypass_spec_v1() && p.allow_uninit_stack());
        assert_eq!(p.to_string(), "bpf,perfmon,net_admin");
        let s = Caps::parse("sys_admin").unwrap();
        assert!(s.bpf_capable() && s.perfmon_capable() && s.net_admin_capable());
        assert!(Caps::parse("none")
            .unwrap()
            .net_prog_load_refusal()
            .is_some());
        assert!(Caps::parse("bpf")
            .unwrap()
            .net_prog_load_refusal()
            .is_some());
        assert!(Caps::parse("bpf,foo").is_err());
        assert_eq!(Caps::parse("root").unwrap().to_string(), "root");
        let off = Caps {
            mitigations_off: true,
            ..Caps::BPF_NET_ADMIN
        };
        assert!(off.bypass_spec_v1() && !off.allow_ptr_leaks());
        let parsed = Caps::parse("bpf,net_admin,mitigations=off").unwrap();
        assert_eq!(parsed, off);
        assert_eq!(parsed.to_string(), "bpf,net_admin,mitigations=off");
        assert_eq!(Caps::parse(&parsed.to_string()).unwrap(), off);
        assert!(parsed.bypass_spec_v4() && !parsed.allow_uninit_stack());
        assert_eq!(
            Caps::parse("root,mitigations=off").unwrap().to_string(),
            "root,mitigations=off"
        );
        assert!(Caps::parse("mitigations=on").is_err());
    }
}
