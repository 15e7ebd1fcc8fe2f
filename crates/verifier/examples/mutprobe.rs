//! Developer tool: mutate the instructions of objects (one instruction per mutant:
//! registers, offsets, immediates, size/mode/op/class bits, deleted instructions,
//! inverted conditions), verify every mutant with bpfkit and load it into the kernel
//! (whole object, as libbpf would), and print each disagreement: `UNSAFE` (bpfkit
//! accepts, the kernel rejects) or `FALSEREJ`. Needs root (CAP_BPF).
//! `cargo run --release -p bpfkit-verifier --example mutprobe -- N SEED FILE.o...`
//! (N mutants per object; `MUTPROBE_EXTRA=K` adds K more mutations per mutant;
//! `MUTPROBE_CAPS=SET` verifies as `--caps SET` and loads from a thread with exactly those
//! capabilities). Not a test: the issue-14 campaign (item 7) is its own tool.
use bpfkit_isa::RawInsn;
use bpfkit_object::{Object, SectionKind};
use bpfkit_verifier::Verdict;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// `MUTPROBE_CAPS`: the loader's capabilities (root when unset).
fn caps() -> bpfkit_verifier::Caps {
    std::env::var("MUTPROBE_CAPS")
        .ok()
        .map(|s| bpfkit_verifier::Caps::parse(&s).unwrap_or_else(|e| panic!("MUTPROBE_CAPS: {e}")))
        .unwrap_or_default()
}

fn bpfkit(obj: &Object) -> Option<(bool, String)> {
    let linked = obj.link().ok()?;
    let opts = bpfkit_verifier::Options {
        caps: caps(),
        map_fields: Some(bpfkit_verifier::btf_fields::from_btf(
            obj.btf.as_ref(),
            &linked.maps,
        )),
        funcs: bpfkit_verifier::btf_funcs::from_object(obj, &linked),
        ..Default::default()
    };
    let mut all = true;
    let mut msg = String::new();
    for p in &linked.programs {
        match bpfkit_verifier::verify(p, &linked.maps, &opts).verdict {
            Verdict::Accepted => {}
            Verdict::Rejected(r) => {
                all = false;
                msg = format!(
                    "{}: {}",
                    p.name,
                    r.kernel_message.lines().last().unwrap_or("")
                );
            }
            Verdict::Unsupported { .. } => return None,
        }
    }
    Some((all, msg))
}

fn kernel(obj: &Object) -> (bool, String) {
    let set = caps();
    let res = if set == bpfkit_verifier::Caps::ROOT {
        bpfkit_loader::LoadedObject::load(obj, &Default::default()).map(|_| ())
    } else {
        bpfkit_loader::caps::with_caps(set, || {
            bpfkit_loader::LoadedObject::load(obj, &Default::default()).map(|_| ())
        })
        .unwrap_or_else(|e| panic!("MUTPROBE_CAPS: {e}"))
    };
    match res {
        Ok(_) => (true, String::new()),
        Err(e) => {
            let log = e.verifier_log().unwrap_or("").to_string();
            let v: Vec<&str> = log
                .lines()
                .filter(|l| {
                    !l.starts_with("processed")
                        && !l.trim().is_empty()
                        && !l.starts_with("mark_precise")
                })
                .collect();
            let last = v[v.len().saturating_sub(4)..].join(" // ");
            (false, if last.is_empty() { e.to_string() } else { last })
        }
    }
}

fn mutate(r: &mut Rng, i: &mut RawInsn) {
    let is_cond_jmp = matches!(i.code & 7, 5 | 6) && !matches!(i.code & 0xf0, 0x00 | 0x80 | 0x90);
    if is_cond_jmp && r.below(3) == 0 {
        // invert the condition (swap the branches)
        let inv = |op: u8| match op {
            0x10 => 0x50,
            0x50 => 0x10, // jeq <-> jne
            0x20 => 0xb0,
            0xb0 => 0x20, // jgt <-> jle
            0x30 => 0xa0,
            0xa0 => 0x30, // jge <-> jlt
            0x60 => 0xd0,
            0xd0 => 0x60, // jsgt <-> jsle
            0x70 => 0xc0,
            0xc0 => 0x70, // jsge <-> jslt
            o => o,
        };
        i.code = (i.code & 0x0f) | inv(i.code & 0xf0);
        return;
    }
    if r.below(12) == 0 {
        // delete: a `ja +0` in its place
        *i = RawInsn::new(0x05, 0, 0, 0, 0);
        return;
    }
    match r.below(8) {
        0 => i.dst = r.below(11) as u8,
        1 => i.src = r.below(11) as u8,
        2 => {
            i.off = i
                .off
                .wrapping_add([-8i16, -4, -2, -1, 1, 2, 4, 8][r.below(8) as usize])
        }
        3 => {
            i.imm = i
                .imm
                .wrapping_add([-8, -4, -1, 1, 4, 8, 64, 4096][r.below(8) as usize])
        }
        4 => i.code = (i.code & !0x18) | ((r.below(4) as u8) << 3), // size bits / src bit
        5 => i.code = (i.code & !0xe0) | ((r.below(8) as u8) << 5), // op / mode
        6 => i.code = (i.code & !0x07) | (r.below(8) as u8),        // class
        _ => i.imm = [0, 1, -1, 255, 65535, i32::MIN, i32::MAX][r.below(7) as usize],
    }
}

fn main() {
    let mut a = std::env::args().skip(1);
    let n: usize = a.next().and_then(|x| x.parse().ok()).unwrap_or(200);
    let seed: u64 = a.next().and_then(|x| x.parse().ok()).unwrap_or(1);
    let files: Vec<String> = a.collect();
    let mut r = Rng(seed | 1);
    let (mut tot, mut agree, mut unsafe_, mut falsrej, mut skip) = (0, 0, 0, 0, 0);
    for f in &files {
        let bytes = std::fs::read(f).unwrap();
        let Ok(base) = Object::parse(&bytes) else {
            continue;
        };
        let Some((true, _)) = bpfkit(&base) else {
            eprintln!("skip {f}: base not accepted/decided");
            continue;
        };
        if !kernel(&base).0 {
            eprintln!("skip {f}: kernel rejects base");
            continue;
        }
        let secs: Vec<usize> = base
            .sections
            .iter()
            .enumerate()
            .filter(|(_, s)| {
                matches!(s.kind, SectionKind::Program | SectionKind::Text) && !s.insns.is_empty()
            })
            .map(|(i, _)| i)
            .collect();
        for _ in 0..n {
            let mut obj = base.clone();
            let si = secs[r.below(secs.len() as u64) as usize];
            let insns = &mut obj.sections[si].insns;
            let k = r.below(insns.len() as u64) as usize;
            if insns[k].code == 0x18 || (k > 0 && insns[k - 1].code == 0x18) {
                continue;
            }
            let before = insns[k];
            mutate(&mut r, &mut insns[k]);
            if insns[k] == before {
                continue;
            }
            // MUTPROBE_EXTRA=N: N more mutations elsewhere in the same section
            let extra: u64 = std::env::var("MUTPROBE_EXTRA")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let mut more = String::new();
            for _ in 0..extra {
                let j = r.below(insns.len() as u64) as usize;
                if j != k && insns[j].code != 0x18 && !(j > 0 && insns[j - 1].code == 0x18) {
                    let b = insns[j];
                    mutate(&mut r, &mut insns[j]);
                    let a = insns[j];
                    more.push_str(&format!(
                        " + insn {j}: {:02x} {} {} {} {} -> {:02x} {} {} {} {}",
                        b.code, b.dst, b.src, b.off, b.imm, a.code, a.dst, a.src, a.off, a.imm
                    ));
                }
            }
            tot += 1;
            let Some((b, bmsg)) = bpfkit(&obj) else {
                skip += 1;
                continue;
            };
            let (kv, kmsg) = kernel(&obj);
            if b == kv {
                agree += 1;
                continue;
            }
            if b {
                unsafe_ += 1;
            } else {
                falsrej += 1;
            }
            println!(
                "{} {f} sec {} insn {k}: {:02x} {} {} {} {} -> {:02x} {} {} {} {}{more} | bpfkit {} {bmsg} | kernel {} {kmsg}",
                if b { "UNSAFE" } else { "FALSEREJ" },
                obj.sections[si].name, before.code, before.dst, before.src, before.off, before.imm,
                insns_at(&obj, si, k).code, insns_at(&obj, si, k).dst, insns_at(&obj, si, k).src, insns_at(&obj, si, k).off, insns_at(&obj, si, k).imm,
                if b { "accept" } else { "reject" }, if kv { "accept" } else { "reject" }
            );
        }
    }
    eprintln!("mutants {tot}: agree {agree}, unsafe accepts {unsafe_}, false rejects {falsrej}, undecided {skip}");
}

fn insns_at(o: &Object, si: usize, k: usize) -> RawInsn {
    o.sections[si].insns[k]
}
