//! Latency histograms: [`AtomicHistogram`], which many tasks record into at
//! once without a lock, and [`Histogram`], a merged snapshot that answers
//! quantiles.
//!
//! Buckets are log-linear, as in HdrHistogram: values below 256 have a bucket
//! each, and every power of two above is split into 128 equal buckets, so a
//! quantile is reported within 0.8 % of the recorded value (the exact maximum
//! is kept beside the buckets).

use std::sync::atomic::{AtomicU64, Ordering};

/// Significant bits kept per value: buckets are at most 1/2^(BITS-1) of their value wide.
const BITS: u32 = 8;
/// Buckets per power of two above the exact range.
const HALF: usize = 1 << (BITS - 1);
/// Enough buckets for any `u64`.
const BUCKETS: usize = (64 - BITS as usize + 1) * HALF + HALF;

/// The bucket of `value`.
fn bucket_of(value: u64) -> usize {
    if value < (1 << BITS) {
        return value as usize;
    }
    let shift = 64 - value.leading_zeros() - BITS;
    shift as usize * HALF + (value >> shift) as usize
}

/// The largest value that falls in `bucket`.
fn highest_in(bucket: usize) -> u64 {
    if bucket < (1 << BITS) {
        return bucket as u64;
    }
    let shift = bucket / HALF - 1;
    let mantissa = (bucket - shift * HALF) as u64;
    // The top bucket's end wraps to 0, and back to u64::MAX.
    ((mantissa + 1) << shift).wrapping_sub(1)
}

/// A histogram of `u64` values that any number of threads record into
/// concurrently, split into shards so that recorders rarely share a cache line.
pub struct AtomicHistogram {
    shards: Vec<Shard>,
}

struct Shard {
    counts: Box<[AtomicU64]>,
    max: AtomicU64,
}

impl AtomicHistogram {
    /// An empty histogram with `shards` independent shards (at least one).
    pub fn new(shards: usize) -> Self {
        let shards = (0..shards.max(1))
            .map(|_| Shard {
                counts: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
                max: AtomicU64::new(0),
            })
            .collect();
        Self { shards }
    }

    /// Records `value` into the shard chosen by `recorder` (any stable number, such as a client id).
    pub fn record(&self, recorder: usize, value: u64) {
        let shard = &self.shards[recorder % self.shards.len()];
        shard.counts[bucket_of(value)].fetch_add(1, Ordering::Relaxed);
        shard.max.fetch_max(value, Ordering::Relaxed);
    }

    /// Every shard merged into one snapshot.
    ///
    /// # Examples
    ///
    /// ```
    /// use pulse_loadtest::histogram::AtomicHistogram;
    ///
    /// let latencies = AtomicHistogram::new(4);
    /// for (client, micros) in [(0, 900), (1, 1_000), (2, 1_100), (3, 50_000)] {
    ///     latencies.record(client, micros);
    /// }
    /// let merged = latencies.snapshot();
    /// assert_eq!(merged.len(), 4);
    /// assert_eq!(merged.max(), 50_000);
    /// assert!((995..=1_005).contains(&merged.quantile(0.5)));
    /// ```
    pub fn snapshot(&self) -> Histogram {
        let mut merged = Histogram::default();
        for shard in &self.shards {
            for (total, count) in merged.counts.iter_mut().zip(shard.counts.iter()) {
                *total += count.load(Ordering::Relaxed);
            }
            merged.max = merged.max.max(shard.max.load(Ordering::Relaxed));
        }
        merged.len = merged.counts.iter().sum();
        merged
    }
}

/// A merged histogram: quantiles, count and exact maximum.
#[derive(Clone, Debug)]
pub struct Histogram {
    counts: Vec<u64>,
    len: u64,
    max: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self {
            counts: vec![0; BUCKETS],
            len: 0,
            max: 0,
        }
    }
}

impl Histogram {
    /// How many values were recorded.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The largest value recorded (0 when empty).
    pub fn max(&self) -> u64 {
        self.max
    }

    /// The value at quantile `q` in [0, 1]: the top of the bucket holding the
    /// `ceil(q × len)`-th smallest value, capped at the maximum (0 when empty).
    pub fn quantile(&self, q: f64) -> u64 {
        if self.len == 0 {
            return 0;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.len as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (bucket, count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return highest_in(bucket).min(self.max);
            }
        }
        self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous_and_narrow() {
        let mut previous = None;
        for value in (0..100_000u64).chain([u64::MAX / 3, u64::MAX - 1, u64::MAX]) {
            let bucket = bucket_of(value);
            assert!(bucket < BUCKETS, "{value} -> {bucket}");
            assert!(highest_in(bucket) >= value, "{value} above its bucket {bucket}");
            if bucket > 0 {
                assert!(highest_in(bucket - 1) < value, "{value} belongs to an earlier bucket");
            }
            let width = highest_in(bucket) - value;
            assert!(
                width as f64 <= value as f64 / HALF as f64,
                "{value}: bucket {bucket} too wide"
            );
            if let Some(previous) = previous {
                assert!(bucket == previous || bucket == previous + 1 || value > 100_000);
            }
            previous = Some(bucket);
        }
    }

    #[test]
    fn quantiles_agree_with_sorting_within_a_bucket() {
        let histogram = AtomicHistogram::new(3);
        // A skewed, repeatable spread of latencies from 1 µs to about 4 s.
        let mut values: Vec<u64> = (1..20_000u64).map(|i| (i * i * 7919) % 4_000_000 + 1).collect();
        for (i, value) in values.iter().enumerate() {
            histogram.record(i, *value);
        }
        values.sort_unstable();
        let merged = histogram.snapshot();
        assert_eq!(merged.len(), values.len() as u64);
        assert_eq!(merged.max(), *values.last().unwrap());
        for q in [0.0, 0.1, 0.5, 0.9, 0.99, 0.999, 1.0] {
            let rank = ((q * values.len() as f64).ceil() as usize).max(1);
            let exact = values[rank - 1];
            let reported = merged.quantile(q);
            assert!(reported >= exact, "q={q}: {reported} < {exact}");
            assert!(
                reported as f64 <= exact as f64 * (1.0 + 1.0 / HALF as f64),
                "q={q}: {reported} vs {exact}"
            );
        }
    }

    #[test]
    fn an_empty_histogram_reports_zero() {
        let merged = AtomicHistogram::new(1).snapshot();
        assert!(merged.is_empty());
        assert_eq!((merged.quantile(0.99), merged.max()), (0, 0));
    }
}
