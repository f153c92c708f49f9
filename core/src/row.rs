//! Rows between operators, and into sinks.
//!
//! Every operator output is a stream of [`Row`]s whose [`RowSchema`] is known
//! when the pipeline is built and shared (behind an `Arc`) by all rows of that
//! output: the names and types of its columns. An operator checks the schemas
//! of its inputs before anything runs and declares the schema of its output;
//! a sink turns rows of any schema into its format (a JSON line, database
//! columns, a WebSocket message) from the schema alone. So adding an operator
//! never touches a sink, and a sink never needs to know which operator wrote.
//!
//! A row serialises flat, in column order: `{"window_start":…,"tenant":"acme",…}`,
//! times as epoch milliseconds, a float that is not finite as `null`.
//!
//! # Examples
//!
//! ```
//! use std::sync::Arc;
//! use pulse_core::row::{Column, ColumnType, Row, RowSchema, Value};
//!
//! let schema = Arc::new(
//!     RowSchema::new(vec![
//!         Column::new("ts", ColumnType::Time),
//!         Column::new("metric", ColumnType::Key).nullable(),
//!         Column::new("score", ColumnType::Float),
//!     ])
//!     .unwrap(),
//! );
//! let row = Row::new(Arc::clone(&schema), vec![Value::Time(1_000), Value::from("cpu"), Value::Float(0.25)]);
//! assert_eq!(row.get("score").and_then(Value::as_f64), Some(0.25));
//! assert_eq!(serde_json::to_string(&row).unwrap(), r#"{"ts":1000,"metric":"cpu","score":0.25}"#);
//! ```

use std::fmt;
use std::sync::Arc;

use serde::ser::{Serialize, SerializeMap, Serializer};

use crate::EventTime;

/// What a column holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ColumnType {
    /// An event time, epoch milliseconds (a window's bounds, a point's time).
    Time,
    /// A string that identifies a series: what rows are grouped and routed by
    /// (`tenant`, `metric`, `labels.region`, …).
    Key,
    /// Any other string (an explanation, a severity).
    Text,
    /// A signed integer (a count).
    Int,
    /// A floating-point number.
    Float,
    /// A boolean.
    Bool,
}

impl ColumnType {
    /// Whether values of this type are numbers (`Int` or `Float`).
    pub fn is_numeric(self) -> bool {
        matches!(self, ColumnType::Int | ColumnType::Float)
    }
}

impl fmt::Display for ColumnType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ColumnType::Time => "event time",
            ColumnType::Key => "key",
            ColumnType::Text => "text",
            ColumnType::Int => "integer",
            ColumnType::Float => "float",
            ColumnType::Bool => "bool",
        })
    }
}

/// One named, typed column.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Column {
    /// The name rows carry the value under.
    pub name: String,
    /// What it holds.
    pub ty: ColumnType,
    /// Whether a row may hold `null` there.
    pub nullable: bool,
}

impl Column {
    /// A column `name` of type `ty` that always has a value.
    pub fn new(name: impl Into<String>, ty: ColumnType) -> Self {
        Self {
            name: name.into(),
            ty,
            nullable: false,
        }
    }

    /// The same column, allowed to be `null`.
    pub fn nullable(mut self) -> Self {
        self.nullable = true;
        self
    }

    /// Whether `value` may stand in this column.
    pub fn admits(&self, value: &Value) -> bool {
        match value {
            Value::Null => self.nullable,
            Value::Time(_) => self.ty == ColumnType::Time,
            Value::Str(_) => matches!(self.ty, ColumnType::Key | ColumnType::Text),
            Value::Int(_) => self.ty == ColumnType::Int,
            Value::Float(_) => self.ty == ColumnType::Float,
            Value::Bool(_) => self.ty == ColumnType::Bool,
        }
    }
}

/// Why a schema cannot be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchemaError {
    /// Two columns share a name.
    #[error("column `{0}` appears twice")]
    DuplicateColumn(String),
}

/// The columns of every row of one output, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RowSchema {
    columns: Vec<Column>,
}

impl RowSchema {
    /// A schema of `columns`; an error when two share a name.
    pub fn new(columns: Vec<Column>) -> Result<Self, SchemaError> {
        for (i, column) in columns.iter().enumerate() {
            if columns[..i].iter().any(|c| c.name == column.name) {
                return Err(SchemaError::DuplicateColumn(column.name.clone()));
            }
        }
        Ok(Self { columns })
    }

    /// The columns, in order.
    pub fn columns(&self) -> &[Column] {
        &self.columns
    }

    /// The column called `name` and its position.
    pub fn column(&self, name: &str) -> Option<(usize, &Column)> {
        self.columns.iter().enumerate().find(|(_, c)| c.name == name)
    }

    /// The key columns (what identifies a series), in order.
    pub fn keys(&self) -> impl Iterator<Item = &Column> {
        self.columns.iter().filter(|c| c.ty == ColumnType::Key)
    }

    /// The number of columns.
    pub fn len(&self) -> usize {
        self.columns.len()
    }

    /// Whether there are no columns.
    pub fn is_empty(&self) -> bool {
        self.columns.is_empty()
    }
}

/// One value of a row.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// No value (a nullable column).
    Null,
    /// An event time, epoch milliseconds.
    Time(EventTime),
    /// A string (a key or text column).
    Str(Box<str>),
    /// An integer.
    Int(i64),
    /// A float; written as `null` when it is not finite.
    Float(f64),
    /// A boolean.
    Bool(bool),
}

impl Value {
    /// The value as a float: numbers as they are, anything else `None`.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::Int(n) => Some(n as f64),
            Value::Float(x) => Some(x),
            _ => None,
        }
    }

    /// The value as a string, for strings.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The value as an event time, for times.
    pub fn as_time(&self) -> Option<EventTime> {
        match *self {
            Value::Time(t) => Some(t),
            _ => None,
        }
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::Str(s.into())
    }
}

impl From<Option<&str>> for Value {
    fn from(s: Option<&str>) -> Self {
        s.map_or(Value::Null, Value::from)
    }
}

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::Null => serializer.serialize_unit(),
            Value::Time(t) => serializer.serialize_u64(*t),
            Value::Str(s) => serializer.serialize_str(s),
            Value::Int(n) => serializer.serialize_i64(*n),
            Value::Float(x) if x.is_finite() => serializer.serialize_f64(*x),
            Value::Float(_) => serializer.serialize_unit(),
            Value::Bool(b) => serializer.serialize_bool(*b),
        }
    }
}

/// One row: values in the order of its schema's columns.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    schema: Arc<RowSchema>,
    values: Box<[Value]>,
}

impl Row {
    /// A row of `schema` holding `values`, one per column in order.
    ///
    /// # Panics
    /// When `values` does not fit the schema (a count or a type that differs):
    /// the operator that built the row broke its declared schema, a bug.
    pub fn new(schema: Arc<RowSchema>, values: Vec<Value>) -> Self {
        assert_eq!(
            values.len(),
            schema.len(),
            "a row of {} values for {} columns",
            values.len(),
            schema.len()
        );
        debug_assert!(
            schema.columns.iter().zip(&values).all(|(c, v)| c.admits(v)),
            "a row does not fit its schema: {values:?} for {schema:?}"
        );
        Self {
            schema,
            values: values.into_boxed_slice(),
        }
    }

    /// The schema shared by the rows of this row's output.
    pub fn schema(&self) -> &Arc<RowSchema> {
        &self.schema
    }

    /// The values, in column order.
    pub fn values(&self) -> &[Value] {
        &self.values
    }

    /// The value of column `name`.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.schema.column(name).map(|(i, _)| &self.values[i])
    }

    /// Each column with its value, in order.
    pub fn fields(&self) -> impl Iterator<Item = (&Column, &Value)> {
        self.schema.columns.iter().zip(self.values.iter())
    }
}

impl Serialize for Row {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.values.len()))?;
        for (column, value) in self.fields() {
            map.serialize_entry(&column.name, value)?;
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> Arc<RowSchema> {
        Arc::new(
            RowSchema::new(vec![
                Column::new("window_start", ColumnType::Time),
                Column::new("tenant", ColumnType::Key).nullable(),
                Column::new("count", ColumnType::Int),
                Column::new("avg", ColumnType::Float).nullable(),
                Column::new("is_anomaly", ColumnType::Bool),
                Column::new("explanation", ColumnType::Text),
            ])
            .unwrap(),
        )
    }

    #[test]
    fn rows_serialise_flat_in_column_order_with_undefined_floats_as_null() {
        let row = Row::new(
            schema(),
            vec![
                Value::Time(10_000),
                Value::Null,
                Value::Int(3),
                Value::Float(f64::NAN),
                Value::Bool(true),
                Value::from("cpu 0.97 is high"),
            ],
        );
        assert_eq!(
            serde_json::to_string(&row).unwrap(),
            r#"{"window_start":10000,"tenant":null,"count":3,"avg":null,"is_anomaly":true,"explanation":"cpu 0.97 is high"}"#
        );
        assert_eq!(row.get("count").and_then(Value::as_f64), Some(3.0));
        assert_eq!(row.get("window_start").and_then(Value::as_time), Some(10_000));
        assert_eq!(row.get("missing"), None);
    }

    #[test]
    fn columns_admit_their_type_and_null_only_when_nullable() {
        let schema = schema();
        let (_, tenant) = schema.column("tenant").unwrap();
        assert!(tenant.admits(&Value::Null) && tenant.admits(&Value::from("acme")));
        assert!(!tenant.admits(&Value::Int(1)));
        let (_, count) = schema.column("count").unwrap();
        assert!(!count.admits(&Value::Null) && !count.admits(&Value::Float(1.0)));
        assert_eq!(schema.keys().map(|c| c.name.as_str()).collect::<Vec<_>>(), ["tenant"]);
    }

    #[test]
    fn a_schema_refuses_duplicate_names() {
        let duplicate = RowSchema::new(vec![
            Column::new("a", ColumnType::Int),
            Column::new("a", ColumnType::Float),
        ]);
        assert_eq!(duplicate, Err(SchemaError::DuplicateColumn("a".into())));
    }

    #[test]
    #[should_panic(expected = "a row of 1 values for 6 columns")]
    fn a_row_of_the_wrong_width_is_a_bug() {
        Row::new(schema(), vec![Value::Null]);
    }
}
