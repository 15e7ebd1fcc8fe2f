#!/usr/bin/env bash
# Rebuilds the benchmark's pure-compute XDP programs (the .o files are committed).
set -euo pipefail
cd "$(dirname "$0")"
for c in *.c; do
	clang-19 -O2 -g -target bpf -mcpu=v3 -I/usr/include/x86_64-linux-gnu -c "$c" -o "${c%.c}.o"
done
