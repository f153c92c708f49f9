//! Operations: health and readiness, Prometheus metrics with route templates,
//! correlation ids, processing time, CORS, JSON 404/405, OpenAPI and the docs page.

mod common;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use common::{Backend, TestApp};
use serde_json::json;

async fn app() -> TestApp {
    TestApp::with(Backend::Embedded, |config| {
        config.cors_origins = vec!["http://dash.example".into()]
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn health_liveness_and_readiness() {
    let app = app().await;
    let health = app.call(Method::GET, "/health", None, None).await;
    assert_eq!(
        (health.status, health.body.clone()),
        (StatusCode::OK, json!({ "status": "ok" }))
    );
    assert_eq!(
        app.call(Method::GET, "/health/live", None, None).await.status,
        StatusCode::OK
    );

    let ready = app.call(Method::GET, "/health/ready", None, None).await;
    assert_eq!(
        ready.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "not ready before the pipeline: {ready:?}"
    );
    assert_eq!(
        ready.body["checks"],
        json!({ "store": true, "pipeline": false, "shutting_down": false })
    );
    assert_eq!(
        (ready.body["components"].clone(), ready.body["open_breakers"].clone()),
        (json!([]), json!([])),
        "no pipeline, no components"
    );
    app.gateway.readiness().set_pipeline_ready(true);
    let ready = app.call(Method::GET, "/health/ready", None, None).await;
    assert_eq!(ready.status, StatusCode::OK, "{ready:?}");
    assert_eq!(ready.body["status"], "ready");

    // A pipeline's components, a sink's breaker among them, as the engine reports them.
    let board = pulse_core::HealthBoard::new();
    let (source, sink) = (board.reporter("events"), board.reporter("history"));
    app.gateway.readiness().show_components(board.clone());
    sink.breaker("open");
    sink.unhealthy("circuit breaker open after 5 failed writes: connection refused");
    source.healthy();
    let ready = app.call(Method::GET, "/health/ready", None, None).await;
    assert_eq!(ready.body["open_breakers"], json!(["history"]), "{ready:?}");
    assert_eq!(
        ready.body["components"],
        json!([
            {"name": "events", "healthy": true, "problem": null, "breaker": null},
            {"name": "history", "healthy": false, "breaker": "open",
             "problem": "circuit breaker open after 5 failed writes: connection refused"},
        ])
    );
    app.gateway.readiness().set_shutting_down();
    let ready = app.call(Method::GET, "/health/ready", None, None).await;
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(ready.body["checks"]["shutting_down"], true);
}

#[tokio::test]
async fn every_response_has_a_correlation_id_and_process_time() {
    let app = app().await;
    let generated = app.call(Method::GET, "/health", None, None).await;
    let id = generated.header("x-correlation-id").unwrap();
    assert_eq!(id.len(), 36, "a generated UUID: {id}");
    assert!(generated.header("x-process-time").unwrap().parse::<f64>().unwrap() >= 0.0);
    let echoed = app
        .send(
            Request::get("/api/v1/kv")
                .header("x-correlation-id", "req-42.abc")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(echoed.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        echoed.header("x-correlation-id"),
        Some("req-42.abc"),
        "errors carry it too"
    );
    assert!(echoed.header("x-process-time").is_some());
    let hostile = app
        .send(
            Request::get("/health")
                .header("x-correlation-id", "a b<script>")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_ne!(
        hostile.header("x-correlation-id"),
        Some("a b<script>"),
        "odd ids are replaced"
    );
}

#[tokio::test]
async fn unknown_paths_and_methods_answer_json() {
    let app = app().await;
    let missing = app.call(Method::GET, "/nope", None, None).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.error_code(), "not_found");
    let wrong_method = app.call(Method::DELETE, "/health", None, None).await;
    assert_eq!(wrong_method.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(wrong_method.error_code(), "method_not_allowed");
}

#[tokio::test]
async fn metrics_use_route_templates() {
    let app = app().await;
    let t = app.register("metrics").await;
    app.post(
        "/api/v1/kv",
        &t.access,
        json!({ "key": "some-unique-key-9731", "value": 1 }),
    )
    .await;
    app.get("/api/v1/kv/some-unique-key-9731", &t.access).await;
    let metrics = app.call(Method::GET, "/metrics", None, None).await;
    assert_eq!(metrics.status, StatusCode::OK);
    assert!(metrics.header("content-type").unwrap().starts_with("text/plain"));
    let text = metrics.body.as_str().unwrap();
    assert!(text.contains("pulse_http_requests_total{"), "{text}");
    assert!(text.contains(r#"route="/api/v1/kv/{key}""#), "{text}");
    assert!(text.contains(r#"method="GET""#));
    assert!(text.contains(r#"status="201""#));
    assert!(
        text.contains("pulse_http_request_duration_seconds_bucket"),
        "a histogram: {text}"
    );
    assert!(text.contains("pulse_kv_operations_total{"), "{text}");
    assert!(!text.contains("some-unique-key-9731"), "raw paths never become labels");
}

#[tokio::test]
async fn cors_allows_configured_origins_only() {
    let app = app().await;
    let preflight = |origin: &str| {
        Request::builder()
            .method(Method::OPTIONS)
            .uri("/api/v1/kv")
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "authorization,content-type")
            .body(Body::empty())
            .unwrap()
    };
    let allowed = app.send(preflight("http://dash.example")).await;
    assert_eq!(
        allowed.header("access-control-allow-origin"),
        Some("http://dash.example")
    );
    let denied = app.send(preflight("http://evil.example")).await;
    assert_eq!(denied.header("access-control-allow-origin"), None);
}

#[tokio::test]
async fn openapi_document_and_docs_page() {
    let app = app().await;
    let doc = app.call(Method::GET, "/api/v1/openapi.json", None, None).await;
    assert_eq!(doc.status, StatusCode::OK);
    assert!(doc.body["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc.body["paths"].as_object().unwrap();
    for path in [
        "/api/v1/auth/register",
        "/api/v1/auth/login",
        "/api/v1/auth/refresh",
        "/api/v1/auth/me",
        "/api/v1/auth/token",
        "/api/v1/api-keys",
        "/api/v1/api-keys/{id}",
        "/api/v1/kv",
        "/api/v1/kv/{key}",
        "/api/v1/kv/batch",
        "/api/v1/kv/{key}/exists",
        "/api/v1/kv/{key}/ttl",
        "/api/v1/kv/stats/count",
        "/api/v1/audit",
        "/health",
        "/health/ready",
        "/metrics",
    ] {
        assert!(paths.contains_key(path), "{path} missing from the OpenAPI document");
    }
    assert!(paths["/api/v1/kv/{key}"].get("put").is_some());
    assert!(doc.body["components"]["securitySchemes"]["bearer"].is_object());
    let docs = app.call(Method::GET, "/docs", None, None).await;
    assert_eq!(docs.status, StatusCode::OK);
    let html = docs.body.as_str().unwrap();
    assert!(
        html.contains("/api/v1/openapi.json") && !html.contains("cdn"),
        "self-contained"
    );
}
