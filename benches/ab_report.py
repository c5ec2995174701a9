#!/usr/bin/env python3
"""Summarises benches/store_ab.sh: per workload and peer, each build's
median rate over the rounds and its min-max; fails if a baseline is missing.

Usage: benches/ab_report.py OUT_DIR
"""
import glob
import json
import os
import re
import statistics
import sys

BASELINES = {
    "append_1_writer": "raw_fdatasync",
    "append_64_writers": "raw_fdatasync_batch64",
    "append_batch_1000": "raw_fdatasync_batch1000",
    "load_aggregate_1000": "raw_read",
    "replay_1m": "raw_read",
}


def rates(out):
    found = {}  # (group, fn, build) -> [rate]
    for est in glob.glob(os.path.join(out, "r*-*", "*", "*", "new", "estimates.json")):
        parts = est.split(os.sep)
        run, group, fn = parts[-5], parts[-4], parts[-3]
        build = re.sub(r"^r\d+-", "", run)
        with open(est) as f:
            ns = json.load(f)["mean"]["point_estimate"]
        with open(est.replace("estimates.json", "benchmark.json")) as f:
            elements = json.load(f)["throughput"]["Elements"]
        found.setdefault((group, fn, build), []).append(elements / (ns * 1e-9))
    return found


def fmt(xs):
    if not xs:
        return "n/a"
    m = statistics.median(xs)
    unit = lambda v: f"{v / 1e6:.2f}M" if v >= 1e6 else (f"{v / 1e3:.1f}k" if v >= 1e3 else f"{v:.0f}")
    return f"{unit(m)} ({unit(min(xs))}–{unit(max(xs))}, n={len(xs)})"


def main():
    out = sys.argv[1]
    found = rates(out)
    if not found:
        sys.exit(f"ab_report: no results under {out}")
    groups = sorted({g for g, _, _ in found})
    missing = []
    print("| workload | peer | before: ev/s median (min–max, runs) | after |")
    print("|---|---|---|---|")
    for g in groups:
        fns = sorted({f for gg, f, _ in found if gg == g})
        base = BASELINES.get(g)
        if base and base not in fns:
            missing.append(f"{g}/{base}")
        for f in fns:
            print(f"| {g} | {f} | {fmt(found.get((g, f, 'before'), []))} | {fmt(found.get((g, f, 'after'), []))} |")
    print()
    print("| workload | sled after / raw | sled after / sqlite | / sqlite_tuned | / umadb | sled after / sled before |")
    print("|---|---|---|---|---|---|")
    med = lambda k: statistics.median(found[k]) if found.get(k) else None
    for g in groups:
        sled = med((g, "sled", "after"))
        if sled is None:
            continue
        cells = []
        for peer in [BASELINES.get(g), "sqlite", "sqlite_tuned", "umadb"]:
            other = med((g, peer, "after")) if peer else None
            cells.append(f"{sled / other:.2f}×" if other else "n/a")
        before = med((g, "sled", "before"))
        cells.append(f"{sled / before:.2f}×" if before else "n/a")
        print(f"| {g} | " + " | ".join(cells) + " |")
    if missing:
        sys.exit("ab_report: baseline missing: " + ", ".join(missing))


if __name__ == "__main__":
    main()
