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

use rdkafka::error::KafkaError;

pub use admin::{Record, create_topics, list_topics, publish};
pub use ledger::{PartitionLedger, ResumePoint};
pub use offsets::{GroupOffsets, PartitionOffsets, TopicPartition, partitions};
pub use pulse_kafka::{REQUEST_TIMEOUT, client_config, flush};
pub use resume::ResumeLog;
pub use source::{DeliveryNeeds, KafkaReader, KafkaSourceSettings};

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

impl From<pulse_kafka::KafkaClientError> for KafkaConnectorError {
    fn from(error: pulse_kafka::KafkaClientError) -> Self {
        match error {
            pulse_kafka::KafkaClientError::Client(error) => Self::Client(error),
            pulse_kafka::KafkaClientError::CreateTopic { topic, reason } => Self::CreateTopic { topic, reason },
        }
    }
}

/// Checks a `topic_pattern`; the error says what is wrong with it.
pub fn check_pattern(pattern: &str) -> Result<(), String> {
    regex::Regex::new(pattern).map(drop).map_err(|e| e.to_string())
}
