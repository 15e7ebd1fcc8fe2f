//! Arena maps (`BPF_MAP_TYPE_ARENA`): `map_extra` as libbpf accepts it, a `__ulong`
//! (ENUM64 member) or a `__uint`, parses; the program in `SEC("?xdp")` is XDP.

use bpfkit_object::model::{map_type, prog_type};
use bpfkit_object::Object;
use std::path::Path;

#[test]
fn arena_maps_with_map_extra_parse() {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/arena/arena_map.o");
    let obj = Object::parse_named(&std::fs::read(&p).unwrap(), "arena_map")
        .expect("an object with arena maps parses");
    let m: Vec<_> = obj
        .maps
        .iter()
        .map(|m| (m.name.as_str(), m.map_type, m.map_flags, m.max_entries))
        .collect();
    assert_eq!(
        m,
        [
            ("arena", map_type::ARENA, 1 << 10, 100),
            ("small_arena", map_type::ARENA, 1 << 10, 1)
        ]
    );
    assert_eq!(obj.programs.len(), 1);
    assert_eq!(obj.programs[0].prog_type, prog_type::XDP);
    assert_eq!(obj.programs[0].section, "?xdp");
    assert!(obj.link().is_ok());
}
