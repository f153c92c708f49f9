//! The operators a pipeline file can use: one config type in one module each,
//! behind the closed [`OperatorConfig`](crate::config::OperatorConfig) enum.
//!
//! Between operators, and into sinks, flow typed [`Row`]s: every operator
//! output has a [`RowSchema`] known before anything runs. An operator config
//! says which streams it reads ([`Operator::inputs`]), checks what they carry
//! and declares the schema of the rows it emits ([`Operator::check`]), names
//! the parts of source events it reads ([`Operator::projection`]), and builds
//! its part of each worker's dataflow ([`Operator::build`]). The planner and
//! the validator know operators only through this trait, so adding one is a
//! module here and a variant (with its match arm) in `OperatorConfig`.
//!
//! An operator that can refuse input (a value that is not a number) says so
//! ([`Operator::refuses_input`]) and offers `NAME.dead_letter` beside its
//! rows, which sinks may read like a source's; unread, its dead letters go to
//! the engine's dead-letter file.

pub mod anomaly;
pub mod filter;
pub mod forecast;
pub mod incident_metrics;
pub mod incidents;
pub mod onnx;
pub mod series;
pub mod window;

use pulse_core::{DeadLetter, Event, EventTime, Projection, Row, RowSchema, SessionProgress, Shutdown};
use std::sync::Arc;
use timely::dataflow::operators::Concatenate;
use timely::dataflow::{Scope, Stream};

use crate::config::EngineConfig;
use crate::config::validate::{Problem, StreamType};

/// One input of an operator as the validator sees it: its position in
/// `inputs` (for the place of a problem), its name and what it carries.
pub struct InputShape<'a> {
    /// Index in the operator's `inputs`.
    pub position: usize,
    /// The stream's name (`sensors`, `sensors.late`, `cpu_10s`).
    pub name: &'a str,
    /// What the stream carries.
    pub stream: &'a StreamType,
}

/// One input of an operator as built on a worker.
#[derive(Clone)]
pub enum InputStream<'scope> {
    /// A source's events (or its late events).
    Events(Stream<'scope, EventTime, Vec<Event>>),
    /// Another operator's rows.
    Rows(Stream<'scope, EventTime, Vec<Row>>),
}

/// What an operator is handed to build its part of one worker's dataflow.
pub struct BuildContext<'a, 'scope> {
    /// The operator's name in the pipeline, for logs and metrics.
    pub name: &'a str,
    /// The worker's dataflow scope.
    pub scope: Scope<'scope, EventTime>,
    /// Its inputs, in the order of its `inputs`.
    pub inputs: Vec<InputStream<'scope>>,
    /// The schema [`Operator::check`] declared for its output.
    pub output: Arc<RowSchema>,
    /// The engine's time granule in ms.
    pub granule_ms: u64,
    /// The run's stop signal.
    pub shutdown: &'a Shutdown,
    /// Output whose time is before this was delivered by the run this one
    /// resumes from (committed Kafka offsets); 0 for a fresh run.
    pub delivered_before: EventTime,
    /// Where session windows report how far they have settled, when the
    /// pipeline has any.
    pub session_progress: Option<SessionProgress>,
}

impl<'scope> BuildContext<'_, 'scope> {
    /// Its inputs merged into one stream of events, for an operator (`what`)
    /// whose validation lets it read sources only.
    pub fn take_events(&mut self, what: &str) -> Stream<'scope, EventTime, Vec<Event>> {
        let events: Vec<_> = std::mem::take(&mut self.inputs)
            .into_iter()
            .map(|input| match input {
                InputStream::Events(events) => events,
                InputStream::Rows(_) => unreachable!("validation lets {what} read events only"),
            })
            .collect();
        self.scope.concatenate(events)
    }

    /// Its inputs merged into one stream of rows, for an operator (`what`)
    /// whose validation lets it read other operators only.
    pub fn take_rows(&mut self, what: &str) -> Stream<'scope, EventTime, Vec<Row>> {
        let rows: Vec<_> = std::mem::take(&mut self.inputs)
            .into_iter()
            .map(|input| match input {
                InputStream::Rows(rows) => rows,
                InputStream::Events(_) => unreachable!("validation lets {what} read rows only"),
            })
            .collect();
        self.scope.concatenate(rows)
    }
}

/// What the planner and the validator ask of every operator config.
pub trait Operator {
    /// The streams it reads.
    fn inputs(&self) -> &[String];

    /// Checks the operator's settings and its inputs (every problem goes to
    /// `problems`, with its key path under `["operators", name]`), and returns
    /// the schema of the rows it emits, or `None` when problems leave it
    /// unknown.
    fn check(
        &self,
        name: &str,
        engine: &EngineConfig,
        inputs: &[InputShape<'_>],
        problems: &mut Vec<Problem>,
    ) -> Option<RowSchema>;

    /// The parts of a source's events it reads, when it reads a source.
    fn projection(&self) -> Projection;

    /// Whether it refuses some input as dead letters (then its build returns
    /// them, and the pipeline offers them as `NAME.dead_letter`).
    fn refuses_input(&self) -> bool {
        false
    }

    /// Builds the operator on one worker; its rows follow `context.output`.
    fn build<'scope>(&self, context: BuildContext<'_, 'scope>) -> OperatorStreams<'scope>;
}

/// What an operator built on one worker.
pub struct OperatorStreams<'scope> {
    /// Its rows, of the schema its check declared.
    pub rows: Stream<'scope, EventTime, Vec<Row>>,
    /// What it refused, when it [refuses input](Operator::refuses_input).
    pub dead_letters: Option<Stream<'scope, EventTime, Vec<DeadLetter>>>,
}
