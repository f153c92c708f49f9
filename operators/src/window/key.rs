//! Grouping keys: which event fields a window groups by, read without allocating.

use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::str::FromStr;

use pulse_core::{Event, EventBody, EventKind};
use serde::{Deserialize, Deserializer};

/// One event field a window can group by.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum KeyField {
    /// `tenant`
    Tenant,
    /// `source`
    Source,
    /// `kind`
    Kind,
    /// `metric` (metric events)
    Metric,
    /// `labels.<name>` (metric events)
    Label(String),
    /// `resource.kind` (k8s events and logs)
    ResourceKind,
    /// `resource.namespace` (k8s events and logs)
    ResourceNamespace,
    /// `resource.name` (k8s events and logs)
    ResourceName,
    /// `reason` (k8s events)
    Reason,
    /// `severity` (k8s events)
    Severity,
    /// `level` (logs)
    Level,
    /// `relation` (topology)
    Relation,
}

/// Why a key field name did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown key field {0:?}; use tenant, source, kind, metric, labels.<name>, resource.kind, resource.namespace, resource.name, reason, severity, level or relation"
)]
pub struct UnknownKeyField(String);

impl FromStr for KeyField {
    type Err = UnknownKeyField;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Ok(match name {
            "tenant" => KeyField::Tenant,
            "source" => KeyField::Source,
            "kind" => KeyField::Kind,
            "metric" => KeyField::Metric,
            "resource.kind" => KeyField::ResourceKind,
            "resource.namespace" => KeyField::ResourceNamespace,
            "resource.name" => KeyField::ResourceName,
            "reason" => KeyField::Reason,
            "severity" => KeyField::Severity,
            "level" => KeyField::Level,
            "relation" => KeyField::Relation,
            _ => match name.strip_prefix("labels.") {
                Some(label) if !label.is_empty() => KeyField::Label(label.to_owned()),
                _ => return Err(UnknownKeyField(name.to_owned())),
            },
        })
    }
}

impl fmt::Display for KeyField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            KeyField::Tenant => "tenant",
            KeyField::Source => "source",
            KeyField::Kind => "kind",
            KeyField::Metric => "metric",
            KeyField::Label(label) => return write!(f, "labels.{label}"),
            KeyField::ResourceKind => "resource.kind",
            KeyField::ResourceNamespace => "resource.namespace",
            KeyField::ResourceName => "resource.name",
            KeyField::Reason => "reason",
            KeyField::Severity => "severity",
            KeyField::Level => "level",
            KeyField::Relation => "relation",
        };
        f.write_str(name)
    }
}

impl<'de> Deserialize<'de> for KeyField {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

impl KeyField {
    /// The field's value in `event`, or `None` when the event's kind has no such field.
    #[inline]
    pub fn get<'e>(&self, event: &'e Event) -> Option<&'e str> {
        let resource = || match &event.body {
            EventBody::K8sEvent(k) => Some(&k.resource),
            EventBody::Log(l) => Some(&l.resource),
            _ => None,
        };
        match (self, &event.body) {
            (KeyField::Tenant, _) => Some(&event.tenant),
            (KeyField::Source, _) => Some(&event.source),
            (KeyField::Kind, _) => Some(event.kind().as_str()),
            (KeyField::Metric, EventBody::Metric(m)) => Some(&m.metric),
            (KeyField::Label(label), EventBody::Metric(m)) => m.labels.get(label).map(String::as_str),
            (KeyField::ResourceKind, _) => resource().map(|r| r.kind.as_str()),
            (KeyField::ResourceNamespace, _) => resource().map(|r| r.namespace.as_str()),
            (KeyField::ResourceName, _) => resource().map(|r| r.name.as_str()),
            (KeyField::Reason, EventBody::K8sEvent(k)) => Some(&k.reason),
            (KeyField::Severity, EventBody::K8sEvent(k)) => Some(&k.severity),
            (KeyField::Level, EventBody::Log(l)) => Some(&l.level),
            (KeyField::Relation, EventBody::Topology(t)) => Some(&t.relation),
            _ => None,
        }
    }

    /// The event kinds that carry this field.
    pub fn kinds(&self) -> &'static [EventKind] {
        use EventKind::*;
        match self {
            KeyField::Tenant | KeyField::Source | KeyField::Kind => &EventKind::ALL,
            KeyField::Metric | KeyField::Label(_) => &[Metric],
            KeyField::ResourceKind | KeyField::ResourceNamespace | KeyField::ResourceName => &[K8sEvent, Log],
            KeyField::Reason | KeyField::Severity => &[K8sEvent],
            KeyField::Level => &[Log],
            KeyField::Relation => &[Topology],
        }
    }
}

/// The owned value of a grouping key: one entry per key field, `None` where the
/// event lacks the field (such events group together under `null`).
pub type KeyValues = Box<[Option<Box<str>>]>;

/// The ordered list of fields a window groups by.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeySpec {
    fields: Vec<KeyField>,
}

/// The hasher behind key routing and window state: fixed-seeded, so every worker
/// (and every process of a cluster) sends a key to the same place.
fn hasher() -> impl Hasher {
    foldhash::fast::FixedState::with_seed(0x7075_6c73_6521).build_hasher()
}

impl KeySpec {
    /// Groups by `fields`, in that order.
    pub fn new(fields: Vec<KeyField>) -> Self {
        Self { fields }
    }

    /// The key fields.
    pub fn fields(&self) -> &[KeyField] {
        &self.fields
    }

    /// Hash of the event's key, consistent with [`KeySpec::hash_values`].
    #[inline]
    pub fn hash_event(&self, event: &Event) -> u64 {
        let mut h = hasher();
        for field in &self.fields {
            hash_part(&mut h, field.get(event));
        }
        h.finish()
    }

    /// Hash of an owned key, consistent with [`KeySpec::hash_event`].
    pub fn hash_values(&self, values: &KeyValues) -> u64 {
        let mut h = hasher();
        for value in values.iter() {
            hash_part(&mut h, value.as_deref());
        }
        h.finish()
    }

    /// Whether `values` is the key of `event`.
    #[inline]
    pub fn matches(&self, event: &Event, values: &KeyValues) -> bool {
        self.fields
            .iter()
            .zip(values.iter())
            .all(|(field, value)| field.get(event) == value.as_deref())
    }

    /// The owned key of `event`.
    pub fn extract(&self, event: &Event) -> KeyValues {
        self.fields
            .iter()
            .map(|field| field.get(event).map(Box::from))
            .collect()
    }
}

/// One part of a key: a string in one `write`, which mixes in its length
/// (foldhash rotates by it), so parts need no separators; a missing field as
/// a word of its own. (Equal hashes are told apart by comparing the keys.)
#[inline]
fn hash_part(h: &mut impl Hasher, part: Option<&str>) {
    match part {
        Some(text) => h.write(text.as_bytes()),
        None => h.write_u64(u64::MAX),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_fields_and_hashes_consistently() {
        let event = Event::from_json(
            br#"{"ts":1,"tenant":"acme","source":"h1","kind":"metric","metric":"cpu","value":1,"labels":{"region":"eu"}}"#,
        )
        .unwrap();
        let spec = KeySpec::new(vec![
            "tenant".parse().unwrap(),
            "labels.region".parse().unwrap(),
            "reason".parse().unwrap(),
        ]);
        let key = spec.extract(&event);
        assert_eq!(&*key, &[Some("acme".into()), Some("eu".into()), None]);
        assert!(spec.matches(&event, &key));
        assert_eq!(spec.hash_event(&event), spec.hash_values(&key));
    }

    #[test]
    fn names_round_trip_and_typos_are_rejected() {
        for name in ["tenant", "labels.region", "resource.kind", "relation"] {
            assert_eq!(name.parse::<KeyField>().unwrap().to_string(), name);
        }
        assert!(
            "tenat"
                .parse::<KeyField>()
                .unwrap_err()
                .to_string()
                .contains("unknown key field \"tenat\"")
        );
        assert!("labels.".parse::<KeyField>().is_err());
    }
}
