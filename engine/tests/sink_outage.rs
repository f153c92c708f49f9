//! A sink whose server stays down: the run stays up and says so
//! (`/health/ready` 503 naming the sink and its open breaker, which its
//! `breaker` settings open after two failures; the breaker open on `/metrics`), its buffer fills and
//! the Kafka source stops reading instead of memory growing, the other sinks
//! keep what they got, and no offset is committed past what the failing sink
//! has not written — a later run of the same group writes every window. A
//! source that does not feed the failing sink is neither paused nor held back
//! in its commits.

mod common;

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::clickhouse::{clickhouse, query};
use common::kafka::{broker, create_topic, generate, produce_file, unique};
use common::process::{KillOnDrop, free_port, http, wait_for_status, wait_until};
use common::{TempDir, compare_rows, load_pipeline, pulse_bin, read_jsonl, run_pipeline, sort_rows};
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use serde_json::{Map, Value};

fn pipeline(source: &str, clickhouse_url: &str, database: &str, out: &str, gateway: &str) -> String {
    format!(
        r#"
[sources.events]
{source}

[operators.per_second]
type = "window"
inputs = ["events"]
window = {{ tumbling = "1s" }}
key = ["tenant", "metric"]
aggregates = ["count", "sum", "max"]

[sinks.rows]
type = "file"
inputs = ["per_second"]
path = "{out}"

[sinks.history]
type = "clickhouse"
inputs = ["per_second"]
url = "{clickhouse_url}"
database = "{database}"
batch_size = 10
batch_timeout = "50ms"
buffer_batches = 1
retry = {{ initial = "20ms", max = "100ms" }}
breaker = {{ failures = 2, probe_after = "1s" }}

{gateway}
"#
    )
}

/// The value of the series `name{labels…}` on a Prometheus page, if present.
fn metric(page: &str, name: &str, label: &str) -> Option<f64> {
    page.lines()
        .find(|line| line.starts_with(&format!("{name}{{")) && line.contains(label))
        .and_then(|line| line.rsplit(' ').next()?.parse().ok())
}

/// `/health/ready` is 503, names the `history` sink, why it fails and its open
/// breaker, and reports the `rows` sink well.
fn assert_only_history_is_down(gateway: SocketAddr) {
    let (status, ready) = http(gateway, "GET", "/health/ready", None, None);
    assert_eq!(status, 503, "{ready}");
    assert_eq!(ready["open_breakers"], serde_json::json!(["history"]), "{ready}");
    let components = ready["components"].as_array().unwrap();
    let named = |name: &str| {
        components
            .iter()
            .find(|c| c["name"] == name)
            .cloned()
            .unwrap_or_default()
    };
    let history = named("history");
    assert_eq!(
        (history["healthy"].as_bool(), history["breaker"].as_str()),
        (Some(false), Some("open")),
        "{ready}"
    );
    assert!(
        history["problem"]
            .as_str()
            .unwrap_or("")
            .starts_with("circuit breaker open after "),
        "{ready}"
    );

    let rows = named("rows");
    assert_eq!(
        (rows["healthy"].as_bool(), rows["breaker"].as_str()),
        (Some(true), Some("closed")),
        "{ready}"
    );
}

/// `window_aggregates` (`FINAL`) as (window_start, tenant, metric, count), sorted.
fn stored_windows(url: &str, database: &str) -> Vec<Value> {
    let text = query(
        url,
        &format!(
            "SELECT ts_ms, tenant, key_values, values FROM `{database}`.window_aggregates FINAL \
             ORDER BY ts_ms, tenant, key_values FORMAT JSONEachRow"
        ),
    );
    text.lines()
        .map(|line| {
            let row: Value = serde_json::from_str(line).unwrap();
            let start: u64 = row["ts_ms"]
                .as_str()
                .map_or_else(|| row["ts_ms"].as_u64().unwrap(), |s| s.parse().unwrap());
            let mut out = Map::new();
            out.insert("window_start".into(), start.into());
            out.insert("tenant".into(), row["tenant"].clone());
            out.insert("metric".into(), row["key_values"][0].clone());
            out.insert("count".into(), (row["values"][0].as_f64().unwrap() as u64).into());
            Value::Object(out)
        })
        .collect()
}

#[test]
fn a_sink_whose_server_stays_down_holds_the_source_and_the_commits_back() {
    let Some(brokers) = broker() else { return };
    let Some(url) = clickhouse() else { return };
    let dir = TempDir::new("sink-outage");
    let input = dir.join("events.jsonl");
    // Many fetches' worth: librdkafka hands over ~1 MB at a time, and a few
    // of those are read while the first windows travel to the stuck sink.
    const EVENTS: u64 = 100_000;
    generate(&input, EVENTS);
    let topic = unique("acme") + ".events.normalized";
    create_topic(&brokers, &topic, 1);
    produce_file(&brokers, &topic, &input);
    let group = unique("g");
    let database = unique("outage").replace('-', "_");

    // Nothing listens on this port: the ClickHouse sink never gets through.
    let down = format!("http://127.0.0.1:{}", free_port());
    let gateway: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let gateway_table = format!(
        "[gateway]\nlisten = \"{gateway}\"\ndata_dir = \"{}/gateway\"\ndemo = true\n",
        dir.display()
    );
    let live_source = format!(
        "type = \"kafka\"\nbrokers = \"{brokers}\"\ntopics = [\"{topic}\"]\ngroup = \"{group}\"\ncommit_interval = \"200ms\""
    );
    let first = dir.join("first.toml");
    let first_out = dir.join("first.jsonl").display().to_string();
    std::fs::write(
        &first,
        pipeline(&live_source, &down, &database, &first_out, &gateway_table),
    )
    .unwrap();
    let log = std::fs::File::create(dir.join("pulse.log")).unwrap();
    let mut run = KillOnDrop::new(
        Command::new(pulse_bin())
            .args(["run", &first.display().to_string(), "--workers", "2"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    wait_for_status(gateway, "/health/ready", 503);
    let page = || {
        http(gateway, "GET", "/metrics", None, None)
            .1
            .as_str()
            .unwrap_or("")
            .to_owned()
    };
    wait_until("the breaker opens", Duration::from_secs(30), || {
        metric(&page(), "pulse_sink_breaker_state", "component=\"history\"") == Some(2.0)
    });
    assert_only_history_is_down(gateway);
    // The sink's buffer fills, and the source stops reading. (The breaker opens
    // after two failures, before the source may have read anything: wait for
    // the source to have read and then to stand still, with the buffer full.)
    let read = |page: &str| metric(page, "pulse_component_sent_events_total", "component=\"events\"").unwrap_or(0.0);
    let mut after = String::new();
    wait_until("the source reads, then pauses", Duration::from_secs(60), || {
        let before = page();
        std::thread::sleep(Duration::from_secs(2));
        after = page();
        let full = metric(&after, "pulse_sink_buffer_fill_ratio", "component=\"history\"") == Some(1.0);
        read(&before) > 0.0 && read(&before) == read(&after) && full
    });
    eprintln!("the source paused after {} of {EVENTS} events", read(&after));
    assert!(
        read(&after) < EVENTS as f64 / 2.0,
        "it stopped well before the end: {}",
        read(&after)
    );
    assert_eq!(
        metric(&after, "pulse_sink_buffer_fill_ratio", "component=\"history\""),
        Some(1.0)
    );
    assert!(run.try_wait().unwrap().is_none(), "the run stays up");
    let written_before_the_crash = read_jsonl(&dir.join("first.jsonl"));
    assert!(!written_before_the_crash.is_empty(), "the file sink kept what it got");
    run.kill().unwrap();
    run.wait().unwrap();

    // The same group again, bounded, with the server up: every window reaches ClickHouse.
    let bounded_source = format!("{live_source}\nuntil = \"end\"");
    let second = dir.join("second.toml");
    let second_out = dir.join("second.jsonl").display().to_string();
    std::fs::write(&second, pipeline(&bounded_source, &url, &database, &second_out, "")).unwrap();
    run_pipeline(&load_pipeline(&second, &[]), 2);

    let reference = dir.join("reference.toml");
    let replay = format!("type = \"file\"\npath = \"{}\"", input.display());
    let reference_out = dir.join("reference.jsonl").display().to_string();
    std::fs::write(
        &reference,
        pipeline(
            &replay,
            &url,
            &unique("reference").replace('-', "_"),
            &reference_out,
            "",
        ),
    )
    .unwrap();
    let status = Command::new(pulse_bin())
        .args(["run", &reference.display().to_string()])
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let mut expected: Vec<Value> = read_jsonl(&dir.join("reference.jsonl"))
        .into_iter()
        .map(|row| {
            let mut out = Map::new();
            for key in ["window_start", "tenant", "metric", "count"] {
                out.insert(key.into(), row[key].clone());
            }
            Value::Object(out)
        })
        .collect();
    sort_rows(&mut expected);
    let mut stored = stored_windows(&url, &database);
    sort_rows(&mut stored);
    let log = std::fs::read_to_string(dir.join("pulse.log")).unwrap();
    if let Err(difference) = compare_rows(&expected, &stored, "ClickHouse after the outage vs a file replay") {
        panic!("{difference}\n(the first run's log:\n{log})");
    }
    query(&url, &format!("DROP DATABASE `{database}`"));
}

/// `group`'s committed offset of partition 0 of `topic` (0: none).
fn committed(brokers: &str, group: &str, topic: &str) -> i64 {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .create()
        .unwrap();
    let mut list = TopicPartitionList::new();
    list.add_partition_offset(topic, 0, Offset::Stored).unwrap();
    let committed = consumer.committed_offsets(list, Duration::from_secs(10)).unwrap();
    match committed.elements()[0].offset() {
        Offset::Offset(n) => n,
        _ => 0,
    }
}

#[test]
fn a_failing_sink_holds_back_only_the_sources_that_feed_it() {
    let Some(brokers) = broker() else { return };
    let dir = TempDir::new("sink-outage-elsewhere");
    let input = dir.join("events.jsonl");
    generate(&input, 5_000);
    let topic = unique("acme") + ".events.normalized";
    create_topic(&brokers, &topic, 1);
    produce_file(&brokers, &topic, &input);
    let group = unique("g");
    let gateway: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    // `events` (Kafka) feeds a file; `other` (a file) feeds a ClickHouse sink whose server never answers.
    let text = format!(
        r#"
[sources.events]
type = "kafka"
brokers = "{brokers}"
topics = ["{topic}"]
group = "{group}"
commit_interval = "200ms"

[sources.other]
type = "file"
path = "{input}"

[operators.per_second]
type = "window"
inputs = ["events"]
window = {{ tumbling = "1s" }}
key = ["tenant", "metric"]
aggregates = ["count"]

[operators.other_per_second]
type = "window"
inputs = ["other"]
window = {{ tumbling = "1s" }}
key = ["tenant", "metric"]
aggregates = ["count"]

[sinks.rows]
type = "file"
inputs = ["per_second"]
path = "{dir}/rows.jsonl"

[sinks.history]
type = "clickhouse"
inputs = ["other_per_second"]
url = "http://127.0.0.1:{down}"
batch_size = 10
buffer_batches = 1

[gateway]
listen = "{gateway}"
data_dir = "{dir}/gateway"
demo = true
"#,
        input = input.display(),
        dir = dir.display(),
        down = free_port(),
    );
    let path = dir.join("pipeline.toml");
    std::fs::write(&path, text).unwrap();
    let log = std::fs::File::create(dir.join("pulse.log")).unwrap();
    let mut run = KillOnDrop::new(
        Command::new(pulse_bin())
            .args(["run", &path.display().to_string(), "--workers", "1"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    wait_for_status(gateway, "/health/ready", 503);
    let page = || {
        http(gateway, "GET", "/metrics", None, None)
            .1
            .as_str()
            .unwrap_or("")
            .to_owned()
    };
    wait_until("the breaker opens", Duration::from_secs(30), || {
        metric(&page(), "pulse_sink_breaker_state", "component=\"history\"") == Some(2.0)
    });
    assert_only_history_is_down(gateway);
    wait_until("the Kafka source reads everything", Duration::from_secs(30), || {
        metric(&page(), "pulse_component_sent_events_total", "component=\"events\"") == Some(5_000.0)
    });
    // Every window but the last (no later event closes it) is written, and committed.
    wait_until(
        "the Kafka source commits past the failing sink",
        Duration::from_secs(30),
        || committed(&brokers, &group, &topic) > 0,
    );
    assert!(run.try_wait().unwrap().is_none(), "the run stays up");
}
