//! A sink that cannot write makes the run fail loudly instead of exiting 0
//! with output silently missing.

mod common;

use common::{TempDir, pulse_bin};

#[test]
fn failed_sink_writes_make_pulse_run_exit_non_zero() {
    let dir = TempDir::new("sink-errors");
    let event = r#"{"ts":1000,"tenant":"t","source":"s","kind":"metric","metric":"cpu","value":1}"#;
    std::fs::write(dir.join("input.jsonl"), format!("{event}\n")).unwrap();
    let pipeline = format!(
        r#"
[sources.events]
type = "file"
path = "{input}"
min_timestamp = 0

[operators.count]
type = "window"
inputs = ["events"]
window = {{ tumbling = "10s" }}

[sinks.full]
type = "file"
inputs = ["count"]
path = "/dev/full"
"#,
        input = dir.join("input.jsonl").display()
    );
    std::fs::write(dir.join("pipeline.toml"), pipeline).unwrap();
    let output = std::process::Command::new(pulse_bin())
        .args([
            "run",
            &dir.join("pipeline.toml").display().to_string(),
            "--workers",
            "1",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "pulse run must fail: {stderr}");
    assert!(stderr.contains("sink writes failed"), "{stderr}");
    assert!(stderr.contains("sink write failed"), "the failure is logged: {stderr}");
}
