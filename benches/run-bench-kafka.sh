#!/usr/bin/env bash
# Kafka source throughput: the peer benchmark's events published to a topic,
# then read to the end (a) by a bare rdkafka consumer that only counts them and
# (b) by `pulse run pipelines/bench-window-kafka.toml` (Kafka source → 10 s
# tumbling windows by (tenant, metric) → JSONL, checked against the reference),
# in the same session. The issue's target: (b) ≥ 0.8 × (a).
#
# Usage: benches/run-bench-kafka.sh [N=2000000] [PARTITIONS=2] [WORKERS=2]
# Starts tansu on 127.0.0.1:9092 unless a broker is already listening there.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
peers="${PEERS_DIR:-$repo/../shared/bench}"
n="${1:-2000000}"
partitions="${2:-2}"
workers="${3:-2}"
state="$HOME/.cache/pulse"
mkdir -p "$state"

# shellcheck source=../scripts/services.sh
source "$repo/scripts/services.sh"
ensure_tansu
start_broker

set +e # common.sh's helpers are not written for `set -e`
# shellcheck source=/dev/null
source "$peers/common.sh"
ensure_data "$n" || exit 1
set -e

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/pulse/target}"
cargo build --release -p pulse -p pulse-benches --bin pulse --bin kafka-bare-consumer --manifest-path "$repo/Cargo.toml" >&2
bin="$CARGO_TARGET_DIR/release"
brokers=127.0.0.1:9092
topic="bench-$n-$$.events.normalized"

"$bin/pulse" topics create --brokers "$brokers" --partitions "$partitions" "$topic"
t0=$(date +%s.%N)
"$bin/pulse" produce --brokers "$brokers" --topic "$topic" --file "$(events_file "$n")" 2>/dev/null
t1=$(date +%s.%N)
awk -v n="$n" -v a="$t0" -v b="$t1" 'BEGIN{printf "produce events=%d seconds=%.3f events_per_s=%.0f\n", n, b-a, n/(b-a)}'

# Both are timed as whole processes (start-up, metadata, reading to the end).
t0=$(date +%s.%N)
bare="$("$bin/kafka-bare-consumer" "$brokers" "$topic")"
t1=$(date +%s.%N)
echo "$bare"
bare_rate=$(awk -v n="$n" -v a="$t0" -v b="$t1" 'BEGIN{printf "%.0f", n/(b-a)}')
awk -v n="$n" -v a="$t0" -v b="$t1" 'BEGIN{printf "engine=bare-rdkafka-process events=%d seconds=%.3f events_per_s=%.0f\n", n, b-a, n/(b-a)}'

out="$PEERS_DATA/out/pulse_kafka_${n}.jsonl"
t0=$(date +%s.%N)
BENCH_BROKERS="$brokers" BENCH_TOPIC="$topic" BENCH_GROUP="bench-$$" BENCH_OUTPUT="$out" \
  "$bin/pulse" run "$repo/pipelines/bench-window-kafka.toml" --workers "$workers" 2>/dev/null
t1=$(date +%s.%N)
check="$("$PEERS_PYTHON" "$peers/check.py" "$out" "$(expected_file "$n")" --quiet | head -1)"
pulse_rate=$(awk -v n="$n" -v a="$t0" -v b="$t1" 'BEGIN{printf "%.0f", n/(b-a)}')
awk -v n="$n" -v a="$t0" -v b="$t1" -v w="$workers" -v c="${check%% *}" \
  'BEGIN{printf "engine=pulse-kafka-w%s events=%d seconds=%.3f events_per_s=%.0f %s\n", w, n, b-a, n/(b-a), c}'
awk -v p="$pulse_rate" -v b="$bare_rate" 'BEGIN{printf "ratio pulse/bare=%.2f (target >= 0.8)\n", p/b}'
