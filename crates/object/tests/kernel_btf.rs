//! The BTF `Object::kernel_btf` prepares is accepted by the running kernel
//! (`BPF_BTF_LOAD`) for every corpus object and fixture, and the linked func/line info
//! has the shape `BPF_PROG_LOAD` requires. Without CAP_BPF the kernel part is skipped
//! with a loud message (it never passes silently).

use std::path::{Path, PathBuf};

use bpfkit_object::{object_name_from_path, Object};

fn objects() -> Vec<PathBuf> {
    let mut v = Vec::new();
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    for dir in [
        manifest.join("../../corpus/obj"),
        manifest.join("tests/data"),
    ] {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            if e.path().extension().is_some_and(|x| x == "o") {
                v.push(e.path());
            }
        }
    }
    v.sort();
    assert!(!v.is_empty());
    v
}

const BPF_BTF_LOAD: libc::c_long = 18;

/// `BPF_BTF_LOAD`; Ok(()) when accepted, Err((errno, verifier log)) otherwise.
fn btf_load(btf: &[u8]) -> Result<(), (i32, String)> {
    let mut log = vec![0u8; 1 << 16];
    // union bpf_attr, BTF_LOAD part: btf, btf_log_buf, btf_size, btf_log_size, btf_log_level.
    let mut attr = [0u8; 128];
    attr[0..8].copy_from_slice(&(btf.as_ptr() as u64).to_le_bytes());
    attr[8..16].copy_from_slice(&(log.as_mut_ptr() as u64).to_le_bytes());
    attr[16..20].copy_from_slice(&(btf.len() as u32).to_le_bytes());
    attr[20..24].copy_from_slice(&(log.len() as u32).to_le_bytes());
    attr[24..28].copy_from_slice(&1u32.to_le_bytes());
    // SAFETY: `attr` is a zeroed bpf_attr of the size we pass, whose pointers refer to
    // `btf` and `log`, both alive for the call; the kernel writes at most `log.len()`
    // bytes to `log`.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_BTF_LOAD,
            attr.as_mut_ptr(),
            attr.len() as u32,
        )
    };
    if fd < 0 {
        let errno = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
        let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
        return Err((errno, String::from_utf8_lossy(&log[..end]).into_owned()));
    }
    // SAFETY: `fd` is a file descriptor the kernel just returned to us.
    unsafe { libc::close(fd as i32) };
    Ok(())
}

#[test]
fn kernel_accepts_fixed_up_btf() {
    // Probe: a minimal valid BTF — one `int` (header, one INT record, "\0int\0").
    let mut probe = Vec::new();
    for w in [0x0001_eb9fu32, 24, 0, 16, 16, 5, 1, 1 << 24, 4, 32] {
        probe.extend_from_slice(&w.to_le_bytes());
    }
    probe.extend_from_slice(b"\0int\0");
    if let Err((errno, log)) = btf_load(&probe) {
        if errno == libc::EPERM || errno == libc::ENOSYS || errno == libc::EACCES {
            eprintln!("\n*** SKIPPED kernel_accepts_fixed_up_btf: BPF_BTF_LOAD not permitted here (errno {errno}); run as root with CAP_BPF ***\n");
            return;
        }
        panic!("probe BTF rejected: errno {errno}: {log}");
    }
    let mut loaded = 0;
    for p in objects() {
        let obj =
            Object::parse_named(&std::fs::read(&p).unwrap(), &object_name_from_path(&p)).unwrap();
        let btf = obj
            .kernel_btf()
            .unwrap()
            .unwrap_or_else(|| panic!("{}: no BTF", p.display()));
        if let Err((errno, log)) = btf_load(&btf) {
            panic!(
                "{}: kernel rejected BTF (errno {errno}):\n{log}",
                p.display()
            );
        }
        // The raw section, as clang wrote it, is what the kernel refuses when a DATASEC
        // has size 0 — the fix-up is what makes the difference.
        let raw = &obj.section(".BTF").unwrap().data;
        let has_zero_datasec = obj.btf.as_ref().unwrap().types.iter().any(
            |t| matches!(&t.kind, bpfkit_object::btf::BtfKind::Datasec { size: 0, vars } if !vars.is_empty()),
        );
        if has_zero_datasec {
            assert!(
                btf_load(raw).is_err(),
                "{}: kernel took the unfixed BTF too",
                p.display()
            );
        }
        loaded += 1;
    }
    eprintln!("kernel accepted the BTF of {loaded} objects");
}

#[test]
fn linked_func_and_line_info_have_the_kernel_shape() {
    let mut checked = 0;
    for p in objects() {
        let obj =
            Object::parse_named(&std::fs::read(&p).unwrap(), &object_name_from_path(&p)).unwrap();
        let linked = obj.link().unwrap();
        for prog in &linked.programs {
            let fi = obj.linked_func_info(prog);
            // One record per function instance, the first at 0, strictly increasing,
            // each a FUNC whose name is the function starting there.
            let starts: Vec<usize> = (0..prog.origins.len())
                .filter(|&i| i == 0 || prog.origins[i - 1].function != prog.origins[i].function)
                .collect();
            assert_eq!(
                fi.iter().map(|r| r[0] as usize).collect::<Vec<_>>(),
                starts,
                "{}: {}",
                p.display(),
                prog.name
            );
            let btf = obj.btf.as_ref().unwrap();
            for r in &fi {
                assert_eq!(
                    btf.get(r[1]).unwrap().name,
                    prog.origins[r[0] as usize].function
                );
            }
            // Line info: strictly increasing, every function start covered, strings valid.
            let li = obj.linked_line_info(prog);
            assert!(
                li.windows(2).all(|w| w[0][0] < w[1][0]),
                "{}: {}",
                p.display(),
                prog.name
            );
            for s in &starts {
                assert!(
                    li.iter().any(|r| r[0] as usize == *s),
                    "{}: {} no line info at {s}",
                    p.display(),
                    prog.name
                );
            }
            for r in &li {
                let o = &prog.origins[r[0] as usize];
                let l = o.line.as_ref().unwrap();
                assert_eq!(btf.string_at(r[1]).unwrap(), l.file);
                assert_eq!(btf.string_at(r[2]).unwrap(), l.text);
                assert_eq!((r[3] >> 10, r[3] & 0x3ff), (l.line, l.column));
            }
            checked += 1;
        }
    }
    assert!(checked > 0);
}

#[test]
fn linked_funcs_carry_linkage_and_prototype() {
    // corpus/src/xdp_calls.c: `static __noinline` parse_eth/fold_ports/parse_l4 and the
    // global `__noinline int tuple_bucket(struct tuple *t, __u32 port_hash)`.
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../corpus/obj/xdp_calls.o");
    let obj = Object::parse_named(&std::fs::read(&p).unwrap(), "xdp_calls").unwrap();
    let linked = obj.link().unwrap();
    let btf = obj.btf.as_ref().unwrap();
    let prog = &linked.programs[0];
    let funcs = obj.linked_funcs(prog);
    let fi = obj.linked_func_info(prog);
    assert_eq!(funcs.len(), fi.len());
    assert_eq!(funcs[0].insn, 0);
    assert_eq!(funcs[0].linkage, bpfkit_object::kernel_btf::FUNC_GLOBAL);
    let by_name = |n: &str| funcs.iter().find(|f| f.name == n).unwrap();
    assert_eq!(
        by_name("parse_eth").linkage,
        bpfkit_object::kernel_btf::FUNC_STATIC
    );
    let tb = by_name("tuple_bucket");
    assert_eq!(tb.linkage, bpfkit_object::kernel_btf::FUNC_GLOBAL);
    assert_eq!(prog.origins[tb.insn].function, "tuple_bucket");
    let bpfkit_object::btf::BtfKind::FuncProto { params, .. } =
        &btf.get(tb.proto_type_id).unwrap().kind
    else {
        panic!("tuple_bucket's type is not a FUNC_PROTO");
    };
    let names: Vec<_> = params.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["t", "port_hash"]);
    assert_eq!(btf.type_name(params[0].type_id), "struct tuple *");
}
