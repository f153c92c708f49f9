//! Property tests of event-time windows against a brute-force reference.
//!
//! Every window shape (tumbling, hopping with `size = k × slide`, session) and every
//! aggregate (count, sum, min, max, avg, stddev, p50, p95, p99) is run over random
//! streams with what real streams have: events out of order within the allowed
//! disorder, several keys (tenant × metric, sometimes `labels.region`, which some
//! events lack, so their key is null), gaps with no events (empty windows), windows
//! holding one event, extreme and negative values, and log events that only `count`
//! sees.
//!
//! The reference is deliberately naive and shares no code with the operator: for each
//! event it lists the windows that contain it by definition, it splits each key's
//! events (sorted by time) into sessions where two are at least the gap apart, and it
//! aggregates plain lists of values (naive sum, two-pass sample stddev, quantile =
//! `sorted[⌊q·(n − 1)⌋]`).
//!
//! Properties:
//! - `state_matches_reference` (and `..._at_huge_magnitudes`): a bare [`WindowState`]
//!   fed in arrival order and closed as a watermark-driven source would close it emits
//!   every (window, key) exactly once, never before the watermark reaches its end, as
//!   soon as it does, and holds state only for windows still open.
//! - `accumulators_merge_like_one`: two [`Accumulator`]s over the halves of a list,
//!   merged, finish like one accumulator over the whole list.
//! - `dataflow_matches_reference_on_1_to_3_workers`: the timely operator, fed through an
//!   unordered input that holds the watermark as its frontier, emits the reference's
//!   rows at the last granule before each window end, whether the events are dealt to
//!   1, 2 or 3 workers.
//! - `shutdown_emits_the_windows_the_watermark_passed` and
//!   `shutdown_discards_incomplete_windows`: after an interrupt the operator has
//!   emitted the windows the watermark passed, and nothing else.
//!
//! `state_matches_reference_near_f64_max`, `stddev_respects_the_spread_bound_at_huge_magnitudes`
//! and `shutdown_discards_incomplete_windows` each found a bug (sketch overflow, NaN
//! spread after merging into an empty accumulator, and a shutdown race) and now guard it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use pulse_core::time::coarsen;
use pulse_core::{DurationSpec, Event, EventBody, EventTime, LogRecord, Metric, ResourceRef, Shutdown};
use pulse_operators::sketch::{MIN_INDEXABLE, RELATIVE_ACCURACY};
use pulse_operators::window::{KeyField, KeySpec, WindowConfig, WindowExt, WindowRow, WindowSpec, WindowState};
use pulse_operators::{Accumulator, Aggregate, AggregateValue};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::ProbeHandle;
use timely::dataflow::operators::core::UnorderedInput;
use timely::dataflow::operators::{Inspect, Probe};

// ---------------------------------------------------------------------------
// Generated streams
// ---------------------------------------------------------------------------

const TENANTS: [&str; 2] = ["acme", "globex"];
const METRICS: [&str; 2] = ["cpu", "mem"];
/// `None`: the event has no `region` label, so its `labels.region` key is null.
const REGIONS: [Option<&str>; 3] = [Some("eu"), Some("us"), None];

/// The body of a generated event.
#[derive(Clone, Debug)]
enum Body {
    Metric {
        name: &'static str,
        value: f64,
        region: Option<&'static str>,
    },
    /// A log line: no value, no metric name, no labels.
    Log,
}

/// One generated event in the generator's own terms: the reference reads keys and
/// values from here rather than through the `KeySpec` and `Event::value` under test.
#[derive(Clone, Debug)]
struct Sample {
    ts: EventTime,
    tenant: &'static str,
    body: Body,
}

/// A grouping key as the reference sees it: tenant, metric and, optionally, region.
type Key = Vec<Option<String>>;

/// `(window_start, window_end, key)`: what identifies one output row.
type WindowId = (EventTime, EventTime, Key);

impl Sample {
    fn event(&self) -> Event {
        let body = match &self.body {
            Body::Metric { name, value, region } => EventBody::Metric(Metric {
                metric: (*name).into(),
                value: *value,
                labels: region.iter().map(|r| ("region".to_owned(), (*r).to_owned())).collect(),
            }),
            // `.into()`: whether the body is boxed is not this test's business.
            Body::Log => EventBody::Log(
                LogRecord {
                    resource: ResourceRef {
                        kind: "Pod".to_owned(),
                        namespace: "default".to_owned(),
                        name: "api-0".to_owned(),
                    },
                    level: "info".to_owned(),
                    message: "request served".to_owned(),
                }
                .into(),
            ),
        };
        Event {
            ts: self.ts,
            tenant: self.tenant.into(),
            source: "host-1".into(),
            body,
        }
    }

    fn key(&self, by_region: bool) -> Key {
        let (metric, region) = match &self.body {
            Body::Metric { name, region, .. } => (Some(*name), *region),
            Body::Log => (None, None),
        };
        let mut key = vec![Some(self.tenant.to_owned()), metric.map(str::to_owned)];
        if by_region {
            key.push(region.map(str::to_owned));
        }
        key
    }

    fn value(&self) -> Option<f64> {
        match self.body {
            Body::Metric { value, .. } => Some(value),
            Body::Log => None,
        }
    }
}

/// A random stream and the three windows to run over it.
#[derive(Clone, Debug)]
struct Scenario {
    /// Engine granule (ms); tumbling sizes and hopping slides are multiples of it.
    granule: u64,
    /// Allowed out-of-orderness (ms): the watermark lags the newest event by this much.
    disorder: u64,
    /// Whether `labels.region` is part of the key, besides tenant and metric.
    by_region: bool,
    /// One tumbling, one hopping and one session window.
    specs: [WindowSpec; 3],
    /// The events in arrival order; none is behind the watermark when it arrives.
    arrivals: Vec<Sample>,
}

fn ms(millis: u64) -> DurationSpec {
    DurationSpec::from_millis(millis)
}

/// Values of everyday streams plus the awkward ones: exact ties (quantile ranks),
/// zero, ±1e12 and tiny magnitudes, mixed in one window.
fn ordinary_value() -> BoxedStrategy<f64> {
    prop_oneof![
        4 => -1e3..1e3f64,
        2 => (-3i32..=3).prop_map(f64::from),
        1 => Just(0.0),
        1 => prop_oneof![Just(1e12), Just(-1e12), -1e12..1e12f64],
        1 => prop_oneof![Just(1e-6), 1e-6..1e-5f64, -1e-5..-1e-6f64],
    ]
    .boxed()
}

/// Huge magnitudes of both signs. The sum of fewer than 80 of them stays below
/// 80 × 1e306 < f64::MAX in any order, so a sum is finite however it is computed,
/// while every variance overflows.
fn huge_mixed_value() -> BoxedStrategy<f64> {
    prop_oneof![1e300..1e306f64, -1e306..-1e300f64, Just(0.0), Just(1.0), Just(-2.5)].boxed()
}

/// Huge positive values whose sum overflows after a few of them, in any order.
/// They stay below 8e307: `state_matches_reference_near_f64_max` goes above.
fn overflowing_value() -> BoxedStrategy<f64> {
    (1e307..8e307f64).boxed()
}

/// Positive values of the top octave of f64, where `2·x` overflows.
fn top_octave_value() -> BoxedStrategy<f64> {
    (8.9e307..=f64::MAX).boxed()
}

/// Magnitudes whose squares overflow (above ~1.34e154) but whose sums do not.
fn square_overflowing_value() -> BoxedStrategy<f64> {
    prop_oneof![1e154..1e306f64, -1e306..-1e154f64, Just(1.0)].boxed()
}

fn tenant_and_body(value: BoxedStrategy<f64>) -> impl Strategy<Value = (&'static str, Body)> {
    let tenant = || prop::sample::select(TENANTS.to_vec());
    prop_oneof![
        9 => (tenant(), prop::sample::select(METRICS.to_vec()), value, prop::sample::select(REGIONS.to_vec()))
            .prop_map(|(tenant, name, value, region)| (tenant, Body::Metric { name, value, region })),
        1 => tenant().prop_map(|tenant| (tenant, Body::Log)),
    ]
}

/// Time from one event to the next: often none (equal times), sometimes long
/// enough to leave empty windows and end sessions.
fn time_step() -> impl Strategy<Value = u64> {
    prop_oneof![2 => Just(0u64), 4 => 1..50u64, 3 => 50..1_000u64, 1 => 2_000..20_000u64]
}

fn scenario(value: BoxedStrategy<f64>) -> impl Strategy<Value = Scenario> {
    prop_oneof![Just(1u64), Just(10), Just(100)]
        .prop_flat_map(move |granule| {
            let specs = (1..=4_000 / granule, 1..=2_000 / granule, 1..=4u64, 1..=3_000u64).prop_map(
                move |(size, slide, k, gap)| {
                    [
                        WindowSpec::Tumbling {
                            size: ms(size * granule),
                        },
                        WindowSpec::Hopping {
                            size: ms(k * slide * granule),
                            slide: ms(slide * granule),
                        },
                        WindowSpec::Session { gap: ms(gap) },
                    ]
                },
            );
            let start = prop_oneof![Just(0u64), 0..10_000u64, 1_600_000_000_000..1_700_000_000_000u64];
            let disorder = prop_oneof![Just(0u64), 1..3_000u64];
            let events = prop::collection::vec((time_step(), 0.0..=1.0f64, tenant_and_body(value.clone())), 0..80);
            (Just(granule), disorder, any::<bool>(), specs, start, events)
        })
        .prop_map(|(granule, disorder, by_region, specs, start, events)| {
            let mut ts = start;
            let mut by_arrival: Vec<(u64, Sample)> = events
                .into_iter()
                .map(|(step, lag, (tenant, body))| {
                    ts += step;
                    // An event delayed by at most `disorder` is at most `disorder` behind
                    // any event that overtakes it, so it is never behind the watermark.
                    let arrival = ts + (lag * disorder as f64) as u64;
                    (arrival, Sample { ts, tenant, body })
                })
                .collect();
            by_arrival.sort_by_key(|(arrival, _)| *arrival);
            Scenario {
                granule,
                disorder,
                by_region,
                specs,
                arrivals: by_arrival.into_iter().map(|(_, sample)| sample).collect(),
            }
        })
}

/// One step of feeding a scenario: an event arrives, or the watermark moves on.
#[derive(Clone, Copy, Debug)]
enum Step {
    /// The event at this index of `arrivals`.
    Send(usize),
    /// The new frontier: the watermark coarsened to the granule.
    Advance(EventTime),
}

/// The arrivals interleaved with the frontier a watermark-driven source would hold:
/// the newest event time minus the disorder, coarsened, never moving back.
fn schedule(scenario: &Scenario) -> Vec<Step> {
    let mut steps = Vec::new();
    let mut newest: Option<EventTime> = None;
    let mut frontier = 0;
    for (index, sample) in scenario.arrivals.iter().enumerate() {
        let watermark = newest.map_or(0, |newest| newest.saturating_sub(scenario.disorder));
        assert!(
            sample.ts >= watermark,
            "generator bug: event {index} at {} is behind the watermark {watermark}",
            sample.ts
        );
        steps.push(Step::Send(index));
        let newest = *newest.insert(newest.map_or(sample.ts, |newest| newest.max(sample.ts)));
        let next = coarsen(newest.saturating_sub(scenario.disorder), scenario.granule);
        if next > frontier {
            frontier = next;
            steps.push(Step::Advance(frontier));
        }
    }
    steps
}

fn aggregates() -> Vec<Aggregate> {
    ["count", "sum", "min", "max", "avg", "stddev", "p50", "p95", "p99"]
        .iter()
        .map(|name| name.parse().expect("a known aggregate"))
        .collect()
}

fn key_fields(by_region: bool) -> Vec<KeyField> {
    let mut fields = vec![KeyField::Tenant, KeyField::Metric];
    if by_region {
        fields.push(KeyField::Label("region".to_owned()));
    }
    fields
}

// ---------------------------------------------------------------------------
// The reference
// ---------------------------------------------------------------------------

/// What the reference knows of one (window, key): how many events, and their values.
#[derive(Debug, Default)]
struct Expected {
    events: u64,
    /// Values of the metric events, in event-time order.
    values: Vec<f64>,
}

impl Expected {
    fn sum(&self) -> f64 {
        self.values.iter().sum()
    }

    /// `Σ|x|`: the scale of the rounding error of any way of summing the values.
    fn magnitude(&self) -> f64 {
        self.values.iter().map(|x| x.abs()).sum()
    }

    fn largest_magnitude(&self) -> f64 {
        self.values.iter().fold(0.0, |largest, x| largest.max(x.abs()))
    }

    fn sorted(&self) -> Vec<f64> {
        let mut sorted = self.values.clone();
        sorted.sort_by(f64::total_cmp);
        sorted
    }

    /// Two-pass sample standard deviation; `None` below two values, non-finite
    /// when the reference's own arithmetic overflows.
    fn stddev(&self) -> Option<f64> {
        let n = self.values.len();
        if n < 2 {
            return None;
        }
        let mean = self.sum() / n as f64;
        let squares: f64 = self.values.iter().map(|x| (x - mean) * (x - mean)).sum();
        Some((squares / (n - 1) as f64).sqrt())
    }

    /// A lower bound of the sample stddev that holds at any magnitude:
    /// `Σ(x − mean)² ≥ (max − min)²/2`, so `s ≥ (max − min)/√(2(n − 1))`, computed
    /// as `(max/2 − min/2)·√(2/(n − 1))` so that it does not overflow itself.
    fn stddev_lower_bound(&self) -> Option<f64> {
        let n = self.values.len();
        let sorted = self.sorted();
        (n >= 2).then(|| (sorted[n - 1] / 2.0 - sorted[0] / 2.0) * (2.0 / (n - 1) as f64).sqrt())
    }
}

/// Tumbling and hopping windows as `(size, slide)`; `None` for sessions.
fn aligned_shape(spec: WindowSpec) -> Option<(u64, u64)> {
    match spec {
        WindowSpec::Tumbling { size } => Some((size.as_millis(), size.as_millis())),
        WindowSpec::Hopping { size, slide } => Some((size.as_millis(), slide.as_millis())),
        WindowSpec::Session { .. } => None,
    }
}

/// The windows `[start, start + size)`, `start` a non-negative multiple of `slide`,
/// that contain `ts`: those with `ts − size < start ≤ ts`.
fn aligned_windows(ts: EventTime, size: u64, slide: u64) -> impl Iterator<Item = (EventTime, EventTime)> {
    let lowest = (ts + 1).saturating_sub(size);
    let first = lowest.div_ceil(slide) * slide;
    (first..=ts)
        .step_by(slide as usize)
        .map(move |start| (start, start + size))
}

/// Every (window, key) of `samples` under `spec`, with what falls into it.
fn reference(spec: WindowSpec, by_region: bool, samples: &[Sample]) -> BTreeMap<WindowId, Expected> {
    let mut by_time: Vec<&Sample> = samples.iter().collect();
    by_time.sort_by_key(|sample| sample.ts);
    let mut windows: BTreeMap<WindowId, Expected> = BTreeMap::new();
    let mut add = |id: WindowId, sample: &Sample| {
        let window = windows.entry(id).or_default();
        window.events += 1;
        window.values.extend(sample.value());
    };
    match (spec, aligned_shape(spec)) {
        (_, Some((size, slide))) => {
            for sample in by_time {
                for (start, end) in aligned_windows(sample.ts, size, slide) {
                    add((start, end, sample.key(by_region)), sample);
                }
            }
        }
        (WindowSpec::Session { gap }, None) => {
            let gap = gap.as_millis();
            let mut per_key: BTreeMap<Key, Vec<&Sample>> = BTreeMap::new();
            for sample in by_time {
                per_key.entry(sample.key(by_region)).or_default().push(sample);
            }
            for (key, samples) in per_key {
                for session in samples.chunk_by(|a, b| b.ts - a.ts < gap) {
                    let (first, last) = (session[0].ts, session[session.len() - 1].ts);
                    for sample in session {
                        add((first, last + gap, key.clone()), sample);
                    }
                }
            }
        }
        (_, None) => unreachable!("only sessions are not aligned"),
    }
    windows
}

// ---------------------------------------------------------------------------
// Comparing rows with the reference
// ---------------------------------------------------------------------------

/// Relative tolerance of sum, avg and stddev.
///
/// The operator sums with Neumaier compensation in arrival order and keeps Welford's
/// running mean and M2; the reference sums naively in time order and computes the
/// variance in two passes. Both are within a few `n·ε` of the exact result, but
/// *relative to the size of the inputs*, not of the result: `1e12 − 1e12 + 1e-6` is
/// exact in one and off by ~1e-4 in the other. So the tolerance is `1e-9` times the
/// larger of |expected| and the inputs' scale: `Σ|x|` for sum, `Σ|x|/n` for avg and
/// `max|x|` for stddev (whose error comes from rounding in `x − mean`). With at most
/// 80 values, `n·ε ≈ 2e-14`, so 1e-9 leaves five orders of margin for rounding and
/// still catches any real mistake (an `n` for `n − 1` is a 3 % error, a lost value
/// is a whole term). Values that are all zero give a scale of 0: exact equality.
const TOLERANCE: f64 = 1e-9;

/// The scale `TOLERANCE` is relative to, besides the expected value itself.
fn tolerance_scale(aggregate: Aggregate, expected: &Expected) -> f64 {
    match aggregate {
        Aggregate::Sum => expected.magnitude(),
        Aggregate::Avg if !expected.values.is_empty() => expected.magnitude() / expected.values.len() as f64,
        Aggregate::Stddev => expected.largest_magnitude(),
        _ => 0.0,
    }
}

fn within_tolerance(actual: Option<f64>, expected: Option<f64>, scale: f64) -> Result<(), String> {
    match (actual, expected) {
        (None, None) => Ok(()),
        (Some(a), Some(e)) if (a - e).abs() <= TOLERANCE * e.abs().max(scale) => Ok(()),
        _ => Err(format!(
            "got {actual:?}, expected {expected:?} (± {TOLERANCE} × {:e})",
            expected.map_or(scale, |e| e.abs().max(scale))
        )),
    }
}

fn exactly(actual: Option<f64>, expected: Option<f64>) -> Result<(), String> {
    if actual == expected {
        Ok(())
    } else {
        Err(format!("got {actual:?}, expected exactly {expected:?}"))
    }
}

/// Whether a sketch's estimate is within its documented bound of the true value.
fn within_sketch_accuracy(estimate: f64, truth: f64) -> bool {
    if truth.abs() < MIN_INDEXABLE {
        return estimate == 0.0;
    }
    // The slack covers rounding in the bucket index (a logarithm) at bucket edges.
    (estimate - truth).abs() <= RELATIVE_ACCURACY * truth.abs() * (1.0 + 1e-9)
}

/// Checks one aggregate of one row; the error says what was expected.
fn check_aggregate(aggregate: Aggregate, actual: AggregateValue, expected: &Expected) -> Result<(), String> {
    let float = match (aggregate, actual) {
        (Aggregate::Count, AggregateValue::Count(count)) if count == expected.events => return Ok(()),
        (Aggregate::Count, _) => return Err(format!("got {actual:?}, expected Count({})", expected.events)),
        (_, AggregateValue::Count(_)) => return Err(format!("got {actual:?}, expected a float")),
        (_, AggregateValue::Float(float)) => float,
    };
    let n = expected.values.len();
    let sorted = expected.sorted();
    let finite = |x: f64| x.is_finite().then_some(x);
    let scale = tolerance_scale(aggregate, expected);
    match aggregate {
        Aggregate::Count => unreachable!("handled above"),
        // The sum of no values is 0, not null.
        Aggregate::Sum => within_tolerance(float, finite(expected.sum()), scale),
        Aggregate::Avg => within_tolerance(
            float,
            (n > 0).then(|| expected.sum() / n as f64).and_then(finite),
            scale,
        ),
        Aggregate::Min => exactly(float, sorted.first().copied()),
        Aggregate::Max => exactly(float, sorted.last().copied()),
        Aggregate::Stddev => match expected.stddev() {
            None => exactly(float, None),
            Some(sd) if sd.is_finite() => within_tolerance(float, Some(sd), scale),
            // The reference overflowed (x − mean or its square) where Welford's update
            // may not have: no value to compare with. What can still be said is
            // checked by `stddev_respects_the_spread_bound_at_huge_magnitudes`.
            Some(_) => Ok(()),
        },
        Aggregate::Quantile(per_mille) => {
            let q = f64::from(per_mille) / 1000.0;
            let truth = (n > 0).then(|| sorted[(q * (n - 1) as f64).floor() as usize]);
            match (float, truth) {
                (None, None) => Ok(()),
                (Some(estimate), Some(truth)) if within_sketch_accuracy(estimate, truth) => Ok(()),
                _ => Err(format!(
                    "got {float:?}, expected {truth:?} within {RELATIVE_ACCURACY} relative"
                )),
            }
        }
    }
}

fn row_id(row: &WindowRow) -> WindowId {
    let key = row.key.iter().map(|part| part.as_deref().map(str::to_owned)).collect();
    (row.window_start, row.window_end, key)
}

/// Checks that `rows` are exactly the reference's windows, once each, with the
/// reference's aggregates.
fn check_rows(context: &str, rows: &[WindowRow], expected: &BTreeMap<WindowId, Expected>) -> Result<(), TestCaseError> {
    let mut by_id: BTreeMap<WindowId, &WindowRow> = BTreeMap::new();
    for row in rows {
        if let Some(earlier) = by_id.insert(row_id(row), row) {
            return Err(TestCaseError::fail(format!(
                "{context}: window {:?} emitted twice: {earlier:?} and {row:?}",
                row_id(row)
            )));
        }
    }
    let missing: Vec<_> = expected.keys().filter(|id| !by_id.contains_key(*id)).take(5).collect();
    let unexpected: Vec<_> = by_id.keys().filter(|id| !expected.contains_key(*id)).take(5).collect();
    prop_assert!(
        missing.is_empty() && unexpected.is_empty(),
        "{context}: {} rows where the reference has {}; missing (first 5): {missing:?}; unexpected (first 5): {unexpected:?}",
        by_id.len(),
        expected.len()
    );
    let aggregates = aggregates();
    for (id, row) in by_id {
        prop_assert_eq!(&row.schema.aggregates, &aggregates, "{}: columns of {:?}", context, id);
        let want = &expected[&id];
        for (aggregate, value) in aggregates.iter().zip(&row.values) {
            if let Err(problem) = check_aggregate(*aggregate, *value, want) {
                return Err(TestCaseError::fail(format!(
                    "{context}: window {id:?}, {aggregate}: {problem}; {} events, values {:?}",
                    want.events, want.values
                )));
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Running the code under test
// ---------------------------------------------------------------------------

/// Checks the window ends `WindowState::insert` reports for one event.
fn check_touched(spec: WindowSpec, sample: &Sample, touched: &[EventTime]) -> Result<(), TestCaseError> {
    match (spec, aligned_shape(spec)) {
        (_, Some((size, slide))) => {
            let ends: Vec<EventTime> = aligned_windows(sample.ts, size, slide).map(|(_, end)| end).collect();
            prop_assert_eq!(
                touched,
                &ends[..],
                "{}: windows touched by an event at {}",
                spec,
                sample.ts
            );
        }
        (WindowSpec::Session { gap }, None) => prop_assert!(
            touched.len() == 1 && touched[0] >= sample.ts + gap.as_millis(),
            "{spec}: an event at {} touched session ends {touched:?}",
            sample.ts
        ),
        (_, None) => unreachable!("only sessions are not aligned"),
    }
    Ok(())
}

/// Feeds the scenario to a bare [`WindowState`] as the operator would, closing at
/// every frontier and finally at `EventTime::MAX`, and checks on the way that rows
/// come neither early nor late and that only open windows hold state. Returns every
/// row emitted.
fn run_state(scenario: &Scenario, spec: WindowSpec) -> Result<Vec<WindowRow>, TestCaseError> {
    let mut state = WindowState::new(spec, KeySpec::new(key_fields(scenario.by_region)), aggregates());
    let mut rows = Vec::new();
    let mut arrived = 0;
    let mut closed_up_to: Option<EventTime> = None;
    for step in schedule(scenario).into_iter().chain([Step::Advance(EventTime::MAX)]) {
        match step {
            Step::Send(index) => {
                let sample = &scenario.arrivals[index];
                let mut touched = Vec::new();
                state.insert(&sample.event(), |end| touched.push(end));
                check_touched(spec, sample, &touched)?;
                arrived += 1;
            }
            Step::Advance(frontier) => {
                let closed = state.close(frontier);
                for row in &closed {
                    prop_assert!(
                        row.window_end <= frontier,
                        "{spec}: window {:?} emitted while the frontier was at {frontier}",
                        row_id(row)
                    );
                    prop_assert!(
                        closed_up_to.is_none_or(|done| row.window_end > done),
                        "{spec}: window {:?} emitted late: the frontier had passed its end at {closed_up_to:?}",
                        row_id(row)
                    );
                }
                prop_assert!(
                    closed.is_sorted_by_key(|row| row.window_end),
                    "{spec}: rows closed at {frontier} not ordered by window end"
                );
                let open = reference(spec, scenario.by_region, &scenario.arrivals[..arrived])
                    .keys()
                    .filter(|(_, end, _)| *end > frontier)
                    .count();
                prop_assert_eq!(
                    state.open_windows(),
                    open,
                    "{}: open (window, key) pairs after closing at {}",
                    spec,
                    frontier
                );
                rows.extend(closed);
                closed_up_to = Some(frontier);
            }
        }
    }
    prop_assert_eq!(state.open_windows(), 0, "{}: state left after the last close", spec);
    Ok(rows)
}

/// Runs every window of the scenario on a bare state and compares with the reference.
fn check_state(scenario: &Scenario) -> Result<(), TestCaseError> {
    for spec in scenario.specs {
        let rows = run_state(scenario, spec)?;
        let expected = reference(spec, scenario.by_region, &scenario.arrivals);
        check_rows(&format!("state, {spec}"), &rows, &expected)?;
    }
    Ok(())
}

/// Checks every stddev a bare state emits against [`Expected::stddev_lower_bound`].
fn check_stddev_lower_bound(scenario: &Scenario) -> Result<(), TestCaseError> {
    for spec in scenario.specs {
        let expected = reference(spec, scenario.by_region, &scenario.arrivals);
        for row in run_state(scenario, spec)? {
            let id = row_id(&row);
            let want = expected
                .get(&id)
                .expect("`state_matches_reference` checks the set of rows");
            let stddev = row.value("stddev").and_then(AggregateValue::as_f64);
            if let (Some(stddev), Some(bound)) = (stddev, want.stddev_lower_bound()) {
                prop_assert!(
                    stddev >= bound * (1.0 - TOLERANCE),
                    "{spec}: window {id:?}: stddev {stddev:e} is below {bound:e}, the least any sample stddev of {:?} can be",
                    want.values
                );
            }
        }
    }
    Ok(())
}

/// Rows captured from the dataflow, per window of the scenario, with their timestamp.
type Captured = Vec<Vec<(EventTime, WindowRow)>>;

/// Runs the scenario's three windows in one dataflow on `workers` threads. Events are
/// dealt round-robin and sent at their coarsened time; every worker holds its input
/// at the same frontier, so the dataflow frontier is the watermark.
///
/// With `interrupt_at`, only that many steps of the schedule are fed; then each worker
/// triggers the shutdown and closes its input, as a source does on SIGTERM. Before
/// that it waits until the last frontier has reached the outputs, so that what the
/// windows emit depends on the frontier and not on how far scheduling got.
fn run_dataflow(scenario: &Scenario, workers: usize, interrupt_at: Option<usize>) -> Result<Captured, String> {
    let mut steps = schedule(scenario);
    steps.truncate(interrupt_at.unwrap_or(steps.len()));
    let steps: Arc<[Step]> = steps.into();
    let events: Arc<[Event]> = scenario.arrivals.iter().map(Sample::event).collect();
    let configs: Arc<[WindowConfig]> = scenario
        .specs
        .iter()
        .map(|spec| WindowConfig {
            spec: *spec,
            key: key_fields(scenario.by_region),
            aggregates: aggregates(),
            granule_ms: scenario.granule,
            delivered_before: 0,
            session_progress: None,
        })
        .collect();
    let captured: Arc<Mutex<Captured>> = Arc::new(Mutex::new(vec![Vec::new(); configs.len()]));
    let sink = Arc::clone(&captured);
    let shutdown = Shutdown::new();
    let granule = scenario.granule;

    let guards = timely::execute(timely::Config::process(workers), move |worker| {
        let (me, peers) = (worker.index(), worker.peers());
        let probe = ProbeHandle::new();
        let (mut input, mut capability) = worker.dataflow::<EventTime, _, _>(|scope| {
            let ((input, capability), stream) = scope.new_unordered_input::<CapacityContainerBuilder<Vec<Event>>>();
            for (index, config) in configs.iter().enumerate() {
                let sink = Arc::clone(&sink);
                stream
                    .clone()
                    .window(&format!("window_{index}"), config, &shutdown)
                    .inspect_core(move |message| {
                        if let Ok((stamp, rows)) = message {
                            let time = *stamp.expect_singleton();
                            let mut sink = sink.lock().expect("no worker panicked holding the sink");
                            sink[index].extend(rows.iter().map(|row| (time, row.clone())));
                        }
                    })
                    .probe_with(&probe);
            }
            (input, capability)
        });
        let mut frontier = 0;
        for step in steps.iter() {
            match *step {
                Step::Send(index) if index % peers == me => {
                    let time = coarsen(events[index].ts, granule);
                    input
                        .activate()
                        .session(&capability.delayed(&time))
                        .give(events[index].clone());
                }
                Step::Send(_) => {}
                Step::Advance(watermark) => {
                    capability.downgrade(&watermark);
                    frontier = watermark;
                    worker.step();
                }
            }
        }
        if interrupt_at.is_some() {
            worker.step_while(|| probe.less_than(&frontier));
            shutdown.trigger();
        }
        drop(capability);
        worker.step_while(|| !probe.done());
    })?;
    for result in guards.join() {
        result?;
    }
    let captured = captured.lock().expect("the workers have finished").clone();
    Ok(captured)
}

/// A dataflow run interrupted part-way through the schedule.
struct InterruptedRun {
    /// The last frontier the workers advanced to before the interrupt.
    frontier: EventTime,
    /// What each window emitted.
    captured: Captured,
    /// Per window, the reference's windows that end by `frontier`: those are
    /// complete, since no later event is behind the watermark.
    expected: Vec<BTreeMap<WindowId, Expected>>,
}

/// Runs the scenario on `workers` workers, interrupted after the fraction `cut` of
/// its schedule.
fn run_interrupted(scenario: &Scenario, cut: f64, workers: usize) -> Result<InterruptedRun, TestCaseError> {
    let steps = schedule(scenario);
    let cut = (cut * steps.len() as f64) as usize;
    let arrived = steps[..cut].iter().filter(|step| matches!(step, Step::Send(_))).count();
    let frontier = steps[..cut]
        .iter()
        .filter_map(|step| match step {
            Step::Advance(frontier) => Some(*frontier),
            Step::Send(_) => None,
        })
        .next_back()
        .unwrap_or(0);
    let captured = run_dataflow(scenario, workers, Some(cut)).map_err(TestCaseError::fail)?;
    let expected = scenario
        .specs
        .iter()
        .map(|spec| {
            let mut windows = reference(*spec, scenario.by_region, &scenario.arrivals[..arrived]);
            windows.retain(|(_, end, _), _| *end <= frontier);
            windows
        })
        .collect();
    Ok(InterruptedRun {
        frontier,
        captured,
        expected,
    })
}

/// Checks the rows of one window of a dataflow run: each sent at the last granule
/// before its end (so downstream sees it complete when its frontier passes the end),
/// and, all together, equal to `expected`.
fn check_captured(
    context: &str,
    granule: u64,
    captured: &[(EventTime, WindowRow)],
    expected: &BTreeMap<WindowId, Expected>,
) -> Result<(), TestCaseError> {
    for (time, row) in captured {
        prop_assert_eq!(
            *time,
            coarsen(row.window_end - 1, granule),
            "{}: window {:?} sent at the wrong time",
            context,
            row_id(row)
        );
    }
    let rows: Vec<WindowRow> = captured.iter().map(|(_, row)| row.clone()).collect();
    check_rows(context, &rows, expected)
}

// ---------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------

proptest! {
    #[test]
    fn state_matches_reference(scenario in scenario(ordinary_value())) {
        check_state(&scenario)?;
    }

    #[test]
    fn state_matches_reference_at_huge_magnitudes(
        scenario in prop_oneof![scenario(huge_mixed_value()), scenario(overflowing_value())]
    ) {
        check_state(&scenario)?;
    }

    #[test]
    fn state_matches_reference_near_f64_max(scenario in scenario(top_octave_value())) {
        check_state(&scenario)?;
    }

    #[test]
    fn stddev_respects_the_spread_bound_at_huge_magnitudes(scenario in scenario(square_overflowing_value())) {
        check_stddev_lower_bound(&scenario)?;
    }

    #[test]
    fn accumulators_merge_like_one(
        inputs in prop::collection::vec(prop::option::weighted(0.9, ordinary_value()), 0..60),
        split in 0.0..=1.0f64,
    ) {
        let at = (split * inputs.len() as f64) as usize;
        let (mut left, mut right, mut whole) = (Accumulator::new(true), Accumulator::new(true), Accumulator::new(true));
        for (index, input) in inputs.iter().enumerate() {
            whole.add(*input);
            if index < at { left.add(*input) } else { right.add(*input) }
        }
        left.merge(&right);
        let expected = Expected { events: inputs.len() as u64, values: inputs.iter().flatten().copied().collect() };
        for aggregate in aggregates() {
            let (merged, single) = (left.finish(aggregate), whole.finish(aggregate));
            if let Err(problem) = check_aggregate(aggregate, single, &expected) {
                prop_assert!(false, "{aggregate} of one accumulator: {problem}");
            }
            if let Err(problem) = check_aggregate(aggregate, merged, &expected) {
                prop_assert!(false, "{aggregate} of merged accumulators (split at {at}): {problem}");
            }
            match aggregate {
                // Counts, extremes and sketches merge exactly.
                Aggregate::Count | Aggregate::Min | Aggregate::Max | Aggregate::Quantile(_) => {
                    prop_assert_eq!(merged, single, "{} merged (split at {}) vs one accumulator", aggregate, at);
                }
                Aggregate::Sum | Aggregate::Avg | Aggregate::Stddev => {
                    let scale = tolerance_scale(aggregate, &expected);
                    if let Err(problem) = within_tolerance(merged.as_f64(), single.as_f64(), scale) {
                        prop_assert!(false, "{aggregate} merged (split at {at}) vs one accumulator: {problem}");
                    }
                }
            }
        }
    }
}

proptest! {
    // A timely run per case and worker count costs a few threads: fewer cases.
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn dataflow_matches_reference_on_1_to_3_workers(scenario in scenario(ordinary_value())) {
        for workers in 1..=3 {
            let captured = run_dataflow(&scenario, workers, None).map_err(TestCaseError::fail)?;
            for (spec, rows) in scenario.specs.iter().zip(&captured) {
                let expected = reference(*spec, scenario.by_region, &scenario.arrivals);
                check_captured(&format!("{workers} workers, {spec}"), scenario.granule, rows, &expected)?;
            }
        }
    }

    #[test]
    fn shutdown_emits_the_windows_the_watermark_passed(
        scenario in scenario(ordinary_value()),
        cut in 0.0..=1.0f64,
        workers in 1..=3usize,
    ) {
        let run = run_interrupted(&scenario, cut, workers)?;
        for ((spec, rows), expected) in scenario.specs.iter().zip(&run.captured).zip(&run.expected) {
            // Rows past the frontier are `shutdown_discards_incomplete_windows`'s business.
            let passed: Vec<_> = rows.iter().filter(|(_, row)| row.window_end <= run.frontier).cloned().collect();
            let context = format!("{workers} workers, {spec}, interrupted at frontier {}", run.frontier);
            check_captured(&context, scenario.granule, &passed, expected)?;
        }
    }
}

proptest! {
    // Racy by nature (in-flight events at shutdown): more cases, always several workers.
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn shutdown_discards_incomplete_windows(
        scenario in scenario(ordinary_value()),
        cut in 0.0..=1.0f64,
        workers in 2..=3usize,
    ) {
        let run = run_interrupted(&scenario, cut, workers)?;
        for (spec, rows) in scenario.specs.iter().zip(&run.captured) {
            let incomplete: Vec<_> = rows
                .iter()
                .filter(|(_, row)| row.window_end > run.frontier)
                .map(|(time, row)| (*time, row_id(row)))
                .collect();
            prop_assert!(
                incomplete.is_empty(),
                "{} workers, {}: interrupted with the watermark at {}, yet emitted (time, window) {:?}",
                workers, spec, run.frontier, incomplete
            );
        }
    }
}
