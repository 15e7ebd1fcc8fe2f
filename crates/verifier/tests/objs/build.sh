#!/bin/sh
# Rebuilds the C test objects of the verifier (committed, so tests need no clang).
# Each object holds one XDP program; its first line says the expected kernel verdict.
set -e
cd "$(dirname "$0")"
MULTIARCH=$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)
for c in *.c; do
	clang-19 -O2 -g -target bpf -Wall -Werror -I"/usr/include/$MULTIARCH" -c "$c" -o "${c%.c}.o"
done
