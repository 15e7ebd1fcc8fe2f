//! Tracked numbers: the kernel's `struct tnum` (kernel/bpf/tnum.c), bit-for-bit.
//!
//! A tnum knows, for each bit, whether it is 0, 1 or unknown (`mask` bit set).

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Tnum {
    pub value: u64,
    pub mask: u64,
}

// Method names mirror the kernel's tnum_add/tnum_sub/... on purpose.
#[allow(clippy::should_implement_trait)]
impl Tnum {
    pub const UNKNOWN: Tnum = Tnum {
        value: 0,
        mask: u64::MAX,
    };

    pub const fn new(value: u64, mask: u64) -> Tnum {
        Tnum { value, mask }
    }
    pub const fn konst(v: u64) -> Tnum {
        Tnum { value: v, mask: 0 }
    }
    /// `tnum_range`: the tightest tnum containing every value in `[min, max]`.
    pub fn range(min: u64, max: u64) -> Tnum {
        let chi = min ^ max;
        let bits = 64 - chi.leading_zeros();
        if bits > 63 {
            return Tnum::UNKNOWN;
        }
        let delta = (1u64 << bits) - 1;
        Tnum::new(min & !delta, delta)
    }
    pub fn is_const(self) -> bool {
        self.mask == 0
    }
    pub fn is_unknown(self) -> bool {
        self.mask == u64::MAX
    }
    pub fn lshift(self, s: u32) -> Tnum {
        Tnum::new(self.value.wrapping_shl(s), self.mask.wrapping_shl(s))
    }
    pub fn rshift(self, s: u32) -> Tnum {
        Tnum::new(self.value.wrapping_shr(s), self.mask.wrapping_shr(s))
    }
    /// `tnum_arshift` with the instruction's bitness (32 or 64).
    pub fn arshift(self, s: u32, bits: u32) -> Tnum {
        if bits == 32 {
            Tnum::new(
                ((self.value as u32 as i32) >> s) as u32 as u64,
                ((self.mask as u32 as i32) >> s) as u32 as u64,
            )
        } else {
            Tnum::new(
                ((self.value as i64) >> s) as u64,
                ((self.mask as i64) >> s) as u64,
            )
        }
    }
    pub fn add(self, b: Tnum) -> Tnum {
        let sm = self.mask.wrapping_add(b.mask);
        let sv = self.value.wrapping_add(b.value);
        let sigma = sm.wrapping_add(sv);
        let chi = sigma ^ sv;
        let mu = chi | self.mask | b.mask;
        Tnum::new(sv & !mu, mu)
    }
    pub fn sub(self, b: Tnum) -> Tnum {
        let dv = self.value.wrapping_sub(b.value);
        let alpha = dv.wrapping_add(self.mask);
        let beta = dv.wrapping_sub(b.mask);
        let chi = alpha ^ beta;
        let mu = chi | self.mask | b.mask;
        Tnum::new(dv & !mu, mu)
    }
    pub fn neg(self) -> Tnum {
        Tnum::konst(0).sub(self)
    }
    pub fn and(self, b: Tnum) -> Tnum {
        let alpha = self.value | self.mask;
        let beta = b.value | b.mask;
        let v = self.value & b.value;
        Tnum::new(v, alpha & beta & !v)
    }
    pub fn or(self, b: Tnum) -> Tnum {
        let v = self.value | b.value;
        let mu = self.mask | b.mask;
        Tnum::new(v, mu & !v)
    }
    pub fn xor(self, b: Tnum) -> Tnum {
        let v = self.value ^ b.value;
        let mu = self.mask | b.mask;
        Tnum::new(v & !mu, mu)
    }
    /// `tnum_union`: every value of either operand.
    pub fn union(self, b: Tnum) -> Tnum {
        let v = self.value & b.value;
        let mu = (self.value ^ b.value) | self.mask | b.mask;
        Tnum::new(v & !mu, mu)
    }
    /// `tnum_mul` (the accumulate-with-union form of Linux 6.17+).
    pub fn mul(self, b: Tnum) -> Tnum {
        let (mut a, mut b) = (self, b);
        let mut acc = Tnum::konst(0);
        while a.value != 0 || a.mask != 0 {
            if a.value & 1 != 0 {
                acc = acc.add(b);
            } else if a.mask & 1 != 0 {
                acc = acc.union(acc.add(b));
            }
            a = a.rshift(1);
            b = b.lshift(1);
        }
        acc
    }
    pub fn intersect(self, b: Tnum) -> Tnum {
        let v = self.value | b.value;
        let mu = self.mask & b.mask;
        Tnum::new(v & !mu, mu)
    }
    /// `tnum_cast` to `size` bytes (size < 8).
    pub fn cast(self, size: u32) -> Tnum {
        let m = if size >= 8 {
            u64::MAX
        } else {
            (1u64 << (size * 8)) - 1
        };
        Tnum::new(self.value & m, self.mask & m)
    }
    pub fn is_aligned(self, size: u64) -> bool {
        if size == 0 {
            return true;
        }
        (self.value | self.mask) & (size - 1) == 0
    }
    /// `tnum_in(a, b)`: is every value of `b` also a value of `self`?
    pub fn contains(self, b: Tnum) -> bool {
        if b.mask & !self.mask != 0 {
            return false;
        }
        self.value == (b.value & !self.mask)
    }
    pub fn subreg(self) -> Tnum {
        self.cast(4)
    }
    pub fn clear_subreg(self) -> Tnum {
        self.rshift(32).lshift(32)
    }
    pub fn with_subreg(self, sub: Tnum) -> Tnum {
        self.clear_subreg().or(sub.subreg())
    }
    pub fn subreg_is_const(self) -> bool {
        self.subreg().mask == 0
    }
}

impl std::fmt::Display for Tnum {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "({:#x}; {:#x})", self.value, self.mask)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(t: Tnum, bits: u32) -> Vec<u64> {
        // all values of a tnum restricted to `bits` low bits
        let mut out = vec![];
        for x in 0..(1u64 << bits) {
            if (x & !t.mask) == t.value {
                out.push(x);
            }
        }
        out
    }

    #[test]
    fn range_and_ops_are_sound_on_small_values() {
        let mut ts = vec![];
        for v in 0..16u64 {
            for m in 0..16u64 {
                if v & m == 0 {
                    ts.push(Tnum::new(v, m));
                }
            }
        }
        for &a in &ts {
            for &b in &ts {
                for x in members(a, 4) {
                    for y in members(b, 4) {
                        assert!(a.add(b).contains(Tnum::konst(x + y)), "add {a} {b}");
                        assert!(a.sub(b).contains(Tnum::konst(x.wrapping_sub(y))));
                        assert!(a.mul(b).contains(Tnum::konst(x * y)), "mul {a} {b} {x} {y}");
                        assert!(a.and(b).contains(Tnum::konst(x & y)));
                        assert!(a.or(b).contains(Tnum::konst(x | y)));
                        assert!(a.xor(b).contains(Tnum::konst(x ^ y)));
                    }
                }
            }
        }
        assert_eq!(Tnum::range(0, 255), Tnum::new(0, 255));
        assert_eq!(Tnum::range(4, 4), Tnum::konst(4));
        assert_eq!(Tnum::range(0, u64::MAX), Tnum::UNKNOWN);
    }
}
