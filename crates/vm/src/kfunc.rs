//! The kfuncs the VM emulates, by bpfkit's kfunc number (`bpfkit_isa::kfunc`, which
//! `link()` puts in a kfunc call's `imm`): the XDP dynptr (`bpf_dynptr_from_xdp`), its
//! slices and the generic dynptr kfuncs, as net/core/filter.c and kernel/bpf/helpers.c
//! (6.18) implement them. Engines call them as helper `HELPER_BASE + number`.

use crate::error::FaultKind;
use crate::helpers::{
    dynptr_get, dynptr_range, herr, neg, read_packet, xdp_required, DYNPTR_TYPE_SHIFT,
    DYNPTR_TYPE_XDP,
};
use crate::maps;
use crate::runtime::Runtime;

/// Helper ids above this are kfuncs (`HELPER_BASE + bpfkit number`).
pub const HELPER_BASE: i32 = 0x4000_0000;

const ERANGE: i64 = 34;

/// The helper id an engine calls for a kfunc call with `imm` (bpfkit's number), or None
/// when the VM does not emulate that kfunc.
pub fn helper_id(imm: i32) -> Option<i32> {
    bpfkit_isa::kfunc::name(imm).map(|_| HELPER_BASE + imm)
}

/// Writes a dynptr's three words (`struct bpf_dynptr_kern`).
fn put(rt: &Runtime, addr: u64, data: u64, size_word: u64, offset: u64) -> Result<(), FaultKind> {
    rt.regions.store(addr, 8, data)?;
    rt.regions.store(addr + 8, 4, size_word)?;
    rt.regions.store(addr + 12, 4, offset)?;
    Ok(())
}

pub fn call(rt: &mut Runtime, number: i32, a: &[u64; 5]) -> Result<u64, FaultKind> {
    let name = bpfkit_isa::kfunc::name(number).unwrap_or("?");
    match name {
        "bpf_dynptr_from_xdp" => {
            xdp_required(rt, "bpf_dynptr_from_xdp")?;
            if a[1] != 0 {
                put(rt, a[2], 0, 0, 0)?;
                return Ok(neg(maps::EINVAL));
            }
            let x = rt.xdp.as_ref().expect("checked");
            let len = x.data_end - x.data + x.frags_len();
            put(
                rt,
                a[2],
                a[0],
                len | (DYNPTR_TYPE_XDP as u64) << DYNPTR_TYPE_SHIFT,
                0,
            )?;
            Ok(0)
        }
        "bpf_dynptr_slice" | "bpf_dynptr_slice_rdwr" => {
            let (off, buf, len) = (a[1] as u32 as u64, a[2], a[3] as u32 as u64);
            let (data, size, base, ty, rdonly) = dynptr_get(rt, a[0])?;
            if data == 0 || (name == "bpf_dynptr_slice_rdwr" && rdonly) {
                return Ok(0);
            }
            if dynptr_range(size, off, len).is_err() {
                return Ok(0);
            }
            match ty {
                1 | 2 => Ok(data + base + off),
                DYNPTR_TYPE_XDP => {
                    xdp_required(rt, name)?;
                    let x = rt.xdp.as_ref().expect("checked");
                    let (o, lin) = (base + off, x.data_end - x.data);
                    if o + len <= lin {
                        return Ok(x.data + o); // bpf_xdp_pointer: in the linear part
                    }
                    if buf == 0 {
                        return Ok(0);
                    }
                    // bpf_xdp_copy_buf: bytes across fragments go to the buffer
                    let mut out = Vec::new();
                    read_packet(rt, o, len, &mut out);
                    rt.regions.write_bytes(buf, &out)?;
                    Ok(buf)
                }
                t => Err(herr(name, format!("dynptr type {t} is not supported"))),
            }
        }
        "bpf_dynptr_adjust" => {
            let (start, end) = (a[1] as u32 as u64, a[2] as u32 as u64);
            let (data, size, base, ..) = dynptr_get(rt, a[0])?;
            if data == 0 || start > end {
                return Ok(neg(maps::EINVAL));
            }
            if end > size {
                return Ok(neg(ERANGE));
            }
            let word = rt.regions.load(a[0] + 8, 4)?;
            let word = (word & !((1 << 24) - 1)) | (end - start);
            put(rt, a[0], data, word, base + start)?;
            Ok(0)
        }
        "bpf_dynptr_is_null" => Ok((dynptr_get(rt, a[0])?.0 == 0) as u64),
        "bpf_dynptr_is_rdonly" => {
            let (data, .., rdonly) = dynptr_get(rt, a[0])?;
            Ok((data != 0 && rdonly) as u64)
        }
        "bpf_dynptr_size" => {
            let (data, size, ..) = dynptr_get(rt, a[0])?;
            Ok(if data == 0 {
                neg(maps::EINVAL) as u32 as u64
            } else {
                size
            })
        }
        "bpf_dynptr_clone" => {
            let (data, ..) = dynptr_get(rt, a[0])?;
            if data == 0 {
                put(rt, a[1], 0, 0, 0)?;
                return Ok(neg(maps::EINVAL));
            }
            let bytes = rt.regions.read_bytes(a[0], 16)?;
            rt.regions.write_bytes(a[1], &bytes)?;
            Ok(0)
        }
        "bpf_xdp_pull_data" => {
            xdp_required(rt, "bpf_xdp_pull_data")?;
            let x = rt.xdp.as_ref().expect("checked");
            let len = a[1] as u32 as u64;
            let lin = x.data_end - x.data;
            if len <= lin {
                Ok(0)
            } else if len > lin + x.frags_len() {
                Ok(neg(maps::EINVAL))
            } else {
                Err(herr(
                    "bpf_xdp_pull_data",
                    "pulling fragments into the linear part is not emulated",
                ))
            }
        }
        _ => Err(FaultKind::Unsupported(format!(
            "kfunc number {number} is not emulated"
        ))),
    }
}
