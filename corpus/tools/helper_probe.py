#!/usr/bin/env python3
"""Which helpers the running kernel lets an XDP program call (writes expected/xdp_helpers.json).

For every helper id, loads `r1..r5 = 0; call N; r0 = 0; exit` as BPF_PROG_TYPE_XDP
(GPL). A helper is *available* when the program loads or is refused for its arguments
(`R1 type=scalar expected=...`): the verifier found the helper in xdp_func_proto /
bpf_sk_base_func_proto / bpf_base_func_proto. It is *unavailable* when the log says
`program of this type cannot use helper` or `unknown func` / `invalid func`, and
*sleepable* when only sleepable programs may call it (`helper call might sleep`).
crates/vm/tests/helper_audit.rs checks that every available helper is implemented or
listed with a reason in bpfkit_vm::audit::NOT_EMULATED. Root needed; SKIPPED otherwise.
"""
import json
import os
import platform
import re
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kbpf  # noqa: E402

CORPUS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAST_ID = 230  # past the last helper of 6.18 (211): the tail must be all unknown


def insn(code, dst=0, src=0, off=0, imm=0):
    return struct.pack("<BBhi", code, (src << 4) | dst, off, imm)


def main():
    if os.geteuid() != 0:
        print("helper_probe.py: SKIPPED: not root", file=sys.stderr)
        sys.exit(2)
    available, sleepable = [], []
    for n in range(1, LAST_ID + 1):
        prog = b"".join(insn(0xb7, r) for r in range(1, 6)) + insn(0x85, imm=n) + insn(0xb7) + insn(0x95)
        fd, _err, log = kbpf.prog_load(kbpf.BPF_PROG_TYPE_XDP, prog, "GPL")
        if fd is not None:
            os.close(fd)
            available.append(n)
        elif re.search(r"cannot use helper|unknown func|invalid func", log):
            pass
        elif "might sleep" in log:
            sleepable.append(n)
        else:
            available.append(n)
    out = {"kernel": platform.release(), "probe": "r1..r5 = 0; call N; r0 = 0; exit (XDP, GPL)",
           "ids_probed": [1, LAST_ID], "available": available, "sleepable_only": sleepable}
    path = os.path.join(CORPUS, "expected", "xdp_helpers.json")
    with open(path, "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    print("helper_probe.py: %d available, %d sleepable-only" % (len(available), len(sleepable)),
          file=sys.stderr)


if __name__ == "__main__":
    main()
