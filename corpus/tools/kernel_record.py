#!/usr/bin/env python3
"""Record what the running kernel makes of the corpus (see corpus/README.md).

For every corpus/obj/NAME.o:
  expected/NAME.kernel.json        programs and maps as the kernel created them
  expected/NAME.PROG.run.json      BPF_PROG_TEST_RUN results of PROG on the sample packets
For every corpus/obj/rejected/NAME.o:
  expected/rejected/NAME.log       the verifier log of the rejected load

Objects are loaded with `bpftool prog loadall` (libbpf) except those libbpf >= 1.0
refuses (a legacy "maps" section): those go through the minimal loader below.
Run this pinned to one CPU (build.sh uses `taskset -c 0`).

Exit status: 0 ok, 1 a corpus program was rejected (or a rejected sample
accepted), 2 the kernel cannot be used here (printed loudly, nothing written).
"""
import argparse
import errno
import json
import os
import platform
import re
import shutil
import subprocess
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kbpf  # noqa: E402
import libbpf_insns  # noqa: E402

CORPUS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PIN_ROOT = "/sys/fs/bpf/bpfkit-corpus"

MAP_TYPE_NAMES = [
    "unspec", "hash", "array", "prog_array", "perf_event_array", "percpu_hash", "percpu_array",
    "stack_trace", "cgroup_array", "lru_hash", "lru_percpu_hash", "lpm_trie", "array_of_maps",
    "hash_of_maps", "devmap", "sockmap", "cpumap", "xskmap", "sockhash", "cgroup_storage",
    "reuseport_sockarray", "percpu_cgroup_storage", "queue", "stack", "sk_storage", "devmap_hash",
    "struct_ops", "ringbuf", "inode_storage", "task_storage", "bloom_filter", "user_ringbuf",
    "cgrp_storage", "arena",
]
PROG_TYPE_NAMES = {6: "xdp"}
PERCPU_TYPES = {5, 6, 10, 21}
ARRAY_TYPES = {2, 6}  # entries that are all zero are left out of maps_after
NOT_DUMPED = {27: "RINGBUF has no keys; its records are listed per packet under events",
              30: "BLOOM_FILTER cannot be enumerated (membership queries only)",
              31: "USER_RINGBUF has no keys; user space produces its samples (none here)"}
QUEUE_STACK = (22, 23)  # dumped by popping: [["", value], ...] in pop order
PROG_ARRAY, MAP_OF_MAPS = 3, (12, 13)  # values read back as ids: recorded by name


def die_skip(msg):
    bar = "!" * 78
    print("%s\nkernel_record.py: SKIPPED: %s\nKernel expectations were NOT regenerated.\n%s" % (bar, msg, bar),
          file=sys.stderr)
    sys.exit(2)


def possible_cpus():
    with open("/sys/devices/system/cpu/possible") as f:
        text = f.read().strip()
    n = 0
    for part in text.split(","):
        a, _, b = part.partition("-")
        n = max(n, int(b or a) + 1)
    return n


def source_directives(src, key):
    out = []
    with open(src) as f:
        for line in f:
            m = re.match(r"^//\s*%s:\s*(.*)$" % re.escape(key), line)
            if m:
                out.append(m.group(1).split())
    return out


def write_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=1, sort_keys=False)
        f.write("\n")


# ------------------------------------------------------------------ loading


class Loaded:
    """An object loaded into the kernel and pinned under PIN_ROOT/NAME/{progs,maps}."""

    def __init__(self, name, path, elf, by_name_pins=()):
        self.name, self.path, self.elf = name, path, elf
        # Maps pinned by name (LIBBPF_PIN_BY_NAME): libbpf pins them under /sys/fs/bpf
        # itself and would reuse a stale pin, so those pins are removed around loads.
        self.by_name_pins = list(by_name_pins)
        self.dir = os.path.join(PIN_ROOT, name)
        self.loader = None
        self.prog_fds = {}  # ELF function name -> fd
        self.maps = {}      # ELF-level map name -> {"fd", "libbpf_name", info...}
        self.submitted = {}  # legacy loader: function -> (insns with fds zeroed, map refs)

    def load(self):
        self.unpin()
        os.makedirs(self.dir, exist_ok=True)
        if self.elf.section("maps") is not None:
            self._load_legacy()
        else:
            self._load_bpftool()
        self._collect()

    def _load_bpftool(self):
        self.loader = "bpftool prog loadall (libbpf)"
        cmd = ["bpftool", "prog", "loadall", self.path, self.dir + "/progs"]
        if not self.by_name_pins:
            # (pinmaps refuses maps libbpf already pinned by name elsewhere)
            cmd += ["pinmaps", self.dir + "/maps"]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError("%s rejected:\n%s" % (" ".join(cmd), r.stderr[-6000:]))

    def _load_legacy(self):
        """Minimal loader for legacy `struct bpf_map_def SEC("maps")` objects (no calls, no BTF)."""
        self.loader = "corpus/tools/kernel_record.py legacy loader"
        elf = self.elf
        os.makedirs(self.dir + "/progs", exist_ok=True)
        os.makedirs(self.dir + "/maps", exist_ok=True)
        maps_sec = elf.section("maps")
        body = elf.body(maps_sec)
        fds = {}
        fd_names = {}
        syms = sorted((s for s in elf.symbols if s["shndx"] == maps_sec["index"] and s["type"] == elf.STT_OBJECT),
                      key=lambda s: s["value"])
        for s in syms:
            mtype, ks, vs, me, flags = kbpf.struct.unpack_from("<5I", body, s["value"])
            fd = kbpf.map_create(mtype, ks, vs, me, flags, s["name"])
            kbpf.obj_pin(fd, self.dir + "/maps/" + s["name"])
            fds[s["value"]] = fd
            fd_names[s["value"]] = s["name"]
        lic_sec = elf.section("license")
        lic = elf.body(lic_sec).split(b"\0", 1)[0].decode() if lic_sec else ""
        for fname, secname, off, code in elf.programs():
            code = bytearray(code)
            sec = elf.section(secname)
            refs = []
            for roff, sym, rtype in elf.relocations(sec["index"]):
                if not off <= roff < off + len(code):
                    continue
                i = roff - off
                if code[i] != 0x18:
                    raise RuntimeError("%s: relocation at %#x is not on ld_imm64" % (fname, roff))
                if sym["shndx"] != maps_sec["index"]:
                    raise RuntimeError("%s: relocation against %s not supported by the legacy loader"
                                       % (fname, sym["name"]))
                code[i + 1] = (code[i + 1] & 0x0F) | (kbpf.BPF_PSEUDO_MAP_FD << 4)
                refs.append({"insn": i // 8, "kind": "map_fd", "map": fd_names[sym["value"]]})
                kbpf.struct.pack_into("<i", code, i + 4, fds[sym["value"]])
            zeroed = bytearray(code)
            for r in refs:
                kbpf.struct.pack_into("<i", zeroed, r["insn"] * 8 + 4, 0)
            self.submitted[fname] = (bytes(zeroed), refs)
            fd, err, log = kbpf.prog_load(kbpf.BPF_PROG_TYPE_XDP, bytes(code), lic, fname)
            if fd is None:
                raise RuntimeError("%s: kernel rejected %s (%s):\n%s" % (self.name, fname, os.strerror(err),
                                                                         log[-6000:]))
            kbpf.obj_pin(fd, self.dir + "/progs/" + fname)
            os.close(fd)
        for fd in fds.values():
            os.close(fd)

    def _collect(self):
        for fname, secname, _off, _code in self.elf.programs():
            self.prog_fds[fname] = kbpf.obj_get(os.path.join(self.dir, "progs", fname))
        declared = self.elf.map_symbols()
        data_secs = self.elf.data_sections()
        mapdir = os.path.join(self.dir, "maps")
        found = []  # (libbpf-ish name, fd)
        if self.by_name_pins:
            # No pinmaps: reach the maps through the ids the programs use.
            ids = set()
            for fd in self.prog_fds.values():
                ids.update(kbpf.prog_info(fd)["map_ids"])
            for mid in sorted(ids):
                fd = kbpf.map_fd_by_id(mid)
                kname = kbpf.map_info(fd)["kernel_name"]
                full = next((d for d in declared if d[:15] == kname), kname.replace(".", "_"))
                found.append((full, fd))
        else:
            for pin in sorted(os.listdir(mapdir)) if os.path.isdir(mapdir) else []:
                found.append((pin, kbpf.obj_get(os.path.join(self.dir, "maps", pin))))
        for pin, fd in found:
            info = kbpf.map_info(fd)
            elf_name = None
            if pin in declared:
                elf_name = pin
            else:
                # libbpf names global-data maps "<obj prefix>.<section>" and bpftool pins
                # them with '.' turned into '_'.
                for sec in data_secs:
                    if pin.endswith(sec.replace(".", "_")):
                        elf_name = sec
            if elf_name is None:
                raise RuntimeError("%s: cannot tell which ELF map the pinned map %s is" % (self.name, pin))
            info.update({"fd": fd, "pin": pin, "section": declared.get(elf_name, elf_name)})
            self.maps[elf_name] = info

    def close(self):
        for fd in self.prog_fds.values():
            os.close(fd)
        for m in self.maps.values():
            os.close(m["fd"])
        self.prog_fds, self.maps = {}, {}
        self.unpin()

    def unpin(self):
        if os.path.isdir(self.dir):
            shutil.rmtree(self.dir)
        for n in self.by_name_pins:
            p = os.path.join("/sys/fs/bpf", n)
            if os.path.exists(p):
                os.remove(p)


# ------------------------------------------------------------------ recording


def kernel_json(ld):
    by_id = {m["id"]: n for n, m in ld.maps.items()}
    progs = []
    for fname, secname, _off, _code in ld.elf.programs():
        info = kbpf.prog_info(ld.prog_fds[fname])
        progs.append({
            "name": fname,
            "section": secname,
            "accepted": True,
            "kernel_name": info["kernel_name"],
            "type": info["type"],
            "type_name": PROG_TYPE_NAMES.get(info["type"], str(info["type"])),
            "gpl_compatible": info["gpl_compatible"],
            "tag": info["tag"],
            "xlated_insns": info["xlated_insns"],
            "verified_insns": info["verified_insns"],
            "used_maps": [by_id.get(i, "?") for i in info["map_ids"]],
        })
    maps = []
    for n, m in sorted(ld.maps.items(), key=lambda kv: kv[1]["id"]):
        maps.append({
            "name": n,
            "section": m["section"],
            "kernel_name": m["kernel_name"],
            "type": m["type"],
            "type_name": MAP_TYPE_NAMES[m["type"]] if m["type"] < len(MAP_TYPE_NAMES) else str(m["type"]),
            "key_size": m["key_size"],
            "value_size": m["value_size"],
            "max_entries": m["max_entries"],
            "flags": m["flags"],
            "map_extra": m["map_extra"],
            "has_btf": m["btf_id"] != 0,
        })
    return {"object": ld.name, "kernel": platform.release(), "loader": ld.loader,
            "programs": progs, "maps": maps}


def dump_maps(ld, ncpus):
    """(maps_after, fd_maps_after, not_dumped): see corpus/README.md."""
    out, fd_out, skipped = {}, {}, {}
    map_by_id = {m["id"]: n for n, m in ld.maps.items()}
    prog_by_id = {kbpf.prog_info(fd)["id"]: n for n, fd in ld.prog_fds.items()}
    for n, m in sorted(ld.maps.items()):
        if m["type"] in NOT_DUMPED:
            skipped[n] = NOT_DUMPED[m["type"]]
            continue
        vlen = m["value_size"]
        if m["type"] in PERCPU_TYPES:
            vlen = ((vlen + 7) // 8 * 8) * ncpus
        entries = []
        if m["type"] in QUEUE_STACK:
            out[n] = [["", v.hex()] for v in kbpf.map_pop_all(m["fd"], vlen)]
            continue
        for k in sorted(kbpf.map_keys(m["fd"], m["key_size"])):
            try:
                v = kbpf.map_lookup(m["fd"], k, vlen)
            except kbpf.BpfError as e:
                if e.errno == errno.ENOENT:
                    continue
                raise
            if m["type"] in ARRAY_TYPES and not any(v):
                continue
            if m["type"] == PROG_ARRAY:
                pid = kbpf.struct.unpack("<I", v[:4])[0]
                entries.append([k.hex(), {"program": prog_by_id.get(pid, "?id%d" % pid)}])
            elif m["type"] in MAP_OF_MAPS:
                mid = kbpf.struct.unpack("<I", v[:4])[0]
                entries.append([k.hex(), {"map": map_by_id.get(mid, "?id%d" % mid)}])
            else:
                entries.append([k.hex(), v.hex()])
        if m["type"] == PROG_ARRAY or m["type"] in MAP_OF_MAPS:
            fd_out[n] = entries
            skipped[n] = "values are kernel %s ids; see fd_maps_after" % (
                "program" if m["type"] == PROG_ARRAY else "map")
        else:
            out[n] = entries
    return out, fd_out, skipped


TRACE_FILES = ["/sys/kernel/tracing/trace", "/sys/kernel/debug/tracing/trace"]
TRACE_LINE = re.compile(r"^.*?-(\d+)\s+\[\d+\].*?: bpf_trace_printk: (.*)$")


def uses_printk(code):
    """True when the program calls bpf_trace_printk (6) or bpf_trace_vprintk (177)."""
    for i in range(0, len(code) - 7, 8):
        if code[i] == 0x85 and code[i + 1] >> 4 == 0:
            if kbpf.struct.unpack_from("<i", code, i + 4)[0] in (6, 177):
                return True
    return False


class TracePrintk:
    """bpf_trace_printk lines written by this process, read back from tracefs."""

    def __init__(self):
        self.path = next((p for p in TRACE_FILES if os.path.exists(p)), None)
        if self.path is None:
            raise RuntimeError("tracefs is not mounted (mount -t tracefs nodev /sys/kernel/tracing): "
                               "cannot record bpf_printk output")
        self.pid = os.getpid()
        self.seen = len(self._mine())

    def _mine(self):
        out = []
        with open(self.path, errors="replace") as f:
            for line in f:
                m = TRACE_LINE.match(line.rstrip("\n"))
                if m and int(m.group(1)) == self.pid:
                    out.append(m.group(2))
        return out

    def drain(self):
        lines = self._mine()
        new = lines[self.seen:]
        self.seen = len(lines)
        return new


def record_run(ld, prog, setup, packets, ncpus, nondet, printk):
    fd = ld.prog_fds[prog]
    applied = []
    for mapname, key, value in setup:
        if mapname not in ld.maps:
            raise RuntimeError("%s: corpus-map-setup names unknown map %s" % (ld.name, mapname))
        kbpf.map_update(ld.maps[mapname]["fd"], bytes.fromhex(key), bytes.fromhex(value))
        applied.append({"map": mapname, "key": key, "value": value})
    rings = {n: kbpf.RingBuf(m["fd"], m["max_entries"]) for n, m in ld.maps.items() if m["type"] == 27}
    trace = TracePrintk() if printk else None
    results = []
    try:
        for p in packets:
            with open(os.path.join(CORPUS, "packets", p["file"]), "rb") as f:
                data = f.read()
            entry = {"name": p["name"], "file": p["file"], "len": len(data)}
            try:
                r = kbpf.test_run_xdp(fd, data)
            except kbpf.BpfError as e:
                entry["errno"] = e.errno
                entry["error"] = errno.errorcode.get(e.errno, str(e.errno))
                results.append(entry)
                continue
            md = r["ctx_out"]
            meta_len = md[0] if md else 0
            entry["retval"] = r["retval"]
            entry["meta_len"] = meta_len
            entry["data_out"] = None if r["data_out"] == data else r["data_out"].hex()
            events = []
            for n, rb in sorted(rings.items()):
                events += [{"map": n, "data": rec.hex()} for rec in rb.drain()]
            if trace is not None:
                events += [{"printk": line} for line in trace.drain()]
            entry["events"] = events
            results.append(entry)
    finally:
        for rb in rings.values():
            rb.close()
    maps_after, fd_maps_after, skipped = dump_maps(ld, ncpus)
    for mapname in nondet:
        if mapname not in maps_after:
            raise RuntimeError("%s: corpus-nondeterministic names unknown map %s" % (ld.name, mapname))
        maps_after[mapname] = [[k, None] for k, _v in maps_after[mapname]]
    out = {
        "object": ld.name,
        "program": prog,
        "kernel": platform.release(),
        "cpu": 0,
        "num_possible_cpus": ncpus,
        "ingress_ifindex": 1,
        "rx_queue_index": 0,
        "map_setup": applied,
        "packets": results,
        "maps_after": maps_after,
    }
    if fd_maps_after:
        out["fd_maps_after"] = fd_maps_after
    if skipped:
        out["maps_not_dumped"] = skipped
    if nondet:
        out["nondeterministic"] = nondet
    return out


def submitted_insns(ld, kjson):
    """Per program: what was submitted to BPF_PROG_LOAD, checked against the kernel's tag."""
    if ld.submitted:
        loader = "corpus/tools/kernel_record.py legacy loader"
        progs = {f: {"section": sec, "insns": ld.submitted[f][0], "map_refs": ld.submitted[f][1]}
                 for f, sec, _o, _c in ld.elf.programs()}
    else:
        declared = ld.elf.map_symbols()
        data_secs = ld.elf.data_sections()

        def elf_name(libbpf_name):
            if libbpf_name in declared:
                return libbpf_name
            for sec in data_secs:
                if libbpf_name.endswith(sec):
                    return sec
            return libbpf_name

        loader = "libbpf %s (bpf_program__insns after bpf_object__load)" % libbpf_insns.version()
        progs = libbpf_insns.dump(ld.path, elf_name)
    tags = {p["name"]: p["tag"] for p in kjson["programs"]}
    out = {}
    for name, p in progs.items():
        tag = libbpf_insns.tag_of(p["insns"])
        if tag != tags.get(name):
            raise RuntimeError("%s.%s: tag of the recorded instructions %s differs from the kernel's %s"
                               % (ld.name, name, tag, tags.get(name)))
        out[name] = {
            "object": ld.name,
            "program": name,
            "section": p["section"],
            "loader": loader,
            "tag": tag,
            "insns": [p["insns"][i:i + 8].hex() for i in range(0, len(p["insns"]), 8)],
            "map_refs": p["map_refs"],
        }
    return out


def record_rejected(path, name):
    elf = kbpf.Elf(path)
    maps_sec = elf.section("maps")
    fds = {}
    if maps_sec is not None:
        body = elf.body(maps_sec)
        for s in elf.symbols:
            if s["shndx"] == maps_sec["index"] and s["type"] == elf.STT_OBJECT:
                mtype, ks, vs, me, flags = kbpf.struct.unpack_from("<5I", body, s["value"])
                fds[s["value"]] = kbpf.map_create(mtype, ks, vs, me, flags, s["name"])
    lic_sec = elf.section("license")
    lic = elf.body(lic_sec).split(b"\0", 1)[0].decode() if lic_sec else ""
    progs = elf.programs()
    if len(progs) != 1:
        raise RuntimeError("rejected/%s: expected exactly one program, found %d" % (name, len(progs)))
    fname, secname, off, code = progs[0]
    code = bytearray(code)
    for roff, sym, _t in elf.relocations(elf.section(secname)["index"]):
        i = roff - off
        if maps_sec is None or sym["shndx"] != maps_sec["index"]:
            raise RuntimeError("rejected/%s: unsupported relocation against %s" % (name, sym["name"]))
        code[i + 1] = (code[i + 1] & 0x0F) | (kbpf.BPF_PSEUDO_MAP_FD << 4)
        kbpf.struct.pack_into("<i", code, i + 4, fds[sym["value"]])
    fd, err, log = kbpf.prog_load(kbpf.BPF_PROG_TYPE_XDP, bytes(code), lic, fname)
    for mfd in fds.values():
        os.close(mfd)
    if fd is not None:
        os.close(fd)
        raise RuntimeError("rejected/%s: the kernel ACCEPTED a sample that should be rejected" % name)
    return fname, err, log


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", help="only this object (obj/NAME.o)")
    args = ap.parse_args()

    if os.geteuid() != 0:
        die_skip("not root: bpf(2) program loading and BPF_PROG_TEST_RUN need root/CAP_BPF")
    if not os.path.isdir("/sys/fs/bpf") or not os.path.ismount("/sys/fs/bpf"):
        die_skip("bpffs is not mounted on /sys/fs/bpf (mount -t bpf bpf /sys/fs/bpf)")
    if shutil.which("bpftool") is None:
        die_skip("bpftool is not installed")
    try:
        fd = kbpf.map_create(2, 4, 8, 1, 0, "bpfkit_probe")
        os.close(fd)
    except kbpf.BpfError as e:
        die_skip("bpf(BPF_MAP_CREATE) fails here: %s" % e)

    affinity = os.sched_getaffinity(0)
    if affinity != {0}:
        print("kernel_record.py: pinning to CPU 0 (was %s)" % sorted(affinity), file=sys.stderr)
        os.sched_setaffinity(0, {0})
    ncpus = possible_cpus()
    with open(os.path.join(CORPUS, "packets", "index.json")) as f:
        packets = json.load(f)
    os.makedirs(PIN_ROOT, exist_ok=True)

    failures = 0
    objdir = os.path.join(CORPUS, "obj")
    names = sorted(f[:-2] for f in os.listdir(objdir) if f.endswith(".o"))
    if args.only:
        names = [n for n in names if n == args.only]
    expdir = os.path.join(CORPUS, "expected")
    if not args.only:
        for f in os.listdir(expdir):
            if f.endswith((".run.json", ".kernel.json", ".submitted.json")):
                os.remove(os.path.join(expdir, f))
    for name in names:
        path = os.path.join(objdir, name + ".o")
        elf = kbpf.Elf(path)
        setup = [d for d in source_directives(os.path.join(CORPUS, "src", name + ".c"), "corpus-map-setup")]
        for d in setup:
            if len(d) != 3:
                raise SystemExit("src/%s.c: corpus-map-setup wants <map> <key hex> <value hex>, got %s" % (name, d))
        nondet = {d[0]: " ".join(d[1:]) for d in
                  source_directives(os.path.join(CORPUS, "src", name + ".c"), "corpus-nondeterministic")}
        pins = [n for d in source_directives(os.path.join(CORPUS, "src", name + ".c"), "corpus-pinned-maps")
                for n in d]
        ld = Loaded(name, path, elf, pins)
        try:
            ld.load()
        except RuntimeError as e:
            print("kernel_record.py: FAIL %s\n%s" % (name, e), file=sys.stderr)
            write_json(os.path.join(expdir, name + ".kernel.json"),
                       {"object": name, "kernel": platform.release(), "accepted": False, "error": str(e)[:4000]})
            failures += 1
            ld.unpin()
            continue
        try:
            kj = kernel_json(ld)
            write_json(os.path.join(expdir, name + ".kernel.json"), kj)
        finally:
            ld.close()
        try:
            for prog, sub in submitted_insns(ld, kj).items():
                write_json(os.path.join(expdir, "%s.%s.submitted.json" % (name, prog)), sub)
        except RuntimeError as e:
            print("kernel_record.py: FAIL %s" % e, file=sys.stderr)
            failures += 1
        ld.unpin()  # libbpf_insns loaded the object again: drop its by-name pins
        for prog, _sec, _off, code in elf.programs():
            ld = Loaded(name, path, elf, pins)
            ld.load()
            try:
                run = record_run(ld, prog, setup, packets, ncpus, nondet, uses_printk(code))
            finally:
                ld.close()
            write_json(os.path.join(expdir, "%s.%s.run.json" % (name, prog)), run)
            print("kernel_record.py: %s.%s: %d packets" % (name, prog, len(run["packets"])), file=sys.stderr)

    if not args.only:
        rejdir = os.path.join(objdir, "rejected")
        outdir = os.path.join(expdir, "rejected")
        os.makedirs(outdir, exist_ok=True)
        for f in sorted(os.listdir(rejdir)) if os.path.isdir(rejdir) else []:
            if not f.endswith(".o"):
                continue
            name = f[:-2]
            try:
                fname, err, log = record_rejected(os.path.join(rejdir, f), name)
            except RuntimeError as e:
                print("kernel_record.py: FAIL %s" % e, file=sys.stderr)
                failures += 1
                continue
            with open(os.path.join(outdir, name + ".log"), "w") as out:
                out.write("# program %s, bpf(BPF_PROG_LOAD) failed with %s (%d), log_level 1\n"
                          % (fname, errno.errorcode.get(err, "?"), err))
                # Map pointers printed by the verifier are kernel addresses: mask them
                # so the file does not change from one load to the next.
                out.write(re.sub(r"0xffff[0-9a-f]{12}\b", "0xffff<kernel-address>", log))
            print("kernel_record.py: rejected/%s: %s" % (name, errno.errorcode.get(err, "?")), file=sys.stderr)

    shutil.rmtree(PIN_ROOT, ignore_errors=True)
    if failures:
        print("kernel_record.py: %d failure(s)" % failures, file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
