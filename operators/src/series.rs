//! Series points: what the per-key analytics operators (anomaly detection,
//! forecasting) take, and how they hold them until event time is complete.
//!
//! A [`SeriesPoint`] is one value of one series (key) at one event time. The
//! operators route points by a hash of their key, so every key lives on one
//! worker whatever the number of workers, and process a key's points in
//! event-time order only once the input frontier has passed them
//! ([`HeldPoints`]): the result is then the same on every replay and for every
//! worker count, whatever order the points arrived in.

use std::collections::BTreeMap;
use std::hash::{BuildHasher, Hasher};

use pulse_core::EventTime;
use serde::{Deserialize, Serialize};

use crate::window::KeyValues;

/// One value of one series at one event time.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SeriesPoint {
    /// The series: one value per key column (`None` where the input lacked it).
    pub key: KeyValues,
    /// Event time, epoch ms.
    pub ts: EventTime,
    /// The value.
    pub value: f64,
}

impl SeriesPoint {
    /// Hash of the key, the same on every worker and process: where the key lives.
    pub fn route(&self) -> u64 {
        route(&self.key)
    }

    /// The key as one string, `tenant/source/metric` (`-` for a missing part):
    /// what models are named and seeded by.
    pub fn series_name(&self) -> String {
        series_name(&self.key)
    }
}

/// A point an operator refused, with the reason (it becomes a dead letter).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RefusedPoint {
    /// The point.
    pub point: SeriesPoint,
    /// Why, e.g. `value NaN at 1700000000000 is not a finite number`.
    pub reason: String,
}

/// Hash of a key, fixed-seeded so that every worker sends a key to the same place.
pub fn route(key: &KeyValues) -> u64 {
    let mut hasher = foldhash::fast::FixedState::with_seed(0x7365_7269_6573).build_hasher();
    for part in key.iter() {
        match part {
            Some(text) => hasher.write(text.as_bytes()),
            None => hasher.write_u64(u64::MAX),
        }
    }
    hasher.finish()
}

/// A key as one string: its parts joined by `/`, `-` for a missing part.
pub fn series_name(key: &KeyValues) -> String {
    let parts: Vec<&str> = key.iter().map(|part| part.as_deref().unwrap_or("-")).collect();
    parts.join("/")
}

/// Points waiting for the frontier to pass their (timely) time.
#[derive(Debug, Default)]
pub struct HeldPoints {
    by_time: BTreeMap<EventTime, Vec<SeriesPoint>>,
}

impl HeldPoints {
    /// Holds `points` that arrived at `time`.
    pub fn hold(&mut self, time: EventTime, points: &mut Vec<SeriesPoint>) {
        self.by_time.entry(time).or_default().append(points);
    }

    /// Takes every point whose time is before `frontier`, by time; within a
    /// time sorted by key, then event time, then value, so that the order does
    /// not depend on how the points arrived.
    pub fn release(&mut self, frontier: EventTime) -> Vec<(EventTime, Vec<SeriesPoint>)> {
        let later = self.by_time.split_off(&frontier);
        let ready = std::mem::replace(&mut self.by_time, later);
        ready
            .into_iter()
            .map(|(time, mut points)| {
                points.sort_by(|a, b| {
                    a.key
                        .cmp(&b.key)
                        .then(a.ts.cmp(&b.ts))
                        .then(a.value.total_cmp(&b.value))
                });
                (time, points)
            })
            .collect()
    }

    /// Drops every held point (at shutdown, when the frontier no longer means
    /// complete); returns how many there were.
    pub fn discard(&mut self) -> usize {
        let count = self.by_time.values().map(Vec::len).sum();
        self.by_time.clear();
        count
    }

    /// The earliest time held, if any.
    pub fn earliest(&self) -> Option<EventTime> {
        self.by_time.keys().next().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(key: &str, ts: EventTime, value: f64) -> SeriesPoint {
        SeriesPoint {
            key: vec![Some(Box::from(key))].into_boxed_slice(),
            ts,
            value,
        }
    }

    #[test]
    fn released_points_come_in_an_order_independent_of_arrival() {
        let mut one = HeldPoints::default();
        let mut two = HeldPoints::default();
        let points = [
            point("b", 5, 1.0),
            point("a", 7, 2.0),
            point("a", 5, 3.0),
            point("a", 5, 1.0),
        ];
        one.hold(0, &mut points.to_vec());
        for p in points.iter().rev() {
            two.hold(0, &mut vec![p.clone()]);
        }
        two.hold(10, &mut vec![point("c", 10, 0.0)]);
        let released = one.release(10);
        assert_eq!(released, two.release(10));
        let order: Vec<(&str, EventTime, f64)> = released[0]
            .1
            .iter()
            .map(|p| (p.key[0].as_deref().unwrap(), p.ts, p.value))
            .collect();
        assert_eq!(order, [("a", 5, 1.0), ("a", 5, 3.0), ("a", 7, 2.0), ("b", 5, 1.0)]);
        assert_eq!(two.earliest(), Some(10));
        assert_eq!(two.discard(), 1);
    }

    #[test]
    fn names_and_routes_follow_the_key() {
        let p = SeriesPoint {
            key: vec![Some(Box::from("acme")), None, Some(Box::from("cpu"))].into_boxed_slice(),
            ts: 0,
            value: 0.0,
        };
        assert_eq!(p.series_name(), "acme/-/cpu");
        assert_eq!(p.route(), route(&p.key.clone()));
    }
}
