//! The per-key state of the anomaly operator: the ensemble of detectors, the
//! likelihood that shapes their score, the novelty veto and out-of-range check
//! of the pattern memory, and the quiet period after an alert.

use std::sync::Arc;

use super::calibration::ExtremeCalibrator;
use super::config::AnomalyConfig;
use super::ewma::Ewma;
use super::forest_detector::{ForestDetector, ModelVersion, TrainingJob};
use super::likelihood::AnomalyLikelihood;
use super::novelty::PatternMemory;
use super::robust_z::RobustZScore;
use super::{AnomalyError, AnomalyScore, DetectorKind, Severity};

/// One series' detector: `update(ts_ms, value)` scores a point from the points before it.
///
/// # Examples
///
/// ```
/// use pulse_operators::anomaly::{AnomalyConfig, SeriesDetector};
///
/// let mut detector = SeriesDetector::new("cpu", AnomalyConfig::default());
/// let mut last = None;
/// for i in 0..2000i64 {
///     let value = if i == 1500 { 40.0 } else { 10.0 + (i % 24) as f64 * 0.1 };
///     let score = detector.update(i * 60_000, value).unwrap();
///     if i == 1500 {
///         last = Some(score);
///     }
/// }
/// let spike = last.unwrap();
/// assert!(spike.is_anomaly && spike.score > 0.5);
/// assert!(detector.update(2000 * 60_000, f64::NAN).is_err());
/// ```
#[derive(Clone, Debug)]
pub struct SeriesDetector {
    config: AnomalyConfig,
    robust_z: RobustZScore,
    ewma: Ewma,
    forest: ForestDetector,
    likelihood: AnomalyLikelihood,
    calibrators: [ExtremeCalibrator; 3],
    pattern: PatternMemory,
    seen: u64,
    last_ts: Option<i64>,
    quiet_until: u64,
    train_inline: bool,
}

/// Component scores of one point, before the likelihood.
struct Components {
    robust_z: Option<f64>,
    ewma_z: Option<f64>,
    forest: Option<f64>,
}

/// Maps a z-score to [0, 1): 0.5 at z = 3.
fn squash_z(z: f64) -> f64 {
    let z2 = z * z;
    z2 / (z2 + 9.0)
}

impl SeriesDetector {
    /// A detector for the series `key` (the key names persisted models and seeds training).
    pub fn new(key: impl Into<String>, config: AnomalyConfig) -> Self {
        Self {
            robust_z: RobustZScore::new(config.robust_z.window),
            ewma: Ewma::new(config.ewma.alpha, config.ewma.warmup),
            forest: ForestDetector::new(key, config.isolation_forest.clone()),
            likelihood: AnomalyLikelihood::new(
                config.likelihood.history,
                config.likelihood.recent,
                config.likelihood.min_std,
            ),
            calibrators: std::array::from_fn(|_| {
                ExtremeCalibrator::new(
                    config.calibration.history,
                    config.calibration.quantile,
                    config.calibration.margin,
                )
            }),
            pattern: PatternMemory::new(config.novelty.window, config.novelty.memory),
            config,
            seen: 0,
            last_ts: None,
            quiet_until: 0,
            train_inline: true,
        }
    }

    /// Stops training inside `update`: the caller takes jobs with
    /// [`training_due`](Self::training_due) and [`install`](Self::install)s models itself.
    pub fn train_externally(&mut self) {
        self.train_inline = false;
    }

    /// A training job if the forest is due for one at `ts_ms` (external training only).
    pub fn training_due(&mut self, ts_ms: i64) -> Option<TrainingJob> {
        self.forest.training_due(ts_ms)
    }

    /// Installs a forest model (trained here, elsewhere, or reloaded from disk).
    pub fn install(&mut self, model: Arc<ModelVersion>) {
        self.forest.install(model);
    }

    /// The forest model in use.
    pub fn model(&self) -> Option<&Arc<ModelVersion>> {
        self.forest.model()
    }

    /// Scores one point. NaN/inf values are errors and leave the state untouched.
    pub fn update(&mut self, ts_ms: i64, value: f64) -> Result<AnomalyScore, AnomalyError> {
        if !value.is_finite() {
            return Err(AnomalyError::NonFinite { ts_ms, value });
        }
        // Real series step back now and then (NAB's machine_temperature does, by
        // an hour); the schedule follows the newest event time seen.
        let ts_ms = self.last_ts.map_or(ts_ms, |last| last.max(ts_ms));
        self.last_ts = Some(ts_ms);
        let config = &self.config;
        if config.isolation_forest.enabled
            && self.train_inline
            && let Some(job) = self.forest.training_due(ts_ms)
        {
            self.forest.install(Arc::new(job.train()));
        }
        let stats = self.robust_z.stats();
        let components = Components {
            robust_z: stats
                .filter(|_| config.robust_z.enabled)
                .map(|s| (value - s.median).abs() / s.sigma),
            ewma_z: self.ewma.z_score(value).filter(|_| config.ewma.enabled),
            forest: self.forest.score(value).filter(|_| config.isolation_forest.enabled),
        };
        let (mut weighted, mut weights) = (0.0, 0.0);
        for (score, weight) in [
            (components.robust_z.map(squash_z), config.robust_z.weight),
            (components.ewma_z.map(squash_z), config.ewma.weight),
            (components.forest, config.isolation_forest.weight),
        ] {
            if let Some(score) = score {
                weighted += weight * score;
                weights += weight;
            }
        }
        let raw = if weights > 0.0 { weighted / weights } else { 0.0 };
        let likely = self.likelihood.update(raw);
        let calibration_scores = [components.robust_z, components.ewma_z, components.forest];
        let calibration_weights = [
            config.robust_z.weight,
            config.ewma.weight,
            config.isolation_forest.weight,
        ];
        // Scores of the first points (few values, unsettled statistics) would set
        // extremes nothing later reaches; history starts halfway through the warm-up.
        let calibrating = 2 * self.seen >= config.warmup_points;
        let mut calibrated: f64 = 0.0;
        if calibrating {
            for ((calibrator, score), weight) in
                self.calibrators.iter().zip(calibration_scores).zip(calibration_weights)
            {
                if let Some(score) = score {
                    calibrated = calibrated.max(weight * calibrator.score(score));
                }
            }
        }
        let shaped = if config.calibration.enabled {
            calibrated.min(1.0)
        } else if config.likelihood.enabled {
            likely
        } else {
            raw
        };
        // Below half the alert threshold nothing changes; only a would-be alert
        // pays for the search through the pattern memory.
        let vetoed = config.novelty.enabled
            && shaped > config.alert_threshold * 0.5
            && self.pattern.seen_before(value, config.novelty.distance);
        let out_of_range = config.range.enabled && self.pattern.outside_range(value, config.range.tolerance);
        let range = self.pattern.range();
        let shaped = if out_of_range {
            1.0
        } else if vetoed {
            shaped.min(config.alert_threshold * 0.5)
        } else {
            shaped
        };
        self.seen += 1;
        self.robust_z.update(value);
        self.pattern.push(value);
        self.ewma.update(value);
        self.forest.push(value);

        let warming_up = self.seen <= config.warmup_points;
        let mut score = if warming_up { 0.0 } else { shaped };
        if self.seen <= self.quiet_until {
            // Inside the quiet period after an alert: keep the shape, stay below the alert.
            score = score.min(config.alert_threshold * 0.5);
        }
        let is_anomaly = score >= config.alert_threshold;
        if is_anomaly {
            self.quiet_until = self.seen + config.quiet_points;
        }
        if calibrating {
            for (calibrator, score) in self.calibrators.iter_mut().zip(calibration_scores) {
                if let Some(score) = score {
                    // An anomaly raises the extreme only a little: otherwise the next
                    // anomaly of the same size, days later, would pass unnoticed.
                    let cap = calibrator
                        .extreme()
                        .filter(|&e| e > 1e-12)
                        .map_or(f64::INFINITY, |e| e * config.calibration.growth);
                    calibrator.update(score.min(cap));
                }
            }
        }
        let severity = if score >= config.critical_threshold {
            Severity::Critical
        } else if is_anomaly {
            Severity::Warning
        } else {
            Severity::Info
        };
        let mut detectors_fired = Vec::new();
        if components.robust_z.is_some_and(|z| z >= config.robust_z.fire_z) {
            detectors_fired.push(DetectorKind::RobustZ);
        }
        if components.ewma_z.is_some_and(|z| z >= config.ewma.fire_z) {
            detectors_fired.push(DetectorKind::Ewma);
        }
        if components
            .forest
            .is_some_and(|s| s >= config.isolation_forest.fire_score)
        {
            detectors_fired.push(DetectorKind::IsolationForest);
        }
        // Early in a series nearly every value is outside the range seen so far.
        if out_of_range && !warming_up {
            detectors_fired.push(DetectorKind::Range);
        }
        let expected = stats.map(|s| s.median);
        let band = stats.map(|s| (s.median - 3.0 * s.sigma, s.median + 3.0 * s.sigma));
        let explanation = if warming_up {
            format!("warming up: {} of {} points", self.seen, config.warmup_points)
        } else if is_anomaly {
            let mut text = explain(value, &components, stats.map(|s| s.median), config.robust_z.window);
            if let (true, Some((low, high))) = (out_of_range, range) {
                text.push_str(&format!(
                    "; outside the range [{low:.4}, {high:.4}] of every value seen"
                ));
            }
            text
        } else {
            String::new()
        };
        Ok(AnomalyScore {
            score,
            is_anomaly,
            severity,
            detectors_fired,
            expected,
            band,
            explanation,
            warming_up,
        })
    }

    /// Bytes of state this key holds when its windows and training buffer are full.
    pub fn state_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.robust_z.state_bytes()
            + self.likelihood.state_bytes()
            + self.forest.state_bytes()
            + self.pattern.state_bytes()
            + self
                .calibrators
                .iter()
                .map(ExtremeCalibrator::state_bytes)
                .sum::<usize>()
    }
}

fn explain(value: f64, components: &Components, median: Option<f64>, window: usize) -> String {
    let mut parts = Vec::new();
    if let (Some(z), Some(median)) = (components.robust_z, median) {
        let side = if value >= median { "above" } else { "below" };
        parts.push(format!(
            "{value:.4} is {z:.1} robust σ {side} the median {median:.4} of the last {window} points"
        ));
    }
    if let Some(z) = components.ewma_z {
        parts.push(format!("{z:.1} σ from the EWMA"));
    }
    if let Some(score) = components.forest {
        parts.push(format!("isolation forest {score:.2}"));
    }
    parts.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(n: i64) -> Vec<(i64, f64)> {
        (0..n)
            .map(|i| {
                (
                    i * 300_000,
                    50.0 + 10.0 * ((i % 288) as f64 / 288.0 * std::f64::consts::TAU).sin()
                        + (i * 7919 % 13) as f64 * 0.1,
                )
            })
            .collect()
    }

    #[test]
    fn a_replay_gives_the_same_scores() {
        let run = || {
            let mut detector = SeriesDetector::new("k", AnomalyConfig::default());
            series(3000)
                .into_iter()
                .map(|(t, v)| detector.update(t, v).unwrap().score)
                .collect::<Vec<_>>()
        };
        assert_eq!(run(), run());
    }

    #[test]
    fn bad_values_are_errors_and_do_not_poison_the_state() {
        let mut clean = SeriesDetector::new("k", AnomalyConfig::default());
        let mut dirty = SeriesDetector::new("k", AnomalyConfig::default());
        for (i, (t, v)) in series(1000).into_iter().enumerate() {
            if i % 100 == 0 {
                assert!(matches!(dirty.update(t, f64::NAN), Err(AnomalyError::NonFinite { .. })));
                assert!(dirty.update(t, f64::INFINITY).is_err());
            }
            assert_eq!(clean.update(t, v).unwrap(), dirty.update(t, v).unwrap());
        }
    }

    #[test]
    fn a_new_key_warms_up_before_it_fires() {
        let mut detector = SeriesDetector::new("k", AnomalyConfig::default());
        let first = detector.update(0, 1e9).unwrap();
        assert!(first.warming_up && first.score == 0.0 && !first.is_anomaly);
        assert!(first.explanation.contains("warming up"));
    }

    #[test]
    fn a_spike_the_series_repeats_stops_alerting_and_a_value_beyond_its_range_alerts() {
        // A noisy level with the same spike every 97 points (not a divisor of the day).
        let value = |i: i64| {
            if i % 97 == 50 {
                30.0
            } else {
                10.0 + (i * 7919 % 13) as f64 * 0.1
            }
        };
        let run = |novelty: bool| {
            let mut config = AnomalyConfig::default();
            config.novelty.enabled = novelty;
            let mut detector = SeriesDetector::new("k", config);
            let alerts = (0..3000i64)
                .filter(|&i| detector.update(i * 60_000, value(i)).unwrap().is_anomaly && i >= 1000)
                .count();
            (alerts, detector)
        };
        let (with_veto, mut detector) = run(true);
        let (without_veto, _) = run(false);
        assert_eq!(with_veto, 0, "a repeated spike is not new");
        assert!(without_veto > 0, "the calibrated detectors alone fire on it");
        let beyond = detector.update(3000 * 60_000, 45.0).unwrap();
        assert!(beyond.is_anomaly && beyond.detectors_fired.contains(&DetectorKind::Range));
        assert!(
            beyond.explanation.contains("outside the range"),
            "{}",
            beyond.explanation
        );
    }

    #[test]
    fn external_training_matches_inline_training() {
        let mut inline = SeriesDetector::new("k", AnomalyConfig::default());
        let mut external = SeriesDetector::new("k", AnomalyConfig::default());
        external.train_externally();
        for (t, v) in series(2000) {
            if let Some(job) = external.training_due(t) {
                let model = std::thread::spawn(move || job.train()).join().unwrap();
                external.install(Arc::new(model));
            }
            assert_eq!(inline.update(t, v).unwrap(), external.update(t, v).unwrap());
        }
        assert_eq!(inline.model(), external.model());
    }
}

#[cfg(test)]
mod state_tests {
    use super::*;

    #[test]
    fn state_per_key_stays_within_the_documented_bound() {
        let mut detector = SeriesDetector::new("k", AnomalyConfig::default());
        for i in 0..12_000i64 {
            detector.update(i * 300_000, ((i * 7919) % 101) as f64).unwrap();
        }
        let bytes = detector.state_bytes();
        // mod.rs documents about 1.4 MB per key with the defaults.
        println!("state per key: {bytes} bytes");
        assert!((500_000..1_600_000).contains(&bytes), "{bytes} bytes");
    }
}
