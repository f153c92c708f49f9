# Sourced by scripts/test.sh and benches/run-bench-kafka.sh: the servers the
# tests and benchmarks need, installed when missing, started on loopback when
# not running, and stopped at exit when this script started them.
# Needs $state (a directory for logs and build caches).

# tansu, a Kafka-compatible broker (see ../shared/SERVICES.md); a long build, once per machine.
# Features: dynostore for memory:// storage (the shared broker), libsql for sqlite://
# storage, which keeps a broker's data across a restart (the broker-restart test).
ensure_tansu() {
  command -v tansu >/dev/null && tansu_has_sqlite && return 0
  echo "installing tansu with the dynostore and libsql features (a long build, once per machine)"
  CARGO_TARGET_DIR="$state/tansu-target" cargo install tansu --locked --features dynostore,libsql
}

# Whether this tansu accepts sqlite:// storage: a build without libsql refuses the URL at once.
# The probe takes 3 s, so its success is remembered for this very binary (path, size, mtime).
tansu_has_sqlite() {
  local probe rc stamp
  stamp="$(stat -c '%n %s %Y' "$(command -v tansu)")"
  [[ -f "$state/tansu-sqlite.ok" && "$(cat "$state/tansu-sqlite.ok")" == "$stamp" ]] && return 0
  probe="$(mktemp -d)"
  timeout 3 tansu broker --listener-url tcp://127.0.0.1:0 --advertised-listener-url tcp://127.0.0.1:0 \
    --storage-engine "sqlite:///$probe/probe.db" >"$probe/log" 2>&1
  ! grep -q -e UnsupportedStorageUrl -e FeatureNotEnabled "$probe/log"
  rc=$?
  rm -rf "$probe"
  ((rc == 0)) && echo "$stamp" >"$state/tansu-sqlite.ok"
  return "$rc"
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

# Redis for the gateway's Redis store and shared rate limiter (see ../shared/SERVICES.md).
ensure_redis() {
  command -v redis-server >/dev/null && return 0
  echo "installing redis-server"
  apt-get install -y redis-server >"$state/redis-install.log" 2>&1 \
    || { apt-get update >/dev/null 2>&1 && apt-get install -y redis-server >"$state/redis-install.log" 2>&1; }
}

# Chromium and chromedriver for the dashboard's real-browser test (Debian packages).
ensure_chromium() {
  command -v chromium >/dev/null && command -v chromedriver >/dev/null && return 0
  echo "installing chromium and chromium-driver"
  local packages=(chromium chromium-driver)
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${packages[@]}" \
      >"$state/chromium-install.log" 2>&1 \
    || { apt-get update >/dev/null 2>&1 \
         && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${packages[@]}" \
              >"$state/chromium-install.log" 2>&1; } \
    || { echo "installing chromium failed; its log:"; tail -20 "$state/chromium-install.log"; return 1; }
}

start_redis() {
  if port_open 6379; then echo "redis is already listening on 127.0.0.1:6379"; return 0; fi
  redis-server --bind 127.0.0.1 --port 6379 --save '' --appendonly no >"$state/redis.log" 2>&1 &
  started_pids+=("$!")
  for _ in $(seq 1 100); do port_open 6379 && { echo "redis started (pid $!)"; return 0; }; sleep 0.1; done
  echo "redis did not open 127.0.0.1:6379; its log:"; tail -20 "$state/redis.log"; return 1
}
