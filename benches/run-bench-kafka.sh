#!/usr/bin/env bash
# Kafka source throughput: the peer benchmark's events published to a topic,
# then read to the end (a) by a bare rdkafka consumer that only counts them and
# (b) by `pulse run pipelines/bench-window-kafka.toml` (Kafka source → 10 s
# tumbling windows by (tenant, metric) → JSONL, checked against the reference),
# in the same session. The issue's target: (b) ≥ 0.8 × (a).
#
# Usage: benches/run-bench-kafka.sh [N=2000000] [PARTITIONS=2] [WORKERS=2] [ROUNDS=3]
# Starts Apache Kafka on 127.0.0.1:9092 unless a broker is already listening there.
# One pair of runs says little on a noisy machine: the two are run alternately
# ROUNDS times on the same topic, and the median of the per-round ratios is the
# figure.
#
# CONTENTION=K runs K busy loops beside both programs for every round: a
# reproducible stand-in for a slow or shared machine, where the program that
# needs more CPU per event falls behind first.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
peers="${PEERS_DIR:-$repo/../shared/bench}"
n="${1:-2000000}"
partitions="${2:-2}"
workers="${3:-2}"
rounds="${4:-3}"
state="$HOME/.cache/pulse"
mkdir -p "$state"

# shellcheck source=../scripts/services.sh
source "$repo/scripts/services.sh"
ensure_kafka
start_kafka && wait_for_kafka

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

hogs=()
stop_hogs() { if ((${#hogs[@]})); then kill "${hogs[@]}" 2>/dev/null || true; fi; }
trap stop_hogs EXIT
for _ in $(seq 1 "${CONTENTION:-0}"); do
  (while :; do :; done) &
  hogs+=("$!")
done
((${#hogs[@]})) && echo "contention: ${#hogs[@]} busy loops beside both programs"

# Both are timed as whole processes (start-up, metadata, reading to the end).
out="$PEERS_DATA/out/pulse_kafka_${n}.jsonl"
ratios=()
for round in $(seq 1 "$rounds"); do
  t0=$(date +%s.%N)
  bare="$("$bin/kafka-bare-consumer" "$brokers" "$topic")"
  t1=$(date +%s.%N)
  echo "$bare"
  bare_seconds=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.3f", b-a}')
  awk -v n="$n" -v s="$bare_seconds" -v r="$round" \
    'BEGIN{printf "round=%d engine=bare-rdkafka-process events=%d seconds=%.3f events_per_s=%.0f\n", r, n, s, n/s}'

  t0=$(date +%s.%N)
  BENCH_BROKERS="$brokers" BENCH_TOPIC="$topic" BENCH_GROUP="bench-$$-$round" BENCH_OUTPUT="$out" \
    "$bin/pulse" run "$repo/pipelines/bench-window-kafka.toml" --workers "$workers" 2>/dev/null
  t1=$(date +%s.%N)
  check="$("$PEERS_PYTHON" "$peers/check.py" "$out" "$(expected_file "$n")" --quiet | head -1)"
  pulse_seconds=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.3f", b-a}')
  awk -v n="$n" -v s="$pulse_seconds" -v w="$workers" -v c="${check%% *}" -v r="$round" \
    'BEGIN{printf "round=%d engine=pulse-kafka-w%s events=%d seconds=%.3f events_per_s=%.0f %s\n", r, w, n, s, n/s, c}'
  ratios+=("$(awk -v p="$pulse_seconds" -v b="$bare_seconds" 'BEGIN{printf "%.2f", b/p}')")
  echo "round=$round ratio pulse/bare=${ratios[-1]}"
done
median=$(printf '%s\n' "${ratios[@]}" | sort -n | awk '{v[NR]=$1} END{print (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}')
echo "ratio pulse/bare: rounds=${ratios[*]} median=$median (target >= 0.8)"
