//! Fuzzes `replay --maps-in`: any bytes as the maps file of a corpus object with every
//! kind of map (arrays, hashes, per-CPU, PROG_ARRAY, map-in-map). Must give a clear error
//! or fill the maps, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

static OBJECTS: [&[u8]; 3] = [
    include_bytes!("../../corpus/obj/xdp_map_in_map.o"),
    include_bytes!("../../corpus/obj/xdp_tailcall.o"),
    include_bytes!("../../corpus/obj/xdp_firewall.o"),
];

fn objects() -> &'static Vec<bpfkit_object::model::LinkedObject> {
    static O: OnceLock<Vec<bpfkit_object::model::LinkedObject>> = OnceLock::new();
    O.get_or_init(|| {
        OBJECTS
            .iter()
            .map(|b| bpfkit_object::Object::parse(b).unwrap().link().unwrap())
            .collect()
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let Ok(doc) = serde_json::from_slice::<serde_json::Value>(rest) else {
        return;
    };
    let obj = &objects()[pick as usize % OBJECTS.len()];
    let ncpus = 1 + (pick as u32 >> 4) % 4;
    let settings = bpfkit_replay::engines::EngineSettings {
        ncpus,
        ..Default::default()
    };
    let mut e = bpfkit_replay::engines::create(
        bpfkit_replay::engines::EngineKind::Interp,
        obj,
        &settings,
        0,
    )
    .expect("interpreter");
    match bpfkit_replay::state::load(e.as_mut(), obj, &doc, ncpus) {
        Ok(_) => {
            let _ = bpfkit_replay::state::dump(e.as_ref(), obj);
        }
        Err(m) => assert!(!m.is_empty()),
    }
});
