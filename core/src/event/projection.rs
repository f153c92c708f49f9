//! Projection: which optional parts of an event a pipeline reads, so that a
//! source's decoder copies only those.

use std::collections::BTreeMap;

use super::{CompactString, Event, EventBody};

/// The parts of an event a pipeline reads, beyond those it always keeps (time,
/// tenant, kind, metric name and value, and the bodies of the other kinds).
///
/// A decoder leaves the parts not asked for empty (`source` as `""`, no
/// `labels`) rather than copy them out of every message: projection pushdown,
/// as Flink and Materialize push the columns a query reads into its sources.
/// The parts left out are still checked, so an event is accepted or refused
/// the same either way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Projection {
    /// Keep `source`.
    pub source: bool,
    /// Keep a metric's `labels`.
    pub labels: bool,
}

impl Projection {
    /// Every part: what a sink that writes the events themselves needs.
    pub const ALL: Projection = Projection {
        source: true,
        labels: true,
    };

    /// Only the parts that are always kept.
    pub const NONE: Projection = Projection {
        source: false,
        labels: false,
    };

    /// The parts either projection keeps.
    pub fn union(self, other: Projection) -> Projection {
        Projection {
            source: self.source || other.source,
            labels: self.labels || other.labels,
        }
    }

    /// Empties the parts of `event` this projection does not keep.
    pub fn apply(self, event: &mut Event) {
        if !self.source {
            event.source = CompactString::default();
        }
        if let (false, EventBody::Metric(metric)) = (self.labels, &mut event.body) {
            metric.labels = BTreeMap::new();
        }
    }
}

impl Default for Projection {
    /// [`Projection::ALL`]: nothing is left out unless asked.
    fn default() -> Self {
        Projection::ALL
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apply_empties_only_the_parts_left_out() {
        let metric =
            br#"{"ts":1,"tenant":"t","source":"host-1","kind":"metric","metric":"cpu","value":1,"labels":{"az":"1"}}"#;
        let log = br#"{"ts":2,"tenant":"t","source":"vector","kind":"log","resource":{"kind":"Pod","name":"a"},"level":"error","message":"m"}"#;
        for text in [&metric[..], &log[..]] {
            let full = Event::from_json(text).unwrap();
            let mut only_labels = full.clone();
            Projection {
                source: false,
                labels: true,
            }
            .apply(&mut only_labels);
            assert_eq!(only_labels.source, "");
            assert_eq!(only_labels.body, full.body);
            let mut kept = full.clone();
            Projection::ALL.apply(&mut kept);
            assert_eq!(kept, full);
        }
        let mut no_labels = Event::from_json(metric).unwrap();
        Projection::NONE.apply(&mut no_labels);
        let EventBody::Metric(body) = &no_labels.body else {
            unreachable!()
        };
        assert!(body.labels.is_empty());
        assert_eq!((body.metric.as_str(), body.value), ("cpu", 1.0));
    }

    #[test]
    fn union_keeps_what_either_keeps() {
        let source = Projection {
            source: true,
            labels: false,
        };
        let labels = Projection {
            source: false,
            labels: true,
        };
        assert_eq!(source.union(labels), Projection::ALL);
        assert_eq!(Projection::NONE.union(source), source);
    }
}
