//! Instruction mutations of real objects, shared by the mutation campaign
//! (`examples/mutprobe.rs`) and its seeded sample in the suite (`tests/mutants.rs`).

#![allow(dead_code)]

use bpfkit_isa::RawInsn;

pub struct Rng(pub u64);
impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

pub fn is_cond_jmp(i: &RawInsn) -> bool {
    matches!(i.code & 7, 5 | 6) && !matches!(i.code & 0xf0, 0x00 | 0x80 | 0x90 | 0xe0)
}

pub fn is_lddw(insns: &[RawInsn], k: usize) -> bool {
    insns[k].code == 0x18 || (k > 0 && insns[k - 1].code == 0x18)
}

/// Picks an instruction of `insns` (one time in three a conditional jump: the wider
/// mutations) and mutates it ([`mutate`]); returns its index and the kind of mutation,
/// None when the pick is an `lddw` or the mutation does not apply there.
pub fn mutate_random(r: &mut Rng, insns: &mut [RawInsn]) -> Option<(usize, &'static str)> {
    let mut k = r.below(insns.len() as u64) as usize;
    if r.below(3) == 0 {
        let jumps: Vec<usize> = (0..insns.len())
            .filter(|&j| !is_lddw(insns, j) && is_cond_jmp(&insns[j]))
            .collect();
        if !jumps.is_empty() {
            k = jumps[r.below(jumps.len() as u64) as usize];
        }
    }
    if is_lddw(insns, k) {
        return None;
    }
    mutate(r, insns, k).map(|kind| (k, kind))
}

/// Mutates instruction `k` of `insns`; returns the kind of mutation, or None when the
/// chosen mutation does not apply there.
pub fn mutate(r: &mut Rng, insns: &mut [RawInsn], k: usize) -> Option<&'static str> {
    let n = insns.len();
    if is_cond_jmp(&insns[k]) {
        match r.below(10) {
            0 | 1 => {
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
                let i = &mut insns[k];
                i.code = (i.code & 0x0f) | inv(i.code & 0xf0);
                return Some("swap");
            }
            2 => {
                insns[k] = RawInsn::new(0x05, 0, 0, 0, 0);
                return Some("delcheck");
            }
            3 => {
                let off = insns[k].off;
                insns[k] = RawInsn::new(0x05, 0, 0, off, 0);
                return Some("always");
            }
            4 => {
                // move the check after the next one or two instructions (not across
                // lddw or other jumps): the guarded access then comes first
                let d = 1 + r.below(2) as usize;
                if k + d >= n
                    || (1..=d)
                        .any(|j| is_lddw(insns, k + j) || matches!(insns[k + j].code & 7, 5 | 6))
                {
                    return None;
                }
                let mut j = insns[k];
                // keep the jump's absolute target
                j.off = j.off.wrapping_sub(d as i16);
                insns.copy_within(k + 1..=k + d, k);
                insns[k + d] = j;
                return Some("movecheck");
            }
            5 => {
                let i = &mut insns[k];
                i.off = i
                    .off
                    .wrapping_add([-3i16, -2, -1, 1, 2, 3][r.below(6) as usize]);
                return Some("retarget");
            }
            _ => {}
        }
    }
    let i = &mut insns[k];
    if r.below(12) == 0 {
        *i = RawInsn::new(0x05, 0, 0, 0, 0);
        return Some("delete");
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
    Some("point")
}
