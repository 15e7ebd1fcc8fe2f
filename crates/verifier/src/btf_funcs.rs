//! Global functions: what the kernel's verifier takes from BTF for each sub-program
//! (`btf_prepare_func_args`, kernel/bpf/btf.c). A sub-program whose BTF FUNC has
//! `BTF_FUNC_GLOBAL` linkage is verified once, on its own, with arguments typed from its
//! FUNC_PROTO; calls to it check the arguments against that prototype and return an
//! unknown scalar. Static functions are verified inline at each call.
//!
//! Build the table with [`from_object`] and pass it as [`crate::Options::funcs`];
//! without it every function is verified inline (what the kernel does for a program
//! loaded without `func_info`).

use bpfkit_object::btf::{Btf, BtfKind};
use bpfkit_object::kernel_btf::{LinkedFunc, FUNC_GLOBAL};
use bpfkit_object::{LinkedObject, Object};
use std::collections::HashMap;
use std::sync::Arc;

/// Each linked program's functions with their BTF, for [`crate::Options::funcs`].
#[derive(Debug)]
pub struct ObjectFuncs {
    btf: Btf,
    programs: HashMap<String, Vec<LinkedFunc>>,
    /// Per program: (linked index, name) of its kfunc calls (`Object::kfunc_calls`).
    kfuncs: HashMap<String, Vec<(usize, String)>>,
}

/// The function table of an object (`None` when it has no BTF / `.BTF.ext` func_info).
pub fn from_object(obj: &Object, linked: &LinkedObject) -> Option<Arc<ObjectFuncs>> {
    let btf = obj.btf.clone()?;
    obj.btf_ext.as_ref()?;
    let programs = linked
        .programs
        .iter()
        .map(|p| (p.name.clone(), obj.linked_funcs(p)))
        .collect();
    let kfuncs = linked
        .programs
        .iter()
        .map(|p| (p.name.clone(), obj.kfunc_calls(p)))
        .collect();
    Some(Arc::new(ObjectFuncs {
        btf,
        programs,
        kfuncs,
    }))
}

/// How the verifier types an argument of a global function (`bpf_subprog_arg_info`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ArgType {
    /// `ARG_PTR_TO_CTX`: a pointer to the program type's context struct (or `arg:ctx`).
    Ctx,
    /// `ARG_ANYTHING`: an integer or enum.
    Scalar,
    /// `ARG_PTR_TO_MEM` of `size` bytes, `PTR_MAYBE_NULL` unless tagged `arg:nonnull`.
    Mem { size: u32, nullable: bool },
}

/// Why `btf_prepare_func_args` fails.
#[derive(Debug)]
pub(crate) enum PrepError {
    /// The kernel's log line.
    Reject(String),
    /// A case bpfkit does not model (dynptr, trusted, arena arguments...).
    Unsupported(String),
}

/// A global sub-program of the program being verified.
#[derive(Debug)]
pub(crate) struct GlobalFunc {
    pub name: String,
    /// `btf_prepare_func_args` for it.
    pub args: Result<Vec<ArgType>, String>,
    pub unsupported: Option<String>,
}

impl ObjectFuncs {
    /// The extern function a `BPF_PSEUDO_KFUNC_CALL` at `insn` of `prog` calls.
    pub fn kfunc_name(&self, prog: &str, insn: usize) -> Option<&str> {
        self.kfuncs
            .get(prog)?
            .iter()
            .find(|(i, _)| *i == insn)
            .map(|(_, n)| n.as_str())
    }

    /// The global functions of `prog` other than its entry, by first instruction; `None`
    /// when the table does not describe exactly the sub-programs `subprogs` (then every
    /// function is verified inline).
    pub(crate) fn globals(
        &self,
        prog: &str,
        subprogs: &[usize],
    ) -> Option<HashMap<usize, GlobalFunc>> {
        let funcs = self.programs.get(prog)?;
        let starts: Vec<usize> = funcs.iter().map(|f| f.insn).collect();
        if starts != subprogs {
            return None;
        }
        let mut out = HashMap::new();
        for f in funcs.iter().skip(1) {
            if f.linkage != FUNC_GLOBAL {
                continue;
            }
            let (args, unsupported) = match self.prepare_args(f) {
                Ok(a) => (Ok(a), None),
                Err(PrepError::Reject(m)) => (Err(m), None),
                Err(PrepError::Unsupported(m)) => (Err(String::new()), Some(m)),
            };
            out.insert(
                f.insn,
                GlobalFunc {
                    name: f.name.clone(),
                    args,
                    unsupported,
                },
            );
        }
        Some(out)
    }

    /// `check_btf_func`: a sub-program other than the entry whose BTF return type is
    /// not a scalar may not use LD_ABS/LD_IND nor `bpf_tail_call` (checked before the
    /// program is walked). `Some((first instruction, the kernel's line))` when one does.
    pub(crate) fn check_returns(
        &self,
        prog: &str,
        subprogs: &[usize],
        insns: &[bpfkit_isa::RawInsn],
    ) -> Option<(usize, String)> {
        let funcs = self.programs.get(prog)?;
        let starts: Vec<usize> = funcs.iter().map(|f| f.insn).collect();
        if starts != subprogs {
            return None;
        }
        for (k, f) in funcs.iter().enumerate().skip(1) {
            let Some(BtfKind::FuncProto { ret, .. }) =
                self.btf.get(f.proto_type_id).map(|t| &t.kind)
            else {
                continue;
            };
            let scalar = match self.btf.get(self.skip_mods(*ret)).map(|t| &t.kind) {
                Some(BtfKind::Int { .. }) => self
                    .btf
                    .resolve_size(self.skip_mods(*ret))
                    .is_some_and(|sz| sz <= 8),
                Some(BtfKind::Enum { .. } | BtfKind::Enum64 { .. }) => true,
                _ => false,
            };
            if scalar {
                continue;
            }
            let end = starts.get(k + 1).copied().unwrap_or(insns.len());
            let body = insns.get(f.insn..end).unwrap_or(&[]);
            let ld_abs = body
                .iter()
                .any(|x| x.code & 0x07 == 0 && matches!(x.code & 0xe0, 0x20 | 0x40));
            let tail_call = body
                .iter()
                .any(|x| x.code == 0x85 && x.src == 0 && x.imm == 12);
            if ld_abs {
                return Some((
                    f.insn,
                    "LD_ABS is only allowed in functions that return 'int'.".into(),
                ));
            }
            if tail_call {
                return Some((
                    f.insn,
                    "tail_call is only allowed in functions that return 'int'.".into(),
                ));
            }
        }
        None
    }

    /// The type under typedefs and modifiers (the object crate's walk, which also stops
    /// on a cycle of typedefs in a malformed BTF); `id` itself when it cannot be resolved.
    fn skip_mods(&self, id: u32) -> u32 {
        self.btf.skip_mods_and_typedefs(id).unwrap_or(id)
    }

    /// `btf_prepare_func_args` for a global function of an XDP program.
    fn prepare_args(&self, f: &LinkedFunc) -> Result<Vec<ArgType>, PrepError> {
        let rej = |m: String| Err(PrepError::Reject(m));
        let Some(BtfKind::FuncProto { ret, params }) =
            self.btf.get(f.proto_type_id).map(|t| &t.kind)
        else {
            return rej(format!("Invalid type of function {}()", f.name));
        };
        if params.len() > 5 {
            return rej(format!(
                "Global function {}() with {} > 5 args. Buggy compiler.",
                f.name,
                params.len()
            ));
        }
        let scalar = |id: u32| {
            matches!(
                self.btf.get(id).map(|t| &t.kind),
                Some(BtfKind::Int { .. } | BtfKind::Enum { .. } | BtfKind::Enum64 { .. })
            )
        };
        if !scalar(self.skip_mods(*ret)) {
            return rej(format!(
                "Global function {}() doesn't return scalar. Only those are supported.",
                f.name
            ));
        }
        let mut args = Vec::with_capacity(params.len());
        for (i, p) in params.iter().enumerate() {
            let mut ctx_tag = false;
            let mut nonnull = false;
            for t in &self.btf.types {
                let BtfKind::DeclTag {
                    type_id,
                    component_idx,
                } = t.kind
                else {
                    continue;
                };
                if type_id != f.func_type_id || component_idx != i as i32 {
                    continue;
                }
                match t.name.strip_prefix("arg:") {
                    Some("ctx") => ctx_tag = true,
                    Some("nonnull") => nonnull = true,
                    Some(other) => {
                        return Err(PrepError::Unsupported(format!(
                            "global function {}() argument tag `arg:{other}`",
                            f.name
                        )))
                    }
                    None => {}
                }
            }
            let t = self.skip_mods(p.type_id);
            let Some(BtfKind::Ptr { type_id: pointee }) = self.btf.get(t).map(|t| &t.kind) else {
                if ctx_tag || nonnull {
                    return rej(format!(
                        "arg#{i} has pointer tag, but is not a pointer type"
                    ));
                }
                if !scalar(t) {
                    let kind = self.btf.get(t).map(|t| t.kind_name()).unwrap_or("UNKNOWN");
                    return rej(format!(
                        "Arg#{i} type {kind} in {}() is not supported yet.",
                        f.name
                    ));
                }
                args.push(ArgType::Scalar);
                continue;
            };
            let target = self.skip_mods(*pointee);
            let target_t = self.btf.get(target);
            let is_ctx = matches!(
                target_t,
                Some(t) if matches!(t.kind, BtfKind::Struct { .. } | BtfKind::Union { .. })
                    && (t.name == "xdp_md" || t.name == "xdp_buff")
            );
            if ctx_tag || is_ctx {
                if nonnull {
                    return rej(format!("arg#{i} has invalid combination of tags"));
                }
                if ctx_tag {
                    // btf_validate_prog_ctx_type: for XDP, `arg:ctx` is `void *` or
                    // `struct xdp_md *` (the canonical context type), nothing else
                    match target_t {
                        Some(t) if matches!(t.kind, BtfKind::Void) => {}
                        Some(t) if t.name.is_empty() => {
                            return rej(format!("arg#{i} type doesn't have a name"))
                        }
                        Some(t)
                            if matches!(t.kind, BtfKind::Struct { .. }) && t.name == "xdp_md" => {}
                        _ => return rej(format!("arg#{i} should be `struct xdp_md *`")),
                    }
                }
                args.push(ArgType::Ctx);
                continue;
            }
            if matches!(target_t, Some(t) if t.name == "bpf_dynptr") {
                return Err(PrepError::Unsupported(format!(
                    "global function {}() with a dynptr argument",
                    f.name
                )));
            }
            match self.btf.resolve_size(target) {
                Some(size) if size > 0 && size <= u32::MAX as u64 => args.push(ArgType::Mem {
                    size: size as u32,
                    nullable: !nonnull,
                }),
                // __btf_resolve_size: -EINVAL for types without a size
                _ if matches!(
                    target_t.map(|t| &t.kind),
                    Some(
                        BtfKind::Void
                            | BtfKind::Fwd { .. }
                            | BtfKind::Func { .. }
                            | BtfKind::FuncProto { .. }
                    )
                ) =>
                {
                    let t = target_t.expect("matched");
                    let kind = match t.kind {
                        BtfKind::Void => "UNKNOWN",
                        _ => t.kind_name(),
                    };
                    return rej(format!(
                        "arg#{i} reference type('{kind} {}') size cannot be determined: -22",
                        t.name
                    ));
                }
                _ => {
                    return Err(PrepError::Unsupported(format!(
                        "global function {}() argument #{i}: size of `{}` (the kernel's \
                         btf_resolve_size error message is not modelled)",
                        f.name,
                        self.btf.type_name(target)
                    )))
                }
            }
        }
        Ok(args)
    }
}
