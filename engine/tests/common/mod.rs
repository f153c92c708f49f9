//! Helpers shared by the integration tests of the `pulse` package: scratch
//! directories, loading and running pipelines without touching the process
//! environment, reading JSON lines, and comparing rows with a float tolerance.
//!
//! Each test file includes this module with `mod common;` and uses only part
//! of it, hence the `dead_code` allowance below.

#![allow(dead_code)]

pub mod browser;
pub mod clickhouse;
pub mod cluster;
pub mod graph;
pub mod incidents;
pub mod kafka;
pub mod process;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use pulse::{Pipeline, RunOptions, RunReport};
use serde_json::Value;

/// Relative tolerance for floats that depend on summation order (sum, avg, stddev).
pub const RELATIVE_TOLERANCE: f64 = 1e-9;

/// Below this magnitude two floats are equal whatever their ratio (e.g. a sum
/// that cancels to almost zero in one order and to exactly zero in another).
pub const ABSOLUTE_TOLERANCE: f64 = 1e-12;

/// The `engine/` directory (the package root; cargo runs integration tests there).
pub fn package_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The workspace root, where `pipelines/` lives.
pub fn workspace_dir() -> PathBuf {
    package_dir().parent().expect("engine/ has a parent").to_owned()
}

/// The `pulse` binary cargo built for these tests.
pub fn pulse_bin() -> &'static str {
    env!("CARGO_BIN_EXE_pulse")
}

/// A fresh directory under the system temp dir, removed when dropped unless
/// the test is failing (then it is kept, and its path printed, for inspection).
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// Creates `<tmp>/pulse-tests/<label>-<pid>-<n>`.
    pub fn new(label: &str) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir()
            .join("pulse-tests")
            .join(format!("{label}-{}-{n}", std::process::id()));
        if path.exists() {
            std::fs::remove_dir_all(&path).unwrap_or_else(|e| panic!("cannot clear {}: {e}", path.display()));
        }
        std::fs::create_dir_all(&path).unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
        Self { path }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The path of `name` inside the directory.
    pub fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// The directory as a string, for `${VAR}` interpolation.
    pub fn display(&self) -> String {
        self.path.display().to_string()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("keeping {} for inspection", self.path.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// An interpolation environment made of exactly `vars`: tests run in parallel,
/// so they never read or change the process environment.
pub fn env_of(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
    let vars: Vec<(String, String)> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    move |name: &str| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
}

/// Loads the pipeline at `path` with `vars` as its environment; panics with the
/// rendered errors when it does not load.
pub fn load_pipeline(path: &Path, vars: &[(&str, &str)]) -> Pipeline {
    Pipeline::load(path, &env_of(vars)).unwrap_or_else(|error| panic!("{} does not load:\n{error}", path.display()))
}

/// Runs `pipeline` to completion on `workers` worker threads.
pub fn run_pipeline(pipeline: &Pipeline, workers: usize) -> RunReport {
    let options = RunOptions {
        workers: Some(workers),
        ..RunOptions::default()
    };
    let report = pulse::run(pipeline, options)
        .unwrap_or_else(|error| panic!("running {} failed: {error}", pipeline.path.display()));
    assert_eq!(report.workers, workers, "the run used another worker count than asked");
    assert!(!report.interrupted, "nothing should have stopped the run");
    report
}

/// Parses JSON lines (blank lines are skipped); `what` names the text in errors.
pub fn parse_jsonl(text: &str, what: &str) -> Vec<Value> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| {
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{what}:{}: not JSON ({e}): {line}", i + 1))
        })
        .collect()
}

/// Reads a JSONL file into one value per line.
pub fn read_jsonl(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    parse_jsonl(&text, &path.display().to_string())
}

/// Whether two floats are equal within [`RELATIVE_TOLERANCE`] (or [`ABSOLUTE_TOLERANCE`]).
pub fn floats_close(a: f64, b: f64) -> bool {
    if a == b {
        return true;
    }
    let diff = (a - b).abs();
    diff <= ABSOLUTE_TOLERANCE || diff <= RELATIVE_TOLERANCE * a.abs().max(b.abs())
}

/// Compares two JSON values: integers exactly, other numbers with
/// [`floats_close`], everything else exactly. Returns where they differ.
pub fn json_difference(expected: &Value, actual: &Value, at: &str) -> Option<String> {
    match (expected, actual) {
        (Value::Number(e), Value::Number(a)) => {
            let both_integers = (e.is_u64() || e.is_i64()) && (a.is_u64() || a.is_i64());
            let equal = if both_integers {
                e.as_i128() == a.as_i128()
            } else {
                floats_close(e.as_f64().expect("finite"), a.as_f64().expect("finite"))
            };
            (!equal).then(|| format!("{at}: expected {e}, got {a}"))
        }
        (Value::Object(e), Value::Object(a)) => {
            let keys = |o: &serde_json::Map<String, Value>| o.keys().cloned().collect::<Vec<_>>();
            let (mut ek, mut ak) = (keys(e), keys(a));
            ek.sort();
            ak.sort();
            if ek != ak {
                return Some(format!("{at}: expected keys {ek:?}, got {ak:?}"));
            }
            e.iter()
                .find_map(|(key, value)| json_difference(value, &a[key], &format!("{at}.{key}")))
        }
        (Value::Array(e), Value::Array(a)) if e.len() == a.len() => e
            .iter()
            .zip(a)
            .enumerate()
            .find_map(|(i, (ev, av))| json_difference(ev, av, &format!("{at}[{i}]"))),
        _ => (expected != actual).then(|| format!("{at}: expected {expected}, got {actual}")),
    }
}

/// Compares two lists of rows in order; the error lists every differing row
/// (up to a limit) with both sides, so a failure reads like a diff.
pub fn compare_rows(expected: &[Value], actual: &[Value], what: &str) -> Result<(), String> {
    let mut report = String::new();
    let mut differing = 0;
    for i in 0..expected.len().max(actual.len()) {
        let difference = match (expected.get(i), actual.get(i)) {
            (Some(e), Some(a)) => json_difference(e, a, "row"),
            (Some(_), None) => Some("missing from the output".to_owned()),
            (None, Some(_)) => Some("not expected".to_owned()),
            (None, None) => None,
        };
        if let Some(difference) = difference {
            differing += 1;
            if differing <= 10 {
                let show = |v: Option<&Value>| v.map_or("(none)".to_owned(), Value::to_string);
                let _ = writeln!(
                    report,
                    "  line {}: {difference}\n    expected: {}\n    actual:   {}",
                    i + 1,
                    show(expected.get(i)),
                    show(actual.get(i))
                );
            }
        }
    }
    if differing == 0 {
        return Ok(());
    }
    Err(format!(
        "{what}: {differing} of {} expected / {} actual lines differ:\n{report}",
        expected.len(),
        actual.len()
    ))
}

/// Sorts rows by their serialised JSON with every float masked, so that two
/// runs whose floats differ in the last bits still line up row by row.
pub fn sort_rows(rows: &mut [Value]) {
    fn mask(value: &Value) -> Value {
        match value {
            Value::Number(n) if n.is_f64() => Value::String("<float>".into()),
            Value::Array(items) => Value::Array(items.iter().map(mask).collect()),
            Value::Object(map) => Value::Object(map.iter().map(|(k, v)| (k.clone(), mask(v))).collect()),
            other => other.clone(),
        }
    }
    rows.sort_by_cached_key(|row| mask(row).to_string());
}
