#!/usr/bin/env bash
# The peer benchmark (../shared/bench) through `pulse run`, measured and checked
# exactly as the peers are: 10 s tumbling windows by (tenant, metric) with
# count/sum/min/max/avg over N JSONL events, whole process, output checked
# against the plain-Python reference.
#
# Usage: benches/run-bench-window.sh [N=10000000] [WORKERS=2] [--with-flink]
# Prints one line per run, e.g.
#   engine=pulse-w2 events=10000000 seconds=4.1 events_per_s=2439024 correct=yes ... peak_rss_mb=55
# With --with-flink, runs Flink (parallelism 2) on the same file right after,
# so the two figures come from the same session (needs ../shared/bench/setup_venvs.sh flink).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
peers="${PEERS_DIR:-$repo/../shared/bench}"
n="${1:-10000000}"
workers="${2:-2}"
with_flink="${3:-}"

# shellcheck source=/dev/null
source "$peers/common.sh"
ensure_data "$n"

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/pulse/target}"
cargo build --release -p pulse --manifest-path "$repo/Cargo.toml" >&2
pulse="$CARGO_TARGET_DIR/release/pulse"

# common.sh's helpers are not written for `set -e` (a missing key is a non-zero grep).
set +e
out="$PEERS_DATA/out/pulse_${n}_w${workers}.jsonl"
log="$PEERS_DATA/logs/pulse_${n}_w${workers}.log"
# measure() wants the processing time as ENGINE_SECONDS=...; pulse's whole
# process time is reported (start-up included), as for the peers.
BENCH_INPUT="$(events_file "$n")" BENCH_OUTPUT="$out" \
  measure "pulse-w$workers" "$n" "$out" "$log" -- \
  bash -c 't0=$(date +%s.%N); "$0" run "$1" --workers "$2" || exit $?; t1=$(date +%s.%N); awk -v a="$t0" -v b="$t1" "BEGIN{printf \"ENGINE_SECONDS=%.3f\\n\", b-a}"' \
  "$pulse" "$repo/pipelines/bench-window.toml" "$workers"

if [ "$with_flink" = "--with-flink" ]; then
  "$peers/run_flink.sh" "$n" 2
fi
