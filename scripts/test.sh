#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run calls this and nothing else).
#
# Idempotent: installs only what is missing, starts only what is not running,
# and stops what it started. Build output is cached outside the clone
# (CARGO_TARGET_DIR, default ~/.cache/pulse/target) so repeated runs are fast.
# The servers (Apache Kafka, Neo4j, Redis, ClickHouse, FalkorDB) start while the code builds.
#
# Environment:
#   CI=true            a missing server or tool is a failure, never a skip
#   PULSE_TEST_QUICK=1 skip fmt/clippy (local iteration)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/pulse/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
mkdir -p "$CARGO_TARGET_DIR"

step() { printf '\n==> %s  (%ss)\n' "$*" "$SECONDS"; }
state="$HOME/.cache/pulse"
mkdir -p "$state"

# shellcheck source=scripts/services.sh
source "$here/scripts/services.sh"
# shellcheck source=scripts/schemathesis.sh
source "$here/scripts/schemathesis.sh"
# shellcheck source=scripts/ops-tools.sh
source "$here/scripts/ops-tools.sh"
# shellcheck source=scripts/pyarrow.sh
source "$here/scripts/pyarrow.sh"
# shellcheck source=scripts/onnxruntime.sh
source "$here/scripts/onnxruntime.sh"

step "toolchain"
cargo --version
command -v python3 >/dev/null || { echo "python3 is required (benchmark checker, Kafka cluster ids)"; exit 1; }

step "installing what is missing"
ensure_kafka
ensure_neo4j
ensure_redis
ensure_clickhouse
ensure_falkordb
ensure_chromium
ensure_schemathesis
ensure_ops_tools
ensure_pyarrow
ensure_onnxruntime

step "starting servers (they come up while the code builds)"
start_kafka
start_neo4j
start_redis
start_clickhouse
start_falkordb
export PULSE_KAFKA_BROKERS=127.0.0.1:9092
export PULSE_REDIS_URL=redis://127.0.0.1:6379
export PULSE_CLICKHOUSE_URL=http://127.0.0.1:8123

if [ "${PULSE_TEST_QUICK:-0}" != 1 ]; then
  step "cargo fmt --check"
  cargo fmt --all -- --check
  step "cargo clippy -D warnings"
  cargo clippy --workspace --all-targets --locked -- -D warnings
fi

step "building the tests"
cargo test --workspace --locked --no-run

step "waiting for the servers"
wait_for_kafka
wait_for_neo4j
wait_for_clickhouse
wait_for_falkordb

step "cargo test"
cargo test --workspace --locked --no-fail-fast
step "done"
