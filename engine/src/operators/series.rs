//! What the per-key analytics operators (`anomaly`, `forecast`) read: points
//! of series, taken from a source's metric events or from another operator's
//! rows (e.g. a window's `avg`), and how their refusals become dead letters.
//!
//! - Events: the point is the metric's `value` at the event's `ts`; the key is
//!   a list of event fields (default `tenant`, `source`, `metric`). Events of
//!   other kinds carry no value and are passed over.
//! - Rows: the point is the numeric column `value` names (a null is refused
//!   as not a number) at the time column `time` names (default `window_end`,
//!   else `ts`: a row's latest time, so that points never precede the
//!   frontier that carries them); the key is a list of key columns (default
//!   all of the input's).

use pulse_core::dead_letter::Position;
use std::sync::Arc;

use pulse_core::row::Value;
use pulse_core::{ColumnType, DeadLetter, EventKind, EventTime, Projection, RowSchema};
use pulse_operators::series::{RefusedPoint, SeriesPoint};
use pulse_operators::window::{KeyField, KeySpec};
use timely::dataflow::operators::Concatenate;
use timely::dataflow::operators::vec::Map;
use timely::dataflow::{Scope, Stream};

use super::{InputShape, InputStream};
use crate::config::validate::{Problem, StreamType, problem};

/// The keys an operator's settings name, as written (all optional).
pub struct SeriesSettings<'a> {
    /// The numeric column of rows to read (`value`).
    pub value: Option<&'a str>,
    /// The time column of rows (`time`).
    pub time: Option<&'a str>,
    /// The key fields or columns (`key`).
    pub key: Option<&'a [String]>,
}

/// How points are read from the inputs.
#[derive(Clone, Debug, PartialEq)]
pub enum PointReader {
    /// From metric events, keyed by event fields.
    Events {
        /// The key fields.
        key: KeySpec,
    },
    /// From rows: the value column, and the time and key columns when not the defaults.
    Rows {
        /// Value column.
        value: String,
        /// Time column (default: `window_end`, else `ts`, else the first time column).
        time: Option<String>,
        /// Key columns (default: every key column).
        key: Option<Vec<String>>,
    },
}

impl PointReader {
    /// The reader of checked settings, for inputs of events or of rows.
    pub fn new(settings: &SeriesSettings<'_>, events: bool) -> Self {
        if events {
            let names = settings.key.map_or_else(
                || EVENT_KEY.iter().map(|k| (*k).to_owned()).collect(),
                <[String]>::to_vec,
            );
            let key = names.iter().filter_map(|name| name.parse().ok()).collect();
            PointReader::Events { key: KeySpec::new(key) }
        } else {
            PointReader::Rows {
                value: settings.value.unwrap_or_default().to_owned(),
                time: settings.time.map(str::to_owned),
                key: settings.key.map(<[String]>::to_vec),
            }
        }
    }
}

/// The time column rows are read at when `time` is not given.
fn default_time(schema: &RowSchema) -> Option<&str> {
    let is_time = |name: &&str| schema.column(name).is_some_and(|(_, c)| c.ty == ColumnType::Time);
    ["window_end", "ts"].into_iter().find(is_time).or_else(|| {
        schema
            .columns()
            .iter()
            .find(|c| c.ty == ColumnType::Time)
            .map(|c| c.name.as_str())
    })
}

/// Positions of the columns points are read from.
struct RowColumns {
    key: Vec<usize>,
    time: usize,
    value: usize,
}

/// Positions of the key, time and value columns in `schema` (checked before the run).
fn row_columns(schema: &RowSchema, value: &str, time: Option<&str>, key: Option<&[String]>) -> Option<RowColumns> {
    let value = schema.column(value)?.0;
    let time = schema.column(time.or_else(|| default_time(schema))?)?.0;
    let key = match key {
        Some(names) => names
            .iter()
            .map(|n| schema.column(n).map(|(i, _)| i))
            .collect::<Option<_>>()?,
        None => (0..schema.len())
            .filter(|&i| schema.columns()[i].ty == ColumnType::Key)
            .collect(),
    };
    Some(RowColumns { key, time, value })
}

/// The inputs resolved: how to read points and the names of the key columns.
#[derive(Clone, Debug, PartialEq)]
pub struct ResolvedSeries {
    /// How points are read.
    pub reader: PointReader,
    /// The key's column names, in order (the first columns of the output).
    pub key_names: Vec<String>,
}

/// Default key of points read from events.
const EVENT_KEY: [&str; 3] = ["tenant", "source", "metric"];

/// Checks the inputs and the `value`/`time`/`key` settings of operator `name`;
/// `None` (with problems) when they do not make a series.
pub fn resolve(
    name: &str,
    settings: &SeriesSettings<'_>,
    inputs: &[InputShape<'_>],
    problems: &mut Vec<Problem>,
) -> Option<ResolvedSeries> {
    let mut kinds = std::collections::BTreeSet::new();
    let mut schemas: Vec<(&InputShape<'_>, &RowSchema)> = Vec::new();
    let mut unknown = false;
    for input in inputs {
        match input.stream {
            StreamType::Events(of_input) => kinds.extend(of_input.iter().copied()),
            StreamType::Rows(schema) => schemas.push((input, schema)),
            StreamType::Unknown => unknown = true,
            StreamType::DeadLetters => problems.push(problem(
                &["operators", name, "inputs", &input.position.to_string()],
                format!("`{}` produces dead letters, which carry no series", input.name),
                "read a source's metric events or another operator's rows".to_owned(),
            )),
        }
    }
    if !kinds.is_empty() && !schemas.is_empty() {
        problems.push(problem(
            &["operators", name, "inputs"],
            format!("`{name}` reads both events and rows; its points must come from one or the other"),
            "read sources only, or operators with the same columns only".to_owned(),
        ));
        return None;
    }
    if let Some((first, schema)) = schemas.first() {
        for (input, other) in &schemas[1..] {
            if other != schema {
                problems.push(problem(
                    &["operators", name, "inputs", &input.position.to_string()],
                    format!("`{}` has other columns than `{}`", input.name, first.name),
                    "read operators whose rows have the same columns".to_owned(),
                ));
            }
        }
        return resolve_rows(name, settings, schema, problems);
    }
    if unknown && kinds.is_empty() {
        return None;
    }
    resolve_events(name, settings, &kinds, problems)
}

fn resolve_events(
    name: &str,
    settings: &SeriesSettings<'_>,
    kinds: &std::collections::BTreeSet<EventKind>,
    problems: &mut Vec<Problem>,
) -> Option<ResolvedSeries> {
    let before = problems.len();
    if !kinds.is_empty() && !kinds.contains(&EventKind::Metric) {
        let have: Vec<&str> = kinds.iter().map(|k| k.as_str()).collect();
        problems.push(problem(
            &["operators", name, "inputs"],
            format!(
                "`{name}` needs the numeric `value` of metric events, but its inputs carry only {} events",
                have.join(", ")
            ),
            "read a stream of metric events, or a window's rows with `value = \"avg\"`".to_owned(),
        ));
    }
    if let Some(value) = settings.value.filter(|v| *v != "value") {
        problems.push(problem(
            &["operators", name, "value"],
            format!("events carry their number in `value`, not `{value}`"),
            "remove `value` (it names a column of rows), or read a window's rows".to_owned(),
        ));
    }
    if let Some(time) = settings.time.filter(|t| *t != "ts") {
        problems.push(problem(
            &["operators", name, "time"],
            format!("events carry their time in `ts`, not `{time}`"),
            "remove `time` (it names a column of rows)".to_owned(),
        ));
    }
    let names: Vec<String> = match settings.key {
        Some(key) => key.to_vec(),
        None => EVENT_KEY.iter().map(|k| (*k).to_owned()).collect(),
    };
    let mut fields = Vec::new();
    for (i, field) in names.iter().enumerate() {
        let path = ["operators", name, "key", &i.to_string()];
        match field.parse::<KeyField>() {
            Ok(parsed) if fields.contains(&parsed) => problems.push(problem(
                &path,
                format!("key field `{field}` is listed twice"),
                "remove the repetition".to_owned(),
            )),
            Ok(parsed) => {
                if !kinds.is_empty() && !parsed.kinds().contains(&EventKind::Metric) {
                    problems.push(problem(
                        &path,
                        format!("metric events have no field `{field}`"),
                        "key by fields of metric events: tenant, source, metric, labels.<name>".to_owned(),
                    ));
                }
                fields.push(parsed);
            }
            Err(error) => problems.push(problem(&path, error.to_string(), None)),
        }
    }
    (problems.len() == before).then(|| ResolvedSeries {
        reader: PointReader::new(settings, true),
        key_names: names,
    })
}

fn resolve_rows(
    name: &str,
    settings: &SeriesSettings<'_>,
    schema: &RowSchema,
    problems: &mut Vec<Problem>,
) -> Option<ResolvedSeries> {
    let before = problems.len();
    let columns_of = |test: &dyn Fn(ColumnType) -> bool| {
        let names: Vec<&str> = schema
            .columns()
            .iter()
            .filter(|c| test(c.ty))
            .map(|c| c.name.as_str())
            .collect();
        if names.is_empty() {
            "none".to_owned()
        } else {
            names.join(", ")
        }
    };
    let value = match settings.value {
        None => {
            problems.push(problem(
                &["operators", name],
                format!("`{name}` reads rows, so it needs `value`: the numeric column to watch"),
                format!(
                    "add e.g. value = \"avg\" (numeric columns: {})",
                    columns_of(&|ty| ty.is_numeric())
                ),
            ));
            None
        }
        Some(value) => match schema.column(value) {
            Some((index, column)) if column.ty.is_numeric() => Some(index),
            found => {
                let message = match found {
                    Some((_, column)) => format!("column `{value}` holds {}, not numbers", column.ty),
                    None => format!("the input rows have no column `{value}`"),
                };
                problems.push(problem(
                    &["operators", name, "value"],
                    message,
                    format!("name a numeric column: {}", columns_of(&|ty| ty.is_numeric())),
                ));
                None
            }
        },
    };
    let time_name = settings.time.or_else(|| default_time(schema));
    let time = match time_name.map(|t| (t, schema.column(t))) {
        Some((_, Some((index, column)))) if column.ty == ColumnType::Time => Some(index),
        found => {
            let message = match found {
                None => "the input rows have no event-time column".to_owned(),
                Some((time, None)) => format!("the input rows have no column `{time}`"),
                Some((time, Some((_, column)))) => format!("column `{time}` holds {}, not event times", column.ty),
            };
            problems.push(problem(
                &["operators", name, "time"],
                message,
                format!(
                    "name an event-time column: {}",
                    columns_of(&|ty| ty == ColumnType::Time)
                ),
            ));
            None
        }
    };
    let names: Vec<String> = match settings.key {
        Some(key) => key.to_vec(),
        None => schema.keys().map(|c| c.name.clone()).collect(),
    };
    let mut key = Vec::new();
    for (i, column) in names.iter().enumerate() {
        let path = ["operators", name, "key", &i.to_string()];
        match schema.column(column) {
            Some((index, c)) if c.ty == ColumnType::Key => {
                if key.contains(&index) {
                    problems.push(problem(
                        &path,
                        format!("key column `{column}` is listed twice"),
                        "remove the repetition".to_owned(),
                    ));
                }
                key.push(index);
            }
            found => problems.push(problem(
                &path,
                match found {
                    Some((_, c)) => format!("column `{column}` holds {}, not a key", c.ty),
                    None => format!("the input rows have no column `{column}`"),
                },
                format!("key by key columns: {}", columns_of(&|ty| ty == ColumnType::Key)),
            )),
        }
    }
    (value.is_some() && time.is_some() && problems.len() == before).then(|| ResolvedSeries {
        reader: PointReader::new(settings, false),
        key_names: names,
    })
}

/// The parts of source events a series operator keyed by `key` reads (the
/// default key of events is tenant, source and metric).
pub fn projection(key: Option<&[String]>) -> Projection {
    let fields: Vec<KeyField> = match key {
        Some(key) => key.iter().filter_map(|k| k.parse().ok()).collect(),
        None => vec![KeyField::Source],
    };
    Projection {
        source: fields.contains(&KeyField::Source),
        labels: fields.iter().any(|field| matches!(field, KeyField::Label(_))),
    }
}

/// The output schema of operator `name`, or a problem at its `key` when a key
/// column takes the name of an output column (`columns` names a few of those).
pub fn output_schema<E: std::fmt::Display>(
    name: &str,
    schema: Result<RowSchema, E>,
    columns: &str,
    problems: &mut Vec<Problem>,
) -> Option<RowSchema> {
    schema
        .map_err(|error| {
            problems.push(problem(
                &["operators", name, "key"],
                format!("{error}: a key column has the name of an output column"),
                format!("key by other columns (the output has {columns})"),
            ))
        })
        .ok()
}

/// The points of `inputs`, read as `reader` says.
pub fn points<'scope>(
    scope: Scope<'scope, EventTime>,
    inputs: Vec<InputStream<'scope>>,
    reader: &PointReader,
) -> Stream<'scope, EventTime, Vec<SeriesPoint>> {
    let streams: Vec<_> = inputs
        .into_iter()
        .map(|input| match (input, reader.clone()) {
            (InputStream::Events(events), PointReader::Events { key }) => events.flat_map(move |event| {
                event.value().map(|value| SeriesPoint {
                    key: key.extract(&event),
                    ts: event.ts,
                    value,
                })
            }),
            (InputStream::Rows(rows), PointReader::Rows { value, time, key }) => {
                // Every row of one input shares its schema: its columns are found once.
                let mut found: Option<(Arc<RowSchema>, Option<RowColumns>)> = None;
                rows.flat_map(move |row| {
                    if found
                        .as_ref()
                        .is_none_or(|(schema, _)| !Arc::ptr_eq(schema, row.schema()))
                    {
                        let columns = row_columns(row.schema(), &value, time.as_deref(), key.as_deref());
                        found = Some((Arc::clone(row.schema()), columns));
                    }
                    let RowColumns { key, time, value } = found.as_ref()?.1.as_ref()?;
                    let values = row.values();
                    let ts = values[*time].as_time()?;
                    let key = key.iter().map(|&i| values[i].as_str().map(Box::from)).collect();
                    // A null (an undefined aggregate) is refused like NaN.
                    let value = values[*value].as_f64().unwrap_or(f64::NAN);
                    Some(SeriesPoint { key, ts, value })
                })
            }
            _ => unreachable!("validation resolved the reader from these inputs"),
        })
        .collect();
    scope.concatenate(streams)
}

/// The key of a point as row values, one per key column.
pub fn key_values(point: &SeriesPoint) -> impl Iterator<Item = Value> + '_ {
    point.key.iter().map(|part| Value::from(part.as_deref()))
}

/// Refused points as dead letters of `component`, the point as JSON in `raw`.
pub fn dead_letters<'scope>(
    component: &str,
    key_names: &[String],
    refused: Stream<'scope, EventTime, Vec<RefusedPoint>>,
) -> Stream<'scope, EventTime, Vec<DeadLetter>> {
    let (component, key_names) = (component.to_owned(), key_names.to_vec());
    refused.map(move |refused| {
        let mut raw = serde_json::Map::new();
        for (name, part) in key_names.iter().zip(refused.point.key.iter()) {
            raw.insert(name.clone(), part.as_deref().into());
        }
        raw.insert("ts".into(), refused.point.ts.into());
        // serde_json writes a non-finite float as null; the reason keeps the value.
        raw.insert("value".into(), refused.point.value.into());
        DeadLetter {
            component: component.clone(),
            reason: refused.reason,
            position: Position::Point { ts: refused.point.ts },
            raw: serde_json::Value::Object(raw).to_string(),
        }
    })
}
