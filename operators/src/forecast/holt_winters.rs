//! Additive Holt-Winters with a damped trend, updated one point at a time.
//!
//! The error-correction form of ETS(A,Ad,A): with the one-step error
//! `e = y − (ℓ + φb + s)`, the update is `ℓ ← ℓ + φb + αe`, `b ← φb + αβe`,
//! `s ← s + γ(1 − α)e`. Each point costs O(1); nothing is ever refitted.

/// Smoothing parameters of one Holt-Winters model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Smoothing {
    /// Level smoothing α in (0, 1].
    pub alpha: f64,
    /// Trend smoothing β in [0, 1] (as a share of α).
    pub beta: f64,
    /// Seasonal smoothing γ in [0, 1] (as a share of 1 − α).
    pub gamma: f64,
    /// Trend damping φ in (0, 1].
    pub phi: f64,
}

/// One additive Holt-Winters model over a fixed season length.
///
/// It warms up on its first two seasons (level and seasonal profile from their means,
/// trend from their difference), then forecasts.
///
/// # Examples
///
/// ```
/// use pulse_operators::forecast::{HoltWinters, Smoothing};
///
/// let smoothing = Smoothing { alpha: 0.2, beta: 0.01, gamma: 0.1, phi: 0.9 };
/// let mut model = HoltWinters::new(4, smoothing);
/// for i in 0..40 {
///     model.observe([10.0, 20.0, 30.0, 20.0][i % 4]);
/// }
/// assert!(model.is_ready());
/// // The next point is the first of a season: 10.
/// assert!((model.forecast(1) - 10.0).abs() < 1e-9);
/// assert!((model.forecast(3) - 30.0).abs() < 1e-9);
/// ```
#[derive(Debug, Clone)]
pub struct HoltWinters {
    season_length: usize,
    smoothing: Smoothing,
    /// During warm-up: the first two seasons; afterwards: the seasonal profile.
    season: Vec<f64>,
    level: f64,
    trend: f64,
    /// Position of the next point in the season.
    phase: usize,
    ready: bool,
}

impl HoltWinters {
    /// A model with `season_length` points per season (at least 1).
    pub fn new(season_length: usize, smoothing: Smoothing) -> Self {
        let season_length = season_length.max(1);
        Self {
            season_length,
            smoothing,
            season: Vec::with_capacity(2 * season_length),
            level: 0.0,
            trend: 0.0,
            phase: 0,
            ready: false,
        }
    }

    /// Points per season.
    pub fn season_length(&self) -> usize {
        self.season_length
    }

    /// Whether the model has seen its two warm-up seasons and forecasts.
    pub fn is_ready(&self) -> bool {
        self.ready
    }

    /// Takes the next point (finite; the caller checks).
    pub fn observe(&mut self, value: f64) {
        if !self.ready {
            self.warm_up(value);
            return;
        }
        let Smoothing {
            alpha,
            beta,
            gamma,
            phi,
        } = self.smoothing;
        let slot = self.phase;
        let error = value - (self.level + phi * self.trend + self.season[slot]);
        self.level += phi * self.trend + alpha * error;
        self.trend = phi * self.trend + alpha * beta * error;
        self.season[slot] += gamma * (1.0 - alpha) * error;
        self.phase = (slot + 1) % self.season_length;
    }

    fn warm_up(&mut self, value: f64) {
        self.season.push(value);
        let m = self.season_length;
        if self.season.len() < 2 * m {
            return;
        }
        let mean_first = self.season[..m].iter().sum::<f64>() / m as f64;
        let mean_second = self.season[m..].iter().sum::<f64>() / m as f64;
        let mean = (mean_first + mean_second) / 2.0;
        let profile: Vec<f64> = (0..m)
            .map(|i| (self.season[i] + self.season[i + m]) / 2.0 - mean)
            .collect();
        // The level at the last point of the second season; a trend estimated from two
        // seasons is too noisy to extrapolate, so it starts flat and is learnt.
        self.level = mean_second + (mean_second - mean_first) / m as f64 * (m as f64 - 1.0) / 2.0;
        self.trend = 0.0;
        self.season = profile;
        self.phase = 0;
        self.ready = true;
    }

    /// Advances over `missing` points that never arrived, as the model expects them to
    /// have gone (the level follows the damped trend; the profile is unchanged). O(1).
    pub fn skip(&mut self, missing: u64) {
        if !self.ready {
            return;
        }
        let phi = self.smoothing.phi;
        self.level += damped_sum(phi, missing) * self.trend;
        self.trend *= phi.powi(missing.min(i32::MAX as u64) as i32);
        self.phase = ((self.phase as u64 + missing) % self.season_length as u64) as usize;
    }

    /// The forecast `steps` (≥ 1) points ahead of the last point; meaningful once ready.
    pub fn forecast(&self, steps: usize) -> f64 {
        let slot = (self.phase + steps - 1) % self.season_length;
        self.level + damped_sum(self.smoothing.phi, steps as u64) * self.trend + self.season[slot]
    }

    /// Heap bytes held (the seasonal profile).
    pub fn heap_bytes(&self) -> usize {
        self.season.capacity() * std::mem::size_of::<f64>()
    }
}

/// `φ + φ² + … + φ^k`.
fn damped_sum(phi: f64, k: u64) -> f64 {
    if phi >= 1.0 {
        k as f64
    } else {
        phi * (1.0 - phi.powi(k.min(i32::MAX as u64) as i32)) / (1.0 - phi)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMOOTH: Smoothing = Smoothing {
        alpha: 0.3,
        beta: 0.1,
        gamma: 0.2,
        phi: 0.9,
    };

    #[test]
    fn not_ready_before_two_seasons() {
        let mut model = HoltWinters::new(5, SMOOTH);
        for i in 0..9 {
            model.observe(i as f64);
            assert!(!model.is_ready());
        }
        model.observe(9.0);
        assert!(model.is_ready());
    }

    #[test]
    fn a_linear_trend_is_learnt() {
        let mut model = HoltWinters::new(3, Smoothing { phi: 1.0, ..SMOOTH });
        for i in 0..600 {
            model.observe(2.0 * i as f64);
        }
        assert!((model.forecast(1) - 1200.0).abs() < 1e-3, "{}", model.forecast(1));
        assert!((model.forecast(10) - 1218.0).abs() < 1e-3);
    }

    #[test]
    fn skip_keeps_the_season_aligned() {
        let pattern = [1.0, 5.0, 9.0, 5.0];
        let mut model = HoltWinters::new(4, SMOOTH);
        for i in 0..40 {
            model.observe(pattern[i % 4]);
        }
        model.skip(6);
        // 46 points "passed": the next is pattern[46 % 4] = 9.
        assert!((model.forecast(1) - 9.0).abs() < 1e-9);
    }

    #[test]
    fn damped_sum_matches_the_loop() {
        for phi in [0.5f64, 0.9, 1.0] {
            for k in 0..20u64 {
                let direct: f64 = (1..=k).map(|i| phi.powi(i as i32)).sum();
                assert!((damped_sum(phi, k) - direct).abs() < 1e-9);
            }
        }
    }
}
