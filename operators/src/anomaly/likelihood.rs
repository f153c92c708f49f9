//! Anomaly likelihood: how unusual the recent raw scores are compared with
//! their own history, as Numenta's HTM does for its raw prediction error.
//!
//! A detector's raw score is noisy and its scale differs per series; NAB
//! rewards a detection only when it is rare. The likelihood models the raw
//! scores of the last `history` points as a normal distribution, compares
//! the mean of the last `recent` raw scores with it, and reports the tail
//! probability on a log scale: `−log10(1 − L) / 10`, clamped to [0, 1], so 0.5
//! means "one in 10⁵".

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

/// Running likelihood of raw anomaly scores.
///
/// # Examples
///
/// ```
/// use pulse_operators::anomaly::AnomalyLikelihood;
///
/// let mut likelihood = AnomalyLikelihood::new(500, 5, 0.01);
/// for i in 0..500 {
///     likelihood.update(0.1 + 0.01 * f64::from(i % 3));
/// }
/// let calm = likelihood.update(0.11);
/// let surprised = (0..3).map(|_| likelihood.update(0.9)).fold(0.0, f64::max);
/// assert!(surprised > 0.5 && calm < 0.2);
/// ```
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AnomalyLikelihood {
    history_len: usize,
    recent_len: usize,
    min_std: f64,
    history: VecDeque<f64>,
    sum: f64,
    sum_sq: f64,
    recent: VecDeque<f64>,
    recent_sum: f64,
    updates: u64,
}

impl AnomalyLikelihood {
    /// A likelihood over `history` raw scores, averaging the last `recent`, with σ at least `min_std`.
    pub fn new(history: usize, recent: usize, min_std: f64) -> Self {
        Self {
            history_len: history.max(2),
            recent_len: recent.max(1),
            min_std,
            history: VecDeque::with_capacity(history.max(2)),
            sum: 0.0,
            sum_sq: 0.0,
            recent: VecDeque::with_capacity(recent.max(1)),
            recent_sum: 0.0,
            updates: 0,
        }
    }

    /// Adds a raw score and returns the log-scaled likelihood in [0, 1].
    pub fn update(&mut self, raw: f64) -> f64 {
        if self.recent.len() == self.recent_len
            && let Some(old) = self.recent.pop_front()
        {
            self.recent_sum -= old;
        }
        self.recent.push_back(raw);
        self.recent_sum += raw;
        let scaled = if self.history.len() < 2 {
            0.0
        } else {
            let n = self.history.len() as f64;
            let mean = self.sum / n;
            let variance = (self.sum_sq / n - mean * mean).max(0.0);
            let std = variance.sqrt().max(self.min_std);
            let average = self.recent_sum / self.recent.len() as f64;
            let tail = 0.5 * erfc((average - mean) / std / std::f64::consts::SQRT_2);
            (-(tail.max(1e-300)).log10() / 10.0).clamp(0.0, 1.0)
        };
        if self.history.len() == self.history_len
            && let Some(old) = self.history.pop_front()
        {
            self.sum -= old;
            self.sum_sq -= old * old;
        }
        self.history.push_back(raw);
        self.sum += raw;
        self.sum_sq += raw * raw;
        self.updates += 1;
        // Running sums drift; recompute them exactly once per history length.
        if self.updates.is_multiple_of(self.history_len as u64) {
            self.sum = self.history.iter().sum();
            self.sum_sq = self.history.iter().map(|v| v * v).sum();
        }
        scaled
    }

    /// Bytes of state at full history.
    pub fn state_bytes(&self) -> usize {
        std::mem::size_of::<Self>() + (self.history_len + self.recent_len) * std::mem::size_of::<f64>()
    }
}

/// The complementary error function (Numerical Recipes `erfcc`, relative error < 1.2e-7).
pub fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98 + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let value = t * poly.exp();
    if x >= 0.0 { value } else { 2.0 - value }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erfc_matches_known_values() {
        for (x, expected) in [
            (0.0, 1.0),
            (1.0, 0.157_299_207),
            (2.0, 0.004_677_735),
            (-1.0, 1.842_700_793),
        ] {
            assert!((erfc(x) - expected).abs() < 1e-7 * expected.max(1.0), "erfc({x})");
        }
        // The far tail keeps its relative accuracy.
        let far = erfc(5.0);
        assert!((far / 1.537_459_794_428e-12 - 1.0).abs() < 1e-6);
    }

    #[test]
    fn a_constant_raw_score_is_never_surprising() {
        let mut likelihood = AnomalyLikelihood::new(100, 5, 0.01);
        for _ in 0..1000 {
            assert!(likelihood.update(0.3) < 0.05);
        }
    }
}
