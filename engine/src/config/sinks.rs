//! The settings of the sinks that write to servers (`clickhouse`, `redis`,
//! `graph`) or to files (`parquet`):
//! their keys, defaults and checks. Every such sink also takes the runtime's
//! batching keys ([`Batching`]), with its retry and breaker settings.

use std::collections::BTreeMap;

use pulse_core::DurationSpec;
use pulse_sinks::clickhouse::Table;
use serde::Deserialize;

use super::sink_pacing::{BreakerSettings, RetrySettings};
use super::validate::{Problem, problem};
use super::{OperatorConfig, PipelineConfig};

/// `type = "clickhouse"`: history in ClickHouse tables.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClickHouseSinkConfig {
    /// Streams to write: sources (their events) and operators (their rows).
    pub inputs: Vec<String>,
    /// The server's HTTP interface (default `http://127.0.0.1:8123`).
    #[serde(default = "default_clickhouse_url")]
    pub url: String,
    /// The database of the tables (default `pulse`).
    #[serde(default = "default_database")]
    pub database: String,
    /// User, when the server wants one.
    #[serde(default)]
    pub user: Option<String>,
    /// Password of `user`.
    #[serde(default)]
    pub password: Option<String>,
    /// Create the database and tables when missing (default true).
    #[serde(default = "yes")]
    pub create_tables: bool,
    /// The table of an input, where the default (events: `time_series_events`,
    /// window rows: `window_aggregates`) does not fit, e.g. `{ cpu_anomalies = "anomalies" }`.
    #[serde(default)]
    pub tables: BTreeMap<String, Table>,
    /// Strings longer than this are refused as dead letters (default 65536).
    #[serde(default = "default_max_string_bytes")]
    pub max_string_bytes: usize,
    /// Batching and buffering.
    #[serde(flatten)]
    pub batching: Batching,
}

/// `type = "redis"`: latest values, bounded series and notifications in Redis.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisSinkConfig {
    /// Operators whose rows are written.
    pub inputs: Vec<String>,
    /// `redis://host:port[/db]` (default `redis://127.0.0.1:6379`).
    #[serde(default = "default_redis_url")]
    pub url: String,
    /// Prefix of every key and channel (default `pulse:`).
    #[serde(default = "default_key_prefix")]
    pub key_prefix: String,
    /// Expiry of every key written, renewed on each write (default 1h; 0s: none).
    #[serde(default = "default_ttl")]
    pub ttl: DurationSpec,
    /// Points kept per series (default 1000).
    #[serde(default = "default_series_length")]
    pub series_length: usize,
    /// `PUBLISH` each row on its tenant's channel (default true).
    #[serde(default = "yes")]
    pub publish: bool,
    /// Batching and buffering.
    #[serde(flatten)]
    pub batching: Batching,
}

/// `type = "parquet"`: operator rows as Parquet files, partitioned by hour.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParquetSinkConfig {
    /// Operators whose rows are written, each under `path/<operator>`.
    pub inputs: Vec<String>,
    /// The directory of the files.
    pub path: std::path::PathBuf,
    /// Rows per file at most (default 1000000): a longer hour is cut into
    /// several files, written as soon as they are full.
    #[serde(default = "default_max_rows_per_file")]
    pub max_rows_per_file: usize,
    /// Rows per row group inside a file (default 65536).
    #[serde(default = "default_row_group_rows")]
    pub row_group_rows: usize,
    /// Batching and buffering.
    #[serde(flatten)]
    pub batching: Batching,
}

impl ParquetSinkConfig {
    /// The writer's options.
    pub fn options(&self) -> pulse_sinks::parquet::ParquetOptions {
        pulse_sinks::parquet::ParquetOptions {
            max_rows_per_file: self.max_rows_per_file,
            row_group_rows: self.row_group_rows,
            ..Default::default()
        }
    }

    /// The checks of this sink that need the whole pipeline.
    pub fn check(&self, config: &PipelineConfig, name: &str, problems: &mut Vec<Problem>) {
        self.batching.check(name, problems);
        if self.path.as_os_str().is_empty() {
            problems.push(problem(
                &["sinks", name, "path"],
                "`path` is empty".into(),
                "name the directory of the files, e.g. path = \"/var/lib/pulse/parquet\"".to_owned(),
            ));
        }
        for (key, value, default) in [
            ("max_rows_per_file", self.max_rows_per_file, default_max_rows_per_file()),
            ("row_group_rows", self.row_group_rows, default_row_group_rows()),
        ] {
            if value == 0 {
                problems.push(problem(
                    &["sinks", name, key],
                    format!("`{key}` must be at least 1"),
                    format!("remove it for the default, {default}"),
                ));
            }
        }
        for (i, input) in self.inputs.iter().enumerate() {
            let not_rows =
                is_stream_of_a_source(config, input) || input.ends_with(".dead_letter") || input.ends_with(".late");
            if not_rows {
                problems.push(problem(
                    &["sinks", name, "inputs", &i.to_string()],
                    format!("a parquet sink writes operator rows, and `{input}` is not an operator's rows"),
                    "read a window, anomaly or forecast operator, e.g. inputs = [\"cpu_10s\"]".to_owned(),
                ));
            }
        }
    }
}

/// `type = "graph"`: resources, topology, k8s events and logs as a
/// per-tenant graph in Neo4j (`bolt://`, `neo4j://`) or FalkorDB
/// (`falkordb://`, `redis://`); see [`pulse_sinks::graph`] for the layout.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GraphSinkConfig {
    /// Sources whose events are written (topology, k8s events, logs; metric
    /// samples are left out).
    pub inputs: Vec<String>,
    /// The server (default `bolt://127.0.0.1:7687`).
    #[serde(default = "default_graph_uri")]
    pub uri: String,
    /// Neo4j: the user (default `neo4j`).
    #[serde(default = "default_neo4j_user")]
    pub user: String,
    /// Neo4j: the password (default empty).
    #[serde(default)]
    pub password: String,
    /// Neo4j: the database every tenant shares (default `neo4j`).
    #[serde(default = "default_neo4j_database")]
    pub database: String,
    /// Neo4j Enterprise: a database per tenant, `database_prefix` + tenant
    /// (tenants of lower-case letters, digits and `-`; default false).
    #[serde(default)]
    pub database_per_tenant: bool,
    /// Neo4j: the prefix of per-tenant databases (default `pulse-`).
    #[serde(default = "default_database_prefix")]
    pub database_prefix: String,
    /// FalkorDB: the prefix of per-tenant graph keys (default `pulse:`).
    #[serde(default = "default_key_prefix")]
    pub graph_prefix: String,
    /// Rows per `UNWIND` statement at most (default 1000).
    #[serde(default = "default_statement_rows")]
    pub statement_rows: usize,
    /// Strings longer than this are refused as dead letters (default 65536).
    #[serde(default = "default_max_string_bytes")]
    pub max_string_bytes: usize,
    /// Batching and buffering.
    #[serde(flatten)]
    pub batching: Batching,
}

impl GraphSinkConfig {
    /// The writer's settings.
    pub fn settings(&self) -> pulse_sinks::graph::GraphSettings {
        pulse_sinks::graph::GraphSettings {
            uri: self.uri.clone(),
            user: self.user.clone(),
            password: self.password.clone(),
            database: self.database.clone(),
            database_per_tenant: self.database_per_tenant,
            database_prefix: self.database_prefix.clone(),
            graph_prefix: self.graph_prefix.clone(),
            statement_rows: self.statement_rows,
            max_string_bytes: self.max_string_bytes,
        }
    }

    /// The runtime's options: ordered, so that topology changes reach the
    /// graph in event-time order (an upsert after a delete wins, and not the
    /// other way round because two workers raced).
    pub fn options(&self) -> pulse_sinks::SinkOptions {
        pulse_sinks::SinkOptions {
            delivery: pulse_sinks::Delivery::Ordered,
            ..self.batching.options()
        }
    }

    /// The checks of this sink that need the whole pipeline.
    pub fn check(&self, config: &PipelineConfig, name: &str, problems: &mut Vec<Problem>) {
        use pulse_sinks::graph::GraphBackendKind;
        self.batching.check(name, problems);
        let backend = GraphBackendKind::of(&self.uri);
        if backend.is_none() {
            problems.push(problem(
                &["sinks", name, "uri"],
                format!("`{}` is not a graph URI", self.uri),
                "use bolt://host:7687 or neo4j://host:7687 (Neo4j), falkordb://host:6380 or redis://host:6380 (FalkorDB)"
                    .to_owned(),
            ));
        }
        if self.database_per_tenant && backend == Some(GraphBackendKind::FalkorDb) {
            problems.push(problem(
                &["sinks", name, "database_per_tenant"],
                "`database_per_tenant` is for Neo4j; FalkorDB always keeps a graph per tenant".into(),
                "remove it (graph_prefix names the graphs)".to_owned(),
            ));
        }
        if self.database_per_tenant && pulse_sinks::graph::neo4j::tenant_database(&self.database_prefix, "t").is_err() {
            problems.push(problem(
                &["sinks", name, "database_prefix"],
                format!("`{}` cannot start a Neo4j database name", self.database_prefix),
                "use lower-case letters, digits and `-`, starting with a letter, e.g. \"pulse-\"".to_owned(),
            ));
        }
        if self.statement_rows == 0 {
            problems.push(problem(
                &["sinks", name, "statement_rows"],
                "`statement_rows` must be at least 1".into(),
                "remove it for the default, 1000".to_owned(),
            ));
        }
        for (i, input) in self.inputs.iter().enumerate() {
            let operator = config.operators.get(input);
            let incidents = matches!(operator, Some(OperatorConfig::Incidents(_)));
            if input.ends_with(".dead_letter") || (operator.is_some() && !incidents) {
                problems.push(problem(
                    &["sinks", name, "inputs", &i.to_string()],
                    format!(
                        "a graph sink writes events (topology, k8s events, logs) and incidents, and `{input}` is neither a source's events nor an incidents operator"
                    ),
                    "read a source or an incidents operator, e.g. inputs = [\"events\", \"incidents\"]".to_owned(),
                ));
            }
        }
    }
}

/// How a sink batches and buffers (the sink runtime's settings).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
pub struct Batching {
    /// A batch is written once it holds this many records (default 10000) …
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// … or once its oldest record has waited this long (default 1s).
    #[serde(default = "default_batch_timeout")]
    pub batch_timeout: DurationSpec,
    /// Batches held between the dataflow and the writer before sources
    /// pause (default 64).
    #[serde(default = "default_buffer_batches")]
    pub buffer_batches: usize,
    /// Backoff between retries of a failed write.
    #[serde(default)]
    pub retry: RetrySettings,
    /// When the circuit breaker opens, and when it probes.
    #[serde(default)]
    pub breaker: BreakerSettings,
}

impl Default for Batching {
    fn default() -> Self {
        Self {
            batch_size: default_batch_size(),
            batch_timeout: default_batch_timeout(),
            buffer_batches: default_buffer_batches(),
            retry: RetrySettings::default(),
            breaker: BreakerSettings::default(),
        }
    }
}

impl Batching {
    /// The runtime's options for a parallel sink batching like this.
    pub fn options(&self) -> pulse_sinks::SinkOptions {
        pulse_sinks::SinkOptions {
            buffer_batches: self.buffer_batches,
            max_batch_records: self.batch_size,
            max_batch_delay: self.batch_timeout.to_std(),
            retry: self.retry.policy(),
            breaker: self.breaker.policy(),
            ..pulse_sinks::SinkOptions::new(pulse_sinks::Delivery::Parallel)
        }
    }

    fn check(&self, name: &str, problems: &mut Vec<Problem>) {
        self.retry.check(name, problems);
        self.breaker.check(name, problems);
        for (key, value) in [("batch_size", self.batch_size), ("buffer_batches", self.buffer_batches)] {
            if value == 0 {
                problems.push(problem(
                    &["sinks", name, key],
                    format!("`{key}` must be at least 1"),
                    format!(
                        "remove it for the default, {}",
                        if key == "batch_size" { 10_000 } else { 64 }
                    ),
                ));
            }
        }
    }
}

impl ClickHouseSinkConfig {
    /// The table `input` goes to: as configured, else by what it is.
    pub fn table_of(&self, config: &PipelineConfig, input: &str) -> Option<Table> {
        if let Some(table) = self.tables.get(input) {
            return Some(*table);
        }
        let source = input.strip_suffix(".late").unwrap_or(input);
        if config.sources.contains_key(source) {
            return Some(Table::TimeSeriesEvents);
        }
        match config.operators.get(input)? {
            OperatorConfig::Window(_) => Some(Table::WindowAggregates),
            OperatorConfig::Incidents(_) => Some(Table::Incidents),
            // Anomalies, forecasts and predictions name their table (`tables`).
            OperatorConfig::Anomaly(_)
            | OperatorConfig::Forecast(_)
            | OperatorConfig::Filter(_)
            | OperatorConfig::Onnx(_) => None,
        }
    }

    /// The checks of this sink that need the whole pipeline.
    pub fn check(&self, config: &PipelineConfig, name: &str, problems: &mut Vec<Problem>) {
        self.batching.check(name, problems);
        if !is_identifier(&self.database) {
            problems.push(problem(
                &["sinks", name, "database"],
                format!("`{}` is not a database name pulse writes to", self.database),
                "use letters, digits and `_`, starting with a letter or `_`, e.g. database = \"pulse\"".to_owned(),
            ));
        }
        if !(self.url.starts_with("http://") || self.url.starts_with("https://")) {
            problems.push(problem(
                &["sinks", name, "url"],
                format!("`{}` is not an HTTP URL", self.url),
                "ClickHouse is reached over HTTP, e.g. url = \"http://127.0.0.1:8123\"".to_owned(),
            ));
        }
        for (i, input) in self.inputs.iter().enumerate() {
            let known = config
                .sources
                .contains_key(input.strip_suffix(".late").unwrap_or(input))
                || config.operators.contains_key(input);
            if known && self.table_of(config, input).is_none() {
                problems.push(problem(
                    &["sinks", name, "inputs", &i.to_string()],
                    format!("no default table for `{input}`"),
                    format!("name its table, e.g. tables = {{ \"{input}\" = \"anomalies\" }}"),
                ));
            }
            if input.ends_with(".dead_letter") {
                problems.push(problem(
                    &["sinks", name, "inputs", &i.to_string()],
                    format!("a clickhouse sink does not store dead letters (`{input}`)"),
                    "send them to a file or Kafka sink".to_owned(),
                ));
            }
        }
        for input in self.tables.keys().filter(|key| !self.inputs.contains(key)) {
            problems.push(problem(
                &["sinks", name, "tables", input],
                format!("`{input}` in `tables` is not an input of this sink"),
                "add it to `inputs`, or remove it from `tables`".to_owned(),
            ));
        }
    }
}

impl RedisSinkConfig {
    /// The checks of this sink that need the whole pipeline.
    pub fn check(&self, config: &PipelineConfig, name: &str, problems: &mut Vec<Problem>) {
        self.batching.check(name, problems);
        if !(self.url.starts_with("redis://") || self.url.starts_with("rediss://")) {
            problems.push(problem(
                &["sinks", name, "url"],
                format!("`{}` is not a Redis URL", self.url),
                "e.g. url = \"redis://127.0.0.1:6379\"".to_owned(),
            ));
        }
        if self.series_length == 0 {
            problems.push(problem(
                &["sinks", name, "series_length"],
                "`series_length` must be at least 1".into(),
                "remove it for the default, 1000".to_owned(),
            ));
        }
        for (i, input) in self.inputs.iter().enumerate() {
            if is_stream_of_a_source(config, input) {
                problems.push(problem(
                    &["sinks", name, "inputs", &i.to_string()],
                    format!("a redis sink writes operator rows, and `{input}` is a source's stream"),
                    "read a window operator over it, e.g. inputs = [\"cpu_10s\"]".to_owned(),
                ));
            }
        }
    }
}

fn is_stream_of_a_source(config: &PipelineConfig, input: &str) -> bool {
    let source = input
        .strip_suffix(".late")
        .or_else(|| input.strip_suffix(".dead_letter"))
        .unwrap_or(input);
    config.sources.contains_key(source)
}

/// Whether `name` can be pasted into SQL as a quoted identifier as it is.
fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn yes() -> bool {
    true
}

fn default_clickhouse_url() -> String {
    "http://127.0.0.1:8123".to_owned()
}

fn default_database() -> String {
    "pulse".to_owned()
}

fn default_max_string_bytes() -> usize {
    65_536
}

fn default_redis_url() -> String {
    "redis://127.0.0.1:6379".to_owned()
}

fn default_key_prefix() -> String {
    "pulse:".to_owned()
}

fn default_ttl() -> DurationSpec {
    DurationSpec::from_secs(3600)
}

fn default_series_length() -> usize {
    1000
}

fn default_graph_uri() -> String {
    "bolt://127.0.0.1:7687".to_owned()
}

fn default_neo4j_user() -> String {
    "neo4j".to_owned()
}

fn default_neo4j_database() -> String {
    "neo4j".to_owned()
}

fn default_database_prefix() -> String {
    "pulse-".to_owned()
}

fn default_statement_rows() -> usize {
    1000
}

fn default_max_rows_per_file() -> usize {
    1_000_000
}

fn default_row_group_rows() -> usize {
    65_536
}

fn default_batch_size() -> usize {
    10_000
}

fn default_batch_timeout() -> DurationSpec {
    DurationSpec::from_secs(1)
}

fn default_buffer_batches() -> usize {
    64
}

/// Points the gateway's query API at the window history of the pipeline's
/// first `clickhouse` sink that writes window rows to `window_aggregates`,
/// unless `[gateway] history` names one itself.
pub(super) fn fill_in_history(config: &mut PipelineConfig) {
    if config.gateway.as_ref().is_none_or(|gateway| gateway.history.is_some()) {
        return;
    }
    let history = config.sinks.values().find_map(|sink| {
        let super::SinkConfig::Clickhouse(clickhouse) = sink else {
            return None;
        };
        let writes_windows = clickhouse.inputs.iter().any(|input| {
            config
                .operators
                .get(input)
                .is_some_and(|operator| operator.as_window().is_some())
                && clickhouse.table_of(config, input) == Some(pulse_sinks::clickhouse::Table::WindowAggregates)
        });
        writes_windows.then(|| pulse_gateway::live::history::HistoryConfig {
            user: clickhouse.user.clone(),
            password: clickhouse.password.clone(),
            ..pulse_gateway::live::history::HistoryConfig::new(&clickhouse.url, &clickhouse.database)
        })
    });
    if let Some(gateway) = config.gateway.as_mut() {
        gateway.history = history;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_names_are_plain_identifiers() {
        assert!(is_identifier("pulse") && is_identifier("_p2"));
        for bad in ["", "2p", "p-q", "p`; DROP", "p q"] {
            assert!(!is_identifier(bad), "{bad}");
        }
    }
}
