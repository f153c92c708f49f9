//! The sink operator: gathers serialised records on one worker and writes them
//! in a deterministic order once their time is complete.
//!
//! Records are serialised where they are produced (in parallel), then sent to
//! worker 0, which holds them per timestamp. When the input frontier passes a
//! timestamp its lines are sorted and written in one go, then the destination
//! is flushed: the output is byte-identical for any number of workers, and a
//! reader never sees a half-written batch of lines. After each flush the
//! sink reports its input frontier as delivered ([`DeliveryTracker`]), which is
//! what Kafka sources wait for before committing offsets.

use std::collections::BTreeMap;
use std::io;

use pulse_core::{DeliveryTracker, EventTime};
use serde::Serialize;
use timely::dataflow::Stream;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::vec::Map;

/// Where a sink's lines end up.
pub trait LineSink: 'static {
    /// Writes one complete batch of lines (each without its newline), sorted.
    fn write_batch(&mut self, lines: &[String]) -> io::Result<()>;
    /// Flushes everything written so far to the destination.
    fn flush(&mut self) -> io::Result<()>;
}

/// Serialises every record of `stream` as one line of JSON, on the worker that
/// holds it.
pub fn to_json_lines<'scope, T: Serialize + Clone + 'static>(
    stream: Stream<'scope, EventTime, Vec<T>>,
) -> Stream<'scope, EventTime, Vec<String>> {
    stream.map(|record| serde_json::to_string(&record).expect("records serialise to JSON"))
}

/// Writes `lines` to the sink made by `open`, which is called on worker 0 only,
/// and reports to its tracker, if any, how far it has delivered.
///
/// Returns an error when `open` fails (e.g. the file cannot be created).
pub fn write_lines<'scope>(
    lines: Stream<'scope, EventTime, Vec<String>>,
    name: &str,
    open: impl FnOnce() -> io::Result<(Box<dyn LineSink>, Option<DeliveryTracker>)>,
) -> io::Result<()> {
    let worker = lines.scope().index();
    let (mut sink, delivery) = if worker == 0 {
        let (sink, delivery) = open()?;
        (Some(sink), delivery)
    } else {
        (None, None)
    };
    let labels = [("component", name.to_owned())];
    let received = metrics::counter!("pulse_component_received_events_total", &labels);
    let errors = metrics::counter!("pulse_sink_errors_total", &labels);
    let name = name.to_owned();
    let mut pending: BTreeMap<EventTime, Vec<String>> = BTreeMap::new();
    let mut finished = false;
    // Once a write fails, nothing after it counts as delivered either.
    let mut failed = false;
    // Every line goes to worker 0, the one writer.
    lines.sink(
        Exchange::new(|_line: &String| 0),
        &name.clone(),
        move |(input, frontier)| {
            input.for_each_stamp(|cap, data| {
                let time = *cap.least().expect("a message has a time");
                let held = pending.entry(time).or_default();
                for batch in data {
                    received.increment(batch.len() as u64);
                    held.append(batch);
                }
            });
            let Some(sink) = sink.as_mut() else { return };
            let complete = |time: &EventTime| !frontier.less_equal(time);
            let mut wrote = false;
            while let Some(entry) = pending.first_entry() {
                if !complete(entry.key()) {
                    break;
                }
                let mut batch = entry.remove();
                batch.sort_unstable();
                if let Err(error) = sink.write_batch(&batch) {
                    errors.increment(1);
                    failed = true;
                    tracing::error!(component = %name, %error, lines = batch.len(), "sink write failed");
                }
                wrote = true;
            }
            if (wrote || frontier.is_empty()) && !finished {
                if let Err(error) = sink.flush() {
                    errors.increment(1);
                    failed = true;
                    tracing::error!(component = %name, %error, "sink flush failed");
                }
                finished = frontier.is_empty();
            }
            // Everything before the frontier is now written and flushed — unless
            // a write failed: then it stays undelivered (and the run fails).
            if let Some(delivery) = delivery.as_ref().filter(|_| !failed) {
                delivery.advance(frontier.frontier().first().copied().unwrap_or(EventTime::MAX));
            }
        },
    );
    Ok(())
}
