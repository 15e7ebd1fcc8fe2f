#!/usr/bin/env python3
"""Script-driven robustness check of the `bpfkit` CLI (issue 17), run outside the test suite:

  tests/robustness/run.py [--bin target/release/bpfkit] [--sigint 100] [--malformed 3000] [--seed N]

Runs every subcommand with broken pipes, redirected stdout, captures on stdin / pipes /
FIFOs, SIGINT at random points, and malformed inputs, and checks:
  - no panic (status 101 or "panicked" on stderr) and no death by a signal;
  - every output file is accepted by capinfos (pcap, pcapng; bpfkit's own strict parser
    when capinfos is missing) or a JSON parser, except ones the summary marks INTERRUPTED
    (which must still parse: they end on a whole record);
  - exit statuses follow the contract: 0, 1, 2; 141 on a broken pipe; 130 after SIGINT.
Prints the figures per category; exits 1 when anything failed.
"""
import argparse
import json
import os
import random
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
C = os.path.join(ROOT, "corpus")
CONTRACT = {0, 1, 2}
failures = []
figures = {}


def fig(cat, key):
    figures.setdefault(cat, {}).setdefault(key, 0)
    figures[cat][key] += 1


def fail(cat, what):
    failures.append(f"{cat}: {what}")
    fig(cat, "FAILED")


def check_status(cat, args, rc, err, allowed):
    fig(cat, f"exit {rc}")
    if rc is None or rc < 0:
        fail(cat, f"{args}: killed by signal {-rc if rc else '?'}")
    elif rc == 101 or "panicked" in err:
        fail(cat, f"{args}: panic: {err[:300]}")
    elif rc not in allowed:
        fail(cat, f"{args}: exit {rc} not in {sorted(allowed)}: {err[:300]}")


def run(args, cwd, stdin=None, stdout=subprocess.PIPE, timeout=120):
    p = subprocess.run(
        [BIN] + args, cwd=cwd, input=stdin, stdout=stdout, stderr=subprocess.PIPE, timeout=timeout
    )
    return p.returncode, (p.stdout or b""), p.stderr.decode("utf-8", "replace")


# ---- validators ----

def pcap_ok(path):
    if shutil.which("capinfos"):
        p = subprocess.run(["capinfos", "-c", path], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        return p.returncode == 0, p.stderr.decode(errors="replace")[:200]
    return strict_capture(open(path, "rb").read())


def strict_capture(b):
    if b[:4] == b"\x0a\x0d\x0d\x0a":
        at = 0
        while at < len(b):
            if at + 8 > len(b):
                return False, "block header cut"
            ln = struct.unpack_from("<I", b, at + 4)[0]
            if ln < 12 or at + ln > len(b) or b[at + ln - 4:at + ln] != b[at + 4:at + 8]:
                return False, f"bad block at {at}"
            at += ln
        return True, ""
    if len(b) < 24:
        return False, "short header"
    at = 24
    while at < len(b):
        if at + 16 > len(b):
            return False, "record header cut"
        incl = struct.unpack_from("<I", b, at + 8)[0]
        if at + 16 + incl > len(b):
            return False, "record data cut"
        at += 16 + incl
    return True, ""


def json_ok(path, lines=False):
    try:
        with open(path) as f:
            if lines:
                text = f.read()
                if text and not text.endswith("\n"):
                    return False, "last line partial"
                for ln in text.splitlines():
                    json.loads(ln)
            else:
                json.load(f)
        return True, ""
    except Exception as e:  # noqa: BLE001
        return False, str(e)[:200]


def check_outputs(cat, d, interrupted):
    for root, _, files in os.walk(d):
        for f in files:
            p = os.path.join(root, f)
            if f.endswith(".tmp"):
                fail(cat, f"temporary file left: {p}")
                continue
            if f.endswith(".pcap") or f.endswith(".pcapng"):
                ok, why = pcap_ok(p)
            elif f.endswith(".jsonl"):
                ok, why = json_ok(p, lines=True)
            elif f.endswith(".json"):
                ok, why = json_ok(p)
            else:
                continue
            fig(cat, "output files checked")
            if not ok:
                fail(cat, f"{p} rejected{' (interrupted run)' if interrupted else ''}: {why}")


# ---- categories ----

def every_subcommand(d):
    obj = f"{C}/obj/xdp_firewall.o"
    cap = f"{C}/pcap/mixed.pcap"
    with open(os.path.join(d, "t.s"), "w") as f:
        f.write("mov %r0, 42\nexit\n")
    return [
        ["disasm", obj], ["disasm", obj, "-S"], ["asm", "t.s", "--hex"], ["asm", "t.s", "-o", "-"],
        ["inspect", obj], ["inspect", obj, "--json"], ["run", "t.s"],
        ["run", obj, "--packet", f"{C}/packets/00_ipv4_tcp_syn.bin", "--dump-maps"],
        ["verify", obj], ["verify", obj, "--format", "json"],
        ["replay", obj, cap], ["replay", obj, cap, "--format", "json"],
        ["replay", obj, cap, "--trace", "-"], ["replay", obj, cap, "--pcapng", "-"],
        ["replay", obj, cap, "--maps-out", "-"], ["replay", obj, cap, "--coverage", "-"],
        ["prog", "list"], ["prog", "list", "--json"], ["--help"], ["replay", "--help"],
    ]


def broken_pipes(d):
    cat = "broken pipe"
    for args in every_subcommand(d):
        r, w = os.pipe()
        os.close(r)
        p = subprocess.run([BIN] + args, cwd=d, stdout=w, stderr=subprocess.PIPE, timeout=120)
        os.close(w)
        err = p.stderr.decode(errors="replace")
        allowed = {0, 141} if args[-1] == "--help" or args[0] == "prog" else {141}
        check_status(cat, args, p.returncode, err, allowed)


def redirected_stdout(d):
    cat = "redirected stdout"
    obj = f"{C}/obj/xdp_firewall.o"
    cap = f"{C}/pcap/mixed.pcapng"
    for opt, name in [("--maps-out", "o.json"), ("--trace", "o.jsonl"), ("--pcapng", "o.pcapng"),
                      ("--maps-out", "o2.json")]:
        out = os.path.join(d, "redir")
        shutil.rmtree(out, ignore_errors=True)
        os.makedirs(out)
        target = "/dev/stdout" if name == "o2.json" else "-"
        with open(os.path.join(out, name), "wb") as f:
            p = subprocess.run([BIN, "replay", obj, cap, opt, target], cwd=d, stdout=f,
                               stderr=subprocess.PIPE, timeout=120)
        check_status(cat, [opt, target], p.returncode, p.stderr.decode(errors="replace"), {0})
        check_outputs(cat, out, False)
    for args, name in [(["inspect", obj, "--json"], "i.json"), (["verify", obj, "--format", "json"], "v.json")]:
        out = os.path.join(d, "redir")
        shutil.rmtree(out, ignore_errors=True)
        os.makedirs(out)
        with open(os.path.join(out, name), "wb") as f:
            p = subprocess.run([BIN] + args, cwd=d, stdout=f, stderr=subprocess.PIPE, timeout=120)
        check_status(cat, args, p.returncode, p.stderr.decode(errors="replace"), {0})
        check_outputs(cat, out, False)


def stdin_captures(d):
    cat = "stdin/pipe/FIFO captures"
    obj = f"{C}/obj/xdp_counter.o"
    for capf in sorted(os.listdir(f"{C}/pcap")):
        data = open(f"{C}/pcap/{capf}", "rb").read()
        want = run(["replay", obj, f"{C}/pcap/{capf}", "--format", "json"], d)
        for how in ["-", "/dev/stdin", "fifo"]:
            if how == "fifo":
                fifo = os.path.join(d, "cap.fifo")
                if os.path.exists(fifo):
                    os.unlink(fifo)
                os.mkfifo(fifo)
                proc = subprocess.Popen([BIN, "replay", obj, fifo, "--format", "json"], cwd=d,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                try:
                    with open(fifo, "wb") as w:
                        w.write(data)
                except BrokenPipeError:
                    pass
                out, err = proc.communicate(timeout=120)
                rc, err = proc.returncode, err.decode(errors="replace")
            else:
                rc, out, err = run(["replay", obj, how, "--format", "json"], d, stdin=data)
            check_status(cat, [capf, how], rc, err, CONTRACT)
            if rc != want[0]:
                fail(cat, f"{capf} via {how}: exit {rc}, from the file {want[0]}")
            elif rc == 0 and json.loads(out)["packets"] != json.loads(want[1])["packets"]:
                fail(cat, f"{capf} via {how}: packet count differs from the file")


def sigint_runs(d, n, rng):
    cat = "SIGINT at random points"
    big = os.path.join(d, "big.pcap")
    raw = open(f"{C}/pcap/mixed.pcap", "rb").read()
    with open(big, "wb") as f:
        f.write(raw[:24] + raw[24:] * 1000)
    obj = f"{C}/obj/xdp_csum.o"
    variants = [
        ["replay", obj, big, "--out", "out", "--trace", "out/t.jsonl", "--pcapng", "out/all.pcapng",
         "--maps-out", "out/maps.json"],
        ["replay", obj, big, "--out", "out", "--trace", "out/t.jsonl", "--queues", "4"],
        ["replay", obj, big, "--pcapng", "out/all.pcapng", "--engine", "jit", "--format", "json"],
        ["replay", f"{C}/obj/rejected/infinite_loop.o", big, "--trace", "out/t.jsonl", "--limit", "400"],
        ["verify", f"{C}/obj/xdp_firewall.o"],
        ["inspect", f"{C}/obj/xdp_firewall.o", "--json"],
        ["disasm", f"{C}/obj/xdp_firewall.o", "-S"],
    ]
    for i in range(n):
        args = variants[i % len(variants)]
        out = os.path.join(d, "out")
        shutil.rmtree(out, ignore_errors=True)
        os.makedirs(out)
        proc = subprocess.Popen([BIN] + args, cwd=d, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        # replays of the 300,000-packet capture take about a second; the others less
        time.sleep(rng.uniform(0.0, 0.8) if args[0] == "replay" else rng.uniform(0.0, 0.03))
        proc.send_signal(signal.SIGINT)
        so, se = proc.communicate(timeout=300)
        rc, err, so = proc.returncode, se.decode(errors="replace"), so.decode(errors="replace")
        check_status(cat, args[:3], rc, err, {0, 1, 130})
        interrupted = "INTERRUPTED" in so or '"interrupted"' in so
        fig(cat, "runs marked interrupted" if interrupted else "runs not marked interrupted")
        if rc == 130 and args[0] == "replay" and not interrupted and "NOT VERIFIED" not in err:
            # stopped before the replay loop began (object parsing): nothing written
            if any(files for _, _, files in os.walk(out)):
                fail(cat, f"{args[:3]}: exit 130 before the loop left files")
        if interrupted:
            # same count in every output
            line = [ln for ln in so.splitlines() if ln.startswith("INTERRUPTED")]
            if line:
                nums = [int(w) for w in line[0].replace(",", " ").split() if w.isdigit()]
                if len(set(nums)) != 1:
                    fail(cat, f"counts differ: {line[0]}")
        check_outputs(cat, out, interrupted)


def mutate(b, rng):
    b = bytearray(b)
    for _ in range(rng.randint(1, 8)):
        op = rng.random()
        if op < 0.5 and b:
            b[rng.randrange(len(b))] = rng.randrange(256)
        elif op < 0.7 and b:
            del b[rng.randrange(len(b)):]
        elif op < 0.85:
            pos = rng.randrange(len(b) + 1)
            b[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
        elif b:
            pos = rng.randrange(len(b))
            b[pos:pos + 4] = struct.pack("<I", rng.choice([0, 0xFFFFFFFF, 0x7FFFFFFF, 0x80000000, 65536]))
    return bytes(b)


def malformed(d, n, rng):
    cat = "malformed inputs"
    obj = f"{C}/obj/xdp_firewall.o"
    caps = [open(f"{C}/pcap/{f}", "rb").read() for f in sorted(os.listdir(f"{C}/pcap"))]
    objs = [open(f"{C}/obj/{f}", "rb").read() for f in sorted(os.listdir(f"{C}/obj")) if f.endswith(".o")]
    asm = b"mov %r0, 42\nldxw %r2, [%r1+4]\njeq %r2, 3, +1\nlddw %r3, 0x1122334455667788\nexit\n"
    maps = json.dumps({"blocked": [["0a000001", "01"]], "counters": [[0, "01" * 8]]}).encode()
    hexes = ["00", "aé0", "0x1", "zz", "ffff" * 40, "", " 0 0 ", "\u00ff\u00fe"]
    for i in range(n):
        kind = i % 6
        out = os.path.join(d, "m")
        shutil.rmtree(out, ignore_errors=True)
        os.makedirs(out)
        inp = os.path.join(d, "in")
        os.makedirs(inp, exist_ok=True)
        if kind == 0:
            data = mutate(rng.choice(caps), rng)
            open(os.path.join(inp, "c.pcap"), "wb").write(data)
            args = ["replay", obj, "in/c.pcap", "--trace", "m/t.jsonl", "--out", "m/o", "--pcapng", "m/o.pcapng"]
            stdin = None
        elif kind == 1:
            data = mutate(rng.choice(caps), rng)
            args = ["replay", obj, "-", "--trace", "m/t.jsonl"]
            stdin = data
        elif kind == 2:
            data = mutate(rng.choice(objs), rng)
            open(os.path.join(inp, "x.o"), "wb").write(data)
            sub = rng.choice([["inspect", "in/x.o"], ["verify", "in/x.o"], ["disasm", "in/x.o"],
                              ["replay", "in/x.o", f"{C}/pcap/mixed.pcap", "--insn-limit", "100000"],
                              ["run", "in/x.o", "--packet", f"{C}/packets/00_ipv4_tcp_syn.bin",
                               "--insn-limit", "100000"]])
            args, stdin = sub, None
        elif kind == 3:
            data = mutate(maps, rng)
            open(os.path.join(inp, "maps.json"), "wb").write(data)
            args = ["replay", obj, f"{C}/pcap/mixed.pcap", "--maps-in", "in/maps.json", "--maps-out", "m/after.json"]
            stdin = None
        elif kind == 4:
            data = mutate(asm, rng)
            open(os.path.join(inp, "x.s"), "wb").write(data)
            args = rng.choice([["asm", "in/x.s", "-o", "m/x.bin"], ["run", "in/x.s", "--insn-limit", "100000"]])
            stdin = None
        else:
            h = rng.choice(hexes) + "".join(rng.choice("0123456789abcdefé xg") for _ in range(rng.randint(0, 9)))
            args = rng.choice([["run", "-", "--mem", h], ["run", obj, "--packet-hex", h],
                               ["run", obj, "--packet-hex", "00" * 14, "--map-update", f"blocked:{h}:{h}"],
                               ["replay", obj, f"{C}/pcap/mixed.pcap", "--limit", h],
                               ["replay", obj, f"{C}/pcap/mixed.pcap", "--insn-limit", h]])
            stdin = b"\xb7\x00\x00\x00\x07\x00\x00\x00\x95\x00\x00\x00\x00\x00\x00\x00"
        rc, _, err = run(args, d, stdin=stdin)
        check_status(cat, args[:2], rc, err, CONTRACT)
        check_outputs(cat, out, False)


def main():
    global BIN
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(ROOT, "target/release/bpfkit"))
    ap.add_argument("--sigint", type=int, default=100)
    ap.add_argument("--malformed", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=17)
    a = ap.parse_args()
    BIN = os.path.abspath(a.bin)
    rng = random.Random(a.seed)
    d = tempfile.mkdtemp(prefix="bpfkit-robustness-")
    t0 = time.time()
    broken_pipes(d)
    redirected_stdout(d)
    stdin_captures(d)
    sigint_runs(d, a.sigint, rng)
    malformed(d, a.malformed, rng)
    shutil.rmtree(d, ignore_errors=True)
    print(f"bpfkit robustness check: {BIN}, seed {a.seed}, {time.time() - t0:.0f} s, "
          f"validator: {'capinfos' if shutil.which('capinfos') else 'built-in strict parser'}")
    for cat, f in figures.items():
        runs = sum(v for k, v in f.items() if k.startswith("exit "))
        print(f"  {cat}: {runs} runs; " + ", ".join(f"{k}: {v}" for k, v in sorted(f.items())))
    print(f"failures: {len(failures)}")
    for f in failures[:50]:
        print("  " + f)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
