//! Prediction intervals calibrated online from the forecaster's own errors.
//!
//! For each tracked horizon the calibrator keeps an exponentially weighted variance of
//! the errors at that horizon (memory ≈ one horizon, at least 12 points) and, for each
//! level, a multiplier `q` on that standard deviation that is nudged after every settled
//! error the way online conformal prediction does: up by `η·level` when the error fell
//! outside `q·σ`, down by `η·(1 − level)` when inside. Coverage therefore tracks the
//! nominal level even when errors are not Gaussian, and no distribution is assumed.

/// Nominal levels of the two intervals.
pub const LEVELS: [f64; 2] = [0.80, 0.95];
/// Gaussian quantiles of [`LEVELS`], the multipliers' starting points.
const START: [f64; 2] = [1.281_551_565_5, 1.959_963_984_5];
/// Step of the multipliers' adaptation.
const ETA: f64 = 0.05;
/// Variance memory in horizons (the smoothing weight is 1 / (this · max(k, 12))).
const VARIANCE_MEMORY: f64 = 1.0;

/// Error statistics of one tracked horizon.
#[derive(Debug, Clone, Copy)]
struct HorizonCalibration {
    variance: f64,
    settled: u64,
    multipliers: [f64; 2],
}

/// Interval half-widths per tracked horizon, learnt from settled errors.
#[derive(Debug, Clone)]
pub struct IntervalCalibrator {
    horizons: Vec<HorizonCalibration>,
    weights: Vec<f64>,
}

/// Half-widths of the 80 % and 95 % intervals at one horizon.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HalfWidths {
    /// Half-width of the 80 % interval.
    pub p80: f64,
    /// Half-width of the 95 % interval.
    pub p95: f64,
}

impl IntervalCalibrator {
    /// A calibrator for the tracked `horizons`.
    pub fn new(horizons: &[usize]) -> Self {
        Self {
            horizons: vec![
                HorizonCalibration {
                    variance: 0.0,
                    settled: 0,
                    multipliers: START,
                };
                horizons.len()
            ],
            weights: horizons
                .iter()
                .map(|&k| 1.0 / (VARIANCE_MEMORY * k.max(12) as f64))
                .collect(),
        }
    }

    /// Learns from the error of a forecast at tracked horizon `index`.
    pub fn settle(&mut self, index: usize, error: f64) {
        let h = &mut self.horizons[index];
        h.settled += 1;
        if h.settled > 1 {
            let sd = h.variance.sqrt();
            let score = if sd > 0.0 { error.abs() / sd } else { 0.0 };
            for (q, level) in h.multipliers.iter_mut().zip(LEVELS) {
                let outside = if score > *q { 1.0 } else { 0.0 };
                *q = (*q + ETA * (outside - (1.0 - level))).max(0.0);
            }
        }
        // A plain mean until the memory is full, then exponential weighting.
        let weight = self.weights[index].max(1.0 / h.settled as f64);
        h.variance += weight * (error * error - h.variance);
    }

    /// Whether every tracked horizon up to index `last` has settled at least one error.
    pub fn is_calibrated(&self, last: usize) -> bool {
        self.horizons[..=last].iter().all(|h| h.settled > 0)
    }

    /// Half-widths at tracked horizon `index`.
    pub fn half_widths(&self, index: usize) -> HalfWidths {
        let h = &self.horizons[index];
        let sd = h.variance.sqrt();
        HalfWidths {
            p80: h.multipliers[0] * sd,
            p95: h.multipliers[1] * sd,
        }
    }

    /// Half-widths between tracked horizons `below` and `above`, linearly at `share`
    /// (0 = `below`, 1 = `above`).
    pub fn interpolate(&self, below: usize, above: usize, share: f64) -> HalfWidths {
        let (a, b) = (self.half_widths(below), self.half_widths(above));
        HalfWidths {
            p80: a.p80 + share * (b.p80 - a.p80),
            p95: a.p95 + share * (b.p95 - a.p95),
        }
    }

    /// Heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        self.horizons.capacity() * std::mem::size_of::<HorizonCalibration>()
            + self.weights.capacity() * std::mem::size_of::<f64>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic standard-normal-ish noise (sum of uniforms, Irwin-Hall).
    fn noise(seed: &mut u64) -> f64 {
        (0..12)
            .map(|_| {
                *seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                (*seed >> 11) as f64 / (1u64 << 53) as f64
            })
            .sum::<f64>()
            - 6.0
    }

    #[test]
    fn coverage_converges_to_nominal_on_heavy_tails() {
        let mut calibrator = IntervalCalibrator::new(&[1]);
        let mut seed = 7;
        let (mut inside80, mut inside95, mut n) = (0, 0, 0);
        for i in 0..40_000 {
            // A mixture: mostly N(0, 1), sometimes N(0, 5²).
            let e = noise(&mut seed) * if i % 10 == 0 { 5.0 } else { 1.0 };
            if i > 2_000 {
                let w = calibrator.half_widths(0);
                inside80 += usize::from(e.abs() <= w.p80);
                inside95 += usize::from(e.abs() <= w.p95);
                n += 1;
            }
            calibrator.settle(0, e);
        }
        let (c80, c95) = (inside80 as f64 / n as f64, inside95 as f64 / n as f64);
        assert!((c80 - 0.80).abs() < 0.02, "80 % coverage {c80}");
        assert!((c95 - 0.95).abs() < 0.02, "95 % coverage {c95}");
    }

    #[test]
    fn uncalibrated_until_each_horizon_settles() {
        let mut calibrator = IntervalCalibrator::new(&[1, 2]);
        assert!(!calibrator.is_calibrated(0));
        calibrator.settle(0, 1.0);
        assert!(calibrator.is_calibrated(0));
        assert!(!calibrator.is_calibrated(1));
    }
}
