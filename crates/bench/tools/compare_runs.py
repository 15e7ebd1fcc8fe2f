#!/usr/bin/env python3
"""Compares one engine column of two sets of `bpfkit-bench --json` runs.

usage: compare_runs.py 'OLD_GLOB' 'NEW_GLOB' [COLUMN] [--rows]

For each (program, packet) row, takes the fastest figure over all runs of each set
(the bench's own rounds are already a minimum; taking the minimum again over several
processes removes most of a shared host's noise), then prints the geometric mean of
new/old over the corpus rows (programs not named bench_*) and over all rows.
COLUMN defaults to "jit fast". --rows also prints every row.
"""
import glob
import json
import math
import sys


def best(pattern, column):
    out = {}
    files = sorted(glob.glob(pattern))
    for f in files:
        for row in json.load(open(f)):
            v = row.get(column)
            if isinstance(v, (int, float)):
                k = (row["program"], row["packet"])
                out[k] = min(out.get(k, float("inf")), v)
    return out, len(files)


def main():
    args = [a for a in sys.argv[1:] if a != "--rows"]
    if len(args) < 2:
        sys.exit(__doc__)
    column = args[2] if len(args) > 2 else "jit fast"
    old, n_old = best(args[0], column)
    new, n_new = best(args[1], column)
    rows = sorted(k for k in old if k in new)
    print(f"{n_old} old runs, {n_new} new runs, column {column!r}")
    for name, keys in (
        ("corpus rows", [k for k in rows if not k[0].startswith("bench_")]),
        ("compute rows", [k for k in rows if "(compute)" in k[0]]),
        ("all rows", rows),
    ):
        if not keys:
            continue
        g = math.exp(sum(math.log(new[k] / old[k]) for k in keys) / len(keys))
        print(f"{name}: {len(keys)}, geometric mean new/old = {g:.3f}")
    if "--rows" in sys.argv:
        for k in rows:
            print(f"| {k[0]} | {k[1]} | {old[k]:.1f} | {new[k]:.1f} | {new[k] / old[k]:.2f} |")


if __name__ == "__main__":
    main()
