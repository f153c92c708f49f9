//! Metrics are recorded under `pulse_` names with per-component labels.
//!
//! Its own test binary: the recorder is process-global, and no other test may
//! run pipelines beside this one while it reads the totals.

mod common;

use common::{TempDir, load_pipeline, run_pipeline};

const PIPELINE: &str = r#"
[engine]
workers = 2
dead_letter_path = "${OUT}/dead.jsonl"

[sources.events]
type = "file"
path = "${OUT}/input.jsonl"
max_out_of_orderness = "1s"

[operators.per_tenant]
type = "window"
inputs = ["events"]
window = { tumbling = "10s" }
key = ["tenant"]
aggregates = ["count", "avg"]

[sinks.rows]
type = "file"
inputs = ["per_tenant"]
path = "${OUT}/rows.jsonl"

[sinks.late]
type = "file"
inputs = ["events.late"]
path = "${OUT}/late.jsonl"
"#;

#[test]
fn counters_track_events_late_data_dead_letters_and_rows() {
    assert!(
        pulse::telemetry::install_recorder(pulse::telemetry::Exposition::InProcess),
        "the recorder installs"
    );
    let dir = TempDir::new("metrics");
    let metric = |ts: u64, tenant: &str| {
        format!(r#"{{"ts":{ts},"tenant":"{tenant}","source":"h","kind":"metric","metric":"cpu","value":1.5}}"#)
    };
    // One worker reads each half; each half has 30 on-time events, the second
    // half one event 5 s behind its newest (late), and one bad line.
    let mut lines: Vec<String> = (0..30)
        .map(|i| metric(1_000 + i * 1_000, if i % 2 == 0 { "a" } else { "b" }))
        .collect();
    lines.push("{not json".to_owned());
    lines.extend((0..30).map(|i| metric(100_000 + i * 1_000, "a")));
    lines.push(metric(124_000, "late"));
    std::fs::write(dir.join("input.jsonl"), lines.join("\n")).unwrap();
    std::fs::write(dir.join("pipeline.toml"), PIPELINE).unwrap();

    let pipeline = load_pipeline(&dir.join("pipeline.toml"), &[("OUT", &dir.display())]);
    run_pipeline(&pipeline, 2);

    let totals = pulse::telemetry::counter_totals();
    let get = |name: &str| {
        totals
            .get(name)
            .copied()
            .unwrap_or_else(|| panic!("no {name} in {totals:#?}"))
    };
    assert_eq!(
        get("pulse_component_sent_events_total{events}"),
        60,
        "on-time events sent by the source"
    );
    assert_eq!(get("pulse_late_events_total{events}"), 1);
    assert_eq!(get("pulse_dead_letters_total{events}"), 1);
    assert_eq!(get("pulse_component_received_events_total{per_tenant}"), 60);
    let rows = std::fs::read_to_string(dir.join("rows.jsonl")).unwrap().lines().count() as u64;
    assert_eq!(get("pulse_component_sent_events_total{per_tenant}"), rows);
    assert_eq!(
        get("pulse_component_received_events_total{rows}"),
        rows,
        "the sink counts what it receives"
    );
    assert_eq!(get("pulse_component_received_events_total{late}"), 1);
    // Every source and sink reports whether it is up (issue 25, point 7).
    let gauges = pulse::telemetry::gauge_values();
    for component in ["events", "rows", "late"] {
        assert_eq!(
            gauges.get(&format!("pulse_component_up{{{component}}}")),
            Some(&1.0),
            "{component} reports pulse_component_up: {gauges:#?}"
        );
    }
    assert_eq!(
        std::fs::read_to_string(dir.join("dead.jsonl")).unwrap().lines().count(),
        1
    );
}
