#!/usr/bin/env bash
# The write-to-mood pipeline, distributed (one and two mood workers) and
# embedded, each behind the same nginx gateway, with the lexicon analyzer
# and with e5: runs benches/pipeline.rs against each system in turn,
# alternating (A/B/C, A/B/C, ...), and prints every run's figures and a
# table of the median and spread per system.
#
# Usage: benches/pipeline.sh [rounds]     (default 2 rounds)
#
# Environment: PIPELINE_ENTRIES_LEXICON (default 2000), PIPELINE_ENTRIES_E5
# (default 600), PIPELINE_CLIENTS (default 16), PIPELINE_ANALYZERS (default
# "lexicon e5"). Needs the model assets (scripts/fetch-models), and starts
# Kafka and Cassandra (scripts/kafka, scripts/cassandra) when they are not
# running. Every system is started fresh for its run (its own Cassandra
# namespace and Kafka prefix, or its own sled directory) and stopped after.
# If any system cannot run, the script fails: no table without its peers.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO="$PWD"
ROUNDS="${1:-2}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$REPO/target}"
OUT="${PIPELINE_OUT:-$CARGO_TARGET_DIR/pipeline}"
mkdir -p "$OUT"
RESULTS="$OUT/results.jsonl"
: >"$RESULTS"

log() { echo "pipeline.sh: $*" >&2; }

log "building the server and the load generator (release)"
cargo build --release -q -p metachat-server
cargo bench -q -p metachat-benches --bench pipeline --no-run 2>/dev/null
GEN="$(ls -t "$CARGO_TARGET_DIR"/release/deps/pipeline-* | grep -v '\.d$' | head -n 1)"
SERVER="$CARGO_TARGET_DIR/release/metachat-server"
[ -x "$GEN" ] && [ -x "$SERVER" ] || { log "no binaries"; exit 1; }
scripts/fetch-models --no-python >/dev/null

for svc in kafka cassandra; do
    eval "$("scripts/$svc" start)"
done
export KAFKA_BROKERS CASSANDRA_NODES
# Sessions outlive the longest run; every user registers from loopback
# (the gateway), so the registration quota is lifted as in the tests.
export METACHAT_TOKEN_TTL_SECS=7200 METACHAT_REGISTER_PER_MINUTE=1000000 \
    METACHAT_REGISTER_BURST=1000000

uptime >&2

# The server's --analyzer for an analyzer of this bench (`auto` runs e5
# from the model directory; the check below fails a run that fell back).
server_analyzer() {
    if [ "$1" = e5 ]; then echo auto; else echo "$1"; fi
}

# Fails when a run meant for e5 fell back to the lexicon (logs in $1...).
check_model() {
    local analyzer="$1"
    shift
    [ "$analyzer" = e5 ] || return 0
    if grep -h '"mood analyzer ready"' "$@" | grep -q '"fallback":true'; then
        log "an e5 run fell back to the lexicon: $(grep -h 'mood analyzer ready' "$@" | head -n 1)"
        return 1
    fi
}

# run_distributed <workers> <analyzer> <run-id>: prints the generator's line.
run_distributed() {
    local workers="$1" analyzer="$2" id="$3"
    local dir="$OUT/dist-$id"
    rm -rf "$dir"
    export METACHAT_BUILD_DIR="$dir" METACHAT_SERVER_BIN="$SERVER" \
        METACHAT_ANALYZER="$(server_analyzer "$analyzer")" METACHAT_DIST_MOOD_WORKERS="$workers" \
        METACHAT_DIST_NAMESPACE="bench_$id" METACHAT_DIST_PREFIX="bench.$id." \
        METACHAT_DIST_PORT_BASE=18280
    eval "$(scripts/distributed start 2>>"$dir.log")"
    local rc=0
    check_model "$analyzer" "$dir"/distributed/mood-*/log || rc=$?
    [ "$rc" = 0 ] && { PIPELINE_URL="$METACHAT_GATEWAY_URL" "$GEN" || rc=$?; }
    scripts/distributed stop 2>>"$dir.log"
    unset METACHAT_BUILD_DIR METACHAT_SERVER_BIN METACHAT_DIST_MOOD_WORKERS \
        METACHAT_DIST_NAMESPACE METACHAT_DIST_PREFIX METACHAT_DIST_PORT_BASE
    return "$rc"
}

# run_embedded <analyzer> <run-id>: the embedded server (sled) behind the gateway.
run_embedded() {
    local analyzer="$1" id="$2"
    local dir="$OUT/emb-$id"
    rm -rf "$dir"
    mkdir -p "$dir"
    local port=18391
    METACHAT_MODEL_DIR="$REPO/models" "$SERVER" --analyzer "$(server_analyzer "$analyzer")" \
        --data-dir "$dir/data" --addr "127.0.0.1:$port" --metrics-addr 127.0.0.1:0 \
        --log-format json </dev/null >"$dir/log" 2>&1 &
    local pid=$!
    local i
    for i in $(seq 1 240); do
        curl -fsS -o /dev/null --max-time 2 "http://127.0.0.1:$port/healthz" && break
        kill -0 "$pid" 2>/dev/null || { log "embedded server exited: $(tail -n 5 "$dir/log")"; return 1; }
        sleep 0.5
    done
    export METACHAT_GATEWAY_ADDR=127.0.0.1:18390 METACHAT_GATEWAY_RUN_DIR="$dir/gateway"
    export METACHAT_USER_UPSTREAMS="127.0.0.1:$port" METACHAT_DIARY_UPSTREAMS="127.0.0.1:$port" \
        METACHAT_MATCHING_UPSTREAMS="127.0.0.1:$port"
    scripts/gateway start >/dev/null
    local rc=0
    check_model "$analyzer" "$dir/log" || rc=$?
    [ "$rc" = 0 ] && { PIPELINE_URL="http://$METACHAT_GATEWAY_ADDR" "$GEN" || rc=$?; }
    scripts/gateway stop >/dev/null || true
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    return "$rc"
}

for analyzer in ${PIPELINE_ANALYZERS:-lexicon e5}; do
    case "$analyzer" in
        lexicon) export PIPELINE_ENTRIES="${PIPELINE_ENTRIES_LEXICON:-2000}" ;;
        e5) export PIPELINE_ENTRIES="${PIPELINE_ENTRIES_E5:-600}" ;;
        *) log "unknown analyzer $analyzer"; exit 2 ;;
    esac
    for round in $(seq 1 "$ROUNDS"); do
        for system in distributed-1 distributed-2 embedded; do
            id="$analyzer-$system-$round-$(date +%s)"
            id="${id//-/_}"
            log "round $round: $system, $analyzer, $PIPELINE_ENTRIES entries"
            case "$system" in
                distributed-1) line="$(run_distributed 1 "$analyzer" "$id")" ;;
                distributed-2) line="$(run_distributed 2 "$analyzer" "$id")" ;;
                embedded) line="$(run_embedded "$analyzer" "$id")" ;;
            esac
            [ -n "$line" ] || { log "$system ($analyzer) produced no figures: failing"; exit 1; }
            echo "{\"system\":\"$system\",\"analyzer\":\"$analyzer\",\"round\":$round,\"run\":$line}" | tee -a "$RESULTS"
        done
    done
done

python3 - "$RESULTS" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
keys = ["entries_per_s", "delay_p50_ms", "delay_p99_ms", "write_p50_ms", "write_p99_ms"]
groups = {}
for r in rows:
    groups.setdefault((r["analyzer"], r["system"]), []).append(r["run"])
print("| analyzer | system | runs | " + " | ".join(keys) + " |")
print("|---|---|---|" + "---|" * len(keys))
for (analyzer, system), runs in groups.items():
    cells = []
    for k in keys:
        v = [run[k] for run in runs]
        cells.append(f"{statistics.median(v):,.0f} ({min(v):,.0f}–{max(v):,.0f})")
    print(f"| {analyzer} | {system} | {len(runs)} | " + " | ".join(cells) + " |")
EOF
