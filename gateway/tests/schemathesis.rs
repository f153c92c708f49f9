//! Schemathesis (`--checks all`) against a live gateway on loopback: the
//! OpenAPI document must describe what the server does — every status it
//! answers, every body's shape — and its schemas must accept exactly what the
//! server accepts. Zero failures pass.
//!
//! The executable comes from `PULSE_SCHEMATHESIS` or the venv that
//! `scripts/schemathesis.sh` (`ensure_schemathesis`) installs under
//! `~/.cache/pulse/venv-schemathesis`. Without it the test is skipped loudly;
//! with `CI=true` it fails instead.

mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Backend, PASSWORD, TestApp};
use pulse_gateway::config::PlanLimit;
use pulse_gateway::{LiveServices, serve};
use pulse_live::{LiveHub, LiveRow, LiveSource, WindowViews};
use serde_json::json;

/// Test cases per operation and phase: enough to find a disagreement, few enough
/// for well under a minute here. `PULSE_SCHEMATHESIS_EXAMPLES` asks for more.
const MAX_EXAMPLES: &str = "100";

/// The whole run may take this long before it is killed and the test fails.
const RUN_LIMIT: Duration = Duration::from_secs(300);

/// What schemathesis' defaults do not know (schemathesis.toml):
///
/// - a key over its length limit is refused with 413 (documented), which the
///   default list of rejection statuses lacks;
/// - `end_time` after `start_time` (and the anomalies' `end` after `start`)
///   relates two fields, which JSON Schema cannot express, so a schema-valid
///   query may be a 422 (documented as such);
/// - an ingested event must belong to the caller's tenant and fall within the
///   source's time bounds, and which fields it needs depends on its `kind`: a
///   schema-valid batch may be refused event by event (422 when none passes);
/// - a prediction's instances must have as many numbers as the model has
///   features, which depends on the model: a schema-valid request may be a 422
///   (or 413 over 1024 instances), both documented;
/// - a training request needs columns the tenant's windows have and enough of
///   them (the one window recorded here is never enough: nothing is written
///   to the fixture registry): a schema-valid request is a 422, documented.
const CONFIG: &str = r#"
[checks.negative_data_rejection]
expected-statuses = ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429", "5xx"]

[[operations]]
include-path = "/api/v1/analytics/query"
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "403", "404", "409", "422", "429"]

[[operations]]
include-path = "/api/v1/events"
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "403", "413", "422", "429"]

[[operations]]
include-path = "/api/v1/ml/predict/{model_id}"
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "403", "404", "413", "422", "429"]

[[operations]]
include-path = "/api/v1/ml/train"
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "403", "422", "429"]

[[operations]]
include-path = "/api/v1/analytics/anomalies/{metric}"
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "403", "404", "409", "422", "429"]
"#;

/// The schemathesis executable, or `None` (after saying so loudly) when there is none outside CI.
fn schemathesis() -> Option<PathBuf> {
    let candidate = std::env::var_os("PULSE_SCHEMATHESIS").map(PathBuf::from).or_else(|| {
        std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache/pulse/venv-schemathesis/bin/schemathesis"))
    });
    match candidate.filter(|path| path.is_file()) {
        Some(path) => Some(path),
        None if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("no schemathesis executable: CI requires one (scripts/test.sh runs ensure_schemathesis)")
        }
        None => {
            let warning = "\n*** SKIPPED: no schemathesis (set PULSE_SCHEMATHESIS, or source scripts/schemathesis.sh \
                           and run ensure_schemathesis) ***\n";
            let _ = std::io::Write::write_all(&mut std::io::stderr(), warning.as_bytes());
            None
        }
    }
}

/// Without ONNX Runtime (outside CI) predictions answer 503, which schemathesis
/// counts as a server error: the ml routes are then left out, loudly.
fn ml_paths_excluded() -> Vec<&'static str> {
    match pulse_operators::onnx::runtime::environment() {
        Ok(_) => Vec::new(),
        Err(error) if std::env::var("CI").as_deref() == Ok("true") => panic!("CI=true and {error}"),
        Err(error) => {
            eprintln!("\n*** /api/v1/ml/* NOT FUZZED: {error} ***\n");
            vec!["--exclude-path-regex", "^/api/v1/ml/"]
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_disagreement_between_the_document_and_the_server() {
    let Some(executable) = schemathesis() else { return };
    // An enterprise (unlimited) default plan and no sign-in limit: the run cannot exhaust them.
    let app = TestApp::with(Backend::Embedded, |config| {
        config.rate_limit.sign_in = PlanLimit::Unlimited;
    })
    .await
    .unwrap();
    let views = WindowViews::new(&app.config.retention);
    let hub = LiveHub::new(app.config.live.clone());
    app.gateway
        .attach_live(LiveServices::new(hub, views.clone(), || json!({"events_in_total": 0})))
        .unwrap();
    // A queue as an `http` source has, so that events are judged, not answered 503.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let ingest = pulse_core::ingest::IngestQueue::new("fuzz", 1_000_000, pulse_core::Shutdown::new(), move |ts| {
        (ts + 3_600_000 < now || ts > now + 3_600_000).then(|| "timestamp_out_of_range".to_owned())
    });
    app.gateway.attach_ingest(ingest).unwrap();
    // The engine's model service over the fixture registry: the ml routes answer
    // from real models (they need ONNX Runtime to predict; see `ml_paths`).
    let models = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../operators/tests/fixtures/onnx/models");
    let ml = pulse::ml_service::MlConfig {
        models_dir: Some(models),
    };
    app.gateway
        .attach_models(Arc::new(pulse::ml_service::RegistryModels::new(&ml)))
        .unwrap();
    app.gateway.readiness().set_pipeline_ready(true);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(serve(listener, app.router.clone(), std::future::pending()));

    let registered = app
        .call(
            axum::http::Method::POST,
            "/api/v1/auth/register",
            None,
            Some(json!({"username": "fuzz-owner", "email": "fuzz@example.com", "password": PASSWORD})),
        )
        .await;
    assert_eq!(registered.status, axum::http::StatusCode::CREATED, "{registered:?}");
    let token = registered.body["access_token"].as_str().unwrap().to_owned();
    let tenant = registered.body["tenant_id"].as_str().unwrap().to_owned();
    // A few windows of the tenant, so queries of `cpu` have data to aggregate.
    let flat = json!({"window_start": 0, "window_end": 5_000, "tenant": tenant, "metric": "cpu",
                      "count": 3, "avg": 0.5, "min": 0.1, "max": 0.9, "sum": 1.5, "p95": 0.9});
    let row = LiveRow::from_flat(flat, &["tenant".into(), "metric".into()]).unwrap();
    views.record(&LiveSource::new("fuzz", "by_metric_5s"), &[Arc::new(row)]);

    let config = app.dir.path().join("schemathesis.toml");
    std::fs::write(&config, CONFIG).unwrap();
    let reports = app.dir.path().join("schemathesis-report");
    let examples = std::env::var("PULSE_SCHEMATHESIS_EXAMPLES").unwrap_or_else(|_| MAX_EXAMPLES.to_owned());
    let mut command = Command::new(&executable);
    command
        .arg("--config-file")
        .arg(&config)
        .arg("run")
        .arg(format!("http://{address}/api/v1/openapi.json"))
        .args(["--checks", "all", "--max-examples", &examples, "--no-color"])
        // The token is this test's own; a failure should show the request as sent.
        .args(["--output-sanitize", "false"])
        .args(["--header", &format!("Authorization: Bearer {token}")])
        // A WebSocket upgrade is not an HTTP exchange a fuzzer can judge; tests/live.rs covers /ws.
        .args(["--exclude-path", "/ws"])
        .args(ml_paths_excluded())
        // Only the owner's token authenticates: a generated X-API-Key would win over it and answer 401.
        .args(["--generation-with-security-parameters", "false"])
        .args(["--generation-database", "none", "--report", "junit", "--report-dir"])
        .arg(&reports)
        // It keeps a cache in its working directory: the scratch one, not the crate.
        .current_dir(app.dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let started = Instant::now();
    let output = tokio::task::spawn_blocking(move || {
        let child = command.spawn().expect("schemathesis starts");
        let id = child.id();
        let (done, waiting) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            if waiting.recv_timeout(RUN_LIMIT).is_err() {
                let _ = Command::new("kill").arg(id.to_string()).status();
            }
        });
        let output = child.wait_with_output().expect("schemathesis runs");
        let _ = done.send(());
        output
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    eprintln!("schemathesis took {:.0?}:\n{stdout}\n{stderr}", started.elapsed());
    assert!(
        output.status.success(),
        "schemathesis reported failures (exit {:?}); its report is in {}",
        output.status.code(),
        reports.display()
    );
}
