//! Dead letters of Kafka sources, sent back to Kafka: one `{tenant}.dlq` topic per tenant.
//!
//! The tenant is read from the name of the topic the message came from, by the
//! per-tenant convention `{tenant}.events.normalized`; messages from topics
//! without a tenant prefix go to a fallback topic. The message value is the
//! original raw message; headers carry the reason and where it came from
//! (`pulse.reason`, `pulse.topic`, `pulse.partition`, `pulse.offset`). Topics
//! are created on first use.

use std::collections::BTreeSet;
use std::io;
use std::time::Duration;

use pulse_core::DeadLetter;
use pulse_core::dead_letter::Position;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord};

use crate::writer::LineSink;

/// The dead-letter topic for a message read from `topic`: `{tenant}.dlq` when
/// the topic name starts with a tenant (`acme.events.normalized` → `acme.dlq`).
pub fn dead_letter_topic(topic: &str, fallback: &str) -> String {
    match topic.split_once('.') {
        Some((tenant, _)) if !tenant.is_empty() => format!("{tenant}.dlq"),
        _ => fallback.to_owned(),
    }
}

/// Writes dead letters (as the JSON lines of [`DeadLetter`]) to their tenant's topic.
pub struct DeadLetterTopics {
    brokers: String,
    producer: BaseProducer,
    fallback: String,
    created: BTreeSet<String>,
}

impl DeadLetterTopics {
    /// Connects to `brokers`; `fallback` receives messages whose topic names no tenant.
    pub fn connect(brokers: &str, fallback: &str) -> Result<Self, rdkafka::error::KafkaError> {
        Ok(Self {
            brokers: brokers.to_owned(),
            producer: pulse_kafka::client_config(brokers).set("linger.ms", "5").create()?,
            fallback: fallback.to_owned(),
            created: BTreeSet::new(),
        })
    }

    fn ensure_topic(&mut self, topic: &str) -> io::Result<()> {
        if self.created.contains(topic) {
            return Ok(());
        }
        // A client of its own each time: most runs create no dead-letter
        // topic, and an idle admin client costs up to 100 ms when dropped.
        pulse_kafka::create_topics(&self.brokers, &[topic.to_owned()], 1).map_err(io::Error::other)?;
        self.created.insert(topic.to_owned());
        Ok(())
    }
}

impl LineSink for DeadLetterTopics {
    fn write_batch(&mut self, lines: &[String]) -> io::Result<()> {
        for line in lines {
            let letter: DeadLetter = serde_json::from_str(line).map_err(io::Error::other)?;
            let (topic, partition, offset) = match &letter.position {
                Position::Kafka {
                    topic,
                    partition,
                    offset,
                } => (topic.clone(), partition.to_string(), offset.to_string()),
                other => (String::new(), String::new(), format!("{other:?}")),
            };
            let target = dead_letter_topic(&topic, &self.fallback);
            self.ensure_topic(&target)?;
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
            let record = BaseRecord::<(), _>::to(&target).payload(&letter.raw).headers(headers);
            self.producer
                .send(record)
                .map_err(|(error, _)| io::Error::other(error))?;
        }
        self.producer.poll(Duration::ZERO);
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        pulse_kafka::flush(&self.producer, Duration::from_secs(60)).map_err(io::Error::other)
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
