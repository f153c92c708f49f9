#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run calls this and nothing else).
#
# Idempotent: installs only what is missing, starts only what is not running,
# and stops what it started. Build output is cached outside the clone
# (CARGO_TARGET_DIR, default ~/.cache/pulse/target) so repeated runs are fast.
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

step() { printf '\n==> %s\n' "$*"; }
state="$HOME/.cache/pulse"
mkdir -p "$state"

# tansu, a Kafka-compatible broker (see ../shared/SERVICES.md); a long build, once per machine.
ensure_tansu() {
  command -v tansu >/dev/null && return 0
  echo "installing tansu (a long build, once per machine)"
  CARGO_TARGET_DIR="$state/tansu-target" cargo install tansu --locked --features dynostore
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

started_pids=()
stop_started() {
  for pid in "${started_pids[@]}"; do kill "$pid" 2>/dev/null || true; done
}
trap stop_started EXIT

start_broker() {
  if port_open 9092; then echo "a broker is already listening on 127.0.0.1:9092"; return 0; fi
  tansu broker --listener-url tcp://127.0.0.1:9092 --advertised-listener-url tcp://127.0.0.1:9092 \
    --storage-engine memory://tansu/ >"$state/tansu.log" 2>&1 &
  started_pids+=("$!")
  for _ in $(seq 1 100); do port_open 9092 && { echo "tansu started (pid $!)"; return 0; }; sleep 0.1; done
  echo "tansu did not open 127.0.0.1:9092; its log:"; tail -20 "$state/tansu.log"; return 1
}

step "toolchain"
cargo --version
command -v python3 >/dev/null || { echo "python3 is required (benchmark checker)"; exit 1; }

step "services"
ensure_tansu
start_broker
export PULSE_KAFKA_BROKERS=127.0.0.1:9092

if [ "${PULSE_TEST_QUICK:-0}" != 1 ]; then
  step "cargo fmt --check"
  cargo fmt --all -- --check
  step "cargo clippy -D warnings"
  cargo clippy --workspace --all-targets --locked -- -D warnings
fi

step "cargo test"
cargo test --workspace --locked --no-fail-fast
