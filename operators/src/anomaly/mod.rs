//! Streaming anomaly detection per series: the detectors, their ensemble and
//! the per-key state the `type = "anomaly"` operator wraps one to one.
//!
//! - [`RobustZScore`]: median/MAD over a sliding window.
//! - [`Ewma`]: EWMA/EWMV with a warm-up.
//! - [`IsolationForest`]: a native forest; [`ForestDetector`] trains it on a
//!   series' recent values on an event-time schedule and swaps models atomically.
//! - [`AnomalyLikelihood`]: turns the ensemble's raw score into how rare it is.
//! - [`PatternMemory`]: vetoes alerts on patterns the series has shown before,
//!   and flags values beyond the range of everything seen.
//! - [`SeriesDetector`]: all of the above for one key; [`AnomalyConfig`] configures it.
//! - [`ModelStore`]: versioned model files with their metadata.
//! - [`AnomalyExt`]: the detector per key inside the dataflow ([`stream`]).
//!
//! ## State per key
//!
//! With the defaults a key holds, when full (`SeriesDetector::state_bytes`
//! computes it for any configuration; a test pins it at about 1.4 MB):
//! the robust window (500 values kept twice plus a scratch copy: 12 KB), the
//! likelihood's history (2 000 raw scores: 16 KB), three calibrators (2 000
//! raw scores each, kept twice: 96 KB), the pattern memory (3 020 values:
//! 24 KB), the forest's training buffer (10 000 values: 80 KB) and one model (100 trees of at most 511 nodes of 24 bytes:
//! up to 1.2 MB). The model dominates: for many keys, fewer trees or a
//! smaller `sample_size` (bytes grow linearly with both) keep it in hand.
//!
//! ## Scores over time
//!
//! Each detector's raw score is calibrated against its own recent history
//! ([`ExtremeCalibrator`]): 0.5 means "past the highest of the last 2 000
//! points". An anomaly enters that history capped (`calibration.growth`), so
//! it does not hide the next one, and after an alert the key stays quiet for
//! `quiet_points` points: one incident, one alert, as NAB rewards. An alert
//! on a pattern the series has shown before (within `novelty.distance` of one
//! of the last 3 000 windows of 20 points) is vetoed: calibration against the
//! last 2 000 points alone fires on a daily spike or a routine dip every time
//! it comes back a little larger. A value beyond the range of everything seen
//! (by `range.tolerance` of it) scores 1 whatever the detectors say.

mod calibration;
mod config;
mod detector;
mod ewma;
mod forest_detector;
mod isolation_forest;
mod likelihood;
mod novelty;
mod robust_z;
mod store;
pub mod stream;

pub use calibration::ExtremeCalibrator;
pub use config::{
    AnomalyConfig, CalibrationConfig, EwmaConfig, IsolationForestConfig, LikelihoodConfig, NoveltyConfig, RangeConfig,
    RobustZConfig,
};
pub use detector::SeriesDetector;
pub use ewma::Ewma;
pub use forest_detector::{ForestDetector, ModelVersion, TrainingJob, features};
pub use isolation_forest::{ForestNode, IsolationForest, SplitMix64, average_path};
pub use likelihood::{AnomalyLikelihood, erfc};
pub use novelty::PatternMemory;
pub use robust_z::{RobustStats, RobustZScore};
pub use store::{ModelStore, StoreError};
pub use stream::{AnomalyExt, AnomalyStreamConfig, ScoredPoint};

use serde::{Deserialize, Serialize};

/// The verdict on one point.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AnomalyScore {
    /// How anomalous, in [0, 1] (0.5 ≈ a one-in-10⁵ surprise).
    pub score: f64,
    /// Whether the score reached the alert threshold.
    pub is_anomaly: bool,
    /// Info below the alert threshold, warning above, critical above the critical threshold.
    pub severity: Severity,
    /// The detectors whose own score passed their firing level.
    pub detectors_fired: Vec<DetectorKind>,
    /// The expected value (the window's median), once there is one.
    pub expected: Option<f64>,
    /// The expected band (median ± 3 robust σ).
    pub band: Option<(f64, f64)>,
    /// Why, in words, for anomalies and while warming up; empty otherwise.
    pub explanation: String,
    /// Whether the key has too few points to score (score 0).
    pub warming_up: bool,
}

/// How bad an anomaly is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Not an anomaly.
    Info,
    /// An anomaly.
    Warning,
    /// A strong anomaly.
    Critical,
}

/// The detectors of the ensemble.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DetectorKind {
    /// Robust z-score (median/MAD).
    RobustZ,
    /// EWMA/EWMV.
    Ewma,
    /// Isolation Forest.
    IsolationForest,
    /// The value left the range of every value seen so far.
    Range,
}

/// A point the detector refuses; the operator dead-letters it with this reason.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum AnomalyError {
    /// NaN or ±inf.
    #[error("value {value} at {ts_ms} is not a finite number")]
    NonFinite {
        /// Event time, epoch ms.
        ts_ms: i64,
        /// The value.
        value: f64,
    },
}
