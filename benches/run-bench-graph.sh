#!/usr/bin/env bash
# Rows/s into the graph sink (FalkorDB over RESP) beside the same rows as one big
# `UNWIND` sent with redis-cli, the server's own bulk path, in one farm-bench call
# (pairs A B A B …, a fresh graph before every run):
#
#   A: pulse run benches/graph/falkordb.toml   EVENTS log events about 100 pods
#   B: redis-cli GRAPH.QUERY of one UNWIND     the same rows, the same MERGEs and indexes
#
# Needs FalkorDB on 127.0.0.1:6380 (scripts/services.sh: ensure_falkordb, start_falkordb).
# Usage: benches/run-bench-graph.sh [EVENTS=20000] [RUNS=3]   (PULSE_BIN: a pulse binary)
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
events="${1:-20000}"
runs="${2:-3}"
work="$(mktemp -d /tmp/pulse-bench-graph.XXXXXX)"
trap 'rm -rf "$work"' EXIT
bin_dir="${PULSE_FALKORDB_BIN_DIR:?source scripts/services.sh and run ensure_falkordb first}"
cli="$bin_dir/redis-cli"
[ -x "$cli" ] || cli="$(command -v redis-cli)"

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/pulse/target}"
if [[ -z "${PULSE_BIN:-}" ]]; then
  cargo build --release -p pulse --manifest-path "$repo/Cargo.toml" >&2
fi
pulse="${PULSE_BIN:-$CARGO_TARGET_DIR/release/pulse}"

python3 "$repo/benches/graph/make_rows.py" "$events" "$work/events.jsonl" "$work/query.cypher"
sed -e "s|@EVENTS@|$work/events.jsonl|" "$repo/benches/graph/falkordb.toml" > "$work/pipeline.toml"

cat > "$work/sink.sh" <<SH
#!/bin/sh
"$cli" -p 6380 GRAPH.DELETE pulse:acme >/dev/null 2>&1
exec "$pulse" run "$work/pipeline.toml" >/dev/null 2>&1
SH
cat > "$work/unwind.sh" <<SH
#!/bin/sh
"$cli" -p 6380 GRAPH.DELETE pulse:acme >/dev/null 2>&1
"$cli" -p 6380 GRAPH.QUERY pulse:acme "CREATE INDEX FOR (n:Resource) ON (n.name)" >/dev/null
"$cli" -p 6380 GRAPH.QUERY pulse:acme "CREATE INDEX FOR (n:Episodic) ON (n.id)" >/dev/null
exec "$cli" -p 6380 -x GRAPH.QUERY pulse:acme < "$work/query.cypher" >/dev/null
SH
chmod +x "$work/sink.sh" "$work/unwind.sh"

farm-bench -n "$runs" --timeout 900 --vs "$work/unwind.sh" -- "$work/sink.sh"
echo "episodes in the graph after the last run:"
"$cli" -p 6380 GRAPH.QUERY pulse:acme "MATCH (e:Episodic) RETURN count(e)" | sed -n 2p
