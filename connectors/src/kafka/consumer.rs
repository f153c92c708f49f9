//! The consumer thread of one worker: polls its partitions and hands raw
//! messages to the worker through a bounded channel.
//!
//! The channel is the back-pressure: when the dataflow falls behind, the
//! thread waits instead of buffering without limit. (Commits run on a thread
//! of their own, [`Committer`](super::committer::Committer), so that their
//! round trips never hold up fetching.)

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::SyncSender;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::{Message, Offset, TopicPartitionList};

use pulse_core::HealthReporter;

use super::offsets::TopicPartition;
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
    Messages(FetchedBatch),
    End,
    Failed(String),
}

/// One worker's partitions and where each starts.
pub(crate) struct Assignment {
    pub partitions: Vec<TopicPartition>,
    pub starts: Vec<i64>,
}

/// Polls `assignment` and sends batches until stopped, or until every
/// partition is read to its end offset when `until_end`.
pub(crate) fn consume(
    settings: &KafkaSourceSettings,
    assignment: &Assignment,
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
    let partitions = &assignment.partitions;
    let mut backoff = Duration::from_millis(100);
    // The broker may be unreachable when the run starts, or go away before the
    // first request: keep asking (unhealthy meanwhile), as the polling loop does.
    let Located {
        mut position,
        end,
        mut rewinds,
    } = loop {
        match locate(&consumer, assignment) {
            Ok(located) => break located,
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
    let mut list = TopicPartitionList::new();
    for ((topic, partition), rewind) in partitions.iter().zip(&rewinds) {
        list.add_partition_offset(topic, *partition, Offset::Offset(rewind.first_fetch()))?;
    }
    consumer.assign(&list)?;
    let index: BTreeMap<(&str, i32), usize> = partitions
        .iter()
        .enumerate()
        .map(|(i, (t, p))| ((t.as_str(), *p), i))
        .collect();
    // A partition is finished when it has reached its end offset *and* the
    // consumer has caught up with what the broker hands out (end of partition,
    // or a poll with nothing new): some brokers (tansu) report an end offset
    // short of the last record batch they already hold.
    let mut caught_up = vec![false; partitions.len()];
    let done = |position: &[i64], caught_up: &[bool]| {
        settings.until_end && position.iter().zip(&end).zip(caught_up).all(|((p, e), c)| p >= e && *c)
    };

    let labels = [("component", settings.component.clone())];
    let messages_in = metrics::counter!("pulse_kafka_messages_total", &labels);
    let bytes_in = metrics::counter!("pulse_kafka_bytes_total", &labels);
    let lag: Vec<metrics::Gauge> = partitions
        .iter()
        .map(|(topic, partition)| {
            metrics::gauge!("pulse_kafka_consumer_lag", "component" => settings.component.clone(),
                "topic" => topic.clone(), "partition" => partition.to_string())
        })
        .collect();
    let mut lag_measured = Instant::now() - LAG_INTERVAL;
    while !stop.load(Ordering::Relaxed) && !done(&position, &caught_up) {
        if lag_measured.elapsed() >= LAG_INTERVAL {
            lag_measured = Instant::now();
            // Also the health check: a poll answers nothing, not an error, while
            // every broker is down; a metadata request fails.
            for (i, (topic, partition)) in partitions.iter().enumerate() {
                match consumer.fetch_watermarks(topic, *partition, REQUEST_TIMEOUT) {
                    Ok((_, high)) => {
                        lag[i].set((high - position[i]).max(0) as f64);
                        health.healthy();
                    }
                    Err(error) => health.unhealthy(format!("{topic}/{partition}: {error}")),
                }
            }
        }
        let mut fetched = FetchedBatch::default();
        let mut timeout = Duration::from_millis(100);
        while fetched.messages.len() < MAX_BATCH {
            match consumer.poll(timeout) {
                Some(Ok(message)) => {
                    let Some(&i) = index.get(&(message.topic(), message.partition())) else {
                        continue;
                    };
                    match rewinds[i].check(message.offset()) {
                        Verdict::Accept => {}
                        Verdict::Skip => continue,
                        Verdict::SeekTo(offset) => {
                            seek(&consumer, &partitions[i], offset);
                            continue;
                        }
                    }
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
                    for (i, (_, p)) in partitions.iter().enumerate() {
                        if *p != partition {
                            continue;
                        }
                        if !rewinds[i].is_settled()
                            && let Some(offset) = rewinds[i].at_end()
                        {
                            seek(&consumer, &partitions[i], offset);
                        } else if position[i] >= end[i] {
                            caught_up[i] = true;
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
                    for i in 0..partitions.len() {
                        caught_up[i] |= rewinds[i].is_settled() && position[i] >= end[i];
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
                break;
            }
        }
    }
    let _ = sender.send(FromConsumer::End);
    Ok(())
}

/// Where fetching starts and ends in each assigned partition, as the broker says.
struct Located {
    /// The first offset to deliver: the resume point, raised to the earliest retained.
    position: Vec<i64>,
    /// The end offset when the run started (where a bounded run stops).
    end: Vec<i64>,
    rewinds: Vec<Rewind>,
}

/// Asks the broker for each assigned partition's retained range.
fn locate(consumer: &BaseConsumer, assignment: &Assignment) -> Result<Located, KafkaError> {
    let count = assignment.partitions.len();
    let mut located = Located {
        position: Vec::with_capacity(count),
        end: Vec::with_capacity(count),
        rewinds: Vec::with_capacity(count),
    };
    for ((topic, partition), &start) in assignment.partitions.iter().zip(&assignment.starts) {
        let (low, high) = consumer.fetch_watermarks(topic, *partition, REQUEST_TIMEOUT)?;
        let start = start.max(low);
        located.position.push(start);
        located.end.push(high);
        located.rewinds.push(Rewind::new(start, low));
    }
    Ok(located)
}

/// Moves the fetch position of `partition` back to `offset` (see [`Rewind`]).
fn seek(consumer: &BaseConsumer, (topic, partition): &TopicPartition, offset: i64) {
    tracing::debug!(%topic, partition, offset, "rewinding to the record batch that holds the resume point");
    if let Err(error) = consumer.seek(topic, *partition, Offset::Offset(offset), REQUEST_TIMEOUT) {
        tracing::warn!(%topic, partition, %error, "cannot rewind the partition");
    }
}
