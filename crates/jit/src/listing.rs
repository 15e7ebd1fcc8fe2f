//! The generated x86-64 code of a program as text: each block under the eBPF instruction
//! it came from, decoded with `iced-x86` (Intel syntax), then the out-of-line stubs.

use crate::compile::{self, Mode};
use bpfkit_object::model::LinkedObject;
use bpfkit_vm::{Config, Interpreter, VmError};
use iced_x86::{Decoder, DecoderOptions, Formatter, IntelFormatter};
use std::fmt::Write;

/// Lists the code generated for program `prog_name` of `obj` in `mode`.
///
/// Addresses are offsets from the start of the code buffer (the entry trampoline comes
/// first). eBPF instructions are shown in llvm-objdump syntax.
pub fn listing(obj: &LinkedObject, prog_name: &str, mode: Mode) -> Result<String, VmError> {
    let prog = obj
        .programs
        .iter()
        .position(|p| p.name == prog_name)
        .ok_or_else(|| {
            let names: Vec<&str> = obj.programs.iter().map(|p| p.name.as_str()).collect();
            VmError::Setup(format!(
                "no program {prog_name:?} in the object (programs: {})",
                names.join(", ")
            ))
        })?;
    let mut vm = Interpreter::new(obj, Config::default())?;
    listing_of(&mut vm, prog, mode)
}

/// Lists the code of program `prog` compiled over the runtime of `vm` (`&mut`: fast mode
/// reads the array maps' value addresses, as [`crate::Jit::new_unchecked`] does).
pub fn listing_of(vm: &mut Interpreter, prog: usize, mode: Mode) -> Result<String, VmError> {
    let fast_maps = if mode == Mode::Fast {
        crate::fast_maps(vm.runtime_mut())
    } else {
        Vec::new()
    };
    let c = compile::compile(vm.runtime(), mode, &fast_maps).map_err(VmError::Setup)?;
    let compile::Compiled {
        mut ops,
        progs,
        stubs,
        ..
    } = c;
    ops.commit()
        .map_err(|e| VmError::Setup(format!("JIT: assembling: {e}")))?;
    let code = ops
        .finalize()
        .map_err(|_| VmError::Setup("JIT: code memory still in use".into()))?;
    let bytes: &[u8] = &code;
    let insns = &vm.runtime().programs[prog].insns;
    let name = &vm.runtime().programs[prog].name;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "; {name}: {} eBPF slots, {} bytes of x86-64 for the whole object ({} mode)",
        insns.len(),
        bytes.len(),
        match mode {
            Mode::Fast => "fast",
            Mode::Checked => "checked",
        }
    );
    let mut pc = 0;
    while pc < insns.len() {
        let (ebpf, width) = match bpfkit_isa::decode_one(&insns[pc], insns.get(pc + 1)) {
            Ok((i, w)) => (
                bpfkit_asm::disasm::format_insn(&i, bpfkit_asm::Syntax::Llvm),
                w,
            ),
            Err(e) => (format!("<invalid: {e}>"), 1),
        };
        let _ = writeln!(out, "{pc:>5}: {ebpf}");
        let (s, e) = progs[prog].ranges[pc];
        decode_into(&mut out, bytes, s.0, e.0);
        pc += width.max(1);
    }
    let _ = writeln!(
        out,
        "; out-of-line code (fault stubs, prologues, slow paths) of the whole object"
    );
    for (s, e, what) in stubs {
        let _ = writeln!(out, "; {what}");
        decode_into(&mut out, bytes, s.0, e.0);
    }
    Ok(out)
}

fn decode_into(out: &mut String, bytes: &[u8], start: usize, end: usize) {
    let mut decoder = Decoder::with_ip(64, &bytes[start..end], start as u64, DecoderOptions::NONE);
    let mut f = IntelFormatter::new();
    f.options_mut().set_hex_prefix("0x");
    f.options_mut().set_hex_suffix("");
    let mut text = String::new();
    for ins in &mut decoder {
        text.clear();
        f.format(&ins, &mut text);
        let _ = writeln!(out, "         {:6x}  {text}", ins.ip());
    }
}
