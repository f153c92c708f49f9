//! [`ForecastExt::forecast`]: one [`SeriesForecaster`] per key inside the
//! dataflow, issuing forecasts on an event-time schedule.
//!
//! Points are exchanged by key hash (each key lives on one worker) and held
//! until the frontier passes their time, then taken in event-time order per
//! key (see [`HeldPoints`]). At every boundary of the schedule
//! ([`ForecastSchedule`]) each key issues one forecast from exactly the points
//! before the boundary: before taking its first point at or after the
//! boundary, or once the frontier passes the boundary, whichever comes first;
//! both give the same forecast, sent at the boundary's time. So the output is
//! the same on every replay and for every number of workers.
//!
//! A key without points for `idle_timeout_ms` stops issuing and is dropped.
//! Points the forecaster refuses (NaN, ±inf, absurd values or times, a time
//! not after the previous point's) come out as [`RefusedPoint`]s with the reason.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use pulse_core::{DurationSpec, EventTime, Shutdown};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::Stream;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::core::OkErr;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::{Capability, InputCapability};

use super::{ForecastConfig, ForecastError, ForecastPoint, SeriesForecaster, SeriesShape};
use crate::series::{HeldPoints, RefusedPoint, SeriesPoint};
use crate::window::KeyValues;

/// When forecasts are issued.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ForecastSchedule {
    /// At every multiple of this many ms of event time.
    Every(u64),
    /// At these event times (ascending), e.g. a backtest's origins.
    At(Arc<[EventTime]>),
}

impl ForecastSchedule {
    /// The first boundary strictly after `ts`.
    pub fn after(&self, ts: EventTime) -> Option<EventTime> {
        match self {
            ForecastSchedule::Every(every) => (ts / every).checked_add(1)?.checked_mul(*every),
            ForecastSchedule::At(times) => times.get(times.partition_point(|&t| t <= ts)).copied(),
        }
    }
}

/// What a forecast operator runs with.
#[derive(Clone, Debug, PartialEq)]
pub struct ForecastStreamConfig {
    /// The forecaster of every key.
    pub forecast: ForecastConfig,
    /// The spacing of the points, ms.
    pub step_ms: u64,
    /// When forecasts are issued.
    pub schedule: ForecastSchedule,
    /// A key without points for this long (event time, ms) stops issuing and is
    /// dropped; 0 keeps every key.
    pub idle_timeout_ms: u64,
}

/// One key's forecast issued at one boundary: every step up to the horizon.
#[derive(Clone, Debug, PartialEq)]
pub struct IssuedForecast {
    /// The series.
    pub key: KeyValues,
    /// The boundary it was issued at (it uses the points before it).
    pub issued_at: EventTime,
    /// The forecast points, one per step ahead of the key's last point.
    pub points: Vec<ForecastPoint>,
}

/// Forecasting over a stream of series points.
pub trait ForecastExt<'scope> {
    /// Forecasts every key on `config.schedule`; returns the forecasts (at
    /// their boundary's time) and the refused points (at their own).
    ///
    /// # Examples
    /// ```
    /// use pulse_core::Shutdown;
    /// use pulse_operators::forecast::{ForecastConfig, ForecastExt, ForecastSchedule, ForecastStreamConfig};
    /// use pulse_operators::series::SeriesPoint;
    /// use timely::dataflow::operators::capture::{Capture, Event};
    /// use timely::dataflow::operators::ToStream;
    ///
    /// let minute = 60_000u64;
    /// let points: Vec<SeriesPoint> = (0..600u64)
    ///     .map(|i| SeriesPoint {
    ///         key: vec![Some("temp".into())].into_boxed_slice(),
    ///         ts: i * minute,
    ///         value: if i % 60 < 30 { 10.0 } else { 20.0 },
    ///     })
    ///     .collect();
    /// let config = ForecastStreamConfig {
    ///     forecast: ForecastConfig { period: "1h".parse().unwrap(), horizon: "10m".parse().unwrap(),
    ///                                ..ForecastConfig::default() },
    ///     step_ms: minute,
    ///     schedule: ForecastSchedule::Every(60 * minute),
    ///     idle_timeout_ms: 0,
    /// };
    /// let (forecasts, refused) = timely::example(move |scope| {
    ///     let (forecasts, refused) = points.to_stream(scope).forecast("temp", &config, &Shutdown::new());
    ///     (forecasts.capture(), refused.capture())
    /// });
    /// let forecasts: Vec<_> = forecasts.try_iter().flat_map(|e| match e { Event::Messages(_, d) => d, _ => Vec::new() }).collect();
    /// let last = forecasts.last().unwrap();
    /// assert_eq!(last.issued_at, 540 * minute);
    /// assert_eq!(last.points.len(), 10);
    /// assert_eq!(last.points[0].ts, 540 * minute as i64);
    /// assert!((last.points[0].yhat - 10.0).abs() < 1.0);
    /// assert!(refused.try_iter().all(|e| !matches!(e, Event::Messages(..))));
    /// ```
    fn forecast(
        self,
        name: &str,
        config: &ForecastStreamConfig,
        shutdown: &Shutdown,
    ) -> (
        Stream<'scope, EventTime, Vec<IssuedForecast>>,
        Stream<'scope, EventTime, Vec<RefusedPoint>>,
    );
}

impl<'scope> ForecastExt<'scope> for Stream<'scope, EventTime, Vec<SeriesPoint>> {
    fn forecast(
        self,
        name: &str,
        config: &ForecastStreamConfig,
        shutdown: &Shutdown,
    ) -> (
        Stream<'scope, EventTime, Vec<IssuedForecast>>,
        Stream<'scope, EventTime, Vec<RefusedPoint>>,
    ) {
        let labels = [("component", name.to_owned())];
        let received = metrics::counter!("pulse_component_received_events_total", &labels);
        let sent = metrics::counter!("pulse_component_sent_events_total", &labels);
        let refusals = metrics::counter!("pulse_dead_letters_total", &labels);
        let keys_gauge = metrics::gauge!("pulse_forecast_keys", &labels);
        let (name, config, shutdown) = (name.to_owned(), config.clone(), shutdown.clone());
        let shape = config.forecast.shape(DurationSpec::from_millis(config.step_ms));
        if let Err(error) = &shape {
            tracing::error!(component = %name, %error, "every point will be refused");
        }
        let outcomes = self.unary_frontier::<CapacityContainerBuilder<Vec<Outcome>>, _, _, _>(
            Exchange::new(|point: &SeriesPoint| point.route()),
            &name.clone(),
            move |_, _| {
                let mut bank = ForecasterBank {
                    shape,
                    config,
                    keys: HashMap::new(),
                };
                let mut held = HeldPoints::default();
                let mut capabilities: BTreeMap<EventTime, Capability<EventTime>> = BTreeMap::new();
                // At or before every boundary still to be issued: forecasts are sent with it.
                let mut schedule_capability: Option<Capability<EventTime>> = None;
                move |(input, frontier), output| {
                    input.for_each_stamp(|capability: InputCapability<EventTime>, batches| {
                        // Messages sent under no capability claim no time: there are none here.
                        let Some(&time) = capability.least() else { return };
                        capabilities.entry(time).or_insert_with(|| capability.delayed(&time, 0));
                        if schedule_capability.as_ref().is_none_or(|held| *held.time() > time) {
                            schedule_capability = Some(capability.delayed(&time, 0));
                        }
                        for batch in batches {
                            received.increment(batch.len() as u64);
                            held.hold(time, batch);
                        }
                    });
                    let close_to = match frontier.frontier().first() {
                        Some(_) if shutdown.is_triggered() => {
                            held.discard();
                            capabilities.clear();
                            schedule_capability = None;
                            return;
                        }
                        Some(time) => *time,
                        None => EventTime::MAX,
                    };
                    let mut outcomes: Vec<(EventTime, Outcome)> = Vec::new();
                    for (time, points) in held.release(close_to) {
                        for point in points {
                            bank.take(time, point, &mut outcomes);
                        }
                    }
                    if close_to != EventTime::MAX {
                        bank.issue_up_to(close_to, &mut outcomes);
                        bank.evict_idle(close_to);
                    }
                    let mut issued = 0;
                    for (time, outcome) in outcomes {
                        let capability = match &outcome {
                            Outcome::Issued(forecast) => {
                                issued += 1;
                                let schedule = schedule_capability
                                    .as_ref()
                                    .expect("forecasts are issued only after input arrived");
                                schedule.delayed(&forecast.issued_at)
                            }
                            Outcome::Refused(_) => capabilities[&time].clone(),
                        };
                        output.session(&capability).give(outcome);
                    }
                    sent.increment(issued);
                    capabilities.retain(|time, _| *time >= close_to);
                    let next = bank.next_boundary().map_or(close_to, |b| b.min(close_to));
                    if close_to == EventTime::MAX {
                        schedule_capability = None;
                    } else if let Some(held) = &mut schedule_capability
                        && next > *held.time()
                    {
                        held.downgrade(&next);
                    }
                    keys_gauge.set(bank.keys.len() as f64);
                }
            },
        );
        outcomes.ok_err(move |outcome| match outcome {
            Outcome::Issued(forecast) => Ok(forecast),
            Outcome::Refused(refused) => {
                refusals.increment(1);
                Err(refused)
            }
        })
    }
}

/// What the keyed operator emits before the split.
#[derive(Clone, Debug)]
enum Outcome {
    Issued(IssuedForecast),
    Refused(RefusedPoint),
}

/// One key's forecaster and its place in the schedule.
struct KeyForecaster {
    forecaster: SeriesForecaster,
    /// The next boundary this key issues at.
    next_issue: Option<EventTime>,
    /// Event time of its newest point.
    last_ts: EventTime,
}

/// Every key's forecaster on one worker.
struct ForecasterBank {
    shape: Result<SeriesShape, ForecastError>,
    config: ForecastStreamConfig,
    keys: HashMap<KeyValues, KeyForecaster>,
}

impl ForecasterBank {
    /// Issues the key's forecasts due before `point`, then takes it.
    fn take(&mut self, time: EventTime, point: SeriesPoint, outcomes: &mut Vec<(EventTime, Outcome)>) {
        let shape = match &self.shape {
            Ok(shape) => *shape,
            Err(error) => {
                let reason = error.to_string();
                outcomes.push((time, Outcome::Refused(RefusedPoint { point, reason })));
                return;
            }
        };
        let schedule = &self.config.schedule;
        let fresh = || KeyForecaster {
            forecaster: SeriesForecaster::new(shape),
            next_issue: schedule.after(point.ts),
            last_ts: point.ts,
        };
        let state = self.keys.entry(point.key.clone()).or_insert_with(fresh);
        issue(state, &point.key, point.ts, &self.config, outcomes);
        let idle = self.config.idle_timeout_ms;
        if idle > 0 && state.last_ts.saturating_add(idle) < point.ts {
            // Idle for longer than the timeout: it starts afresh, as if it had been
            // dropped already (whether it was depends on how the frontier moved).
            *state = fresh();
        }
        if state.next_issue.is_none() {
            state.next_issue = schedule.after(point.ts);
        }
        match state.forecaster.update(point.ts as i64, point.value) {
            Ok(_) => state.last_ts = state.last_ts.max(point.ts),
            Err(error) => {
                let reason = error.to_string();
                outcomes.push((time, Outcome::Refused(RefusedPoint { point, reason })));
            }
        }
    }

    /// Issues every key's forecasts at the boundaries up to `frontier`.
    fn issue_up_to(&mut self, frontier: EventTime, outcomes: &mut Vec<(EventTime, Outcome)>) {
        for (key, state) in &mut self.keys {
            issue(state, key, frontier, &self.config, outcomes);
        }
    }

    /// Drops keys whose newest point is more than the idle timeout before `frontier`.
    fn evict_idle(&mut self, frontier: EventTime) {
        let idle = self.config.idle_timeout_ms;
        if idle > 0 {
            self.keys
                .retain(|_, state| state.last_ts.saturating_add(idle) >= frontier);
        }
    }

    /// The earliest boundary some key still has to issue at.
    fn next_boundary(&self) -> Option<EventTime> {
        self.keys.values().filter_map(|state| state.next_issue).min()
    }
}

/// Issues `state`'s forecasts at each of its boundaries up to `until`, while it is not idle.
fn issue(
    state: &mut KeyForecaster,
    key: &KeyValues,
    until: EventTime,
    config: &ForecastStreamConfig,
    outcomes: &mut Vec<(EventTime, Outcome)>,
) {
    let idle_after = match config.idle_timeout_ms {
        0 => EventTime::MAX,
        idle => state.last_ts.saturating_add(idle),
    };
    while let Some(boundary) = state.next_issue.filter(|&b| b <= until) {
        if boundary > idle_after {
            // Idle: no more forecasts until the key speaks again (or is dropped).
            state.next_issue = None;
            return;
        }
        let horizon = state.forecaster.shape().horizon;
        // A key still warming up issues nothing; other errors cannot happen at the configured horizon.
        if let Ok(points) = state.forecaster.forecast(horizon) {
            let forecast = IssuedForecast {
                key: key.clone(),
                issued_at: boundary,
                points,
            };
            outcomes.push((boundary, Outcome::Issued(forecast)));
        }
        state.next_issue = config.schedule.after(boundary);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_give_the_next_boundary() {
        let every = ForecastSchedule::Every(10);
        assert_eq!(every.after(0), Some(10));
        assert_eq!(every.after(9), Some(10));
        assert_eq!(every.after(10), Some(20));
        assert_eq!(every.after(u64::MAX), None);
        let at = ForecastSchedule::At(Arc::from(vec![5, 7, 30]));
        assert_eq!(at.after(0), Some(5));
        assert_eq!(at.after(5), Some(7));
        assert_eq!(at.after(30), None);
    }
}
