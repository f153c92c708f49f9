//! Event-time windows: tumbling, hopping and session windows with aggregates.
//!
//! The operator exchanges events by key hash, so every event of a key reaches
//! the same worker whatever the number of workers, and keeps a [`WindowState`].
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

use pulse_core::time::coarsen;
use pulse_core::{Event, EventTime, Shutdown};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::Stream;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::Capability;
use timely::dataflow::operators::generic::Operator;

use crate::aggregate::Aggregate;
pub use key::{KeyField, KeySpec, KeyValues};
pub use row::{RowSchema, WindowRow};
pub use spec::WindowSpec;
pub use state::WindowState;

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
        let route = key.clone();
        let granule = config.granule_ms;
        let shutdown = shutdown.clone();
        let mut state = WindowState::new(config.spec, key, config.aggregates.clone());
        let labels = [("component", name.to_owned())];
        let received = metrics::counter!("pulse_component_received_events_total", &labels);
        let sent = metrics::counter!("pulse_component_sent_events_total", &labels);
        let discarded = metrics::counter!("pulse_window_discarded_windows_total", &labels);
        let open_gauge = metrics::gauge!("pulse_window_open_windows", &labels);
        let name = name.to_owned();
        // The time a window's rows are sent at: the last granule before its end.
        let output_time = move |end: EventTime| coarsen(end - 1, granule);

        self.unary_frontier::<CapacityContainerBuilder<Vec<WindowRow>>, _, _, _>(
            Exchange::new(move |event: &Event| route.hash_event(event)),
            &name.clone(),
            move |_capability, _info| {
                let mut capabilities: BTreeMap<EventTime, Capability<EventTime>> = BTreeMap::new();
                let mut closed_up_to: Option<EventTime> = None;
                move |(input, frontier), output| {
                    let mut count = 0u64;
                    input.for_each_stamp(|capability, batches| {
                        let mut last_time = None;
                        for batch in batches {
                            count += batch.len() as u64;
                            for event in batch.iter() {
                                state.insert(event, |end| {
                                    let time = output_time(end);
                                    if last_time != Some(time) {
                                        last_time = Some(time);
                                        capabilities.entry(time).or_insert_with(|| capability.delayed(&time, 0));
                                    }
                                });
                            }
                        }
                    });
                    received.increment(count);

                    let (close_to, interrupted) = match frontier.frontier().first() {
                        Some(time) => (*time, false),
                        None => (EventTime::MAX, shutdown.is_triggered()),
                    };
                    if closed_up_to.is_some_and(|done| done >= close_to) {
                        return;
                    }
                    closed_up_to = Some(close_to);
                    if interrupted {
                        let open = state.discard();
                        if open > 0 {
                            tracing::info!(component = %name, windows = open, "discarded incomplete windows at shutdown");
                        }
                        discarded.increment(open as u64);
                    } else {
                        let rows = state.close(close_to);
                        sent.increment(rows.len() as u64);
                        let mut rows = rows.into_iter().peekable();
                        while let Some(row) = rows.next() {
                            let time = output_time(row.window_end);
                            let capability = &capabilities[&time];
                            let mut session = output.session(capability);
                            session.give(row);
                            while let Some(next) = rows.next_if(|r| output_time(r.window_end) == time) {
                                session.give(next);
                            }
                        }
                    }
                    capabilities.retain(|time, _| *time >= close_to && close_to != EventTime::MAX);
                    open_gauge.set(state.open_windows() as f64);
                }
            },
        )
    }
}
