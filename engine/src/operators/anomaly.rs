//! `type = "anomaly"`: streaming anomaly detection per key, over a source's
//! metric events or another operator's rows (e.g. a window's `avg`).
//!
//! Its rows are the key columns, then `ts`, `value`, `score` (in [0, 1]),
//! `is_anomaly`, `severity` (`info`, `warning`, `critical`), `detectors` (those
//! that fired, comma-separated), `explanation`, `expected`, `lower`, `upper`
//! (the expected band; null before the key has statistics) and `warming_up`;
//! see [`AnomalyOperator::row_schema`]. Values that are not finite numbers go
//! to `NAME.dead_letter`. The detector is `pulse_operators::anomaly`'s; the
//! dataflow part is [`AnomalyExt`].

use std::path::PathBuf;
use std::sync::Arc;

use pulse_core::row::{Column, ColumnType, Row, RowSchema, SchemaError, Value};
use pulse_core::{DurationSpec, Projection};
use pulse_operators::anomaly::{AnomalyConfig, AnomalyExt, AnomalyStreamConfig, DetectorKind, Severity};
use serde::Deserialize;
use timely::dataflow::operators::vec::Map;

use super::series::{self, PointReader, SeriesSettings};
use super::{BuildContext, InputShape, InputStream, Operator, OperatorStreams};
use crate::config::EngineConfig;
use crate::config::validate::{Problem, problem};

/// The settings of an anomaly operator, as written in a pipeline file.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnomalyOperator {
    /// Streams to read: sources (metric events) or operators (rows).
    pub inputs: Vec<String>,
    /// For rows: the numeric column to watch (e.g. `avg`).
    #[serde(default)]
    pub value: Option<String>,
    /// For rows: the event-time column (default `window_end`, else `ts`).
    #[serde(default)]
    pub time: Option<String>,
    /// The key: event fields (default `tenant`, `source`, `metric`) or key
    /// columns of rows (default all of them).
    #[serde(default)]
    pub key: Option<Vec<String>>,
    /// Where model versions are written and reloaded from at start (default: not persisted).
    #[serde(default)]
    pub model_dir: Option<PathBuf>,
    /// A key without points for this long (event time) is dropped; "0s" keeps every key (default 1h).
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout: DurationSpec,
    /// The detector: its ensemble, thresholds and training (default: the
    /// configuration `pulse eval nab` scores).
    #[serde(default)]
    pub detector: AnomalyConfig,
}

fn default_idle_timeout() -> DurationSpec {
    DurationSpec::from_secs(3600)
}

impl AnomalyOperator {
    fn settings(&self) -> SeriesSettings<'_> {
        SeriesSettings {
            value: self.value.as_deref(),
            time: self.time.as_deref(),
            key: self.key.as_deref(),
        }
    }

    /// The columns of its rows, for a key of `key_names`.
    ///
    /// # Examples
    /// ```
    /// use pulse::operators::anomaly::AnomalyOperator;
    ///
    /// let schema = AnomalyOperator::row_schema(&["tenant".into(), "metric".into()]).unwrap();
    /// let names: Vec<&str> = schema.columns().iter().map(|c| c.name.as_str()).collect();
    /// assert_eq!(names[..4], ["tenant", "metric", "ts", "value"]);
    /// assert!(names.contains(&"score") && names.contains(&"explanation"));
    /// ```
    pub fn row_schema(key_names: &[String]) -> Result<RowSchema, SchemaError> {
        let key = key_names
            .iter()
            .map(|name| Column::new(name, ColumnType::Key).nullable());
        let columns = [
            Column::new("ts", ColumnType::Time),
            Column::new("value", ColumnType::Float),
            Column::new("score", ColumnType::Float),
            Column::new("is_anomaly", ColumnType::Bool),
            Column::new("severity", ColumnType::Text),
            Column::new("detectors", ColumnType::Text),
            Column::new("explanation", ColumnType::Text),
            Column::new("expected", ColumnType::Float).nullable(),
            Column::new("lower", ColumnType::Float).nullable(),
            Column::new("upper", ColumnType::Float).nullable(),
            Column::new("warming_up", ColumnType::Bool),
        ];
        RowSchema::new(key.chain(columns).collect())
    }
}

impl Operator for AnomalyOperator {
    fn inputs(&self) -> &[String] {
        &self.inputs
    }

    fn check(
        &self,
        name: &str,
        _engine: &EngineConfig,
        inputs: &[InputShape<'_>],
        problems: &mut Vec<Problem>,
    ) -> Option<RowSchema> {
        if let Err(message) = self.detector.validate() {
            problems.push(problem(
                &["operators", name, "detector"],
                message,
                "fix the value, or remove it for the default".to_owned(),
            ));
        }
        if let Some(dir) = &self.model_dir
            && dir.is_file()
        {
            problems.push(problem(
                &["operators", name, "model_dir"],
                format!("`{}` is a file; model versions are kept in a directory", dir.display()),
                "name a directory (it is created when missing)".to_owned(),
            ));
        }
        let series = series::resolve(name, &self.settings(), inputs, problems)?;
        series::output_schema(
            name,
            Self::row_schema(&series.key_names),
            "ts, value, score, …",
            problems,
        )
    }

    fn projection(&self) -> Projection {
        series::projection(self.key.as_deref())
    }

    fn refuses_input(&self) -> bool {
        true
    }

    fn build<'scope>(&self, context: BuildContext<'_, 'scope>) -> OperatorStreams<'scope> {
        let events = matches!(context.inputs.first(), Some(InputStream::Events(_)));
        let reader = PointReader::new(&self.settings(), events);
        let schema: Arc<RowSchema> = context.output;
        let key_names: Vec<String> = schema.keys().map(|c| c.name.clone()).collect();
        let config = AnomalyStreamConfig {
            detector: self.detector.clone(),
            model_dir: self.model_dir.clone(),
            idle_timeout_ms: self.idle_timeout.as_millis(),
        };
        let (scored, refused) = series::points(context.scope, context.inputs, &reader).detect_anomalies(
            context.name,
            &config,
            context.shutdown,
        );
        let rows = scored.map(move |scored| {
            let verdict = &scored.verdict;
            let detectors: Vec<&str> = verdict.detectors_fired.iter().map(|d| detector_name(*d)).collect();
            let mut values: Vec<Value> = series::key_values(&scored.point).collect();
            values.extend([
                Value::Time(scored.point.ts),
                Value::Float(scored.point.value),
                Value::Float(verdict.score),
                Value::Bool(verdict.is_anomaly),
                Value::from(severity_name(verdict.severity)),
                Value::from(detectors.join(",").as_str()),
                Value::from(verdict.explanation.as_str()),
                verdict.expected.map_or(Value::Null, Value::Float),
                verdict.band.map_or(Value::Null, |(lower, _)| Value::Float(lower)),
                verdict.band.map_or(Value::Null, |(_, upper)| Value::Float(upper)),
                Value::Bool(verdict.warming_up),
            ]);
            Row::new(Arc::clone(&schema), values)
        });
        OperatorStreams {
            rows,
            dead_letters: Some(series::dead_letters(context.name, &key_names, refused)),
        }
    }
}

/// The name a severity has in rows.
pub fn severity_name(severity: Severity) -> &'static str {
    match severity {
        Severity::Info => "info",
        Severity::Warning => "warning",
        Severity::Critical => "critical",
    }
}

/// The name a detector has in rows.
pub fn detector_name(detector: DetectorKind) -> &'static str {
    match detector {
        DetectorKind::RobustZ => "robust_z",
        DetectorKind::Ewma => "ewma",
        DetectorKind::IsolationForest => "isolation_forest",
        DetectorKind::Range => "range",
    }
}
