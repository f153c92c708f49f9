//! The per-key forecaster's update cost, the figure beside a refit-per-origin peer.
//!
//! - `forecast_update/<step>_<horizon>`: points streamed into a warmed-up
//!   `SeriesForecaster` (period 1 day, a weekly model among the candidates), per point.
//! - `forecast_predict/<step>_<horizon>`: one forecast of the whole horizon with its
//!   intervals.
//!
//! Run: `cargo bench -p pulse-benches --bench forecast`.

use std::hint::black_box;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use pulse_operators::forecast::{ForecastConfig, SeriesForecaster};

/// Points per measured batch.
const BATCH: usize = 10_000;

/// A daily pattern with a weekly modulation and pseudo-random noise, `step_ms` apart.
fn value(i: u64, per_day: u64) -> f64 {
    let phase = (i % per_day) as f64 / per_day as f64 * std::f64::consts::TAU;
    let weekday = (i / per_day) % 7;
    let noise = ((i.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 40) as f64 / (1u64 << 24) as f64) - 0.5;
    50.0 + 20.0 * phase.sin() + if weekday >= 5 { -10.0 } else { 0.0 } + 5.0 * noise
}

fn bench(c: &mut Criterion) {
    for (step, horizon, step_ms) in [("5m", "1h", 300_000u64), ("5m", "1d", 300_000), ("1h", "1d", 3_600_000)] {
        let config = ForecastConfig {
            horizon: horizon.parse().unwrap(),
            ..ForecastConfig::default()
        };
        let shape = config.shape(step.parse().unwrap()).unwrap();
        let per_day = 86_400_000 / step_ms;
        // Warm past every model's warm-up (two weeks) so all candidates are live.
        let warm_points = 3 * 7 * per_day;
        let mut warmed = SeriesForecaster::new(shape);
        for i in 0..warm_points {
            warmed.update((i * step_ms) as i64, value(i, per_day)).unwrap();
        }
        let next: Vec<(i64, f64)> = (warm_points..warm_points + BATCH as u64)
            .map(|i| ((i * step_ms) as i64, value(i, per_day)))
            .collect();
        let name = format!("{step}_{horizon}");
        let mut group = c.benchmark_group("forecast_update");
        group.throughput(Throughput::Elements(BATCH as u64));
        group.bench_function(&name, |b| {
            b.iter_batched_ref(
                || warmed.clone(),
                |series| {
                    for &(ts, v) in &next {
                        series.update(ts, v).unwrap();
                    }
                },
                BatchSize::LargeInput,
            )
        });
        group.finish();
        let mut group = c.benchmark_group("forecast_predict");
        group.bench_function(&name, |b| b.iter(|| black_box(warmed.forecast(shape.horizon).unwrap())));
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
