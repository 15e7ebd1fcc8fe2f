//! Scalar bounds: `var_off` plus signed/unsigned 64- and 32-bit ranges, with the
//! kernel's update/deduce/sync rules (`reg_bounds_sync` and friends in
//! kernel/bpf/verifier.c), ALU transfer functions (`adjust_scalar_min_max_vals`) and
//! branch refinement (`regs_refine_cond_op`, `is_scalar_branch_taken`).

use crate::tnum::Tnum;
use bpfkit_isa::opcode::*;

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Bounds {
    pub var_off: Tnum,
    pub smin: i64,
    pub smax: i64,
    pub umin: u64,
    pub umax: u64,
    pub s32_min: i32,
    pub s32_max: i32,
    pub u32_min: u32,
    pub u32_max: u32,
}

impl Default for Bounds {
    fn default() -> Self {
        Bounds::unknown()
    }
}

impl Bounds {
    pub const fn unknown() -> Bounds {
        Bounds {
            var_off: Tnum::UNKNOWN,
            smin: i64::MIN,
            smax: i64::MAX,
            umin: 0,
            umax: u64::MAX,
            s32_min: i32::MIN,
            s32_max: i32::MAX,
            u32_min: 0,
            u32_max: u32::MAX,
        }
    }
    pub fn konst(v: u64) -> Bounds {
        Bounds {
            var_off: Tnum::konst(v),
            smin: v as i64,
            smax: v as i64,
            umin: v,
            umax: v,
            s32_min: v as u32 as i32,
            s32_max: v as u32 as i32,
            u32_min: v as u32,
            u32_max: v as u32,
        }
    }
    pub fn is_const(&self) -> bool {
        self.var_off.is_const()
    }
    /// `is_reg_const` for the given width.
    pub fn is_const_w(&self, is32: bool) -> bool {
        if is32 {
            self.var_off.subreg_is_const()
        } else {
            self.var_off.is_const()
        }
    }
    pub fn const_val(&self, is32: bool) -> u64 {
        if is32 {
            self.var_off.value as u32 as u64
        } else {
            self.var_off.value
        }
    }
    fn mark_known32(&mut self, v: u32) {
        self.var_off = self.var_off.with_subreg(Tnum::konst(v as u64));
        self.s32_min = v as i32;
        self.s32_max = v as i32;
        self.u32_min = v;
        self.u32_max = v;
    }
    pub fn mark64_unbounded(&mut self) {
        self.smin = i64::MIN;
        self.smax = i64::MAX;
        self.umin = 0;
        self.umax = u64::MAX;
    }
    pub fn mark32_unbounded(&mut self) {
        self.s32_min = i32::MIN;
        self.s32_max = i32::MAX;
        self.u32_min = 0;
        self.u32_max = u32::MAX;
    }
    pub fn mark_unbounded(&mut self) {
        self.mark64_unbounded();
        self.mark32_unbounded();
    }

    fn update32(&mut self) {
        let v = self.var_off.subreg();
        self.s32_min = self
            .s32_min
            .max((v.value | (v.mask & 0x8000_0000)) as u32 as i32);
        self.s32_max = self
            .s32_max
            .min((v.value | (v.mask & 0x7fff_ffff)) as u32 as i32);
        self.u32_min = self.u32_min.max(v.value as u32);
        self.u32_max = self.u32_max.min((v.value | v.mask) as u32);
    }
    fn update64(&mut self) {
        let v = self.var_off;
        self.smin = self.smin.max((v.value | (v.mask & (1u64 << 63))) as i64);
        self.smax = self.smax.min((v.value | (v.mask & !(1u64 << 63))) as i64);
        self.umin = self.umin.max(v.value);
        self.umax = self.umax.min(v.value | v.mask);
    }
    /// `__update_reg_bounds`.
    pub fn update(&mut self) {
        self.update32();
        self.update64();
    }

    fn deduce32(&mut self) {
        if (self.umin >> 32) == (self.umax >> 32) {
            self.u32_min = self.u32_min.max(self.umin as u32);
            self.u32_max = self.u32_max.min(self.umax as u32);
            if (self.umin as i32) <= (self.umax as i32) {
                self.s32_min = self.s32_min.max(self.umin as i32);
                self.s32_max = self.s32_max.min(self.umax as i32);
            }
        }
        if (self.smin >> 32) == (self.smax >> 32) {
            self.u32_min = self.u32_min.max(self.smin as u32);
            self.u32_max = self.u32_max.min(self.smax as u32);
            if (self.smin as i32) <= (self.smax as i32) {
                self.s32_min = self.s32_min.max(self.smin as i32);
                self.s32_max = self.s32_max.min(self.smax as i32);
            }
        }
        if ((self.umin >> 32) as u32).wrapping_add(1) == (self.umax >> 32) as u32
            && (self.umin as i32) < 0
            && (self.umax as i32) >= 0
        {
            self.s32_min = self.s32_min.max(self.umin as i32);
            self.s32_max = self.s32_max.min(self.umax as i32);
        }
        if ((self.smin >> 32) as u32).wrapping_add(1) == (self.smax >> 32) as u32
            && (self.smin as i32) < 0
            && (self.smax as i32) >= 0
        {
            self.s32_min = self.s32_min.max(self.smin as i32);
            self.s32_max = self.s32_max.min(self.smax as i32);
        }
        if (self.u32_min as i32) <= (self.u32_max as i32) {
            self.s32_min = self.s32_min.max(self.u32_min as i32);
            self.s32_max = self.s32_max.min(self.u32_max as i32);
        }
        if (self.s32_min as u32) <= (self.s32_max as u32) {
            self.u32_min = self.u32_min.max(self.s32_min as u32);
            self.u32_max = self.u32_max.min(self.s32_max as u32);
        } else if self.u32_max < self.s32_min as u32 {
            // the s32 range wraps (crosses the sign boundary) and the u32 range lies
            // in its non-negative part: intersect them (6.18)
            self.s32_min = self.u32_min as i32;
            self.u32_max = self.u32_max.min(self.s32_max as u32);
        } else if (self.s32_max as u32) < self.u32_min {
            // ... or in its negative part
            self.s32_max = self.u32_max as i32;
            self.u32_min = self.u32_min.max(self.s32_min as u32);
        }
    }
    fn deduce64(&mut self) {
        if (self.umin as i64) <= (self.umax as i64) {
            self.smin = self.smin.max(self.umin as i64);
            self.smax = self.smax.min(self.umax as i64);
        }
        if (self.smin as u64) <= (self.smax as u64) {
            self.umin = self.umin.max(self.smin as u64);
            self.umax = self.umax.min(self.smax as u64);
        } else if self.umax < self.smin as u64 {
            self.smin = self.umin as i64;
            self.umax = self.umax.min(self.smax as u64);
        } else if (self.smax as u64) < self.umin {
            self.smax = self.umax as i64;
            self.umin = self.umin.max(self.smin as u64);
        }
    }
    fn deduce_mixed(&mut self) {
        let new_umin = (self.umin & !0xffff_ffff) | self.u32_min as u64;
        let new_umax = (self.umax & !0xffff_ffff) | self.u32_max as u64;
        self.umin = self.umin.max(new_umin);
        self.umax = self.umax.min(new_umax);
        let new_smin = ((self.smin as u64 & !0xffff_ffff) | self.u32_min as u64) as i64;
        let new_smax = ((self.smax as u64 & !0xffff_ffff) | self.u32_max as u64) as i64;
        self.smin = self.smin.max(new_smin);
        self.smax = self.smax.min(new_smax);
        if self.s32_min >= 0 && self.smin >= i32::MIN as i64 && self.smax <= i32::MAX as i64 {
            self.smin = self.s32_min as i64;
            self.smax = self.s32_max as i64;
            self.umin = self.s32_min as u64;
            self.umax = self.s32_max as u64;
            self.var_off = self
                .var_off
                .intersect(Tnum::range(self.smin as u64, self.smax as u64));
        }
    }
    /// `__reg_deduce_bounds`.
    pub fn deduce(&mut self) {
        self.deduce32();
        self.deduce64();
        self.deduce_mixed();
    }
    /// `__reg_bound_offset`.
    fn bound_offset(&mut self) {
        let v64 = self.var_off.intersect(Tnum::range(self.umin, self.umax));
        let v32 = v64
            .subreg()
            .intersect(Tnum::range(self.u32_min as u64, self.u32_max as u64));
        self.var_off = v64.clear_subreg().or(v32);
    }
    /// `reg_bounds_sync`.
    pub fn sync(&mut self) {
        self.update();
        self.deduce();
        self.deduce();
        self.bound_offset();
        self.update();
    }
    /// True when the ranges contradict each other (a dead branch).
    pub fn is_inconsistent(&self) -> bool {
        self.umin > self.umax
            || self.smin > self.smax
            || self.u32_min > self.u32_max
            || self.s32_min > self.s32_max
            || self.var_off.value & self.var_off.mask != 0
    }
    /// `zext_32_to_64`.
    pub fn zext_32_to_64(&mut self) {
        self.var_off = self.var_off.subreg();
        self.umin = self.u32_min as u64;
        self.umax = self.u32_max as u64;
        if self.s32_min >= 0 && self.s32_max >= 0 {
            self.smin = self.s32_min as i64;
            self.smax = self.s32_max as i64;
        } else {
            self.smin = 0;
            self.smax = u32::MAX as i64;
        }
    }
    /// `range_within(old, cur)`: every value cur allows is allowed by self (old).
    pub fn range_within(&self, cur: &Bounds) -> bool {
        self.umin <= cur.umin
            && self.umax >= cur.umax
            && self.smin <= cur.smin
            && self.smax >= cur.smax
            && self.u32_min <= cur.u32_min
            && self.u32_max >= cur.u32_max
            && self.s32_min <= cur.s32_min
            && self.s32_max >= cur.s32_max
    }
}

/// Width in bits a scalar needs (`get_reg_width`).
pub fn reg_width(b: &Bounds) -> u32 {
    64 - b.umax.leading_zeros()
}

/// `is_safe_to_compute_dst_reg_range`.
fn safe_to_compute(op: u8, src: &Bounds, is64: bool) -> bool {
    let bits: u64 = if is64 { 64 } else { 32 };
    let src_const = if is64 {
        src.var_off.is_const() && src.smin == src.smax && src.umin == src.umax
    } else {
        src.var_off.subreg_is_const() && src.s32_min == src.s32_max && src.u32_min == src.u32_max
    };
    match op {
        BPF_ADD | BPF_SUB | BPF_NEG | BPF_AND | BPF_XOR | BPF_OR | BPF_MUL => true,
        BPF_LSH | BPF_RSH | BPF_ARSH => src_const && src.umax < bits,
        _ => false,
    }
}

fn add32(d: &mut Bounds, s: &Bounds) {
    match (
        d.s32_min.checked_add(s.s32_min),
        d.s32_max.checked_add(s.s32_max),
    ) {
        (Some(a), Some(b)) => {
            d.s32_min = a;
            d.s32_max = b;
        }
        _ => {
            d.s32_min = i32::MIN;
            d.s32_max = i32::MAX;
        }
    }
    match (
        d.u32_min.checked_add(s.u32_min),
        d.u32_max.checked_add(s.u32_max),
    ) {
        (Some(a), Some(b)) => {
            d.u32_min = a;
            d.u32_max = b;
        }
        _ => {
            d.u32_min = 0;
            d.u32_max = u32::MAX;
        }
    }
}
fn add64(d: &mut Bounds, s: &Bounds) {
    match (d.smin.checked_add(s.smin), d.smax.checked_add(s.smax)) {
        (Some(a), Some(b)) => {
            d.smin = a;
            d.smax = b;
        }
        _ => {
            d.smin = i64::MIN;
            d.smax = i64::MAX;
        }
    }
    match (d.umin.checked_add(s.umin), d.umax.checked_add(s.umax)) {
        (Some(a), Some(b)) => {
            d.umin = a;
            d.umax = b;
        }
        _ => {
            d.umin = 0;
            d.umax = u64::MAX;
        }
    }
}
fn sub32(d: &mut Bounds, s: &Bounds) {
    match (
        d.s32_min.checked_sub(s.s32_max),
        d.s32_max.checked_sub(s.s32_min),
    ) {
        (Some(a), Some(b)) => {
            d.s32_min = a;
            d.s32_max = b;
        }
        _ => {
            d.s32_min = i32::MIN;
            d.s32_max = i32::MAX;
        }
    }
    if d.u32_min < s.u32_max {
        d.u32_min = 0;
        d.u32_max = u32::MAX;
    } else {
        d.u32_min -= s.u32_max;
        d.u32_max -= s.u32_min;
    }
}
fn sub64(d: &mut Bounds, s: &Bounds) {
    match (d.smin.checked_sub(s.smax), d.smax.checked_sub(s.smin)) {
        (Some(a), Some(b)) => {
            d.smin = a;
            d.smax = b;
        }
        _ => {
            d.smin = i64::MIN;
            d.smax = i64::MAX;
        }
    }
    if d.umin < s.umax {
        d.umin = 0;
        d.umax = u64::MAX;
    } else {
        d.umin -= s.umax;
        d.umax -= s.umin;
    }
}
fn mul32(d: &mut Bounds, s: &Bounds) {
    match (
        d.u32_max.checked_mul(s.u32_max),
        d.u32_min.checked_mul(s.u32_min),
    ) {
        (Some(a), Some(b)) => {
            d.u32_max = a;
            d.u32_min = b;
        }
        _ => {
            d.u32_min = 0;
            d.u32_max = u32::MAX;
        }
    }
    let p = [
        d.s32_min.checked_mul(s.s32_min),
        d.s32_min.checked_mul(s.s32_max),
        d.s32_max.checked_mul(s.s32_min),
        d.s32_max.checked_mul(s.s32_max),
    ];
    if p.iter().any(|x| x.is_none()) {
        d.s32_min = i32::MIN;
        d.s32_max = i32::MAX;
    } else {
        let v: Vec<i32> = p.iter().map(|x| x.unwrap()).collect();
        d.s32_min = *v.iter().min().unwrap();
        d.s32_max = *v.iter().max().unwrap();
    }
}
fn mul64(d: &mut Bounds, s: &Bounds) {
    match (d.umax.checked_mul(s.umax), d.umin.checked_mul(s.umin)) {
        (Some(a), Some(b)) => {
            d.umax = a;
            d.umin = b;
        }
        _ => {
            d.umin = 0;
            d.umax = u64::MAX;
        }
    }
    let p = [
        d.smin.checked_mul(s.smin),
        d.smin.checked_mul(s.smax),
        d.smax.checked_mul(s.smin),
        d.smax.checked_mul(s.smax),
    ];
    if p.iter().any(|x| x.is_none()) {
        d.smin = i64::MIN;
        d.smax = i64::MAX;
    } else {
        let v: Vec<i64> = p.iter().map(|x| x.unwrap()).collect();
        d.smin = *v.iter().min().unwrap();
        d.smax = *v.iter().max().unwrap();
    }
}
fn and32(d: &mut Bounds, s: &Bounds) {
    let sk = s.var_off.subreg_is_const();
    let dk = d.var_off.subreg_is_const();
    let v32 = d.var_off.subreg();
    if sk && dk {
        d.mark_known32(v32.value as u32);
        return;
    }
    d.u32_min = v32.value as u32;
    d.u32_max = d.u32_max.min(s.u32_max);
    if (d.u32_min as i32) <= (d.u32_max as i32) {
        d.s32_min = d.u32_min as i32;
        d.s32_max = d.u32_max as i32;
    } else {
        d.s32_min = i32::MIN;
        d.s32_max = i32::MAX;
    }
}
fn and64(d: &mut Bounds, s: &Bounds) {
    if s.var_off.is_const() && d.var_off.is_const() {
        *d = Bounds::konst(d.var_off.value);
        return;
    }
    d.umin = d.var_off.value;
    d.umax = d.umax.min(s.umax);
    if (d.umin as i64) <= (d.umax as i64) {
        d.smin = d.umin as i64;
        d.smax = d.umax as i64;
    } else {
        d.smin = i64::MIN;
        d.smax = i64::MAX;
    }
    d.update();
}
fn or32(d: &mut Bounds, s: &Bounds) {
    let sk = s.var_off.subreg_is_const();
    let dk = d.var_off.subreg_is_const();
    let v32 = d.var_off.subreg();
    if sk && dk {
        d.mark_known32(v32.value as u32);
        return;
    }
    d.u32_min = d.u32_min.max(s.u32_min);
    d.u32_max = (v32.value | v32.mask) as u32;
    if (d.u32_min as i32) <= (d.u32_max as i32) {
        d.s32_min = d.u32_min as i32;
        d.s32_max = d.u32_max as i32;
    } else {
        d.s32_min = i32::MIN;
        d.s32_max = i32::MAX;
    }
}
fn or64(d: &mut Bounds, s: &Bounds) {
    if s.var_off.is_const() && d.var_off.is_const() {
        *d = Bounds::konst(d.var_off.value);
        return;
    }
    d.umin = d.umin.max(s.umin);
    d.umax = d.var_off.value | d.var_off.mask;
    if (d.umin as i64) <= (d.umax as i64) {
        d.smin = d.umin as i64;
        d.smax = d.umax as i64;
    } else {
        d.smin = i64::MIN;
        d.smax = i64::MAX;
    }
    d.update();
}
fn xor32(d: &mut Bounds, s: &Bounds) {
    let sk = s.var_off.subreg_is_const();
    let dk = d.var_off.subreg_is_const();
    let v32 = d.var_off.subreg();
    if sk && dk {
        d.mark_known32(v32.value as u32);
        return;
    }
    d.u32_min = v32.value as u32;
    d.u32_max = (v32.value | v32.mask) as u32;
    if (d.u32_min as i32) <= (d.u32_max as i32) {
        d.s32_min = d.u32_min as i32;
        d.s32_max = d.u32_max as i32;
    } else {
        d.s32_min = i32::MIN;
        d.s32_max = i32::MAX;
    }
}
fn xor64(d: &mut Bounds, s: &Bounds) {
    if s.var_off.is_const() && d.var_off.is_const() {
        *d = Bounds::konst(d.var_off.value);
        return;
    }
    d.umin = d.var_off.value;
    d.umax = d.var_off.value | d.var_off.mask;
    if (d.umin as i64) <= (d.umax as i64) {
        d.smin = d.umin as i64;
        d.smax = d.umax as i64;
    } else {
        d.smin = i64::MIN;
        d.smax = i64::MAX;
    }
    d.update();
}
fn lsh32_inner(d: &mut Bounds, umin: u64, umax: u64) {
    d.s32_min = i32::MIN;
    d.s32_max = i32::MAX;
    if umax > 31 || d.u32_max as u64 > 1u64 << (31 - umax) {
        d.u32_min = 0;
        d.u32_max = u32::MAX;
    } else {
        d.u32_min <<= umin;
        d.u32_max <<= umax;
    }
}
fn lsh64_inner(d: &mut Bounds, umin: u64, umax: u64) {
    d.smax = if umin == 32 && umax == 32 && d.s32_max >= 0 {
        (d.s32_max as i64) << 32
    } else {
        i64::MAX
    };
    d.smin = if umin == 32 && umax == 32 && d.s32_min >= 0 {
        (d.s32_min as i64) << 32
    } else {
        i64::MIN
    };
    if d.umax > 1u64 << (63 - umax) {
        d.umin = 0;
        d.umax = u64::MAX;
    } else {
        d.umin <<= umin;
        d.umax <<= umax;
    }
}

/// `adjust_scalar_min_max_vals`: `dst = dst OP src` on two scalars. `is64` is false
/// for the ALU (32-bit) class.
pub fn alu(op: u8, dst: &mut Bounds, src: &Bounds, is64: bool) {
    if !safe_to_compute(op, src, is64) {
        *dst = Bounds::unknown();
        return;
    }
    match op {
        BPF_ADD => {
            add32(dst, src);
            add64(dst, src);
            dst.var_off = dst.var_off.add(src.var_off);
        }
        BPF_SUB => {
            sub32(dst, src);
            sub64(dst, src);
            dst.var_off = dst.var_off.sub(src.var_off);
        }
        BPF_NEG => {
            let old = *dst;
            *dst = Bounds::konst(0);
            sub32(dst, &old);
            sub64(dst, &old);
            dst.var_off = old.var_off.neg();
        }
        BPF_MUL => {
            dst.var_off = dst.var_off.mul(src.var_off);
            mul32(dst, src);
            mul64(dst, src);
        }
        BPF_AND => {
            dst.var_off = dst.var_off.and(src.var_off);
            and32(dst, src);
            and64(dst, src);
        }
        BPF_OR => {
            dst.var_off = dst.var_off.or(src.var_off);
            or32(dst, src);
            or64(dst, src);
        }
        BPF_XOR => {
            dst.var_off = dst.var_off.xor(src.var_off);
            xor32(dst, src);
            xor64(dst, src);
        }
        BPF_LSH => {
            if is64 {
                let (umin, umax) = (src.umin, src.umax);
                lsh64_inner(dst, umin, umax);
                lsh32_inner(dst, umin, umax);
                dst.var_off = dst.var_off.lshift(umin as u32);
                dst.update();
            } else {
                let (umin, umax) = (src.u32_min as u64, src.u32_max as u64);
                let sub = dst.var_off.subreg();
                lsh32_inner(dst, umin, umax);
                dst.var_off = sub.lshift(umin as u32).subreg();
                dst.mark64_unbounded();
                dst.update32();
            }
        }
        BPF_RSH => {
            if is64 {
                let (umin, umax) = (src.umin, src.umax);
                dst.smin = i64::MIN;
                dst.smax = i64::MAX;
                dst.var_off = dst.var_off.rshift(umin as u32);
                dst.umin >>= umax;
                dst.umax >>= umin;
                dst.mark32_unbounded();
                dst.update();
            } else {
                let (umin, umax) = (src.u32_min, src.u32_max);
                let sub = dst.var_off.subreg();
                dst.s32_min = i32::MIN;
                dst.s32_max = i32::MAX;
                dst.var_off = sub.rshift(umin);
                dst.u32_min >>= umax;
                dst.u32_max >>= umin;
                dst.mark64_unbounded();
                dst.update32();
            }
        }
        BPF_ARSH => {
            if is64 {
                let s = src.umin as u32;
                dst.smin >>= s;
                dst.smax >>= s;
                dst.var_off = dst.var_off.arshift(s, 64);
                dst.umin = 0;
                dst.umax = u64::MAX;
                dst.mark32_unbounded();
                dst.update();
            } else {
                let s = src.u32_min;
                dst.s32_min >>= s;
                dst.s32_max >>= s;
                dst.var_off = dst.var_off.subreg().arshift(s, 32);
                dst.u32_min = 0;
                dst.u32_max = u32::MAX;
                dst.mark64_unbounded();
                dst.update32();
            }
        }
        _ => {
            *dst = Bounds::unknown();
            return;
        }
    }
    if !is64 {
        dst.zext_32_to_64();
    }
    dst.sync();
}

/// Exact result of `dst OP src` for constants, as the CPU computes it (used for
/// MOVSX and BPF_END only; everything else goes through [`alu`]).
pub fn flip_opcode(op: u8) -> u8 {
    match op {
        BPF_JGT => BPF_JLT,
        BPF_JLT => BPF_JGT,
        BPF_JGE => BPF_JLE,
        BPF_JLE => BPF_JGE,
        BPF_JSGT => BPF_JSLT,
        BPF_JSLT => BPF_JSGT,
        BPF_JSGE => BPF_JSLE,
        BPF_JSLE => BPF_JSGE,
        o => o,
    }
}

/// Pseudo opcode for "not JSET" (`BPF_JSET | BPF_X` in the kernel's `rev_opcode`).
pub const JSET_NOT: u8 = BPF_JSET | BPF_X;

pub fn rev_opcode(op: u8) -> u8 {
    match op {
        BPF_JEQ => BPF_JNE,
        BPF_JNE => BPF_JEQ,
        BPF_JSET => JSET_NOT,
        JSET_NOT => BPF_JSET,
        BPF_JGE => BPF_JLT,
        BPF_JLT => BPF_JGE,
        BPF_JGT => BPF_JLE,
        BPF_JLE => BPF_JGT,
        BPF_JSGE => BPF_JSLT,
        BPF_JSLT => BPF_JSGE,
        BPF_JSGT => BPF_JSLE,
        BPF_JSLE => BPF_JSGT,
        o => o,
    }
}

/// `is_scalar_branch_taken`: Some(true) always taken, Some(false) never, None unknown.
pub fn branch_taken(r1: &Bounds, r2: &Bounds, op: u8, is32: bool) -> Option<bool> {
    let (t1, t2) = if is32 {
        (r1.var_off.subreg(), r2.var_off.subreg())
    } else {
        (r1.var_off, r2.var_off)
    };
    let (umin1, umax1, smin1, smax1) = if is32 {
        (
            r1.u32_min as u64,
            r1.u32_max as u64,
            r1.s32_min as i64,
            r1.s32_max as i64,
        )
    } else {
        (r1.umin, r1.umax, r1.smin, r1.smax)
    };
    let (umin2, umax2, smin2, smax2) = if is32 {
        (
            r2.u32_min as u64,
            r2.u32_max as u64,
            r2.s32_min as i64,
            r2.s32_max as i64,
        )
    } else {
        (r2.umin, r2.umax, r2.smin, r2.smax)
    };
    let disjoint32 = |a: &Bounds, b: &Bounds| {
        a.u32_min > b.u32_max
            || a.u32_max < b.u32_min
            || a.s32_min > b.s32_max
            || a.s32_max < b.s32_min
    };
    // tnum_overlap (6.18): do the bits both sides know agree?
    let overlap = {
        let mu = !t1.mask & !t2.mask;
        (t1.value & mu) == (t2.value & mu)
    };
    match op {
        BPF_JEQ => {
            if t1.is_const() && t2.is_const() {
                return Some(t1.value == t2.value);
            }
            if !overlap {
                return Some(false);
            }
            if umin1 > umax2 || umax1 < umin2 || smin1 > smax2 || smax1 < smin2 {
                return Some(false);
            }
            if !is32 && disjoint32(r1, r2) {
                return Some(false);
            }
        }
        BPF_JNE => {
            if t1.is_const() && t2.is_const() {
                return Some(t1.value != t2.value);
            }
            if !overlap {
                return Some(true);
            }
            if umin1 > umax2 || umax1 < umin2 || smin1 > smax2 || smax1 < smin2 {
                return Some(true);
            }
            if !is32 && disjoint32(r1, r2) {
                return Some(true);
            }
        }
        BPF_JSET => {
            let (t1, r2c) = if r2.is_const_w(is32) {
                (t1, t2)
            } else if r1.is_const_w(is32) {
                (t2, t1)
            } else {
                return None;
            };
            if (!t1.mask & t1.value) & r2c.value != 0 {
                return Some(true);
            }
            if (t1.mask | t1.value) & r2c.value == 0 {
                return Some(false);
            }
        }
        BPF_JGT => {
            if umin1 > umax2 {
                return Some(true);
            } else if umax1 <= umin2 {
                return Some(false);
            }
        }
        BPF_JSGT => {
            if smin1 > smax2 {
                return Some(true);
            } else if smax1 <= smin2 {
                return Some(false);
            }
        }
        BPF_JLT => {
            if umax1 < umin2 {
                return Some(true);
            } else if umin1 >= umax2 {
                return Some(false);
            }
        }
        BPF_JSLT => {
            if smax1 < smin2 {
                return Some(true);
            } else if smin1 >= smax2 {
                return Some(false);
            }
        }
        BPF_JGE => {
            if umin1 >= umax2 {
                return Some(true);
            } else if umax1 < umin2 {
                return Some(false);
            }
        }
        BPF_JSGE => {
            if smin1 >= smax2 {
                return Some(true);
            } else if smax1 < smin2 {
                return Some(false);
            }
        }
        BPF_JLE => {
            if umax1 <= umin2 {
                return Some(true);
            } else if umin1 > umax2 {
                return Some(false);
            }
        }
        BPF_JSLE => {
            if smax1 <= smin2 {
                return Some(true);
            } else if smin1 > smax2 {
                return Some(false);
            }
        }
        _ => {}
    }
    None
}

/// `regs_refine_cond_op`: narrow r1/r2 assuming `r1 OP r2` holds.
pub fn refine(r1: &mut Bounds, r2: &mut Bounds, op: u8, is32: bool) {
    let (r1, r2, op) = match op {
        BPF_JGE | BPF_JGT | BPF_JSGE | BPF_JSGT => (r2, r1, flip_opcode(op)),
        _ => (r1, r2, op),
    };
    match op {
        BPF_JEQ => {
            if is32 {
                r1.u32_min = r1.u32_min.max(r2.u32_min);
                r1.u32_max = r1.u32_max.min(r2.u32_max);
                r1.s32_min = r1.s32_min.max(r2.s32_min);
                r1.s32_max = r1.s32_max.min(r2.s32_max);
                r2.u32_min = r1.u32_min;
                r2.u32_max = r1.u32_max;
                r2.s32_min = r1.s32_min;
                r2.s32_max = r1.s32_max;
                let t = r1.var_off.subreg().intersect(r2.var_off.subreg());
                r1.var_off = r1.var_off.with_subreg(t);
                r2.var_off = r2.var_off.with_subreg(t);
            } else {
                r1.umin = r1.umin.max(r2.umin);
                r1.umax = r1.umax.min(r2.umax);
                r1.smin = r1.smin.max(r2.smin);
                r1.smax = r1.smax.min(r2.smax);
                r2.umin = r1.umin;
                r2.umax = r1.umax;
                r2.smin = r1.smin;
                r2.smax = r1.smax;
                r1.var_off = r1.var_off.intersect(r2.var_off);
                r2.var_off = r1.var_off;
            }
        }
        BPF_JNE | BPF_JSET | JSET_NOT => {
            let (r1, r2) = if !r2.is_const_w(is32) {
                (r2, r1)
            } else {
                (r1, r2)
            };
            if !r2.is_const_w(is32) {
                return;
            }
            let val = r2.const_val(is32);
            match op {
                BPF_JNE => {
                    if is32 {
                        if r1.u32_min == val as u32 {
                            r1.u32_min = r1.u32_min.wrapping_add(1);
                        }
                        if r1.u32_max == val as u32 {
                            r1.u32_max = r1.u32_max.wrapping_sub(1);
                        }
                        if r1.s32_min == val as u32 as i32 {
                            r1.s32_min = r1.s32_min.wrapping_add(1);
                        }
                        if r1.s32_max == val as u32 as i32 {
                            r1.s32_max = r1.s32_max.wrapping_sub(1);
                        }
                    } else {
                        if r1.umin == val {
                            r1.umin = r1.umin.wrapping_add(1);
                        }
                        if r1.umax == val {
                            r1.umax = r1.umax.wrapping_sub(1);
                        }
                        if r1.smin == val as i64 {
                            r1.smin = r1.smin.wrapping_add(1);
                        }
                        if r1.smax == val as i64 {
                            r1.smax = r1.smax.wrapping_sub(1);
                        }
                    }
                }
                BPF_JSET => {
                    if !val.is_power_of_two() {
                        return;
                    }
                    if is32 {
                        let t = r1.var_off.subreg().or(Tnum::konst(val));
                        r1.var_off = r1.var_off.with_subreg(t);
                    } else {
                        r1.var_off = r1.var_off.or(Tnum::konst(val));
                    }
                }
                _ => {
                    r1.mark_unbounded();
                    if is32 {
                        let t = r1.var_off.subreg().and(Tnum::konst(!val));
                        r1.var_off = r1.var_off.with_subreg(t);
                    } else {
                        r1.var_off = r1.var_off.and(Tnum::konst(!val));
                    }
                }
            }
        }
        BPF_JLE => {
            if is32 {
                r1.u32_max = r1.u32_max.min(r2.u32_max);
                r2.u32_min = r1.u32_min.max(r2.u32_min);
            } else {
                r1.umax = r1.umax.min(r2.umax);
                r2.umin = r1.umin.max(r2.umin);
            }
        }
        BPF_JLT => {
            if is32 {
                r1.u32_max = r1.u32_max.min(r2.u32_max.wrapping_sub(1));
                r2.u32_min = r1.u32_min.wrapping_add(1).max(r2.u32_min);
            } else {
                r1.umax = r1.umax.min(r2.umax.wrapping_sub(1));
                r2.umin = r1.umin.wrapping_add(1).max(r2.umin);
            }
        }
        BPF_JSLE => {
            if is32 {
                r1.s32_max = r1.s32_max.min(r2.s32_max);
                r2.s32_min = r1.s32_min.max(r2.s32_min);
            } else {
                r1.smax = r1.smax.min(r2.smax);
                r2.smin = r1.smin.max(r2.smin);
            }
        }
        BPF_JSLT => {
            if is32 {
                r1.s32_max = r1.s32_max.min(r2.s32_max.wrapping_sub(1));
                r2.s32_min = r1.s32_min.wrapping_add(1).max(r2.s32_min);
            } else {
                r1.smax = r1.smax.min(r2.smax.wrapping_sub(1));
                r2.smin = r1.smin.wrapping_add(1).max(r2.smin);
            }
        }
        _ => {}
    }
}

/// Formats a scalar the way the kernel's verifier log does (`print_scalar_ranges`),
/// e.g. `scalar(smin=0,smax=umax=255,var_off=(0x0; 0xff))`, or just the value.
pub fn fmt_scalar(b: &Bounds) -> String {
    if b.is_const() {
        return format!("{}", b.var_off.value as i64);
    }
    let mut parts: Vec<String> = vec![];
    if b.smin != i64::MIN {
        parts.push(format!("smin={}", b.smin));
    }
    if b.smax != i64::MAX {
        parts.push(format!("smax={}", b.smax));
    }
    if b.umin != 0 {
        parts.push(format!("umin={}", b.umin));
    }
    if b.umax != u64::MAX {
        parts.push(format!("umax={}", b.umax));
    }
    if b.s32_min != i32::MIN {
        parts.push(format!("smin32={}", b.s32_min));
    }
    if b.s32_max != i32::MAX {
        parts.push(format!("smax32={}", b.s32_max));
    }
    if b.u32_min != 0 {
        parts.push(format!("umin32={}", b.u32_min));
    }
    if b.u32_max != u32::MAX {
        parts.push(format!("umax32={}", b.u32_max));
    }
    if !b.var_off.is_unknown() {
        parts.push(format!("var_off={}", b.var_off));
    }
    format!("scalar({})", parts.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(lo: u64, hi: u64) -> Bounds {
        let mut b = Bounds::unknown();
        b.umin = lo;
        b.umax = hi;
        b.sync();
        b
    }

    #[test]
    fn and_mask_bounds_value() {
        let mut d = Bounds::unknown();
        alu(BPF_AND, &mut d, &Bounds::konst(0xff), true);
        assert_eq!((d.umin, d.umax, d.smin, d.smax), (0, 255, 0, 255));
        assert_eq!(d.var_off, Tnum::new(0, 0xff));
    }

    #[test]
    fn add_of_ranges() {
        let mut d = range(0, 10);
        alu(BPF_ADD, &mut d, &range(5, 6), true);
        assert_eq!((d.umin, d.umax), (5, 16));
    }

    #[test]
    fn alu32_zero_extends() {
        let mut d = Bounds::konst(u64::MAX);
        alu(BPF_ADD, &mut d, &Bounds::konst(1), false);
        assert!(d.is_const());
        assert_eq!(d.var_off.value, 0);
    }

    #[test]
    fn refine_jgt_and_taken() {
        let mut a = Bounds::unknown();
        let mut k = Bounds::konst(10);
        // false branch of a > 10 is a <= 10
        refine(&mut a, &mut k, rev_opcode(BPF_JGT), false);
        a.sync();
        assert_eq!((a.umin, a.umax), (0, 10));
        assert_eq!(
            branch_taken(&a, &Bounds::konst(20), BPF_JGT, false),
            Some(false)
        );
        assert_eq!(branch_taken(&a, &Bounds::konst(5), BPF_JGT, false), None);
    }

    #[test]
    fn shifts() {
        let mut d = range(0, 255);
        alu(BPF_LSH, &mut d, &Bounds::konst(2), true);
        assert_eq!((d.umin, d.umax), (0, 1020));
        alu(BPF_RSH, &mut d, &Bounds::konst(2), true);
        assert_eq!((d.umin, d.umax), (0, 255));
    }
}
