//! Exponentially weighted moving average and variance (EWMA/EWMV) with a warm-up.

/// EWMA/EWMV detector: z = |x − mean| / σ with exponentially decaying weights.
///
/// # Examples
///
/// ```
/// use pulse_operators::anomaly::Ewma;
///
/// let mut ewma = Ewma::new(0.05, 10);
/// for i in 0..100 {
///     ewma.update(5.0 + f64::from(i % 2));
/// }
/// assert!(ewma.z_score(5.5).unwrap() < 1.0);
/// assert!(ewma.z_score(50.0).unwrap() > 20.0);
/// ```
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Ewma {
    alpha: f64,
    warmup: u64,
    seen: u64,
    mean: f64,
    variance: f64,
}

impl Ewma {
    /// A detector with smoothing `alpha` in (0, 1] that scores after `warmup` points.
    pub fn new(alpha: f64, warmup: u64) -> Self {
        Self {
            alpha: alpha.clamp(1e-6, 1.0),
            warmup,
            seen: 0,
            mean: 0.0,
            variance: 0.0,
        }
    }

    /// The current mean, `None` before the first point.
    pub fn mean(&self) -> Option<f64> {
        (self.seen > 0).then_some(self.mean)
    }

    /// The current standard deviation, `None` before the first point.
    pub fn std_dev(&self) -> Option<f64> {
        (self.seen > 0).then(|| self.variance.sqrt())
    }

    /// z-score of `value` (before adding it), `None` while warming up.
    pub fn z_score(&self, value: f64) -> Option<f64> {
        if self.seen < self.warmup.max(2) {
            return None;
        }
        let sigma = self.variance.sqrt().max(1e-9 * self.mean.abs().max(1e-3));
        Some((value - self.mean).abs() / sigma)
    }

    /// Adds a point. During warm-up the weights are 1/n (a plain mean), so the
    /// first points do not dominate the way a fixed alpha would let them.
    pub fn update(&mut self, value: f64) {
        self.seen += 1;
        let alpha = self.alpha.max(1.0 / self.seen as f64);
        let delta = value - self.mean;
        self.mean += alpha * delta;
        self.variance = (1.0 - alpha) * (self.variance + alpha * delta * delta);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warm_up_uses_the_plain_mean_and_variance() {
        let mut ewma = Ewma::new(0.01, 3);
        for v in [1.0, 2.0, 3.0, 4.0] {
            ewma.update(v);
        }
        assert!((ewma.mean().unwrap() - 2.5).abs() < 1e-12);
        // population variance of 1..4
        assert!((ewma.std_dev().unwrap().powi(2) - 1.25).abs() < 1e-12);
    }

    #[test]
    fn no_score_while_warming_up() {
        let mut ewma = Ewma::new(0.1, 5);
        ewma.update(1.0);
        assert_eq!(ewma.z_score(1.0), None);
    }
}
