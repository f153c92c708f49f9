//! The binary form of an [`Event`]: what crosses processes in a cluster.
//!
//! An event's JSON form is a map of unknown length whose `ts` may be an
//! integer or a float; a format that is not self-describing (timely's
//! bincode, between the processes of a cluster) can write neither, so an
//! event that a key exchange sends to another process would fail there. For
//! such formats (`is_human_readable() == false`) an event is instead a fixed
//! sequence: time, tenant, source, then the body as an enum variant with its
//! fields in declaration order. JSON and every other self-describing format
//! keep the envelope of the wire.

use std::collections::BTreeMap;

use compact_str::CompactString;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{Event, EventBody, K8sEvent, LogRecord, Metric, ResourceRef, TopologyChange, TopologyOp};
use crate::time::EventTime;

/// An event, borrowed, in the binary layout.
#[derive(Serialize)]
struct EventOut<'a> {
    ts: EventTime,
    tenant: &'a str,
    source: &'a str,
    body: BodyOut<'a>,
}

/// The body, borrowed; its variants and fields in the order of [`BodyIn`].
#[derive(Serialize)]
enum BodyOut<'a> {
    Metric {
        metric: &'a str,
        value: f64,
        labels: &'a BTreeMap<String, String>,
    },
    K8sEvent {
        resource: &'a ResourceRef,
        reason: &'a str,
        severity: &'a str,
        message: &'a str,
    },
    Topology {
        from: &'a ResourceRef,
        to: &'a ResourceRef,
        relation: &'a str,
        op: TopologyOp,
    },
    Log {
        resource: &'a ResourceRef,
        level: &'a str,
        message: &'a str,
    },
}

/// An event read back from the binary layout.
#[derive(Deserialize)]
struct EventIn {
    ts: EventTime,
    tenant: CompactString,
    source: CompactString,
    body: BodyIn,
}

/// The body read back; the same variants and fields as [`BodyOut`].
#[derive(Deserialize)]
enum BodyIn {
    Metric {
        metric: CompactString,
        value: f64,
        labels: BTreeMap<String, String>,
    },
    K8sEvent {
        resource: ResourceRef,
        reason: String,
        severity: String,
        message: String,
    },
    Topology {
        from: ResourceRef,
        to: ResourceRef,
        relation: String,
        op: TopologyOp,
    },
    Log {
        resource: ResourceRef,
        level: String,
        message: String,
    },
}

/// Writes `event` in the binary layout.
pub(super) fn serialize<S: Serializer>(event: &Event, serializer: S) -> Result<S::Ok, S::Error> {
    let body = match &event.body {
        EventBody::Metric(m) => BodyOut::Metric {
            metric: &m.metric,
            value: m.value,
            labels: &m.labels,
        },
        EventBody::K8sEvent(k) => BodyOut::K8sEvent {
            resource: &k.resource,
            reason: &k.reason,
            severity: &k.severity,
            message: &k.message,
        },
        EventBody::Topology(t) => BodyOut::Topology {
            from: &t.from,
            to: &t.to,
            relation: &t.relation,
            op: t.op,
        },
        EventBody::Log(l) => BodyOut::Log {
            resource: &l.resource,
            level: &l.level,
            message: &l.message,
        },
    };
    EventOut {
        ts: event.ts,
        tenant: &event.tenant,
        source: &event.source,
        body,
    }
    .serialize(serializer)
}

/// Reads an event written by [`serialize`].
pub(super) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Event, D::Error> {
    let event = EventIn::deserialize(deserializer)?;
    let body = match event.body {
        BodyIn::Metric { metric, value, labels } => EventBody::Metric(Metric { metric, value, labels }),
        BodyIn::K8sEvent {
            resource,
            reason,
            severity,
            message,
        } => EventBody::K8sEvent(Box::new(K8sEvent {
            resource,
            reason,
            severity,
            message,
        })),
        BodyIn::Topology { from, to, relation, op } => {
            EventBody::Topology(Box::new(TopologyChange { from, to, relation, op }))
        }
        BodyIn::Log {
            resource,
            level,
            message,
        } => EventBody::Log(Box::new(LogRecord {
            resource,
            level,
            message,
        })),
    };
    Ok(Event {
        ts: event.ts,
        tenant: event.tenant,
        source: event.source,
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::super::tests::EXAMPLES;
    use super::*;

    #[test]
    fn every_kind_of_event_round_trips_through_bincode() {
        let mut with_labels = Event::from_json(EXAMPLES[0].as_bytes()).unwrap();
        if let EventBody::Metric(metric) = &mut with_labels.body {
            metric.labels.insert("zone".into(), "b".into());
        }
        let without_labels =
            Event::from_json(br#"{"ts":3,"tenant":"t","source":"s","kind":"metric","metric":"m","value":-0.0}"#)
                .unwrap();
        let events = EXAMPLES
            .iter()
            .map(|text| Event::from_json(text.as_bytes()).unwrap())
            .chain([with_labels, without_labels]);
        for event in events {
            let bytes = bincode::serialize(&event).unwrap_or_else(|e| panic!("{}: {e}", event.to_json()));
            let back: Event = bincode::deserialize(&bytes).unwrap_or_else(|e| panic!("{}: {e}", event.to_json()));
            assert_eq!(back, event);
            assert_eq!(back.to_json(), event.to_json(), "JSON is unchanged by the trip");
        }
    }

    #[test]
    fn a_vector_of_events_round_trips_as_timely_sends_it() {
        let events: Vec<Event> = EXAMPLES
            .iter()
            .map(|text| Event::from_json(text.as_bytes()).unwrap())
            .collect();
        let bytes = bincode::serialize(&events).unwrap();
        let back: Vec<Event> = bincode::deserialize(&bytes).unwrap();
        assert_eq!(back, events);
    }
}
