//! Golden pipeline tests: a pipeline file and its input go in, the files its
//! sinks write must match the expected files line by line.
//!
//! Each case is a directory `tests/golden/<case>/` with
//! - `pipeline.toml`: the pipeline; it reads `${CASE}/input.jsonl` and writes
//!   under `${OUT}` (both interpolated here, without touching the process environment);
//!   its comments derive the expected results by hand;
//! - `input.jsonl`: a small hand-written input;
//! - `expected/<file>`: one file per file the run writes under `${OUT}`.
//!
//! The test runs the pipeline with one worker into a fresh directory, then
//! checks that it wrote exactly the expected files and that every line matches,
//! parsed as JSON: integers exactly, floats within 1e-9 relative. Before
//! comparing, the output directory and the case directory are replaced in the
//! output by the literal text `${OUT}` and `${CASE}` (dead letters name their input file).
//!
//! To regenerate the expected files after a deliberate change of output, run
//!
//! ```text
//! PULSE_BLESS=1 cargo test -p pulse --test golden
//! ```
//!
//! and review the diff (`git diff engine/tests/golden`) by hand before committing:
//! blessing writes whatever the engine printed.

mod common;

use std::path::{Path, PathBuf};

use common::{TempDir, compare_rows, load_pipeline, parse_jsonl, read_jsonl, run_pipeline};
use serde_json::Value;

/// Every case directory; `every_case_directory_has_a_test` keeps this in step with the disk.
const CASES: [&str; 7] = [
    "tumbling_basic",
    "hopping_and_session",
    "dead_letter",
    "late_data",
    "key_by_label_and_null",
    "unread_dead_letters",
    "anomaly_and_forecast",
];

fn case_dir(case: &str) -> PathBuf {
    common::package_dir().join("tests/golden").join(case)
}

fn blessing() -> bool {
    std::env::var_os("PULSE_BLESS").is_some_and(|v| v == "1")
}

/// The files of `dir` (not recursive), sorted by name.
fn file_names(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .map(|entry| entry.expect("a readable directory entry"))
        .filter(|entry| entry.file_type().is_ok_and(|t| t.is_file()))
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// A finished run of a case: its output directory, kept for further checks.
struct CaseRun {
    out: TempDir,
    input_dir: PathBuf,
}

impl CaseRun {
    /// The rows of output file `name`, with `${OUT}` / `${CASE}` put back.
    fn rows(&self, name: &str) -> Vec<Value> {
        let path = self.out.join(name);
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        parse_jsonl(&self.normalise(&text), &path.display().to_string())
    }

    fn normalise(&self, text: &str) -> String {
        text.replace(&self.out.display(), "${OUT}")
            .replace(&self.input_dir.display().to_string(), "${CASE}")
    }
}

/// Runs the pipeline of `case` with `${CASE}` = `input_dir`, one worker.
fn run_case_with_input(case: &str, input_dir: &Path) -> CaseRun {
    run_case_on(case, input_dir, 1)
}

/// Runs the pipeline of `case` with `${CASE}` = `input_dir` on `workers` workers.
fn run_case_on(case: &str, input_dir: &Path, workers: usize) -> CaseRun {
    let out = TempDir::new(&format!("golden-{case}"));
    let pipeline = load_pipeline(
        &case_dir(case).join("pipeline.toml"),
        &[("OUT", &out.display()), ("CASE", &input_dir.display().to_string())],
    );
    run_pipeline(&pipeline, workers);
    CaseRun {
        out,
        input_dir: input_dir.to_owned(),
    }
}

/// Runs `case` and compares (or, with `PULSE_BLESS=1`, writes) its expected files.
fn check_case(case: &str) -> CaseRun {
    check_case_on(case, 1)
}

/// Runs `case` on `workers` workers and compares its expected files (blessing
/// only ever writes what one worker produced).
fn check_case_on(case: &str, workers: usize) -> CaseRun {
    let dir = case_dir(case);
    let run = run_case_on(case, &dir, workers);
    let expected_dir = dir.join("expected");
    let produced = file_names(run.out.path());
    if blessing() && workers == 1 {
        std::fs::create_dir_all(&expected_dir).expect("create expected/");
        for stale in file_names(&expected_dir) {
            std::fs::remove_file(expected_dir.join(stale)).expect("remove a stale expected file");
        }
        for name in &produced {
            let text = std::fs::read_to_string(run.out.join(name)).expect("read output");
            std::fs::write(expected_dir.join(name), run.normalise(&text)).expect("write expected file");
        }
        eprintln!("blessed {case}: {produced:?}");
        return run;
    }
    let expected = file_names(&expected_dir);
    assert_eq!(
        produced, expected,
        "{case} ({workers} workers): the run wrote other files than tests/golden/{case}/expected/ holds"
    );
    let failures: Vec<String> = expected
        .iter()
        .filter_map(|name| {
            let want = read_jsonl(&expected_dir.join(name));
            compare_rows(&want, &run.rows(name), &format!("{case}/{name} ({workers} workers)")).err()
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{}\n(if the change is intended: PULSE_BLESS=1 cargo test -p pulse --test golden, then review the diff)",
        failures.join("\n")
    );
    run
}

#[test]
fn every_case_directory_has_a_test() {
    let root = common::package_dir().join("tests/golden");
    let mut on_disk: Vec<String> = std::fs::read_dir(&root)
        .expect("tests/golden exists")
        .map(|e| e.expect("entry"))
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    on_disk.sort();
    let mut listed: Vec<String> = CASES.iter().map(|c| c.to_string()).collect();
    listed.sort();
    assert_eq!(on_disk, listed, "tests/golden/ and CASES in golden.rs disagree");
    for case in CASES {
        for file in ["pipeline.toml", "input.jsonl"] {
            assert!(case_dir(case).join(file).is_file(), "{case} lacks {file}");
        }
    }
}

#[test]
fn tumbling_basic() {
    check_case("tumbling_basic");
}

#[test]
fn hopping_and_session() {
    check_case("hopping_and_session");
}

/// What each bad line of `dead_letter/input.jsonl` must be rejected for.
const DEAD_LETTER_REASONS: [(u64, &str); 6] = [
    (2, "key must be a string"),
    (4, "missing field `ts`"),
    (7, "unknown variant `metrc`"),
    (8, "invalid type: string \"high\", expected f64"),
    (10, "invalid value: integer `-5`"),
    (12, "EOF while parsing an object"),
];

#[test]
fn dead_letter() {
    let run = check_case("dead_letter");
    if blessing() {
        return;
    }
    // Beyond the golden file: every dead letter points at its line and carries it verbatim.
    let input = std::fs::read_to_string(case_dir("dead_letter").join("input.jsonl")).expect("read input");
    let mut offset = 0;
    let lines: Vec<(u64, u64, &str)> = input
        .split_inclusive('\n')
        .enumerate()
        .map(|(i, line)| {
            let start = offset;
            offset += line.len() as u64;
            (i as u64 + 1, start, line.trim_end_matches('\n'))
        })
        .collect();
    let mut letters = run.rows("dead_letters.jsonl");
    letters.sort_by_key(|l| l["position"]["line"].as_u64());
    assert_eq!(
        letters.len(),
        DEAD_LETTER_REASONS.len(),
        "one dead letter per bad line: {letters:#?}"
    );
    for (letter, (line, reason)) in letters.iter().zip(DEAD_LETTER_REASONS) {
        let (_, line_offset, raw) = lines[line as usize - 1];
        assert_eq!(letter["component"], "events", "{letter}");
        assert_eq!(letter["position"]["type"], "file", "{letter}");
        assert_eq!(letter["position"]["path"], "${CASE}/input.jsonl", "{letter}");
        assert_eq!(letter["position"]["line"], line, "{letter}");
        assert_eq!(letter["position"]["offset"], line_offset, "line {line}: {letter}");
        assert_eq!(
            letter["raw"], raw,
            "line {line}: the raw text must be the line as it was"
        );
        let text = letter["reason"].as_str().expect("reason is a string");
        assert!(
            text.contains(reason),
            "line {line}: reason {text:?} should mention {reason:?}"
        );
    }

    // The good lines alone give the same windows: bad lines change nothing else.
    let good_only = TempDir::new("golden-dead-letter-good");
    let good: String = lines
        .iter()
        .filter(|(line, _, _)| !DEAD_LETTER_REASONS.iter().any(|(bad, _)| bad == line))
        .map(|(_, _, text)| format!("{text}\n"))
        .collect();
    std::fs::write(good_only.join("input.jsonl"), good).expect("write the good lines");
    let clean = run_case_with_input("dead_letter", good_only.path());
    compare_rows(
        &clean.rows("windows.jsonl"),
        &run.rows("windows.jsonl"),
        "windows with and without bad lines",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        clean.rows("dead_letters.jsonl").is_empty(),
        "good lines make no dead letters"
    );
}

#[test]
fn late_data() {
    check_case("late_data");
}

#[test]
fn key_by_label_and_null() {
    check_case("key_by_label_and_null");
}

#[test]
fn unread_dead_letters() {
    let run = check_case("unread_dead_letters");
    if blessing() {
        return;
    }
    let letters = run.rows("dlq.jsonl");
    let lines: Vec<u64> = letters.iter().filter_map(|l| l["position"]["line"].as_u64()).collect();
    assert_eq!(lines.len(), 2, "two bad lines, two dead letters: {letters:#?}");
    assert!(
        lines.contains(&3) && lines.contains(&5),
        "dead letters of lines 3 and 5, got {lines:?}"
    );
}

/// The file is split across workers by byte ranges, each with its own
/// watermark, so which events are late may change with the worker count when
/// the input is out of order: `late_data` is left out. In every other case no
/// event is late under any split (the input is in time order, or out of order
/// by less than `max_out_of_orderness`), so the output must not change at all;
/// this also checks that dead letters keep their line numbers and offsets when
/// a worker reads from the middle of the file.
#[test]
fn cases_without_late_events_do_not_depend_on_the_worker_count() {
    if blessing() {
        return;
    }
    for case in CASES.iter().filter(|c| **c != "late_data") {
        for workers in [2, 3] {
            check_case_on(case, workers);
        }
    }
}

/// A file source over `lines` (with the live sources' floor, the year 2000)
/// and a 10 s count per tenant; no sink reads the
/// source's late events or dead letters, so both go to `${OUT}/dead.jsonl`.
/// Returns the window rows and the dead letters.
fn run_unread_side_outputs(name: &str, lines: &[String], workers: usize) -> (Vec<Value>, Vec<Value>) {
    let dir = TempDir::new(name);
    std::fs::write(dir.join("input.jsonl"), lines.join("\n")).expect("write the input");
    let pipeline = r#"
[engine]
dead_letter_path = "${OUT}/dead.jsonl"

[sources.events]
type = "file"
path = "${OUT}/input.jsonl"
max_out_of_orderness = "1s"
min_timestamp = 946684800000        # a replay has no floor unless given one

[operators.per_tenant]
type = "window"
inputs = ["events"]
window = { tumbling = "10s" }
key = ["tenant"]
aggregates = ["count"]

[sinks.rows]
type = "file"
inputs = ["per_tenant"]
path = "${OUT}/rows.jsonl"
"#;
    std::fs::write(dir.join("pipeline.toml"), pipeline).expect("write the pipeline");
    run_pipeline(
        &load_pipeline(&dir.join("pipeline.toml"), &[("OUT", &dir.display())]),
        workers,
    );
    let dead = dir.join("dead.jsonl");
    let letters = if dead.exists() { read_jsonl(&dead) } else { Vec::new() };
    (read_jsonl(&dir.join("rows.jsonl")), letters)
}

const START_MS: u64 = 1_700_000_000_000;

fn metric_at(ts: u64) -> String {
    format!(r#"{{"ts":{ts},"tenant":"acme","source":"h1","kind":"metric","metric":"cpu","value":1}}"#)
}

/// Issue 25, point 5: one event stamped 99999999999999999 among valid ones
/// used to move the watermark to the year 3,170,000, making every later event
/// late and opening a window there. Now it (and one stamped before the year
/// 2000) is a dead letter `timestamp_out_of_range`, and the valid events are
/// windowed as if it were not there.
#[test]
fn an_absurd_timestamp_is_a_dead_letter_and_moves_no_watermark() {
    // 600 events 100 ms apart: six 10 s windows of 100 events.
    let mut lines: Vec<String> = (0..600).map(|i| metric_at(START_MS + i * 100)).collect();
    lines.insert(100, metric_at(99_999_999_999_999_999));
    lines.insert(300, metric_at(5));
    for workers in [1, 2] {
        let (rows, letters) = run_unread_side_outputs("absurd-timestamp", &lines, workers);
        let windows: Vec<(u64, u64)> = rows
            .iter()
            .map(|r| (r["window_start"].as_u64().unwrap(), r["count"].as_u64().unwrap()))
            .collect();
        let expected: Vec<(u64, u64)> = (0..6).map(|w| (START_MS + w * 10_000, 100)).collect();
        assert_eq!(
            windows, expected,
            "{workers} workers: every valid event on time, no far-future window"
        );
        let mut refused: Vec<(u64, &str, &str)> = letters
            .iter()
            .map(|l| {
                (
                    l["position"]["line"].as_u64().unwrap_or(0),
                    l["reason"].as_str().unwrap(),
                    l["raw"].as_str().unwrap(),
                )
            })
            .collect();
        refused.sort();
        assert_eq!(
            refused.len(),
            2,
            "{workers} workers: two dead letters, nothing late: {letters:#?}"
        );
        assert_eq!((refused[0].0, refused[0].2), (101, lines[100].as_str()));
        assert_eq!((refused[1].0, refused[1].2), (301, lines[300].as_str()));
        for (line, reason, _) in &refused {
            assert!(reason.starts_with("timestamp_out_of_range: "), "line {line}: {reason}");
        }
        assert!(refused[0].1.contains("max_future"), "{}", refused[0].1);
        assert!(refused[1].1.contains("before the floor"), "{}", refused[1].1);
    }
}

/// Late events that no sink reads do not vanish: they are written where the
/// source's dead letters go, with how late they were.
#[test]
fn late_events_nothing_reads_go_where_dead_letters_go() {
    let mut lines: Vec<String> = (0..=10).map(|s| metric_at(START_MS + s * 1_000)).collect();
    lines.push(metric_at(START_MS + 2_000)); // 7 s behind the watermark (10 s − 1 s of disorder)
    let (rows, letters) = run_unread_side_outputs("unread-late", &lines, 1);
    assert_eq!(rows.iter().map(|r| r["count"].as_u64().unwrap()).sum::<u64>(), 11);
    assert_eq!(letters.len(), 1, "{letters:#?}");
    let letter = &letters[0];
    assert_eq!(letter["component"], "events");
    assert_eq!(letter["reason"], "late: 7000 ms behind the watermark");
    assert_eq!(letter["position"]["type"], "late");
    assert_eq!(letter["position"]["watermark"], START_MS + 9_000);
    let event: Value = serde_json::from_str(letter["raw"].as_str().unwrap()).expect("the raw event is JSON");
    assert_eq!(event["ts"], START_MS + 2_000);
    assert_eq!(event["tenant"], "acme");
}

#[test]
fn anomaly_and_forecast() {
    let run = check_case("anomaly_and_forecast");
    if blessing() {
        return;
    }
    // Beyond the golden files: the spike is the critical anomaly, warming-up
    // rows score 0, and the refused average names why, once per operator.
    let anomalies = run.rows("anomalies.jsonl");
    let spike = anomalies
        .iter()
        .find(|row| row["source"] == "h1" && row["ts"] == 1_700_000_240_000u64)
        .expect("h1's point at second 240");
    assert_eq!(
        (spike["severity"].as_str(), spike["is_anomaly"].as_bool()),
        (Some("critical"), Some(true))
    );
    assert!(spike["detectors"].as_str().unwrap().contains("robust_z"), "{spike}");
    assert!(
        anomalies
            .iter()
            .filter(|row| row["warming_up"] == true)
            .all(|row| row["score"] == 0.0 && row["is_anomaly"] == false)
    );
    // The filter passes on exactly the anomalous rows, unchanged.
    let anomalous: Vec<&Value> = anomalies.iter().filter(|row| row["is_anomaly"] == true).collect();
    let alerts = run.rows("alerts.jsonl");
    assert_eq!(alerts.iter().collect::<Vec<_>>(), anomalous);
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    let refused = run.rows("refused.jsonl");
    let components: Vec<&str> = refused.iter().map(|r| r["component"].as_str().unwrap()).collect();
    assert_eq!(components, ["cpu_forecast", "window_anomalies"], "{refused:#?}");
    assert!(
        refused
            .iter()
            .all(|r| r["position"]["type"] == "point" && r["raw"].as_str().unwrap().contains("\"h3\""))
    );
    // Per key and time, one forecast row per step ahead, intervals nested around yhat.
    for row in run.rows("forecasts.jsonl") {
        let f = |name: &str| row[name].as_f64().unwrap();
        assert!(
            f("lower95") <= f("lower80") && f("lower80") <= f("yhat") && f("yhat") <= f("upper80"),
            "{row}"
        );
        assert!(f("upper80") <= f("upper95"), "{row}");
    }
}

#[test]
fn anomaly_and_forecast_on_two_workers() {
    check_case_on("anomaly_and_forecast", 2);
}
