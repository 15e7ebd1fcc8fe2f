//! Fuzzes the object reader: any byte string must parse to an object or an
//! `ObjectError`, and every parsed object must link or fail with an `ObjectError` —
//! never panic, hang or allocate without bound. Everything the reader exposes to
//! `bpfkit inspect` (BTF dump, line info, error text) is exercised too.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match bpfkit_object::Object::parse_named(data, "fuzz") {
        Ok(obj) => {
            if let Some(btf) = &obj.btf {
                let _ = btf.dump();
                for t in &btf.types {
                    let _ = btf.type_name(t.id);
                    let _ = btf.resolve_size(t.id);
                }
            }
            for s in &obj.sections {
                for i in 0..s.insns.len().min(64) {
                    let _ = obj.source_line(&s.name, i);
                }
            }
            match obj.link() {
                Ok(linked) => {
                    for p in &linked.programs {
                        assert_eq!(p.insns.len(), p.origins.len());
                    }
                }
                Err(e) => {
                    let _ = e.to_string();
                }
            }
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
