//! The `http` source end to end: a pipeline whose events come from its own
//! gateway's `POST /api/v1/events`, over real HTTP on 127.0.0.1. Events land
//! under the credential's tenant whatever they claim; under a queue kept full
//! by concurrent clients, refused requests are 429 with `Retry-After` and
//! every accepted event is counted in the windows, no more and no fewer; the
//! source's time bounds refuse at the endpoint and its watermark makes late
//! events dead letters, as for every source; when clients fall silent, the
//! watermark moves on after `idle_timeout` and the last window closes.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::process::{free_port, request, wait_until};
use common::{TempDir, read_jsonl};
use pulse::{Pipeline, RunOptions, RunReport};
use pulse_core::Shutdown;
use serde_json::{Value, json};

/// Events per back-pressure request: more than half the queue, so two never fit at once.
const BATCH: u64 = 150;
/// The queue holds this many events.
const CAPACITY: u64 = 200;

fn pipeline(dir: &TempDir, port: u16) -> String {
    format!(
        r#"
[engine]
workers = 2

[sources.ingest]
type = "http"
queue_capacity = {CAPACITY}
max_out_of_orderness = "10s"
# The events below are two minutes old: a silence of the default 10 s while
# the test sets up would make them late.
idle_timeout = "10m"

[operators.per_metric]
type = "window"
inputs = ["ingest"]
window = {{ tumbling = "1s" }}
key = ["tenant", "metric"]
aggregates = ["count", "sum"]

[sinks.rows]
type = "file"
inputs = ["per_metric"]
path = "{dir}/rows.jsonl"

[sinks.refused]
type = "file"
inputs = ["ingest.dead_letter"]
path = "{dir}/dead.jsonl"

[gateway]
listen = "127.0.0.1:{port}"
data_dir = "{dir}/gateway"
demo = true
auth = {{ argon2_memory_kib = 256, argon2_iterations = 1 }}
rate_limit = {{ default_plan = "enterprise" }}
"#,
        dir = dir.display()
    )
}

/// Runs `text` in this process until `shutdown` fires.
fn start(dir: &TempDir, text: &str, shutdown: &Shutdown) -> JoinHandle<RunReport> {
    let path = dir.join("pipeline.toml");
    std::fs::write(&path, text).unwrap();
    let pipeline = Pipeline::parse(&path, text, &|_| None).unwrap_or_else(|e| panic!("{e}"));
    let options = RunOptions {
        workers: None,
        handle_signals: false,
        shutdown: shutdown.clone(),
    };
    std::thread::spawn(move || pulse::run(&pipeline, options).expect("the pipeline runs"))
}

/// Registers a user; returns its tenant id and access token.
fn register(address: SocketAddr, name: &str) -> (String, String) {
    let body = json!({"username": name, "email": format!("{name}@example.com"), "password": "Ingest-Test-1"});
    let answer = request(
        address,
        "POST",
        "/api/v1/auth/register",
        &[("Content-Type", "application/json")],
        &body.to_string(),
    );
    assert_eq!(answer.status, 201, "{}", answer.body);
    let text = |key: &str| answer.body[key].as_str().unwrap().to_owned();
    (text("tenant_id"), text("access_token"))
}

fn post(address: SocketAddr, token: &str, content_type: &str, body: &str) -> common::process::Answer {
    let auth = format!("Bearer {token}");
    request(
        address,
        "POST",
        "/api/v1/events",
        &[("Authorization", &auth), ("Content-Type", content_type)],
        body,
    )
}

fn metric(tenant: Option<&str>, ts: u64, metric: &str, value: f64) -> Value {
    let mut event = json!({"ts": ts, "source": "agent", "kind": "metric", "metric": metric, "value": value});
    if let Some(tenant) = tenant {
        event["tenant"] = json!(tenant);
    }
    event
}

/// The window rows written so far, as (tenant, metric) → count.
fn counts(dir: &TempDir) -> std::collections::BTreeMap<(String, String), u64> {
    let text = std::fs::read_to_string(dir.join("rows.jsonl")).unwrap_or_default();
    let whole = &text[..text.rfind('\n').map_or(0, |end| end + 1)];
    let mut counts = std::collections::BTreeMap::new();
    for row in common::parse_jsonl(whole, "rows.jsonl") {
        let key = (
            row["tenant"].as_str().unwrap().to_owned(),
            row["metric"].as_str().unwrap().to_owned(),
        );
        *counts.entry(key).or_insert(0) += row["count"].as_u64().unwrap();
    }
    counts
}

#[test]
fn events_land_under_their_credential_and_every_accepted_one_reaches_its_window() {
    let dir = TempDir::new("http-ingest");
    let port = free_port();
    let address: SocketAddr = ([127, 0, 0, 1], port).into();
    let shutdown = Shutdown::new();
    let running = start(&dir, &pipeline(&dir, port), &shutdown);
    wait_until("the gateway is ready", Duration::from_secs(60), || {
        request(address, "GET", "/health/ready", &[], "").status == 200
    });
    let (acme, acme_token) = register(address, "acme");
    let (globex, globex_token) = register(address, "globex");
    // One window, a while ago: every event below is in [base, base + 1 s).
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let base = (now - 120_000) / 1_000 * 1_000;

    // A JSON array from acme, one of its events claiming globex's tenant.
    let array = json!([
        metric(Some(&acme), base, "cpu", 1.0),
        metric(None, base + 1, "cpu", 2.0),
        metric(Some(&globex), base + 2, "cpu", 100.0),
        metric(None, base + 3, "cpu", 3.0),
    ]);
    let answer = post(address, &acme_token, "application/json", &array.to_string());
    assert_eq!(answer.status, 202, "{}", answer.body);
    assert_eq!(
        (
            answer.body["accepted"].as_u64(),
            answer.body["errors"][0]["index"].as_u64()
        ),
        (Some(3), Some(2))
    );
    // NDJSON from globex, with a line that is not JSON.
    let lines = format!(
        "{}\nnot json\n{}\n",
        metric(None, base + 4, "cpu", 5.0),
        metric(Some(&globex), base + 5, "cpu", 6.0)
    );
    let answer = post(address, &globex_token, "application/x-ndjson", &lines);
    assert_eq!(answer.status, 202, "{}", answer.body);
    assert_eq!(
        (
            answer.body["accepted"].as_u64(),
            answer.body["errors"][0]["index"].as_u64()
        ),
        (Some(2), Some(1))
    );

    // Four clients keep the queue full: each retries a refused batch until it is taken.
    let accepted = Arc::new(AtomicU64::new(0));
    let refusals = Arc::new(AtomicU64::new(0));
    let seen_429 = Arc::new(AtomicBool::new(false));
    let deadline = Instant::now() + Duration::from_secs(60);
    let clients: Vec<_> = (0..4)
        .map(|client| {
            let (token, accepted, refusals, seen_429) =
                (acme_token.clone(), accepted.clone(), refusals.clone(), seen_429.clone());
            std::thread::spawn(move || {
                let mut batches = 0;
                while batches < 5 || (!seen_429.load(Ordering::Relaxed) && Instant::now() < deadline) {
                    let events: Vec<Value> = (0..BATCH)
                        .map(|i| metric(None, base + (client * 37 + i * 7) % 1_000, "load", 1.0))
                        .collect();
                    let body = json!(events).to_string();
                    loop {
                        let answer = post(address, &token, "application/json", &body);
                        match answer.status {
                            202 => {
                                assert_eq!(answer.body["accepted"].as_u64(), Some(BATCH), "{}", answer.body);
                                accepted.fetch_add(BATCH, Ordering::Relaxed);
                                break;
                            }
                            429 => {
                                assert_eq!(answer.body["error"]["code"], "queue_full", "{}", answer.body);
                                assert_eq!(answer.header("retry-after"), Some("1"), "{}", answer.head);
                                refusals.fetch_add(1, Ordering::Relaxed);
                                seen_429.store(true, Ordering::Relaxed);
                                std::thread::sleep(Duration::from_millis(5));
                            }
                            other => panic!("unexpected {other}: {}", answer.body),
                        }
                    }
                    batches += 1;
                }
            })
        })
        .collect();
    clients.into_iter().for_each(|client| client.join().unwrap());
    assert!(
        seen_429.load(Ordering::Relaxed),
        "a queue of {CAPACITY} under four clients posting {BATCH} at a time refused some"
    );
    let accepted = accepted.load(Ordering::Relaxed);
    eprintln!(
        "{accepted} load events accepted; {} requests refused with 429 and retried",
        refusals.load(Ordering::Relaxed)
    );

    // An event past the window's end (and the allowed disorder) closes it.
    let closing = json!([metric(None, base + 1_000 + 10_000 + 100, "close", 0.0)]);
    assert_eq!(
        post(address, &acme_token, "application/json", &closing.to_string()).status,
        202
    );
    let expected = std::collections::BTreeMap::from([
        ((acme.clone(), "cpu".to_owned()), 3),
        ((acme.clone(), "load".to_owned()), accepted),
        ((globex.clone(), "cpu".to_owned()), 2),
    ]);
    wait_until("the window's rows", Duration::from_secs(30), || {
        counts(&dir) == expected
    });
    // Behind the watermark now: accepted, then late (a dead letter, as nothing reads `ingest.late`).
    let late = json!([metric(None, base + 5, "late", 1.0)]);
    assert_eq!(
        post(address, &acme_token, "application/json", &late.to_string()).status,
        202
    );
    // Past the source's max_future (1 h): refused at once, and dead-lettered.
    let future = json!([metric(None, now + 2 * 3_600_000, "future", 1.0)]);
    let answer = post(address, &acme_token, "application/json", &future.to_string());
    assert_eq!(answer.status, 422, "{}", answer.body);
    let reason = answer.body["error"]["details"]["errors"][0]["reason"]
        .as_str()
        .unwrap_or_default();
    assert!(reason.starts_with("timestamp_out_of_range"), "{reason}");
    std::thread::sleep(Duration::from_millis(500));
    shutdown.trigger();
    running.join().unwrap();
    assert_eq!(
        counts(&dir),
        expected,
        "{accepted} load events accepted after {} refusals: each counted once, under its credential's tenant",
        refusals.load(Ordering::Relaxed)
    );

    let letters = read_jsonl(&dir.join("dead.jsonl"));
    assert!(
        letters.iter().all(|letter| letter["component"] == "ingest"),
        "{letters:?}"
    );
    let (late, refused): (Vec<&Value>, Vec<&Value>) =
        letters.iter().partition(|letter| letter["position"]["type"] == "late");
    assert_eq!(late.len(), 1, "{letters:?}");
    assert!(late[0]["reason"].as_str().unwrap().starts_with("late: "), "{late:?}");
    let positions: Vec<(String, u64)> = refused
        .iter()
        .map(|letter| {
            assert_eq!(letter["position"]["type"], "http", "{letter}");
            (
                letter["reason"].as_str().unwrap().to_owned(),
                letter["position"]["index"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(positions.len(), 3, "{refused:?}");
    let index_of = |what: &str| {
        positions
            .iter()
            .find(|(reason, _)| reason.contains(what))
            .map(|(_, index)| *index)
    };
    assert_eq!(index_of("credential"), Some(2), "{positions:?}");
    assert_eq!(
        index_of("expected"),
        Some(1),
        "the line that is not JSON: {positions:?}"
    );
    assert_eq!(index_of("timestamp_out_of_range"), Some(0), "{positions:?}");
}

#[test]
fn a_silent_http_source_closes_its_last_window_after_the_idle_timeout() {
    let dir = TempDir::new("http-idle");
    let port = free_port();
    let address: SocketAddr = ([127, 0, 0, 1], port).into();
    let text = format!(
        r#"
[sources.ingest]
type = "http"
idle_timeout = "1s"

[operators.per_metric]
type = "window"
inputs = ["ingest"]
window = {{ tumbling = "1s" }}
key = ["tenant", "metric"]
aggregates = ["count", "sum"]

[sinks.rows]
type = "file"
inputs = ["per_metric"]
path = "{dir}/rows.jsonl"

[gateway]
listen = "127.0.0.1:{port}"
data_dir = "{dir}/gateway"
demo = true
auth = {{ argon2_memory_kib = 256, argon2_iterations = 1 }}
rate_limit = {{ default_plan = "enterprise" }}
"#,
        dir = dir.display()
    );
    let shutdown = Shutdown::new();
    let running = start(&dir, &text, &shutdown);
    wait_until("the gateway is ready", Duration::from_secs(60), || {
        request(address, "GET", "/health/ready", &[], "").status == 200
    });
    let (tenant, token) = register(address, "quiet");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    // Three events of the current second, then nothing: no later event will close their window.
    let events = json!([
        metric(None, now, "cpu", 1.0),
        metric(None, now, "cpu", 2.0),
        metric(None, now, "cpu", 3.0)
    ]);
    let answer = post(address, &token, "application/json", &events.to_string());
    assert_eq!(answer.status, 202, "{}", answer.body);
    let posted = Instant::now();
    let expected = std::collections::BTreeMap::from([((tenant, "cpu".to_owned()), 3)]);
    wait_until("the window closed by the idle timeout", Duration::from_secs(30), || {
        counts(&dir) == expected
    });
    let waited = posted.elapsed();
    shutdown.trigger();
    running.join().unwrap();
    let rows = read_jsonl(&dir.join("rows.jsonl"));
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["sum"].as_f64(), Some(6.0), "{rows:?}");
    assert!(
        waited >= Duration::from_millis(500),
        "the window waited for the silence, not less: {waited:?}"
    );
}

#[test]
fn an_http_source_needs_the_gateway_and_is_the_only_one() {
    let source = "[sources.a]\ntype = \"http\"\n";
    let rest = "[sinks.out]\ntype = \"stdout\"\ninputs = [\"a\"]\n";
    let error = Pipeline::parse("p.toml".as_ref(), &format!("{source}{rest}"), &|_| None).unwrap_err();
    assert!(error.to_string().contains("has no gateway"), "{error}");
    let two = format!("{source}[sources.b]\ntype = \"http\"\n{rest}[gateway]\nlisten = \"127.0.0.1:1\"\n");
    let error = Pipeline::parse("p.toml".as_ref(), &two, &|_| None).unwrap_err();
    assert!(error.to_string().contains("second http source"), "{error}");
    let zero = format!("[sources.a]\ntype = \"http\"\nqueue_capacity = 0\n{rest}[gateway]\n");
    let error = Pipeline::parse("p.toml".as_ref(), &zero, &|_| None).unwrap_err();
    assert!(error.to_string().contains("queue_capacity"), "{error}");
}
