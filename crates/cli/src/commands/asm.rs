//! `bpfkit asm`: assembler text → raw instruction bytes.

use crate::{CliError, CliResult, Status};
use std::path::PathBuf;

const AFTER_HELP: &str = "\
Examples:
  bpfkit asm prog.s -o prog.bin
  bpfkit asm prog.s --hex                       # one slot per line, 16 hex digits (bytes in file order)
  bpfkit disasm obj.o --section xdp | bpfkit asm - -o xdp.bin

Syntax (both may be mixed, line by line; see docs/disasm.md):
  LLVM:  r2 = *(u32 *)(r1 + 0x4)    if r2 >= r3 goto +0x1    r1 = 0x0 ll    call 0x1
  ubpf:  ldxw r2, [r1+4]            jge %r2, %r3, +1          lddw r1, 0     call 1
Labels (`name:`) can be jump and call targets (`goto name`, `call local name`); comments
start with #, ; or //; immediates are decimal or 0x hex, optionally negative. A listing
printed by `bpfkit disasm` (with its INDEX: prefixes and <function>: headers) assembles back.

Output: little-endian instruction bytes, 8 per slot.

Exit status: 0 success; 1 the text does not assemble (the message gives line, column and
the offending text); 2 usage or I/O error.";

#[derive(clap::Args)]
#[command(after_help = AFTER_HELP)]
pub struct Args {
    /// Assembler source; `-` reads standard input.
    pub file: PathBuf,
    /// Output file for the instruction bytes (`-` for standard output).
    #[arg(short = 'o', long, required_unless_present = "hex")]
    pub output: Option<PathBuf>,
    /// Print the slots as hex text instead of writing bytes.
    #[arg(long, conflicts_with = "output")]
    pub hex: bool,
}

pub fn run(args: Args) -> CliResult {
    let bytes = super::disasm::read_input(&args.file)?;
    let name = args.file.display().to_string();
    let text = String::from_utf8(bytes).map_err(|e| {
        CliError::bad(format!(
            "{name}: not UTF-8 text (byte offset {})",
            e.utf8_error().valid_up_to()
        ))
    })?;
    let insns = bpfkit_asm::assemble(&text).map_err(|e| CliError::bad(format!("{name}: {e}")))?;
    let out_bytes = bpfkit_isa::to_bytes(&insns);
    let result = match (&args.output, args.hex) {
        (_, true) => {
            let mut s = String::new();
            for c in out_bytes.chunks(8) {
                for b in c {
                    s.push_str(&format!("{b:02x}"));
                }
                s.push('\n');
            }
            write_stdout(s.as_bytes())
        }
        (Some(p), false) if p.as_os_str() == "-" => write_stdout(&out_bytes),
        // Written under a temporary name and renamed when complete.
        (Some(p), false) => bpfkit_replay::output::write_whole(p, &out_bytes)
            .map_err(|e| format!("{}: {e}", p.display())),
        (None, false) => unreachable!("clap requires --output or --hex"),
    };
    result.map_err(CliError::usage)?;
    Ok(Status::Ok)
}

fn write_stdout(b: &[u8]) -> Result<(), String> {
    crate::out_bytes(b);
    Ok(())
}
