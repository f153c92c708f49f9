//! The operators beyond windows as a cluster of `pulse` processes on
//! loopback: incidents (events exchanged by tenant across processes) and
//! ONNX scoring write what one process writes. (Windows of every kind,
//! anomaly, forecast and filter are in `cluster.rs`: the window workload and
//! the golden cases.)

mod common;

use common::cluster::run_cluster;
use common::{TempDir, compare_rows, read_jsonl, sort_rows};
use serde_json::Value;

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
