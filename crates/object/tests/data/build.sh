#!/usr/bin/env bash
# Rebuilds the object-reader fixtures and their reference-tool expectations.
# The fixtures exercise what the XDP corpus does not: every BTF kind (ENUM, ENUM64,
# FLOAT, UNION, bitfields, FWD, RESTRICT, DECL_TAG, TYPE_TAG), non-XDP section names,
# map-in-map and PROG_ARRAY `.values`, static/global sub-programs and global data.
# Needs clang-19, llvm-19 and bpftool; the tests only read the committed outputs.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
MULTIARCH="$(gcc -dumpmachine 2>/dev/null || echo x86_64-linux-gnu)"
for src in *.c; do
  n="${src%.c}"
  clang-19 -O2 -g -target bpf -I"/usr/include/$MULTIARCH" -ffile-prefix-map="$PWD/=" -fdebug-compilation-dir=. -c "$src" -o "$n.o"
  bpftool btf dump file "$n.o" > "$n.btf.txt"
  llvm-readelf-19 -S -s -r "$n.o" > "$n.readelf.txt"
  llvm-objdump-19 -d -r --no-show-raw-insn "$n.o" > "$n.objdump-r.txt"
done

# libbpf's own account of how it links each object (needs root and bpffs): the debug
# lines of `bpftool -d prog loadall` naming map references, sub-program placement and
# `.values` slots. Loading may fail in the verifier; the lines come before that.
if [ "${1:-}" = "--libbpf-logs" ]; then
  # (corpus/build.sh writes corpus/expected/NAME.libbpf.log for the corpus objects.)
  mkdir -p libbpf
  for o in ./*.o; do
    n="$(basename "$o" .o)"
    d="/sys/fs/bpf/bpfkit-objlog-$n"
    mkdir -p "$d"
    bpftool -d prog loadall "$o" "$d" 2>&1 |
      grep -E "found (data )?map|relocated, imm|added [0-9]+ insns from sub-prog|\.maps relo #|relo #[0-9]+: <[a-z_0-9]+> \[|relo #[0-9]+: patched insn #" > "libbpf/$n.log" || true
    rm -rf "$d"
  done
fi
