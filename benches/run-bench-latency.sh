#!/usr/bin/env bash
# End-to-end result latency over Kafka at a steady rate: `pulse produce` publishes
# live sensor events (event time = now) at RATE events/s for SECONDS, while
# `pulse run pipelines/bench-latency-kafka.toml` windows them (1 s tumbling);
# the run summary reports p50/p99 of (result emitted − window end), which
# includes the allowed out-of-orderness (the issue's target: p99 − that < 50 ms).
#
# Usage: benches/run-bench-latency.sh [RATE=100000] [SECONDS=30] [OUT_OF_ORDERNESS=100ms]
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
rate="${1:-100000}"
seconds="${2:-30}"
ooo="${3:-100ms}"
state="$HOME/.cache/pulse"
mkdir -p "$state"
# shellcheck source=../scripts/services.sh
source "$repo/scripts/services.sh"
ensure_kafka
start_kafka && wait_for_kafka

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/pulse/target}"
cargo build --release -p pulse --manifest-path "$repo/Cargo.toml" >&2
pulse="$CARGO_TARGET_DIR/release/pulse"
topic="latency-$$.events.normalized"
out="$state/latency-$$.jsonl"
log="$state/latency-$$.log"
"$pulse" topics create --partitions 2 "$topic"

BENCH_TOPIC="$topic" BENCH_OUTPUT="$out" BENCH_OUT_OF_ORDERNESS="$ooo" \
  "$pulse" run "$repo/pipelines/bench-latency-kafka.toml" 2>"$log" &
runner=$!
sleep 2
"$pulse" produce --topic "$topic" --rate "$rate" --events $((rate * seconds)) 2>&1 | tail -1
sleep 3
kill -INT "$runner"
wait "$runner"
grep -E "delay after the window end|finished" "$log"
echo "rate=$rate seconds=$seconds max_out_of_orderness=$ooo rows=$(wc -l <"$out")"
