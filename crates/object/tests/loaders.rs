//! Objects made for loaders other than libbpf (iproute2, Cilium): bpfkit reads them and
//! says, as a warning, what libbpf would do. Sources and build script in
//! tests/data/loaders/.

use bpfkit_object::Object;
use std::path::Path;

fn obj(name: &str) -> Object {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/data/loaders/{name}.o"));
    Object::parse_named(&std::fs::read(&p).unwrap(), name).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn iproute2_bpf_elf_map_definitions_are_read_with_their_extra_fields() {
    let o = obj("elf_map");
    let m = &o.maps[o.maps.iter().position(|m| m.name == "counters").unwrap()];
    assert_eq!(
        (m.map_type, m.key_size, m.value_size, m.max_entries),
        (2, 4, 8, 4)
    );
    let e = o.elf_map_extra["counters"];
    assert_eq!(
        (e.def_size, e.id, e.pinning, e.inner_id, e.inner_idx),
        (36, 7, 2, 0, 0)
    );
    assert!(
        o.warnings
            .iter()
            .any(|w| w.contains("libbpf refuses") && w.contains("bpf_elf_map")),
        "{:?}",
        o.warnings
    );
    assert!(o.link().is_ok());
}

#[test]
fn cilium_pinning_static_programs_and_text_slots_are_warnings() {
    let o = obj("odd_loaders");
    let w = o.warnings.join("\n");
    assert!(w.contains("pinning value 16"), "{w}");
    assert!(
        w.contains("1 static program outside .text (`xdp_static` (section `xdp`))"),
        "{w}"
    );
    assert!(w.contains("slot 1 names `in_text`"), "{w}");
    assert!(o.program("xdp_static").is_some());
    let m = o.maps.iter().find(|m| m.name == "pinned16").unwrap();
    assert_eq!(m.pinning, 0, "not pinned");
    let linked = o.link().unwrap();
    assert!(linked.program("xdp_static").is_some());
}

/// A program section without a function symbol (old clang output, iproute2-era samples:
/// Linux `samples/bpf`, prototype-kernel, Suricata, Cilium's old `bpf_xdp.o`) is one
/// program named after its section, as iproute2 loads it, with a warning; it links to
/// the same instructions as the object it was stripped from.
#[test]
fn a_section_without_function_symbol_is_one_program() {
    let o = obj("no_func_symbol");
    assert_eq!(o.programs.len(), 1);
    assert_eq!(o.programs[0].name, "xdp");
    assert_eq!(
        o.programs[0].prog_type,
        bpfkit_object::model::prog_type::XDP
    );
    assert!(
        o.warnings.iter().any(|w| w.contains("no function symbol")),
        "{:?}",
        o.warnings
    );
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../corpus/obj");
    let orig = Object::parse(&std::fs::read(root.join("xdp_legacy_maps.o")).unwrap()).unwrap();
    let a = o.link().unwrap();
    let b = orig.link().unwrap();
    assert_eq!(a.programs[0].insns, b.programs[0].insns);
    assert_eq!(a.maps.len(), b.maps.len());
}
