#!/usr/bin/env python3
"""Turns criterion's results of the `event_store` bench into the table of benches/README.md.

Usage: benches/report.py [CRITERION_DIR]   (default: $CARGO_TARGET_DIR/criterion or target/criterion)
"""
import json
import os
import sys

PAYLOAD = 1024  # bytes of payload per event

# (group, label, baseline function for the physical-limit ratio, target text, check(sled, raw, sqlite))
WORKLOADS = [
    ("append_1_writer", "1 writer, 1 event per append (durable)", "raw_fdatasync"),
    ("append_64_writers", "64 concurrent writers, 1 event per append", "raw_fdatasync_batch64"),
    ("append_batch_1000", "batches of 1,000 events", "raw_fdatasync_batch1000"),
    ("load_aggregate_1000", "load a 1,000-event aggregate", "raw_read"),
    ("replay_1m", "replay 1,000,000 events (`read_all`)", "raw_read"),
    ("projection_1m", "projection catch-up over 1,000,000 events", None),
]
PEERS = ["sqlite", "sqlite_tuned", "umadb", "sled", "sled_cache_4g"]


def load(root, group, fn):
    base = os.path.join(root, group, fn, "new")
    try:
        with open(os.path.join(base, "estimates.json")) as f:
            est = json.load(f)
        with open(os.path.join(base, "benchmark.json")) as f:
            bench = json.load(f)
    except FileNotFoundError:
        return None
    ns = est["mean"]["point_estimate"]
    elements = bench["throughput"]["Elements"]
    return {"ns": ns, "elements": elements, "rate": elements / (ns * 1e-9)}


def fmt_rate(r):
    if r is None:
        return "n/a"
    ev = r["rate"]
    mib = ev * PAYLOAD / (1 << 20)
    per = r["ns"] / r["elements"]
    if ev >= 1e6:
        s = f"{ev / 1e6:.2f} M ev/s"
    elif ev >= 1e3:
        s = f"{ev / 1e3:.1f} k ev/s"
    else:
        s = f"{ev:.0f} ev/s"
    extra = f"{mib:.0f} MiB/s" if mib >= 10 else f"{mib:.1f} MiB/s"
    it = r["ns"]
    t = f"{it / 1e9:.2f} s" if it >= 1e9 else (f"{it / 1e6:.2f} ms" if it >= 1e6 else f"{it / 1e3:.0f} µs")
    return f"{s}, {extra} ({t}/iter)"


def ratio(a, b):
    if a is None or b is None:
        return "n/a"
    return f"{a['rate'] / b['rate']:.2f}×"


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.environ.get("CARGO_TARGET_DIR", "target"), "criterion")
    print("| workload | raw file (physical limit) | SQLite | UmaDB | sled (MetaChat, defaults) | sled, 4 GiB cache | sled ÷ raw | sled ÷ SQLite | sled ÷ UmaDB |")
    print("|---|---|---|---|---|---|---|---|---|")
    for group, label, raw_fn in WORKLOADS:
        raw = load(root, group, raw_fn) if raw_fn else None
        res = {p: load(root, group, p) for p in PEERS}
        sled = res["sled"]
        print(
            f"| {label} | {fmt_rate(raw)} | {fmt_rate(res['sqlite'])} | {fmt_rate(res['umadb'])} | {fmt_rate(sled)} | {fmt_rate(res['sled_cache_4g'])} "
            f"| {ratio(sled, raw)} | {ratio(sled, res['sqlite'])} | {ratio(sled, res['umadb'])} |"
        )
    ow = load(root, "append_1_writer", "raw_fdatasync_overwrite")
    if ow:
        s1 = load(root, "append_1_writer", "sled")
        print()
        print(f"Raw per-event fdatasync over a preallocated region (no file growth): {fmt_rate(ow)}; sled ÷ that: {ratio(s1, ow)}.")
    # The targets of the issue (sled with default options; 4 GiB cache in brackets where measured).
    print()
    print("| target | measured | met |")
    print("|---|---|---|")
    g = lambda group, fn: load(root, group, fn)
    rows = []
    s1, r1 = g("append_1_writer", "sled"), g("append_1_writer", "raw_fdatasync")
    rows.append(("single writer ≥ 0.7× raw per-event fdatasync rate", s1, r1, 0.7))
    s64, r64 = g("append_64_writers", "sled"), g("append_64_writers", "raw_fdatasync_batch64")
    rows.append(("64 writers ≥ 0.5× raw batched rate (64 events per fdatasync)", s64, r64, 0.5))
    sb, rb = g("append_batch_1000", "sled"), g("append_batch_1000", "raw_fdatasync_batch1000")
    rows.append(("batches ≥ 0.5× raw batched bandwidth (1,000 events per fdatasync)", sb, rb, 0.5))
    for name, s, r, want in rows:
        if s and r:
            x = s["rate"] / r["rate"]
            print(f"| {name} | {x:.2f}× | {'yes' if x >= want else 'no'} |")
    for fn in ["sled", "sled_cache_4g"]:
        tag = "" if fn == "sled" else " (4 GiB cache)"
        rp = g("replay_1m", fn)
        if rp:
            print(f"| replay ≥ 1,000,000 events/s{tag} | {rp['rate'] / 1e6:.2f} M ev/s | {'yes' if rp['rate'] >= 1e6 else 'no'} |")
        la = g("load_aggregate_1000", fn)
        if la:
            print(f"| aggregate load of 1,000 events < 1 ms{tag} | {la['ns'] / 1e6:.3f} ms | {'yes' if la['ns'] < 1e6 else 'no'} |")
    for group, label, _ in WORKLOADS:
        for fn in ["sled", "sled_cache_4g"]:
            s, q = g(group, fn), g(group, "sqlite")
            if s and q:
                x = s["rate"] / q["rate"]
                tag = "" if fn == "sled" else " (4 GiB cache)"
                print(f"| at least as fast as SQLite: {label}{tag} | {x:.2f}× | {'yes' if x >= 1 else 'no'} |")


if __name__ == "__main__":
    main()
