//! Reading a model's input features from rows: [`FeatureReader`].
//!
//! A feature is a numeric column (`avg`, `count`) or a one-hot test of a key
//! or text column (`labels.region=eu`: 1 when the column holds `eu`, else 0).
//! A value that is null or not a finite `f32` is missing; the
//! [`MissingPolicy`] says whether the row is refused (a dead letter with the
//! reason) or the feature's declared default is used.

use pulse_core::row::{ColumnType, Row, RowSchema, Value};

use super::OnnxError;

/// What to do with a row whose feature is missing.
#[derive(Clone, Debug, PartialEq)]
pub enum MissingPolicy {
    /// Refuse the row (dead letter, with the feature's name).
    DeadLetter,
    /// Use these defaults, one per feature in order.
    Impute(Vec<f32>),
}

/// Where one feature comes from.
#[derive(Clone, Debug, PartialEq)]
enum Feature {
    /// A numeric column.
    Column(usize),
    /// 1 when the column holds the value, else 0.
    OneHot { column: usize, value: Box<str> },
}

/// Reads features of rows of one schema.
#[derive(Clone, Debug, PartialEq)]
pub struct FeatureReader {
    names: Vec<String>,
    features: Vec<Feature>,
    missing: MissingPolicy,
}

impl FeatureReader {
    /// A reader of the features `names` from rows of `schema`.
    ///
    /// # Errors
    /// [`OnnxError::Feature`] naming the first feature that is not a numeric
    /// column or a one-hot test of a key or text column, or a default count
    /// that differs from the feature count.
    ///
    /// # Examples
    /// ```
    /// use std::sync::Arc;
    /// use pulse_core::row::{Column, ColumnType, Row, RowSchema, Value};
    /// use pulse_operators::onnx::{FeatureReader, MissingPolicy};
    ///
    /// let schema = Arc::new(RowSchema::new(vec![
    ///     Column::new("region", ColumnType::Key),
    ///     Column::new("avg", ColumnType::Float).nullable(),
    /// ]).unwrap());
    /// let names = ["avg".to_owned(), "region=eu".to_owned()];
    /// let reader = FeatureReader::new(&schema, &names, MissingPolicy::DeadLetter).unwrap();
    /// let mut features = Vec::new();
    /// let row = Row::new(schema.clone(), vec![Value::from("eu"), Value::Float(2.5)]);
    /// reader.read(&row, &mut features).unwrap();
    /// assert_eq!(features, [2.5, 1.0]);
    /// let row = Row::new(schema, vec![Value::from("us"), Value::Null]);
    /// assert_eq!(reader.read(&row, &mut features).unwrap_err(), "feature `avg` is missing (null)");
    /// assert_eq!(features.len(), 2, "a refused row adds nothing");
    /// ```
    pub fn new(schema: &RowSchema, names: &[String], missing: MissingPolicy) -> Result<Self, OnnxError> {
        if let MissingPolicy::Impute(defaults) = &missing
            && defaults.len() != names.len()
        {
            return Err(OnnxError::Feature(format!(
                "{} defaults for {} features",
                defaults.len(),
                names.len()
            )));
        }
        let mut features = Vec::with_capacity(names.len());
        for name in names {
            let feature = match name.split_once('=') {
                Some((column, value)) => match schema.column(column) {
                    Some((index, c)) if matches!(c.ty, ColumnType::Key | ColumnType::Text) => Feature::OneHot {
                        column: index,
                        value: value.into(),
                    },
                    found => return Err(not_a_feature(name, column, found.map(|(_, c)| c.ty), schema)),
                },
                None => match schema.column(name) {
                    Some((index, c)) if c.ty.is_numeric() => Feature::Column(index),
                    found => return Err(not_a_feature(name, name, found.map(|(_, c)| c.ty), schema)),
                },
            };
            features.push(feature);
        }
        Ok(Self {
            names: names.to_vec(),
            features,
            missing,
        })
    }

    /// How many features a row gives.
    pub fn width(&self) -> usize {
        self.features.len()
    }

    /// Appends the features of `row` to `out`; on a missing feature under
    /// [`MissingPolicy::DeadLetter`] appends nothing and says which.
    ///
    /// # Errors
    /// The reason the row is refused.
    pub fn read(&self, row: &Row, out: &mut Vec<f32>) -> Result<(), String> {
        let start = out.len();
        let values = row.values();
        for (i, feature) in self.features.iter().enumerate() {
            let value = match feature {
                Feature::OneHot { column, value } => match &values[*column] {
                    Value::Str(s) if **s == **value => Ok(1.0),
                    _ => Ok(0.0),
                },
                Feature::Column(column) => match &values[*column] {
                    Value::Null => Err("null"),
                    value => {
                        let x = value.as_f64().unwrap_or(f64::NAN) as f32;
                        if x.is_finite() {
                            Ok(x)
                        } else {
                            Err("not a finite 32-bit float")
                        }
                    }
                },
            };
            match (value, &self.missing) {
                (Ok(x), _) => out.push(x),
                (Err(_), MissingPolicy::Impute(defaults)) => out.push(defaults[i]),
                (Err(why), MissingPolicy::DeadLetter) => {
                    out.truncate(start);
                    return Err(format!("feature `{}` is missing ({why})", self.names[i]));
                }
            }
        }
        Ok(())
    }
}

fn not_a_feature(name: &str, column: &str, found: Option<ColumnType>, schema: &RowSchema) -> OnnxError {
    let numeric: Vec<&str> = schema
        .columns()
        .iter()
        .filter(|c| c.ty.is_numeric())
        .map(|c| c.name.as_str())
        .collect();
    let why = match found {
        None => format!("the rows have no column `{column}`"),
        Some(ty) if name.contains('=') => {
            format!("column `{column}` holds {ty}; a one-hot feature tests a key or text column")
        }
        Some(ty) => format!("column `{column}` holds {ty}, not numbers"),
    };
    OnnxError::Feature(format!(
        "feature `{name}`: {why} (numeric columns: {})",
        numeric.join(", ")
    ))
}
