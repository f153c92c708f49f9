//! Operations endpoints, outside `/api/v1` and exempt from rate limiting:
//! `/health`, `/health/live`, `/health/ready`, `/metrics` and `/docs`.

use std::sync::OnceLock;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder};
use serde_json::json;

use crate::error::AppError;
use crate::state::AppState;

/// How long `/health/ready` waits for the store.
const STORE_CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// How often histogram samples are drained into their buckets.
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// Latency buckets (seconds) of `pulse_http_request_duration_seconds`.
const LATENCY_BUCKETS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// A Prometheus recorder with the gateway's buckets, and a thread that drains
/// its histogram buffers (without upkeep they grow for as long as nobody
/// scrapes `/metrics`).
fn build_recorder() -> PrometheusRecorder {
    let recorder = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full("pulse_http_request_duration_seconds".to_owned()),
            &LATENCY_BUCKETS,
        )
        .expect("the bucket list is not empty")
        .build_recorder();
    let handle = recorder.handle();
    let upkeep = std::thread::Builder::new()
        .name("pulse-metrics-upkeep".into())
        .spawn(move || {
            loop {
                std::thread::sleep(UPKEEP_INTERVAL);
                handle.run_upkeep();
            }
        });
    if let Err(error) = upkeep {
        tracing::warn!(%error, "cannot start the metrics upkeep thread");
    }
    recorder
}

/// The Prometheus recorder `/metrics` renders from, for a process that
/// installs its own global recorder and fans out to this one (the engine does,
/// to also read totals for its run summary). `None` when the recorder was made
/// already (by an earlier call, or by [`prometheus_handle`]).
pub fn prometheus_recorder() -> Option<PrometheusRecorder> {
    let mut made = None;
    HANDLE.get_or_init(|| {
        let recorder = build_recorder();
        let handle = recorder.handle();
        made = Some(recorder);
        handle
    });
    made
}

/// The handle `/metrics` renders from. Unless the process made the recorder
/// with [`prometheus_recorder`], the first call installs one as the global
/// `metrics` recorder, so that everything recorded through the `metrics`
/// facade shows up at `/metrics`. If another global recorder was installed
/// first, `/metrics` renders only what this one receives, and a warning says so.
pub fn prometheus_handle() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let recorder = build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("another metrics recorder is installed; /metrics shows only the gateway's own series");
            }
            handle
        })
        .clone()
}

/// `{"status": …}` of `/health` and `/health/live`.
#[derive(utoipa::ToSchema)]
pub struct HealthStatus {
    /// `ok` (`/health`) or `alive` (`/health/live`).
    #[schema(pattern = "^(ok|alive)$")]
    pub status: String,
}

/// What `/health/ready` checked.
#[derive(utoipa::ToSchema)]
pub struct ReadinessChecks {
    /// The store answered a ping within 2 s.
    pub store: bool,
    /// The pipeline's sources and sinks are open (or there is no pipeline).
    pub pipeline: bool,
    /// The process is draining.
    pub shutting_down: bool,
}

/// One source or sink of the pipeline in `/health/ready`.
#[derive(utoipa::ToSchema)]
pub struct ComponentStatus {
    /// Its name (a sink with several inputs or topics: `SINK:INPUT`).
    pub name: String,
    /// Whether it works now.
    pub healthy: bool,
    /// Why not, while it fails (e.g. `circuit breaker open after 5 failed writes: …`).
    pub problem: Option<String>,
    /// A sink's circuit breaker; null for components without one.
    #[schema(pattern = "^(closed|half_open|open)$")]
    pub breaker: Option<String>,
}

/// The answer of `/health/ready`.
#[derive(utoipa::ToSchema)]
pub struct ReadinessReport {
    /// `ready` or `not_ready`.
    #[schema(pattern = "^(ready|not_ready)$")]
    pub status: String,
    /// Each check.
    pub checks: ReadinessChecks,
    /// The pipeline's sources and sinks that report their health, in name order
    /// (empty without a pipeline).
    pub components: Vec<ComponentStatus>,
    /// The sinks whose circuit breaker is open now.
    pub open_breakers: Vec<String>,
}

/// Liveness without dependencies.
#[utoipa::path(get, path = "/health", tag = "operations",
    responses((status = 200, description = "the process answers", body = HealthStatus)))]
pub async fn health() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

/// Liveness for orchestrators.
#[utoipa::path(get, path = "/health/live", tag = "operations",
    responses((status = 200, description = "alive", body = HealthStatus)))]
pub async fn live() -> Json<serde_json::Value> {
    Json(json!({ "status": "alive" }))
}

/// Readiness: the store answers, the pipeline is up, and the process is not
/// shutting down; with each source's and sink's health (a sink's breaker too)
/// and the sinks whose breaker is open.
#[utoipa::path(get, path = "/health/ready", tag = "operations",
    responses((status = 200, description = "ready", body = ReadinessReport),
              (status = 503, description = "not ready; `checks` says why", body = ReadinessReport)))]
pub async fn ready(State(state): State<AppState>) -> Response {
    let store = matches!(
        tokio::time::timeout(STORE_CHECK_TIMEOUT, state.store.ping()).await,
        Ok(Ok(()))
    );
    let components = state.readiness.components();
    // The flag is the run's watcher's, refreshed every 200 ms; the components
    // are read now, so a problem they show also makes this answer not ready.
    let pipeline = state.readiness.is_pipeline_ready() && components.iter().all(|(_, health)| health.problem.is_none());
    let shutting_down = state.readiness.is_shutting_down();
    let ready = store && pipeline && !shutting_down;
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let open_breakers: Vec<&str> = components
        .iter()
        .filter(|(_, health)| health.breaker == Some("open"))
        .map(|(name, _)| name.as_str())
        .collect();
    let listed: Vec<serde_json::Value> = components
        .iter()
        .map(|(name, health)| {
            json!({
                "name": name,
                "healthy": health.problem.is_none(),
                "problem": health.problem,
                "breaker": health.breaker,
            })
        })
        .collect();
    let body = json!({
        "status": if ready { "ready" } else { "not_ready" },
        "checks": { "store": store, "pipeline": pipeline, "shutting_down": shutting_down },
        "components": listed,
        "open_breakers": open_breakers,
    });
    (status, Json(body)).into_response()
}

/// Prometheus text exposition of every metric recorded in this process.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text format", body = String, content_type = "text/plain")))]
pub async fn metrics(State(state): State<AppState>) -> Response {
    state.metrics.run_upkeep();
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        state.metrics.render(),
    )
        .into_response()
}

/// A self-contained page listing the endpoints of the OpenAPI document.
#[utoipa::path(get, path = "/docs", tag = "operations",
    responses((status = 200, description = "an HTML page", content_type = "text/html")))]
pub async fn docs() -> Html<&'static str> {
    Html(include_str!("docs.html"))
}

/// JSON 404 for unknown paths.
pub async fn not_found() -> AppError {
    AppError::not_found("no such endpoint")
}

/// JSON 405 for a known path with another method.
pub async fn method_not_allowed() -> AppError {
    AppError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "method not allowed on this endpoint",
    )
}
