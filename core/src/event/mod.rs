//! The event envelope: one JSON object per Kafka message or JSONL line.
//!
//! ```json
//! {"ts":1732345678123,"tenant":"acme","source":"host-17","kind":"metric","metric":"cpu","value":0.73,"labels":{"region":"eu"}}
//! ```
//!
//! `kind` selects the body: `metric`, `k8s_event`, `topology` or `log`. Keys may
//! come in any order and unknown keys are ignored (agents add fields over time).
//! The decoder is written by hand rather than derived with `#[serde(flatten)]`:
//! the derived form buffers every object before it can look at `kind`, which
//! costs more than the rest of the pipeline on the replay hot path.

mod binary;
mod flat;
mod projection;

use std::collections::BTreeMap;
use std::fmt;

pub use compact_str::CompactString;
pub use projection::Projection;
use serde::de::{self, IgnoredAny, MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::time::EventTime;

/// One event: a time, who it belongs to, where it came from, and a typed body.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    /// Event time, epoch milliseconds.
    pub ts: EventTime,
    /// The tenant the event belongs to.
    pub tenant: CompactString,
    /// The agent, host or watcher that produced it.
    pub source: CompactString,
    /// What happened.
    pub body: EventBody,
}

/// The body of an [`Event`], tagged by `kind` on the wire.
#[derive(Clone, Debug, PartialEq)]
pub enum EventBody {
    /// A numeric sample.
    Metric(Metric),
    /// A Kubernetes event (boxed, like the other non-metric bodies, so that the
    /// common metric event stays small to move).
    K8sEvent(Box<K8sEvent>),
    /// A change in the resource graph.
    Topology(Box<TopologyChange>),
    /// A log line.
    Log(Box<LogRecord>),
}

/// The `kind` of an event, without its body.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EventKind {
    /// `metric`
    Metric,
    /// `k8s_event`
    K8sEvent,
    /// `topology`
    Topology,
    /// `log`
    Log,
}

/// A numeric sample of one metric.
#[derive(Clone, Debug, PartialEq)]
pub struct Metric {
    /// Metric name, e.g. `cpu`.
    pub metric: CompactString,
    /// The sample.
    pub value: f64,
    /// Free-form dimensions, e.g. `region`.
    pub labels: BTreeMap<String, String>,
}

/// A Kubernetes object, named the way `kubectl` names it.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceRef {
    /// `Pod`, `Node`, `Deployment`, ...
    pub kind: String,
    /// Namespace; empty for cluster-scoped objects.
    #[serde(default)]
    pub namespace: String,
    /// Object name.
    pub name: String,
}

/// A Kubernetes event about one resource.
#[derive(Clone, Debug, PartialEq)]
pub struct K8sEvent {
    /// The object the event is about.
    pub resource: ResourceRef,
    /// Machine-readable reason, e.g. `OOMKilled`.
    pub reason: String,
    /// `info`, `warning`, `error` or `critical`.
    pub severity: String,
    /// Human-readable message.
    pub message: String,
}

/// An edge of the resource graph appearing or going away.
#[derive(Clone, Debug, PartialEq)]
pub struct TopologyChange {
    /// Edge tail.
    pub from: ResourceRef,
    /// Edge head.
    pub to: ResourceRef,
    /// Relation name, e.g. `RUNS_ON`.
    pub relation: String,
    /// Whether the edge is added/updated or removed.
    pub op: TopologyOp,
}

/// What a [`TopologyChange`] does to its edge.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TopologyOp {
    /// Add or update the edge.
    Upsert,
    /// Remove the edge.
    Delete,
}

/// A log line attributed to a resource.
#[derive(Clone, Debug, PartialEq)]
pub struct LogRecord {
    /// The object that logged it.
    pub resource: ResourceRef,
    /// `debug`, `info`, `warn`, `error`, ...
    pub level: String,
    /// The line.
    pub message: String,
}

impl EventKind {
    /// Every kind, in wire-name order.
    pub const ALL: [EventKind; 4] = [
        EventKind::Metric,
        EventKind::K8sEvent,
        EventKind::Topology,
        EventKind::Log,
    ];

    /// The wire name used in the `kind` field.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Metric => "metric",
            EventKind::K8sEvent => "k8s_event",
            EventKind::Topology => "topology",
            EventKind::Log => "log",
        }
    }

    /// Parses a wire name.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == name)
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for EventKind {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for EventKind {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Self::parse(&name).ok_or_else(|| de::Error::unknown_variant(&name, &["metric", "k8s_event", "topology", "log"]))
    }
}

impl Event {
    /// The kind of the body.
    pub fn kind(&self) -> EventKind {
        match self.body {
            EventBody::Metric(_) => EventKind::Metric,
            EventBody::K8sEvent(_) => EventKind::K8sEvent,
            EventBody::Topology(_) => EventKind::Topology,
            EventBody::Log(_) => EventKind::Log,
        }
    }

    /// The numeric sample, for metric events.
    pub fn value(&self) -> Option<f64> {
        match &self.body {
            EventBody::Metric(m) => Some(m.value),
            _ => None,
        }
    }

    /// Decodes one JSON object. The error says what is wrong and where.
    pub fn from_json(bytes: &[u8]) -> Result<Event, serde_json::Error> {
        Self::from_json_projected(bytes, Projection::ALL)
    }

    /// Decodes one JSON object, keeping only the parts `projection` asks
    /// for; it accepts and refuses exactly what [`Event::from_json`] does.
    pub fn from_json_projected(bytes: &[u8], projection: Projection) -> Result<Event, serde_json::Error> {
        // Validating the whole line once lets the parser skip validating each
        // string in it again, which otherwise costs as much as the parsing.
        let text = std::str::from_utf8(bytes).map_err(|error| {
            <serde_json::Error as de::Error>::custom(format_args!(
                "invalid UTF-8 at byte {} of the line",
                error.valid_up_to()
            ))
        })?;
        match flat::decode(text, projection) {
            Some(event) => Ok(event),
            None => {
                let mut event = serde_json::from_str(text)?;
                projection.apply(&mut event);
                Ok(event)
            }
        }
    }

    /// Encodes the event as one line of JSON (no trailing newline).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("events always serialize")
    }
}

/// JSON (and other self-describing formats) get the wire envelope;
/// binary formats, such as timely's between the processes of a cluster, the
/// fixed layout of [`binary`].
impl Serialize for Event {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if !serializer.is_human_readable() {
            return binary::serialize(self, serializer);
        }
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("ts", &self.ts)?;
        map.serialize_entry("tenant", &self.tenant)?;
        map.serialize_entry("source", &self.source)?;
        map.serialize_entry("kind", &self.kind())?;
        match &self.body {
            EventBody::Metric(m) => {
                map.serialize_entry("metric", &m.metric)?;
                map.serialize_entry("value", &m.value)?;
                if !m.labels.is_empty() {
                    map.serialize_entry("labels", &m.labels)?;
                }
            }
            EventBody::K8sEvent(k) => {
                map.serialize_entry("resource", &k.resource)?;
                map.serialize_entry("reason", &k.reason)?;
                map.serialize_entry("severity", &k.severity)?;
                map.serialize_entry("message", &k.message)?;
            }
            EventBody::Topology(t) => {
                map.serialize_entry("from", &t.from)?;
                map.serialize_entry("to", &t.to)?;
                map.serialize_entry("relation", &t.relation)?;
                map.serialize_entry("op", &t.op)?;
            }
            EventBody::Log(l) => {
                map.serialize_entry("resource", &l.resource)?;
                map.serialize_entry("level", &l.level)?;
                map.serialize_entry("message", &l.message)?;
            }
        }
        map.end()
    }
}

/// Every key any kind may carry; the visitor collects them, then `kind` decides.
#[derive(Default)]
struct Fields {
    ts: Option<EventTime>,
    tenant: Option<CompactString>,
    source: Option<CompactString>,
    kind: Option<EventKind>,
    metric: Option<CompactString>,
    value: Option<f64>,
    labels: Option<BTreeMap<String, String>>,
    resource: Option<ResourceRef>,
    reason: Option<String>,
    severity: Option<String>,
    message: Option<String>,
    from: Option<ResourceRef>,
    to: Option<ResourceRef>,
    relation: Option<String>,
    op: Option<TopologyOp>,
    level: Option<String>,
}

fn required<T, E: de::Error>(field: Option<T>, name: &'static str) -> Result<T, E> {
    field.ok_or_else(|| E::missing_field(name))
}

fn set<'de, A: MapAccess<'de>, T: Deserialize<'de>>(
    slot: &mut Option<T>,
    name: &'static str,
    map: &mut A,
) -> Result<(), A::Error> {
    if slot.is_some() {
        return Err(de::Error::duplicate_field(name));
    }
    *slot = Some(map.next_value()?);
    Ok(())
}

/// Event time: a non-negative integer, or a float with no fractional part.
struct Timestamp(EventTime);

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TsVisitor;
        impl Visitor<'_> for TsVisitor {
            type Value = Timestamp;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("epoch milliseconds as a non-negative integer")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Timestamp, E> {
                Ok(Timestamp(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Timestamp, E> {
                u64::try_from(v)
                    .map(Timestamp)
                    .map_err(|_| E::invalid_value(de::Unexpected::Signed(v), &self))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Timestamp, E> {
                if v >= 0.0 && v.fract() == 0.0 && v < 9.0e15 {
                    Ok(Timestamp(v as u64))
                } else {
                    Err(E::invalid_value(de::Unexpected::Float(v), &self))
                }
            }
        }
        deserializer.deserialize_any(TsVisitor)
    }
}

impl<'de> Deserialize<'de> for Event {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        if !deserializer.is_human_readable() {
            return binary::deserialize(deserializer);
        }
        struct EventVisitor;
        impl<'de> Visitor<'de> for EventVisitor {
            type Value = Event;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an event object with ts, tenant, source and kind")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Event, A::Error> {
                let mut f = Fields::default();
                while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                    match key.as_ref() {
                        "ts" => {
                            if f.ts.is_some() {
                                return Err(de::Error::duplicate_field("ts"));
                            }
                            f.ts = Some(map.next_value::<Timestamp>()?.0);
                        }
                        "tenant" => set(&mut f.tenant, "tenant", &mut map)?,
                        "source" => set(&mut f.source, "source", &mut map)?,
                        "kind" => set(&mut f.kind, "kind", &mut map)?,
                        "metric" => set(&mut f.metric, "metric", &mut map)?,
                        "value" => set(&mut f.value, "value", &mut map)?,
                        "labels" => set(&mut f.labels, "labels", &mut map)?,
                        "resource" => set(&mut f.resource, "resource", &mut map)?,
                        "reason" => set(&mut f.reason, "reason", &mut map)?,
                        "severity" => set(&mut f.severity, "severity", &mut map)?,
                        "message" => set(&mut f.message, "message", &mut map)?,
                        "from" => set(&mut f.from, "from", &mut map)?,
                        "to" => set(&mut f.to, "to", &mut map)?,
                        "relation" => set(&mut f.relation, "relation", &mut map)?,
                        "op" => set(&mut f.op, "op", &mut map)?,
                        "level" => set(&mut f.level, "level", &mut map)?,
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                let body = match required(f.kind, "kind")? {
                    EventKind::Metric => {
                        let value = required(f.value, "value")?;
                        if !value.is_finite() {
                            return Err(de::Error::custom("field `value` must be a finite number"));
                        }
                        EventBody::Metric(Metric {
                            metric: required(f.metric, "metric")?,
                            value,
                            labels: f.labels.unwrap_or_default(),
                        })
                    }
                    EventKind::K8sEvent => EventBody::K8sEvent(Box::new(K8sEvent {
                        resource: required(f.resource, "resource")?,
                        reason: required(f.reason, "reason")?,
                        severity: required(f.severity, "severity")?,
                        message: f.message.unwrap_or_default(),
                    })),
                    EventKind::Topology => EventBody::Topology(Box::new(TopologyChange {
                        from: required(f.from, "from")?,
                        to: required(f.to, "to")?,
                        relation: required(f.relation, "relation")?,
                        op: f.op.unwrap_or(TopologyOp::Upsert),
                    })),
                    EventKind::Log => EventBody::Log(Box::new(LogRecord {
                        resource: required(f.resource, "resource")?,
                        level: required(f.level, "level")?,
                        message: required(f.message, "message")?,
                    })),
                };
                Ok(Event {
                    ts: required(f.ts, "ts")?,
                    tenant: required(f.tenant, "tenant")?,
                    source: required(f.source, "source")?,
                    body,
                })
            }
        }
        deserializer.deserialize_map(EventVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) const EXAMPLES: [&str; 4] = [
        r#"{"ts":1732345678123,"tenant":"acme","source":"host-17","kind":"metric","metric":"cpu","value":0.73,"labels":{"region":"eu"}}"#,
        r#"{"ts":1732345678200,"tenant":"acme","source":"state-watcher","kind":"k8s_event","resource":{"kind":"Pod","namespace":"prod","name":"frontend-abc"},"reason":"OOMKilled","severity":"error","message":"container killed"}"#,
        r#"{"ts":1732345678300,"tenant":"acme","source":"state-watcher","kind":"topology","from":{"kind":"Pod","namespace":"prod","name":"frontend-abc"},"to":{"kind":"Node","namespace":"","name":"node-3"},"relation":"RUNS_ON","op":"upsert"}"#,
        r#"{"ts":1732345678400,"tenant":"acme","source":"vector","kind":"log","resource":{"kind":"Pod","namespace":"prod","name":"api-1"},"level":"error","message":"connection refused"}"#,
    ];

    #[test]
    fn design_examples_round_trip() {
        for text in EXAMPLES {
            let event = Event::from_json(text.as_bytes()).unwrap();
            assert_eq!(event.to_json(), text);
        }
    }

    #[test]
    fn keys_in_any_order_and_unknown_keys_are_fine() {
        let event = Event::from_json(
            br#"{"value":2.5,"extra":[1,{"a":2}],"kind":"metric","metric":"mem","source":"h","tenant":"t","ts":7}"#,
        )
        .unwrap();
        assert_eq!(event.ts, 7);
        assert_eq!(event.value(), Some(2.5));
        assert_eq!(event.kind(), EventKind::Metric);
    }

    #[test]
    fn invalid_utf8_is_rejected_with_its_position() {
        let err = Event::from_json(b"{\"ts\":1,\"tenant\":\"\xff\"}")
            .unwrap_err()
            .to_string();
        assert!(err.contains("invalid UTF-8 at byte 18"), "{err}");
    }

    #[test]
    fn bad_events_say_what_is_wrong() {
        let cases = [
            (
                r#"{"tenant":"t","source":"s","kind":"metric","metric":"cpu","value":1}"#,
                "missing field `ts`",
            ),
            (
                r#"{"ts":1,"tenant":"t","source":"s","kind":"metrc","metric":"cpu","value":1}"#,
                "unknown variant `metrc`",
            ),
            (
                r#"{"ts":-5,"tenant":"t","source":"s","kind":"metric","metric":"cpu","value":1}"#,
                "invalid value",
            ),
            (
                r#"{"ts":1,"tenant":"t","source":"s","kind":"metric","metric":"cpu","value":"high"}"#,
                "invalid type",
            ),
            (
                r#"{"ts":1,"tenant":"t","source":"s","kind":"log","level":"info"}"#,
                "missing field `resource`",
            ),
            (
                r#"{"ts":1,"ts":2,"tenant":"t","source":"s","kind":"metric","metric":"cpu","value":1}"#,
                "duplicate field `ts`",
            ),
            (r#"{not json"#, "key must be a string"),
            ("{\"ts\":1,\"tenant\":\"\u{0}\"}", "control character"),
        ];
        for (text, expected) in cases {
            let err = Event::from_json(text.as_bytes()).unwrap_err().to_string();
            assert!(err.contains(expected), "{text}: {err}");
        }
    }
}
