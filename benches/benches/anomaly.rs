//! Scoring throughput of the anomaly detector: points per second through one
//! key's `SeriesDetector::update` (training of the forest included, on its
//! daily event-time schedule), on a NAB-like series at a 5-minute step.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use pulse_operators::anomaly::{AnomalyConfig, SeriesDetector};

fn series(points: usize) -> Vec<(i64, f64)> {
    (0..points)
        .map(|i| {
            let day = (i % 288) as f64 / 288.0 * std::f64::consts::TAU;
            let noise = ((i * 7919) % 101) as f64 / 101.0;
            (i as i64 * 300_000, 50.0 + 20.0 * day.sin() + 3.0 * noise)
        })
        .collect()
}

fn scoring(c: &mut Criterion) {
    let points = series(20_000);
    let mut group = c.benchmark_group("anomaly");
    group.sample_size(10);
    group.throughput(Throughput::Elements(points.len() as u64));
    group.bench_function("series_detector_20k_points", |b| {
        b.iter(|| {
            let mut detector = SeriesDetector::new("bench", AnomalyConfig::default());
            let mut fired = 0u32;
            for &(ts, value) in &points {
                fired += u32::from(detector.update(ts, value).expect("finite").is_anomaly);
            }
            fired
        })
    });
    group.finish();
}

criterion_group!(benches, scoring);
criterion_main!(benches);
