//! The FalkorDB backend of the graph sink: the same Cypher over RESP with
//! the `redis` crate, `GRAPH.QUERY <tenant's graph> "CYPHER … <statement>"`.
//!
//! One graph (a Redis key) per tenant, named by
//! [`tenant_graph`](pulse_core::cypher::tenant_graph) (`pulse:acme`), so a
//! tenant's data is apart from the others' by the server itself; nodes and
//! relationships carry `tenant` all the same, as on Neo4j. Parameters travel
//! in the `CYPHER name=value` prefix ([`pulse_core::cypher`]), since
//! `GRAPH.QUERY` takes no separate parameters. FalkorDB's Bolt port is never
//! used (see SERVICES.md: it ignores the database, crashes on large maps).
//! Each statement is atomic on the server; a retried batch runs them all
//! again, which `MERGE` makes idempotent.

use std::collections::HashSet;
use std::time::Duration;

use pulse_core::cypher::{parameter_prefix, tenant_graph};
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client};

use super::model::Statement;
use crate::redis::client_without_delay;
use crate::runtime::WriteError;

/// How long connecting, or one statement, may take.
const TIMEOUT: Duration = Duration::from_secs(30);

/// The indexes that keep `MERGE` from scanning every node, made once per
/// tenant graph (FalkorDB refuses an index that exists: that error is
/// expected). Never on `namespace`: FalkorDB's index leaves empty strings
/// out, and a `MERGE` looking up a cluster-scoped resource (namespace `""`)
/// through it would not find the node and make a second one.
const INDEXES: [&str; 3] = [
    "CREATE INDEX FOR (n:Resource) ON (n.name)",
    "CREATE INDEX FOR (n:Episodic) ON (n.id)",
    "CREATE INDEX FOR (n:Incident) ON (n.incident_id)",
];

/// A FalkorDB connection, opened on first use.
pub struct FalkorDbBackend {
    client: Client,
    connection: Option<MultiplexedConnection>,
    graph_prefix: String,
    /// Tenant graphs whose indexes exist.
    indexed: HashSet<String>,
}

impl FalkorDbBackend {
    /// A backend for the server at `redis_url` (`redis://host:port`), writing
    /// tenant `T`'s graph to the key `graph_prefix` + `T`.
    pub fn new(redis_url: &str, graph_prefix: &str) -> Result<Self, redis::RedisError> {
        Ok(Self {
            client: client_without_delay(redis_url)?,
            connection: None,
            graph_prefix: graph_prefix.to_owned(),
            indexed: HashSet::new(),
        })
    }

    async fn connection(&mut self) -> Result<MultiplexedConnection, WriteError> {
        if let Some(connection) = &self.connection {
            return Ok(connection.clone());
        }
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(TIMEOUT))
            .set_response_timeout(Some(TIMEOUT));
        let connection = self
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(|error| WriteError::retry(format!("falkordb: {error}")))?;
        self.connection = Some(connection.clone());
        Ok(connection)
    }

    /// Runs `statements` on `tenant`'s graph, in order.
    pub async fn run(&mut self, tenant: &str, statements: &[Statement]) -> Result<(), WriteError> {
        let graph = tenant_graph(&self.graph_prefix, tenant);
        let mut connection = self.connection().await?;
        if !self.indexed.contains(&graph) {
            for index in INDEXES {
                match graph_query(&mut connection, &graph, index.to_owned()).await {
                    Ok(()) => {}
                    Err(error) if !(error.is_io_error() || error.is_timeout() || error.is_connection_dropped()) => {
                        tracing::debug!(%graph, %error, "index exists");
                    }
                    Err(error) => return Err(self.failed(error)),
                }
            }
            self.indexed.insert(graph.clone());
        }
        for statement in statements {
            // The model checks what it puts in parameters (no NUL, no NaN):
            // a parameter that cannot be written is a bug, not a bad record.
            let prefix =
                parameter_prefix(&statement.params).map_err(|error| WriteError::Fatal(format!("falkordb: {error}")))?;
            if let Err(error) = graph_query(&mut connection, &graph, prefix + &statement.cypher).await {
                return Err(self.failed(error));
            }
        }
        Ok(())
    }

    /// A failed call: the next one connects anew, and the batch is tried again.
    fn failed(&mut self, error: redis::RedisError) -> WriteError {
        self.connection = None;
        WriteError::retry(format!("falkordb: {error}"))
    }
}

async fn graph_query(
    connection: &mut MultiplexedConnection,
    graph: &str,
    query: String,
) -> Result<(), redis::RedisError> {
    redis::cmd("GRAPH.QUERY")
        .arg(graph)
        .arg(query)
        .arg("--compact")
        .query_async::<redis::Value>(connection)
        .await
        .map(drop)
}
