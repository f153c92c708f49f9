//! The window operator alone, without file reading or JSON decoding.
//!
//! - `window_state/insert`: events folded into `WindowState` (the per-worker
//!   state of the operator), 10 s tumbling windows by (tenant, metric) with
//!   count/sum/min/max/avg — the shape of the peer benchmark query.
//! - `window_state/insert_with_quantiles`: the same plus p50/p95/p99.
//! - `window_dataflow/tumbling`: the whole timely operator on one worker,
//!   events fed through an input handle.
//!
//! Run: `cargo bench -p pulse-benches --bench window`.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use pulse_core::{Event, EventBody, Metric, Shutdown};
use pulse_operators::Aggregate;
use pulse_operators::window::{KeySpec, WindowConfig, WindowExt, WindowSpec, WindowState};
use timely::dataflow::InputHandle;
use timely::dataflow::operators::{Input, Probe};

const EVENTS: usize = 100_000;
const METRICS: [&str; 5] = ["cpu", "mem", "disk", "net", "temp"];

/// Events shaped like the peer workload: 1000 per simulated second, 10 tenants × 5 metrics.
fn events() -> Vec<Event> {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    (0..EVENTS as u64)
        .map(|i| {
            let r = next();
            Event {
                ts: 1_700_000_000_000 + i,
                tenant: format!("tenant-{:02}", r % 10).into(),
                source: format!("host-{:04}", (r >> 8) % 1000).into(),
                body: EventBody::Metric(Metric {
                    metric: METRICS[((r >> 20) % 5) as usize].into(),
                    value: (r >> 32) as f64 / 4e7,
                    labels: Default::default(),
                }),
            }
        })
        .collect()
}

fn aggregates(names: &[&str]) -> Vec<Aggregate> {
    names.iter().map(|n| n.parse().unwrap()).collect()
}

fn key() -> KeySpec {
    KeySpec::new(vec!["tenant".parse().unwrap(), "metric".parse().unwrap()])
}

fn tumbling() -> WindowSpec {
    WindowSpec::Tumbling {
        size: "10s".parse().unwrap(),
    }
}

fn window_state(c: &mut Criterion) {
    let events = events();
    let mut group = c.benchmark_group("window_state");
    group.throughput(Throughput::Elements(EVENTS as u64));
    for (name, aggs) in [
        ("insert", &["count", "sum", "min", "max", "avg"][..]),
        (
            "insert_with_quantiles",
            &["count", "sum", "min", "max", "avg", "p50", "p95", "p99"][..],
        ),
    ] {
        group.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter(|| {
                let mut state = WindowState::new(tumbling(), key(), aggregates(aggs));
                for event in &events {
                    state.insert(event, |_| {});
                }
                black_box(state.close(u64::MAX).len())
            })
        });
    }
    group.finish();
}

fn window_dataflow(c: &mut Criterion) {
    let events = events();
    let mut group = c.benchmark_group("window_dataflow");
    group.throughput(Throughput::Elements(EVENTS as u64));
    group.bench_function("tumbling", |b| {
        b.iter(|| {
            let events = events.clone();
            timely::execute_directly(move |worker| {
                let mut input = InputHandle::new();
                let config = WindowConfig {
                    spec: tumbling(),
                    key: key().fields().to_vec(),
                    aggregates: aggregates(&["count", "sum", "min", "max", "avg"]),
                    granule_ms: 100,
                    delivered_before: 0,
                    session_progress: None,
                };
                let probe = worker.dataflow(|scope| {
                    scope
                        .input_from(&mut input)
                        .window("bench", &config, &Shutdown::new())
                        .probe()
                        .0
                });
                for event in events {
                    let time = event.ts - event.ts % 100;
                    if *input.time() < time {
                        input.advance_to(time);
                    }
                    input.send(event);
                }
                input.close();
                while !probe.done() {
                    worker.step();
                }
            })
        })
    });
    group.finish();
}

criterion_group!(benches, window_state, window_dataflow);
criterion_main!(benches);
