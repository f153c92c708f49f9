//! Pattern memory of one series: has the shape of the last few points been
//! seen before, and has the value left the range of everything seen so far?
//!
//! The detectors of the ensemble are calibrated against their own recent
//! extremes, so each one fires now and then on any series (a new maximum of
//! the last 2 000 points happens by chance). Many of those alerts repeat
//! something the series has already done: a daily spike, a dip it makes every
//! few hours. [`PatternMemory`] keeps the last `memory` values and answers
//! whether the current window of `window` values (the newest point included)
//! lies within `distance` of some earlier window — root-mean-square difference
//! relative to the range of all values seen — so the detector can veto an
//! alert on a pattern that is not new. It also tracks the all-time range, for
//! the out-of-range check Numenta's NAB detector uses ("spatial anomaly"):
//! a value beyond every value seen, by a share of that range, is new whatever
//! the calibrated scores say.

use std::collections::VecDeque;

/// The recent values and the all-time range of one series.
///
/// # Examples
///
/// ```
/// use pulse_operators::anomaly::PatternMemory;
///
/// let mut memory = PatternMemory::new(4, 100);
/// for i in 0..60 {
///     memory.push(f64::from(i % 5)); // 0 1 2 3 4 0 1 ... 4
/// }
/// // The cycle goes on with a 0: the window 2 3 4 0 has been seen before.
/// assert!(memory.seen_before(0.0, 0.05));
/// // A second 4 instead: no earlier window looks like 2 3 4 4.
/// assert!(!memory.seen_before(4.0, 0.05));
/// assert!(memory.outside_range(9.0, 0.1) && !memory.outside_range(4.0, 0.1));
/// ```
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct PatternMemory {
    window: usize,
    memory: usize,
    recent: VecDeque<f64>,
    range: Option<(f64, f64)>,
}

impl PatternMemory {
    /// A memory of the last `memory` windows of `window` values (window at least 2).
    pub fn new(window: usize, memory: usize) -> Self {
        let window = window.max(2);
        let memory = memory.max(1);
        Self {
            window,
            memory,
            recent: VecDeque::with_capacity(memory + window),
            range: None,
        }
    }

    /// The smallest and largest value seen, `None` before the first.
    pub fn range(&self) -> Option<(f64, f64)> {
        self.range
    }

    /// Whether `value` lies beyond the range seen so far by more than
    /// `tolerance` times its width (never on a flat or empty history).
    pub fn outside_range(&self, value: f64, tolerance: f64) -> bool {
        match self.range {
            Some((low, high)) if high > low => {
                let margin = (high - low) * tolerance;
                value > high + margin || value < low - margin
            }
            _ => false,
        }
    }

    /// Whether the window ending in `value` (the last `window − 1` values
    /// pushed, then `value`) is within `distance` of an earlier window that
    /// does not overlap it: root-mean-square difference over the window,
    /// relative to the range of the values seen. False while fewer than two
    /// windows of values are in.
    pub fn seen_before(&mut self, value: f64, distance: f64) -> bool {
        let w = self.window;
        let len = self.recent.len();
        if len + 1 < 2 * w {
            return false;
        }
        let Some((low, high)) = self.range else {
            return false;
        };
        let width = (high - low).max(1e-9);
        // sqrt(Σd²/w)/width < distance, without the square root.
        let bound = (distance * width).powi(2) * w as f64;
        let values = self.recent.make_contiguous();
        let current_start = len + 1 - w;
        let current = |i: usize| {
            if current_start + i < len {
                values[current_start + i]
            } else {
                value
            }
        };
        // Windows ending at indices w − 1 ..= len − w: none shares a point with the current one.
        (0..=len + 1 - 2 * w).any(|start| {
            let mut sum = 0.0;
            for i in 0..w {
                let d = values[start + i] - current(i);
                sum += d * d;
                if sum >= bound {
                    return false;
                }
            }
            true
        })
    }

    /// Adds a value (after it was scored).
    pub fn push(&mut self, value: f64) {
        if self.recent.len() == self.memory + self.window {
            self.recent.pop_front();
        }
        self.recent.push_back(value);
        self.range = Some(match self.range {
            None => (value, value),
            Some((low, high)) => (low.min(value), high.max(value)),
        });
    }

    /// Bytes of state when full.
    pub fn state_bytes(&self) -> usize {
        std::mem::size_of::<Self>() + (self.memory + self.window) * std::mem::size_of::<f64>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Brute force: the smallest relative RMS distance from the window ending in
    /// `value` to a non-overlapping earlier window among the last `memory + w` values.
    fn nearest(before: &[f64], value: f64, w: usize, memory: usize) -> Option<f64> {
        let (low, high) = before
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), &v| (l.min(v), h.max(v)));
        let width = (high - low).max(1e-9);
        let mut all = before[before.len().saturating_sub(memory + w)..].to_vec();
        all.push(value);
        let t = all.len() - 1;
        if t + 1 < 2 * w {
            return None;
        }
        let current = &all[t + 1 - w..=t];
        (w - 1..=t - w)
            .map(|end| {
                let past = &all[end + 1 - w..=end];
                let sum: f64 = past.iter().zip(current).map(|(a, b)| (a - b) * (a - b)).sum();
                (sum / w as f64).sqrt() / width
            })
            .min_by(f64::total_cmp)
    }

    proptest! {
        #[test]
        fn the_veto_matches_a_brute_force_nearest_window(
            values in proptest::collection::vec(0u8..6, 1..120),
            w in 2usize..6,
            memory in 1usize..40,
            distance in 0.01f64..0.5,
        ) {
            let values: Vec<f64> = values.into_iter().map(f64::from).collect();
            let mut pattern = PatternMemory::new(w, memory);
            for (t, &value) in values.iter().enumerate() {
                let expected = nearest(&values[..t], value, w, memory)
                    .is_some_and(|d| d < distance);
                prop_assert_eq!(pattern.seen_before(value, distance), expected, "t={}", t);
                pattern.push(value);
            }
        }
    }

    #[test]
    fn a_flat_history_has_no_range_to_leave() {
        let mut memory = PatternMemory::new(3, 10);
        assert!(!memory.outside_range(5.0, 0.1));
        for _ in 0..10 {
            memory.push(2.0);
        }
        assert!(!memory.outside_range(1e9, 0.1));
        assert_eq!(memory.range(), Some((2.0, 2.0)));
    }
}
