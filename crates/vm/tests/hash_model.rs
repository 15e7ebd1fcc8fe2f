//! HASH / PERCPU_HASH / LRU_HASH / LRU_PERCPU_HASH maps against a model built on a
//! `BTreeMap`: random sequences of updates (every flag), deletes, program lookups (which
//! refresh LRU stamps), writes through the returned pointers, user-space lookups and
//! iteration, compared after every step. The model states the semantics the kernel
//! comparisons pin down (update flags and errno, `max_entries`, exact LRU eviction,
//! per-CPU values, key-ordered iteration, value buffers that never move while their element
//! lives), so the map's storage can change without anything observable changing.

use bpfkit_object::model::{map_type as mt, MapDef};
use bpfkit_vm::maps::{self, Lookup, Map, MapSet};
use bpfkit_vm::memory::{Buf, Regions};
use proptest::prelude::*;
use std::collections::BTreeMap;

#[derive(Debug, Clone)]
enum Op {
    /// `bpf_map_update_elem`; `prog`: from a program on that CPU (one CPU's value).
    Update {
        key: u8,
        flags: u64,
        prog: Option<u32>,
        fill: u8,
    },
    Delete {
        key: u8,
    },
    /// A program's `bpf_map_lookup_elem` on `cpu`, then a write of `fill` into the first
    /// value byte through the pointer when `write` is set.
    Lookup {
        key: u8,
        cpu: u32,
        write: Option<u8>,
    },
    /// The user-space view: every entry, and the `bpf_for_each_map_elem` order.
    Dump {
        cpu: u32,
    },
}

/// A key of `ks` bytes for key number `k`. Keys differ in the first byte and in the last
/// one, so long keys share their first 8 bytes with others (the tail decides equality)
/// and the byte order decides iteration order.
fn key_bytes(k: u8, ks: usize) -> Vec<u8> {
    let mut b: Vec<u8> = (0..ks).map(|i| (i as u8).wrapping_mul(29)).collect();
    b[0] ^= (k / 4).wrapping_mul(37);
    b[ks - 1] ^= (k % 4).wrapping_mul(0x41);
    b
}

struct ModelElem {
    /// All CPUs' values, each `stride` bytes (non-per-CPU maps: one value of `value_size`).
    value: Vec<u8>,
    used: u64,
    /// The address a program lookup returned (CPU 0's value), while the buffer lives.
    addr: Option<u64>,
}

struct Model {
    elems: BTreeMap<Vec<u8>, ModelElem>,
    clock: u64,
    map_type: u32,
    vs: usize,
    stride: usize,
    ncpus: usize,
    max: usize,
}

impl Model {
    fn percpu(&self) -> bool {
        matches!(self.map_type, mt::PERCPU_HASH | mt::LRU_PERCPU_HASH)
    }

    fn lru(&self) -> bool {
        matches!(self.map_type, mt::LRU_HASH | mt::LRU_PERCPU_HASH)
    }

    fn buf_len(&self) -> usize {
        if self.percpu() {
            self.stride * self.ncpus
        } else {
            self.vs
        }
    }

    /// Offset of `cpu`'s value in a value buffer.
    fn cpu_off(&self, cpu: u32) -> usize {
        if self.percpu() {
            cpu as usize * self.stride
        } else {
            0
        }
    }

    fn update(&mut self, key: &[u8], value: &[u8], flags: u64, prog: Option<u32>) -> i64 {
        self.clock += 1;
        let f = flags & !maps::BPF_F_LOCK;
        if f > maps::BPF_EXIST || flags & maps::BPF_F_LOCK != 0 {
            return maps::EINVAL;
        }
        let exists = self.elems.contains_key(key);
        if exists && f == maps::BPF_NOEXIST {
            return maps::EEXIST;
        }
        if !exists && f == maps::BPF_EXIST {
            return maps::ENOENT;
        }
        if !exists && self.elems.len() >= self.max {
            if !self.lru() {
                return maps::E2BIG;
            }
            let victim = self
                .elems
                .iter()
                .min_by_key(|(_, e)| e.used)
                .map(|(k, _)| k.clone())
                .expect("a full map has elements");
            self.elems.remove(&victim);
        }
        let clock = self.clock;
        if let (true, Some(cpu), true) = (self.percpu(), prog, exists) {
            let off = self.cpu_off(cpu);
            let e = self.elems.get_mut(key).expect("exists");
            e.value[off..off + value.len()].copy_from_slice(value);
            e.used = clock;
            return 0;
        }
        let mut v = vec![0u8; self.buf_len()];
        match (self.percpu(), prog) {
            (true, Some(cpu)) => {
                let off = self.cpu_off(cpu);
                v[off..off + self.vs].copy_from_slice(value);
            }
            (true, None) => {
                for c in 0..self.ncpus {
                    let r = c * self.stride..c * self.stride + self.vs;
                    v[r.clone()].copy_from_slice(&value[r]);
                }
            }
            (false, _) => v.copy_from_slice(value),
        }
        self.elems.insert(
            key.to_vec(),
            ModelElem {
                value: v,
                used: clock,
                addr: None,
            },
        );
        0
    }
}

/// The `vs` bytes at `addr`, read through the region table (so they must be a live,
/// readable map value).
fn read(regions: &Regions, addr: u64, vs: usize) -> Vec<u8> {
    (0..vs as u64)
        .map(|i| regions.load(addr + i, 1).expect("value readable") as u8)
        .collect()
}

fn run(map_type: u32, ks: usize, vs: usize, max: u32, ncpus: u32, ops: &[Op]) {
    let def = MapDef::plain("h", map_type, ks as u32, vs as u32, max, 0);
    let mut regions = Regions::new();
    let mut set = MapSet::new(&[def], ncpus, &|_| None, &mut regions).expect("map created");
    let mut graveyard: Vec<Buf> = Vec::new();
    let stride = (vs + 7) & !7;
    let mut model = Model {
        elems: BTreeMap::new(),
        clock: 0,
        map_type,
        vs,
        stride,
        ncpus: ncpus as usize,
        max: max as usize,
    };
    let check_dump = |m: &Map, model: &Model, regions: &Regions, cpu: u32| {
        let want: Vec<(Vec<u8>, Vec<u8>)> = model
            .elems
            .iter()
            .map(|(k, e)| (k.clone(), e.value.clone()))
            .collect();
        assert_eq!(m.entries(), want, "entries()");
        let iter = m.iter_addrs(cpu);
        let keys: Vec<&Vec<u8>> = iter.iter().map(|(k, _)| k).collect();
        let want_keys: Vec<&Vec<u8>> = model.elems.keys().collect();
        assert_eq!(keys, want_keys, "iter_addrs order");
        for ((k, addr), e) in iter.iter().zip(model.elems.values()) {
            let off = model.cpu_off(cpu);
            assert_eq!(
                read(regions, *addr, vs),
                e.value[off..off + vs].to_vec(),
                "value of {k:?} at iter_addrs"
            );
            if let Some(a) = e.addr {
                assert_eq!(*addr, a + off as u64, "value of {k:?} moved");
            }
        }
    };
    for (step, op) in ops.iter().enumerate() {
        let m = &mut set.maps[0];
        match *op {
            Op::Update {
                key,
                flags,
                prog,
                fill,
            } => {
                let k = key_bytes(key, ks);
                let prog = prog.map(|c| c % ncpus);
                let len = if model.percpu() && prog.is_none() {
                    stride * ncpus as usize
                } else {
                    vs
                };
                let v: Vec<u8> = (0..len).map(|i| fill.wrapping_add(i as u8)).collect();
                let got = m
                    .update(&k, &v, flags, prog, &mut regions, &mut graveyard)
                    .map_or_else(|e| e.errno, |()| 0);
                let want = model.update(&k, &v, flags, prog);
                assert_eq!(got, want, "step {step}: {op:?}");
            }
            Op::Delete { key } => {
                let k = key_bytes(key, ks);
                let got = m
                    .delete(&k, &mut graveyard)
                    .map_or_else(|e| e.errno, |()| 0);
                let want = if model.elems.remove(&k).is_some() {
                    0
                } else {
                    maps::ENOENT
                };
                assert_eq!(got, want, "step {step}: {op:?}");
            }
            Op::Lookup { key, cpu, write } => {
                let k = key_bytes(key, ks);
                let cpu = cpu % ncpus;
                model.clock += 1;
                let clock = model.clock;
                let off = model.cpu_off(cpu);
                let got = m.lookup_addr(&k, cpu);
                match (got, model.elems.get_mut(&k)) {
                    (Lookup::Null, None) => {}
                    (Lookup::Value(a), Some(e)) => {
                        e.used = clock;
                        let base = a - off as u64;
                        if let Some(prev) = e.addr {
                            assert_eq!(base, prev, "step {step}: value moved");
                        }
                        e.addr = Some(base);
                        assert_eq!(
                            read(&regions, a, vs),
                            e.value[off..off + vs].to_vec(),
                            "step {step}: value"
                        );
                        if let Some(b) = write {
                            regions.store(a, 1, b as u64).expect("value writable");
                            e.value[off] = b;
                        }
                    }
                    (Lookup::Null, Some(_)) => panic!("step {step}: {op:?} missed"),
                    (Lookup::Value(_), None) => panic!("step {step}: {op:?} found a ghost"),
                }
                // The user-space lookup (no LRU refresh) sees what a dump sees.
                let m = &set.maps[0];
                let want = model.elems.get(&k).map(|e| e.value.clone());
                assert_eq!(m.user_lookup(&k), want, "step {step}: user lookup");
                let dumped = m
                    .entries()
                    .into_iter()
                    .find(|(key, _)| *key == k)
                    .map(|(_, v)| v);
                assert_eq!(dumped, want, "step {step}: dump");
                assert_eq!(m.user_lookup(&k[1..]), None, "short key");
            }
            Op::Dump { cpu } => check_dump(&set.maps[0], &model, &regions, cpu % ncpus),
        }
        // A new element or a replaced value gets a new buffer: forget the old address
        // (elements whose buffer the map still holds keep theirs, checked above).
        if let Op::Update { key, prog, .. } = *op {
            let k = key_bytes(key, ks);
            let keep = model.percpu() && prog.is_some();
            if let Some(e) = model.elems.get_mut(&k) {
                if !keep {
                    e.addr = None;
                }
            }
        }
        assert_eq!(set.maps[0].entries().len(), model.elems.len());
        // Replaced and deleted buffers stay readable until the run ends.
        for b in &graveyard {
            regions.load(b.addr(), 1).expect("graveyard value readable");
        }
    }
    check_dump(&set.maps[0], &model, &regions, 0);
    set.graveyard.append(&mut graveyard);
    set.end_run(&mut regions);
}

fn op(nkeys: u8) -> impl Strategy<Value = Op> {
    let flags = prop_oneof![
        6 => 0u64..=2,
        1 => Just(maps::BPF_F_LOCK),
        1 => Just(8u64),
    ];
    prop_oneof![
        4 => (0..nkeys, flags, proptest::option::of(0u32..4), any::<u8>())
            .prop_map(|(key, flags, prog, fill)| Op::Update { key, flags, prog, fill }),
        2 => (0..nkeys).prop_map(|key| Op::Delete { key }),
        5 => (0..nkeys, 0u32..4, proptest::option::of(any::<u8>()))
            .prop_map(|(key, cpu, write)| Op::Lookup { key, cpu, write }),
        1 => (0u32..4).prop_map(|cpu| Op::Dump { cpu }),
    ]
}

fn map_type() -> impl Strategy<Value = u32> {
    prop_oneof![
        Just(mt::HASH),
        Just(mt::PERCPU_HASH),
        Just(mt::LRU_HASH),
        Just(mt::LRU_PERCPU_HASH),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 600, failure_persistence: None, ..ProptestConfig::default() })]

    /// Small maps that fill up: E2BIG, LRU eviction, flags.
    #[test]
    fn small_maps_match_the_model(
        t in map_type(),
        ks in prop_oneof![Just(1usize), Just(2), Just(3), Just(4), Just(5), Just(7), Just(8), Just(9), Just(12), Just(16), Just(40)],
        vs in prop_oneof![Just(1usize), Just(8), Just(12), Just(16)],
        max in 1u32..6,
        ncpus in 1u32..4,
        ops in proptest::collection::vec(op(12), 1..80),
    ) {
        run(t, ks, vs, max, ncpus, &ops);
    }

    /// Maps large enough to grow the table several times, with deletes in between.
    #[test]
    fn growing_maps_match_the_model(
        t in map_type(),
        ks in prop_oneof![Just(2usize), Just(4), Just(6), Just(8), Just(13)],
        max in 20u32..70,
        ops in proptest::collection::vec(op(64), 50..300),
    ) {
        run(t, ks, 8, max, 2, &ops);
    }

    /// LRU maps with far more keys than room: evictions on most inserts, lookups
    /// refreshing elements in between.
    #[test]
    fn lru_churn_matches_the_model(
        t in prop_oneof![Just(mt::LRU_HASH), Just(mt::LRU_PERCPU_HASH)],
        ks in prop_oneof![Just(2usize), Just(4), Just(8), Just(12)],
        max in 8u32..48,
        ops in proptest::collection::vec(op(200), 100..500),
    ) {
        run(t, ks, 8, max, 2, &ops);
    }
}

/// Every key of a map with 16-bit keys, inserted in a scrambled order and then half of
/// them deleted: iteration stays sorted by key bytes (little-endian bytes, not numbers),
/// and each value is found again at the address its lookup returned.
#[test]
fn full_u16_key_space_iterates_in_byte_order() {
    let def = MapDef::plain("h", mt::HASH, 2, 8, 65536, 0);
    let mut regions = Regions::new();
    let mut set = MapSet::new(&[def], 1, &|_| None, &mut regions).expect("map created");
    let mut g = Vec::new();
    let m = &mut set.maps[0];
    let order = |i: u32| (i.wrapping_mul(40503) & 0xffff) as u16;
    for i in 0..65536u32 {
        let k = order(i);
        m.update(
            &k.to_le_bytes(),
            &u64::from(k).to_le_bytes(),
            maps::BPF_NOEXIST,
            None,
            &mut regions,
            &mut g,
        )
        .expect("room for every key");
    }
    let e = m
        .update(
            &[0, 0],
            &[0; 8],
            maps::BPF_NOEXIST,
            None,
            &mut regions,
            &mut g,
        )
        .unwrap_err();
    assert_eq!(e.errno, maps::EEXIST);
    for k in (0..65536u32).step_by(2) {
        m.delete(&(k as u16).to_le_bytes(), &mut g)
            .expect("present");
    }
    let entries = m.entries();
    assert_eq!(entries.len(), 32768);
    let keys: Vec<Vec<u8>> = entries.iter().map(|(k, _)| k.clone()).collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted);
    for (k, v) in &entries {
        assert_eq!(k[0] & 1, 1, "even keys were deleted");
        assert_eq!(&v[..2], &k[..], "value of {k:?}");
        let Lookup::Value(a) = m.lookup_addr(k, 0) else {
            panic!("{k:?} missing")
        };
        assert_eq!(read(&regions, a, 8), *v);
    }
    for k in (0..65536u32).step_by(2) {
        assert!(matches!(
            m.lookup_addr(&(k as u16).to_le_bytes(), 0),
            Lookup::Null
        ));
    }
}
