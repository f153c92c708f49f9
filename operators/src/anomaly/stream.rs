//! [`AnomalyExt::detect_anomalies`]: one [`SeriesDetector`] per key inside
//! the dataflow.
//!
//! Points are exchanged by key hash, so each key lives on one worker, and held
//! until the frontier passes their time; each key's points are then scored in
//! event-time order (see [`HeldPoints`]). The score of a point uses only the
//! points before it and itself, and the output is the same on every replay
//! and for every number of workers.
//!
//! **Training off the hot path.** Each operator instance has a training
//! thread. When a key's forest is due for training (by event time, see
//! [`IsolationForestConfig::retrain_every_ms`](super::IsolationForestConfig)),
//! its snapshot goes to that thread and the key's later points wait in a
//! backlog (with their capabilities) until the model comes back; the worker
//! goes on with every other key meanwhile. The model is swapped in (one `Arc`
//! assignment) before the point that made training due is scored, exactly as
//! if it had been trained in line: the scores do not depend on how long
//! training took.
//!
//! **Persistence.** With a model directory, each new version is written there
//! ([`ModelStore`], by the training thread) and a key seen for the first time
//! reloads its latest version (the key waits for that read like for training).
//!
//! **Eviction.** A key without points for `idle_timeout_ms` of event time is
//! dropped (its persisted model stays on disk). A key's state is bounded: see
//! the module documentation of [`anomaly`](super) for the bytes per key.
//!
//! Non-finite values never reach a detector: they leave on the second stream
//! as [`RefusedPoint`]s with the reason.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc;

use metrics::{Counter, Gauge};
use pulse_core::{EventTime, Shutdown};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::Stream;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::core::OkErr;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::{Capability, InputCapability};
use timely::scheduling::SyncActivator;

use super::{AnomalyConfig, AnomalyError, AnomalyScore, ModelStore, ModelVersion, SeriesDetector, TrainingJob};
use crate::series::{HeldPoints, RefusedPoint, SeriesPoint};
use crate::window::KeyValues;

/// What an anomaly operator runs with.
#[derive(Clone, Debug, PartialEq)]
pub struct AnomalyStreamConfig {
    /// The detector of every key.
    pub detector: AnomalyConfig,
    /// Where model versions are written and reloaded from (none: not persisted).
    pub model_dir: Option<PathBuf>,
    /// A key without points for this long (event time, ms) is dropped; 0 keeps every key.
    pub idle_timeout_ms: u64,
}

/// A point with the verdict on it.
#[derive(Clone, Debug, PartialEq)]
pub struct ScoredPoint {
    /// The point scored.
    pub point: SeriesPoint,
    /// How anomalous it is, and why.
    pub verdict: AnomalyScore,
}

/// Anomaly detection over a stream of series points.
pub trait AnomalyExt<'scope> {
    /// Scores every point against its key's history; returns the scored
    /// points (at the time each point arrived at) and the refused ones
    /// (non-finite values, with the reason).
    ///
    /// # Examples
    /// ```
    /// use pulse_core::Shutdown;
    /// use pulse_operators::anomaly::{AnomalyConfig, AnomalyExt, AnomalyStreamConfig};
    /// use pulse_operators::series::SeriesPoint;
    /// use timely::dataflow::operators::capture::{Capture, Event};
    /// use timely::dataflow::operators::ToStream;
    ///
    /// let points: Vec<SeriesPoint> = (0..400u64)
    ///     .map(|i| SeriesPoint {
    ///         key: vec![Some("cpu".into())].into_boxed_slice(),
    ///         ts: i * 1000,
    ///         value: if i == 300 { f64::NAN } else if i == 350 { 90.0 } else { 10.0 + (i % 7) as f64 },
    ///     })
    ///     .collect();
    /// let config = AnomalyStreamConfig { detector: AnomalyConfig::default(), model_dir: None, idle_timeout_ms: 0 };
    /// let (scored, refused) = timely::example(move |scope| {
    ///     let (scored, refused) = points.to_stream(scope).detect_anomalies("cpu", &config, &Shutdown::new());
    ///     (scored.capture(), refused.capture())
    /// });
    /// let scored: Vec<_> = scored.try_iter().flat_map(|e| match e { Event::Messages(_, d) => d, _ => Vec::new() }).collect();
    /// assert_eq!(scored.len(), 399);
    /// assert!(scored[0].verdict.warming_up && scored[0].verdict.score == 0.0);
    /// let spike = scored.iter().find(|s| s.point.ts == 350_000).unwrap();
    /// assert!(spike.verdict.is_anomaly, "{spike:?}");
    /// let refused: Vec<_> = refused.try_iter().flat_map(|e| match e { Event::Messages(_, d) => d, _ => Vec::new() }).collect();
    /// assert!(refused[0].reason.contains("not a finite number"));
    /// ```
    fn detect_anomalies(
        self,
        name: &str,
        config: &AnomalyStreamConfig,
        shutdown: &Shutdown,
    ) -> (
        Stream<'scope, EventTime, Vec<ScoredPoint>>,
        Stream<'scope, EventTime, Vec<RefusedPoint>>,
    );
}

impl<'scope> AnomalyExt<'scope> for Stream<'scope, EventTime, Vec<SeriesPoint>> {
    fn detect_anomalies(
        self,
        name: &str,
        config: &AnomalyStreamConfig,
        shutdown: &Shutdown,
    ) -> (
        Stream<'scope, EventTime, Vec<ScoredPoint>>,
        Stream<'scope, EventTime, Vec<RefusedPoint>>,
    ) {
        let labels = [("component", name.to_owned())];
        let refusals = metrics::counter!("pulse_dead_letters_total", &labels);
        let (points, refused) = self.ok_err::<Vec<SeriesPoint>, _, Vec<RefusedPoint>, _, _>(move |point| {
            if point.value.is_finite() {
                Ok(point)
            } else {
                refusals.increment(1);
                let error = AnomalyError::NonFinite {
                    ts_ms: point.ts as i64,
                    value: point.value,
                };
                Err(RefusedPoint {
                    reason: error.to_string(),
                    point,
                })
            }
        });
        let meters = Meters {
            received: metrics::counter!("pulse_component_received_events_total", &labels),
            sent: metrics::counter!("pulse_component_sent_events_total", &labels),
            anomalies: metrics::counter!("pulse_anomaly_anomalies_total", &labels),
            trainings: metrics::counter!("pulse_anomaly_trainings_total", &labels),
            keys: metrics::gauge!("pulse_anomaly_keys", &labels),
        };
        let scope = points.scope();
        let (name, config, shutdown) = (name.to_owned(), config.clone(), shutdown.clone());
        let scored = points.unary_frontier::<CapacityContainerBuilder<Vec<ScoredPoint>>, _, _, _>(
            Exchange::new(|point: &SeriesPoint| point.route()),
            &name.clone(),
            move |_, info| {
                let activator = scope.worker().sync_activator_for(info.address.to_vec());
                let trainer = Trainer::start(&name, config.model_dir.clone(), activator);
                let mut bank = DetectorBank::new(config, trainer, meters);
                let mut held = HeldPoints::default();
                let mut capabilities: BTreeMap<EventTime, Capability<EventTime>> = BTreeMap::new();
                move |(input, frontier), output| {
                    input.for_each_stamp(|capability: InputCapability<EventTime>, batches| {
                        // Messages sent under no capability claim no time: there are none here.
                        let Some(&time) = capability.least() else { return };
                        capabilities
                            .entry(time)
                            .or_insert_with(|| capability.delayed(&time, 0));
                        for batch in batches {
                            bank.meters.received.increment(batch.len() as u64);
                            held.hold(time, batch);
                        }
                    });
                    let mut scored = Vec::new();
                    bank.take_replies(&mut scored);
                    let close_to = match frontier.frontier().first() {
                        // Once stopping, the frontier no longer means "complete":
                        // what is held is incomplete and is dropped, as windows are.
                        Some(_) if shutdown.is_triggered() => {
                            let dropped = held.discard() + bank.discard_backlogs();
                            if dropped > 0 {
                                tracing::debug!(component = %name, points = dropped, "dropped unscored points at shutdown");
                            }
                            EventTime::MAX
                        }
                        Some(time) => *time,
                        None => EventTime::MAX,
                    };
                    for (time, points) in held.release(close_to) {
                        for point in points {
                            bank.take(time, point, &mut scored);
                        }
                    }
                    bank.record(&scored);
                    let mut scored = scored.into_iter().peekable();
                    while let Some((time, first)) = scored.next() {
                        let mut session = output.session(&capabilities[&time]);
                        session.give(first);
                        while let Some((_, next)) = scored.next_if(|(t, _)| *t == time) {
                            session.give(next);
                        }
                    }
                    if close_to != EventTime::MAX {
                        bank.evict_idle(close_to);
                    }
                    let keep_from = bank.earliest_backlog().map_or(close_to, |time| time.min(close_to));
                    capabilities.retain(|time, _| *time >= keep_from);
                    bank.meters.keys.set(bank.keys.len() as f64);
                }
            },
        );
        (scored, refused)
    }
}

/// The operator's counters and gauges.
struct Meters {
    received: Counter,
    sent: Counter,
    anomalies: Counter,
    trainings: Counter,
    keys: Gauge,
}

/// One key's detector, and the points waiting for its next model.
struct KeyState {
    detector: SeriesDetector,
    /// Newest event time scored (the training schedule follows it).
    newest_ts: i64,
    /// A model (training or reload) is on its way; points wait in `backlog`.
    waiting: bool,
    backlog: VecDeque<(EventTime, SeriesPoint)>,
}

/// Every key's detector on one worker.
struct DetectorBank {
    config: AnomalyStreamConfig,
    keys: HashMap<KeyValues, KeyState>,
    trainer: Trainer,
    meters: Meters,
}

impl DetectorBank {
    fn new(config: AnomalyStreamConfig, trainer: Trainer, meters: Meters) -> Self {
        Self {
            config,
            keys: HashMap::new(),
            trainer,
            meters,
        }
    }

    /// Scores `point` (released at `time`), or queues it behind its key's pending model.
    fn take(&mut self, time: EventTime, point: SeriesPoint, scored: &mut Vec<(EventTime, ScoredPoint)>) {
        let state = match self.keys.get_mut(&point.key) {
            Some(state) => state,
            None => {
                let mut detector = SeriesDetector::new(point.series_name(), self.config.detector.clone());
                detector.train_externally();
                let mut state = KeyState {
                    detector,
                    newest_ts: i64::MIN,
                    waiting: false,
                    backlog: VecDeque::new(),
                };
                if self.config.model_dir.is_some() {
                    state.waiting = true;
                    self.trainer.reload(point.key.clone(), point.series_name());
                }
                self.keys.entry(point.key.clone()).or_insert(state)
            }
        };
        if state.waiting {
            state.backlog.push_back((time, point));
            return;
        }
        score(state, time, point, &mut self.trainer, &self.config, scored);
    }

    /// Installs the models that came back and scores the points that waited for them.
    fn take_replies(&mut self, scored: &mut Vec<(EventTime, ScoredPoint)>) {
        while let Some(reply) = self.trainer.reply() {
            let Some(state) = self.keys.get_mut(&reply.key) else {
                continue;
            };
            if let Some(model) = reply.model {
                if reply.trained {
                    self.meters.trainings.increment(1);
                }
                state.detector.install(Arc::new(model));
            }
            state.waiting = false;
            while !state.waiting
                && let Some((time, point)) = state.backlog.pop_front()
            {
                score(state, time, point, &mut self.trainer, &self.config, scored);
            }
        }
    }

    fn record(&self, scored: &[(EventTime, ScoredPoint)]) {
        self.meters.sent.increment(scored.len() as u64);
        let anomalies = scored.iter().filter(|(_, s)| s.verdict.is_anomaly).count();
        self.meters.anomalies.increment(anomalies as u64);
    }

    /// Drops keys whose newest point is more than the idle timeout before `frontier`.
    fn evict_idle(&mut self, frontier: EventTime) {
        let idle = self.config.idle_timeout_ms;
        if idle == 0 {
            return;
        }
        let horizon = frontier.saturating_sub(idle) as i64;
        self.keys.retain(|_, state| state.waiting || state.newest_ts >= horizon);
    }

    /// The earliest time a waiting point was released at.
    fn earliest_backlog(&self) -> Option<EventTime> {
        self.keys
            .values()
            .filter_map(|state| state.backlog.front().map(|(time, _)| *time))
            .min()
    }

    /// Drops every waiting point (at shutdown); returns how many.
    fn discard_backlogs(&mut self) -> usize {
        self.keys
            .values_mut()
            .map(|state| std::mem::take(&mut state.backlog).len())
            .sum()
    }
}

/// Scores one point of a key that waits for nothing, sending it to training
/// first (and queueing it) when its forest is due for a new model.
fn score(
    state: &mut KeyState,
    time: EventTime,
    point: SeriesPoint,
    trainer: &mut Trainer,
    config: &AnomalyStreamConfig,
    scored: &mut Vec<(EventTime, ScoredPoint)>,
) {
    let idle = config.idle_timeout_ms as i64;
    if idle > 0 && state.newest_ts != i64::MIN && state.newest_ts.saturating_add(idle) < point.ts as i64 {
        // Idle for longer than the timeout: it starts afresh, as if it had been
        // dropped already (whether it was depends on how the frontier moved),
        // with the model it would have reloaded.
        let model = state.detector.model().cloned();
        state.detector = SeriesDetector::new(point.series_name(), config.detector.clone());
        state.detector.train_externally();
        if let Some(model) = model.filter(|_| config.model_dir.is_some()) {
            state.detector.install(model);
        }
        state.newest_ts = i64::MIN;
    }
    // As `SeriesDetector::update` does: the schedule follows the newest time seen.
    let ts = state.newest_ts.max(point.ts as i64);
    if config.detector.isolation_forest.enabled
        && let Some(job) = state.detector.training_due(ts)
    {
        match trainer.train(point.key.clone(), job) {
            Some(model) => state.detector.install(Arc::new(model)),
            None => {
                state.waiting = true;
                state.backlog.push_front((time, point));
                return;
            }
        }
    }
    state.newest_ts = ts;
    match state.detector.update(point.ts as i64, point.value) {
        Ok(verdict) => scored.push((time, ScoredPoint { point, verdict })),
        // Non-finite values were split off before the exchange.
        Err(error) => tracing::error!(%error, "a refused value reached a detector; it is skipped"),
    }
}

/// What goes to the training thread.
enum Job {
    Train { key: KeyValues, job: TrainingJob },
    Reload { key: KeyValues, series: String },
}

/// What comes back: the key's model (none when a reload found nothing).
struct Reply {
    key: KeyValues,
    model: Option<ModelVersion>,
    trained: bool,
}

/// The training thread of one operator instance, or in-line training when no
/// thread could be started.
struct Trainer {
    jobs: Option<mpsc::Sender<Job>>,
    replies: mpsc::Receiver<Reply>,
    /// Replies made in line (no thread).
    inline: VecDeque<Reply>,
    store: Option<ModelStore>,
}

impl Trainer {
    fn start(name: &str, model_dir: Option<PathBuf>, activator: SyncActivator) -> Self {
        let store = model_dir.map(ModelStore::new);
        let (jobs, job_queue) = mpsc::channel::<Job>();
        let (reply_to, replies) = mpsc::channel();
        let thread_store = store.clone();
        let component = name.to_owned();
        let started = std::thread::Builder::new()
            .name(format!("{name}-training"))
            .spawn(move || {
                for job in job_queue {
                    let reply = run_job(&component, thread_store.as_ref(), job);
                    if reply_to.send(reply).is_err() || activator.activate().is_err() {
                        break;
                    }
                }
            });
        let jobs = match started {
            Ok(_) => Some(jobs),
            Err(error) => {
                tracing::warn!(component = %name, %error, "no training thread; training in line");
                None
            }
        };
        Self {
            jobs,
            replies,
            inline: VecDeque::new(),
            store,
        }
    }

    /// Sends a job to the thread; without one, trains in line and returns the model.
    fn train(&mut self, key: KeyValues, job: TrainingJob) -> Option<ModelVersion> {
        let job = Job::Train { key, job };
        match &self.jobs {
            Some(jobs) => match jobs.send(job) {
                Ok(()) => None,
                Err(mpsc::SendError(job)) => run_job("anomaly", self.store.as_ref(), job).model,
            },
            None => run_job("anomaly", self.store.as_ref(), job).model,
        }
    }

    /// Asks for a key's latest persisted model; the answer comes as a reply.
    fn reload(&mut self, key: KeyValues, series: String) {
        let job = Job::Reload { key, series };
        let unsent = match &self.jobs {
            Some(jobs) => jobs.send(job).err().map(|mpsc::SendError(job)| job),
            None => Some(job),
        };
        if let Some(job) = unsent {
            let reply = run_job("anomaly", self.store.as_ref(), job);
            self.inline.push_back(reply);
        }
    }

    fn reply(&mut self) -> Option<Reply> {
        self.inline.pop_front().or_else(|| self.replies.try_recv().ok())
    }
}

/// Trains (and persists) or reloads; errors of the store are logged, never fatal.
fn run_job(component: &str, store: Option<&ModelStore>, job: Job) -> Reply {
    match job {
        Job::Train { key, job } => {
            let model = job.train();
            if let Some(store) = store
                && let Err(error) = store.save(&model)
            {
                tracing::warn!(component, %error, "could not persist a model version");
            }
            Reply {
                key,
                model: Some(model),
                trained: true,
            }
        }
        Job::Reload { key, series } => {
            let model = match store.map(|store| store.load_latest(&series)) {
                Some(Ok(model)) => model,
                Some(Err(error)) => {
                    tracing::warn!(component, %error, "could not reload a model; the key trains afresh");
                    None
                }
                None => None,
            };
            if let Some(model) = &model {
                tracing::debug!(component, series, version = model.version, "reloaded a model");
            }
            Reply {
                key,
                model,
                trained: false,
            }
        }
    }
}
