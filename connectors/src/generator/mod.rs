//! The synthetic generator source: profiles of synthetic events.
//!
//! Profiles: [`sensors`] (host metrics) and [`k8s`] (labelled Kubernetes incident scenarios,
//! played live by [`k8s_live`]).
//!
//! A profile is a deterministic model of many series (see [`sensors`]). The
//! series are dealt round-robin over the workers (series `s` goes to worker
//! `s mod peers`) and every series draws from its own random stream, so what a
//! series produces never depends on the number of workers. Event times advance
//! by exactly `1 / rate` per event from `start`; a live source paces itself
//! to the wall clock, `pulse generate` does not.

pub mod k8s;
pub mod k8s_faults;
pub mod k8s_live;
pub mod sensors;

use std::time::{Duration, Instant};

use pulse_core::dead_letter::Position;
use pulse_core::{DeadLetter, Event, EventTime};
pub use sensors::{SENSOR_METRICS, SensorsConfig, SensorsModel};

use crate::source::{EventReader, ReadBatch, ReadStatus};

/// The largest batch one read produces.
const MAX_BATCH: u64 = 8_192;

/// What a generator produces and how fast.
#[derive(Clone, Debug, PartialEq)]
pub struct GeneratorSettings {
    /// The model of the `sensors` profile.
    pub sensors: SensorsConfig,
    /// Events per second over all workers; 0 generates as fast as possible.
    pub rate: u64,
    /// Stop after this many events in total; `None` runs until stopped.
    pub events: Option<u64>,
    /// Event time of the first event, epoch ms.
    pub start: EventTime,
}

/// A deterministic sequence of events: the `i`-th event of the whole
/// generator is series `i mod series_count` at time `start + i / rate`.
pub struct Synthetic {
    model: SensorsModel,
    settings: GeneratorSettings,
    series: u64,
}

impl Synthetic {
    /// The generator described by `settings`.
    pub fn new(settings: GeneratorSettings) -> Self {
        let model = SensorsModel::new(&settings.sensors);
        let series = model.series_count();
        Self {
            model,
            settings,
            series,
        }
    }

    /// Event time of the `index`-th event.
    pub fn time_of(&self, index: u64) -> EventTime {
        match self.settings.rate {
            0 => self.settings.start + index,
            rate => self.settings.start + (u128::from(index) * 1000 / u128::from(rate)) as u64,
        }
    }

    /// The `index`-th event. Indexes of one series must be asked in increasing order.
    pub fn event(&mut self, index: u64) -> Event {
        let ts = self.time_of(index);
        self.model.sample(index % self.series, ts)
    }

    /// Number of series in the model.
    pub fn series_count(&self) -> u64 {
        self.series
    }
}

/// One worker's share of a generator: the events whose index is `worker mod peers`
/// within each round of `series_count` events, i.e. whole series.
pub struct GeneratorReader {
    synthetic: Synthetic,
    /// Indexes this worker produces are `round * series + series_offset[k]`.
    my_series: Vec<u64>,
    next: u64,
    limit: u64,
    started: Option<Instant>,
    /// The source's name, for dead letters.
    component: String,
}

impl GeneratorReader {
    /// Worker `worker` of `peers`'s share of the generator.
    pub fn new(settings: GeneratorSettings, worker: usize, peers: usize) -> Self {
        let synthetic = Synthetic::new(settings);
        let series = synthetic.series_count();
        let my_series = (0..series).filter(|s| s % peers as u64 == worker as u64).collect();
        let limit = synthetic.settings.events.unwrap_or(u64::MAX);
        Self {
            synthetic,
            my_series,
            next: 0,
            limit,
            started: None,
            component: "generator".to_owned(),
        }
    }

    /// Names the source in its dead letters (default `generator`).
    pub fn named(mut self, component: &str) -> Self {
        self.component = component.to_owned();
        self
    }

    /// The global index of this worker's `k`-th event.
    fn index_of(&self, k: u64) -> Option<u64> {
        let per_round = self.my_series.len() as u64;
        if per_round == 0 {
            return None;
        }
        let index = (k / per_round) * self.synthetic.series + self.my_series[(k % per_round) as usize];
        (index < self.limit).then_some(index)
    }
}

impl EventReader for GeneratorReader {
    fn read(&mut self, batch: &mut ReadBatch) -> ReadStatus {
        let started = *self.started.get_or_insert_with(Instant::now);
        // Pace by event time: emit what is due by now, relative to the first read.
        let due_until = match self.synthetic.settings.rate {
            0 => EventTime::MAX,
            _ => self
                .synthetic
                .settings
                .start
                .saturating_add(started.elapsed().as_millis() as u64),
        };
        for _ in 0..MAX_BATCH {
            let Some(index) = self.index_of(self.next) else {
                return ReadStatus::Finished;
            };
            if self.synthetic.time_of(index) > due_until {
                return ReadStatus::Idle(Duration::from_millis(5));
            }
            let event = self.synthetic.event(index);
            match batch.admit(event.ts) {
                None => batch.push(0, event),
                // Only a `start` far ahead of the wall clock gets here.
                Some(reason) => batch.dead_letters.push(DeadLetter {
                    component: self.component.clone(),
                    reason,
                    position: Position::Generated { sequence: index },
                    raw: serde_json::to_string(&event).expect("events serialise to JSON"),
                }),
            }
            self.next += 1;
        }
        ReadStatus::More
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(events: u64) -> GeneratorSettings {
        GeneratorSettings {
            sensors: SensorsConfig::default(),
            rate: 0,
            events: Some(events),
            start: 1_700_000_000_000,
        }
    }

    fn drain(mut reader: GeneratorReader) -> Vec<Event> {
        let mut batch = ReadBatch::default();
        while reader.read(&mut batch) != ReadStatus::Finished {}
        batch.take_events()
    }

    #[test]
    fn workers_together_produce_the_same_events_as_one() {
        let n = 1_000;
        let one = drain(GeneratorReader::new(settings(n), 0, 1));
        assert_eq!(one.len() as u64, n);
        let mut three: Vec<Event> = (0..3)
            .flat_map(|w| drain(GeneratorReader::new(settings(n), w, 3)))
            .collect();
        let key = |e: &Event| (e.ts, e.tenant.clone(), e.source.clone(), format!("{:?}", e.body));
        three.sort_by_key(key);
        let mut one_sorted = one.clone();
        one_sorted.sort_by_key(key);
        assert_eq!(three, one_sorted);
    }

    #[test]
    fn live_generation_is_paced_by_the_rate() {
        let mut reader = GeneratorReader::new(
            GeneratorSettings {
                rate: 1_000,
                events: None,
                ..settings(0)
            },
            0,
            1,
        );
        let mut batch = ReadBatch::default();
        assert!(matches!(reader.read(&mut batch), ReadStatus::Idle(_)));
        assert!(
            batch.events().count() <= 2,
            "only what is due at the start: {}",
            batch.events().count()
        );
    }
}
