//! The timely operator every source shares: watermarks, late data, dead letters.
//!
//! A source is an [`EventReader`] (reads batches of events from somewhere) run
//! by [`event_source`], which sends each event at its event time coarsened to
//! the granule and holds its capability at the watermark, so the dataflow
//! frontier is the watermark. A reader serves one or more *splits* (a file
//! range, Kafka partitions) with a watermark each; the capability follows their
//! minimum ([`SplitWatermarks`]). Events behind their split's watermark go to
//! the `late` output and undecodable input to the `dead_letter` output; both
//! are counted, neither stops the source. Readers refuse event times outside
//! the source's [`TimestampBounds`] (dead letters with the reason
//! `timestamp_out_of_range`), so one absurd timestamp cannot move a watermark.
//! When nothing reads the `late` output, late events go to the dead-letter
//! output instead (reason `late: N ms behind the watermark`), and a warning,
//! at most one per source and worker every 10 s, says how many and how late.
//! While a sink's buffer is full ([`Backpressure`]) the source reads nothing,
//! and in a cluster it reads nothing while it leads what the whole cluster
//! has taken in by more than `max_lead` ([`LeadLimit`]).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pulse_core::dead_letter::Position;
use pulse_core::time::coarsen;
use pulse_core::{Backpressure, DeadLetter, Event, EventTime, Shutdown};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::operators::generic::OutputBuilder;
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
use timely::dataflow::{Scope, Stream};
use timely::scheduling::SyncActivator;

use crate::lead::LeadLimit;
use crate::time_bounds::{TimestampBounds, wall_clock_ms};
use crate::watermark::{Split, SplitWatermarks, WorkerWatermarks};

/// How long a source waits before it looks again at a full sink buffer.
const BACKPRESSURE_PAUSE: Duration = Duration::from_millis(5);

/// How often a source says that events arrived late.
const LATE_WARNING_INTERVAL: Duration = Duration::from_secs(10);

/// What a reader produced in one call.
#[derive(Debug, Default)]
pub struct ReadBatch {
    /// Decoded events with their split, in the order read.
    events: Vec<(Split, Event)>,
    /// Records that did not decode.
    pub dead_letters: Vec<DeadLetter>,
    /// The source's progress (its capability's time) when the batch is read:
    /// late events and dead letters of this batch are sent at this time.
    progress: EventTime,
    /// Splits the reader started serving in this call (e.g. Kafka partitions
    /// found while running), before any of their events.
    added_splits: Vec<Split>,
    /// The event times the source accepts.
    bounds: TimestampBounds,
}

impl ReadBatch {
    /// Adds an event read from `split`.
    #[inline]
    pub fn push(&mut self, split: Split, event: Event) {
        self.events.push((split, event));
    }

    /// The events added so far, with their splits.
    pub fn events(&self) -> impl Iterator<Item = &Event> {
        self.events.iter().map(|(_, event)| event)
    }

    /// The source's progress when this batch is read: where its late events
    /// and dead letters are sent.
    pub fn progress(&self) -> EventTime {
        self.progress
    }

    /// Registers a split the reader serves from now on; its watermark starts
    /// at the source's progress, so it holds windows back from there until it
    /// has events or goes idle.
    pub fn add_split(&mut self, split: Split) {
        self.added_splits.push(split);
    }

    /// Checks an event time against the source's [`TimestampBounds`] before
    /// the event is added: `None` when it is in range, else the reason for its
    /// dead letter (`timestamp_out_of_range: ...`). Every reader calls this
    /// for every event it decodes.
    #[inline]
    pub fn admit(&mut self, ts: EventTime) -> Option<String> {
        self.bounds.admit(ts)
    }

    /// Removes and returns the events added so far.
    pub fn take_events(&mut self) -> Vec<Event> {
        self.events.drain(..).map(|(_, event)| event).collect()
    }
}

/// Whether a reader has more to give.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReadStatus {
    /// Call again right away.
    More,
    /// Nothing now; call again after this long.
    Idle(Duration),
    /// The input is exhausted (a bounded source reached its end).
    Finished,
    /// The input cannot be read any further (e.g. an I/O error in the middle
    /// of a file): the source ends and the run fails with this message,
    /// which says where (path and byte offset, topic).
    Failed(String),
}

/// The sources of a run that failed, so that the run ends with an error
/// instead of passing off truncated results as complete.
#[derive(Clone, Debug, Default)]
pub struct SourceFailures {
    failures: Arc<Mutex<Vec<String>>>,
}

impl SourceFailures {
    /// No failures yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records that a source failed, and why.
    pub fn record(&self, failure: String) {
        self.failures.lock().unwrap_or_else(|p| p.into_inner()).push(failure);
    }

    /// Every failure recorded, in the order they happened.
    pub fn all(&self) -> Vec<String> {
        self.failures.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// Reads events from this worker's share of a source's input.
pub trait EventReader: 'static {
    /// The splits this reader serves from the start; each holds the watermark
    /// back until it has events (or, with an idle timeout, goes idle).
    fn splits(&self) -> Vec<Split> {
        vec![0]
    }

    /// The newest event time each resumed split had seen before this run
    /// (from a commit), so its watermark goes on from where it was.
    fn resumed_watermarks(&self) -> Vec<(Split, EventTime)> {
        Vec::new()
    }

    /// Called once, before the first read, with a handle that schedules the
    /// source's operator from any thread. A reader whose input arrives on
    /// another thread wakes the operator with it as soon as there is
    /// something to read, instead of leaving it to poll after
    /// [`ReadStatus::Idle`].
    fn wake_with(&mut self, _waker: SyncActivator) {}

    /// A watermark the reader vouches for without events, when its input has
    /// been silent for a while (e.g. the `http` source after `idle_timeout`):
    /// the source's progress moves up to it, so a silent live input stops
    /// holding windows back. `now` and `wall_clock_ms` are the time of the
    /// call. `None` (the default): only events move the watermark.
    fn idle_watermark(&self, _now: Instant, _wall_clock_ms: EventTime) -> Option<EventTime> {
        None
    }

    /// Appends what is available now to `batch`.
    fn read(&mut self, batch: &mut ReadBatch) -> ReadStatus;
}

/// How a source turns event times into progress.
#[derive(Clone, Debug)]
pub struct SourceSettings {
    /// Component name, for logs and metrics.
    pub name: String,
    /// How far behind the newest event of its split an event may be before it is late.
    pub max_out_of_orderness_ms: u64,
    /// A split without events for this long stops holding the watermark back.
    pub idle_timeout: Option<Duration>,
    /// The engine's time granule in ms.
    pub granule_ms: u64,
    /// Stops the source when triggered.
    pub shutdown: Shutdown,
    /// The watermarks of this source's workers, so that a worker whose splits
    /// are all idle stops holding the others back (with an idle timeout).
    pub workers: WorkerWatermarks,
    /// The event times the source accepts (`min_timestamp`, `max_future`).
    pub timestamps: TimestampBounds,
    /// Whether nothing reads the `late` output: late events then go to the
    /// dead-letter output, so that they do not vanish.
    pub late_unread: bool,
    /// Where a read failure is recorded; it also triggers `shutdown`, so the
    /// whole run stops and fails.
    pub failures: SourceFailures,
    /// Set while the buffer of a sink downstream is full: the source does not read then.
    pub pressure: Backpressure,
    /// In a cluster, how far the source may lead what every process has
    /// taken in (`None`: unlimited, as in one process).
    pub lead: Option<LeadLimit>,
}

/// The three outputs of a source.
pub struct SourceStreams<'scope> {
    /// Events on time, at their (coarsened) event time.
    pub events: Stream<'scope, EventTime, Vec<Event>>,
    /// Events that arrived behind the watermark.
    pub late: Stream<'scope, EventTime, Vec<Event>>,
    /// Input that did not decode.
    pub dead_letters: Stream<'scope, EventTime, Vec<DeadLetter>>,
}

/// Builds the source operator for this worker around `reader`.
pub fn event_source<'scope, R: EventReader>(
    scope: Scope<'scope, EventTime>,
    settings: SourceSettings,
    mut reader: R,
) -> SourceStreams<'scope> {
    let mut builder = OperatorBuilder::new(settings.name.clone(), scope);
    let address = builder.operator_info().address;
    reader.wake_with(scope.worker().sync_activator_for(address.to_vec()));
    let activator = scope.activator_for(address);
    let (events_out, events) = builder.new_output();
    let (late_out, late) = builder.new_output();
    let (dead_out, dead_letters) = builder.new_output();
    let mut events_out = OutputBuilder::<_, CapacityContainerBuilder<Vec<Event>>>::from(events_out);
    let mut late_out = OutputBuilder::<_, CapacityContainerBuilder<Vec<Event>>>::from(late_out);
    let mut dead_out = OutputBuilder::<_, CapacityContainerBuilder<Vec<DeadLetter>>>::from(dead_out);

    let labels = [("component", settings.name.clone())];
    let sent = metrics::counter!("pulse_component_sent_events_total", &labels);
    let late_count = metrics::counter!("pulse_late_events_total", &labels);
    let dead_count = metrics::counter!("pulse_dead_letters_total", &labels);
    let watermark_gauge = metrics::gauge!("pulse_source_watermark_ms", &labels);
    let held_back = metrics::counter!("pulse_source_held_back_milliseconds_total", &labels);
    let granule = settings.granule_ms;
    let worker = scope.index();

    builder.build(move |capabilities| {
        let mut capabilities = Some(capabilities);
        let mut watermarks = SplitWatermarks::new(settings.max_out_of_orderness_ms, settings.idle_timeout);
        let started = Instant::now();
        reader
            .splits()
            .into_iter()
            .for_each(|split| watermarks.add(split, started));
        for (split, max_seen) in reader.resumed_watermarks() {
            watermarks.observe(split, max_seen, started);
        }
        let mut batch = ReadBatch {
            bounds: settings.timestamps,
            ..ReadBatch::default()
        };
        let mut buckets = TimeBuckets::default();
        let mut late_events = Vec::new();
        // Late events as dead letters (counted as late, not as dead letters).
        let mut late_letters = Vec::new();
        let mut late_report = LateReport::default();
        // Since when the source has waited for the cluster to take in what it sent.
        let mut waiting_since: Option<Instant> = None;
        move |_frontiers| {
            let Some(caps) = capabilities.as_mut() else { return };
            if settings.shutdown.is_triggered() {
                capabilities = None;
                return;
            }
            if settings.pressure.is_blocked() {
                // A sink's buffer is full: read nothing until it drains.
                activator.activate_after(BACKPRESSURE_PAUSE);
                return;
            }
            if let Some(lead) = &settings.lead {
                if lead.holds_back(*caps[0].time()) {
                    waiting_since.get_or_insert_with(Instant::now);
                    activator.activate_after(BACKPRESSURE_PAUSE);
                    return;
                }
                if let Some(since) = waiting_since.take() {
                    let waited = since.elapsed();
                    held_back.increment(u64::try_from(waited.as_millis()).unwrap_or(u64::MAX));
                    // Silence while waiting is not idleness: splits that had
                    // events before must not be passed by the others' watermark.
                    watermarks.postpone_idleness(waited);
                }
            }
            batch.progress = *caps[0].time();
            batch.bounds.set_wall_clock(wall_clock_ms());
            let status = reader.read(&mut batch);
            let now = Instant::now();
            for split in batch.added_splits.drain(..) {
                watermarks.add_at(split, *caps[0].time(), now);
            }

            for (split, event) in batch.events.drain(..) {
                // Behind its split's watermark, or behind the source's progress
                // (possible after an idle split let the watermark pass it).
                if watermarks.is_late(split, event.ts) || coarsen(event.ts, granule) < *caps[0].time() {
                    let watermark = watermarks.of(split).max(*caps[0].time());
                    late_report.add(watermark.saturating_sub(event.ts));
                    if settings.late_unread {
                        late_letters.push(late_dead_letter(&settings.name, event, watermark));
                    } else {
                        late_events.push(event);
                    }
                } else {
                    watermarks.observe(split, event.ts, now);
                    buckets.push(coarsen(event.ts, granule), event);
                }
            }
            let mut events_handle = events_out.activate();
            let mut on_time = 0;
            for (time, bucket) in buckets.drain() {
                on_time += bucket.len();
                events_handle.session(&caps[0].delayed(&time)).give_container(bucket);
            }
            sent.increment(on_time as u64);
            if late_report.count > 0 {
                late_count.increment(late_report.count);
                late_report.warn_now_and_then(&settings.name, settings.late_unread, now);
            }
            if !late_events.is_empty() {
                late_out.activate().session(&caps[1]).give_container(&mut late_events);
                late_events.clear();
            }
            dead_count.increment(batch.dead_letters.len() as u64);
            batch.dead_letters.append(&mut late_letters);
            if !batch.dead_letters.is_empty() {
                dead_out
                    .activate()
                    .session(&caps[2])
                    .give_container(&mut batch.dead_letters);
                batch.dead_letters.clear();
            }

            let mut watermark = watermarks.current(now);
            if let Some(idle) = reader.idle_watermark(now, wall_clock_ms()) {
                // Later events behind it are late: the check above compares
                // with the capability, which follows it.
                watermark = watermark.max(idle);
            }
            if settings.idle_timeout.is_some() {
                // A reader without splits (yet) follows the others too.
                let idle = watermarks.all_idle(now) || watermarks.is_empty();
                settings.workers.publish(worker, watermark, !idle);
                if idle && let Some(others) = settings.workers.for_idle() {
                    watermark = watermark.max(others);
                }
            }
            let progress = coarsen(watermark, granule);
            if *caps[0].time() < progress {
                watermark_gauge.set(watermark as f64);
                caps.iter_mut().for_each(|cap| cap.downgrade(&progress));
            }
            match status {
                ReadStatus::More => activator.activate(),
                ReadStatus::Idle(delay) => activator.activate_after(delay),
                ReadStatus::Finished => capabilities = None,
                ReadStatus::Failed(error) => {
                    tracing::error!(source = %settings.name, %error, "reading failed; stopping the run");
                    settings.failures.record(format!("source `{}`: {error}", settings.name));
                    // Windows over what was read are incomplete: discard them, as on Ctrl-C.
                    settings.shutdown.trigger();
                    capabilities = None;
                }
            }
        }
    });
    SourceStreams {
        events,
        late,
        dead_letters,
    }
}

/// A late event as a dead letter, for a source whose `late` output nobody reads.
fn late_dead_letter(component: &str, event: Event, watermark: EventTime) -> DeadLetter {
    DeadLetter {
        component: component.to_owned(),
        reason: format!("late: {} ms behind the watermark", watermark.saturating_sub(event.ts)),
        position: Position::Late { watermark },
        raw: serde_json::to_string(&event).expect("events serialise to JSON"),
    }
}

/// Late events since the last warning, for a warning every
/// [`LATE_WARNING_INTERVAL`] at most.
#[derive(Default)]
struct LateReport {
    /// Late events in this read (counted into the metric, then reset).
    count: u64,
    /// Late events since the last warning.
    unreported: u64,
    /// The most any of them was behind the watermark, in ms.
    max_behind_ms: u64,
    last_warning: Option<Instant>,
}

impl LateReport {
    fn add(&mut self, behind_ms: u64) {
        self.count += 1;
        self.unreported += 1;
        self.max_behind_ms = self.max_behind_ms.max(behind_ms);
    }

    /// Logs the late events since the last warning, unless that was less than
    /// [`LATE_WARNING_INTERVAL`] ago; returns whether it did.
    fn warn_now_and_then(&mut self, source: &str, unread: bool, now: Instant) -> bool {
        self.count = 0;
        if self
            .last_warning
            .is_some_and(|at| now.duration_since(at) < LATE_WARNING_INTERVAL)
        {
            return false;
        }
        let destination = if unread {
            "nothing reads its .late output: written as dead letters"
        } else {
            "sent to its .late output"
        };
        tracing::warn!(
            source,
            late_events = self.unreported,
            max_behind_ms = self.max_behind_ms,
            "events arrived behind the watermark; {destination}"
        );
        self.unreported = 0;
        self.max_behind_ms = 0;
        self.last_warning = Some(now);
        true
    }
}

/// Events of one read grouped by timestamp, so each time is sent as one message.
#[derive(Default)]
struct TimeBuckets {
    buckets: Vec<(EventTime, Vec<Event>)>,
    used: usize,
}

impl TimeBuckets {
    #[inline]
    fn push(&mut self, time: EventTime, event: Event) {
        // Reads are nearly in time order: the bucket used last is almost always right.
        let index = match self.buckets[..self.used].iter().rposition(|(t, _)| *t == time) {
            Some(index) => index,
            None => {
                if self.used == self.buckets.len() {
                    self.buckets.push((time, Vec::new()));
                }
                self.buckets[self.used].0 = time;
                self.buckets[self.used].1.clear();
                self.used += 1;
                self.used - 1
            }
        };
        self.buckets[index].1.push(event);
    }

    fn drain(&mut self) -> impl Iterator<Item = (EventTime, &mut Vec<Event>)> {
        let used = std::mem::take(&mut self.used);
        self.buckets[..used].iter_mut().map(|(time, events)| (*time, events))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn late_warnings_come_at_most_every_ten_seconds_and_sum_up_since_the_last() {
        let start = Instant::now();
        let mut report = LateReport::default();
        report.add(500);
        assert!(
            report.warn_now_and_then("events", true, start),
            "the first warns at once"
        );
        report.add(7_000);
        report.add(300);
        assert!(!report.warn_now_and_then("events", true, start + Duration::from_secs(5)));
        assert_eq!(
            (report.unreported, report.max_behind_ms),
            (2, 7_000),
            "kept for the next"
        );
        assert!(report.warn_now_and_then("events", true, start + LATE_WARNING_INTERVAL));
        assert_eq!((report.unreported, report.max_behind_ms, report.count), (0, 0, 0));
    }
}
