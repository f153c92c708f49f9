//! `POST /api/v1/events` against the queue an `http` source reads: tenant
//! safety, per-event errors, both body forms, back-pressure (429 with
//! `Retry-After` and nothing taken), size limits, auth failures, and 503
//! without a source. The queue is the engine's own type, read here directly;
//! `engine/tests/http_ingest.rs` runs the same route in front of a pipeline.

mod common;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use common::{Backend, TestApp};
use pulse_core::ingest::{IngestItem, IngestQueue};
use pulse_core::{DeadLetter, Event, Shutdown};
use serde_json::{Value, json};

/// An event time the source's bounds accept: now-ish.
fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn metric(tenant: Option<&str>, ts: u64, value: f64) -> Value {
    let mut event = json!({"ts": ts, "source": "agent-1", "kind": "metric", "metric": "cpu", "value": value});
    if let Some(tenant) = tenant {
        event["tenant"] = json!(tenant);
    }
    event
}

/// A gateway with a queue of `capacity` attached whose admission refuses times
/// more than an hour ahead (as the source's `max_future` does).
async fn app_with_queue(capacity: usize) -> (TestApp, IngestQueue) {
    let app = TestApp::new(Backend::Embedded).await.expect("embedded always opens");
    let queue = IngestQueue::new("ingest", capacity, Shutdown::new(), |ts| {
        (ts > now_ms() + 3_600_000).then(|| format!("timestamp_out_of_range: ts {ts}"))
    });
    app.gateway.attach_ingest(queue.clone()).unwrap();
    (app, queue)
}

async fn post(app: &TestApp, auth: &str, content_type: &str, body: String) -> common::Reply {
    let mut request = Request::builder()
        .method(Method::POST)
        .uri("/api/v1/events")
        .header("content-type", content_type);
    request = if auth.starts_with("pk_") {
        request.header("x-api-key", auth)
    } else {
        request.header("authorization", format!("Bearer {auth}"))
    };
    app.send(request.body(Body::from(body)).unwrap()).await
}

fn drain(queue: &IngestQueue) -> (Vec<Event>, Vec<DeadLetter>) {
    let mut items = Vec::new();
    queue.take(usize::MAX, &mut items);
    let (mut events, mut letters) = (Vec::new(), Vec::new());
    for item in items {
        match item {
            IngestItem::Event(event) => events.push(event),
            IngestItem::DeadLetter(letter) => letters.push(letter),
        }
    }
    (events, letters)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_posts_only_its_own_events_and_hears_why_each_refused_one_was() {
    let (app, queue) = app_with_queue(1000).await;
    let (acme, globex) = (app.register("acme").await, app.register("globex").await);
    let ts = now_ms();
    let batch = json!([
        metric(Some(&acme.tenant_id), ts, 1.0),
        metric(None, ts + 1, 2.0),
        metric(Some(&globex.tenant_id), ts + 2, 3.0),
        {"ts": ts, "source": "agent-1", "kind": "metric", "metric": "cpu"},
        metric(None, ts + 7_200_000, 5.0),
        "not an object",
    ]);
    let reply = post(&app, &acme.access, "application/json", batch.to_string()).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{reply:?}");
    assert_eq!(
        (reply.body["accepted"].as_u64(), reply.body["rejected"].as_u64()),
        (Some(2), Some(4))
    );
    let errors = reply.body["errors"].as_array().unwrap();
    let indexes: Vec<u64> = errors.iter().map(|e| e["index"].as_u64().unwrap()).collect();
    assert_eq!(indexes, [2, 3, 4, 5], "{errors:?}");
    let reason = |i: usize| errors[i]["reason"].as_str().unwrap();
    assert!(
        reason(0).contains(&globex.tenant_id) && reason(0).contains("credential"),
        "{}",
        reason(0)
    );
    assert!(reason(1).contains("missing field `value`"), "{}", reason(1));
    assert!(reason(2).starts_with("timestamp_out_of_range"), "{}", reason(2));
    assert!(reason(3).contains("invalid type"), "{}", reason(3));

    let (events, letters) = drain(&queue);
    assert_eq!(events.len(), 2);
    assert!(
        events.iter().all(|event| event.tenant == acme.tenant_id.as_str()),
        "every accepted event is the credential's tenant's: {events:?}"
    );
    assert_eq!(letters.len(), 4, "refused elements go to the source's dead letters");
    let position = serde_json::to_value(&letters[0].position).unwrap();
    assert_eq!(position["type"], "http");
    assert_eq!(position["index"], 2);
    assert_eq!(
        position["request"].as_str().map(str::len),
        Some(36),
        "the correlation id: {position}"
    );
    assert!(
        letters[0].raw.contains(&globex.tenant_id),
        "the raw element is kept: {}",
        letters[0].raw
    );

    // globex's own credential is what posts globex's events.
    let reply = post(
        &app,
        &globex.access,
        "application/json",
        json!([metric(None, ts, 1.0)]).to_string(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{reply:?}");
    assert_eq!(drain(&queue).0[0].tenant, globex.tenant_id.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ndjson_lines_are_events_numbered_by_line_and_a_batch_with_none_valid_is_422() {
    let (app, queue) = app_with_queue(1000).await;
    let acme = app.register("acme").await;
    let ts = now_ms();
    let lines = format!(
        "{}\n\n{}\r\n{{\"ts\": broken\n{}\n",
        metric(None, ts, 1.0),
        metric(Some(&acme.tenant_id), ts, 2.0),
        metric(None, ts, 3.0)
    );
    let reply = post(&app, &acme.access, "application/x-ndjson", lines).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{reply:?}");
    assert_eq!(reply.body["accepted"], 3);
    assert_eq!(
        reply.body["errors"][0]["index"], 3,
        "the 0-based line, blank lines counted"
    );
    let values: Vec<Option<f64>> = drain(&queue).0.iter().map(Event::value).collect();
    assert_eq!(values, [Some(1.0), Some(2.0), Some(3.0)], "in the order posted");

    let reply = post(
        &app,
        &acme.access,
        "application/json",
        json!([{"ts": -1}, {}]).to_string(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{reply:?}");
    assert_eq!(reply.error_code(), "validation_failed");
    assert_eq!(reply.body["error"]["details"]["rejected"], 2);
    assert_eq!(reply.body["error"]["details"]["errors"][1]["index"], 1);
    let (events, letters) = drain(&queue);
    assert_eq!(
        (events.len(), letters.len()),
        (0, 2),
        "refused, they still reach the dead letters"
    );

    for (content_type, body, status, code) in [
        (
            "application/json",
            "{\"ts\": 1}".to_owned(),
            StatusCode::BAD_REQUEST,
            "invalid_json",
        ),
        (
            "application/json",
            "[{]".to_owned(),
            StatusCode::BAD_REQUEST,
            "invalid_json",
        ),
        (
            "text/plain",
            "[]".to_owned(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
    ] {
        let reply = post(&app, &acme.access, content_type, body.clone()).await;
        assert_eq!(
            (reply.status, reply.error_code()),
            (status, code),
            "{content_type} {body}: {reply:?}"
        );
    }
    assert!(queue.is_empty(), "a malformed body queues nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_answers_429_with_retry_after_and_takes_nothing_until_drained() {
    let (app, queue) = app_with_queue(5).await;
    let acme = app.register("acme").await;
    let ts = now_ms();
    let batch = |n: u64| json!((0..n).map(|i| metric(None, ts + i, i as f64)).collect::<Vec<_>>()).to_string();
    assert_eq!(
        post(&app, &acme.access, "application/json", batch(3)).await.status,
        StatusCode::ACCEPTED
    );

    let refused = post(&app, &acme.access, "application/json", batch(3)).await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS, "{refused:?}");
    assert_eq!(refused.error_code(), "queue_full");
    assert_eq!(refused.header("retry-after"), Some("1"));
    assert_eq!(queue.len(), 3, "the refused request took nothing");

    let too_large = post(&app, &acme.access, "application/json", batch(6)).await;
    assert_eq!(
        too_large.status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "more than the queue ever holds: {too_large:?}"
    );

    assert_eq!(drain(&queue).0.len(), 3, "the source drains the queue");
    let retried = post(&app, &acme.access, "application/json", batch(3)).await;
    assert_eq!(retried.status, StatusCode::ACCEPTED, "the retry fits: {retried:?}");
    assert_eq!(drain(&queue).0.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_need_the_write_scope_and_bodies_their_size_limit() {
    let (app, queue) = app_with_queue(1000).await;
    let acme = app.register("acme").await;
    let body = json!([metric(None, now_ms(), 1.0)]).to_string();

    let anonymous = app
        .send(
            Request::builder()
                .method(Method::POST)
                .uri("/api/v1/events")
                .header("content-type", "application/json")
                .body(Body::from(body.clone()))
                .unwrap(),
        )
        .await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED, "{anonymous:?}");
    assert_eq!(
        post(&app, "not-a-token", "application/json", body.clone()).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        post(&app, "pk_unknown", "application/json", body.clone()).await.status,
        StatusCode::UNAUTHORIZED
    );
    let (reader, _) = app.api_key(&acme, &["read"]).await;
    let forbidden = post(&app, &reader, "application/json", body.clone()).await;
    assert_eq!(forbidden.status, StatusCode::FORBIDDEN, "{forbidden:?}");
    assert!(queue.is_empty(), "refused credentials queue nothing");

    let (writer, _) = app.api_key(&acme, &["write"]).await;
    let line = metric(None, now_ms(), 1.0).to_string();
    let reply = post(&app, &writer, "application/x-ndjson", line).await;
    assert_eq!(
        reply.status,
        StatusCode::ACCEPTED,
        "an API key with write posts: {reply:?}"
    );
    assert_eq!(drain(&queue).0[0].tenant, acme.tenant_id.as_str(), "as its tenant");

    let oversize = format!("[{}]", vec![body.trim_matches(['[', ']']); 80_000].join(","));
    assert!(oversize.len() > app.config.limits.max_body_bytes);
    let reply = post(&app, &acme.access, "application/json", oversize).await;
    assert_eq!(
        (reply.status, reply.error_code()),
        (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_http_source_or_once_stopping_the_route_is_unavailable() {
    let app = TestApp::new(Backend::Embedded).await.unwrap();
    let acme = app.register("acme").await;
    let body = json!([metric(None, now_ms(), 1.0)]).to_string();
    let reply = post(&app, &acme.access, "application/json", body.clone()).await;
    assert_eq!(
        (reply.status, reply.error_code()),
        (StatusCode::SERVICE_UNAVAILABLE, "ingest_unavailable")
    );
    assert!(
        reply.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("type = \"http\""),
        "it says how to get one: {reply:?}"
    );

    let shutdown = Shutdown::new();
    app.gateway
        .attach_ingest(IngestQueue::new("ingest", 10, shutdown.clone(), |_| None))
        .unwrap();
    assert_eq!(
        post(&app, &acme.access, "application/json", body.clone()).await.status,
        StatusCode::ACCEPTED
    );
    shutdown.trigger();
    let reply = post(&app, &acme.access, "application/json", body).await;
    assert_eq!(
        (reply.status, reply.error_code()),
        (StatusCode::SERVICE_UNAVAILABLE, "ingest_unavailable")
    );
}
