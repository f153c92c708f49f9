//! A Kafka pipeline as a cluster, against the broker on 127.0.0.1:9092: six
//! partitions dealt over every worker of every process give the rows of one
//! process, in a file written by process 0 and in a Kafka topic written by
//! every process, and commit every partition; a cluster whose process 1 is killed
//! with SIGKILL mid-stream ends at once, and restarted as a whole resumes
//! from the committed offsets with the final keyed rows of an uninterrupted run.

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
window = {{ tumbling = "5s" }}
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
