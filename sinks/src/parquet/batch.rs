//! Rows to Arrow: the Arrow schema of a [`RowSchema`], and record batches of
//! rows that fit it.
//!
//! | column type | Arrow type |
//! | --- | --- |
//! | event time | `timestamp[ms, tz=UTC]` |
//! | key | `dictionary<int32, utf8>` (few distinct values, repeated on every row) |
//! | text | `utf8` |
//! | integer | `int64` |
//! | float | `float64` (NaN and infinities kept as they are) |
//! | bool | `bool` |
//!
//! Every field is nullable exactly when its column is.

use std::sync::Arc;

use arrow_array::builder::StringDictionaryBuilder;
use arrow_array::types::Int32Type;
use arrow_array::{
    ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray, TimestampMillisecondArray,
};
use arrow_schema::{ArrowError, DataType, Field, Schema, TimeUnit};
use pulse_core::row::{ColumnType, Row, RowSchema, Value};

/// The time zone of every timestamp: event times are UTC instants.
const UTC: &str = "UTC";

/// The Arrow type of a column type.
pub fn arrow_type(ty: ColumnType) -> DataType {
    match ty {
        ColumnType::Time => DataType::Timestamp(TimeUnit::Millisecond, Some(UTC.into())),
        ColumnType::Key => DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)),
        ColumnType::Text => DataType::Utf8,
        ColumnType::Int => DataType::Int64,
        ColumnType::Float => DataType::Float64,
        ColumnType::Bool => DataType::Boolean,
    }
}

/// The Arrow schema of rows of `schema`: one field per column, in order.
pub fn arrow_schema(schema: &RowSchema) -> Schema {
    Schema::new(
        schema
            .columns()
            .iter()
            .map(|column| Field::new(&column.name, arrow_type(column.ty), column.nullable))
            .collect::<Vec<_>>(),
    )
}

/// Why `row` cannot be written under `schema`, if it cannot: a value that
/// does not fit its column (a null where none is allowed, another type, an
/// event time past what a timestamp holds).
pub fn misfit(schema: &RowSchema, row: &Row) -> Option<String> {
    if row.values().len() != schema.len() {
        return Some(format!(
            "the row has {} values for {} columns",
            row.values().len(),
            schema.len()
        ));
    }
    schema.columns().iter().zip(row.values()).find_map(|(column, value)| {
        if !column.admits(value) {
            Some(format!(
                "column `{}` ({}{}) cannot hold {value:?}",
                column.name,
                column.ty,
                if column.nullable { ", nullable" } else { "" }
            ))
        } else if matches!(value, Value::Time(t) if i64::try_from(*t).is_err()) {
            Some(format!(
                "column `{}`: {value:?} is past the largest timestamp",
                column.name
            ))
        } else {
            None
        }
    })
}

/// A record batch of `rows`, which fit `row_schema` (see [`misfit`]), under
/// `schema` (its [`arrow_schema`]).
pub fn record_batch(schema: &Arc<Schema>, row_schema: &RowSchema, rows: &[Row]) -> Result<RecordBatch, ArrowError> {
    let columns: Vec<ArrayRef> = row_schema
        .columns()
        .iter()
        .enumerate()
        .map(|(i, column)| {
            let values = rows.iter().map(|row| &row.values()[i]);
            column_array(column.ty, values)
        })
        .collect();
    RecordBatch::try_new(Arc::clone(schema), columns)
}

/// One column's values as an array of its Arrow type; a value of another type is null.
fn column_array<'a>(ty: ColumnType, values: impl Iterator<Item = &'a Value>) -> ArrayRef {
    match ty {
        ColumnType::Time => Arc::new(
            values
                .map(|value| value.as_time().and_then(|t| i64::try_from(t).ok()))
                .collect::<TimestampMillisecondArray>()
                .with_timezone(UTC),
        ),
        ColumnType::Key => {
            let mut builder = StringDictionaryBuilder::<Int32Type>::new();
            for value in values {
                match value.as_str() {
                    Some(text) => builder.append_value(text),
                    None => builder.append_null(),
                }
            }
            Arc::new(builder.finish())
        }
        ColumnType::Text => Arc::new(values.map(Value::as_str).collect::<StringArray>()),
        ColumnType::Int => Arc::new(
            values
                .map(|value| match value {
                    Value::Int(n) => Some(*n),
                    _ => None,
                })
                .collect::<Int64Array>(),
        ),
        ColumnType::Float => Arc::new(
            values
                .map(|value| match value {
                    Value::Float(x) => Some(*x),
                    _ => None,
                })
                .collect::<Float64Array>(),
        ),
        ColumnType::Bool => Arc::new(
            values
                .map(|value| match value {
                    Value::Bool(b) => Some(*b),
                    _ => None,
                })
                .collect::<BooleanArray>(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use arrow_array::cast::AsArray;
    use arrow_array::{Array, DictionaryArray};
    use pulse_core::row::Column;

    use super::*;

    fn schema() -> Arc<RowSchema> {
        Arc::new(
            RowSchema::new(vec![
                Column::new("window_start", ColumnType::Time),
                Column::new("tenant", ColumnType::Key),
                Column::new("region", ColumnType::Key).nullable(),
                Column::new("count", ColumnType::Int),
                Column::new("avg", ColumnType::Float).nullable(),
                Column::new("spike", ColumnType::Bool),
                Column::new("note", ColumnType::Text).nullable(),
            ])
            .unwrap(),
        )
    }

    fn row(schema: &Arc<RowSchema>, start: u64, tenant: &str, region: Option<&str>, avg: Option<f64>) -> Row {
        Row::new(
            Arc::clone(schema),
            vec![
                Value::Time(start),
                Value::from(tenant),
                Value::from(region),
                Value::Int(3),
                avg.map_or(Value::Null, Value::Float),
                Value::Bool(avg.is_some()),
                Value::Null,
            ],
        )
    }

    #[test]
    fn rows_become_typed_columns_with_keys_as_dictionaries() {
        let schema = schema();
        let arrow = Arc::new(arrow_schema(&schema));
        assert_eq!(
            arrow.field(0).data_type(),
            &DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
        );
        assert!(!arrow.field(1).is_nullable() && arrow.field(2).is_nullable());
        let rows = [
            row(&schema, 10_000, "acme", Some("eu"), Some(0.5)),
            row(&schema, 10_000, "acme", None, None),
            row(&schema, 20_000, "globex", Some("eu"), Some(f64::NAN)),
        ];
        let batch = record_batch(&arrow, &schema, &rows).unwrap();
        assert_eq!(batch.num_rows(), 3);
        let tenants = batch
            .column(1)
            .as_any()
            .downcast_ref::<DictionaryArray<Int32Type>>()
            .unwrap();
        assert_eq!(tenants.values().len(), 2, "two distinct tenants in the dictionary");
        let regions = batch
            .column(2)
            .as_any()
            .downcast_ref::<DictionaryArray<Int32Type>>()
            .unwrap();
        assert!(regions.is_null(1));
        let averages = batch.column(4).as_primitive::<arrow_array::types::Float64Type>();
        assert_eq!((averages.value(0), averages.is_null(1)), (0.5, true));
        assert!(averages.value(2).is_nan(), "a NaN stays a NaN");
        let starts = batch
            .column(0)
            .as_primitive::<arrow_array::types::TimestampMillisecondType>();
        assert_eq!(starts.value(2), 20_000);
    }

    #[test]
    fn values_that_do_not_fit_their_column_are_named() {
        let schema = schema();
        // Rows built for a looser schema than the writer's (every column nullable).
        let loose = Arc::new(RowSchema::new(schema.columns().iter().map(|c| c.clone().nullable()).collect()).unwrap());
        let mut values = row(&schema, 1, "acme", None, None).values().to_vec();
        values[1] = Value::Null;
        let reason = misfit(&schema, &Row::new(Arc::clone(&loose), values.clone())).unwrap_or_default();
        assert!(reason.contains("`tenant`"), "{reason}");
        values[1] = Value::from("acme");
        values[0] = Value::Time(u64::MAX);
        let reason = misfit(&schema, &Row::new(Arc::clone(&loose), values)).unwrap_or_default();
        assert!(reason.contains("largest timestamp"), "{reason}");
        assert_eq!(misfit(&schema, &row(&schema, 1, "acme", None, Some(1.0))), None);
    }
}
