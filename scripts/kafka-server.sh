#!/usr/bin/env bash
# A single-node Apache Kafka (KRaft, broker and controller in one process) on loopback.
#
#   scripts/kafka-server.sh PORT DATA_DIR [CONTROLLER_PORT]
#
# Formats DATA_DIR the first time (a later start with the same directory keeps the
# topics and their messages, as a restarted broker does), then replaces itself with
# the broker: the caller's PID is the broker's. The controller listens on CONTROLLER_PORT
# (default PORT + 1).
# The jars come from $PULSE_KAFKA_LIB (scripts/services.sh fetches them from Maven
# Central: see ensure_kafka); the heap is small (KAFKA_HEAP, default 512m).
set -euo pipefail

port="${1:?usage: kafka-server.sh PORT DATA_DIR}"
dir="${2:?usage: kafka-server.sh PORT DATA_DIR}"
lib="${PULSE_KAFKA_LIB:?PULSE_KAFKA_LIB must name the directory of the Kafka jars (scripts/services.sh)}"
controller="${3:-$((port + 1))}"
mkdir -p "$dir/logs"

cat >"$dir/server.properties" <<PROPERTIES
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$controller
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$controller
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$dir/logs
num.partitions=1
auto.create.topics.enable=false
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
log.segment.bytes=67108864
PROPERTIES

cat >"$dir/log4j2.properties" <<'LOG4J'
status = warn
appender.console.type = Console
appender.console.name = console
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = warn
rootLogger.appenderRef.console.ref = console
logger.kafka.name = kafka.server.KafkaRaftServer
logger.kafka.level = info
LOG4J

java_opts=(-Xms128m "-Xmx${KAFKA_HEAP:-512m}" -XX:+UseSerialGC -XX:TieredStopAtLevel=1
  -Djava.awt.headless=true "-Dlog4j2.configurationFile=$dir/log4j2.properties")
if [[ ! -f "$dir/logs/meta.properties" ]]; then
  # A cluster id is 16 random bytes in URL-safe base64; one starting with "-" would read
  # as an option, so Kafka's own generator never makes one, and neither does this.
  cluster_id="$(python3 -c 'import base64, uuid
while True:
    id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    if not id.startswith("-"):
        print(id)
        break')"
  java "${java_opts[@]}" -cp "$lib/*" kafka.tools.StorageTool format --cluster-id "$cluster_id" \
    --config "$dir/server.properties" --ignore-formatted >"$dir/format.log" 2>&1 \
    || { cat "$dir/format.log" >&2; exit 1; }
fi
exec java "${java_opts[@]}" -cp "$lib/*" kafka.Kafka "$dir/server.properties"
