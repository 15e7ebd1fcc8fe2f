//! BPF timers on the virtual clock and user ring buffer draining, with the corpus programs
//! `xdp_timer` and `xdp_user_ringbuf` (their error codes are compared with the kernel by
//! `tests/corpus.rs`; what the kernel cannot show deterministically — when callbacks run,
//! what they see, samples pushed by user space — is checked here).

use bpfkit_object::model::LinkedObject;
use bpfkit_vm::{maps, Config, Engine, Event, Interpreter, VmError, XdpInput};
use std::path::PathBuf;

fn object(name: &str) -> LinkedObject {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("../../corpus/obj/{name}.o"));
    let bytes = std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    bpfkit_object::Object::parse(&bytes)
        .expect("parse")
        .link()
        .expect("link")
}

struct Vm {
    vm: Interpreter,
    obj: LinkedObject,
}

impl Vm {
    fn new(name: &str) -> Vm {
        let obj = object(name);
        let vm = Interpreter::new(&obj, Config::default()).expect("interpreter");
        Vm { vm, obj }
    }
    fn prog(&self, name: &str) -> usize {
        self.obj
            .programs
            .iter()
            .position(|p| p.name == name)
            .expect("program")
    }
    fn map(&self, name: &str) -> usize {
        self.obj
            .maps
            .iter()
            .position(|m| m.name == name)
            .expect("map")
    }
    fn value(&self, map: &str, key: u32) -> Option<Vec<u8>> {
        self.vm
            .map_lookup(self.map(map), &key.to_le_bytes())
            .expect("lookup")
    }
}

const OP_INIT: u32 = 1;
const OP_START: u32 = 2;
const OP_CANCEL: u32 = 3;
const OP_REARM: u32 = 4;
const OP_UPDATE: u32 = 5;
const OP_HASH_INIT: u32 = 6;
const OP_HASH_DELETE: u32 = 7;
const ABS: u64 = 1;
const EINVAL: i64 = -22;
const EDEADLK: i64 = -35;

fn cmd_packet(op: u32, key: u32, ns: u64, flags: u64) -> Vec<u8> {
    let mut p = vec![0u8; 14];
    p[12] = 0x88;
    p[13] = 0xb5;
    p.extend_from_slice(&op.to_le_bytes());
    p.extend_from_slice(&key.to_le_bytes());
    p.extend_from_slice(&ns.to_le_bytes());
    p.extend_from_slice(&flags.to_le_bytes());
    p.extend_from_slice(&[0; 8]);
    p
}

/// Runs one command of `xdp_timer_clock` at `time_ns`: (helper result, events of the run).
fn cmd(v: &mut Vm, time_ns: u64, op: u32, key: u32, ns: u64, flags: u64) -> (i64, Vec<Event>) {
    let prog = v.prog("xdp_timer_clock");
    let pkt = cmd_packet(op, key, ns, flags);
    let out =
        v.vm.run_xdp(
            prog,
            &XdpInput {
                packet: &pkt,
                time_ns,
                ..Default::default()
            },
        )
        .expect("run");
    assert_eq!(out.retval, 3, "XDP_TX for a command");
    let ret = i64::from_le_bytes(out.packet[14 + 24..14 + 32].try_into().unwrap());
    (ret, out.events)
}

/// A frame the clock program ignores, at `time_ns`: the timer callbacks that ran before it.
fn tick(v: &mut Vm, time_ns: u64) -> Vec<(u64, u64, u64)> {
    let prog = v.prog("xdp_timer_clock");
    let pkt = [0u8; 60];
    let out =
        v.vm.run_xdp(
            prog,
            &XdpInput {
                packet: &pkt,
                time_ns,
                ..Default::default()
            },
        )
        .expect("run");
    assert_eq!(out.retval, 2);
    firings(v, &out.events)
}

/// Moves the clock without a packet: the timer callbacks that ran.
fn advance(v: &mut Vm, time_ns: u64) -> Vec<(u64, u64, u64)> {
    let ev = v.vm.advance_time(time_ns).expect("advance");
    firings(v, &ev)
}

/// Callback records: (key, time it ran, firing count).
fn firings(v: &Vm, events: &[Event]) -> Vec<(u64, u64, u64)> {
    let codes = v.map("codes");
    events
        .iter()
        .filter_map(|e| match e {
            Event::Record { map, data } if *map == codes && data.len() == 24 => {
                let w = |i: usize| u64::from_le_bytes(data[i * 8..i * 8 + 8].try_into().unwrap());
                Some((w(0), w(1), w(2)))
            }
            _ => None,
        })
        .collect()
}

fn elem_u64(v: &Vm, map: &str, key: u32, field: usize) -> u64 {
    let val = v.value(map, key).expect("element");
    // struct elem: bpf_timer (16), fired, fired_at, key_seen, self_cancel, rearm, period
    u64::from_le_bytes(val[16 + field * 8..24 + field * 8].try_into().unwrap())
}

#[test]
fn callbacks_fire_in_expiry_order_before_the_next_run() {
    let mut v = Vm::new("xdp_timer");
    for k in 0..3 {
        assert_eq!(cmd(&mut v, 0, OP_INIT, k, 0, 0).0, 0);
    }
    assert_eq!(cmd(&mut v, 10, OP_START, 0, 300, 0).0, 0); // expires 310
    assert_eq!(cmd(&mut v, 10, OP_START, 1, 100, 0).0, 0); // 110
    assert_eq!(cmd(&mut v, 20, OP_START, 2, 500, ABS).0, 0); // 500
    let pending = v.vm.pending_timers();
    assert_eq!(
        pending.iter().map(|p| p.expires_ns).collect::<Vec<_>>(),
        vec![110, 310, 500]
    );
    // Nothing is due at 109.
    assert!(tick(&mut v, 109).is_empty());
    // At 400: key 1 (110), then key 0 (310), each seeing its expiry as the time.
    assert_eq!(tick(&mut v, 400), vec![(1, 110, 1), (0, 310, 1)]);
    assert_eq!(elem_u64(&v, "clock_timers", 1, 1), 110);
    assert_eq!(
        elem_u64(&v, "clock_timers", 1, 2),
        1,
        "key passed to the callback"
    );
    assert_eq!(
        elem_u64(&v, "clock_timers", 1, 3) as i64,
        EDEADLK,
        "cancelling its own timer from the callback"
    );
    // advance_time fires without a packet.
    let ev = v.vm.advance_time(10_000).expect("advance");
    assert_eq!(firings(&v, &ev), vec![(2, 500, 1)]);
    assert!(v.vm.pending_timers().is_empty());
    // A fired timer is still initialised and keeps its callback: it can start again.
    assert_eq!(cmd(&mut v, 10_000, OP_START, 2, 5, 0).0, 0);
    assert_eq!(tick(&mut v, 10_005), vec![(2, 10_005, 2)]);
}

#[test]
fn equal_expiries_fire_in_start_order_and_restart_replaces_the_expiry() {
    let mut v = Vm::new("xdp_timer");
    for k in 0..3 {
        cmd(&mut v, 0, OP_INIT, k, 0, 0);
    }
    cmd(&mut v, 0, OP_START, 2, 100, 0);
    cmd(&mut v, 0, OP_START, 0, 100, 0);
    cmd(&mut v, 0, OP_START, 1, 50, 0);
    cmd(&mut v, 40, OP_START, 1, 60, 0); // restarted before it fired: now 100, started last
    assert_eq!(
        tick(&mut v, 100),
        vec![(2, 100, 1), (0, 100, 1), (1, 100, 1)]
    );
}

#[test]
fn cancel_stops_the_timer_and_drops_the_callback() {
    let mut v = Vm::new("xdp_timer");
    assert_eq!(
        cmd(&mut v, 0, OP_CANCEL, 0, 0, 0).0,
        EINVAL,
        "uninitialised"
    );
    assert_eq!(
        cmd(&mut v, 0, OP_START, 0, 10, 0).0,
        EINVAL,
        "uninitialised"
    );
    cmd(&mut v, 0, OP_INIT, 0, 0, 0);
    assert_eq!(cmd(&mut v, 0, OP_START, 0, 10, 4).0, EINVAL, "bad flags");
    assert_eq!(cmd(&mut v, 0, OP_START, 0, 100, 0).0, 0);
    assert_eq!(cmd(&mut v, 50, OP_CANCEL, 0, 0, 0).0, 1, "was armed");
    assert_eq!(cmd(&mut v, 50, OP_CANCEL, 0, 0, 0).0, 0, "not armed");
    assert!(tick(&mut v, 1000).is_empty());
    assert_eq!(elem_u64(&v, "clock_timers", 0, 0), 0, "never fired");
    // The callback is gone: start needs a new bpf_timer_set_callback (init says EBUSY).
    assert_eq!(cmd(&mut v, 1000, OP_START, 0, 10, 0).0, EINVAL);
    assert_eq!(cmd(&mut v, 1000, OP_INIT, 0, 0, 0).0, -16, "EBUSY");
}

#[test]
fn callbacks_can_rearm_their_timer() {
    let mut v = Vm::new("xdp_timer");
    cmd(&mut v, 0, OP_INIT, 4, 0, 0);
    cmd(&mut v, 0, OP_REARM, 4, 3, 50); // 3 more times, every 50 ns
    cmd(&mut v, 0, OP_START, 4, 100, 0);
    assert_eq!(tick(&mut v, 160), vec![(4, 100, 1), (4, 150, 2)]);
    assert_eq!(advance(&mut v, 1000), vec![(4, 200, 3), (4, 250, 4)]);
    assert_eq!(elem_u64(&v, "clock_timers", 4, 0), 4);
}

#[test]
fn a_timer_rearming_itself_forever_is_stopped() {
    let mut v = Vm::new("xdp_timer");
    cmd(&mut v, 0, OP_INIT, 0, 0, 0);
    cmd(&mut v, 0, OP_REARM, 0, u64::MAX, 0); // re-arm with delay 0, forever
    cmd(&mut v, 0, OP_START, 0, 10, 0);
    let e = v.vm.advance_time(10).unwrap_err();
    assert!(
        matches!(&e, VmError::Setup(m) if m.contains("re-arming")),
        "{e}"
    );
}

#[test]
fn past_and_absolute_expiries() {
    let mut v = Vm::new("xdp_timer");
    cmd(&mut v, 0, OP_INIT, 0, 0, 0);
    cmd(&mut v, 0, OP_INIT, 1, 0, 0);
    // A relative delay that overflows saturates like ktime_add_safe: never due.
    cmd(&mut v, 1000, OP_START, 1, u64::MAX - 10, 0);
    // Absolute time already past at 1000: fires at once, seeing the time it was started.
    cmd(&mut v, 1000, OP_START, 0, 5, ABS);
    assert_eq!(tick(&mut v, 1000), vec![(0, 1000, 1)]);
    assert_eq!(v.vm.pending_timers().len(), 1);
    assert!(v.vm.pending_timers()[0].expires_ns > 9_000_000_000_000_000_000);
}

#[test]
fn updating_or_deleting_the_element_frees_its_timer() {
    let mut v = Vm::new("xdp_timer");
    // Array: an update from the program frees the timer of that element.
    cmd(&mut v, 0, OP_INIT, 5, 0, 0);
    cmd(&mut v, 0, OP_START, 5, 100, 0);
    assert_eq!(cmd(&mut v, 10, OP_UPDATE, 5, 0, 0).0, 0);
    assert_eq!(cmd(&mut v, 10, OP_START, 5, 100, 0).0, EINVAL, "freed");
    assert!(tick(&mut v, 500).is_empty());
    assert_eq!(
        cmd(&mut v, 500, OP_INIT, 5, 0, 0).0,
        0,
        "initialisable again"
    );
    // ... and so does an update from user space.
    cmd(&mut v, 500, OP_START, 5, 100, 0);
    let m = v.map("clock_timers");
    v.vm.map_update(m, &5u32.to_le_bytes(), &[0; 64], 0)
        .expect("update");
    assert!(v.vm.pending_timers().is_empty());
    // Hash: the callback gets the element's key; deleting the element frees the timer.
    assert_eq!(cmd(&mut v, 1000, OP_HASH_INIT, 9, 100, 0).0, 0);
    assert_eq!(cmd(&mut v, 1000, OP_HASH_INIT, 3, 200, 0).0, 0);
    assert_eq!(cmd(&mut v, 1000, OP_HASH_DELETE, 9, 0, 0).0, 0);
    assert_eq!(tick(&mut v, 2000), vec![(3, 1200, 1)]);
    assert_eq!(elem_u64(&v, "clock_htimers", 3, 2), 3, "key seen");
    // A user-space delete frees it too.
    assert_eq!(
        cmd(&mut v, 2000, OP_HASH_INIT, 3, 0, 0).0,
        -16,
        "still initialised"
    );
    let h = v.map("clock_htimers");
    v.vm.map_delete(h, &3u32.to_le_bytes()).expect("delete");
    assert_eq!(cmd(&mut v, 2000, OP_HASH_INIT, 3, 100, 0).0, 0);
}

#[test]
fn timer_helpers_name_themselves_as_supported() {
    for id in 169..=172 {
        assert!(
            bpfkit_vm::helpers::SUPPORTED.iter().any(|(i, _)| *i == id),
            "{id}"
        );
    }
    assert!(bpfkit_vm::helpers::SUPPORTED.iter().any(|(i, _)| *i == 209));
}

// ---- user ring buffer ----

/// Runs `xdp_user_ringbuf` (callback stops after `stop_after` samples, 0 = never):
/// the report (badflags, drain, drain_nowakeup, callbacks) and the per-sample records
/// (n, dynptr_read result, nested drain result, first 8 bytes).
#[allow(clippy::type_complexity)]
fn drain(v: &mut Vm, stop_after: u8) -> ([i64; 4], Vec<(u64, i64, i64, Vec<u8>)>) {
    let prog = v.prog("xdp_user_ringbuf");
    let mut pkt = vec![0u8; 60];
    pkt[12] = 0x88;
    pkt[13] = 0xb5;
    pkt[14] = stop_after;
    let out =
        v.vm.run_xdp(
            prog,
            &XdpInput {
                packet: &pkt,
                ..Default::default()
            },
        )
        .expect("run");
    let w = |d: &[u8], i: usize| i64::from_le_bytes(d[i * 8..i * 8 + 8].try_into().unwrap());
    // Sample records and the final report are all 32 bytes; the report comes last.
    let records: Vec<&Vec<u8>> = out
        .events
        .iter()
        .map(|e| match e {
            Event::Record { data, .. } if data.len() == 32 => data,
            e => panic!("unexpected event {e:?}"),
        })
        .collect();
    let (report, samples) = records.split_last().expect("report record");
    let report = [w(report, 0), w(report, 1), w(report, 2), w(report, 3)];
    let samples = samples
        .iter()
        .map(|d| (w(d, 0) as u64, w(d, 1), w(d, 2), d[24..].to_vec()))
        .collect();
    (report, samples)
}

#[test]
fn user_ringbuf_samples_reach_the_callback_in_order() {
    let mut v = Vm::new("xdp_user_ringbuf");
    let urb = v.map("urb");
    // Empty ring: what the kernel answers under BPF_PROG_TEST_RUN (corpus run.json).
    let (r, s) = drain(&mut v, 0);
    assert_eq!(r, [EINVAL, 0, 0, 0]);
    assert!(s.is_empty());

    v.vm.user_ringbuf_push(urb, b"first sample").expect("push");
    v.vm.user_ringbuf_push(urb, b"abc").expect("push"); // shorter than 8: read -E2BIG
    v.vm.user_ringbuf_push_discarded(urb, b"skipped")
        .expect("push");
    v.vm.user_ringbuf_push(urb, b"fourth!!").expect("push");
    assert_eq!(v.vm.user_ringbuf_pending(urb), 4);
    let (r, s) = drain(&mut v, 0);
    assert_eq!(
        r,
        [EINVAL, 3, 0, 3],
        "3 samples, the discarded one not counted"
    );
    assert_eq!(
        s,
        vec![
            (0, 0, -16, b"first sa".to_vec()),
            (1, -7, -16, vec![0; 8]),
            (2, 0, -16, b"fourth!!".to_vec()),
        ]
    );
    assert_eq!(v.vm.user_ringbuf_pending(urb), 0);
}

#[test]
fn user_ringbuf_callback_returning_one_stops_the_drain() {
    let mut v = Vm::new("xdp_user_ringbuf");
    let urb = v.map("urb");
    for i in 0..5u8 {
        v.vm.user_ringbuf_push(urb, &[i; 8]).expect("push");
    }
    // Stop after 2 samples: the first drain returns 2 (the stopping sample counts); the
    // second drain of the same frame goes on with n = 2 >= 2, so it stops after 1 more.
    let (r, s) = drain(&mut v, 2);
    assert_eq!(r, [EINVAL, 2, 1, 3]);
    assert_eq!(s.len(), 3);
    assert_eq!(s[2].3, vec![2; 8]);
    assert_eq!(
        v.vm.user_ringbuf_pending(urb),
        2,
        "the rest stays for the next run"
    );
    let (r, _) = drain(&mut v, 0);
    assert_eq!(r, [EINVAL, 2, 0, 2]);
}

#[test]
fn user_ringbuf_space_follows_libbpf() {
    let mut v = Vm::new("xdp_user_ringbuf");
    let urb = v.map("urb"); // 4096 bytes
    let errno = |e: VmError| match e {
        VmError::Map(m) => m.errno,
        e => panic!("{e}"),
    };
    assert_eq!(
        errno(v.vm.user_ringbuf_push(urb, &[0; 4089]).unwrap_err()),
        maps::E2BIG
    );
    // 4088 + 8-byte header fills the ring exactly (allowed, unlike the kernel's RINGBUF).
    v.vm.user_ringbuf_push(urb, &[1; 4088])
        .expect("fits exactly");
    assert_eq!(
        errno(v.vm.user_ringbuf_push(urb, &[]).unwrap_err()),
        28,
        "ENOSPC"
    );
    let (r, s) = drain(&mut v, 0);
    assert_eq!((r[1], s.len()), (1, 1));
    v.vm.user_ringbuf_push(urb, &[]).expect("space again");
    let rb = v.map("seen");
    assert!(
        v.vm.user_ringbuf_push(rb, &[0; 8]).is_err(),
        "not a user ring"
    );
}

// ---- the kernel's recordings (corpus/tools/async_record.py) ----

fn expected(name: &str) -> serde_json::Value {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("../../corpus/expected/{name}"));
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_str(&text).expect("json")
}

fn elements(v: &Vm, map: &str) -> Vec<serde_json::Value> {
    let m = v.map(map);
    let mut out = Vec::new();
    for (k, val) in v.vm.map_entries(m).expect("entries") {
        let w = |i: usize| u64::from_le_bytes(val[16 + i * 8..24 + i * 8].try_into().unwrap());
        let (fired, rearm) = (w(0), w(4));
        if fired == 0 && rearm == 0 {
            continue;
        }
        out.push(serde_json::json!({
            "key": u32::from_le_bytes(k[..4].try_into().unwrap()),
            "fired": fired, "key_seen": w(2), "self_cancel": w(3) as i64,
            "rearm": rearm, "period": w(5),
        }));
    }
    out
}

#[test]
fn timer_callbacks_match_the_kernel_recording() {
    let rec = expected("xdp_timer.callbacks.json");
    let mut v = Vm::new("xdp_timer");
    // The kernel ran the commands microseconds apart; here they all run at time 0, which
    // keeps the expiry order (the delays are milliseconds apart).
    let mut firings_seen = Vec::new();
    for c in rec["commands"].as_array().expect("commands") {
        let n = |f: &str| c[f].as_u64().expect(f);
        let (ret, ev) = cmd(
            &mut v,
            0,
            n("op") as u32,
            n("key") as u32,
            n("ns"),
            n("flags"),
        );
        assert_eq!(ret, c["ret"].as_i64().unwrap(), "command {c}");
        firings_seen.extend(firings(&v, &ev));
    }
    let wait = rec["wait_ms"].as_u64().unwrap() * 1_000_000;
    firings_seen.extend(advance(&mut v, wait));
    let got: Vec<[u64; 2]> = firings_seen.iter().map(|(k, _, n)| [*k, *n]).collect();
    let want: Vec<[u64; 2]> = serde_json::from_value(rec["firings"].clone()).expect("firings");
    assert_eq!(got, want, "callback order and counts");
    for m in ["clock_timers", "clock_htimers"] {
        assert_eq!(
            serde_json::Value::Array(elements(&v, m)),
            rec["elements"][m],
            "{m} after the callbacks"
        );
    }
}

#[test]
fn user_ringbuf_matches_the_kernel_recording() {
    let rec = expected("xdp_user_ringbuf.samples.json");
    let mut v = Vm::new("xdp_user_ringbuf");
    let (urb, seen) = (v.map("urb"), v.map("seen"));
    let prog = v.prog("xdp_user_ringbuf");
    let mut runs = 0;
    for s in rec["steps"].as_array().expect("steps") {
        if let Some(stop) = s["run"].as_u64() {
            let mut pkt = vec![0u8; 60];
            pkt[12] = 0x88;
            pkt[13] = 0xb5;
            pkt[14] = stop as u8;
            let out =
                v.vm.run_xdp(
                    prog,
                    &XdpInput {
                        packet: &pkt,
                        ..Default::default()
                    },
                )
                .expect("run");
            assert_eq!(out.retval, s["retval"].as_u64().unwrap(), "{s}");
            let got: Vec<String> = out
                .events
                .iter()
                .filter_map(|e| match e {
                    Event::Record { map, data } if *map == seen => {
                        Some(data.iter().map(|b| format!("{b:02x}")).collect())
                    }
                    _ => None,
                })
                .collect();
            let want: Vec<String> = serde_json::from_value(s["records"].clone()).unwrap();
            assert_eq!(got, want, "run {runs}");
            runs += 1;
        } else {
            let hex = s["push"].as_str().unwrap();
            let data: Vec<u8> = (0..hex.len() / 2)
                .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
                .collect();
            let r = if s["discard"].as_bool().unwrap() {
                v.vm.user_ringbuf_push_discarded(urb, &data)
            } else {
                v.vm.user_ringbuf_push(urb, &data)
            };
            let got = match r {
                Ok(()) => "ok".to_string(),
                Err(VmError::Map(e)) if e.errno == maps::E2BIG => "E2BIG".into(),
                Err(VmError::Map(e)) if e.errno == 28 => "ENOSPC".into(),
                Err(e) => e.to_string(),
            };
            assert_eq!(
                got,
                s["result"].as_str().unwrap(),
                "push of {} bytes",
                data.len()
            );
        }
    }
    assert!(runs >= 5);
}

#[test]
fn an_element_evicted_from_an_lru_map_loses_its_timer() {
    const OP_LRU_INIT: u32 = 8;
    let mut v = Vm::new("xdp_timer");
    // clock_lru holds 2 elements; the third key evicts the least recently used (key 1).
    assert_eq!(cmd(&mut v, 0, OP_LRU_INIT, 1, 100, 0).0, 0);
    assert_eq!(cmd(&mut v, 0, OP_LRU_INIT, 2, 200, 0).0, 0);
    assert_eq!(cmd(&mut v, 0, OP_LRU_INIT, 3, 300, 0).0, 0);
    let lru = v.map("clock_lru");
    let keys: Vec<Vec<u8>> =
        v.vm.pending_timers()
            .iter()
            .map(|p| p.key.clone())
            .collect();
    assert_eq!(
        keys,
        vec![2u32.to_le_bytes().to_vec(), 3u32.to_le_bytes().to_vec()]
    );
    assert!(v.vm.pending_timers().iter().all(|p| p.map == lru));
    assert_eq!(tick(&mut v, 1000), vec![(2, 200, 1), (3, 300, 1)]);
}
