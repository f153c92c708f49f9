//! Pipeline files: what a user writes, read with serde and checked before anything runs.
//!
//! A pipeline has named `sources`, `operators` and `sinks`, each with a `type`
//! (closed sets: a typo is an error naming the key) and, for operators and
//! sinks, the `inputs` they read. An input is a component name, or a source's
//! side output: `name.late` (events behind the watermark) or `name.dead_letter`
//! (input that did not decode). Loading runs in four steps: `${VAR}`
//! interpolation ([`interpolate`]), parsing the TOML, reading each component
//! ([`components`]) and checking the graph ([`validate`]); every problem of
//! the last two is reported in one go, each with the file, line and column.

pub mod components;
pub mod diagnostic;
pub mod interpolate;
pub mod sink_pacing;
pub mod sinks;
pub mod spans;
pub mod validate;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use pulse_connectors::generator::SensorsConfig;
use pulse_connectors::generator::k8s::K8sConfig;
use pulse_core::{DurationSpec, EventKind};
use pulse_gateway::GatewayConfig;
use pulse_sinks::StdoutFormat;
use serde::Deserialize;

use crate::operators::Operator;
use crate::operators::anomaly::AnomalyOperator;
use crate::operators::filter::FilterOperator;
use crate::operators::forecast::ForecastOperator;
use crate::operators::incidents::IncidentsOperator;
use crate::operators::onnx::OnnxOperator;
use crate::operators::window::WindowOperator;

pub use diagnostic::{ConfigError, Diagnostic};

/// A whole pipeline file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    /// Engine settings.
    #[serde(default)]
    pub engine: EngineConfig,
    /// Where events come from, by name.
    #[serde(default)]
    pub sources: BTreeMap<String, SourceConfig>,
    /// What is computed, by name.
    #[serde(default)]
    pub operators: BTreeMap<String, OperatorConfig>,
    /// Where results go, by name.
    #[serde(default)]
    pub sinks: BTreeMap<String, SinkConfig>,
    /// The HTTP gateway served while the pipeline runs (none without this table).
    #[serde(default)]
    pub gateway: Option<GatewayConfig>,
    /// The model registry the gateway's model API serves (none without this table).
    #[serde(default)]
    pub ml: Option<crate::ml_service::MlConfig>,
}

/// The `[engine]` table.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EngineConfig {
    /// Timely worker threads in this process (default: the number of CPU cores).
    pub workers: usize,
    /// Event times are rounded down to this for progress tracking (default 100ms);
    /// window sizes and slides must be multiples of it.
    pub granule: DurationSpec,
    /// Where dead letters that no sink consumes are written (default `dead-letter.jsonl`).
    pub dead_letter_path: PathBuf,
    /// Running one pipeline over several processes (`[engine.cluster]`; none: one process).
    pub cluster: Option<ClusterConfig>,
}

/// The `[engine.cluster]` table: this process's place in a timely cluster.
/// The same file (with `process = ${PULSE_PROCESS}`) serves every process.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// How many processes run the pipeline.
    pub processes: usize,
    /// This process's index, `0..processes` (a per-process key: not part of the plan hash).
    #[serde(default)]
    pub process: usize,
    /// Every process's `host:port`, process 0 first, the same list in every
    /// process (empty: given by `--hostfile`).
    #[serde(default)]
    pub addresses: Vec<String>,
    /// How long start-up waits for every peer before failing, naming those that never answered (default 60s).
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout: DurationSpec,
    /// How long a peer may send nothing (frozen, cut off) before the cluster ends (default 10s).
    #[serde(default = "default_stall_timeout")]
    pub stall_timeout: DurationSpec,
    /// How far, in event time, a source may lead what every process has
    /// taken in past the exchanges before it waits (default 2s; "0s": never
    /// waits). Bounds what a process buffers for a slower peer.
    #[serde(default = "default_max_lead")]
    pub max_lead: DurationSpec,
}

fn default_connect_timeout() -> DurationSpec {
    DurationSpec::from_millis(60_000)
}

fn default_stall_timeout() -> DurationSpec {
    DurationSpec::from_millis(10_000)
}

fn default_max_lead() -> DurationSpec {
    DurationSpec::from_millis(2_000)
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            workers: std::thread::available_parallelism().map_or(1, usize::from),
            granule: DurationSpec::from_millis(100),
            dead_letter_path: PathBuf::from("dead-letter.jsonl"),
            cluster: None,
        }
    }
}

/// A source: where events come from.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum SourceConfig {
    /// Synthetic events from a deterministic model.
    Generator {
        /// The model: `sensors` (default) or `k8s`.
        #[serde(default)]
        profile: GeneratorProfile,
        /// Events per second over all workers; 0 = as fast as possible (default 10000).
        #[serde(default = "default_rate")]
        rate: u64,
        /// Stop after this many events (default: run until stopped).
        #[serde(default)]
        events: Option<u64>,
        /// Event time of the first event, epoch ms (default: now).
        #[serde(default)]
        start: Option<u64>,
        /// Allowed disorder before an event is late (default 0s).
        #[serde(default)]
        max_out_of_orderness: DurationSpec,
        /// Event times before this (epoch ms) are refused as dead letters
        /// (`timestamp_out_of_range`). Default: 2000-01-01T00:00:00Z for live
        /// sources (generator, Kafka without `until`), none for replays (file,
        /// Kafka with `until`), whose data may be of any age; 0: no floor.
        #[serde(default)]
        min_timestamp: Option<u64>,
        /// Event times more than this after max(wall clock, newest accepted event time)
        /// are refused as dead letters (`timestamp_out_of_range`; default 1h).
        #[serde(default = "default_max_future")]
        max_future: DurationSpec,
        /// Settings of the `sensors` profile.
        #[serde(default)]
        sensors: SensorsConfig,
        /// Settings of the `k8s` profile (tenants, faults per tenant, seed, hard cases).
        #[serde(default)]
        k8s: K8sConfig,
        /// `k8s` profile: event time played per wall-clock time (default 1,
        /// real time; 60 plays an hour a minute). The `sensors` profile paces by `rate`.
        #[serde(default = "default_speed")]
        speed: f64,
    },
    /// Replays a JSONL file as fast as possible, then ends.
    File {
        /// The file to read.
        path: PathBuf,
        /// Allowed disorder before an event is late (default 0s).
        #[serde(default)]
        max_out_of_orderness: DurationSpec,
        /// Event times before this (epoch ms) are refused as dead letters
        /// (`timestamp_out_of_range`). Default: 2000-01-01T00:00:00Z for live
        /// sources (generator, Kafka without `until`), none for replays (file,
        /// Kafka with `until`), whose data may be of any age; 0: no floor.
        #[serde(default)]
        min_timestamp: Option<u64>,
        /// Event times more than this after max(wall clock, newest accepted event time)
        /// are refused as dead letters (`timestamp_out_of_range`; default 1h).
        #[serde(default = "default_max_future")]
        max_future: DurationSpec,
        /// The event kinds the file holds (default: all), for checking aggregates.
        #[serde(default = "all_kinds")]
        kinds: Vec<EventKind>,
    },
    /// Reads Kafka partitions, a watermark per partition.
    Kafka {
        /// `host:port[,host:port…]`.
        brokers: String,
        /// Topics to read.
        #[serde(default)]
        topics: Vec<String>,
        /// Also read every topic whose name matches this regular expression.
        #[serde(default)]
        topic_pattern: Option<String>,
        /// Consumer group; its committed offsets are where reading starts (default `pulse`).
        #[serde(default = "default_group")]
        group: String,
        /// Allowed disorder within a partition before an event is late (default 0s).
        #[serde(default)]
        max_out_of_orderness: DurationSpec,
        /// Event times before this (epoch ms) are refused as dead letters
        /// (`timestamp_out_of_range`). Default: 2000-01-01T00:00:00Z for live
        /// sources (generator, Kafka without `until`), none for replays (file,
        /// Kafka with `until`), whose data may be of any age; 0: no floor.
        #[serde(default)]
        min_timestamp: Option<u64>,
        /// Event times more than this after max(wall clock, newest accepted event time)
        /// are refused as dead letters (`timestamp_out_of_range`; default 1h).
        #[serde(default = "default_max_future")]
        max_future: DurationSpec,
        /// A partition without messages for this long stops holding the watermark back (default 10s).
        #[serde(default = "default_idle_timeout")]
        idle_timeout: DurationSpec,
        /// `"end"`: read up to the end offsets seen at start, then finish (default: run until stopped).
        #[serde(default)]
        until: Option<Until>,
        /// The event kinds the topics hold (default: all), for checking aggregates.
        #[serde(default = "all_kinds")]
        kinds: Vec<EventKind>,
        /// Where dead letters go when no sink reads them and the topic name has no
        /// tenant (otherwise `{tenant}.dlq`) (default `pulse.dlq`).
        #[serde(default = "default_dead_letter_topic")]
        dead_letter_topic: String,
        /// Where commit points are logged before each offset commit, so a
        /// restart resumes with the watermarks and delivered windows of the
        /// run it follows (default `pulse.resume`; created when missing).
        #[serde(default = "default_resume_topic")]
        resume_topic: String,
        /// How often what the sinks have delivered is committed (default 5s).
        /// Each commit costs the broker two requests; shorter means less to
        /// read again after a crash.
        #[serde(default = "default_commit_interval")]
        commit_interval: DurationSpec,
        /// How often an unbounded run looks for partitions it does not read
        /// yet: new topics matching `topic_pattern`, partitions added to a
        /// topic (default 10s; `"0s"`: never). They are read from their first
        /// offset. Bounded runs read the partitions found at start.
        #[serde(default = "default_discovery_interval")]
        discovery_interval: DurationSpec,
    },
    /// Events posted to the gateway's `POST /api/v1/events` (the pipeline
    /// needs a `[gateway]`; one `http` source per pipeline).
    Http {
        /// Allowed disorder before an event is late (default 0s).
        #[serde(default)]
        max_out_of_orderness: DurationSpec,
        /// Event times before this (epoch ms) are refused, reported back to
        /// the client and dead-lettered (`timestamp_out_of_range`; default
        /// 2000-01-01T00:00:00Z, as for every live source; 0: no floor).
        #[serde(default)]
        min_timestamp: Option<u64>,
        /// Event times more than this after max(wall clock, newest accepted event time)
        /// are refused the same way (default 1h).
        #[serde(default = "default_max_future")]
        max_future: DurationSpec,
        /// With no event posted for this long, the watermark moves on with
        /// the wall clock, as if an event stamped this long ago had arrived,
        /// so windows close without more events (default 10s; `"0s"`: only
        /// events move it).
        #[serde(default = "default_idle_timeout")]
        idle_timeout: DurationSpec,
        /// Events (and refused elements, on their way to the dead letters) held
        /// between the endpoint and the dataflow; a request that does not fit
        /// is answered 429 with `Retry-After` and takes nothing (default 100000).
        #[serde(default = "default_queue_capacity")]
        queue_capacity: usize,
        /// The event kinds clients post (default: all), for checking aggregates.
        #[serde(default = "all_kinds")]
        kinds: Vec<EventKind>,
    },
}

/// Where a bounded source stops.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Until {
    /// The end offsets seen when the run starts.
    End,
}

/// The generator's models.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GeneratorProfile {
    /// Hosts of several tenants reporting cpu, mem, disk, net and temp.
    #[default]
    Sensors,
    /// Tenants' Kubernetes clusters (topology, metrics, logs, events) with
    /// injected faults, played live (`k8s` and `speed` settings).
    K8s,
}

/// An operator: what is computed. Each variant's settings live in a module of
/// [`crate::operators`], which also checks and builds it.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum OperatorConfig {
    /// Event-time windows with aggregates per key.
    Window(WindowOperator),
    /// Streaming anomaly detection per key (boxed: its detector settings are large).
    Anomaly(Box<AnomalyOperator>),
    /// Per-key forecasts with prediction intervals, on a schedule.
    Forecast(ForecastOperator),
    /// The rows of another operator that meet conditions on their columns.
    Filter(FilterOperator),
    /// Rows scored by an ONNX model of the model registry.
    Onnx(OnnxOperator),
    /// Incidents and their ranked root causes (differential dataflow).
    Incidents(IncidentsOperator),
}

/// A sink: where results go.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum SinkConfig {
    /// Window rows to live WebSocket subscribers (`/ws`) and to the query API
    /// (`POST /api/v1/analytics/query`) of the pipeline's gateway.
    Websocket {
        /// Window operators whose rows are published.
        inputs: Vec<String>,
    },
    /// Standard output.
    Stdout {
        /// Streams to write.
        inputs: Vec<String>,
        /// `json` (default) or `table`.
        #[serde(default)]
        format: StdoutFormat,
    },
    /// A JSONL file.
    File {
        /// Streams to write.
        inputs: Vec<String>,
        /// The file to write.
        path: PathBuf,
        /// Keep existing content (default false: the file is rewritten).
        #[serde(default)]
        append: bool,
        /// Cap the file at this many bytes: a batch that would pass it first
        /// renames the file to `PATH.1` (replacing it) and starts a new one
        /// (default: no cap).
        #[serde(default)]
        max_bytes: Option<u64>,
    },
    /// A Kafka topic: one JSON message per record, with a deterministic key.
    Kafka {
        /// Streams to write.
        inputs: Vec<String>,
        /// `host:port[,host:port…]`.
        brokers: String,
        /// The topic of every input that `topics` does not name (it must exist).
        #[serde(default)]
        topic: Option<String>,
        /// A topic per input, e.g. `{ tumbling_10s = "streaming-metrics" }`;
        /// inputs it does not name go to `topic`.
        #[serde(default)]
        topics: BTreeMap<String, String>,
        /// Fields whose values make the message key (default: the window and every string field).
        #[serde(default)]
        key_fields: Option<Vec<String>>,
        /// Backoff between retries of a batch the broker did not take.
        #[serde(default)]
        retry: sink_pacing::RetrySettings,
        /// When the circuit breaker opens, and when it probes.
        #[serde(default)]
        breaker: sink_pacing::BreakerSettings,
    },
    /// ClickHouse tables: events and operator rows as history, idempotent on replay.
    Clickhouse(sinks::ClickHouseSinkConfig),
    /// Redis: the latest row per key, a bounded series per key, and a
    /// notification per row on the tenant's channel.
    Redis(sinks::RedisSinkConfig),
    /// Parquet files: operator rows as hour-partitioned columnar history.
    Parquet(sinks::ParquetSinkConfig),
    /// A graph of resources, topology and events in Neo4j or FalkorDB.
    Graph(sinks::GraphSinkConfig),
}

impl SinkConfig {
    /// For a Kafka sink, its inputs grouped by the topic they go to (an input
    /// without a topic is left out; validation reports it). Empty for other sinks.
    pub fn kafka_topics(&self) -> BTreeMap<&str, Vec<&str>> {
        let mut by_topic: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        if let SinkConfig::Kafka {
            inputs, topic, topics, ..
        } = self
        {
            for input in inputs {
                if let Some(topic) = topics.get(input).or(topic.as_ref()) {
                    by_topic.entry(topic).or_default().push(input);
                }
            }
        }
        by_topic
    }
}

fn default_max_future() -> DurationSpec {
    DurationSpec::from_millis(pulse_connectors::time_bounds::DEFAULT_MAX_FUTURE_MS)
}

fn default_queue_capacity() -> usize {
    100_000
}

fn default_rate() -> u64 {
    10_000
}

fn default_commit_interval() -> DurationSpec {
    DurationSpec::from_secs(5)
}

fn default_discovery_interval() -> DurationSpec {
    DurationSpec::from_secs(10)
}

fn default_resume_topic() -> String {
    "pulse.resume".to_owned()
}

fn default_dead_letter_topic() -> String {
    "pulse.dlq".to_owned()
}

fn default_speed() -> f64 {
    1.0
}

fn default_group() -> String {
    "pulse".to_owned()
}

fn default_idle_timeout() -> DurationSpec {
    DurationSpec::from_secs(10)
}

fn all_kinds() -> Vec<EventKind> {
    EventKind::ALL.to_vec()
}

impl SourceConfig {
    /// The event times the source accepts: a live source's events are
    /// stamped about now, so by default it refuses any before the year 2000;
    /// a replay's may be of any age, so by default it has no floor.
    pub fn timestamp_bounds(&self) -> pulse_connectors::TimestampBounds {
        let (live, min_timestamp, max_future) = match self {
            SourceConfig::Generator {
                min_timestamp,
                max_future,
                ..
            } => (true, min_timestamp, max_future),
            SourceConfig::File {
                min_timestamp,
                max_future,
                ..
            } => (false, min_timestamp, max_future),
            SourceConfig::Kafka {
                min_timestamp,
                max_future,
                until,
                ..
            } => (until.is_none(), min_timestamp, max_future),
            SourceConfig::Http {
                min_timestamp,
                max_future,
                ..
            } => (true, min_timestamp, max_future),
        };
        let floor = if live {
            pulse_connectors::time_bounds::DEFAULT_MIN_TIMESTAMP
        } else {
            0
        };
        pulse_connectors::TimestampBounds::new(min_timestamp.unwrap_or(floor), max_future.as_millis())
    }
}

impl OperatorConfig {
    /// The operator behind the config: how it is checked and built.
    pub fn operator(&self) -> &dyn Operator {
        match self {
            OperatorConfig::Window(window) => window,
            OperatorConfig::Anomaly(anomaly) => anomaly.as_ref(),
            OperatorConfig::Forecast(forecast) => forecast,
            OperatorConfig::Filter(filter) => filter,
            OperatorConfig::Onnx(onnx) => onnx,
            OperatorConfig::Incidents(incidents) => incidents,
        }
    }

    /// The streams the operator reads.
    pub fn inputs(&self) -> &[String] {
        self.operator().inputs()
    }

    /// What made its rows: itself, or for a filter the operator it reads
    /// (through any filters), whose rows it passes on unchanged.
    pub fn producer<'a>(&'a self, operators: &'a BTreeMap<String, OperatorConfig>) -> &'a OperatorConfig {
        let mut producer = self;
        // Bounded, so that a cycle (which validation reports) cannot loop.
        for _ in 0..=operators.len() {
            let OperatorConfig::Filter(filter) = producer else {
                break;
            };
            match filter.inputs.first().and_then(|input| operators.get(input)) {
                Some(input) => producer = input,
                None => break,
            }
        }
        producer
    }

    /// The window operator, for what depends on when windows close (the
    /// delivery bookkeeping that Kafka commits wait for).
    pub fn as_window(&self) -> Option<&WindowOperator> {
        match self {
            OperatorConfig::Window(window) => Some(window),
            OperatorConfig::Anomaly(_)
            | OperatorConfig::Forecast(_)
            | OperatorConfig::Filter(_)
            | OperatorConfig::Onnx(_)
            | OperatorConfig::Incidents(_) => None,
        }
    }
}

impl SinkConfig {
    /// The streams the sink writes.
    pub fn inputs(&self) -> &[String] {
        match self {
            SinkConfig::Stdout { inputs, .. }
            | SinkConfig::File { inputs, .. }
            | SinkConfig::Kafka { inputs, .. }
            | SinkConfig::Websocket { inputs } => inputs,
            SinkConfig::Clickhouse(clickhouse) => &clickhouse.inputs,
            SinkConfig::Redis(redis) => &redis.inputs,
            SinkConfig::Parquet(parquet) => &parquet.inputs,
            SinkConfig::Graph(graph) => &graph.inputs,
        }
    }
}

/// A pipeline file read, interpolated, parsed and checked.
#[derive(Clone, Debug)]
pub struct Pipeline {
    /// The file it came from.
    pub path: PathBuf,
    /// The parsed configuration.
    pub config: PipelineConfig,
    /// Problems that do not stop it (see [`Pipeline::warnings_report`]).
    pub warnings: Vec<diagnostic::Located>,
}

impl Pipeline {
    /// Reads and checks the pipeline at `path`, with `env` for `${VAR}`
    /// interpolation, and checks that the files its sources read exist.
    pub fn load(path: &Path, env: &dyn Fn(&str) -> Option<String>) -> Result<Pipeline, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError::unreadable(path, &error))?;
        Self::check(path, &text, env, true)
    }

    /// Checks pipeline text as if read from `path` (without looking at the
    /// files it names).
    pub fn parse(path: &Path, text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Pipeline, ConfigError> {
        Self::check(path, text, env, false)
    }

    fn check(
        path: &Path,
        text: &str,
        env: &dyn Fn(&str) -> Option<String>,
        check_files: bool,
    ) -> Result<Pipeline, ConfigError> {
        let interpolated =
            interpolate::interpolate(text, env).map_err(|errors| ConfigError::new(path, text, errors))?;
        let text = interpolated.text.as_str();
        // A file that is not TOML at all stops here: nothing after it can be read.
        let document = toml::de::DeTable::parse(text)
            .map_err(|error| ConfigError::new(path, text, vec![diagnostic::from_toml(text, &error)]))?;
        let components::Components {
            config,
            mut diagnostics,
            unparsed,
        } = components::read(text, document.into_inner());
        diagnostics.extend(spans::locate_all(text, validate::validate(&config, &unparsed)));
        if check_files {
            diagnostics.extend(missing_files(&config, &interpolated));
        }
        let problems = diagnostic::locate(text, diagnostics);
        if problems.iter().any(|p| !p.diagnostic.warning) {
            return Err(ConfigError {
                path: path.to_owned(),
                problems,
            });
        }
        let mut config = config;
        sinks::fill_in_history(&mut config);
        Ok(Pipeline {
            path: path.to_owned(),
            config,
            warnings: problems,
        })
    }

    /// The warnings, rendered as `pulse validate` prints them; `None` without any.
    pub fn warnings_report(&self) -> Option<String> {
        struct Report<'a>(&'a Pipeline);
        impl std::fmt::Display for Report<'_> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                diagnostic::render(f, &self.0.path, &self.0.warnings)
            }
        }
        (!self.warnings.is_empty()).then(|| Report(self).to_string())
    }
}

/// File sources whose file is missing (or is a directory): an error, or a
/// warning when the path comes from a `${VAR}`, which may name another file
/// where the pipeline runs.
fn missing_files(config: &PipelineConfig, interpolated: &interpolate::Interpolated) -> Vec<Diagnostic> {
    let mut problems = Vec::new();
    for (name, source) in &config.sources {
        let SourceConfig::File { path, .. } = source else {
            continue;
        };
        let (message, help) = if path.is_dir() {
            (
                format!("`{}` is a directory, not a file of events", path.display()),
                "name a JSONL file (one event per line)".to_owned(),
            )
        } else if !path.exists() {
            let cwd = std::env::current_dir()
                .map_or_else(|_| "the working directory".to_owned(), |d| d.display().to_string());
            (
                format!("the file `{}` does not exist", path.display()),
                format!("check the path; a relative path is read from the directory pulse runs in ({cwd})"),
            )
        } else {
            continue;
        };
        problems.push(validate::Problem {
            path: vec!["sources".into(), name.clone(), "path".into()],
            message,
            help: Some(help),
        });
    }
    spans::locate_all(&interpolated.text, problems)
        .into_iter()
        .map(|diagnostic| match &diagnostic.span {
            Some(span) if interpolated.is_substituted(span) => Diagnostic {
                message: format!(
                    "{} here; its path comes from a ${{VAR}}, which may name another file where the pipeline runs",
                    diagnostic.message
                ),
                ..diagnostic
            }
            .into_warning(),
            _ => diagnostic,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The floor `timestamp_bounds` gives `source` (TOML of a source table).
    fn accepts_the_year_1970(source: &str) -> bool {
        let source: SourceConfig = toml::from_str(source).expect("a source");
        let mut bounds = source.timestamp_bounds();
        bounds.set_wall_clock(1_765_000_000_000);
        bounds.admit(1_000).is_none()
    }

    #[test]
    fn live_sources_have_a_floor_and_replays_none_unless_given() {
        let kafka = "type = \"kafka\"\nbrokers = \"b:9092\"\ntopics = [\"t\"]\n";
        assert!(!accepts_the_year_1970("type = \"generator\""));
        assert!(!accepts_the_year_1970(kafka), "a live Kafka source");
        assert!(
            accepts_the_year_1970(&format!("{kafka}until = \"end\"")),
            "a Kafka replay"
        );
        assert!(accepts_the_year_1970("type = \"file\"\npath = \"x\""));
        assert!(!accepts_the_year_1970(
            "type = \"file\"\npath = \"x\"\nmin_timestamp = 946684800000"
        ));
        assert!(accepts_the_year_1970("type = \"generator\"\nmin_timestamp = 0"));
    }
}
