//! Helpers of the graph sink's tests: whether a server listens, reading a
//! tenant's graph back as sorted lines from Neo4j (Bolt) or FalkorDB (RESP),
//! and a Neo4j of a test's own that it may kill and start again.

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use pulse_core::cypher::{CypherValue, parameter_prefix};

use super::kafka::skip_unless_ci;
use super::process::{KillOnDrop, free_port};

/// Whether something listens at `address`; when nothing does, says so
/// loudly, and fails under `CI=true`.
pub fn reachable(what: &str, address: &str) -> bool {
    let open = address
        .parse::<SocketAddr>()
        .is_ok_and(|addr| TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok());
    if !open {
        skip_unless_ci(&format!("no {what} at {address}"));
    }
    open
}

/// The shared Neo4j's address and password (`PULSE_NEO4J_URI`,
/// `PULSE_NEO4J_PASSWORD`, with the test script's defaults).
pub fn neo4j_address() -> (String, String) {
    let address = std::env::var("PULSE_NEO4J_URI").unwrap_or_else(|_| "127.0.0.1:7687".to_owned());
    let password = std::env::var("PULSE_NEO4J_PASSWORD").unwrap_or_else(|_| "pulse-test-password".to_owned());
    (address, password)
}

/// The shared FalkorDB's URL (`PULSE_FALKORDB_URL`, default the test
/// script's `redis://127.0.0.1:6380`) and its `host:port`.
pub fn falkordb_url() -> (String, String) {
    let url = std::env::var("PULSE_FALKORDB_URL").unwrap_or_else(|_| "redis://127.0.0.1:6380".to_owned());
    let address = url.trim_start_matches("redis://").trim_end_matches('/').to_owned();
    (url, address)
}

/// Deletes every node (and its relationships) of `tenants` from `graph`:
/// what a test wrote to the shared Neo4j.
pub fn neo4j_delete_tenants(runtime: &tokio::runtime::Runtime, graph: &neo4rs::Graph, tenants: &[String]) {
    runtime
        .block_on(graph.run(
            neo4rs::query("MATCH (n) WHERE n.tenant IN $tenants DETACH DELETE n").param("tenants", tenants.to_vec()),
        ))
        .unwrap();
}

/// A Bolt connection to the Neo4j at `address` (`host:port`) as `neo4j`.
pub fn neo4j_connect(runtime: &tokio::runtime::Runtime, address: &str, password: &str) -> neo4rs::Graph {
    let config = neo4rs::ConfigBuilder::default()
        .uri(address)
        .user("neo4j")
        .password(password)
        .build()
        .unwrap();
    runtime.block_on(neo4rs::Graph::connect(config)).unwrap()
}

/// The strings `queries` return (each `RETURN <string>`, bound to
/// `$tenant`) on Neo4j, sorted.
pub fn neo4j_lines(
    runtime: &tokio::runtime::Runtime,
    graph: &neo4rs::Graph,
    queries: &[&str],
    tenant: &str,
) -> Vec<String> {
    runtime.block_on(async {
        let mut found = Vec::new();
        for cypher in queries {
            let cypher = format!("{cypher} AS line");
            let mut rows = graph
                .execute(neo4rs::query(&cypher).param("tenant", tenant))
                .await
                .unwrap();
            while let Some(row) = rows.next().await.unwrap() {
                found.push(row.get::<String>("line").unwrap());
            }
        }
        found.sort();
        found
    })
}

/// FalkorDB's answer to a read query: the first column of every row.
pub fn falkordb_column(connection: &mut redis::Connection, graph: &str, cypher: &str, tenant: &str) -> Vec<String> {
    let params = BTreeMap::from([("tenant".to_owned(), CypherValue::from(tenant))]);
    let query = parameter_prefix(&params).unwrap() + cypher;
    let reply: redis::Value = redis::cmd("GRAPH.RO_QUERY")
        .arg(graph)
        .arg(query)
        .query(connection)
        .unwrap();
    let redis::Value::Array(parts) = reply else {
        panic!("GRAPH.RO_QUERY answered {reply:?}")
    };
    let redis::Value::Array(rows) = &parts[1] else {
        panic!("no rows in {parts:?}")
    };
    rows.iter()
        .map(|row| match row {
            redis::Value::Array(cells) => redis::from_redis_value_ref::<String>(&cells[0]).unwrap(),
            other => panic!("a row is {other:?}"),
        })
        .collect()
}

/// The strings `queries` return on FalkorDB's `graph`, sorted.
pub fn falkordb_lines(connection: &mut redis::Connection, graph: &str, queries: &[&str], tenant: &str) -> Vec<String> {
    let mut found: Vec<String> = queries
        .iter()
        .flat_map(|cypher| falkordb_column(connection, graph, cypher, tenant))
        .collect();
    found.sort();
    found
}

/// A Neo4j 5 of a test's own: `scripts/jvm/neo4j/Neo4jServer.java` with the
/// jars of `PULSE_NEO4J_LIB` (the test script fetches them), on a free port,
/// keeping its data in `data` so that a restart has it back.
pub struct PrivateNeo4j {
    /// `127.0.0.1:port`.
    pub address: String,
    /// The `neo4j` user's password.
    pub password: String,
    port: u16,
    data: PathBuf,
}

impl PrivateNeo4j {
    /// A server on a free port keeping its data under `data`; not started.
    pub fn new(data: &Path) -> Self {
        let port = free_port();
        Self {
            address: format!("127.0.0.1:{port}"),
            password: "private-test-password".to_owned(),
            port,
            data: data.to_owned(),
        }
    }

    /// Starts it and waits until it says it is ready; `None` (loudly) when
    /// Neo4j's jars are not there, outside CI.
    pub fn start(&self) -> Option<KillOnDrop> {
        let lib = std::env::var_os("PULSE_NEO4J_LIB").map_or_else(
            || PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/pulse/jvm/neo4j"),
            PathBuf::from,
        );
        if !lib.join(".pom-sha256").exists() {
            skip_unless_ci(&format!("no Neo4j jars in {} (PULSE_NEO4J_LIB)", lib.display()));
            return None;
        }
        let log_path = self.data.with_extension("log");
        let log = std::fs::File::create(&log_path).unwrap();
        let mut child = KillOnDrop::new(
            Command::new("java")
                .args([
                    "-Xms64m",
                    "-Xmx384m",
                    "-XX:+UseSerialGC",
                    "-XX:TieredStopAtLevel=1",
                    "-cp",
                ])
                .arg(format!("{}/*", lib.display()))
                .arg(super::workspace_dir().join("scripts/jvm/neo4j/Neo4jServer.java"))
                .arg(self.port.to_string())
                .arg(&self.data)
                .arg(&self.password)
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .stdin(Stdio::null())
                .spawn()
                .expect("java starts"),
        );
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            let text = std::fs::read_to_string(&log_path).unwrap_or_default();
            if text.lines().any(|line| line.starts_with("ready")) {
                return Some(child);
            }
            if let Some(status) = child.try_wait().unwrap() {
                panic!("Neo4j on {} exited ({status}); its log:\n{text}", self.address);
            }
            assert!(
                Instant::now() < deadline,
                "Neo4j on {} was not ready in 180 s; its log: {}",
                self.address,
                log_path.display()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}
