//! The README's query step on the demo itself: `pulse run pipelines/demo.toml`,
//! log in as `demo`, and `POST /api/v1/analytics/query` the way the issue's
//! seed script does — no `operator`, ISO-8601 `start_time`, no `end_time` —
//! which must answer from the finest-grained window operator and name it.

mod common;

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::process::{free_port, http, terminate, wait_for_status, wait_until};
use common::{TempDir, pulse_bin, workspace_dir};
use serde_json::{Value, json};

const DEMO_PASSWORD: &str = "Demo-query-test-1";

/// Ten minutes ago as RFC 3339 (whole seconds, UTC).
fn ten_minutes_ago() -> String {
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() - 600;
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest / 60 % 60,
        rest % 60
    )
}

#[test]
fn the_seed_style_query_answers_on_the_demo() {
    let dir = TempDir::new("demo-query");
    let port = free_port();
    let address: SocketAddr = ([127, 0, 0, 1], port).into();
    let child = Command::new(pulse_bin())
        .args(["run", "pipelines/demo.toml"])
        .current_dir(workspace_dir())
        .env("PULSE_LISTEN", address.to_string())
        .env("PULSE_OUT_DIR", dir.display())
        .env("PULSE_DEMO_PASSWORD", DEMO_PASSWORD)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_status(address, "/health/ready", 200);
    let login = json!({"username": "demo", "password": DEMO_PASSWORD});
    let (status, tokens) = http(address, "POST", "/api/v1/auth/login", None, Some(&login));
    assert_eq!(status, 200, "{tokens}");
    let token = tokens["access_token"].as_str().unwrap().to_owned();
    let seed = json!({"metric_name": "cpu", "start_time": ten_minutes_ago(), "aggregation": "avg"});
    let mut answer = Value::Null;
    let mut status = 0;
    // The first 5 s windows close a few seconds after the start; polled gently (the demo plan is metered).
    wait_until("a cpu window is queryable", Duration::from_secs(60), || {
        std::thread::sleep(Duration::from_secs(2));
        (status, answer) = http(address, "POST", "/api/v1/analytics/query", Some(&token), Some(&seed));
        status != 200 || answer["series"][0]["points"].as_array().is_some_and(|p| !p.is_empty())
    });
    assert_eq!(status, 200, "the seed-style query answers: {answer}");
    assert_eq!(answer["operator"], "by_metric_5s", "{answer}");
    assert_eq!(answer["pipeline"], "demo", "{answer}");
    assert!(answer["series"][0]["points"][0]["value"].is_f64(), "{answer}");
    // p99 is kept by the per-host operator only.
    let p99 = json!({"metric_name": "cpu", "start_time": ten_minutes_ago(), "aggregation": "p99"});
    wait_until("a per-host window is queryable", Duration::from_secs(60), || {
        std::thread::sleep(Duration::from_secs(2));
        (status, answer) = http(address, "POST", "/api/v1/analytics/query", Some(&token), Some(&p99));
        status != 200 || answer["series"][0]["points"].as_array().is_some_and(|p| !p.is_empty())
    });
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["operator"], "cpu_per_host_30s", "{answer}");
    assert_eq!(terminate(child), Some(0));
}
