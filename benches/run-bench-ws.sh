#!/usr/bin/env bash
# WebSocket fan-out latency: `pulse run pipelines/bench-ws.toml` publishes 100 closed
# windows a second to `/ws`, and `pulse-loadtest ws` subscribes N clients of the
# pipeline's tenant and times every window message from the hub to the client.
# One run per N, then a table of all of them.
#
# Usage: benches/run-bench-ws.sh [CLIENTS...]      (default: 100 1000 10000)
#
# Environment:
#   DURATION (30) and WARMUP (5)     seconds measured / ignored after connecting, per N
#   CONNECT_CONCURRENCY (200)        handshakes in flight at once
#   FILTER ('{}')                    the subscription filter, e.g. '{"metric":"cpu"}'
#   PULSE_BENCH_HOSTS (20)           window rows per second = 5 x hosts
#   PORT (8090)                      where the gateway listens
#   PULSE_BIN, LOADTEST_BIN          use these binaries instead of building them
#   CARGO_TARGET_DIR                 where to build (default ~/.cache/pulse/target)
#
# Exits non-zero when a run had a client that failed to connect or starved.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/pulse/target}"

duration="${DURATION:-30}"
warmup="${WARMUP:-5}"
concurrency="${CONNECT_CONCURRENCY:-200}"
filter="${FILTER:-{\}}"
port="${PORT:-8090}"
export PULSE_BENCH_HOSTS="${PULSE_BENCH_HOSTS:-20}"
if (($# > 0)); then clients=("$@"); else clients=(100 1000 10000); fi
most=0
for n in "${clients[@]}"; do ((n > most)) && most=$n; done

# Every client is a socket in the load generator, and another in pulse: both
# processes inherit this limit (the load generator also raises its own).
hard="$(ulimit -Hn)"
ulimit -n "$hard" 2>/dev/null || ulimit -n 1048576
soft="$(ulimit -n)"
echo "open-file limit raised to $soft (hard limit $hard)"
if [[ "$soft" != unlimited ]] && ((soft < most + 2000)); then
  echo "error: $most clients need an open-file limit of at least $((most + 2000)), and the hard limit is $hard;" >&2
  echo "       raise it (as root: ulimit -Hn, or nofile in /etc/security/limits.conf) or run fewer clients" >&2
  exit 1
fi

if [[ -z "${PULSE_BIN:-}" ]]; then
  cargo build --release -p pulse
  PULSE_BIN="$CARGO_TARGET_DIR/release/pulse"
fi
[[ -x "$PULSE_BIN" ]] || { echo "error: no pulse binary at $PULSE_BIN" >&2; exit 1; }
if [[ -z "${LOADTEST_BIN:-}" ]]; then
  cargo build --release -p pulse-loadtest
  LOADTEST_BIN="$CARGO_TARGET_DIR/release/pulse-loadtest"
fi
[[ -x "$LOADTEST_BIN" ]] || { echo "error: no pulse-loadtest binary at $LOADTEST_BIN" >&2; exit 1; }

work="$(mktemp -d /tmp/pulse-bench-ws.XXXXXX)"
export PULSE_JWT_SECRET="${PULSE_JWT_SECRET:-bench-ws-$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')}"
export PULSE_LISTEN="127.0.0.1:$port" PULSE_OUT_DIR="$work/out"
"$PULSE_BIN" run pipelines/bench-ws.toml >"$work/pulse.log" 2>&1 &
pulse_pid=$!
sampler_pid=""
stop() {
  [[ -n "$sampler_pid" ]] && kill "$sampler_pid" 2>/dev/null
  kill -TERM "$pulse_pid" 2>/dev/null && wait "$pulse_pid" 2>/dev/null
  echo "logs and reports: $work"
}
trap stop EXIT
echo "pulse (pid $pulse_pid) on $PULSE_LISTEN, $((5 * PULSE_BENCH_HOSTS)) window rows/s; logs in $work"

for _ in $(seq 1 600); do
  curl -sf "http://$PULSE_LISTEN/health/ready" >/dev/null && break
  kill -0 "$pulse_pid" 2>/dev/null || { cat "$work/pulse.log" >&2; echo "error: pulse exited" >&2; exit 1; }
  sleep 0.1
done
curl -sf "http://$PULSE_LISTEN/health/ready" >/dev/null || { echo "error: pulse never became ready" >&2; exit 1; }
token="$("$PULSE_BIN" token --tenant acme --scopes read --ttl 12h)"

rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$pulse_pid/status"; }

# Samples pulse's resident memory every second into $1 while it runs; the largest is kept.
sample_rss() {
  local peak=0 now
  while now="$(rss_kb)"; do
    ((now > peak)) && peak=$now && echo "$peak" >"$1"
    sleep 1
  done
}

status=0
for n in "${clients[@]}"; do
  echo "== $n clients (pulse RSS before: $(($(rss_kb) / 1024)) MB)"
  sample_rss "$work/rss-peak-$n" &
  sampler_pid=$!
  if PULSE_TOKEN="$token" "$LOADTEST_BIN" ws --url "ws://$PULSE_LISTEN/ws" --clients "$n" \
    --duration "$duration" --warmup "$warmup" --connect-concurrency "$concurrency" --filter "$filter" \
    --server-pid "$pulse_pid" --json >"$work/ws-$n.json" 2> >(tee "$work/ws-$n.log" >&2); then :; else
    rc=$?
    echo "   pulse-loadtest exited $rc (2: a client failed to connect or starved)"
    status=1
  fi
  kill "$sampler_pid" 2>/dev/null || true
  wait "$sampler_pid" 2>/dev/null || true
  sampler_pid=""
  curl -sf -H "authorization: Bearer $token" "http://$PULSE_LISTEN/api/v1/stats" >"$work/stats-$n.json" || true
  [[ -s "$work/ws-$n.json" ]] && python3 - "$work/ws-$n.json" <<'PY'
import json, sys

r = json.load(open(sys.argv[1]))
lat = r["latency_ms"]
print(f'   {r["connected"]}/{r["clients_requested"]} connected, {r["messages_per_second"]:,.0f} msgs/s, '
      f'p50 {lat["p50"]:.1f} ms, p99 {lat["p99"]:.1f} ms, max {lat["max"]:.1f} ms, '
      f'{r["starving"]} starving, {r["lagged_messages"]} lagged notices ({r["dropped_total"]} dropped)')
for kind, key in (("connect error", "connect_errors"), ("disconnected", "disconnect_reasons")):
    for e in r[key]:
        print(f'   {kind}: {e["clients"]} x {e["error"]}')
PY
  sleep 2 # let the server drop the closed connections before the next run
  echo "   pulse RSS 2 s after the clients left: $(($(rss_kb) / 1024)) MB"
done

echo
python3 - "$work" "${clients[@]}" <<'PY'
import json, os, sys

work, runs = sys.argv[1], sys.argv[2:]
def read(name):
    try:
        return open(os.path.join(work, name)).read().strip()
    except OSError:
        return ""
def mb(name):
    kb = read(name)
    return int(kb) // 1024 if kb.isdigit() else ""
head = ["clients", "connected", "connect s", "msgs/s", "p50 ms", "p99 ms", "max ms", "min msgs/client",
        "starving", "disconnected", "dropped", "pulse cores", "loadgen cores", "pulse RSS MB", "pulse RSS peak MB"]
rows = []
for n in runs:
    try:
        r = json.load(open(os.path.join(work, f"ws-{n}.json")))
    except (OSError, ValueError):
        rows.append([n, "run failed"] + [""] * (len(head) - 2))
        continue
    lat, server = r["latency_ms"], r.get("server") or {}
    rows.append([n, r["connected"], f'{r["connect_seconds"]:.1f}', f'{r["messages_per_second"]:,.0f}',
                 f'{lat["p50"]:.1f}', f'{lat["p99"]:.1f}', f'{lat["max"]:.1f}', r["per_client"]["min"],
                 r["starving"], r["disconnected"], r["dropped_total"], f'{server.get("cores", 0):.2f}',
                 f'{r["load_generator_cores"]:.2f}', f'{server.get("rss_mb", 0):.0f}', mb(f"rss-peak-{n}")])
print("| " + " | ".join(head) + " |")
print("|" + " --- |" * len(head))
for row in rows:
    print("| " + " | ".join(str(c) for c in row) + " |")
PY
exit "$status"
