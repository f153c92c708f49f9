//! The timely operator every source shares: watermarks, late data, dead letters.
//!
//! A source is an [`EventReader`] (reads batches of events from somewhere) run
//! by [`event_source`], which sends each event at its event time coarsened to
//! the granule and holds its capability at the watermark, so the dataflow
//! frontier is the watermark. A reader serves one or more *splits* (a file
//! range, Kafka partitions) with a watermark each; the capability follows their
//! minimum ([`SplitWatermarks`]). Events behind their split's watermark go to
//! the `late` output and undecodable input to the `dead_letter` output; both
//! are counted, neither stops the source.

use std::time::{Duration, Instant};

use pulse_core::time::coarsen;
use pulse_core::{DeadLetter, Event, EventTime, Shutdown};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::operators::generic::OutputBuilder;
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
use timely::dataflow::{Scope, Stream};
use timely::scheduling::SyncActivator;

use crate::watermark::{Split, SplitWatermarks, WorkerWatermarks};

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

    /// Removes and returns the events added so far.
    pub fn take_events(&mut self) -> Vec<Event> {
        self.events.drain(..).map(|(_, event)| event).collect()
    }
}

/// Whether a reader has more to give.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadStatus {
    /// Call again right away.
    More,
    /// Nothing now; call again after this long.
    Idle(Duration),
    /// The input is exhausted (a bounded source reached its end).
    Finished,
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
        let mut batch = ReadBatch::default();
        let mut buckets = TimeBuckets::default();
        let mut late_events = Vec::new();
        move |_frontiers| {
            let Some(caps) = capabilities.as_mut() else { return };
            if settings.shutdown.is_triggered() {
                capabilities = None;
                return;
            }
            batch.progress = *caps[0].time();
            let status = reader.read(&mut batch);
            let now = Instant::now();
            for split in batch.added_splits.drain(..) {
                watermarks.add_at(split, *caps[0].time(), now);
            }

            for (split, event) in batch.events.drain(..) {
                // Behind its split's watermark, or behind the source's progress
                // (possible after an idle split let the watermark pass it).
                if watermarks.is_late(split, event.ts) || coarsen(event.ts, granule) < *caps[0].time() {
                    late_events.push(event);
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
            if !late_events.is_empty() {
                late_count.increment(late_events.len() as u64);
                late_out.activate().session(&caps[1]).give_container(&mut late_events);
                late_events.clear();
            }
            if !batch.dead_letters.is_empty() {
                dead_count.increment(batch.dead_letters.len() as u64);
                dead_out
                    .activate()
                    .session(&caps[2])
                    .give_container(&mut batch.dead_letters);
                batch.dead_letters.clear();
            }

            let mut watermark = watermarks.current(now);
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
            }
        }
    });
    SourceStreams {
        events,
        late,
        dead_letters,
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
