//! A Kafka pipeline as a cluster, against the broker on 127.0.0.1:9092: six
//! partitions dealt over every worker of every process give the rows of one
//! process, in a file written by process 0 and in a Kafka topic written by
//! every process, and commit every partition; a cluster whose process 1 is killed
//! with SIGKILL mid-stream ends at once, and restarted as a whole resumes
//! from the committed offsets with the final keyed rows of an uninterrupted run;
//! the same for session windows, whose events' commits wait for the sessions
//! of every process to settle.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::kafka::{broker, create_topic, generate, produce_file, read_topic, unique};
use common::process::{KillOnDrop, free_port, wait_with_timeout};
use common::{TempDir, compare_rows, pulse_bin, read_jsonl, sort_rows};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use serde_json::Value;

const PARTITIONS: i32 = 6;

/// A pipeline reading `topic` with `group` (to its end when `bounded`) into
/// 5 s windows, appended to `{out}.jsonl` in `dir` (and written to
/// `out_topic` when given).
fn pipeline(
    dir: &TempDir,
    (brokers, topic, group): (&str, &str, &str),
    bounded: bool,
    out: &str,
    out_topic: Option<&str>,
) -> PathBuf {
    windows_pipeline(dir, (brokers, topic, group), bounded, out, out_topic, TUMBLING)
}

/// 5 s tumbling windows.
const TUMBLING: &str = r#"{ tumbling = "5s" }"#;

/// Session windows with a 1 s gap.
const SESSIONS: &str = r#"{ session = "1s" }"#;

/// [`pipeline`] with `window` (TOML, e.g. [`SESSIONS`]) instead of 5 s tumbling windows.
fn windows_pipeline(
    dir: &TempDir,
    (brokers, topic, group): (&str, &str, &str),
    bounded: bool,
    out: &str,
    out_topic: Option<&str>,
    window: &str,
) -> PathBuf {
    let until = if bounded { "until = \"end\"" } else { "" };
    let topic_sink = out_topic.map_or_else(String::new, |out_topic| {
        format!("\n[sinks.topic]\ntype = \"kafka\"\ninputs = [\"windows\"]\nbrokers = \"{brokers}\"\ntopic = \"{out_topic}\"\n")
    });
    let text = format!(
        r#"
[sources.events]
type = "kafka"
brokers = "{brokers}"
topics = ["{topic}"]
group = "{group}"
max_out_of_orderness = "2s"
commit_interval = "300ms"
{until}

[operators.windows]
type = "window"
inputs = ["events"]
window = {window}
key = ["tenant", "metric"]
aggregates = ["count", "sum", "min", "max", "avg", "p95"]

[sinks.rows]
type = "file"
inputs = ["windows"]
path = "{dir}/{out}.jsonl"
append = true
{topic_sink}"#,
        dir = dir.display()
    );
    let path = dir.join(&format!("{out}-{}.toml", unique("p")));
    std::fs::write(&path, text).unwrap();
    path
}

/// A topic of `events` generated events over [`PARTITIONS`] partitions.
fn topic_of(dir: &TempDir, brokers: &str, events: u64) -> String {
    let input = dir.join("events.jsonl");
    generate(&input, events);
    let topic = unique("acme") + ".events.normalized";
    create_topic(brokers, &topic, PARTITIONS as u32);
    produce_file(brokers, &topic, &input);
    topic
}

/// The sum over the topic's partitions of `group`'s committed offsets, and
/// how many partitions have a commit.
fn committed(brokers: &str, group: &str, topic: &str) -> (i64, usize) {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .create()
        .unwrap();
    let mut list = TopicPartitionList::new();
    for partition in 0..PARTITIONS {
        list.add_partition_offset(topic, partition, Offset::Stored).unwrap();
    }
    let offsets: Vec<i64> = consumer
        .committed_offsets(list, Duration::from_secs(10))
        .unwrap()
        .elements()
        .iter()
        .filter_map(|e| match e.offset() {
            Offset::Offset(n) => Some(n),
            _ => None,
        })
        .collect();
    (offsets.iter().sum(), offsets.len())
}

/// `pulse cluster` (or `pulse run` for one process) of `pipeline`, to its end.
fn run_shape(pipeline: &Path, processes: usize, workers: usize) {
    let mut command = Command::new(pulse_bin());
    match processes {
        1 => command.arg("run").arg(pipeline),
        _ => {
            let base = loop {
                let base = free_port();
                if base < 65_000
                    && (1..processes as u16).all(|i| std::net::TcpListener::bind(("127.0.0.1", base + i)).is_ok())
                {
                    break base;
                }
            };
            command.arg("cluster").arg(pipeline).args([
                "--processes",
                &processes.to_string(),
                "--base-port",
                &base.to_string(),
            ])
        }
    };
    let output = command.args(["--workers", &workers.to_string()]).output().unwrap();
    assert!(
        output.status.success(),
        "{processes}×{workers} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn sorted(path: &Path) -> Vec<Value> {
    let mut rows = read_jsonl(path);
    sort_rows(&mut rows);
    rows
}

#[test]
fn six_partitions_over_a_cluster_give_the_rows_of_one_process_and_commit_every_partition() {
    let Some(brokers) = broker() else { return };
    let dir = TempDir::new("cluster-kafka");
    let events = 30_000;
    let topic = topic_of(&dir, &brokers, events);
    let mut expected: Option<Vec<Value>> = None;
    for (processes, workers) in [(1, 1), (2, 1), (2, 2), (3, 1)] {
        let group = unique("shape");
        let out = format!("rows-{processes}x{workers}");
        let out_topic = unique(&out);
        create_topic(&brokers, &out_topic, 3);
        run_shape(
            &pipeline(&dir, (&brokers, &topic, &group), true, &out, Some(&out_topic)),
            processes,
            workers,
        );
        let rows = sorted(&dir.join(&format!("{out}.jsonl")));
        // The topic, written from every process, holds exactly the rows of the file.
        let mut in_topic: Vec<Value> = read_topic(&brokers, &out_topic)
            .iter()
            .map(|message| serde_json::from_slice(message.payload().expect("a payload")).unwrap())
            .collect();
        sort_rows(&mut in_topic);
        compare_rows(
            &rows,
            &in_topic,
            &format!("{processes}×{workers}: the topic against the file"),
        )
        .unwrap();
        let counted: u64 = rows.iter().map(|row| row["count"].as_u64().unwrap()).sum();
        assert_eq!(
            counted, events,
            "{processes}×{workers}: every event in exactly one window"
        );
        // Each process commits the partitions its workers read, process 1's
        // once process 0 has written their rows.
        assert_eq!(
            committed(&brokers, &group, &topic),
            (events as i64, PARTITIONS as usize),
            "{processes}×{workers}: every partition committed to its end"
        );
        match &expected {
            None => expected = Some(rows),
            Some(expected) => compare_rows(expected, &rows, &format!("{processes}×{workers} against 1×1")).unwrap(),
        }
    }
}

/// Starts process `process` of a 2-process cluster of `pipeline`.
fn start(pipeline: &Path, hosts: &Path, process: usize) -> KillOnDrop {
    let child: Child = Command::new(pulse_bin())
        .arg("run")
        .arg(pipeline)
        .args([
            "--workers",
            "1",
            "--processes",
            "2",
            "--process",
            &process.to_string(),
            "--hostfile",
        ])
        .arg(hosts)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    KillOnDrop::new(child)
}

/// The last row per (window, key) in the order written: the state a keyed
/// store ends up with.
fn keyed_state(rows: &[Value]) -> Vec<Value> {
    let key = |row: &Value| format!("{}/{}/{}", row["window_start"], row["tenant"], row["metric"]);
    let last: BTreeMap<String, Value> = rows.iter().map(|row| (key(row), row.clone())).collect();
    let mut state: Vec<Value> = last.into_values().collect();
    sort_rows(&mut state);
    state
}

#[test]
fn a_cluster_killed_mid_stream_and_restarted_resumes_from_its_commits() {
    let Some(brokers) = broker() else { return };
    let dir = TempDir::new("cluster-kafka-kill");
    let events = 200_000;
    let topic = topic_of(&dir, &brokers, events);
    let clean = pipeline(&dir, (&brokers, &topic, &unique("clean")), true, "clean", None);
    run_shape(&clean, 1, 1);
    let expected = sorted(&dir.join("clean.jsonl"));

    let group = unique("resumed");
    let hosts = dir.join("hosts");
    std::fs::write(
        &hosts,
        format!("127.0.0.1:{}\n127.0.0.1:{}\n", free_port(), free_port()),
    )
    .unwrap();
    // The topic written from both processes must end with every keyed row too.
    let out_topic = unique("union");
    create_topic(&brokers, &out_topic, 3);
    let unbounded = pipeline(&dir, (&brokers, &topic, &group), false, "union", Some(&out_topic));
    let mut first = start(&unbounded, &hosts, 0);
    let mut second = start(&unbounded, &hosts, 1);
    let deadline = Instant::now() + Duration::from_secs(60);
    while committed(&brokers, &group, &topic).0 == 0 {
        assert!(Instant::now() < deadline, "the cluster committed nothing within 60 s");
        std::thread::sleep(Duration::from_millis(50));
    }
    second.kill().unwrap();
    let killed = Instant::now();
    assert_eq!(
        wait_with_timeout(&mut first, Duration::from_secs(5)),
        Some(70),
        "process 0 ends when process 1 is killed"
    );
    assert!(
        killed.elapsed() < Duration::from_millis(1500),
        "promptly: {:?}",
        killed.elapsed()
    );
    second.wait().unwrap();
    let (at_kill, _) = committed(&brokers, &group, &topic);
    assert!(
        at_kill > 0 && at_kill < events as i64,
        "killed mid-stream: {at_kill} of {events} committed"
    );

    // The supervisor restarts the whole cluster (here: to the end of the topic).
    let bounded = pipeline(&dir, (&brokers, &topic, &group), true, "union", Some(&out_topic));
    let mut first = start(&bounded, &hosts, 0);
    let mut second = start(&bounded, &hosts, 1);
    for child in [&mut first, &mut second] {
        assert_eq!(
            wait_with_timeout(child, Duration::from_secs(120)),
            Some(0),
            "the restart runs to the end"
        );
    }
    let union = read_jsonl(&dir.join("union.jsonl"));
    compare_rows(
        &expected,
        &keyed_state(&union),
        "keyed rows after kill + restart vs an uninterrupted run",
    )
    .unwrap();
    let in_topic: Vec<Value> = read_topic(&brokers, &out_topic)
        .iter()
        .map(|message| serde_json::from_slice(message.payload().expect("a payload")).unwrap())
        .collect();
    compare_rows(
        &expected,
        &keyed_state(&in_topic),
        "keyed rows of the topic after kill + restart vs an uninterrupted run",
    )
    .unwrap();
    assert_eq!(
        committed(&brokers, &group, &topic),
        (events as i64, PARTITIONS as usize)
    );
}

/// Event time of the first burst.
const START: u64 = 1_700_000_000_000;

/// From this burst on, a `disk` metric sends every 500 ms of event time to
/// the end: with a 1 s gap its session stays open for as long as the input
/// lasts, so an unbounded run may commit no event from its start on.
const DISK_FROM: u64 = 100;

/// Bursts of events, 400 ms long every 2 s of event time, from 20 hosts:
/// with a 1 s gap, every burst is one session per (tenant, metric), closed
/// before the next burst starts; and, from burst [`DISK_FROM`], one `disk`
/// session that lasts to the end.
fn bursts(dir: &TempDir, bursts: u64) -> PathBuf {
    let line = |ts: u64, host: u64, metric: &str, value: f64| {
        format!(
            r#"{{"ts":{ts},"tenant":"acme","source":"host-{host:03}","kind":"metric","metric":"{metric}","value":{value}}}"#
        ) + "\n"
    };
    let mut text = String::new();
    for burst in 0..bursts {
        for n in 0..400_u64 {
            let ts = START + burst * 2_000 + n;
            for metric in ["cpu", "mem"] {
                let value = ((burst * 7 + n * 13) % 1_000) as f64 / 10.0;
                text.push_str(&line(ts, (burst + n) % 20, metric, value));
            }
            if burst >= DISK_FROM && n == 0 {
                // Every 500 ms of event time (out of order by at most 1.5 s, within the 2 s allowed).
                for offset in [0, 500, 1_000, 1_500] {
                    text.push_str(&line(ts + offset, 99, "disk", burst as f64));
                }
            }
        }
    }
    let path = dir.join("bursts.jsonl");
    std::fs::write(&path, text).unwrap();
    path
}

/// `group`'s committed offset of each partition of `topic` (those with a commit).
fn committed_by_partition(brokers: &str, group: &str, topic: &str) -> BTreeMap<i32, i64> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .create()
        .unwrap();
    let mut list = TopicPartitionList::new();
    for partition in 0..PARTITIONS {
        list.add_partition_offset(topic, partition, Offset::Stored).unwrap();
    }
    consumer
        .committed_offsets(list, Duration::from_secs(10))
        .unwrap()
        .elements()
        .iter()
        .filter_map(|e| match e.offset() {
            Offset::Offset(n) => Some((e.partition(), n)),
            _ => None,
        })
        .collect()
}

/// Session windows over Kafka in a cluster: the sessions of one process,
/// bounded. Unbounded, a source commits only events whose sessions every
/// process has delivered: the `disk` session, open to the end in whichever
/// process owns its key, holds back the commits of the other process's
/// partitions too (with only its own process's sessions counted, that one
/// committed past it). Then a kill -9 and a restart of the whole cluster lose
/// no session.
#[test]
fn session_windows_over_kafka_in_a_cluster_give_the_sessions_of_one_process_and_survive_a_kill() {
    let Some(brokers) = broker() else { return };
    let dir = TempDir::new("cluster-kafka-sessions");
    let bursts_count = 250;
    let input = bursts(&dir, bursts_count);
    let total = read_jsonl(&input).len() as i64;
    let topic = unique("acme") + ".events.normalized";
    create_topic(&brokers, &topic, PARTITIONS as u32);
    produce_file(&brokers, &topic, &input);
    // Where each partition's events of the open `disk` session begin: no commit may pass it.
    let disk_start = START + DISK_FROM * 2_000;
    let mut holds: BTreeMap<i32, i64> = BTreeMap::new();
    for message in read_topic(&brokers, &topic) {
        let event: Value = serde_json::from_slice(message.payload().unwrap()).unwrap();
        let hold = holds.entry(message.partition()).or_insert(i64::MAX);
        if event["ts"].as_u64().unwrap() >= disk_start {
            *hold = (*hold).min(message.offset());
        }
    }
    assert_eq!(holds.len(), PARTITIONS as usize, "every partition has events");

    let clean = windows_pipeline(
        &dir,
        (&brokers, &topic, &unique("clean")),
        true,
        "clean",
        None,
        SESSIONS,
    );
    run_shape(&clean, 1, 1);
    let expected = sorted(&dir.join("clean.jsonl"));
    assert_eq!(
        expected.len() as u64,
        bursts_count * 2 + 1,
        "one session per burst and metric, and one of `disk`"
    );

    let group = unique("two");
    let two = windows_pipeline(&dir, (&brokers, &topic, &group), true, "two", None, SESSIONS);
    run_shape(&two, 2, 1);
    compare_rows(&expected, &sorted(&dir.join("two.jsonl")), "2×1 sessions against 1×1").unwrap();
    assert_eq!(committed(&brokers, &group, &topic), (total, PARTITIONS as usize));

    let group = unique("resumed");
    let hosts = dir.join("hosts");
    std::fs::write(
        &hosts,
        format!("127.0.0.1:{}\n127.0.0.1:{}\n", free_port(), free_port()),
    )
    .unwrap();
    let unbounded = windows_pipeline(&dir, (&brokers, &topic, &group), false, "union", None, SESSIONS);
    let mut first = start(&unbounded, &hosts, 0);
    let mut second = start(&unbounded, &hosts, 1);
    // Every session but `disk` closes and is written; the commits then catch up
    // with what is settled (a commit every 300 ms, peers' word every second).
    // (The last bursts stay open: the watermark stops 2 s behind the newest event.)
    let closed = (bursts_count as usize - 3) * 2;
    let deadline = Instant::now() + Duration::from_secs(120);
    while std::fs::read_to_string(dir.join("union.jsonl")).map_or(0, |text| text.lines().count()) < closed {
        assert!(
            Instant::now() < deadline,
            "the cluster did not write its sessions within 120 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(4));
    let commits = committed_by_partition(&brokers, &group, &topic);
    assert!(
        commits.values().sum::<i64>() > 0,
        "what went into closed sessions is committed: {commits:?}"
    );
    for (partition, offset) in &commits {
        assert!(
            *offset <= holds[partition],
            "partition {partition} committed {offset}, past the open session's first event at {}: {commits:?}",
            holds[partition]
        );
    }
    second.kill().unwrap();
    assert_eq!(
        wait_with_timeout(&mut first, Duration::from_secs(5)),
        Some(70),
        "process 0 ends when process 1 is killed"
    );
    second.wait().unwrap();

    let bounded = windows_pipeline(&dir, (&brokers, &topic, &group), true, "union", None, SESSIONS);
    let mut first = start(&bounded, &hosts, 0);
    let mut second = start(&bounded, &hosts, 1);
    for child in [&mut first, &mut second] {
        assert_eq!(
            wait_with_timeout(child, Duration::from_secs(120)),
            Some(0),
            "the restart runs to the end"
        );
    }
    compare_rows(
        &expected,
        &keyed_state(&read_jsonl(&dir.join("union.jsonl"))),
        "sessions after kill + restart of the cluster vs an uninterrupted run",
    )
    .unwrap();
    assert_eq!(committed(&brokers, &group, &topic), (total, PARTITIONS as usize));
}
