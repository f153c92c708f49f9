//! Neo4j over Bolt with `neo4rs`, the driver the graph sink will use: the
//! writes it makes (`UNWIND $rows … MERGE` in one transaction) land, are
//! idempotent, and a rolled-back transaction leaves nothing behind.
//!
//! The test script (`scripts/test.sh`) starts Neo4j 5 Community (from Maven
//! Central, `scripts/jvm/neo4j/`) on 127.0.0.1:7687 and sets `PULSE_NEO4J_URI`
//! and `PULSE_NEO4J_PASSWORD`. Without a server this test skips with a loud
//! message, except under `CI=true`, where a missing server is a failure.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use neo4rs::{BoltType, ConfigBuilder, Graph, query};

/// A connection to the test script's Neo4j, or `None` (after saying so) when
/// nothing listens on its address.
async fn graph() -> Option<Graph> {
    let uri = std::env::var("PULSE_NEO4J_URI").unwrap_or_else(|_| "127.0.0.1:7687".to_owned());
    let address: SocketAddr = uri.parse().expect("PULSE_NEO4J_URI is host:port");
    if TcpStream::connect_timeout(&address, Duration::from_secs(1)).is_err() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "no Neo4j at {uri}: CI requires one (scripts/test.sh starts it)"
        );
        let warning = format!("\n*** SKIPPED: no Neo4j at {uri}; run ./scripts/test.sh to start one ***\n");
        let _ = std::io::Write::write_all(&mut std::io::stderr(), warning.as_bytes());
        return None;
    }
    let password = std::env::var("PULSE_NEO4J_PASSWORD").unwrap_or_else(|_| "pulse-test-password".to_owned());
    let config = ConfigBuilder::default()
        .uri(uri.as_str())
        .user("neo4j")
        .password(password.as_str())
        .db("neo4j")
        .build()
        .unwrap();
    Some(Graph::connect(config).await.expect("connecting to Neo4j over Bolt"))
}

/// Rows as the graph sink will send them: one map per resource.
fn resources(names: &[&str]) -> BoltType {
    let rows: Vec<BoltType> = names
        .iter()
        .map(|name| {
            let row: HashMap<&str, BoltType> = HashMap::from([
                ("kind", "Pod".into()),
                ("namespace", "prod".into()),
                ("name", (*name).into()),
            ]);
            row.into()
        })
        .collect();
    rows.into()
}

const MERGE: &str = "UNWIND $rows AS r \
     MERGE (n:Resource {run: $run, kind: r.kind, namespace: r.namespace, name: r.name}) \
     ON CREATE SET n.writes = 1 ON MATCH SET n.writes = n.writes + 1";

/// The names of the resources of `run`, sorted, with how often each was written.
async fn written(graph: &Graph, run: &str) -> Vec<(String, i64)> {
    let mut rows = graph
        .execute(
            query("MATCH (n:Resource {run: $run}) RETURN n.name AS name, n.writes AS writes ORDER BY name")
                .param("run", run),
        )
        .await
        .unwrap();
    let mut found = Vec::new();
    while let Some(row) = rows.next().await.unwrap() {
        found.push((row.get("name").unwrap(), row.get("writes").unwrap()));
    }
    found
}

#[tokio::test]
async fn unwind_merge_commits_idempotently_and_a_rollback_leaves_nothing() {
    let Some(graph) = graph().await else { return };
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
    let run = format!("run-{}-{nanos}", std::process::id());

    // Two batches of one transaction each; the second repeats a resource, as a
    // replay after a crash would, and MERGE keeps one node of it.
    for batch in [&["frontend-1", "api-1"][..], &["api-1", "db-0"][..]] {
        let mut txn = graph.start_txn().await.unwrap();
        txn.run(query(MERGE).param("run", run.as_str()).param("rows", resources(batch)))
            .await
            .unwrap();
        txn.commit().await.unwrap();
    }
    assert_eq!(
        written(&graph, &run).await,
        vec![
            ("api-1".to_owned(), 2),
            ("db-0".to_owned(), 1),
            ("frontend-1".to_owned(), 1)
        ],
        "three resources, api-1 merged twice"
    );

    // Inside a transaction the write is visible to that transaction; rolled
    // back, it is gone for everyone.
    let rolled_back = format!("{run}-rolled-back");
    let mut txn = graph.start_txn().await.unwrap();
    txn.run(
        query(MERGE)
            .param("run", rolled_back.as_str())
            .param("rows", resources(&["cache-0", "cache-1"])),
    )
    .await
    .unwrap();
    let mut inside = txn
        .execute(query("MATCH (n:Resource {run: $run}) RETURN count(n) AS n").param("run", rolled_back.as_str()))
        .await
        .unwrap();
    let seen: i64 = inside.next(txn.handle()).await.unwrap().unwrap().get("n").unwrap();
    assert_eq!(seen, 2, "the transaction sees its own writes");
    drop(inside);
    txn.rollback().await.unwrap();
    assert!(
        written(&graph, &rolled_back).await.is_empty(),
        "a rollback leaves nothing"
    );
    assert_eq!(written(&graph, &run).await.len(), 3, "and the committed batches stay");
}
