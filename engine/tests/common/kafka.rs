//! Helpers of the Kafka integration tests: finding the broker, unique names,
//! topics, and running the `pulse` binary's Kafka commands.

use std::net::TcpStream;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};

use super::pulse_bin;

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

/// Reads `count` messages of `topic` from the beginning (or what arrives within 30 s).
pub fn read_topic(brokers: &str, topic: &str, count: usize) -> Vec<rdkafka::message::OwnedMessage> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", unique("reader"))
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    consumer.subscribe(&[topic]).unwrap();
    let mut messages = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while messages.len() < count && std::time::Instant::now() < deadline {
        if let Some(Ok(message)) = consumer.poll(Duration::from_millis(200)) {
            messages.push(message.detach());
        }
    }
    messages
}

/// Writes each of `payloads` to `partition` of `topic` (no key).
pub fn produce_to_partition(brokers: &str, topic: &str, partition: i32, payloads: &[String]) {
    use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("linger.ms", "5")
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
