//! The `onnx` operator in whole pipelines: a golden case (`tests/onnx/scoring`:
//! events → windows → predictions and dead letters, with 1 and 2 workers;
//! the same predictions on the Kafka topic `ml-predictions` through a Kafka
//! sink, against the broker of 127.0.0.1:9092), what `pulse validate`
//! says without ONNX Runtime, and the checks of its settings.
//!
//! Scoring needs ONNX Runtime (`ORT_DYLIB_PATH`, installed by
//! `scripts/onnxruntime.sh`): without it those tests skip with a loud
//! message, and fail under `CI=true`. The models are the fixtures of
//! `operators/tests/fixtures/onnx`.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::{TempDir, compare_rows, load_pipeline, read_jsonl, run_pipeline};
use serde_json::Value;

fn models_dir() -> String {
    common::workspace_dir()
        .join("operators/tests/fixtures/onnx/models")
        .display()
        .to_string()
}

fn case_dir() -> PathBuf {
    common::package_dir().join("tests/onnx/scoring")
}

/// Whether ONNX Runtime is there; a failure under `CI=true` when it is not.
fn runtime_present() -> bool {
    match pulse_operators::onnx::runtime::environment() {
        Ok(_) => true,
        Err(error) if std::env::var("CI").as_deref() == Ok("true") => panic!("CI=true and {error}"),
        Err(error) => {
            eprintln!("\n*** SKIPPED: {error} ***\n");
            false
        }
    }
}

#[test]
fn windows_are_scored_by_the_active_version_and_rows_missing_a_feature_are_dead_letters() {
    if !runtime_present() {
        return;
    }
    // One worker, then two (each with its own sessions): the same rows come out.
    for workers in [1, 2] {
        score_golden_case(workers);
    }
}

fn score_golden_case(workers: usize) {
    let out = TempDir::new(&format!("onnx-scoring-{workers}"));
    let case = case_dir();
    let pipeline = load_pipeline(
        &case.join("pipeline.toml"),
        &[
            ("OUT", &out.display()),
            ("CASE", &case.display().to_string()),
            ("MODELS", &models_dir()),
        ],
    );
    run_pipeline(&pipeline, workers);
    let mut predictions = read_jsonl(&out.join("predictions.jsonl"));
    for row in &mut predictions {
        let latency = row
            .as_object_mut()
            .and_then(|r| r.remove("latency_us"))
            .unwrap_or_else(|| panic!("no latency_us in {row}"));
        assert!(latency.as_u64().is_some(), "latency_us {latency} is not a count of µs");
    }
    let refused = read_jsonl(&out.join("refused.jsonl"));
    let expected = case.join("expected");
    if workers == 1 && std::env::var_os("PULSE_BLESS").is_some_and(|v| v == "1") {
        let lines = |rows: &[Value]| rows.iter().map(|r| format!("{r}\n")).collect::<String>();
        std::fs::create_dir_all(&expected).unwrap();
        std::fs::write(expected.join("predictions.jsonl"), lines(&predictions)).unwrap();
        std::fs::write(expected.join("refused.jsonl"), lines(&refused)).unwrap();
        return;
    }
    compare_rows(
        &read_jsonl(&expected.join("predictions.jsonl")),
        &predictions,
        &format!("predictions with {workers} workers"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    compare_rows(&read_jsonl(&expected.join("refused.jsonl")), &refused, "refused").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(predictions.len(), 6, "3 windows of h1 and h2");
    assert!(
        predictions
            .iter()
            .all(|p| p["model"] == "linear" && p["version"] == "2")
    );
    assert_eq!(refused.len(), 1);
    assert!(
        refused[0]["reason"]
            .as_str()
            .unwrap()
            .contains("feature `avg` is missing"),
        "{}",
        refused[0]
    );
}

/// A pipeline with an onnx operator over windows of a file, reading `models`.
fn pipeline_text(operator: &str) -> String {
    format!(
        r#"[sources.events]
type = "file"
path = "{input}"
kinds = ["metric"]

[operators.per_10s]
type = "window"
inputs = ["events"]
window = {{ tumbling = "10s" }}
key = ["tenant", "source", "metric"]
aggregates = ["avg", "p95", "max"]

[operators.predict]
type = "onnx"
inputs = ["per_10s"]
models_dir = "{models}"
{operator}

[sinks.out]
type = "stdout"
inputs = ["predict"]
"#,
        input = case_dir().join("input.jsonl").display(),
        models = models_dir(),
    )
}

/// Runs `pulse validate` on `text` with `ORT_DYLIB_PATH` set to `runtime` (or unset).
fn validate(text: &str, runtime: Option<&str>) -> (bool, String) {
    let dir = TempDir::new("onnx-validate");
    let path = dir.join("pipeline.toml");
    std::fs::write(&path, text).unwrap();
    let mut command = Command::new(common::pulse_bin());
    command.args(["validate", &path.display().to_string()]);
    match runtime {
        Some(runtime) => command.env("ORT_DYLIB_PATH", runtime),
        None => command.env_remove("ORT_DYLIB_PATH"),
    };
    let output = command.output().expect("run pulse validate");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn without_onnx_runtime_validate_names_ort_dylib_path_and_the_demo_still_validates() {
    let (ok, stderr) = validate(&pipeline_text("model = \"linear\""), None);
    assert!(!ok, "validation must fail without ONNX Runtime");
    assert!(stderr.contains("ORT_DYLIB_PATH is not set"), "{stderr}");
    assert!(stderr.contains("pip install onnxruntime==1.31.1"), "{stderr}");
    let (ok, stderr) = validate(
        &pipeline_text("model = \"linear\""),
        Some("/nonexistent/libonnxruntime.so"),
    );
    assert!(!ok);
    assert!(
        stderr.contains("ONNX Runtime is not at ORT_DYLIB_PATH=/nonexistent/libonnxruntime.so"),
        "{stderr}"
    );
    // A file that is no ONNX Runtime (too old or not one at all) is refused with the path.
    let (ok, stderr) = validate(
        &pipeline_text("model = \"linear\""),
        Some(&case_dir().join("pipeline.toml").display().to_string()),
    );
    assert!(!ok);
    assert!(stderr.contains("cannot be used"), "{stderr}");
    let demo = common::workspace_dir().join("pipelines/demo.toml");
    let output = Command::new(common::pulse_bin())
        .args(["validate", &demo.display().to_string()])
        .env_remove("ORT_DYLIB_PATH")
        .output()
        .expect("run pulse validate");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
}

#[test]
fn validate_names_what_is_wrong_with_models_features_and_settings() {
    if !runtime_present() {
        return;
    }
    let runtime = std::env::var("ORT_DYLIB_PATH").unwrap();
    let cases: [(&str, &str); 8] = [
        ("model = \"nope\"", "no model `nope` in the registry"),
        (
            "model = \"linear\"\nvariants = [{ version = \"9\", weight = 1.0 }]",
            "model `linear` has no version `9` (it has 1, 2)",
        ),
        (
            "model = \"linear\"\nfeatures = [\"avg\", \"p95\"]",
            "takes 3 features (avg, p95, max), the operator gives 2",
        ),
        (
            "model = \"linear\"\nfeatures = [\"avg\", \"p95\", \"nope\"]",
            "feature `nope`: the rows have no column `nope`",
        ),
        (
            "model = \"linear\"\nmissing = \"impute\"\ndefaults = { avg = 1.0 }",
            "feature `p95` has no finite default to impute",
        ),
        ("", "names no model"),
        (
            "ensemble = { combine = \"majority_vote\", members = [{ model = \"linear\" }, { model = \"hot\" }] }",
            "model `linear`'s first output is not a label",
        ),
        (
            "model = \"linear\"\nvariants = [{ version = \"1\", weight = -1.0 }]",
            "is not a positive number",
        ),
    ];
    for (operator, message) in cases {
        let (ok, stderr) = validate(&pipeline_text(operator), Some(&runtime));
        assert!(!ok, "{operator}: must not validate");
        assert!(
            stderr.contains(message),
            "{operator}: expected {message:?} in\n{stderr}"
        );
    }
    let (ok, stderr) = validate(
        &pipeline_text("ensemble = { combine = \"mean\", members = [{ model = \"linear\" }, { model = \"mlp\" }] }"),
        Some(&runtime),
    );
    assert!(ok, "{stderr}");
}

/// With a Kafka sink, predictions go to the engine-wide topic `ml-predictions`
/// (as anomalies go to `streaming-alerts`): the golden case's rows, one JSON
/// message each, on the real broker of 127.0.0.1.
#[test]
fn predictions_reach_the_ml_predictions_topic_through_a_kafka_sink() {
    if !runtime_present() {
        return;
    }
    let Some(brokers) = common::kafka::broker() else { return };
    const TOPIC: &str = "ml-predictions";
    // The topic is engine-wide and outlives this test: make it once, then read what is new.
    let _ = Command::new(common::pulse_bin())
        .args(["topics", "create", "--brokers", &brokers, "--partitions", "1", TOPIC])
        .output();
    let before = common::kafka::read_topic(&brokers, TOPIC).len();
    let out = TempDir::new("onnx-kafka");
    let case = case_dir();
    let text = std::fs::read_to_string(case.join("pipeline.toml")).unwrap()
        + &format!(
            "\n[sinks.ml_topic]\ntype = \"kafka\"\ninputs = [\"predict\"]\nbrokers = \"{brokers}\"\ntopic = \"{TOPIC}\"\n"
        );
    let path = out.join("pipeline.toml");
    std::fs::write(&path, text).unwrap();
    let pipeline = load_pipeline(
        &path,
        &[
            ("OUT", &out.display()),
            ("CASE", &case.display().to_string()),
            ("MODELS", &models_dir()),
        ],
    );
    run_pipeline(&pipeline, 1);
    let drop_latency = |mut row: Value| {
        row.as_object_mut().unwrap().remove("latency_us");
        row
    };
    let messages: Vec<Value> = common::kafka::read_topic(&brokers, TOPIC)[before..]
        .iter()
        .map(|m| serde_json::from_slice(rdkafka::Message::payload(m).unwrap()).unwrap())
        .map(drop_latency)
        .collect();
    let written: Vec<Value> = read_jsonl(&out.join("predictions.jsonl"))
        .into_iter()
        .map(drop_latency)
        .collect();
    assert_eq!(written.len(), 6);
    // The same records; the order within a window may differ between sinks.
    let sorted = |rows: Vec<Value>| {
        let mut text: Vec<String> = rows.iter().map(Value::to_string).collect();
        text.sort();
        text
    };
    assert_eq!(
        sorted(messages),
        sorted(written),
        "the topic carries the predictions the file sink wrote"
    );
}
