//! Helper semantics beyond the common prototypes: `bpf_spin_lock`, timers, const
//! strings and `bpf_snprintf` formats, BTF-typed socket/task pointers, special map
//! value fields, `bpf_for_each_map_elem` callbacks (kernel/bpf/verifier.c
//! `process_spin_lock`, `process_timer_func`, `check_reg_const_str`,
//! `check_bpf_snprintf_call`, `set_map_elem_callback_state`, `set_timer_callback_state`).

use super::*;
use crate::btf_fields::MapFields;

/// What the special arguments of one helper call found.
#[derive(Default)]
pub(super) struct ExtArgs {
    /// Map of the timer argument (`meta->map_ptr` set by `process_timer_func`).
    pub timer_map: Option<usize>,
    /// `ref_obj_id` of the socket argument of a pointer-cast helper.
    pub cast_ref: u32,
    /// The dynptr argument, if any.
    pub dynptr: Option<super::dynptr::DynArg>,
}

/// `bpf_for_each_map_elem` callbacks are allowed on these map types.
fn for_each_ok(t: u32) -> bool {
    matches!(
        t,
        mt::HASH
            | mt::PERCPU_HASH
            | mt::LRU_HASH
            | mt::LRU_PERCPU_HASH
            | mt::ARRAY
            | mt::PERCPU_ARRAY
    )
}

impl V<'_> {
    /// The map's special fields, `None` when the caller did not give BTF information.
    pub(super) fn fields(&self, m: usize) -> Option<&MapFields> {
        self.opts.map_fields.as_ref()?.get(m)
    }

    /// `reg_may_point_to_spin_lock`: lookups of such values keep their id after the null
    /// check (it names the lock).
    pub(super) fn map_has_lock(&self, m: Option<usize>) -> bool {
        m.and_then(|m| self.fields(m))
            .is_some_and(|f| f.spin_lock.is_some())
    }

    /// `check_map_access`'s field check: loads and stores (and helper accesses) may not
    /// touch a `bpf_spin_lock` or `bpf_timer`.
    pub(super) fn check_map_fields(&self, st: &State, reg: &Reg, off: i32, size: i32) -> R<()> {
        let Some(m) = reg.map else { return Ok(()) };
        let Some(f) = self.fields(m) else {
            return Ok(());
        };
        if let Some(what) = &f.unmodelled {
            return Err(self.unsupported(format!(
                "access to a value of map `{}`, which has a {what}",
                self.maps[m].name
            )));
        }
        for (p, sz, name) in f.list() {
            let lo = reg.b.smin as i128 + off as i128;
            let hi = reg.b.umax as i128 + off as i128 + size as i128;
            if lo < (p + sz) as i128 && (p as i128) < hi {
                return Err(Self::hint(
                    self.err(st, format!("{name} cannot be accessed directly by load/store")),
                    format!("the `struct {name}` field at offset {p} may only be used through its helpers"),
                ));
            }
        }
        Ok(())
    }

    /// `do_check`: while a lock is held only `bpf_spin_unlock` may be called.
    pub(super) fn check_call_in_lock(&self, st: &State, func: i32) -> R<()> {
        if st.lock.is_some() && func != 94 {
            return Err(Self::hint(
                self.err(
                    st,
                    "function calls are not allowed while holding a lock".into(),
                ),
                "release the lock with bpf_spin_unlock() before calling helpers".into(),
            ));
        }
        Ok(())
    }

    /// `check_resource_leak` at the main program's exit.
    pub(super) fn check_exit_in_lock(&self, st: &State) -> R<()> {
        if st.curframe() == 0 && st.lock.is_some() {
            return Err(Self::hint(
                self.err(
                    st,
                    "BPF_EXIT instruction in main prog cannot be used inside bpf_spin_lock-ed region"
                        .into(),
                ),
                "every path must call bpf_spin_unlock() before returning".into(),
            ));
        }
        Ok(())
    }

    /// Arguments whose checks live here. Ok(true): handled (the caller goes on with the
    /// next argument).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn check_ext_arg(
        &mut self,
        st: &mut State,
        func: i32,
        a: Arg,
        regno: u8,
        reg: &Reg,
        map: Option<usize>,
        ext: &mut ExtArgs,
    ) -> R<bool> {
        if reg.ty.is_pkt()
            && !matches!(a, Arg::Anything | Arg::DontCare)
            && !helpers::PKT_ACCESS.contains(&(func as u32))
        {
            return Err(Self::hint(
                self.err(st, "helper access to the packet is not allowed".into()),
                format!(
                    "{} cannot read or write packet memory directly: copy the bytes to the stack first (or use bpf_xdp_load_bytes)",
                    helpers::name(func)
                ),
            ));
        }
        if matches!(reg.ty, RegType::BtfId(_) | RegType::BtfIdOrNull(_))
            && !matches!(
                a,
                Arg::Anything | Arg::DontCare | Arg::BtfIdTask { .. } | Arg::BtfIdCgroup { .. }
            )
        {
            return Err(self.unsupported(format!(
                "a BTF-typed pointer ({}) as argument {} of {}",
                reg.type_str(),
                regno,
                helpers::name(func)
            )));
        }
        match a {
            Arg::SpinLock => {
                if reg.ty != RegType::MapValue {
                    return Err(self.type_err(st, regno, reg, "map_value, ptr_"));
                }
                self.process_spin_lock(st, regno, reg, func == 93)?;
            }
            Arg::Timer => {
                if reg.ty != RegType::MapValue {
                    return Err(self.type_err(st, regno, reg, "map_value"));
                }
                ext.timer_map = Some(self.process_timer(st, regno, reg)?);
            }
            Arg::ConstMapPtr if ext.timer_map.is_some() => {
                if reg.ty != RegType::MapPtr {
                    return Err(self.type_err(st, regno, reg, "map_ptr"));
                }
                if reg.map != ext.timer_map {
                    return Err(self.err(
                        st,
                        format!(
                            "timer pointer in R1 map_uid=0 doesn't match map pointer in R{} map_uid=0",
                            regno
                        ),
                    ));
                }
                return Ok(false);
            }
            Arg::BtfIdSockCommon { btf } => {
                if reg.ty == RegType::XdpSock {
                    return Err(self.unsupported(format!(
                        "an XDP socket as an argument of {}",
                        helpers::name(func)
                    )));
                }
                if !matches!(reg.ty, RegType::Socket | RegType::SockCommon) {
                    let exp = if btf {
                        "sock_common, sock, tcp_sock, xdp_sock, ptr_, trusted_ptr_"
                    } else {
                        "sock_common, sock, tcp_sock, xdp_sock"
                    };
                    return Err(self.type_err(st, regno, reg, exp));
                }
                ext.cast_ref = reg.ref_obj_id;
            }
            Arg::BtfIdTask { or_null } | Arg::BtfIdCgroup { or_null } => {
                if or_null && reg.is_const_zero() {
                    return Ok(true);
                }
                let task = matches!(a, Arg::BtfIdTask { .. });
                match reg.ty {
                    RegType::BtfId(BtfObj::Task) if task => {}
                    RegType::BtfId(_) | RegType::BtfIdOrNull(_) => {
                        return Err(self.unsupported(format!(
                            "{} as a BTF-typed argument of {}",
                            reg.type_str(),
                            helpers::name(func)
                        )))
                    }
                    _ => return Err(self.type_err(st, regno, reg, "ptr_, trusted_ptr_, rcu_ptr_")),
                }
            }
            Arg::PercpuBtfId => {
                return Err(self.type_err(
                    st,
                    regno,
                    reg,
                    "percpu_ptr_, percpu_rcu_ptr_, percpu_trusted_ptr_",
                ));
            }
            Arg::KptrXchgDest => {
                if reg.ty != RegType::MapValue {
                    return Err(self.type_err(st, regno, reg, "map_value, ptr_"));
                }
                return Err(self.unsupported("bpf_kptr_xchg (kptr map value fields)"));
            }
            Arg::Dynptr => {
                if !matches!(reg.ty, RegType::Stack | RegType::ConstDynptr) {
                    return Err(self.type_err(st, regno, reg, "fp, dynptr_ptr"));
                }
                ext.dynptr = Some(self.dynptr_arg(st, func, regno, reg)?);
            }
            Arg::Func if func == 164 => {
                // set_map_elem_callback_state runs before the map/helper compatibility check
                if let Some(m) = map {
                    if !for_each_ok(self.maps[m].map_type) {
                        return Err(self.err(st, "callback function not allowed for map".into()));
                    }
                }
                return Ok(false);
            }
            Arg::ConstStr => self.check_const_str(st, regno, reg)?,
            Arg::MapValueOrNull => {
                if reg.is_const_zero() {
                    return Ok(true);
                }
                let Some(m) = map else {
                    return Err(self.err(st, "invalid map_ptr to access map->value".into()));
                };
                if !is_mem_type(reg.ty) {
                    return Err(self.type_err(st, regno, reg, MEM_TYPES));
                }
                let vs = self.maps[m].value_size as i64;
                self.check_helper_mem_access(st, regno, reg, vs, false, false)?;
            }
            Arg::FixedMem(sz) => {
                if !is_mem_type(reg.ty) {
                    return Err(self.type_err(st, regno, reg, MEM_TYPES));
                }
                self.check_helper_mem_access(st, regno, reg, sz as i64, false, false)?;
            }
            Arg::FixedMemWriteAligned(sz) => {
                if !is_mem_type(reg.ty) {
                    return Err(self.type_err(st, regno, reg, MEM_TYPES));
                }
                // MEM_WRITE without MEM_UNINIT: the kernel checks the bounds as a
                // write (check_stack_access_within_bounds(BPF_WRITE)), then that every
                // byte is initialised (only allow_uninit_stack lets uninitialised stack
                // through): `invalid read from stack R3 off -4+0 size 4`
                if reg.ty == RegType::Stack && reg.b.is_const() {
                    self.check_stack_access_within_bounds(
                        st, regno, reg, reg.off, sz as i32, true, true,
                    )?;
                    let min_off = reg.off + reg.b.var_off.value as i64 as i32;
                    self.grow_stack(st, reg.frameno as usize, min_off);
                }
                if reg.ty != RegType::MapValue {
                    self.check_helper_mem_access(st, regno, reg, sz as i64, false, false)?;
                }
                self.check_helper_mem_access(st, regno, reg, sz as i64, true, false)?;
                self.check_arg_alignment(st, reg, sz)?;
            }
            Arg::FixedUninitMemAligned(sz) => {
                if !is_mem_type(reg.ty) {
                    return Err(self.type_err(st, regno, reg, MEM_TYPES));
                }
                self.check_helper_mem_access(st, regno, reg, sz as i64, true, false)?;
                self.check_arg_alignment(st, reg, sz)?;
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// `check_ptr_alignment(..., strict=true)` for `MEM_ALIGNED` arguments.
    fn check_arg_alignment(&self, st: &State, reg: &Reg, size: u32) -> R<()> {
        let a = reg.b.var_off.add(Tnum::konst(reg.off as i64 as u64));
        if a.is_aligned(size as u64) {
            return Ok(());
        }
        let desc = match reg.ty {
            RegType::Stack => "stack ",
            RegType::MapValue => "value ",
            _ => return Err(self.unsupported("misaligned MEM_ALIGNED helper argument")),
        };
        let vo = if reg.b.is_const() {
            format!("{}", reg.b.var_off.value as i64)
        } else {
            reg.b.var_off.to_string()
        };
        Err(self.err(
            st,
            format!(
                "misaligned {}access off {}+{}+0 size {}",
                desc, vo, reg.off, size
            ),
        ))
    }

    fn lock_map<'m>(
        &'m self,
        st: &State,
        regno: u8,
        reg: &Reg,
        what: &str,
    ) -> R<(usize, &'m MapFields)> {
        if !reg.b.is_const() {
            return Err(self.err(
                st,
                format!(
                    "R{} doesn't have constant offset. {} has to be at the constant offset",
                    regno, what
                ),
            ));
        }
        let m = reg.map.expect("map value has a map");
        let Some(f) = self.fields(m) else {
            return Err(self.unsupported(format!(
                "{what} without the map value's BTF (pass the object's BTF in Options::map_fields)"
            )));
        };
        let name = self.maps[m].kernel_name();
        if !f.has_btf {
            return Err(self.err(
                st,
                format!("map '{}' has to have BTF in order to use {}", name, what),
            ));
        }
        if let Some(u) = &f.unmodelled {
            return Err(self.unsupported(format!("map value with a {u}")));
        }
        Ok((m, f))
    }

    /// `process_spin_lock`.
    fn process_spin_lock(&self, st: &mut State, regno: u8, reg: &Reg, is_lock: bool) -> R<()> {
        let (m, f) = self.lock_map(st, regno, reg, "bpf_spin_lock")?;
        let Some(lock_off) = f.spin_lock else {
            return Err(self.err(
                st,
                format!(
                    "map '{}' has no valid bpf_spin_lock",
                    self.maps[m].kernel_name()
                ),
            ));
        };
        let off = reg.b.var_off.value as i64 + reg.off as i64;
        if off != lock_off as i64 {
            return Err(self.err(
                st,
                format!(
                    "off {} doesn't point to 'struct bpf_spin_lock' that is at {}",
                    off, lock_off
                ),
            ));
        }
        if is_lock {
            if st.lock.is_some() {
                return Err(self.err(st, "Locking two bpf_spin_locks are not allowed".into()));
            }
            st.lock = Some((m, reg.id));
        } else {
            match st.lock {
                None => {
                    return Err(Self::hint(
                        self.err(st, "bpf_spin_unlock without taking a lock".into()),
                        "call bpf_spin_lock() on this lock first, on every path".into(),
                    ))
                }
                Some(l) if l != (m, reg.id) => {
                    return Err(self.err(st, "bpf_spin_unlock of different lock".into()))
                }
                Some(_) => st.lock = None,
            }
        }
        Ok(())
    }

    /// `process_timer_func`: returns the timer's map.
    fn process_timer(&self, st: &State, regno: u8, reg: &Reg) -> R<usize> {
        let (m, f) = self.lock_map(st, regno, reg, "bpf_timer")?;
        let Some(t_off) = f.timer else {
            return Err(self.err(
                st,
                format!(
                    "map '{}' has no valid bpf_timer",
                    self.maps[m].kernel_name()
                ),
            ));
        };
        let off = reg.b.var_off.value as i64 + reg.off as i64;
        if off != t_off as i64 {
            return Err(self.err(
                st,
                format!(
                    "off {} doesn't point to 'struct bpf_timer' that is at {}",
                    off, t_off
                ),
            ));
        }
        Ok(m)
    }

    /// The bytes of a frozen read-only map value (what `map_direct_value_addr` reads).
    fn frozen_bytes(&self, m: usize) -> Option<&[u8]> {
        let md = &self.maps[m];
        if md.map_flags & BPF_F_RDONLY_PROG == 0 {
            return None;
        }
        match &md.init {
            MapInit::Data(b) => Some(b),
            _ => None,
        }
    }

    /// `check_reg_const_str`.
    fn check_const_str(&self, st: &State, regno: u8, reg: &Reg) -> R<()> {
        if reg.ty != RegType::MapValue {
            return Err(self.type_err(st, regno, reg, "map_value"));
        }
        let m = reg.map.expect("map value has a map");
        let Some(bytes) = self.frozen_bytes(m) else {
            return Err(Self::hint(
                self.err(st, format!("R{} does not point to a readonly map'", regno)),
                "put the string in a `const` global (.rodata), which libbpf freezes".into(),
            ));
        };
        if !reg.b.is_const() {
            return Err(self.err(st, format!("R{} is not a constant address'", regno)));
        }
        let md = &self.maps[m];
        if md.map_type != mt::ARRAY {
            return Err(self.err(
                st,
                "no direct value access support for this map type".into(),
            ));
        }
        let vs = md.value_size as i64;
        self.check_mem_region_access(
            st,
            regno,
            reg,
            reg.off,
            (vs - reg.off as i64) as i32,
            vs,
            false,
        )?;
        self.check_map_fields(st, reg, reg.off, (vs - reg.off as i64) as i32)?;
        let map_off = reg.off as i64 + reg.b.var_off.value as i64;
        if md.max_entries != 1 || map_off >= vs || map_off < 0 {
            return Err(self.err(st, "direct value access on string failed".into()));
        }
        let s = &bytes[(map_off as usize).min(bytes.len())..];
        let window = (vs - map_off) as usize;
        // bytes past the initialised data are zero (the array value is zero-filled)
        if window > s.len() || s[..window].contains(&0) {
            return Ok(());
        }
        Err(self.err(st, "string is not zero-terminated".into()))
    }

    /// What happens after all arguments are checked: `bpf_snprintf` format checks,
    /// release of a ring buffer dynptr.
    pub(super) fn after_ext_args(&mut self, st: &mut State, func: i32, ext: &ExtArgs) -> R<()> {
        if func == 165 {
            self.check_snprintf(st)?;
        }
        if func == 197 && st.cur().regs[1].ty != RegType::MapValue {
            return Err(self.err(
                st,
                format!(
                    "Unsupported reg type {} for bpf_dynptr_from_mem data",
                    st.cur().regs[1].type_str()
                ),
            ));
        }
        if let Some(d) = ext.dynptr {
            if d.release {
                self.dynptr_release(st, d.ref_obj_id);
            }
        }
        Ok(())
    }

    /// `check_bpf_snprintf_call`: the format must be valid for the number of arguments.
    pub(super) fn check_snprintf(&self, st: &State) -> R<()> {
        let fmt_reg = &st.cur().regs[3];
        let len_reg = &st.cur().regs[5];
        let num_args = (len_reg.b.var_off.value / 8) as usize;
        let m = fmt_reg.map.expect("const str is a map value");
        let bytes = self.frozen_bytes(m).unwrap_or(&[]);
        let off = (fmt_reg.off as i64 + fmt_reg.b.var_off.value as i64) as usize;
        let s = bytes.get(off..).unwrap_or(&[]);
        let end = s.iter().position(|&c| c == 0).unwrap_or(s.len());
        if !bprintf_format_ok(&s[..end], num_args) {
            return Err(Self::hint(
                self.err(st, "Invalid format string".into()),
                format!(
                    "bpf_snprintf supports %d %i %u %x %X (with l/ll), %c, %s, %p[kK x s S B], %pI4/%pi4/%pI6/%pi6; the format needs exactly one u64 per conversion ({} given)",
                    num_args
                ),
            ));
        }
        Ok(())
    }

    /// Registers of a callback frame for `bpf_loop` / `bpf_for_each_map_elem`
    /// (`set_loop_callback_state`, `set_map_elem_callback_state`).
    pub(super) fn callback_regs(
        &mut self,
        st: &State,
        func: i32,
        f: &mut Frame,
        map: Option<usize>,
    ) -> R<()> {
        match func {
            164 => {
                let m = map.expect("for_each_map_elem has a map");
                if !for_each_ok(self.maps[m].map_type) {
                    return Err(self.err(st, "callback function not allowed for map".into()));
                }
                let mut r1 = Reg::ptr(RegType::MapPtr);
                r1.map = Some(m);
                let mut r2 = Reg::ptr(RegType::MapKey);
                r2.map = Some(m);
                r2.mem_size = self.maps[m].key_size;
                let mut r3 = Reg::ptr(RegType::MapValue);
                r3.map = Some(m);
                f.regs[1] = r1;
                f.regs[2] = r2;
                f.regs[3] = r3;
                f.regs[4] = st.cur().regs[3].clone();
            }
            181 => {
                f.regs[1] = Reg::unknown();
                f.regs[2] = st.cur().regs[3].clone();
            }
            180 => {
                // set_find_vma_callback_state: the task, the vma, the context
                f.regs[1] = st.cur().regs[1].clone();
                f.regs[2] = Reg::ptr(RegType::BtfId(BtfObj::Vma));
                f.regs[3] = st.cur().regs[4].clone();
            }
            209 => {
                // set_user_ringbuf_callback_state: a read-only local dynptr and the context
                let mut d = Reg::ptr(RegType::ConstDynptr);
                d.id = self.new_id();
                d.dynptr_id = super::dynptr::LOCAL;
                f.regs[1] = d;
                f.regs[2] = st.cur().regs[3].clone();
            }
            _ => {
                return Err(self.unsupported(format!(
                    "callbacks of {} (BTF-typed or dynptr callback arguments)",
                    helpers::name(func)
                )))
            }
        }
        Ok(())
    }

    /// `bpf_timer_set_callback`: the callback is verified later as its own program
    /// (`push_async_cb` + `set_timer_callback_state`): R1 the map, R2 the key, R3 the
    /// value; it must return 0.
    pub(super) fn push_timer_callback(&mut self, st: &State, target: usize, m: usize) -> R<()> {
        let mut f = Frame::new(0, self.idx, target);
        f.async_cb = true;
        let mut r1 = Reg::ptr(RegType::MapPtr);
        r1.map = Some(m);
        let mut r2 = Reg::ptr(RegType::MapKey);
        r2.map = Some(m);
        r2.mem_size = self.maps[m].key_size;
        let mut r3 = Reg::ptr(RegType::MapValue);
        r3.map = Some(m);
        if self.map_has_lock(Some(m)) {
            r3.id = self.new_id();
        }
        f.regs[1] = r1;
        f.regs[2] = r2;
        f.regs[3] = r3;
        let cb = State {
            frames: vec![f],
            refs: vec![],
            parent: None,
            path: st.path.clone(),
            hist: vec![],
            lock: None,
            cb_unroll: 0,
            may_goto_depth: 0,
            speculative: false,
        };
        self.pending.push((cb, target));
        Ok(())
    }

    /// Exit of an asynchronous callback: R0 must be the constant 0.
    pub(super) fn check_async_exit(&mut self, st: &mut State) -> R<()> {
        self.check_reg_read(st, 0)?;
        let r0 = st.cur().regs[0].clone();
        if !r0.is_scalar() {
            return Err(self.err(
                st,
                format!(
                    "At async callback return the register R0 is not a known value ({})",
                    r0.type_str()
                ),
            ));
        }
        self.mark_precise(st, 1, vec![]);
        if r0.b.smin != 0 || r0.b.smax != 0 {
            return Err(self.err_regs(
                st,
                format!(
                    "At async callback return the register R0 has{} should have been in [0, 0]",
                    smin_smax(&r0.b)
                ),
                &[0],
            ));
        }
        Ok(())
    }
}

/// `verbose_invalid_scalar`'s value part.
pub(super) fn smin_smax(b: &Bounds) -> String {
    let mut s = String::new();
    if b.smin > i64::MIN {
        s.push_str(&format!(" smin={}", b.smin));
    }
    if b.smax < i64::MAX {
        s.push_str(&format!(" smax={}", b.smax));
    }
    if s.is_empty() {
        s.push_str(" unknown scalar value");
    }
    s
}

/// `bpf_bprintf_prepare` in verification mode (no arguments copied): is `fmt` (the
/// bytes before the terminating zero) a valid format for `num_args` arguments?
pub fn bprintf_format_ok(fmt: &[u8], num_args: usize) -> bool {
    let n = fmt.len();
    let at = |i: usize| -> u8 { fmt.get(i).copied().unwrap_or(0) };
    let isspace = |c: u8| matches!(c, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r');
    let isprint = |c: u8| (0x20..0x7f).contains(&c);
    let ispunct = |c: u8| c.is_ascii_punctuation();
    let mut num_spec = 0usize;
    let mut i = 0usize;
    while i < n {
        let c = fmt[i];
        if (!isprint(c) && !isspace(c)) || !c.is_ascii() {
            return false;
        }
        if c != b'%' {
            i += 1;
            continue;
        }
        if at(i + 1) == b'%' {
            i += 2;
            continue;
        }
        if num_spec >= num_args {
            return false;
        }
        i += 1;
        while matches!(at(i), b'0' | b'+' | b'-' | b' ') {
            i += 1;
        }
        if (b'1'..=b'9').contains(&at(i)) {
            i += 1;
            while at(i).is_ascii_digit() {
                i += 1;
            }
        }
        let str_ok = |j: usize| at(j + 1) == 0 || isspace(at(j + 1)) || ispunct(at(j + 1));
        if at(i) == b'p' {
            if matches!(at(i + 1), b'k' | b'u') && at(i + 2) == b's' {
                i += 2;
                if !str_ok(i) {
                    return false;
                }
            } else if at(i + 1) == 0
                || isspace(at(i + 1))
                || ispunct(at(i + 1))
                || matches!(at(i + 1), b'K' | b'x' | b's' | b'S' | b'B')
            {
                i += 1;
            } else {
                if !matches!(at(i + 1), b'i' | b'I') || !matches!(at(i + 2), b'4' | b'6') {
                    return false;
                }
                i += 2;
            }
        } else if at(i) == b's' {
            if !str_ok(i) {
                return false;
            }
        } else if at(i) != b'c' {
            if at(i) == b'l' {
                i += 1;
            }
            if at(i) == b'l' {
                i += 1;
            }
            if !matches!(at(i), b'i' | b'd' | b'u' | b'x' | b'X') {
                return false;
            }
        }
        num_spec += 1;
        i += 1;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::bprintf_format_ok as ok;

    #[test]
    fn formats_like_bpf_bprintf_prepare() {
        assert!(ok(b"len %llu proto 0x%x", 2));
        assert!(!ok(b"len %llu proto 0x%x", 1));
        assert!(ok(b"100%% sure", 0));
        assert!(ok(b"%pI4 -> %pi6", 2));
        assert!(!ok(b"%pI5", 1));
        assert!(ok(b"%s.", 1));
        assert!(!ok(b"%sx", 1));
        assert!(ok(b"%pks and %pus", 2));
        assert!(ok(b"%-08lx|%c", 2));
        assert!(!ok(b"%f", 1));
        assert!(!ok(b"%hd", 1));
        assert!(!ok(b"tab\x01", 0));
        assert!(ok(b"%pK %px %pB", 3));
    }
}
