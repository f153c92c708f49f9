//! Rows of the incidents operator as the sinks read them: how to tell one
//! from other rows (by its columns) and its `causes` column (JSON) parsed and
//! checked, for the sinks that store causes in their own shape (graph edges,
//! ClickHouse arrays).

use pulse_core::ResourceRef;
use pulse_core::row::{Row, Value};
use serde::Deserialize;

/// Columns an incident row must have (the rest are optional).
pub const REQUIRED_COLUMNS: [&str; 6] = [
    "incident_id",
    "opened_at",
    "symptom_kind",
    "symptom_namespace",
    "symptom_name",
    "causes",
];

/// One ranked cause of an incident, as the `causes` column lists them
/// (best first).
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct IncidentCause {
    /// The resource suspected.
    pub resource: ResourceRef,
    /// Event time of its signal, epoch ms.
    pub event_ts: u64,
    /// The signal's reason (`OOMKilled`, …).
    pub reason: String,
    /// Confidence, 0 to 1.
    pub confidence: f64,
    /// Why it ranks where it does.
    pub explanation: String,
}

/// Whether `row` is an incidents operator's row.
///
/// # Examples
/// ```
/// use std::sync::Arc;
/// use pulse_core::row::{Column, ColumnType, Row, RowSchema, Value};
/// use pulse_sinks::incident_row::is_incident_row;
///
/// let schema = RowSchema::new(vec![Column::new("window_start", ColumnType::Time)]).unwrap();
/// assert!(!is_incident_row(&Row::new(Arc::new(schema), vec![Value::Time(0)])));
/// ```
pub fn is_incident_row(row: &Row) -> bool {
    REQUIRED_COLUMNS.iter().all(|name| row.schema().column(name).is_some())
}

/// The text of column `name` (empty when absent, null or not text).
pub fn text<'a>(row: &'a Row, name: &str) -> &'a str {
    row.get(name).and_then(Value::as_str).unwrap_or_default()
}

/// The ranked causes of an incident row; an error (a dead letter's reason)
/// when its `causes` column is not a list of causes or holds a confidence
/// outside 0 to 1.
///
/// # Examples
/// ```
/// use pulse_sinks::incident_row::parse_causes;
///
/// let causes = parse_causes(r#"[{"resource":{"kind":"Pod","namespace":"prod","name":"db-0"},
///     "event_ts":5,"reason":"OOMKilled","confidence":0.8,"explanation":"first"}]"#).unwrap();
/// assert_eq!(causes[0].resource.name, "db-0");
/// assert!(parse_causes("[{").is_err());
/// ```
pub fn parse_causes(causes: &str) -> Result<Vec<IncidentCause>, String> {
    let causes: Vec<IncidentCause> =
        serde_json::from_str(causes).map_err(|error| format!("`causes` is not a list of causes: {error}"))?;
    if let Some(bad) = causes.iter().find(|cause| !(0.0..=1.0).contains(&cause.confidence)) {
        return Err(format!("a cause's confidence {} is not within 0 and 1", bad.confidence));
    }
    Ok(causes)
}
