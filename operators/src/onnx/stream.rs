//! [`OnnxExt::score_onnx`]: rows scored by ONNX models inside the dataflow.
//!
//! Rows stay on the worker that produced them (each worker has its own
//! sessions: `Session::run` takes `&mut self`). What arrives in one
//! activation is scored together, per timestamp, in batches of at most
//! `max_batch` rows; with `max_delay` rows may wait (holding their
//! capability, so the frontier waits too) for more to fill a batch, until
//! `max_batch` rows are pending, the delay has passed or the input ends.
//! Predictions leave at the time of their row.
//!
//! One activation scores at most [`BATCHES_PER_STEP`] batches; a backlog
//! (a replay, a burst) is scored over several steps, oldest rows first, so
//! that no single call keeps the worker from stepping for long: in a
//! cluster a worker that has not stepped for `stall_timeout` is taken for a
//! stuck one and ends its process.

use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use pulse_core::{EventTime, Row};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::Stream;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::core::OkErr;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::{Capability, InputCapability};

use super::{BatchScorer, OnnxStreamConfig, Outcome, Prediction, RefusedRow};

/// Most batches of `max_batch` rows scored in one activation (see the module docs).
pub const BATCHES_PER_STEP: usize = 4;

/// ONNX inference over a stream of rows.
pub trait OnnxExt<'scope> {
    /// Scores every row with the models of `config`; returns the predictions
    /// and the refused rows (a missing feature, an inference error, or — when
    /// the models could not be loaded — every row, with that reason).
    ///
    /// # Examples
    /// ```
    /// use std::sync::Arc;
    /// use pulse_core::row::{Column, ColumnType, Row, RowSchema, Value};
    /// use pulse_operators::onnx::{MissingPolicy, ModelPlan, ModelRegistry, OnnxExt, OnnxStreamConfig};
    /// use timely::dataflow::operators::capture::{Capture, Event};
    /// use timely::dataflow::operators::ToStream;
    ///
    /// let schema = Arc::new(RowSchema::new(vec![
    ///     Column::new("metric", ColumnType::Key),
    ///     Column::new("avg", ColumnType::Float),
    ///     Column::new("p95", ColumnType::Float),
    ///     Column::new("max", ColumnType::Float).nullable(),
    /// ]).unwrap());
    /// let rows: Vec<Row> = [Value::Float(80.0), Value::Null]
    ///     .into_iter()
    ///     .map(|max| Row::new(schema.clone(), vec![Value::from("cpu"), Value::Float(60.0), Value::Float(70.0), max]))
    ///     .collect();
    /// let config = OnnxStreamConfig {
    ///     registry: ModelRegistry::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/onnx/models")),
    ///     plan: ModelPlan::Single { model: "linear".into(), variants: Vec::new() },
    ///     features: vec!["avg".into(), "p95".into(), "max".into()],
    ///     missing: MissingPolicy::DeadLetter,
    ///     key: vec!["metric".into()],
    ///     max_batch: 64,
    ///     max_delay_ms: 0,
    ///     reload_interval_ms: 0,
    /// };
    /// let (scored, refused) = timely::example(move |scope| {
    ///     let (scored, refused) = rows.to_stream(scope).score_onnx("predict", &config);
    ///     (scored.capture(), refused.capture())
    /// });
    /// let refused: Vec<_> = refused.try_iter().flat_map(|e| match e { Event::Messages(_, d) => d, _ => Vec::new() }).collect();
    /// let scored: Vec<_> = scored.try_iter().flat_map(|e| match e { Event::Messages(_, d) => d, _ => Vec::new() }).collect();
    /// if std::env::var_os("ORT_DYLIB_PATH").is_some() {
    ///     assert_eq!((scored.len(), refused.len()), (1, 1));
    ///     assert_eq!(&*scored[0].version, "2", "the newest version is active");
    ///     assert!(scored[0].outputs[0].as_f64().unwrap() > 100.0);
    ///     assert_eq!(refused[0].reason, "feature `max` is missing (null)");
    /// } else {
    ///     // Without ONNX Runtime nothing is scored, nothing is lost: every row is refused.
    ///     assert_eq!(refused.len(), 2);
    ///     assert!(refused[0].reason.contains("ORT_DYLIB_PATH"));
    /// }
    /// ```
    fn score_onnx(
        self,
        name: &str,
        config: &OnnxStreamConfig,
    ) -> (
        Stream<'scope, EventTime, Vec<Prediction>>,
        Stream<'scope, EventTime, Vec<RefusedRow>>,
    );
}

impl<'scope> OnnxExt<'scope> for Stream<'scope, EventTime, Vec<Row>> {
    fn score_onnx(
        self,
        name: &str,
        config: &OnnxStreamConfig,
    ) -> (
        Stream<'scope, EventTime, Vec<Prediction>>,
        Stream<'scope, EventTime, Vec<RefusedRow>>,
    ) {
        let labels = [("component", name.to_owned())];
        let received = metrics::counter!("pulse_component_received_events_total", &labels);
        let sent = metrics::counter!("pulse_component_sent_events_total", &labels);
        let refusals = metrics::counter!("pulse_dead_letters_total", &labels);
        let mut scorer = BatchScorer::new(name, config).map_err(|error| {
            tracing::error!(component = %name, %error, "models not loaded: every row is refused");
            error.to_string()
        });
        let max_batch = config.max_batch.max(1);
        let max_delay = Duration::from_millis(config.max_delay_ms);
        let scope = self.scope();
        let outcomes =
            self.unary_frontier::<CapacityContainerBuilder<Vec<Outcome>>, _, _, _>(Pipeline, name, move |_, info| {
                let activator = scope.activator_for(Rc::clone(&info.address));
                let mut pending: BTreeMap<EventTime, (Capability<EventTime>, Vec<Row>)> = BTreeMap::new();
                let mut pending_rows = 0usize;
                let mut first_pending: Option<Instant> = None;
                // Rows left over from a step that scored its most: due at once.
                let mut backlog = false;
                let mut outcomes: Vec<Outcome> = Vec::new();
                move |(input, frontier), output| {
                    input.for_each_stamp(|capability: InputCapability<EventTime>, batches| {
                        let Some(&time) = capability.least() else { return };
                        let (_, rows) = pending
                            .entry(time)
                            .or_insert_with(|| (capability.delayed(&time, 0), Vec::new()));
                        for batch in batches {
                            received.increment(batch.len() as u64);
                            pending_rows += batch.len();
                            rows.append(batch);
                        }
                        first_pending.get_or_insert_with(Instant::now);
                    });
                    let Some(since) = first_pending else { return };
                    let waited = since.elapsed();
                    let due =
                        pending_rows >= max_batch || waited >= max_delay || frontier.frontier().is_empty() || backlog;
                    if !due {
                        activator.activate_after(max_delay - waited);
                        return;
                    }
                    let mut budget = max_batch.saturating_mul(BATCHES_PER_STEP);
                    while budget > 0 {
                        let Some(mut oldest) = pending.first_entry() else { break };
                        let (capability, rows) = oldest.get_mut();
                        let capability = capability.clone();
                        let rows = if rows.len() <= budget {
                            oldest.remove().1
                        } else {
                            rows.drain(..budget).collect()
                        };
                        budget -= rows.len();
                        pending_rows -= rows.len();
                        match &mut scorer {
                            Ok(scorer) => scorer.score(rows, &mut outcomes),
                            Err(reason) => outcomes.extend(rows.into_iter().map(|row| {
                                Outcome::Refused(RefusedRow {
                                    row,
                                    reason: reason.clone(),
                                })
                            })),
                        }
                        let refused = outcomes.iter().filter(|o| matches!(o, Outcome::Refused(_))).count();
                        refusals.increment(refused as u64);
                        sent.increment((outcomes.len() - refused) as u64);
                        output.session(&capability).give_iterator(outcomes.drain(..));
                    }
                    // What is left is scored in the next steps, without waiting again.
                    backlog = !pending.is_empty();
                    if backlog {
                        activator.activate();
                    } else {
                        first_pending = None;
                    }
                }
            });
        outcomes.ok_err(|outcome| match outcome {
            Outcome::Scored(prediction) => Ok(prediction),
            Outcome::Refused(refused) => Err(refused),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use pulse_core::row::{Column, ColumnType, RowSchema, Value};
    use timely::dataflow::operators::ToStream;
    use timely::dataflow::operators::capture::{Capture, Event};

    use super::*;
    use crate::onnx::{MissingPolicy, ModelPlan, ModelRegistry};

    /// A backlog of many steps' worth comes out whole: every row once, scored
    /// or refused (refused without ONNX Runtime), none lost between steps.
    #[test]
    fn a_backlog_is_scored_over_several_steps_and_every_row_comes_out_once() {
        let schema = Arc::new(
            RowSchema::new(vec![
                Column::new("metric", ColumnType::Key),
                Column::new("avg", ColumnType::Float),
                Column::new("p95", ColumnType::Float),
                Column::new("max", ColumnType::Float),
            ])
            .unwrap(),
        );
        let rows: Vec<Row> = (0..1_000)
            .map(|i| {
                let avg = Value::Float(f64::from(i));
                let values = vec![Value::from("cpu"), avg, Value::Float(70.0), Value::Float(80.0)];
                Row::new(schema.clone(), values)
            })
            .collect();
        let config = OnnxStreamConfig {
            registry: ModelRegistry::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/onnx/models")),
            plan: ModelPlan::Single {
                model: "linear".into(),
                variants: Vec::new(),
            },
            features: vec!["avg".into(), "p95".into(), "max".into()],
            missing: MissingPolicy::DeadLetter,
            key: vec!["metric".into()],
            max_batch: 16,
            max_delay_ms: 0,
            reload_interval_ms: 0,
        };
        let (scored, refused) = timely::example(move |scope| {
            let (scored, refused) = rows.to_stream(scope).score_onnx("predict", &config);
            (scored.capture(), refused.capture())
        });
        let mut seen: Vec<f64> = scored
            .try_iter()
            .flat_map(|e| match e {
                Event::Messages(_, d) => d,
                _ => Vec::new(),
            })
            .map(|prediction| prediction.row.get("avg").unwrap().as_f64().unwrap())
            .collect();
        seen.extend(
            refused
                .try_iter()
                .flat_map(|e| match e {
                    Event::Messages(_, d) => d,
                    _ => Vec::new(),
                })
                .map(|refused| refused.row.get("avg").unwrap().as_f64().unwrap()),
        );
        seen.sort_by(f64::total_cmp);
        let all: Vec<f64> = (0..1_000).map(f64::from).collect();
        assert_eq!(seen, all, "16 rows a batch, 64 a step: 16 steps, every row once");
    }
}
