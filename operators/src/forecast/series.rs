//! The per-key forecaster: a bank of Holt-Winters models, one chosen per horizon.
//!
//! Short horizons want a model that follows the level closely, long ones a smooth
//! seasonal profile, and a weekly cycle needs a weekly model. Rather than refit one model
//! per forecast (as AutoETS does), every candidate is updated online at O(1) per point
//! and each keeps a running mean absolute error at each tracked horizon; a forecast at
//! horizon `k` comes from the candidate that has recently been best at `k`. The
//! combined forecasts' own errors then calibrate the intervals ([`IntervalCalibrator`]).
//!
//! Time: points arrive with event times `step_ms` apart; a missing point is skipped
//! (the models carry on as they expected), a silence longer than `max_gap` restarts the
//! key, and a point not after the previous one is refused.

use super::holt_winters::{HoltWinters, Smoothing};
use super::interval::IntervalCalibrator;
use super::pending::{PendingForecasts, bracket, tracked_horizons};
use super::{ForecastError, ForecastPoint, SeriesShape};

/// Candidates over the season: from reactive to smooth (α, β, γ, φ).
const SEASON_CANDIDATES: [Smoothing; 4] = [
    smoothing(0.5, 0.01, 0.1),
    smoothing(0.2, 0.01, 0.1),
    smoothing(0.05, 0.0, 0.05),
    smoothing(0.01, 0.0, 0.05),
];
/// Candidates over the long season (e.g. a week).
const LONG_SEASON_CANDIDATES: [Smoothing; 2] = [smoothing(0.2, 0.0, 0.2), smoothing(0.02, 0.0, 0.2)];
/// Memory of the candidates' error scores, in horizons (weight 1 / (this · max(k, 12))).
const SCORE_MEMORY: f64 = 4.0;
/// Largest finite magnitude accepted: squares of errors must stay finite.
pub const MAX_MAGNITUDE: f64 = 1e100;
/// Latest accepted event time, ms (the year 9999).
pub const MAX_TIMESTAMP_MS: i64 = 253_402_300_799_999;

const fn smoothing(alpha: f64, beta: f64, gamma: f64) -> Smoothing {
    Smoothing {
        alpha,
        beta,
        gamma,
        phi: 0.9,
    }
}

/// One candidate with its pending forecasts and error scores.
#[derive(Debug, Clone)]
struct Candidate {
    model: HoltWinters,
    pending: PendingForecasts,
    /// Smoothed absolute error per tracked horizon (`None` until one settles).
    scores: Vec<Option<f64>>,
}

/// The forecasting state of one key (one series).
///
/// # Examples
///
/// ```
/// use pulse_operators::forecast::{ForecastConfig, SeriesForecaster};
///
/// let config = ForecastConfig { period: "1h".parse().unwrap(), horizon: "10m".parse().unwrap(),
///                               ..ForecastConfig::default() };
/// let mut series = SeriesForecaster::new(config.shape("1m".parse().unwrap()).unwrap());
/// for minute in 0..600i64 {
///     let value = if minute % 60 < 30 { 10.0 } else { 20.0 };
///     series.update(minute * 60_000, value).unwrap();
/// }
/// let forecast = series.forecast(10).unwrap();
/// assert_eq!(forecast.len(), 10);
/// assert_eq!(forecast[0].ts, 600 * 60_000);
/// assert!((forecast[0].yhat - 10.0).abs() < 0.5);
/// assert!(forecast[0].lower95 <= forecast[0].lower80 && forecast[0].upper80 <= forecast[0].upper95);
/// // Bad input is refused and leaves the model as it was.
/// assert!(series.update(600 * 60_000, f64::NAN).is_err());
/// assert_eq!(series.forecast(10).unwrap(), forecast);
/// ```
#[derive(Debug, Clone)]
pub struct SeriesForecaster {
    shape: SeriesShape,
    horizons: Vec<usize>,
    candidates: Vec<Candidate>,
    pending: PendingForecasts,
    calibrator: IntervalCalibrator,
    last_ts: Option<i64>,
    points: u64,
}

impl SeriesForecaster {
    /// An empty forecaster of the given shape.
    pub fn new(shape: SeriesShape) -> Self {
        let horizons = tracked_horizons(shape.horizon);
        let long = (shape.long_season_length > 0)
            .then_some(LONG_SEASON_CANDIDATES.iter().map(|s| (shape.long_season_length, *s)))
            .into_iter()
            .flatten();
        let candidates = SEASON_CANDIDATES
            .iter()
            .map(|s| (shape.season_length, *s))
            .chain(long)
            .map(|(season, smoothing)| Candidate {
                model: HoltWinters::new(season, smoothing),
                pending: PendingForecasts::new(&horizons),
                scores: vec![None; horizons.len()],
            })
            .collect();
        Self {
            pending: PendingForecasts::new(&horizons),
            calibrator: IntervalCalibrator::new(&horizons),
            candidates,
            horizons,
            shape,
            last_ts: None,
            points: 0,
        }
    }

    /// The shape this forecaster was built with.
    pub fn shape(&self) -> &SeriesShape {
        &self.shape
    }

    /// Points taken since the last (re)start.
    pub fn points(&self) -> u64 {
        self.points
    }

    /// Event time of the last point taken.
    pub fn last_ts(&self) -> Option<i64> {
        self.last_ts
    }

    /// Takes the point `(ts, value)`. Refuses — leaving the state untouched — a value
    /// that is not finite or absurdly large, a time outside year 0–9999, and a time not
    /// after the previous point's. Returns whether the key restarted after a long gap.
    pub fn update(&mut self, ts: i64, value: f64) -> Result<bool, ForecastError> {
        if !value.is_finite() || value.abs() > MAX_MAGNITUDE {
            return Err(ForecastError::BadValue { ts, value });
        }
        if !(0..=MAX_TIMESTAMP_MS).contains(&ts) {
            return Err(ForecastError::BadTimestamp { ts });
        }
        let mut restarted = false;
        if let Some(last) = self.last_ts {
            let steps = (ts - last + self.shape.step_ms as i64 / 2) / self.shape.step_ms as i64;
            if steps < 1 {
                return Err(ForecastError::NotAfterPrevious { ts, previous: last });
            }
            let missing = steps as u64 - 1;
            if missing > self.shape.max_gap {
                *self = Self::new(self.shape);
                restarted = true;
            } else if missing > 0 {
                self.skip(missing);
            }
        }
        self.observe(value);
        self.last_ts = Some(ts);
        self.points += 1;
        Ok(restarted)
    }

    fn skip(&mut self, missing: u64) {
        for candidate in &mut self.candidates {
            candidate.model.skip(missing);
            candidate.pending.clear();
        }
        self.pending.clear();
    }

    fn observe(&mut self, value: f64) {
        let horizons = &self.horizons;
        for candidate in &mut self.candidates {
            if !candidate.model.is_ready() {
                continue;
            }
            let scores = &mut candidate.scores;
            candidate.pending.settle(horizons, value, |i, error| {
                let weight = 1.0 / (SCORE_MEMORY * horizons[i].max(12) as f64);
                let error = error.abs();
                scores[i] = Some(scores[i].map_or(error, |s| s + weight * (error - s)));
            });
        }
        let calibrator = &mut self.calibrator;
        self.pending
            .settle(horizons, value, |i, error| calibrator.settle(i, error));
        for candidate in &mut self.candidates {
            candidate.model.observe(value);
            if candidate.model.is_ready() {
                let model = &candidate.model;
                candidate.pending.push(horizons, |k| model.forecast(k));
            }
        }
        if self.is_ready() {
            let mut combined = std::mem::replace(&mut self.pending, PendingForecasts::new(&[]));
            combined.push(&self.horizons, |k| self.point_forecast(k));
            self.pending = combined;
        }
    }

    /// Whether some model has warmed up (forecasts exist; intervals may not yet).
    pub fn is_ready(&self) -> bool {
        self.candidates.iter().any(|c| c.model.is_ready())
    }

    /// The point forecast `steps` ahead, from the candidate recently best at that horizon.
    fn point_forecast(&self, steps: usize) -> f64 {
        let (_, above) = bracket(&self.horizons, steps);
        let ready = self.candidates.iter().filter(|c| c.model.is_ready());
        let best = ready
            .clone()
            .filter_map(|c| c.scores[above].map(|s| (s, c)))
            .min_by(|a, b| a.0.total_cmp(&b.0))
            .map(|(_, c)| c)
            .or_else(|| ready.clone().next());
        best.map_or(f64::NAN, |c| c.model.forecast(steps))
    }

    /// Forecasts for the next `steps` points with 80 % and 95 % intervals, or why not:
    /// still warming up, or `steps` beyond the configured horizon.
    pub fn forecast(&self, steps: usize) -> Result<Vec<ForecastPoint>, ForecastError> {
        if steps == 0 || steps > self.shape.horizon {
            return Err(ForecastError::HorizonOutOfRange {
                steps,
                horizon: self.shape.horizon,
            });
        }
        let (_, last_tracked) = bracket(&self.horizons, steps);
        let (Some(last_ts), true) = (
            self.last_ts,
            self.is_ready() && self.calibrator.is_calibrated(last_tracked),
        ) else {
            return Err(ForecastError::WarmingUp { points: self.points });
        };
        let mut widest = (0.0f64, 0.0f64);
        Ok((1..=steps)
            .map(|k| {
                let yhat = self.point_forecast(k);
                let (below, above) = bracket(&self.horizons, k);
                let (kb, ka) = (self.horizons[below], self.horizons[above]);
                let share = if ka == kb {
                    0.0
                } else {
                    (k - kb) as f64 / (ka - kb) as f64
                };
                let w = self.calibrator.interpolate(below, above, share);
                // Uncertainty never shrinks with the horizon.
                widest = (widest.0.max(w.p80), widest.1.max(w.p95));
                ForecastPoint {
                    steps: k,
                    ts: last_ts + (k as u64 * self.shape.step_ms) as i64,
                    yhat,
                    lower80: yhat - widest.0,
                    upper80: yhat + widest.0,
                    lower95: yhat - widest.1,
                    upper95: yhat + widest.1,
                }
            })
            .collect())
    }

    /// Bytes this key's state occupies now (the struct and everything it owns); the
    /// peak is during warm-up, when each model buffers its first two seasons.
    pub fn state_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.horizons.capacity() * std::mem::size_of::<usize>()
            + self.pending.heap_bytes()
            + self.calibrator.heap_bytes()
            + self.candidates.capacity() * std::mem::size_of::<Candidate>()
            + self
                .candidates
                .iter()
                .map(|c| {
                    c.model.heap_bytes()
                        + c.pending.heap_bytes()
                        + c.scores.capacity() * std::mem::size_of::<Option<f64>>()
                })
                .sum::<usize>()
    }
}
