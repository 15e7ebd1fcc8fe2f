"""Minimal bpf(2) access and ELF reading for the corpus recorder (stdlib only).

Only what corpus/tools/kernel_record.py needs: object pinning/getting, map
create/lookup/update/iterate, program load (used for objects libbpf 1.x will not
load: legacy "maps" sections and the deliberately rejected samples),
BPF_PROG_TEST_RUN, info queries and ring buffer reading.
"""
import ctypes
import errno
import mmap
import os
import platform
import struct

SYS_BPF = {"x86_64": 321, "aarch64": 280, "riscv64": 280, "ppc64le": 361, "s390x": 351}

BPF_MAP_CREATE = 0
BPF_MAP_LOOKUP_ELEM = 1
BPF_MAP_UPDATE_ELEM = 2
BPF_MAP_GET_NEXT_KEY = 4
BPF_PROG_LOAD = 5
BPF_OBJ_PIN = 6
BPF_OBJ_GET = 7
BPF_PROG_TEST_RUN = 10
BPF_MAP_GET_FD_BY_ID = 14
BPF_OBJ_GET_INFO_BY_FD = 15
BPF_MAP_LOOKUP_AND_DELETE_ELEM = 21

BPF_PROG_TYPE_XDP = 6
BPF_PSEUDO_MAP_FD = 1

ATTR_SIZE = 144

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


class BpfError(OSError):
    pass


def _addr(buf):
    return ctypes.addressof(buf) if buf is not None else 0


def bpf(cmd, attr_bytes):
    """Calls bpf(cmd, attr); returns (ret, attr buffer after the call)."""
    nr = SYS_BPF.get(platform.machine())
    if nr is None:
        raise BpfError(errno.ENOSYS, "bpf syscall number unknown for " + platform.machine())
    buf = ctypes.create_string_buffer(attr_bytes.ljust(ATTR_SIZE, b"\0"), ATTR_SIZE)
    ret = _libc.syscall(ctypes.c_long(nr), ctypes.c_long(cmd), buf, ctypes.c_uint(ATTR_SIZE))
    if ret < 0:
        e = ctypes.get_errno()
        raise BpfError(e, "bpf(cmd=%d): %s" % (cmd, os.strerror(e)))
    return ret, buf.raw


def obj_get(path):
    p = ctypes.create_string_buffer(path.encode())
    fd, _ = bpf(BPF_OBJ_GET, struct.pack("<QII", _addr(p), 0, 0))
    return fd


def obj_pin(fd, path):
    p = ctypes.create_string_buffer(path.encode())
    bpf(BPF_OBJ_PIN, struct.pack("<QII", _addr(p), fd, 0))


def map_create(map_type, key_size, value_size, max_entries, flags=0, name=""):
    attr = struct.pack("<IIIIIII", map_type, key_size, value_size, max_entries, flags, 0, 0)
    attr += name.encode()[:15].ljust(16, b"\0")
    fd, _ = bpf(BPF_MAP_CREATE, attr)
    return fd


def map_lookup(fd, key, value_len):
    k = ctypes.create_string_buffer(key, len(key) or 1)
    v = ctypes.create_string_buffer(value_len)
    bpf(BPF_MAP_LOOKUP_ELEM, struct.pack("<IIQQQ", fd, 0, _addr(k), _addr(v), 0))
    return v.raw


def map_update(fd, key, value, flags=0):
    k = ctypes.create_string_buffer(key, len(key) or 1)
    v = ctypes.create_string_buffer(value, len(value) or 1)
    bpf(BPF_MAP_UPDATE_ELEM, struct.pack("<IIQQQ", fd, 0, _addr(k), _addr(v), flags))


def map_pop_all(fd, value_len):
    """Pops every element of a QUEUE/STACK (BPF_MAP_LOOKUP_AND_DELETE_ELEM, key NULL)."""
    out = []
    while True:
        v = ctypes.create_string_buffer(value_len)
        try:
            bpf(BPF_MAP_LOOKUP_AND_DELETE_ELEM, struct.pack("<IIQQQ", fd, 0, 0, _addr(v), 0))
        except BpfError as e:
            if e.errno == errno.ENOENT:
                return out
            raise
        out.append(v.raw)
        if len(out) > 1_000_000:
            raise BpfError(errno.ELOOP, "queue does not drain")


def map_keys(fd, key_size):
    """All keys, via BPF_MAP_GET_NEXT_KEY starting from NULL."""
    keys = []
    cur = None
    while True:
        nxt = ctypes.create_string_buffer(key_size)
        k = ctypes.create_string_buffer(cur, key_size) if cur is not None else None
        try:
            bpf(BPF_MAP_GET_NEXT_KEY, struct.pack("<IIQQ", fd, 0, _addr(k), _addr(nxt)))
        except BpfError as e:
            if e.errno == errno.ENOENT:
                return keys
            raise
        cur = nxt.raw
        keys.append(cur)
        if len(keys) > 1_000_000:
            raise BpfError(errno.ELOOP, "map iteration does not end")


def map_fd_by_id(map_id):
    fd, _ = bpf(BPF_MAP_GET_FD_BY_ID, struct.pack("<III", map_id, 0, 0))
    return fd


def map_info(fd):
    info = ctypes.create_string_buffer(88)
    bpf(BPF_OBJ_GET_INFO_BY_FD, struct.pack("<IIQ", fd, 88, _addr(info)))
    raw = info.raw
    mtype, mid, ks, vs, me, flags = struct.unpack_from("<6I", raw, 0)
    name = raw[24:40].split(b"\0", 1)[0].decode()
    btf_id, btf_key, btf_val = struct.unpack_from("<3I", raw, 64)
    map_extra = struct.unpack_from("<Q", raw, 80)[0]
    return {"map_extra": map_extra,"type": mtype, "id": mid, "key_size": ks, "value_size": vs, "max_entries": me,
            "flags": flags, "kernel_name": name, "btf_id": btf_id,
            "btf_key_type_id": btf_key, "btf_value_type_id": btf_val}


def prog_info(fd):
    map_ids = (ctypes.c_uint32 * 64)()
    info = ctypes.create_string_buffer(232)
    struct.pack_into("<IQ", info, 52, 64, ctypes.addressof(map_ids))
    bpf(BPF_OBJ_GET_INFO_BY_FD, struct.pack("<IIQ", fd, 232, _addr(info)))
    raw = info.raw
    ptype, pid = struct.unpack_from("<II", raw, 0)
    tag = raw[8:16].hex()
    xlated_len = struct.unpack_from("<I", raw, 20)[0]
    nr_maps = struct.unpack_from("<I", raw, 52)[0]
    name = raw[64:80].split(b"\0", 1)[0].decode()
    gpl = struct.unpack_from("<I", raw, 84)[0] & 1
    verified = struct.unpack_from("<I", raw, 216)[0]
    return {"type": ptype, "id": pid, "tag": tag, "xlated_insns": xlated_len // 8,
            "map_ids": list(map_ids[:min(nr_maps, 64)]), "kernel_name": name,
            "gpl_compatible": bool(gpl), "verified_insns": verified}


def prog_load(prog_type, insns, license_str, name="", log_level=1, log_size=1 << 22,
              expected_attach_type=0, prog_flags=0):
    """Returns (fd or None, errno or 0, verifier log text)."""
    ins = ctypes.create_string_buffer(insns, len(insns))
    lic = ctypes.create_string_buffer(license_str.encode())
    log = ctypes.create_string_buffer(log_size) if log_level else None
    attr = struct.pack("<IIQQIIQII", prog_type, len(insns) // 8, _addr(ins), _addr(lic),
                       log_level, log_size if log_level else 0, _addr(log), 0, prog_flags)
    attr += name.encode()[:15].ljust(16, b"\0")
    attr += struct.pack("<II", 0, expected_attach_type)
    try:
        fd, _ = bpf(BPF_PROG_LOAD, attr)
        err = 0
    except BpfError as e:
        fd, err = None, e.errno
    text = log.value.decode(errors="replace") if log is not None else ""
    return fd, err, text


XDP_MD = struct.Struct("<6I")  # data, data_end, data_meta, ingress_ifindex, rx_queue_index, egress_ifindex


def test_run_xdp(fd, data, ingress_ifindex=1, rx_queue_index=0, out_size=1 << 16):
    """BPF_PROG_TEST_RUN with an xdp_md context; returns a dict or raises BpfError."""
    din = ctypes.create_string_buffer(data, len(data))
    dout = ctypes.create_string_buffer(out_size)
    cin = ctypes.create_string_buffer(XDP_MD.pack(0, len(data), 0, ingress_ifindex, rx_queue_index, 0),
                                      XDP_MD.size)
    cout = ctypes.create_string_buffer(XDP_MD.size)
    attr = struct.pack("<IIIIQQIIIIQQIII", fd, 0, len(data), out_size, _addr(din), _addr(dout),
                       1, 0, XDP_MD.size, XDP_MD.size, _addr(cin), _addr(cout), 0, 0, 0)
    _, after = bpf(BPF_PROG_TEST_RUN, attr)
    retval = struct.unpack_from("<I", after, 4)[0]
    size_out = struct.unpack_from("<I", after, 12)[0]
    ctx_size_out = struct.unpack_from("<I", after, 44)[0]
    md = XDP_MD.unpack(cout.raw) if ctx_size_out >= XDP_MD.size else None
    return {"retval": retval, "data_out": dout.raw[:size_out], "ctx_out": md}


class RingBuf:
    """Consumer side of a BPF_MAP_TYPE_RINGBUF (like libbpf's ring_buffer)."""

    def __init__(self, fd, max_entries):
        self.page = mmap.PAGESIZE
        self.mask = max_entries - 1
        self.cons = mmap.mmap(fd, self.page, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE, offset=0)
        self.prod = mmap.mmap(fd, self.page + 2 * max_entries, mmap.MAP_SHARED, mmap.PROT_READ,
                              offset=self.page)

    def drain(self):
        out = []
        cons = struct.unpack_from("<Q", self.cons, 0)[0]
        prod = struct.unpack_from("<Q", self.prod, 0)[0]
        while cons < prod:
            off = self.page + (cons & self.mask)
            hdr_len = struct.unpack_from("<I", self.prod, off)[0]
            if hdr_len & (1 << 31):  # BPF_RINGBUF_BUSY_BIT: still being written
                break
            length = hdr_len & ~((1 << 31) | (1 << 30))
            if not hdr_len & (1 << 30):  # BPF_RINGBUF_DISCARD_BIT
                out.append(bytes(self.prod[off + 8:off + 8 + length]))
            cons += (length + 8 + 7) & ~7
            struct.pack_into("<Q", self.cons, 0, cons)
        return out

    def close(self):
        self.cons.close()
        self.prod.close()


# ---------------------------------------------------------------- ELF


class Elf:
    """Just enough ELF64 little-endian reading: sections, symbols, relocations."""

    SHT_SYMTAB, SHT_REL = 2, 9
    SHF_EXECINSTR = 4
    STT_FUNC, STT_OBJECT = 2, 1
    STB_GLOBAL = 1

    def __init__(self, path):
        with open(path, "rb") as f:
            self.data = d = f.read()
        if d[:4] != b"\x7fELF" or d[4] != 2 or d[5] != 1:
            raise ValueError("%s: not a 64-bit little-endian ELF file" % path)
        shoff = struct.unpack_from("<Q", d, 0x28)[0]
        shentsize, shnum, shstrndx = struct.unpack_from("<HHH", d, 0x3A)
        self.sections = []
        for i in range(shnum):
            name, typ, flags, _addr2, off, size, link, info, _align, entsize = struct.unpack_from(
                "<IIQQQQIIQQ", d, shoff + i * shentsize)
            self.sections.append({"index": i, "name_off": name, "type": typ, "flags": flags,
                                  "offset": off, "size": size, "link": link, "info": info,
                                  "entsize": entsize})
        strtab = self.sections[shstrndx]
        for s in self.sections:
            s["name"] = self._str(strtab, s["name_off"])
        self.symbols = []
        for s in self.sections:
            if s["type"] == self.SHT_SYMTAB:
                names = self.sections[s["link"]]
                for j in range(s["size"] // 24):
                    n, info, other, shndx, value, size = struct.unpack_from("<IBBHQQ", d, s["offset"] + j * 24)
                    self.symbols.append({"name": self._str(names, n), "type": info & 0xF, "bind": info >> 4,
                                         "shndx": shndx, "value": value, "size": size})

    def _str(self, sec, off):
        start = sec["offset"] + off
        end = self.data.index(b"\0", start)
        return self.data[start:end].decode()

    def section(self, name):
        for s in self.sections:
            if s["name"] == name:
                return s
        return None

    def body(self, sec):
        return self.data[sec["offset"]:sec["offset"] + sec["size"]]

    def programs(self):
        """[(function name, section name, insn bytes)] for global functions in code sections other than .text."""
        out = []
        for sym in self.symbols:
            if sym["type"] != self.STT_FUNC or sym["bind"] != self.STB_GLOBAL:
                continue
            if sym["shndx"] == 0 or sym["shndx"] >= len(self.sections):
                continue
            sec = self.sections[sym["shndx"]]
            if not sec["flags"] & self.SHF_EXECINSTR or sec["name"] == ".text":
                continue
            code = self.body(sec)[sym["value"]:sym["value"] + sym["size"]]
            out.append((sym["name"], sec["name"], sym["value"], code))
        return out

    def relocations(self, target_index):
        """[(offset, symbol dict, type)] of the REL section applying to section target_index."""
        out = []
        for s in self.sections:
            if s["type"] == self.SHT_REL and s["info"] == target_index:
                body = self.body(s)
                for j in range(len(body) // 16):
                    off, info = struct.unpack_from("<QQ", body, j * 16)
                    out.append((off, self.symbols[info >> 32], info & 0xFFFFFFFF))
        return out

    def map_symbols(self):
        """Names of the maps an object declares: BTF maps in .maps, legacy ones in maps."""
        out = {}
        for secname in (".maps", "maps"):
            sec = self.section(secname)
            if sec is None:
                continue
            for sym in self.symbols:
                if sym["shndx"] == sec["index"] and sym["type"] == self.STT_OBJECT:
                    out[sym["name"]] = secname
        return out

    def data_sections(self):
        return [s["name"] for s in self.sections
                if s["name"] in (".data", ".rodata", ".bss") or s["name"].startswith((".data.", ".rodata.", ".bss."))]
