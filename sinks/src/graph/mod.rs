//! Graph sink (`type = "graph"`): resources, their topology and what
//! happened to them, as a per-tenant property graph in Neo4j (Bolt) or
//! FalkorDB (RESP), chosen by the URI's scheme.
//!
//! Data layout (every node and relationship carries `tenant`; every
//! statement matches and creates only those of its tenant):
//!
//! | element | from | properties |
//! | --- | --- | --- |
//! | `(:Resource)` | any resource an event names | `tenant, kind, namespace, name` (the identity) |
//! | `(:Resource)-[:RUNS_ON\|OWNS\|SELECTS\|CALLS\|MOUNTS\|USES…]->(:Resource)` | `topology` events: `upsert` merges the edge, `delete` removes it | `tenant, updated_ms` (the time of the last upsert) |
//! | `(:Episodic)` | `k8s_event` and `log` events | `tenant, id` (identity: a hash of the event), `ts, event_kind, source, reason, severity, level, message` |
//! | `(:Episodic)-[:ABOUT]->(:Resource)` | the same | `tenant` |
//! | `(:Incident)` | rows of an `incidents` operator | `tenant, incident_id` (the identity), `opened_at`, `closed_at`, `symptom_*`, `top_cause`, `top_confidence`, … |
//! | `(:Incident)-[:SAME_INCIDENT]->(:Resource)` | the same: the resource whose error opened the incident | `tenant, role: "symptom"` |
//! | `(:Incident)-[:POTENTIAL_CAUSE]->(:Resource)` | the same: one per ranked cause | `tenant, rank, confidence, explanation, reason, event_ts` |
//!
//! The relation of a topology event becomes the relationship type (an
//! upper-case identifier; `ABOUT`, `SAME_INCIDENT` and `POTENTIAL_CAUSE`
//! are the sink's own). Metric events are left out (time series belong in
//! ClickHouse/Redis); dead letters and records that cannot be written (an
//! empty resource name, a bad relation, a NUL, a string over
//! `max_string_bytes`, a malformed incident row) become dead letters with
//! the reason. Incident rows are mapped by [`incident`]: a later report of
//! an incident replaces its edges (a re-ranking leaves the new ranking only).
//!
//! Writes are `MERGE` in `UNWIND $rows` statements of at most
//! `statement_rows` rows ([`model`]); the sink is ordered (batches in event
//! time order; within one, each edge's last change wins), and episode ids
//! are deterministic, so a replay ends in the same graph.
//!
//! Backends:
//! - [`neo4j`] (`bolt://`, `neo4j://`): Bolt 4.4 with `neo4rs`, one
//!   transaction per tenant and batch; one shared database (Community), or a
//!   database per tenant (Enterprise, `database_per_tenant`).
//! - [`falkordb`] (`falkordb://`, `redis://`): `GRAPH.QUERY` on one graph
//!   per tenant, parameters in the `CYPHER` prefix.

pub mod falkordb;
pub mod incident;
pub mod model;
pub mod neo4j;

use crate::runtime::{BatchWriter, SinkRecord, WriteError, Written};
use falkordb::FalkorDbBackend;
use neo4j::{Neo4jBackend, Neo4jTarget};

/// Where and how a graph writer writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GraphSettings {
    /// `bolt://host:port`, `neo4j://host:port` (Neo4j) or
    /// `falkordb://host:port`, `redis://host:port` (FalkorDB).
    pub uri: String,
    /// Neo4j: the user.
    pub user: String,
    /// Neo4j: the password.
    pub password: String,
    /// Neo4j: the database every tenant shares (without `database_per_tenant`).
    pub database: String,
    /// Neo4j Enterprise: a database per tenant, named `database_prefix` + tenant.
    pub database_per_tenant: bool,
    /// Neo4j: the prefix of per-tenant databases.
    pub database_prefix: String,
    /// FalkorDB: the prefix of per-tenant graph names.
    pub graph_prefix: String,
    /// Rows per `UNWIND` statement at most.
    pub statement_rows: usize,
    /// Longer strings are refused (dead letters).
    pub max_string_bytes: usize,
}

/// Which server a URI names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GraphBackendKind {
    /// Neo4j over Bolt.
    Neo4j,
    /// FalkorDB over RESP.
    FalkorDb,
}

/// Why a graph sink cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum GraphSinkError {
    /// A URI of no graph server pulse speaks to.
    #[error("`{0}` is not a graph URI: use bolt://, neo4j:// (Neo4j) or falkordb://, redis:// (FalkorDB)")]
    Scheme(String),
    /// A FalkorDB URI the Redis client cannot use.
    #[error("falkordb: {0}")]
    Redis(#[from] redis::RedisError),
}

impl GraphBackendKind {
    /// The backend of `uri`, by its scheme.
    pub fn of(uri: &str) -> Option<Self> {
        let (scheme, _) = uri.split_once("://")?;
        match scheme {
            "bolt" | "neo4j" => Some(Self::Neo4j),
            "falkordb" | "redis" => Some(Self::FalkorDb),
            _ => None,
        }
    }
}

/// The Redis URL of a FalkorDB URI (`falkordb://h:p` is `redis://h:p`).
pub fn falkordb_redis_url(uri: &str) -> String {
    match uri.strip_prefix("falkordb://") {
        Some(rest) => format!("redis://{rest}"),
        None => uri.to_owned(),
    }
}

enum Backend {
    Neo4j(Neo4jBackend),
    FalkorDb(FalkorDbBackend),
}

/// Writes events into the graph (one writer per sink).
///
/// # Examples
///
/// Planning is lazy: a writer for a FalkorDB on loopback is made without a
/// server; its first write connects.
///
/// ```
/// use pulse_sinks::graph::{GraphSettings, GraphWriter};
///
/// let settings = GraphSettings {
///     uri: "falkordb://127.0.0.1:6380".to_owned(),
///     user: "neo4j".to_owned(),
///     password: String::new(),
///     database: "neo4j".to_owned(),
///     database_per_tenant: false,
///     database_prefix: "pulse-".to_owned(),
///     graph_prefix: "pulse:".to_owned(),
///     statement_rows: 1000,
///     max_string_bytes: 65_536,
/// };
/// assert!(GraphWriter::new(settings.clone()).is_ok());
/// let ftp = GraphSettings { uri: "ftp://x".to_owned(), ..settings };
/// assert!(GraphWriter::new(ftp).is_err());
/// ```
pub struct GraphWriter {
    backend: Backend,
    settings: GraphSettings,
}

impl GraphWriter {
    /// A writer for `settings`; fails only for a URI no backend takes
    /// (connecting is lazy).
    pub fn new(settings: GraphSettings) -> Result<Self, GraphSinkError> {
        let backend = match GraphBackendKind::of(&settings.uri) {
            Some(GraphBackendKind::Neo4j) => Backend::Neo4j(Neo4jBackend::new(Neo4jTarget {
                uri: settings.uri.clone(),
                user: settings.user.clone(),
                password: settings.password.clone(),
                database: settings.database.clone(),
                database_per_tenant: settings.database_per_tenant.then(|| settings.database_prefix.clone()),
            })),
            Some(GraphBackendKind::FalkorDb) => Backend::FalkorDb(FalkorDbBackend::new(
                &falkordb_redis_url(&settings.uri),
                &settings.graph_prefix,
            )?),
            None => return Err(GraphSinkError::Scheme(settings.uri.clone())),
        };
        Ok(Self { backend, settings })
    }
}

impl BatchWriter for GraphWriter {
    async fn open(&mut self) -> Result<(), WriteError> {
        match &mut self.backend {
            Backend::Neo4j(neo4j) => neo4j.open().await,
            // Its graphs (and their indexes) are made per tenant, on first write.
            Backend::FalkorDb(_) => Ok(()),
        }
    }

    async fn write(&mut self, batch: &[SinkRecord]) -> Result<Written, WriteError> {
        let mut planned = model::plan(batch, self.settings.statement_rows, self.settings.max_string_bytes);
        if planned.skipped > 0 {
            metrics::counter!("pulse_graph_skipped_records_total").increment(planned.skipped as u64);
        }
        if let Backend::Neo4j(neo4j) = &self.backend {
            // Tenants without a database name (database per tenant) are refused.
            let refused: Vec<(String, String)> = planned
                .tenants
                .keys()
                .filter_map(|tenant| neo4j.admits(tenant).err().map(|reason| (tenant.clone(), reason)))
                .collect();
            for (tenant, reason) in refused {
                planned.tenants.remove(&tenant);
                for (index, record) in batch.iter().enumerate() {
                    if record.tenant() == Some(tenant.as_str()) && !planned.rejected.iter().any(|(i, _)| *i == index) {
                        planned.rejected.push((index, reason.clone()));
                    }
                }
            }
        }
        for (tenant, statements) in &planned.tenants {
            match &mut self.backend {
                Backend::Neo4j(neo4j) => neo4j.run(tenant, statements).await?,
                Backend::FalkorDb(falkordb) => falkordb.run(tenant, statements).await?,
            }
        }
        Ok(Written {
            rejected: planned.rejected,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scheme_picks_the_backend() {
        assert_eq!(
            GraphBackendKind::of("bolt://127.0.0.1:7687"),
            Some(GraphBackendKind::Neo4j)
        );
        assert_eq!(GraphBackendKind::of("neo4j://127.0.0.1"), Some(GraphBackendKind::Neo4j));
        assert_eq!(
            GraphBackendKind::of("falkordb://127.0.0.1:6380"),
            Some(GraphBackendKind::FalkorDb)
        );
        assert_eq!(
            GraphBackendKind::of("redis://127.0.0.1:6380"),
            Some(GraphBackendKind::FalkorDb)
        );
        assert_eq!(GraphBackendKind::of("http://127.0.0.1"), None);
        assert_eq!(GraphBackendKind::of("127.0.0.1:7687"), None);
        assert_eq!(
            falkordb_redis_url("falkordb://127.0.0.1:6380"),
            "redis://127.0.0.1:6380"
        );
    }
}
