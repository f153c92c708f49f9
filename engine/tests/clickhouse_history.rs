//! `POST /api/v1/analytics/query` over ClickHouse history, against the real
//! ClickHouse (127.0.0.1:8123): a bounded pipeline writes a minute of last
//! year's windows to ClickHouse and to a JSONL file; a second, running
//! pipeline (its gateway finds the history through its own `clickhouse` sink)
//! answers a query over that old range with exactly the file's windows, per
//! tenant, merges it with the windows it holds in memory when the range spans
//! both (no window twice), and hostile query values stay values.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::clickhouse::{clickhouse, query};
use common::kafka::unique;
use common::process::{KillOnDrop, free_port, http, pulse_token, wait_for_status, wait_until};
use common::{TempDir, floats_close, load_pipeline, pulse_bin, read_jsonl, run_pipeline};
use serde_json::{Value, json};

/// The first window of the old minute (2023-11-14T22:13:20Z).
const BASE: u64 = 1_700_000_000_000;

const WINDOW: &str = r#"
[operators.by_metric]
type = "window"
inputs = ["events"]
window = { tumbling = "10s" }
key = ["tenant", "metric", "labels.region"]
aggregates = ["count", "sum", "avg", "max"]
"#;

/// A minute of events: two tenants, two metrics, two regions, five a second.
fn old_events() -> String {
    let mut lines = Vec::new();
    for i in 0..60 * 5u64 {
        for (tenant, metric, region) in [
            ("acme", "cpu", "eu"),
            ("acme", "cpu", "us"),
            ("acme", "mem", "eu"),
            ("globex", "cpu", "eu"),
        ] {
            let value = (i * 7 + tenant.len() as u64 * 3 + region.len() as u64) % 100;
            lines.push(format!(
                r#"{{"ts":{},"tenant":"{tenant}","source":"h","kind":"metric","metric":"{metric}","value":{value},"labels":{{"region":"{region}"}}}}"#,
                BASE + i * 200
            ));
        }
    }
    lines.join("\n") + "\n"
}

/// The file's windows of `tenant`'s `metric`, by region: window start → row.
fn expected(rows: &[Value], tenant: &str, metric: &str) -> BTreeMap<String, BTreeMap<u64, Value>> {
    let mut by_region: BTreeMap<String, BTreeMap<u64, Value>> = BTreeMap::new();
    for row in rows
        .iter()
        .filter(|row| row["tenant"] == tenant && row["metric"] == metric)
    {
        by_region
            .entry(row["labels.region"].as_str().unwrap().to_owned())
            .or_default()
            .insert(row["window_start"].as_u64().unwrap(), row.clone());
    }
    by_region
}

fn ask(address: SocketAddr, token: &str, body: Value) -> Value {
    let (status, answer) = http(address, "POST", "/api/v1/analytics/query", Some(token), Some(&body));
    assert_eq!(status, 200, "{body} → {answer}");
    answer
}

/// The series of an answer grouped by region: region → [(timestamp, value, windows)].
fn series(answer: &Value) -> BTreeMap<String, Vec<(u64, Value, u64)>> {
    answer["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|series| {
            let region = series["group"]["labels.region"].as_str().unwrap_or("").to_owned();
            let points = series["points"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| {
                    (
                        p["timestamp"].as_u64().unwrap(),
                        p["value"].clone(),
                        p["windows"].as_u64().unwrap(),
                    )
                })
                .collect();
            (region, points)
        })
        .collect()
}

/// Checks that `answer` (aggregation `column`, no step) has exactly the file's windows.
fn assert_matches_file(answer: &Value, file: &BTreeMap<String, BTreeMap<u64, Value>>, column: &str) {
    let got = series(answer);
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        file.keys().collect::<Vec<_>>(),
        "{answer}"
    );
    for (region, windows) in file {
        let points = &got[region];
        assert_eq!(points.len(), windows.len(), "{region}: {answer}");
        for ((timestamp, value, count), (start, row)) in points.iter().zip(windows) {
            assert_eq!((*timestamp, *count), (*start, 1), "{region}: {answer}");
            let (want, have) = (row[column].as_f64().unwrap(), value.as_f64().unwrap());
            assert!(
                floats_close(want, have),
                "{region} {start} {column}: file {want}, API {have}"
            );
        }
    }
}

#[test]
fn an_old_range_is_answered_from_clickhouse_as_the_file_sink_wrote_it() {
    let Some(url) = clickhouse() else { return };
    let dir = TempDir::new("clickhouse-history");
    let database = unique("history").replace('-', "_");
    std::fs::write(dir.join("events.jsonl"), old_events()).unwrap();

    // 1. Last year's minute, bounded: windows to ClickHouse and to a file.
    let bounded = format!(
        r#"
[sources.events]
type = "file"
path = "{dir}/events.jsonl"
{WINDOW}
[sinks.rows]
type = "file"
inputs = ["by_metric"]
path = "{dir}/rows.jsonl"

[sinks.history]
type = "clickhouse"
inputs = ["by_metric"]
url = "{url}"
database = "{database}"
"#,
        dir = dir.display()
    );
    std::fs::write(dir.join("bounded.toml"), bounded).unwrap();
    let report = run_pipeline(&load_pipeline(&dir.join("bounded.toml"), &[]), 2);
    assert_eq!(report.sink_errors, 0);
    let rows = read_jsonl(&dir.join("rows.jsonl"));
    assert_eq!(rows.len(), 6 * 4, "six windows of four series");

    // 2. A live pipeline of the same operator, with a gateway and the same ClickHouse sink.
    let port = free_port();
    let address: SocketAddr = ([127, 0, 0, 1], port).into();
    let live = format!(
        r#"
[sources.events]
type = "http"
idle_timeout = "1s"
{WINDOW}
[sinks.live]
type = "websocket"
inputs = ["by_metric"]

[sinks.history]
type = "clickhouse"
inputs = ["by_metric"]
url = "{url}"
database = "{database}"
batch_timeout = "100ms"

[gateway]
listen = "127.0.0.1:{port}"
data_dir = "{dir}/gateway"
"#,
        dir = dir.display()
    );
    std::fs::write(dir.join("live.toml"), live).unwrap();
    let secret = "history-test-secret-of-at-least-32-characters";
    let log = std::fs::File::create(dir.join("pulse.log")).unwrap();
    let _pulse = KillOnDrop::new(
        Command::new(pulse_bin())
            .args(["run", &dir.join("live.toml").display().to_string(), "--workers", "2"])
            .env("PULSE_JWT_SECRET", secret)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    wait_for_status(address, "/health/ready", 200);
    let acme = pulse_token(secret, "acme", "read,write");
    let globex = pulse_token(secret, "globex", "read");
    let old_range = |metric: &str, aggregation: &str| {
        json!({"metric_name": metric, "start_time": BASE, "end_time": BASE + 60_000,
               "aggregation": aggregation, "group_by": ["labels.region"]})
    };

    // The old range: nothing of it is in memory; ClickHouse answers, as the file has it.
    for (token, tenant, metric) in [
        (&acme, "acme", "cpu"),
        (&acme, "acme", "mem"),
        (&globex, "globex", "cpu"),
    ] {
        let file = expected(&rows, tenant, metric);
        for column in ["avg", "count", "max"] {
            let answer = ask(address, token, old_range(metric, column));
            assert_eq!(answer["operator"], "by_metric", "{answer}");
            assert_matches_file(&answer, &file, column);
        }
    }
    // Re-bucketed: 30 s points add up three windows' counts.
    let answer = ask(
        address,
        &acme,
        json!({"metric_name": "cpu", "start_time": BASE, "end_time": BASE + 60_000,
               "aggregation": "count", "step": "30s"}),
    );
    let mut buckets: BTreeMap<u64, (u64, u64)> = BTreeMap::new();
    for row in rows
        .iter()
        .filter(|row| row["tenant"] == "acme" && row["metric"] == "cpu")
    {
        let start = row["window_start"].as_u64().unwrap();
        let bucket = buckets.entry(start - start % 30_000).or_default();
        bucket.0 += row["count"].as_u64().unwrap();
        bucket.1 += 1;
    }
    let points: Vec<(u64, u64, u64)> = series(&answer)[""]
        .iter()
        .map(|(t, v, w)| (*t, v.as_u64().unwrap(), *w))
        .collect();
    let want: Vec<(u64, u64, u64)> = buckets
        .into_iter()
        .map(|(t, (count, windows))| (t, count, windows))
        .collect();
    assert_eq!(points, want, "{answer}");

    // Hostile values stay values: no row of anyone matches them, nothing breaks.
    for hostile in [
        "cpu' OR '1'='1",
        "cpu\\' OR 1=1 --",
        "cpu'); DROP TABLE window_aggregates; --",
        "*/ cpu /*",
        "cpu\n",
    ] {
        let answer = ask(address, &acme, old_range(hostile, "count"));
        assert_eq!(answer["series"], json!([]), "{hostile:?}: {answer}");
        let mut named = old_range("cpu", "count");
        named["operator"] = json!(hostile);
        let answer = ask(address, &acme, named);
        assert_eq!(answer["series"], json!([]), "{hostile:?} as operator: {answer}");
    }
    assert!(query(&url, &format!("EXISTS TABLE `{database}`.window_aggregates")).trim() == "1");

    // 3. A range spanning history and memory: windows posted now come from
    // memory, the old ones from ClickHouse, each once.
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
    // The ten events in one 10 s window, even when a second ago was the end of one.
    let first = (now - 1_000).min((now - 1_000) / 10_000 * 10_000 + 9_990);
    let recent: Vec<Value> = (0..10)
        .map(|i| {
            json!({"ts": first + i, "source": "h", "kind": "metric", "metric": "cpu",
                       "value": 1.0, "labels": {"region": "eu"}})
        })
        .collect();
    let (status, body) = http(address, "POST", "/api/v1/events", Some(&acme), Some(&json!(recent)));
    assert_eq!(status, 202, "{body}");
    let spanning = json!({"metric_name": "cpu", "start_time": BASE, "aggregation": "count",
                          "group_by": ["labels.region"]});
    let mut answer = Value::Null;
    wait_until("the recent window closes", Duration::from_secs(30), || {
        answer = ask(address, &acme, spanning.clone());
        series(&answer).get("eu").is_some_and(|points| points.len() > 6)
    });
    // Wait until ClickHouse also holds the recent window, then ask again: still once.
    wait_until("the recent window reaches ClickHouse", Duration::from_secs(30), || {
        query(
            &url,
            &format!("SELECT count() FROM `{database}`.window_aggregates FINAL WHERE ts_ms > {BASE} + 3600000"),
        )
        .trim()
            == "1"
    });
    let answer = ask(address, &acme, spanning);
    let eu = &series(&answer)["eu"];
    let file = expected(&rows, "acme", "cpu");
    assert_eq!(
        eu.len(),
        file["eu"].len() + 1,
        "six old windows and the recent one: {answer}"
    );
    let (_, recent_count, windows) = eu.last().unwrap();
    assert_eq!((recent_count.as_u64(), *windows), (Some(10), 1), "{answer}");
    for ((timestamp, count, _), (start, row)) in eu.iter().zip(&file["eu"]) {
        assert_eq!(
            (*timestamp, count.as_u64()),
            (*start, row["count"].as_u64()),
            "{answer}"
        );
    }
    // globex sees none of acme's recent events, and its own history only.
    let answer = ask(
        address,
        &globex,
        json!({"metric_name": "cpu", "start_time": BASE, "aggregation": "count"}),
    );
    let total: u64 = series(&answer)[""].iter().map(|(_, v, _)| v.as_u64().unwrap()).sum();
    assert_eq!(total, 300, "{answer}");

    query(&url, &format!("DROP DATABASE `{database}`"));
}
