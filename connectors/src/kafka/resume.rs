//! The resume log: a topic of commit points, written before each offset commit.
//!
//! An offset commit can carry metadata, but not every Kafka-compatible broker
//! keeps it (tansu 0.6 answers every fetch with empty metadata), and a resumed
//! run needs it: without the watermark and the delivered frontier of the
//! commit, a restart would re-emit windows it can only partly replay. So each
//! commit point is first appended to a log topic (one partition, key
//! `{topic}/{partition}/{group}`, value [`ResumePoint::encode`]), then
//! committed to the group as usual (with the same text as metadata, for
//! brokers and tools that show it).
//!
//! A point is logged only once everything before its offset is delivered, so
//! the newest logged point of a partition is always a valid place to resume,
//! even if the process died between logging it and committing it.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord};
use rdkafka::{Message, Offset, TopicPartitionList};

use super::admin::create_topics;
use super::group::GroupConsumer;
use super::ledger::ResumePoint;
use super::offsets::TopicPartition;
use super::{KafkaConnectorError, REQUEST_TIMEOUT, client_config};

/// How long reading the log at start may take.
const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// The key of a partition's records for `group`.
fn key(group: &str, (topic, partition): &TopicPartition) -> String {
    format!("{topic}/{partition}/{group}")
}

/// Appends commit points of one consumer group to the resume log.
pub struct ResumeLog {
    producer: BaseProducer,
    topic: String,
    group: String,
}

impl ResumeLog {
    /// A writer to the log `topic` on `brokers` for `group`.
    pub fn connect(brokers: &str, topic: &str, group: &str) -> Result<Self, KafkaConnectorError> {
        let producer = client_config(brokers)
            .set("linger.ms", "0")
            .set("message.timeout.ms", "10000")
            .create()?;
        Ok(Self {
            producer,
            topic: topic.to_owned(),
            group: group.to_owned(),
        })
    }

    /// Appends `points` and waits until the broker has them.
    pub fn append(&self, points: &BTreeMap<TopicPartition, ResumePoint>) -> Result<(), KafkaConnectorError> {
        for (partition, point) in points {
            let (key, value) = (key(&self.group, partition), point.encode());
            self.producer
                .send(BaseRecord::to(&self.topic).key(&key).payload(&value))
                .map_err(|(error, _)| error)?;
        }
        super::flush(&self.producer, REQUEST_TIMEOUT)?;
        Ok(())
    }
}

/// Creates the log topic (one partition) if the broker does not have it.
fn ensure_log(brokers: &str, topic: &str) -> Result<(), KafkaConnectorError> {
    let consumer: BaseConsumer = client_config(brokers).create()?;
    let metadata = consumer.fetch_metadata(Some(topic), REQUEST_TIMEOUT)?;
    let exists = metadata
        .topics()
        .iter()
        .any(|t| t.name() == topic && t.error().is_none() && !t.partitions().is_empty());
    if !exists {
        create_topics(brokers, &[topic.to_owned()], 1)?;
    }
    Ok(())
}

/// The newest logged point of each of `partitions` for the writer's group,
/// from the writer's log (created first if the broker does not have it).
///
/// The log is read from its first offset up to a marker appended just before:
/// a broker's high watermark is not a safe end (tansu reports the last
/// batch's base offset + 1, which would leave the rest of that batch unread).
pub fn read_log(
    writer: &ResumeLog,
    brokers: &str,
    partitions: &[TopicPartition],
) -> Result<BTreeMap<TopicPartition, ResumePoint>, KafkaConnectorError> {
    let (topic, group) = (writer.topic.as_str(), writer.group.as_str());
    ensure_log(brokers, topic)?;
    let wanted: BTreeMap<String, &TopicPartition> = partitions.iter().map(|p| (key(group, p), p)).collect();
    let marker = format!(
        "marker/{}/{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    );
    writer
        .producer
        .send(BaseRecord::<str, str>::to(topic).key(&marker))
        .map_err(|(error, _)| error)?;
    super::flush(&writer.producer, REQUEST_TIMEOUT)?;

    let consumer = GroupConsumer::create(
        client_config(brokers)
            .set("group.id", "pulse-resume-reader")
            .set("enable.auto.commit", "false")
            // A broker may hold a fetch this long waiting for data (default 500 ms):
            // the wait at the end of the log would be added to every start.
            .set("fetch.wait.max.ms", "10"),
    )?;
    let (low, _) = consumer.fetch_watermarks(topic, 0, REQUEST_TIMEOUT)?;
    let mut list = TopicPartitionList::new();
    list.add_partition_offset(topic, 0, Offset::Offset(low))?;
    consumer.assign(&list)?;
    let started = Instant::now();
    let mut found = BTreeMap::new();
    loop {
        if started.elapsed() > READ_TIMEOUT {
            return Err(KafkaConnectorError::ResumeLog(format!(
                "reading {topic} to its end took over {}s",
                READ_TIMEOUT.as_secs()
            )));
        }
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(message)) => {
                let key = message.key().and_then(|k| std::str::from_utf8(k).ok());
                if key == Some(marker.as_str()) {
                    return Ok(found);
                }
                if let Some(&partition) = key.and_then(|k| wanted.get(k)) {
                    let value = message.payload().and_then(|v| std::str::from_utf8(v).ok());
                    if let Some(point) = value.and_then(ResumePoint::decode) {
                        found.insert(partition.clone(), point);
                    }
                }
            }
            Some(Err(error)) => return Err(error.into()),
            None => {}
        }
    }
}
