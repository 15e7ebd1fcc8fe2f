"""The instructions libbpf submits to BPF_PROG_LOAD, read back with bpf_program__insns().

libbpf (>= 0.6) keeps a program's final instruction array after bpf_object__load():
sub-programs appended, calls and ld_imm64 relocated, map fds embedded.  Map fds
vary from load to load, so their immediates are zeroed here (as the kernel does
for the program tag) and the map each ld_imm64 refers to is named instead.
Needs root (the object really is loaded) and libbpf.so.1 (libbpf1 package).
"""
import ctypes
import ctypes.util
import hashlib
import os
import struct

BPF_PSEUDO_MAP_FD = 1
BPF_PSEUDO_MAP_VALUE = 2
LD_IMM64 = 0x18

_PRINT_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p)
_silent = _PRINT_FN(lambda level, fmt, args: 0)


def _lib():
    name = ctypes.util.find_library("bpf") or "libbpf.so.1"
    lib = ctypes.CDLL(name, use_errno=True)
    vp, cp = ctypes.c_void_p, ctypes.c_char_p
    for fn, res, args in [
        ("bpf_object__open_file", vp, [cp, vp]),
        ("bpf_object__load", ctypes.c_int, [vp]),
        ("bpf_object__close", None, [vp]),
        ("bpf_object__next_program", vp, [vp, vp]),
        ("bpf_object__next_map", vp, [vp, vp]),
        ("bpf_program__name", cp, [vp]),
        ("bpf_program__section_name", cp, [vp]),
        ("bpf_program__insns", vp, [vp]),
        ("bpf_program__insn_cnt", ctypes.c_size_t, [vp]),
        ("bpf_map__name", cp, [vp]),
        ("bpf_map__fd", ctypes.c_int, [vp]),
        ("libbpf_set_print", vp, [_PRINT_FN]),
    ]:
        f = getattr(lib, fn)
        f.restype, f.argtypes = res, args
    lib.libbpf_set_print(_silent)
    return lib


def version():
    lib = ctypes.CDLL(ctypes.util.find_library("bpf") or "libbpf.so.1")
    try:
        f = lib.libbpf_version_string
    except AttributeError:
        return "1.x"
    f.restype = ctypes.c_char_p
    return f().decode()


def tag_of(insns):
    """The kernel's program tag (6.18: first 8 bytes of SHA-256) of zeroed instructions."""
    return hashlib.sha256(insns).hexdigest()[:16]


def dump(path, map_name_of):
    """{program name: {"section", "insns": bytes (fds zeroed), "map_refs": [...]}}.

    map_name_of(libbpf map name) -> the ELF-level name recorded in the corpus files.
    """
    lib = _lib()
    obj = lib.bpf_object__open_file(path.encode(), None)
    if not obj:
        e = ctypes.get_errno()
        raise RuntimeError("libbpf: cannot open %s: %s" % (path, os.strerror(e)))
    try:
        if lib.bpf_object__load(obj) != 0:
            raise RuntimeError("libbpf: cannot load %s" % path)
        fd_names = {}
        m = lib.bpf_object__next_map(obj, None)
        while m:
            fd_names[lib.bpf_map__fd(m)] = map_name_of(lib.bpf_map__name(m).decode())
            m = lib.bpf_object__next_map(obj, m)
        out = {}
        p = lib.bpf_object__next_program(obj, None)
        while p:
            name = lib.bpf_program__name(p).decode()
            cnt = lib.bpf_program__insn_cnt(p)
            raw = bytearray(ctypes.string_at(lib.bpf_program__insns(p), cnt * 8))
            refs = []
            i = 0
            while i < cnt:
                code, regs = raw[i * 8], raw[i * 8 + 1]
                if code == LD_IMM64 and i + 1 < cnt:
                    src = regs >> 4
                    if src in (BPF_PSEUDO_MAP_FD, BPF_PSEUDO_MAP_VALUE):
                        fd = struct.unpack_from("<i", raw, i * 8 + 4)[0]
                        off = struct.unpack_from("<i", raw, i * 8 + 12)[0]
                        ref = {"insn": i, "kind": "map_fd" if src == BPF_PSEUDO_MAP_FD else "map_value",
                               "map": fd_names.get(fd, "?fd%d" % fd)}
                        if src == BPF_PSEUDO_MAP_VALUE:
                            ref["offset"] = off
                        refs.append(ref)
                        struct.pack_into("<i", raw, i * 8 + 4, 0)
                        struct.pack_into("<i", raw, i * 8 + 12, 0)
                    i += 2
                    continue
                i += 1
            out[name] = {"section": lib.bpf_program__section_name(p).decode(),
                         "insns": bytes(raw), "map_refs": refs}
            p = lib.bpf_object__next_program(obj, p)
        return out
    finally:
        lib.bpf_object__close(obj)
