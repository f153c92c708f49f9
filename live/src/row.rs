//! [`LiveRow`]: one closed window as the live side sees it, and the
//! [`LiveSource`] operator it came from.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The operator that produced a row: what `{"pipeline", "operator"}` name in messages.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct LiveSource {
    /// The pipeline's name.
    pub pipeline: String,
    /// The window operator's name in the pipeline.
    pub operator: String,
}

impl LiveSource {
    /// The operator `operator` of pipeline `pipeline`.
    pub fn new(pipeline: impl Into<String>, operator: impl Into<String>) -> Self {
        Self {
            pipeline: pipeline.into(),
            operator: operator.into(),
        }
    }
}

/// A record the hub publishes: a tenant, key fields to filter on, and its message.
pub trait Publishable {
    /// The tenant it belongs to; records without one reach no subscriber.
    fn tenant(&self) -> Option<&str>;
    /// The key field `name` as text, if present and not null.
    fn key_str(&self, name: &str) -> Option<&str>;
    /// The message subscribers receive, serialised.
    fn to_message(&self, source: &LiveSource, published_at_us: u64) -> bytes::Bytes;
}

impl Publishable for LiveRow {
    fn tenant(&self) -> Option<&str> {
        LiveRow::tenant(self)
    }
    fn key_str(&self, name: &str) -> Option<&str> {
        LiveRow::key_str(self, name)
    }
    fn to_message(&self, source: &LiveSource, published_at_us: u64) -> bytes::Bytes {
        LiveRow::to_message(self, source, published_at_us)
    }
}

impl Publishable for crate::analytics::AnalyticsRecord {
    fn tenant(&self) -> Option<&str> {
        crate::analytics::AnalyticsRecord::tenant(self)
    }
    fn key_str(&self, name: &str) -> Option<&str> {
        crate::analytics::AnalyticsRecord::key_str(self, name)
    }
    fn to_message(&self, source: &LiveSource, published_at_us: u64) -> bytes::Bytes {
        crate::analytics::AnalyticsRecord::to_message(self, source, published_at_us)
    }
}

/// One closed window of one key: its bounds, key fields and aggregate values.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LiveRow {
    /// Inclusive start, epoch ms.
    pub window_start: u64,
    /// Exclusive end, epoch ms.
    pub window_end: u64,
    /// Key fields (`tenant`, `metric`, `labels.region`, ...), each a string or null.
    pub key: Map<String, Value>,
    /// Aggregates by name (`count`, `avg`, `p95`, ...), each a number or null.
    pub values: Map<String, Value>,
}

/// Why a record could not be read as a window row.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RowError {
    /// The record is not a JSON object.
    #[error("a window row must serialise to a JSON object")]
    NotAnObject,
    /// A bound is missing or not an epoch-ms integer.
    #[error("a window row needs integer {0}")]
    MissingBound(&'static str),
}

impl LiveRow {
    /// Splits a flat row (`{"window_start", "window_end", <key fields>, <aggregates>}`,
    /// as window operators serialise) into key and values by the key field names.
    pub fn from_flat(row: Value, key_fields: &[String]) -> Result<Self, RowError> {
        let Value::Object(mut fields) = row else {
            return Err(RowError::NotAnObject);
        };
        let mut bound = |name: &'static str| {
            fields
                .remove(name)
                .and_then(|v| v.as_u64())
                .ok_or(RowError::MissingBound(name))
        };
        let window_start = bound("window_start")?;
        let window_end = bound("window_end")?;
        let mut key = Map::new();
        for name in key_fields {
            key.insert(name.clone(), fields.remove(name).unwrap_or(Value::Null));
        }
        Ok(Self {
            window_start,
            window_end,
            key,
            values: fields,
        })
    }

    /// The tenant the row belongs to: its `tenant` key field. Rows without one reach no subscriber.
    pub fn tenant(&self) -> Option<&str> {
        self.key.get("tenant").and_then(Value::as_str)
    }

    /// The key field `name` as text, if the row has it and it is not null.
    pub fn key_str(&self, name: &str) -> Option<&str> {
        self.key.get(name).and_then(Value::as_str)
    }

    /// The aggregate `name` as a float, if present and defined.
    pub fn value_f64(&self, name: &str) -> Option<f64> {
        self.values.get(name).and_then(Value::as_f64)
    }

    /// The message a subscriber receives for this row, serialised;
    /// `published_at_us` (Unix microseconds) is when the hub handed it out,
    /// so a client can measure delivery latency.
    pub fn to_message(&self, source: &LiveSource, published_at_us: u64) -> bytes::Bytes {
        #[derive(Serialize)]
        struct WindowMessage<'a> {
            r#type: &'static str,
            pipeline: &'a str,
            operator: &'a str,
            window_start: u64,
            window_end: u64,
            key: &'a Map<String, Value>,
            values: &'a Map<String, Value>,
            published_at_us: u64,
        }
        let message = WindowMessage {
            r#type: "window",
            pipeline: &source.pipeline,
            operator: &source.operator,
            window_start: self.window_start,
            window_end: self.window_end,
            key: &self.key,
            values: &self.values,
            published_at_us,
        };
        // A map of JSON values always serialises.
        serde_json::to_vec(&message).map(bytes::Bytes::from).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn splits_a_flat_row_and_renders_the_message() {
        let flat = json!({"window_start": 1000, "window_end": 2000, "tenant": "acme", "metric": "cpu",
                          "count": 3, "avg": 0.5});
        let row = LiveRow::from_flat(flat, &["tenant".into(), "metric".into(), "labels.region".into()]).unwrap();
        assert_eq!(row.tenant(), Some("acme"));
        assert_eq!(row.key["labels.region"], Value::Null);
        assert_eq!(row.values.len(), 2);
        let message: Value = serde_json::from_slice(&row.to_message(&LiveSource::new("demo", "cpu_10s"), 7)).unwrap();
        assert_eq!(
            message,
            json!({"type": "window", "pipeline": "demo", "operator": "cpu_10s", "window_start": 1000,
                   "window_end": 2000, "key": {"tenant": "acme", "metric": "cpu", "labels.region": null},
                   "values": {"count": 3, "avg": 0.5}, "published_at_us": 7})
        );
    }

    #[test]
    fn malformed_rows_are_errors() {
        assert_eq!(LiveRow::from_flat(json!([1]), &[]), Err(RowError::NotAnObject));
        assert_eq!(
            LiveRow::from_flat(json!({"window_start": 1}), &[]),
            Err(RowError::MissingBound("window_end"))
        );
    }
}
