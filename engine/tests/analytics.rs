//! The anomaly and forecast operators in whole pipelines: replays give the
//! same bytes, model versions are trained on the event-time schedule, swapped
//! in, persisted with their metadata and reloaded by the next run.
//! (The golden case `anomaly_and_forecast` pins their output for 1 and 2 workers.)

mod common;

use std::path::Path;

use common::{TempDir, load_pipeline, read_jsonl, run_pipeline};
use serde_json::Value;

/// A pipeline scoring `input` per (tenant, source, metric), its models in `models`.
fn write_pipeline(dir: &TempDir, input: &Path, models: &Path) -> std::path::PathBuf {
    let text = format!(
        r#"
[engine]
granule = "1s"

[sources.events]
type = "file"
path = "{input}"
kinds = ["metric"]

[operators.scores]
type = "anomaly"
inputs = ["events"]
model_dir = "{models}"

[operators.scores.detector]
warmup_points = 60

[operators.scores.detector.isolation_forest]
trees = 10
sample_size = 32
training_points = 300
min_training_points = 64
retrain_every_ms = 120000
lags = 7

[sinks.out]
type = "file"
inputs = ["scores"]
path = "{out}"
"#,
        input = input.display(),
        models = models.display(),
        out = dir.join("scores.jsonl").display(),
    );
    let path = dir.join("pipeline.toml");
    std::fs::write(&path, text).expect("write the pipeline");
    path
}

/// Two series, one point a second for `seconds` seconds, with a daily-like wobble.
fn write_input(path: &Path, seconds: u64) {
    let mut text = String::new();
    for s in 0..seconds {
        for (host, base) in [("a", 10.0), ("b", 70.0)] {
            let value = base + ((s * 13) % 17) as f64 * 0.25;
            text.push_str(&format!(
                r#"{{"ts":{},"tenant":"acme","source":"{host}","kind":"metric","metric":"cpu","value":{value}}}"#,
                1_700_000_000_000u64 + s * 1000
            ));
            text.push('\n');
        }
    }
    std::fs::write(path, text).expect("write the input");
}

/// The model files of `dir` for host `host`, parsed, by version.
fn versions(dir: &Path, host: &str) -> Vec<Value> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("the model directory exists")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            name.starts_with(&format!("acme%2F{host}%2Fcpu.v")) && name.ends_with(".json")
        })
        .collect();
    files.sort();
    files
        .iter()
        .map(|path| serde_json::from_slice(&std::fs::read(path).expect("read a model")).expect("a model is JSON"))
        .collect()
}

#[test]
fn a_replay_scores_the_same_and_models_are_retrained_persisted_and_reloaded() {
    let dir = TempDir::new("analytics-models");
    let input = dir.join("input.jsonl");
    write_input(&input, 600);

    // Two fresh runs (separate model directories) give the same bytes.
    let fresh = |label: &str| {
        let run_dir = TempDir::new(label);
        let models = run_dir.join("models");
        let pipeline = load_pipeline(&write_pipeline(&run_dir, &input, &models), &[]);
        run_pipeline(&pipeline, 2);
        let scores = std::fs::read_to_string(run_dir.join("scores.jsonl")).expect("scores");
        (run_dir, scores)
    };
    let (first_dir, first) = fresh("analytics-first");
    let (_, second) = fresh("analytics-second");
    assert_eq!(first.lines().count(), 1200, "one row per point");
    assert!(first == second, "a replay must write the same scores");

    // Models: the first once 64 points are in (at the 65th, second 64), then every 120 s of event time.
    let models = first_dir.join("models");
    let trained = versions(&models, "a");
    let times: Vec<u64> = trained.iter().map(|m| m["trained_at"].as_u64().unwrap()).collect();
    let start = 1_700_000_000_000u64;
    assert_eq!(
        times,
        [64, 184, 304, 424, 544].map(|s| start + s * 1000),
        "training follows event time"
    );
    for (i, model) in trained.iter().enumerate() {
        assert_eq!(model["version"], i as u64 + 1);
        assert_eq!(model["key"], "acme/a/cpu");
        assert!(model["points"].as_u64().unwrap() > 0);
        assert_eq!(model["parameters"]["trees"], 10);
    }
    assert_eq!(versions(&models, "b").len(), 5, "each key has its own models");

    // A second run over the same directory reloads each key's latest model and
    // goes on from its schedule: no training before 544 s + 120 s, so no new
    // version, and the versions on disk are untouched.
    let before = std::fs::read_dir(&models).unwrap().count();
    let pipeline = load_pipeline(&write_pipeline(&first_dir, &input, &models), &[]);
    run_pipeline(&pipeline, 1);
    assert_eq!(std::fs::read_dir(&models).unwrap().count(), before);
    assert_eq!(versions(&models, "a"), trained);
    // With the reloaded forest in place from the first point, the scores differ
    // from the fresh run's once the key is past its warm-up and before its first training.
    let reloaded = read_jsonl(&first_dir.join("scores.jsonl"));
    assert_eq!(reloaded.len(), 1200);
    let fresh_rows: Vec<Value> = first.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_ne!(reloaded, fresh_rows, "the reloaded models score");
    let keeps_warm_up = reloaded.iter().filter(|row| row["warming_up"] == true).count();
    assert_eq!(
        keeps_warm_up, 120,
        "statistics are not persisted: each key warms up again"
    );
}

/// `pulse validate`'s errors for an analytics pipeline text (empty when it loads).
fn problems(text: &str) -> String {
    match pulse::Pipeline::parse(Path::new("analytics.toml"), text, &|_| None) {
        Ok(_) => String::new(),
        Err(error) => error.to_string(),
    }
}

const SOURCES: &str = r#"
[sources.events]
type = "generator"

[operators.per_10s]
type = "window"
inputs = ["events"]
window = { tumbling = "10s" }
key = ["tenant", "metric"]
aggregates = ["count", "avg"]

[sinks.out]
type = "stdout"
inputs = ["analytics"]
"#;

#[test]
fn validate_names_what_is_wrong_with_an_analytics_operator() {
    let ok = format!(
        "{SOURCES}\n[operators.analytics]\ntype = \"anomaly\"\ninputs = [\"per_10s\"]\nvalue = \"avg\"\n\n[operators.f]\ntype = \"forecast\"\ninputs = [\"events\"]\nstep = \"1s\"\nperiod = \"1m\"\nhorizon = \"10s\"\n\n[sinks.fs]\ntype = \"stdout\"\ninputs = [\"f\", \"f.dead_letter\", \"analytics.dead_letter\"]\n"
    );
    assert_eq!(problems(&ok), "");
    let cases = [
        // Rows need the column to watch, and it must be a number.
        (
            "type = \"anomaly\"\ninputs = [\"per_10s\"]",
            "needs `value`: the numeric column to watch",
        ),
        (
            "type = \"anomaly\"\ninputs = [\"per_10s\"]\nvalue = \"tenant\"",
            "column `tenant` holds key, not numbers",
        ),
        (
            "type = \"anomaly\"\ninputs = [\"per_10s\"]\nvalue = \"p99\"",
            "the input rows have no column `p99`",
        ),
        (
            "type = \"anomaly\"\ninputs = [\"per_10s\"]\nvalue = \"avg\"\nkey = [\"host\"]",
            "no column `host`",
        ),
        (
            "type = \"anomaly\"\ninputs = [\"events\"]\nvalue = \"avg\"",
            "events carry their number in `value`",
        ),
        (
            "type = \"anomaly\"\ninputs = [\"events\"]\nkey = [\"tenat\"]",
            "unknown key field \"tenat\"",
        ),
        (
            "type = \"anomaly\"\ninputs = [\"events\"]\ndetector = { alert_threshold = 1.5 }",
            "`alert_threshold` must be in [0, 1]",
        ),
        (
            "type = \"anomaly\"\ninputs = [\"events\"]\ndetector = { alert_treshold = 0.5 }",
            "alert_treshold",
        ),
        (
            "type = \"anomaly\"\ninputs = [\"events.dead_letter\"]",
            "produces dead letters",
        ),
        (
            "type = \"forecast\"\ninputs = [\"per_10s\"]\nvalue = \"avg\"",
            "missing field `step`",
        ),
        (
            "type = \"forecast\"\ninputs = [\"per_10s\"]\nvalue = \"avg\"\nstep = \"7s\"",
            "period 1d is not a positive multiple",
        ),
        (
            "type = \"forecast\"\ninputs = [\"per_10s\"]\nvalue = \"avg\"\nstep = \"10s\"\nevery = \"150ms\"",
            "not a positive multiple of the granule",
        ),
    ];
    for (settings, expected) in cases {
        let text = format!("{SOURCES}\n[operators.analytics]\n{settings}\n");
        let errors = problems(&text);
        assert!(
            errors.contains(expected),
            "{settings:?} should say {expected:?}, said:\n{errors}"
        );
        assert!(
            errors.contains("analytics.toml:"),
            "errors name the file and line: {errors}"
        );
    }
}

/// The demo's detector holds about 180 KB per key when full, as demo.toml and the README say.
#[test]
fn the_demo_detector_state_per_key_is_as_documented() {
    let demo = common::workspace_dir().join("pipelines/demo.toml");
    let pipeline = load_pipeline(
        &demo,
        &[
            ("PULSE_OUT_DIR", "/tmp/unused"),
            ("PULSE_DEMO_PASSWORD", "Unused-passw0rd"),
        ],
    );
    let Some(pulse::config::OperatorConfig::Anomaly(anomalies)) = pipeline.config.operators.get("anomalies") else {
        panic!("the demo has an anomaly operator named `anomalies`");
    };
    let mut detector = pulse_operators::anomaly::SeriesDetector::new("k", anomalies.detector.clone());
    for i in 0..5_000i64 {
        detector.update(i * 1_000, ((i * 7919) % 101) as f64).unwrap();
    }
    let bytes = detector.state_bytes();
    assert!((150_000..210_000).contains(&bytes), "{bytes} bytes per key");
}
