#!/usr/bin/env bash
# Rebuilds the test objects of this folder (needs clang-19 and libbpf-dev, as
# corpus/build.sh installs them).
set -euo pipefail
cd "$(dirname "$0")"
for c in *.c; do
    clang-19 -O2 -g -target bpf -I/usr/include/x86_64-linux-gnu -c "$c" -o "${c%.c}.o"
done
# Two local labels at one address (old clang emitted LBB symbols; falco's probe.o has
# such pairs): llvm-objdump prints one of them, and so must `bpfkit disasm`.
llvm-objcopy-19 --add-symbol LBB0_1=xdp:0x20,local --add-symbol LBB0_2=xdp:0x20,local \
    ../../../../corpus/obj/xdp_legacy_maps.o two_labels.o
# Load-acquire and store-release, as bytes (clang-19 cannot emit them).
clang-19 -target bpf -c xdp_acquire_release.s -o xdp_acquire_release.o
