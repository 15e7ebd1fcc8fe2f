//! Program type, expected attach type and flags from the ELF section name, following
//! libbpf's `section_defs` table (libbpf 1.x matching rules: a plain name matches
//! exactly; a name ending in `+` matches itself or `name/...`; a name ending in `/`
//! matches as a prefix).

use crate::model::prog_type as pt;

/// `enum bpf_attach_type` values used by the table.
pub mod attach_type {
    pub const CGROUP_INET_INGRESS: u32 = 0;
    pub const CGROUP_INET_EGRESS: u32 = 1;
    pub const CGROUP_INET_SOCK_CREATE: u32 = 2;
    pub const CGROUP_SOCK_OPS: u32 = 3;
    pub const SK_SKB_STREAM_PARSER: u32 = 4;
    pub const SK_SKB_STREAM_VERDICT: u32 = 5;
    pub const SK_MSG_VERDICT: u32 = 7;
    pub const LIRC_MODE2: u32 = 16;
    pub const FLOW_DISSECTOR: u32 = 17;
    pub const TRACE_RAW_TP: u32 = 23;
    pub const TRACE_FENTRY: u32 = 24;
    pub const TRACE_FEXIT: u32 = 25;
    pub const MODIFY_RETURN: u32 = 26;
    pub const LSM_MAC: u32 = 27;
    pub const TRACE_ITER: u32 = 28;
    pub const XDP_DEVMAP: u32 = 33;
    pub const XDP_CPUMAP: u32 = 35;
    pub const SK_LOOKUP: u32 = 36;
    pub const XDP: u32 = 37;
    pub const SK_SKB_VERDICT: u32 = 38;
    pub const SK_REUSEPORT_SELECT: u32 = 39;
    pub const SK_REUSEPORT_SELECT_OR_MIGRATE: u32 = 40;
    pub const TRACE_KPROBE_MULTI: u32 = 42;
    pub const TCX_INGRESS: u32 = 46;
    pub const TCX_EGRESS: u32 = 47;
}

/// `BPF_F_SLEEPABLE`.
pub const BPF_F_SLEEPABLE: u32 = 1 << 4;
/// `BPF_F_XDP_HAS_FRAGS`.
pub const BPF_F_XDP_HAS_FRAGS: u32 = 1 << 5;

/// What a section name says about its programs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SecDef {
    /// The table entry that matched (e.g. `xdp.frags`, `kprobe+`).
    pub pattern: &'static str,
    pub prog_type: u32,
    pub expected_attach_type: Option<u32>,
    pub prog_flags: u32,
}

// Program type numbers not in `model::prog_type`.
const SK_SKB: u32 = 14;
const SK_MSG: u32 = 16;
const CGROUP_SKB: u32 = 8;
const CGROUP_SOCK: u32 = 9;
const LWT_IN: u32 = 10;
const LWT_OUT: u32 = 11;
const LWT_XMIT: u32 = 12;
const SOCK_OPS: u32 = 13;
const LWT_SEG6LOCAL: u32 = 19;
const LIRC_MODE2: u32 = 20;
const SK_REUSEPORT: u32 = 21;
const FLOW_DISSECTOR: u32 = 22;
const RAW_TRACEPOINT_WRITABLE: u32 = 24;
const STRUCT_OPS: u32 = 27;
const SK_LOOKUP: u32 = 30;
const SYSCALL: u32 = 31;

use attach_type as at;

const fn d(pattern: &'static str, prog_type: u32, eat: Option<u32>, flags: u32) -> SecDef {
    SecDef {
        pattern,
        prog_type,
        expected_attach_type: eat,
        prog_flags: flags,
    }
}

/// The table, in libbpf's order (first match wins).
pub const SECTION_DEFS: &[SecDef] = &[
    d("socket", pt::SOCKET_FILTER, None, 0),
    d(
        "sk_reuseport/migrate",
        SK_REUSEPORT,
        Some(at::SK_REUSEPORT_SELECT_OR_MIGRATE),
        0,
    ),
    d(
        "sk_reuseport",
        SK_REUSEPORT,
        Some(at::SK_REUSEPORT_SELECT),
        0,
    ),
    d("kprobe+", pt::KPROBE, None, 0),
    d("uprobe+", pt::KPROBE, None, 0),
    d("uprobe.s+", pt::KPROBE, None, BPF_F_SLEEPABLE),
    d("kretprobe+", pt::KPROBE, None, 0),
    d("uretprobe+", pt::KPROBE, None, 0),
    d("uretprobe.s+", pt::KPROBE, None, BPF_F_SLEEPABLE),
    d("kprobe.multi+", pt::KPROBE, Some(at::TRACE_KPROBE_MULTI), 0),
    d(
        "kretprobe.multi+",
        pt::KPROBE,
        Some(at::TRACE_KPROBE_MULTI),
        0,
    ),
    d("usdt+", pt::KPROBE, None, 0),
    d("tc/ingress", pt::SCHED_CLS, Some(at::TCX_INGRESS), 0),
    d("tc/egress", pt::SCHED_CLS, Some(at::TCX_EGRESS), 0),
    d("tcx/ingress", pt::SCHED_CLS, Some(at::TCX_INGRESS), 0),
    d("tcx/egress", pt::SCHED_CLS, Some(at::TCX_EGRESS), 0),
    d("tc", pt::SCHED_CLS, None, 0),
    d("classifier", pt::SCHED_CLS, None, 0),
    d("action", pt::SCHED_ACT, None, 0),
    d("tracepoint+", pt::TRACEPOINT, None, 0),
    d("tp+", pt::TRACEPOINT, None, 0),
    d("raw_tracepoint+", pt::RAW_TRACEPOINT, None, 0),
    d("raw_tp+", pt::RAW_TRACEPOINT, None, 0),
    d("raw_tracepoint.w+", RAW_TRACEPOINT_WRITABLE, None, 0),
    d("raw_tp.w+", RAW_TRACEPOINT_WRITABLE, None, 0),
    d("tp_btf+", pt::TRACING, Some(at::TRACE_RAW_TP), 0),
    d("fentry+", pt::TRACING, Some(at::TRACE_FENTRY), 0),
    d("fmod_ret+", pt::TRACING, Some(at::MODIFY_RETURN), 0),
    d("fexit+", pt::TRACING, Some(at::TRACE_FEXIT), 0),
    d(
        "fentry.s+",
        pt::TRACING,
        Some(at::TRACE_FENTRY),
        BPF_F_SLEEPABLE,
    ),
    d(
        "fmod_ret.s+",
        pt::TRACING,
        Some(at::MODIFY_RETURN),
        BPF_F_SLEEPABLE,
    ),
    d(
        "fexit.s+",
        pt::TRACING,
        Some(at::TRACE_FEXIT),
        BPF_F_SLEEPABLE,
    ),
    d("lsm+", pt::LSM, Some(at::LSM_MAC), 0),
    d("lsm.s+", pt::LSM, Some(at::LSM_MAC), BPF_F_SLEEPABLE),
    d("iter+", pt::TRACING, Some(at::TRACE_ITER), 0),
    d(
        "iter.s+",
        pt::TRACING,
        Some(at::TRACE_ITER),
        BPF_F_SLEEPABLE,
    ),
    d("syscall", SYSCALL, None, BPF_F_SLEEPABLE),
    d(
        "xdp.frags/devmap",
        pt::XDP,
        Some(at::XDP_DEVMAP),
        BPF_F_XDP_HAS_FRAGS,
    ),
    d("xdp/devmap", pt::XDP, Some(at::XDP_DEVMAP), 0),
    d(
        "xdp.frags/cpumap",
        pt::XDP,
        Some(at::XDP_CPUMAP),
        BPF_F_XDP_HAS_FRAGS,
    ),
    d("xdp/cpumap", pt::XDP, Some(at::XDP_CPUMAP), 0),
    d("xdp.frags", pt::XDP, Some(at::XDP), BPF_F_XDP_HAS_FRAGS),
    d("xdp", pt::XDP, Some(at::XDP), 0),
    d("perf_event", pt::PERF_EVENT, None, 0),
    d("lwt_in", LWT_IN, None, 0),
    d("lwt_out", LWT_OUT, None, 0),
    d("lwt_xmit", LWT_XMIT, None, 0),
    d("lwt_seg6local", LWT_SEG6LOCAL, None, 0),
    d("sockops", SOCK_OPS, Some(at::CGROUP_SOCK_OPS), 0),
    d(
        "sk_skb/stream_parser",
        SK_SKB,
        Some(at::SK_SKB_STREAM_PARSER),
        0,
    ),
    d(
        "sk_skb/stream_verdict",
        SK_SKB,
        Some(at::SK_SKB_STREAM_VERDICT),
        0,
    ),
    d("sk_skb/verdict", SK_SKB, Some(at::SK_SKB_VERDICT), 0),
    d("sk_skb", SK_SKB, None, 0),
    d("sk_msg", SK_MSG, Some(at::SK_MSG_VERDICT), 0),
    d("lirc_mode2", LIRC_MODE2, Some(at::LIRC_MODE2), 0),
    d(
        "flow_dissector",
        FLOW_DISSECTOR,
        Some(at::FLOW_DISSECTOR),
        0,
    ),
    d(
        "cgroup_skb/ingress",
        CGROUP_SKB,
        Some(at::CGROUP_INET_INGRESS),
        0,
    ),
    d(
        "cgroup_skb/egress",
        CGROUP_SKB,
        Some(at::CGROUP_INET_EGRESS),
        0,
    ),
    d("cgroup/skb", CGROUP_SKB, None, 0),
    d(
        "cgroup/sock_create",
        CGROUP_SOCK,
        Some(at::CGROUP_INET_SOCK_CREATE),
        0,
    ),
    d(
        "cgroup/sock",
        CGROUP_SOCK,
        Some(at::CGROUP_INET_SOCK_CREATE),
        0,
    ),
    d("struct_ops+", STRUCT_OPS, None, 0),
    d("struct_ops.s+", STRUCT_OPS, None, BPF_F_SLEEPABLE),
    d("sk_lookup", SK_LOOKUP, Some(at::SK_LOOKUP), 0),
];

fn matches(pattern: &str, sec: &str) -> bool {
    if let Some(p) = pattern.strip_suffix('+') {
        sec == p
            || sec
                .strip_prefix(p)
                .is_some_and(|rest| rest.starts_with('/'))
    } else if pattern.ends_with('/') {
        sec.starts_with(pattern)
    } else {
        sec == pattern
    }
}

/// The table entry matching a section name, if any. A leading `?` (libbpf's mark for
/// a program that is not loaded automatically, e.g. `SEC("?xdp")`) does not change
/// the program type: libbpf strips it before matching.
pub fn lookup(section: &str) -> Option<&'static SecDef> {
    let section = section.strip_prefix('?').unwrap_or(section);
    SECTION_DEFS.iter().find(|d| matches(d.pattern, section))
}

/// Whether libbpf loads the programs of this section by default (`SEC("?...")`
/// sections are not auto-loaded).
pub fn autoload(section: &str) -> bool {
    !section.starts_with('?')
}

/// Short lower-case name of a program type, as bpftool prints it (`xdp`, `sched_cls`, ...).
pub fn prog_type_name(t: u32) -> &'static str {
    known_prog_type_name(t).unwrap_or("unknown")
}

/// [`prog_type_name`] for the types this table knows, `None` for newer ones.
pub fn known_prog_type_name(t: u32) -> Option<&'static str> {
    const NAMES: [&str; 33] = [
        "unspec",
        "socket_filter",
        "kprobe",
        "sched_cls",
        "sched_act",
        "tracepoint",
        "xdp",
        "perf_event",
        "cgroup_skb",
        "cgroup_sock",
        "lwt_in",
        "lwt_out",
        "lwt_xmit",
        "sock_ops",
        "sk_skb",
        "cgroup_device",
        "sk_msg",
        "raw_tracepoint",
        "cgroup_sock_addr",
        "lwt_seg6local",
        "lirc_mode2",
        "sk_reuseport",
        "flow_dissector",
        "cgroup_sysctl",
        "raw_tracepoint_writable",
        "cgroup_sockopt",
        "tracing",
        "struct_ops",
        "ext",
        "lsm",
        "sk_lookup",
        "syscall",
        "netfilter",
    ];
    NAMES.get(t as usize).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xdp_variants() {
        let x = lookup("xdp").unwrap();
        assert_eq!(
            (x.prog_type, x.expected_attach_type, x.prog_flags),
            (pt::XDP, Some(at::XDP), 0)
        );
        let f = lookup("xdp.frags").unwrap();
        assert_eq!(f.prog_flags, BPF_F_XDP_HAS_FRAGS);
        assert_eq!(
            lookup("xdp/devmap").unwrap().expected_attach_type,
            Some(at::XDP_DEVMAP)
        );
        assert_eq!(
            lookup("xdp.frags/cpumap").unwrap().expected_attach_type,
            Some(at::XDP_CPUMAP)
        );
        assert!(lookup("xdp_foo").is_none());
        let q = lookup("?xdp").unwrap();
        assert_eq!(
            (q.prog_type, q.expected_attach_type),
            (pt::XDP, Some(at::XDP))
        );
        assert_eq!(
            lookup("?xdp.frags").unwrap().prog_flags,
            BPF_F_XDP_HAS_FRAGS
        );
        assert!(!autoload("?xdp") && autoload("xdp"));
        assert!(lookup("??xdp").is_none());
        assert!(lookup("xdp/foo").is_none());
    }

    #[test]
    fn prefix_rules() {
        assert_eq!(lookup("kprobe/do_sys_open").unwrap().prog_type, pt::KPROBE);
        assert_eq!(
            lookup("tracepoint/syscalls/sys_enter_open")
                .unwrap()
                .prog_type,
            pt::TRACEPOINT
        );
        assert!(lookup("kprobex").is_none());
        assert_eq!(lookup("tc").unwrap().prog_type, pt::SCHED_CLS);
        assert_eq!(lookup("classifier").unwrap().prog_type, pt::SCHED_CLS);
        assert_eq!(lookup("socket").unwrap().prog_type, pt::SOCKET_FILTER);
        assert_eq!(prog_type_name(pt::XDP), "xdp");
    }
}
