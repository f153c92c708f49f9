//! The Neo4j backend of the graph sink: Bolt 4.4 with `neo4rs`, one
//! transaction per tenant and batch.
//!
//! On a single-database server (Neo4j Community) every tenant's nodes and
//! relationships share the configured `database`, each carrying `tenant`
//! and every statement confined by `$tenant`. With `database_per_tenant`
//! (Neo4j Enterprise, which hosts several databases) tenant `T` gets the
//! database `<database_prefix>T` ([`tenant_database`]), created on first
//! sight with `CREATE DATABASE … IF NOT EXISTS`; the statements are the same.

use std::collections::HashSet;
use std::time::Duration;

use neo4rs::{BoltType, ConfigBuilder, Graph, Query};
use pulse_core::cypher::CypherValue;

use super::model::Statement;
use crate::runtime::WriteError;

/// How long connecting, or one transaction, may take.
const TIMEOUT: Duration = Duration::from_secs(30);

/// The indexes that keep `MERGE` from scanning every node.
const INDEXES: [&str; 3] = [
    "CREATE INDEX pulse_resource IF NOT EXISTS FOR (n:Resource) ON (n.tenant, n.kind, n.namespace, n.name)",
    "CREATE INDEX pulse_episodic IF NOT EXISTS FOR (n:Episodic) ON (n.tenant, n.id)",
    "CREATE INDEX pulse_incident IF NOT EXISTS FOR (n:Incident) ON (n.tenant, n.incident_id)",
];

/// Where a Neo4j backend writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Neo4jTarget {
    /// `bolt://host:port` or `neo4j://host:port`.
    pub uri: String,
    /// The user (`neo4j`).
    pub user: String,
    /// Its password.
    pub password: String,
    /// The database of every tenant (single-database servers).
    pub database: String,
    /// With a database per tenant: the prefix of their names.
    pub database_per_tenant: Option<String>,
}

/// A Neo4j connection pool, opened on first use.
pub struct Neo4jBackend {
    target: Neo4jTarget,
    graph: Option<Graph>,
    /// Databases whose indexes exist (and which exist, per tenant).
    prepared: HashSet<String>,
}

/// The database of `tenant` with a database per tenant: `prefix` then the
/// tenant, which must be lower-case letters, digits and `-` so that the name
/// is one Neo4j accepts (3 to 63 of `a-z0-9.-`, starting with a letter) and
/// no two tenants share one. Other tenants are refused, not renamed.
pub fn tenant_database(prefix: &str, tenant: &str) -> Result<String, String> {
    let name = format!("{prefix}{tenant}");
    let tenant_ok = !tenant.is_empty()
        && tenant
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    let name_ok = (3..=63).contains(&name.len()) && name.starts_with(|c: char| c.is_ascii_lowercase());
    if tenant_ok && name_ok {
        Ok(name)
    } else {
        Err(format!(
            "tenant `{tenant}` cannot name a Neo4j database (`{prefix}` + lower-case letters, digits and `-`, at most 63 in all)"
        ))
    }
}

impl Neo4jBackend {
    /// A backend writing to `target`; connects on first use.
    pub fn new(target: Neo4jTarget) -> Self {
        Self {
            target,
            graph: None,
            prepared: HashSet::new(),
        }
    }

    /// Whether `tenant` can be written (has a database name, when it needs one).
    pub fn admits(&self, tenant: &str) -> Result<(), String> {
        match &self.target.database_per_tenant {
            Some(prefix) => tenant_database(prefix, tenant).map(drop),
            None => Ok(()),
        }
    }

    async fn graph(&mut self) -> Result<Graph, WriteError> {
        if let Some(graph) = &self.graph {
            return Ok(graph.clone());
        }
        let config = ConfigBuilder::default()
            .uri(self.target.uri.as_str())
            .user(self.target.user.as_str())
            .password(self.target.password.as_str())
            .db(self.target.database.as_str())
            .max_connections(4)
            .build()
            .map_err(|error| WriteError::Fatal(format!("neo4j: {error}")))?;
        let graph = tokio::time::timeout(TIMEOUT, Graph::connect(config))
            .await
            .map_err(|_| WriteError::retry("neo4j: connecting timed out"))?
            .map_err(|error| WriteError::retry(format!("neo4j: {error}")))?;
        self.graph = Some(graph.clone());
        Ok(graph)
    }

    /// Creates the indexes of the shared database (nothing per tenant yet).
    pub async fn open(&mut self) -> Result<(), WriteError> {
        if self.target.database_per_tenant.is_none() {
            let database = self.target.database.clone();
            self.prepare(&database, false).await?;
        }
        Ok(())
    }

    async fn prepare(&mut self, database: &str, create: bool) -> Result<(), WriteError> {
        if self.prepared.contains(database) {
            return Ok(());
        }
        let graph = self.graph().await?;
        let work = async {
            if create {
                // A name checked by `tenant_database`: safe to paste, quoted anyway.
                graph
                    .run_on(
                        "system",
                        neo4rs::query(&format!("CREATE DATABASE `{database}` IF NOT EXISTS WAIT")),
                    )
                    .await?;
            }
            for index in INDEXES {
                graph.run_on(database, neo4rs::query(index)).await?;
            }
            Ok::<(), neo4rs::Error>(())
        };
        self.finish(work.await)?;
        self.prepared.insert(database.to_owned());
        Ok(())
    }

    /// Runs `statements` of `tenant` in one transaction.
    pub async fn run(&mut self, tenant: &str, statements: &[Statement]) -> Result<(), WriteError> {
        let database = match &self.target.database_per_tenant {
            Some(prefix) => {
                let database = tenant_database(prefix, tenant).map_err(WriteError::Fatal)?;
                self.prepare(&database, true).await?;
                database
            }
            None => self.target.database.clone(),
        };
        let graph = self.graph().await?;
        let transaction = async {
            let mut txn = graph.start_txn_on(database.as_str()).await?;
            for statement in statements {
                txn.run(query(statement)).await?;
            }
            txn.commit().await
        };
        let outcome = tokio::time::timeout(TIMEOUT, transaction)
            .await
            .map_err(|_| WriteError::retry("neo4j: the transaction timed out"))?;
        self.finish(outcome)
    }

    /// A failed call: the next one connects anew (the pool may hold dead
    /// connections after a server restart), and the batch is tried again.
    fn finish(&mut self, outcome: Result<(), neo4rs::Error>) -> Result<(), WriteError> {
        outcome.map_err(|error| {
            self.graph = None;
            WriteError::retry(format!("neo4j: {error}"))
        })
    }
}

fn query(statement: &Statement) -> Query {
    statement
        .params
        .iter()
        .fold(neo4rs::query(&statement.cypher), |query, (name, value)| {
            query.param(name, bolt(value))
        })
}

/// A parameter as Bolt sends it.
fn bolt(value: &CypherValue) -> BoltType {
    match value {
        CypherValue::Null => Option::<i64>::None.into(),
        CypherValue::Bool(b) => (*b).into(),
        CypherValue::Int(int) => (*int).into(),
        CypherValue::Float(float) => (*float).into(),
        CypherValue::Str(text) => text.as_str().into(),
        CypherValue::List(items) => items.iter().map(bolt).collect::<Vec<_>>().into(),
        CypherValue::Map(map) => map
            .iter()
            .map(|(key, value)| (key.as_str(), bolt(value)))
            .collect::<std::collections::HashMap<_, _>>()
            .into(),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn tenant_databases_follow_neo4j_naming_and_cannot_collide() {
        assert_eq!(tenant_database("pulse-", "acme").unwrap(), "pulse-acme");
        assert_eq!(tenant_database("pulse-", "team-7").unwrap(), "pulse-team-7");
        for bad in ["", "Acme", "a_b", "a.b", "a b", "a`b", &"x".repeat(60)] {
            assert!(tenant_database("pulse-", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn parameters_keep_their_bolt_types() {
        let row = CypherValue::Map(BTreeMap::from([
            ("n".to_owned(), CypherValue::Int(3)),
            ("none".to_owned(), CypherValue::Null),
        ]));
        let BoltType::Map(map) = bolt(&row) else {
            panic!("a map")
        };
        assert!(matches!(map.get::<i64>("n"), Ok(3)));
        assert!(matches!(
            map.value.get(&neo4rs::BoltString::from("none")),
            Some(BoltType::Null(_))
        ));
    }
}
