//! The OpenAPI document against the router it describes: every public route
//! (path and method) the router serves is in the document, every operation
//! lists the errors it can give with the one shared error schema, and the
//! schemas carry the server's constraints. (`tests/schemathesis.rs` checks the
//! document against the live server's behaviour.)

mod common;

use std::collections::BTreeSet;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use common::{Backend, TestApp};
use serde_json::{Value, json};

/// Methods a route may serve (HEAD and OPTIONS follow from GET and CORS).
const METHODS: [Method; 5] = [Method::GET, Method::POST, Method::PUT, Method::DELETE, Method::PATCH];

/// The path templates of the router's routes, read from its `Debug` rendering
/// (axum has no other way to list them): `RouteId(n): "/path"` entries,
/// without the fallback's catch-all.
fn router_paths(router: &axum::Router) -> BTreeSet<String> {
    let text = format!("{router:?}");
    let mut paths = BTreeSet::new();
    for piece in text.split("RouteId(").skip(1) {
        let Some((_, rest)) = piece.split_once("): \"") else {
            continue;
        };
        let Some((path, _)) = rest.split_once('"') else {
            continue;
        };
        if !path.contains("__private__axum_fallback") {
            paths.insert(path.to_owned());
        }
    }
    paths
}

/// A concrete path for a template: every `{param}` becomes `probe`.
fn concrete(template: &str) -> String {
    template
        .split('/')
        .map(|segment| if segment.starts_with('{') { "probe" } else { segment })
        .collect::<Vec<_>>()
        .join("/")
}

/// Whether `path` (a route with literal segments) is one of the paths `template` covers.
fn instance_of(path: &str, template: &str) -> bool {
    let (path, template): (Vec<_>, Vec<_>) = (path.split('/').collect(), template.split('/').collect());
    path.len() == template.len()
        && path
            .iter()
            .zip(&template)
            .all(|(p, t)| p == t || (t.starts_with('{') && !p.starts_with('{')))
}

/// `(path, method)` pairs the router serves: whatever a request does not answer with 405.
async fn served_operations(app: &TestApp) -> BTreeSet<(String, String)> {
    let mut served = BTreeSet::new();
    for path in router_paths(&app.router) {
        for method in METHODS {
            let request = Request::builder()
                .method(method.clone())
                .uri(concrete(&path))
                .body(Body::empty())
                .unwrap();
            let reply = app.send(request).await;
            if reply.status != StatusCode::METHOD_NOT_ALLOWED {
                served.insert((path.clone(), method.as_str().to_lowercase()));
            }
        }
    }
    served
}

async fn document(app: &TestApp) -> Value {
    let reply = app.call(Method::GET, "/api/v1/openapi.json", None, None).await;
    assert_eq!(reply.status, StatusCode::OK);
    reply.body
}

fn documented_operations(document: &Value) -> BTreeSet<(String, String)> {
    let mut documented = BTreeSet::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            documented.insert((path.clone(), method.clone()));
        }
    }
    documented
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_the_router_serves_is_in_the_document() {
    let app = TestApp::new(Backend::Embedded).await.unwrap();
    let served = served_operations(&app).await;
    for expected in [
        ("/api/v1/stats", "get"),
        ("/api/v1/analytics/query", "post"),
        ("/ws", "get"),
        ("/api/v1/kv/{key}", "put"),
    ] {
        let expected = (expected.0.to_owned(), expected.1.to_owned());
        assert!(served.contains(&expected), "the walk finds {expected:?}: {served:?}");
    }
    assert!(served.len() > 25, "the walk finds the routes: {served:?}");
    let documented = documented_operations(&document(&app).await);
    // `/kv/batch` answers GET, PUT and DELETE as the key `batch` of `/kv/{key}`.
    let missing: Vec<_> = served
        .iter()
        .filter(|(path, method)| {
            !documented
                .iter()
                .any(|(template, m)| m == method && (template == path || instance_of(path, template)))
        })
        .collect();
    assert!(
        missing.is_empty(),
        "routes missing from the OpenAPI document: {missing:?}"
    );
    let stale: Vec<_> = documented.difference(&served).collect();
    assert!(
        stale.is_empty(),
        "documented operations the router does not serve: {stale:?}"
    );
}

/// The statuses an operation documents.
fn statuses(operation: &Value) -> BTreeSet<String> {
    operation["responses"].as_object().unwrap().keys().cloned().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_documents_its_errors_with_the_shared_error_schema() {
    let app = TestApp::new(Backend::Embedded).await.unwrap();
    let doc = document(&app).await;
    let error_schema = &doc["components"]["schemas"]["ErrorBody"];
    assert_eq!(error_schema["required"], json!(["error"]), "{error_schema}");
    let detail = &doc["components"]["schemas"]["ErrorDetail"];
    assert_eq!(detail["required"], json!(["code", "message"]), "{detail}");
    let sign_in = [
        "/api/v1/auth/register",
        "/api/v1/auth/login",
        "/api/v1/auth/refresh",
        "/api/v1/auth/token",
    ];
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let label = format!("{method} {path}");
            let have = statuses(operation);
            let mut want: Vec<&str> = vec![];
            if path.starts_with("/api/v1/") && path != "/api/v1/openapi.json" {
                want.extend(["429", "500", "503"]);
                if !sign_in.contains(&path.as_str()) {
                    want.extend(["401", "403"]);
                }
            }
            if operation.get("requestBody").is_some() {
                want.extend(["400", "413", "415", "422"]);
            }
            if path == "/ws" {
                want.extend(["400", "401", "403", "429", "503"]);
            }
            for status in want {
                assert!(have.contains(status), "{label} documents {status}: {have:?}");
            }
            for (status, response) in operation["responses"].as_object().unwrap() {
                // A 503 of readiness reports its checks instead.
                if status.as_str() >= "400" && path != "/health/ready" {
                    assert_eq!(
                        response["content"]["application/json"]["schema"]["$ref"], "#/components/schemas/ErrorBody",
                        "{label} {status}"
                    );
                }
            }
        }
    }
    // The handlers' own errors are there too.
    let kv_key = &doc["paths"]["/api/v1/kv/{key}"];
    assert!(statuses(&kv_key["get"]).contains("404"));
    assert!(statuses(&doc["paths"]["/api/v1/kv"]["post"]).contains("409"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_new_operations_describe_their_shapes() {
    let app = TestApp::new(Backend::Embedded).await.unwrap();
    let doc = document(&app).await;
    let ws = &doc["paths"]["/ws"]["get"];
    let description = ws["description"].as_str().unwrap();
    for message in [
        "\"subscribe\"",
        "\"unsubscribe\"",
        "\"ping\"",
        "\"window\"",
        "\"lagged\"",
        "\"pong\"",
        "4008",
    ] {
        assert!(description.contains(message), "the /ws description covers {message}");
    }
    assert!(statuses(ws).contains("101"));
    let query = &doc["paths"]["/api/v1/analytics/query"]["post"];
    assert!(query["description"].as_str().unwrap().contains("finest-grained"));
    let request = &doc["components"]["schemas"]["QueryRequest"];
    assert_eq!(request["required"], json!(["metric_name", "start_time", "aggregation"]));
    assert_eq!(request["additionalProperties"], json!(false));
    let answer = &doc["components"]["schemas"]["QueryResult"];
    assert!(answer["properties"]["operator"].is_object(), "{answer}");
    let stats = &doc["components"]["schemas"]["Stats"];
    assert_eq!(stats["required"], json!(["pipeline", "live", "views"]));
}

/// The schema of component `name`'s property `property`.
fn property<'a>(doc: &'a Value, name: &str, property: &str) -> &'a Value {
    &doc["components"]["schemas"][name]["properties"][property]
}

/// The schema of query parameter `name` of `GET path`.
fn query_parameter<'a>(doc: &'a Value, path: &str, name: &str) -> &'a Value {
    doc["paths"][path]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .map(|p| &p["schema"])
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_schemas_carry_the_server_constraints() {
    let app = TestApp::new(Backend::Embedded).await.unwrap();
    let doc = document(&app).await;
    let password = property(&doc, "RegisterRequest", "password");
    assert_eq!(
        (&password["minLength"], &password["maxLength"]),
        (&json!(8), &json!(1024))
    );
    let rule = password["pattern"].as_str().unwrap();
    assert!(
        rule.contains("[A-Z]") && rule.contains("[a-z]") && rule.contains("[0-9]"),
        "{rule}"
    );
    let username = property(&doc, "RegisterRequest", "username");
    assert_eq!(username["pattern"], "^[A-Za-z0-9_.-]{3,64}$");
    assert!(property(&doc, "RegisterRequest", "email")["pattern"].is_string());
    let key = property(&doc, "CreateEntry", "key");
    assert_eq!((&key["minLength"], &key["maxLength"]), (&json!(1), &json!(256)));
    assert_eq!(key["pattern"], pulse_gateway::kv::KEY_PATTERN);
    let key_param = doc["paths"]["/api/v1/kv/{key}"]["get"]["parameters"][0]["schema"].clone();
    assert_eq!(key_param["pattern"], pulse_gateway::kv::KEY_PATTERN);
    let ttl = property(&doc, "CreateEntry", "ttl");
    assert_eq!((&ttl["minimum"], &ttl["maximum"]), (&json!(1), &json!(315_360_000)));
    let tags = property(&doc, "CreateEntry", "tags");
    assert_eq!(tags["maxProperties"], 32);
    assert_eq!(tags["additionalProperties"]["maxLength"], 128);
    let page_size = query_parameter(&doc, "/api/v1/kv", "page_size");
    assert_eq!((&page_size["minimum"], &page_size["maximum"]), (&json!(1), &json!(100)));
    assert_eq!(query_parameter(&doc, "/api/v1/kv", "page")["minimum"], 1);
    assert_eq!(query_parameter(&doc, "/api/v1/audit", "page_size")["maximum"], 100);
    let operations = property(&doc, "BatchRequest", "operations");
    assert_eq!(
        (&operations["minItems"], &operations["maxItems"]),
        (&json!(1), &json!(1000))
    );
    assert_eq!(property(&doc, "CreateApiKeyRequest", "name")["maxLength"], 100);
    let step = property(&doc, "QueryRequest", "step");
    assert_eq!(step["pattern"], pulse_gateway::live::analytics::STEP_PATTERN);
    let aggregation = property(&doc, "QueryRequest", "aggregation");
    assert_eq!(
        aggregation["pattern"],
        pulse_gateway::live::analytics::AGGREGATION_PATTERN
    );
}

/// Cases where the server and the schema disagreed, each now decided the schema's way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_accepts_what_the_schemas_accept_and_refuses_the_rest() {
    let app = TestApp::new(Backend::Embedded).await.unwrap();
    let owner = app.register("schemas").await;
    let auth = owner.access.as_str();
    // `integer` admits 60.0.
    let reply = app
        .post("/api/v1/kv", auth, json!({"key": "whole", "value": 1, "ttl": 60.0}))
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{reply:?}");
    let reply = app
        .post("/api/v1/kv", auth, json!({"key": "half", "value": 1, "ttl": 60.5}))
        .await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{reply:?}");
    // Lengths count characters, as `maxLength` does: 256 four-byte characters fit.
    let wide_key = "𝕂".repeat(256);
    let tags = json!({"𝕥".repeat(128): "𝕧".repeat(128)});
    let reply = app
        .post("/api/v1/kv", auth, json!({"key": wide_key, "value": 1, "tags": tags}))
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{reply:?}");
    let reply = app
        .post("/api/v1/kv", auth, json!({"key": "𝕂".repeat(257), "value": 1}))
        .await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE, "{reply:?}");
    // An address with surrounding space does not match the pattern, so it is refused, not trimmed.
    let reply = app
        .call(
            Method::POST,
            "/api/v1/auth/register",
            None,
            Some(json!({"username": "spaced", "email": " spaced@example.com", "password": common::PASSWORD})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{reply:?}");
    // A name's 100 characters include the white space around it.
    let padded = format!("  {}  ", "n".repeat(98));
    let reply = app.post("/api/v1/api-keys", auth, json!({"name": padded})).await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{reply:?}");
    let reply = app.post("/api/v1/api-keys", auth, json!({"name": "\u{85}"})).await;
    assert_eq!(
        reply.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "only white space: {reply:?}"
    );
    // Beyond u32 a page is a 400, as the schema's maximum says.
    let reply = app.get("/api/v1/kv?page=4294967296", auth).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{reply:?}");
    let reply = app.get("/api/v1/kv?page=4294967295", auth).await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
}
