# Sourced by scripts/test.sh: pyarrow, which sinks/tests/parquet.rs reads the
# Parquet sink's files back with (a reader that is not the writer's own library).
# Needs $state (a directory for logs and caches, e.g. ~/.cache/pulse) unless run alone.

# The pinned version; the test reads the interpreter from PULSE_PYARROW_PYTHON.
PYARROW_VERSION=26.0.1

# Installs pyarrow into a venv under $state once (again only when the version
# changes) and exports PULSE_PYARROW_PYTHON with the venv's python.
ensure_pyarrow() {
  local dir="${state:-$HOME/.cache/pulse}"
  local venv="$dir/venv-pyarrow"
  local python="$venv/bin/python"
  if [[ -x "$python" ]] && "$python" -c "import pyarrow, sys; sys.exit(pyarrow.__version__ != '$PYARROW_VERSION')" 2>/dev/null; then
    export PULSE_PYARROW_PYTHON="$python"
    return 0
  fi
  echo "installing pyarrow $PYARROW_VERSION into $venv"
  mkdir -p "$dir"
  # Debian's python3 makes venvs only with python3-venv installed.
  python3 -m venv "$venv" >"$dir/pyarrow-install.log" 2>&1 \
    || { DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3-venv >>"$dir/pyarrow-install.log" 2>&1 \
         && rm -rf "$venv" && python3 -m venv "$venv" >>"$dir/pyarrow-install.log" 2>&1; } \
    && "$venv/bin/pip" install --quiet --disable-pip-version-check "pyarrow==$PYARROW_VERSION" \
      >>"$dir/pyarrow-install.log" 2>&1 \
    || { echo "installing pyarrow failed; its log:"; tail -20 "$dir/pyarrow-install.log"; return 1; }
  export PULSE_PYARROW_PYTHON="$python"
}
