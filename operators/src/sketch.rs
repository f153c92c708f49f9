//! A mergeable quantile sketch with a relative-error guarantee (DDSketch).
//!
//! Values are counted in logarithmic buckets: bucket `i` holds the values in
//! `(γ^(i-1), γ^i]` with `γ = (1 + α) / (1 − α)`. A quantile is answered with the
//! midpoint `2γ^i / (γ + 1)` of the bucket holding the value of that rank, which
//! is within a relative error `α` of the true value of that rank (see Masson et
//! al., "DDSketch", VLDB 2019). Negative values are kept in a mirrored store and
//! values whose magnitude is below [`MIN_INDEXABLE`] count as zero. Sketches of
//! the same accuracy merge exactly by adding bucket counts, so a quantile of a
//! merged sketch carries the same bound as one built from all values directly.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The relative accuracy α of every sketch in pulse: quantiles are within 1 %.
pub const RELATIVE_ACCURACY: f64 = 0.01;

/// Magnitudes below this are counted as zero (and answered as exactly 0).
pub const MIN_INDEXABLE: f64 = 1e-9;

/// A DDSketch with accuracy [`RELATIVE_ACCURACY`].
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct QuantileSketch {
    positive: BTreeMap<i32, u64>,
    negative: BTreeMap<i32, u64>,
    zeros: u64,
    count: u64,
}

fn gamma() -> f64 {
    (1.0 + RELATIVE_ACCURACY) / (1.0 - RELATIVE_ACCURACY)
}

fn bucket_of(magnitude: f64) -> i32 {
    (magnitude.ln() / gamma().ln()).ceil() as i32
}

fn midpoint_of(bucket: i32) -> f64 {
    let g = gamma();
    let midpoint = 2.0 / (g + 1.0) * g.powi(bucket);
    if midpoint.is_finite() {
        return midpoint;
    }
    // The top bucket reaches past f64::MAX: answer the point of its representable
    // part (lo, MAX] with the least relative error, 2·lo·MAX / (lo + MAX).
    let lo = g.powi(bucket - 1);
    lo * (2.0 / (1.0 + lo / f64::MAX))
}

impl QuantileSketch {
    /// An empty sketch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts one finite value.
    pub fn insert(&mut self, value: f64) {
        self.count += 1;
        if value.abs() < MIN_INDEXABLE {
            self.zeros += 1;
        } else if value > 0.0 {
            *self.positive.entry(bucket_of(value)).or_default() += 1;
        } else {
            *self.negative.entry(bucket_of(-value)).or_default() += 1;
        }
    }

    /// Adds every value counted by `other`.
    pub fn merge(&mut self, other: &QuantileSketch) {
        for (bucket, n) in &other.positive {
            *self.positive.entry(*bucket).or_default() += n;
        }
        for (bucket, n) in &other.negative {
            *self.negative.entry(*bucket).or_default() += n;
        }
        self.zeros += other.zeros;
        self.count += other.count;
    }

    /// How many values were counted.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The value of rank `⌊q·(n − 1)⌋` (0-based, ascending), within a relative
    /// error of [`RELATIVE_ACCURACY`]; `None` when the sketch is empty.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.count == 0 {
            return None;
        }
        let rank = (q.clamp(0.0, 1.0) * (self.count - 1) as f64).floor() as u64;
        let mut seen = 0;
        // Ascending order: the most negative values first, i.e. the mirrored
        // store from its largest bucket down, then zeros, then positives.
        for (bucket, n) in self.negative.iter().rev() {
            seen += n;
            if seen > rank {
                return Some(-midpoint_of(*bucket));
            }
        }
        seen += self.zeros;
        if seen > rank {
            return Some(0.0);
        }
        for (bucket, n) in &self.positive {
            seen += n;
            if seen > rank {
                return Some(midpoint_of(*bucket));
            }
        }
        unreachable!("rank {rank} is below the count {}", self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn exact(values: &[f64], q: f64) -> f64 {
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        sorted[(q * (sorted.len() - 1) as f64).floor() as usize]
    }

    fn within_bound(estimate: f64, truth: f64) -> bool {
        if truth.abs() < MIN_INDEXABLE {
            return estimate == 0.0;
        }
        (estimate - truth).abs() <= RELATIVE_ACCURACY * truth.abs() * (1.0 + 1e-9)
    }

    fn value() -> impl Strategy<Value = f64> {
        prop_oneof![
            -1e6..1e6f64,
            0.0..1.0f64,
            Just(0.0),
            -1e300..-1e290f64,
            1e290..1e300f64,
            (1u32..5).prop_map(f64::from)
        ]
    }

    proptest! {
        #[test]
        fn quantiles_stay_within_the_relative_bound(values in prop::collection::vec(value(), 1..300), q in 0.0..=1.0f64) {
            let mut sketch = QuantileSketch::new();
            values.iter().for_each(|v| sketch.insert(*v));
            let estimate = sketch.quantile(q).unwrap();
            let truth = exact(&values, q);
            prop_assert!(within_bound(estimate, truth), "q={q} estimate={estimate} truth={truth}");
        }

        #[test]
        fn merging_equals_inserting_everything(a in prop::collection::vec(value(), 0..100), b in prop::collection::vec(value(), 0..100)) {
            let (mut left, mut right, mut all) = (QuantileSketch::new(), QuantileSketch::new(), QuantileSketch::new());
            a.iter().for_each(|v| { left.insert(*v); all.insert(*v) });
            b.iter().for_each(|v| { right.insert(*v); all.insert(*v) });
            left.merge(&right);
            prop_assert_eq!(left, all);
        }
    }

    #[test]
    fn empty_sketch_has_no_quantile() {
        assert_eq!(QuantileSketch::new().quantile(0.5), None);
    }
}
