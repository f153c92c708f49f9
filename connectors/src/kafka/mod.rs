//! Kafka: partitioned sources, topic administration and publishing.
//!
//! Partitions are the splits of a Kafka source: every matching
//! (topic, partition) is dealt to exactly one worker (in a fixed order, so
//! `workers = 2` over 6 partitions gives each worker 3), and each partition has
//! its own watermark. The client is librdkafka (through `rdkafka`), driven
//! from a thread per worker so that no timely operator ever blocks on I/O.
//! Offsets are committed at least once: only what every sink has delivered
//! ([`ledger`]).

pub mod admin;
mod committer;
mod consumer;
mod decoded;
mod fetch;
mod group;
pub mod ledger;
pub mod offsets;
pub mod resume;
pub mod rewind;
pub mod source;

use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, Producer, ProducerContext};

pub use admin::{Record, create_topics, list_topics, publish};
pub use ledger::{PartitionLedger, ResumePoint};
pub use offsets::{GroupOffsets, PartitionOffsets, TopicPartition, partitions};
pub use resume::ResumeLog;
pub use source::{DeliveryNeeds, KafkaReader, KafkaSourceSettings};

/// How long metadata and watermark requests may take before they fail.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a Kafka operation failed.
#[derive(Debug, thiserror::Error)]
pub enum KafkaConnectorError {
    /// The client or the broker reported an error.
    #[error("kafka: {0}")]
    Client(#[from] KafkaError),
    /// `topic_pattern` is not a valid regular expression.
    #[error("invalid topic_pattern: {0}")]
    Pattern(#[from] regex::Error),
    /// A topic the pipeline names does not exist.
    #[error("topic {0:?} does not exist on the broker (create it with `pulse topics create`)")]
    UnknownTopic(String),
    /// Creating a topic failed.
    #[error("creating topic {topic:?} failed: {reason}")]
    CreateTopic {
        /// The topic.
        topic: String,
        /// The broker's answer.
        reason: String,
    },
    /// The resume log could not be read.
    #[error("resume log: {0}")]
    ResumeLog(String),
    /// A partition's messages could not be routed to the consumer's fetch queue.
    #[error("kafka fetch queue: {0}")]
    Fetch(String),
    /// Reading the input to publish failed.
    #[error("reading input: {0}")]
    Io(#[from] std::io::Error),
}

/// Checks a `topic_pattern`; the error says what is wrong with it.
pub fn check_pattern(pattern: &str) -> Result<(), String> {
    regex::Regex::new(pattern).map(drop).map_err(|e| e.to_string())
}

/// The client settings pulse uses everywhere, for `brokers`.
pub fn client_config(brokers: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", brokers)
        .set("socket.timeout.ms", "10000")
        // librdkafka logs through its own channel; keep only real problems.
        .set("log_level", "3");
    config
}

/// Waits until the broker has acknowledged every message `producer` sent
/// (their delivery reports served), or fails with `OperationTimedOut` after
/// `timeout`.
///
/// `rdkafka`'s own `flush` serves delivery reports with a `poll` that always
/// lasts its whole 100 ms slice, so every flush took at least 100 ms; this one
/// returns within about a millisecond of the last acknowledgement.
pub fn flush<C: ProducerContext>(producer: &BaseProducer<C>, timeout: Duration) -> Result<(), KafkaError> {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        producer.poll(Duration::ZERO);
        if producer.in_flight_count() == 0 {
            return Ok(());
        }
        if std::time::Instant::now() >= deadline {
            return Err(KafkaError::Flush(RDKafkaErrorCode::OperationTimedOut));
        }
        producer.poll(Duration::from_millis(1));
    }
}
