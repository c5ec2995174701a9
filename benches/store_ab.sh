#!/usr/bin/env bash
# Before/after of the event_store bench: two bench executables (built from
# two commits, e.g. with a git worktree of the older one), run in
# alternating rounds (before, after; then after, before; ...), each run's
# criterion results kept apart. Prints, per workload and peer, each build's
# median rate over the rounds and its min–max, then the sled store against
# the raw file and its peers.
#
# Usage: benches/store_ab.sh --before EXE --after EXE [--rounds N] [--filter REGEX]
#   EXE: target/release/deps/event_store-<hash>, as `cargo bench -p
#   metachat-benches --bench event_store --no-run` prints it.
#   --rounds: runs of each build (default 2); --filter: criterion's filter
#   (default: every workload).
# Results go to $AB_OUT (default a temporary directory, printed). Run it on
# a quiet machine. Exits non-zero if a run failed or a baseline is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
before="" after="" rounds=2 filter=""
while [ $# -gt 0 ]; do
    case "$1" in
        --before) before="$2"; shift 2 ;;
        --after) after="$2"; shift 2 ;;
        --rounds) rounds="$2"; shift 2 ;;
        --filter) filter="$2"; shift 2 ;;
        *) echo "store_ab: unknown argument $1" >&2; exit 2 ;;
    esac
done
[ -x "$before" ] && [ -x "$after" ] || { echo "store_ab: --before and --after must be executables" >&2; exit 2; }
out="${AB_OUT:-$(mktemp -d -t store-ab.XXXXXX)}"
mkdir -p "$out"
echo "store_ab: results in $out" >&2
run() { # round build exe
    echo "store_ab: round $1, $2" >&2
    CRITERION_HOME="$out/r$1-$2" "$3" --bench ${filter:+"$filter"} >"$out/r$1-$2.log" 2>&1 \
        || { echo "store_ab: the $2 run of round $1 failed (see $out/r$1-$2.log)" >&2; exit 1; }
}
for ((r = 1; r <= rounds; r++)); do
    if ((r % 2)); then run "$r" before "$before"; run "$r" after "$after"
    else run "$r" after "$after"; run "$r" before "$before"; fi
done
python3 benches/ab_report.py "$out"
