#!/usr/bin/env bash
# Incident re-ranking latency: `pulse run pipelines/bench-rca-latency.toml` (an
# `http` source into the incidents operator, a gateway), and `pulse-loadtest
# incidents`, which posts background metrics at RATE events/s (stamped with the
# wall clock), opens incidents one after another and posts late causes into them
# one at a time, timing each from its POST to the /ws version of its incident that
# ranks it. One run per allowed out-of-orderness, then a table.
#
# Usage: benches/run-bench-rca-latency.sh [OUT_OF_ORDERNESS...]   (default: 200ms 1s 5s)
#
# Environment:
#   CAUSES (100)       causes timed per run
#   RATE (2000)        background events per second
#   PORT (8090)        where the gateway listens
#   PULSE_BIN, LOADTEST_BIN   use these binaries instead of building them
#   CARGO_TARGET_DIR   where to build (default ~/.cache/pulse/target)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/pulse/target}"
causes="${CAUSES:-100}"
rate="${RATE:-2000}"
port="${PORT:-8090}"
if (($# > 0)); then settings=("$@"); else settings=(200ms 1s 5s); fi

if [[ -z "${PULSE_BIN:-}" ]]; then
  cargo build --release -p pulse
  PULSE_BIN="$CARGO_TARGET_DIR/release/pulse"
fi
if [[ -z "${LOADTEST_BIN:-}" ]]; then
  cargo build --release -p pulse-loadtest
  LOADTEST_BIN="$CARGO_TARGET_DIR/release/pulse-loadtest"
fi
[[ -x "$PULSE_BIN" && -x "$LOADTEST_BIN" ]] || { echo "error: no pulse or pulse-loadtest binary" >&2; exit 1; }

work="$(mktemp -d /tmp/pulse-bench-rca.XXXXXX)"
export PULSE_JWT_SECRET="${PULSE_JWT_SECRET:-bench-rca-$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')}"
export PULSE_LISTEN="127.0.0.1:$port"
pulse_pid=""
stop() {
  [[ -n "$pulse_pid" ]] && kill -TERM "$pulse_pid" 2>/dev/null && wait "$pulse_pid" 2>/dev/null
  pulse_pid=""
}
trap 'stop; echo "logs and reports: $work"' EXIT

for ooo in "${settings[@]}"; do
  out="$work/ooo-$ooo"
  mkdir -p "$out"
  PULSE_OUT_DIR="$out" BENCH_OUT_OF_ORDERNESS="$ooo" "$PULSE_BIN" run pipelines/bench-rca-latency.toml \
    >"$out/pulse.log" 2>&1 &
  pulse_pid=$!
  for _ in $(seq 1 600); do
    curl -sf "http://$PULSE_LISTEN/health/ready" >/dev/null && break
    kill -0 "$pulse_pid" 2>/dev/null || { cat "$out/pulse.log" >&2; echo "error: pulse exited" >&2; exit 1; }
    sleep 0.1
  done
  token="$("$PULSE_BIN" token --tenant bench --scopes read,write --ttl 12h)"
  echo "== max_out_of_orderness $ooo: $causes causes, $rate background events/s"
  PULSE_TOKEN="$token" "$LOADTEST_BIN" incidents --target "http://$PULSE_LISTEN" --rate "$rate" \
    --count "$causes" --duration 20m --out "$out/report" 2>&1 | grep -v '^\s*$' | tail -n 12
  stop
done

echo
python3 - "$work" "${settings[@]}" <<'PY'
import json, os, sys

work, settings = sys.argv[1], sys.argv[2:]
print("| max_out_of_orderness | causes timed | timeouts | p50 ms | p95 ms | p99 ms | max ms | opening p50 / p95 ms |")
print("| --- | --- | --- | --- | --- | --- | --- | --- |")
for ooo in settings:
    path = os.path.join(work, f"ooo-{ooo}", "report", "report.json")
    try:
        report = json.load(open(path))
    except OSError:
        print(f"| {ooo} | no report | | | | | | |")
        continue
    series = {s["name"]: s for s in report["series"]}
    cause, opening = series["incidents.cause_to_ranking"], series["incidents.open"]
    lat, op = cause["latency_ms"], opening["latency_ms"]
    print(f'| {ooo} | {cause["ok"]} | {cause["errors_total"]} | {lat["p50"]:.0f} | {lat["p95"]:.0f} | '
          f'{lat["p99"]:.0f} | {lat["max"]:.0f} | {op["p50"]:.0f} / {op["p95"]:.0f} |')
PY
