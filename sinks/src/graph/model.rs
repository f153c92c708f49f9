//! What a batch of records does to the graph: the Cypher statements, per
//! tenant, that a backend runs (the same text on Neo4j and FalkorDB).
//!
//! Every statement is `UNWIND $rows AS r …` with `MERGE`, binds `$tenant`,
//! and matches or creates only nodes and relationships whose `tenant` is
//! `$tenant`: no statement can touch another tenant's graph.
//!
//! Within a batch, topology changes are applied in event-time order and only
//! the last change of each edge is written (an upsert then a delete of the
//! same edge leaves no edge); the sink is ordered, so batches arrive in time
//! order and a replay of the same events ends in the same graph.

use std::collections::BTreeMap;

use pulse_core::cypher::CypherValue;
use pulse_core::{Event, EventBody, ResourceRef, Row, TopologyOp};
use sha2::{Digest, Sha256};

use super::incident::{self, IncidentChange};
use crate::runtime::SinkRecord;

/// Relationship types the sink itself owns; topology events cannot use them.
const RESERVED_RELATIONS: [&str; 3] = ["ABOUT", "SAME_INCIDENT", "POTENTIAL_CAUSE"];

/// One statement to run: Cypher text and its parameters (`tenant`, `rows`).
#[derive(Clone, Debug, PartialEq)]
pub struct Statement {
    /// The Cypher text; parameters are `$tenant` and `$rows`.
    pub cypher: String,
    /// The parameters.
    pub params: BTreeMap<String, CypherValue>,
}

/// What a batch writes: statements per tenant, in the order to run them,
/// and the records refused (by index, with the reason).
#[derive(Debug, Default)]
pub struct GraphBatch {
    /// Statements of each tenant.
    pub tenants: BTreeMap<String, Vec<Statement>>,
    /// Records that cannot go into the graph, by index in the batch.
    pub rejected: Vec<(usize, String)>,
    /// Records the graph has no place for and leaves out on purpose (metric
    /// samples, which belong to the time-series sinks).
    pub skipped: usize,
}

/// One record's change to the graph.
enum Change<'a> {
    /// A topology edge appearing (upsert) or going away (delete).
    Edge {
        from: &'a ResourceRef,
        to: &'a ResourceRef,
        relation: &'a str,
        op: TopologyOp,
    },
    /// A k8s event or a log line about a resource.
    Episode {
        about: &'a ResourceRef,
        row: BTreeMap<String, CypherValue>,
    },
    /// An incident row: its node, symptom and ranked causes.
    Incident(IncidentChange),
}

/// The edge of a topology change, for keeping only its last change.
type EdgeKey<'a> = (&'a ResourceRef, &'a ResourceRef, &'a str);

/// Plans the statements of `batch`, at most `statement_rows` rows each.
pub fn plan(batch: &[SinkRecord], statement_rows: usize, max_string_bytes: usize) -> GraphBatch {
    let mut out = GraphBatch::default();
    let mut changes: Vec<(u64, usize, &str, Change<'_>)> = Vec::new();
    for (index, record) in batch.iter().enumerate() {
        match classify(record, max_string_bytes) {
            Ok(Some((ts, tenant, change))) => changes.push((ts, index, tenant, change)),
            Ok(None) => out.skipped += 1,
            Err(reason) => out.rejected.push((index, reason)),
        }
    }
    // Event-time order, then arrival order: the last change of an edge wins.
    changes.sort_by_key(|(ts, index, _, _)| (*ts, *index));
    let mut edges: BTreeMap<&str, BTreeMap<EdgeKey<'_>, (TopologyOp, u64)>> = BTreeMap::new();
    let mut episodes: BTreeMap<&str, Vec<CypherValue>> = BTreeMap::new();
    let mut incidents: BTreeMap<&str, BTreeMap<String, IncidentChange>> = BTreeMap::new();
    for (ts, _, tenant, change) in changes {
        match change {
            Change::Edge { from, to, relation, op } => {
                edges.entry(tenant).or_default().insert((from, to, relation), (op, ts));
            }
            Change::Episode { about, mut row } => {
                resource_fields(&mut row, "", about);
                episodes.entry(tenant).or_default().push(CypherValue::Map(row));
            }
            // The last report of an incident wins (a re-ranking replaces it).
            Change::Incident(change) => {
                incidents
                    .entry(tenant)
                    .or_default()
                    .insert(change.incident_id.clone(), change);
            }
        }
    }
    let chunk = statement_rows.max(1);
    for (tenant, edges) in edges {
        // Rows by (relation, op): a relationship type cannot be a parameter.
        let mut by_statement: BTreeMap<(&str, bool), Vec<CypherValue>> = BTreeMap::new();
        for ((from, to, relation), (op, ts)) in edges {
            let mut row = BTreeMap::from([("ts".to_owned(), CypherValue::Int(ts as i64))]);
            resource_fields(&mut row, "from_", from);
            resource_fields(&mut row, "to_", to);
            by_statement
                .entry((relation, op == TopologyOp::Upsert))
                .or_default()
                .push(CypherValue::Map(row));
        }
        let statements = out.tenants.entry(tenant.to_owned()).or_default();
        for ((relation, upsert), rows) in by_statement {
            let cypher = if upsert {
                upsert_edges(relation)
            } else {
                delete_edges(relation)
            };
            push_chunks(statements, tenant, &cypher, rows, chunk);
        }
    }
    for (tenant, rows) in episodes {
        let statements = out.tenants.entry(tenant.to_owned()).or_default();
        push_chunks(statements, tenant, MERGE_EPISODES, rows, chunk);
    }
    for (tenant, changes) in incidents {
        let statements = out.tenants.entry(tenant.to_owned()).or_default();
        incident::statements(statements, tenant, changes.into_values().collect(), chunk);
    }
    out
}

/// Appends `cypher` over `rows`, at most `chunk` rows per statement.
pub(super) fn push_chunks(
    statements: &mut Vec<Statement>,
    tenant: &str,
    cypher: &str,
    rows: Vec<CypherValue>,
    chunk: usize,
) {
    for rows in rows.chunks(chunk) {
        statements.push(Statement {
            cypher: cypher.to_owned(),
            params: BTreeMap::from([
                ("tenant".to_owned(), CypherValue::from(tenant)),
                ("rows".to_owned(), CypherValue::List(rows.to_vec())),
            ]),
        });
    }
}

/// `kind`, `namespace` and `name` of `resource` into `row`, names prefixed.
pub(super) fn resource_fields(row: &mut BTreeMap<String, CypherValue>, prefix: &str, resource: &ResourceRef) {
    row.insert(format!("{prefix}kind"), CypherValue::from(resource.kind.as_str()));
    row.insert(
        format!("{prefix}namespace"),
        CypherValue::from(resource.namespace.as_str()),
    );
    row.insert(format!("{prefix}name"), CypherValue::from(resource.name.as_str()));
}

/// The record's time, tenant and change; `None` for records the graph
/// leaves out; an error (the dead letter's reason) for records it refuses.
fn classify(record: &SinkRecord, max_string_bytes: usize) -> Result<Option<(u64, &str, Change<'_>)>, String> {
    match record {
        SinkRecord::Event(event) => event_change(event, max_string_bytes),
        SinkRecord::Row(row) => row_change(row, max_string_bytes),
        SinkRecord::DeadLetter(_) => Err("a graph sink does not store dead letters".to_owned()),
    }
}

fn event_change(event: &Event, max_string_bytes: usize) -> Result<Option<(u64, &str, Change<'_>)>, String> {
    check_text("tenant", &event.tenant, max_string_bytes)?;
    let change = match &event.body {
        EventBody::Metric(_) => return Ok(None),
        EventBody::Topology(topology) => {
            check_resource("from", &topology.from, max_string_bytes)?;
            check_resource("to", &topology.to, max_string_bytes)?;
            check_relation(&topology.relation)?;
            Change::Edge {
                from: &topology.from,
                to: &topology.to,
                relation: &topology.relation,
                op: topology.op,
            }
        }
        EventBody::K8sEvent(k8s) => {
            check_resource("resource", &k8s.resource, max_string_bytes)?;
            for (field, text) in [
                ("reason", &k8s.reason),
                ("severity", &k8s.severity),
                ("message", &k8s.message),
            ] {
                check_text(field, text, max_string_bytes)?;
            }
            Change::Episode {
                about: &k8s.resource,
                row: episode_row(
                    event,
                    [
                        ("reason", Some(k8s.reason.clone())),
                        ("severity", Some(k8s.severity.clone())),
                        ("level", None),
                        ("message", Some(k8s.message.clone())),
                    ],
                ),
            }
        }
        EventBody::Log(log) => {
            check_resource("resource", &log.resource, max_string_bytes)?;
            check_text("level", &log.level, max_string_bytes)?;
            check_text("message", &log.message, max_string_bytes)?;
            Change::Episode {
                about: &log.resource,
                row: episode_row(
                    event,
                    [
                        ("reason", None),
                        ("severity", None),
                        ("level", Some(log.level.clone())),
                        ("message", Some(log.message.clone())),
                    ],
                ),
            }
        }
    };
    Ok(Some((event.ts, &event.tenant, change)))
}

/// Operator rows: the incidents operator's (told apart by their columns,
/// see [`incident`]) become incidents; other rows have no place in the graph
/// and are refused with the reason.
fn row_change(row: &Row, max_string_bytes: usize) -> Result<Option<(u64, &str, Change<'_>)>, String> {
    if !incident::is_incident_row(row) {
        let columns: Vec<&str> = row.schema().columns().iter().map(|c| c.name.as_str()).collect();
        return Err(format!(
            "a graph sink writes topology, k8s events, logs and incidents; rows of columns {} are none of these",
            columns.join(", ")
        ));
    }
    let tenant = row.get("tenant").and_then(|value| value.as_str()).unwrap_or_default();
    check_text("tenant", tenant, max_string_bytes)?;
    let (ts, change) = incident::incident_change(row, max_string_bytes)?;
    Ok(Some((ts, tenant, Change::Incident(change))))
}

fn episode_row<const N: usize>(event: &Event, fields: [(&str, Option<String>); N]) -> BTreeMap<String, CypherValue> {
    let mut row = BTreeMap::from([
        ("id".to_owned(), CypherValue::from(episode_id(event))),
        ("ts".to_owned(), CypherValue::Int(event.ts as i64)),
        ("event_kind".to_owned(), CypherValue::from(event.kind().as_str())),
        ("source".to_owned(), CypherValue::from(event.source.as_str())),
    ]);
    for (name, value) in fields {
        row.insert(name.to_owned(), CypherValue::from(value));
    }
    row
}

/// A deterministic id of an event: the first 128 bits of the SHA-256 of its
/// JSON (which is canonical: fixed key order, sorted labels), in hex. A
/// replayed event gets the same id, so `MERGE` finds the node it wrote.
pub fn episode_id(event: &Event) -> String {
    let digest = Sha256::digest(event.to_json().as_bytes());
    digest[..16].iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Refuses text with a NUL or longer than `max_bytes`.
pub(super) fn check_text(field: &str, text: &str, max_bytes: usize) -> Result<(), String> {
    if text.contains('\0') {
        return Err(format!("`{field}` holds a NUL character"));
    }
    if text.len() > max_bytes {
        return Err(format!(
            "`{field}` is {} bytes, over the limit of {max_bytes}",
            text.len()
        ));
    }
    Ok(())
}

/// Refuses a resource without kind or name, or with text [`check_text`] refuses.
pub(super) fn check_resource(field: &str, resource: &ResourceRef, max_bytes: usize) -> Result<(), String> {
    if resource.kind.is_empty() || resource.name.is_empty() {
        return Err(format!("`{field}` names no resource (its kind or name is empty)"));
    }
    for text in [&resource.kind, &resource.namespace, &resource.name] {
        check_text(field, text, max_bytes)?;
    }
    Ok(())
}

/// A relation is pasted into the statement as a relationship type, so it
/// must be an upper-case identifier, and not one the sink owns.
fn check_relation(relation: &str) -> Result<(), String> {
    let mut chars = relation.chars();
    let identifier = chars.next().is_some_and(|c| c.is_ascii_uppercase())
        && chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        && relation.len() <= 64;
    if !identifier {
        return Err(format!(
            "relation `{relation}` is not an upper-case identifier such as RUNS_ON"
        ));
    }
    if RESERVED_RELATIONS.contains(&relation) {
        return Err(format!("relation `{relation}` is the graph sink's own"));
    }
    Ok(())
}

fn upsert_edges(relation: &str) -> String {
    format!(
        "UNWIND $rows AS r \
         MERGE (a:Resource {{tenant: $tenant, kind: r.from_kind, namespace: r.from_namespace, name: r.from_name}}) \
         MERGE (b:Resource {{tenant: $tenant, kind: r.to_kind, namespace: r.to_namespace, name: r.to_name}}) \
         MERGE (a)-[e:{relation} {{tenant: $tenant}}]->(b) \
         SET e.updated_ms = r.ts"
    )
}

fn delete_edges(relation: &str) -> String {
    format!(
        "UNWIND $rows AS r \
         MATCH (a:Resource {{tenant: $tenant, kind: r.from_kind, namespace: r.from_namespace, name: r.from_name}})\
         -[e:{relation} {{tenant: $tenant}}]->\
         (b:Resource {{tenant: $tenant, kind: r.to_kind, namespace: r.to_namespace, name: r.to_name}}) \
         DELETE e"
    )
}

const MERGE_EPISODES: &str = "UNWIND $rows AS r \
     MERGE (a:Resource {tenant: $tenant, kind: r.kind, namespace: r.namespace, name: r.name}) \
     MERGE (e:Episodic {tenant: $tenant, id: r.id}) \
     SET e.ts = r.ts, e.event_kind = r.event_kind, e.source = r.source, e.reason = r.reason, \
     e.severity = r.severity, e.level = r.level, e.message = r.message \
     MERGE (e)-[:ABOUT {tenant: $tenant}]->(a)";

#[cfg(test)]
mod tests {
    use super::*;

    fn event(line: &str) -> SinkRecord {
        SinkRecord::Event(Event::from_json(line.as_bytes()).unwrap())
    }

    fn topology(ts: u64, tenant: &str, pod: &str, op: &str) -> SinkRecord {
        event(&format!(
            r#"{{"ts":{ts},"tenant":"{tenant}","source":"w","kind":"topology","from":{{"kind":"Pod","namespace":"prod","name":"{pod}"}},"to":{{"kind":"Node","name":"n1"}},"relation":"RUNS_ON","op":"{op}"}}"#
        ))
    }

    fn rows(statement: &Statement) -> usize {
        match &statement.params["rows"] {
            CypherValue::List(rows) => rows.len(),
            other => panic!("rows is {other:?}"),
        }
    }

    #[test]
    fn the_last_change_of_an_edge_in_time_order_wins() {
        // Delivered out of order: the delete (ts 2) comes after the upsert (ts 3).
        let batch = [topology(3, "acme", "a", "upsert"), topology(2, "acme", "a", "delete")];
        let planned = plan(&batch, 100, 1024);
        let statements = &planned.tenants["acme"];
        assert_eq!(statements.len(), 1);
        assert!(
            statements[0].cypher.contains("MERGE (a)-[e:RUNS_ON"),
            "{}",
            statements[0].cypher
        );
        let batch = [topology(2, "acme", "a", "upsert"), topology(3, "acme", "a", "delete")];
        let statements = &plan(&batch, 100, 1024).tenants["acme"];
        assert_eq!(statements.len(), 1);
        assert!(statements[0].cypher.ends_with("DELETE e"));
    }

    #[test]
    fn tenants_get_their_own_statements_bound_to_them() {
        let batch = [
            topology(1, "acme", "a", "upsert"),
            topology(1, "globex", "a", "upsert"),
            topology(1, "acme", "b", "upsert"),
        ];
        let planned = plan(&batch, 1, 1024);
        assert_eq!(planned.tenants["acme"].len(), 2, "one row per statement");
        for (tenant, statements) in &planned.tenants {
            for statement in statements {
                assert_eq!(statement.params["tenant"], CypherValue::from(tenant.as_str()));
                assert_eq!(rows(statement), 1);
            }
        }
    }

    #[test]
    fn metrics_are_skipped_and_bad_records_refused_with_a_reason() {
        let batch = [
            event(r#"{"ts":1,"tenant":"acme","source":"h","kind":"metric","metric":"cpu","value":1}"#),
            event(
                r#"{"ts":1,"tenant":"acme","source":"w","kind":"topology","from":{"kind":"Pod","name":"a"},"to":{"kind":"Node","name":"n"},"relation":"RUNS_ON]->(x) DETACH DELETE x //","op":"upsert"}"#,
            ),
            event(
                r#"{"ts":1,"tenant":"acme","source":"w","kind":"topology","from":{"kind":"Pod","name":"a"},"to":{"kind":"Node","name":"n"},"relation":"ABOUT","op":"upsert"}"#,
            ),
            event(
                r#"{"ts":1,"tenant":"acme","source":"v","kind":"log","resource":{"kind":"Pod","name":""},"level":"error","message":"x"}"#,
            ),
            event(
                r#"{"ts":1,"tenant":"acme","source":"v","kind":"log","resource":{"kind":"Pod","name":"a"},"level":"error","message":"0123456789abc"}"#,
            ),
        ];
        let planned = plan(&batch, 100, 12);
        assert_eq!(planned.skipped, 1);
        let reasons: Vec<_> = planned.rejected.iter().map(|(i, _)| *i).collect();
        assert_eq!(reasons, [1, 2, 3, 4]);
        assert!(planned.rejected[0].1.contains("upper-case identifier"));
        assert!(planned.rejected[3].1.contains("over the limit"));
        assert!(planned.tenants.is_empty());
    }

    #[test]
    fn episodes_have_ids_that_a_replay_reproduces() {
        let line = r#"{"ts":5,"tenant":"acme","source":"w","kind":"k8s_event","resource":{"kind":"Pod","namespace":"prod","name":"a"},"reason":"OOMKilled","severity":"error","message":"killed"}"#;
        let first = plan(&[event(line)], 100, 1024);
        let again = plan(&[event(line)], 100, 1024);
        assert_eq!(first.tenants, again.tenants);
        let CypherValue::List(rows) = &first.tenants["acme"][0].params["rows"] else {
            panic!()
        };
        let CypherValue::Map(row) = &rows[0] else { panic!() };
        assert_eq!(row["reason"], CypherValue::from("OOMKilled"));
        assert_eq!(row["level"], CypherValue::Null);
        let CypherValue::Str(id) = &row["id"] else { panic!() };
        assert_eq!(id.len(), 32);
    }
}
