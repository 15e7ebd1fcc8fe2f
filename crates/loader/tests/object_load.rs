//! Whole objects loaded as libbpf does (BTF, func/line info, pins), on the running kernel.

use bpfkit_loader::btf_load::{BtfBuilder, BtfFeatures, RawBtf};
use bpfkit_loader::object_load::{LoadOptions, LoadedObject};
use bpfkit_loader::pin::KernelObjects;
use std::path::{Path, PathBuf};

fn corpus(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../corpus/obj")
        .join(name)
}

fn corpus_objects() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(corpus(""))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "o"))
        .collect();
    v.sort();
    v
}

/// Objects named in `names` created since `before`, waiting (bounded) for the kernel to
/// release what is freed asynchronously. Other processes' objects are filtered out by
/// name.
fn settle(before: &KernelObjects, names: &[&str]) -> KernelObjects {
    let left = || {
        let mut k = KernelObjects::snapshot()
            .unwrap()
            .new_since(before)
            .named(names);
        k.links.clear();
        k
    };
    let mut l = left();
    for _ in 0..200 {
        if l.is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
        l = left();
    }
    l
}

#[test]
fn every_accepted_corpus_object_loads_with_btf_and_line_info() {
    if !bpfkit_loader::kernel_or_skip("every_accepted_corpus_object_loads_with_btf_and_line_info") {
        return;
    }
    let mut loaded = 0;
    for path in corpus_objects() {
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        let Ok(text) =
            std::fs::read_to_string(corpus("../expected").join(format!("{name}.kernel.json")))
        else {
            // A corpus object added without libbpf's verdict yet: nothing to compare.
            let r = LoadedObject::open(&path, &LoadOptions::default());
            eprintln!(
                "note: {name}: no kernel.json; loads: {:?}",
                r.as_ref().err().map(|e| e.to_string())
            );
            continue;
        };
        let expected: serde_json::Value = serde_json::from_str(&text).unwrap();
        let all_accepted = expected["programs"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["accepted"].as_bool() == Some(true));
        if let Ok(linked) =
            bpfkit_object::Object::parse_named(&std::fs::read(&path).unwrap(), &name)
                .and_then(|o| o.link())
        {
            if !bpfkit_loader::object_or_skip(
                "every_accepted_corpus_object_loads_with_btf_and_line_info",
                &name,
                &linked,
            ) {
                continue;
            }
        }
        let r = LoadedObject::open(&path, &LoadOptions::default());
        if !all_accepted {
            assert!(r.is_err(), "{name}: libbpf refused it, we loaded it");
            continue;
        }
        let obj = r.unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(
            obj.btf.is_some(),
            "{name}: BTF not loaded: {:?}",
            obj.btf_error
        );
        for p in &obj.programs {
            assert!(
                p.func_info >= 1 && p.line_info >= 1,
                "{name}/{}: no func/line info",
                p.linked.name
            );
            let info = p.program.info().unwrap();
            let want = expected["programs"]
                .as_array()
                .unwrap()
                .iter()
                .find(|e| e["name"] == p.linked.name.as_str())
                .unwrap();
            assert_eq!(
                info.tag
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect::<String>(),
                want["tag"].as_str().unwrap(),
                "{name}/{}: tag differs from libbpf's",
                p.linked.name
            );
        }
        for m in &obj.maps {
            let want = expected["maps"]
                .as_array()
                .unwrap()
                .iter()
                .find(|e| e["name"] == m.def.real_name() || e["name"] == m.def.name.as_str());
            if let Some(want) = want {
                if want["has_btf"].as_bool() == Some(true) {
                    assert!(
                        m.with_btf,
                        "{name}: map {} created without BTF, libbpf had BTF",
                        m.def.name
                    );
                }
            }
        }
        loaded += 1;
    }
    assert!(loaded >= 20, "only {loaded} objects loaded");
    eprintln!("{loaded} corpus objects loaded with BTF, func_info and line_info");
}

#[test]
fn forced_sanitization_still_loads() {
    if !bpfkit_loader::kernel_or_skip("forced_sanitization_still_loads") {
        return;
    }
    // A blob with every kind libbpf rewrites, sanitised as for a kernel knowing none.
    let mut b = BtfBuilder::new();
    let int = b.int("int", 4, 1);
    let f = b.float("float", 4);
    let tag = b.type_tag("user", int);
    let p = b.ptr(tag);
    let e = b.enum64("big", 8, &[("A", 1 << 40), ("B", 3)]);
    let s = b.structure(
        "s",
        24,
        &[("a", int, 0), ("f", f, 32), ("p", p, 64), ("e", e, 128)],
    );
    b.decl_tag("k", s, 1);
    let proto = b.func_proto(int, &[("x", int)]);
    b.func("fn", proto, 1);
    let v = b.var("g", s, 1);
    b.datasec(".data", 24, &[(v, 0, 24)]);
    let blob = b.build();
    let feats = BtfFeatures::probe();
    assert_eq!(feats, BtfFeatures::ALL, "Linux 6.18 knows every kind");
    bpfkit_loader::btf_load::load_raw(&blob, true).expect("unsanitised blob loads on 6.18");
    let mut raw = RawBtf::parse(blob).unwrap();
    // FLOAT, TYPE_TAG, ENUM64, DECL_TAG, FUNC_PROTO, FUNC, VAR, DATASEC.
    assert_eq!(raw.sanitize(&BtfFeatures::NONE).unwrap(), 8);
    bpfkit_loader::btf_load::load_raw(&raw.data, true).expect("sanitised blob loads");

    // And whole objects, with every rewrite forced.
    for name in ["xdp_global_data.o", "xdp_counter.o", "xdp_calls.o"] {
        let opts = LoadOptions {
            btf_features: Some(BtfFeatures::NONE),
            ..Default::default()
        };
        let obj =
            LoadedObject::open(&corpus(name), &opts).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(obj.btf.is_some(), "{name}: {:?}", obj.btf_error);
        assert!(obj.btf_sanitized > 0);
    }
}

#[test]
fn rejected_objects_leave_nothing_behind_and_name_the_source_line() {
    if !bpfkit_loader::kernel_or_skip(
        "rejected_objects_leave_nothing_behind_and_name_the_source_line",
    ) {
        return;
    }
    let pin_root = PathBuf::from(format!(
        "/sys/fs/bpf/bpfkit-test-reject-{}",
        std::process::id()
    ));
    std::fs::create_dir_all(&pin_root).unwrap();
    let before = KernelObjects::snapshot().unwrap();
    let opts = LoadOptions {
        pin_root: Some(pin_root.clone()),
        ..Default::default()
    };
    let err = LoadedObject::open(&corpus("rejected/map_value_oob.o"), &opts).unwrap_err();
    let left = settle(&before, &["values", "map_value_oob"]);
    let pins: Vec<_> = std::fs::read_dir(&pin_root).unwrap().collect();
    std::fs::remove_dir(&pin_root).ok();
    let log = err.verifier_log().expect("a verifier log");
    assert!(log.contains("bpfkit: rejected at instruction"), "{log}");
    assert!(log.contains(".c:"), "no C source line: {log}");
    assert!(left.is_empty(), "left behind: {left:?}");
    assert!(pins.is_empty(), "pins left behind");
    eprintln!("{err}");
}

#[test]
fn by_name_pinned_maps_are_reused() {
    if !bpfkit_loader::kernel_or_skip("by_name_pinned_maps_are_reused") {
        return;
    }
    // Any corpus object with a LIBBPF_PIN_BY_NAME map.
    let with_pin = corpus_objects().into_iter().find(|p| {
        let o = bpfkit_object::Object::parse(&std::fs::read(p).unwrap()).unwrap();
        o.maps.iter().any(|m| m.pinning == 1)
    });
    let Some(path) = with_pin else {
        eprintln!(
            "*** SKIPPED: by_name_pinned_maps_are_reused: no corpus object pins a map by name ***"
        );
        return;
    };
    let root = PathBuf::from(format!(
        "/sys/fs/bpf/bpfkit-test-byname-{}",
        std::process::id()
    ));
    std::fs::create_dir_all(&root).unwrap();
    let opts = LoadOptions {
        pin_root: Some(root.clone()),
        ..Default::default()
    };
    let mut a = LoadedObject::open(&path, &opts).unwrap();
    let b = LoadedObject::open(&path, &opts).unwrap();
    let pinned: Vec<_> = a.maps.iter().filter(|m| m.pinned.is_some()).collect();
    assert!(!pinned.is_empty());
    for m in &pinned {
        let other = b.maps.iter().find(|x| x.def.name == m.def.name).unwrap();
        assert!(other.reused);
        assert_eq!(other.map.info().unwrap().id, m.map.info().unwrap().id);
    }
    drop(b);
    a.unpin_all();
    std::fs::remove_dir(&root).unwrap();
}
