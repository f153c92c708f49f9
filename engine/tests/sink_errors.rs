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

/// A source that cannot read on is not at the end of its input: the run fails,
/// naming the path and the byte offset, instead of ending with truncated
/// results as if they were complete (issue 25, point 8a).
#[test]
fn a_source_read_error_fails_the_run_with_the_path_and_the_offset() {
    let dir = TempDir::new("source-read-error");
    // A directory opens like a file, but every read of it fails (EISDIR).
    let unreadable = dir.join("events.jsonl");
    std::fs::create_dir_all(unreadable.join("inside")).unwrap();
    let text = format!(
        r#"
[sources.events]
type = "file"
path = "{input}"

[operators.count]
type = "window"
inputs = ["events"]
window = {{ tumbling = "10s" }}

[sinks.rows]
type = "file"
inputs = ["count"]
path = "{rows}"
"#,
        input = unreadable.display(),
        rows = dir.join("rows.jsonl").display()
    );
    let pipeline = pulse::Pipeline::parse(&dir.join("pipeline.toml"), &text, &common::env_of(&[])).unwrap();
    let options = pulse::RunOptions {
        workers: Some(1),
        ..pulse::RunOptions::default()
    };
    let error = pulse::run(&pipeline, options).expect_err("the run fails");
    let message = error.to_string();
    let expected = format!("source `events`: reading {} failed at byte 0: ", unreadable.display());
    assert!(message.starts_with(&expected), "{message}");
}

/// `pulse generate --out` creates the file's directory, and when it cannot
/// write, the error names the path (issue 25, point 7).
#[test]
fn generate_creates_the_directory_and_names_a_path_it_cannot_write() {
    let dir = TempDir::new("generate-out");
    let nested = dir.join("missing/dir/x.jsonl");
    let output = std::process::Command::new(pulse_bin())
        .args(["generate", "--events", "10", "--out", &nested.display().to_string()])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(std::fs::read_to_string(&nested).unwrap().lines().count(), 10);

    // A regular file where a directory must be: nothing can create it.
    let blocked = dir.join("missing/dir/x.jsonl/y.jsonl");
    let output = std::process::Command::new(pulse_bin())
        .args(["generate", "--events", "10", "--out", &blocked.display().to_string()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains(&format!("error: cannot write {}: ", blocked.display())),
        "{stderr}"
    );
}
