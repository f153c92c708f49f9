//! The operators beyond windows as a cluster of `pulse` processes on
//! loopback: incidents (events exchanged by tenant across processes) and
//! ONNX scoring write what one process writes. (Windows of every kind,
//! anomaly, forecast and filter are in `cluster.rs`: the window workload and
//! the golden cases.)

mod common;

#[path = "ops_stack/ws_client.rs"]
mod ws_client;

use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use common::cluster::{Logged, free_ports, hostfile, run_cluster};
use common::process::{http, pulse_token, wait_for_status, wait_until};
use common::{TempDir, compare_rows, read_jsonl, sort_rows};
use serde_json::Value;
use ws_client::WsClient;

/// Incidents of a labelled Kubernetes scenario (two tenants, faults with
/// causes one call step away) through `pipelines/k8s-rca.toml`: the final
/// incident reports of 2×1 and 2×2 are those of one process of one worker.
#[test]
fn incidents_of_a_cluster_are_those_of_one_process() {
    let dir = TempDir::new("cluster-incidents");
    let input = dir.join("k8s.jsonl");
    let scenario = std::process::Command::new(common::pulse_bin())
        .args(["eval", "rca-scenario", "--seed", "3", "--tenants", "2", "--faults", "2"])
        .arg("--out")
        .arg(&input)
        .arg("--answers")
        .arg(dir.join("answers.json"))
        .output()
        .unwrap();
    assert!(
        scenario.status.success(),
        "{}",
        String::from_utf8_lossy(&scenario.stderr)
    );
    let pipeline = common::workspace_dir().join("pipelines/k8s-rca.toml");
    let input = input.display().to_string();
    let mut expected: Option<Vec<Value>> = None;
    for (processes, workers) in [(1, 1), (2, 1), (2, 2)] {
        let output = dir.join(&format!("incidents-{processes}x{workers}.jsonl"));
        let output_path = output.display().to_string();
        let vars = [("RCA_INPUT", input.as_str()), ("RCA_OUTPUT", output_path.as_str())];
        run_cluster(&pipeline, &vars, processes, workers);
        let mut incidents = read_jsonl(&output);
        sort_rows(&mut incidents);
        let Some(expected) = &expected else {
            assert!(
                incidents.len() >= 2 && incidents.iter().all(|i| i["top_cause"].is_string()),
                "a real workload: incidents with causes: {incidents:?}"
            );
            expected = Some(incidents);
            continue;
        };
        compare_rows(
            expected,
            &incidents,
            &format!("incidents of {processes}×{workers} against 1×1"),
        )
        .unwrap_or_else(|difference| panic!("{difference}"));
    }
}

/// The tenants of the live cluster test: the k8s generator's first four.
const LIVE_TENANTS: [&str; 4] = ["acme", "globex", "initech", "umbrella"];

/// The value of `pulse_incidents_opened_total{component="incidents"}` in a scrape.
fn incidents_opened(scrape: &str) -> Option<f64> {
    scrape
        .lines()
        .find_map(|line| line.strip_prefix("pulse_incidents_opened_total{component=\"incidents\"} "))
        .and_then(|value| value.trim().parse().ok())
}

/// A 2×1 cluster with a gateway, the `k8s` generator playing four tenants'
/// clusters live: incidents are exchanged by tenant, so each process's worker
/// computes some tenants' incidents (each process's own `/metrics` counts
/// those it opened), and every one of them reaches process 0, whose
/// `/api/v1/incidents` and `/ws` topic `incidents` serve every tenant's.
#[test]
fn a_clusters_incidents_are_served_live_by_process_0() {
    let dir = TempDir::new("cluster-incidents-live");
    // The gateway's port, process 1's /metrics (the next port), and the two processes'.
    let base = free_ports(4);
    let (port, peers) = (base, [base + 2, base + 3]);
    let start_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    let pipeline = dir.join("live.toml");
    std::fs::write(
        &pipeline,
        format!(
            r#"
[engine]
workers = 1
dead_letter_path = "{dir}/dead-letter.jsonl"

# A debug build on a loaded 2-core machine may spend seconds in one step.
[engine.cluster]
processes = 2
stall_timeout = "60s"

[sources.cluster]
type = "generator"
profile = "k8s"
speed = 120
start = {start_ms}
max_out_of_orderness = "5s"
k8s = {{ tenants = 4, faults_per_tenant = 3, seed = 11 }}

[operators.incidents]
type = "incidents"
inputs = ["cluster"]
quiet = "1m"

[sinks.final]
type = "file"
inputs = ["incidents"]
path = "{dir}/incidents.jsonl"

[gateway]
listen = "127.0.0.1:{port}"
data_dir = "{dir}/gateway"
rate_limit = {{ default_plan = "enterprise" }}
"#,
            dir = dir.display()
        ),
    )
    .unwrap();
    let hosts = hostfile(&dir, &peers);
    let secret = "cluster-incidents-secret-of-enough-length";
    let start = |process: usize| {
        let mut command = Command::new(common::pulse_bin());
        command
            .arg("run")
            .arg(&pipeline)
            .args(["--process", &process.to_string(), "--hostfile"])
            .arg(&hosts)
            .env("PULSE_JWT_SECRET", secret);
        Logged::spawn(command)
    };
    let (first, second) = (start(0), start(1));
    let address: SocketAddr = ([127, 0, 0, 1], port).into();
    wait_for_status(address, "/health/ready", 200);

    for tenant in LIVE_TENANTS {
        let token = pulse_token(secret, tenant, "read");
        wait_until(
            &format!("incidents of {tenant} with causes on process 0's API"),
            Duration::from_secs(180),
            || {
                let (status, page) = http(address, "GET", "/api/v1/incidents?page_size=500", Some(&token), None);
                assert_eq!(status, 200, "{page}\n{}\n{}", first.log(), second.log());
                page["incidents"].as_array().into_iter().flatten().any(|incident| {
                    assert_eq!(incident["tenant"], tenant, "{incident}");
                    incident["cause_count"].as_u64() > Some(0)
                })
            },
        );
        // The topic carries the tenant's versions as they come.
        let mut socket = WsClient::connect(address, &token);
        socket.send(r#"{"type":"subscribe","topic":"incidents"}"#);
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            assert!(Instant::now() < deadline, "no incident of {tenant} on /ws");
            let message: Value = serde_json::from_str(&socket.receive()).unwrap();
            if message["type"] == "incident" {
                assert_eq!(message["tenant"], tenant, "{message}");
                break;
            }
        }
    }
    // Both processes computed incidents: each counts those it opened.
    for (process, port) in [(0, port), (1, port + 1)] {
        let address: SocketAddr = ([127, 0, 0, 1], port).into();
        let mut opened = None;
        wait_until(
            &format!("process {process} to count incidents"),
            Duration::from_secs(30),
            || {
                let answer = common::process::request(address, "GET", "/metrics", &[], "");
                opened = incidents_opened(answer.body.as_str().unwrap_or_default());
                opened > Some(0.0)
            },
        );
    }
    drop((first, second));
}

/// Whether ONNX Runtime is there; a failure under `CI=true` when it is not.
fn onnx_runtime_present() -> bool {
    match pulse_operators::onnx::runtime::environment() {
        Ok(_) => true,
        Err(error) if std::env::var("CI").as_deref() == Ok("true") => panic!("CI=true and {error}"),
        Err(error) => {
            eprintln!("\n*** SKIPPED: {error} ***\n");
            false
        }
    }
}

/// The ONNX golden case (`tests/onnx/scoring`: windows scored by the fixture
/// model, a row with a missing feature refused) as 2 processes of one
/// worker: the predictions and the refusals of one process.
#[test]
fn onnx_scoring_in_a_cluster_writes_the_golden_predictions() {
    if !onnx_runtime_present() {
        return;
    }
    let case = common::package_dir().join("tests/onnx/scoring");
    let models = common::workspace_dir().join("operators/tests/fixtures/onnx/models");
    let out = TempDir::new("cluster-onnx");
    let (case_path, models_path) = (case.display().to_string(), models.display().to_string());
    let vars = [
        ("CASE", case_path.as_str()),
        ("MODELS", models_path.as_str()),
        ("OUT", &out.display()),
    ];
    run_cluster(&case.join("pipeline.toml"), &vars, 2, 1);
    let mut predictions = read_jsonl(&out.join("predictions.jsonl"));
    for row in &mut predictions {
        let latency = row.as_object_mut().and_then(|r| r.remove("latency_us"));
        assert!(
            latency.is_some_and(|l| l.as_u64().is_some()),
            "a latency_us count of µs in {row}"
        );
    }
    for (name, mut got) in [
        ("predictions.jsonl", predictions),
        ("refused.jsonl", read_jsonl(&out.join("refused.jsonl"))),
    ] {
        let mut want = read_jsonl(&case.join("expected").join(name));
        assert!(!want.is_empty(), "{name}: a golden file with rows");
        sort_rows(&mut want);
        sort_rows(&mut got);
        compare_rows(&want, &got, &format!("{name} from 2 processes")).unwrap_or_else(|e| panic!("{e}"));
    }
}
