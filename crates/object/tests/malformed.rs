//! Malformed input: every case gives an `ObjectError` naming the section (or ELF
//! header field) and the offset, never a panic.

use std::path::Path;

use bpfkit_object::{Object, ObjectError};

fn sample() -> Vec<u8> {
    // A fixture with programs, sub-programs, every map kind and BTF/BTF.ext.
    std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/link_mix.o")).unwrap()
}

fn u16_at(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes([b[o], b[o + 1]])
}
fn u64_at(b: &[u8], o: usize) -> u64 {
    u64::from_le_bytes(b[o..o + 8].try_into().unwrap())
}

/// File offset of section header `index`.
fn shdr(b: &[u8], index: usize) -> usize {
    u64_at(b, 0x28) as usize + 64 * index
}

fn section_index(obj: &Object, name: &str) -> usize {
    obj.section(name).unwrap().index
}

#[test]
fn the_sample_is_fine() {
    let obj = Object::parse(&sample()).unwrap();
    obj.link().unwrap();
}

#[test]
fn truncated_files() {
    let b = sample();
    for len in [0, 1, 4, 16, 63, 64, 100, 0x200, b.len() / 2, b.len() - 1] {
        let e = Object::parse(&b[..len]).expect_err(&format!("truncated to {len} bytes"));
        let msg = e.to_string();
        assert!(
            msg.contains("offset") || msg.contains("bytes"),
            "{len}: {msg}"
        );
    }
    // The section header table is at the end: cutting into it names e_shoff.
    let e = Object::parse(&b[..b.len() - 1]).unwrap_err();
    assert!(
        matches!(
            e,
            ObjectError::Header {
                field: "e_shoff/e_shnum",
                ..
            }
        ),
        "{e}"
    );
    // Cutting the data of a section names that section.
    let obj = Object::parse(&b).unwrap();
    let btf = obj.section(".BTF").unwrap();
    let mut c = b.clone();
    // Move the section header table so the file can end inside .BTF's data.
    let cut = btf.offset as usize + 16;
    let table = b[u64_at(&b, 0x28) as usize..].to_vec();
    c.truncate(cut);
    let new_shoff = c.len();
    c.extend_from_slice(&table);
    c[0x28..0x30].copy_from_slice(&(new_shoff as u64).to_le_bytes());
    let e = Object::parse(&c).unwrap_err();
    match &e {
        ObjectError::Section { section, field, .. } => {
            assert!(field.contains("sh_offset"), "{e}");
            // Whatever section is first to run past the end is named.
            assert!(!section.is_empty(), "{e}");
        }
        other => panic!("unexpected {other}"),
    }
}

#[test]
fn not_elf_and_wrong_machine() {
    let mut b = sample();
    b[0] = b'X';
    let e = Object::parse(&b).unwrap_err();
    assert!(
        matches!(
            e,
            ObjectError::Header {
                field: "e_ident[EI_MAG]",
                offset: 0,
                ..
            }
        ),
        "{e}"
    );

    let mut b = sample();
    b[0x12..0x14].copy_from_slice(&62u16.to_le_bytes()); // EM_X86_64
    let e = Object::parse(&b).unwrap_err();
    assert!(
        matches!(
            e,
            ObjectError::Header {
                field: "e_machine",
                offset: 0x12,
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("EM_BPF"), "{e}");

    let mut b = sample();
    b[5] = 2; // big-endian
    let e = Object::parse(&b).unwrap_err();
    assert!(
        matches!(
            e,
            ObjectError::Header {
                field: "e_ident[EI_DATA]",
                ..
            }
        ),
        "{e}"
    );

    let mut b = sample();
    b[4] = 1; // ELFCLASS32
    assert!(matches!(
        Object::parse(&b).unwrap_err(),
        ObjectError::Header {
            field: "e_ident[EI_CLASS]",
            ..
        }
    ));

    let mut b = sample();
    b[0x10..0x12].copy_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    assert!(matches!(
        Object::parse(&b).unwrap_err(),
        ObjectError::Header {
            field: "e_type",
            ..
        }
    ));

    let garbage: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    assert!(Object::parse(&garbage).is_err());
}

#[test]
fn section_offset_past_the_end() {
    let b = sample();
    let obj = Object::parse(&b).unwrap();
    let xdp = section_index(&obj, "xdp");
    let mut c = b.clone();
    let h = shdr(&c, xdp);
    c[h + 0x18..h + 0x20].copy_from_slice(&(b.len() as u64 + 0x100).to_le_bytes()); // sh_offset
    let e = Object::parse(&c).unwrap_err();
    match &e {
        ObjectError::Section {
            section,
            index,
            field,
            offset,
            ..
        } => {
            assert_eq!((section.as_str(), *index), ("xdp", xdp), "{e}");
            assert_eq!(field, "sh_offset/sh_size");
            assert_eq!(*offset, b.len() as u64 + 0x100);
        }
        other => panic!("unexpected {other}"),
    }
    assert!(e.to_string().contains("`xdp`"), "{e}");

    // A huge size overflows neither the check nor the arithmetic.
    let mut c = b.clone();
    c[h + 0x20..h + 0x28].copy_from_slice(&u64::MAX.to_le_bytes());
    assert!(matches!(
        Object::parse(&c).unwrap_err(),
        ObjectError::Section { .. }
    ));

    // Section header table past the end.
    let mut c = b.clone();
    c[0x28..0x30].copy_from_slice(&(u64::MAX - 10).to_le_bytes());
    assert!(matches!(
        Object::parse(&c).unwrap_err(),
        ObjectError::Header { .. }
    ));

    // Bad e_shstrndx.
    let mut c = b.clone();
    c[0x3e..0x40].copy_from_slice(&0xfff0u16.to_le_bytes());
    let e = Object::parse(&c).unwrap_err();
    assert!(
        matches!(
            e,
            ObjectError::Header {
                field: "e_shstrndx",
                ..
            }
        ),
        "{e}"
    );
    let _ = u16_at(&c, 0x3e);
}

#[test]
fn relocation_on_a_non_lddw_instruction() {
    let b = sample();
    let obj = Object::parse(&b).unwrap();
    // First entry of .relxdp is R_BPF_64_64 on the lddw at slot 5; point it at slot 0 (mov).
    let rel = obj.section(".relxdp").unwrap();
    let mut c = b.clone();
    let at = rel.offset as usize;
    c[at..at + 8].copy_from_slice(&0u64.to_le_bytes());
    let e = Object::parse(&c).unwrap_err();
    match &e {
        ObjectError::Reloc {
            rel_section,
            section,
            offset,
            insn_index,
            symbol,
            reason,
        } => {
            assert_eq!(
                (rel_section.as_str(), section.as_str(), *offset, *insn_index),
                (".relxdp", "xdp", 0, 0)
            );
            assert_eq!(symbol, "counts");
            assert!(reason.contains("lddw"), "{e}");
        }
        other => panic!("unexpected {other}"),
    }
    // Misaligned r_offset.
    let mut c = b.clone();
    c[at..at + 8].copy_from_slice(&0x2cu64.to_le_bytes());
    assert!(matches!(
        Object::parse(&c).unwrap_err(),
        ObjectError::Reloc { offset: 0x2c, .. }
    ));
    // Past the end of the section.
    let mut c = b.clone();
    c[at..at + 8].copy_from_slice(&0x10000u64.to_le_bytes());
    let e = Object::parse(&c).unwrap_err();
    assert!(e.to_string().contains("0x10000"), "{e}");
    // Unknown relocation type in a program section.
    let mut c = b.clone();
    c[at + 8] = 7;
    let e = Object::parse(&c).unwrap_err();
    assert!(
        matches!(e, ObjectError::Reloc { .. }) && e.to_string().contains("not supported"),
        "{e}"
    );
    // Symbol index out of range.
    let mut c = b.clone();
    c[at + 12..at + 16].copy_from_slice(&0xffffu32.to_le_bytes());
    let e = Object::parse(&c).unwrap_err();
    assert!(
        matches!(&e, ObjectError::Section { section, field, .. } if section == ".relxdp" && field == "r_info"),
        "{e}"
    );
}

#[test]
fn corrupted_btf() {
    let b = sample();
    let obj = Object::parse(&b).unwrap();
    let btf = obj.section(".BTF").unwrap().clone();
    let base = btf.offset as usize;

    let mut c = b.clone();
    c[base] = 0; // magic
    let e = Object::parse(&c).unwrap_err();
    assert!(
        matches!(&e, ObjectError::Section { section, offset: 0, field, .. } if section == ".BTF" && field == "magic"),
        "{e}"
    );

    let mut c = b.clone();
    c[base + 12..base + 16].copy_from_slice(&0x7fff_0000u32.to_le_bytes()); // type_len
    let e = Object::parse(&c).unwrap_err();
    assert!(
        matches!(&e, ObjectError::Section { section, field, .. } if section == ".BTF" && field == "type_off/type_len"),
        "{e}"
    );

    // An unknown kind in the first type record.
    let hdr_len = u32::from_le_bytes(c[base + 4..base + 8].try_into().unwrap()) as usize;
    let mut c = b.clone();
    let t0 = base + hdr_len;
    c[t0 + 7] = 0x1f; // kind 31
    let e = Object::parse(&c).unwrap_err();
    assert!(e.to_string().contains("unknown kind"), "{e}");
    assert!(
        matches!(&e, ObjectError::Section { section, offset, .. } if section == ".BTF" && *offset == hdr_len as u64),
        "{e}"
    );

    // A type referring to a type that does not exist.
    let mut c = b.clone();
    // Type [1] in link_mix is PTR: its `type` field is the third u32.
    c[t0 + 8..t0 + 12].copy_from_slice(&0x00ff_ffffu32.to_le_bytes());
    let e = Object::parse(&c).unwrap_err();
    assert!(e.to_string().contains("refers to type"), "{e}");

    // Strings past the end.
    let mut c = b.clone();
    c[base + 20..base + 24].copy_from_slice(&0xffff_fff0u32.to_le_bytes());
    assert!(matches!(
        Object::parse(&c).unwrap_err(),
        ObjectError::Section { .. }
    ));

    // BTF.ext with a line_info record count that runs off the end.
    let ext = obj.section(".BTF.ext").unwrap();
    let eb = ext.offset as usize;
    let mut c = b.clone();
    let ehdr = u32::from_le_bytes(c[eb + 4..eb + 8].try_into().unwrap()) as usize;
    let li_off = u32::from_le_bytes(c[eb + 16..eb + 20].try_into().unwrap()) as usize;
    let first_num = eb + ehdr + li_off + 4 + 4;
    c[first_num..first_num + 4].copy_from_slice(&0x0fff_ffffu32.to_le_bytes());
    let e = Object::parse(&c).unwrap_err();
    assert!(
        matches!(&e, ObjectError::Section { section, field, .. } if section == ".BTF.ext" && field == "line_info.num_info"),
        "{e}"
    );
}

#[test]
fn call_to_nowhere_fails_at_link_time() {
    let b = sample();
    let obj = Object::parse(&b).unwrap();
    // prog_b's call (xdp slot 30) is relocated against helper_global; make its imm jump far away.
    let xdp = obj.section("xdp").unwrap();
    let mut c = b.clone();
    let at = xdp.offset as usize + 30 * 8 + 4;
    c[at..at + 4].copy_from_slice(&1000i32.to_le_bytes());
    let obj = Object::parse(&c).unwrap();
    let e = obj.link().unwrap_err();
    match &e {
        ObjectError::Link {
            program,
            section,
            insn_index,
            reason,
        } => {
            assert_eq!(
                (program.as_str(), section.as_str(), *insn_index),
                ("prog_b", "xdp", 30)
            );
            assert!(reason.contains("not inside any function"), "{e}");
        }
        other => panic!("unexpected {other}"),
    }
}

/// Deterministic byte mutations of real objects: parse and link must never panic.
#[test]
fn mutations_never_panic() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let mut seeds = Vec::new();
    for e in std::fs::read_dir(&dir).unwrap().flatten() {
        if e.path().extension().is_some_and(|x| x == "o") {
            seeds.push(std::fs::read(e.path()).unwrap());
        }
    }
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut errors = 0;
    for round in 0..3000 {
        let seed = &seeds[round % seeds.len()];
        let mut m = seed.clone();
        let n = 1 + (next() % 8) as usize;
        for _ in 0..n {
            let pos = (next() % m.len() as u64) as usize;
            match next() % 4 {
                0 => m[pos] = next() as u8,
                1 => m[pos] ^= 1 << (next() % 8),
                2 => m[pos] = [0, 0xff, 0x7f, 0x80][(next() % 4) as usize],
                _ => m.truncate(pos.max(1)),
            }
        }
        match Object::parse(&m) {
            Ok(o) => {
                let _ = o.link();
            }
            Err(e) => {
                let _ = e.to_string();
                errors += 1;
            }
        }
    }
    assert!(errors > 0);
}

/// `.bss` takes no file space, so its size is not bounded by the input: a huge one is
/// refused (found by the fuzzer as an out-of-memory) instead of allocated.
#[test]
fn huge_bss_is_refused_not_allocated() {
    let b = sample();
    let obj = Object::parse(&b).unwrap();
    let bss = section_index(&obj, ".bss");
    let mut c = b.clone();
    let h = shdr(&c, bss);
    c[h + 0x20..h + 0x28].copy_from_slice(&0xffff_ff00u64.to_le_bytes());
    let e = Object::parse(&c).unwrap_err();
    assert!(
        matches!(&e, ObjectError::Section { section, field, .. } if section == ".bss" && field == "sh_size"),
        "{e}"
    );
}
