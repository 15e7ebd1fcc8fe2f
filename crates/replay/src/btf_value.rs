//! Map keys and values read through the object's BTF, as `bpftool map dump` shows them
//! under `formatted`: structs as objects of their fields, integers as numbers, enums by
//! name, arrays as lists, `char` arrays as strings. And back: `--maps-in` accepts the
//! same decoded form and encodes it with the same types.

use bpfkit_object::btf::{Btf, BtfKind};
use serde_json::{json, Map, Value};

const MAX_DEPTH: usize = 32;

/// Follows typedefs and type modifiers.
fn resolve(btf: &Btf, mut id: u32) -> Option<u32> {
    for _ in 0..MAX_DEPTH {
        let t = btf.get(id)?;
        match &t.kind {
            BtfKind::Typedef { type_id }
            | BtfKind::Volatile { type_id }
            | BtfKind::Const { type_id }
            | BtfKind::Restrict { type_id }
            | BtfKind::TypeTag { type_id } => id = *type_id,
            _ => return Some(id),
        }
    }
    None
}

fn le(bytes: &[u8]) -> u128 {
    bytes
        .iter()
        .take(16)
        .rev()
        .fold(0u128, |a, &b| (a << 8) | b as u128)
}

fn int_value(v: u128, bits: u32, signed: bool) -> Value {
    let v = if bits < 128 {
        v & ((1u128 << bits) - 1)
    } else {
        v
    };
    if signed && bits > 0 && bits <= 64 && (v >> (bits - 1)) & 1 == 1 {
        let s = (v as i128) - (1i128 << bits);
        json!(s as i64)
    } else if v <= u64::MAX as u128 {
        json!(v as u64)
    } else {
        json!(format!("{v:#x}"))
    }
}

fn is_char(btf: &Btf, id: u32) -> bool {
    resolve(btf, id)
        .and_then(|r| btf.get(r))
        .is_some_and(|t| matches!(t.kind, BtfKind::Int { size: 1, encoding, .. } if encoding & 2 != 0 || t.name == "char"))
}

/// `bytes` decoded as BTF type `id`; `None` when the type is unknown or the bytes are
/// too short for it.
pub fn decode(btf: &Btf, id: u32, bytes: &[u8]) -> Option<Value> {
    decode_at(btf, id, bytes, 0)
}

fn decode_at(btf: &Btf, id: u32, bytes: &[u8], depth: usize) -> Option<Value> {
    if depth > MAX_DEPTH {
        return None;
    }
    let rid = resolve(btf, id)?;
    let t = btf.get(rid)?;
    match &t.kind {
        BtfKind::Int {
            size,
            encoding,
            offset,
            bits,
        } => {
            let b = bytes.get(..*size as usize)?;
            let raw = le(b) >> offset;
            if encoding & 4 != 0 {
                return Some(json!(raw & 1 != 0));
            }
            Some(int_value(raw, *bits as u32, encoding & 1 != 0))
        }
        BtfKind::Enum {
            size,
            signed,
            values,
        }
        | BtfKind::Enum64 {
            size,
            signed,
            values,
        } => {
            let b = bytes.get(..*size as usize)?;
            let raw = le(b);
            let n = match int_value(raw, *size * 8, *signed) {
                Value::Number(n) => n.as_i64().or_else(|| n.as_u64().map(|u| u as i64)),
                _ => None,
            };
            Some(match n.and_then(|n| values.iter().find(|(_, v)| *v == n)) {
                Some((name, _)) => json!(name),
                None => int_value(raw, *size * 8, *signed),
            })
        }
        BtfKind::Ptr { .. } => {
            let b = bytes.get(..8)?;
            Some(json!(format!("{:#x}", le(b))))
        }
        BtfKind::Float { size } => {
            let b = bytes.get(..*size as usize)?;
            Some(match size {
                4 => json!(f32::from_le_bytes(b.try_into().ok()?)),
                8 => json!(f64::from_le_bytes(b.try_into().ok()?)),
                _ => json!(crate::hex::encode(b)),
            })
        }
        BtfKind::Array {
            elem_type, nelems, ..
        } => {
            let esz = btf.resolve_size(*elem_type)? as usize;
            let total = esz.checked_mul(*nelems as usize)?;
            let b = bytes.get(..total)?;
            if esz == 1 && is_char(btf, *elem_type) {
                let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
                if b[..end].iter().all(|c| c.is_ascii_graphic() || *c == b' ')
                    && b[end..].iter().all(|&c| c == 0)
                {
                    return Some(json!(String::from_utf8_lossy(&b[..end])));
                }
            }
            let mut out = Vec::with_capacity(*nelems as usize);
            for i in 0..*nelems as usize {
                out.push(decode_at(btf, *elem_type, &b[i * esz..], depth + 1)?);
            }
            Some(Value::Array(out))
        }
        BtfKind::Struct { size, members } | BtfKind::Union { size, members } => {
            let b = bytes.get(..*size as usize)?;
            let mut m = Map::new();
            for (k, mem) in members.iter().enumerate() {
                let name = if mem.name.is_empty() {
                    format!("<anon{k}>")
                } else {
                    mem.name.clone()
                };
                let v = if mem.bitfield_size > 0 {
                    let start = (mem.bit_offset / 8) as usize;
                    let raw = le(b.get(start..)?) >> (mem.bit_offset % 8);
                    let signed = resolve(btf, mem.type_id)
                        .and_then(|r| btf.get(r))
                        .is_some_and(|t| matches!(t.kind, BtfKind::Int { encoding, .. } if encoding & 1 != 0));
                    int_value(raw, mem.bitfield_size, signed)
                } else {
                    decode_at(
                        btf,
                        mem.type_id,
                        b.get((mem.bit_offset / 8) as usize..)?,
                        depth + 1,
                    )?
                };
                m.insert(name, v);
            }
            Some(Value::Object(m))
        }
        _ => None,
    }
}

/// `v` (the decoded form) encoded as BTF type `id`: exactly that type's size in bytes.
/// Struct fields left out are zero. Errors name the field.
pub fn encode(btf: &Btf, id: u32, v: &Value) -> Result<Vec<u8>, String> {
    let size = btf
        .resolve_size(id)
        .ok_or_else(|| format!("type {} has no size", btf.type_name(id)))? as usize;
    let mut out = vec![0u8; size];
    encode_into(btf, id, v, &mut out, 0, "")?;
    Ok(out)
}

fn put_int(out: &mut [u8], bit_off: u32, bits: u32, val: i128, what: &str) -> Result<(), String> {
    let fits = if val < 0 {
        bits >= 128 || val >= -(1i128 << (bits - 1))
    } else {
        bits >= 128 || (val as u128) < (1u128 << bits)
    };
    if !fits {
        return Err(format!("{what}: {val} does not fit in {bits} bits"));
    }
    let mask = if bits >= 128 {
        u128::MAX
    } else {
        (1u128 << bits) - 1
    };
    let v = (val as u128) & mask;
    for i in 0..bits {
        let bit = (v >> i) & 1;
        let pos = (bit_off + i) as usize;
        let (byte, b) = (pos / 8, pos % 8);
        if byte >= out.len() {
            return Err(format!("{what}: field runs past the value"));
        }
        if bit == 1 {
            out[byte] |= 1 << b;
        } else {
            out[byte] &= !(1 << b);
        }
    }
    Ok(())
}

fn number(v: &Value, what: &str) -> Result<i128, String> {
    match v {
        Value::Number(n) => n
            .as_i64()
            .map(|x| x as i128)
            .or_else(|| n.as_u64().map(|x| x as i128))
            .ok_or_else(|| format!("{what}: {n} is not an integer")),
        Value::Bool(b) => Ok(*b as i128),
        Value::String(s) => {
            let t = s.trim();
            let r = if let Some(h) = t.strip_prefix("0x") {
                i128::from_str_radix(h, 16)
            } else {
                t.parse()
            };
            r.map_err(|_| format!("{what}: `{s}` is not a number"))
        }
        other => Err(format!("{what}: expected a number, found {other}")),
    }
}

fn encode_into(
    btf: &Btf,
    id: u32,
    v: &Value,
    out: &mut [u8],
    bit_off: u32,
    path: &str,
) -> Result<(), String> {
    let what = if path.is_empty() { "value" } else { path };
    let rid = resolve(btf, id).ok_or_else(|| format!("{what}: unknown BTF type {id}"))?;
    let t = btf
        .get(rid)
        .ok_or_else(|| format!("{what}: unknown BTF type {id}"))?;
    match &t.kind {
        BtfKind::Int { bits, offset, .. } => put_int(
            out,
            bit_off + *offset as u32,
            *bits as u32,
            number(v, what)?,
            what,
        ),
        BtfKind::Enum { size, values, .. } | BtfKind::Enum64 { size, values, .. } => {
            let n = match v {
                Value::String(s) if values.iter().any(|(name, _)| name == s) => values
                    .iter()
                    .find(|(name, _)| name == s)
                    .map(|(_, x)| *x as i128)
                    .unwrap_or(0),
                other => number(other, what)?,
            };
            put_int(out, bit_off, size * 8, n, what)
        }
        BtfKind::Ptr { .. } => put_int(out, bit_off, 64, number(v, what)?, what),
        BtfKind::Array {
            elem_type, nelems, ..
        } => {
            let esz = btf
                .resolve_size(*elem_type)
                .ok_or_else(|| format!("{what}: element without a size"))?
                as u32;
            match v {
                Value::String(s) if esz == 1 && is_char(btf, *elem_type) => {
                    if s.len() > *nelems as usize {
                        return Err(format!("{what}: `{s}` is longer than {} bytes", nelems));
                    }
                    for (i, c) in s.bytes().enumerate() {
                        put_int(out, bit_off + i as u32 * 8, 8, c as i128, what)?;
                    }
                    Ok(())
                }
                Value::Array(items) => {
                    if items.len() > *nelems as usize {
                        return Err(format!(
                            "{what}: {} elements, the array has {nelems}",
                            items.len()
                        ));
                    }
                    for (i, item) in items.iter().enumerate() {
                        encode_into(
                            btf,
                            *elem_type,
                            item,
                            out,
                            bit_off + i as u32 * esz * 8,
                            &format!("{what}[{i}]"),
                        )?;
                    }
                    Ok(())
                }
                other => Err(format!("{what}: expected a list, found {other}")),
            }
        }
        BtfKind::Struct { members, .. } | BtfKind::Union { members, .. } => {
            let Value::Object(fields) = v else {
                return Err(format!("{what}: expected an object of fields, found {v}"));
            };
            for name in fields.keys() {
                if !members.iter().any(|m| &m.name == name) {
                    return Err(format!(
                        "{what}: {} has no field `{name}`",
                        btf.type_name(rid)
                    ));
                }
            }
            for m in members {
                let Some(fv) = fields.get(&m.name) else {
                    continue;
                };
                let sub = if path.is_empty() {
                    m.name.clone()
                } else {
                    format!("{path}.{}", m.name)
                };
                if m.bitfield_size > 0 {
                    put_int(
                        out,
                        bit_off + m.bit_offset,
                        m.bitfield_size,
                        number(fv, &sub)?,
                        &sub,
                    )?;
                } else {
                    encode_into(btf, m.type_id, fv, out, bit_off + m.bit_offset, &sub)?;
                }
            }
            Ok(())
        }
        BtfKind::Float { size } => {
            let f = v
                .as_f64()
                .ok_or_else(|| format!("{what}: expected a number"))?;
            let b: Vec<u8> = if *size == 4 {
                (f as f32).to_le_bytes().to_vec()
            } else {
                f.to_le_bytes().to_vec()
            };
            for (i, x) in b.iter().enumerate() {
                put_int(out, bit_off + i as u32 * 8, 8, *x as i128, what)?;
            }
            Ok(())
        }
        _ => Err(format!(
            "{what}: type {} cannot be given in decoded form (give hex)",
            btf.type_name(rid)
        )),
    }
}
