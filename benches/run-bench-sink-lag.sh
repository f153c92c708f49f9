#!/usr/bin/env bash
# End-to-end lag into the database sinks at a steady rate: `pulse run
# benches/sinks/lag.toml` (a live generator at RATE events/s, event time = now; 1 s
# windows per host and metric into ClickHouse and Redis; every event into ClickHouse)
# while benches/sinks/lag_sampler.py polls the servers and pulse's /metrics every
# INTERVAL for SECONDS after WARMUP, and prints the lags (see benches/README.md, "Sinks").
#
# Usage: benches/run-bench-sink-lag.sh [RATE=100000] [SECONDS=30] [WARMUP=10] [INTERVAL=0.05]
# PULSE_BIN=path/to/pulse skips the release build.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
rate="${1:-100000}"
seconds="${2:-30}"
warmup="${3:-10}"
interval="${4:-0.05}"
state="$HOME/.cache/pulse"
mkdir -p "$state"
# shellcheck source=../scripts/services.sh
source "$repo/scripts/services.sh"
ensure_clickhouse && ensure_redis
start_clickhouse; start_redis
wait_for_clickhouse

if [[ -z "${PULSE_BIN:-}" ]]; then
  export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/pulse/target}"
  cargo build --release -p pulse --manifest-path "$repo/Cargo.toml" >&2
  PULSE_BIN="$CARGO_TARGET_DIR/release/pulse"
fi
dir="$(mktemp -d /tmp/pulse-sink-lag.XXXXXX)"
port=$((20000 + RANDOM % 20000))
database="pulse_lag_$$"
prefix="pulse-lag-$$:"
export BENCH_RATE="$rate" BENCH_DATABASE="$database" BENCH_REDIS_PREFIX="$prefix" \
  BENCH_LISTEN="127.0.0.1:$port" BENCH_DIR="$dir" PULSE_JWT_SECRET="sink-lag-bench-secret-0123456789abcdef"
"$PULSE_BIN" run "$repo/benches/sinks/lag.toml" 2>"$dir/pulse.log" &
runner=$!
cleanup() {
  kill -INT "$runner" 2>/dev/null || true
  wait "$runner" 2>/dev/null || true
  curl -s "http://127.0.0.1:8123/" --data-binary "DROP DATABASE IF EXISTS $database" >/dev/null || true
  redis-cli -p 6379 --scan --pattern "$prefix*" | xargs -r -n 500 redis-cli -p 6379 DEL >/dev/null || true
  echo "pulse's log: $dir/pulse.log" >&2
  stop_started
}
trap cleanup EXIT
python3 "$repo/benches/sinks/lag_sampler.py" "http://127.0.0.1:$port/metrics" http://127.0.0.1:8123 \
  "$database" 127.0.0.1:6379 "$prefix" "$warmup" "$seconds" "$interval"
echo "rate=$rate seconds=$seconds warmup=$warmup interval=$interval pulse=$PULSE_BIN"
