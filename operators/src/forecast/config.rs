//! The forecast configuration a pipeline file carries, and the shape it gives a series.

use pulse_core::DurationSpec;
use serde::{Deserialize, Serialize};

use super::ForecastError;

/// Largest season, in points, a key may hold (bounds the state per key).
pub const MAX_SEASON_POINTS: u64 = 20_000;
/// Longest horizon, in points, a key may forecast (bounds the state per key).
pub const MAX_HORIZON_POINTS: u64 = 5_000;

/// How a per-key forecaster is configured; the defaults are the configuration measured
/// in `benches/README.md` (section "Forecast").
///
/// # Examples
///
/// ```
/// use pulse_operators::forecast::ForecastConfig;
///
/// let config: ForecastConfig = toml::from_str(r#"
///     period = "1d"
///     horizon = "1h"
/// "#).unwrap();
/// let shape = config.shape("5m".parse().unwrap()).unwrap();
/// assert_eq!((shape.season_length, shape.horizon), (288, 12));
/// assert!(toml::from_str::<ForecastConfig>("perod = \"1d\"").is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ForecastConfig {
    /// The seasonal period (e.g. a day).
    pub period: DurationSpec,
    /// Models over `period × long_period_factor` (e.g. a week) join the candidates once
    /// they have seen two such periods; 0 or 1 turns them off.
    pub long_period_factor: u32,
    /// The longest horizon forecast; its errors (and a log-spaced set of shorter ones)
    /// are tracked to choose models and calibrate intervals.
    pub horizon: DurationSpec,
    /// A silence longer than this restarts the key's model from scratch.
    pub max_gap: DurationSpec,
}

impl Default for ForecastConfig {
    fn default() -> Self {
        Self {
            period: DurationSpec::from_secs(86_400),
            long_period_factor: 7,
            horizon: DurationSpec::from_secs(3_600),
            max_gap: DurationSpec::from_secs(7 * 86_400),
        }
    }
}

/// A configuration resolved against the spacing of the points, in points.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeriesShape {
    /// Spacing of the points, ms.
    pub step_ms: u64,
    /// Points per season.
    pub season_length: usize,
    /// Points per long season (0: no long-season models).
    pub long_season_length: usize,
    /// The longest horizon, in points.
    pub horizon: usize,
    /// The longest tolerated silence, in points.
    pub max_gap: u64,
}

impl ForecastConfig {
    /// Resolves the configuration for points `step` apart; errors say which setting
    /// does not fit and why.
    pub fn shape(&self, step: DurationSpec) -> Result<SeriesShape, ForecastError> {
        let step_ms = step.as_millis();
        let invalid = |reason: String| Err(ForecastError::InvalidConfig(reason));
        if step_ms == 0 {
            return invalid("the spacing of the points must be positive".into());
        }
        let period = self.period.as_millis();
        if period == 0 || !period.is_multiple_of(step_ms) {
            return invalid(format!(
                "period {} is not a positive multiple of the points' spacing {step}",
                self.period
            ));
        }
        let season = period / step_ms;
        if season > MAX_SEASON_POINTS {
            return invalid(format!(
                "period {} holds {season} points of {step}; at most {MAX_SEASON_POINTS}",
                self.period
            ));
        }
        let horizon = self.horizon.as_millis() / step_ms;
        if horizon == 0 || horizon > MAX_HORIZON_POINTS {
            return invalid(format!(
                "horizon {} is {horizon} points of {step}; it must be 1 to {MAX_HORIZON_POINTS}",
                self.horizon
            ));
        }
        let factor = u64::from(self.long_period_factor);
        let long = if factor > 1 && season * factor <= MAX_SEASON_POINTS {
            season * factor
        } else {
            0
        };
        Ok(SeriesShape {
            step_ms,
            season_length: season as usize,
            long_season_length: long as usize,
            horizon: horizon as usize,
            max_gap: (self.max_gap.as_millis() / step_ms).max(1),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(s: &str) -> DurationSpec {
        s.parse().unwrap()
    }

    #[test]
    fn shapes_in_points() {
        let shape = ForecastConfig::default().shape(step("30m")).unwrap();
        assert_eq!(shape.season_length, 48);
        assert_eq!(shape.long_season_length, 336);
        assert_eq!(shape.horizon, 2);
        assert_eq!(shape.max_gap, 336);
    }

    #[test]
    fn misfits_are_named() {
        let error = ForecastConfig::default().shape(step("7m")).unwrap_err();
        assert!(error.to_string().contains("period 1d"), "{error}");
        let short = ForecastConfig {
            horizon: step("1m"),
            ..ForecastConfig::default()
        };
        assert!(short.shape(step("5m")).unwrap_err().to_string().contains("horizon 1m"));
        let zero = ForecastConfig::default().shape(step("0s")).unwrap_err();
        assert!(zero.to_string().contains("spacing"));
    }

    #[test]
    fn long_seasons_too_big_are_dropped() {
        // A week of 30 s points exceeds the bound: no weekly models, the daily one stays.
        let shape = ForecastConfig::default().shape(step("30s")).unwrap();
        assert_eq!((shape.season_length, shape.long_season_length), (2880, 0));
    }
}
