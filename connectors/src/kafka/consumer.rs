//! The consumer thread of one worker: takes its partitions' messages from
//! librdkafka a batch at a time ([`fetch`](super::fetch)), decodes them
//! ([`decoded`](super::decoded)) and hands the events to the worker through a
//! bounded channel.
//!
//! The channel is the back-pressure: when the dataflow falls behind, the
//! thread waits instead of buffering without limit. Every hand-over also wakes
//! the worker's source operator ([`ToReader`]), so the worker does not poll
//! for messages. (Commits run on a thread of their own,
//! [`Committer`](super::committer::Committer), so that their round trips
//! never hold up fetching.)

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{SendError, SyncSender};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::{Message, Offset, TopicPartitionList};
use timely::scheduling::SyncActivator;

use pulse_core::HealthReporter;

use super::decoded::{self, DecodedMessage};
use super::fetch::{FetchQueue, FetchedBatch, MessageView, Polled};
use super::group::GroupConsumer;
use super::offsets::{TopicPartition, matching_partitions};
use super::rewind::{Rewind, Verdict};
use super::source::KafkaSourceSettings;
use super::{KafkaConnectorError, REQUEST_TIMEOUT, client_config};

/// How often the consumer measures its lag (end offset − position) per partition.
const LAG_INTERVAL: Duration = Duration::from_secs(2);

/// The most messages handed over in one batch.
const MAX_BATCH: usize = 8_192;

/// What the consumer thread tells its worker.
pub(crate) enum FromConsumer {
    /// Partitions found while running, now read by this worker: they take the
    /// next indices, in this order, before any of their messages is sent.
    Added(Vec<TopicPartition>),
    Messages(Vec<DecodedMessage>),
    End,
    Failed(String),
}

/// The consumer thread's end of the channel to its worker.
pub(crate) struct ToReader {
    pub sender: SyncSender<FromConsumer>,
    /// Schedules the worker's source operator, once the dataflow has given
    /// the reader a handle ([`EventReader::wake_with`](crate::source::EventReader::wake_with)).
    pub waker: Arc<OnceLock<SyncActivator>>,
}

impl ToReader {
    /// Sends `message`, waiting while the channel is full, and wakes the reader.
    pub(crate) fn send(&self, message: FromConsumer) -> Result<(), SendError<FromConsumer>> {
        self.sender.send(message)?;
        if let Some(waker) = self.waker.get() {
            // Fails only once the worker is gone, which the next send sees.
            let _ = waker.activate();
        }
        Ok(())
    }
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
    sender: &ToReader,
    stop: &AtomicBool,
    health: &HealthReporter,
) -> Result<(), KafkaConnectorError> {
    let consumer = GroupConsumer::create(
        client_config(&settings.brokers)
            .set("group.id", &settings.group)
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .set("enable.partition.eof", "true")
            // Latency: a broker may hold a fetch this long waiting for data (default 500 ms).
            .set("fetch.wait.max.ms", "10"),
    )?;
    let queue = FetchQueue::new(consumer);
    let consumer = queue.consumer();
    let mut backoff = Backoff::new(health, &settings.component);
    // The broker may be unreachable when the run starts, or go away before the
    // first request: keep asking (unhealthy meanwhile), as the polling loop does.
    let mut reading = loop {
        match Reading::locate(consumer, &assignment, &settings.component) {
            Ok(reading) => break reading,
            Err(error) => {
                if stop.load(Ordering::Relaxed) {
                    let _ = sender.send(FromConsumer::End);
                    return Ok(());
                }
                backoff.wait("cannot locate the Kafka partitions", &error);
            }
        }
    };
    consumer.assign(&reading.route(&queue, 0)?)?;
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
                reading.measure_lag(consumer)
            };
            match healthy {
                Ok(()) => health.healthy(),
                Err(error) => health.unhealthy(error.to_string()),
            }
        }
        if let Some(found) = discovery.poll(consumer) {
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
            consumer.incremental_assign(&reading.route(&queue, first)?)?;
        }
        if let Some(error) = serve_events(&queue, &settings.component) {
            backoff.wait("Kafka consumer error", &error);
        }
        let (fetched, failure) = reading.take(&queue);
        if let Some(error) = failure {
            backoff.wait("Kafka fetch error", &error);
        }
        if !fetched.is_empty() {
            backoff.reset();
            messages_in.increment(fetched.len() as u64);
            bytes_in.increment(fetched.payload_bytes() as u64);
            let messages = decoded::decode(&fetched, settings.projection);
            drop(fetched);
            if sender.send(FromConsumer::Messages(messages)).is_err() {
                break;
            }
        }
    }
    let _ = sender.send(FromConsumer::End);
    Ok(())
}

/// Serves the consumer's own queue, where its errors and logs arrive (its
/// partitions' messages come on `queue`); the first error, if any.
fn serve_events(queue: &FetchQueue, component: &str) -> Option<KafkaError> {
    let consumer = queue.consumer();
    while let Some(polled) = consumer.poll(Duration::ZERO) {
        match polled {
            Ok(message) => {
                // Only if fetched before its partition was routed: fetch it again through the queue.
                let (partition, offset) = ((message.topic().to_owned(), message.partition()), message.offset());
                drop(message);
                tracing::warn!(
                    component,
                    ?partition,
                    offset,
                    "a message came on the consumer's own queue; fetching it again"
                );
                if let Err(error) = queue.route(&partition.0, partition.1) {
                    tracing::warn!(component, %error, "cannot route the partition");
                }
                seek(consumer, &partition, offset);
            }
            Err(KafkaError::PartitionEOF(_)) => {}
            Err(error) => return Some(error),
        }
    }
    None
}

/// Waits before a retry, twice as long each time up to 5 s, with the source
/// reported unhealthy meanwhile.
struct Backoff<'a> {
    next: Duration,
    health: &'a HealthReporter,
    component: &'a str,
}

impl<'a> Backoff<'a> {
    const FIRST: Duration = Duration::from_millis(100);

    fn new(health: &'a HealthReporter, component: &'a str) -> Self {
        Self {
            next: Self::FIRST,
            health,
            component,
        }
    }

    /// Reports `error` after `what` failed, and waits.
    fn wait(&mut self, what: &str, error: &dyn std::fmt::Display) {
        self.health.unhealthy(error.to_string());
        tracing::warn!(component = %self.component, %error, "{what}; retrying");
        std::thread::sleep(self.next);
        self.next = (self.next * 2).min(Duration::from_secs(5));
    }

    /// Back to the shortest wait, after a success.
    fn reset(&mut self) {
        self.next = Self::FIRST;
    }
}

/// The partitions a consumer reads, in the worker's order, and how far each is.
struct Reading {
    partitions: Vec<PartitionState>,
    /// Index of each partition, by topic then partition number.
    index: BTreeMap<String, BTreeMap<i32, usize>>,
    /// The last partition a message was found in: ((topic id, partition), index).
    last_found: Option<((usize, i32), usize)>,
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
            last_found: None,
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

    /// Routes the partitions from index `first` on to `queue`, and lists
    /// them each at its first fetch offset, to be assigned.
    fn route(&self, queue: &FetchQueue, first: usize) -> Result<TopicPartitionList, KafkaConnectorError> {
        let mut list = TopicPartitionList::new();
        for state in &self.partitions[first..] {
            let (topic, partition) = &state.partition;
            queue.route(topic, *partition).map_err(KafkaConnectorError::Fetch)?;
            list.add_partition_offset(topic, *partition, Offset::Offset(state.rewind.first_fetch()))?;
        }
        Ok(list)
    }

    /// The index of a message's partition.
    #[inline]
    fn index_of(&mut self, message: &MessageView<'_>) -> Option<usize> {
        // A topic id stays unique while the consumer is assigned to the topic,
        // and a consumer never leaves a partition it reads.
        let key = (message.topic_id(), message.partition());
        if let Some((last, index)) = self.last_found
            && last == key
        {
            return Some(index);
        }
        let index = *self.index.get(message.topic())?.get(&message.partition())?;
        self.last_found = Some((key, index));
        Some(index)
    }

    /// What to do with what the consumer took: the index of a message's
    /// partition if the message is to be delivered (`None` for one that a
    /// rewind skips, an end of partition, or an error, which goes to `failure`).
    fn sort(&mut self, polled: Polled<'_>, consumer: &BaseConsumer, failure: &mut Option<String>) -> Option<usize> {
        match polled {
            Polled::Message(message) => {
                let i = self.index_of(&message)?;
                let state = &mut self.partitions[i];
                match state.rewind.check(message.offset()) {
                    Verdict::Accept => {}
                    Verdict::Skip => return None,
                    Verdict::SeekTo(offset) => {
                        seek(consumer, &state.partition, offset);
                        return None;
                    }
                }
                state.position = message.offset() + 1;
                Some(i)
            }
            Polled::EndOfPartition(end) => {
                let i = self.index_of(&end)?;
                let state = &mut self.partitions[i];
                if !state.rewind.is_settled()
                    && let Some(offset) = state.rewind.at_end()
                {
                    seek(consumer, &state.partition, offset);
                } else if state.position >= state.end {
                    state.caught_up = true;
                }
                None
            }
            Polled::Error(error) => {
                *failure = Some(error);
                None
            }
        }
    }

    /// Takes up to [`MAX_BATCH`] messages to deliver from `queue`, waiting
    /// up to 100 ms for the first; and the fetch error met, if any.
    fn take(&mut self, queue: &Arc<FetchQueue>) -> (FetchedBatch, Option<String>) {
        let mut fetched = FetchedBatch::new(queue);
        let mut timeout = Duration::from_millis(100);
        let mut failure = None;
        while fetched.len() < MAX_BATCH {
            // Wait for one message at most: a batch call waits out its whole
            // timeout unless the batch fills. Then take what is there.
            let wanted = if timeout.is_zero() {
                MAX_BATCH - fetched.len()
            } else {
                1
            };
            let taken = fetched.take(wanted, timeout, |polled| {
                self.sort(polled, queue.consumer(), &mut failure)
            });
            if failure.is_some() {
                break;
            }
            if taken == 0 {
                // Nothing more to fetch right now: every partition at its end is caught up.
                self.mark_caught_up();
                break;
            }
            timeout = Duration::ZERO;
        }
        (fetched, failure)
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
