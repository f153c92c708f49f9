//! The Kafka client code that pulse's sources (`pulse-connectors`) and sinks
//! (`pulse-sinks`) share: client settings, a prompt producer flush and topic
//! creation.
//!
//! It is a crate of its own so that neither of those depends on the other
//! (DESIGN.md: `connectors` and `sinks` know nothing of each other); it sits
//! under `core/` because, like `pulse-core`, it is a small shared base rather
//! than a component, and the top-level layout stays as DESIGN.md draws it.

use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, Producer, ProducerContext};

/// How long metadata, watermark and admin requests may take before they fail.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a shared Kafka operation failed.
#[derive(Debug, thiserror::Error)]
pub enum KafkaClientError {
    /// The client or the broker reported an error.
    #[error("kafka: {0}")]
    Client(#[from] KafkaError),
    /// The broker refused to create a topic.
    #[error("creating topic {topic:?} failed: {reason}")]
    CreateTopic {
        /// The topic.
        topic: String,
        /// The broker's answer.
        reason: String,
    },
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
    let deadline = Instant::now() + timeout;
    loop {
        producer.poll(Duration::ZERO);
        if producer.in_flight_count() == 0 {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(KafkaError::Flush(RDKafkaErrorCode::OperationTimedOut));
        }
        producer.poll(Duration::from_millis(1));
    }
}

/// Creates `topics` with `partitions` partitions each, waiting for the
/// broker's answer; existing topics are left as they are.
///
/// For async callers (a sink's task); [`create_topics`] is the blocking form.
pub async fn create_topics_async(brokers: &str, topics: &[String], partitions: i32) -> Result<(), KafkaClientError> {
    let admin: AdminClient<DefaultClientContext> = client_config(brokers).create()?;
    let new: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|t| NewTopic::new(t, partitions, TopicReplication::Fixed(1)))
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(REQUEST_TIMEOUT));
    let results = admin.create_topics(&new, &options).await?;
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => {
                return Err(KafkaClientError::CreateTopic {
                    topic,
                    reason: code.to_string(),
                });
            }
        }
    }
    Ok(())
}

/// Creates `topics` with `partitions` partitions each, blocking until the
/// broker answers (for the CLI and tests, never for a timely operator).
pub fn create_topics(brokers: &str, topics: &[String], partitions: i32) -> Result<(), KafkaClientError> {
    futures_executor::block_on(create_topics_async(brokers, topics, partitions))
}
