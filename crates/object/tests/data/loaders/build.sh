#!/usr/bin/env bash
# Rebuilds the objects of this folder (clang-19 and libbpf-dev, as corpus/build.sh installs).
set -euo pipefail
cd "$(dirname "$0")"
for c in *.c; do
    clang-19 -O2 -g -target bpf -I/usr/include/x86_64-linux-gnu -c "$c" -o "${c%.c}.o"
done
