//! The Parquet writer's files, read back by another implementation: pyarrow.
//! Rows of every column type (nulls, NaN, dictionary keys) over several hours
//! and days are written, and pyarrow must read each file's schema and rows
//! exactly as written, find them all as a hive-partitioned dataset, and see no
//! temporary file; writing the same rows again, in another order, must leave
//! the same files.
//!
//! The interpreter comes from `PULSE_PYARROW_PYTHON` or the venv that
//! `scripts/pyarrow.sh` (`ensure_pyarrow`) installs under
//! `~/.cache/pulse/venv-pyarrow`. Without it the tests are skipped loudly;
//! with `CI=true` they fail instead.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use pulse_core::row::{Column, ColumnType, Row, RowSchema, Value};
use pulse_sinks::parquet::{ParquetOptions, ParquetWriter};
use serde_json::{Value as Json, json};

/// Prints, as one JSON object, every `.parquet` file under a directory with
/// its schema and rows (times as epoch ms, NaN as "NaN"), every other file,
/// and the row count of the directory read as a hive-partitioned dataset.
const READER: &str = r#"
import json, math, os, sys
import pyarrow as pa, pyarrow.dataset as ds, pyarrow.parquet as pq

root = sys.argv[1]
def plain(value):
    if isinstance(value, float) and math.isnan(value):
        return "NaN"
    return value
files, others = {}, []
for directory, _, names in os.walk(root):
    for name in sorted(names):
        path = os.path.join(directory, name)
        relative = os.path.relpath(path, root)
        if not name.endswith(".parquet"):
            others.append(relative)
            continue
        table = pq.ParquetFile(path).read()
        columns = []
        for column in table.columns:
            if pa.types.is_timestamp(column.type):
                column = column.cast(pa.int64())
            columns.append(column.to_pylist())
        files[relative] = {
            "schema": [[f.name, str(f.type), f.nullable] for f in table.schema],
            "rows": [[plain(v) for v in row] for row in zip(*columns)],
        }
dataset = ds.dataset(root, format="parquet", partitioning="hive")
print(json.dumps({"files": files, "others": others, "dataset_rows": dataset.count_rows(),
                  "partition_fields": sorted(dataset.schema.names)}))
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
            let warning = "\n*** SKIPPED: no pyarrow (set PULSE_PYARROW_PYTHON, or source scripts/pyarrow.sh and run \
                           ensure_pyarrow) ***\n";
            let _ = std::io::Write::write_all(&mut std::io::stderr(), warning.as_bytes());
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

struct Scratch(PathBuf);

impl Scratch {
    fn new(label: &str) -> Self {
        let path = std::env::temp_dir().join(format!("pulse-parquet-{label}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        Self(path)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("keeping {} for inspection", self.0.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

fn schema() -> Arc<RowSchema> {
    Arc::new(
        RowSchema::new(vec![
            Column::new("window_start", ColumnType::Time),
            Column::new("window_end", ColumnType::Time),
            Column::new("tenant", ColumnType::Key),
            Column::new("labels.region", ColumnType::Key).nullable(),
            Column::new("count", ColumnType::Int),
            Column::new("avg", ColumnType::Float).nullable(),
            Column::new("spike", ColumnType::Bool),
            Column::new("note", ColumnType::Text).nullable(),
        ])
        .unwrap(),
    )
}

/// 2024-12-31T22:00:00Z: the rows run over three hours, across a new year.
const START: u64 = 1_735_682_400_000;

/// Rows every 10 minutes for three hours, for two tenants, with nulls and odd floats.
fn rows(schema: &Arc<RowSchema>) -> Vec<Row> {
    let mut rows = Vec::new();
    for step in 0..18u64 {
        for (t, tenant) in ["acme", "globex"].into_iter().enumerate() {
            let start = START + step * 600_000;
            let avg = match (step + t as u64) % 5 {
                0 => Value::Null,
                1 => Value::Float(f64::NAN),
                2 => Value::Float(-0.125),
                _ => Value::Float(step as f64 * 1.5 + t as f64),
            };
            rows.push(Row::new(
                Arc::clone(schema),
                vec![
                    Value::Time(start),
                    Value::Time(start + 600_000),
                    Value::from(tenant),
                    Value::from((step % 3 != 0).then_some(if t == 0 { "eu" } else { "us-east" })),
                    Value::Int(step as i64 * 10 - 7),
                    avg,
                    Value::Bool(step % 4 == 0),
                    Value::from((step == 5).then_some("quotes \" and ünïcode")),
                ],
            ));
        }
    }
    rows
}

/// A row as the reader prints it.
fn as_read(row: &Row) -> Json {
    Json::Array(
        row.values()
            .iter()
            .map(|value| match value {
                Value::Null => Json::Null,
                Value::Time(t) => json!(t),
                Value::Str(s) => json!(s),
                Value::Int(n) => json!(n),
                Value::Float(x) if x.is_nan() => json!("NaN"),
                Value::Float(x) => json!(x),
                Value::Bool(b) => json!(b),
            })
            .collect(),
    )
}

#[test]
fn pyarrow_reads_back_every_row_and_type_in_hour_partitions() {
    let Some(python) = pyarrow() else { return };
    let scratch = Scratch::new("types");
    let schema = schema();
    let rows = rows(&schema);
    // Each hour holds 12 rows: cut into files of 8 and 4.
    let options = ParquetOptions {
        max_rows_per_file: 8,
        ..ParquetOptions::default()
    };
    let mut writer = ParquetWriter::open(&scratch.0, "by_metric", Arc::clone(&schema), options).unwrap();
    let (before_midnight, after): (Vec<Row>, Vec<Row>) = rows
        .iter()
        .cloned()
        .partition(|row| row.values()[0].as_time().unwrap() < START + 2 * 3_600_000);
    assert!(writer.append(before_midnight).is_empty());
    let full = writer.write_full().unwrap();
    assert_eq!(
        full.iter().map(|f| f.rows).collect::<Vec<_>>(),
        [8, 8],
        "22:00 and 23:00 filled a file each"
    );
    // The first hour is complete once time passes 23:00: its other 4 rows.
    let finished = writer.finish_through(START + 3_600_000).unwrap();
    assert_eq!(finished.iter().map(|f| f.rows).collect::<Vec<_>>(), [4], "{finished:?}");
    assert_eq!(writer.waiting_rows(), 4, "23:00's last rows wait for their hour");
    assert!(writer.append(after).is_empty());
    let mut written_files: Vec<_> = full
        .into_iter()
        .chain(finished)
        .chain(writer.close().unwrap())
        .collect();
    written_files.sort_by(|a, b| a.path.cmp(&b.path));
    assert_eq!(written_files.iter().map(|f| f.rows).sum::<usize>(), rows.len());

    let read = read_back(&python, &scratch.0);
    assert_eq!(read["others"], json!([]), "no temporary file is left behind");
    let files = read["files"].as_object().unwrap();
    let mut names: Vec<&str> = files.keys().map(String::as_str).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "by_metric/dt=2024-12-31/hour=22/part-1735682400000-1735684200000-0000.parquet",
            "by_metric/dt=2024-12-31/hour=22/part-1735684800000-1735685400000-0001.parquet",
            "by_metric/dt=2024-12-31/hour=23/part-1735686000000-1735687800000-0000.parquet",
            "by_metric/dt=2024-12-31/hour=23/part-1735688400000-1735689000000-0001.parquet",
            "by_metric/dt=2025-01-01/hour=00/part-1735689600000-1735691400000-0000.parquet",
            "by_metric/dt=2025-01-01/hour=00/part-1735692000000-1735692600000-0001.parquet",
        ],
        "named by hour, time range and sequence"
    );
    let expected_schema = json!([
        ["window_start", "timestamp[ms, tz=UTC]", false],
        ["window_end", "timestamp[ms, tz=UTC]", false],
        ["tenant", "dictionary<values=string, indices=int32, ordered=0>", false],
        [
            "labels.region",
            "dictionary<values=string, indices=int32, ordered=0>",
            true
        ],
        ["count", "int64", false],
        ["avg", "double", true],
        ["spike", "bool", false],
        ["note", "string", true],
    ]);
    for (name, file) in files {
        assert_eq!(file["schema"], expected_schema, "{name}");
    }
    // Every file holds exactly the rows written for it, in time order.
    for written in &written_files {
        let name = written.path.strip_prefix(&scratch.0).unwrap().display().to_string();
        let mut expected: Vec<&Row> = rows
            .iter()
            .filter(|row| (written.first..=written.last).contains(&row.values()[0].as_time().unwrap()))
            .collect();
        // By time, then by value: here, by tenant.
        expected.sort_by_key(|row| (row.values()[0].as_time(), row.values()[2].as_str().map(str::to_owned)));
        let read_rows = files[&name]["rows"].as_array().unwrap();
        let expected: Vec<Json> = expected.iter().map(|row| as_read(row)).collect();
        assert_eq!(read_rows, &expected, "{name}");
    }
    let all: Vec<Json> = files
        .values()
        .flat_map(|file| file["rows"].as_array().unwrap().clone())
        .collect();
    assert_eq!(all.len(), rows.len());
    assert!(
        rows.iter().all(|row| all.contains(&as_read(row))),
        "every row is read back"
    );
    assert_eq!(read["dataset_rows"], rows.len());
    let fields = read["partition_fields"].to_string();
    assert!(
        fields.contains("\"dt\"") && fields.contains("\"hour\""),
        "hive partitions: {fields}"
    );
}

#[test]
fn writing_the_same_rows_again_replaces_the_files_and_refused_rows_are_handed_back() {
    let Some(python) = pyarrow() else { return };
    let scratch = Scratch::new("replay");
    let schema = schema();
    let rows = rows(&schema);
    let write = |rows: Vec<Row>| {
        let mut writer =
            ParquetWriter::open(&scratch.0, "by_metric", Arc::clone(&schema), ParquetOptions::default()).unwrap();
        let refused = writer.append(rows);
        (refused, writer.close().unwrap())
    };
    let (refused, first) = write(rows.clone());
    assert!(refused.is_empty());
    let before = read_back(&python, &scratch.0);

    // The replay: the same rows in reverse order, and one that cannot be a timestamp.
    let mut replay: Vec<Row> = rows.iter().rev().cloned().collect();
    let mut absurd = rows[0].values().to_vec();
    absurd[1] = Value::Time(u64::MAX);
    replay.push(Row::new(Arc::clone(&schema), absurd));
    let (refused, second) = write(replay);
    assert_eq!(refused.len(), 1);
    assert!(refused[0].reason.contains("`window_end`"), "{}", refused[0].reason);
    let paths = |files: &[pulse_sinks::parquet::WrittenFile]| files.iter().map(|f| f.path.clone()).collect::<Vec<_>>();
    assert_eq!(
        paths(&first),
        paths(&second),
        "the same names: each file replaced, none added"
    );
    assert_eq!(
        read_back(&python, &scratch.0),
        before,
        "and the same contents, whatever order the rows came in"
    );
}
