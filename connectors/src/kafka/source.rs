//! Reading events from Kafka partitions, at least once.
//!
//! Each worker runs one consumer on a thread of its own
//! ([`consume`](super::consumer)), assigned (not subscribed) to its share of
//! the partitions, starting at the group's committed offsets (or the earliest
//! ones). The worker decodes the messages; each partition is a split with its
//! own watermark, resumed from the commit's metadata. With `until_end`, the
//! end offsets are read at start and the reader finishes when every partition
//! has been read up to them.
//!
//! Offsets are committed while the source runs, at least once: every message
//! read goes into its partition's [`PartitionLedger`] with the delivered
//! frontier it needs ([`DeliveryNeeds`]), and every `commit_interval` the reader
//! asks its consumer thread to commit, per partition, the first offset not yet
//! delivered by every sink.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, TryRecvError, sync_channel};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use pulse_core::dead_letter::Position;
use pulse_core::{DeadLetter, Delivered, EventTime, HealthReporter, Projection, SessionProgress};
use timely::scheduling::SyncActivator;

use super::committer::Committer;
use super::consumer::{Assignment, FromConsumer, ToReader, consume};
use super::decoded::Undecodable;
use super::ledger::{PartitionLedger, ResumePoint};
use super::offsets::{PartitionOffsets, TopicPartition};
use crate::source::{EventReader, ReadBatch, ReadStatus};
use crate::watermark::Split;

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
    /// The topic commit points are logged to before they are committed
    /// ([`resume`](super::resume)).
    pub resume_topic: String,
    /// How often what the sinks have delivered is committed.
    pub commit_interval: Duration,
    /// How often an unbounded run asks the broker for partitions it does not
    /// read yet (new topics matching `topic_pattern`, partitions added to a
    /// topic); `None`: never.
    pub discovery_interval: Option<Duration>,
    /// The parts of each event the pipeline reads.
    pub projection: Projection,
}

/// When the output derived from a message has been delivered: what the
/// reader needs to know of the rest of the pipeline to commit at least once.
#[derive(Clone)]
pub struct DeliveryNeeds {
    /// The sinks' delivered frontier.
    pub delivered: Delivered,
    /// For an event at `ts`, the latest timestamp any output derived from it
    /// is sent at (its last window's output time, or its own time for a sink
    /// that reads the source directly), session windows aside.
    pub last_output: Arc<dyn Fn(EventTime) -> EventTime + Send + Sync>,
    /// How far the pipeline's session windows have settled, if it has any: an
    /// event is delivered only once every session it went into is.
    pub sessions: Option<SessionProgress>,
    /// The engine's time granule in ms.
    pub granule_ms: u64,
}

impl DeliveryNeeds {
    /// The delivered frontier a message needs: its output's time (or, if it
    /// is late or undecodable, the source's progress when it is read, where
    /// its late or dead-letter record is sent), plus one granule.
    #[inline]
    fn of(&self, ts: Option<EventTime>, progress: EventTime) -> EventTime {
        let sent_at = ts.map_or(progress, |ts| (self.last_output)(ts).max(progress));
        sent_at.saturating_add(self.granule_ms)
    }
}

/// One partition of this reader.
struct Assigned {
    split: Split,
    topic: String,
    partition: i32,
    ledger: PartitionLedger,
    /// The commit point last asked for.
    committed: Option<ResumePoint>,
}

/// This worker's share of a Kafka source.
pub struct KafkaReader {
    component: String,
    assigned: Vec<Assigned>,
    messages: Receiver<FromConsumer>,
    /// Where the consumer thread finds the handle that wakes this reader.
    waker: Arc<OnceLock<SyncActivator>>,
    stop: Arc<AtomicBool>,
    /// Commits on a thread of its own; `None` without partitions (or if it
    /// could not start, which leaves the source unhealthy).
    committer: Option<Committer>,
    needs: DeliveryNeeds,
    last_commit: Instant,
    commit_interval: Duration,
    /// Filled with where each partition ended when the input is exhausted.
    ended: PartitionOffsets,
    /// The newest event time before the start of each partition, if resumed.
    resumed_watermarks: Vec<(Split, EventTime)>,
    /// The split a partition found while running gets.
    next_split: Split,
}

impl KafkaReader {
    /// Starts the consumer thread for worker `worker` of `peers`, over its share
    /// of `all` (as returned by [`partitions`](super::partitions)), each
    /// resuming from its point in `resume` (or its earliest offset).
    pub fn start(
        settings: &KafkaSourceSettings,
        all: &[TopicPartition],
        resume: &BTreeMap<TopicPartition, ResumePoint>,
        (worker, peers): (usize, usize),
        needs: DeliveryNeeds,
        ended: PartitionOffsets,
        health: HealthReporter,
    ) -> Self {
        let assigned: Vec<Assigned> = all
            .iter()
            .enumerate()
            .filter(|(i, _)| i % peers == worker)
            .map(|(i, (topic, partition))| {
                let start = resume.get(&(topic.clone(), *partition)).copied().unwrap_or_default();
                Assigned {
                    split: i as Split,
                    topic: topic.clone(),
                    partition: *partition,
                    ledger: PartitionLedger::new(&start),
                    committed: None,
                }
            })
            .collect();
        let resumed_watermarks = assigned
            .iter()
            .filter_map(|a| Some((a.split, a.ledger.end().max_event_time?)))
            .collect();
        let (sender, messages) = sync_channel(8);
        let waker = Arc::new(OnceLock::new());
        let stop = Arc::new(AtomicBool::new(false));
        let mut committer = None;
        let discovers = settings.discovery_interval.is_some() && !settings.until_end;
        if assigned.is_empty() && !discovers {
            let _ = sender.send(FromConsumer::End);
        } else {
            match Committer::start(settings, worker) {
                Ok(started) => committer = Some(started),
                Err(error) => health.unhealthy(format!("cannot start committing offsets: {error}")),
            }
            let assignment = Assignment {
                partitions: assigned.iter().map(|a| (a.topic.clone(), a.partition)).collect(),
                starts: assigned.iter().map(|a| a.ledger.end().offset).collect(),
                known: all.iter().cloned().collect(),
                worker: (worker, peers),
            };
            let (settings, stop) = (settings.clone(), Arc::clone(&stop));
            let to_reader = ToReader {
                sender,
                waker: Arc::clone(&waker),
            };
            let name = format!("pulse-kafka-{}-{worker}", settings.component);
            let spawned = std::thread::Builder::new().name(name).spawn(move || {
                if let Err(error) = consume(&settings, assignment, &to_reader, &stop, &health) {
                    health.unhealthy(error.to_string());
                    let _ = to_reader.send(FromConsumer::Failed(error.to_string()));
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
            waker,
            stop,
            committer,
            needs,
            last_commit: Instant::now(),
            commit_interval: settings.commit_interval,
            ended,
            resumed_watermarks,
            next_split: all.len() as Split,
        }
    }

    /// Starts reading partitions the consumer found while running, from their
    /// first offset, each a new split.
    fn add(&mut self, found: Vec<TopicPartition>, batch: &mut ReadBatch) {
        for (topic, partition) in found {
            let split = self.next_split;
            self.next_split += 1;
            self.assigned.push(Assigned {
                split,
                topic,
                partition,
                ledger: PartitionLedger::new(&ResumePoint::default()),
                committed: None,
            });
            batch.add_split(split);
        }
    }

    /// Asks the consumer thread to commit every partition whose commit point
    /// moved, if the sinks report their delivered frontier.
    fn request_commit(&mut self) {
        let Some(delivered) = self.needs.delivered.frontier() else {
            return;
        };
        let settled = self
            .needs
            .sessions
            .as_ref()
            .map_or(EventTime::MAX, |s| s.settled(delivered));
        let mut points = BTreeMap::new();
        for assigned in &mut self.assigned {
            let point = assigned.ledger.committable(delivered, settled);
            let moved = assigned.committed.is_none_or(|last| last.offset != point.offset);
            if moved {
                assigned.committed = Some(point);
                points.insert((assigned.topic.clone(), assigned.partition), point);
            }
        }
        if let Some(committer) = self.committer.as_ref().filter(|_| !points.is_empty()) {
            committer.request(points);
        }
    }

    /// Records where every partition ended, for the commit after the run.
    fn record_end(&self) {
        let mut ended = self.ended.lock().unwrap_or_else(|p| p.into_inner());
        for assigned in &self.assigned {
            ended.insert((assigned.topic.clone(), assigned.partition), assigned.ledger.end());
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
        self.assigned.iter().map(|a| a.split).collect()
    }

    fn resumed_watermarks(&self) -> Vec<(Split, EventTime)> {
        self.resumed_watermarks.clone()
    }

    fn wake_with(&mut self, waker: SyncActivator) {
        let _ = self.waker.set(waker);
    }

    fn read(&mut self, batch: &mut ReadBatch) -> ReadStatus {
        if self.last_commit.elapsed() >= self.commit_interval {
            self.last_commit = Instant::now();
            self.request_commit();
        }
        let progress = batch.progress();
        match self.messages.try_recv() {
            Ok(FromConsumer::Messages(decoded)) => {
                for mut message in decoded {
                    let assigned = &mut self.assigned[message.partition];
                    // An event time out of range is refused before the ledger
                    // sees it: its offset commits like a dead letter's.
                    if let Ok(event) = &message.event
                        && let Some(reason) = batch.admit(event.ts)
                    {
                        let raw = serde_json::to_string(event).expect("events serialise to JSON");
                        message.event = Err(Undecodable { reason, raw });
                    }
                    let ts = message.event.as_ref().ok().map(|event| event.ts);
                    assigned.ledger.record(message.offset, ts, self.needs.of(ts, progress));
                    match message.event {
                        Ok(event) => batch.push(assigned.split, event),
                        Err(undecodable) => batch.dead_letters.push(DeadLetter {
                            component: self.component.clone(),
                            reason: undecodable.reason,
                            position: Position::Kafka {
                                topic: assigned.topic.clone(),
                                partition: assigned.partition,
                                offset: message.offset,
                            },
                            raw: undecodable.raw,
                        }),
                    }
                }
                ReadStatus::More
            }
            Ok(FromConsumer::Added(found)) => {
                self.add(found, batch);
                ReadStatus::More
            }
            Ok(FromConsumer::End) | Err(TryRecvError::Disconnected) => {
                self.record_end();
                ReadStatus::Finished
            }
            Ok(FromConsumer::Failed(error)) => ReadStatus::Failed(format!("the Kafka consumer failed: {error}")),
            // The consumer thread wakes the operator when it sends; until then
            // only commits and idle partitions need a look now and then.
            Err(TryRecvError::Empty) => ReadStatus::Idle(Duration::from_millis(20)),
        }
    }
}
