#!/bin/sh
# Rebuilds the arena fixture of tests/arena.rs (committed; the test needs no clang).
set -e
cd "$(dirname "$0")"
MULTIARCH=$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)
clang-19 -O2 -g -target bpf -Wall -Werror -I"/usr/include/$MULTIARCH" -c arena_map.c -o arena_map.o
