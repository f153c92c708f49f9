#!/usr/bin/env bash
# KV GET and SET through HTTP on loopback with wrk (64 connections), against the
# embedded store and against Redis. Prints wrk's summary (req/s, latency
# percentiles) per case.
#
# Environment: DURATION (default 10s), CONNECTIONS (64), THREADS (2).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/pulse/target}"
state="$HOME/.cache/pulse"
mkdir -p "$state"
# shellcheck source=scripts/services.sh
source "$here/scripts/services.sh"

duration="${DURATION:-10s}"
connections="${CONNECTIONS:-64}"
threads="${THREADS:-2}"
command -v wrk >/dev/null || apt-get install -y wrk >/dev/null
ensure_redis
start_redis

cargo build --release -p pulse-gateway --example serve
server="$CARGO_TARGET_DIR/release/examples/serve"
export PULSE_JWT_SECRET="${PULSE_JWT_SECRET:-bench-secret-bench-secret-bench-secret-0}"

lua="$(mktemp -d)"
cat >"$lua/set.lua" <<'LUA'
local counter = 0
request = function()
  counter = counter + 1
  local body = '{"operations":[{"op":"set","key":"k' .. (counter % 10000) .. '","value":{"n":' .. counter .. ',"host":"web-1"}}]}'
  return wrk.format("POST", "/api/v1/kv/batch", nil, body)
end
LUA

bench_backend() {
  local name="$1"; shift
  local data; data="$(mktemp -d)"
  "$server" 127.0.0.1:18080 "$data" "$@" >"$lua/token" 2>"$lua/server.log" &
  local pid=$!
  for _ in $(seq 1 100); do port_open 18080 && break; sleep 0.1; done
  local token; token="$(head -1 "$lua/token")"
  curl -sf -X POST -H "authorization: Bearer $token" -H 'content-type: application/json' \
    -d '{"key":"bench","value":{"cpu":0.5,"host":"web-1","tags":["a","b"]}}' http://127.0.0.1:18080/api/v1/kv >/dev/null \
    || curl -sf -X PUT -H "authorization: Bearer $token" -H 'content-type: application/json' \
    -d '{"value":{"cpu":0.5,"host":"web-1","tags":["a","b"]}}' http://127.0.0.1:18080/api/v1/kv/bench >/dev/null
  echo "== $name: GET /api/v1/kv/bench"
  wrk -t"$threads" -c"$connections" -d"$duration" --latency -H "authorization: Bearer $token" \
    http://127.0.0.1:18080/api/v1/kv/bench
  echo "== $name: SET (POST /api/v1/kv/batch, one upsert)"
  wrk -t"$threads" -c"$connections" -d"$duration" --latency -H "authorization: Bearer $token" \
    -H 'content-type: application/json' -s "$lua/set.lua" http://127.0.0.1:18080
  kill "$pid"; wait "$pid" 2>/dev/null || true
  rm -rf "$data"
}

bench_backend embedded
bench_backend redis redis://127.0.0.1:6379
rm -rf "$lua"
