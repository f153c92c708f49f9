//! Robust z-score over a sliding window: how many robust σ (1.4826 · MAD) a
//! value lies from the window's median.

use std::collections::VecDeque;

/// Sliding-window median/MAD detector over the last `window` points.
///
/// # Examples
///
/// ```
/// use pulse_operators::anomaly::RobustZScore;
///
/// let mut detector = RobustZScore::new(50);
/// for i in 0..50 {
///     detector.update(10.0 + f64::from(i % 5) * 0.1);
/// }
/// let z = detector.z_score(20.0).unwrap();
/// assert!(z > 10.0);
/// ```
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct RobustZScore {
    window: usize,
    recent: VecDeque<f64>,
    sorted: Vec<f64>,
    #[serde(skip)]
    scratch: Vec<f64>,
}

/// Median and robust σ of a window.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RobustStats {
    /// The median.
    pub median: f64,
    /// 1.4826 · MAD, floored so that a flat window does not divide by zero.
    pub sigma: f64,
}

impl RobustZScore {
    /// A detector over the last `window` points (at least 3).
    pub fn new(window: usize) -> Self {
        let window = window.max(3);
        Self {
            window,
            recent: VecDeque::with_capacity(window),
            sorted: Vec::with_capacity(window),
            scratch: Vec::with_capacity(window),
        }
    }

    /// Points in the window.
    pub fn len(&self) -> usize {
        self.recent.len()
    }

    /// Whether the window is empty.
    pub fn is_empty(&self) -> bool {
        self.recent.is_empty()
    }

    /// Median and robust σ of the window, `None` while it is empty.
    pub fn stats(&mut self) -> Option<RobustStats> {
        let n = self.sorted.len();
        if n == 0 {
            return None;
        }
        let median = median_of_sorted(&self.sorted);
        self.scratch.clear();
        self.scratch.extend(self.sorted.iter().map(|v| (v - median).abs()));
        let mid = n / 2;
        let (_, upper, _) = self.scratch.select_nth_unstable_by(mid, f64::total_cmp);
        let mut mad = *upper;
        if n.is_multiple_of(2) {
            let lower = self.scratch[..mid].iter().copied().fold(f64::NEG_INFINITY, f64::max);
            mad = (mad + lower) / 2.0;
        }
        let range = self.sorted[n - 1] - self.sorted[0];
        // A window that is mostly flat has MAD 0; fall back to a share of its range,
        // then to a relative epsilon, so a tiny wiggle is not "infinitely" anomalous.
        let sigma = (1.4826 * mad).max(0.05 * range).max(1e-6 * median.abs().max(1e-3));
        Some(RobustStats { median, sigma })
    }

    /// The robust z-score of `value` against the window (before adding it).
    pub fn z_score(&mut self, value: f64) -> Option<f64> {
        self.stats().map(|stats| (value - stats.median).abs() / stats.sigma)
    }

    /// Adds a point, dropping the oldest when the window is full.
    pub fn update(&mut self, value: f64) {
        if self.recent.len() == self.window
            && let Some(old) = self.recent.pop_front()
        {
            let at = self.sorted.partition_point(|v| v.total_cmp(&old).is_lt());
            self.sorted.remove(at);
        }
        self.recent.push_back(value);
        let at = self.sorted.partition_point(|v| v.total_cmp(&value).is_lt());
        self.sorted.insert(at, value);
    }

    /// Bytes of state at a full window.
    pub fn state_bytes(&self) -> usize {
        std::mem::size_of::<Self>() + 3 * self.window * std::mem::size_of::<f64>()
    }
}

fn median_of_sorted(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn median_and_mad_match_a_full_sort(values in proptest::collection::vec(-1e3f64..1e3, 1..200), window in 3usize..40) {
            let mut detector = RobustZScore::new(window);
            for (i, &v) in values.iter().enumerate() {
                detector.update(v);
                let start = (i + 1).saturating_sub(window);
                let mut reference: Vec<f64> = values[start..=i].to_vec();
                reference.sort_by(f64::total_cmp);
                let median = median_of_sorted(&reference);
                let mut deviations: Vec<f64> = reference.iter().map(|x| (x - median).abs()).collect();
                deviations.sort_by(f64::total_cmp);
                let mad = median_of_sorted(&deviations);
                let stats = detector.stats().unwrap();
                prop_assert_eq!(stats.median, median);
                let range = reference[reference.len() - 1] - reference[0];
                let sigma = (1.4826 * mad).max(0.05 * range).max(1e-6 * median.abs().max(1e-3));
                prop_assert!((stats.sigma - sigma).abs() <= 1e-9 * sigma.max(1.0));
            }
        }
    }
}
