//! `bpfkit disasm`: instructions → text, in the layout of `llvm-objdump -d`.

use crate::{CliError, CliResult, Status};
use bpfkit_asm::listing::{self, Options, Select};
use bpfkit_asm::Syntax;
use std::path::PathBuf;

const AFTER_HELP: &str = "\
Examples:
  bpfkit disasm corpus/obj/xdp_calls.o                 # like llvm-objdump-19 -d --no-show-raw-insn
  bpfkit disasm corpus/obj/xdp_calls.o --section xdp -r  # one section, with relocations
  bpfkit disasm corpus/obj/xdp_calls.o --prog xdp_calls --source
  bpfkit disasm corpus/obj/xdp_atomics.o --alu32        # like llvm-objdump-19 -d --mattr=+alu32
  bpfkit disasm prog.bin --syntax ubpf                  # raw little-endian slots, ubpf mnemonics
  bpfkit disasm prog.bin | bpfkit asm - -o back.bin     # the text assembles back to the same bytes
  bpfkit disasm --jit corpus/obj/xdp_calls.o --prog xdp_calls  # x86-64 from the JIT (iced-x86)
  bpfkit disasm --jit --jit-mode fast corpus/obj/xdp_calls.o --prog xdp_calls

Input: an ELF object (detected by its magic) or raw instruction bytes (8 bytes per slot).
Output: a `<function>:` header per function, then `INDEX:<TAB>TEXT` per instruction (lddw
takes two slots). Text differs from llvm-objdump only where LLVM's is ambiguous, see
docs/disasm.md (local calls print as `call local +0x3`, kfunc calls as `call kfunc 0x4d2`).

Exit status: 0 success; 1 the input is bad (not a whole number of slots, an invalid
instruction, a malformed ELF); 2 usage or I/O error (unreadable file, unknown --section or
--prog).";

#[derive(clap::Args)]
#[command(after_help = AFTER_HELP)]
pub struct Args {
    /// Raw instruction file (.bin) or ELF object (.o); `-` reads standard input.
    pub file: PathBuf,
    /// Only this program or function (ELF input).
    #[arg(long, conflicts_with = "section")]
    pub prog: Option<String>,
    /// Only this section (ELF input).
    #[arg(long)]
    pub section: Option<String>,
    /// Print relocations after the instructions they apply to (like `llvm-objdump -r`).
    #[arg(short = 'r', long = "reloc")]
    pub reloc: bool,
    /// Print the raw bytes of each instruction.
    #[arg(long)]
    pub raw: bool,
    /// Interleave C source lines from BTF line info (like `llvm-objdump -S`).
    #[arg(short = 'S', long)]
    pub source: bool,
    /// Leave out the `<symbol+offset>` annotations of jump targets.
    #[arg(long)]
    pub no_annotations: bool,
    /// Instruction syntax.
    #[arg(long, value_enum, default_value = "llvm")]
    pub syntax: SyntaxArg,
    /// LLVM syntax as `llvm-objdump --mattr=+alu32` prints it (w registers for
    /// 8/16/32-bit loads, stores and atomics).
    #[arg(long)]
    pub alu32: bool,
    /// Show the x86-64 code the JIT generates for --prog, under each eBPF instruction.
    #[arg(long, requires = "prog")]
    pub jit: bool,
    /// With --jit: `checked` (the default, what `run --engine jit` executes) or `fast`.
    #[arg(long, value_name = "MODE", default_value = "checked", requires = "jit")]
    pub jit_mode: String,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum SyntaxArg {
    /// llvm-objdump syntax: `r2 = *(u32 *)(r1 + 0x4)`.
    Llvm,
    /// ubpf/rbpf mnemonics: `ldxw r2, [r1+4]`.
    Ubpf,
}

pub(crate) fn read_input(path: &PathBuf) -> Result<Vec<u8>, CliError> {
    if path.as_os_str() == "-" {
        let mut v = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut v)
            .map_err(|e| CliError::usage(format!("reading standard input: {e}")))?;
        Ok(v)
    } else {
        std::fs::read(path).map_err(|e| CliError::usage(format!("{}: {e}", path.display())))
    }
}

pub fn run(args: Args) -> CliResult {
    let bytes = read_input(&args.file)?;
    let opts = Options {
        syntax: match (args.syntax, args.alu32) {
            (SyntaxArg::Llvm, false) => Syntax::Llvm,
            (SyntaxArg::Llvm, true) => Syntax::LlvmAlu32,
            (SyntaxArg::Ubpf, false) => Syntax::Ubpf,
            (SyntaxArg::Ubpf, true) => {
                return Err(CliError::usage("--alu32 applies to the llvm syntax only"))
            }
        },
        raw: args.raw,
        reloc: args.reloc,
        source: args.source,
        annotate: !args.no_annotations,
    };
    let name = args.file.display().to_string();
    if args.jit {
        let prog = args.prog.as_deref().unwrap_or_default();
        return jit_listing(&bytes, &name, prog, &args.jit_mode);
    }
    // Slots that do not decode: listed as `<unknown>` (as llvm-objdump does), reported
    // on stderr, and the exit status says the input was bad.
    let undecoded: Vec<String>;
    let text = if bytes.starts_with(b"\x7fELF") {
        let obj = bpfkit_object::Object::parse_named(
            &bytes,
            &bpfkit_object::object_name_from_path(&args.file),
        )
        .map_err(|e| CliError::bad(format!("{name}: {e}")))?;
        for w in &obj.warnings {
            eprintln!("warning: {name}: {w}");
        }
        let select = match (&args.prog, &args.section) {
            (Some(p), _) => Select::Function(p.clone()),
            (None, Some(s)) => Select::Section(s.clone()),
            (None, None) => Select::All,
        };
        let (text, errors) = listing::list_object_lossy(&obj, &name, &select, &opts)
            .map_err(|e| CliError::usage(format!("{name}: {e}")))?;
        undecoded = errors.iter().map(|e| format!("{name}: {e}")).collect();
        text
    } else {
        if args.prog.is_some() || args.section.is_some() {
            return Err(CliError::usage(format!(
                "{name}: --prog/--section need an ELF object; this is raw instruction bytes"
            )));
        }
        if args.reloc || args.source {
            return Err(CliError::usage(format!(
                "{name}: --reloc/--source need an ELF object; this is raw instruction bytes"
            )));
        }
        let insns =
            bpfkit_isa::parse_raw(&bytes).map_err(|e| CliError::bad(format!("{name}: {e}")))?;
        let (text, errors) = listing::list_raw_lossy(&insns, &opts);
        undecoded = errors.iter().map(|e| format!("{name}: {e}")).collect();
        text
    };
    crate::out_bytes(text.as_bytes());
    for u in &undecoded {
        eprintln!("error: {u} (listed as <unknown>)");
    }
    Ok(if undecoded.is_empty() {
        Status::Ok
    } else {
        Status::Bad
    })
}

/// `--jit`: the JIT's x86-64 code for one program of an object.
fn jit_listing(bytes: &[u8], name: &str, prog: &str, mode: &str) -> CliResult {
    let mode = match mode {
        "checked" => bpfkit_jit::Mode::Checked,
        "fast" => bpfkit_jit::Mode::Fast,
        m => {
            return Err(CliError::usage(format!(
                "--jit-mode {m:?}: expected `checked` or `fast`"
            )))
        }
    };
    if !bytes.starts_with(b"\x7fELF") {
        return Err(CliError::usage(format!(
            "{name}: --jit needs an ELF object"
        )));
    }
    let linked = bpfkit_object::Object::parse(bytes)
        .and_then(|o| o.link())
        .map_err(|e| CliError::bad(format!("{name}: {e}")))?;
    let text = bpfkit_jit::listing::listing(&linked, prog, mode)
        .map_err(|e| CliError::usage(format!("{name}: {e}")))?;
    crate::out_bytes(text.as_bytes());
    Ok(Status::Ok)
}
