//! Kafka sink: one message per record, JSON value, deterministic key.
//!
//! The key identifies the record, so a replay after a crash produces messages
//! that a compacted topic or a keyed consumer treats as the same: by default
//! `window_start`, `window_end` and every string field (for window rows: the
//! window and its key), joined with `/`; or the configured `key_fields`.
//!
//! The producer runs on the sink's task ([`crate::runtime`]): a batch is
//! acknowledged once the broker has acknowledged each of its messages. A
//! message the broker does not take within [`MESSAGE_TIMEOUT`] (a broker
//! outage) fails the batch from there on; the runtime retries that part with
//! backoff (one request in flight per connection, so the topic keeps the
//! order of the records) — at least once: a message the broker wrote but did
//! not confirm may come twice. A message the broker refuses for good (too
//! large) becomes a dead letter.

use std::time::Duration;

use pulse_core::row::Value as RowValue;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::Value;

use crate::runtime::{BatchWriter, SinkRecord, WriteError, Written};

/// How long the broker may take to acknowledge a message before its batch is retried.
pub const MESSAGE_TIMEOUT: Duration = Duration::from_secs(30);

/// Writes records to one topic.
pub struct KafkaSink {
    producer: FutureProducer,
    topic: String,
    key_fields: Option<Vec<String>>,
    messages: metrics::Counter,
    bytes: metrics::Counter,
}

impl KafkaSink {
    /// The producer of sink `component` for `topic` on `brokers`, keyed by
    /// `key_fields` (or the default key). Connecting is lazy: this fails only
    /// for settings librdkafka refuses.
    pub fn connect(
        component: &str,
        brokers: &str,
        topic: &str,
        key_fields: Option<Vec<String>>,
    ) -> Result<Self, KafkaError> {
        let producer = pulse_kafka::client_config(brokers)
            .set("linger.ms", "5")
            .set("message.timeout.ms", MESSAGE_TIMEOUT.as_millis().to_string())
            // With retries, more than one request in flight could reorder messages.
            .set("max.in.flight.requests.per.connection", "1")
            .create()?;
        let labels = [("component", component.to_owned()), ("topic", topic.to_owned())];
        Ok(Self {
            producer,
            topic: topic.to_owned(),
            key_fields,
            messages: metrics::counter!("pulse_kafka_produced_messages_total", &labels),
            bytes: metrics::counter!("pulse_kafka_produced_bytes_total", &labels),
        })
    }
}

/// Whether the broker will never take this message, however often it is sent.
fn refused_for_good(error: &KafkaError) -> bool {
    matches!(
        error,
        KafkaError::MessageProduction(
            RDKafkaErrorCode::MessageSizeTooLarge
                | RDKafkaErrorCode::InvalidMessageSize
                | RDKafkaErrorCode::InvalidMessage
                | RDKafkaErrorCode::InvalidRecord
        )
    )
}

impl BatchWriter for KafkaSink {
    async fn write(&mut self, batch: &[SinkRecord]) -> Result<Written, WriteError> {
        let mut deliveries = Vec::with_capacity(batch.len());
        let mut written = Written::default();
        for (index, record) in batch.iter().enumerate() {
            let payload = record.to_json_line();
            let key = record_key_of(record, self.key_fields.as_deref());
            let sent = loop {
                match self
                    .producer
                    .send_result(FutureRecord::to(&self.topic).key(&key).payload(&payload))
                {
                    Ok(delivery) => break Ok(delivery),
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    Err((error, _)) => break Err(error),
                }
            };
            match sent {
                Ok(delivery) => deliveries.push((index, delivery, payload.len())),
                Err(error) if refused_for_good(&error) => written.rejected.push((index, error.to_string())),
                Err(error) => return Err(self.retry_after(&mut deliveries, index, error).await),
            }
        }
        self.await_deliveries(deliveries, written).await
    }
}

impl KafkaSink {
    /// Waits for the messages already sent, in order, and counts them.
    async fn await_deliveries(
        &self,
        deliveries: Vec<(usize, rdkafka::producer::DeliveryFuture, usize)>,
        mut written: Written,
    ) -> Result<Written, WriteError> {
        let mut leading_ok = 0;
        for (index, delivery, bytes) in deliveries {
            match delivery.await {
                Ok(Ok(_)) => {
                    self.messages.increment(1);
                    self.bytes.increment(bytes as u64);
                    // Every earlier record is delivered or refused (an error returns).
                    leading_ok = index + 1;
                }
                Ok(Err((error, _))) if refused_for_good(&error) => written.rejected.push((index, error.to_string())),
                Ok(Err((error, _))) => {
                    return Err(WriteError::Retry {
                        reason: format!("topic {}: {error}", self.topic),
                        written: leading_ok,
                    });
                }
                Err(_) => {
                    return Err(WriteError::Retry {
                        reason: format!("topic {}: the producer dropped a delivery report", self.topic),
                        written: leading_ok,
                    });
                }
            }
        }
        written.rejected.sort_unstable();
        Ok(written)
    }

    /// The error for a batch whose record `failed_at` could not be queued:
    /// what was queued before it is waited for, so the retry starts there.
    async fn retry_after(
        &self,
        deliveries: &mut Vec<(usize, rdkafka::producer::DeliveryFuture, usize)>,
        failed_at: usize,
        error: KafkaError,
    ) -> WriteError {
        let queued = std::mem::take(deliveries);
        let reason = format!("topic {}: {error}", self.topic);
        match self.await_deliveries(queued, Written::default()).await {
            Ok(_) => WriteError::Retry {
                reason,
                written: failed_at,
            },
            Err(error) => error,
        }
    }
}

/// The message key of one record (see the module docs).
pub fn record_key_of(record: &SinkRecord, key_fields: Option<&[String]>) -> String {
    let SinkRecord::Row(row) = record else {
        return record_key(&record.to_json_line(), key_fields);
    };
    let text = |value: &RowValue| match value {
        RowValue::Str(s) => s.to_string(),
        RowValue::Null => "null".to_owned(),
        other => serde_json::to_string(other).unwrap_or_default(),
    };
    let parts: Vec<String> = match key_fields {
        Some(fields) => fields
            .iter()
            .map(|f| row.get(f).map_or_else(String::new, text))
            .collect(),
        None => row
            .fields()
            .filter(|(column, value)| {
                matches!(column.name.as_str(), "window_start" | "window_end") || matches!(value, RowValue::Str(_))
            })
            .map(|(_, value)| text(value))
            .collect(),
    };
    parts.join("/")
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

    #[test]
    fn typed_rows_get_the_same_keys_as_their_json() {
        use pulse_core::{Column, ColumnType, Row, RowSchema};
        use std::sync::Arc;
        let schema = Arc::new(
            RowSchema::new(vec![
                Column::new("window_start", ColumnType::Time),
                Column::new("window_end", ColumnType::Time),
                Column::new("tenant", ColumnType::Key),
                Column::new("metric", ColumnType::Key),
                Column::new("count", ColumnType::Int),
                Column::new("avg", ColumnType::Float),
            ])
            .unwrap(),
        );
        let row = SinkRecord::Row(Row::new(
            schema,
            vec![
                RowValue::Time(0),
                RowValue::Time(10_000),
                RowValue::from("acme"),
                RowValue::from("cpu"),
                RowValue::Int(3),
                RowValue::Float(1.5),
            ],
        ));
        let line = row.to_json_line();
        for fields in [None, Some(vec!["tenant".to_owned(), "count".to_owned()])] {
            assert_eq!(
                record_key_of(&row, fields.as_deref()),
                record_key(&line, fields.as_deref())
            );
        }
    }
}
