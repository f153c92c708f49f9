//! Live results end to end over a real socket: `/ws` with a tokio-tungstenite
//! client on 127.0.0.1 (auth failures, subscribe/unsubscribe, filters, tenant
//! isolation, a slow client that lags while a fast one gets everything, lag
//! disconnects, reconnects and quotas), plus `/api/v1/analytics/query` and
//! `/api/v1/stats` through `oneshot`.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use common::{Backend, SECRET, TestApp};
use futures_util::{SinkExt, StreamExt};
use pulse_gateway::auth::jwt::{Claims, JwtKeys, TokenKind};
use pulse_gateway::{GatewayConfig, JwtSecret, LiveServices, Scope, issue_token, serve};
use pulse_live::{LiveHub, LiveRow, LiveSource, WindowViews};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use uuid::Uuid;

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

const WAIT: Duration = Duration::from_secs(5);

/// A gateway with live services attached, serving on a real socket.
struct LiveApp {
    app: TestApp,
    addr: SocketAddr,
    hub: LiveHub,
    views: WindowViews,
}

async fn live_app(adjust: impl FnOnce(&mut GatewayConfig)) -> LiveApp {
    let app = TestApp::with(Backend::Embedded, adjust)
        .await
        .expect("embedded always opens");
    let hub = LiveHub::new(app.config.live.clone());
    let views = WindowViews::new(&app.config.retention);
    let stats = || json!({"events_in_total": 42});
    app.gateway
        .attach_live(LiveServices::new(hub.clone(), views.clone(), stats))
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve(listener, app.router.clone(), std::future::pending()));
    LiveApp { app, addr, hub, views }
}

fn token(tenant: &str, scopes: &[Scope]) -> String {
    issue_token(
        &JwtSecret::new(SECRET).unwrap(),
        tenant.parse().unwrap(),
        scopes,
        Duration::from_secs(600),
    )
}

fn tenant() -> String {
    Uuid::new_v4().to_string()
}

impl LiveApp {
    async fn connect(&self, token: &str) -> Result<Socket, WsError> {
        let mut request = format!("ws://{}/ws", self.addr).into_client_request().unwrap();
        request
            .headers_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
        tokio_tungstenite::connect_async(request)
            .await
            .map(|(socket, _)| socket)
    }

    async fn connect_url(&self, query: &str) -> Result<Socket, WsError> {
        tokio_tungstenite::connect_async(format!("ws://{}/ws{query}", self.addr))
            .await
            .map(|(socket, _)| socket)
    }

    fn publish(&self, operator: &str, rows: &[Arc<LiveRow>]) {
        let source = LiveSource::new("demo", operator);
        self.views.record(&source, rows);
        self.hub.publish(&source, rows);
    }
}

fn row(tenant: &str, metric: &str, start: u64, values: Value) -> Arc<LiveRow> {
    let mut flat = json!({"window_start": start, "window_end": start + 10_000, "tenant": tenant,
                          "metric": metric, "labels.region": "eu"});
    flat.as_object_mut()
        .unwrap()
        .extend(values.as_object().unwrap().clone());
    Arc::new(LiveRow::from_flat(flat, &["tenant".into(), "metric".into(), "labels.region".into()]).unwrap())
}

fn status_of(error: WsError) -> StatusCode {
    match error {
        WsError::Http(response) => StatusCode::from_u16(response.status().as_u16()).unwrap(),
        other => panic!("expected an HTTP refusal, got {other}"),
    }
}

/// The next JSON text message (pings skipped), within [`WAIT`].
async fn next_json(socket: &mut Socket) -> Value {
    loop {
        let message = tokio::time::timeout(WAIT, socket.next())
            .await
            .expect("a message arrives in time")
            .expect("the socket is open")
            .expect("the socket reads");
        match message {
            Message::Text(text) => return serde_json::from_str(&text).unwrap(),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("unexpected {other:?}"),
        }
    }
}

async fn send(socket: &mut Socket, message: Value) {
    socket.send(Message::text(message.to_string())).await.unwrap();
}

async fn subscribe(socket: &mut Socket, filter: Value) {
    send(
        socket,
        json!({"type": "subscribe", "topic": "windows", "filter": filter}),
    )
    .await;
    let reply = next_json(socket).await;
    assert_eq!(reply["type"], "subscribed", "{reply}");
}

/// Asserts nothing but pings arrives for a moment.
async fn assert_silent(socket: &mut Socket) {
    let deadline = tokio::time::Instant::now() + Duration::from_millis(300);
    while let Ok(message) = tokio::time::timeout_at(deadline, socket.next()).await {
        match message {
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            other => panic!("expected silence, got {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_credentials_are_refused_before_the_upgrade() {
    let live = live_app(|_| {}).await;
    assert_eq!(
        status_of(live.connect_url("").await.unwrap_err()),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        status_of(live.connect("not-a-jwt").await.unwrap_err()),
        StatusCode::UNAUTHORIZED
    );
    let keys = JwtKeys::new(&JwtSecret::new(SECRET).unwrap());
    let mut expired = Claims::new(&tenant(), &[Scope::Read], TokenKind::Access, Duration::from_secs(1));
    expired.exp -= 3600;
    assert_eq!(
        status_of(live.connect(&keys.sign(&expired)).await.unwrap_err()),
        StatusCode::UNAUTHORIZED
    );
    let refresh = keys.sign(&Claims::new(
        &tenant(),
        &[Scope::Read],
        TokenKind::Refresh,
        Duration::from_secs(60),
    ));
    assert_eq!(
        status_of(live.connect(&refresh).await.unwrap_err()),
        StatusCode::UNAUTHORIZED
    );
    let write_only = token(&tenant(), &[Scope::Write]);
    assert_eq!(
        status_of(live.connect(&write_only).await.unwrap_err()),
        StatusCode::FORBIDDEN
    );
    // Browsers pass the token in the query string.
    let mut socket = live
        .connect_url(&format!("?token={}", token(&tenant(), &[Scope::Read])))
        .await
        .unwrap();
    send(&mut socket, json!({"type": "ping"})).await;
    assert_eq!(next_json(&mut socket).await, json!({"type": "pong"}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribers_get_matching_windows_of_their_own_tenant_only() {
    let live = live_app(|_| {}).await;
    let (a, b) = (tenant(), tenant());
    let mut cpu = live.connect(&token(&a, &[Scope::Read])).await.unwrap();
    let mut all = live.connect(&token(&a, &[Scope::Read])).await.unwrap();
    let mut other = live.connect(&token(&b, &[Scope::Read])).await.unwrap();
    subscribe(&mut cpu, json!({"metric": "cpu", "tenant": a})).await;
    subscribe(&mut all, json!({})).await;
    subscribe(&mut other, json!({})).await;
    live.publish(
        "cpu_10s",
        &[
            row(&a, "cpu", 0, json!({"avg": 0.5})),
            row(&a, "mem", 0, json!({"avg": 7.0})),
            row(&b, "cpu", 0, json!({"avg": 99.0})),
        ],
    );
    let mut window = next_json(&mut cpu).await;
    let published_at_us = window
        .as_object_mut()
        .and_then(|w| w.remove("published_at_us"))
        .and_then(|t| t.as_u64())
        .expect("published_at_us");
    let now_us = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64;
    assert!(
        published_at_us <= now_us && now_us - published_at_us < 60_000_000,
        "{published_at_us}"
    );
    assert_eq!(
        window,
        json!({"type": "window", "pipeline": "demo", "operator": "cpu_10s", "window_start": 0,
               "window_end": 10_000, "key": {"tenant": a, "metric": "cpu", "labels.region": "eu"},
               "values": {"avg": 0.5}})
    );
    assert_silent(&mut cpu).await;
    assert_eq!(next_json(&mut all).await["key"]["metric"], "cpu");
    assert_eq!(next_json(&mut all).await["key"]["metric"], "mem");
    let theirs = next_json(&mut other).await;
    assert_eq!(theirs["key"]["tenant"], b.as_str());
    assert_eq!(theirs["values"]["avg"], 99.0);
    assert_silent(&mut other).await;
    assert_silent(&mut all).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_messages_get_errors_and_unsubscribe_stops_delivery() {
    let live = live_app(|config| config.live.max_subscriptions_per_client = 2).await;
    let a = tenant();
    let mut socket = live.connect(&token(&a, &[Scope::Read])).await.unwrap();
    for (message, code) in [
        (json!("hello"), "malformed_message"),
        (json!({"type": "subscribe", "topic": "alerts"}), "unknown_topic"),
        (
            json!({"type": "subscribe", "topic": "windows", "filter": {"tenant": tenant()}}),
            "forbidden",
        ),
        (
            json!({"type": "subscribe", "topic": "windows", "filter": {"metric": {"a": 1}}}),
            "bad_filter",
        ),
        (json!({"type": "unsubscribe", "topic": "windows"}), "not_subscribed"),
    ] {
        send(&mut socket, message.clone()).await;
        let reply = next_json(&mut socket).await;
        assert_eq!(
            (reply["type"].as_str(), reply["code"].as_str()),
            (Some("error"), Some(code)),
            "{message}"
        );
    }
    socket.send(Message::binary(vec![1, 2, 3])).await.unwrap();
    assert_eq!(next_json(&mut socket).await["code"], "malformed_message");
    subscribe(&mut socket, json!({"metric": "cpu"})).await;
    subscribe(&mut socket, json!({"metric": "mem"})).await;
    send(
        &mut socket,
        json!({"type": "subscribe", "topic": "windows", "filter": {"metric": "disk"}}),
    )
    .await;
    assert_eq!(next_json(&mut socket).await["code"], "subscription_refused");
    send(
        &mut socket,
        json!({"type": "unsubscribe", "topic": "windows", "filter": {"metric": "cpu"}}),
    )
    .await;
    assert_eq!(next_json(&mut socket).await["type"], "unsubscribed");
    live.publish("w", &[row(&a, "cpu", 0, json!({})), row(&a, "mem", 10_000, json!({}))]);
    assert_eq!(next_json(&mut socket).await["key"]["metric"], "mem");
    assert_silent(&mut socket).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_messages_close_the_connection() {
    let live = live_app(|config| config.live.max_message_bytes = 1024).await;
    let mut socket = live.connect(&token(&tenant(), &[Scope::Read])).await.unwrap();
    let huge = json!({"type": "subscribe", "topic": "windows", "filter": {"metric": "x".repeat(4096)}});
    let _ = socket.send(Message::text(huge.to_string())).await;
    let ended = tokio::time::timeout(WAIT, async {
        loop {
            match socket.next().await {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => break,
                Some(Ok(_)) => continue,
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the connection closes");
}

/// Rows of 16 KiB, so that a client that stops reading fills the TCP buffers
/// and then its queue within a few thousand rows.
fn big_row(tenant: &str, start: u64) -> Arc<LiveRow> {
    row(tenant, "cpu", start, json!({"blob": "x".repeat(16 * 1024)}))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_client_lags_while_a_fast_client_gets_everything() {
    let live = live_app(|config| {
        config.live.queue_len = 64;
        config.live.max_lag_secs = 600;
        config.live.heartbeat_secs = 600;
    })
    .await;
    let a = tenant();
    let mut fast = live.connect(&token(&a, &[Scope::Read])).await.unwrap();
    let mut slow = live.connect(&token(&a, &[Scope::Read])).await.unwrap();
    subscribe(&mut fast, json!({})).await;
    subscribe(&mut slow, json!({})).await;
    const BATCHES: u64 = 60;
    const BATCH: u64 = 50;
    let mut fast_got = 0;
    for batch in 0..BATCHES {
        let rows: Vec<_> = (0..BATCH).map(|i| big_row(&a, (batch * BATCH + i) * 10_000)).collect();
        live.hub.publish(&LiveSource::new("demo", "w"), &rows);
        // The fast client reads everything of this batch before the next comes.
        for i in 0..BATCH {
            let message = next_json(&mut fast).await;
            assert_eq!(message["type"], "window", "the fast client is never told it lagged");
            assert_eq!(message["window_start"], (batch * BATCH + i) * 10_000);
            fast_got += 1;
        }
    }
    assert_eq!(fast_got, BATCHES * BATCH);
    // Now the slow client reads: some windows, and lagged notices for the rest.
    let (mut windows, mut dropped, mut last_start) = (0u64, 0u64, None);
    while windows + dropped < BATCHES * BATCH {
        let message = next_json(&mut slow).await;
        match message["type"].as_str() {
            Some("window") => {
                let start = message["window_start"].as_u64().unwrap();
                assert!(last_start < Some(start), "in order, nothing twice");
                last_start = Some(start);
                windows += 1;
            }
            Some("lagged") => dropped += message["dropped"].as_u64().unwrap(),
            _ => panic!("unexpected {message}"),
        }
    }
    assert!(dropped > 0, "the slow client was told it lost messages");
    assert_eq!(
        windows + dropped,
        BATCHES * BATCH,
        "every window is either delivered or counted"
    );
    assert_eq!(
        last_start,
        Some((BATCHES * BATCH - 1) * 10_000),
        "the newest window arrives"
    );
    assert_eq!(live.hub.stats().dropped_total, dropped);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_lagging_too_long_is_disconnected_and_can_reconnect() {
    let live = live_app(|config| {
        config.live.queue_len = 4;
        config.live.max_lag_secs = 1;
        config.live.heartbeat_secs = 600;
        config.live.per_tenant_connections = 1;
    })
    .await;
    let a = tenant();
    let mut slow = live.connect(&token(&a, &[Scope::Read])).await.unwrap();
    subscribe(&mut slow, json!({})).await;
    assert_eq!(
        status_of(live.connect(&token(&a, &[Scope::Read])).await.unwrap_err()),
        StatusCode::TOO_MANY_REQUESTS,
        "the tenant's one connection is taken"
    );
    let source = LiveSource::new("demo", "w");
    let mut start = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    // Keep publishing without reading until the hub lets the client go.
    while live.hub.stats().connections > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the lagging client is disconnected"
        );
        let rows: Vec<_> = (0..20).map(|i| big_row(&a, (start + i) * 10_000)).collect();
        live.hub.publish(&source, &rows);
        start += 20;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Its end of the socket sees the connection end (after whatever was in flight).
    let ended = tokio::time::timeout(WAIT, async {
        loop {
            match slow.next().await {
                Some(Ok(Message::Close(frame))) => break frame.map(|f| u16::from(f.code)),
                None | Some(Err(_)) => break None,
                Some(Ok(_)) => continue,
            }
        }
    })
    .await
    .expect("the slow client's connection ends");
    if let Some(code) = ended {
        assert_eq!(code, 4008);
    }
    // The quota is free again: reconnect, resubscribe, receive.
    let mut again = live.connect(&token(&a, &[Scope::Read])).await.unwrap();
    subscribe(&mut again, json!({"metric": "cpu"})).await;
    live.publish("w", &[row(&a, "cpu", 0, json!({"count": 1}))]);
    assert_eq!(next_json(&mut again).await["values"]["count"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_live_services_the_routes_answer_503() {
    let app = TestApp::new(Backend::Embedded).await.unwrap();
    let auth = token(&tenant(), &[Scope::Read]);
    let reply = app.get("/api/v1/stats", &auth).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(reply.error_code(), "live_unavailable");
    let body = json!({"metric_name": "cpu", "start_time": 0, "end_time": 1, "aggregation": "avg"});
    assert_eq!(
        app.post("/api/v1/analytics/query", &auth, body).await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(app.get("/ws", &auth).await.status, StatusCode::SERVICE_UNAVAILABLE);
}

/// Tenant `a`: eu cpu windows at 0 s (values 1, 3) and 10 s (2, 2, 5), us at 0 s (10);
/// tenant `b`: one cpu window at 0 s.
fn seed(live: &LiveApp, a: &str, b: &str) {
    let window = |tenant: &str, region: &str, start: u64, values: &[f64]| {
        let sum: f64 = values.iter().sum();
        let mut flat = json!({"window_start": start, "window_end": start + 10_000, "tenant": tenant,
            "metric": "cpu", "labels.region": region, "count": values.len(), "sum": sum,
            "min": values.iter().copied().fold(f64::INFINITY, f64::min),
            "max": values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            "avg": sum / values.len() as f64, "p95": values.iter().copied().fold(f64::NEG_INFINITY, f64::max)});
        flat["window_start"] = json!(start);
        Arc::new(LiveRow::from_flat(flat, &["tenant".into(), "metric".into(), "labels.region".into()]).unwrap())
    };
    live.publish(
        "cpu_10s",
        &[
            window(a, "eu", 0, &[1.0, 3.0]),
            window(a, "us", 0, &[10.0]),
            window(a, "eu", 10_000, &[2.0, 2.0, 5.0]),
            window(b, "eu", 0, &[1000.0]),
        ],
    );
}

fn values(reply: &Value) -> Vec<(u64, Value)> {
    reply["series"][0]["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["timestamp"].as_u64().unwrap(), p["value"].clone()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_query_api_aggregates_groups_and_rebuckets_per_tenant() {
    let live = live_app(|_| {}).await;
    let (a, b) = (tenant(), tenant());
    seed(&live, &a, &b);
    let auth = token(&a, &[Scope::Read]);
    let query = |aggregation: &str| {
        json!({"metric_name": "cpu", "start_time": "1970-01-01T00:00:00Z", "end_time": 3_600_000,
               "aggregation": aggregation})
    };
    for (aggregation, want) in [
        ("count", [json!(3), json!(3)]),
        ("sum", [json!(14.0), json!(9.0)]),
        ("min", [json!(1.0), json!(2.0)]),
        ("max", [json!(10.0), json!(5.0)]),
        ("avg", [json!(14.0 / 3.0), json!(3.0)]),
        ("p95", [json!(10.0), json!(5.0)]),
    ] {
        let reply = live
            .app
            .post("/api/v1/analytics/query", &auth, query(aggregation))
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{aggregation}: {reply:?}");
        assert_eq!(
            values(&reply.body),
            vec![(0, want[0].clone()), (10_000, want[1].clone())],
            "{aggregation}"
        );
        assert_eq!(reply.body["operator"], "cpu_10s");
    }
    let mut grouped = query("sum");
    grouped["group_by"] = json!(["labels.region"]);
    let reply = live.app.post("/api/v1/analytics/query", &auth, grouped).await;
    assert_eq!(reply.body["series"][0]["group"], json!({"labels.region": "eu"}));
    assert_eq!(reply.body["series"][1]["group"], json!({"labels.region": "us"}));
    assert_eq!(
        reply.body["series"][1]["points"],
        json!([{"timestamp": 0, "value": 10.0, "windows": 1}])
    );
    let mut stepped = query("count");
    stepped["step"] = json!("1m");
    let reply = live.app.post("/api/v1/analytics/query", &auth, stepped).await;
    assert_eq!(
        reply.body["series"][0]["points"],
        json!([{"timestamp": 0, "value": 6, "windows": 3}])
    );
    assert_eq!(reply.body["step_ms"], 60_000);
    // [start, end): the window at 10 s is in [10 s, 20 s) and not in [0, 10 s).
    let mut edge = query("count");
    edge["start_time"] = json!("1970-01-01T00:00:10Z");
    edge["end_time"] = json!(20_000);
    assert_eq!(
        values(&live.app.post("/api/v1/analytics/query", &auth, edge).await.body),
        vec![(10_000, json!(3))]
    );
    let mut before = query("count");
    before["end_time"] = json!(10_000);
    assert_eq!(
        values(&live.app.post("/api/v1/analytics/query", &auth, before).await.body),
        vec![(0, json!(3))]
    );
    // Tenant b sees its own window only; tenant c nothing.
    let reply = live
        .app
        .post("/api/v1/analytics/query", &token(&b, &[Scope::Read]), query("sum"))
        .await;
    assert_eq!(values(&reply.body), vec![(0, json!(1000.0))]);
    let reply = live
        .app
        .post(
            "/api/v1/analytics/query",
            &token(&tenant(), &[Scope::Read]),
            query("sum"),
        )
        .await;
    assert_eq!(reply.body["series"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_queries_are_422_with_the_reason() {
    let live = live_app(|_| {}).await;
    let a = tenant();
    seed(&live, &a, &tenant());
    let auth = token(&a, &[Scope::Read]);
    let base = json!({"metric_name": "cpu", "start_time": 0, "end_time": 3_600_000, "aggregation": "avg"});
    for (field, value, needle) in [
        ("aggregation", json!("median"), "unknown aggregation"),
        ("aggregation", json!("p99"), "p99"),
        ("step", json!("1 minute"), "step"),
        ("start_time", json!("yesterday"), "start_time"),
        ("end_time", json!(0), "end_time must be after"),
        ("group_by", json!(["labels.zone"]), "labels.zone"),
    ] {
        let mut body = base.clone();
        body[field] = value;
        let reply = live.app.post("/api/v1/analytics/query", &auth, body).await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{field}: {reply:?}");
        let message = reply.body["error"]["message"].as_str().unwrap();
        assert!(message.contains(needle), "{field}: {message}");
    }
    let mut unknown = base.clone();
    unknown["metrc"] = json!("x");
    assert_eq!(
        live.app.post("/api/v1/analytics/query", &auth, unknown).await.status,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    let write_only = token(&a, &[Scope::Write]);
    assert_eq!(
        live.app
            .post("/api/v1/analytics/query", &write_only, base.clone())
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    let anonymous = live
        .app
        .call(axum::http::Method::POST, "/api/v1/analytics/query", None, Some(base))
        .await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_combine_the_engine_hook_with_hub_and_view_counters() {
    let live = live_app(|_| {}).await;
    let a = tenant();
    let mut socket = live.connect(&token(&a, &[Scope::Read])).await.unwrap();
    subscribe(&mut socket, json!({})).await;
    live.publish("cpu_10s", &[row(&a, "cpu", 0, json!({"count": 2}))]);
    next_json(&mut socket).await;
    let reply = live.app.get("/api/v1/stats", &token(&a, &[Scope::Read])).await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    assert_eq!(reply.body["pipeline"], json!({"events_in_total": 42}));
    assert_eq!(reply.body["live"]["connections"], 1);
    assert_eq!(reply.body["live"]["rows_published_total"], 1);
    assert_eq!(reply.body["live"]["messages_sent_total"], 1);
    assert_eq!(reply.body["views"][0]["operator"], "cpu_10s");
    assert_eq!(reply.body["views"][0]["rows"], 1);
    // The delivery time is recorded once the socket write returns, which may
    // be just after the client has the message: give it a moment.
    let mut text = String::new();
    for _ in 0..50 {
        let metrics = live.app.call(axum::http::Method::GET, "/metrics", None, None).await;
        text = metrics.body.as_str().unwrap_or_default().to_owned();
        if text.contains("pulse_ws_delivery_seconds") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(text.contains("pulse_ws_messages_sent_total"), "{text}");
    assert!(text.contains("pulse_ws_delivery_seconds"), "{text}");
}

/// The next JSON message of `kind`, skipping others (within [`WAIT`] each).
async fn next_of_type(socket: &mut Socket, kind: &str) -> Value {
    for _ in 0..20 {
        let message = next_json(socket).await;
        if message["type"] == kind {
            return message;
        }
    }
    panic!("no {kind} message among the next 20");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_subscribers_get_the_counters_pushed_over_the_socket() {
    let live = live_app(|_| {}).await;
    let a = tenant();
    let mut socket = live.connect(&token(&a, &[Scope::Read])).await.unwrap();
    send(&mut socket, json!({"type": "subscribe", "topic": "stats"})).await;
    let started = tokio::time::Instant::now();
    let first = next_of_type(&mut socket, "stats").await;
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "the first stats come at once"
    );
    assert_eq!(first["pipeline"], json!({"events_in_total": 42}), "{first}");
    assert_eq!(first["live"]["connections"], 1, "{first}");
    assert!(first["views"].is_array(), "{first}");
    let second = next_of_type(&mut socket, "stats").await;
    let gap = second["at"].as_u64().unwrap() - first["at"].as_u64().unwrap();
    assert!((1_500..=3_000).contains(&gap), "stats every 2 s, got {gap} ms apart");

    // A stats subscription receives no windows; a filter on it is refused.
    live.publish("cpu_10s", &[row(&a, "cpu", 0, json!({"count": 2}))]);
    send(
        &mut socket,
        json!({"type": "subscribe", "topic": "stats", "filter": {"metric": "cpu"}}),
    )
    .await;
    let refused = next_of_type(&mut socket, "error").await;
    assert_eq!(refused["code"], "bad_filter", "{refused}");

    // Unsubscribing stops them.
    send(&mut socket, json!({"type": "unsubscribe", "topic": "stats"})).await;
    next_of_type(&mut socket, "unsubscribed").await;
    let deadline = tokio::time::Instant::now() + Duration::from_millis(2_500);
    while let Ok(message) = tokio::time::timeout_at(deadline, socket.next()).await {
        match message {
            Some(Ok(Message::Text(text))) => {
                let message: Value = serde_json::from_str(&text).unwrap();
                assert_ne!(message["type"], "window", "{message}");
                assert_ne!(message["type"], "stats", "after unsubscribing: {message}");
            }
            Some(Ok(_)) => continue,
            other => panic!("the socket stays open: {other:?}"),
        }
    }
}
