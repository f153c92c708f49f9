//! Forecasts waiting for their actual value, at a few tracked horizons.
//!
//! To learn how good a forecast `k` steps ahead is, a model must remember what it said
//! `k` points ago. Only a log-spaced set of horizons is tracked (1, 2, 4, …, and the
//! longest), so the memory is about twice the longest horizon per model instead of its
//! square; horizons in between borrow from the tracked ones around them.

use std::collections::VecDeque;

/// The tracked horizons up to `longest`: powers of two, then `longest` itself.
pub fn tracked_horizons(longest: usize) -> Vec<usize> {
    let longest = longest.max(1);
    let mut horizons: Vec<usize> = std::iter::successors(Some(1usize), |k| k.checked_mul(2))
        .take_while(|&k| k < longest)
        .collect();
    horizons.push(longest);
    horizons
}

/// The index of the smallest tracked horizon ≥ `steps`, and of the largest ≤ `steps`.
pub fn bracket(horizons: &[usize], steps: usize) -> (usize, usize) {
    let above = horizons.partition_point(|&k| k < steps).min(horizons.len() - 1);
    let below = if horizons[above] > steps && above > 0 {
        above - 1
    } else {
        above
    };
    (below, above)
}

/// Past forecasts of one model at each tracked horizon, oldest first.
#[derive(Debug, Clone)]
pub struct PendingForecasts {
    queues: Vec<VecDeque<f64>>,
}

impl PendingForecasts {
    /// Empty queues for `horizons`.
    pub fn new(horizons: &[usize]) -> Self {
        Self {
            queues: horizons.iter().map(|&k| VecDeque::with_capacity(k)).collect(),
        }
    }

    /// For each tracked horizon whose forecast for the point just arrived is known,
    /// calls `settled(index, actual − forecast)`.
    pub fn settle(&mut self, horizons: &[usize], actual: f64, mut settled: impl FnMut(usize, f64)) {
        for (index, (queue, &k)) in self.queues.iter_mut().zip(horizons).enumerate() {
            if queue.len() == k
                && let Some(forecast) = queue.pop_front()
            {
                settled(index, actual - forecast);
            }
        }
    }

    /// Records the forecasts just made, `forecast(k)` for each tracked horizon `k`.
    pub fn push(&mut self, horizons: &[usize], mut forecast: impl FnMut(usize) -> f64) {
        for (queue, &k) in self.queues.iter_mut().zip(horizons) {
            queue.push_back(forecast(k));
        }
    }

    /// Forgets every pending forecast (after a gap their targets never arrive).
    pub fn clear(&mut self) {
        self.queues.iter_mut().for_each(VecDeque::clear);
    }

    /// Heap bytes held at most (the queues are never longer than their horizon).
    pub fn heap_bytes(&self) -> usize {
        self.queues
            .iter()
            .map(|q| q.capacity() * std::mem::size_of::<f64>())
            .sum::<usize>()
            + self.queues.capacity() * std::mem::size_of::<VecDeque<f64>>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn horizons_are_log_spaced_up_to_the_longest() {
        assert_eq!(tracked_horizons(1), vec![1]);
        assert_eq!(tracked_horizons(12), vec![1, 2, 4, 8, 12]);
        assert_eq!(tracked_horizons(16), vec![1, 2, 4, 8, 16]);
    }

    #[test]
    fn bracket_finds_the_neighbours() {
        let h = tracked_horizons(12);
        assert_eq!(bracket(&h, 1), (0, 0));
        assert_eq!(bracket(&h, 3), (1, 2));
        assert_eq!(bracket(&h, 8), (3, 3));
        assert_eq!(bracket(&h, 10), (3, 4));
        assert_eq!(bracket(&h, 12), (4, 4));
    }

    #[test]
    fn a_forecast_settles_exactly_k_points_later() {
        let horizons = vec![1, 3];
        let mut pending = PendingForecasts::new(&horizons);
        let mut settled = Vec::new();
        // At point t the model forecasts t + k for horizon k (a perfect model).
        for t in 0..6 {
            pending.settle(&horizons, t as f64, |i, e| settled.push((t, i, e)));
            pending.push(&horizons, |k| (t + k) as f64);
        }
        assert!(settled.iter().all(|&(_, _, e)| e == 0.0));
        let horizon_3: Vec<_> = settled.iter().filter(|s| s.1 == 1).map(|s| s.0).collect();
        assert_eq!(horizon_3, vec![3, 4, 5]);
        assert_eq!(settled.iter().filter(|s| s.1 == 0).count(), 5);
    }
}
