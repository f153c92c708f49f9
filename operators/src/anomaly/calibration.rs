//! Calibration of a detector's raw score against its own history: a point is
//! anomalous when its raw score passes the highest (or a high quantile of the)
//! raw scores of the last `history` points.
//!
//! Scales differ per series and per detector; the history makes them
//! comparable, so one threshold serves every key. The calibrated score is
//! `0.5 · raw / (q · (1 + margin))` clamped to [0, 1]: 0.5 at the historical
//! extreme q raised by the margin, so a periodic series that repeats its own
//! extreme exactly stays below 0.5.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

/// Running extreme of a detector's raw scores.
///
/// # Examples
///
/// ```
/// use pulse_operators::anomaly::ExtremeCalibrator;
///
/// let mut calibrator = ExtremeCalibrator::new(100, 1.0, 0.0);
/// for i in 0..100 {
///     calibrator.update(f64::from(i % 10));
/// }
/// assert_eq!(calibrator.score(9.0), 0.5);
/// // With a margin a repeat of the extreme stays below 0.5.
/// let mut strict = ExtremeCalibrator::new(100, 1.0, 0.1);
/// strict.update(9.0);
/// assert!(strict.score(9.0) < 0.5 && strict.score(9.9) >= 0.5 - 1e-12);
/// assert_eq!(calibrator.score(27.0), 1.0);
/// ```
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ExtremeCalibrator {
    history_len: usize,
    quantile: f64,
    margin: f64,
    recent: VecDeque<f64>,
    sorted: Vec<f64>,
}

impl ExtremeCalibrator {
    /// A calibrator over the last `history` raw scores, against their `quantile`
    /// (1.0 = the maximum) raised by `margin` (0.1 = 10 %).
    pub fn new(history: usize, quantile: f64, margin: f64) -> Self {
        let history_len = history.max(1);
        Self {
            history_len,
            quantile: quantile.clamp(0.0, 1.0),
            margin: margin.max(0.0),
            recent: VecDeque::with_capacity(history_len),
            sorted: Vec::with_capacity(history_len),
        }
    }

    /// Raw scores in the history.
    pub fn len(&self) -> usize {
        self.recent.len()
    }

    /// Whether the history is empty.
    pub fn is_empty(&self) -> bool {
        self.recent.is_empty()
    }

    /// The historical extreme (the configured quantile), `None` while empty.
    pub fn extreme(&self) -> Option<f64> {
        let n = self.sorted.len();
        (n > 0).then(|| self.sorted[((n - 1) as f64 * self.quantile).round() as usize])
    }

    /// The calibrated score of `raw` in [0, 1] (0 while the history is empty).
    pub fn score(&self, raw: f64) -> f64 {
        match self.extreme() {
            None => 0.0,
            // A flat history: any positive raw score is new.
            Some(extreme) if extreme <= 1e-12 => f64::from(u8::from(raw > 1e-12)),
            Some(extreme) => (0.5 * raw / (extreme * (1.0 + self.margin))).clamp(0.0, 1.0),
        }
    }

    /// Adds a raw score to the history.
    pub fn update(&mut self, raw: f64) {
        if self.recent.len() == self.history_len
            && let Some(old) = self.recent.pop_front()
        {
            let at = self.sorted.partition_point(|v| v.total_cmp(&old).is_lt());
            self.sorted.remove(at);
        }
        self.recent.push_back(raw);
        let at = self.sorted.partition_point(|v| v.total_cmp(&raw).is_lt());
        self.sorted.insert(at, raw);
    }

    /// Bytes of state at full history.
    pub fn state_bytes(&self) -> usize {
        std::mem::size_of::<Self>() + 2 * self.history_len * std::mem::size_of::<f64>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn the_extreme_is_the_quantile_of_the_last_points(values in proptest::collection::vec(0f64..100.0, 1..300), history in 1usize..50, quantile in 0f64..=1.0) {
            let mut calibrator = ExtremeCalibrator::new(history, quantile, 0.1);
            for (i, &v) in values.iter().enumerate() {
                calibrator.update(v);
                let mut reference = values[(i + 1).saturating_sub(history)..=i].to_vec();
                reference.sort_by(f64::total_cmp);
                let expected = reference[((reference.len() - 1) as f64 * quantile).round() as usize];
                prop_assert_eq!(calibrator.extreme(), Some(expected));
            }
        }
    }
}
