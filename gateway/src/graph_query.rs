//! `POST /api/v1/query/cypher`: a read-only Cypher query against the
//! caller's own tenant graph (read scope), as the graph sink writes it.
//!
//! Only the FalkorDB backend serves it: there every tenant has a graph of
//! its own (a Redis key, [`tenant_graph`]), the query runs with
//! `GRAPH.RO_QUERY` on the caller's graph and nothing else, so whatever the
//! query says it cannot see another tenant's data, and the server itself
//! refuses writes. On Neo4j Community every tenant shares one database and
//! arbitrary Cypher cannot be confined to one tenant's nodes, so the
//! endpoint is off for a `bolt://` or `neo4j://` graph, and when no graph is
//! configured (`[gateway.graph] uri`): 403 `graph_queries_off` with the
//! reason (a refusal by configuration, not a server fault, so not a 5xx).
//!
//! Write clauses (`CREATE`, `MERGE`, `SET`, `DELETE`, `DETACH`, `REMOVE`,
//! `DROP`, `LOAD CSV`, `FOREACH`), `USE` and procedure calls other than the
//! schema listings (`db.labels`, `db.relationshipTypes`, `db.propertyKeys`)
//! are refused with 403 before the query is sent, outside string literals
//! and comments (a map key spelled like one is refused too: conservative).
//! Parameters (`params`) are written into the `CYPHER` prefix by
//! [`pulse_core::cypher`], which escapes strings. The server stops the query
//! after `timeout_ms` (504), and at most `max_rows` rows are returned
//! (`truncated` says when there were more). Values are typed JSON; nodes,
//! relationships and paths are objects ([`crate::graph_reply`]).

use std::collections::BTreeMap;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use pulse_core::cypher::{CypherValue, parameter_prefix, tenant_graph};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::auth::{Principal, Scope};
use crate::config::GraphQueryConfig;
use crate::error::AppError;
use crate::extract::JsonBody;
use crate::graph_reply::{SchemaNames, cell, needs_names, plain};
use crate::state::AppState;

/// Clauses that change the graph or leave it, refused with 403.
const REFUSED: [&str; 11] = [
    "CREATE", "MERGE", "SET", "DELETE", "DETACH", "REMOVE", "DROP", "LOAD", "FOREACH", "USE", "CALL",
];

/// The procedures `CALL` may name: schema listings.
const READ_PROCEDURES: [&str; 3] = ["db.labels", "db.relationshiptypes", "db.propertykeys"];

/// A read-only Cypher query.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CypherRequest {
    /// The query, e.g. `MATCH (p:Resource {kind: $kind}) RETURN p.name`.
    pub query: String,
    /// Its parameters by name (strings, numbers, booleans, null, lists, maps).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub params: serde_json::Map<String, Value>,
}

/// What a query returned.
#[derive(Serialize, ToSchema)]
pub struct CypherResult {
    /// The column names.
    pub columns: Vec<String>,
    /// The rows, one value per column: typed JSON values, nodes as
    /// `{"id", "labels", "properties"}`, relationships as
    /// `{"id", "type", "start", "end", "properties"}`, paths as
    /// `{"nodes", "relationships"}`.
    #[schema(value_type = Vec<Vec<Object>>)]
    pub rows: Vec<Vec<Value>>,
    /// Whether there were more rows than `max_rows`.
    pub truncated: bool,
}

/// Runs a read-only Cypher query on the caller's tenant graph (read scope;
/// FalkorDB only).
#[utoipa::path(post, path = "/api/v1/query/cypher", tag = "query", request_body = CypherRequest,
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = CypherResult),
              (status = 400, description = "the query does not parse"),
              (status = 403, description = "a write clause, `USE` or a procedure call; a token without read scope; \
                  or graph queries are off: no graph is configured, or it is Neo4j (one database for every tenant)"),
              (status = 422, description = "a parameter name or value Cypher cannot take"),
              (status = 503, description = "the graph server does not answer"),
              (status = 504, description = "the query ran out of time")))]
pub async fn cypher(
    State(state): State<AppState>,
    principal: Principal,
    JsonBody(request): JsonBody<CypherRequest>,
) -> Result<Json<CypherResult>, AppError> {
    principal.require(Scope::Read)?;
    let config = &state.config.graph;
    let url = falkordb_url(config)?;
    refuse_writes(&request.query)?;
    let params = request
        .params
        .iter()
        .map(|(name, value)| Ok((name.clone(), CypherValue::from_json(name, value)?)))
        .collect::<Result<BTreeMap<_, _>, pulse_core::cypher::CypherParamError>>()
        .and_then(|params| parameter_prefix(&params))
        .map_err(|error| AppError::invalid(error.to_string()))?;
    let graph = tenant_graph(&config.graph_prefix, &principal.tenant);
    let mut connection = connect(&url, config.timeout_ms).await?;
    let reply = run(&mut connection, &graph, params + &request.query, config.timeout_ms).await?;
    let names = match needs_names(&reply) {
        true => schema_names(&mut connection, &graph, config.timeout_ms).await?,
        false => SchemaNames::default(),
    };
    Ok(Json(result(reply, &names, config.max_rows)))
}

/// The graph's label, relationship type and property key names (the
/// compact reply numbers them).
async fn schema_names(
    connection: &mut redis::aio::MultiplexedConnection,
    graph: &str,
    timeout_ms: u64,
) -> Result<SchemaNames, AppError> {
    Ok(SchemaNames {
        labels: listing(connection, graph, "db.labels", timeout_ms).await?,
        relationship_types: listing(connection, graph, "db.relationshipTypes", timeout_ms).await?,
        property_keys: listing(connection, graph, "db.propertyKeys", timeout_ms).await?,
    })
}

/// The names a schema procedure lists, in order (their numbers).
async fn listing(
    connection: &mut redis::aio::MultiplexedConnection,
    graph: &str,
    procedure: &str,
    timeout_ms: u64,
) -> Result<Vec<String>, AppError> {
    let reply = run(connection, graph, format!("CALL {procedure}()"), timeout_ms).await?;
    let rows = result(reply, &SchemaNames::default(), usize::MAX).rows;
    Ok(rows
        .into_iter()
        .map(|row| {
            row.into_iter()
                .next()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default()
        })
        .collect())
}

/// The Redis URL of the configured graph, or why there is none to query.
fn falkordb_url(config: &GraphQueryConfig) -> Result<String, AppError> {
    let not_offered = |reason: String| AppError::new(StatusCode::FORBIDDEN, "graph_queries_off", reason);
    let Some(uri) = &config.uri else {
        return Err(not_offered(
            "no graph is configured: set [gateway.graph] uri = \"falkordb://127.0.0.1:6380\"".into(),
        ));
    };
    match uri.split_once("://") {
        Some(("falkordb", rest)) => Ok(format!("redis://{rest}")),
        Some(("redis" | "rediss", _)) => Ok(uri.clone()),
        _ => Err(not_offered(format!(
            "Cypher queries are offered on FalkorDB only: {uri} is a Neo4j server, where every tenant shares one \
             database and a query cannot be confined to one tenant's graph"
        ))),
    }
}

/// 403 when the query holds a clause that writes or reaches outside the
/// tenant's graph. Words are read outside strings, backquoted names and comments.
pub fn refuse_writes(query: &str) -> Result<(), AppError> {
    let words = words(query);
    for (i, word) in words.iter().enumerate() {
        let upper = word.to_ascii_uppercase();
        if !REFUSED.contains(&upper.as_str()) {
            continue;
        }
        if upper == "CALL"
            && words
                .get(i + 1)
                .is_some_and(|next| READ_PROCEDURES.contains(&next.to_ascii_lowercase().as_str()))
        {
            continue;
        }
        return Err(AppError::forbidden(format!(
            "`{word}` is refused: this endpoint runs read-only queries on your tenant's graph"
        )));
    }
    Ok(())
}

/// The bare words of a query (identifiers and dotted names), skipping
/// string literals, backquoted names and comments.
fn words(query: &str) -> Vec<&str> {
    let bytes = query.as_bytes();
    let mut words = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            quote @ (b'\'' | b'"' | b'`') => {
                i += 1;
                while i < bytes.len() && bytes[i] != quote {
                    // A backslash escapes the next character in strings.
                    i += if bytes[i] == b'\\' && quote != b'`' { 2 } else { 1 };
                }
                i += 1;
            }
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i < bytes.len() && !(bytes[i] == b'*' && bytes.get(i + 1) == Some(&b'/')) {
                    i += 1;
                }
                i += 2;
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let start = i;
                while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_' || bytes[i] == b'.') {
                    i += 1;
                }
                words.push(&query[start..i]);
            }
            _ => i += 1,
        }
    }
    words
}

/// A connection to the graph server, bounded by `timeout_ms` and a little more.
async fn connect(url: &str, timeout_ms: u64) -> Result<redis::aio::MultiplexedConnection, AppError> {
    // TCP_NODELAY: a query of several segments is not held back by Nagle's algorithm.
    let info = redis::IntoConnectionInfo::into_connection_info(url)
        .map(|info| info.set_tcp_settings(redis::io::tcp::TcpSettings::default().set_nodelay(true)));
    let client = info
        .and_then(redis::Client::open)
        .map_err(|error| unavailable(&error))?;
    let limit = Duration::from_millis(timeout_ms) + Duration::from_secs(1);
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(limit))
        .set_response_timeout(Some(limit));
    client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .map_err(|error| unavailable(&error))
}

fn unavailable(error: &dyn std::fmt::Display) -> AppError {
    tracing::warn!(%error, "the graph server does not answer");
    AppError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "graph_unavailable",
        "the graph server does not answer",
    )
}

/// Sends the query to `graph` with `GRAPH.RO_QUERY … --compact`, bounded by
/// `timeout_ms` on the server.
async fn run(
    connection: &mut redis::aio::MultiplexedConnection,
    graph: &str,
    query: String,
    timeout_ms: u64,
) -> Result<redis::Value, AppError> {
    let reply = redis::cmd("GRAPH.RO_QUERY")
        .arg(graph)
        .arg(query)
        .arg("TIMEOUT")
        .arg(timeout_ms)
        .arg("--compact")
        .query_async::<redis::Value>(connection)
        .await;
    match reply {
        Ok(reply) => Ok(reply),
        Err(error) if error.is_timeout() => Err(timed_out()),
        Err(error) if error.is_io_error() || error.is_connection_dropped() => Err(unavailable(&error)),
        Err(error) => {
            let message = error.detail().unwrap_or_default().to_owned();
            let lower = message.to_ascii_lowercase();
            if lower.contains("empty key") {
                // The tenant has no graph yet: nothing to find.
                Ok(redis::Value::Array(Vec::new()))
            } else if lower.contains("timed out") || lower.contains("timeout") {
                Err(timed_out())
            } else if lower.contains("read-only") || lower.contains("read only") {
                Err(AppError::forbidden(message))
            } else {
                Err(AppError::bad_request("invalid_query", message))
            }
        }
    }
}

fn timed_out() -> AppError {
    AppError::new(
        StatusCode::GATEWAY_TIMEOUT,
        "query_timeout",
        "the query ran out of time ([gateway.graph] timeout_ms)",
    )
}

/// FalkorDB's compact reply `[header, rows, statistics]` (or only the
/// statistics for a query that returns nothing) as columns and at most
/// `max_rows` rows of typed values ([`graph_reply`](crate::graph_reply)).
fn result(reply: redis::Value, names: &SchemaNames, max_rows: usize) -> CypherResult {
    let mut parts = match reply {
        redis::Value::Array(parts) if parts.len() == 3 => parts.into_iter(),
        _ => Vec::new().into_iter(),
    };
    let (header, rows) = (parts.next(), parts.next());
    // Each column is `[column type, name]`.
    let columns = match header {
        Some(redis::Value::Array(columns)) => columns
            .iter()
            .map(|column| match plain(column) {
                Value::Array(mut pair) if pair.len() == 2 => match pair.pop() {
                    Some(Value::String(name)) => name,
                    other => other.map(|v| v.to_string()).unwrap_or_default(),
                },
                Value::String(name) => name,
                other => other.to_string(),
            })
            .collect(),
        _ => Vec::new(),
    };
    let rows = match rows {
        Some(redis::Value::Array(rows)) => rows,
        _ => Vec::new(),
    };
    let truncated = rows.len() > max_rows;
    let rows = rows
        .iter()
        .take(max_rows)
        .map(|row| match row {
            redis::Value::Array(cells) => cells.iter().map(|value| cell(value, names)).collect(),
            other => vec![cell(other, names)],
        })
        .collect();
    CypherResult {
        columns,
        rows,
        truncated,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_clauses_are_refused_but_words_in_strings_and_comments_are_not() {
        for query in [
            "CREATE (n:X)",
            "MATCH (n) DETACH DELETE n",
            "MATCH (n) set n.x = 1",
            "MERGE (n:Resource {name: 'x'})",
            "MATCH (n) REMOVE n.name",
            "UNWIND [1] AS x FOREACH (y IN [1] | CREATE ())",
            "LOAD CSV FROM 'file:///x' AS row RETURN row",
            "USE other MATCH (n) RETURN n",
            "CALL db.idx.fulltext.createNodeIndex('Resource', 'name')",
            "MATCH (n) RETURN n /* ok */ CREATE (m)",
            "MATCH (n) WHERE n.name = 'it\\'s' CREATE (m)",
        ] {
            assert!(refuse_writes(query).is_err(), "{query}");
        }
        for query in [
            "MATCH (n:Resource) RETURN n.name, n.created_at",
            "MATCH (n) WHERE n.message = 'CREATE (x) DETACH DELETE n' RETURN n",
            "MATCH (n) RETURN n // DELETE n",
            "MATCH (n) /* SET n.x = 1 */ RETURN count(n)",
            "MATCH (n) RETURN n.`set` AS `CREATE`",
            "CALL db.labels()",
            "CALL db.relationshipTypes() YIELD relationshipType RETURN relationshipType",
            "MATCH (n) WHERE n.name = \"a\\\"b MERGE\" RETURN n",
        ] {
            assert!(refuse_writes(query).is_ok(), "{query}");
        }
    }

    #[test]
    fn only_falkordb_is_queried() {
        let config = |uri: Option<&str>| GraphQueryConfig {
            uri: uri.map(str::to_owned),
            ..GraphQueryConfig::default()
        };
        assert_eq!(
            falkordb_url(&config(Some("falkordb://127.0.0.1:6380"))).unwrap(),
            "redis://127.0.0.1:6380"
        );
        for uri in [None, Some("bolt://127.0.0.1:7687"), Some("neo4j://127.0.0.1:7687")] {
            let error = falkordb_url(&config(uri)).unwrap_err();
            assert_eq!(error.status(), StatusCode::FORBIDDEN);
            assert_eq!(error.code(), "graph_queries_off");
        }
    }

    #[test]
    fn replies_become_columns_and_at_most_max_rows_rows() {
        let bulk = |text: &str| redis::Value::BulkString(text.as_bytes().to_vec());
        let typed = |kind: i64, value: redis::Value| redis::Value::Array(vec![redis::Value::Int(kind), value]);
        let reply = redis::Value::Array(vec![
            redis::Value::Array(vec![typed(1, bulk("name")), typed(1, bulk("n"))]),
            redis::Value::Array(
                (0..3)
                    .map(|i| {
                        redis::Value::Array(vec![typed(2, bulk(&format!("p{i}"))), typed(3, redis::Value::Int(i))])
                    })
                    .collect(),
            ),
            redis::Value::Array(vec![bulk("Query internal execution time: 0.1 milliseconds")]),
        ]);
        let result = result(reply, &SchemaNames::default(), 2);
        assert_eq!(result.columns, ["name", "n"]);
        assert_eq!(
            result.rows,
            [
                vec![Value::from("p0"), Value::from(0)],
                vec![Value::from("p1"), Value::from(1)]
            ]
        );
        assert!(result.truncated);
    }
}
