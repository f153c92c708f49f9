//! The `incidents` table: one row per incident, its ranked causes as
//! parallel arrays (so `ARRAY JOIN` lists them, on ClickHouse 18.16 too,
//! which has no JSON functions to read the operator's `causes` text).
//!
//! Ordered by `(tenant, operator, incident_id)` in a `ReplacingMergeTree`: a
//! later report of the same incident (a replay, a re-ranking) replaces the
//! earlier one once merged, and `SELECT … FINAL` shows the last one written.

use clickhouse::Row as ClickHouseRow;
use pulse_core::Row;
use pulse_core::row::Value;
use serde::Serialize;

use super::tables::{RowError, checked, fnv1a, seconds};
use crate::incident_row::{is_incident_row, parse_causes, text};

/// `CREATE TABLE IF NOT EXISTS` of the `incidents` table in `database`.
pub fn ddl(database: &str) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS `{database}`.`incidents` (\
         tenant String, operator String, incident_id String, \
         opened_at DateTime, opened_ms Int64, closed_ms Nullable(Int64), \
         symptom_kind String, symptom_namespace String, symptom_name String, symptom_reason String, \
         top_cause String, top_confidence Float64, \
         cause_kind Array(String), cause_namespace Array(String), cause_name Array(String), \
         cause_reason Array(String), cause_event_ms Array(Int64), cause_confidence Array(Float64), \
         cause_explanation Array(String), row_id UInt64) \
         ENGINE = ReplacingMergeTree() PARTITION BY toYYYYMM(opened_at) \
         ORDER BY (tenant, operator, incident_id)"
    )
}

/// A row of `incidents`.
#[derive(Debug, Clone, PartialEq, ClickHouseRow, Serialize)]
pub struct IncidentRow {
    /// The tenant.
    pub tenant: String,
    /// The operator that reported it.
    pub operator: String,
    /// The incident's id.
    pub incident_id: String,
    /// When its first error happened, seconds.
    pub opened_at: u32,
    /// The same, epoch ms.
    pub opened_ms: i64,
    /// When it closed, epoch ms (null while open).
    pub closed_ms: Option<i64>,
    /// The symptom: the resource whose error opened it …
    pub symptom_kind: String,
    /// … its namespace …
    pub symptom_namespace: String,
    /// … its name …
    pub symptom_name: String,
    /// … and that error's reason.
    pub symptom_reason: String,
    /// The best cause, `Kind/namespace/name` (empty without one).
    pub top_cause: String,
    /// Its confidence (NaN without one).
    pub top_confidence: f64,
    /// The causes, best first: resource kinds …
    pub cause_kind: Vec<String>,
    /// … namespaces …
    pub cause_namespace: Vec<String>,
    /// … names …
    pub cause_name: Vec<String>,
    /// … the reasons of their signals …
    pub cause_reason: Vec<String>,
    /// … the signals' event times (ms) …
    pub cause_event_ms: Vec<i64>,
    /// … confidences (0 to 1) …
    pub cause_confidence: Vec<f64>,
    /// … and explanations.
    pub cause_explanation: Vec<String>,
    /// Deterministic identity: a hash of tenant, operator and incident id.
    pub row_id: u64,
}

impl IncidentRow {
    /// The table row of an incidents operator's `row`, written by `operator`.
    pub fn from_row(operator: &str, row: &Row, max_string_bytes: usize) -> Result<Self, RowError> {
        if !is_incident_row(row) {
            return Err(RowError::Incident(
                "the incidents table takes rows of an incidents operator only".to_owned(),
            ));
        }
        let field = |name: &str| checked(name, text(row, name), max_string_bytes);
        let opened = row.get("opened_at").and_then(Value::as_time).ok_or(RowError::NoTime)?;
        let closed = row.get("closed_at").and_then(Value::as_time);
        if let Some(closed) = closed {
            seconds(closed)?;
        }
        let causes = parse_causes(text(row, "causes")).map_err(RowError::Incident)?;
        let mut out = IncidentRow {
            tenant: field("tenant")?,
            operator: operator.to_owned(),
            incident_id: field("incident_id")?,
            opened_at: seconds(opened)?,
            opened_ms: opened as i64,
            closed_ms: closed.map(|t| t as i64),
            symptom_kind: field("symptom_kind")?,
            symptom_namespace: field("symptom_namespace")?,
            symptom_name: field("symptom_name")?,
            symptom_reason: field("symptom_reason")?,
            top_cause: field("top_cause")?,
            top_confidence: row.get("top_confidence").and_then(Value::as_f64).unwrap_or(f64::NAN),
            cause_kind: Vec::with_capacity(causes.len()),
            cause_namespace: Vec::with_capacity(causes.len()),
            cause_name: Vec::with_capacity(causes.len()),
            cause_reason: Vec::with_capacity(causes.len()),
            cause_event_ms: Vec::with_capacity(causes.len()),
            cause_confidence: Vec::with_capacity(causes.len()),
            cause_explanation: Vec::with_capacity(causes.len()),
            row_id: 0,
        };
        if out.incident_id.is_empty() {
            return Err(RowError::Incident(
                "the incident row has an empty `incident_id`".to_owned(),
            ));
        }
        for cause in causes {
            let event_ms = i64::try_from(cause.event_ts).map_err(|_| RowError::TimeOutOfRange(cause.event_ts))?;
            out.cause_kind
                .push(checked("causes", &cause.resource.kind, max_string_bytes)?);
            out.cause_namespace
                .push(checked("causes", &cause.resource.namespace, max_string_bytes)?);
            out.cause_name
                .push(checked("causes", &cause.resource.name, max_string_bytes)?);
            out.cause_reason
                .push(checked("causes", &cause.reason, max_string_bytes)?);
            out.cause_event_ms.push(event_ms);
            out.cause_confidence.push(cause.confidence);
            out.cause_explanation
                .push(checked("causes", &cause.explanation, max_string_bytes)?);
        }
        out.row_id = fnv1a(&[out.tenant.as_bytes(), operator.as_bytes(), out.incident_id.as_bytes()]);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use pulse_core::{Column, ColumnType, RowSchema};

    use super::*;

    fn incident(causes: &str, closed: Option<u64>) -> Row {
        let schema = RowSchema::new(vec![
            Column::new("tenant", ColumnType::Key),
            Column::new("incident_id", ColumnType::Key),
            Column::new("opened_at", ColumnType::Time),
            Column::new("closed_at", ColumnType::Time).nullable(),
            Column::new("symptom_kind", ColumnType::Text),
            Column::new("symptom_namespace", ColumnType::Text),
            Column::new("symptom_name", ColumnType::Text),
            Column::new("symptom_reason", ColumnType::Text),
            Column::new("top_cause", ColumnType::Text).nullable(),
            Column::new("top_confidence", ColumnType::Float).nullable(),
            Column::new("causes", ColumnType::Text),
        ])
        .unwrap();
        Row::new(
            Arc::new(schema),
            vec![
                Value::from("acme"),
                Value::from("inc-1"),
                Value::Time(1_700_000_000_000),
                closed.map_or(Value::Null, Value::Time),
                Value::from("Pod"),
                Value::from("prod"),
                Value::from("web-1"),
                Value::from("BackOff"),
                Value::Null,
                Value::Null,
                Value::from(causes),
            ],
        )
    }

    #[test]
    fn causes_become_parallel_arrays_best_first() {
        let causes = r#"[{"resource":{"kind":"Pod","namespace":"prod","name":"db-0"},"event_ts":9,"reason":"OOMKilled","confidence":0.8,"explanation":"a"},
            {"resource":{"kind":"Node","name":"n1"},"event_ts":7,"reason":"NotReady","confidence":0.4,"explanation":"b"}]"#;
        let row = IncidentRow::from_row("rca", &incident(causes, Some(1_700_000_060_000)), 64).unwrap();
        assert_eq!(row.cause_name, ["db-0", "n1"]);
        assert_eq!(row.cause_namespace, ["prod", ""]);
        assert_eq!(row.cause_confidence, [0.8, 0.4]);
        assert_eq!(row.cause_event_ms, [9, 7]);
        assert_eq!((row.opened_at, row.closed_ms), (1_700_000_000, Some(1_700_000_060_000)));
        assert_eq!(row.top_cause, "", "null as empty");
        assert!(row.top_confidence.is_nan(), "null as NaN");
        let again = IncidentRow::from_row("rca", &incident("[]", None), 64).unwrap();
        assert_eq!(row.row_id, again.row_id, "the same incident, the same identity");
        assert!(again.cause_kind.is_empty() && again.closed_ms.is_none());
    }

    #[test]
    fn rows_that_do_not_fit_are_refused_with_the_reason() {
        let bad = IncidentRow::from_row("rca", &incident("{", None), 64).unwrap_err();
        assert!(bad.to_string().contains("`causes` is not a list"), "{bad}");
        let long = IncidentRow::from_row("rca", &incident("[]", None), 3).unwrap_err();
        assert!(matches!(long, RowError::StringTooLong { .. }), "{long}");
        let far = IncidentRow::from_row("rca", &incident("[]", Some(u64::MAX)), 64).unwrap_err();
        assert!(matches!(far, RowError::TimeOutOfRange(_)), "{far}");
    }
}
