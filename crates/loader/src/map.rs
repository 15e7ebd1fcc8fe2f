//! Maps: `BPF_MAP_CREATE` and the element commands.

use crate::error::{Error, Result};
use crate::sys::{self, BpfMapInfo, InfoAttr, MapCreateAttr, MapElemAttr, MapFdAttr};
use bpfkit_object::model::{map_type, MapDef};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// `BPF_ANY`: create or update.
pub const BPF_ANY: u64 = 0;
/// `BPF_NOEXIST`: create only.
pub const BPF_NOEXIST: u64 = 1;
/// `BPF_EXIST`: update only.
pub const BPF_EXIST: u64 = 2;

/// `BPF_F_RDONLY_PROG` map flag.
pub const BPF_F_RDONLY_PROG: u32 = 1 << 7;
/// `BPF_F_MMAPABLE` map flag.
pub const BPF_F_MMAPABLE: u32 = 1 << 10;

/// What `BPF_MAP_CREATE` needs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MapSpec {
    pub name: String,
    pub map_type: u32,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
    pub map_flags: u32,
}

impl From<&MapDef> for MapSpec {
    fn from(d: &MapDef) -> Self {
        MapSpec {
            name: d.name.clone(),
            map_type: d.map_type,
            key_size: d.key_size,
            value_size: d.value_size,
            max_entries: d.max_entries,
            map_flags: d.map_flags,
        }
    }
}

/// True for the map types whose syscall-side values hold one value per possible CPU.
pub fn is_per_cpu(t: u32) -> bool {
    matches!(
        t,
        map_type::PERCPU_HASH
            | map_type::PERCPU_ARRAY
            | map_type::LRU_PERCPU_HASH
            | map_type::PERCPU_CGROUP_STORAGE
    )
}

/// Number of possible CPUs (`/sys/devices/system/cpu/possible`), as the kernel sizes
/// per-CPU values.
pub fn possible_cpus() -> Result<usize> {
    let path = "/sys/devices/system/cpu/possible";
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::Invalid(format!("cannot read {path}: {e}")))?;
    parse_cpu_list(text.trim())
        .ok_or_else(|| Error::Invalid(format!("{path}: cannot parse CPU list {:?}", text.trim())))
}

/// Parses a kernel CPU list like `0-3,5,7-8` into the highest CPU + 1.
pub fn parse_cpu_list(s: &str) -> Option<usize> {
    let mut max = None;
    for part in s.split(',') {
        let hi = match part.split_once('-') {
            Some((a, b)) => {
                a.trim().parse::<usize>().ok()?;
                b.trim().parse::<usize>().ok()?
            }
            None => part.trim().parse::<usize>().ok()?,
        };
        max = Some(max.map_or(hi, |m: usize| m.max(hi)));
    }
    max.map(|m| m + 1)
}

/// A kernel map, closed on drop.
#[derive(Debug)]
pub struct Map {
    fd: OwnedFd,
    spec: MapSpec,
    /// Bytes of a value as the syscall side sees it (per-CPU: rounded up to 8, times
    /// the number of possible CPUs).
    value_len: usize,
}

impl Map {
    /// `BPF_MAP_CREATE`. `inner_map` is the template for map-in-map types.
    pub fn create(spec: &MapSpec, inner_map: Option<BorrowedFd<'_>>) -> Result<Map> {
        let mut attr = MapCreateAttr {
            map_type: spec.map_type,
            key_size: spec.key_size,
            value_size: spec.value_size,
            max_entries: spec.max_entries,
            map_flags: spec.map_flags,
            inner_map_fd: inner_map.map_or(0, |f| f.as_raw_fd() as u32),
            map_name: sys::obj_name(&spec.name),
            ..Default::default()
        };
        // SAFETY: MapCreateAttr carries no pointers.
        let fd = unsafe { sys::sys_bpf(sys::BPF_MAP_CREATE, &mut attr) }.map_err(|e| {
            Error::sys(
                sys::BPF_MAP_CREATE,
                format!(
                    "map `{}`: type {} key {} value {} entries {} flags {:#x}",
                    spec.name,
                    map_type::name(spec.map_type).unwrap_or("?"),
                    spec.key_size,
                    spec.value_size,
                    spec.max_entries,
                    spec.map_flags
                ),
                e,
            )
        })?;
        // SAFETY: the kernel just returned this fd to us; nobody else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
        let value_len = if is_per_cpu(spec.map_type) {
            (spec.value_size as usize).div_ceil(8) * 8 * possible_cpus()?
        } else {
            spec.value_size as usize
        };
        Ok(Map {
            fd,
            spec: spec.clone(),
            value_len,
        })
    }

    /// Wraps a map fd obtained elsewhere (`BPF_MAP_CREATE` with BTF in
    /// [`crate::object_load`], `BPF_OBJ_GET` of a pin, `BPF_MAP_GET_FD_BY_ID`).
    pub fn from_fd(fd: OwnedFd, spec: MapSpec) -> Result<Map> {
        let value_len = if is_per_cpu(spec.map_type) {
            (spec.value_size as usize).div_ceil(8) * 8 * possible_cpus()?
        } else {
            spec.value_size as usize
        };
        Ok(Map {
            fd,
            spec,
            value_len,
        })
    }

    pub fn spec(&self) -> &MapSpec {
        &self.spec
    }

    pub fn name(&self) -> &str {
        &self.spec.name
    }

    /// Length of a value buffer for lookup/update (per-CPU maps: all CPUs).
    pub fn value_len(&self) -> usize {
        self.value_len
    }

    fn check_key(&self, key: &[u8]) -> Result<()> {
        if key.len() != self.spec.key_size as usize {
            return Err(Error::Invalid(format!(
                "map `{}`: key is {} bytes, the map's key_size is {}",
                self.spec.name,
                key.len(),
                self.spec.key_size
            )));
        }
        Ok(())
    }

    fn what(&self, key: &[u8]) -> String {
        format!("map `{}`, key {}", self.spec.name, hex(key))
    }

    /// `BPF_MAP_LOOKUP_ELEM`; `None` when the key is absent.
    pub fn lookup(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.check_key(key)?;
        let mut value = vec![0u8; self.value_len];
        let mut attr = MapElemAttr {
            map_fd: self.fd.as_raw_fd() as u32,
            key: key.as_ptr() as u64,
            value: value.as_mut_ptr() as u64,
            ..Default::default()
        };
        // SAFETY: key points to key_size readable bytes, value to value_len writable
        // bytes, the size the kernel writes for this map; both outlive the call.
        match unsafe { sys::sys_bpf(sys::BPF_MAP_LOOKUP_ELEM, &mut attr) } {
            Ok(_) => Ok(Some(value)),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
            Err(e) => Err(Error::sys(sys::BPF_MAP_LOOKUP_ELEM, self.what(key), e)),
        }
    }

    /// `BPF_MAP_UPDATE_ELEM` with `flags` (`BPF_ANY`, `BPF_NOEXIST`, `BPF_EXIST`).
    pub fn update(&self, key: &[u8], value: &[u8], flags: u64) -> Result<()> {
        self.check_key(key)?;
        if value.len() != self.value_len {
            return Err(Error::Invalid(format!(
                "map `{}`: value is {} bytes, expected {}{}",
                self.spec.name,
                value.len(),
                self.value_len,
                if is_per_cpu(self.spec.map_type) {
                    " (one 8-byte-aligned value per CPU)"
                } else {
                    ""
                }
            )));
        }
        let mut attr = MapElemAttr {
            map_fd: self.fd.as_raw_fd() as u32,
            key: key.as_ptr() as u64,
            value: value.as_ptr() as u64,
            flags,
            ..Default::default()
        };
        // SAFETY: key and value point to buffers of the sizes the kernel reads for this
        // map (checked above); both outlive the call.
        unsafe { sys::sys_bpf(sys::BPF_MAP_UPDATE_ELEM, &mut attr) }
            .map_err(|e| Error::sys(sys::BPF_MAP_UPDATE_ELEM, self.what(key), e))?;
        Ok(())
    }

    /// `BPF_MAP_DELETE_ELEM`; `false` when the key was absent.
    pub fn delete(&self, key: &[u8]) -> Result<bool> {
        self.check_key(key)?;
        let mut attr = MapElemAttr {
            map_fd: self.fd.as_raw_fd() as u32,
            key: key.as_ptr() as u64,
            ..Default::default()
        };
        // SAFETY: key points to key_size readable bytes that outlive the call.
        match unsafe { sys::sys_bpf(sys::BPF_MAP_DELETE_ELEM, &mut attr) } {
            Ok(_) => Ok(true),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(false),
            Err(e) => Err(Error::sys(sys::BPF_MAP_DELETE_ELEM, self.what(key), e)),
        }
    }

    /// `BPF_MAP_GET_NEXT_KEY`: the key after `key` (the first key for `None`), or `None`
    /// at the end.
    pub fn next_key(&self, key: Option<&[u8]>) -> Result<Option<Vec<u8>>> {
        if let Some(k) = key {
            self.check_key(k)?;
        }
        let mut next = vec![0u8; self.spec.key_size as usize];
        let mut attr = MapElemAttr {
            map_fd: self.fd.as_raw_fd() as u32,
            key: key.map_or(0, |k| k.as_ptr() as u64),
            value: next.as_mut_ptr() as u64,
            ..Default::default()
        };
        // SAFETY: key is null or key_size readable bytes; next is key_size writable bytes.
        match unsafe { sys::sys_bpf(sys::BPF_MAP_GET_NEXT_KEY, &mut attr) } {
            Ok(_) => Ok(Some(next)),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
            Err(e) => Err(Error::sys(
                sys::BPF_MAP_GET_NEXT_KEY,
                match key {
                    Some(k) => self.what(k),
                    None => format!("map `{}`, first key", self.spec.name),
                },
                e,
            )),
        }
    }

    /// Every key, in the kernel's iteration order.
    pub fn keys(&self) -> Result<Vec<Vec<u8>>> {
        let mut keys = Vec::new();
        let mut cur: Option<Vec<u8>> = None;
        // Bound the walk: a hash map being changed concurrently could restart.
        let limit = self.spec.max_entries as usize + 1;
        while let Some(k) = self.next_key(cur.as_deref())? {
            keys.push(k.clone());
            if keys.len() > limit {
                return Err(Error::Invalid(format!(
                    "map `{}`: key walk did not end after {} keys",
                    self.spec.name, limit
                )));
            }
            cur = Some(k);
        }
        Ok(keys)
    }

    /// All entries, sorted by key bytes.
    pub fn entries(&self) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut out = Vec::new();
        for k in self.keys()? {
            // An entry deleted between the walk and the lookup is skipped.
            if let Some(v) = self.lookup(&k)? {
                out.push((k, v));
            }
        }
        out.sort();
        Ok(out)
    }

    /// `BPF_MAP_FREEZE`: no more changes from the syscall side.
    pub fn freeze(&self) -> Result<()> {
        let mut attr = MapFdAttr {
            map_fd: self.fd.as_raw_fd() as u32,
        };
        // SAFETY: MapFdAttr carries no pointers.
        unsafe { sys::sys_bpf(sys::BPF_MAP_FREEZE, &mut attr) }
            .map_err(|e| Error::sys(sys::BPF_MAP_FREEZE, format!("map `{}`", self.spec.name), e))?;
        Ok(())
    }

    /// `BPF_OBJ_GET_INFO_BY_FD`.
    pub fn info(&self) -> Result<MapInfo> {
        let mut info = BpfMapInfo::default();
        let mut attr = InfoAttr {
            bpf_fd: self.fd.as_raw_fd() as u32,
            info_len: std::mem::size_of::<BpfMapInfo>() as u32,
            info: &mut info as *mut BpfMapInfo as u64,
        };
        // SAFETY: info points to a writable BpfMapInfo of info_len bytes.
        unsafe { sys::sys_bpf(sys::BPF_OBJ_GET_INFO_BY_FD, &mut attr) }.map_err(|e| {
            Error::sys(
                sys::BPF_OBJ_GET_INFO_BY_FD,
                format!("map `{}`", self.spec.name),
                e,
            )
        })?;
        Ok(MapInfo {
            id: info.id,
            name: sys::name_str(&info.name),
            map_type: info.map_type,
            key_size: info.key_size,
            value_size: info.value_size,
            max_entries: info.max_entries,
            map_flags: info.map_flags,
            btf_id: info.btf_id,
            btf_key_type_id: info.btf_key_type_id,
            btf_value_type_id: info.btf_value_type_id,
        })
    }
}

impl AsFd for Map {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// What the kernel reports about a map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapInfo {
    pub id: u32,
    pub name: String,
    pub map_type: u32,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
    pub map_flags: u32,
    /// The map's BTF object (0: none) and its key and value types in it.
    pub btf_id: u32,
    pub btf_key_type_id: u32,
    pub btf_value_type_id: u32,
}

pub(crate) fn hex(b: &[u8]) -> String {
    if b.is_empty() {
        return "<empty>".into();
    }
    b.iter()
        .map(|x| format!("{x:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists() {
        assert_eq!(parse_cpu_list("0"), Some(1));
        assert_eq!(parse_cpu_list("0-1"), Some(2));
        assert_eq!(parse_cpu_list("0-3,5,7-8"), Some(9));
        assert_eq!(parse_cpu_list("x"), None);
        assert_eq!(parse_cpu_list(""), None);
    }
}
