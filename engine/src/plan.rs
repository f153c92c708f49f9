//! The planner: turns a checked pipeline into a timely dataflow on each worker.
//!
//! Everything that can fail for reasons outside the dataflow (files that do
//! not open, outputs that cannot be created) is done once, up front, by
//! [`Resources::prepare`], so that a worker never fails halfway through
//! building its part of the dataflow while the others wait for it.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::PathBuf;
use std::sync::Arc;

use pulse_connectors::file::JsonlFileReader;
use pulse_connectors::generator::k8s_live::{K8sLiveReader, K8sLiveSettings};
use pulse_connectors::generator::{GeneratorReader, GeneratorSettings};
use pulse_connectors::http::HttpReader;
use pulse_connectors::kafka::{
    self, DeliveryNeeds, GroupOffsets, KafkaConnectorError, KafkaReader, KafkaSourceSettings, PartitionOffsets,
    ResumePoint, TopicPartition,
};
use pulse_connectors::{LeadLimit, SourceFailures, SourceSettings, WorkerWatermarks, event_source};
use pulse_core::ingest::IngestQueue;
use pulse_core::time::coarsen;
use pulse_core::{DeadLetter, Delivered, Event, EventTime, HealthBoard, PeerSettled, Row, SessionProgress, Shutdown};
use pulse_live::{AnalyticsKind, AnalyticsViews, LiveSource, ViewShape};
use pulse_operators::window::{WindowSpec, output_time};
use pulse_sinks::{LiveOutputs, SinkRecord, publish_live};
use timely::dataflow::operators::vec::Map;
use timely::dataflow::operators::{Concatenate, Probe};
use timely::dataflow::{ProbeHandle, Scope, Stream};

use crate::config::validate::{self, StreamType};
use crate::config::{GeneratorProfile, OperatorConfig, PipelineConfig, SinkConfig, SourceConfig};
use crate::live_analytics::publish_analytics;
use crate::live_incidents::{IncidentOutputs, publish_incidents};
use crate::operators::{BuildContext, InputStream};
use crate::projection::source_projection;
use crate::sink_plan::{SinkPlacement, SinkPlans};

/// Why a pipeline cannot start.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// A file source's file does not open.
    #[error("source `{source_name}` cannot open {path}: {error}")]
    SourceFile {
        /// The source.
        source_name: String,
        /// Its file.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// A sink's destination cannot be created.
    #[error("sink `{sink}` cannot open its output: {error}")]
    Sink {
        /// The sink.
        sink: String,
        /// Why.
        error: std::io::Error,
    },
    /// The sinks' async runtime cannot start.
    #[error("cannot start the sinks' runtime: {0}")]
    Runtime(std::io::Error),
    /// A Kafka source cannot find its partitions.
    #[error("source `{source_name}`: {error}")]
    Kafka {
        /// The source.
        source_name: String,
        /// Why.
        error: KafkaConnectorError,
    },
}

/// A Kafka source resolved before the run: its partitions, where they resume,
/// and where they ended.
pub struct KafkaPlan {
    /// What to read.
    pub settings: KafkaSourceSettings,
    /// Every (topic, partition), in the order they are dealt to workers.
    pub partitions: Vec<TopicPartition>,
    /// The group's committed resume points.
    pub resume: BTreeMap<TopicPartition, ResumePoint>,
    /// Where each partition ended, filled in by the workers when the input is exhausted.
    pub ended: PartitionOffsets,
    /// A bounded run's clients for committing `ended` after the run.
    pub final_commit: Option<GroupOffsets>,
}

impl KafkaPlan {
    /// Windows whose output time is before this were delivered by the run
    /// that made the commits this one resumes from (0: none).
    fn delivered_before(&self) -> EventTime {
        self.resume
            .values()
            .filter_map(|point| point.delivered)
            .max()
            .unwrap_or(0)
    }
}

/// What the dataflow needs from outside, prepared once for all workers.
pub struct Resources {
    config: Arc<PipelineConfig>,
    /// Every sink but `websocket` ones, running on the sink runtime.
    sinks: SinkPlans,
    shutdown: Shutdown,
    /// Wall-clock start, the event time of generators without a `start`.
    started_ms: EventTime,
    /// Kafka sources by name.
    kafka: BTreeMap<String, KafkaPlan>,
    /// How far the sinks downstream of each Kafka source have delivered, by source.
    delivered: BTreeMap<String, Delivered>,
    /// Whether the sources reach their servers.
    health: HealthBoard,
    /// Where websocket sinks publish, when the pipeline has a gateway.
    live: Option<LivePlan>,
    /// How far session windows have settled, when the pipeline has any.
    session_progress: Option<SessionProgress>,
    /// Each Kafka source's view of `session_progress`, which in a cluster
    /// also holds what the other processes say they have settled.
    kafka_sessions: BTreeMap<String, SessionProgress>,
    /// Each source's workers' watermarks, shared between the workers.
    worker_watermarks: BTreeMap<String, WorkerWatermarks>,
    /// Sources that could not read on (the run then fails).
    source_failures: SourceFailures,
    /// The queue of each `http` source, which the gateway's ingest endpoint fills.
    ingest: BTreeMap<String, IngestQueue>,
    /// Where this process's sinks write (in a cluster: ordered ones in process 0).
    placement: SinkPlacement,
    /// In a cluster, how far (event-time ms) a source may lead what every
    /// process has taken in; `None`: no limit.
    max_lead_ms: Option<u64>,
}

/// The live outputs of a run: its gateway's hub and views, and the name rows
/// are published under.
#[derive(Clone)]
pub struct LivePlan {
    /// The pipeline's name (its file name without extension).
    pub pipeline: String,
    /// The hub and views the gateway serves.
    pub outputs: LiveOutputs,
    /// Where anomaly and forecast rows are kept for the gateway's APIs.
    pub analytics: AnalyticsViews,
    /// Where incidents and the resources they involve are kept for the gateway's APIs.
    pub incidents: IncidentOutputs,
}

impl Resources {
    /// Opens every sink and checks every source file; websocket sinks publish to `live`.
    pub fn prepare(config: Arc<PipelineConfig>, shutdown: Shutdown, live: Option<LivePlan>) -> Result<Self, PlanError> {
        Self::prepare_placed(config, shutdown, live, SinkPlacement::ONE_PROCESS)
    }

    /// [`Resources::prepare`] for one process of a cluster: ordered sinks and
    /// live views are written where `placement` says.
    pub fn prepare_placed(
        config: Arc<PipelineConfig>,
        shutdown: Shutdown,
        live: Option<LivePlan>,
        placement: SinkPlacement,
    ) -> Result<Self, PlanError> {
        let mut kafka = BTreeMap::new();
        let mut ingest = BTreeMap::new();
        for (name, source) in &config.sources {
            match source {
                SourceConfig::Http { queue_capacity, .. } => {
                    // The endpoint checks event times, so that clients hear of every refused event.
                    let mut bounds = source.timestamp_bounds();
                    let queue = IngestQueue::new(name, *queue_capacity, shutdown.clone(), move |ts| {
                        bounds.set_wall_clock(pulse_connectors::time_bounds::wall_clock_ms());
                        bounds.admit(ts)
                    });
                    ingest.insert(name.clone(), queue);
                }
                SourceConfig::File { path, .. } => {
                    File::open(path).map_err(|error| PlanError::SourceFile {
                        source_name: name.clone(),
                        path: path.clone(),
                        error,
                    })?;
                }
                SourceConfig::Kafka {
                    brokers,
                    topics,
                    topic_pattern,
                    group,
                    until,
                    resume_topic,
                    commit_interval,
                    discovery_interval,
                    ..
                } => {
                    let settings = KafkaSourceSettings {
                        component: name.clone(),
                        brokers: brokers.clone(),
                        topics: topics.clone(),
                        topic_pattern: topic_pattern.clone(),
                        group: group.clone(),
                        until_end: until.is_some(),
                        resume_topic: resume_topic.clone(),
                        commit_interval: commit_interval.to_std(),
                        discovery_interval: Some(discovery_interval.to_std()).filter(|d| !d.is_zero()),
                        projection: source_projection(&config, name),
                    };
                    let failed = |error| PlanError::Kafka {
                        source_name: name.clone(),
                        error,
                    };
                    let partitions = kafka::partitions(&settings).map_err(failed)?;
                    let group = GroupOffsets::connect(&settings).map_err(failed)?;
                    let resume = group.resume_points(&partitions).map_err(failed)?;
                    let plan = KafkaPlan {
                        // Only a bounded run commits after it ends; an unbounded one
                        // commits from its workers while it runs.
                        final_commit: settings.until_end.then_some(group),
                        settings,
                        partitions,
                        resume,
                        ended: PartitionOffsets::default(),
                    };
                    tracing::info!(
                        source = %name,
                        partitions = plan.partitions.len(),
                        resumed = plan.resume.len(),
                        delivered_before = plan.delivered_before(),
                        "kafka partitions"
                    );
                    for ((topic, partition), point) in &plan.resume {
                        tracing::debug!(source = %name, %topic, partition, resume = %point.encode(), "resuming");
                    }
                    kafka.insert(name.clone(), plan);
                }
                SourceConfig::Generator { .. } => {}
            }
        }
        let delivered: BTreeMap<String, Delivered> = kafka
            .keys()
            .map(|source| (source.clone(), Delivered::new(shutdown.clone())))
            .collect();
        let health = HealthBoard::new();
        // Every source and sink reports `pulse_component_up`: healthy unless it
        // says otherwise (a Kafka client that loses its broker). A Kafka sink
        // with several topics reports per `sink:topic`, and its own name follows
        // the worst of them.
        for name in config.sources.keys() {
            health.reporter(name);
        }
        for (name, sink) in &config.sinks {
            if sink.kafka_topics().len() <= 1 {
                health.reporter(name);
            }
        }
        let sinks = SinkPlans::open(&config, &health, &delivered, &shutdown, placement)?;
        let started_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as EventTime);
        let has_sessions = config
            .operators
            .values()
            .filter_map(|operator| operator.as_window())
            .any(|window| matches!(window.window, WindowSpec::Session { .. }));
        let session_progress = has_sessions.then(SessionProgress::new);
        let kafka_sessions = match &session_progress {
            Some(progress) => kafka
                .keys()
                .map(|source| (source.clone(), progress.for_source()))
                .collect(),
            None => BTreeMap::new(),
        };
        Ok(Self {
            source_failures: SourceFailures::new(),
            session_progress,
            kafka_sessions,
            worker_watermarks: config
                .sources
                .keys()
                .map(|name| (name.clone(), WorkerWatermarks::new()))
                .collect(),
            config,
            sinks,
            shutdown,
            started_ms,
            kafka,
            ingest,
            delivered,
            health,
            live,
            placement,
            max_lead_ms: None,
        })
    }

    /// Makes sources wait while they lead what the whole cluster has taken
    /// in past its exchanges by more than `max_lead` of event time (zero: no
    /// limit). For a process of a cluster, before the workers start.
    pub fn limit_lead(&mut self, max_lead: std::time::Duration) {
        self.max_lead_ms = u64::try_from(max_lead.as_millis()).ok().filter(|ms| *ms > 0);
    }

    /// How far the sinks have delivered, for each Kafka source in name order.
    pub fn kafka_delivered(&self) -> Vec<Delivered> {
        self.delivered.values().cloned().collect()
    }

    /// One more tracker for each Kafka source (name order), standing for the
    /// sinks of another process of the cluster: the source commits nothing
    /// they have not delivered. Registered before the workers start.
    pub fn register_remote_delivery(&self) -> Vec<pulse_core::DeliveryTracker> {
        self.delivered.values().map(Delivered::register_remote).collect()
    }

    /// How far session windows have settled, for each Kafka source in name
    /// order (`None` each without session windows): what this process tells
    /// the others of a cluster.
    pub fn kafka_sessions(&self) -> Vec<Option<SessionProgress>> {
        self.kafka
            .keys()
            .map(|source| self.kafka_sessions.get(source).cloned())
            .collect()
    }

    /// One more peer for each Kafka source (name order), standing for the
    /// session windows of another process of the cluster: the source commits
    /// no event whose sessions that process has not said are settled.
    /// `None` each without session windows. Registered before the workers start.
    pub fn register_remote_sessions(&self) -> Vec<Option<PeerSettled>> {
        self.kafka_sessions()
            .iter()
            .map(|view| view.as_ref().map(SessionProgress::register_peer))
            .collect()
    }

    /// The health of the components that report one.
    pub fn health(&self) -> &HealthBoard {
        &self.health
    }

    /// Why sources stopped reading before the end of their input, if any did.
    pub fn source_failures(&self) -> Vec<String> {
        self.source_failures.all()
    }

    /// The queue of the pipeline's `http` source (validation allows one), for
    /// the gateway's `POST /api/v1/events`.
    pub fn ingest_queue(&self) -> Option<&IngestQueue> {
        self.ingest.values().next()
    }

    /// The Kafka sources, resolved.
    pub fn kafka_sources(&self) -> impl Iterator<Item = &KafkaPlan> {
        self.kafka.values()
    }
}

/// A built stream, by what it carries.
#[derive(Clone)]
pub(crate) enum Built<'scope> {
    Events(Stream<'scope, EventTime, Vec<Event>>),
    Rows(Stream<'scope, EventTime, Vec<Row>>),
    DeadLetters(Stream<'scope, EventTime, Vec<DeadLetter>>),
}

impl<'scope> Built<'scope> {
    /// The stream as records for a sink.
    pub(crate) fn records(self) -> Stream<'scope, EventTime, Vec<SinkRecord>> {
        match self {
            Built::Events(s) => s.map(SinkRecord::Event),
            Built::Rows(s) => s.map(SinkRecord::Row),
            Built::DeadLetters(s) => s.map(SinkRecord::DeadLetter),
        }
    }
}

/// Builds this worker's part of the dataflow.
pub fn build<'scope>(scope: Scope<'scope, EventTime>, resources: &Resources) {
    let config = &resources.config;
    let granule_ms = config.engine.granule.as_millis();
    let (worker, peers) = (scope.index(), scope.peers());
    let mut streams: BTreeMap<String, Built<'scope>> = BTreeMap::new();
    // In a cluster, the frontier just past every exchange (`LeadLimit`): the
    // probes sit in line on the sources' and operators' outputs, so records
    // pass through them instead of being copied to them.
    let lead = resources
        .max_lead_ms
        .map(|max_lead_ms| LeadLimit::new(ProbeHandle::new(), max_lead_ms));
    let probed_events = |events: Stream<'scope, EventTime, Vec<Event>>| match &lead {
        Some(lead) => events.probe_with(lead.probe()),
        None => events,
    };
    let probed_rows = |rows: Stream<'scope, EventTime, Vec<Row>>| match &lead {
        Some(lead) => rows.probe_with(lead.probe()),
        None => rows,
    };

    for (name, source) in &config.sources {
        let late = format!("{name}.late");
        let late_unread = !config.sinks.values().any(|s| s.inputs().contains(&late))
            && !config.operators.values().any(|o| o.inputs().contains(&late));
        let settings = |max_out_of_orderness_ms, idle_timeout| SourceSettings {
            name: name.clone(),
            max_out_of_orderness_ms,
            idle_timeout,
            granule_ms,
            shutdown: resources.shutdown.clone(),
            workers: resources.worker_watermarks[name].clone(),
            timestamps: source.timestamp_bounds(),
            late_unread,
            failures: resources.source_failures.clone(),
            pressure: resources.sinks.pressure[name].clone(),
            lead: lead.clone(),
        };
        let outputs = match source {
            SourceConfig::Generator {
                profile: GeneratorProfile::K8s,
                events,
                start,
                max_out_of_orderness,
                k8s,
                speed,
                ..
            } => {
                let live = K8sLiveSettings {
                    scenario: k8s.clone(),
                    speed: *speed,
                    events: *events,
                    start: start.unwrap_or(resources.started_ms),
                };
                let reader = K8sLiveReader::new(live, worker, peers).named(name);
                event_source(scope, settings(max_out_of_orderness.as_millis(), None), reader)
            }
            SourceConfig::Generator {
                profile: GeneratorProfile::Sensors,
                rate,
                events,
                start,
                max_out_of_orderness,
                sensors,
                ..
            } => {
                let generator = GeneratorSettings {
                    sensors: sensors.clone(),
                    rate: *rate,
                    events: *events,
                    start: start.unwrap_or(resources.started_ms),
                };
                let reader = GeneratorReader::new(generator, worker, peers).named(name);
                event_source(scope, settings(max_out_of_orderness.as_millis(), None), reader)
            }
            SourceConfig::Kafka {
                max_out_of_orderness,
                idle_timeout,
                ..
            } => {
                let plan = &resources.kafka[name];
                let needs = DeliveryNeeds {
                    delivered: resources.delivered[name].clone(),
                    last_output: last_output(config, granule_ms),
                    sessions: resources.kafka_sessions.get(name).cloned(),
                    granule_ms,
                };
                let ended = Arc::clone(&plan.ended);
                let health = resources.health.reporter(name);
                let reader = KafkaReader::start(
                    &plan.settings,
                    &plan.partitions,
                    &plan.resume,
                    (worker, peers),
                    needs,
                    ended,
                    health,
                );
                let idle = Some(idle_timeout.to_std());
                event_source(scope, settings(max_out_of_orderness.as_millis(), idle), reader)
            }
            SourceConfig::Http {
                max_out_of_orderness,
                idle_timeout,
                ..
            } => {
                let idle = (idle_timeout.as_millis() > 0).then(|| idle_timeout.to_std());
                let reader = HttpReader::new(resources.ingest[name].clone(), worker, idle);
                event_source(scope, settings(max_out_of_orderness.as_millis(), None), reader)
            }
            SourceConfig::File {
                path,
                max_out_of_orderness,
                ..
            } => {
                let reader = JsonlFileReader::open(name, path, worker, peers)
                    .unwrap_or_else(|error| {
                        panic!("source `{name}`: {} opened before but not now: {error}", path.display())
                    })
                    .with_projection(source_projection(config, name));
                event_source(scope, settings(max_out_of_orderness.as_millis(), None), reader)
            }
        };
        streams.insert(name.clone(), Built::Events(probed_events(outputs.events)));
        streams.insert(format!("{name}.late"), Built::Events(outputs.late));
        streams.insert(format!("{name}.dead_letter"), Built::DeadLetters(outputs.dead_letters));
    }

    let shapes = validate::streams(config);
    // The live answer of incidents operators, for the gateway's views and topic.
    let mut incident_updates = BTreeMap::new();
    for name in operator_order(config) {
        let operator = config.operators[&name].operator();
        let inputs: Vec<InputStream<'scope>> = operator
            .inputs()
            .iter()
            .map(|input| match &streams[input] {
                Built::Events(events) => InputStream::Events(events.clone()),
                Built::Rows(rows) => InputStream::Rows(rows.clone()),
                Built::DeadLetters(_) => unreachable!("validation lets no operator read dead letters"),
            })
            .collect();
        // A resumed Kafka source replays part of the output its last run
        // delivered; that output is not emitted again.
        let delivered_before = resources
            .kafka
            .iter()
            .filter(|(source, _)| {
                operator
                    .inputs()
                    .iter()
                    .any(|input| input == *source || *input == format!("{source}.late"))
            })
            .map(|(_, plan)| plan.delivered_before())
            .max()
            .unwrap_or(0);
        let Some(StreamType::Rows(output)) = shapes.get(&name) else {
            unreachable!("a validated operator has a row schema")
        };
        let context = BuildContext {
            name: &name,
            scope,
            inputs,
            output: Arc::clone(output),
            granule_ms,
            shutdown: &resources.shutdown,
            delivered_before,
            session_progress: resources.session_progress.clone(),
        };
        let built = match &config.operators[&name] {
            // With a gateway, every incidents operator feeds its views and
            // topic, whatever sinks read it (a file or Kafka sink only gets
            // final reports; the API shows the current answer).
            OperatorConfig::Incidents(incidents) if resources.live.is_some() => {
                let (built, updates) = incidents.build_with_updates(context);
                incident_updates.insert(name.clone(), updates);
                built
            }
            _ => operator.build(context),
        };
        if let Some(dead_letters) = built.dead_letters {
            streams.insert(format!("{name}.dead_letter"), Built::DeadLetters(dead_letters));
        }
        streams.insert(name, Built::Rows(probed_rows(built.rows)));
    }

    if let Some(live) = &resources.live {
        // Published once per operator, whether no websocket sink reads it or several do.
        for (operator, updates) in incident_updates {
            let Some(StreamType::Rows(schema)) = shapes.get(&operator) else {
                unreachable!("a validated operator has a row schema")
            };
            let events = config.operators[&operator]
                .inputs()
                .iter()
                .filter_map(|input| match &streams[input] {
                    Built::Events(events) => Some(events.clone()),
                    Built::Rows(_) | Built::DeadLetters(_) => None,
                })
                .collect::<Vec<_>>();
            // Every event the operator reads goes to worker 0's resource view;
            // in a cluster that crosses processes, so it passes the flow-control
            // probe like every other exchange.
            let events = crate::cluster::gather::to_worker_zero(scope.concatenate(events), &operator);
            publish_incidents(
                updates,
                probed_events(events),
                LiveSource::new(&live.pipeline, &operator),
                Arc::clone(schema),
                live.outputs.hub.clone(),
                live.incidents.clone(),
            );
        }
    }

    for sink in config.sinks.values() {
        if let SinkConfig::Websocket { inputs } = sink {
            let live = resources
                .live
                .as_ref()
                .expect("validation requires a gateway for websocket sinks");
            for operator in inputs {
                if let OperatorConfig::Incidents(_) = &config.operators[operator] {
                    // Published above, as every incidents operator is when a gateway runs.
                    continue;
                }
                let analytics = match config.operators[operator].producer(&config.operators) {
                    OperatorConfig::Anomaly(_) => Some(AnalyticsKind::Anomaly),
                    OperatorConfig::Forecast(_) => Some(AnalyticsKind::Forecast),
                    OperatorConfig::Onnx(_) => Some(AnalyticsKind::Prediction),
                    OperatorConfig::Window(_) | OperatorConfig::Filter(_) | OperatorConfig::Incidents(_) => None,
                };
                // The gateway is process 0's: in a cluster its rows go to worker 0 first.
                let rows_here = |rows: &Stream<'scope, EventTime, Vec<Row>>,
                                 schema: Option<&Arc<pulse_core::RowSchema>>| {
                    match (resources.placement.gather, schema) {
                        (true, Some(schema)) => probed_rows(crate::cluster::gather::gather_rows(
                            scope,
                            rows.clone(),
                            schema,
                            operator,
                        )),
                        _ => rows.clone(),
                    }
                };
                let schema = match shapes.get(operator) {
                    Some(StreamType::Rows(schema)) => Some(schema),
                    _ => None,
                };
                if let (Some(kind), Some(Built::Rows(rows))) = (analytics, streams.get(operator)) {
                    let rows = &rows_here(rows, schema);
                    let source = LiveSource::new(&live.pipeline, operator);
                    let (hub, views) = (live.outputs.hub.clone(), live.analytics.clone());
                    publish_analytics(rows.clone(), kind, source, hub, views);
                    continue;
                }
                let (Some(Built::Rows(rows)), Some(StreamType::Rows(schema))) =
                    (streams.get(operator), shapes.get(operator))
                else {
                    unreachable!("validation lets websocket sinks read window rows only")
                };
                let key_fields: Vec<String> = schema.keys().map(|column| column.name.clone()).collect();
                let source = LiveSource::new(&live.pipeline, operator);
                if let Some(window_ms) = config.operators[operator]
                    .producer(&config.operators)
                    .as_window()
                    .and_then(|window| window.window.fixed_length_ms())
                {
                    let values = schema.columns().iter().filter(|c| c.ty.is_numeric());
                    live.outputs.views.declare(
                        &source,
                        ViewShape {
                            window_ms,
                            key_fields: key_fields.clone(),
                            values: values.map(|column| column.name.clone()).collect(),
                        },
                    );
                }
                publish_live(rows_here(rows, Some(schema)), source, key_fields, live.outputs.clone());
            }
        }
    }
    resources.sinks.deliver(scope, &streams, lead.as_ref());
}

/// For an event at `ts`, the latest time output derived from it is sent at:
/// the output time of the last window (of any operator) it falls in, or its
/// own time for sinks that read events directly. Session windows end when
/// their key falls silent, which is not known in advance: they count here with
/// the event's own time, and the source asks their [`SessionProgress`] instead.
fn last_output(config: &PipelineConfig, granule_ms: u64) -> Arc<dyn Fn(EventTime) -> EventTime + Send + Sync> {
    let windows: Vec<WindowSpec> = config
        .operators
        .values()
        .filter_map(|operator| operator.as_window())
        .map(|window| window.window)
        .collect();
    Arc::new(move |ts| {
        windows.iter().fold(coarsen(ts, granule_ms), |latest, window| {
            let sent_at = window.last_end(ts).map_or(latest, |end| output_time(end, granule_ms));
            latest.max(sent_at)
        })
    })
}

/// Operators ordered so that each comes after the operators it reads
/// (validation has ruled out cycles).
fn operator_order(config: &PipelineConfig) -> Vec<String> {
    let mut order: Vec<String> = Vec::new();
    while order.len() < config.operators.len() {
        let before = order.len();
        for (name, operator) in &config.operators {
            let ready = operator
                .inputs()
                .iter()
                .all(|i| !config.operators.contains_key(i) || order.contains(i));
            if !order.contains(name) && ready {
                order.push(name.clone());
            }
        }
        assert!(
            order.len() > before,
            "operator graph has a cycle; validation should have refused it"
        );
    }
    order
}
