#!/usr/bin/env python3
"""Records what the kernel does with BPF timer callbacks and user ring buffer samples.

The per-packet recorder (kernel_record.py) cannot show either: timer callbacks fire in
real time after BPF_PROG_TEST_RUN returns, and nobody produces user ring buffer samples.
This script drives the corpus programs made for it and writes:

- expected/xdp_timer.callbacks.json: xdp_timer_clock commands (init, start with delays
  2-8 ms apart, periodic re-arm, cancel, hash element deleted), then a 300 ms wait; the
  callbacks' ring buffer records (key, firing count; the time is left out) in the order
  they ran, and the elements of clock_timers/clock_htimers with the time field masked;
- expected/xdp_user_ringbuf.samples.json: samples produced into the USER_RINGBUF the way
  libbpf's user_ring_buffer__reserve/submit/discard do, frames run in between, with the
  return values and every ring buffer record of each run.

The VM's tests/timers.rs replays both against the interpreter. Root/CAP_BPF needed;
prints SKIPPED and exits 2 otherwise (like kernel_record.py).
"""
import json
import mmap
import os
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kbpf  # noqa: E402
import kernel_record as kr  # noqa: E402

CORPUS = kr.CORPUS


def frame_cmd(op, key, ns=0, flags=0):
    return bytes(12) + b"\x88\xb5" + struct.pack("<IIQQq", op, key, ns, flags, 0)


class UserRing:
    """Producer side of a BPF_MAP_TYPE_USER_RINGBUF (libbpf's user_ring_buffer)."""

    def __init__(self, fd, size):
        self.page = mmap.PAGESIZE
        self.size = size
        self.cons = mmap.mmap(fd, self.page, mmap.MAP_SHARED, mmap.PROT_READ, offset=0)
        self.prod = mmap.mmap(fd, self.page + 2 * size, mmap.MAP_SHARED,
                              mmap.PROT_READ | mmap.PROT_WRITE, offset=self.page)

    def push(self, data, discard=False):
        cons = struct.unpack_from("<Q", self.cons, 0)[0]
        prod = struct.unpack_from("<Q", self.prod, 0)[0]
        total = (len(data) + 8 + 7) // 8 * 8
        if total > self.size:
            return "E2BIG"
        if self.size - (prod - cons) < total:
            return "ENOSPC"
        off = self.page + (prod & (self.size - 1))
        struct.pack_into("<II", self.prod, off, len(data) | (1 << 31), 0)  # busy
        struct.pack_into("<Q", self.prod, 0, prod + total)
        self.prod[off + 8:off + 8 + len(data)] = data
        struct.pack_into("<I", self.prod, off, len(data) | ((1 << 30) if discard else 0))
        return "ok"

    def close(self):
        self.cons.close()
        self.prod.close()


def load(name):
    path = os.path.join(CORPUS, "obj", name + ".o")
    ld = kr.Loaded(name, path, kbpf.Elf(path))
    ld.load()
    return ld


def record_timers():
    ld = load("xdp_timer")
    try:
        fd = ld.prog_fds["xdp_timer_clock"]
        rb = kbpf.RingBuf(ld.maps["codes"]["fd"], ld.maps["codes"]["max_entries"])
        ms = 1000000
        # (op, key, ns, flags): OP_INIT=1, START=2, CANCEL=3, REARM=4, HASH_INIT=6, HASH_DELETE=7
        cmds = [
            (1, 0, 0, 0), (1, 1, 0, 0), (1, 2, 0, 0), (1, 3, 0, 0),
            (4, 3, 2, 10 * ms),          # key 3 re-arms twice, every 10 ms
            (2, 0, 6 * ms, 0),
            (2, 1, 2 * ms, 0),
            (2, 2, 5 * ms, 0),
            (2, 3, 8 * ms, 0),
            (6, 9, 4 * ms, 0),           # hash key 9 fires at 4 ms
            (6, 8, 3 * ms, 0),           # hash key 8 ...
            (7, 8, 0, 0),                # ... is deleted before it fires
            (3, 2, 0, 0),                # key 2 cancelled: 1
            (3, 2, 0, 0),                # again: 0
            (2, 2, 1 * ms, 0),           # no callback any more: -EINVAL
            (1, 0, 0, 0),                # -EBUSY
        ]
        results = []
        for op, key, ns, flags in cmds:
            r = kbpf.test_run_xdp(fd, frame_cmd(op, key, ns, flags))
            ret = struct.unpack_from("<q", r["data_out"], 14 + 24)[0]
            results.append({"op": op, "key": key, "ns": ns, "flags": flags,
                            "retval": r["retval"], "ret": ret})
        time.sleep(0.3)
        firings = []
        for rec in rb.drain():
            key, _when, fired = struct.unpack("<QQQ", rec)
            firings.append([key, fired])
        rb.close()
        elems = {}
        for m in ("clock_timers", "clock_htimers"):
            info = ld.maps[m]
            out = []
            for k in sorted(kbpf.map_keys(info["fd"], info["key_size"])):
                v = kbpf.map_lookup(info["fd"], k, info["value_size"])
                if v is None:
                    continue
                fired, _at, key_seen, self_cancel, rearm, period = struct.unpack_from("<QQQqQQ", v, 16)
                if fired == 0 and rearm == 0:
                    continue
                out.append({"key": struct.unpack("<I", k)[0], "fired": fired, "key_seen": key_seen,
                            "self_cancel": self_cancel, "rearm": rearm, "period": period})
            elems[m] = out
        return {"object": "xdp_timer", "program": "xdp_timer_clock", "kernel": os.uname().release,
                "commands": results, "wait_ms": 300, "firings": firings, "elements": elems}
    finally:
        ld.close()


def record_user_ringbuf():
    ld = load("xdp_user_ringbuf")
    try:
        fd = ld.prog_fds["xdp_user_ringbuf"]
        urb = UserRing(ld.maps["urb"]["fd"], ld.maps["urb"]["max_entries"])
        seen = kbpf.RingBuf(ld.maps["seen"]["fd"], ld.maps["seen"]["max_entries"])
        steps = [
            ("run", 0),
            ("push", b"first sample"), ("push", b"abc"), ("discard", b"skipped"), ("push", b"fourth!!"),
            ("run", 0),
        ] + [("push", bytes([i]) * 8) for i in range(5)] + [
            ("run", 2), ("run", 0),
            ("push", bytes(4089)), ("push", b"\x01" * 4088), ("push", b""),
            ("run", 0), ("push", b""), ("run", 1),
        ]
        out = []
        for kind, arg in steps:
            if kind == "run":
                frame = bytes(12) + b"\x88\xb5" + bytes([arg]) + bytes(45)
                r = kbpf.test_run_xdp(fd, frame)
                out.append({"run": arg, "retval": r["retval"], "records": [x.hex() for x in seen.drain()]})
            else:
                res = urb.push(arg, discard=(kind == "discard"))
                out.append({"push": arg.hex(), "discard": kind == "discard", "result": res})
        urb.close()
        seen.close()
        return {"object": "xdp_user_ringbuf", "program": "xdp_user_ringbuf",
                "kernel": os.uname().release, "steps": out}
    finally:
        ld.close()


def main():
    if os.geteuid() != 0:
        kr.die_skip("not root: bpf(2) program loading and BPF_PROG_TEST_RUN need root/CAP_BPF")
    os.makedirs(kr.PIN_ROOT, exist_ok=True)
    only = sys.argv[2] if len(sys.argv) > 2 and sys.argv[1] == "--only" else None
    exp = os.path.join(CORPUS, "expected")
    if only in (None, "xdp_timer"):
        kr.write_json(os.path.join(exp, "xdp_timer.callbacks.json"), record_timers())
        print("async_record.py: xdp_timer callbacks", file=sys.stderr)
    if only in (None, "xdp_user_ringbuf"):
        kr.write_json(os.path.join(exp, "xdp_user_ringbuf.samples.json"), record_user_ringbuf())
        print("async_record.py: xdp_user_ringbuf samples", file=sys.stderr)


if __name__ == "__main__":
    main()
