//! The result of a window: one row per (window, key), and the typed
//! [`Row`](pulse_core::Row) it becomes between operators and into sinks.

use std::sync::Arc;

use pulse_core::EventTime;
use pulse_core::row::{Column, ColumnType, Row, RowSchema, SchemaError, Value};
use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};

use crate::aggregate::{Aggregate, AggregateValue};
use crate::window::key::KeyValues;

/// What the columns of a window's rows are; shared by every row of one operator.
#[derive(Clone, Debug, PartialEq)]
pub struct WindowSchema {
    /// The key field names, e.g. `tenant`, `labels.region`.
    pub key: Vec<String>,
    /// The aggregates, in output order.
    pub aggregates: Vec<Aggregate>,
    /// Output column names of the aggregates (`count`, `p95`, ...).
    pub aggregate_names: Vec<String>,
}

impl WindowSchema {
    /// The schema of rows keyed by `key` carrying `aggregates`.
    pub fn new(key: Vec<String>, aggregates: Vec<Aggregate>) -> Self {
        let aggregate_names = aggregates.iter().map(|a| a.name()).collect();
        Self {
            key,
            aggregates,
            aggregate_names,
        }
    }

    /// The typed columns of these rows, as they leave the operator:
    /// `window_start` and `window_end` (event times), the key fields (keys, null
    /// for an event without the field), then the aggregates (`count` an integer,
    /// the others floats, null when undefined); an error when a key field or
    /// an aggregate is listed twice.
    ///
    /// # Examples
    /// ```
    /// use pulse_operators::Aggregate;
    /// use pulse_operators::window::WindowSchema;
    ///
    /// let schema = WindowSchema::new(vec!["tenant".into()], vec![Aggregate::Count, Aggregate::Avg]).row_schema().unwrap();
    /// let names: Vec<&str> = schema.columns().iter().map(|c| c.name.as_str()).collect();
    /// assert_eq!(names, ["window_start", "window_end", "tenant", "count", "avg"]);
    /// ```
    pub fn row_schema(&self) -> Result<RowSchema, SchemaError> {
        let bounds = ["window_start", "window_end"].map(|name| Column::new(name, ColumnType::Time));
        let key = self
            .key
            .iter()
            .map(|name| Column::new(name, ColumnType::Key).nullable());
        let aggregates = self
            .aggregates
            .iter()
            .zip(&self.aggregate_names)
            .map(|(aggregate, name)| {
                if *aggregate == Aggregate::Count {
                    Column::new(name, ColumnType::Int)
                } else {
                    Column::new(name, ColumnType::Float).nullable()
                }
            });
        RowSchema::new(bounds.into_iter().chain(key).chain(aggregates).collect())
    }
}

/// One closed window of one key, with its aggregates.
///
/// Serialises flat: `{"window_start":..,"window_end":..,<key fields>..,<aggregates>..}`
/// with times in epoch milliseconds, counts as integers and undefined floats as `null`.
#[derive(Clone, Debug, PartialEq)]
pub struct WindowRow {
    /// Column names.
    pub schema: Arc<WindowSchema>,
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

    /// This row as a typed row of `schema`, which must be this row's
    /// [`WindowSchema::row_schema`].
    pub fn to_row(&self, schema: &Arc<RowSchema>) -> Row {
        let bounds = [Value::Time(self.window_start), Value::Time(self.window_end)];
        let key = self.key.iter().map(|value| Value::from(value.as_deref()));
        let aggregates = self.values.iter().map(|value| match *value {
            AggregateValue::Count(n) => Value::Int(i64::try_from(n).unwrap_or(i64::MAX)),
            AggregateValue::Float(Some(x)) => Value::Float(x),
            AggregateValue::Float(None) => Value::Null,
        });
        Row::new(
            Arc::clone(schema),
            bounds.into_iter().chain(key).chain(aggregates).collect(),
        )
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_typed_row_writes_the_same_json_as_the_window_row() {
        let schema = Arc::new(WindowSchema::new(
            vec!["tenant".into(), "labels.region".into()],
            vec![
                Aggregate::Count,
                Aggregate::Avg,
                Aggregate::Stddev,
                Aggregate::Quantile(950),
            ],
        ));
        let window_row = WindowRow {
            schema: Arc::clone(&schema),
            window_start: 10_000,
            window_end: 20_000,
            key: vec![Some("acme".into()), None].into_boxed_slice(),
            values: vec![
                AggregateValue::Count(3),
                AggregateValue::Float(Some(0.5)),
                AggregateValue::Float(None),
                AggregateValue::Float(Some(1e-3)),
            ],
        };
        let row_schema = Arc::new(schema.row_schema().unwrap());
        let row = window_row.to_row(&row_schema);
        assert_eq!(
            serde_json::to_string(&row).unwrap(),
            serde_json::to_string(&window_row).unwrap()
        );
        assert_eq!(row.get("count"), Some(&Value::Int(3)));
        assert_eq!(row.get("labels.region"), Some(&Value::Null));
    }

    #[test]
    fn a_key_field_listed_twice_has_no_row_schema() {
        let schema = WindowSchema::new(vec!["tenant".into(), "tenant".into()], vec![Aggregate::Count]);
        assert!(schema.row_schema().is_err());
    }
}
