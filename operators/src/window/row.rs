//! The result of a window: one row per (window, key).

use std::sync::Arc;

use pulse_core::EventTime;
use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};

use crate::aggregate::{Aggregate, AggregateValue};
use crate::window::key::KeyValues;

/// What the columns of a window's rows are; shared by every row of one operator.
#[derive(Clone, Debug, PartialEq)]
pub struct RowSchema {
    /// The key field names, e.g. `tenant`, `labels.region`.
    pub key: Vec<String>,
    /// The aggregates, in output order.
    pub aggregates: Vec<Aggregate>,
    /// Output column names of the aggregates (`count`, `p95`, ...).
    pub aggregate_names: Vec<String>,
}

impl RowSchema {
    /// The schema of rows keyed by `key` carrying `aggregates`.
    pub fn new(key: Vec<String>, aggregates: Vec<Aggregate>) -> Self {
        let aggregate_names = aggregates.iter().map(|a| a.name()).collect();
        Self {
            key,
            aggregates,
            aggregate_names,
        }
    }
}

/// One closed window of one key, with its aggregates.
///
/// Serialises flat: `{"window_start":..,"window_end":..,<key fields>..,<aggregates>..}`
/// with times in epoch milliseconds, counts as integers and undefined floats as `null`.
#[derive(Clone, Debug, PartialEq)]
pub struct WindowRow {
    /// Column names.
    pub schema: Arc<RowSchema>,
    /// Inclusive start, epoch ms.
    pub window_start: EventTime,
    /// Exclusive end, epoch ms.
    pub window_end: EventTime,
    /// Key values, in `schema.key` order.
    pub key: KeyValues,
    /// Aggregate values, in `schema.aggregates` order.
    pub values: Vec<AggregateValue>,
}

impl WindowRow {
    /// The value of the aggregate called `name` (e.g. `"avg"`).
    pub fn value(&self, name: &str) -> Option<AggregateValue> {
        let index = self.schema.aggregate_names.iter().position(|a| a == name)?;
        Some(self.values[index])
    }
}

impl Serialize for WindowRow {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(2 + self.key.len() + self.values.len()))?;
        map.serialize_entry("window_start", &self.window_start)?;
        map.serialize_entry("window_end", &self.window_end)?;
        for (name, value) in self.schema.key.iter().zip(self.key.iter()) {
            map.serialize_entry(name, value)?;
        }
        for (name, value) in self.schema.aggregate_names.iter().zip(&self.values) {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
}
