//! Worker-count invariance: the same pipeline over the same input gives the
//! same rows with 1, 2 and 4 workers, and the same rows again when the input
//! is shuffled within less than the allowed out-of-orderness.
//!
//! What "the same" means: identical sets of (window, key) rows; counts, min,
//! max and quantiles exactly equal (each key's window lives on one worker, and
//! quantile sketches count values in buckets, which neither arrival order nor
//! merging of sessions changes); sum, avg and stddev within 1e-9 relative,
//! because floating-point addition depends on the order values arrive in, and
//! that order depends on how the file is split across workers.
//!
//! Lateness is decided per worker's split of the file (each split has its own
//! watermark, like a Kafka partition), so with out-of-order input the set of
//! late events may legitimately change with the worker count. The inputs here
//! are therefore built so that no event is late under any split, and the test
//! asserts the late output is empty for every worker count (see `disordered`).
//!
//! Also: `pulse generate` writes the input, and `pulse run` runs a pipeline
//! end to end from the command line.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{TempDir, compare_rows, read_jsonl, run_pipeline, sort_rows};
use pulse::Pipeline;
use serde_json::Value;

/// Events in the generated input: 20 s of event time at 1000 events/s over
/// 300 series (3 tenants × 20 hosts × 5 metrics), so each series reports every 300 ms.
const EVENTS: u64 = 20_000;

/// Generator start time: a multiple of every window size below, so window
/// boundaries are easy to reason about.
const START_MS: u64 = 1_700_000_000_000;

/// Events are shuffled within consecutive blocks of this many lines: at one
/// event per millisecond an event moves by less than this many ms of event time.
const SHUFFLE_BLOCK: usize = 400;

const AGGREGATES: &str = r#"["count", "sum", "min", "max", "avg", "stddev", "p50", "p95", "p99"]"#;

/// Aggregates that depend on the order values are added in.
const ORDER_DEPENDENT: [&str; 3] = ["sum", "avg", "stddev"];

/// The sinks' files, written under `${OUT}`.
const OUTPUTS: [&str; 4] = ["tumbling.jsonl", "hopping.jsonl", "sessions.jsonl", "late.jsonl"];

/// Where the engine writes dead letters no sink reads; created only when there are some.
const DEAD_LETTERS: &str = "dead-letter.jsonl";

/// Tumbling, hopping and session windows with quantiles, and the late side output.
/// `max_out_of_orderness` (1 s) is more than `SHUFFLE_BLOCK` ms.
fn pipeline_text() -> String {
    format!(
        r#"[engine]
dead_letter_path = "${{OUT}}/dead-letter.jsonl"

[sources.events]
type = "file"
path = "${{INPUT}}"
max_out_of_orderness = "1s"
kinds = ["metric"]

[operators.tumbling_5s]
type = "window"
inputs = ["events"]
window = {{ tumbling = "5s" }}
key = ["tenant", "metric"]
aggregates = {AGGREGATES}

[operators.hopping_4s]
type = "window"
inputs = ["events"]
window = {{ hopping = "4s", slide = "1s" }}
key = ["tenant", "labels.region", "metric"]
aggregates = {AGGREGATES}

[operators.sessions_1s]
type = "window"
inputs = ["events"]
window = {{ session = "1s" }}
key = ["tenant", "source", "metric"]
aggregates = {AGGREGATES}

[sinks.tumbling]
type = "file"
inputs = ["tumbling_5s"]
path = "${{OUT}}/tumbling.jsonl"

[sinks.hopping]
type = "file"
inputs = ["hopping_4s"]
path = "${{OUT}}/hopping.jsonl"

[sinks.sessions]
type = "file"
inputs = ["sessions_1s"]
path = "${{OUT}}/sessions.jsonl"

[sinks.late]
type = "file"
inputs = ["events.late"]
path = "${{OUT}}/late.jsonl"
"#
    )
}

/// Writes `events` synthetic events to `path` with `pulse generate`.
fn generate(path: &Path, events: u64) {
    let output = Command::new(common::pulse_bin())
        .args(["generate", "--events", &events.to_string(), "--rate", "1000"])
        .args(["--start", &START_MS.to_string(), "--out", &path.display().to_string()])
        .output()
        .expect("run pulse generate");
    assert!(
        output.status.success(),
        "pulse generate failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let lines = std::fs::read_to_string(path)
        .expect("read the generated file")
        .lines()
        .count() as u64;
    assert_eq!(lines, events, "pulse generate --events {events} wrote {lines} lines");
}

/// A copy of `sorted` with the lines of every block of `SHUFFLE_BLOCK` shuffled
/// (deterministically). Any event is then preceded, in any part of the file,
/// only by events less than `SHUFFLE_BLOCK` ms newer than itself, so with a
/// 1 s allowed disorder no worker's watermark ever passes it: nothing is late
/// whatever the number of workers, and the windows must come out as for the
/// sorted input.
fn disordered(sorted: &Path, to: &Path) {
    let text = std::fs::read_to_string(sorted).expect("read the sorted input");
    let mut lines: Vec<&str> = text.lines().collect();
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        // xorshift64*: fixed seed, so the test is reproducible.
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        state.wrapping_mul(0x2545_f491_4f6c_dd1d)
    };
    for block in lines.chunks_mut(SHUFFLE_BLOCK) {
        for i in (1..block.len()).rev() {
            block.swap(i, (next() % (i as u64 + 1)) as usize);
        }
    }
    let ts = |line: &str| -> u64 {
        let event: Value = serde_json::from_str(line).expect("generated lines are JSON");
        event["ts"].as_u64().expect("ts is an integer")
    };
    let times: Vec<u64> = lines.iter().map(|l| ts(l)).collect();
    let backwards = times.windows(2).filter(|w| w[1] < w[0]).count();
    assert!(
        backwards > EVENTS as usize / 4,
        "the copy should be out of order ({backwards} steps back)"
    );
    let mut newest = 0;
    for &t in &times {
        newest = newest.max(t);
        assert!(newest - t < SHUFFLE_BLOCK as u64, "an event moved by {} ms", newest - t);
    }
    std::fs::write(to, lines.join("\n") + "\n").expect("write the disordered input");
}

/// The rows each sink wrote, sorted so that runs line up row by row.
type Outputs = Vec<(&'static str, Vec<Value>)>;

/// Runs the pipeline over `input` with `workers` workers; returns every sink's rows.
fn run_over(input: &Path, workers: usize) -> Outputs {
    let out = TempDir::new(&format!("workers-{workers}"));
    let input = input.display().to_string();
    let vars = [("INPUT", input.as_str()), ("OUT", &out.display())];
    let pipeline = Pipeline::parse(Path::new("workers.toml"), &pipeline_text(), &common::env_of(&vars))
        .unwrap_or_else(|e| panic!("the test pipeline must be valid:\n{e}"));
    run_pipeline(&pipeline, workers);
    read_outputs(out.path())
}

/// The rows of every sink under `out`, and the dead letters (none if no file).
fn read_outputs(out: &Path) -> Outputs {
    OUTPUTS
        .iter()
        .chain([&DEAD_LETTERS])
        .map(|name| {
            let path = out.join(name);
            assert!(
                path.is_file() || *name == DEAD_LETTERS,
                "no {} was written",
                path.display()
            );
            let mut rows = if path.exists() { read_jsonl(&path) } else { Vec::new() };
            sort_rows(&mut rows);
            (*name, rows)
        })
        .collect()
}

/// The rows of output `name`.
fn rows_of<'o>(outputs: &'o Outputs, name: &str) -> &'o [Value] {
    &outputs.iter().find(|(n, _)| *n == name).expect("a known output").1
}

/// Sum of `count` over `rows`.
fn total_count(rows: &[Value]) -> u64 {
    rows.iter()
        .map(|r| r["count"].as_u64().expect("count is an integer"))
        .sum()
}

/// Checks what any correct run over `EVENTS` generated events must give.
fn check_plausible(outputs: &Outputs, what: &str) {
    let rows = |name: &str| rows_of(outputs, name);
    assert!(
        rows(DEAD_LETTERS).is_empty(),
        "{what}: generated input has no bad lines"
    );
    let late = rows("late.jsonl");
    assert!(
        late.is_empty(),
        "{what}: no event should be late, but {} are, e.g. {}",
        late.len(),
        late.first().map(Value::to_string).unwrap_or_default()
    );
    // 20 s in 5 s windows, 3 tenants × 5 metrics.
    assert_eq!(rows("tumbling.jsonl").len(), 4 * 3 * 5, "{what}: tumbling rows");
    assert_eq!(
        total_count(rows("tumbling.jsonl")),
        EVENTS,
        "{what}: every event in one tumbling window"
    );
    assert_eq!(
        total_count(rows("hopping.jsonl")),
        4 * EVENTS,
        "{what}: every event in 4s/1s = 4 windows"
    );
    // Each series reports every 300 ms, under the 1 s gap: one session per series.
    assert_eq!(rows("sessions.jsonl").len(), 300, "{what}: sessions");
    assert_eq!(
        total_count(rows("sessions.jsonl")),
        EVENTS,
        "{what}: every event in one session"
    );
    for (name, rows) in outputs {
        for row in rows {
            let (min, max) = (row["min"].as_f64(), row["max"].as_f64());
            for q in ["p50", "p95", "p99"] {
                let value = row[q]
                    .as_f64()
                    .unwrap_or_else(|| panic!("{what} {name}: no {q} in {row}"));
                let (min, max) = (min.expect("min"), max.expect("max"));
                // Quantiles are within 1 % of a value that lies in [min, max].
                let (low, high) = (min - 0.01 * min.abs() - 1e-9, max + 0.01 * max.abs() + 1e-9);
                assert!(
                    (low..=high).contains(&value),
                    "{what} {name}: {q} = {value} outside [{min}, {max}] ± 1 %: {row}"
                );
            }
        }
    }
}

/// Rows equal as described in the header: order-dependent aggregates within
/// 1e-9 relative, everything else (keys, windows, counts, min, max, quantiles) exactly.
fn assert_same_rows(expected: &Outputs, actual: &Outputs, what: &str) {
    for ((name, want), (_, got)) in expected.iter().zip(actual) {
        compare_rows(want, got, &format!("{what}: {name}")).unwrap_or_else(|e| panic!("{e}"));
        let exact = |rows: &[Value]| -> Vec<Value> {
            rows.iter()
                .map(|row| {
                    let mut row = row.clone();
                    if let Some(fields) = row.as_object_mut() {
                        ORDER_DEPENDENT.iter().for_each(|f| {
                            fields.remove(*f);
                        });
                    }
                    row
                })
                .collect()
        };
        let (want, got) = (exact(want), exact(got));
        if let Some(i) = (0..want.len()).find(|&i| want[i] != got[i]) {
            panic!(
                "{what}: {name}: row {i} differs beyond {ORDER_DEPENDENT:?}:\n  expected: {}\n  actual:   {}",
                want[i], got[i]
            );
        }
    }
}

/// Inputs generated once per test: the sorted file and its disordered copy.
struct Inputs {
    _dir: TempDir,
    sorted: PathBuf,
    disordered: PathBuf,
}

fn inputs(label: &str) -> Inputs {
    let dir = TempDir::new(label);
    let (sorted, shuffled) = (dir.join("sorted.jsonl"), dir.join("disordered.jsonl"));
    generate(&sorted, EVENTS);
    disordered(&sorted, &shuffled);
    Inputs {
        _dir: dir,
        sorted,
        disordered: shuffled,
    }
}

#[test]
fn rows_do_not_depend_on_the_worker_count() {
    let inputs = inputs("workers-sorted");
    let one = run_over(&inputs.sorted, 1);
    check_plausible(&one, "1 worker");
    for workers in [2, 4] {
        let many = run_over(&inputs.sorted, workers);
        check_plausible(&many, &format!("{workers} workers"));
        assert_same_rows(&one, &many, &format!("1 vs {workers} workers"));
    }
}

#[test]
fn bounded_disorder_changes_nothing_for_any_worker_count() {
    let inputs = inputs("workers-disordered");
    let reference = run_over(&inputs.sorted, 1);
    for workers in [1, 2, 4] {
        let shuffled = run_over(&inputs.disordered, workers);
        check_plausible(&shuffled, &format!("disordered input, {workers} workers"));
        assert_same_rows(
            &reference,
            &shuffled,
            &format!("sorted with 1 worker vs disordered with {workers}"),
        );
    }
}

#[test]
fn cli_run_writes_the_output() {
    let dir = TempDir::new("workers-cli");
    let input = dir.join("events.jsonl");
    generate(&input, EVENTS);
    let pipeline = dir.join("pipeline.toml");
    std::fs::write(&pipeline, pipeline_text()).expect("write the pipeline");
    let out = dir.join("out");
    let output = Command::new(common::pulse_bin())
        .args(["run", &pipeline.display().to_string(), "--workers", "2"])
        .env("INPUT", &input)
        .env("OUT", &out)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run pulse run");
    assert!(
        output.status.success(),
        "pulse run failed ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let from_cli = read_outputs(&out);
    check_plausible(&from_cli, "pulse run");
    assert_same_rows(&run_over(&input, 2), &from_cli, "library run vs pulse run");
}

/// Every `BROKEN_EVERY`-th line of the input is damaged in the dead-letter test.
const BROKEN_EVERY: usize = 997;

/// Bad lines spread over a file bigger than one read (1 MiB), so workers start
/// mid-file and read several chunks: the dead letters must be the same set for
/// any worker count, with the right line numbers, offsets and raw text, and
/// the windows must hold exactly the good lines.
#[test]
fn dead_letters_do_not_depend_on_the_worker_count() {
    let dir = TempDir::new("workers-dead-letters");
    let (sorted, damaged) = (dir.join("sorted.jsonl"), dir.join("damaged.jsonl"));
    generate(&sorted, EVENTS);
    let text = std::fs::read_to_string(&sorted).expect("read the generated input");
    // (1-based line, byte offset, damaged text) of every bad line.
    let mut bad: Vec<(u64, u64, String)> = Vec::new();
    let mut offset = 0u64;
    let mut lines = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = if (i + 1) % BROKEN_EVERY == 0 {
            // Alternately cut short (not JSON) and with an unknown kind.
            let broken = match bad.len() % 2 {
                0 => line[..line.len() / 2].to_owned(),
                _ => line.replace("\"kind\":\"metric\"", "\"kind\":\"metrc\""),
            };
            bad.push((i as u64 + 1, offset, broken.clone()));
            broken
        } else {
            line.to_owned()
        };
        offset += line.len() as u64 + 1;
        lines.push(line);
    }
    std::fs::write(&damaged, lines.join("\n") + "\n").expect("write the damaged input");
    assert!(
        offset > 2 << 20,
        "the input must span several 1 MiB reads ({offset} bytes)"
    );

    let one = run_over(&damaged, 1);
    let letters = rows_of(&one, DEAD_LETTERS);
    assert_eq!(letters.len(), bad.len(), "one dead letter per damaged line");
    let mut by_line: Vec<&Value> = letters.iter().collect();
    by_line.sort_by_key(|l| l["position"]["line"].as_u64());
    for (letter, (line, offset, raw)) in by_line.iter().zip(&bad) {
        assert_eq!(letter["position"]["line"], *line, "{letter}");
        assert_eq!(letter["position"]["offset"], *offset, "line {line}: {letter}");
        assert_eq!(letter["raw"].as_str(), Some(raw.as_str()), "line {line}: raw text");
        let reason = letter["reason"].as_str().unwrap_or_default();
        assert!(
            reason.contains("EOF while parsing") || reason.contains("unknown variant `metrc`"),
            "line {line}: reason {reason:?}"
        );
    }
    let good = EVENTS - bad.len() as u64;
    assert_eq!(
        total_count(rows_of(&one, "tumbling.jsonl")),
        good,
        "the windows hold the good lines"
    );
    assert!(
        rows_of(&one, "late.jsonl").is_empty(),
        "sorted input has no late events"
    );

    for workers in [2, 4] {
        let many = run_over(&damaged, workers);
        assert_same_rows(&one, &many, &format!("damaged input, 1 vs {workers} workers"));
    }
}
