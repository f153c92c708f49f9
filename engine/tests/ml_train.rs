//! `POST /api/v1/ml/train` on a running pipeline, over real HTTP on
//! 127.0.0.1: a linear regression and the anomaly operator's Isolation
//! Forest trained on the tenant's retained windows, registered as versions
//! of the tenant's models, and `/predict` giving what the same models
//! trained natively in the test give on the same windows (read back from
//! the pipeline's file sink); the pipeline's `onnx` operator scoring the
//! tenant's rows with the tenant's newly trained version (hot reload) and
//! another tenant's with the global model; the 4xx rules; the route in OpenAPI.
//!
//! Needs ONNX Runtime (`ORT_DYLIB_PATH`): skipped loudly without it, a
//! failure under `CI=true`.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use common::TempDir;
use common::process::{free_port, http, pulse_token, run_with_gateway, terminate, wait_until};
use pulse_operators::onnx::train::{self, ModelKind};
use serde_json::{Value, json};

const SECRET: &str = "an-engine-test-secret-of-more-than-32-characters";

/// The complete lines of the file sink's output so far.
fn jsonl(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let complete = text.rfind('\n').map_or("", |end| &text[..end]);
    complete
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

fn start(window: &Value) -> u64 {
    window["window_start"].as_u64().unwrap()
}

/// The windows of `[from, to)` in the order training reads them: by start,
/// end, then key fields as sorted `name=value` text.
fn training_rows(all: &[Value], from: u64, to: u64) -> Vec<Value> {
    let mut rows: Vec<Value> = all
        .iter()
        .filter(|w| w["tenant"] == "acme" && start(w) >= from && w["window_end"].as_u64().unwrap() <= to)
        .cloned()
        .collect();
    let key = |w: &Value| {
        let mut key: Vec<String> = ["tenant", "source", "metric"]
            .iter()
            .map(|name| format!("{name}={}", w[name].as_str().unwrap()))
            .collect();
        key.sort();
        (start(w), w["window_end"].as_u64().unwrap(), key)
    };
    rows.sort_by_cached_key(key);
    rows
}

fn columns(rows: &[Value], names: &[&str]) -> Vec<Vec<f64>> {
    rows.iter()
        .map(|row| names.iter().map(|n| row[n].as_f64().unwrap()).collect())
        .collect()
}

/// As ONNX Runtime sees them: 32-bit floats.
fn as_f32(rows: &[Vec<f64>]) -> Vec<Vec<f64>> {
    rows.iter()
        .map(|row| row.iter().map(|v| f64::from(*v as f32)).collect())
        .collect()
}

fn predictions(body: &Value, column: &str) -> Vec<f64> {
    body["predictions"]
        .as_array()
        .unwrap_or_else(|| panic!("no predictions in {body}"))
        .iter()
        .map(|p| p[column].as_f64().unwrap())
        .collect()
}

/// ONNX Runtime's linear predictions against `x · weights + intercept` in
/// `f64`: it computes in `f32` with `f32` weights, so the error scales with
/// the terms summed, not with the result (which may cancel to near zero).
fn assert_linear(got: &[f64], x: &[Vec<f64>], weights: &[f64], intercept: f64, what: &str) {
    assert_eq!(got.len(), x.len(), "{what}");
    for (g, row) in got.iter().zip(as_f32(x)) {
        let terms: Vec<f64> = row.iter().zip(weights).map(|(v, w)| v * w).collect();
        let want = intercept + terms.iter().sum::<f64>();
        let scale = intercept.abs() + terms.iter().map(|t| t.abs()).sum::<f64>();
        assert!(
            (g - want).abs() <= 1e-6 * scale.max(1.0),
            "{what}: {g} vs native {want} at {row:?}"
        );
    }
}

fn assert_close(got: &[f64], want: &[f64], tolerance: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}");
    for (g, w) in got.iter().zip(want) {
        assert!(
            (g - w).abs() <= tolerance * w.abs().max(1.0),
            "{what}: {g} vs native {w}"
        );
    }
}

#[test]
fn models_trained_through_the_api_score_as_the_native_models() {
    if let Err(error) = pulse_operators::onnx::runtime::environment() {
        assert_ne!(std::env::var("CI").as_deref(), Ok("true"), "CI=true and {error}");
        eprintln!("\n*** SKIPPED: {error} ***\n");
        return;
    }
    let dir = TempDir::new("ml-train");
    let models = dir.join("models");
    let port = free_port();
    let address: SocketAddr = ([127, 0, 0, 1], port).into();
    let pipeline = format!(
        r#"
# Two workers: each has its own sessions, and the API serves what both score.
[engine]
workers = 2

[sources.sensors]
type = "generator"
rate = 2000
sensors = {{ tenants = 2, tenant_names = ["acme", "globex"], hosts_per_tenant = 2 }}

[operators.per_host]
type = "window"
inputs = ["sensors"]
window = {{ tumbling = "1s" }}
key = ["tenant", "source", "metric"]
aggregates = ["count", "avg", "p95", "max"]

# `next` is the global fixture `linear` (version 7) until a tenant trains its own.
[operators.next]
type = "onnx"
inputs = ["per_host"]
model = "next"
models_dir = "{models}"
reload_interval = "200ms"

[sinks.live]
type = "websocket"
inputs = ["per_host"]

[sinks.predictions]
type = "file"
inputs = ["next"]
path = "{dir}/predictions.jsonl"

[sinks.rows]
type = "file"
inputs = ["per_host"]
path = "{dir}/windows.jsonl"

[gateway]
listen = "127.0.0.1:{port}"
data_dir = "{dir}/gateway"

[ml]
models_dir = "{models}"
"#,
        models = models.display(),
        dir = dir.display()
    );
    std::fs::write(dir.join("pipeline.toml"), pipeline).unwrap();
    let global = models.join("next/7");
    std::fs::create_dir_all(&global).unwrap();
    let fixture = common::workspace_dir().join("operators/tests/fixtures/onnx/models/linear/2");
    for file in ["model.onnx", "model.toml"] {
        std::fs::copy(fixture.join(file), global.join(file)).unwrap();
    }
    let child = run_with_gateway(&dir.join("pipeline.toml").display().to_string(), SECRET, address);
    let admin = pulse_token(SECRET, "acme", "read,write,admin");
    let reader = pulse_token(SECRET, "acme", "read,write");
    let initech = pulse_token(SECRET, "initech", "read,write,admin");
    let call = |method: &str, path: &str, token: &str, body: Option<Value>| {
        http(address, method, path, Some(token), body.as_ref())
    };

    // Five whole seconds of windows, closed and retained.
    let sink = dir.join("windows.jsonl");
    let mut starts = Vec::new();
    wait_until("seven seconds of windows", Duration::from_secs(60), || {
        starts = jsonl(&sink).iter().map(start).collect();
        starts.sort_unstable();
        starts.dedup();
        starts.len() >= 7
    });
    let (from, to) = (starts[1], starts[5] + 1000);
    std::thread::sleep(Duration::from_millis(500));
    let rows = training_rows(&jsonl(&sink), from, to);
    assert_eq!(rows.len(), 50, "5 windows of 2 hosts × 5 metrics");

    // A linear regression of max on avg and p95.
    let request = json!({
        "model_id": "max_from_avg", "kind": "linear_regression", "features": ["avg", "p95"],
        "target": "max", "operator": "per_host", "start_ms": from, "end_ms": to, "ridge": 0.5,
    });
    let (status, body) = call("POST", "/api/v1/ml/train", &admin, Some(request.clone()));
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        (body["version"].as_str(), body["rows"].as_u64()),
        (Some("1"), Some(50)),
        "{body}"
    );
    assert_eq!(body["model"]["active_version"], "1");
    assert_eq!(body["model"]["scope"], "tenant");
    assert_eq!(body["model"]["features"], json!(["avg", "p95"]));
    let x = columns(&rows, &["avg", "p95"]);
    let y: Vec<f64> = columns(&rows, &["max"]).into_iter().map(|r| r[0]).collect();
    let features = ["avg".to_owned(), "p95".to_owned()];
    let native = train::LinearRegression::fit(&x, &y, 0.5, &features).unwrap();
    let fitted = [
        body["fit"]["coefficients"]["avg"].as_f64().unwrap(),
        body["fit"]["coefficients"]["p95"].as_f64().unwrap(),
        body["fit"]["intercept"].as_f64().unwrap(),
    ];
    assert_close(
        &fitted,
        &[native.weights[0], native.weights[1], native.intercept],
        1e-9,
        "the API fitted the same windows",
    );
    let (status, scored) = call(
        "POST",
        "/api/v1/ml/predict/max_from_avg",
        &reader,
        Some(json!({ "instances": x })),
    );
    assert_eq!(status, 200, "{scored}");
    assert_linear(
        &predictions(&scored, "predicted_max"),
        &x,
        &native.weights,
        native.intercept,
        "linear",
    );

    // Training again makes version 2, the active one.
    let (status, body) = call("POST", "/api/v1/ml/train", &admin, Some(request));
    assert_eq!((status, body["version"].as_str()), (201, Some("2")), "{body}");
    let (_, model) = call("GET", "/api/v1/ml/models/max_from_avg", &reader, None);
    assert_eq!(model["active_version"], "2", "{model}");

    // The Isolation Forest of the anomaly operator, scored as it scores.
    let names = ["avg", "p95", "max"];
    let (status, body) = call(
        "POST",
        "/api/v1/ml/train",
        &admin,
        Some(json!({
            "model_id": "odd_windows", "kind": "isolation_forest", "features": names,
            "operator": "per_host", "start_ms": from, "end_ms": to, "trees": 50, "sample_size": 32, "seed": 9,
        })),
    );
    assert_eq!(status, 201, "{body}");
    let x = columns(&rows, &names);
    let kind = ModelKind::IsolationForest {
        trees: 50,
        sample_size: 32,
        seed: 9,
    };
    let names: Vec<String> = names.map(String::from).to_vec();
    let native = train::train(&kind, &names, &x, &[], "", "").unwrap().native;
    let mut probe = x.clone();
    probe.push(vec![1e4, -1e4, 5e4]);
    let (status, scored) = call(
        "POST",
        "/api/v1/ml/predict/odd_windows",
        &reader,
        Some(json!({ "instances": probe })),
    );
    assert_eq!(status, 200, "{scored}");
    let want: Vec<f64> = as_f32(&probe).iter().map(|r| native.predict(r)).collect();
    let got = predictions(&scored, "anomaly_score");
    assert_close(&got, &want, 1e-5, "isolation forest");
    assert!(got[got.len() - 1] > 0.6, "the outlier scores high: {got:?}");

    // What is refused, and why.
    let base = json!({"model_id": "m", "kind": "linear_regression", "features": ["avg"], "target": "max"});
    let with = |changes: Value| {
        let mut request = base.clone();
        for (k, v) in changes.as_object().unwrap() {
            if v.is_null() {
                request.as_object_mut().unwrap().remove(k);
            } else {
                request[k] = v.clone();
            }
        }
        request
    };
    let refusals = [
        (with(json!({"features": ["avg", "p42"]})), 422, "has a column `p42`"),
        (with(json!({"target": null})), 422, "needs `target`"),
        (
            with(json!({"filter": {"source": "no-such-host"}})),
            422,
            "no retained window",
        ),
        (
            with(json!({"filter": {"metric": "cpu"}, "start_ms": from, "end_ms": from + 1000})),
            422,
            "usable rows",
        ),
        (with(json!({"features": []})), 422, "1 to 64"),
        (
            with(json!({"kind": "isolation_forest", "target": null, "trees": 100_000})),
            422,
            "trees must be 1 to 500",
        ),
        (with(json!({"model_id": "../etc"})), 422, "is not a name"),
        (with(json!({"kind": "deep_learning"})), 422, ""),
    ];
    for (request, status, message) in refusals {
        let (got, body) = call("POST", "/api/v1/ml/train", &admin, Some(request.clone()));
        assert_eq!(got, status, "{request}: {body}");
        let text = body["error"]["message"].as_str().unwrap_or_default();
        assert!(text.contains(message), "{request}: {text:?} should say {message:?}");
    }
    assert_eq!(call("POST", "/api/v1/ml/train", &reader, Some(base.clone())).0, 403);
    let (status, body) = call("POST", "/api/v1/ml/train", &initech, Some(base));
    assert_eq!(
        status, 422,
        "a tenant trains on its own windows only (initech has none): {body}"
    );
    assert_eq!(call("GET", "/api/v1/ml/models/odd_windows", &initech, None).0, 404);

    // The pipeline's operator: acme's rows switch to acme's own `next`, trained
    // here on the operator's features; globex's stay with the global version 7.
    let features = ["avg", "p95", "max"];
    let (status, body) = call(
        "POST",
        "/api/v1/ml/train",
        &admin,
        Some(json!({
            "model_id": "next", "kind": "linear_regression", "features": features, "target": "count",
            "operator": "per_host", "ridge": 1.0,
        })),
    );
    assert_eq!((status, body["version"].as_str()), (201, Some("1")), "{body}");
    let weights: Vec<f64> = features
        .iter()
        .map(|f| body["fit"]["coefficients"][f].as_f64().unwrap())
        .collect();
    let intercept = body["fit"]["intercept"].as_f64().unwrap();
    let predictions_file = dir.join("predictions.jsonl");
    let mut own = Vec::new();
    wait_until("acme's windows scored by acme's model", Duration::from_secs(30), || {
        own = jsonl(&predictions_file)
            .into_iter()
            .filter(|p| p["tenant"] == "acme" && p["version"] == "1")
            .collect();
        own.len() >= 10
    });
    let got: Vec<f64> = own.iter().map(|p| p["prediction"].as_f64().unwrap()).collect();
    let x = columns(&own, &features);
    assert_linear(&got, &x, &weights, intercept, "the operator with acme's model");
    let all = jsonl(&predictions_file);
    // The versions of each tenant's latest window.
    let versions = |tenant: &str| -> Vec<String> {
        let of_tenant = || all.iter().filter(|p| p["tenant"] == tenant);
        let last_start = of_tenant().map(start).max().unwrap();
        let mut v: Vec<String> = of_tenant()
            .filter(|p| start(p) == last_start)
            .map(|p| p["version"].as_str().unwrap().to_owned())
            .collect();
        v.dedup();
        v
    };
    assert_eq!(versions("globex"), ["7"], "other tenants keep the global model");
    assert_eq!(
        versions("acme"),
        ["1"],
        "every acme row of a window goes to acme's model"
    );

    let (_, openapi) = http(address, "GET", "/api/v1/openapi.json", None, None);
    assert!(
        openapi["paths"]["/api/v1/ml/train"]["post"].is_object(),
        "train is in OpenAPI"
    );
    assert_eq!(terminate(child.take()), Some(0));
}
