//! `POST /api/v1/analytics/query` without `operator`, over windows shaped like
//! the operators of `pipelines/demo.toml` (their names, window lengths, keys
//! and aggregates read from the file): the seed-style query answers from the
//! finest-grained operator and names it, times may be ISO-8601, a missing
//! `end_time` means now, and only a tie no rule breaks is a 422 listing the
//! candidates.

mod common;

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use common::{Backend, SECRET, TestApp};
use pulse_core::DurationSpec;
use pulse_gateway::{JwtSecret, LiveServices, Scope, issue_token};
use pulse_live::{LiveHub, LiveRow, LiveSource, WindowViews};
use serde_json::{Map, Value, json};

/// A window operator of the demo pipeline.
struct DemoOperator {
    name: String,
    length_ms: u64,
    slide_ms: u64,
    key: Vec<String>,
    aggregates: Vec<String>,
}

fn duration_ms(value: &toml::Value) -> u64 {
    value.as_str().unwrap().parse::<DurationSpec>().unwrap().as_millis()
}

fn demo_operators() -> Vec<DemoOperator> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../pipelines/demo.toml");
    let text = std::fs::read_to_string(path).unwrap();
    let pipeline: toml::Value = toml::from_str(&text).unwrap();
    let strings = |value: &toml::Value| -> Vec<String> {
        value
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect()
    };
    let operators: Vec<DemoOperator> = pipeline["operators"]
        .as_table()
        .unwrap()
        .iter()
        .filter(|(_, operator)| operator["type"].as_str() == Some("window"))
        .map(|(name, operator)| {
            let window = &operator["window"];
            let (length_ms, slide_ms) = match (window.get("tumbling"), window.get("hopping")) {
                (Some(length), _) => (duration_ms(length), duration_ms(length)),
                (_, Some(length)) => (duration_ms(length), duration_ms(&window["slide"])),
                _ => panic!("{name}: a window this test does not know"),
            };
            DemoOperator {
                name: name.clone(),
                length_ms,
                slide_ms,
                key: strings(&operator["key"]),
                aggregates: strings(&operator["aggregates"]),
            }
        })
        .collect();
    assert!(operators.len() >= 2, "the demo has several window operators");
    operators
}

/// The demo's windows (as pipeline `pipeline`) of `tenant` for metric `cpu`, one per slide over the
/// last minute before `now_ms`, every aggregate of operator number `i` equal to `i + 1`.
fn publish_demo_windows(views: &WindowViews, pipeline: &str, tenant: &str, now_ms: u64) -> Vec<DemoOperator> {
    let operators = demo_operators();
    for (i, operator) in operators.iter().enumerate() {
        let first = (now_ms - 60_000) / operator.slide_ms * operator.slide_ms;
        let rows: Vec<Arc<LiveRow>> = (first..now_ms - operator.length_ms)
            .step_by(operator.slide_ms as usize)
            .map(|start| {
                let mut flat = Map::new();
                flat.insert("window_start".into(), json!(start));
                flat.insert("window_end".into(), json!(start + operator.length_ms));
                for field in &operator.key {
                    let value = match field.as_str() {
                        "tenant" => tenant,
                        "metric" => "cpu",
                        _ => "host-1",
                    };
                    flat.insert(field.clone(), json!(value));
                }
                for aggregate in &operator.aggregates {
                    flat.insert(aggregate.clone(), json!(i as f64 + 1.0));
                }
                // As the window operator emits it: `count` only where declared.
                if operator.aggregates.iter().any(|a| a == "count") {
                    flat.insert("count".into(), json!(10));
                }
                Arc::new(LiveRow::from_flat(Value::Object(flat), &operator.key).unwrap())
            })
            .collect();
        views.record(&LiveSource::new(pipeline, operator.name.as_str()), &rows);
    }
    operators
}

struct DemoApp {
    app: TestApp,
    views: WindowViews,
    tenant: String,
    token: String,
    operators: Vec<DemoOperator>,
    now_ms: u64,
}

async fn demo_app() -> DemoApp {
    let app = TestApp::new(Backend::Embedded).await.unwrap();
    let views = WindowViews::new(&app.config.retention);
    let hub = LiveHub::new(app.config.live.clone());
    app.gateway
        .attach_live(LiveServices::new(hub, views.clone(), || json!({})))
        .unwrap();
    let tenant = uuid::Uuid::new_v4().to_string();
    let now_ms = u64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap();
    let operators = publish_demo_windows(&views, "demo", &tenant, now_ms);
    let token = issue_token(
        &JwtSecret::new(SECRET).unwrap(),
        tenant.parse().unwrap(),
        &[Scope::Read],
        Duration::from_secs(600),
    );
    DemoApp {
        app,
        views,
        tenant,
        token,
        operators,
        now_ms,
    }
}

impl DemoApp {
    async fn query(&self, body: Value) -> common::Reply {
        self.app.post("/api/v1/analytics/query", &self.token, body).await
    }

    /// The finest-grained demo operator carrying `aggregate` (ties by name).
    fn finest_with(&self, aggregate: &str) -> &DemoOperator {
        self.operators
            .iter()
            .filter(|o| o.aggregates.iter().any(|a| a == aggregate))
            .min_by_key(|o| (o.length_ms, o.name.clone()))
            .unwrap()
    }
}

fn rfc3339(ms: u64) -> String {
    pulse_gateway::timestamp::rfc3339(i64::try_from(ms).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_style_query_answers_from_the_finest_demo_operator_and_names_it() {
    let demo = demo_app().await;
    let finest = demo.finest_with("avg");
    let seed = json!({"metric_name": "cpu", "start_time": demo.now_ms - 3_600_000, "end_time": demo.now_ms,
                      "aggregation": "avg"});
    let reply = demo.query(seed).await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    assert_eq!(reply.body["operator"], finest.name.as_str(), "{reply:?}");
    assert_eq!(reply.body["operator"], "by_metric_5s", "the demo's finest cpu window");
    assert_eq!(reply.body["pipeline"], "demo");
    let points = reply.body["series"][0]["points"].as_array().unwrap();
    assert!(points.len() > 5, "{reply:?}");
    let index = demo.operators.iter().position(|o| o.name == finest.name).unwrap();
    assert!(
        points.iter().all(|p| p["value"] == json!(index as f64 + 1.0)),
        "{reply:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_aggregate_and_group_fields_decide_which_demo_operator_can_answer() {
    let demo = demo_app().await;
    let start = demo.now_ms - 3_600_000;
    // p99 is only kept per host (cpu_per_host_30s), p95 only per metric.
    for aggregate in ["p99", "p95", "count"] {
        let reply = demo
            .query(json!({"metric_name": "cpu", "start_time": start, "aggregation": aggregate}))
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{aggregate}: {reply:?}");
        assert_eq!(
            reply.body["operator"],
            demo.finest_with(aggregate).name.as_str(),
            "{aggregate}"
        );
    }
    let per_host = demo
        .query(json!({"metric_name": "cpu", "start_time": start, "aggregation": "avg", "group_by": ["source"]}))
        .await;
    assert_eq!(per_host.status, StatusCode::OK, "{per_host:?}");
    assert_eq!(per_host.body["operator"], "cpu_per_host_30s");
    assert_eq!(per_host.body["series"][0]["group"], json!({"source": "host-1"}));
    let missing = demo
        .query(json!({"metric_name": "cpu", "start_time": start, "aggregation": "p50"}))
        .await;
    assert_eq!(missing.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        missing.body["error"]["message"].as_str().unwrap().contains("p50"),
        "{missing:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn iso8601_times_and_a_missing_end_time_meaning_now() {
    let demo = demo_app().await;
    let by_millis = demo
        .query(
            json!({"metric_name": "cpu", "start_time": demo.now_ms - 30_000, "end_time": demo.now_ms + 1,
                      "aggregation": "avg"}),
        )
        .await;
    assert_eq!(by_millis.status, StatusCode::OK, "{by_millis:?}");
    assert!(!by_millis.body["series"][0]["points"].as_array().unwrap().is_empty());
    let iso = |ms: u64| rfc3339(ms / 1000 * 1000 + 1000); // whole seconds, rounded up past ms
    for end_time in [json!(iso(demo.now_ms)), Value::Null] {
        let mut body = json!({"metric_name": "cpu", "start_time": rfc3339(demo.now_ms - 30_000),
                              "aggregation": "avg"});
        if !end_time.is_null() {
            body["end_time"] = end_time.clone();
        }
        let reply = demo.query(body).await;
        assert_eq!(reply.status, StatusCode::OK, "end_time {end_time}: {reply:?}");
        assert_eq!(reply.body["series"], by_millis.body["series"], "end_time {end_time}");
    }
    // Without an offset a time is UTC; a date alone is its midnight.
    let date = &rfc3339(demo.now_ms)[..10];
    let naive = demo
        .query(
            json!({"metric_name": "cpu", "start_time": format!("{date}T00:00:00"), "end_time": date,
                      "aggregation": "avg"}),
        )
        .await;
    assert_eq!(
        naive.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "an empty range: {naive:?}"
    );
    assert!(
        naive.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("after start_time")
    );
    let future = demo
        .query(json!({"metric_name": "cpu", "start_time": rfc3339(demo.now_ms + 60_000), "aggregation": "avg"}))
        .await;
    assert_eq!(
        future.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "start after now: {future:?}"
    );
    for (bad, needle) in [
        (json!("23/11/2024"), "ISO-8601"),
        (json!(-1), "epoch milliseconds"),
        (json!(1.5), "epoch milliseconds"),
        (json!(253_402_300_800_000_u64), "after 9999"),
    ] {
        let reply = demo
            .query(json!({"metric_name": "cpu", "start_time": bad, "aggregation": "avg"}))
            .await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {reply:?}");
        let message = reply.body["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("start_time") && message.contains(needle),
            "{bad}: {message}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_a_tie_no_rule_breaks_is_422_and_lists_the_candidates() {
    let demo = demo_app().await;
    // The demo's operators again, in a second pipeline: same names, same windows.
    publish_demo_windows(&demo.views, "copy", &demo.tenant, demo.now_ms);
    let seed = json!({"metric_name": "cpu", "start_time": demo.now_ms - 3_600_000, "aggregation": "avg"});
    let reply = demo.query(seed.clone()).await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{reply:?}");
    let message = reply.body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("copy/by_metric_5s") && message.contains("demo/by_metric_5s"),
        "{message}"
    );
    assert!(message.contains("\"pipeline\""), "says how to choose: {message}");
    let mut chosen = seed;
    chosen["pipeline"] = json!("copy");
    let reply = demo.query(chosen).await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    assert_eq!(
        (&reply.body["pipeline"], &reply.body["operator"]),
        (&json!("copy"), &json!("by_metric_5s"))
    );
}
