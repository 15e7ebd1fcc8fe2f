#!/usr/bin/env python3
"""Consistency checks over the committed corpus (no kernel, no network needed).

- every src/NAME.c has obj/NAME.o and all reference-tool files;
- every program of every object (from the ELF) has an entry in NAME.kernel.json, a
  NAME.PROG.run.json and a NAME.PROG.submitted.json, and nothing is left over;
- run.json packets are exactly packets/index.json, in order, with the right lengths;
- map names used in run.json/submitted.json exist in kernel.json;
- every rejected/NAME.c has its .log, which says the load failed;
- the captures parse (pcap and pcapng, by an independent reader below) and hold
  the expected number of packets.
Exit status 0 when all hold, 1 otherwise (each problem printed).
"""
import json
import os
import struct
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kbpf  # noqa: E402

CORPUS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
problems = []


def problem(msg):
    problems.append(msg)


def path(*p):
    return os.path.join(CORPUS, *p)


def read_pcap(p):
    with open(p, "rb") as f:
        d = f.read()
    magic = d[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        e = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        e = ">"
    else:
        raise ValueError("bad magic %s" % magic.hex())
    off, n = 24, 0
    while off < len(d):
        if off + 16 > len(d):
            raise ValueError("record header cut at offset %d" % off)
        _s, _f, incl, orig = struct.unpack_from(e + "IIII", d, off)
        if incl > orig or off + 16 + incl > len(d):
            raise ValueError("record data cut at offset %d" % off)
        off += 16 + incl
        n += 1
    return n


def read_pcapng(p):
    with open(p, "rb") as f:
        d = f.read()
    off, n, ifaces = 0, 0, []
    while off < len(d):
        btype, blen = struct.unpack_from("<II", d, off)
        if blen < 12 or blen % 4 or off + blen > len(d):
            raise ValueError("bad block length %d at offset %d" % (blen, off))
        if struct.unpack_from("<I", d, off + blen - 4)[0] != blen:
            raise ValueError("trailing length mismatch at offset %d" % off)
        if btype == 0x0A0D0D0A and struct.unpack_from("<I", d, off + 8)[0] != 0x1A2B3C4D:
            raise ValueError("bad byte-order magic")
        if btype == 1:
            ifaces.append(struct.unpack_from("<H", d, off + 8)[0])
        if btype == 6:
            ifid, _hi, _lo, cap, orig = struct.unpack_from("<IIIII", d, off + 8)
            if ifid >= len(ifaces) or cap > orig or 28 + cap > blen:
                raise ValueError("bad EPB at offset %d" % off)
            n += 1
        off += blen
    return n, ifaces


def main():
    with open(path("packets", "index.json")) as f:
        index = json.load(f)
    for p in index:
        fp = path("packets", p["file"])
        if not os.path.exists(fp) or os.path.getsize(fp) != p["len"]:
            problem("packets/%s: missing or wrong length" % p["file"])

    names = sorted(f[:-2] for f in os.listdir(path("src")) if f.endswith(".c"))
    expected_files = set()
    for n in names:
        for suffix in ("objdump.txt", "objdump-r.txt", "objdump-raw.txt", "objdump-alu32.txt", "readelf.txt",
                       "btf.txt", "kernel.json", "libbpf.log"):
            fp = path("expected", "%s.%s" % (n, suffix))
            expected_files.add(os.path.basename(fp))
            if not os.path.exists(fp):
                problem("expected/%s.%s missing" % (n, suffix))
        if not os.path.exists(path("obj", n + ".o")):
            problem("obj/%s.o missing" % n)
            continue
        elf = kbpf.Elf(path("obj", n + ".o"))
        progs = [p[0] for p in elf.programs()]
        try:
            with open(path("expected", n + ".kernel.json")) as f:
                kj = json.load(f)
        except (OSError, ValueError) as e:
            problem("expected/%s.kernel.json: %s" % (n, e))
            continue
        kprogs = [p["name"] for p in kj.get("programs", [])]
        if sorted(kprogs) != sorted(progs):
            problem("%s: kernel.json programs %s, ELF programs %s" % (n, kprogs, progs))
        kmaps = {m["name"] for m in kj.get("maps", [])}
        for prog in progs:
            for kind in ("run.json", "submitted.json"):
                fn = "%s.%s.%s" % (n, prog, kind)
                expected_files.add(fn)
                if not os.path.exists(path("expected", fn)):
                    problem("expected/%s missing" % fn)
            try:
                with open(path("expected", "%s.%s.run.json" % (n, prog))) as f:
                    run = json.load(f)
                with open(path("expected", "%s.%s.submitted.json" % (n, prog))) as f:
                    sub = json.load(f)
            except (OSError, ValueError):
                continue
            got = [(p["name"], p["file"], p["len"]) for p in run["packets"]]
            want = [(p["name"], p["file"], p["len"]) for p in index]
            if got != want:
                problem("%s.%s.run.json: packets differ from packets/index.json" % (n, prog))
            for p in run["packets"]:
                if ("errno" in p) == ("retval" in p):
                    problem("%s.%s: packet %s needs exactly one of errno/retval" % (n, prog, p["name"]))
            used = set(run["maps_after"]) | set(run.get("fd_maps_after", {})) | set(run.get("maps_not_dumped", {}))
            used |= {s["map"] for s in run["map_setup"]} | {r["map"] for r in sub["map_refs"]}
            if used - kmaps:
                problem("%s.%s: maps %s not in kernel.json" % (n, prog, sorted(used - kmaps)))
    for f in os.listdir(path("expected")):
        if f.endswith((".run.json", ".submitted.json", ".kernel.json")) and f not in expected_files:
            problem("expected/%s has no source" % f)

    for f in sorted(os.listdir(path("rejected"))):
        if not f.endswith(".c"):
            continue
        log = path("expected", "rejected", f[:-2] + ".log")
        if not os.path.exists(log):
            problem("expected/rejected/%s.log missing" % f[:-2])
            continue
        with open(log) as fh:
            first = fh.readline()
        if "failed with" not in first:
            problem("expected/rejected/%s.log does not record a failed load" % f[:-2])

    counts = {"mixed.pcap": 300, "mixed-ns-be.pcap": 300, "mixed-snap96.pcap": 100}
    for f, want in counts.items():
        try:
            got = read_pcap(path("pcap", f))
            if got != want:
                problem("pcap/%s: %d packets, want %d" % (f, got, want))
        except ValueError as e:
            problem("pcap/%s: %s" % (f, e))
    for f, want, ifs in (("mixed.pcapng", 300, [1]), ("samples.pcapng", len(index), [1]),
                         ("multi-if.pcapng", 40, [1, 113])):
        try:
            got, ifaces = read_pcapng(path("pcap", f))
            if (got, ifaces) != (want, ifs):
                problem("pcap/%s: %d packets on %s, want %d on %s" % (f, got, ifaces, want, ifs))
        except ValueError as e:
            problem("pcap/%s: %s" % (f, e))
    for f in ("bad-truncated.pcap", "bad-magic.pcap"):
        try:
            read_pcap(path("pcap", f))
            problem("pcap/%s parses, but it is meant to be bad input" % f)
        except ValueError:
            pass

    for p in problems:
        print("selfcheck: " + p, file=sys.stderr)
    print("selfcheck: %d objects, %d problem(s)" % (len(names), len(problems)), file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
