//! `type = "window"`: event-time windows with aggregates per key, over events.
//!
//! Its rows are `window_start`, `window_end` (event times), the key fields
//! (keys), then the aggregates (`count` an integer, the others floats); see
//! [`WindowSchema::row_schema`].

use std::collections::BTreeSet;
use std::sync::Arc;

use pulse_core::{EventKind, Projection, RowSchema};
use pulse_operators::Aggregate;
use pulse_operators::window::{KeyField, WindowConfig, WindowExt, WindowSchema, WindowSpec};
use serde::Deserialize;
use timely::dataflow::operators::vec::Map;

use super::{BuildContext, InputShape, Operator, OperatorStreams};
use crate::config::EngineConfig;
use crate::config::validate::{Problem, StreamType, problem};

/// The settings of a window operator, as written in a pipeline file.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowOperator {
    /// Streams of events to read.
    pub inputs: Vec<String>,
    /// `{ tumbling = "10s" }`, `{ hopping = "1m", slide = "10s" }` or `{ session = "30s" }`.
    pub window: WindowSpec,
    /// Fields to group by (default: none, one group).
    #[serde(default)]
    pub key: Vec<KeyField>,
    /// Aggregates per (window, key) (default `["count"]`).
    #[serde(default = "default_aggregates")]
    pub aggregates: Vec<Aggregate>,
}

fn default_aggregates() -> Vec<Aggregate> {
    vec![Aggregate::Count]
}

impl WindowOperator {
    /// The columns of its rows, before the typed [`RowSchema`].
    fn window_schema(&self) -> WindowSchema {
        WindowSchema::new(
            self.key.iter().map(ToString::to_string).collect(),
            self.aggregates.clone(),
        )
    }
}

impl Operator for WindowOperator {
    fn inputs(&self) -> &[String] {
        &self.inputs
    }

    fn check(
        &self,
        name: &str,
        engine: &EngineConfig,
        inputs: &[InputShape<'_>],
        problems: &mut Vec<Problem>,
    ) -> Option<RowSchema> {
        if let Err(message) = self.window.check_granule(engine.granule.as_millis().max(1)) {
            problems.push(problem(
                &["operators", name, "window"],
                message,
                "change the window, or `granule` in [engine]".to_owned(),
            ));
        }
        let mut kinds = BTreeSet::new();
        for input in inputs {
            match input.stream {
                StreamType::Events(of_input) => kinds.extend(of_input.iter().copied()),
                StreamType::Unknown => {}
                other => problems.push(problem(
                    &["operators", name, "inputs", &input.position.to_string()],
                    format!(
                        "`{}` produces {}, but a window reads events",
                        input.name,
                        other.describe()
                    ),
                    "read a source (or a source's `.late` output)".to_owned(),
                )),
            }
        }
        if self.aggregates.is_empty() {
            problems.push(problem(
                &["operators", name, "aggregates"],
                "`aggregates` is empty".into(),
                "list at least one, e.g. [\"count\", \"avg\"]".to_owned(),
            ));
        }
        let mut seen = BTreeSet::new();
        for (i, aggregate) in self.aggregates.iter().enumerate() {
            let path = ["operators", name, "aggregates", &i.to_string()];
            if !seen.insert(aggregate.to_string()) {
                problems.push(problem(
                    &path,
                    format!("aggregate `{aggregate}` is listed twice"),
                    "remove the repetition".to_owned(),
                ));
            }
            if aggregate.needs_value() && !kinds.is_empty() && !kinds.contains(&EventKind::Metric) {
                let have: Vec<&str> = kinds.iter().map(|k| k.as_str()).collect();
                problems.push(problem(
                    &path,
                    format!(
                        "aggregate `{aggregate}` needs the numeric `value` of metric events, but the inputs of `{name}` carry only {} events",
                        have.join(", ")
                    ),
                    "remove it (only `count` works without values), or read a stream of metric events".to_owned(),
                ));
            }
        }
        let mut seen = BTreeSet::new();
        for (i, field) in self.key.iter().enumerate() {
            let path = ["operators", name, "key", &i.to_string()];
            if !seen.insert(field.to_string()) {
                problems.push(problem(
                    &path,
                    format!("key field `{field}` is listed twice"),
                    "remove the repetition".to_owned(),
                ));
            }
            if !kinds.is_empty() && !field.kinds().iter().any(|k| kinds.contains(k)) {
                let carriers: Vec<&str> = field.kinds().iter().map(|k| k.as_str()).collect();
                problems.push(problem(
                    &path,
                    format!(
                        "no event the inputs of `{name}` carry has the field `{field}` (only {} events do)",
                        carriers.join(", ")
                    ),
                    "group by a field these events have, e.g. tenant or source".to_owned(),
                ));
            }
        }
        // Repetitions, reported above, leave no schema.
        self.window_schema().row_schema().ok()
    }

    fn projection(&self) -> Projection {
        Projection {
            source: self.key.contains(&KeyField::Source),
            labels: self.key.iter().any(|field| matches!(field, KeyField::Label(_))),
        }
    }

    fn build<'scope>(&self, mut context: BuildContext<'_, 'scope>) -> OperatorStreams<'scope> {
        let events = context.take_events("windows");
        let config = WindowConfig {
            spec: self.window,
            key: self.key.clone(),
            aggregates: self.aggregates.clone(),
            granule_ms: context.granule_ms,
            delivered_before: context.delivered_before,
            session_progress: context.session_progress,
        };
        let schema: Arc<RowSchema> = context.output;
        let rows = events
            .window(context.name, &config, context.shutdown)
            .map(move |row| row.to_row(&schema));
        OperatorStreams {
            rows,
            dead_letters: None,
        }
    }
}
