//! The gateway as a user meets it through the `pulse` binary: served beside a
//! running pipeline (`[gateway]`), alone (`pulse serve`), and tokens printed
//! by `pulse token` — over real HTTP on 127.0.0.1.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{TempDir, pulse_bin};
use serde_json::{Value, json};

const SECRET: &str = "an-engine-test-secret-of-more-than-32-characters";

/// A port nothing listens on right now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// One HTTP/1.1 request; returns the status and the body as JSON (or as a string).
fn http(address: SocketAddr, method: &str, path: &str, token: Option<&str>, body: Option<&Value>) -> (u16, Value) {
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(5)).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let body = body.map(Value::to_string).unwrap_or_default();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n{auth}\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        dechunk(body)
    } else {
        body.to_owned()
    };
    let json = serde_json::from_str(&body).unwrap_or(Value::String(body));
    (status, json)
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].trim_start_matches("\r\n");
    }
    out
}

/// Waits until `GET path` answers `status`.
fn wait_for(address: SocketAddr, path: &str, status: u16) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_ok()
            && http(address, "GET", path, None, None).0 == status
        {
            return;
        }
        assert!(Instant::now() < deadline, "{path} never answered {status}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn stop(mut child: Child) -> Option<i32> {
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().ok();
    None
}

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
    wait_for(address, "/health/ready", 200);
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
    let issued = |scopes: &str| {
        let output = Command::new(pulse_bin())
            .args(["token", "--tenant", tenant, "--scopes", scopes, "--ttl", "5m"])
            .env("PULSE_JWT_SECRET", SECRET)
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8(output.stdout).unwrap().trim().to_owned()
    };
    let reader = issued("read");
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
    assert_eq!(stop(child), Some(0), "SIGTERM drains the pipeline and the gateway");
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
    wait_for(address, "/health/ready", 200);
    let (status, body) = http(address, "GET", "/api/v1/kv/anything", None, None);
    assert_eq!(status, 401, "{body}");
    assert!(body["error"]["code"].is_string(), "errors are JSON: {body}");
    assert_eq!(stop(child), Some(0));

    let output = Command::new(pulse_bin())
        .args(["token", "--tenant", "6f1c1f0e-2d3b-4c5d-8e9f-0a1b2c3d4e5f"])
        .env("PULSE_JWT_SECRET", "too-short")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("at least 32 characters"), "{stderr}");
}
