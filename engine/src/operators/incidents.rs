//! `type = "incidents"`: incidents and their ranked root causes, over
//! sources of `k8s_event`, `log`, `metric` and `topology` events.
//!
//! The computation is `pulse_operators::incidents` (differential dataflow);
//! this module reads its settings from a pipeline file and turns each
//! incident's final report (once closed and settled) into a row: `tenant`,
//! `incident_id` (keys), `opened_at`, `closed_at`, the symptom's `kind`,
//! `namespace` and `name`, its `reason`, the best cause (`top_cause`,
//! `top_confidence`) and every ranked cause as JSON (`causes`); see
//! [`IncidentsOperator::row_schema`].

use std::sync::Arc;

use pulse_core::EventTime;
use pulse_core::row::{Column, ColumnType, Row, RowSchema, SchemaError, Value};
use pulse_core::{DurationSpec, Projection};
use pulse_operators::incidents::cluster::ClusterSettings;
use pulse_operators::incidents::rank::Ranker;
use pulse_operators::incidents::settled::SettledExt;
use pulse_operators::incidents::{IncidentCounters, IncidentReport, IncidentsConfig, IncidentsExt};
use serde::Deserialize;
use timely::dataflow::Stream;
use timely::dataflow::operators::vec::Map;

use super::incident_metrics::export_incident_metrics;
use super::{BuildContext, InputShape, Operator, OperatorStreams};
use crate::config::EngineConfig;
use crate::config::validate::{Problem, StreamType, problem};

/// The settings of an incidents operator, as written in a pipeline file.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IncidentsOperator {
    /// Streams of events to read.
    pub inputs: Vec<String>,
    /// How far before an incident's first error causes are looked for (default 15m).
    #[serde(default = "default_lookback")]
    pub lookback: DurationSpec,
    /// An incident closes after this long without errors (default 2m).
    #[serde(default = "default_quiet")]
    pub quiet: DurationSpec,
    /// Clock skew allowed between sources (default 5s).
    #[serde(default = "default_skew")]
    pub skew: DurationSpec,
    /// `causal` (default) or `baseline` (0.4·temporal + 0.3·distance + 0.3·domain).
    #[serde(default)]
    pub ranker: Ranker,
}

fn default_lookback() -> DurationSpec {
    DurationSpec::from_secs(15 * 60)
}

fn default_quiet() -> DurationSpec {
    DurationSpec::from_secs(2 * 60)
}

fn default_skew() -> DurationSpec {
    DurationSpec::from_secs(5)
}

impl IncidentsOperator {
    /// The operator's settings for the dataflow.
    pub fn config(&self) -> IncidentsConfig {
        let defaults = IncidentsConfig::default();
        IncidentsConfig {
            lookback_ms: self.lookback.as_millis(),
            skew_ms: self.skew.as_millis(),
            cluster: ClusterSettings {
                quiet_ms: self.quiet.as_millis(),
                ..defaults.cluster
            },
            ranker: self.ranker,
            ..defaults
        }
    }

    /// The columns of its rows.
    ///
    /// # Examples
    /// ```
    /// use pulse::operators::incidents::IncidentsOperator;
    ///
    /// let schema = IncidentsOperator::row_schema().unwrap();
    /// let names: Vec<&str> = schema.columns().iter().map(|c| c.name.as_str()).collect();
    /// assert_eq!(names[..3], ["tenant", "incident_id", "opened_at"]);
    /// assert!(names.contains(&"causes") && names.contains(&"top_confidence"));
    /// ```
    pub fn row_schema() -> Result<RowSchema, SchemaError> {
        RowSchema::new(vec![
            Column::new("tenant", ColumnType::Key),
            Column::new("incident_id", ColumnType::Key),
            Column::new("opened_at", ColumnType::Time),
            Column::new("closed_at", ColumnType::Time).nullable(),
            Column::new("symptom_kind", ColumnType::Text),
            Column::new("symptom_namespace", ColumnType::Text),
            Column::new("symptom_name", ColumnType::Text),
            Column::new("symptom_reason", ColumnType::Text),
            Column::new("top_cause", ColumnType::Text).nullable(),
            Column::new("top_confidence", ColumnType::Float).nullable(),
            Column::new("causes", ColumnType::Text),
        ])
    }
}

/// A report as a row of [`IncidentsOperator::row_schema`].
pub fn report_row(report: &IncidentReport, schema: &Arc<RowSchema>) -> Row {
    let top = report.causes.first();
    let causes: Vec<serde_json::Value> = report
        .causes
        .iter()
        .map(|cause| {
            serde_json::json!({
                "resource": {"kind": cause.resource.kind, "namespace": cause.resource.namespace, "name": cause.resource.name},
                "event_ts": cause.event_ts,
                "reason": cause.reason,
                "confidence": cause.confidence(),
                "explanation": cause.explanation,
            })
        })
        .collect();
    let name = |r: &pulse_core::ResourceRef| format!("{}/{}/{}", r.kind, r.namespace, r.name);
    Row::new(
        Arc::clone(schema),
        vec![
            Value::from(report.tenant.as_str()),
            Value::from(report.incident_id.as_str()),
            Value::Time(report.opened_at),
            report.closed_at.map_or(Value::Null, Value::Time),
            Value::from(report.symptom.kind.as_str()),
            Value::from(report.symptom.namespace.as_str()),
            Value::from(report.symptom.name.as_str()),
            Value::from(report.symptom_reason.as_str()),
            top.map_or(Value::Null, |cause| Value::from(name(&cause.resource).as_str())),
            top.map_or(Value::Null, |cause| Value::Float(cause.confidence())),
            Value::from(serde_json::Value::Array(causes).to_string().as_str()),
        ],
    )
}

impl Operator for IncidentsOperator {
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
        for input in inputs {
            match input.stream {
                StreamType::Events(_) | StreamType::Unknown => {}
                other => problems.push(problem(
                    &["operators", name, "inputs", &input.position.to_string()],
                    format!(
                        "`{}` produces {}, but incidents read events",
                        input.name,
                        other.describe()
                    ),
                    "read a source of k8s_event, log, metric and topology events".to_owned(),
                )),
            }
        }
        for (key, value) in [("lookback", self.lookback), ("quiet", self.quiet)] {
            if value.as_millis() == 0 {
                problems.push(problem(
                    &["operators", name, key],
                    format!("`{key}` is 0s"),
                    "set a positive duration, e.g. \"5m\"".to_owned(),
                ));
            }
        }
        Self::row_schema().ok()
    }

    fn projection(&self) -> Projection {
        // Metric labels name the pod or node a sample is about.
        Projection {
            source: false,
            labels: true,
        }
    }

    fn build<'scope>(&self, context: BuildContext<'_, 'scope>) -> OperatorStreams<'scope> {
        self.build_with_updates(context).0
    }
}

impl IncidentsOperator {
    /// Builds the operator and also returns its live answer: each report
    /// inserted into the incident collection, i.e. every new version of an
    /// incident (opened, joined, re-ranked, closed), in event-time order per incident.
    pub fn build_with_updates<'scope>(
        &self,
        mut context: BuildContext<'_, 'scope>,
    ) -> (OperatorStreams<'scope>, Stream<'scope, EventTime, Vec<IncidentReport>>) {
        let events = context.take_events("incidents");
        let config = self.config();
        let counters = Arc::new(IncidentCounters::default());
        let schema: Arc<RowSchema> = context.output;
        let reports = events.incidents(context.name, &config, &counters);
        export_incident_metrics(reports.inner.clone(), context.name, counters);
        let updates = reports
            .inner
            .clone()
            .flat_map(|(report, _time, diff)| (diff > 0).then_some(report));
        let rows = reports
            .settled(context.name, config.settle_ms)
            .map(move |report| report_row(&report, &schema));
        let streams = OperatorStreams {
            rows,
            dead_letters: None,
        };
        (streams, updates)
    }
}
