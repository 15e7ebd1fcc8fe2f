#!/usr/bin/env bash
# Rebuilds the objects of this folder (clang-19 and libbpf-dev, as corpus/build.sh installs).
set -euo pipefail
cd "$(dirname "$0")"
for c in *.c; do
    clang-19 -O2 -g -target bpf -I/usr/include/x86_64-linux-gnu -c "$c" -o "${c%.c}.o"
done
# A program section without a function symbol, as old clang and iproute2-era samples
# produce them: the corpus's xdp_legacy_maps.o with its program's symbol stripped.
llvm-objcopy-19 --strip-symbol=xdp_legacy ../../../../../corpus/obj/xdp_legacy_maps.o no_func_symbol.o
