//! Broker outages. A Kafka source whose broker goes away reports itself
//! unhealthy — the gateway's `/health/ready` answers 503 and
//! `pulse_component_up` drops to 0 — and the run goes on retrying, and still
//! drains and exits 0 on SIGTERM. When the broker comes back (with its data,
//! as a restarted Apache Kafka has), the source is healthy again and resumes
//! where it was: the windows equal a file replay of the same events.
//!
//! Each test starts an Apache Kafka broker of its own (`PrivateBroker`, with
//! the jars the test script fetches) on free ports, so stopping it disturbs no
//! other test.

mod common;

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::kafka::{PrivateBroker, create_topic, generate, produce_file, produce_to_partition, read_topic};
use common::process::{KillOnDrop, free_port, http, terminate, wait_for_status, wait_until};
use common::{TempDir, compare_rows, pulse_bin, read_jsonl, sort_rows};
use rdkafka::Message;
use serde_json::Value;

/// `pulse run pipeline` with `workers`, its log in `pulse.log` of `dir` (kept
/// there when the test fails).
fn spawn_logged(dir: &TempDir, pipeline: &std::path::Path, workers: usize) -> KillOnDrop {
    let log = std::fs::File::create(dir.join("pulse.log")).unwrap();
    KillOnDrop::new(
        Command::new(pulse_bin())
            .args([
                "run",
                &pipeline.display().to_string(),
                "--workers",
                &workers.to_string(),
            ])
            .env("RUST_LOG", "info,pulse_connectors=debug")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    )
}

/// `GET path` on the gateway: the status and the body as text.
fn get(address: SocketAddr, path: &str) -> (u16, String) {
    let (status, body) = http(address, "GET", path, None, None);
    (status, body.as_str().map_or_else(|| body.to_string(), str::to_owned))
}

#[test]
fn a_source_reports_a_lost_broker_and_the_run_still_drains() {
    let dir = TempDir::new("kafka-outage");
    let kafka = PrivateBroker::new(&dir.join("kafka"));
    let Some(mut broker) = kafka.start() else {
        return;
    };
    let brokers = kafka.address.clone();
    let topic = "acme.events.normalized";
    create_topic(&brokers, topic, 2);

    let gateway_port = free_port();
    let gateway: SocketAddr = ([127, 0, 0, 1], gateway_port).into();
    let pipeline = dir.join("pipeline.toml");
    std::fs::write(
        &pipeline,
        format!(
            r#"
[sources.events]
type = "kafka"
brokers = "{brokers}"
topics = ["{topic}"]

[sinks.out]
type = "file"
inputs = ["events"]
path = "{dir}/out.jsonl"

[gateway]
listen = "{gateway}"
data_dir = "{dir}/gateway"
demo = true
"#,
            dir = dir.display()
        ),
    )
    .unwrap();
    let mut run = spawn_logged(&dir, &pipeline, 1);
    wait_for_status(gateway, "/health/ready", 200);
    // Lose the broker once the source is reading, not while it starts up.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !get(gateway, "/metrics").1.contains("pulse_kafka_consumer_lag{") {
        assert!(Instant::now() < deadline, "the source never measured its lag");
        std::thread::sleep(Duration::from_millis(100));
    }

    broker.kill().unwrap();
    broker.wait().unwrap();
    wait_for_status(gateway, "/health/ready", 503); // the source reports the lost broker
    // Readiness reads the health board itself; the gauge is set from it every
    // 200 ms, so it may follow a moment later.
    wait_until("the source to be down in the metrics", Duration::from_secs(5), || {
        get(gateway, "/metrics")
            .1
            .contains("pulse_component_up{component=\"events\"} 0")
    });
    assert!(run.try_wait().unwrap().is_none(), "the run goes on without its broker");

    assert_eq!(
        terminate(run.take()),
        Some(0),
        "SIGTERM drains and exits 0 without a broker"
    );
}

/// Waits until the source has measured its consumer lag (it reads), and the lag is 0.
fn wait_for_no_lag(gateway: SocketAddr) {
    wait_until("the source to catch up", Duration::from_secs(60), || {
        let metrics = get(gateway, "/metrics").1;
        let lags: Vec<&str> = metrics
            .lines()
            .filter(|line| line.starts_with("pulse_kafka_consumer_lag{"))
            .collect();
        !lags.is_empty() && lags.iter().all(|line| line.ends_with(" 0"))
    });
}

/// The pipeline of the restart test: `source` (a TOML table body) into 1 s
/// windows per (tenant, metric), written to `{name}.jsonl`, and to the sinks
/// in `more_sinks` (TOML tables).
fn windows_pipeline(
    dir: &TempDir,
    name: &str,
    source: &str,
    more_sinks: &str,
    gateway: Option<SocketAddr>,
) -> std::path::PathBuf {
    let gateway = gateway.map_or_else(String::new, |address| {
        format!(
            "[gateway]\nlisten = \"{address}\"\ndata_dir = \"{}/gateway-{name}\"\ndemo = true\n",
            dir.display()
        )
    });
    let path = dir.join(&format!("{name}.toml"));
    std::fs::write(
        &path,
        format!(
            r#"
[sources.events]
{source}

[operators.per_second]
type = "window"
inputs = ["events"]
window = {{ tumbling = "1s" }}
key = ["tenant", "metric"]
aggregates = ["count", "sum", "min", "max"]

[sinks.rows]
type = "file"
inputs = ["per_second"]
path = "{dir}/{name}.jsonl"

{more_sinks}

{gateway}
"#,
            dir = dir.display()
        ),
    )
    .unwrap();
    path
}

/// The broker stops mid-run and comes back with its data: the run reports the
/// outage, stays up, resumes reading from where it was, and its windows — in a
/// file, and in a topic of the same broker — equal a file replay of the same
/// events: nothing lost, nothing out of order.
#[test]
fn a_restarted_broker_is_resumed_from_with_nothing_lost() {
    let dir = TempDir::new("kafka-broker-restart");
    let kafka = PrivateBroker::new(&dir.join("kafka"));
    let Some(mut broker) = kafka.start() else {
        return;
    };
    let brokers = kafka.address.clone();
    let topic = "acme.events.normalized";
    create_topic(&brokers, topic, 2);
    let results = "streaming-metrics";
    create_topic(&brokers, results, 1);

    // 6 s of events in two halves, then one event a minute later in each
    // partition, which closes every window of theirs.
    let all = dir.join("all.jsonl");
    generate(&all, 6_000);
    let lines: Vec<String> = std::fs::read_to_string(&all)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    let last: Value = serde_json::from_str(lines.last().unwrap()).unwrap();
    let closing_ts = last["ts"].as_u64().unwrap() + 60_000;
    let mut closing = last.clone();
    closing["ts"] = closing_ts.into();
    let closing = closing.to_string();
    let write = |name: &str, lines: &[String]| {
        let path = dir.join(name);
        std::fs::write(&path, lines.iter().map(|line| format!("{line}\n")).collect::<String>()).unwrap();
        path
    };
    let (before, after) = lines.split_at(lines.len() / 2);
    let before = write("before.jsonl", before);
    let after = write("after.jsonl", after);
    let replay = write(
        "replay-input.jsonl",
        &[lines.clone(), vec![closing.clone(); 2]].concat(),
    );

    let gateway: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let kafka_source = format!(
        "type = \"kafka\"\nbrokers = \"{brokers}\"\ntopics = [\"{topic}\"]\nmax_out_of_orderness = \"200ms\"\nidle_timeout = \"10m\""
    );
    let kafka_sink = format!(
        "[sinks.to_kafka]\ntype = \"kafka\"\ninputs = [\"per_second\"]\nbrokers = \"{brokers}\"\ntopic = \"{results}\""
    );
    let pipeline = windows_pipeline(&dir, "kafka", &kafka_source, &kafka_sink, Some(gateway));
    produce_file(&brokers, topic, &before);
    let mut run = spawn_logged(&dir, &pipeline, 2);
    wait_for_status(gateway, "/health/ready", 200);
    wait_for_no_lag(gateway);

    broker.kill().unwrap();
    broker.wait().unwrap();
    wait_for_status(gateway, "/health/ready", 503);
    assert!(run.try_wait().unwrap().is_none(), "the run goes on without its broker");

    let Some(mut broker) = kafka.start() else {
        unreachable!("Kafka started before");
    };
    wait_for_status(gateway, "/health/ready", 200); // healthy again
    produce_file(&brokers, topic, &after);
    for partition in 0..2 {
        produce_to_partition(&brokers, topic, partition, std::slice::from_ref(&closing));
    }
    let out = dir.join("kafka.jsonl");
    let closing_window = closing_ts - closing_ts % 1_000;
    let expected = {
        let replay_source = format!(
            "type = \"file\"\npath = \"{}\"\nmax_out_of_orderness = \"200ms\"",
            replay.display()
        );
        let replay_pipeline = windows_pipeline(&dir, "replay", &replay_source, "", None);
        let status = Command::new(pulse_bin())
            .args(["run", &replay_pipeline.display().to_string()])
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "the file replay runs");
        let mut rows: Vec<Value> = read_jsonl(&dir.join("replay.jsonl"))
            .into_iter()
            .filter(|row| row["window_start"].as_u64() < Some(closing_window))
            .collect();
        sort_rows(&mut rows);
        rows
    };
    assert!(!expected.is_empty());
    // Every window before the closing events' is written once both partitions have one.
    wait_until("the windows of both halves", Duration::from_secs(60), || {
        std::fs::read_to_string(&out).is_ok_and(|text| text.lines().count() >= expected.len())
    });
    let produced = |metrics: &str| {
        metrics
            .lines()
            .find(|line| line.starts_with("pulse_kafka_produced_messages_total{") && line.contains(results))
            .and_then(|line| line.rsplit(' ').next()?.parse::<usize>().ok())
            .unwrap_or(0)
    };
    wait_until("the sink's messages are counted", Duration::from_secs(30), || {
        produced(&get(gateway, "/metrics").1) >= expected.len()
    });
    assert_eq!(terminate(run.take()), Some(0), "SIGTERM drains and exits 0");
    let published: Vec<Value> = read_topic(&brokers, results)
        .iter()
        .map(|message| serde_json::from_slice(message.payload().unwrap()).unwrap())
        .collect();
    broker.kill().unwrap();
    broker.wait().unwrap();

    let windows_before_closing = |rows: Vec<Value>| {
        let mut rows: Vec<Value> = rows
            .into_iter()
            .filter(|row| row["window_start"].as_u64() < Some(closing_window))
            .collect();
        sort_rows(&mut rows);
        rows
    };
    let log = dir.join("pulse.log");
    let in_file = windows_before_closing(read_jsonl(&out));
    if let Err(difference) = compare_rows(&expected, &in_file, "windows in the file across a broker restart") {
        panic!("{difference}\n(pulse's log: {})", log.display());
    }
    let starts: Vec<u64> = published
        .iter()
        .map(|row| row["window_start"].as_u64().unwrap())
        .collect();
    assert!(starts.is_sorted(), "the topic has the windows in order: {starts:?}");
    // At least once: a batch the broker wrote just before it died may come again,
    // identical; the whole topic is read, so any other message in it is an error.
    let mut in_topic = windows_before_closing(published);
    in_topic.dedup();
    if let Err(difference) = compare_rows(&expected, &in_topic, "windows in the topic") {
        panic!("{difference}\n(pulse's log: {})", log.display());
    }
}
