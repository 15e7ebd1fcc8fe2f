#!/usr/bin/env bash
# Rebuild the bpfkit corpus: objects, reference-tool expectations, sample packets
# and captures, and (when the kernel allows it) kernel load/run expectations.
#
# Usage: corpus/build.sh [--no-kernel] [--only NAME] [--check]
#   --no-kernel  skip everything that needs bpf(2) (kernel.json, run.json, rejected logs)
#   --only NAME  rebuild a single object (src/NAME.c) and its expectations
#   --check      rebuild, then fail (exit 1) if any file under corpus/ differs
#                from what git has committed (the committed corpus is stale)
#
# Deterministic: running it twice gives identical files (see README.md for the
# kernel-dependent fields).  Extra clang flags per source come from a line
#   // corpus-cflags: <flags>
# and map contents for kernel runs from lines
#   // corpus-map-setup: <map> <key hex> <value hex>
# and maps whose values depend on time/randomness from lines
#   // corpus-nondeterministic: <map> <reason>
# and maps pinned by name (removed from /sys/fs/bpf around every load) from lines
#   // corpus-pinned-maps: <map>...
set -euo pipefail

CORPUS="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$CORPUS")"
KERNEL=1
ONLY=""
CHECK=0
while [ $# -gt 0 ]; do
  case "$1" in
    --no-kernel) KERNEL=0 ;;
    --only) ONLY="$2"; shift ;;
    --check) CHECK=1 ;;
    -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
    *) echo "build.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done

CLANG=clang-19
OBJDUMP=llvm-objdump-19
READELF=llvm-readelf-19
BPFTOOL=bpftool

need_install=0
for t in "$CLANG" "$OBJDUMP" "$READELF" "$BPFTOOL" python3; do
  command -v "$t" >/dev/null 2>&1 || need_install=1
done
[ -f /usr/include/bpf/bpf_helpers.h ] || need_install=1
if [ "$need_install" = 1 ]; then
  echo "build.sh: installing clang-19 llvm-19 libbpf-dev bpftool" >&2
  apt-get update -qq && apt-get install -y -qq clang-19 llvm-19 libbpf-dev bpftool >&2
fi

MULTIARCH="$(gcc -dumpmachine 2>/dev/null || echo x86_64-linux-gnu)"
CFLAGS=(-O2 -g -target bpf -Wall -Werror -I"/usr/include/$MULTIARCH"
        # Debug info must not depend on where the repository is checked out.
        -ffile-prefix-map="$CORPUS/=" -fdebug-compilation-dir=.)

compile() { # src obj
  local src="$1" obj="$2" extra
  extra="$(sed -n 's#^// corpus-cflags: ##p' "$src")"
  # shellcheck disable=SC2086
  (cd "$CORPUS" && "$CLANG" "${CFLAGS[@]}" $extra -c "${src#$CORPUS/}" -o "${obj#$CORPUS/}")
}

mkdir -p "$CORPUS/obj" "$CORPUS/obj/rejected" "$CORPUS/expected" "$CORPUS/expected/rejected"

names=()
for src in "$CORPUS"/src/*.c; do
  n="$(basename "$src" .c)"
  [ -n "$ONLY" ] && [ "$n" != "$ONLY" ] && continue
  names+=("$n")
done
[ ${#names[@]} -gt 0 ] || { echo "build.sh: no source matches '$ONLY'" >&2; exit 2; }

if [ -z "$ONLY" ]; then
  # Objects whose source is gone must not linger.
  for o in "$CORPUS"/obj/*.o; do
    [ -e "$o" ] || continue
    [ -f "$CORPUS/src/$(basename "$o" .o).c" ] || rm -f "$o"
  done
fi

for n in "${names[@]}"; do
  echo "build.sh: compile $n" >&2
  compile "$CORPUS/src/$n.c" "$CORPUS/obj/$n.o"
done
if [ -z "$ONLY" ]; then
  for src in "$CORPUS"/rejected/*.c; do
    [ -e "$src" ] || continue
    n="$(basename "$src" .c)"
    echo "build.sh: compile rejected/$n" >&2
    compile "$src" "$CORPUS/obj/rejected/$n.o"
  done
fi

# Reference-tool expectations, run from the repository root with the paths the
# conventions name (corpus/obj/NAME.o), so the outputs are verbatim.
for n in "${names[@]}"; do
  o="corpus/obj/$n.o"
  e="$CORPUS/expected/$n"
  (
    cd "$ROOT"
    "$OBJDUMP" -d --no-show-raw-insn "$o" > "$e.objdump.txt"
    "$OBJDUMP" -d -r --no-show-raw-insn "$o" > "$e.objdump-r.txt"
    "$OBJDUMP" -d "$o" > "$e.objdump-raw.txt"
    # llvm-objdump only decodes 32-bit atomics (lock ... |= w0, cmpxchg32_32, ...)
    # with +alu32; that mode also prints sub-64-bit loads/stores with w registers.
    "$OBJDUMP" -d --no-show-raw-insn --mattr=+alu32 "$o" > "$e.objdump-alu32.txt"
    "$READELF" -S -s -r "$o" > "$e.readelf.txt"
    "$BPFTOOL" btf dump file "$o" > "$e.btf.txt"
  )
done

if [ -z "$ONLY" ]; then
  for o in "$CORPUS"/obj/rejected/*.o; do
    [ -e "$o" ] || continue
    n="$(basename "$o" .o)"
    (cd "$ROOT" && "$OBJDUMP" -d --no-show-raw-insn "corpus/obj/rejected/$n.o" > "$CORPUS/expected/rejected/$n.objdump.txt")
  done
  python3 "$CORPUS/gen_packets.py"
fi

check_clean() {
  python3 "$CORPUS/tools/selfcheck.py" || exit 1
  [ "$CHECK" = 1 ] || return 0
  local changed
  # corpus/expected/replay/ is written by crates/replay, not by this script.
  changed="$(git -C "$ROOT" status --porcelain -- corpus ':(exclude)corpus/expected/replay')"
  if [ -n "$changed" ]; then
    echo "build.sh: --check: the rebuilt corpus differs from the committed one:" >&2
    echo "$changed" >&2
    exit 1
  fi
  echo "build.sh: --check: rebuilt corpus is identical to the committed one" >&2
}

if [ "$KERNEL" = 0 ]; then
  echo "build.sh: --no-kernel: kernel expectations left as they are" >&2
  check_clean
  exit 0
fi

# Kernel expectations: needs root/CAP_BPF and bpffs.  Runs on CPU 0 so per-CPU
# map slots and bpf_get_smp_processor_id() are those of CPU 0.
if ! mount | grep -q ' on /sys/fs/bpf type bpf'; then
  mount -t bpf bpf /sys/fs/bpf 2>/dev/null || true
fi
# bpf_printk output is read back from tracefs.
if [ -d /sys/kernel/tracing ] && [ ! -e /sys/kernel/tracing/trace ]; then
  mount -t tracefs nodev /sys/kernel/tracing 2>/dev/null || true
fi
args=()
[ -n "$ONLY" ] && args+=(--only "$ONLY")
status=0
taskset -c 0 python3 "$CORPUS/tools/kernel_record.py" "${args[@]}" || status=$?
if [ "$status" = 0 ]; then
  # Timer callbacks and user ring buffer samples, which per-packet runs cannot show.
  taskset -c 0 python3 "$CORPUS/tools/async_record.py" "${args[@]}" || status=$?
fi
if [ "$status" = 0 ] && [ -z "$ONLY" ]; then
  # Which helpers this kernel offers XDP programs (crates/vm/tests/helper_audit.rs).
  python3 "$CORPUS/tools/helper_probe.py" || status=$?
fi
if [ "$status" != 2 ]; then
  # libbpf's own account of how it links each object: the debug lines of
  # `bpftool -d prog loadall` naming map references, sub-program placement and
  # `.values` slots (the libbpf 1.x refusal of legacy maps comes after them).
  for n in "${names[@]}"; do
    d="/sys/fs/bpf/bpfkit-corpus-log-$n"
    pins="$(sed -n 's#^// corpus-pinned-maps: ##p' "$CORPUS/src/$n.c")"
    for p in $pins; do rm -f "/sys/fs/bpf/$p"; done
    rm -rf "$d"
    (cd "$ROOT" && bpftool -d prog loadall "corpus/obj/$n.o" "$d" 2>&1) |
      grep -E "found (data )?map|relocated, imm|added [0-9]+ insns from sub-prog|\.maps relo #|relo #[0-9]+: <[a-z_0-9]+> \[|relo #[0-9]+: patched insn #" \
      > "$CORPUS/expected/$n.libbpf.log" || true
    rm -rf "$d"
    for p in $pins; do rm -f "/sys/fs/bpf/$p"; done
  done
fi
[ "$status" = 0 ] || exit "$status"
check_clean
