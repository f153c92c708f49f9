//! The `k8s` profile as a live source: labelled Kubernetes scenarios played
//! in (scaled) real time.
//!
//! [`K8sLiveReader`] wraps the scenario generator of [`super::k8s`]: it
//! generates one scenario (an *epoch*: every tenant's topology, metrics,
//! noise and injected faults) and emits its events in delivery order, each
//! once the wall clock, scaled by `speed`, reaches its event time. An
//! unbounded source then plays the next epoch (seed + 1, starting a minute
//! after the last event of the one before), after deleting every topology
//! edge the finished epoch left standing, so the resource graph downstream
//! stays the size of one cluster per tenant. With `events` set the source ends
//! after that many events in all.
//!
//! Everything is deterministic for a seed and a start. Tenants are dealt over
//! the workers by a hash of their name, so the events of one tenant come from
//! one worker in their delivery order, and the union over the workers does
//! not depend on their number. Each worker generates epochs on a thread of
//! its own, one epoch ahead, so generation never stalls the timely worker.

use std::collections::{BTreeSet, VecDeque};
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, sync_channel};
use std::time::{Duration, Instant};

use pulse_core::dead_letter::Position;
use pulse_core::{DeadLetter, Event, EventBody, EventTime, TopologyChange, TopologyOp};

use super::k8s::{self, K8sConfig};
use crate::source::{EventReader, ReadBatch, ReadStatus};

/// The largest batch one read produces.
const MAX_BATCH: usize = 8_192;

/// Event time between the last event of one epoch and the start of the next.
const EPOCH_GAP_MS: u64 = 60_000;

/// How far the scenario's delivery order strays from event time: up to 2 s
/// of collector jitter, 1 s more for duplicates, and the kubelet's skew
/// (which it applies before ordering), with a margin.
pub const MAX_DISORDER_MS: u64 = 5_000;

/// The fastest playback accepted: a day of event time in under a second.
pub const MAX_SPEED: f64 = 100_000.0;

/// What a live `k8s` generator plays.
#[derive(Clone, Debug, PartialEq)]
pub struct K8sLiveSettings {
    /// The scenario of each epoch (its `start` is replaced by [`K8sLiveSettings::start`]).
    pub scenario: K8sConfig,
    /// Event time played per unit of wall-clock time (1: real time; 60: an hour a minute).
    pub speed: f64,
    /// Stop after this many events in all; `None` plays epoch after epoch until stopped.
    pub events: Option<u64>,
    /// Event time of the first epoch's start, epoch ms.
    pub start: EventTime,
}

impl K8sLiveSettings {
    /// Checks the settings; the message names the bad one and a fix.
    ///
    /// # Examples
    /// ```
    /// use pulse_connectors::generator::k8s::K8sConfig;
    /// use pulse_connectors::generator::k8s_live::K8sLiveSettings;
    ///
    /// let mut settings = K8sLiveSettings { scenario: K8sConfig::default(), speed: 60.0, events: None, start: 0 };
    /// assert!(settings.validate().is_ok());
    /// settings.speed = f64::NAN;
    /// assert!(settings.validate().unwrap_err().contains("speed"));
    /// ```
    pub fn validate(&self) -> Result<(), String> {
        check_scenario(&self.scenario)?;
        if !(self.speed.is_finite() && self.speed > 0.0 && self.speed <= MAX_SPEED) {
            return Err(format!(
                "`speed` is {}; set a number above 0 and at most {MAX_SPEED}, e.g. speed = 60 (an hour of event time a minute)",
                self.speed
            ));
        }
        Ok(())
    }
}

/// Checks a scenario's settings for a live source.
fn check_scenario(scenario: &K8sConfig) -> Result<(), String> {
    if !(1..=1_000).contains(&scenario.tenants) {
        return Err(format!("k8s: `tenants` is {}; set it from 1 to 1000", scenario.tenants));
    }
    if !(1..=10_000).contains(&scenario.faults_per_tenant) {
        return Err(format!(
            "k8s: `faults_per_tenant` is {}; set it from 1 to 10000 (each fault adds ~9 minutes of event time)",
            scenario.faults_per_tenant
        ));
    }
    if !(1..=3_600).contains(&scenario.metric_interval_s) {
        return Err(format!(
            "k8s: `metric_interval_s` is {}; set it from 1 to 3600, e.g. 15",
            scenario.metric_interval_s
        ));
    }
    if scenario.start != K8sConfig::default().start {
        return Err(
            "k8s: `start` is not read by a live source; set the source's own `start` (default: now)".to_owned(),
        );
    }
    Ok(())
}

/// One epoch's events for one worker, in delivery order.
struct Epoch {
    /// This worker's events.
    events: VecDeque<Event>,
    /// The global index (over all workers) of each of them.
    indexes: VecDeque<u64>,
    /// Where the next epoch starts: no later event of this worker is older.
    next_start: EventTime,
}

/// Which worker emits a tenant's events: FNV-1a of its name, modulo the workers.
fn worker_of(tenant: &str, peers: usize) -> usize {
    let hash = tenant.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    (hash % peers.max(1) as u64) as usize
}

/// The events of epoch `epoch` starting at `start`, with the deletes of the
/// edges left standing at its end; and the start of the next epoch.
pub fn epoch_events(scenario: &K8sConfig, epoch: u64, start: EventTime) -> (Vec<Event>, EventTime) {
    let config = K8sConfig {
        seed: scenario.seed.wrapping_add(epoch),
        start,
        ..scenario.clone()
    };
    let (mut events, _answers) = k8s::generate(&config);
    let mut standing: BTreeSet<(String, pulse_core::ResourceRef, String, pulse_core::ResourceRef)> = BTreeSet::new();
    let mut last = start;
    for event in &events {
        last = last.max(event.ts);
        if let EventBody::Topology(change) = &event.body {
            let edge = (
                event.tenant.to_string(),
                change.from.clone(),
                change.relation.clone(),
                change.to.clone(),
            );
            match change.op {
                TopologyOp::Upsert => standing.insert(edge),
                TopologyOp::Delete => standing.remove(&edge),
            };
        }
    }
    let teardown = last + 1_000;
    events.extend(standing.into_iter().map(|(tenant, from, relation, to)| Event {
        ts: teardown,
        tenant: tenant.as_str().into(),
        source: "state-watcher".into(),
        body: EventBody::Topology(Box::new(TopologyChange {
            from,
            to,
            relation,
            op: TopologyOp::Delete,
        })),
    }));
    (events, teardown + EPOCH_GAP_MS)
}

/// Generates epochs for one worker, one ahead of the reader, until the reader goes away.
fn spawn_epochs(settings: &K8sLiveSettings, worker: usize, peers: usize) -> Receiver<Epoch> {
    let (sender, receiver): (SyncSender<Epoch>, Receiver<Epoch>) = sync_channel(1);
    let scenario = settings.scenario.clone();
    let (mut start, limit) = (settings.start, settings.events.unwrap_or(u64::MAX));
    let spawned = std::thread::Builder::new()
        .name(format!("k8s-generator-{worker}"))
        .spawn(move || {
            let mut first_index = 0u64;
            for epoch in 0.. {
                if first_index >= limit {
                    return;
                }
                let (events, next_start) = epoch_events(&scenario, epoch, start);
                let total = events.len() as u64;
                let mut mine = Epoch {
                    events: VecDeque::new(),
                    indexes: VecDeque::new(),
                    next_start,
                };
                for (offset, event) in events.into_iter().enumerate() {
                    let index = first_index + offset as u64;
                    if index < limit && worker_of(&event.tenant, peers) == worker {
                        mine.indexes.push_back(index);
                        mine.events.push_back(event);
                    }
                }
                first_index = first_index.saturating_add(total);
                start = next_start;
                if sender.send(mine).is_err() {
                    return;
                }
            }
        });
    if let Err(error) = spawned {
        tracing::error!(%error, "cannot start the k8s generator thread; the source produces nothing");
    }
    receiver
}

/// One worker's share of a live `k8s` generator.
pub struct K8sLiveReader {
    settings: K8sLiveSettings,
    epochs: Receiver<Epoch>,
    current: Option<Epoch>,
    /// The generator thread has stopped: every epoch has been handed over.
    exhausted: bool,
    started: Option<Instant>,
    /// The source's name, for dead letters.
    component: String,
}

impl K8sLiveReader {
    /// Worker `worker` of `peers`'s share of the generator (settings already validated).
    ///
    /// # Examples
    /// ```
    /// use pulse_connectors::generator::k8s::K8sConfig;
    /// use pulse_connectors::generator::k8s_live::{K8sLiveReader, K8sLiveSettings};
    /// use pulse_connectors::source::{EventReader, ReadBatch, ReadStatus};
    ///
    /// let scenario = K8sConfig { tenants: 1, faults_per_tenant: 1, ..K8sConfig::default() };
    /// let settings = K8sLiveSettings { scenario, speed: 1.0, events: Some(500), start: 1_700_000_000_000 };
    /// let mut reader = K8sLiveReader::new(settings, 0, 1);
    /// let mut batch = ReadBatch::default();
    /// // At real time, only the initial topology is due at once.
    /// while batch.events().count() == 0 {
    ///     assert_ne!(reader.read(&mut batch), ReadStatus::Finished);
    /// }
    /// assert!(batch.events().all(|event| event.ts == 1_700_000_000_000));
    /// ```
    pub fn new(settings: K8sLiveSettings, worker: usize, peers: usize) -> Self {
        let epochs = spawn_epochs(&settings, worker, peers);
        Self {
            settings,
            epochs,
            current: None,
            exhausted: false,
            started: None,
            component: "generator".to_owned(),
        }
    }

    /// Names the source in its dead letters (default `generator`).
    pub fn named(mut self, component: &str) -> Self {
        self.component = component.to_owned();
        self
    }

    /// The event time due by now: the start plus the scaled time since the first read.
    fn due_until(&mut self) -> EventTime {
        let started = *self.started.get_or_insert_with(Instant::now);
        self.played_until(started)
    }

    fn played_until(&self, started: Instant) -> EventTime {
        let played = started.elapsed().as_secs_f64() * 1_000.0 * self.settings.speed;
        self.settings
            .start
            .saturating_add(played.min(u64::MAX as f64 / 2.0) as u64)
    }
}

impl EventReader for K8sLiveReader {
    /// A worker whose tenants are silent (or that has none) still moves its
    /// watermark with the scaled clock: nothing it has yet to emit is older
    /// than its next event, or than the clock, by more than the scenario's
    /// disorder ([`MAX_DISORDER_MS`]).
    fn idle_watermark(&self, _now: Instant, _wall_clock_ms: EventTime) -> Option<EventTime> {
        let played = self.played_until(self.started?);
        let epoch = self.current.as_ref()?;
        let next = epoch
            .events
            .front()
            .map_or(epoch.next_start, |event| event.ts)
            .min(played);
        Some(next.saturating_sub(MAX_DISORDER_MS))
    }

    fn read(&mut self, batch: &mut ReadBatch) -> ReadStatus {
        let due_until = self.due_until();
        let mut produced = 0;
        while produced < MAX_BATCH {
            let Some(epoch) = self.current.as_mut().filter(|epoch| !epoch.events.is_empty()) else {
                if self.exhausted {
                    return ReadStatus::Finished;
                }
                match self.epochs.try_recv() {
                    Ok(epoch) => self.current = Some(epoch),
                    Err(TryRecvError::Empty) => return ReadStatus::Idle(Duration::from_millis(5)),
                    Err(TryRecvError::Disconnected) => {
                        self.exhausted = true;
                        self.current = None;
                    }
                }
                continue;
            };
            if epoch.events.front().is_some_and(|event| event.ts > due_until) {
                return ReadStatus::Idle(Duration::from_millis(5));
            }
            let (Some(event), Some(index)) = (epoch.events.pop_front(), epoch.indexes.pop_front()) else {
                continue;
            };
            match batch.admit(event.ts) {
                None => batch.push(0, event),
                // Only a `start` far from the wall clock gets here.
                Some(reason) => batch.dead_letters.push(DeadLetter {
                    component: self.component.clone(),
                    reason,
                    position: Position::Generated { sequence: index },
                    raw: serde_json::to_string(&event).expect("events serialise to JSON"),
                }),
            }
            produced += 1;
        }
        ReadStatus::More
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(events: Option<u64>, speed: f64) -> K8sLiveSettings {
        K8sLiveSettings {
            scenario: K8sConfig {
                tenants: 3,
                faults_per_tenant: 1,
                ..K8sConfig::default()
            },
            speed,
            events,
            start: 1_700_000_000_000,
        }
    }

    fn drain(mut reader: K8sLiveReader) -> Vec<Event> {
        let mut batch = ReadBatch::default();
        loop {
            match reader.read(&mut batch) {
                ReadStatus::Finished => return batch.take_events(),
                ReadStatus::Idle(pause) => std::thread::sleep(pause),
                _ => {}
            }
        }
    }

    #[test]
    fn workers_together_play_the_same_events_as_one_and_stop_at_the_limit() {
        let limit = 40_000;
        let fast = MAX_SPEED;
        let one = drain(K8sLiveReader::new(settings(Some(limit), fast), 0, 1));
        assert_eq!(one.len() as u64, limit);
        let mut two: Vec<Event> = (0..2)
            .flat_map(|w| drain(K8sLiveReader::new(settings(Some(limit), fast), w, 2)))
            .collect();
        let key = |e: &Event| format!("{}{}{:?}", e.ts, e.tenant, e.body);
        let mut one_sorted = one.clone();
        one_sorted.sort_by_key(key);
        two.sort_by_key(key);
        assert_eq!(two, one_sorted);
        // Every event kind of the scenario is there, of every tenant.
        let tenants: BTreeSet<&str> = one.iter().map(|e| &*e.tenant).collect();
        assert_eq!(tenants.len(), 3);
        assert!(one.iter().any(|e| matches!(e.body, EventBody::K8sEvent(_))));
        assert!(one.iter().any(|e| matches!(e.body, EventBody::Log(_))));
        assert!(one.iter().any(|e| matches!(e.body, EventBody::Metric(_))));
    }

    #[test]
    fn an_epoch_ends_with_its_edges_deleted_and_the_next_starts_after_it() {
        let scenario = settings(None, 1.0).scenario;
        let (events, next) = epoch_events(&scenario, 0, 1_700_000_000_000);
        let mut standing = BTreeSet::new();
        for event in &events {
            if let EventBody::Topology(change) = &event.body {
                let edge = (
                    event.tenant.to_string(),
                    change.from.clone(),
                    change.relation.clone(),
                    change.to.clone(),
                );
                match change.op {
                    TopologyOp::Upsert => standing.insert(edge),
                    TopologyOp::Delete => standing.remove(&edge),
                };
            }
        }
        assert!(standing.is_empty(), "{} edges left standing", standing.len());
        assert!(events.iter().all(|event| event.ts < next));
        let (again, _) = epoch_events(&scenario, 0, 1_700_000_000_000);
        assert_eq!(events, again, "an epoch is deterministic");
        let (second, _) = epoch_events(&scenario, 1, next);
        assert!(second.iter().all(|event| event.ts >= next));
        assert_ne!(second.len(), 0);
    }

    #[test]
    fn playback_is_paced_by_the_speed() {
        let mut reader = K8sLiveReader::new(settings(None, 1.0), 0, 1);
        let mut batch = ReadBatch::default();
        let deadline = Instant::now() + Duration::from_secs(30);
        while batch.events().count() == 0 && Instant::now() < deadline {
            let _ = reader.read(&mut batch);
        }
        for _ in 0..10 {
            let _ = reader.read(&mut batch);
        }
        let start = 1_700_000_000_000;
        let latest = batch.events().map(|e| e.ts).max().unwrap();
        assert!(
            latest < start + 60_000,
            "played far ahead of real time: {}",
            latest - start
        );
        assert!(batch.events().count() > 100, "the initial topology is due at once");
    }

    #[test]
    fn a_worker_without_tenants_still_moves_its_watermark() {
        // One tenant, `acme`, is worker 1's of two: worker 0 has no events at all.
        let mut one_tenant = settings(None, 1_000.0);
        one_tenant.scenario.tenants = 1;
        let mut idle = K8sLiveReader::new(one_tenant, 0, 2);
        let mut batch = ReadBatch::default();
        assert_eq!(
            idle.idle_watermark(Instant::now(), 0),
            None,
            "nothing vouched before the first read"
        );
        let deadline = Instant::now() + Duration::from_secs(60);
        while idle.current.is_none() && Instant::now() < deadline {
            let _ = idle.read(&mut batch);
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(50));
        let _ = idle.read(&mut batch);
        assert_eq!(batch.events().count(), 0);
        let start = 1_700_000_000_000;
        let vouched = idle
            .idle_watermark(Instant::now(), 0)
            .expect("a watermark without events");
        assert!(
            vouched > start,
            "the scaled clock moves it: {}",
            vouched as i64 - start as i64
        );
    }

    #[test]
    fn validate_names_the_bad_setting() {
        assert_eq!(settings(None, 60.0).validate(), Ok(()));
        let bad = |change: fn(&mut K8sLiveSettings), word: &str| {
            let mut s = settings(None, 60.0);
            change(&mut s);
            let message = s.validate().unwrap_err();
            assert!(message.contains(word), "{message}");
        };
        bad(|s| s.speed = 0.0, "speed");
        bad(|s| s.speed = f64::INFINITY, "speed");
        bad(|s| s.scenario.tenants = 0, "tenants");
        bad(|s| s.scenario.faults_per_tenant = 0, "faults_per_tenant");
        bad(|s| s.scenario.metric_interval_s = 0, "metric_interval_s");
        bad(|s| s.scenario.start = 5, "start");
    }
}
