//! `bpfkit-target`: what a given kernel offers an XDP program, so that bpfkit can answer
//! for the kernel a user deploys on rather than for the one it was written against.
//!
//! A [`KernelTarget`] comes from one of three places:
//! - a **version profile** ([`KernelTarget::release`]): built from the data files in
//!   `crates/target/data/` (public facts: uapi `bpf.h` history, kernel docs; each file says
//!   where its rows come from);
//! - a **live probe** of the running kernel (`bpfkit_loader::probe::probe_kernel`), which
//!   loads one small program per fact the way `bpftool feature probe` does;
//! - a **probe file**: the JSON a probe wrote ([`KernelTarget::from_json`]), possibly on
//!   another machine.
//!
//! The verifier asks a target about availability only: helpers per program type, map and
//! program types, kfuncs, ISA level, bounded loops and limits. Verifier *behaviour* that
//! changed between releases is not modelled per version; [`KernelTarget::models_verifier`]
//! says when a verdict is therefore not checked against the target.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

pub mod caps;
mod data;
pub use caps::Caps;
pub use data::{FeatureRow, HelperRow, KfuncRow, TypeRow};

/// The release bpfkit's verifier models exactly (its default target).
pub const MODELLED: Version = Version(6, 18);
/// The oldest release a version profile can be built for.
pub const OLDEST: Version = Version(4, 18);
/// Format tag of probe files.
pub const FORMAT: &str = "bpfkit-kernel-target/1";

/// A Linux release `major.minor`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct Version(pub u32, pub u32);

impl Version {
    /// Parses `6.1`, `6.1.55`, `6.18.44-fc-v1272`, `5.15.0-91-generic`: the first two
    /// numbers.
    pub fn parse(s: &str) -> Option<Version> {
        let mut it = s.split(|c: char| !c.is_ascii_digit());
        let major = it.next()?.parse().ok()?;
        let minor = it.next()?.parse().ok()?;
        Some(Version(major, minor))
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.0, self.1)
    }
}

impl From<Version> for String {
    fn from(v: Version) -> String {
        v.to_string()
    }
}

impl TryFrom<String> for Version {
    type Error = String;
    fn try_from(s: String) -> Result<Version, String> {
        Version::parse(&s).ok_or_else(|| format!("`{s}` is not a release like 6.1"))
    }
}

/// Where a target's facts come from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// A version profile from the data files.
    Profile,
    /// A probe of a running kernel.
    Probe,
}

/// Something a probe could not find out, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotProbed {
    pub what: String,
    pub why: String,
}

/// ISA groups by the kernel's conformance levels.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Isa {
    /// v2: 32-bit jumps (`jmp32`).
    pub jmp32: bool,
    /// v3: atomic fetch/xchg/cmpxchg and the other atomic operations.
    pub atomics: bool,
    /// v4: sign-extending loads and moves, signed division/modulo, unconditional byte
    /// swap, `gotol`.
    pub v4: bool,
    /// `may_goto` (`BPF_JMP | BPF_JCOND`, 6.9; not part of a conformance level). None in
    /// probe files written before bpfkit probed it: then the release decides
    /// ([`KernelTarget::has_may_goto`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub may_goto: Option<bool>,
}

impl Isa {
    /// The highest level all of whose groups are present (1 to 4).
    pub fn level(&self) -> u8 {
        if !self.jmp32 {
            1
        } else if !self.atomics {
            2
        } else if !self.v4 {
            3
        } else {
            4
        }
    }
}

/// Instruction and complexity limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Largest program (instructions) a privileged loader may load.
    pub max_insns: u32,
    /// Processed-instruction budget of the verifier.
    pub complexity_insns: u64,
    /// Tail calls a program may make in a chain (`MAX_TAIL_CALL_CNT`).
    pub tail_calls: u32,
}

/// What a kernel offers. Serialised, it is the probe file `bpfkit probe` writes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KernelTarget {
    /// Always [`FORMAT`].
    pub format: String,
    /// `uname -r` for a probe, `6.1` for a profile.
    pub release: String,
    /// `major.minor` of [`Self::release`].
    pub version: Version,
    pub source: Source,
    /// The `bpf()` syscall works for this process (probe), or `true` (profile).
    pub bpf: bool,
    /// `/proc/sys/net/core/bpf_jit_enable`, when readable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jit_enable: Option<i64>,
    /// `/sys/kernel/btf/vmlinux` exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub btf_vmlinux: Option<bool>,
    /// Program types that load, by name (`xdp`, `sched_cls`, ...).
    pub prog_types: BTreeMap<String, bool>,
    /// Map types that can be created, by name.
    pub map_types: BTreeMap<String, bool>,
    /// Attach types an XDP program can be loaded with (`xdp`, `xdp_devmap`,
    /// `xdp_cpumap`), by name.
    #[serde(default)]
    pub attach_types: BTreeMap<String, bool>,
    /// Helpers per program type: program type name → helper names (`bpf_map_lookup_elem`).
    pub helpers: BTreeMap<String, Vec<String>>,
    /// The highest helper id this kernel knows (`__BPF_FUNC_MAX_ID - 1`).
    pub helper_max_id: u32,
    /// kfuncs callable per program type: program type name → kfunc names.
    pub kfuncs: BTreeMap<String, Vec<String>>,
    pub isa: Isa,
    pub bounded_loops: bool,
    pub limits: Limits,
    /// The verifier refuses an existing helper for a program type with
    /// `program of this type cannot use helper` (6.10 on) rather than `unknown func`.
    pub new_helper_wording: bool,
    /// What a probe could not find out (unprivileged, no BTF, ...). The facts concerned
    /// come from the version profile of [`Self::version`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_probed: Vec<NotProbed>,
}

/// Why a target string could not be turned into a target.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("kernel target `{0}`: not a release (like 6.1), `live` or a probe file")]
    Unknown(String),
    #[error("kernel target {0}: bpfkit has version profiles from {OLDEST} to {MODELLED} only")]
    OutOfRange(Version),
    #[error("probe file {path}: {why}")]
    File { path: String, why: String },
}

impl KernelTarget {
    /// The version profile of release `v` (4.18 to 6.18; a later release gets 6.18's
    /// facts with its own number).
    pub fn release(v: Version) -> Result<KernelTarget, TargetError> {
        if v < OLDEST {
            return Err(TargetError::OutOfRange(v));
        }
        let has = |since: Version| since <= v;
        let feature = |name: &str| data::feature(name).map(|f| has(f.since)).unwrap_or(true);
        let prog_types = data::prog_types()
            .iter()
            .map(|r| (r.name.clone(), has(r.since)))
            .collect();
        let map_types = data::map_types()
            .iter()
            .map(|r| (r.name.clone(), has(r.since)))
            .collect();
        let attach_types = data::attach_types()
            .iter()
            .map(|r| (r.name.clone(), has(r.since)))
            .collect();
        let xdp: Vec<String> = data::xdp_helpers()
            .iter()
            .filter(|r| has(r.since))
            .map(|r| r.name.clone())
            .collect();
        let helper_max_id = data::helpers()
            .iter()
            .filter(|r| has(r.since))
            .map(|r| r.id)
            .max()
            .unwrap_or(0);
        let xdp_kfuncs: Vec<String> = data::kfuncs()
            .iter()
            .filter(|r| has(r.since))
            .map(|r| r.name.clone())
            .collect();
        let limit = |name: &str, before: u64, from: u64| match data::feature(name) {
            Some(f) if !has(f.since) => f.before.unwrap_or(before),
            Some(f) => f.from.unwrap_or(from),
            None => from,
        };
        Ok(KernelTarget {
            format: FORMAT.into(),
            release: v.to_string(),
            version: v,
            source: Source::Profile,
            bpf: true,
            jit_enable: None,
            btf_vmlinux: None,
            prog_types,
            map_types,
            attach_types,
            helpers: BTreeMap::from([("xdp".to_string(), xdp)]),
            helper_max_id,
            kfuncs: BTreeMap::from([("xdp".to_string(), xdp_kfuncs)]),
            isa: Isa {
                jmp32: feature("isa_v2_jmp32"),
                atomics: feature("isa_v3_atomics"),
                v4: feature("isa_v4"),
                may_goto: Some(feature("may_goto")),
            },
            bounded_loops: feature("bounded_loops"),
            limits: Limits {
                max_insns: limit("large_programs", 4096, 1_000_000) as u32,
                complexity_insns: limit("complexity_limit", 131_072, 1_000_000),
                tail_calls: limit("tail_call_limit", 32, 33) as u32,
            },
            new_helper_wording: feature("helper_refusal_wording"),
            not_probed: vec![],
        })
    }

    /// The default target: upstream 6.18, what bpfkit's verifier models.
    pub fn modelled() -> KernelTarget {
        KernelTarget::release(MODELLED).expect("6.18 is in range")
    }

    /// Reads a probe file.
    pub fn from_json(text: &str) -> Result<KernelTarget, String> {
        let t: KernelTarget = serde_json::from_str(text).map_err(|e| e.to_string())?;
        if t.format != FORMAT {
            return Err(format!(
                "format `{}` is not `{FORMAT}` (written by another bpfkit version?)",
                t.format
            ));
        }
        Ok(t)
    }

    /// Pretty JSON, stable for a given kernel (sorted maps, no timestamps).
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a target serialises") + "\n"
    }

    /// Parses a `--kernel` argument other than `live`: a release (`6.1`) or the path of a
    /// probe file.
    pub fn parse_arg(arg: &str) -> Result<KernelTarget, TargetError> {
        let looks_like_release = arg.chars().next().is_some_and(|c| c.is_ascii_digit())
            && !std::path::Path::new(arg).exists();
        if looks_like_release {
            return match Version::parse(arg) {
                Some(v) => KernelTarget::release(v),
                None => Err(TargetError::Unknown(arg.into())),
            };
        }
        let text = std::fs::read_to_string(arg).map_err(|e| TargetError::File {
            path: arg.into(),
            why: e.to_string(),
        })?;
        KernelTarget::from_json(&text).map_err(|why| TargetError::File {
            path: arg.into(),
            why,
        })
    }

    /// Whether the target knows `may_goto` (probed, or from the release).
    pub fn has_may_goto(&self) -> bool {
        self.isa.may_goto.unwrap_or_else(|| self.since("may_goto"))
    }

    /// Whether the target accepts `may_goto +0` (6.14: "bpf: Allow 'may_goto 0'
    /// instruction in verifier"); before, `invalid may_goto off 0 imm 0`.
    pub fn allows_may_goto_zero(&self) -> bool {
        self.has_may_goto() && self.since("may_goto_zero")
    }

    /// Whether the target has load-acquire and store-release (6.15, with the 8- and
    /// 16-bit atomic opcodes they need).
    pub fn has_load_acquire_store_release(&self) -> bool {
        self.since("load_acquire_store_release")
    }

    fn since(&self, feature: &str) -> bool {
        data::feature(feature).is_none_or(|f| f.since <= self.version)
    }

    /// Whether bpfkit's verifier models this target's verifier rules (not only its
    /// availability): true for 6.18 and later releases.
    pub fn models_verifier(&self) -> bool {
        self.version >= MODELLED
    }

    /// A short name for messages: `Linux 6.1` or `the running kernel (6.18.44-…)`.
    pub fn describe(&self) -> String {
        match self.source {
            Source::Profile => format!("Linux {}", self.release),
            Source::Probe => format!("the probed kernel {}", self.release),
        }
    }

    /// May a program of type `prog_type` (name) call helper `id`?
    pub fn helper_allowed(&self, prog_type: &str, id: u32) -> HelperAnswer {
        if id == 0 || id > self.helper_max_id {
            return HelperAnswer::UnknownId;
        }
        let name = match bpfkit_isa::helper::name(id as i32) {
            Some(n) => format!("bpf_{n}"),
            None => return HelperAnswer::UnknownId,
        };
        match self.helpers.get(prog_type) {
            Some(list) if list.contains(&name) => HelperAnswer::Allowed,
            Some(_) => HelperAnswer::NotForProgType,
            None => HelperAnswer::Unknown,
        }
    }

    /// Is map type `id` available (`None`: this target says nothing about it)?
    pub fn map_type_available(&self, id: u32) -> Option<bool> {
        let name = data::map_types().iter().find(|r| r.id == id)?.name.clone();
        self.map_types.get(&name).copied()
    }

    /// May a program of type `prog_type` call kfunc `name` (`None`: not known)?
    pub fn kfunc_allowed(&self, prog_type: &str, name: &str) -> Option<bool> {
        let list = self.kfuncs.get(prog_type)?;
        if list.iter().any(|k| k == name) {
            return Some(true);
        }
        // A profile knows only the kfuncs in its data file; a probe knows them all.
        match self.source {
            Source::Probe => Some(false),
            Source::Profile => data::kfuncs()
                .iter()
                .any(|k| k.name == name)
                .then_some(false),
        }
    }

    /// The kernel's words for refusing helper `id` that this target knows but does not
    /// offer `prog_type`: `program of this type cannot use helper bpf_x#N` (6.10 on) or
    /// `unknown func bpf_x#N`.
    pub fn helper_refusal(&self, id: u32) -> String {
        let name = bpfkit_isa::helper::name(id as i32).unwrap_or("unknown");
        if self.new_helper_wording {
            format!("program of this type cannot use helper bpf_{name}#{id}")
        } else {
            format!("unknown func bpf_{name}#{id}")
        }
    }
}

/// Answer of [`KernelTarget::helper_allowed`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HelperAnswer {
    Allowed,
    /// The kernel does not know the id (`invalid func unknown#N`).
    UnknownId,
    /// Known, but not offered to this program type.
    NotForProgType,
    /// The target says nothing about this program type.
    Unknown,
}

/// The first release (per the data files) that offers helper `id` to XDP, and whether
/// that release is documented (`false`: derived, not checked).
pub fn xdp_helper_since(id: u32) -> Option<(Version, bool)> {
    data::xdp_helpers()
        .iter()
        .find(|r| r.id == id)
        .map(|r| (r.since, r.basis != "derived"))
}

/// The release that introduced helper `id` (any program type).
pub fn helper_since(id: u32) -> Option<Version> {
    data::helpers().iter().find(|r| r.id == id).map(|r| r.since)
}

/// The release that introduced map type `id`, and its name.
pub fn map_type_since(id: u32) -> Option<(Version, &'static str)> {
    data::map_types()
        .iter()
        .find(|r| r.id == id)
        .map(|r| (r.since, r.name.as_str()))
}

/// The release that introduced attach type `id` for XDP programs, and its name.
pub fn attach_type_since(id: u32) -> Option<(Version, &'static str)> {
    data::attach_types()
        .iter()
        .find(|r| r.id == id)
        .map(|r| (r.since, r.name.as_str()))
}

/// The first release registering kfunc `name` for XDP, if the data file has it.
pub fn kfunc_since(name: &str) -> Option<Version> {
    data::kfuncs()
        .iter()
        .find(|r| r.name == name)
        .map(|r| r.since)
}

/// The first release with feature `name` of `features.tsv` (`bounded_loops`, `isa_v4`,
/// ...).
pub fn feature_since(name: &str) -> Option<Version> {
    data::feature(name).map(|f| f.since)
}

/// Program and map type names by id, as the data files spell them.
pub fn prog_type_name(id: u32) -> Option<&'static str> {
    data::prog_types()
        .iter()
        .find(|r| r.id == id)
        .map(|r| r.name.as_str())
}

/// See [`prog_type_name`].
pub fn map_type_name(id: u32) -> Option<&'static str> {
    data::map_types()
        .iter()
        .find(|r| r.id == id)
        .map(|r| r.name.as_str())
}

/// All rows of the data files (for `bpfkit probe` and the docs).
pub fn prog_type_rows() -> &'static [TypeRow] {
    data::prog_types()
}

/// See [`prog_type_rows`].
pub fn map_type_rows() -> &'static [TypeRow] {
    data::map_types()
}

/// See [`prog_type_rows`].
pub fn helper_rows() -> &'static [HelperRow] {
    data::helpers()
}

/// See [`prog_type_rows`].
pub fn kfunc_rows() -> &'static [KfuncRow] {
    data::kfuncs()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse() {
        assert_eq!(Version::parse("6.18.44-fc-v1272"), Some(Version(6, 18)));
        assert_eq!(Version::parse("5.15.0-91-generic"), Some(Version(5, 15)));
        assert_eq!(Version::parse("6.1"), Some(Version(6, 1)));
        assert_eq!(Version::parse("six"), None);
        assert!(Version(5, 15) < Version(6, 1));
        assert!(Version(6, 9) < Version(6, 10));
    }

    #[test]
    fn profiles_follow_first_releases() {
        let bpf_loop = 181;
        let buff_len = 188;
        for (v, has_loop) in [("5.16", false), ("5.17", true), ("6.18", true)] {
            let t = KernelTarget::parse_arg(v).unwrap();
            assert_eq!(
                t.helper_allowed("xdp", bpf_loop) == HelperAnswer::Allowed,
                has_loop,
                "{v}"
            );
        }
        let t = KernelTarget::parse_arg("5.17").unwrap();
        assert_eq!(t.helper_allowed("xdp", buff_len), HelperAnswer::UnknownId);
        let t = KernelTarget::parse_arg("5.18").unwrap();
        assert_eq!(t.helper_allowed("xdp", buff_len), HelperAnswer::Allowed);
        assert!(!KernelTarget::parse_arg("6.5").unwrap().isa.v4);
        assert_eq!(KernelTarget::parse_arg("6.6").unwrap().isa.level(), 4);
        assert!(!KernelTarget::parse_arg("5.2").unwrap().bounded_loops);
        assert!(KernelTarget::parse_arg("5.3").unwrap().bounded_loops);
        assert_eq!(
            KernelTarget::parse_arg("6.3")
                .unwrap()
                .kfunc_allowed("xdp", "bpf_dynptr_from_xdp"),
            Some(false)
        );
        assert_eq!(
            KernelTarget::parse_arg("6.4")
                .unwrap()
                .kfunc_allowed("xdp", "bpf_dynptr_from_xdp"),
            Some(true)
        );
        assert_eq!(
            KernelTarget::parse_arg("5.16").unwrap().limits.tail_calls,
            33
        );
        assert_eq!(
            KernelTarget::parse_arg("5.17").unwrap().limits.tail_calls,
            33
        );
        // A helper the 6.1 kernel knows but does not give XDP, with 6.1's words.
        let t = KernelTarget::parse_arg("6.1").unwrap();
        assert_eq!(t.helper_allowed("xdp", 14), HelperAnswer::NotForProgType);
        assert_eq!(
            t.helper_refusal(14),
            "unknown func bpf_get_current_pid_tgid#14"
        );
        let t = KernelTarget::parse_arg("6.12").unwrap();
        assert_eq!(t.helper_allowed("xdp", 14), HelperAnswer::Allowed);
        assert_eq!(
            t.helper_refusal(16),
            "program of this type cannot use helper bpf_get_current_comm#16"
        );
    }

    #[test]
    fn the_6_18_profile_is_the_probed_helper_set() {
        let t = KernelTarget::modelled();
        assert_eq!(t.helpers["xdp"].len(), 104);
        assert_eq!(t.helper_max_id, 211);
        assert!(t.models_verifier());
        assert!(!KernelTarget::parse_arg("6.12").unwrap().models_verifier());
    }

    #[test]
    fn targets_round_trip_through_json() {
        let t = KernelTarget::parse_arg("6.6").unwrap();
        let back = KernelTarget::from_json(&t.to_json()).unwrap();
        assert_eq!(t, back);
        assert!(KernelTarget::from_json("{}").is_err());
        assert!(matches!(
            KernelTarget::parse_arg("4.9"),
            Err(TargetError::OutOfRange(_))
        ));
        assert!(KernelTarget::parse_arg("no-such-file.json").is_err());
    }
}
