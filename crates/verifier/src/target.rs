//! Answers for a kernel target (`--kernel`): what the target lacks, refused with the
//! kernel's own words at the point where the kernel refuses it, plus a hint naming the
//! release that introduced the feature.
//!
//! Only availability is modelled per release (ISA groups, bounded loops, helpers per
//! program type, map types, program size); the rest of the analysis is 6.18's. A verdict
//! for an older target therefore carries a note saying what was not checked.

use crate::Fail;
use bpfkit_isa::opcode::*;
use bpfkit_isa::RawInsn;
use bpfkit_target::{HelperAnswer, KernelTarget, Source, Version};

fn since(feature: &str) -> String {
    bpfkit_target::feature_since(feature)
        .map(|v| v.to_string())
        .unwrap_or_else(|| "?".into())
}

fn who(t: &KernelTarget) -> String {
    t.describe()
}

/// ISA group of an opcode the target does not know, if any: (what, feature row).
fn isa_gap(t: &KernelTarget, code: u8) -> Option<(&'static str, &'static str)> {
    let c = class(code);
    if !t.isa.jmp32 && c == BPF_JMP32 {
        return Some(("32-bit jumps (jmp32, ISA v2)", "isa_v2_jmp32"));
    }
    if code == BPF_JMP | BPF_JCOND && !t.has_may_goto() {
        return Some((
            "`may_goto` (the `can_loop`/`cond_break` macros)",
            "may_goto",
        ));
    }
    if c == BPF_STX
        && mode(code) == BPF_ATOMIC
        && matches!(size(code), BPF_B | BPF_H)
        && !t.has_load_acquire_store_release()
    {
        return Some((
            "8- and 16-bit atomic opcodes (load-acquire and store-release)",
            "load_acquire_store_release",
        ));
    }
    if !t.isa.v4 {
        if code == (BPF_ALU64 | BPF_END) {
            return Some(("the unconditional byte swap (ISA v4)", "isa_v4"));
        }
        if code == (BPF_JMP32 | BPF_JA) {
            return Some(("`gotol` with a 32-bit offset (ISA v4)", "isa_v4"));
        }
        if c == BPF_LDX && mode(code) == BPF_MEMSX {
            return Some(("sign-extending loads (ISA v4)", "isa_v4"));
        }
    }
    None
}

fn gap_hint(t: &KernelTarget, what: &str, feature: &str) -> String {
    if feature == "may_goto" {
        return format!(
            "{what} came in Linux {}; {} does not have it",
            since(feature),
            who(t)
        );
    }
    format!(
        "{what} came in Linux {}; {} does not have them (compile for it with clang -mcpu={})",
        since(feature),
        who(t),
        if t.isa.atomics {
            "v3"
        } else if t.isa.jmp32 {
            "v2"
        } else {
            "v1"
        }
    )
}

/// Before the analysis, in the kernel's order: opcodes the target does not know
/// (`resolve_pseudo_ldimm64`: `unknown opcode XX`), programs larger than it loads,
/// then instructions whose fields it reserves (`BPF_MOV uses reserved fields` for
/// sign-extending moves, `BPF_ALU uses reserved fields` for signed division,
/// `BPF_XADD uses reserved fields` for atomics other than add).
pub(crate) fn check_attach_type(t: &KernelTarget, attach: Option<u32>) -> Result<(), Fail> {
    // SEC("xdp") asks for BPF_XDP only where the kernel has it (libbpf's optional
    // expected attach type); programs for devmap and cpumap entries need theirs.
    let Some((since, name)) = attach
        .filter(|&a| a != 37)
        .and_then(bpfkit_target::attach_type_since)
    else {
        return Ok(());
    };
    if t.attach_types.get(name) == Some(&false) {
        let mut f = Fail::reject(
            0,
            format!("expected attach type {name} does not exist in this kernel (programs for {name} entries cannot be loaded)"),
        );
        hint(
            &mut f,
            format!(
                "XDP programs for {name} came in Linux {since}; {} does not have them",
                who(t)
            ),
        );
        return Err(f);
    }
    Ok(())
}

pub(crate) fn check_insns(t: &KernelTarget, insns: &[RawInsn]) -> Result<(), Fail> {
    if insns.len() > t.limits.max_insns as usize {
        let mut f = Fail::reject(
            0,
            format!(
                "BPF_PROG_LOAD: Argument list too long (E2BIG): {} instructions, the limit is {}",
                insns.len(),
                t.limits.max_insns
            ),
        );
        hint(
            &mut f,
            format!(
                "programs over 4096 instructions load from Linux {} on; {} refuses them before verification",
                since("large_programs"),
                who(t)
            ),
        );
        return Err(f);
    }
    let mut i = 0;
    while i < insns.len() {
        let code = insns[i].code;
        if let Some((what, feature)) = isa_gap(t, code) {
            let mut f = Fail::reject(i, format!("unknown opcode {code:02x}"));
            hint(&mut f, gap_hint(t, what, feature));
            return Err(f);
        }
        i += if code == LDDW { 2 } else { 1 };
    }
    let mut i = 0;
    while i < insns.len() {
        let x = &insns[i];
        let c = class(x.code);
        if !t.isa.v4 && (c == BPF_ALU || c == BPF_ALU64) && x.off != 0 {
            let o = op(x.code);
            let (msg, what) = match o {
                BPF_MOV => (
                    "BPF_MOV uses reserved fields",
                    "sign-extending moves (ISA v4)",
                ),
                BPF_DIV | BPF_MOD => (
                    "BPF_ALU uses reserved fields",
                    "signed division and modulo (ISA v4)",
                ),
                _ => {
                    i += 1;
                    continue;
                }
            };
            let mut f = Fail::reject(i, msg.into());
            hint(&mut f, gap_hint(t, what, "isa_v4"));
            return Err(f);
        }
        if !t.isa.atomics && c == BPF_STX && mode(x.code) == BPF_ATOMIC && x.imm != BPF_ADD as i32 {
            let mut f = Fail::reject(i, "BPF_XADD uses reserved fields".into());
            hint(
                &mut f,
                gap_hint(
                    t,
                    "atomic fetch, exchange and the other atomic operations (ISA v3)",
                    "isa_v3_atomics",
                ),
            );
            return Err(f);
        }
        i += if x.code == LDDW { 2 } else { 1 };
    }
    Ok(())
}

/// `check_cfg` of a kernel without bounded loops: the first back-edge in its
/// depth-first order (fall-through before branch), `back-edge from insn A to B`.
pub(crate) fn check_loops(
    t: &KernelTarget,
    insns: &[RawInsn],
    succ: &[Vec<usize>],
) -> Result<(), Fail> {
    if t.bounded_loops || insns.is_empty() {
        return Ok(());
    }
    const NEW: u8 = 0;
    const ON_STACK: u8 = 1;
    const DONE: u8 = 2;
    let mut state = vec![NEW; insns.len()];
    // (insn, next successor to visit)
    let mut stack: Vec<(usize, usize)> = vec![(0, 0)];
    state[0] = ON_STACK;
    while let Some(&mut (i, ref mut k)) = stack.last_mut() {
        if let Some(&s) = succ[i].get(*k) {
            *k += 1;
            match state[s] {
                NEW => {
                    state[s] = ON_STACK;
                    stack.push((s, 0));
                }
                ON_STACK => {
                    let mut f = Fail::reject(i, format!("back-edge from insn {i} to {s}"));
                    hint(
                        &mut f,
                        format!(
                            "bounded loops are verified from Linux {} on; for {} unroll the loop (#pragma unroll) or use a constant trip count the compiler unrolls",
                            since("bounded_loops"),
                            who(t)
                        ),
                    );
                    return Err(f);
                }
                _ => {}
            }
        } else {
            state[i] = DONE;
            stack.pop();
        }
    }
    Ok(())
}

/// At a helper call: the kernel's refusal when the target does not offer helper `func`
/// to XDP programs, with a hint.
pub(crate) fn helper_refusal(t: &KernelTarget, func: i32) -> Option<(String, String)> {
    let id = u32::try_from(func).ok()?;
    let name = bpfkit_isa::helper::name(func)
        .map(|n| format!("bpf_{n}"))
        .unwrap_or_else(|| "unknown".into());
    let (msg, lacks) = match t.helper_allowed("xdp", id) {
        HelperAnswer::Allowed | HelperAnswer::Unknown => return None,
        HelperAnswer::UnknownId => (format!("invalid func unknown#{func}"), "does not know"),
        HelperAnswer::NotForProgType => (t.helper_refusal(id), "does not offer XDP programs"),
    };
    let mut h = format!("{} {lacks} {name}", who(t));
    match bpfkit_target::xdp_helper_since(id) {
        Some((v, documented)) if v > t.version => {
            h += &format!("; it reached XDP programs in Linux {v}");
            if !documented {
                h += " (not checked against that release)";
            }
        }
        Some((v, _)) if t.source == Source::Probe => {
            h += &format!(
                "; upstream Linux offers it to XDP programs since {v}, so this kernel build leaves it out"
            );
        }
        Some(_) => {}
        None => {
            if let Some(v) = bpfkit_target::helper_since(id) {
                h += &format!(" (added in Linux {v}, but never offered to XDP programs)");
            }
        }
    }
    Some((msg, h))
}

/// At a kfunc call: the refusal when the target does not offer kfunc `name` to XDP
/// programs. A kfunc the target's release does not have at all is refused by libbpf
/// before load (its extern cannot be resolved); one the kernel has but does not register
/// for XDP is refused by the verifier.
pub(crate) fn kfunc_refusal(t: &KernelTarget, name: &str) -> Option<(String, String)> {
    if t.kfunc_allowed("xdp", name) != Some(false) {
        return None;
    }
    match bpfkit_target::kfunc_since(name) {
        Some(v) if v > t.version => Some((
            format!("libbpf: extern (func ksym) '{name}': not found in kernel or module BTFs"),
            format!(
                "the kfunc {name} came to XDP programs in Linux {v}; {} does not have it",
                who(t)
            ),
        )),
        _ => Some((
            format!("calling kernel function {name} is not allowed"),
            format!("{} does not offer the kfunc {name} to XDP programs", who(t)),
        )),
    }
}

/// Map types of the object the target cannot create: the loader's refusal, before any
/// program is loaded.
pub(crate) fn map_refusal(t: &KernelTarget, maps: &[bpfkit_object::model::MapDef]) -> Option<Fail> {
    for m in maps {
        if t.map_type_available(m.map_type) == Some(false) {
            let (since, name) = bpfkit_target::map_type_since(m.map_type)?;
            let mut f = Fail::reject(
                0,
                format!(
                    "BPF_MAP_CREATE (map `{}`): Invalid argument: map type {name} ({})",
                    m.name, m.map_type
                ),
            );
            let h = if since > t.version {
                format!(
                    "map type {name} came in Linux {since}; {} does not have it",
                    who(t)
                )
            } else {
                format!("{} cannot create map type {name}", who(t))
            };
            hint(&mut f, h);
            return Some(f);
        }
    }
    None
}

/// What a verdict for this target did not check, when the target is not the release the
/// verifier models.
pub(crate) fn caveat(t: &KernelTarget) -> Option<String> {
    if t.models_verifier() {
        return None;
    }
    Some(format!(
        "answered for {}: helpers, kfuncs, map types, ISA level, bounded loops and program size are checked for it; the rest of the analysis is the Linux {} verifier's, and differences in its rules are not modelled per release",
        who(t),
        Version::to_string(&bpfkit_target::MODELLED)
    ))
}

fn hint(f: &mut Fail, h: String) {
    if let Fail::Reject(r) = f {
        r.hint = Some(h);
    }
}
