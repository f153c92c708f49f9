//! Helpers of the Kafka integration tests: finding the broker, starting one of
//! a test's own, unique names, topics, reading a topic to its end, and running
//! the `pulse` binary's Kafka commands.

use std::collections::BTreeMap;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};

use super::process::KillOnDrop;
use super::{pulse_bin, workspace_dir};

/// The broker's address, or `None` (after saying so) when there is none.
pub fn broker() -> Option<String> {
    let brokers = std::env::var("PULSE_KAFKA_BROKERS").unwrap_or_else(|_| "127.0.0.1:9092".to_owned());
    let reachable = TcpStream::connect_timeout(&brokers.parse().expect("host:port"), Duration::from_secs(1)).is_ok();
    match (reachable, std::env::var("CI").as_deref()) {
        (true, _) => Some(brokers),
        (false, Ok("true")) => panic!("no Kafka broker at {brokers}: CI requires one (scripts/test.sh starts it)"),
        (false, _) => {
            // Straight to the stderr handle: libtest captures `eprintln!`, and a skip must be seen.
            let warning =
                format!("\n*** SKIPPED: no Kafka broker at {brokers}; run ./scripts/test.sh to start one ***\n");
            let _ = std::io::Write::write_all(&mut std::io::stderr(), warning.as_bytes());
            None
        }
    }
}

/// A name no other test or run uses.
pub fn unique(prefix: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "{prefix}-{}-{nanos}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

pub fn pulse(args: &[&str]) -> String {
    let output = Command::new(pulse_bin()).args(args).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "pulse {args:?} failed:\n{stderr}");
    String::from_utf8_lossy(&output.stdout).into_owned() + &stderr
}

pub fn create_topic(brokers: &str, topic: &str, partitions: u32) {
    pulse(&[
        "topics",
        "create",
        "--brokers",
        brokers,
        "--partitions",
        &partitions.to_string(),
        topic,
    ]);
}

pub fn produce_file(brokers: &str, topic: &str, file: &std::path::Path) {
    pulse(&[
        "produce",
        "--brokers",
        brokers,
        "--topic",
        topic,
        "--file",
        &file.display().to_string(),
    ]);
}

/// `events` generated events, in event-time order, written to `path`.
pub fn generate(path: &std::path::Path, events: u64) {
    pulse(&[
        "generate",
        "--events",
        &events.to_string(),
        "--rate",
        "1000",
        "--out",
        &path.display().to_string(),
    ]);
}

/// Every message of `topic`, read from the beginning of each partition to the
/// end offset the broker reports now, partition after partition in offset
/// order: a message too many is seen as surely as one too few.
pub fn read_topic(brokers: &str, topic: &str) -> Vec<rdkafka::message::OwnedMessage> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", unique("reader"))
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let timeout = Duration::from_secs(10);
    let metadata = consumer.fetch_metadata(Some(topic), timeout).unwrap();
    let mut assignment = TopicPartitionList::new();
    // partition → (next offset to read, end offset)
    let mut unread = BTreeMap::new();
    for partition in metadata.topics()[0].partitions() {
        let (low, high) = consumer.fetch_watermarks(topic, partition.id(), timeout).unwrap();
        assignment
            .add_partition_offset(topic, partition.id(), Offset::Offset(low))
            .unwrap();
        if low < high {
            unread.insert(partition.id(), (low, high));
        }
    }
    consumer.assign(&assignment).unwrap();
    let mut by_partition: BTreeMap<i32, Vec<_>> = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !unread.is_empty() {
        assert!(
            Instant::now() < deadline,
            "{topic}: still unread after 60 s (partition → next, end): {unread:?}"
        );
        let Some(message) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let message = message.unwrap_or_else(|error| panic!("reading {topic}: {error}"));
        let partition = message.partition();
        if let Some((next, end)) = unread.get_mut(&partition) {
            *next = message.offset() + 1;
            if *next >= *end {
                unread.remove(&partition);
            }
            by_partition.entry(partition).or_default().push(message.detach());
        }
    }
    by_partition.into_values().flatten().collect()
}

/// A Kafka broker of a test's own (one it may stop and start again): Apache
/// Kafka from `scripts/kafka-server.sh`, with the jars of `PULSE_KAFKA_LIB`
/// (which `scripts/test.sh` exports), listening on `port` (its controller on
/// `port + 1`) and keeping its data in `data`, so a broker started again on
/// the same directory has every topic and message back.
pub struct PrivateBroker {
    /// `127.0.0.1:port`.
    pub address: String,
    port: u16,
    data: PathBuf,
}

impl PrivateBroker {
    /// A broker on two free ports keeping its data under `data`; not started.
    pub fn new(data: &Path) -> Self {
        let port = loop {
            let port = super::process::free_port();
            if port < u16::MAX && TcpListener::bind(("127.0.0.1", port + 1)).is_ok() {
                break port;
            }
        };
        Self {
            address: format!("127.0.0.1:{port}"),
            port,
            data: data.to_owned(),
        }
    }

    /// Starts the broker and waits until it answers a metadata request; `None`
    /// (after saying why) when Apache Kafka is not installed, outside CI.
    pub fn start(&self) -> Option<KillOnDrop> {
        let lib = std::env::var_os("PULSE_KAFKA_LIB").map_or_else(
            || PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/pulse/jvm/kafka"),
            PathBuf::from,
        );
        if !lib.join(".pom-sha256").exists() {
            skip_unless_ci(&format!("no Apache Kafka jars in {} (PULSE_KAFKA_LIB)", lib.display()));
            return None;
        }
        let log = std::fs::File::create(self.data.with_extension("log")).unwrap();
        let mut child = KillOnDrop::new(
            Command::new(workspace_dir().join("scripts/kafka-server.sh"))
                .arg(self.port.to_string())
                .arg(&self.data)
                .env("PULSE_KAFKA_LIB", &lib)
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .unwrap(),
        );
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &self.address)
            .create()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Ok(metadata) = consumer.fetch_metadata(None, Duration::from_secs(1))
                && !metadata.brokers().is_empty()
            {
                return Some(child);
            }
            if let Some(status) = child.try_wait().unwrap() {
                panic!(
                    "Kafka on {} exited ({status}); its log: {}",
                    self.address,
                    self.data.with_extension("log").display()
                );
            }
            assert!(
                Instant::now() < deadline,
                "Kafka on {} did not answer in 120 s",
                self.address
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// Skips the test (saying so loudly) or, under `CI=true`, fails it.
pub fn skip_unless_ci(why: &str) {
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{why}: CI requires it (scripts/test.sh installs it)"
    );
    let _ = std::io::Write::write_all(
        &mut std::io::stderr(),
        format!("\n*** SKIPPED: {why}; run ./scripts/test.sh ***\n").as_bytes(),
    );
}

/// Writes each of `payloads` to `partition` of `topic` (no key), in order.
pub fn produce_to_partition(brokers: &str, topic: &str, partition: i32, payloads: &[String]) {
    use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("linger.ms", "5")
        // In order through retries, as `pulse produce` keeps it.
        .set("enable.idempotence", "true")
        .create()
        .unwrap();
    for payload in payloads {
        let mut record = BaseRecord::<(), str>::to(topic)
            .partition(partition)
            .payload(payload.as_str());
        // A full local queue empties as the broker takes messages: retry until it has room.
        while let Err((error, back)) = producer.send(record) {
            assert!(
                matches!(
                    error,
                    rdkafka::error::KafkaError::MessageProduction(rdkafka::types::RDKafkaErrorCode::QueueFull)
                ),
                "producing to {topic}/{partition}: {error}"
            );
            record = back;
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    producer.flush(Duration::from_secs(30)).unwrap();
}
