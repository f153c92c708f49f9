//! Incident rows in the graph: what a row of the incidents operator (a
//! closed incident and its ranked causes) writes.
//!
//! | element | properties |
//! | --- | --- |
//! | `(:Incident)` | `tenant, incident_id` (the identity), then every other column of the row but `causes` (`opened_at`, `closed_at` as epoch ms, `symptom_kind`, `symptom_namespace`, `symptom_name`, `symptom_reason`, `top_cause`, `top_confidence`, and columns the operator may add) |
//! | `(:Incident)-[:SAME_INCIDENT]->(:Resource)` | `tenant, role: "symptom"`: the resource whose error opened the incident |
//! | `(:Incident)-[:POTENTIAL_CAUSE]->(:Resource)` | `tenant, rank` (1 = most likely), `confidence` (0 to 1), `explanation`, `reason` (the cause's signal), `event_ts` (its event time, ms): one per ranked cause |
//!
//! A row replaces what an earlier row of the same incident wrote: its
//! `SAME_INCIDENT` and `POTENTIAL_CAUSE` edges are deleted and written anew,
//! so a re-ranking (a later report of the incident) leaves exactly the new
//! ranking, and a replay leaves the same graph. Within one batch only the
//! last row of each incident is written.

use std::collections::BTreeMap;

use pulse_core::cypher::{CypherValue, is_identifier};
use pulse_core::row::Value;
use pulse_core::{ResourceRef, Row};

use super::model::{Statement, check_resource, check_text, push_chunks, resource_fields};
pub use crate::incident_row::is_incident_row;
use crate::incident_row::{parse_causes, text};

/// One incident's change to the graph.
#[derive(Debug, Clone, PartialEq)]
pub struct IncidentChange {
    /// The incident's id.
    pub incident_id: String,
    /// The node's properties, by column name (`incident_id` among them).
    pub node: BTreeMap<String, CypherValue>,
    /// Its ranked causes, best first, as statement rows.
    pub causes: Vec<CypherValue>,
}

/// The change of an incident row, with its opening time (for ordering); an
/// error (the dead letter's reason) for a row the graph cannot hold.
pub fn incident_change(row: &Row, max_string_bytes: usize) -> Result<(u64, IncidentChange), String> {
    let incident_id = text(row, "incident_id");
    if incident_id.is_empty() {
        return Err("the incident row has an empty `incident_id`".to_owned());
    }
    let opened_at = row
        .get("opened_at")
        .and_then(Value::as_time)
        .ok_or("the incident row has no `opened_at` time")?;
    let symptom = ResourceRef {
        kind: text(row, "symptom_kind").to_owned(),
        namespace: text(row, "symptom_namespace").to_owned(),
        name: text(row, "symptom_name").to_owned(),
    };
    check_resource("symptom", &symptom, max_string_bytes)?;
    let mut node = BTreeMap::new();
    for (column, value) in row.fields() {
        let name = column.name.as_str();
        // A property name is pasted into the statement: identifiers only.
        if name == "tenant" || name == "causes" || !is_identifier(name) {
            continue;
        }
        let property = match value {
            Value::Null => CypherValue::Null,
            Value::Time(t) => CypherValue::Int(i64::try_from(*t).map_err(|_| format!("`{name}` is out of range"))?),
            Value::Int(n) => CypherValue::Int(*n),
            Value::Float(x) if x.is_finite() => CypherValue::Float(*x),
            Value::Float(_) => CypherValue::Null,
            Value::Bool(b) => CypherValue::Bool(*b),
            Value::Str(s) => {
                check_text(name, s, max_string_bytes)?;
                CypherValue::from(&**s)
            }
        };
        node.insert(name.to_owned(), property);
    }
    let causes = parse_causes(text(row, "causes"))?;
    let mut cause_rows = Vec::with_capacity(causes.len());
    for (rank, cause) in causes.into_iter().enumerate() {
        check_resource("causes.resource", &cause.resource, max_string_bytes)?;
        check_text("causes.reason", &cause.reason, max_string_bytes)?;
        check_text("causes.explanation", &cause.explanation, max_string_bytes)?;
        if !(0.0..=1.0).contains(&cause.confidence) {
            return Err(format!(
                "a cause's confidence {} is not within 0 and 1",
                cause.confidence
            ));
        }
        let mut entry = BTreeMap::from([
            ("incident_id".to_owned(), CypherValue::from(incident_id)),
            ("rank".to_owned(), CypherValue::Int(rank as i64 + 1)),
            ("confidence".to_owned(), CypherValue::Float(cause.confidence)),
            ("explanation".to_owned(), CypherValue::from(cause.explanation)),
            ("reason".to_owned(), CypherValue::from(cause.reason)),
            (
                "event_ts".to_owned(),
                CypherValue::Int(i64::try_from(cause.event_ts).map_err(|_| "a cause's `event_ts` is out of range")?),
            ),
        ]);
        resource_fields(&mut entry, "", &cause.resource);
        cause_rows.push(CypherValue::Map(entry));
    }
    let change = IncidentChange {
        incident_id: incident_id.to_owned(),
        node,
        causes: cause_rows,
    };
    Ok((opened_at, change))
}

/// The statements that write `incidents` (the last change of each) for
/// `tenant`: old edges out, nodes and symptom edges in, then the causes.
pub fn statements(out: &mut Vec<Statement>, tenant: &str, incidents: Vec<IncidentChange>, chunk: usize) {
    let ids: Vec<CypherValue> = incidents
        .iter()
        .map(|incident| {
            CypherValue::Map(BTreeMap::from([(
                "incident_id".to_owned(),
                CypherValue::from(incident.incident_id.as_str()),
            )]))
        })
        .collect();
    push_chunks(out, tenant, DELETE_INCIDENT_EDGES, ids, chunk);
    // Rows of one schema share their statement; group by its text.
    let mut by_statement: BTreeMap<String, Vec<CypherValue>> = BTreeMap::new();
    let mut causes = Vec::new();
    for incident in incidents {
        by_statement
            .entry(merge_incidents(incident.node.keys()))
            .or_default()
            .push(CypherValue::Map(incident.node));
        causes.extend(incident.causes);
    }
    for (cypher, rows) in by_statement {
        push_chunks(out, tenant, &cypher, rows, chunk);
    }
    push_chunks(out, tenant, CREATE_CAUSES, causes, chunk);
}

/// `MERGE` of incident nodes setting `properties`, and their symptom edge.
fn merge_incidents<'a>(properties: impl Iterator<Item = &'a String>) -> String {
    let set: Vec<String> = properties
        .filter(|name| *name != "incident_id")
        .map(|name| format!("i.{name} = r.{name}"))
        .collect();
    let set = match set.is_empty() {
        true => String::new(),
        false => format!("SET {} ", set.join(", ")),
    };
    format!(
        "UNWIND $rows AS r \
         MERGE (i:Incident {{tenant: $tenant, incident_id: r.incident_id}}) \
         {set}\
         MERGE (s:Resource {{tenant: $tenant, kind: r.symptom_kind, namespace: r.symptom_namespace, name: r.symptom_name}}) \
         MERGE (i)-[:SAME_INCIDENT {{tenant: $tenant, role: 'symptom'}}]->(s)"
    )
}

/// The edges an earlier row of the same incidents wrote.
const DELETE_INCIDENT_EDGES: &str = "UNWIND $rows AS r \
     MATCH (i:Incident {tenant: $tenant, incident_id: r.incident_id})-[e]->() \
     WHERE e.tenant = $tenant AND type(e) IN ['SAME_INCIDENT', 'POTENTIAL_CAUSE'] \
     DELETE e";

const CREATE_CAUSES: &str = "UNWIND $rows AS r \
     MATCH (i:Incident {tenant: $tenant, incident_id: r.incident_id}) \
     MERGE (c:Resource {tenant: $tenant, kind: r.kind, namespace: r.namespace, name: r.name}) \
     CREATE (i)-[:POTENTIAL_CAUSE {tenant: $tenant, rank: r.rank, confidence: r.confidence, \
     explanation: r.explanation, reason: r.reason, event_ts: r.event_ts}]->(c)";

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use pulse_core::row::{Column, ColumnType, RowSchema};

    use super::*;

    fn incident(id: &str, causes: &str) -> Row {
        let schema = RowSchema::new(vec![
            Column::new("tenant", ColumnType::Key),
            Column::new("incident_id", ColumnType::Key),
            Column::new("opened_at", ColumnType::Time),
            Column::new("closed_at", ColumnType::Time).nullable(),
            Column::new("symptom_kind", ColumnType::Text),
            Column::new("symptom_namespace", ColumnType::Text),
            Column::new("symptom_name", ColumnType::Text),
            Column::new("top_confidence", ColumnType::Float).nullable(),
            Column::new("labels.x", ColumnType::Text),
            Column::new("causes", ColumnType::Text),
        ])
        .unwrap();
        Row::new(
            Arc::new(schema),
            vec![
                Value::from("acme"),
                Value::from(id),
                Value::Time(1000),
                Value::Null,
                Value::from("Pod"),
                Value::from("prod"),
                Value::from("web-1"),
                Value::Float(f64::NAN),
                Value::from("left out"),
                Value::from(causes),
            ],
        )
    }

    const CAUSES: &str = r#"[{"resource":{"kind":"Pod","namespace":"prod","name":"db-0"},"event_ts":900,"reason":"OOMKilled","confidence":0.8,"explanation":"it's \"first\""},
        {"resource":{"kind":"Node","namespace":"","name":"n1"},"event_ts":950,"reason":"NotReady","confidence":0.5,"explanation":"below"}]"#;

    #[test]
    fn a_row_becomes_a_node_with_its_columns_and_ranked_causes() {
        let row = incident("inc-1", CAUSES);
        assert!(is_incident_row(&row));
        let (ts, change) = incident_change(&row, 1024).unwrap();
        assert_eq!(ts, 1000);
        assert_eq!(change.node["opened_at"], CypherValue::Int(1000));
        assert_eq!(change.node["closed_at"], CypherValue::Null);
        assert_eq!(change.node["top_confidence"], CypherValue::Null, "NaN as null");
        assert!(!change.node.contains_key("tenant") && !change.node.contains_key("causes"));
        assert!(!change.node.contains_key("labels.x"), "not an identifier");
        let ranks: Vec<_> = change
            .causes
            .iter()
            .map(|cause| match cause {
                CypherValue::Map(map) => (map["rank"].clone(), map["name"].clone()),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            ranks,
            [
                (CypherValue::Int(1), CypherValue::from("db-0")),
                (CypherValue::Int(2), CypherValue::from("n1"))
            ]
        );
        let mut out = Vec::new();
        statements(&mut out, "acme", vec![change], 100);
        assert_eq!(out.len(), 3, "delete the old edges, merge the node, create the causes");
        assert!(out[0].cypher.ends_with("DELETE e"));
        assert!(
            out[1]
                .cypher
                .contains("SET i.closed_at = r.closed_at, i.opened_at = r.opened_at")
        );
        assert!(out[2].cypher.contains("CREATE (i)-[:POTENTIAL_CAUSE"));
    }

    #[test]
    fn the_last_report_of_an_incident_in_a_batch_is_the_one_written() {
        use crate::graph::model::plan;
        use crate::runtime::SinkRecord;
        let first = r#"[{"resource":{"kind":"Pod","namespace":"prod","name":"db-0"},"event_ts":900,"reason":"OOMKilled","confidence":0.8,"explanation":"x"}]"#;
        let batch = [
            SinkRecord::Row(incident("inc-1", first)),
            SinkRecord::Row(incident("inc-1", CAUSES)),
        ];
        let planned = plan(&batch, 100, 1024);
        assert!(planned.rejected.is_empty(), "{:?}", planned.rejected);
        let statements = &planned.tenants["acme"];
        let causes = statements.last().unwrap();
        let CypherValue::List(rows) = &causes.params["rows"] else {
            panic!("rows")
        };
        assert_eq!(rows.len(), 2, "the re-ranked report's two causes, not 1 + 2");
    }

    #[test]
    fn bad_incident_rows_are_refused_with_a_reason() {
        let not_json = incident_change(&incident("inc-1", "[{"), 1024).unwrap_err();
        assert!(not_json.contains("`causes` is not a list"), "{not_json}");
        let empty = incident_change(&incident("", "[]"), 1024).unwrap_err();
        assert!(empty.contains("empty `incident_id`"), "{empty}");
        let too_long = incident_change(&incident("inc-1", CAUSES), 4).unwrap_err();
        assert!(too_long.contains("over the limit"), "{too_long}");
        let absurd = CAUSES.replace("0.8", "7.5");
        let absurd = incident_change(&incident("inc-1", &absurd), 1024).unwrap_err();
        assert!(absurd.contains("not within 0 and 1"), "{absurd}");
    }
}
