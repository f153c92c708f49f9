//! Kafka sink: one message per record, JSON value, deterministic key.
//!
//! The key identifies the record, so a replay after a crash produces messages
//! that a compacted topic or a keyed consumer treats as the same: by default
//! `window_start`, `window_end` and every string field (for window rows: the
//! window and its key), joined with `/`; or the configured `key_fields`.
//! Delivery failures reported by the broker are counted, and `flush` fails
//! while any are outstanding, so a lost message fails the run instead of
//! vanishing.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::client::ClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::DeliveryResult;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext};
use serde_json::Value;

use crate::writer::LineSink;

/// Counts messages the broker did not accept.
#[derive(Clone, Default)]
struct DeliveryFailures(Arc<AtomicU64>);

impl ClientContext for DeliveryFailures {}

impl ProducerContext for DeliveryFailures {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((error, _)) = result {
            tracing::error!(%error, "Kafka delivery failed");
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Writes records to one topic.
pub struct KafkaSink {
    producer: BaseProducer<DeliveryFailures>,
    failures: DeliveryFailures,
    topic: String,
    key_fields: Option<Vec<String>>,
}

impl KafkaSink {
    /// A producer for `topic` on `brokers`, keyed by `key_fields` (or the default key).
    pub fn connect(brokers: &str, topic: &str, key_fields: Option<Vec<String>>) -> Result<Self, KafkaError> {
        let failures = DeliveryFailures::default();
        let producer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("linger.ms", "5")
            .set("message.timeout.ms", "60000")
            .set("log_level", "3")
            .create_with_context(failures.clone())?;
        Ok(Self {
            producer,
            failures,
            topic: topic.to_owned(),
            key_fields,
        })
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
        self.producer.flush(Duration::from_secs(60)).map_err(io::Error::other)?;
        match self.failures.0.swap(0, Ordering::Relaxed) {
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
