//! A minimal BTF blob for the test harness: map value types with `struct bpf_spin_lock`
//! / `struct bpf_timer` fields at given offsets, and one `FUNC` per sub-program so that
//! programs with callbacks can be given `func_info` (the kernel demands it).

#![allow(dead_code)]

/// Special fields of one map value: (offset of a bpf_spin_lock, offset of a bpf_timer).
#[derive(Clone, Copy, Default, Debug)]
pub struct ValueFields {
    pub lock: Option<u32>,
    pub timer: Option<u32>,
}

pub struct Blob {
    pub bytes: Vec<u8>,
    /// Per map: (key type id, value type id), 0 for maps without BTF.
    pub map_types: Vec<(u32, u32)>,
    /// Type id of the FUNC of each sub-program.
    pub funcs: Vec<u32>,
}

struct B {
    types: Vec<u8>,
    strs: Vec<u8>,
    next: u32,
}

impl B {
    fn s(&mut self, name: &str) -> u32 {
        if name.is_empty() {
            return 0;
        }
        let off = self.strs.len() as u32;
        self.strs.extend_from_slice(name.as_bytes());
        self.strs.push(0);
        off
    }
    fn u32(&mut self, v: u32) {
        self.types.extend_from_slice(&v.to_le_bytes());
    }
    fn head(&mut self, name: &str, kind: u32, vlen: u32, size_or_type: u32) -> u32 {
        let n = self.s(name);
        self.u32(n);
        self.u32((kind << 24) | vlen);
        self.u32(size_or_type);
        self.next += 1;
        self.next - 1
    }
    fn int(&mut self, name: &str, size: u32, signed: bool) -> u32 {
        let id = self.head(name, 1, 0, size);
        self.u32(((signed as u32) << 24) | (size * 8));
        id
    }
    fn array(&mut self, elem: u32, index: u32, n: u32) -> u32 {
        let id = self.head("", 3, 0, 0);
        self.u32(elem);
        self.u32(index);
        self.u32(n);
        id
    }
    fn strukt(&mut self, name: &str, size: u32, members: &[(&str, u32, u32)]) -> u32 {
        let id = self.head(name, 4, members.len() as u32, size);
        for &(mn, ty, off) in members {
            let n = self.s(mn);
            self.u32(n);
            self.u32(ty);
            self.u32(off * 8);
        }
        id
    }
}

/// Builds the blob for `maps` ((key_size, value_size, fields or None for no BTF)) and
/// `nfuncs` sub-programs.
pub fn build(maps: &[(u32, u32, Option<ValueFields>)], nfuncs: usize) -> Blob {
    let mut b = B {
        types: vec![],
        strs: vec![0],
        next: 1,
    };
    let int = b.int("int", 4, true);
    let u8t = b.int("unsigned char", 1, false);
    let u64t = b.int("long long unsigned int", 8, false);
    let lock = b.strukt("bpf_spin_lock", 4, &[("val", int, 0)]);
    let opaque = b.array(u64t, int, 2);
    let timer = b.strukt("bpf_timer", 16, &[("__opaque", opaque, 0)]);
    let proto = b.head("", 13, 0, int);
    let mut funcs = vec![];
    for k in 0..nfuncs {
        funcs.push(b.head(&format!("f{k}"), 12, 0, proto));
    }
    let mut map_types = vec![];
    for (i, (ks, vs, f)) in maps.iter().enumerate() {
        let Some(f) = f else {
            map_types.push((0, 0));
            continue;
        };
        // array maps demand a 4-byte INT key
        let key = match ks {
            4 => int,
            8 => u64t,
            _ => b.array(u8t, int, *ks),
        };
        let mut members: Vec<(&str, u32, u32)> = vec![];
        if let Some(o) = f.lock {
            members.push(("lock", lock, o));
        }
        if let Some(o) = f.timer {
            members.push(("timer", timer, o));
        }
        let name = format!("val{i}");
        let val = b.strukt(&name, *vs, &members);
        map_types.push((key, val));
    }
    let mut bytes = vec![];
    bytes.extend_from_slice(&0xeb9fu16.to_le_bytes());
    bytes.push(1);
    bytes.push(0);
    bytes.extend_from_slice(&24u32.to_le_bytes());
    bytes.extend_from_slice(&0u32.to_le_bytes());
    bytes.extend_from_slice(&(b.types.len() as u32).to_le_bytes());
    bytes.extend_from_slice(&(b.types.len() as u32).to_le_bytes());
    bytes.extend_from_slice(&(b.strs.len() as u32).to_le_bytes());
    bytes.extend_from_slice(&b.types);
    bytes.extend_from_slice(&b.strs);
    Blob {
        bytes,
        map_types,
        funcs,
    }
}
