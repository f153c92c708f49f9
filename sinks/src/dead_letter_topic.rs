//! Dead letters of Kafka sources, sent back to Kafka: one `{tenant}.dlq` topic per tenant.
//!
//! The tenant is read from the name of the topic the message came from, by the
//! per-tenant convention `{tenant}.events.normalized`; messages from topics
//! without a tenant prefix go to a fallback topic. The message value is the
//! original raw message; headers carry the reason and where it came from
//! (`pulse.reason`, `pulse.topic`, `pulse.partition`, `pulse.offset`). Topics
//! are created on first use, from the sink's task (an admin request awaited
//! there, never on a timely worker).

use std::collections::BTreeSet;
use std::time::Duration;

use pulse_core::DeadLetter;
use pulse_core::dead_letter::Position;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};

use crate::kafka::MESSAGE_TIMEOUT;
use crate::runtime::{BatchWriter, SinkRecord, WriteError, Written};

/// The dead-letter topic for a message read from `topic`: `{tenant}.dlq` when
/// the topic name starts with a tenant (`acme.events.normalized` → `acme.dlq`).
pub fn dead_letter_topic(topic: &str, fallback: &str) -> String {
    match topic.split_once('.') {
        Some((tenant, _)) if !tenant.is_empty() => format!("{tenant}.dlq"),
        _ => fallback.to_owned(),
    }
}

/// Writes dead letters to their tenant's topic.
pub struct DeadLetterTopics {
    brokers: String,
    producer: FutureProducer,
    fallback: String,
    created: BTreeSet<String>,
}

impl DeadLetterTopics {
    /// A producer for `brokers`; `fallback` receives messages whose topic names no tenant.
    pub fn connect(brokers: &str, fallback: &str) -> Result<Self, KafkaError> {
        Ok(Self {
            brokers: brokers.to_owned(),
            producer: pulse_kafka::client_config(brokers)
                .set("linger.ms", "5")
                .set("message.timeout.ms", MESSAGE_TIMEOUT.as_millis().to_string())
                .set("max.in.flight.requests.per.connection", "1")
                .create()?,
            fallback: fallback.to_owned(),
            created: BTreeSet::new(),
        })
    }

    async fn ensure_topic(&mut self, topic: &str) -> Result<(), WriteError> {
        if self.created.contains(topic) {
            return Ok(());
        }
        pulse_kafka::create_topics_async(&self.brokers, &[topic.to_owned()], 1)
            .await
            .map_err(WriteError::retry)?;
        self.created.insert(topic.to_owned());
        Ok(())
    }
}

/// Where a dead letter came from, as header values: topic, partition, offset.
fn origin(letter: &DeadLetter) -> (String, String, String) {
    match &letter.position {
        Position::Kafka {
            topic,
            partition,
            offset,
        } => (topic.clone(), partition.to_string(), offset.to_string()),
        other => (String::new(), String::new(), format!("{other:?}")),
    }
}

impl BatchWriter for DeadLetterTopics {
    async fn write(&mut self, batch: &[SinkRecord]) -> Result<Written, WriteError> {
        let mut deliveries = Vec::with_capacity(batch.len());
        for record in batch {
            let SinkRecord::DeadLetter(letter) = record else {
                continue;
            };
            let (topic, partition, offset) = origin(letter);
            let target = dead_letter_topic(&topic, &self.fallback);
            self.ensure_topic(&target).await?;
            let headers = OwnedHeaders::new()
                .insert(Header {
                    key: "pulse.reason",
                    value: Some(&letter.reason),
                })
                .insert(Header {
                    key: "pulse.component",
                    value: Some(&letter.component),
                })
                .insert(Header {
                    key: "pulse.topic",
                    value: Some(&topic),
                })
                .insert(Header {
                    key: "pulse.partition",
                    value: Some(&partition),
                })
                .insert(Header {
                    key: "pulse.offset",
                    value: Some(&offset),
                });
            let mut message = FutureRecord::<(), _>::to(&target).payload(&letter.raw).headers(headers);
            let delivery = loop {
                match self.producer.send_result(message) {
                    Ok(delivery) => break delivery,
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                        message = back;
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    Err((error, _)) => return Err(WriteError::retry(error)),
                }
            };
            deliveries.push(delivery);
        }
        for delivery in deliveries {
            match delivery.await {
                Ok(Ok(_)) => {}
                Ok(Err((error, _))) => return Err(WriteError::retry(error)),
                Err(_) => return Err(WriteError::retry("the producer dropped a delivery report")),
            }
        }
        Ok(Written::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenants_come_from_the_topic_name() {
        assert_eq!(dead_letter_topic("acme.events.normalized", "pulse.dlq"), "acme.dlq");
        assert_eq!(dead_letter_topic("globex.logs.normalized", "pulse.dlq"), "globex.dlq");
        assert_eq!(dead_letter_topic("events", "pulse.dlq"), "pulse.dlq");
        assert_eq!(dead_letter_topic(".odd", "pulse.dlq"), "pulse.dlq");
    }
}
