#!/usr/bin/env bash
# Rows/s into the ClickHouse, Redis and Parquet sinks, each beside the destination's own
# bulk load of the same rows, all in one session (the machine's speed drifts):
#
#   pulse run benches/sinks/file.toml        window rows to a JSONL file (no server)
#   pulse run benches/sinks/clickhouse.toml  the same rows into ClickHouse (window_aggregates)
#     vs clickhouse-client INSERT … FORMAT TabSeparated of those rows, dumped back
#   pulse run benches/sinks/redis.toml       the same rows into Redis (one script call a row)
#     vs redis-benchmark -P 16 (SET and HSET, as many requests as rows)
#   pulse run benches/sinks/parquet.toml     the same rows as Parquet files
#     vs pyarrow reading the JSONL rows and writing one Parquet file
#
# Each command runs RUNS times (default 3); the script prints every wall time and the
# rows/s of the fastest. Needs ClickHouse (native 9000, HTTP 8123) and Redis (6379) on
# 127.0.0.1 (scripts/test.sh starts them) and the pyarrow venv (scripts/pyarrow.sh).
#
# Usage: benches/run-bench-sinks.sh [EVENTS=300000] [RUNS=3]
# (PULSE_BIN=path: that pulse binary instead of building the release one.)
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
events="${1:-300000}"
runs="${2:-3}"
work="$(mktemp -d /tmp/pulse-bench-sinks.XXXXXX)"
database="pulse_bench_$$"
cleanup() {
  clickhouse-client --query "DROP DATABASE IF EXISTS $database" || true
  redis-cli --scan --pattern 'pulse-bench:*' | xargs -r -n 1000 redis-cli del >/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/pulse/target}"
if [[ -z "${PULSE_BIN:-}" ]]; then
  cargo build --release -p pulse --manifest-path "$repo/Cargo.toml" >&2
fi
pulse="${PULSE_BIN:-$CARGO_TARGET_DIR/release/pulse}"
python="${PULSE_PYARROW_PYTHON:-$HOME/.cache/pulse/venv-pyarrow/bin/python}"

"$pulse" generate --events "$events" --rate 3000 --hosts-per-tenant 200 --out "$work/events.jsonl" >/dev/null
export BENCH_INPUT="$work/events.jsonl" BENCH_OUT="$work" BENCH_DATABASE="$database"

# Wall seconds of "$@", best of $runs.
best_of() {
  local best="" start end took
  for _ in $(seq "$runs"); do
    start=$(date +%s.%N)
    "$@" >/dev/null 2>>"$work/log"
    end=$(date +%s.%N)
    took=$(echo "$end - $start" | bc -l)
    echo "    $(printf '%.3f' "$took") s" >&2
    if [[ -z "$best" ]] || (($(echo "$took < $best" | bc -l))); then best="$took"; fi
  done
  echo "$best"
}
rate() { printf '%.0f rows/s (best %.3f s)' "$(echo "$1 / $2" | bc -l)" "$2"; }

echo "file sink:" >&2
t_file=$(best_of "$pulse" run "$repo/benches/sinks/file.toml")
rows=$(wc -l <"$work/rows.jsonl")
echo "events=$events window rows=$rows"
echo "file sink (no server):    $(rate "$rows" "$t_file")"

echo "clickhouse sink:" >&2
t_ch=$(best_of "$pulse" run "$repo/benches/sinks/clickhouse.toml")
stored=$(clickhouse-client --query "SELECT count() FROM $database.window_aggregates FINAL")
clickhouse-client --query "SELECT * FROM $database.window_aggregates FINAL FORMAT TabSeparated" >"$work/rows.tsv"
clickhouse-client --query "CREATE TABLE $database.baseline AS $database.window_aggregates"
echo "clickhouse-client INSERT:" >&2
t_ch_bulk=$(best_of sh -c "clickhouse-client --query 'INSERT INTO $database.baseline FORMAT TabSeparated' <'$work/rows.tsv'")
echo "clickhouse sink:          $(rate "$rows" "$t_ch") ($stored rows stored)"
echo "clickhouse-client INSERT: $(rate "$stored" "$t_ch_bulk")"

echo "redis sink:" >&2
t_redis=$(best_of "$pulse" run "$repo/benches/sinks/redis.toml")
echo "redis-benchmark -P 16:" >&2
t_set=$(best_of redis-benchmark -h 127.0.0.1 -p 6379 -P 16 -n "$rows" -r 100000 -q set 'pulse-bench:k:__rand_int__' v)
t_hset=$(best_of redis-benchmark -h 127.0.0.1 -p 6379 -P 16 -n "$rows" -r 100000 -q hset 'pulse-bench:h:__rand_int__' f v)
echo "redis sink:               $(rate "$rows" "$t_redis")"
echo "redis-benchmark SET -P16: $(rate "$rows" "$t_set")"
echo "redis-benchmark HSET -P16: $(rate "$rows" "$t_hset")"

echo "parquet sink:" >&2
t_pq=$(best_of "$pulse" run "$repo/benches/sinks/parquet.toml")
echo "pyarrow:" >&2
t_pa=$(best_of "$python" "$repo/benches/sinks/pyarrow_write.py" "$work/rows.jsonl" "$work/baseline.parquet")
echo "parquet sink:             $(rate "$rows" "$t_pq")"
echo "pyarrow read+write:       $(rate "$rows" "$t_pa")"
