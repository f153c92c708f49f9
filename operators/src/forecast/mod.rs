//! Online per-key forecasting with prediction intervals.
//!
//! - [`holt_winters`]: one additive, damped-trend Holt-Winters model, O(1) per point.
//! - [`pending`]: forecasts awaiting their actual value at log-spaced horizons.
//! - [`interval`]: 80 % / 95 % intervals calibrated online from settled errors.
//! - [`series`]: the per-key state, a bank of models chosen per horizon
//!   ([`SeriesForecaster`]).
//! - [`config`]: [`ForecastConfig`], what a pipeline file carries.
//! - [`stream`]: [`ForecastExt`], the forecaster per key inside the dataflow.
//!
//! Bad input (NaN, ±inf, absurd values or times, points out of order) is an error
//! result and never reaches a model.

pub mod config;
pub mod holt_winters;
pub mod interval;
pub mod pending;
pub mod series;
pub mod stream;

#[cfg(test)]
mod tests;

pub use config::{ForecastConfig, SeriesShape};
pub use holt_winters::{HoltWinters, Smoothing};
pub use series::SeriesForecaster;
pub use stream::{ForecastExt, ForecastSchedule, ForecastStreamConfig, IssuedForecast};

/// One forecast point: the horizon, its event time, the forecast and its intervals.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ForecastPoint {
    /// Points ahead of the last point seen (1 = the next).
    pub steps: usize,
    /// Event time forecast, epoch ms.
    pub ts: i64,
    /// The point forecast.
    pub yhat: f64,
    /// Lower bound of the 80 % prediction interval.
    pub lower80: f64,
    /// Upper bound of the 80 % prediction interval.
    pub upper80: f64,
    /// Lower bound of the 95 % prediction interval.
    pub lower95: f64,
    /// Upper bound of the 95 % prediction interval.
    pub upper95: f64,
}

/// Why a point was refused or a forecast could not be made.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ForecastError {
    /// The value is NaN, infinite or beyond ±1e100.
    #[error("value {value} at ts {ts} is not a usable number (NaN, infinite or beyond ±1e100)")]
    BadValue {
        /// Event time of the point.
        ts: i64,
        /// The value.
        value: f64,
    },
    /// The event time is before 1970 or after 9999.
    #[error("timestamp {ts} ms is outside the years 1970–9999")]
    BadTimestamp {
        /// The event time.
        ts: i64,
    },
    /// The point is not after the previous one of its key.
    #[error("timestamp {ts} is not after the previous point's {previous} (less than half a step later)")]
    NotAfterPrevious {
        /// Event time of the point.
        ts: i64,
        /// Event time of the previous point.
        previous: i64,
    },
    /// The key has not seen enough points to forecast with intervals.
    #[error("warming up: {points} points seen, not enough to forecast with intervals yet")]
    WarmingUp {
        /// Points seen so far.
        points: u64,
    },
    /// A horizon of 0 or beyond the configured one was asked for.
    #[error("horizon of {steps} points is outside 1..={horizon} (the configured horizon)")]
    HorizonOutOfRange {
        /// Points asked for.
        steps: usize,
        /// The configured horizon, points.
        horizon: usize,
    },
    /// The configuration does not fit the series.
    #[error("invalid forecast configuration: {0}")]
    InvalidConfig(String),
}
