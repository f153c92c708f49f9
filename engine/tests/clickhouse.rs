//! The clickhouse sink against a real ClickHouse (18.16 here, the DDL also
//! runs on current servers): window rows and events land in their tables,
//! a replay of the same input leaves the same final contents (`FINAL`), a
//! value the table cannot hold becomes a dead letter, and a server that goes
//! away mid-run and comes back (with its data) ends with what a run without
//! the fault writes.
//!
//! Each test writes to a database of its own, so they run in parallel.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::clickhouse::{PrivateClickHouse, clickhouse, query, query_result};
use common::kafka::{generate, unique};
use common::process::{KillOnDrop, wait_until, wait_with_timeout};
use common::{TempDir, compare_rows, load_pipeline, pulse_bin, read_jsonl, run_pipeline, sort_rows};
use serde_json::{Map, Value};

/// A file source, a 5 s window, the window rows to a file (the reference) and
/// both windows and events to ClickHouse.
fn pipeline(input: &std::path::Path, url: &str, database: &str, extra: &str) -> String {
    format!(
        r#"
[engine]
dead_letter_path = "${{OUT}}/dead.jsonl"

[sources.events]
type = "file"
path = "{input}"

[operators.tumbling_5s]
type = "window"
inputs = ["events"]
window = {{ tumbling = "5s" }}
key = ["tenant", "metric"]
aggregates = ["count", "sum", "max"]

[sinks.rows]
type = "file"
inputs = ["tumbling_5s"]
path = "${{OUT}}/rows.jsonl"

[sinks.history]
type = "clickhouse"
inputs = ["tumbling_5s", "events"]
url = "{url}"
database = "{database}"
{extra}
"#,
        input = input.display()
    )
}

fn run(dir: &TempDir, pipeline: &str) {
    let path = dir.join(&format!("{}.toml", unique("pipeline")));
    std::fs::write(&path, pipeline).unwrap();
    let report = run_pipeline(&load_pipeline(&path, &[("OUT", &dir.display())]), 2);
    assert_eq!(report.sink_errors, 0, "no batch may be lost");
}

/// A JSON number from ClickHouse's JSON, which quotes 64-bit integers.
fn number(value: &Value) -> f64 {
    match value {
        Value::String(s) => s.parse().unwrap(),
        other => other.as_f64().unwrap(),
    }
}

/// `window_aggregates` (`FINAL`) as rows of the file sink's shape, sorted.
fn window_rows(url: &str, database: &str) -> Vec<Value> {
    let text = query(
        url,
        &format!(
            "SELECT tenant, ts_ms, end_ms, key_names, key_values, value_names, values \
             FROM `{database}`.window_aggregates FINAL FORMAT JSONEachRow"
        ),
    );
    let mut rows: Vec<Value> = text
        .lines()
        .map(|line| {
            let stored: Value = serde_json::from_str(line).unwrap();
            let mut row = Map::new();
            row.insert("window_start".into(), (number(&stored["ts_ms"]) as u64).into());
            row.insert("window_end".into(), (number(&stored["end_ms"]) as u64).into());
            row.insert("tenant".into(), stored["tenant"].clone());
            let names = stored["key_names"].as_array().unwrap();
            for (name, value) in names.iter().zip(stored["key_values"].as_array().unwrap()) {
                row.insert(name.as_str().unwrap().into(), value.clone());
            }
            let names = stored["value_names"].as_array().unwrap();
            for (name, value) in names.iter().zip(stored["values"].as_array().unwrap()) {
                let name = name.as_str().unwrap();
                let value = number(value);
                let value = if name == "count" {
                    Value::from(value as u64)
                } else {
                    Value::from(value)
                };
                row.insert(name.into(), value);
            }
            Value::Object(row)
        })
        .collect();
    sort_rows(&mut rows);
    rows
}

fn count(url: &str, sql: &str) -> u64 {
    query(url, sql).trim().parse().unwrap()
}

#[test]
fn a_replay_leaves_the_final_contents_of_the_first_run() {
    let Some(url) = clickhouse() else { return };
    let dir = TempDir::new("clickhouse-replay");
    let input = dir.join("events.jsonl");
    generate(&input, 3_000);
    let database = unique("replay").replace('-', "_");
    let pipeline = pipeline(&input, &url, &database, "batch_size = 500");

    run(&dir, &pipeline);
    let mut expected = read_jsonl(&dir.join("rows.jsonl"));
    sort_rows(&mut expected);
    assert!(!expected.is_empty());
    let first = window_rows(&url, &database);
    compare_rows(&expected, &first, "window_aggregates vs the file sink").unwrap();
    let events = |modifier: &str| {
        count(
            &url,
            &format!("SELECT count() FROM `{database}`.time_series_events {modifier}"),
        )
    };
    assert_eq!(events("FINAL"), 3_000, "every event, once");

    run(&dir, &pipeline);
    assert!(events("") >= 3_000, "the replay inserted again");
    let second = window_rows(&url, &database);
    compare_rows(&first, &second, "FINAL after a replay vs the first run").unwrap();
    assert_eq!(
        events("FINAL"),
        3_000,
        "the replayed events collapse into the first run's"
    );
    let tables = query(&url, &format!("SHOW TABLES FROM `{database}`"));
    assert_eq!(
        tables.lines().collect::<Vec<_>>(),
        ["time_series_events", "window_aggregates"]
    );
    query(&url, &format!("DROP DATABASE `{database}`"));
}

#[test]
fn values_a_table_cannot_hold_become_dead_letters_and_the_rest_is_written() {
    let Some(url) = clickhouse() else { return };
    let dir = TempDir::new("clickhouse-dead-letters");
    let input = dir.join("events.jsonl");
    let event = |i: u64, tenant: &str| {
        format!(
            r#"{{"ts":{},"tenant":"{tenant}","source":"s","kind":"metric","metric":"cpu","value":{i}}}"#,
            1_700_000_000_000 + i * 100
        )
    };
    let long_tenant = "t".repeat(40);
    let lines: Vec<String> = (0..100)
        .map(|i| event(i, if i % 10 == 0 { &long_tenant } else { "acme" }))
        .collect();
    std::fs::write(&input, lines.join("\n") + "\n").unwrap();
    let database = unique("letters").replace('-', "_");
    run(&dir, &pipeline(&input, &url, &database, "max_string_bytes = 16"));

    let written = count(&url, &format!("SELECT count() FROM `{database}`.time_series_events"));
    assert_eq!(written, 90, "the events that fit");
    let letters: Vec<Value> = read_jsonl(&dir.join("dead.jsonl"))
        .into_iter()
        .filter(|letter| letter["position"]["type"] == "sink")
        .collect();
    // Ten events, and the window rows of the long tenant.
    assert!(letters.len() > 10, "{letters:?}");
    for letter in &letters {
        assert_eq!(
            letter["reason"], "column `tenant` holds 40 bytes, more than max_string_bytes = 16",
            "{letter}"
        );
        assert!(letter["raw"].as_str().unwrap().contains(&long_tenant));
    }
    query(&url, &format!("DROP DATABASE `{database}`"));
}

#[test]
fn a_server_killed_mid_run_and_restarted_ends_with_what_a_run_without_the_fault_writes() {
    let dir = TempDir::new("clickhouse-fault");
    let server = PrivateClickHouse::new(&dir.join("clickhouse"));
    std::fs::create_dir_all(dir.join("clickhouse")).unwrap();
    let Some(mut running) = server.start(false) else { return };
    let input = dir.join("events.jsonl");
    generate(&input, 20_000);
    let database = "fault";
    // Small batches and a small buffer: the run takes long enough to be hit.
    let pipeline_path = dir.join("pipeline.toml");
    std::fs::write(
        &pipeline_path,
        pipeline(&input, &server.url, database, "batch_size = 20\nbuffer_batches = 1"),
    )
    .unwrap();
    let log = std::fs::File::create(dir.join("pulse.log")).unwrap();
    let mut run = KillOnDrop::new(
        Command::new(pulse_bin())
            .args(["run", &pipeline_path.display().to_string(), "--workers", "2"])
            .env("OUT", dir.display())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let events = |url: &str| query_result(url, &format!("SELECT count() FROM `{database}`.time_series_events"));
    wait_until("the first events are in ClickHouse", Duration::from_secs(60), || {
        events(&server.url).is_ok_and(|n| n.trim().parse::<u64>().unwrap_or(0) > 0)
    });
    running.kill().unwrap();
    running.wait().unwrap();
    std::thread::sleep(Duration::from_secs(2));
    assert!(run.try_wait().unwrap().is_none(), "the run waits for its sink");
    let _restarted = server.start(true).unwrap();
    let status = wait_with_timeout(&mut run, Duration::from_secs(120));
    let log = std::fs::read_to_string(dir.join("pulse.log")).unwrap();
    assert_eq!(status, Some(0), "the run ends well once the server is back:\n{log}");
    assert!(
        log.contains("sink write failed; retrying"),
        "the outage was seen:\n{log}"
    );

    let mut expected = read_jsonl(&dir.join("rows.jsonl"));
    sort_rows(&mut expected);
    compare_rows(
        &expected,
        &window_rows(&server.url, database),
        "windows across a server restart",
    )
    .unwrap();
    let final_events = count(
        &server.url,
        &format!("SELECT count() FROM `{database}`.time_series_events FINAL"),
    );
    assert_eq!(final_events, 20_000, "every event once");
}

/// `incidents` (`FINAL`) as lines: each incident, then each of its causes by
/// rank (through `ARRAY JOIN`, as a user would query them).
fn incident_lines(url: &str, database: &str) -> Vec<String> {
    let incidents = query(
        url,
        &format!(
            "SELECT concat(tenant, ' ', operator, ' ', incident_id, ' opened ', toString(opened_ms), \
             ' closed ', ifNull(toString(closed_ms), '-'), ' ', symptom_kind, '/', symptom_namespace, '/', \
             symptom_name, ' ', symptom_reason, ' top ', top_cause, ' ', toString(round(top_confidence * 1000)), \
             ' causes ', toString(length(cause_name))) FROM `{database}`.incidents FINAL FORMAT TSVRaw"
        ),
    );
    let causes = query(
        url,
        &format!(
            "SELECT concat(incident_id, ' #', toString(rank), ' ', kind, '/', namespace, '/', name, ' ', \
             toString(round(confidence * 1000)), ' ', reason, ' ', toString(event_ms), ' ', explanation) \
             FROM `{database}`.incidents FINAL \
             ARRAY JOIN cause_kind AS kind, cause_namespace AS namespace, cause_name AS name, \
             cause_confidence AS confidence, cause_reason AS reason, cause_event_ms AS event_ms, \
             cause_explanation AS explanation, arrayEnumerate(cause_name) AS rank FORMAT TSVRaw"
        ),
    );
    let mut lines: Vec<String> = incidents.lines().chain(causes.lines()).map(str::to_owned).collect();
    lines.sort();
    lines
}

/// The same lines from the incidents file sink's rows.
fn expected_incident_lines(rows: &[Value]) -> Vec<String> {
    let text = |row: &Value, key: &str| row[key].as_str().unwrap_or("").to_owned();
    let mut lines = Vec::new();
    for row in rows {
        let id = text(row, "incident_id");
        let causes: Vec<Value> = serde_json::from_str(row["causes"].as_str().unwrap()).unwrap();
        lines.push(format!(
            "{} rca {id} opened {} closed {} {}/{}/{} {} top {} {} causes {}",
            text(row, "tenant"),
            row["opened_at"],
            row["closed_at"].as_u64().map_or("-".to_owned(), |t| t.to_string()),
            text(row, "symptom_kind"),
            text(row, "symptom_namespace"),
            text(row, "symptom_name"),
            text(row, "symptom_reason"),
            text(row, "top_cause"),
            row["top_confidence"]
                .as_f64()
                .map_or("nan".to_owned(), |c| (c * 1000.0).round().to_string()),
            causes.len(),
        ));
        for (rank, cause) in causes.iter().enumerate() {
            let r = &cause["resource"];
            lines.push(format!(
                "{id} #{} {}/{}/{} {} {} {} {}",
                rank + 1,
                text(r, "kind"),
                text(r, "namespace"),
                text(r, "name"),
                (cause["confidence"].as_f64().unwrap() * 1000.0).round(),
                text(cause, "reason"),
                cause["event_ts"],
                text(cause, "explanation"),
            ));
        }
    }
    lines.sort();
    lines
}

#[test]
fn incidents_land_one_row_each_with_their_ranked_causes_and_a_replay_changes_nothing() {
    let Some(url) = clickhouse() else { return };
    let dir = TempDir::new("clickhouse-incidents");
    let input = dir.join("events.jsonl");
    let (acme, globex) = (unique("acme"), unique("globex"));
    std::fs::write(
        &input,
        common::incidents::two_tenants(&acme, &globex, 1_700_000_000_000),
    )
    .unwrap();
    let database = unique("incidents").replace('-', "_");
    let pipeline = format!(
        r#"
[engine]
dead_letter_path = "${{OUT}}/dead.jsonl"

[sources.events]
type = "file"
path = "{input}"

[operators.rca]
type = "incidents"
inputs = ["events"]
quiet = "1m"

[sinks.rows]
type = "file"
inputs = ["rca"]
path = "${{OUT}}/rows.jsonl"

[sinks.history]
type = "clickhouse"
inputs = ["rca"]
url = "{url}"
database = "{database}"
"#,
        input = input.display()
    );
    run(&dir, &pipeline);
    assert!(!dir.join("dead.jsonl").exists(), "nothing refused");
    let rows = read_jsonl(&dir.join("rows.jsonl"));
    assert!(rows.len() >= 2, "incidents of both tenants: {rows:?}");
    let expected = expected_incident_lines(&rows);
    assert!(expected.len() > rows.len(), "with causes: {expected:?}");
    let first = incident_lines(&url, &database);
    assert_eq!(first, expected, "incidents vs the file sink");

    // Replayed: the same rows again, which FINAL collapses into one per incident.
    run(&dir, &pipeline);
    let total = count(&url, &format!("SELECT count() FROM `{database}`.incidents"));
    assert!(total >= rows.len() as u64, "the replay inserted again");
    assert_eq!(incident_lines(&url, &database), first, "FINAL after a replay");
    assert_eq!(
        count(&url, &format!("SELECT count() FROM `{database}`.incidents FINAL")),
        rows.len() as u64
    );
    query(&url, &format!("DROP DATABASE `{database}`"));
}
