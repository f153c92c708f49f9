//! FalkorDB's compact result set (`GRAPH.RO_QUERY … --compact`) as JSON:
//! typed values, and nodes, relationships and paths as objects the way
//! Neo4j's HTTP API and drivers show them.
//!
//! | FalkorDB value | JSON |
//! | --- | --- |
//! | null, string, integer, boolean, double | `null`, string, number, `true`/`false`, number (NaN and infinities as `null`) |
//! | array, map | array, object |
//! | node | `{"id": 3, "labels": ["Resource"], "properties": {"name": "web-1", …}}` |
//! | relationship | `{"id": 7, "type": "RUNS_ON", "start": 3, "end": 4, "properties": {…}}` |
//! | path | `{"nodes": [node, …], "relationships": [relationship, …]}` |
//! | point | `{"latitude": …, "longitude": …}` |
//! | another type | its reply as text |
//!
//! The compact format names labels, relationship types and property keys by
//! number; [`SchemaNames`] maps them to names from `db.labels()`,
//! `db.relationshipTypes()` and `db.propertyKeys()`, which the endpoint
//! reads only when a result holds a node or a relationship.

use redis::Value as Reply;
use serde_json::{Map, Value};

/// FalkorDB's value types in a compact reply.
mod value_type {
    pub const NULL: i64 = 1;
    pub const STRING: i64 = 2;
    pub const INTEGER: i64 = 3;
    pub const BOOLEAN: i64 = 4;
    pub const DOUBLE: i64 = 5;
    pub const ARRAY: i64 = 6;
    pub const EDGE: i64 = 7;
    pub const NODE: i64 = 8;
    pub const PATH: i64 = 9;
    pub const MAP: i64 = 10;
    pub const POINT: i64 = 11;
}

/// Label, relationship type and property key names by their number.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SchemaNames {
    /// `db.labels()`, in order.
    pub labels: Vec<String>,
    /// `db.relationshipTypes()`, in order.
    pub relationship_types: Vec<String>,
    /// `db.propertyKeys()`, in order.
    pub property_keys: Vec<String>,
}

/// Whether `reply` (a compact result set, or a part of one) holds a node or
/// a relationship, whose names must then be looked up.
pub fn needs_names(reply: &Reply) -> bool {
    match reply {
        Reply::Array(items) => {
            let typed_graph_element = matches!(
                items.as_slice(),
                [Reply::Int(value_type::NODE | value_type::EDGE | value_type::PATH), _]
            );
            typed_graph_element || items.iter().any(needs_names)
        }
        _ => false,
    }
}

/// One compact cell, `[type, value]`, as JSON.
///
/// # Examples
/// ```
/// use pulse_gateway::graph_reply::{SchemaNames, cell};
/// use redis::Value as Reply;
///
/// let double = Reply::Array(vec![Reply::Int(5), Reply::BulkString(b"0.5".to_vec())]);
/// assert_eq!(cell(&double, &SchemaNames::default()), serde_json::json!(0.5));
/// ```
pub fn cell(reply: &Reply, names: &SchemaNames) -> Value {
    match reply {
        Reply::Array(pair) if pair.len() == 2 => match &pair[0] {
            Reply::Int(kind) => typed(*kind, &pair[1], names),
            _ => plain(reply),
        },
        other => plain(other),
    }
}

fn typed(kind: i64, value: &Reply, names: &SchemaNames) -> Value {
    match kind {
        value_type::NULL => Value::Null,
        value_type::STRING => Value::String(text(value)),
        value_type::INTEGER => match value {
            Reply::Int(n) => Value::from(*n),
            other => text(other).parse::<i64>().map_or_else(|_| plain(other), Value::from),
        },
        value_type::BOOLEAN => match value {
            Reply::Boolean(b) => Value::Bool(*b),
            other => Value::Bool(text(other) == "true"),
        },
        value_type::DOUBLE => number(value),
        value_type::ARRAY => Value::Array(items(value).iter().map(|item| cell(item, names)).collect()),
        value_type::MAP => {
            let items = items(value);
            let mut map = Map::new();
            for pair in items.chunks(2) {
                if let [key, value] = pair {
                    map.insert(text(key), cell(value, names));
                }
            }
            Value::Object(map)
        }
        value_type::NODE => node(value, names),
        value_type::EDGE => relationship(value, names),
        value_type::PATH => {
            let parts = items(value);
            let part = |i: usize| parts.get(i).map_or(Value::Array(Vec::new()), |p| cell(p, names));
            serde_json::json!({"nodes": part(0), "relationships": part(1)})
        }
        value_type::POINT => match items(value) {
            [latitude, longitude] => serde_json::json!({"latitude": number(latitude), "longitude": number(longitude)}),
            _ => plain(value),
        },
        _ => plain(value),
    }
}

/// `[id, [label ids], [[key id, type, value], …]]`.
fn node(value: &Reply, names: &SchemaNames) -> Value {
    let parts = items(value);
    let labels: Vec<Value> = parts
        .get(1)
        .map(|labels| {
            items(labels)
                .iter()
                .map(|id| Value::String(name(&names.labels, id)))
                .collect()
        })
        .unwrap_or_default();
    serde_json::json!({
        "id": parts.first().map_or(Value::Null, plain),
        "labels": labels,
        "properties": properties(parts.get(2), names),
    })
}

/// `[id, type id, start id, end id, [[key id, type, value], …]]`.
fn relationship(value: &Reply, names: &SchemaNames) -> Value {
    let parts = items(value);
    let part = |i: usize| parts.get(i).map_or(Value::Null, plain);
    serde_json::json!({
        "id": part(0),
        "type": parts.get(1).map_or(String::new(), |id| name(&names.relationship_types, id)),
        "start": part(2),
        "end": part(3),
        "properties": properties(parts.get(4), names),
    })
}

fn properties(value: Option<&Reply>, names: &SchemaNames) -> Value {
    let mut map = Map::new();
    for property in value.map(items).unwrap_or_default() {
        if let [key, kind, value] = items(property) {
            let kind = match kind {
                Reply::Int(kind) => *kind,
                _ => 0,
            };
            map.insert(name(&names.property_keys, key), typed(kind, value, names));
        }
    }
    Value::Object(map)
}

/// The name numbered `id`, or the number itself when it is not listed.
fn name(names: &[String], id: &Reply) -> String {
    match id {
        Reply::Int(i) => usize::try_from(*i)
            .ok()
            .and_then(|i| names.get(i))
            .cloned()
            .unwrap_or_else(|| i.to_string()),
        other => text(other),
    }
}

fn items(value: &Reply) -> &[Reply] {
    match value {
        Reply::Array(items) | Reply::Set(items) => items,
        _ => &[],
    }
}

fn text(value: &Reply) -> String {
    match value {
        Reply::BulkString(bytes) => String::from_utf8_lossy(bytes).into_owned(),
        Reply::SimpleString(text) => text.clone(),
        Reply::Int(n) => n.to_string(),
        Reply::Double(x) => x.to_string(),
        Reply::Boolean(b) => b.to_string(),
        Reply::Nil => String::new(),
        other => format!("{other:?}"),
    }
}

fn number(value: &Reply) -> Value {
    let float = match value {
        Reply::Double(x) => Some(*x),
        Reply::Int(n) => Some(*n as f64),
        other => text(other).parse::<f64>().ok(),
    };
    float
        .and_then(serde_json::Number::from_f64)
        .map_or(Value::Null, Value::Number)
}

/// A reply without type tags (the statistics, an error's detail) as JSON.
pub fn plain(value: &Reply) -> Value {
    match value {
        Reply::Nil => Value::Null,
        Reply::Int(n) => Value::from(*n),
        Reply::Double(_) => number(value),
        Reply::Boolean(b) => Value::Bool(*b),
        Reply::Array(items) | Reply::Set(items) => Value::Array(items.iter().map(plain).collect()),
        other => Value::String(text(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn int(n: i64) -> Reply {
        Reply::Int(n)
    }

    fn bulk(text: &str) -> Reply {
        Reply::BulkString(text.as_bytes().to_vec())
    }

    fn array(items: Vec<Reply>) -> Reply {
        Reply::Array(items)
    }

    /// What FalkorDB 4 answered for `RETURN a, e` over
    /// `(:Resource {name:'a', f: 0.5, ok: true, l: [1,'x']})-[:RUNS_ON {w: 2}]->(:Node:Machine)`.
    fn node_and_edge() -> (Reply, Reply) {
        let node = array(vec![
            int(8),
            array(vec![
                int(0),
                array(vec![int(0)]),
                array(vec![
                    array(vec![int(0), int(2), bulk("a")]),
                    array(vec![int(2), int(5), bulk("0.5")]),
                    array(vec![int(3), int(4), bulk("true")]),
                    array(vec![
                        int(4),
                        int(6),
                        array(vec![array(vec![int(3), int(1)]), array(vec![int(2), bulk("x")])]),
                    ]),
                ]),
            ]),
        ]);
        let edge = array(vec![
            int(7),
            array(vec![
                int(0),
                int(0),
                int(0),
                int(1),
                array(vec![array(vec![int(5), int(3), int(2)])]),
            ]),
        ]);
        (node, edge)
    }

    fn names() -> SchemaNames {
        let strings = |names: &[&str]| names.iter().map(|name| (*name).to_owned()).collect();
        SchemaNames {
            labels: strings(&["Resource", "Node", "Machine"]),
            relationship_types: strings(&["RUNS_ON"]),
            property_keys: strings(&["name", "n", "f", "ok", "l", "w"]),
        }
    }

    #[test]
    fn nodes_and_relationships_become_objects_with_named_labels_and_properties() {
        let (node, edge) = node_and_edge();
        assert!(needs_names(&array(vec![node.clone()])));
        assert_eq!(
            cell(&node, &names()),
            serde_json::json!({"id": 0, "labels": ["Resource"],
                "properties": {"name": "a", "f": 0.5, "ok": true, "l": [1, "x"]}})
        );
        assert_eq!(
            cell(&edge, &names()),
            serde_json::json!({"id": 0, "type": "RUNS_ON", "start": 0, "end": 1, "properties": {"w": 2}})
        );
        let path = array(vec![
            int(9),
            array(vec![
                array(vec![int(6), array(vec![node])]),
                array(vec![int(6), array(vec![edge])]),
            ]),
        ]);
        let path = cell(&path, &names());
        assert_eq!(path["nodes"][0]["labels"], serde_json::json!(["Resource"]));
        assert_eq!(path["relationships"][0]["type"], "RUNS_ON");
    }

    #[test]
    fn scalars_maps_and_unknown_numbers_keep_their_types() {
        let map = array(vec![
            int(10),
            array(vec![
                bulk("k"),
                array(vec![int(3), int(1)]),
                bulk("s"),
                array(vec![int(1), Reply::Nil]),
            ]),
        ]);
        assert_eq!(cell(&map, &names()), serde_json::json!({"k": 1, "s": null}));
        assert!(!needs_names(&map));
        let (node, _) = node_and_edge();
        // A label or key the listings do not have yet shows as its number.
        assert_eq!(cell(&node, &SchemaNames::default())["labels"], serde_json::json!(["0"]));
        assert_eq!(
            cell(&array(vec![int(5), bulk("nan")]), &names()),
            Value::Null,
            "NaN as null"
        );
    }
}
