//! The graph sink through a Neo4j outage: Neo4j is killed (SIGKILL) while a
//! run writes to it and started again on the same data; the sink retries
//! (its breaker opens meanwhile), the run waits for it, and the final graph —
//! resources, topology, episodes, incidents and their causes — equals what a
//! run of the same events without the fault writes: nothing lost, nothing
//! doubled.
//!
//! The test starts a Neo4j of its own on a free port (`PrivateNeo4j`, with
//! the jars the test script fetches), so killing it disturbs no other test.
//! Without those jars it skips loudly; under `CI=true` it fails.

mod common;

use std::time::{Duration, Instant};

use common::graph::{PrivateNeo4j, neo4j_connect, neo4j_lines};
use common::incidents::{events, resource};
use common::{TempDir, load_pipeline, run_pipeline};

/// Log lines about an unrelated pod, one per 100 ms granule, so that the run
/// writes many small ordered batches and lasts long enough to be cut.
const LOGS: u64 = 200;

/// The events of `tenant`: the incidents fixture and [`LOGS`] info logs.
fn input(tenant: &str, t0: u64) -> String {
    let mut lines = events(tenant, t0);
    let worker = resource("Pod", "batch", "worker-1");
    for i in 0..LOGS {
        lines.push(format!(
            r#"{{"ts":{},"tenant":"{tenant}","source":"vector","kind":"log","resource":{worker},"level":"info","message":"processed job {i}"}}"#,
            t0 + 50 + i * 100
        ));
    }
    lines.sort_by_key(|line| serde_json::from_str::<serde_json::Value>(line).unwrap()["ts"].as_u64());
    lines.join("\n") + "\n"
}

fn pipeline(input: &std::path::Path, address: &str, password: &str) -> String {
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
quiet = "1m"

[sinks.graph]
type = "graph"
inputs = ["events", "incidents"]
uri = "bolt://{address}"
password = "{password}"
buffer_batches = 4
retry = {{ initial = "100ms", max = "1s" }}
breaker = {{ failures = 3, probe_after = "1s" }}
"#,
        input = input.display(),
        dead_letters = input.with_file_name("dead-letter.jsonl").display(),
    )
}

/// A tenant's graph as lines that do not name the tenant (two tenants with
/// the same events compare equal): every relationship with its ends and
/// properties, every incident, and the nodes per label.
const GRAPH: [&str; 3] = [
    "MATCH (a)-[e]->(b) WHERE e.tenant = $tenant AND a.tenant = $tenant AND b.tenant = $tenant \
     RETURN labels(a)[0] + ' ' + coalesce(a.name, a.incident_id, toString(a.ts) + ' ' + a.message) + ' ' + type(e) + ' ' \
     + labels(b)[0] + ' ' + coalesce(b.name, b.incident_id) + ' ' + coalesce(toString(e.rank), '') + ' ' \
     + coalesce(toString(e.confidence), '') + ' ' + coalesce(e.explanation, '') + coalesce(e.role, '')",
    "MATCH (i:Incident) WHERE i.tenant = $tenant \
     RETURN i.incident_id + ' ' + toString(i.opened_at) + ' ' + coalesce(toString(i.closed_at), '-') + ' ' + coalesce(i.top_cause, '-')",
    "MATCH (n) WHERE n.tenant = $tenant WITH labels(n)[0] AS label, count(n) AS nodes \
     RETURN 'nodes ' + label + ' ' + toString(nodes)",
];

/// How many `Episodic` nodes `tenant` has (a fresh connection each time: the
/// server may have just restarted).
fn episodes(runtime: &tokio::runtime::Runtime, neo4j: &PrivateNeo4j, tenant: &str) -> usize {
    let graph = neo4j_connect(runtime, &neo4j.address, &neo4j.password);
    let query = "MATCH (n:Episodic) WHERE n.tenant = $tenant RETURN toString(count(n))";
    neo4j_lines(runtime, &graph, &[query], tenant)[0].parse().unwrap()
}

#[test]
fn neo4j_killed_mid_run_and_restarted_ends_in_the_graph_of_a_run_without_the_fault() {
    let dir = TempDir::new("neo4j-outage");
    let neo4j = PrivateNeo4j::new(&dir.join("neo4j"));
    let started = Instant::now();
    let Some(server) = neo4j.start() else { return };
    eprintln!("Neo4j started in {:?}", started.elapsed());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let t0 = 1_700_000_000_000u64;
    let write = |tenant: &str| {
        let input = dir.join(&format!("{tenant}.jsonl"));
        std::fs::write(&input, self::input(tenant, t0)).unwrap();
        let path = dir.join(&format!("{tenant}.toml"));
        std::fs::write(&path, pipeline(&input, &neo4j.address, &neo4j.password)).unwrap();
        path
    };

    // Without a fault.
    let started = Instant::now();
    let report = run_pipeline(&load_pipeline(&write("clean"), &[]), 2);
    assert_eq!(report.sink_errors, 0);
    eprintln!("the run without a fault took {:?}", started.elapsed());
    let graph = neo4j_connect(&runtime, &neo4j.address, &neo4j.password);
    let expected = neo4j_lines(&runtime, &graph, &GRAPH, "clean");
    drop(graph);
    let all = episodes(&runtime, &neo4j, "clean");
    assert_eq!(all, LOGS as usize + 7, "every log and k8s event, once");
    assert!(
        expected.iter().any(|line| line.contains(" POTENTIAL_CAUSE ")),
        "incidents with causes: {expected:?}"
    );

    // The same events of another tenant; Neo4j is killed once part is written.
    let pipeline = load_pipeline(&write("faulty"), &[]);
    let run = std::thread::spawn(move || run_pipeline(&pipeline, 2));
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut written = 0;
    while written < all / 10 {
        assert!(Instant::now() < deadline, "the run wrote nothing in 60 s");
        std::thread::sleep(Duration::from_millis(50));
        written = episodes(&runtime, &neo4j, "faulty");
    }
    let mut server = server;
    server.kill().unwrap();
    server.wait().unwrap();
    assert!(written < all, "killed mid-run: {written} of {all} episodes written");
    std::thread::sleep(Duration::from_secs(2));
    assert!(!run.is_finished(), "the run waits for its graph sink");

    let restarted = Instant::now();
    let _server = neo4j.start().expect("Neo4j starts again");
    eprintln!("Neo4j started again in {:?}", restarted.elapsed());
    let report = run.join().unwrap();
    assert_eq!(report.sink_errors, 0, "every batch was written in the end");
    assert!(!dir.join("dead-letter.jsonl").exists(), "nothing refused");
    let graph = neo4j_connect(&runtime, &neo4j.address, &neo4j.password);
    assert_eq!(
        neo4j_lines(&runtime, &graph, &GRAPH, "faulty"),
        expected,
        "the graph after the outage equals the one without"
    );
}
