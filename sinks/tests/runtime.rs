//! The sink runtime end to end, with writers that fail, refuse and dawdle:
//! nothing is lost, nothing is acknowledged before it is written, a full
//! buffer closes the valve sources pause for, and a record the destination
//! refuses becomes a dead letter without holding its batch up.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pulse_core::{Backpressure, DeadLetter, Delivered, Event, EventBody, EventTime, HealthBoard, Shutdown};
use pulse_sinks::runtime::{BreakerPolicy, RetryPolicy};
use pulse_sinks::{
    BatchWriter, DeliverExt, Delivery, SinkContext, SinkOptions, SinkRecord, WriteError, Written, start_sink,
};
use timely::dataflow::InputHandleVec;
use timely::dataflow::operators::vec::Input;

fn event(ts: EventTime, value: f64) -> Event {
    let line = format!(r#"{{"ts":{ts},"tenant":"acme","source":"s","kind":"metric","metric":"cpu","value":{value}}}"#);
    Event::from_json(line.as_bytes()).unwrap()
}

/// What a test writer saw, shared with the test.
#[derive(Default)]
struct Seen {
    written: Mutex<Vec<EventTime>>,
    attempts: AtomicUsize,
    /// The delivered frontier at each successful write, before it.
    frontier_at_write: Mutex<Vec<Option<EventTime>>>,
}

/// Fails its first `failures` attempts, refuses events with a negative
/// value, and takes `delay` for each write.
struct Flaky {
    seen: Arc<Seen>,
    failures: usize,
    delay: Duration,
    delivered: Delivered,
}

impl BatchWriter for Flaky {
    async fn write(&mut self, batch: &[SinkRecord]) -> Result<Written, WriteError> {
        let attempt = self.seen.attempts.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(self.delay).await;
        if attempt < self.failures {
            return Err(WriteError::retry("the server is down"));
        }
        let mut written = Written::default();
        let mut times = Vec::new();
        for (index, record) in batch.iter().enumerate() {
            let SinkRecord::Event(event) = record else {
                unreachable!()
            };
            match &event.body {
                EventBody::Metric(metric) if metric.value < 0.0 => written
                    .rejected
                    .push((index, format!("negative value {}", metric.value))),
                _ => times.push(event.ts),
            }
        }
        self.seen
            .frontier_at_write
            .lock()
            .unwrap()
            .push(self.delivered.frontier());
        self.seen.written.lock().unwrap().extend(times);
        Ok(written)
    }
}

struct Run {
    seen: Arc<Seen>,
    delivered: Delivered,
    letters: Arc<Mutex<Vec<DeadLetter>>>,
    pressure_seen: bool,
    health: HealthBoard,
}

fn run(events: Vec<Event>, failures: usize, delay: Duration, options: SinkOptions, workers: usize) -> Run {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let delivered = Delivered::new(Shutdown::new());
    let seen = Arc::new(Seen::default());
    let letters = Arc::new(Mutex::new(Vec::new()));
    let pressure = Backpressure::new();
    let health = HealthBoard::new();
    let collected = Arc::clone(&letters);
    let context = SinkContext {
        name: "flaky".into(),
        health: health.reporter("flaky"),
        delivery: vec![Arc::new(delivered.register())],
        shutdown: Shutdown::new(),
        dead_letters: Arc::new(move |mut new| collected.lock().unwrap().append(&mut new)),
        pressure: pressure.clone(),
    };
    let writer = Flaky {
        seen: Arc::clone(&seen),
        failures,
        delay,
        delivered: delivered.clone(),
    };
    let sink = start_sink(runtime.handle(), writer, options, context);
    let pressure_seen = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watch = (pressure.clone(), Arc::clone(&pressure_seen));
    timely::execute(timely::Config::process(workers), move |worker| {
        let (index, peers) = (worker.index(), worker.peers());
        let mine: Vec<Event> = events
            .iter()
            .enumerate()
            .filter(|(i, _)| i % peers == index)
            .map(|(_, e)| e.clone())
            .collect();
        let watch = watch.clone();
        let mut input = InputHandleVec::<EventTime, SinkRecord>::new();
        worker.dataflow::<EventTime, _, _>(|scope| scope.input_from(&mut input).deliver(&sink));
        let blocked = || {
            if watch.0.is_blocked() {
                watch.1.store(true, Ordering::SeqCst);
            }
        };
        // Each event at its own time, so that an ordered sink sees one time after another.
        for event in mine {
            input.advance_to(event.ts);
            input.send(SinkRecord::Event(event));
            worker.step();
            blocked();
        }
        drop(input);
        // The sink works through its buffer; the dataflow ends once it has written everything.
        while worker.step_or_park(Some(Duration::from_millis(1))) {
            blocked();
        }
    })
    .unwrap()
    .join()
    .into_iter()
    .collect::<Result<Vec<()>, String>>()
    .unwrap();
    Run {
        seen,
        delivered,
        letters,
        pressure_seen: pressure_seen.load(Ordering::SeqCst),
        health,
    }
}

fn fast_retries(delivery: Delivery) -> SinkOptions {
    SinkOptions {
        retry: RetryPolicy {
            initial: Duration::from_millis(1),
            max: Duration::from_millis(5),
        },
        breaker: BreakerPolicy {
            failures_to_open: 3,
            open_for: Duration::from_millis(20),
        },
        ..SinkOptions::new(delivery)
    }
}

#[test]
fn failed_writes_are_retried_through_the_breaker_and_nothing_is_lost() {
    let events: Vec<Event> = (0..500).map(|i| event(i * 10, 1.0)).collect();
    for delivery in [Delivery::Ordered, Delivery::Parallel] {
        let result = run(events.clone(), 6, Duration::ZERO, fast_retries(delivery), 2);
        let mut written = result.seen.written.lock().unwrap().clone();
        written.sort_unstable();
        assert_eq!(written, (0..500).map(|i| i * 10).collect::<Vec<_>>(), "{delivery:?}");
        assert!(result.seen.attempts.load(Ordering::SeqCst) > 6, "{delivery:?}: retried");
        assert_eq!(result.delivered.frontier(), Some(EventTime::MAX), "{delivery:?}");
        assert!(result.health.problems().is_empty(), "{delivery:?}: healthy again");
    }
}

#[test]
fn nothing_is_acknowledged_before_it_is_written() {
    let events: Vec<Event> = (0..200).map(|i| event(i * 100, 1.0)).collect();
    let result = run(events, 0, Duration::ZERO, fast_retries(Delivery::Ordered), 2);
    let written = result.seen.written.lock().unwrap().clone();
    let frontiers = result.seen.frontier_at_write.lock().unwrap().clone();
    // Ordered: one write per time; before writing time t, nothing at t is acknowledged.
    assert_eq!(frontiers.len(), written.len(), "one write per time");
    for (frontier, time) in frontiers.into_iter().zip(written) {
        assert!(
            frontier.unwrap() <= time,
            "acknowledged {frontier:?} before writing {time}"
        );
    }
}

#[test]
fn refused_records_become_dead_letters_and_the_rest_is_written() {
    let events: Vec<Event> = (0..100)
        .map(|i| event(i, if i % 10 == 3 { -1.0 } else { 1.0 }))
        .collect();
    let result = run(events, 0, Duration::ZERO, fast_retries(Delivery::Parallel), 1);
    assert_eq!(result.seen.written.lock().unwrap().len(), 90);
    let letters = result.letters.lock().unwrap();
    assert_eq!(letters.len(), 10);
    assert!(
        letters
            .iter()
            .all(|l| l.reason == "negative value -1" && l.component == "flaky")
    );
    let raw: serde_json::Value = serde_json::from_str(&letters[0].raw).unwrap();
    assert_eq!(raw["value"], -1.0, "the refused record is kept whole");
    assert_eq!(result.delivered.frontier(), Some(EventTime::MAX));
}

#[test]
fn a_slow_sink_fills_its_buffer_and_closes_the_valve_without_losing_records() {
    let events: Vec<Event> = (0..2_000).map(|i| event(i, 1.0)).collect();
    let options = SinkOptions {
        buffer_batches: 2,
        max_batch_records: 50,
        ..fast_retries(Delivery::Parallel)
    };
    let result = run(events, 0, Duration::from_millis(2), options, 2);
    assert!(result.pressure_seen, "the full buffer closed the valve");
    let mut written = result.seen.written.lock().unwrap().clone();
    written.sort_unstable();
    assert_eq!(written, (0..2_000).collect::<Vec<_>>());
}
