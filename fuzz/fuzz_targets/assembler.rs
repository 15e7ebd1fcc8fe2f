//! Fuzzes the assembler: any text assembles or gives an `AsmError`, never a panic. What
//! assembles is disassembled (llvm-objdump text) without a panic too.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match bpfkit_asm::assemble(text) {
        Ok(insns) => {
            let mut i = 0;
            while i < insns.len() {
                match bpfkit_isa::insn::decode(&insns, i) {
                    Ok((insn, n)) => {
                        let _ = bpfkit_asm::disasm::llvm(&insn);
                        i += n.max(1);
                    }
                    Err(e) => {
                        let _ = e.to_string();
                        i += 1;
                    }
                }
            }
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
