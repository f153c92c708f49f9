//! SIGTERM stops a running pipeline the way Ctrl-C does: the sources stop,
//! incomplete windows are dropped, sinks flush whole lines, exit code 0.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{TempDir, pulse_bin};

#[test]
fn sigterm_drains_and_exits_0() {
    let dir = TempDir::new("sigterm");
    let rows = dir.join("rows.jsonl");
    let pipeline = format!(
        r#"
[engine]
workers = 2

[sources.sensors]
type = "generator"
rate = 5000

[operators.per_second]
type = "window"
inputs = ["sensors"]
window = {{ tumbling = "1s" }}
key = ["tenant", "metric"]
aggregates = ["count", "avg", "p99"]

[sinks.rows]
type = "file"
inputs = ["per_second"]
path = "{}"
"#,
        rows.display()
    );
    std::fs::write(dir.join("pipeline.toml"), pipeline).unwrap();
    let child = Command::new(pulse_bin())
        .args(["run", &dir.join("pipeline.toml").display().to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    let deadline = Instant::now() + Duration::from_secs(30);
    while std::fs::read_to_string(&rows).map_or(0, |t| t.lines().count()) < 15 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    let output = child.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{log}");
    assert!(log.contains("interrupted=true"), "{log}");

    let text = std::fs::read_to_string(&rows).unwrap();
    assert!(text.ends_with('\n'), "the file ends with a whole line");
    let parsed: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(
        parsed.len() >= 15,
        "rows were written before the signal: {}",
        parsed.len()
    );
}
