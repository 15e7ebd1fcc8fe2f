//! Seeded instruction mutants of every corpus program, compiled in fast mode with no
//! verifier and run on two packets: each run must end in a result or a fault, never a
//! signal (issue 14 item 1: a wrongly accepted program cannot corrupt the host). Each
//! object's mutants run in a child process (this binary re-run with
//! `BPFKIT_MUTANTS_OBJ`), so a crash names the object and the mutant's seed.
//!
//! Fast mode charges back edges against the instruction budget, so mutants that loop for
//! ever end in `InsnLimit`; every mutant is kept: opcodes, registers, offsets and
//! immediates, including ones the interpreter refuses, backward jumps and calls.
//! `BPFKIT_MUTANTS=N` sets mutants per program (default 40).

use bpfkit_isa::RawInsn;
use bpfkit_jit::Jit;
use bpfkit_object::model::LinkedObject;
use bpfkit_object::Object;
use bpfkit_vm::{Config, Engine, XdpInput};
use std::path::PathBuf;
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

const INTERESTING: [i64; 12] = [
    0,
    1,
    -1,
    4,
    8,
    14,
    0x7fff,
    -0x8000,
    0x7fff_ffff,
    -0x8000_0000,
    4096,
    -512,
];

/// Changes one instruction of `insns` (code, a register, the offset or the immediate).
fn mutate(insns: &mut [RawInsn], rng: &mut Rng) {
    let pc = rng.below(insns.len() as u64) as usize;
    let i = &mut insns[pc];
    match rng.below(6) {
        0 => i.code ^= 1 << rng.below(8),
        1 => i.dst = rng.below(11) as u8,
        2 => i.src = rng.below(11) as u8,
        3 => {
            i.off = if rng.below(2) == 0 {
                INTERESTING[rng.below(INTERESTING.len() as u64) as usize] as i16
            } else {
                i.off.wrapping_add(rng.below(64) as i16 - 32)
            }
        }
        4 => {
            i.imm = if rng.below(2) == 0 {
                INTERESTING[rng.below(INTERESTING.len() as u64) as usize] as i32
            } else {
                rng.next() as i32
            }
        }
        // Size and mode of loads and stores.
        _ => i.code ^= [0x08, 0x10, 0x18, 0x20, 0x60, 0x80][rng.below(6) as usize],
    }
}

fn run_object(name: &str, per_prog: u64) -> usize {
    let bytes = std::fs::read(root().join("corpus/obj").join(name)).unwrap();
    let obj: LinkedObject = Object::parse(&bytes).unwrap().link().unwrap();
    let mut packet = [0u8; 128];
    // An Ethernet + IPv4 + UDP frame, so parsers get past their first checks.
    packet[12] = 0x08;
    packet[14] = 0x45;
    packet[23] = 17;
    let mut ran = 0;
    for p in 0..obj.programs.len() {
        for m in 0..per_prog {
            let seed = (p as u64) << 32 | m | 1;
            let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
            let mut o = obj.clone();
            let insns = &mut o.programs[p].insns;
            for _ in 0..1 + rng.below(3) {
                mutate(insns, &mut rng);
            }
            eprintln!("{name} prog {p} mutant {m} (seed {seed:#x})");
            // Back edges are charged against the budget in fast mode too: a mutant
            // that loops for ever ends in InsnLimit after 2^20 instructions.
            let config = Config {
                insn_limit: 1 << 20,
                ..Config::default()
            };
            let Ok(mut j) = Jit::new_fast(&o, config) else {
                continue;
            };
            for len in [64usize, 128] {
                let _ = j.run_xdp(
                    p,
                    &XdpInput {
                        packet: &packet[..len],
                        ..Default::default()
                    },
                );
            }
            ran += 1;
        }
    }
    ran
}

#[test]
fn mutants_child() {
    if let Ok(name) = std::env::var("BPFKIT_MUTANTS_OBJ") {
        let n = std::env::var("BPFKIT_MUTANTS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(40);
        let ran = run_object(&name, n);
        println!("MUTANTS-OK {name} {ran}");
    }
}

#[test]
fn fast_mode_mutants_never_crash() {
    use std::os::unix::process::ExitStatusExt;
    let exe = std::env::current_exe().unwrap();
    let mut names: Vec<String> = std::fs::read_dir(root().join("corpus/obj"))
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".o"))
        .collect();
    names.sort();
    let mut failures = Vec::new();
    let mut total = 0usize;
    for name in &names {
        let out = Command::new(&exe)
            .args([
                "mutants_child",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("BPFKIT_MUTANTS_OBJ", name)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let last = stderr
            .lines()
            .rev()
            .find(|l| l.contains("mutant"))
            .unwrap_or("");
        let tag = format!("MUTANTS-OK {name} ");
        let count = stdout.lines().find_map(|l| {
            let at = l.find(&tag)?;
            l[at + tag.len()..]
                .split_whitespace()
                .next()?
                .parse::<usize>()
                .ok()
        });
        match count {
            Some(n) if out.status.success() => total += n,
            _ => failures.push(format!(
                "{name}: {} ({}) at {last}",
                out.status,
                out.status
                    .signal()
                    .map_or("no signal".to_string(), |s| format!("signal {s}"))
            )),
        }
    }
    println!(
        "{total} mutants ran in fast mode over {} objects",
        names.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(total > 500, "only {total} mutants ran");
}
