//! Kafka sink: one message per record, JSON value, deterministic key.
//!
//! The key identifies the record, so a replay after a crash produces messages
//! that a compacted topic or a keyed consumer treats as the same: by default
//! `window_start`, `window_end` and every string field (for window rows: the
//! window and its key), joined with `/`; or the configured `key_fields`.
//! A broker outage is waited out: messages are retried until the broker takes
//! them (one request in flight per connection, so retries keep their order),
//! and `flush` waits — holding the dataflow back — while the sink reports
//! itself unhealthy. Only once stopping does it give up, after
//! [`SHUTDOWN_GRACE`]. Failures the broker reports for good (a message too
//! large, say) are counted, and `flush` fails while any are outstanding, so a
//! lost message fails the run instead of vanishing.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use pulse_core::{HealthReporter, Shutdown};
use rdkafka::client::ClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::DeliveryResult;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext};
use serde_json::Value;

use crate::writer::LineSink;

/// How long one flush waits before the sink reports the wait and goes on waiting.
const FLUSH_WAIT: Duration = Duration::from_secs(2);

/// How long a flush still waits for the broker once the run is stopping.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Counts what the broker accepted (`pulse_kafka_produced_messages_total`,
/// `pulse_kafka_produced_bytes_total`) and the messages it did not accept.
struct Deliveries {
    failures: Arc<AtomicU64>,
    messages: metrics::Counter,
    bytes: metrics::Counter,
}

impl Deliveries {
    fn new(component: &str, topic: &str) -> Self {
        let labels = [("component", component.to_owned()), ("topic", topic.to_owned())];
        Self {
            failures: Arc::default(),
            messages: metrics::counter!("pulse_kafka_produced_messages_total", &labels),
            bytes: metrics::counter!("pulse_kafka_produced_bytes_total", &labels),
        }
    }
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(message) => {
                self.messages.increment(1);
                self.bytes.increment(message.payload_len() as u64);
            }
            Err((error, _)) => {
                tracing::error!(%error, "Kafka delivery failed");
                self.failures.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// Writes records to one topic.
pub struct KafkaSink {
    producer: BaseProducer<Deliveries>,
    topic: String,
    key_fields: Option<Vec<String>>,
    health: HealthReporter,
    shutdown: Shutdown,
}

impl KafkaSink {
    /// The producer of sink `component` for `topic` on `brokers`, keyed by
    /// `key_fields` (or the default key), reporting to `health` while it waits
    /// for the broker and giving up on that wait [`SHUTDOWN_GRACE`] after `shutdown`.
    pub fn connect(
        component: &str,
        brokers: &str,
        topic: &str,
        key_fields: Option<Vec<String>>,
        health: HealthReporter,
        shutdown: Shutdown,
    ) -> Result<Self, KafkaError> {
        let producer = pulse_kafka::client_config(brokers)
            .set("linger.ms", "5")
            // Retry until the broker takes each message: an outage is waited out, not lost.
            .set("message.timeout.ms", "0")
            // With retries, more than one request in flight could reorder messages.
            .set("max.in.flight.requests.per.connection", "1")
            .create_with_context(Deliveries::new(component, topic))?;
        Ok(Self {
            producer,
            topic: topic.to_owned(),
            key_fields,
            health,
            shutdown,
        })
    }

    /// Waits until the broker has every message sent, reporting the sink
    /// unhealthy while it waits; gives up [`SHUTDOWN_GRACE`] into a shutdown.
    fn wait_for_broker(&self) -> io::Result<()> {
        let mut waited = false;
        let mut stopping_since: Option<Instant> = None;
        loop {
            match pulse_kafka::flush(&self.producer, FLUSH_WAIT) {
                Ok(()) => {
                    if waited {
                        self.health.healthy();
                        tracing::info!(topic = %self.topic, "the broker took the waiting messages");
                    }
                    return Ok(());
                }
                Err(KafkaError::Flush(RDKafkaErrorCode::OperationTimedOut)) => {
                    let waiting = self.producer.in_flight_count();
                    let problem = format!("{waiting} messages to {} are waiting for the broker", self.topic);
                    if !waited {
                        tracing::warn!(topic = %self.topic, waiting, "the broker does not take messages; retrying");
                    }
                    self.health.unhealthy(problem.clone());
                    waited = true;
                    if self.shutdown.is_triggered() {
                        let since = *stopping_since.get_or_insert_with(Instant::now);
                        if since.elapsed() >= SHUTDOWN_GRACE {
                            return Err(io::Error::other(format!("stopping: {problem}")));
                        }
                    }
                }
                Err(error) => return Err(io::Error::other(error)),
            }
        }
    }

    fn send(&self, key: &str, line: &str) -> io::Result<()> {
        let mut record = BaseRecord::to(&self.topic).key(key).payload(line);
        loop {
            match self.producer.send(record) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    self.producer.poll(Duration::from_millis(50));
                }
                Err((error, _)) => return Err(io::Error::other(error)),
            }
        }
    }
}

/// The message key of one JSON record line.
pub fn record_key(line: &str, key_fields: Option<&[String]>) -> String {
    let Ok(Value::Object(record)) = serde_json::from_str::<Value>(line) else {
        return String::new();
    };
    let text = |value: &Value| match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let parts: Vec<String> = match key_fields {
        Some(fields) => fields
            .iter()
            .map(|f| record.get(f).map_or_else(String::new, text))
            .collect(),
        None => record
            .iter()
            .filter(|(name, value)| matches!(name.as_str(), "window_start" | "window_end") || value.is_string())
            .map(|(_, value)| text(value))
            .collect(),
    };
    parts.join("/")
}

impl LineSink for KafkaSink {
    fn write_batch(&mut self, lines: &[String]) -> io::Result<()> {
        for line in lines {
            self.send(&record_key(line, self.key_fields.as_deref()), line)?;
        }
        self.producer.poll(Duration::ZERO);
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.wait_for_broker()?;
        match self.producer.context().failures.swap(0, Ordering::Relaxed) {
            0 => Ok(()),
            failed => Err(io::Error::other(format!(
                "{failed} messages to {} were not delivered",
                self.topic
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_name_the_window_and_its_key() {
        let row = r#"{"window_start":0,"window_end":10000,"tenant":"acme","metric":"cpu","count":3,"avg":1.5}"#;
        assert_eq!(record_key(row, None), "0/10000/acme/cpu");
        assert_eq!(
            record_key(row, Some(&["tenant".to_owned(), "count".to_owned()])),
            "acme/3"
        );
        assert_eq!(record_key("not json", None), "");
    }
}
