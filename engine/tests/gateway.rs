//! The gateway as a user meets it through the `pulse` binary: served beside a
//! running pipeline (`[gateway]`), alone (`pulse serve`), and tokens printed
//! by `pulse token` — over real HTTP on 127.0.0.1.

mod common;

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::process::{
    KillOnDrop, free_port, http, pulse_token, terminate, wait_for_status, wait_until, wait_with_timeout,
};
use common::{TempDir, pulse_bin};
use serde_json::json;

const SECRET: &str = "an-engine-test-secret-of-more-than-32-characters";

/// A pipeline that runs until stopped, with a gateway on `port`.
fn pipeline_with_gateway(dir: &TempDir, port: u16) -> String {
    let text = format!(
        r#"
[sources.sensors]
type = "generator"
rate = 5000

[operators.per_tenant]
type = "window"
inputs = ["sensors"]
window = {{ tumbling = "1s" }}
key = ["tenant"]
aggregates = ["count"]

[sinks.rows]
type = "file"
inputs = ["per_tenant"]
path = "{dir}/rows.jsonl"

[gateway]
listen = "127.0.0.1:{port}"
data_dir = "{dir}/gateway"
"#,
        dir = dir.display()
    );
    let path = dir.join("pipeline.toml");
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

#[test]
fn a_pipeline_serves_the_gateway_while_it_runs() {
    let dir = TempDir::new("gateway-run");
    let port = free_port();
    let address: SocketAddr = ([127, 0, 0, 1], port).into();
    let child = Command::new(pulse_bin())
        .args(["run", &pipeline_with_gateway(&dir, port)])
        .env("PULSE_JWT_SECRET", SECRET)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_status(address, "/health/ready", 200);
    assert_eq!(http(address, "GET", "/health", None, None).0, 200);

    // The KV flow of a user: register, write, read.
    let (status, registered) = http(
        address,
        "POST",
        "/api/v1/auth/register",
        None,
        Some(&json!({"username": "ada", "email": "ada@example.com", "password": "Analytical1"})),
    );
    assert_eq!(status, 201, "{registered}");
    let token = registered["access_token"].as_str().expect("an access token").to_owned();
    let (status, created) = http(
        address,
        "POST",
        "/api/v1/kv",
        Some(&token),
        Some(&json!({"key": "greeting", "value": {"hello": "world"}})),
    );
    assert_eq!(status, 201, "{created}");
    let (status, read) = http(address, "GET", "/api/v1/kv/greeting", Some(&token), None);
    assert_eq!((status, &read["value"]), (200, &json!({"hello": "world"})), "{read}");

    // A token from `pulse token` works for its tenant, with its scopes only.
    let tenant = registered["tenant_id"].as_str().expect("a tenant id");
    let reader = pulse_token(SECRET, tenant, "read");
    let (status, read) = http(address, "GET", "/api/v1/kv/greeting", Some(&reader), None);
    assert_eq!((status, &read["value"]), (200, &json!({"hello": "world"})), "{read}");
    let (status, refused) = http(
        address,
        "POST",
        "/api/v1/kv",
        Some(&reader),
        Some(&json!({"key": "nope", "value": 1})),
    );
    assert_eq!(status, 403, "a read-only token cannot write: {refused}");

    // The engine's own metrics and the gateway's, in one Prometheus exposition.
    let (status, metrics) = http(address, "GET", "/metrics", None, None);
    let metrics = metrics.as_str().unwrap_or_default().to_owned();
    assert_eq!(status, 200);
    for series in [
        "pulse_component_sent_events_total",
        "pulse_http_requests_total",
        "pulse_http_request_duration_seconds",
    ] {
        assert!(metrics.contains(series), "/metrics lacks {series}:\n{metrics}");
    }
    assert_eq!(terminate(child), Some(0), "SIGTERM drains the pipeline and the gateway");
}

#[test]
fn pulse_serve_runs_the_gateway_alone_and_token_refuses_a_short_secret() {
    let dir = TempDir::new("gateway-serve");
    let port = free_port();
    let address: SocketAddr = ([127, 0, 0, 1], port).into();
    let child = Command::new(pulse_bin())
        .args([
            "serve",
            "--listen",
            &address.to_string(),
            "--data-dir",
            &dir.join("data").display().to_string(),
        ])
        .env("PULSE_JWT_SECRET", SECRET)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_status(address, "/health/ready", 200);
    let (status, body) = http(address, "GET", "/api/v1/kv/anything", None, None);
    assert_eq!(status, 401, "{body}");
    assert!(body["error"]["code"].is_string(), "errors are JSON: {body}");
    assert_eq!(terminate(child), Some(0));

    let output = Command::new(pulse_bin())
        .args(["token", "--tenant", "6f1c1f0e-2d3b-4c5d-8e9f-0a1b2c3d4e5f"])
        .env("PULSE_JWT_SECRET", "too-short")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("at least 32 characters"), "{stderr}");
}

/// Window rows of a `websocket` sink reach the query API of the run's
/// gateway, for the tenant whose id they carry and no other.
#[test]
fn a_websocket_sink_feeds_the_query_api_of_the_gateway() {
    let dir = TempDir::new("gateway-live");
    let tenant = "0b6f3c1e-5d4a-4f2b-9c8d-7e6f5a4b3c2d";
    // Three 10 s windows of cpu events for `tenant`, long ago: they close as
    // soon as the file is read, while the generator keeps the run going.
    let events: String = (0..30u64)
        .map(|i| {
            format!(
                "{{\"ts\":{},\"tenant\":\"{tenant}\",\"source\":\"h1\",\"kind\":\"metric\",\"metric\":\"cpu\",\"value\":{i}}}\n",
                1_000_000 + i * 1_000
            )
        })
        .collect();
    std::fs::write(dir.join("events.jsonl"), events).unwrap();
    let port = free_port();
    let address: SocketAddr = ([127, 0, 0, 1], port).into();
    std::fs::write(
        dir.join("live.toml"),
        format!(
            r#"
[sources.history]
type = "file"
path = "{dir}/events.jsonl"

[sources.sensors]
type = "generator"
rate = 1000

[operators.cpu_10s]
type = "window"
inputs = ["history", "sensors"]
window = {{ tumbling = "10s" }}
key = ["tenant", "metric"]
aggregates = ["count", "sum", "max"]

[sinks.live]
type = "websocket"
inputs = ["cpu_10s"]

[gateway]
listen = "{address}"
data_dir = "{dir}/gateway"
"#,
            dir = dir.display()
        ),
    )
    .unwrap();
    let child = Command::new(pulse_bin())
        .args(["run", &dir.join("live.toml").display().to_string()])
        .env("PULSE_JWT_SECRET", SECRET)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_status(address, "/health/ready", 200);
    let token = |tenant: &str| pulse_token(SECRET, tenant, "read");
    let query = json!({"metric_name": "cpu", "start_time": 0, "end_time": 2_000_000,
                       "aggregation": "sum", "operator": "cpu_10s"});
    let owner = token(tenant);
    let mut answer = json!(null);
    wait_until("the windows are queryable", Duration::from_secs(30), || {
        let (status, body) = http(address, "POST", "/api/v1/analytics/query", Some(&owner), Some(&query));
        answer = body;
        status == 200 && answer["series"][0]["points"].as_array().is_some_and(|p| p.len() == 3)
    });
    let points = &answer["series"][0]["points"];
    let sums: Vec<f64> = (0..3).map(|i| points[i]["value"].as_f64().unwrap()).collect();
    assert_eq!(
        sums,
        vec![45.0, 145.0, 245.0],
        "sums of 0..10, 10..20, 20..30: {answer}"
    );
    assert_eq!(points[0]["timestamp"], 1_000_000, "{answer}");

    let stranger = token("5a4b3c2d-1e0f-4a9b-8c7d-6e5f4a3b2c1d");
    let (status, body) = http(
        address,
        "POST",
        "/api/v1/analytics/query",
        Some(&stranger),
        Some(&query),
    );
    let seen = body["series"].as_array().map_or(0, Vec::len);
    assert!(status == 200 || status == 404, "{status}: {body}");
    assert_eq!(seen, 0, "another tenant sees none of these windows: {body}");
    let (status, stats) = http(address, "GET", "/api/v1/stats", Some(&owner), None);
    assert_eq!(status, 200, "{stats}");
    assert_eq!(terminate(child), Some(0));
}

/// A port another process holds is named, with how to choose another,
/// for the demo (`PULSE_LISTEN`) and for `pulse serve` (`--listen`).
#[test]
fn a_port_in_use_is_named_with_how_to_pick_another() {
    let dir = TempDir::new("gateway-port-in-use");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap();
    let demo = Command::new(pulse_bin())
        .args(["run", "pipelines/demo.toml"])
        .current_dir(common::workspace_dir())
        .env("PULSE_OUT_DIR", dir.path())
        .env("PULSE_LISTEN", address.to_string())
        .env("PULSE_JWT_SECRET", SECRET)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let serve = Command::new(pulse_bin())
        .args(["serve", "--listen", &address.to_string()])
        .args(["--data-dir", &dir.join("serve").display().to_string()])
        .env("PULSE_JWT_SECRET", SECRET)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    for (what, child, advice) in [
        ("the demo", demo, "PULSE_LISTEN="),
        ("pulse serve", serve, "pulse serve --listen"),
    ] {
        let mut guard = KillOnDrop::new(child);
        let code = wait_with_timeout(&mut guard, Duration::from_secs(60));
        let output = guard.take().wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(code, Some(1), "{what} fails: {stderr}");
        assert!(
            stderr.contains(&format!("{address} is already in use")) && stderr.contains(advice),
            "{what}: {stderr}"
        );
        assert!(!stderr.contains("invalid gateway configuration"), "{what}: {stderr}");
    }
    drop(taken);
}
