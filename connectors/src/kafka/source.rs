//! Reading events from Kafka partitions.
//!
//! Each worker runs one consumer on a thread of its own, assigned (not
//! subscribed) to its share of the partitions, starting at the group's
//! committed offsets (or the earliest ones). The thread hands batches of raw
//! messages to the worker through a bounded channel — back-pressure: when the
//! dataflow falls behind, the thread waits instead of buffering without limit —
//! and the worker decodes them. Each partition is a split with its own
//! watermark. With `until_end`, the end offsets are read at start and the
//! reader finishes when every partition has been read up to them.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pulse_core::dead_letter::Position;
use pulse_core::{DeadLetter, Event};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::{Message, Offset, TopicPartitionList};

use super::{KafkaConnectorError, REQUEST_TIMEOUT, client_config};
use crate::source::{EventReader, ReadBatch, ReadStatus};
use crate::watermark::Split;

/// How often the consumer measures its lag (end offset − position) per partition.
const LAG_INTERVAL: Duration = Duration::from_secs(2);

/// What a Kafka source reads, and how.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KafkaSourceSettings {
    /// Component name, for logs, metrics and dead letters.
    pub component: String,
    /// `host:port[,host:port…]`.
    pub brokers: String,
    /// Topics to read.
    pub topics: Vec<String>,
    /// Also read every topic whose name matches this regular expression.
    pub topic_pattern: Option<String>,
    /// Consumer group whose committed offsets are the starting point.
    pub group: String,
    /// Read up to the end offsets seen at start, then finish.
    pub until_end: bool,
}

/// The next offset to read of each (topic, partition) this process has read,
/// shared with the engine so it can commit them once the sinks have the output.
pub type PartitionOffsets = Arc<Mutex<BTreeMap<(String, i32), i64>>>;

/// Every (topic, partition) the source reads, in the fixed order used to deal
/// them to workers.
pub fn partitions(settings: &KafkaSourceSettings) -> Result<Vec<(String, i32)>, KafkaConnectorError> {
    let consumer: BaseConsumer = client_config(&settings.brokers).create()?;
    let metadata = consumer.fetch_metadata(None, REQUEST_TIMEOUT)?;
    let pattern = settings.topic_pattern.as_deref().map(regex::Regex::new).transpose()?;
    let mut found = Vec::new();
    for topic in metadata.topics() {
        let named = settings.topics.iter().any(|t| t == topic.name());
        let matched = pattern.as_ref().is_some_and(|p| p.is_match(topic.name()));
        if named || matched {
            found.extend(topic.partitions().iter().map(|p| (topic.name().to_owned(), p.id())));
        }
    }
    for topic in &settings.topics {
        if !found.iter().any(|(t, _)| t == topic) {
            return Err(KafkaConnectorError::UnknownTopic(topic.clone()));
        }
    }
    found.sort();
    Ok(found)
}

/// Commits `offsets` (next offsets to read) for `group`.
pub fn commit_offsets(
    brokers: &str,
    group: &str,
    offsets: &BTreeMap<(String, i32), i64>,
) -> Result<(), KafkaConnectorError> {
    if offsets.is_empty() {
        return Ok(());
    }
    let consumer: BaseConsumer = client_config(brokers).set("group.id", group).create()?;
    let mut list = TopicPartitionList::new();
    for ((topic, partition), next) in offsets {
        list.add_partition_offset(topic, *partition, Offset::Offset(*next))?;
    }
    consumer.commit(&list, CommitMode::Sync)?;
    Ok(())
}

/// A message as fetched, before decoding; its payload lives in the batch's arena.
struct Fetched {
    /// Index into the reader's assigned partitions.
    partition: usize,
    offset: i64,
    /// `payload` range in the arena; `None` for a message without payload.
    payload: Option<std::ops::Range<usize>>,
}

/// Messages fetched together, their payloads copied into one buffer (one
/// allocation per batch instead of one per message).
#[derive(Default)]
struct FetchedBatch {
    arena: Vec<u8>,
    messages: Vec<Fetched>,
}

enum FromConsumer {
    Messages(FetchedBatch),
    End,
    Failed(String),
}

/// This worker's share of a Kafka source.
pub struct KafkaReader {
    component: String,
    /// (split, topic, partition) of every partition this reader owns.
    assigned: Vec<(Split, String, i32)>,
    messages: Receiver<FromConsumer>,
    stop: Arc<AtomicBool>,
    offsets: PartitionOffsets,
}

impl KafkaReader {
    /// Starts the consumer thread for worker `worker` of `peers`, over its share
    /// of `all` (as returned by [`partitions`]).
    pub fn start(
        settings: &KafkaSourceSettings,
        all: &[(String, i32)],
        worker: usize,
        peers: usize,
        offsets: PartitionOffsets,
    ) -> Self {
        let assigned: Vec<(Split, String, i32)> = all
            .iter()
            .enumerate()
            .filter(|(i, _)| i % peers == worker)
            .map(|(i, (topic, partition))| (i as Split, topic.clone(), *partition))
            .collect();
        let (sender, messages) = sync_channel(8);
        let stop = Arc::new(AtomicBool::new(false));
        if assigned.is_empty() {
            let _ = sender.send(FromConsumer::End);
        } else {
            let (settings, assigned, stop) = (settings.clone(), assigned.clone(), Arc::clone(&stop));
            let name = format!("pulse-kafka-{}-{worker}", settings.component);
            let spawned = std::thread::Builder::new().name(name).spawn(move || {
                if let Err(error) = consume(&settings, &assigned, &sender, &stop) {
                    let _ = sender.send(FromConsumer::Failed(error.to_string()));
                }
            });
            if let Err(error) = spawned {
                tracing::error!(%error, "cannot start the Kafka consumer thread");
            }
        }
        Self {
            component: settings.component.clone(),
            assigned,
            messages,
            stop,
            offsets,
        }
    }
}

impl Drop for KafkaReader {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

impl EventReader for KafkaReader {
    fn splits(&self) -> Vec<Split> {
        self.assigned.iter().map(|(split, _, _)| *split).collect()
    }

    fn read(&mut self, batch: &mut ReadBatch) -> ReadStatus {
        match self.messages.try_recv() {
            Ok(FromConsumer::Messages(batch_in)) => {
                let mut next: Vec<Option<i64>> = vec![None; self.assigned.len()];
                for message in &batch_in.messages {
                    let (split, topic, partition) = &self.assigned[message.partition];
                    next[message.partition] = Some(message.offset + 1);
                    let payload = message.payload.clone().map(|range| &batch_in.arena[range]);
                    let decoded = match payload {
                        Some(payload) => Event::from_json(payload).map_err(|e| e.to_string()),
                        None => Err("empty message (no payload)".to_owned()),
                    };
                    match decoded {
                        Ok(event) => batch.push(*split, event),
                        Err(reason) => batch.dead_letters.push(DeadLetter {
                            component: self.component.clone(),
                            reason,
                            position: Position::Kafka {
                                topic: topic.clone(),
                                partition: *partition,
                                offset: message.offset,
                            },
                            raw: String::from_utf8_lossy(payload.unwrap_or_default()).into_owned(),
                        }),
                    }
                }
                let mut offsets = self.offsets.lock().unwrap_or_else(|p| p.into_inner());
                for (i, next) in next.into_iter().enumerate() {
                    if let Some(next) = next {
                        let (_, topic, partition) = &self.assigned[i];
                        offsets.insert((topic.clone(), *partition), next);
                    }
                }
                ReadStatus::More
            }
            Ok(FromConsumer::End) | Err(TryRecvError::Disconnected) => ReadStatus::Finished,
            Ok(FromConsumer::Failed(error)) => {
                tracing::error!(component = %self.component, %error, "the Kafka consumer failed; ending this source");
                ReadStatus::Finished
            }
            Err(TryRecvError::Empty) => ReadStatus::Idle(Duration::from_millis(2)),
        }
    }
}

/// The consumer thread: polls its partitions and sends batches until stopped,
/// or until every partition is read to its end offset when `until_end`.
fn consume(
    settings: &KafkaSourceSettings,
    assigned: &[(Split, String, i32)],
    sender: &SyncSender<FromConsumer>,
    stop: &AtomicBool,
) -> Result<(), KafkaConnectorError> {
    let consumer: BaseConsumer = client_config(&settings.brokers)
        .set("group.id", &settings.group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "true")
        // Latency: a broker may hold a fetch this long waiting for data (default 500 ms).
        .set("fetch.wait.max.ms", "10")
        .create()?;
    let mut list = TopicPartitionList::new();
    for (_, topic, partition) in assigned {
        list.add_partition_offset(topic, *partition, Offset::Stored)?;
    }
    // Where each partition starts, and (bounded) where it ends.
    let committed = consumer.committed_offsets(list.clone(), REQUEST_TIMEOUT)?;
    let mut position = Vec::with_capacity(assigned.len());
    let mut end = Vec::with_capacity(assigned.len());
    for (_, topic, partition) in assigned {
        let (low, high) = consumer.fetch_watermarks(topic, *partition, REQUEST_TIMEOUT)?;
        let start = match committed.find_partition(topic, *partition).map(|e| e.offset()) {
            Some(Offset::Offset(n)) => n.max(low),
            _ => low,
        };
        position.push(start);
        end.push(high);
    }
    consumer.assign(&list)?;
    let index: BTreeMap<(&str, i32), usize> = assigned
        .iter()
        .enumerate()
        .map(|(i, (_, t, p))| ((t.as_str(), *p), i))
        .collect();
    // A partition is finished when it has reached its end offset *and* the
    // consumer has caught up with what the broker hands out (end of partition,
    // or a poll with nothing new): some brokers (tansu) report an end offset
    // short of the last record batch they already hold.
    let mut caught_up = vec![false; assigned.len()];
    let done = |position: &[i64], caught_up: &[bool]| {
        settings.until_end && position.iter().zip(&end).zip(caught_up).all(|((p, e), c)| p >= e && *c)
    };

    let labels = [("component", settings.component.clone())];
    let messages_in = metrics::counter!("pulse_kafka_messages_total", &labels);
    let bytes_in = metrics::counter!("pulse_kafka_bytes_total", &labels);
    let lag: Vec<metrics::Gauge> = assigned
        .iter()
        .map(|(_, topic, partition)| {
            metrics::gauge!("pulse_kafka_consumer_lag", "component" => settings.component.clone(),
                "topic" => topic.clone(), "partition" => partition.to_string())
        })
        .collect();
    let mut lag_measured = std::time::Instant::now() - LAG_INTERVAL;

    let mut backoff = Duration::from_millis(100);
    while !stop.load(Ordering::Relaxed) && !done(&position, &caught_up) {
        if lag_measured.elapsed() >= LAG_INTERVAL {
            lag_measured = std::time::Instant::now();
            for (i, (_, topic, partition)) in assigned.iter().enumerate() {
                if let Ok((_, high)) = consumer.fetch_watermarks(topic, *partition, REQUEST_TIMEOUT) {
                    lag[i].set((high - position[i]).max(0) as f64);
                }
            }
        }
        let mut fetched = FetchedBatch::default();
        let mut timeout = Duration::from_millis(100);
        while fetched.messages.len() < 8_192 {
            match consumer.poll(timeout) {
                Some(Ok(message)) => {
                    let Some(&i) = index.get(&(message.topic(), message.partition())) else {
                        continue;
                    };
                    position[i] = message.offset() + 1;
                    let payload = message.payload().map(|bytes| {
                        fetched.arena.extend_from_slice(bytes);
                        fetched.arena.len() - bytes.len()..fetched.arena.len()
                    });
                    fetched.messages.push(Fetched {
                        partition: i,
                        offset: message.offset(),
                        payload,
                    });
                    timeout = Duration::ZERO;
                }
                Some(Err(KafkaError::PartitionEOF(partition))) => {
                    for (i, (_, _, p)) in assigned.iter().enumerate() {
                        if *p == partition && position[i] >= end[i] {
                            caught_up[i] = true;
                        }
                    }
                    timeout = Duration::ZERO;
                }
                Some(Err(error)) => {
                    tracing::warn!(component = %settings.component, %error, "Kafka consumer error; retrying");
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    break;
                }
                None => {
                    // Nothing more to fetch right now: every partition at its end is caught up.
                    for i in 0..assigned.len() {
                        caught_up[i] |= position[i] >= end[i];
                    }
                    break;
                }
            }
        }
        if !fetched.messages.is_empty() {
            backoff = Duration::from_millis(100);
            messages_in.increment(fetched.messages.len() as u64);
            bytes_in.increment(fetched.arena.len() as u64);
            if sender.send(FromConsumer::Messages(fetched)).is_err() {
                return Ok(());
            }
        }
    }
    let _ = sender.send(FromConsumer::End);
    Ok(())
}
