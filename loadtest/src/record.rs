//! Recording what a run measures: a [`Series`] per operation (`api.kv_get`,
//! `events.produce`, `ws.delivery`, …), each an HdrHistogram of latencies for
//! the whole run, counts of successes and of errors by kind, and a timeline of
//! one summary per second (rate and latency percentiles), so the report can
//! chart latency and throughput over time.
//!
//! Every task of a run records into the same series through a cheap clone;
//! only the second being filled holds a histogram of its own, so a long run
//! costs one small summary per second, not one histogram per second.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// The largest latency recorded as itself, in microseconds (one hour); longer ones count as one hour.
const HIGHEST_MICROS: u64 = 3_600_000_000;

/// Significant decimal digits of the whole-run histograms (0.1 % resolution).
const RUN_DIGITS: u8 = 3;

/// Significant decimal digits of the per-second histograms (1 % resolution, a tenth of the memory).
const SECOND_DIGITS: u8 = 2;

/// The quantiles of a report's percentile curve (the tail is what matters, so it is dense there).
pub const CURVE_QUANTILES: [f64; 16] = [
    0.0, 0.1, 0.25, 0.5, 0.75, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995, 0.999, 0.9995, 0.9999, 0.99999, 1.0,
];

fn histogram(digits: u8) -> Histogram<u64> {
    Histogram::new_with_bounds(1, HIGHEST_MICROS, digits).expect("constant bounds are valid")
}

/// One second of a series: what completed in it and how long it took.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SecondSummary {
    /// Seconds since the run started.
    pub second: u64,
    /// Operations that succeeded in this second.
    pub ok: u64,
    /// Operations that failed in this second.
    pub errors: u64,
    /// Median latency of the successes, in milliseconds (0 when none).
    pub p50_ms: f64,
    /// 99th percentile, in milliseconds.
    pub p99_ms: f64,
    /// Largest, in milliseconds.
    pub max_ms: f64,
}

struct SeriesState {
    total: Histogram<u64>,
    ok: u64,
    errors: BTreeMap<String, u64>,
    open_second: u64,
    open: Histogram<u64>,
    open_ok: u64,
    open_errors: u64,
    timeline: Vec<SecondSummary>,
}

impl SeriesState {
    fn summary_of_open(&self) -> SecondSummary {
        let ms = |micros: u64| micros as f64 / 1000.0;
        let empty = self.open.is_empty();
        SecondSummary {
            second: self.open_second,
            ok: self.open_ok,
            errors: self.open_errors,
            p50_ms: if empty {
                0.0
            } else {
                ms(self.open.value_at_quantile(0.5))
            },
            p99_ms: if empty {
                0.0
            } else {
                ms(self.open.value_at_quantile(0.99))
            },
            max_ms: if empty { 0.0 } else { ms(self.open.max()) },
        }
    }

    /// Closes every second before `second`, so that the open one is `second`.
    fn advance_to(&mut self, second: u64) {
        if second <= self.open_second {
            return;
        }
        let closed = self.summary_of_open();
        self.timeline.push(closed);
        for gap in self.open_second + 1..second {
            self.timeline.push(SecondSummary {
                second: gap,
                ..SecondSummary::default()
            });
        }
        self.open_second = second;
        self.open.reset();
        self.open_ok = 0;
        self.open_errors = 0;
    }
}

/// A named stream of measurements; clones record into the same series.
#[derive(Clone)]
pub struct Series {
    name: Arc<str>,
    started: Instant,
    state: Arc<Mutex<SeriesState>>,
}

impl Series {
    /// An empty series whose timeline counts seconds from `started`.
    pub fn new(name: &str, started: Instant) -> Self {
        Self {
            name: name.into(),
            started,
            state: Arc::new(Mutex::new(SeriesState {
                total: histogram(RUN_DIGITS),
                ok: 0,
                errors: BTreeMap::new(),
                open_second: 0,
                open: histogram(SECOND_DIGITS),
                open_ok: 0,
                open_errors: 0,
                timeline: Vec::new(),
            })),
        }
    }

    /// The series' name.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn lock_now(&self) -> MutexGuard<'_, SeriesState> {
        self.lock_at(self.started.elapsed().as_secs())
    }

    /// The state with `second` (since the start) open.
    fn lock_at(&self, second: u64) -> MutexGuard<'_, SeriesState> {
        // A panic while holding the lock leaves counts that are still counts.
        let mut state = self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        state.advance_to(second);
        state
    }

    /// Records a success that took `latency`.
    pub fn record_ok(&self, latency: Duration) {
        self.record_ok_in(self.started.elapsed().as_secs(), latency);
    }

    fn record_ok_in(&self, second: u64, latency: Duration) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        let mut state = self.lock_at(second);
        state.total.saturating_record(micros);
        state.open.saturating_record(micros);
        state.ok += 1;
        state.open_ok += 1;
    }

    /// Records a failure of kind `kind` (such as `http_503`, `timeout`, `connect`); its latency is not timed.
    pub fn record_error(&self, kind: &str) {
        self.record_error_in(self.started.elapsed().as_secs(), kind);
    }

    fn record_error_in(&self, second: u64, kind: &str) {
        let mut state = self.lock_at(second);
        match state.errors.get_mut(kind) {
            Some(count) => *count += 1,
            None => {
                state.errors.insert(kind.to_owned(), 1);
            }
        }
        state.open_errors += 1;
    }

    /// The last complete second (for a live progress line), if one has passed.
    pub fn last_second(&self) -> Option<SecondSummary> {
        self.lock_now().timeline.last().cloned()
    }

    /// Everything recorded so far, the second being filled included.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use pulse_loadtest::record::Series;
    ///
    /// let series = Series::new("api.kv_get", Instant::now());
    /// for millis in [1, 2, 3, 40] {
    ///     series.record_ok(Duration::from_millis(millis));
    /// }
    /// series.record_error("http_503");
    /// let snapshot = series.snapshot();
    /// assert_eq!((snapshot.ok, snapshot.errors["http_503"]), (4, 1));
    /// assert!((snapshot.histogram.max() as f64 - 40_000.0).abs() < 40.0);
    /// assert_eq!(snapshot.timeline.iter().map(|s| s.ok).sum::<u64>(), 4);
    /// ```
    pub fn snapshot(&self) -> SeriesSnapshot {
        let state = self.lock_now();
        let mut timeline = state.timeline.clone();
        timeline.push(state.summary_of_open());
        SeriesSnapshot {
            name: self.name.to_string(),
            histogram: state.total.clone(),
            ok: state.ok,
            errors: state.errors.clone(),
            timeline,
        }
    }
}

/// A copy of a series at one moment.
#[derive(Clone, Debug)]
pub struct SeriesSnapshot {
    /// The series' name.
    pub name: String,
    /// Latencies of the successes, in microseconds.
    pub histogram: Histogram<u64>,
    /// Successes.
    pub ok: u64,
    /// Failures by kind.
    pub errors: BTreeMap<String, u64>,
    /// One summary per second since the run started.
    pub timeline: Vec<SecondSummary>,
}

/// The series of one run, in the order they were made.
#[derive(Clone)]
pub struct Recorder {
    started: Instant,
    series: Arc<Mutex<Vec<Series>>>,
}

impl Default for Recorder {
    fn default() -> Self {
        Self::new()
    }
}

impl Recorder {
    /// A recorder whose clock starts now.
    pub fn new() -> Self {
        Self {
            started: Instant::now(),
            series: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// When the run started.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// The series called `name`, made on first use.
    pub fn series(&self, name: &str) -> Series {
        let mut all = self.series.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(found) = all.iter().find(|s| s.name() == name) {
            return found.clone();
        }
        let made = Series::new(name, self.started);
        all.push(made.clone());
        made
    }

    /// Every series, in the order they were made.
    pub fn all(&self) -> Vec<Series> {
        self.series
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A series whose clock started `ago` in the past, so that records land in later seconds.
    fn series_started(ago: Duration) -> Series {
        Series::new("s", Instant::now() - ago)
    }

    #[test]
    fn quantiles_agree_with_sorting_within_the_resolution() {
        let series = series_started(Duration::ZERO);
        let mut values: Vec<u64> = (1..20_000u64).map(|i| (i * i * 7919) % 4_000_000 + 1).collect();
        for value in &values {
            series.record_ok(Duration::from_micros(*value));
        }
        values.sort_unstable();
        let snapshot = series.snapshot();
        assert_eq!(snapshot.histogram.len(), values.len() as u64);
        for q in [0.1, 0.5, 0.9, 0.99, 0.999, 1.0] {
            let rank = ((q * values.len() as f64).ceil() as usize).max(1);
            let exact = values[rank - 1] as f64;
            let reported = snapshot.histogram.value_at_quantile(q) as f64;
            assert!(
                (reported - exact).abs() <= exact * 0.001 + 1.0,
                "q={q}: {reported} vs {exact}"
            );
        }
    }

    #[test]
    fn the_timeline_has_a_second_for_every_second_gaps_included() {
        let series = series_started(Duration::ZERO);
        series.record_ok_in(0, Duration::from_millis(5));
        series.record_ok_in(0, Duration::from_millis(7));
        series.record_error_in(3, "timeout");
        series.record_ok_in(3, Duration::from_millis(2));
        let timeline = series.lock_at(4).timeline.clone();
        let seconds: Vec<u64> = timeline.iter().map(|s| s.second).collect();
        assert_eq!(seconds, [0, 1, 2, 3]);
        assert_eq!((timeline[0].ok, timeline[0].errors), (2, 0));
        assert!((timeline[0].max_ms - 7.0).abs() < 0.1, "{:?}", timeline[0]);
        assert_eq!(
            timeline[1],
            SecondSummary {
                second: 1,
                ..SecondSummary::default()
            }
        );
        assert_eq!((timeline[3].ok, timeline[3].errors), (1, 1));
        // A late record for a closed second counts in the open one, never rewrites history.
        series.record_ok_in(2, Duration::from_millis(1));
        assert_eq!(series.lock_at(4).open_ok, 1);
    }

    #[test]
    fn absurd_latencies_saturate_instead_of_failing() {
        let series = series_started(Duration::ZERO);
        series.record_ok(Duration::from_secs(10 * 3600));
        series.record_ok(Duration::ZERO);
        let snapshot = series.snapshot();
        assert_eq!(snapshot.ok, 2);
        assert!(snapshot.histogram.max() >= HIGHEST_MICROS * 999 / 1000);
    }

    #[test]
    fn a_recorder_hands_out_one_series_per_name() {
        let recorder = Recorder::new();
        recorder.series("a").record_ok(Duration::from_millis(1));
        recorder.series("b").record_error("connect");
        recorder.series("a").record_ok(Duration::from_millis(2));
        let names: Vec<String> = recorder.all().iter().map(|s| s.name().to_owned()).collect();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(recorder.series("a").snapshot().ok, 2);
    }

    proptest::proptest! {
        /// Any sequence of records, seconds moving forward by 0 to 2 at a time,
        /// gives the timeline a brute-force tally per second gives.
        #[test]
        fn the_timeline_agrees_with_a_brute_force_tally(
            steps in proptest::collection::vec((0u64..3, proptest::option::of(1u64..2_000_000)), 1..300)
        ) {
            let series = series_started(Duration::ZERO);
            let mut second = 0;
            let mut reference: BTreeMap<u64, (Vec<u64>, u64)> = BTreeMap::new();
            for (advance, latency) in &steps {
                second += advance;
                let (oks, errors) = reference.entry(second).or_default();
                match latency {
                    Some(micros) => {
                        series.record_ok_in(second, Duration::from_micros(*micros));
                        oks.push(*micros);
                    }
                    None => {
                        series.record_error_in(second, "timeout");
                        *errors += 1;
                    }
                }
            }
            let mut timeline = series.lock_at(second).timeline.clone();
            timeline.push(series.lock_at(second).summary_of_open());
            proptest::prop_assert_eq!(timeline.len() as u64, second + 1);
            for (index, summary) in timeline.iter().enumerate() {
                let (mut oks, errors) = reference.get(&(index as u64)).cloned().unwrap_or_default();
                oks.sort_unstable();
                proptest::prop_assert_eq!(summary.second, index as u64);
                proptest::prop_assert_eq!((summary.ok, summary.errors), (oks.len() as u64, errors));
                let close = |reported_ms: f64, exact_micros: u64| {
                    // Two significant digits: within 1 % (and a microsecond) of the exact value.
                    (reported_ms * 1000.0 - exact_micros as f64).abs() <= exact_micros as f64 * 0.01 + 1.0
                };
                match oks.last() {
                    None => proptest::prop_assert_eq!((summary.p50_ms, summary.max_ms), (0.0, 0.0)),
                    Some(&max) => {
                        proptest::prop_assert!(close(summary.max_ms, max), "{:?} vs {}", summary, max);
                        let median = oks[oks.len().div_ceil(2) - 1];
                        proptest::prop_assert!(close(summary.p50_ms, median), "{:?} vs {}", summary, median);
                    }
                }
            }
            let total_ok = steps.iter().filter(|(_, latency)| latency.is_some()).count() as u64;
            proptest::prop_assert_eq!(series.snapshot().histogram.len(), total_ok);
        }
    }
}
