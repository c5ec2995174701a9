#!/usr/bin/env bash
# Runs the event_store bench and prints the machine and the table of benches/README.md.
# Usage: benches/run.sh [criterion args, e.g. a filter like `replay`]
# Stores go to $METACHAT_BENCH_DIR (default: the system temp dir); about 6 GB
# of free space is needed there while the 1,000,000-event datasets exist.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
cargo bench -p metachat-benches --bench event_store -- "$@"
echo
echo "## Machine"
echo
echo '```'
echo "nproc: $(nproc)"
lscpu | grep -E '^(Model name|CPU\(s\)|Hypervisor vendor|L2 cache|L3 cache):' || true
free -g | head -2
df -T "${METACHAT_BENCH_DIR:-${TMPDIR:-/tmp}}"
uname -r
echo '```'
echo
python3 benches/report.py "$CARGO_TARGET_DIR/criterion"
