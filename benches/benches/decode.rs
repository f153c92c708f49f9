//! Decoding events from JSON lines: the hot path of file and Kafka sources.
//!
//! `Event::from_json` on lines shaped like the peer benchmark workload. (A
//! SIMD parser, sonic-rs, measured the same here: building the owned strings
//! of the event costs more than scanning the JSON.)
//!
//! Run: `cargo bench -p pulse-benches --bench decode`.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use pulse_core::Event;

fn lines() -> Vec<String> {
    let metrics = ["cpu", "mem", "disk", "net", "temp"];
    (0..10_000u64)
        .map(|i| {
            format!(
                r#"{{"ts": {}, "tenant": "tenant-{:02}", "source": "host-{:04}.rack-{:02}.az-{}.eu-central.prod.example.internal", "kind": "metric", "metric": "{}", "value": {}.{:04}}}"#,
                1_700_000_000_000 + i,
                i % 10,
                (i * 7) % 1000,
                i % 40,
                i % 3,
                metrics[(i % 5) as usize],
                i % 100,
                (i * 31) % 10_000
            )
        })
        .collect()
}

fn decode(c: &mut Criterion) {
    let lines = lines();
    let mut group = c.benchmark_group("decode");
    group.throughput(Throughput::Elements(lines.len() as u64));
    group.bench_function("pulse", |b| {
        b.iter(|| {
            black_box(
                lines
                    .iter()
                    .map(|l| Event::from_json(l.as_bytes()).unwrap().ts)
                    .sum::<u64>(),
            )
        })
    });
    group.finish();
}

criterion_group!(benches, decode);
criterion_main!(benches);
