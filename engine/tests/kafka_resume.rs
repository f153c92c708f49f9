//! At-least-once delivery from Kafka: runs killed with SIGKILL mid-stream and
//! restarted with the same consumer group lose no window, and their final
//! keyed state equals a clean run's. Against a real broker on 127.0.0.1 (see
//! `kafka.rs` for how it is found).

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::kafka::{broker, create_topic, generate, produce_file, pulse, unique};
use common::{TempDir, compare_rows, pulse_bin, read_jsonl, sort_rows};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde_json::Value;

const PARTITIONS: i32 = 3;

/// 5 s tumbling windows.
const TUMBLING: &str = r#"{ tumbling = "5s" }"#;

/// A pipeline reading `topic` with `group` (bounded when `until_end`), writing
/// `window`s (TOML, e.g. [`TUMBLING`]), appended, to `{out}.jsonl` in `dir`.
fn pipeline(dir: &TempDir, brokers: &str, topic: &str, group: &str, until_end: bool, out: &str) -> String {
    windows_pipeline(dir, brokers, topic, group, until_end, out, TUMBLING)
}

fn windows_pipeline(
    dir: &TempDir,
    brokers: &str,
    topic: &str,
    group: &str,
    until_end: bool,
    out: &str,
    window: &str,
) -> String {
    let until = if until_end { "until = \"end\"" } else { "" };
    let text = format!(
        r#"
[sources.events]
type = "kafka"
brokers = "{brokers}"
topics = ["{topic}"]
group = "{group}"
max_out_of_orderness = "2s"
commit_interval = "500ms"
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

[sinks.late]
type = "file"
inputs = ["events.late"]
path = "{dir}/{out}.late.jsonl"
append = true
"#,
        dir = dir.display()
    );
    let path = dir.join(&format!("{out}-{}.toml", unique("p")));
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// Generated events, shuffled by up to 2.5 s of event time (with 2 s allowed,
/// some are late), so that resuming must also reproduce lateness.
fn disordered_events(dir: &TempDir, events: u64) -> std::path::PathBuf {
    let ordered = dir.join("ordered.jsonl");
    generate(&ordered, events);
    let mut lines: Vec<(u64, String)> = std::fs::read_to_string(&ordered)
        .unwrap()
        .lines()
        .enumerate()
        .map(|(i, line)| {
            let ts = serde_json::from_str::<Value>(line).unwrap()["ts"].as_u64().unwrap();
            let jitter = (i as u64).wrapping_mul(2_654_435_761) % 2_500;
            (ts + jitter, line.to_owned())
        })
        .collect();
    lines.sort_by_key(|(arrival, _)| *arrival);
    let path = dir.join("events.jsonl");
    let text: String = lines.into_iter().map(|(_, line)| line + "\n").collect();
    std::fs::write(&path, text).unwrap();
    path
}

/// The sum over the topic's partitions of `group`'s committed offsets.
fn committed_total(brokers: &str, group: &str, topic: &str) -> i64 {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .create()
        .unwrap();
    let mut list = TopicPartitionList::new();
    for partition in 0..PARTITIONS {
        list.add_partition_offset(topic, partition, Offset::Stored).unwrap();
    }
    let committed = consumer.committed_offsets(list, Duration::from_secs(10)).unwrap();
    committed
        .elements()
        .iter()
        .map(|e| match e.offset() {
            Offset::Offset(n) => n,
            _ => 0,
        })
        .sum()
}

/// The last row per (window, key) in the order written: the state a keyed
/// store (a compacted topic, a table upserted by key) ends up with.
fn keyed_state(rows: &[Value]) -> Vec<Value> {
    let key = |row: &Value| format!("{}/{}/{}", row["window_start"], row["tenant"], row["metric"]);
    let last: BTreeMap<String, Value> = rows.iter().map(|row| (key(row), row.clone())).collect();
    let mut state: Vec<Value> = last.into_values().collect();
    sort_rows(&mut state);
    state
}

/// Runs `pipeline` (unbounded, reading `topic` with `group`) until its first
/// commit, then kills it with SIGKILL; checks that the kill came mid-stream,
/// with some but not all of the `total` messages committed.
fn kill_after_first_commit(pipeline: &str, brokers: &str, group: &str, topic: &str, total: i64) {
    let mut child = spawn_run(pipeline);
    let deadline = Instant::now() + Duration::from_secs(60);
    while committed_total(brokers, group, topic) == 0 {
        assert!(
            Instant::now() < deadline,
            "the unbounded run committed nothing within 60 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let committed = committed_total(brokers, group, topic);
    assert!(
        committed > 0 && committed < total,
        "the kill came mid-stream: {committed} of {total} messages committed"
    );
}

fn spawn_run(pipeline: &str) -> Child {
    Command::new(pulse_bin())
        .args(["run", pipeline, "--workers", "2"])
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// How many lines `path` has (0 if it does not exist yet).
fn read_jsonl_if_any(path: &Path) -> usize {
    std::fs::read_to_string(path).map_or(0, |text| text.lines().count())
}

fn sorted(path: &Path) -> Vec<Value> {
    let mut rows = read_jsonl(path);
    sort_rows(&mut rows);
    rows
}

/// A run that does not stop by itself commits, while it runs, what its sinks
/// delivered. Killed with SIGKILL after some commits and restarted with the
/// same group, it resumes from them: the restart reads less than everything,
/// emits no window again that was delivered, and the union of both runs'
/// rows, as keyed state, equals a clean run's — late events included.
#[test]
fn a_killed_unbounded_run_resumes_from_its_commits_and_loses_no_window() {
    kill_then_resume_with("2");
}

/// Rescaling: a 2-worker run killed mid-stream and restarted with 3 workers
/// (so its 3 partitions are dealt to workers differently) resumes every
/// partition from its own commit point, with the same result.
#[test]
fn a_killed_run_restarted_with_more_workers_resumes_every_partition() {
    kill_then_resume_with("3");
}

/// Kills an unbounded 2-worker run after its first commit, restarts it with
/// `restart_workers` workers, and checks the union against a clean run.
fn kill_then_resume_with(restart_workers: &str) {
    let Some(brokers) = broker() else { return };
    let dir = TempDir::new("kafka-resume");
    let input = disordered_events(&dir, 200_000);
    let topic = unique("acme") + ".events.normalized";
    create_topic(&brokers, &topic, PARTITIONS as u32);
    produce_file(&brokers, &topic, &input);
    let total = 200_000;

    pulse(&[
        "run",
        &pipeline(&dir, &brokers, &topic, &unique("clean"), true, "clean"),
        "--workers",
        "2",
    ]);
    let expected = sorted(&dir.join("clean.jsonl"));
    let expected_late = sorted(&dir.join("clean.late.jsonl"));
    assert!(expected.len() > 100, "the clean run produced rows");
    assert!(!expected_late.is_empty(), "the disorder makes some events late");

    let group = unique("resumed");
    let unbounded = pipeline(&dir, &brokers, &topic, &group, false, "union");
    kill_after_first_commit(&unbounded, &brokers, &group, &topic, total);
    let written_before_kill = read_jsonl(&dir.join("union.jsonl")).len();

    pulse(&[
        "run",
        &pipeline(&dir, &brokers, &topic, &group, true, "union"),
        "--workers",
        restart_workers,
    ]);
    let union = read_jsonl(&dir.join("union.jsonl"));
    let emitted_by_restart = union.len() - written_before_kill;
    assert!(
        emitted_by_restart < expected.len(),
        "the restart skipped what was delivered ({emitted_by_restart} rows of {})",
        expected.len()
    );
    compare_rows(
        &expected,
        &keyed_state(&union),
        "final keyed state after kill + restart vs a clean run",
    )
    .unwrap();
    let mut late = sorted(&dir.join("union.late.jsonl"));
    late.dedup();
    assert!(
        late == expected_late,
        "the same events are late after resuming (some possibly twice): {} distinct, {} expected",
        late.len(),
        expected_late.len()
    );
}

/// A bounded run killed with SIGKILL mid-stream and restarted with the same
/// group still produces every window, and the keyed result equals a clean run's.
#[test]
fn a_killed_bounded_run_restarted_loses_no_window() {
    let Some(brokers) = broker() else { return };
    let dir = TempDir::new("kafka-kill");
    let input = dir.join("events.jsonl");
    generate(&input, 300_000);
    let topic = unique("acme") + ".events.normalized";
    create_topic(&brokers, &topic, PARTITIONS as u32);
    produce_file(&brokers, &topic, &input);

    pulse(&[
        "run",
        &pipeline(&dir, &brokers, &topic, &unique("clean"), true, "clean"),
        "--workers",
        "2",
    ]);
    let killed = pipeline(&dir, &brokers, &topic, &unique("killed"), true, "union");
    let mut child = spawn_run(&killed);
    let deadline = Instant::now() + Duration::from_secs(60);
    while read_jsonl_if_any(&dir.join("union.jsonl")) == 0 {
        assert!(Instant::now() < deadline, "the run wrote no row within 60 s");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let partial = read_jsonl(&dir.join("union.jsonl")).len();
    pulse(&["run", &killed, "--workers", "2"]);

    let expected = sorted(&dir.join("clean.jsonl"));
    assert!(expected.len() > 100, "the clean run produced rows");
    assert!(
        partial < expected.len(),
        "the kill came mid-stream ({partial} of {} rows written)",
        expected.len()
    );
    compare_rows(
        &expected,
        &keyed_state(&read_jsonl(&dir.join("union.jsonl"))),
        "final keyed state after kill + restart vs a clean run",
    )
    .unwrap();
}

/// Bursts of events, 400 ms long every 2 s of event time, from 20 hosts:
/// with a 1 s gap, every burst is one session per (tenant, metric), closed
/// before the next burst starts.
fn bursts(dir: &TempDir, bursts: u64) -> std::path::PathBuf {
    const START: u64 = 1_700_000_000_000;
    let mut text = String::new();
    for burst in 0..bursts {
        for n in 0..400_u64 {
            let ts = START + burst * 2_000 + n;
            for metric in ["cpu", "mem"] {
                let host = (burst + n) % 20;
                let value = ((burst * 7 + n * 13) % 1_000) as f64 / 10.0;
                text.push_str(&format!(
                    r#"{{"ts":{ts},"tenant":"acme","source":"host-{host:03}","kind":"metric","metric":"{metric}","value":{value}}}"#
                ));
                text.push('\n');
            }
        }
    }
    let path = dir.join("bursts.jsonl");
    std::fs::write(&path, text).unwrap();
    path
}

/// Session windows end when their key falls silent, which no event says in
/// advance: an unbounded run still commits what went into sessions that
/// closed and were delivered, and, killed and restarted, loses no session.
#[test]
fn a_killed_unbounded_run_of_session_windows_commits_and_resumes() {
    const SESSIONS: &str = r#"{ session = "1s" }"#;
    let Some(brokers) = broker() else { return };
    let dir = TempDir::new("kafka-resume-sessions");
    let input = bursts(&dir, 250);
    let total = 250 * 400 * 2;
    let topic = unique("acme") + ".events.normalized";
    create_topic(&brokers, &topic, PARTITIONS as u32);
    produce_file(&brokers, &topic, &input);

    let clean = windows_pipeline(&dir, &brokers, &topic, &unique("clean"), true, "clean", SESSIONS);
    pulse(&["run", &clean, "--workers", "2"]);
    let expected = sorted(&dir.join("clean.jsonl"));
    assert_eq!(expected.len(), 250 * 2, "one session per burst and metric");

    let group = unique("resumed");
    let unbounded = windows_pipeline(&dir, &brokers, &topic, &group, false, "union", SESSIONS);
    kill_after_first_commit(&unbounded, &brokers, &group, &topic, total);

    let restart = windows_pipeline(&dir, &brokers, &topic, &group, true, "union", SESSIONS);
    pulse(&["run", &restart, "--workers", "2"]);
    let union = read_jsonl(&dir.join("union.jsonl"));
    compare_rows(
        &expected,
        &keyed_state(&union),
        "sessions after kill + restart vs a clean run",
    )
    .unwrap();
}
