//! Bounded out-of-orderness watermarks, one per split, combined by minimum.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pulse_core::EventTime;

/// Tracks the watermark of one split (a file range, a Kafka partition): the
/// largest event time seen minus the allowed out-of-orderness. Events older
/// than the watermark are late.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Watermark {
    max_seen: Option<EventTime>,
    out_of_orderness: u64,
}

impl Watermark {
    /// A watermark that tolerates events up to `out_of_orderness_ms` behind the newest.
    pub fn new(out_of_orderness_ms: u64) -> Self {
        Self {
            max_seen: None,
            out_of_orderness: out_of_orderness_ms,
        }
    }

    /// The watermark: no event older than this is accepted any more.
    pub fn current(&self) -> EventTime {
        self.max_seen.map_or(0, |max| max.saturating_sub(self.out_of_orderness))
    }

    /// Whether an event at `ts` arrives too late.
    #[inline]
    pub fn is_late(&self, ts: EventTime) -> bool {
        ts < self.current()
    }

    /// Takes an accepted event's time into account.
    #[inline]
    pub fn observe(&mut self, ts: EventTime) {
        if self.max_seen.is_none_or(|max| ts > max) {
            self.max_seen = Some(ts);
        }
    }
}

/// Identifies a split of a source's input, e.g. a Kafka partition.
pub type Split = u32;

/// The watermarks of every split a reader serves, combined.
///
/// The combined watermark is the minimum over the active splits, so one slow
/// split holds windows back instead of making its events late. A split that
/// has had no event for `idle_timeout` stops holding it back until its next
/// event; when every split is idle the combined watermark is the largest of
/// theirs, so windows over the data already read can close.
#[derive(Clone, Debug)]
pub struct SplitWatermarks {
    out_of_orderness: u64,
    idle_timeout: Option<Duration>,
    splits: BTreeMap<Split, (Watermark, Instant)>,
}

impl SplitWatermarks {
    /// No splits yet.
    pub fn new(out_of_orderness_ms: u64, idle_timeout: Option<Duration>) -> Self {
        Self {
            out_of_orderness: out_of_orderness_ms,
            idle_timeout,
            splits: BTreeMap::new(),
        }
    }

    /// Registers a split that holds the watermark back (at 0) until it has
    /// events or goes idle.
    pub fn add(&mut self, split: Split, now: Instant) {
        self.splits
            .entry(split)
            .or_insert((Watermark::new(self.out_of_orderness), now));
    }

    /// Registers a split that starts serving while the source runs: its
    /// watermark starts at `watermark` (the source's progress; its events
    /// behind that are late anyway) and holds the combined one there until it
    /// has events or goes idle.
    pub fn add_at(&mut self, split: Split, watermark: EventTime, now: Instant) {
        let mut started = Watermark::new(self.out_of_orderness);
        started.observe(watermark.saturating_add(self.out_of_orderness));
        self.splits.entry(split).or_insert((started, now));
    }

    /// Whether no split is registered.
    pub fn is_empty(&self) -> bool {
        self.splits.is_empty()
    }

    /// Whether an event at `ts` on `split` is late.
    #[inline]
    pub fn is_late(&self, split: Split, ts: EventTime) -> bool {
        self.splits.get(&split).is_some_and(|(w, _)| w.is_late(ts))
    }

    /// The watermark of `split` alone (0 for a split not registered).
    pub fn of(&self, split: Split) -> EventTime {
        self.splits.get(&split).map_or(0, |(w, _)| w.current())
    }

    /// Takes an accepted event of `split` into account.
    #[inline]
    pub fn observe(&mut self, split: Split, ts: EventTime, now: Instant) {
        let out_of_orderness = self.out_of_orderness;
        let (watermark, seen) = self
            .splits
            .entry(split)
            .or_insert((Watermark::new(out_of_orderness), now));
        watermark.observe(ts);
        *seen = now;
    }

    /// The source read nothing for `paused` (it waited for the rest of the
    /// cluster): that silence does not count towards any split's idleness.
    pub fn postpone_idleness(&mut self, paused: Duration) {
        for (_, seen) in self.splits.values_mut() {
            *seen += paused;
        }
    }

    fn is_active(&self, seen: &Instant, now: Instant) -> bool {
        self.idle_timeout.is_none_or(|idle| now.duration_since(*seen) < idle)
    }

    /// Whether every split has been idle for `idle_timeout` at `now` (false
    /// without splits or without an idle timeout).
    pub fn all_idle(&self, now: Instant) -> bool {
        !self.splits.is_empty() && !self.splits.values().any(|(_, seen)| self.is_active(seen, now))
    }

    /// The combined watermark at `now`.
    pub fn current(&self, now: Instant) -> EventTime {
        let active_min = self
            .splits
            .values()
            .filter(|(_, seen)| self.is_active(seen, now))
            .map(|(w, _)| w.current())
            .min();
        active_min
            .or_else(|| self.splits.values().map(|(w, _)| w.current()).max())
            .unwrap_or(0)
    }
}

/// The watermarks of one source's workers, shared between them: a worker
/// whose splits are all idle must not hold back the others, whose frontier
/// is the minimum over every worker's.
///
/// Each worker publishes its combined watermark and whether any of its splits
/// is active; a worker whose splits are all idle moves up to the minimum over
/// the workers with active splits (or, when none has, the largest watermark of
/// all), as a split does within a worker. Its later events behind that are late.
#[derive(Clone, Debug, Default)]
pub struct WorkerWatermarks {
    published: Arc<Mutex<Vec<Option<Published>>>>,
}

/// A worker's combined watermark, and whether any of its splits is active.
type Published = (EventTime, bool);

impl WorkerWatermarks {
    /// Nothing published yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Publishes `worker`'s combined watermark, and whether any split of it is active.
    pub fn publish(&self, worker: usize, watermark: EventTime, active: bool) {
        let mut published = self.published.lock().unwrap_or_else(|p| p.into_inner());
        if published.len() <= worker {
            published.resize(worker + 1, None);
        }
        published[worker] = Some((watermark, active));
    }

    /// Where an all-idle worker's watermark may go: the least watermark of the
    /// workers with active splits, else the largest published; `None` before
    /// anything is published.
    pub fn for_idle(&self) -> Option<EventTime> {
        let published = self.published.lock().unwrap_or_else(|p| p.into_inner());
        let published = published.iter().flatten();
        let active_min = published.clone().filter(|(_, active)| *active).map(|(w, _)| *w).min();
        active_min.or_else(|| published.map(|(w, _)| *w).max())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_idle_worker_follows_the_least_active_one() {
        let workers = WorkerWatermarks::new();
        assert_eq!(workers.for_idle(), None);
        workers.publish(0, 5_000, false);
        assert_eq!(workers.for_idle(), Some(5_000), "nobody active: the largest");
        workers.publish(2, 60_000, true);
        workers.publish(1, 20_000, true);
        assert_eq!(workers.for_idle(), Some(20_000));
        workers.publish(1, 70_000, false);
        assert_eq!(workers.for_idle(), Some(60_000));
    }

    #[test]
    fn a_split_added_while_running_starts_at_the_progress() {
        let start = Instant::now();
        let mut splits = SplitWatermarks::new(1_000, Some(Duration::from_secs(5)));
        splits.add(0, start);
        splits.observe(0, 10_000, start);
        assert_eq!(splits.current(start), 9_000);
        splits.add_at(1, 9_000, start);
        assert_eq!(splits.current(start), 9_000, "the new split does not pull it back");
        assert!(!splits.is_late(1, 9_000));
        assert!(splits.is_late(1, 8_999));
        splits.observe(0, 30_000, start);
        assert_eq!(
            splits.current(start),
            9_000,
            "the new split holds it until it has events"
        );
        splits.observe(1, 9_500, start);
        assert_eq!(
            splits.current(start),
            9_000,
            "an event before progress + disorder keeps it"
        );
        splits.observe(1, 20_000, start);
        assert_eq!(splits.current(start), 19_000);
        let later = start + Duration::from_secs(6);
        splits.observe(0, 31_000, later);
        assert_eq!(splits.current(later), 30_000, "and it stops holding it back when idle");
    }

    #[test]
    fn lags_the_newest_event_by_the_allowed_disorder() {
        let mut wm = Watermark::new(2_000);
        assert_eq!(wm.current(), 0);
        wm.observe(10_000);
        assert_eq!(wm.current(), 8_000);
        assert!(!wm.is_late(8_000));
        assert!(wm.is_late(7_999));
        wm.observe(9_000);
        assert_eq!(wm.current(), 8_000, "older events do not move it back");
    }

    #[test]
    fn the_slowest_active_split_holds_the_watermark() {
        let start = Instant::now();
        let mut splits = SplitWatermarks::new(1_000, Some(Duration::from_secs(5)));
        splits.add(0, start);
        splits.add(1, start);
        splits.observe(0, 60_000, start);
        assert_eq!(splits.current(start), 0, "split 1 has nothing yet");
        splits.observe(1, 20_000, start);
        assert_eq!(splits.current(start), 19_000);
        assert!(
            splits.is_late(0, 58_000) && !splits.is_late(1, 19_500),
            "lateness is per split"
        );
    }

    #[test]
    fn an_idle_split_stops_holding_it_back_until_it_speaks() {
        let start = Instant::now();
        let later = start + Duration::from_secs(6);
        let mut splits = SplitWatermarks::new(0, Some(Duration::from_secs(5)));
        splits.observe(0, 10_000, start);
        splits.observe(1, 50_000, later);
        assert_eq!(splits.current(later), 50_000, "split 0 is idle");
        splits.observe(0, 11_000, later);
        assert_eq!(splits.current(later), 11_000, "split 0 is active again");
        let much_later = later + Duration::from_secs(10);
        assert_eq!(splits.current(much_later), 50_000, "all idle: the largest");
    }

    #[test]
    fn time_spent_waiting_for_the_cluster_is_not_idleness() {
        let start = Instant::now();
        let mut splits = SplitWatermarks::new(0, Some(Duration::from_secs(5)));
        splits.observe(0, 10_000, start);
        splits.observe(1, 50_000, start);
        let after_wait = start + Duration::from_secs(8);
        splits.postpone_idleness(Duration::from_secs(6));
        assert!(!splits.all_idle(after_wait), "silent 8 s, of which 6 s waiting");
        assert_eq!(splits.current(after_wait), 10_000, "split 0 still holds the watermark");
        assert!(splits.all_idle(after_wait + Duration::from_secs(3)));
    }

    #[test]
    fn without_idle_timeout_a_split_holds_it_back_forever() {
        let start = Instant::now();
        let mut splits = SplitWatermarks::new(0, None);
        splits.add(7, start);
        splits.observe(0, 10_000, start);
        assert_eq!(splits.current(start + Duration::from_secs(3600)), 0);
    }
}
