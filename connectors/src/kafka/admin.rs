//! Topic administration and publishing events, for `pulse topics` and `pulse produce`.

use std::time::Duration;

use pulse_core::Event;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, BaseRecord};

use super::{KafkaConnectorError, REQUEST_TIMEOUT, client_config};

/// Creates `topics` with `partitions` partitions each; existing topics are left as they are.
pub fn create_topics(brokers: &str, topics: &[String], partitions: i32) -> Result<(), KafkaConnectorError> {
    Ok(pulse_kafka::create_topics(brokers, topics, partitions)?)
}

/// Every topic on the broker with its partition count, sorted by name.
pub fn list_topics(brokers: &str) -> Result<Vec<(String, usize)>, KafkaConnectorError> {
    let consumer: BaseConsumer = client_config(brokers).create()?;
    let metadata = consumer.fetch_metadata(None, REQUEST_TIMEOUT)?;
    let mut topics: Vec<(String, usize)> = metadata
        .topics()
        .iter()
        .map(|t| (t.name().to_owned(), t.partitions().len()))
        .collect();
    topics.sort();
    Ok(topics)
}

/// One message to publish.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// Message key; `None` spreads messages over partitions.
    pub key: Option<String>,
    /// Message value.
    pub payload: String,
}

impl Record {
    /// An event as an agent publishes it: JSON, keyed by `tenant/source` so that
    /// one source's events stay in order in one partition.
    pub fn of_event(event: &Event) -> Self {
        Self {
            key: Some(format!("{}/{}", event.tenant, event.source)),
            payload: event.to_json(),
        }
    }

    /// A line as it is; keyed like its event when it decodes as one.
    pub fn of_line(line: String) -> Self {
        let key = Event::from_json(line.as_bytes())
            .ok()
            .map(|e| format!("{}/{}", e.tenant, e.source));
        Self { key, payload: line }
    }
}

/// Publishes `records` to `topic`, at most `rate` per second (0: as fast as the
/// broker takes them), and waits until the broker has them all. Returns how
/// many were published. Each partition keeps the records' order, retries
/// included (an idempotent producer): event-time files read back from a topic
/// must not come out of order because a broker that was just starting refused
/// a first batch and took the next one.
pub fn publish(
    brokers: &str,
    topic: &str,
    records: impl Iterator<Item = Result<Record, KafkaConnectorError>>,
    rate: u64,
) -> Result<u64, KafkaConnectorError> {
    let producer: BaseProducer = client_config(brokers)
        .set("linger.ms", "5")
        .set("queue.buffering.max.messages", "1000000")
        .set("enable.idempotence", "true")
        .create()?;
    let started = std::time::Instant::now();
    let mut sent = 0u64;
    for record in records {
        let record = record?;
        let mut message = BaseRecord::to(topic).payload(&record.payload);
        if let Some(key) = &record.key {
            message = message.key(key);
        }
        loop {
            match producer.send(message) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    message = back;
                    producer.poll(Duration::from_millis(50));
                }
                Err((error, _)) => return Err(error.into()),
            }
        }
        sent += 1;
        if sent.is_multiple_of(1024) {
            producer.poll(Duration::ZERO);
            if rate > 0 {
                let due = Duration::from_secs_f64(sent as f64 / rate as f64);
                if let Some(ahead) = due.checked_sub(started.elapsed()) {
                    std::thread::sleep(ahead);
                }
            }
        }
    }
    super::flush(&producer, Duration::from_secs(60))?;
    Ok(sent)
}
