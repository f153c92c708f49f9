//! Incidents into the graph, against real servers: a pipeline of k8s events →
//! `incidents` operator → graph sink writes every incident the operator
//! reports as `(:Incident)` with its symptom (`SAME_INCIDENT`) and its ranked
//! causes (`POTENTIAL_CAUSE {rank, confidence, explanation, …}`), exactly as
//! the incidents file sink of the same run has them. A second run with a
//! shorter look-back re-reports the same incidents with other causes: the
//! graph then holds the new ranking only. A replay of it changes nothing.
//! Two tenants, each in its own graph (FalkorDB) or confined by `tenant`
//! (Neo4j).
//!
//! Servers as in `graph_sink.rs`: Neo4j (`PULSE_NEO4J_URI`,
//! `PULSE_NEO4J_PASSWORD`) and FalkorDB (`PULSE_FALKORDB_URL`); a missing
//! one skips loudly, or fails under `CI=true`.

mod common;

use common::graph::{
    falkordb_lines, falkordb_url, neo4j_address, neo4j_connect, neo4j_delete_tenants, neo4j_lines, reachable,
};
use common::incidents::two_tenants;
use common::kafka::unique;
use common::{TempDir, load_pipeline, read_jsonl, run_pipeline};
use pulse_core::cypher::tenant_graph;
use serde_json::Value;

fn pipeline(
    input: &std::path::Path,
    out: &std::path::Path,
    uri: &str,
    password: &str,
    prefix: &str,
    lookback: &str,
) -> String {
    format!(
        r#"
[engine]
dead_letter_path = "{dead_letters}"

[sources.events]
type = "file"
path = "{input}"

[operators.incidents]
type = "incidents"
inputs = ["events"]
lookback = "{lookback}"
quiet = "1m"

[sinks.rca]
type = "file"
inputs = ["incidents"]
path = "{out}"

[sinks.graph]
type = "graph"
inputs = ["events", "incidents"]
uri = "{uri}"
password = "{password}"
graph_prefix = "{prefix}"
"#,
        input = input.display(),
        out = out.display(),
        dead_letters = input.with_file_name("dead-letter.jsonl").display(),
    )
}

/// Each incident with its symptom, and each of its causes by rank.
const INCIDENTS: &str = "MATCH (i:Incident {tenant: $tenant})-[s:SAME_INCIDENT]->(r:Resource) \
     WHERE s.tenant = $tenant AND r.tenant = $tenant \
     RETURN 'incident ' + i.incident_id + ' opened ' + toString(i.opened_at) + ' closed ' + coalesce(toString(i.closed_at), '-') \
     + ' ' + s.role + ' ' + r.kind + '/' + r.namespace + '/' + r.name + ' ' + i.symptom_reason + ' top ' + coalesce(i.top_cause, '-')";
const CAUSES: &str = "MATCH (i:Incident {tenant: $tenant})-[c:POTENTIAL_CAUSE]->(r:Resource) \
     WHERE c.tenant = $tenant AND r.tenant = $tenant \
     RETURN 'cause ' + i.incident_id + ' #' + toString(c.rank) + ' ' + r.kind + '/' + r.namespace + '/' + r.name + ' ' \
     + toString(toInteger(round(c.confidence * 1000))) + ' ' + c.reason + ' ' + toString(c.event_ts) + ' ' + c.explanation";
const COUNT: &str = "MATCH (i:Incident) WHERE i.tenant = $tenant RETURN 'incidents ' + toString(count(i))";

/// What the graph must say of `tenant`, from the incidents file sink's rows.
fn expected(rows: &[Value], tenant: &str) -> Vec<String> {
    let text = |row: &Value, key: &str| row[key].as_str().unwrap_or("-").to_owned();
    let mut lines = Vec::new();
    let mine: Vec<&Value> = rows.iter().filter(|row| row["tenant"] == tenant).collect();
    for row in &mine {
        let id = text(row, "incident_id");
        lines.push(format!(
            "incident {id} opened {} closed {} symptom {}/{}/{} {} top {}",
            row["opened_at"],
            row["closed_at"].as_u64().map_or("-".to_owned(), |t| t.to_string()),
            text(row, "symptom_kind"),
            text(row, "symptom_namespace"),
            text(row, "symptom_name"),
            text(row, "symptom_reason"),
            text(row, "top_cause"),
        ));
        let causes: Vec<Value> = serde_json::from_str(row["causes"].as_str().unwrap()).unwrap();
        for (rank, cause) in causes.iter().enumerate() {
            let r = &cause["resource"];
            lines.push(format!(
                "cause {id} #{} {}/{}/{} {} {} {} {}",
                rank + 1,
                text(r, "kind"),
                text(r, "namespace"),
                text(r, "name"),
                (cause["confidence"].as_f64().unwrap() * 1000.0).round() as i64,
                text(cause, "reason"),
                cause["event_ts"],
                text(cause, "explanation"),
            ));
        }
    }
    lines.push(format!("incidents {}", mine.len()));
    lines.sort();
    lines
}

/// Runs the pipeline (15-minute look-back), then re-ranks (1-minute
/// look-back) and replays that, checking both tenants' graphs against the
/// incidents file after each run with `read(tenant)`. Returns the tenants.
fn check_runs(
    backend: &str,
    uri: &str,
    password: &str,
    prefix: &str,
    read: &dyn Fn(&str) -> Vec<String>,
) -> [String; 2] {
    let dir = TempDir::new(&format!("graph-incidents-{backend}"));
    let (acme, globex) = (unique("acme"), unique("globex"));
    let input = dir.join("events.jsonl");
    std::fs::write(&input, two_tenants(&acme, &globex, 1_700_000_000_000)).unwrap();

    let mut reports = Vec::new();
    for (run, (lookback, workers)) in [("15m", 2), ("1m", 1), ("1m", 2)].into_iter().enumerate() {
        let out = dir.join(&format!("incidents-{run}.jsonl"));
        let path = dir.join("pipeline.toml");
        std::fs::write(&path, pipeline(&input, &out, uri, password, prefix, lookback)).unwrap();
        run_pipeline(&load_pipeline(&path, &[]), workers);
        assert!(
            !dir.join("dead-letter.jsonl").exists(),
            "{backend}: nothing refused: {:?}",
            std::fs::read_to_string(dir.join("dead-letter.jsonl"))
        );
        // The file sink writes in arrival order, which the worker count changes.
        let mut rows = read_jsonl(&out);
        rows.sort_by_key(|row| (row["tenant"].to_string(), row["incident_id"].to_string()));
        for tenant in [&acme, &globex] {
            let want = expected(&rows, tenant);
            assert!(
                want.len() > 2,
                "{backend}: the operator found incidents with causes: {want:?}"
            );
            assert_eq!(
                read(tenant),
                want,
                "{backend}: {tenant}'s incidents after run {run} (look-back {lookback})"
            );
        }
        reports.push(rows);
    }
    let causes = |rows: &Vec<Value>| rows.iter().map(|row| row["causes"].clone()).collect::<Vec<_>>();
    assert_ne!(
        causes(&reports[0]),
        causes(&reports[1]),
        "{backend}: the shorter look-back re-ranks (else the replacement went untested)"
    );
    assert_eq!(reports[1], reports[2], "{backend}: the replay reports the same");
    [acme, globex]
}

#[test]
fn neo4j_holds_each_incident_with_its_symptom_and_ranked_causes_and_a_re_ranking_replaces_them() {
    let (address, password) = neo4j_address();
    if !reachable("Neo4j", &address) {
        return;
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let graph = neo4j_connect(&runtime, &address, &password);
    let read = |tenant: &str| neo4j_lines(&runtime, &graph, &[INCIDENTS, CAUSES, COUNT], tenant);
    let tenants = check_runs("neo4j", &format!("bolt://{address}"), &password, "pulse:", &read);
    neo4j_delete_tenants(&runtime, &graph, &tenants);
}

#[test]
fn falkordb_holds_each_incident_with_its_symptom_and_ranked_causes_and_a_re_ranking_replaces_them() {
    let (url, address) = falkordb_url();
    if !reachable("FalkorDB", &address) {
        return;
    }
    let client = redis::Client::open(url.as_str()).unwrap();
    let connection = std::cell::RefCell::new(client.get_connection().unwrap());
    let prefix = format!("{}:", unique("pulse-test"));
    let read = |tenant: &str| {
        let graph = tenant_graph(&prefix, tenant);
        falkordb_lines(
            &mut connection.borrow_mut(),
            &graph,
            &[INCIDENTS, CAUSES, COUNT],
            tenant,
        )
    };
    let tenants = check_runs("falkordb", &url.replace("redis://", "falkordb://"), "", &prefix, &read);
    for tenant in tenants {
        let _: () = redis::cmd("GRAPH.DELETE")
            .arg(tenant_graph(&prefix, &tenant))
            .query(&mut *connection.borrow_mut())
            .unwrap();
    }
}
