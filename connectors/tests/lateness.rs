//! Late data, property-tested: the source operator splits events into on time
//! and late exactly as the watermark rule says, loses none, and holds its
//! frontier at the (coarsened) watermark.
//!
//! Reference: read events in order; an event is late when its time is below
//! (largest time accepted so far − max out-of-orderness); otherwise it is
//! accepted. The operator must agree event by event, whatever the batching.

use std::sync::{Arc, Mutex};

use proptest::prelude::*;
use pulse_connectors::{EventReader, ReadBatch, ReadStatus, SourceSettings, event_source};
use pulse_core::{Event, EventBody, Metric, Shutdown};
use timely::dataflow::operators::Inspect;

/// Hands out pre-made batches, then finishes.
struct Batches(std::vec::IntoIter<Vec<Event>>);

impl EventReader for Batches {
    fn read(&mut self, batch: &mut ReadBatch) -> ReadStatus {
        match self.0.next() {
            Some(events) => {
                events.into_iter().for_each(|event| batch.push(0, event));
                ReadStatus::More
            }
            None => ReadStatus::Finished,
        }
    }
}

fn event(ts: u64, sequence: usize) -> Event {
    Event {
        ts,
        tenant: "t".into(),
        source: format!("s{sequence}").into(),
        body: EventBody::Metric(Metric {
            metric: "m".into(),
            value: sequence as f64,
            labels: Default::default(),
        }),
    }
}

/// (on time, late, every watermark along the way) by the sequential rule.
fn reference(times: &[u64], bound: u64) -> (Vec<usize>, Vec<usize>, Vec<u64>) {
    let (mut on_time, mut late, mut watermarks) = (Vec::new(), Vec::new(), vec![0]);
    let mut newest: Option<u64> = None;
    for (i, ts) in times.iter().enumerate() {
        let watermark = newest.map_or(0, |n| n.saturating_sub(bound));
        if *ts < watermark {
            late.push(i);
        } else {
            on_time.push(i);
            newest = Some(newest.map_or(*ts, |n| n.max(*ts)));
            watermarks.push(newest.map_or(0, |n| n.saturating_sub(bound)));
        }
    }
    (on_time, late, watermarks)
}

/// What the dataflow showed: on-time and late sequence numbers, whether each
/// on-time event came at its coarsened time, and every frontier announced.
#[derive(Clone, Default)]
struct Seen {
    on_time: Vec<usize>,
    late: Vec<usize>,
    at_event_time: bool,
    frontiers: Vec<u64>,
}

/// Runs the source on one worker.
fn run(times: &[u64], batch_size: usize, bound: u64, granule: u64) -> Seen {
    let events: Vec<Event> = times.iter().enumerate().map(|(i, ts)| event(*ts, i)).collect();
    let batches: Vec<Vec<Event>> = events.chunks(batch_size).map(<[Event]>::to_vec).collect();
    let seen = Arc::new(Mutex::new(Seen {
        at_event_time: true,
        ..Seen::default()
    }));
    let sink = Arc::clone(&seen);
    timely::execute_directly(move |worker| {
        worker.dataflow::<u64, _, _>(|scope| {
            let settings = SourceSettings {
                name: "events".into(),
                max_out_of_orderness_ms: bound,
                idle_timeout: None,
                granule_ms: granule,
                shutdown: Shutdown::new(),
                workers: pulse_connectors::WorkerWatermarks::new(),
                timestamps: pulse_connectors::TimestampBounds::default(),
                late_unread: false,
                failures: pulse_connectors::SourceFailures::new(),
                pressure: pulse_core::Backpressure::new(),
                lead: None,
            };
            let streams = event_source(scope, settings, Batches(batches.into_iter()));
            let on_time = Arc::clone(&sink);
            streams.events.inspect_core(move |message| {
                let mut seen = on_time.lock().unwrap();
                match message {
                    Ok((stamp, events)) => {
                        let time = *stamp.least().expect("a message has a time");
                        for e in events {
                            seen.on_time.push(e.source[1..].parse::<usize>().unwrap());
                            seen.at_event_time &= time == e.ts - e.ts % granule;
                        }
                    }
                    Err(frontier) => seen.frontiers.extend(frontier.iter().copied()),
                }
            });
            let late = Arc::clone(&sink);
            streams
                .late
                .inspect(move |e: &Event| late.lock().unwrap().late.push(e.source[1..].parse::<usize>().unwrap()));
        });
    });
    let mut seen = seen.lock().unwrap().clone();
    seen.on_time.sort_unstable();
    seen.late.sort_unstable();
    seen
}

fn disordered_times() -> impl Strategy<Value = Vec<u64>> {
    // Mostly increasing times with jumps back of up to 5 s.
    prop::collection::vec((0u64..400, prop::bool::weighted(0.2), 0u64..5_000), 0..200).prop_map(|steps| {
        let mut now = 1_000_000u64;
        steps
            .into_iter()
            .map(|(advance, back, by)| {
                now += advance;
                if back { now.saturating_sub(by) } else { now }
            })
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn splits_late_events_exactly_by_the_watermark(
        times in disordered_times(),
        batch_size in 1usize..50,
        bound in prop_oneof![Just(0u64), 1u64..3_000],
        granule in prop_oneof![Just(1u64), Just(10), Just(100)],
    ) {
        let seen = run(&times, batch_size, bound, granule);
        let (expected_on_time, expected_late, watermarks) = reference(&times, bound);
        prop_assert_eq!(seen.on_time, expected_on_time, "on-time events");
        prop_assert_eq!(seen.late, expected_late, "late events");
        prop_assert!(seen.at_event_time, "every on-time event is sent at its coarsened event time");
        let coarsened: Vec<u64> = watermarks.iter().map(|w| w - w % granule).collect();
        for frontier in &seen.frontiers {
            prop_assert!(coarsened.contains(frontier), "frontier {} is no watermark of {:?}", frontier, coarsened);
        }
    }
}
