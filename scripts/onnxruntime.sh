# Sourced by scripts/test.sh: ONNX Runtime for the `onnx` operator. The `ort` crate
# loads the library at run time (feature `load-dynamic`) from ORT_DYLIB_PATH; nothing
# is downloaded at build time. The library comes from the official PyPI wheel, in a
# venv whose python also runs onnxruntime-Python beside pulse in the benchmark.
# Needs $state (a directory for logs and caches, e.g. ~/.cache/pulse) unless run alone.

# The pinned version: `ort`'s api-31 feature needs a library of at least 1.31.
ONNXRUNTIME_VERSION=1.31.1

# Installs onnxruntime into a venv under $state once (again only when the version
# changes) and exports ORT_DYLIB_PATH (the shared library) and
# PULSE_ONNXRUNTIME_PYTHON (the venv's python).
ensure_onnxruntime() {
  local dir="${state:-$HOME/.cache/pulse}"
  local venv="$dir/venv-onnxruntime"
  local python="$venv/bin/python"
  local lib
  if ! { [[ -x "$python" ]] && "$python" -c "import onnxruntime, sys; sys.exit(onnxruntime.__version__ != '$ONNXRUNTIME_VERSION')" 2>/dev/null; }; then
    echo "installing onnxruntime $ONNXRUNTIME_VERSION into $venv"
    mkdir -p "$dir"
    rm -rf "$venv"
    # Debian's python3 makes venvs only with python3-venv installed.
    python3 -m venv "$venv" >"$dir/onnxruntime-install.log" 2>&1 \
      || { DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3-venv >>"$dir/onnxruntime-install.log" 2>&1 \
           && rm -rf "$venv" && python3 -m venv "$venv" >>"$dir/onnxruntime-install.log" 2>&1; } \
      && "$venv/bin/pip" install --quiet --disable-pip-version-check "onnxruntime==$ONNXRUNTIME_VERSION" \
        >>"$dir/onnxruntime-install.log" 2>&1 \
      || { echo "installing onnxruntime failed; its log:"; tail -20 "$dir/onnxruntime-install.log"; return 1; }
  fi
  lib="$("$python" -c "import onnxruntime, os; print(os.path.join(os.path.dirname(onnxruntime.__file__), 'capi', 'libonnxruntime.so.$ONNXRUNTIME_VERSION'))")"
  [[ -f "$lib" ]] || { echo "the onnxruntime wheel has no $lib"; return 1; }
  export ORT_DYLIB_PATH="$lib"
  export PULSE_ONNXRUNTIME_PYTHON="$python"
}
