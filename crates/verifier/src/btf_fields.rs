//! Special fields of map values, found in the map value's BTF the way the kernel's
//! `btf_parse_fields` finds them (`struct bpf_spin_lock`, `struct bpf_timer`, ...).
//! The verifier needs them for `bpf_spin_lock`, timers, and to refuse direct loads and
//! stores that touch them.

use bpfkit_object::btf::{Btf, BtfKind};
use bpfkit_object::model::MapDef;
use serde::Serialize;

/// What the kernel's `struct btf_record` of one map says, as far as bpfkit models it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct MapFields {
    /// The map is created with BTF for its value (`map->btf`).
    pub has_btf: bool,
    /// Offset of the `struct bpf_spin_lock` field.
    pub spin_lock: Option<u32>,
    /// Offset of the `struct bpf_timer` field.
    pub timer: Option<u32>,
    /// The value has special fields bpfkit does not model (kptrs, `bpf_list_head`,
    /// `bpf_rb_root`, `bpf_wq`, `bpf_refcount`, `bpf_res_spin_lock`, nested or repeated
    /// locks/timers): programs touching such values are reported as undecided.
    pub unmodelled: Option<String>,
}

/// `sizeof(struct bpf_spin_lock)`, `sizeof(struct bpf_timer)`.
pub const SPIN_LOCK_SIZE: u32 = 4;
pub const TIMER_SIZE: u32 = 16;

const UNMODELLED_STRUCTS: &[&str] = &[
    "bpf_list_head",
    "bpf_list_node",
    "bpf_rb_root",
    "bpf_rb_node",
    "bpf_wq",
    "bpf_refcount",
    "bpf_res_spin_lock",
    "bpf_task_work",
    "bpf_workqueue",
];

impl MapFields {
    /// Special fields as (offset, size, kernel name), for the load/store overlap check.
    pub fn list(&self) -> Vec<(u32, u32, &'static str)> {
        let mut v = vec![];
        if let Some(o) = self.spin_lock {
            v.push((o, SPIN_LOCK_SIZE, "bpf_spin_lock"));
        }
        if let Some(o) = self.timer {
            v.push((o, TIMER_SIZE, "bpf_timer"));
        }
        v
    }
}

/// Fields of every map of an object (`btf` is the object's `.BTF`; maps without a BTF
/// value type get `has_btf == false`).
pub fn from_btf(btf: Option<&Btf>, maps: &[MapDef]) -> Vec<MapFields> {
    maps.iter()
        .map(|m| match btf {
            Some(b) if m.btf_value_type_id != 0 => value_fields(b, m.btf_value_type_id),
            _ => MapFields::default(),
        })
        .collect()
}

/// Fields of one map value type.
pub fn value_fields(btf: &Btf, value_type_id: u32) -> MapFields {
    let mut f = MapFields {
        has_btf: true,
        ..Default::default()
    };
    let Some(id) = btf.skip_mods_and_typedefs(value_type_id) else {
        return f;
    };
    let Some(t) = btf.get(id) else { return f };
    if let BtfKind::Datasec { vars, .. } = &t.kind {
        // global data (.bss/.data): the kernel looks for fields in every variable
        for v in vars {
            let Some(vt) = btf.get(v.type_id).and_then(|t| t.ref_type()) else {
                continue;
            };
            let Some(vid) = btf.skip_mods_and_typedefs(vt) else {
                continue;
            };
            if let Some(n) = special_name(btf, vid) {
                note(&mut f, n, v.offset, true);
            } else {
                scan_nested(btf, vid, &mut f, 0);
                if is_tagged_pointer(btf, vt) {
                    f.unmodelled
                        .get_or_insert_with(|| "kptr global variable".to_string());
                }
            }
        }
        return f;
    }
    let members = match &t.kind {
        BtfKind::Struct { members, .. } | BtfKind::Union { members, .. } => members,
        _ => {
            // a value that is itself a lock or timer
            if let Some(n) = special_name(btf, id) {
                note(&mut f, n, 0, true);
            }
            return f;
        }
    };
    for m in members {
        let off = m.bit_offset / 8;
        let Some(mid) = btf.skip_mods_and_typedefs(m.type_id) else {
            continue;
        };
        if let Some(n) = special_name(btf, mid) {
            note(&mut f, n, off, true);
            continue;
        }
        scan_nested(btf, mid, &mut f, 0);
        if is_tagged_pointer(btf, m.type_id) {
            f.unmodelled
                .get_or_insert_with(|| format!("kptr field `{}`", m.name));
        }
    }
    f
}

fn note(f: &mut MapFields, name: &str, off: u32, top: bool) {
    let slot = match name {
        "bpf_spin_lock" => &mut f.spin_lock,
        "bpf_timer" => &mut f.timer,
        other => {
            f.unmodelled
                .get_or_insert_with(|| format!("`struct {other}` field"));
            return;
        }
    };
    if slot.is_some() || !top {
        f.unmodelled
            .get_or_insert_with(|| format!("repeated or nested `struct {name}`"));
        return;
    }
    *slot = Some(off);
}

/// Name of a struct the kernel treats as special, if `id` is one.
fn special_name(btf: &Btf, id: u32) -> Option<&'static str> {
    let t = btf.get(id)?;
    if !matches!(t.kind, BtfKind::Struct { .. }) {
        return None;
    }
    match t.name.as_str() {
        "bpf_spin_lock" => Some("bpf_spin_lock"),
        "bpf_timer" => Some("bpf_timer"),
        n => UNMODELLED_STRUCTS.iter().copied().find(|s| *s == n),
    }
}

/// Special fields inside nested structs or arrays: not modelled (the kernel's rules for
/// them differ by field kind), so they only mark the value as unmodelled.
fn scan_nested(btf: &Btf, id: u32, f: &mut MapFields, depth: usize) {
    if depth > 8 {
        return;
    }
    let Some(t) = btf.get(id) else { return };
    match &t.kind {
        BtfKind::Struct { members, .. } | BtfKind::Union { members, .. } => {
            for m in members {
                if let Some(mid) = btf.skip_mods_and_typedefs(m.type_id) {
                    if let Some(n) = special_name(btf, mid) {
                        note(f, n, 0, false);
                    } else {
                        scan_nested(btf, mid, f, depth + 1);
                    }
                }
            }
        }
        BtfKind::Array { elem_type, .. } => {
            if let Some(e) = btf.skip_mods_and_typedefs(*elem_type) {
                if let Some(n) = special_name(btf, e) {
                    note(f, n, 0, false);
                } else {
                    scan_nested(btf, e, f, depth + 1);
                }
            }
        }
        _ => {}
    }
}

/// A pointer member with a BTF type tag (`__kptr`, `__kptr_untrusted`, `__percpu_kptr`).
fn is_tagged_pointer(btf: &Btf, mut id: u32) -> bool {
    for _ in 0..16 {
        let Some(t) = btf.get(id) else { return false };
        match &t.kind {
            BtfKind::Typedef { type_id }
            | BtfKind::Volatile { type_id }
            | BtfKind::Const { type_id }
            | BtfKind::Restrict { type_id } => id = *type_id,
            BtfKind::Ptr { type_id } => {
                return matches!(
                    btf.get(*type_id).map(|t| &t.kind),
                    Some(BtfKind::TypeTag { .. })
                )
            }
            _ => return false,
        }
    }
    false
}
