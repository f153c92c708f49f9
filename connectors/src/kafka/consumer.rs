//! The consumer thread of one worker: polls its partitions and hands raw
//! messages to the worker through a bounded channel.
//!
//! The channel is the back-pressure: when the dataflow falls behind, the
//! thread waits instead of buffering without limit. (Commits run on a thread
//! of their own, [`Committer`](super::committer::Committer), so that their
//! round trips never hold up fetching.)

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::SyncSender;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::{Message, Offset, TopicPartitionList};

use pulse_core::HealthReporter;

use super::offsets::{TopicPartition, matching_partitions};
use super::rewind::{Rewind, Verdict};
use super::source::KafkaSourceSettings;
use super::{KafkaConnectorError, REQUEST_TIMEOUT, client_config};

/// How often the consumer measures its lag (end offset − position) per partition.
const LAG_INTERVAL: Duration = Duration::from_secs(2);

/// The most messages handed over in one batch.
const MAX_BATCH: usize = 8_192;

/// A message as fetched, before decoding; its payload lives in the batch's arena.
pub(crate) struct Fetched {
    /// Index into the reader's assigned partitions.
    pub partition: usize,
    pub offset: i64,
    /// `payload` range in the arena; `None` for a message without payload.
    pub payload: Option<std::ops::Range<usize>>,
}

/// Messages fetched together, their payloads copied into one buffer (one
/// allocation per batch instead of one per message).
#[derive(Default)]
pub(crate) struct FetchedBatch {
    pub arena: Vec<u8>,
    pub messages: Vec<Fetched>,
}

/// What the consumer thread tells its worker.
pub(crate) enum FromConsumer {
    /// Partitions found while running, now read by this worker: they take the
    /// next indices, in this order, before any of their messages is sent.
    Added(Vec<TopicPartition>),
    Messages(FetchedBatch),
    End,
    Failed(String),
}

/// One worker's partitions and where each starts.
pub(crate) struct Assignment {
    pub partitions: Vec<TopicPartition>,
    pub starts: Vec<i64>,
    /// Every partition of the source when the run started, whichever worker
    /// reads it: partition discovery deals out only the others.
    pub known: BTreeSet<TopicPartition>,
    /// This worker and how many the source has.
    pub worker: (usize, usize),
}

/// Polls `assignment` and sends batches until stopped, or until every
/// partition is read to its end offset when `until_end`. An unbounded source
/// also looks for new partitions every `discovery_interval` and reads the
/// ones [dealt](owner) to its worker from their first offset.
pub(crate) fn consume(
    settings: &KafkaSourceSettings,
    assignment: Assignment,
    sender: &SyncSender<FromConsumer>,
    stop: &AtomicBool,
    health: &HealthReporter,
) -> Result<(), KafkaConnectorError> {
    let consumer: BaseConsumer = client_config(&settings.brokers)
        .set("group.id", &settings.group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "true")
        // Latency: a broker may hold a fetch this long waiting for data (default 500 ms).
        .set("fetch.wait.max.ms", "10")
        .create()?;
    let mut backoff = Duration::from_millis(100);
    // The broker may be unreachable when the run starts, or go away before the
    // first request: keep asking (unhealthy meanwhile), as the polling loop does.
    let mut reading = loop {
        match Reading::locate(&consumer, &assignment, &settings.component) {
            Ok(reading) => break reading,
            Err(error) => {
                if stop.load(Ordering::Relaxed) {
                    let _ = sender.send(FromConsumer::End);
                    return Ok(());
                }
                health.unhealthy(error.to_string());
                tracing::warn!(component = %settings.component, %error, "cannot locate the Kafka partitions; retrying");
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    };
    consumer.assign(&reading.fetch_list(0)?)?;
    let mut discovery = Discovery::new(settings, assignment.known, assignment.worker);

    let labels = [("component", settings.component.clone())];
    let messages_in = metrics::counter!("pulse_kafka_messages_total", &labels);
    let bytes_in = metrics::counter!("pulse_kafka_bytes_total", &labels);
    let mut lag_measured = Instant::now() - LAG_INTERVAL;
    let finished = |reading: &Reading| settings.until_end && reading.all_done();
    while !stop.load(Ordering::Relaxed) && !finished(&reading) {
        if lag_measured.elapsed() >= LAG_INTERVAL {
            lag_measured = Instant::now();
            // Also the health check: a poll answers nothing, not an error, while
            // every broker is down; a metadata request fails.
            let healthy = if reading.partitions.is_empty() {
                consumer.fetch_metadata(None, REQUEST_TIMEOUT).map(drop)
            } else {
                reading.measure_lag(&consumer)
            };
            match healthy {
                Ok(()) => health.healthy(),
                Err(error) => health.unhealthy(error.to_string()),
            }
        }
        if let Some(found) = discovery.poll(&consumer) {
            let first = reading.partitions.len();
            for partition in &found {
                match consumer.fetch_watermarks(&partition.0, partition.1, REQUEST_TIMEOUT) {
                    Ok((low, high)) => reading.add(partition.clone(), low, low, high, &settings.component),
                    // Known from the metadata: read from the earliest retained
                    // offset; the position check sorts it out.
                    Err(_) => reading.add(partition.clone(), 0, 0, 0, &settings.component),
                }
            }
            tracing::info!(component = %settings.component, partitions = ?found, "reading partitions found while running");
            if sender.send(FromConsumer::Added(found)).is_err() {
                break;
            }
            consumer.incremental_assign(&reading.fetch_list(first)?)?;
        }
        let mut fetched = FetchedBatch::default();
        let mut timeout = Duration::from_millis(100);
        while fetched.messages.len() < MAX_BATCH {
            match consumer.poll(timeout) {
                Some(Ok(message)) => {
                    let Some(i) = reading.index_of(message.topic(), message.partition()) else {
                        continue;
                    };
                    let state = &mut reading.partitions[i];
                    match state.rewind.check(message.offset()) {
                        Verdict::Accept => {}
                        Verdict::Skip => continue,
                        Verdict::SeekTo(offset) => {
                            seek(&consumer, &state.partition, offset);
                            continue;
                        }
                    }
                    state.position = message.offset() + 1;
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
                    for state in reading.partitions.iter_mut().filter(|s| s.partition.1 == partition) {
                        if !state.rewind.is_settled()
                            && let Some(offset) = state.rewind.at_end()
                        {
                            seek(&consumer, &state.partition, offset);
                        } else if state.position >= state.end {
                            state.caught_up = true;
                        }
                    }
                    timeout = Duration::ZERO;
                }
                Some(Err(error)) => {
                    health.unhealthy(error.to_string());
                    tracing::warn!(component = %settings.component, %error, "Kafka consumer error; retrying");
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    break;
                }
                None => {
                    // Nothing more to fetch right now: every partition at its end is caught up.
                    reading.mark_caught_up();
                    break;
                }
            }
        }
        if !fetched.messages.is_empty() {
            backoff = Duration::from_millis(100);
            messages_in.increment(fetched.messages.len() as u64);
            bytes_in.increment(fetched.arena.len() as u64);
            if sender.send(FromConsumer::Messages(fetched)).is_err() {
                break;
            }
        }
    }
    let _ = sender.send(FromConsumer::End);
    Ok(())
}

/// The partitions a consumer reads, in the worker's order, and how far each is.
struct Reading {
    partitions: Vec<PartitionState>,
    /// Index of each partition, by topic then partition number.
    index: BTreeMap<String, BTreeMap<i32, usize>>,
}

/// How far the consumer is in one partition.
struct PartitionState {
    partition: TopicPartition,
    /// The next offset to deliver.
    position: i64,
    /// The end offset when the partition was first located (where a bounded run stops).
    end: i64,
    rewind: Rewind,
    /// Whether the consumer has caught up with what the broker hands out, at
    /// or past `end`. Some brokers (tansu) report an end offset short of the
    /// last record batch they already hold, so reaching it is not enough.
    caught_up: bool,
    lag: metrics::Gauge,
}

impl PartitionState {
    /// Read to its end offset, and caught up with the broker.
    fn is_done(&self) -> bool {
        self.position >= self.end && self.caught_up
    }
}

impl Reading {
    /// Asks the broker for each assigned partition's retained range.
    fn locate(consumer: &BaseConsumer, assignment: &Assignment, component: &str) -> Result<Self, KafkaError> {
        let mut reading = Self {
            partitions: Vec::new(),
            index: BTreeMap::new(),
        };
        for ((topic, partition), &start) in assignment.partitions.iter().zip(&assignment.starts) {
            let (low, high) = consumer.fetch_watermarks(topic, *partition, REQUEST_TIMEOUT)?;
            reading.add((topic.clone(), *partition), start, low, high, component);
        }
        Ok(reading)
    }

    /// Adds `partition`, to be read from `start` (raised to its first offset `low`) on.
    fn add(&mut self, partition: TopicPartition, start: i64, low: i64, high: i64, component: &str) {
        let start = start.max(low);
        self.index
            .entry(partition.0.clone())
            .or_default()
            .insert(partition.1, self.partitions.len());
        let lag = metrics::gauge!("pulse_kafka_consumer_lag", "component" => component.to_owned(),
            "topic" => partition.0.clone(), "partition" => partition.1.to_string());
        self.partitions.push(PartitionState {
            partition,
            position: start,
            end: high,
            rewind: Rewind::new(start, low),
            caught_up: false,
            lag,
        });
    }

    /// The partitions from index `first` on, each at its first fetch offset.
    fn fetch_list(&self, first: usize) -> Result<TopicPartitionList, KafkaError> {
        let mut list = TopicPartitionList::new();
        for state in &self.partitions[first..] {
            let (topic, partition) = &state.partition;
            list.add_partition_offset(topic, *partition, Offset::Offset(state.rewind.first_fetch()))?;
        }
        Ok(list)
    }

    #[inline]
    fn index_of(&self, topic: &str, partition: i32) -> Option<usize> {
        self.index.get(topic)?.get(&partition).copied()
    }

    /// Marks every partition at its end caught up (a poll found nothing more).
    fn mark_caught_up(&mut self) {
        for state in &mut self.partitions {
            state.caught_up |= state.rewind.is_settled() && state.position >= state.end;
        }
    }

    /// Whether every partition has been read to its end offset.
    fn all_done(&self) -> bool {
        self.partitions.iter().all(PartitionState::is_done)
    }

    /// Sets each partition's lag gauge (end offset − position).
    fn measure_lag(&self, consumer: &BaseConsumer) -> Result<(), KafkaError> {
        let mut result = Ok(());
        for state in &self.partitions {
            let (topic, partition) = &state.partition;
            match consumer.fetch_watermarks(topic, *partition, REQUEST_TIMEOUT) {
                Ok((_, high)) => state.lag.set((high - state.position).max(0) as f64),
                Err(error) => result = Err(error),
            }
        }
        result
    }
}

/// Looks for partitions that were not there when the run started: new
/// topics matching the pattern, partitions added to a topic.
struct Discovery<'a> {
    settings: &'a KafkaSourceSettings,
    /// Every partition seen so far, whichever worker reads it.
    known: BTreeSet<TopicPartition>,
    worker: (usize, usize),
    last: Instant,
}

impl<'a> Discovery<'a> {
    fn new(settings: &'a KafkaSourceSettings, known: BTreeSet<TopicPartition>, worker: (usize, usize)) -> Self {
        Self {
            settings,
            known,
            worker,
            last: Instant::now(),
        }
    }

    /// The new partitions dealt to this worker, when it is time to look and
    /// there are any (never in a bounded run, or with discovery off).
    fn poll(&mut self, consumer: &BaseConsumer) -> Option<Vec<TopicPartition>> {
        let interval = self.settings.discovery_interval.filter(|_| !self.settings.until_end)?;
        if self.last.elapsed() < interval {
            return None;
        }
        self.last = Instant::now();
        let found = match matching_partitions(consumer, self.settings) {
            Ok(found) => found,
            Err(error) => {
                tracing::warn!(component = %self.settings.component, %error, "cannot look for new partitions");
                return None;
            }
        };
        let (worker, peers) = self.worker;
        let mine: Vec<TopicPartition> = found
            .into_iter()
            .filter(|partition| self.known.insert(partition.clone()))
            .filter(|partition| owner(partition, peers) == worker)
            .collect();
        (!mine.is_empty()).then_some(mine)
    }
}

/// The worker (of `peers`) that reads a partition found while running: a
/// hash of its name, which every worker computes alike without asking the
/// others (FNV-1a, fixed for every build and platform).
pub(crate) fn owner((topic, partition): &TopicPartition, peers: usize) -> usize {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in topic.bytes().chain(partition.to_le_bytes()) {
        hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
    }
    (hash % peers.max(1) as u64) as usize
}

/// Moves the fetch position of `partition` back to `offset` (see [`Rewind`]).
fn seek(consumer: &BaseConsumer, (topic, partition): &TopicPartition, offset: i64) {
    tracing::debug!(%topic, partition, offset, "rewinding to the record batch that holds the resume point");
    if let Err(error) = consumer.seek(topic, *partition, Offset::Offset(offset), REQUEST_TIMEOUT) {
        tracing::warn!(%topic, partition, %error, "cannot rewind the partition");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_found_while_running_go_to_one_worker_each_and_to_every_worker() {
        let partitions: Vec<TopicPartition> = (0..40)
            .flat_map(|tenant| (0..3).map(move |p| (format!("tenant-{tenant}.events.normalized"), p)))
            .collect();
        for peers in 1..=4 {
            let mut per_worker = vec![0; peers];
            for partition in &partitions {
                let worker = owner(partition, peers);
                assert_eq!(worker, owner(partition, peers), "the same answer every time");
                per_worker[worker] += 1;
            }
            assert!(
                per_worker.iter().all(|&n| n >= partitions.len() / peers / 2),
                "{peers} workers share {} partitions: {per_worker:?}",
                partitions.len()
            );
        }
    }
}
