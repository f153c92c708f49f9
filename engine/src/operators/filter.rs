//! `type = "filter"`: passes on the rows of its input that meet every
//! condition of its `where` table and drops the rest, as Vector's `filter`
//! transform or Flink's `DataStream::filter` do.
//!
//! ```toml
//! [operators.alerts]
//! type = "filter"
//! inputs = ["host_anomalies"]
//! where = { is_anomaly = true, severity = ["warning", "critical"] }
//! ```
//!
//! Each key of `where` names a column of the input's rows; its value is the
//! value the column must hold (a string, integer, float or boolean of the
//! column's type) or an array of values it may hold. A null never matches.
//! Its rows have its input's schema, at the same times, so a filter changes
//! neither a sink's format nor when windows are delivered. It reads one
//! operator's rows (not events: a source's events are filtered by the
//! windows' keys already). Rows passed and dropped are counted
//! (`pulse_filter_passed_rows_total`, `pulse_filter_dropped_rows_total`).

use std::collections::BTreeMap;

use pulse_core::Projection;
use pulse_core::row::{ColumnType, Row, RowSchema, Value};
use serde::Deserialize;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::operator::Operator as _;

use super::{BuildContext, InputShape, InputStream, Operator, OperatorStreams};
use crate::config::EngineConfig;
use crate::config::validate::{Problem, StreamType, problem};

/// The settings of a filter operator, as written in a pipeline file.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterOperator {
    /// The operator whose rows are filtered (exactly one).
    pub inputs: Vec<String>,
    /// Column → the value it must hold, or the values it may hold; a row
    /// passes when every column matches.
    #[serde(rename = "where")]
    pub conditions: BTreeMap<String, Condition>,
}

/// What one column of a passing row holds.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum Condition {
    /// Exactly this value.
    Is(Literal),
    /// One of these values.
    OneOf(Vec<Literal>),
}

/// A value written in a pipeline file.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum Literal {
    /// `true` or `false`.
    Bool(bool),
    /// A whole number (also matches an event-time or float column holding it).
    Int(i64),
    /// A number with a fraction.
    Float(f64),
    /// A string (key or text columns).
    Text(String),
}

impl Literal {
    /// Whether a column of type `ty` can hold this value.
    fn fits(&self, ty: ColumnType) -> bool {
        match self {
            Literal::Bool(_) => ty == ColumnType::Bool,
            Literal::Int(n) => ty.is_numeric() || (ty == ColumnType::Time && *n >= 0),
            Literal::Float(_) => ty == ColumnType::Float,
            Literal::Text(_) => matches!(ty, ColumnType::Key | ColumnType::Text),
        }
    }

    /// Whether `value` equals this literal.
    fn matches(&self, value: &Value) -> bool {
        match (self, value) {
            (Literal::Bool(a), Value::Bool(b)) => a == b,
            (Literal::Int(a), Value::Int(b)) => a == b,
            (Literal::Int(a), Value::Time(b)) => u64::try_from(*a) == Ok(*b),
            (Literal::Int(a), Value::Float(b)) => (*a as f64) == *b,
            (Literal::Float(a), Value::Float(b)) => a == b,
            (Literal::Text(a), Value::Str(b)) => a.as_str() == &**b,
            _ => false,
        }
    }

    fn describe(&self) -> &'static str {
        match self {
            Literal::Bool(_) => "a boolean",
            Literal::Int(_) => "an integer",
            Literal::Float(_) => "a float",
            Literal::Text(_) => "a string",
        }
    }
}

impl Condition {
    fn literals(&self) -> &[Literal] {
        match self {
            Condition::Is(literal) => std::slice::from_ref(literal),
            Condition::OneOf(literals) => literals,
        }
    }
}

/// The conditions resolved against a schema: (column index, allowed values).
#[derive(Clone, Debug)]
pub struct RowPredicate {
    columns: Vec<(usize, Vec<Literal>)>,
}

impl RowPredicate {
    /// Resolves `conditions` against `schema`; the error names the first
    /// column that is missing or whose values cannot match, and why.
    ///
    /// # Examples
    /// ```
    /// use std::sync::Arc;
    /// use pulse::operators::filter::{Condition, Literal, RowPredicate};
    /// use pulse_core::row::{Column, ColumnType, Row, RowSchema, Value};
    ///
    /// let schema = Arc::new(RowSchema::new(vec![
    ///     Column::new("metric", ColumnType::Key),
    ///     Column::new("is_anomaly", ColumnType::Bool),
    /// ]).unwrap());
    /// let conditions = [("is_anomaly".to_owned(), Condition::Is(Literal::Bool(true)))].into();
    /// let only_anomalies = RowPredicate::resolve(&conditions, &schema).unwrap();
    /// let row = |flag| Row::new(Arc::clone(&schema), vec![Value::from("cpu"), Value::Bool(flag)]);
    /// assert!(only_anomalies.accepts(&row(true)));
    /// assert!(!only_anomalies.accepts(&row(false)));
    /// ```
    pub fn resolve(conditions: &BTreeMap<String, Condition>, schema: &RowSchema) -> Result<Self, (String, String)> {
        let mut columns = Vec::new();
        for (name, condition) in conditions {
            let Some((index, column)) = schema.column(name) else {
                let names: Vec<&str> = schema.columns().iter().map(|c| c.name.as_str()).collect();
                return Err((
                    name.clone(),
                    format!("its input has no column `{name}` (it has {})", names.join(", ")),
                ));
            };
            let literals = condition.literals();
            if literals.is_empty() {
                return Err((name.clone(), format!("`{name} = []` would drop every row")));
            }
            if let Some(misfit) = literals.iter().find(|literal| !literal.fits(column.ty)) {
                return Err((
                    name.clone(),
                    format!(
                        "`{name}` is a {} column, and {} never equals one",
                        column.ty,
                        misfit.describe()
                    ),
                ));
            }
            columns.push((index, literals.to_vec()));
        }
        Ok(Self { columns })
    }

    /// Whether `row` meets every condition.
    pub fn accepts(&self, row: &Row) -> bool {
        let values = row.values();
        self.columns
            .iter()
            .all(|(index, allowed)| allowed.iter().any(|literal| literal.matches(&values[*index])))
    }
}

impl Operator for FilterOperator {
    fn inputs(&self) -> &[String] {
        &self.inputs
    }

    fn check(
        &self,
        name: &str,
        _engine: &EngineConfig,
        inputs: &[InputShape<'_>],
        problems: &mut Vec<Problem>,
    ) -> Option<RowSchema> {
        if self.inputs.len() != 1 {
            problems.push(problem(
                &["operators", name, "inputs"],
                format!("a filter reads exactly one operator, not {}", self.inputs.len()),
                "use one filter per input".to_owned(),
            ));
            return None;
        }
        if self.conditions.is_empty() {
            problems.push(problem(
                &["operators", name, "where"],
                "`where` is empty: the filter would pass every row".into(),
                "name a column and its value, e.g. where = { is_anomaly = true }".to_owned(),
            ));
        }
        let input = inputs.first()?;
        let schema = match input.stream {
            StreamType::Rows(schema) => schema,
            StreamType::Unknown => return None,
            other => {
                problems.push(problem(
                    &["operators", name, "inputs", "0"],
                    format!(
                        "`{}` produces {}, but a filter reads an operator's rows",
                        input.name,
                        other.describe()
                    ),
                    "read an operator (a window, anomaly or forecast)".to_owned(),
                ));
                return None;
            }
        };
        match RowPredicate::resolve(&self.conditions, schema) {
            Ok(_) => Some(schema.as_ref().clone()),
            Err((column, message)) => {
                problems.push(problem(
                    &["operators", name, "where", &column],
                    message,
                    "name a column of the input with a value of its type".to_owned(),
                ));
                None
            }
        }
    }

    fn projection(&self) -> Projection {
        Projection::NONE
    }

    fn build<'scope>(&self, context: BuildContext<'_, 'scope>) -> OperatorStreams<'scope> {
        let predicate = RowPredicate::resolve(&self.conditions, &context.output)
            .unwrap_or_else(|(column, message)| panic!("a validated filter resolves: `{column}`: {message}"));
        let Some(InputStream::Rows(rows)) = context.inputs.into_iter().next() else {
            unreachable!("validation lets a filter read one operator's rows")
        };
        let labels = [("component", context.name.to_owned())];
        let passed = metrics::counter!("pulse_filter_passed_rows_total", &labels);
        let dropped = metrics::counter!("pulse_filter_dropped_rows_total", &labels);
        let rows = rows.unary(Pipeline, context.name, move |_, _| {
            move |input, output| {
                input.for_each_stamp(|time, batches| {
                    let mut session = output.session(&time);
                    for batch in batches {
                        let before = batch.len();
                        batch.retain(|row| predicate.accepts(row));
                        passed.increment(batch.len() as u64);
                        dropped.increment((before - batch.len()) as u64);
                        session.give_container(batch);
                    }
                });
            }
        });
        OperatorStreams {
            rows,
            dead_letters: None,
        }
    }
}
