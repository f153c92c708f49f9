//! The `parquet` sink in a pipeline: a bounded run from a file source writes
//! the same window operator to a JSONL file and to Parquet files; pyarrow (a
//! reader that is not the writer's library) reads the Parquet directory back
//! and every row must equal the JSONL output. A second run into the same
//! directory must leave exactly the same files with the same contents: a
//! replay replaces, it never duplicates.
//!
//! The interpreter comes from `PULSE_PYARROW_PYTHON` or the venv that
//! `scripts/pyarrow.sh` installs under `~/.cache/pulse/venv-pyarrow`. Without
//! it the test is skipped loudly; with `CI=true` it fails instead.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::TempDir;
use serde_json::Value as Json;

/// Prints every `.parquet` file under a directory (relative path → its rows,
/// times as epoch ms) as one JSON object, and every other file name.
const READER: &str = r#"
import json, os, sys
import pyarrow as pa, pyarrow.parquet as pq

root = sys.argv[1]
files, others = {}, []
for dirpath, _, names in os.walk(root):
    for name in names:
        path = os.path.join(dirpath, name)
        relative = os.path.relpath(path, root)
        if not name.endswith(".parquet") or name.startswith("."):
            others.append(relative)
            continue
        table = pq.read_table(path)
        columns = []
        for field, column in zip(table.schema, table.columns):
            if pa.types.is_timestamp(field.type):
                column = column.cast(pa.int64())
            columns.append((field.name, column.to_pylist()))
        files[relative] = [dict((name, values[i]) for name, values in columns) for i in range(table.num_rows)]
print(json.dumps({"files": files, "others": others}))
"#;

/// The pyarrow interpreter, or `None` (after saying so loudly) outside CI.
fn pyarrow() -> Option<PathBuf> {
    let candidate = std::env::var_os("PULSE_PYARROW_PYTHON").map(PathBuf::from).or_else(|| {
        std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache/pulse/venv-pyarrow/bin/python"))
    });
    match candidate.filter(|path| path.is_file()) {
        Some(path) => Some(path),
        None if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("no pyarrow interpreter: CI requires one (scripts/test.sh runs ensure_pyarrow)")
        }
        None => {
            eprintln!(
                "\n*** SKIPPED: no pyarrow (set PULSE_PYARROW_PYTHON, or source scripts/pyarrow.sh and run ensure_pyarrow) ***\n"
            );
            None
        }
    }
}

/// What pyarrow reads under `root`.
fn read_back(python: &Path, root: &Path) -> Json {
    let output = Command::new(python)
        .args(["-c", READER])
        .arg(root)
        .output()
        .expect("python runs");
    assert!(
        output.status.success(),
        "pyarrow failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("the reader prints JSON")
}

/// Three hours of cpu and mem readings of two tenants, every 7 s.
fn input() -> String {
    // 2024-11-23T05:00:00Z.
    let start: u64 = 1_732_338_000_000;
    let mut lines = String::new();
    for i in 0..(3 * 3600 / 7) {
        let ts = start + i * 7_000;
        for (tenant, metric) in [("acme", "cpu"), ("globex", "mem")] {
            let value = (i % 97) as f64 * 0.25 + if tenant == "acme" { 0.5 } else { 3.0 };
            lines.push_str(&format!(
                r#"{{"ts":{ts},"tenant":"{tenant}","source":"host-1","kind":"metric","metric":"{metric}","value":{value}}}"#
            ));
            lines.push('\n');
        }
    }
    lines
}

fn run(dir: &TempDir) {
    let text = format!(
        r#"
[sources.events]
type = "file"
path = "{input}"

[operators.per_minute]
type = "window"
inputs = ["events"]
window = {{ tumbling = "1m" }}
key = ["tenant", "metric"]
aggregates = ["count", "sum", "min", "max", "avg"]

[sinks.lines]
type = "file"
inputs = ["per_minute"]
path = "{lines}"

[sinks.history]
type = "parquet"
inputs = ["per_minute"]
path = "{parquet}"
max_rows_per_file = 50
"#,
        input = dir.join("input.jsonl").display(),
        lines = dir.join("rows.jsonl").display(),
        parquet = dir.join("parquet").display(),
    );
    let pipeline = pulse::Pipeline::parse(&dir.join("pipeline.toml"), &text, &common::env_of(&[])).unwrap();
    let options = pulse::RunOptions {
        workers: Some(2),
        ..pulse::RunOptions::default()
    };
    pulse::run(&pipeline, options).expect("the run succeeds");
}

/// A row as comparable JSON: its fields by name.
fn keyed(row: &Json) -> String {
    serde_json::to_string(&row.as_object().unwrap().iter().collect::<BTreeMap<_, _>>()).unwrap()
}

#[test]
fn parquet_files_hold_every_window_row_and_a_replay_replaces_them() {
    let Some(python) = pyarrow() else { return };
    let dir = TempDir::new("parquet-sink");
    std::fs::write(dir.join("input.jsonl"), input()).unwrap();
    run(&dir);

    let lines = std::fs::read_to_string(dir.join("rows.jsonl")).unwrap();
    let mut expected: Vec<String> = lines
        .lines()
        .map(|line| keyed(&serde_json::from_str(line).unwrap()))
        .collect();
    expected.sort();
    // 3 hours of 1-minute windows for 2 keys.
    assert_eq!(expected.len(), 2 * 180, "the JSONL sink wrote every window");

    let first = read_back(&python, &dir.join("parquet"));
    assert_eq!(first["others"], Json::Array(Vec::new()), "no temporary or stray files");
    let files = first["files"].as_object().unwrap();
    let mut found: Vec<String> = files
        .values()
        .flat_map(|rows| rows.as_array().unwrap())
        .map(keyed)
        .collect();
    found.sort();
    assert_eq!(found, expected, "the Parquet rows are the JSONL rows");
    // Hours 05, 06 and 07, each of 120 rows in files of 50.
    for hour in ["05", "06", "07"] {
        let in_hour: Vec<&String> = files
            .keys()
            .filter(|path| path.starts_with(&format!("per_minute/dt=2024-11-23/hour={hour}/")))
            .collect();
        assert_eq!(in_hour.len(), 3, "hour {hour}: {in_hour:?}");
        let rows: usize = in_hour
            .iter()
            .map(|path| files[path.as_str()].as_array().unwrap().len())
            .sum();
        assert_eq!(rows, 120, "hour {hour}");
    }
    assert_eq!(files.len(), 9);

    // The same input again, into the same directory.
    std::fs::remove_file(dir.join("rows.jsonl")).unwrap();
    run(&dir);
    let second = read_back(&python, &dir.join("parquet"));
    assert_eq!(second, first, "a replay leaves the same files with the same rows");
}
