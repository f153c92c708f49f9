//! Property tests of the forecasting state against brute-force references.

use proptest::prelude::*;

use super::*;

/// Textbook Holt-Winters (component form, seasonal update on the new level),
/// recomputed from the whole series: the reference for [`HoltWinters`].
fn reference_forecast(series: &[f64], m: usize, s: Smoothing, steps: usize) -> f64 {
    let mean = |xs: &[f64]| xs.iter().sum::<f64>() / xs.len() as f64;
    let (m1, m2) = (mean(&series[..m]), mean(&series[m..2 * m]));
    let mut season: Vec<f64> = (0..m)
        .map(|i| (series[i] + series[i + m]) / 2.0 - (m1 + m2) / 2.0)
        .collect();
    let mut level = m2 + (m2 - m1) / m as f64 * (m as f64 - 1.0) / 2.0;
    let mut trend = 0.0;
    for (t, &y) in series.iter().enumerate().skip(2 * m) {
        let i = t % m;
        let previous = level;
        level = s.alpha * (y - season[i]) + (1.0 - s.alpha) * (previous + s.phi * trend);
        trend = s.beta * (level - previous) + (1.0 - s.beta) * s.phi * trend;
        season[i] = s.gamma * (y - level) + (1.0 - s.gamma) * season[i];
    }
    let damped: f64 = (1..=steps).map(|j| s.phi.powi(j as i32)).sum();
    level + damped * trend + season[(series.len() + steps - 1) % m]
}

fn smoothing() -> impl Strategy<Value = Smoothing> {
    (0.01f64..1.0, 0.0f64..0.5, 0.0f64..1.0, 0.5f64..=1.0).prop_map(|(alpha, beta, gamma, phi)| Smoothing {
        alpha,
        beta,
        gamma,
        phi,
    })
}

proptest! {
    #[test]
    fn online_holt_winters_matches_the_batch_reference(
        m in 1usize..8,
        s in smoothing(),
        series in prop::collection::vec(-100.0f64..100.0, 16..80),
        steps in 1usize..10,
    ) {
        prop_assume!(series.len() >= 2 * m);
        let mut model = HoltWinters::new(m, s);
        series.iter().for_each(|&y| model.observe(y));
        let expected = reference_forecast(&series, m, s, steps);
        prop_assert!((model.forecast(steps) - expected).abs() < 1e-6 * (1.0 + expected.abs()),
            "{} vs {expected}", model.forecast(steps));
    }

    #[test]
    fn skipping_equals_observing_the_models_own_forecasts(
        m in 1usize..6,
        s in smoothing(),
        series in prop::collection::vec(-100.0f64..100.0, 12..40),
        missing in 1u64..20,
    ) {
        let mut skipped = HoltWinters::new(m, s);
        series.iter().for_each(|&y| skipped.observe(y));
        prop_assume!(skipped.is_ready());
        let mut filled = skipped.clone();
        skipped.skip(missing);
        for _ in 0..missing {
            let expected = filled.forecast(1);
            filled.observe(expected);
        }
        for k in 1..=m + 2 {
            prop_assert!((skipped.forecast(k) - filled.forecast(k)).abs() < 1e-6 * (1.0 + filled.forecast(k).abs()));
        }
    }

    #[test]
    fn refused_points_leave_no_trace(
        series in prop::collection::vec(0.0f64..10.0, 120..200),
        bad in prop::collection::vec((0usize..200, 0usize..4), 1..10),
    ) {
        let shape = ForecastConfig {
            period: "10m".parse().unwrap(),
            horizon: "3m".parse().unwrap(),
            long_period_factor: 0,
            ..ForecastConfig::default()
        }
        .shape("1m".parse().unwrap())
        .unwrap();
        let (mut clean, mut dirty) = (SeriesForecaster::new(shape), SeriesForecaster::new(shape));
        for (t, &y) in series.iter().enumerate() {
            let ts = t as i64 * 60_000;
            for &(_, kind) in bad.iter().filter(|(at, _)| *at == t) {
                let refused = match kind {
                    0 => dirty.update(ts, f64::NAN),
                    1 => dirty.update(ts, f64::NEG_INFINITY),
                    2 => dirty.update(-5, y),
                    _ => dirty.update(ts - 60_000, y), // not after the previous point
                };
                prop_assert!(refused.is_err() || (kind == 3 && t == 0));
            }
            clean.update(ts, y).unwrap();
            dirty.update(ts, y).unwrap();
        }
        prop_assert_eq!(clean.forecast(3), dirty.forecast(3));
    }
}

/// Deterministic N(0, 1) noise (Irwin-Hall of 12 uniforms).
fn gaussian(seed: &mut u64) -> f64 {
    (0..12)
        .map(|_| {
            *seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (*seed >> 11) as f64 / (1u64 << 53) as f64
        })
        .sum::<f64>()
        - 6.0
}

#[test]
fn intervals_cover_gaussian_noise_near_nominal_and_beat_seasonal_naive() {
    let shape = ForecastConfig {
        period: "1d".parse().unwrap(),
        horizon: "3h".parse().unwrap(),
        ..ForecastConfig::default()
    }
    .shape("1h".parse().unwrap())
    .unwrap();
    let mut series = SeriesForecaster::new(shape);
    let mut seed = 3;
    let value =
        |t: usize, seed: &mut u64| 50.0 + 10.0 * (t as f64 * std::f64::consts::TAU / 24.0).sin() + gaussian(seed);
    let history: Vec<f64> = (0..24 * 200).map(|t| value(t, &mut seed)).collect();
    let (mut inside80, mut inside95, mut n, mut error, mut naive_error) = (0, 0, 0, 0.0, 0.0);
    for (t, &y) in history.iter().enumerate() {
        if t >= 24 * 20 && t % 3 == 0 {
            for p in series.forecast(3).unwrap() {
                let actual = history[t + p.steps - 1];
                inside80 += usize::from(p.lower80 <= actual && actual <= p.upper80);
                inside95 += usize::from(p.lower95 <= actual && actual <= p.upper95);
                error += (actual - p.yhat).abs();
                naive_error += (actual - history[t + p.steps - 1 - 24]).abs();
                n += 1;
            }
            if t + 6 > history.len() {
                break;
            }
        }
        series.update(t as i64 * 3_600_000, y).unwrap();
    }
    let (c80, c95) = (inside80 as f64 / n as f64, inside95 as f64 / n as f64);
    assert!((c80 - 0.80).abs() < 0.04, "80 % coverage {c80}");
    assert!((c95 - 0.95).abs() < 0.03, "95 % coverage {c95}");
    assert!(error < 0.8 * naive_error, "MAE {error} vs seasonal naive {naive_error}");
}

#[test]
fn warming_up_then_restarting_after_a_long_gap() {
    let shape = ForecastConfig {
        period: "1h".parse().unwrap(),
        horizon: "5m".parse().unwrap(),
        max_gap: "2h".parse().unwrap(),
        ..ForecastConfig::default()
    }
    .shape("1m".parse().unwrap())
    .unwrap();
    let mut series = SeriesForecaster::new(shape);
    assert!(matches!(
        series.forecast(1),
        Err(ForecastError::WarmingUp { points: 0 })
    ));
    for t in 0..200i64 {
        assert!(!series.update(t * 60_000, (t % 60) as f64).unwrap());
    }
    assert!(series.forecast(5).is_ok());
    assert!(matches!(
        series.forecast(6),
        Err(ForecastError::HorizonOutOfRange { .. })
    ));
    // A 3 h silence: the key starts over.
    assert!(series.update(200 * 60_000 + 3 * 3_600_000, 1.0).unwrap());
    assert_eq!(series.points(), 1);
    assert!(series.forecast(1).is_err());
}

#[test]
fn state_per_key_is_bounded_as_documented() {
    // The figure documented in benches/README.md: 5-minute points, a day's period,
    // a weekly model, a 1-day horizon.
    let shape = ForecastConfig {
        horizon: "1d".parse().unwrap(),
        ..ForecastConfig::default()
    }
    .shape("5m".parse().unwrap())
    .unwrap();
    let mut series = SeriesForecaster::new(shape);
    let mut peak = 0;
    for t in 0..(3 * 7 * 288) as i64 {
        series.update(t * 300_000, (t % 288) as f64).unwrap();
        peak = peak.max(series.state_bytes());
    }
    let steady = series.state_bytes();
    eprintln!("state bytes: steady {steady}, peak {peak}");
    assert!(steady < 100_000, "steady state {steady} bytes");
    assert!(peak < 200_000, "peak {peak} bytes");
}
