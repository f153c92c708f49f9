# Sourced by scripts/test.sh: schemathesis, the OpenAPI fuzzer that
# gateway/tests/schemathesis.rs runs against a live gateway on loopback.
# Needs $state (a directory for logs and caches, e.g. ~/.cache/pulse).

# The pinned version; the test reads the executable from PULSE_SCHEMATHESIS.
SCHEMATHESIS_VERSION=4.32.5

# Installs schemathesis into a venv under $state once (again only when the
# version changes) and exports PULSE_SCHEMATHESIS with its executable.
ensure_schemathesis() {
  local venv="$state/venv-schemathesis"
  local exe="$venv/bin/schemathesis"
  if [[ -x "$exe" ]] && "$exe" --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION"; then
    export PULSE_SCHEMATHESIS="$exe"
    return 0
  fi
  echo "installing schemathesis $SCHEMATHESIS_VERSION into $venv"
  python3 -m venv "$venv" || return 1
  "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION" \
    >"$state/schemathesis-install.log" 2>&1 \
    || { echo "installing schemathesis failed; its log:"; tail -20 "$state/schemathesis-install.log"; return 1; }
  export PULSE_SCHEMATHESIS="$exe"
}
