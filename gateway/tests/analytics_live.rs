//! The anomaly and forecast APIs through `oneshot` (`GET
//! /api/v1/analytics/anomalies/{metric}`, `POST /api/v1/analytics/forecast`) and
//! the `anomalies` / `forecasts` topics of `/ws` over a real socket on 127.0.0.1.

mod common;

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use common::{Backend, SECRET, TestApp};
use futures_util::{SinkExt, StreamExt};
use pulse_gateway::{JwtSecret, LiveServices, Scope, issue_token, serve};
use pulse_live::{AnalyticsKind, AnalyticsRecord, AnalyticsViews, LiveHub, LiveSource, Topic, WindowViews};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use uuid::Uuid;

struct AnalyticsApp {
    app: TestApp,
    hub: LiveHub,
    views: AnalyticsViews,
}

async fn analytics_app() -> AnalyticsApp {
    let app = TestApp::new(Backend::Embedded).await.expect("embedded always opens");
    let hub = LiveHub::new(app.config.live.clone());
    let views = AnalyticsViews::new(1_000);
    let services = LiveServices::new(hub.clone(), WindowViews::new(&app.config.retention), || json!({}))
        .with_analytics(views.clone());
    app.gateway.attach_live(services).unwrap();
    AnalyticsApp { app, hub, views }
}

fn token(tenant: &str, scopes: &[Scope]) -> String {
    issue_token(
        &JwtSecret::new(SECRET).unwrap(),
        tenant.parse().unwrap(),
        scopes,
        Duration::from_secs(600),
    )
}

fn anomaly(tenant: &str, source: &str, ts: u64, score: f64) -> Arc<AnalyticsRecord> {
    let row = json!({"tenant": tenant, "source": source, "metric": "cpu", "ts": ts, "value": 97.0,
                     "score": score, "is_anomaly": score >= 0.5, "severity": "warning", "detectors": "robust_z",
                     "explanation": "97.0000 is 9.1 robust σ above the median 40.0000", "expected": 40.0,
                     "lower": 30.0, "upper": 50.0, "warming_up": false});
    let key = ["tenant".to_owned(), "source".to_owned(), "metric".to_owned()];
    Arc::new(AnalyticsRecord::from_flat(AnalyticsKind::Anomaly, row, &key).unwrap())
}

fn forecast_step(tenant: &str, issued_at: u64, steps: u64) -> Arc<AnalyticsRecord> {
    let row = json!({"tenant": tenant, "metric": "cpu", "issued_at": issued_at, "ts": issued_at + steps * 10_000,
                     "steps": steps, "yhat": 40.0, "lower80": 35.0, "upper80": 45.0, "lower95": 30.0, "upper95": 50.0});
    let key = ["tenant".to_owned(), "metric".to_owned()];
    Arc::new(AnalyticsRecord::from_flat(AnalyticsKind::Forecast, row, &key).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anomalies_are_the_tenants_own_newest_first_filtered_and_paginated() {
    let live = analytics_app().await;
    let (a, b) = (Uuid::new_v4().to_string(), Uuid::new_v4().to_string());
    let source = LiveSource::new("demo", "cpu_anomalies");
    live.views.record(
        &source,
        &[
            anomaly(&a, "h1", 1_000, 0.6),
            anomaly(&a, "h2", 3_000, 0.9),
            anomaly(&a, "h1", 2_000, 0.2), // not an anomaly: not kept
            anomaly(&a, "h1", 4_000, 0.55),
            anomaly(&b, "h1", 5_000, 0.99),
        ],
    );
    let auth = token(&a, &[Scope::Read]);
    let reply = live.app.get("/api/v1/analytics/anomalies/cpu", &auth).await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    assert_eq!(reply.body["total"], 3);
    let times: Vec<u64> = reply.body["anomalies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["ts"].as_u64().unwrap())
        .collect();
    assert_eq!(times, [4_000, 3_000, 1_000], "newest first, the tenant's own");
    assert_eq!(reply.body["anomalies"][0]["operator"], "cpu_anomalies");
    assert_eq!(reply.body["anomalies"][0]["key"]["source"], "h1");
    assert!(
        reply.body["anomalies"][0]["explanation"]
            .as_str()
            .unwrap()
            .contains("robust σ")
    );

    let filtered = live
        .app
        .get(
            "/api/v1/analytics/anomalies/cpu?source=h1&min_score=0.58&start=500&end=5000",
            &auth,
        )
        .await;
    assert_eq!(filtered.body["total"], 1, "{:?}", filtered.body);
    assert_eq!(filtered.body["anomalies"][0]["ts"], 1_000);
    let paged = live
        .app
        .get("/api/v1/analytics/anomalies/cpu?page=2&page_size=2", &auth)
        .await;
    assert_eq!(
        (paged.body["total"].as_u64(), paged.body["page"].as_u64()),
        (Some(3), Some(2))
    );
    assert_eq!(paged.body["anomalies"].as_array().unwrap().len(), 1);
    let other_metric = live.app.get("/api/v1/analytics/anomalies/mem", &auth).await;
    assert_eq!(other_metric.body["total"], 0);

    for query in [
        "page=0",
        "page_size=101",
        "min_score=1.5",
        "start=10&end=5",
        "colour=red",
        "start=-1",
    ] {
        let reply = live
            .app
            .get(&format!("/api/v1/analytics/anomalies/cpu?{query}"), &auth)
            .await;
        assert!(
            reply.status == StatusCode::UNPROCESSABLE_ENTITY || reply.status == StatusCode::BAD_REQUEST,
            "{query}: {reply:?}"
        );
    }
    let write_only = token(&a, &[Scope::Write]);
    assert_eq!(
        live.app
            .get("/api/v1/analytics/anomalies/cpu", &write_only)
            .await
            .status,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_forecast_api_answers_the_latest_forecast_per_key() {
    let live = analytics_app().await;
    let a = Uuid::new_v4().to_string();
    let source = LiveSource::new("demo", "cpu_forecast");
    live.views
        .record(&source, &[forecast_step(&a, 60_000, 1), forecast_step(&a, 60_000, 2)]);
    live.views.record(
        &source,
        &[
            forecast_step(&a, 120_000, 1),
            forecast_step(&a, 120_000, 2),
            forecast_step(&a, 120_000, 3),
        ],
    );
    let auth = token(&a, &[Scope::Read]);
    let reply = live
        .app
        .post("/api/v1/analytics/forecast", &auth, json!({"metric_name": "cpu"}))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    let forecasts = reply.body["forecasts"].as_array().unwrap();
    assert_eq!(forecasts.len(), 1);
    assert_eq!(forecasts[0]["issued_at"], 120_000);
    assert_eq!(forecasts[0]["points"].as_array().unwrap().len(), 3);
    assert_eq!(
        (
            reply.body["interval"].as_u64(),
            forecasts[0]["points"][0]["lower"].as_f64()
        ),
        (Some(95), Some(30.0))
    );
    let narrow = live
        .app
        .post(
            "/api/v1/analytics/forecast",
            &auth,
            json!({"metric_name": "cpu", "horizon": "20s", "interval": 80}),
        )
        .await;
    let points = narrow.body["forecasts"][0]["points"].as_array().unwrap();
    assert_eq!(points.len(), 2, "{:?}", narrow.body);
    assert_eq!(points[0]["lower"], 35.0);
    for body in [
        json!({"metric_name": "cpu", "interval": 90}),
        json!({"metric_name": "cpu", "horizon": "soon"}),
        json!({"metric": "cpu"}),
    ] {
        let reply = live.app.post("/api/v1/analytics/forecast", &auth, body.clone()).await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {reply:?}");
    }
    let other = token(&Uuid::new_v4().to_string(), &[Scope::Read]);
    let nothing = live
        .app
        .post("/api/v1/analytics/forecast", &other, json!({"metric_name": "cpu"}))
        .await;
    assert_eq!(nothing.body["forecasts"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_live_services_the_analytics_routes_answer_503() {
    let app = TestApp::new(Backend::Embedded).await.unwrap();
    let auth = token(&Uuid::new_v4().to_string(), &[Scope::Read]);
    assert_eq!(
        app.get("/api/v1/analytics/anomalies/cpu", &auth).await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    let reply = app
        .post("/api/v1/analytics/forecast", &auth, json!({"metric_name": "cpu"}))
        .await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anomalies_and_forecasts_reach_their_topics_subscribers_of_the_tenant() {
    let live = analytics_app().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve(listener, live.app.router.clone(), std::future::pending()));
    let a = Uuid::new_v4().to_string();
    let mut request = format!("ws://{addr}/ws").into_client_request().unwrap();
    request.headers_mut().insert(
        "authorization",
        format!("Bearer {}", token(&a, &[Scope::Read])).parse().unwrap(),
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    for topic in ["anomalies", "forecasts"] {
        let subscribe = json!({"type": "subscribe", "topic": topic, "filter": {"metric": "cpu"}});
        socket.send(Message::text(subscribe.to_string())).await.unwrap();
    }
    for _ in 0..2 {
        assert_eq!(next_text(&mut socket).await["type"], "subscribed");
    }
    let anomalies = LiveSource::new("demo", "cpu_anomalies");
    let other_tenant = Uuid::new_v4().to_string();
    live.hub.publish_to(
        Topic::Anomalies,
        &anomalies,
        &[anomaly(&other_tenant, "h1", 1_000, 0.9), anomaly(&a, "h9", 2_000, 0.8)],
    );
    let message = next_text(&mut socket).await;
    assert_eq!(message["type"], "anomaly", "{message}");
    assert_eq!(
        (message["key"]["source"].as_str(), message["ts"].as_u64()),
        (Some("h9"), Some(2_000))
    );
    assert_eq!(message["operator"], "cpu_anomalies");
    live.hub.publish_to(
        Topic::Forecasts,
        &LiveSource::new("demo", "cpu_forecast"),
        &[forecast_step(&a, 60_000, 1)],
    );
    let message = next_text(&mut socket).await;
    assert_eq!(
        (message["type"].as_str(), message["yhat"].as_f64()),
        (Some("forecast"), Some(40.0))
    );
}

/// The next text message of `socket` as JSON (pings skipped), within 5 s.
async fn next_text<S>(socket: &mut S) -> Value
where
    S: StreamExt<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    loop {
        let message = tokio::time::timeout(Duration::from_secs(5), socket.next())
            .await
            .expect("a message in time")
            .expect("the socket is open")
            .expect("the socket reads");
        if let Message::Text(text) = message {
            return serde_json::from_str(&text).unwrap();
        }
    }
}
