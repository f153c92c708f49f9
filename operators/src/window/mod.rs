//! Event-time windows: tumbling, hopping and session windows with aggregates.
//!
//! Every (window, key) is finished on the worker its key hashes to, whatever
//! the number of workers. Tumbling and hopping windows are pre-aggregated where
//! the events are read (a combiner, as Flink's local aggregation): each worker
//! folds its own events into partial [`Accumulator`](crate::Accumulator)s and
//! only those partials are exchanged by key when the window closes, instead of
//! every event. Session windows exchange the events themselves, since a session's
//! extent depends on all of its key's events.
//! The timely timestamp of an event is its event time coarsened to the engine
//! granule, and the input frontier is the sources' watermark: a window closes,
//! emitting one [`WindowRow`] per key, as soon as the frontier reaches its end.
//! Rows of a window are sent at the last granule before the window end, so a
//! downstream operator sees them complete when its own frontier passes that time.

pub mod key;
pub mod row;
pub mod spec;
pub mod state;

use std::collections::BTreeMap;

use metrics::{Counter, Gauge};
use pulse_core::time::coarsen;
use pulse_core::{Event, EventTime, SessionProgress, SessionReporter, Shutdown};
use serde::Serialize;
use serde::de::DeserializeOwned;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::Stream;
use timely::dataflow::channels::pact::ParallelizationContract;
use timely::dataflow::channels::pact::{Exchange, Pipeline};
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::{Capability, InputCapability};

use crate::aggregate::Aggregate;
pub use key::{KeyField, KeySpec, KeyValues};
pub use row::{WindowRow, WindowSchema};
pub use spec::WindowSpec;
pub use state::{WindowPartial, WindowState};

/// What a window operator computes.
#[derive(Clone, Debug, PartialEq)]
pub struct WindowConfig {
    /// Window shape.
    pub spec: WindowSpec,
    /// Fields to group by.
    pub key: Vec<KeyField>,
    /// Aggregates per (window, key), in output order.
    pub aggregates: Vec<Aggregate>,
    /// The engine's time granule in ms: timestamps are event times rounded down to it.
    pub granule_ms: u64,
    /// Rows whose output time is before this were delivered by an earlier run
    /// that this one resumes (from committed Kafka offsets): they are not
    /// emitted again, since replayed input would give only part of them.
    /// 0 for a fresh run.
    pub delivered_before: EventTime,
    /// Where session windows report how far they have settled, so that
    /// sources can commit what went into them (see [`SessionProgress`]);
    /// `None` when nothing commits. Ignored by other window shapes.
    pub session_progress: Option<SessionProgress>,
}

/// Windows over a stream of events.
pub trait WindowExt<'scope> {
    /// Groups events into windows per key and emits one row per (window, key)
    /// when the frontier passes the window's end.
    ///
    /// When the input ends because `shutdown` fired, the windows still open are
    /// incomplete: they are discarded and counted
    /// (`pulse_window_discarded_windows_total`) instead of emitted.
    ///
    /// # Examples
    /// ```
    /// use pulse_core::{Event, Shutdown};
    /// use pulse_operators::window::{WindowConfig, WindowExt, WindowSpec};
    /// use timely::dataflow::operators::capture::{Capture, Event as Captured};
    /// use timely::dataflow::operators::ToStream;
    ///
    /// let events: Vec<Event> = (0..30u64)
    ///     .map(|i| Event::from_json(format!(
    ///         r#"{{"ts":{},"tenant":"acme","source":"h","kind":"metric","metric":"cpu","value":{i}}}"#, i * 1000
    ///     ).as_bytes()).unwrap())
    ///     .collect();
    /// let config = WindowConfig {
    ///     spec: WindowSpec::Tumbling { size: "10s".parse().unwrap() },
    ///     key: vec!["tenant".parse().unwrap()],
    ///     aggregates: vec!["count".parse().unwrap(), "avg".parse().unwrap()],
    ///     granule_ms: 100,
    ///     delivered_before: 0,
    ///     session_progress: None,
    /// };
    /// let captured = timely::example(move |scope| {
    ///     events.to_stream(scope).window("cpu_10s", &config, &Shutdown::new()).capture()
    /// });
    /// let rows: Vec<_> = captured.try_iter()
    ///     .flat_map(|message| match message { Captured::Messages(_, rows) => rows, _ => Vec::new() })
    ///     .collect();
    /// assert_eq!(rows.len(), 3);
    /// assert_eq!(rows[0].value("avg").unwrap().as_f64(), Some(4.5));
    /// ```
    fn window(
        self,
        name: &str,
        config: &WindowConfig,
        shutdown: &Shutdown,
    ) -> Stream<'scope, EventTime, Vec<WindowRow>>;
}

impl<'scope> WindowExt<'scope> for Stream<'scope, EventTime, Vec<Event>> {
    fn window(
        self,
        name: &str,
        config: &WindowConfig,
        shutdown: &Shutdown,
    ) -> Stream<'scope, EventTime, Vec<WindowRow>> {
        let key = KeySpec::new(config.key.clone());
        let new_state = || WindowState::new(config.spec, key.clone(), config.aggregates.clone());
        let labels = [("component", name.to_owned())];
        let received = metrics::counter!("pulse_component_received_events_total", &labels);
        let sent = metrics::counter!("pulse_component_sent_events_total", &labels);
        let delay = metrics::histogram!("pulse_window_result_delay_seconds", &labels);
        let redelivered = Redelivery {
            delivered_before: config.delivered_before,
            granule_ms: config.granule_ms,
            skipped: metrics::counter!("pulse_window_redelivered_rows_skipped_total", &labels),
        };
        let stage = |stage: &str| Stage {
            name: name.to_owned(),
            granule_ms: config.granule_ms,
            shutdown: shutdown.clone(),
            discarded: metrics::counter!("pulse_window_discarded_windows_total", &labels),
            open_windows: metrics::gauge!("pulse_window_open_windows", "component" => name.to_owned(), "stage" => stage.to_owned()),
            session_progress: None,
        };

        if matches!(config.spec, WindowSpec::Session { .. }) {
            let route = key.clone();
            let stage = Stage {
                session_progress: config.session_progress.as_ref().map(SessionProgress::register),
                ..stage("session")
            };
            return stage.run(
                self,
                Exchange::new(move |event: &Event| route.hash_event(event)),
                new_state(),
                move |state, events, hold| {
                    received.increment(events.len() as u64);
                    events.iter().for_each(|event| state.insert(event, &mut *hold));
                },
                move |state, frontier| {
                    let rows = redelivered.skip_delivered(state.close(frontier));
                    record_results(&rows, &sent, &delay);
                    rows.into_iter().map(|row| (row.window_end, row)).collect()
                },
            );
        }

        let partials = stage("combine").run(
            self,
            Pipeline,
            new_state(),
            move |state, events, hold| {
                received.increment(events.len() as u64);
                events.iter().for_each(|event| state.insert(event, &mut *hold));
            },
            |state, frontier| state.close_partials(frontier).into_iter().map(|p| (p.end, p)).collect(),
        );
        stage("merge").run(
            partials,
            Exchange::new(|partial: &WindowPartial| partial.hash),
            new_state(),
            |state, partials, hold| {
                for partial in partials.drain(..) {
                    hold(partial.end);
                    state.merge(partial);
                }
            },
            move |state, frontier| {
                let rows = redelivered.skip_delivered(state.close(frontier));
                record_results(&rows, &sent, &delay);
                rows.into_iter().map(|row| (row.window_end, row)).collect()
            },
        )
    }
}

/// Drops the rows a resumed run's predecessor already delivered.
#[derive(Clone)]
struct Redelivery {
    delivered_before: EventTime,
    granule_ms: u64,
    skipped: Counter,
}

impl Redelivery {
    fn skip_delivered(&self, mut rows: Vec<WindowRow>) -> Vec<WindowRow> {
        if self.delivered_before > 0 {
            let before = rows.len();
            rows.retain(|row| output_time(row.window_end, self.granule_ms) >= self.delivered_before);
            self.skipped.increment((before - rows.len()) as u64);
        }
        rows
    }
}

/// The time a window's rows are sent at: the last granule before its end, at
/// or after the time of every record in it, and complete downstream as soon as
/// the frontier reaches the end.
pub fn output_time(end: EventTime, granule_ms: u64) -> EventTime {
    coarsen(end - 1, granule_ms)
}

/// Counts emitted rows and records, per row, how long after its window's end
/// (in wall-clock time) it was emitted: the result latency of live data, whose
/// event time follows the clock. Windows that ended over an hour ago (replays
/// of old data) are not recorded: their delay says nothing about latency.
fn record_results(rows: &[WindowRow], sent: &Counter, delay: &metrics::Histogram) {
    const LIVE_MS: u64 = 3_600_000;
    sent.increment(rows.len() as u64);
    if rows.is_empty() {
        return;
    }
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    for row in rows {
        if let Some(late_by) = now_ms.checked_sub(row.window_end).filter(|ms| *ms < LIVE_MS) {
            delay.record(late_by as f64 / 1e3);
        }
    }
}

/// One windowed operator: absorbs records into a [`WindowState`], holds a
/// capability for each open window's output time, and closes windows as the
/// input frontier passes their ends.
struct Stage {
    name: String,
    granule_ms: u64,
    shutdown: Shutdown,
    discarded: Counter,
    open_windows: Gauge,
    /// Where a session stage reports how far it has settled after each close.
    session_progress: Option<SessionReporter>,
}

impl Stage {
    /// Builds the operator. `absorb` folds a batch into the state and calls
    /// `hold(end)` for each window end it touches; `close` removes the windows
    /// ending at or before the frontier and returns their output with its end.
    fn run<'scope, In, Out, P>(
        self,
        input: Stream<'scope, EventTime, Vec<In>>,
        pact: P,
        mut state: WindowState,
        mut absorb: impl FnMut(&mut WindowState, &mut Vec<In>, &mut dyn FnMut(EventTime)) + 'static,
        mut close: impl FnMut(&mut WindowState, EventTime) -> Vec<(EventTime, Out)> + 'static,
    ) -> Stream<'scope, EventTime, Vec<Out>>
    where
        In: Clone + Serialize + DeserializeOwned + 'static,
        Out: Clone + 'static,
        P: ParallelizationContract<EventTime, Vec<In>>,
    {
        let Stage {
            name,
            granule_ms,
            shutdown,
            discarded,
            open_windows,
            session_progress,
        } = self;
        let output_time = move |end: EventTime| output_time(end, granule_ms);
        input.unary_frontier::<CapacityContainerBuilder<Vec<Out>>, _, _, _>(pact, &name.clone(), move |_, _| {
            let mut capabilities: BTreeMap<EventTime, Capability<EventTime>> = BTreeMap::new();
            let mut closed_up_to: Option<EventTime> = None;
            move |(input, frontier), output| {
                input.for_each_stamp(|capability: InputCapability<EventTime>, batches| {
                    let mut last_time = None;
                    let mut hold = |end: EventTime| {
                        let time = output_time(end);
                        if last_time != Some(time) {
                            last_time = Some(time);
                            capabilities.entry(time).or_insert_with(|| capability.delayed(&time, 0));
                        }
                    };
                    for batch in batches {
                        absorb(&mut state, batch, &mut hold);
                    }
                });

                let interrupted = shutdown.is_triggered();
                let close_to = match frontier.frontier().first() {
                    // Once stopping, the frontier no longer means "complete": sources
                    // drop their capabilities while records are still in flight.
                    Some(_) if interrupted => return,
                    Some(time) => *time,
                    None => EventTime::MAX,
                };
                if closed_up_to.is_some_and(|done| done >= close_to) {
                    return;
                }
                closed_up_to = Some(close_to);
                if interrupted {
                    let open = state.discard();
                    if open > 0 {
                        tracing::debug!(component = %name, windows = open, "discarded incomplete windows at shutdown");
                    }
                    discarded.increment(open as u64);
                } else {
                    let mut closed = close(&mut state, close_to).into_iter().peekable();
                    while let Some((end, record)) = closed.next() {
                        let time = output_time(end);
                        let mut session = output.session(&capabilities[&time]);
                        session.give(record);
                        while let Some((_, next)) = closed.next_if(|(e, _)| output_time(*e) == time) {
                            session.give(next);
                        }
                    }
                    if let Some(progress) = &session_progress {
                        progress.report(close_to, state.earliest_session_start());
                    }
                }
                // Every window still open ends after the frontier, so it needs no
                // capability earlier than the frontier.
                capabilities.retain(|time, _| close_to != EventTime::MAX && *time >= close_to);
                open_windows.set(state.open_windows() as f64);
            }
        })
    }
}
