//! `AnomalyConfig`: what a pipeline file's `type = "anomaly"` operator carries.
//!
//! The defaults are the one configuration pulse scores on NAB with
//! (`pulse eval nab`, benches/README.md): no per-series tuning.

use serde::{Deserialize, Serialize};

/// The anomaly detector's configuration: the ensemble and how its score is shaped.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AnomalyConfig {
    /// Robust z-score over a sliding window (median/MAD).
    pub robust_z: RobustZConfig,
    /// EWMA/EWMV.
    pub ewma: EwmaConfig,
    /// Isolation Forest over feature vectors of recent values.
    pub isolation_forest: IsolationForestConfig,
    /// The likelihood that turns the ensemble's raw score into the output score.
    pub likelihood: LikelihoodConfig,
    /// Calibration of each detector against its own history (used instead of
    /// the likelihood when enabled).
    pub calibration: CalibrationConfig,
    /// Points of a key before it scores at all (score 0, `warming_up`).
    pub warmup_points: u64,
    /// A score at or above this is an anomaly (`is_anomaly`, severity warning).
    pub alert_threshold: f64,
    /// A score at or above this is critical.
    pub critical_threshold: f64,
    /// After an anomaly, the next this many points' scores are damped below the
    /// alert threshold: one incident raises one alert.
    pub quiet_points: u64,
    /// The veto on alerts whose recent pattern the series has shown before.
    pub novelty: NoveltyConfig,
    /// The out-of-range check: a value beyond every value seen so far.
    pub range: RangeConfig,
}

impl Default for AnomalyConfig {
    fn default() -> Self {
        Self {
            robust_z: RobustZConfig::default(),
            ewma: EwmaConfig::default(),
            isolation_forest: IsolationForestConfig::default(),
            likelihood: LikelihoodConfig::default(),
            calibration: CalibrationConfig::default(),
            warmup_points: 150,
            alert_threshold: 0.5,
            critical_threshold: 0.8,
            quiet_points: 150,
            novelty: NoveltyConfig::default(),
            range: RangeConfig::default(),
        }
    }
}

impl AnomalyConfig {
    /// Checks ranges; the message names the offending key.
    pub fn validate(&self) -> Result<(), String> {
        let unit = |name: &str, v: f64| {
            if (0.0..=1.0).contains(&v) {
                Ok(())
            } else {
                Err(format!("`{name}` must be in [0, 1], got {v}"))
            }
        };
        unit("alert_threshold", self.alert_threshold)?;
        unit("critical_threshold", self.critical_threshold)?;
        unit("ewma.alpha", self.ewma.alpha)?;
        if self.ewma.alpha == 0.0 {
            return Err("`ewma.alpha` must be above 0".into());
        }
        if self.robust_z.window < 3 {
            return Err(format!(
                "`robust_z.window` must be at least 3, got {}",
                self.robust_z.window
            ));
        }
        let forest = &self.isolation_forest;
        if forest.enabled && (forest.trees == 0 || forest.sample_size < 2 || forest.lags == 0) {
            return Err("`isolation_forest.trees`, `sample_size` (≥ 2) and `lags` must be positive".into());
        }
        if forest.retrain_every_ms <= 0 {
            return Err("`isolation_forest.retrain_every_ms` must be positive".into());
        }
        if forest.min_training_points > forest.training_points {
            return Err("`isolation_forest.min_training_points` must not exceed `training_points`".into());
        }
        if self.likelihood.history < 2 || self.likelihood.recent == 0 {
            return Err("`likelihood.history` (≥ 2) and `likelihood.recent` (≥ 1) must be positive".into());
        }
        if self.novelty.window < 2 || self.novelty.memory < self.novelty.window {
            return Err(format!(
                "`novelty.window` must be at least 2 and `novelty.memory` at least the window, got {} and {}",
                self.novelty.window, self.novelty.memory
            ));
        }
        if !(self.novelty.distance >= 0.0 && self.novelty.distance.is_finite()) {
            return Err(format!(
                "`novelty.distance` must be a finite number ≥ 0, got {}",
                self.novelty.distance
            ));
        }
        if !(self.range.tolerance >= 0.0 && self.range.tolerance.is_finite()) {
            return Err(format!(
                "`range.tolerance` must be a finite number ≥ 0, got {}",
                self.range.tolerance
            ));
        }
        if !self.robust_z.enabled && !self.ewma.enabled && !forest.enabled {
            return Err("at least one detector must be enabled".into());
        }
        Ok(())
    }
}

/// Robust z-score settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RobustZConfig {
    /// Whether the detector takes part.
    pub enabled: bool,
    /// Points in the sliding window.
    pub window: usize,
    /// Weight in the ensemble's raw score.
    pub weight: f64,
    /// z at which the detector reports itself as fired.
    pub fire_z: f64,
}

impl Default for RobustZConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            window: 500,
            weight: 1.0,
            fire_z: 5.0,
        }
    }
}

/// EWMA/EWMV settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EwmaConfig {
    /// Whether the detector takes part.
    pub enabled: bool,
    /// Smoothing factor in (0, 1].
    pub alpha: f64,
    /// Points before it scores.
    pub warmup: u64,
    /// Weight in the ensemble's raw score.
    pub weight: f64,
    /// z at which the detector reports itself as fired.
    pub fire_z: f64,
}

impl Default for EwmaConfig {
    fn default() -> Self {
        Self {
            // Measured on NAB's dev split, it adds false alarms to what the robust
            // z-score already finds; available, off by default.
            enabled: false,
            alpha: 0.02,
            warmup: 50,
            weight: 1.0,
            fire_z: 5.0,
        }
    }
}

/// Isolation Forest settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IsolationForestConfig {
    /// Whether the detector takes part.
    pub enabled: bool,
    /// Trees per model.
    pub trees: usize,
    /// Points each tree is grown on.
    pub sample_size: usize,
    /// The model is trained on (at most) the last this many points.
    pub training_points: usize,
    /// Points needed before the first model is trained.
    pub min_training_points: usize,
    /// Event time between trainings, milliseconds.
    pub retrain_every_ms: i64,
    /// Recent values a feature vector looks back over.
    pub lags: usize,
    /// Seed of the training RNG (mixed with the training's event time).
    pub seed: u64,
    /// Weight in the ensemble's raw score.
    pub weight: f64,
    /// Forest score (2^(−mean path / c(ψ)), about 0.5 for ordinary points) at
    /// which the detector reports itself as fired.
    pub fire_score: f64,
}

impl Default for IsolationForestConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            trees: 100,
            sample_size: 256,
            training_points: 10_000,
            min_training_points: 128,
            retrain_every_ms: 86_400_000,
            lags: 45,
            seed: 0x5eed,
            weight: 1.0,
            fire_score: 0.65,
        }
    }
}

/// Calibration settings: each detector's raw score against its own history.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CalibrationConfig {
    /// Whether the output is the calibrated ensemble (the maximum over detectors).
    pub enabled: bool,
    /// Raw scores of each detector kept as history.
    pub history: usize,
    /// The quantile of the history a raw score is compared with (1.0 = the maximum).
    pub quantile: f64,
    /// How far (relative) a raw score must pass that extreme to score 0.5.
    pub margin: f64,
    /// A raw score enters the history capped at this multiple of the extreme:
    /// one anomaly does not hide the next one of the same size.
    pub growth: f64,
}

impl Default for CalibrationConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            history: 2000,
            quantile: 1.0,
            margin: 0.001,
            growth: 1.2,
        }
    }
}

/// The novelty veto: an alert stands only if the window of the last `window`
/// points (the new one included) is farther than `distance` from every earlier
/// window of the last `memory` points (root-mean-square difference relative to
/// the range of all values seen). A repeat of something the series has done
/// before — a daily spike, a routine dip — is not an anomaly.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NoveltyConfig {
    /// Whether alerts are vetoed on patterns seen before.
    pub enabled: bool,
    /// Points in a pattern.
    pub window: usize,
    /// Points the earlier patterns are taken from.
    pub memory: usize,
    /// Relative RMS distance under which a pattern counts as seen before.
    pub distance: f64,
}

impl Default for NoveltyConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            window: 20,
            memory: 3000,
            distance: 0.07,
        }
    }
}

/// The out-of-range check (Numenta's "spatial anomaly"): a value beyond the
/// smallest or largest value seen so far by more than `tolerance` times that
/// range scores 1, whatever the calibrated detectors say.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RangeConfig {
    /// Whether the check takes part.
    pub enabled: bool,
    /// Share of the range a value must pass it by.
    pub tolerance: f64,
}

impl Default for RangeConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            tolerance: 0.1,
        }
    }
}

/// Likelihood settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LikelihoodConfig {
    /// Whether the output is the likelihood (else the ensemble's raw score).
    pub enabled: bool,
    /// Raw scores the distribution is estimated over.
    pub history: usize,
    /// Recent raw scores averaged before comparing with that distribution.
    pub recent: usize,
    /// Floor of the distribution's standard deviation.
    pub min_std: f64,
}

impl Default for LikelihoodConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            history: 2000,
            recent: 5,
            min_std: 0.02,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_table_is_the_default_and_valid() {
        let config: AnomalyConfig = toml::from_str("").unwrap();
        assert_eq!(config, AnomalyConfig::default());
        config.validate().unwrap();
    }

    #[test]
    fn unknown_keys_are_errors_that_name_them() {
        let error = toml::from_str::<AnomalyConfig>("[ewma]\nalpah = 0.1\n")
            .unwrap_err()
            .to_string();
        assert!(error.contains("alpah"), "{error}");
    }

    #[test]
    fn out_of_range_values_name_the_key() {
        let config: AnomalyConfig = toml::from_str("alert_threshold = 1.5").unwrap();
        assert!(config.validate().unwrap_err().contains("alert_threshold"));
    }
}
