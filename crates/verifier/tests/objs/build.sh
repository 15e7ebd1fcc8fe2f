#!/bin/sh
# Rebuilds the C test objects of the verifier (committed, so tests need no clang).
# Each object holds one XDP program; its first line says the expected kernel verdict.
set -e
cd "$(dirname "$0")"
MULTIARCH=$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)
for c in *.c; do
	clang-19 -O2 -g -target bpf -Wall -Werror -I"/usr/include/$MULTIARCH" -c "$c" -o "${c%.c}.o"
done
# Objects with kfunc calls (tests/kfunc.rs): they need libbpf's kfunc resolution to
# load, so they are not in tests/objs (whose test loads every object whole).
for c in ../kfunc/*.c; do
	clang-19 -O2 -g -target bpf -Wall -Werror -I"/usr/include/$MULTIARCH" -c "$c" -o "${c%.c}.o"
done
