//! `bpfkit probe`: what the running kernel offers XDP programs, as `bpftool feature probe`
//! finds it; the JSON it writes is a probe file that `--kernel FILE` takes on any machine.

use crate::{CliError, CliResult, Status};
use bpfkit_target::KernelTarget;

const AFTER_HELP: &str = "\
Examples:
  bpfkit probe                               # text summary of the running kernel
  bpfkit probe --format json -o prod.json    # a probe file for --kernel
  bpfkit verify --kernel prod.json x.o       # answer for that kernel, on any machine
  bpfkit probe --kernel 6.1 --format json    # the 6.1 version profile, as a probe file

Probes by loading one small program (or creating one map) per fact: program types, map
types, every helper id from an XDP program (a helper is offered when the kernel does not
answer `invalid func`, `unknown func` or `program of this type cannot use helper`),
every kfunc of /sys/kernel/btf/vmlinux from an XDP program, ISA groups (jmp32,
atomics, v4), bounded loops and the program-size limit. Facts it cannot establish
(unprivileged, program types needing a BTF attach target, map types needing BTF, the
tail-call limit) are listed under `not_probed` and taken from the version profile of the
running release. The output has no timestamps: the same kernel gives the same file.

Needs CAP_BPF (root) to probe; without it, prints the running release's profile and says
so.

Exit status: 0 probed (or profile printed); 2 usage or I/O error.";

#[derive(clap::Args)]
#[command(after_help = AFTER_HELP)]
pub struct Args {
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Write to this file instead of stdout (`-` is stdout).
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<String>,
    /// Print a version profile or a probe file instead of probing (`6.1`, `FILE.json`).
    #[arg(long, value_name = "TARGET")]
    pub kernel: Option<String>,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
}

/// Resolves a `--kernel` argument: `live` probes the running kernel, a release (`6.1`)
/// gives its version profile, anything else is read as a probe file.
pub fn resolve_target(arg: &str) -> Result<KernelTarget, CliError> {
    if arg == "live" {
        return Ok(bpfkit_loader::probe_kernel());
    }
    KernelTarget::parse_arg(arg).map_err(|e| CliError::usage(e.to_string()))
}

pub fn run(a: Args) -> CliResult {
    let t = match &a.kernel {
        Some(k) => resolve_target(k)?,
        None => bpfkit_loader::probe_kernel(),
    };
    let text = match a.format {
        Format::Json => t.to_json(),
        Format::Text => render_text(&t),
    };
    match a.output.as_deref() {
        None | Some("-") => crate::out_bytes(text.as_bytes()),
        Some(path) => {
            let tmp = format!("{path}.tmp{}", std::process::id());
            std::fs::write(&tmp, &text)
                .and_then(|_| std::fs::rename(&tmp, path))
                .map_err(|e| {
                    let _ = std::fs::remove_file(&tmp);
                    CliError::usage(format!("{path}: {e}"))
                })?;
        }
    }
    Ok(Status::Ok)
}

fn yes(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

fn render_text(t: &KernelTarget) -> String {
    let mut s = String::new();
    let source = match t.source {
        bpfkit_target::Source::Probe => "probed",
        bpfkit_target::Source::Profile => "version profile",
    };
    s += &format!("kernel {} ({source})\n", t.release);
    s += &format!("  bpf() usable by this process: {}\n", yes(t.bpf));
    if let Some(j) = t.jit_enable {
        s += &format!("  JIT: bpf_jit_enable = {j}\n");
    }
    if let Some(b) = t.btf_vmlinux {
        s += &format!("  vmlinux BTF: {}\n", yes(b));
    }
    s += &format!(
        "  ISA: v{} (jmp32 {}, atomics {}, v4 {})\n",
        t.isa.level(),
        yes(t.isa.jmp32),
        yes(t.isa.atomics),
        yes(t.isa.v4)
    );
    s += &format!("  bounded loops: {}\n", yes(t.bounded_loops));
    s += &format!("  may_goto: {}\n", yes(t.has_may_goto()));
    s += &format!(
        "  limits: {} instructions per program, {} processed, {} tail calls\n",
        t.limits.max_insns, t.limits.complexity_insns, t.limits.tail_calls
    );
    let list = |m: &std::collections::BTreeMap<String, bool>, want: bool| {
        m.iter()
            .filter(|(_, &v)| v == want)
            .map(|(k, _)| k.as_str())
            .collect::<Vec<_>>()
            .join(" ")
    };
    s += &format!("  program types: {}\n", list(&t.prog_types, true));
    let missing = list(&t.prog_types, false);
    if !missing.is_empty() {
        s += &format!("  program types refused: {missing}\n");
    }
    s += &format!("  map types: {}\n", list(&t.map_types, true));
    let missing = list(&t.map_types, false);
    if !missing.is_empty() {
        s += &format!("  map types refused: {missing}\n");
    }
    if let Some(h) = t.helpers.get("xdp") {
        s += &format!(
            "  XDP helpers ({}, ids up to {}): {}\n",
            h.len(),
            t.helper_max_id,
            h.join(" ")
        );
    }
    if let Some(k) = t.kfuncs.get("xdp") {
        s += &format!("  XDP kfuncs ({}): {}\n", k.len(), k.join(" "));
    }
    for n in &t.not_probed {
        s += &format!("  not probed: {}: {}\n", n.what, n.why);
    }
    s
}

/// For `replay`/`run --kernel TARGET`: the first program of `obj` that the target would
/// refuse to load although the 6.18 model takes it (a helper, map type, ISA group, loop or
/// size the target lacks), as an error naming the target, the kernel's words and the hint.
pub fn target_refusal(
    obj: &bpfkit_object::model::LinkedObject,
    target: &KernelTarget,
) -> Option<CliError> {
    use bpfkit_verifier::{Options, Verdict};
    let base = Options {
        gpl_compatible: bpfkit_verifier::license_is_gpl_compatible(&obj.license),
        ..Options::default()
    };
    let with = Options {
        target: Some(std::sync::Arc::new(target.clone())),
        ..base.clone()
    };
    for p in &obj.programs {
        let t = bpfkit_verifier::verify(p, &obj.maps, &with);
        let Verdict::Rejected(r) = &t.verdict else {
            continue;
        };
        if matches!(
            bpfkit_verifier::verify(p, &obj.maps, &base).verdict,
            Verdict::Rejected(_)
        ) {
            continue; // rejected on 6.18 too: not a question of the target
        }
        let mut m = format!(
            "program `{}` would not load on {}: {}",
            p.name,
            target.describe(),
            r.kernel_message.lines().next().unwrap_or("")
        );
        if let Some(h) = &r.hint {
            m += &format!("\n  help: {h}");
        }
        return Some(CliError::bad(m));
    }
    None
}
