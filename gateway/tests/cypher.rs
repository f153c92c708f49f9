//! `POST /api/v1/query/cypher` against the running FalkorDB (127.0.0.1:6380,
//! `PULSE_FALKORDB_URL`): each tenant reads its own graph and nothing else,
//! whatever its query or parameters say; writes are refused; rows are
//! capped; hostile parameter strings come back as they went in; Neo4j and a
//! missing graph answer 403 `graph_queries_off` with the reason. Skips loudly without FalkorDB, fails under `CI=true`.

mod common;

use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use axum::http::StatusCode;
use common::{Backend, TestApp};
use pulse_core::cypher::tenant_graph;
use pulse_gateway::GraphQueryConfig;
use serde_json::{Value, json};

fn falkordb_url() -> Option<String> {
    let url = std::env::var("PULSE_FALKORDB_URL").unwrap_or_else(|_| "redis://127.0.0.1:6380".to_owned());
    let address = url.trim_start_matches("redis://").trim_end_matches('/').to_owned();
    let reachable = address
        .parse::<SocketAddr>()
        .is_ok_and(|addr| TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok());
    match (reachable, std::env::var("CI").as_deref()) {
        (true, _) => Some(url),
        (false, Ok("true")) => panic!("no FalkorDB at {url}: CI requires one (scripts/test.sh starts it)"),
        (false, _) => {
            let warning = format!("\n*** SKIPPED: no FalkorDB at {url}; run ./scripts/test.sh to start one ***\n");
            let _ = std::io::Write::write_all(&mut std::io::stderr(), warning.as_bytes());
            None
        }
    }
}

/// The first column of every row of a successful reply.
fn first_column(reply: &common::Reply) -> Vec<Value> {
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    reply.body["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row[0].clone())
        .collect()
}

#[tokio::test]
async fn each_tenant_reads_only_its_own_graph_and_cannot_write() {
    let Some(url) = falkordb_url() else { return };
    let prefix = format!("pulse-test-{}-{}:", std::process::id(), common::unique());
    let graph_config = GraphQueryConfig {
        uri: Some(url.replace("redis://", "falkordb://")),
        graph_prefix: prefix.clone(),
        max_rows: 2,
        ..GraphQueryConfig::default()
    };
    let app = TestApp::with(Backend::Embedded, |config| config.graph = graph_config)
        .await
        .unwrap();
    let a = app.register("grapha").await;
    let b = app.register("graphb").await;

    // Each tenant's graph as the graph sink writes it: a graph per tenant.
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    for (tenant, names) in [
        (&a.tenant_id, ["a-1", "a-2", "a-3"]),
        (&b.tenant_id, ["b-1", "b-2", "b-3"]),
    ] {
        let create = format!(
            "UNWIND ['{}', '{}', '{}'] AS name CREATE (:Resource {{tenant: '{tenant}', kind: 'Pod', namespace: 'prod', name: name}})",
            names[0], names[1], names[2]
        );
        let _: redis::Value = redis::cmd("GRAPH.QUERY")
            .arg(tenant_graph(&prefix, tenant))
            .arg(create)
            .query_async(&mut connection)
            .await
            .unwrap();
    }

    let query = |auth: String, body: Value| {
        let app = &app;
        async move { app.post("/api/v1/query/cypher", &auth, body).await }
    };
    let sorted = json!({"query": "MATCH (n:Resource) RETURN n.name ORDER BY n.name"});
    let reply = query(a.access.clone(), sorted.clone()).await;
    assert_eq!(first_column(&reply), [json!("a-1"), json!("a-2")]);
    assert_eq!(reply.body["columns"], json!(["n.name"]));
    assert_eq!(reply.body["truncated"], true, "three rows, max_rows 2");
    assert_eq!(
        first_column(&query(b.access.clone(), sorted).await),
        [json!("b-1"), json!("b-2")]
    );

    // B asks for A's nodes by every route the query language offers.
    for body in [
        json!({"query": "MATCH (n {tenant: $tenant}) RETURN n.name", "params": {"tenant": a.tenant_id}}),
        json!({"query": "MATCH (n) WHERE n.name STARTS WITH 'a-' RETURN n.name"}),
        json!({"query": "MATCH (n) RETURN DISTINCT n.tenant"}),
    ] {
        let seen = first_column(&query(b.access.clone(), body.clone()).await);
        assert!(
            seen.iter().all(|value| value != "a-1" && value != &json!(a.tenant_id)),
            "{body}: {seen:?}"
        );
    }
    for body in [
        json!({"query": format!("USE `{}` MATCH (n) RETURN n", tenant_graph(&prefix, &a.tenant_id))}),
        json!({"query": "MATCH (n) DETACH DELETE n"}),
        json!({"query": "CREATE (:Resource {name: 'x'})"}),
        json!({"query": "MATCH (n) SET n.name = 'x'"}),
        json!({"query": "CALL db.idx.fulltext.createNodeIndex('Resource', 'name')"}),
    ] {
        let reply = query(b.access.clone(), body.clone()).await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{body}: {reply:?}");
    }
    let everything = json!({"query": "MATCH (n) RETURN count(n)"});
    assert_eq!(
        first_column(&query(a.access.clone(), everything).await),
        [json!(3)],
        "nothing was written"
    );

    // Nodes, relationships and paths come back as objects, values typed.
    let _: redis::Value = redis::cmd("GRAPH.QUERY")
        .arg(tenant_graph(&prefix, &a.tenant_id))
        .arg("MATCH (p:Resource {name: 'a-1'}) CREATE (p)-[:RUNS_ON {tenant: 'x', weight: 0.5}]->(:Node {name: 'n-1', ready: true})")
        .query_async(&mut connection)
        .await
        .unwrap();
    let reply = query(
        a.access.clone(),
        json!({"query": "MATCH path = (p:Resource)-[e:RUNS_ON]->(n:Node) RETURN p, e, n.ready, path, {w: e.weight}"}),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    let row = &reply.body["rows"][0];
    assert_eq!(row[0]["labels"], json!(["Resource"]), "{row}");
    assert_eq!(row[0]["properties"]["name"], "a-1", "{row}");
    assert_eq!(row[0]["properties"]["kind"], "Pod", "{row}");
    assert_eq!(row[1]["type"], "RUNS_ON", "{row}");
    assert_eq!(row[1]["start"], row[0]["id"], "{row}");
    assert_eq!(row[1]["properties"]["weight"], json!(0.5), "{row}");
    assert_eq!(row[2], json!(true), "{row}");
    assert_eq!(row[3]["nodes"][1]["properties"]["name"], "n-1", "{row}");
    assert_eq!(row[3]["relationships"][0]["type"], "RUNS_ON", "{row}");
    assert_eq!(row[4], json!({"w": 0.5}), "{row}");

    // Parameters are values, never query text.
    let hostile = "it's \\ a' RETURN 1 // */ } \n MATCH (n) DETACH DELETE n";
    let reply = query(
        a.access.clone(),
        json!({"query": "RETURN $s", "params": {"s": hostile}}),
    )
    .await;
    assert_eq!(first_column(&reply), [json!(hostile)]);
    let reply = query(a.access.clone(), json!({"query": "RETURN $x", "params": {"x y": 1}})).await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{reply:?}");
    let reply = query(a.access.clone(), json!({"query": "MATCH (n RETURN n"})).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{reply:?}");

    // A key without read scope reads nothing.
    let (write_only, _) = app.api_key(&a, &["write"]).await;
    let reply = query(write_only, json!({"query": "MATCH (n) RETURN n.name"})).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{reply:?}");

    // A tenant without a graph yet finds nothing.
    let c = app.register("graphc").await;
    let reply = query(c.access.clone(), json!({"query": "MATCH (n) RETURN n"})).await;
    assert!(first_column(&reply).is_empty());

    for tenant in [&a.tenant_id, &b.tenant_id] {
        let _: () = redis::cmd("GRAPH.DELETE")
            .arg(tenant_graph(&prefix, tenant))
            .query_async(&mut connection)
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn without_falkordb_the_endpoint_says_why_it_is_off() {
    for uri in [None, Some("bolt://127.0.0.1:7687".to_owned())] {
        let graph = GraphQueryConfig {
            uri: uri.clone(),
            ..GraphQueryConfig::default()
        };
        let app = TestApp::with(Backend::Embedded, |config| config.graph = graph)
            .await
            .unwrap();
        let a = app.register("nograph").await;
        let reply = app
            .post(
                "/api/v1/query/cypher",
                &a.access,
                json!({"query": "MATCH (n) RETURN n"}),
            )
            .await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{uri:?}: {reply:?}");
        assert_eq!(reply.body["error"]["code"], "graph_queries_off");
        let message = reply.body["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("FalkorDB") || message.contains("falkordb"),
            "{message}"
        );
    }
}
