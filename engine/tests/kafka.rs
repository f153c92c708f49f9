//! Kafka in and out, against a real Apache Kafka broker on 127.0.0.1.
//!
//! The test script (`scripts/test.sh`) installs and starts the broker
//! and sets `PULSE_KAFKA_BROKERS`. Without a broker these tests skip with a loud
//! message, except under `CI=true`, where a missing broker is a failure.
//! Every test uses topics and groups of its own, so they run in parallel.

mod common;

use common::kafka::{broker, create_topic, generate, produce_file, produce_to_partition, pulse, read_topic, unique};
use common::process::{KillOnDrop, terminate, wait_until};
use common::{TempDir, compare_rows, load_pipeline, read_jsonl, run_pipeline, sort_rows};
use rdkafka::Message;

const WINDOWS: &str = r#"
[operators.tumbling_5s]
type = "window"
inputs = ["events"]
window = { tumbling = "5s" }
key = ["tenant", "metric"]
aggregates = ["count", "sum", "min", "max", "avg", "p95"]

[sinks.rows]
type = "file"
inputs = ["tumbling_5s"]
path = "${OUT}/rows.jsonl"

[sinks.dead]
type = "file"
inputs = ["events.dead_letter"]
path = "${OUT}/dead.jsonl"
"#;

fn kafka_pipeline(brokers: &str, topics: &str, group: &str) -> String {
    format!(
        "[sources.events]\ntype = \"kafka\"\nbrokers = \"{brokers}\"\n{topics}\ngroup = \"{group}\"\nuntil = \"end\"\n{WINDOWS}"
    )
}

/// Runs `pipeline` (text) with `workers`, returning its rows (sorted) and dead letters.
fn run(dir: &TempDir, pipeline: &str, workers: usize) -> (Vec<serde_json::Value>, Vec<serde_json::Value>) {
    let path = dir.join(&format!("{}.toml", unique("pipeline")));
    std::fs::write(&path, pipeline).unwrap();
    run_pipeline(&load_pipeline(&path, &[("OUT", &dir.display())]), workers);
    let mut rows = read_jsonl(&dir.join("rows.jsonl"));
    sort_rows(&mut rows);
    (rows, read_jsonl(&dir.join("dead.jsonl")))
}

#[test]
fn kafka_gives_the_windows_a_file_gives() {
    let Some(brokers) = broker() else { return };
    let dir = TempDir::new("kafka-vs-file");
    let input = dir.join("events.jsonl");
    generate(&input, 6_000);
    let topic = unique("acme") + ".events.normalized";
    create_topic(&brokers, &topic, 3);
    produce_file(&brokers, &topic, &input);

    let file_pipeline = format!(
        "[sources.events]\ntype = \"file\"\npath = \"{}\"\n{WINDOWS}",
        input.display()
    );
    let (from_file, _) = run(&dir, &file_pipeline, 1);
    let (from_kafka, dead) = run(
        &dir,
        &kafka_pipeline(&brokers, &format!("topics = [\"{topic}\"]"), &unique("g")),
        2,
    );
    assert!(from_file.len() > 10, "the file run produced rows: {}", from_file.len());
    compare_rows(&from_file, &from_kafka, "Kafka (3 partitions, 2 workers) vs file").unwrap();
    assert!(dead.is_empty(), "no dead letters: {dead:?}");
}

#[test]
fn topic_patterns_pick_up_per_tenant_topics() {
    let Some(brokers) = broker() else { return };
    let dir = TempDir::new("kafka-pattern");
    let run_id = unique("t").replace('-', "_");
    let line = |tenant: &str, ts: u64| {
        format!(r#"{{"ts":{ts},"tenant":"{tenant}","source":"h1","kind":"metric","metric":"cpu","value":1}}"#)
    };
    for (tenant, events) in [("acme", 3u64), ("globex", 5)] {
        let topic = format!("{tenant}_{run_id}.events.normalized");
        create_topic(&brokers, &topic, 2);
        let file = dir.join(&format!("{tenant}.jsonl"));
        std::fs::write(
            &file,
            (0..events)
                .map(|i| line(tenant, 1_000 + i))
                .collect::<Vec<_>>()
                .join("\n"),
        )
        .unwrap();
        produce_file(&brokers, &topic, &file);
    }
    // A topic of the same run that the pattern must not match.
    let other = format!("acme_{run_id}.logs.normalized");
    create_topic(&brokers, &other, 1);
    let file = dir.join("other.jsonl");
    std::fs::write(&file, line("acme", 1_000)).unwrap();
    produce_file(&brokers, &other, &file);

    let pattern = format!("topic_pattern = \"^[a-z]+_{run_id}\\\\.events\\\\.normalized$\"");
    let (rows, _) = run(&dir, &kafka_pipeline(&brokers, &pattern, &unique("g")), 2);
    let counts: Vec<(String, u64)> = rows
        .iter()
        .map(|r| (r["tenant"].as_str().unwrap().to_owned(), r["count"].as_u64().unwrap()))
        .collect();
    assert_eq!(counts, vec![("acme".to_owned(), 3), ("globex".to_owned(), 5)]);
}

#[test]
fn undecodable_messages_become_dead_letters_with_their_offsets() {
    let Some(brokers) = broker() else { return };
    let dir = TempDir::new("kafka-dead-letters");
    let topic = unique("acme") + ".events.normalized";
    create_topic(&brokers, &topic, 1);
    let good = r#"{"ts":1000,"tenant":"acme","source":"h1","kind":"metric","metric":"cpu","value":2}"#;
    let file = dir.join("input.jsonl");
    std::fs::write(&file, [good, "{broken", good, r#"{"ts":5}"#].join("\n")).unwrap();
    produce_file(&brokers, &topic, &file);

    let (rows, dead) = run(
        &dir,
        &kafka_pipeline(&brokers, &format!("topics = [\"{topic}\"]"), &unique("g")),
        1,
    );
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["count"], 2, "the good messages are counted: {rows:?}");
    let positions: Vec<(i64, &str)> = dead
        .iter()
        .map(|d| (d["position"]["offset"].as_i64().unwrap(), d["raw"].as_str().unwrap()))
        .collect();
    assert_eq!(positions, vec![(1, "{broken"), (3, r#"{"ts":5}"#)]);
    for letter in &dead {
        assert_eq!(letter["position"]["type"], "kafka");
        assert_eq!(letter["position"]["topic"], topic.as_str());
        assert!(letter["reason"].as_str().unwrap().len() > 5, "a reason: {letter}");
    }
}

#[test]
fn a_group_resumes_where_its_last_bounded_run_committed() {
    let Some(brokers) = broker() else { return };
    let dir = TempDir::new("kafka-resume");
    let topic = unique("acme") + ".events.normalized";
    create_topic(&brokers, &topic, 2);
    let line =
        |ts: u64| format!(r#"{{"ts":{ts},"tenant":"acme","source":"h{ts}","kind":"metric","metric":"cpu","value":1}}"#);
    let batch = |name: &str, from: u64| {
        let file = dir.join(name);
        std::fs::write(&file, (from..from + 10).map(line).collect::<Vec<_>>().join("\n")).unwrap();
        file
    };
    let group = unique("g");
    let pipeline = kafka_pipeline(&brokers, &format!("topics = [\"{topic}\"]"), &group);
    produce_file(&brokers, &topic, &batch("first.jsonl", 1_000));
    let (first, _) = run(&dir, &pipeline, 2);
    produce_file(&brokers, &topic, &batch("second.jsonl", 20_000));
    let (second, _) = run(&dir, &pipeline, 2);

    let counts = |rows: &[serde_json::Value]| rows.iter().map(|r| r["count"].as_u64().unwrap()).sum::<u64>();
    assert_eq!(counts(&first), 10);
    assert_eq!(
        counts(&second),
        10,
        "the second run reads only what came after the first run's commit"
    );
    assert_eq!(second[0]["window_start"], 20_000);
}

#[test]
fn the_kafka_sink_publishes_keyed_rows() {
    let Some(brokers) = broker() else { return };
    let dir = TempDir::new("kafka-sink");
    let input = dir.join("events.jsonl");
    generate(&input, 3_000);
    let output = unique("streaming-metrics");
    create_topic(&brokers, &output, 1);
    let pipeline = format!(
        "[sources.events]\ntype = \"file\"\npath = \"{}\"\n{WINDOWS}\n[sinks.kafka]\ntype = \"kafka\"\ninputs = [\"tumbling_5s\"]\nbrokers = \"{brokers}\"\ntopic = \"{output}\"\n",
        input.display()
    );
    let (rows, _) = run(&dir, &pipeline, 2);

    let published: Vec<(String, serde_json::Value)> = read_topic(&brokers, &output)
        .iter()
        .map(|message| {
            let key = String::from_utf8(message.key().unwrap().to_vec()).unwrap();
            (key, serde_json::from_slice(message.payload().unwrap()).unwrap())
        })
        .collect();
    assert_eq!(published.len(), rows.len(), "one message per row");
    for (key, value) in &published {
        let expected = format!(
            "{}/{}/{}/{}",
            value["window_start"],
            value["window_end"],
            value["tenant"].as_str().unwrap(),
            value["metric"].as_str().unwrap()
        );
        assert_eq!(key, &expected, "the key names the window and its key");
    }
    let mut values: Vec<serde_json::Value> = published.into_iter().map(|(_, v)| v).collect();
    sort_rows(&mut values);
    compare_rows(&rows, &values, "published rows vs the file sink's rows").unwrap();
}

/// One Kafka sink, two inputs, a topic each: `topics` names one input's
/// topic, `topic` takes the other's.
#[test]
fn a_kafka_sink_writes_each_input_to_its_topic() {
    let Some(brokers) = broker() else { return };
    let dir = TempDir::new("kafka-sink-topics");
    let input = dir.join("events.jsonl");
    generate(&input, 3_000);
    let (per_metric, per_tenant) = (unique("streaming-metrics"), unique("tenant-metrics"));
    create_topic(&brokers, &per_metric, 1);
    create_topic(&brokers, &per_tenant, 1);
    let pipeline = format!(
        "[sources.events]\ntype = \"file\"\npath = \"{}\"\n{WINDOWS}\n\
         [operators.per_tenant]\ntype = \"window\"\ninputs = [\"events\"]\nwindow = {{ tumbling = \"10s\" }}\nkey = [\"tenant\"]\n\
         [sinks.tenants]\ntype = \"file\"\ninputs = [\"per_tenant\"]\npath = \"${{OUT}}/tenants.jsonl\"\n\
         [sinks.kafka]\ntype = \"kafka\"\ninputs = [\"tumbling_5s\", \"per_tenant\"]\nbrokers = \"{brokers}\"\n\
         topic = \"{per_tenant}\"\ntopics = {{ tumbling_5s = \"{per_metric}\" }}\n",
        input.display()
    );
    let (rows, _) = run(&dir, &pipeline, 2);
    let mut tenant_rows = read_jsonl(&dir.join("tenants.jsonl"));
    sort_rows(&mut tenant_rows);
    assert!(!rows.is_empty() && !tenant_rows.is_empty());

    for (topic, expected) in [(&per_metric, &rows), (&per_tenant, &tenant_rows)] {
        // The whole topic is read: a row of the other input in it is an error.
        let mut published: Vec<serde_json::Value> = read_topic(&brokers, topic)
            .iter()
            .map(|message| serde_json::from_slice(message.payload().unwrap()).unwrap())
            .collect();
        sort_rows(&mut published);
        compare_rows(expected, &published, &format!("topic {topic} vs its file sink")).unwrap();
    }
}

#[test]
fn topics_list_shows_created_topics_with_partitions() {
    let Some(brokers) = broker() else { return };
    let topic = unique("listed");
    create_topic(&brokers, &topic, 4);
    let listing = pulse(&["topics", "list", "--brokers", &brokers]);
    assert!(listing.lines().any(|l| l == format!("{topic}\t4")), "{listing}");
}

#[test]
fn unread_dead_letters_go_to_the_tenants_dlq_topic_with_their_origin() {
    let Some(brokers) = broker() else { return };
    let dir = TempDir::new("kafka-dlq");
    let tenant = unique("acme").replace('-', "_");
    let topic = format!("{tenant}.events.normalized");
    create_topic(&brokers, &topic, 1);
    let good = r#"{"ts":1000,"tenant":"acme","source":"h1","kind":"metric","metric":"cpu","value":2}"#;
    let file = dir.join("input.jsonl");
    std::fs::write(&file, [good, "{broken", r#"{"ts":5}"#].join("\n")).unwrap();
    produce_file(&brokers, &topic, &file);
    let pipeline = format!(
        "[sources.events]\ntype = \"kafka\"\nbrokers = \"{brokers}\"\ntopics = [\"{topic}\"]\ngroup = \"{}\"\nuntil = \"end\"\n\n\
         [operators.count]\ntype = \"window\"\ninputs = [\"events\"]\nwindow = {{ tumbling = \"10s\" }}\n\n\
         [sinks.rows]\ntype = \"file\"\ninputs = [\"count\"]\npath = \"${{OUT}}/rows.jsonl\"\n",
        unique("g")
    );
    let path = dir.join("pipeline.toml");
    std::fs::write(&path, pipeline).unwrap();
    run_pipeline(&load_pipeline(&path, &[("OUT", &dir.display())]), 1);

    let letters: Vec<_> = read_topic(&brokers, &format!("{tenant}.dlq"))
        .iter()
        .map(|message| {
            use rdkafka::message::Headers;
            let headers = message.headers().expect("dead letters carry headers");
            let header = |name: &str| {
                headers
                    .iter()
                    .find(|h| h.key == name)
                    .and_then(|h| h.value)
                    .map(|v| String::from_utf8_lossy(v).into_owned())
            };
            let raw = String::from_utf8_lossy(message.payload().unwrap()).into_owned();
            (
                raw,
                header("pulse.topic"),
                header("pulse.offset"),
                header("pulse.reason"),
            )
        })
        .collect();
    assert_eq!(letters.len(), 2, "both bad messages reached {tenant}.dlq: {letters:?}");
    assert_eq!(letters[0].0, "{broken");
    assert_eq!(letters[0].1.as_deref(), Some(topic.as_str()));
    assert_eq!(letters[0].2.as_deref(), Some("1"));
    assert!(
        letters[1].3.as_deref().unwrap().contains("missing field"),
        "{letters:?}"
    );
    assert_eq!(
        read_jsonl(&dir.join("rows.jsonl"))[0]["count"],
        1,
        "the good message is counted"
    );
}

/// Some Kafka-compatible brokers (tansu) report a partition's end offset as the
/// base offset of its last record batch + 1; a bounded read must still get every
/// message of that batch, and does against Apache Kafka too.
#[test]
fn bounded_reads_get_the_whole_last_batch() {
    let Some(brokers) = broker() else { return };
    let dir = TempDir::new("kafka-last-batch");
    let topic = unique("acme") + ".events.normalized";
    create_topic(&brokers, &topic, 1);
    let file = dir.join("input.jsonl");
    let lines: Vec<String> = (0..50)
        .map(|i| {
            format!(
                r#"{{"ts":{},"tenant":"acme","source":"h","kind":"metric","metric":"cpu","value":1}}"#,
                1_000 + i
            )
        })
        .collect();
    std::fs::write(&file, lines.join("\n")).unwrap();
    produce_file(&brokers, &topic, &file); // one producer batch
    let (rows, _) = run(
        &dir,
        &kafka_pipeline(&brokers, &format!("topics = [\"{topic}\"]"), &unique("g")),
        1,
    );
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["count"], 50, "every message of the batch is read");
}

/// With two workers each reads one of two partitions. A partition without data
/// must not hold the other's windows back for ever: after `idle_timeout` its
/// worker follows the one with data, and the windows close.
#[test]
fn an_idle_partition_of_another_worker_does_not_hold_windows_back() {
    let Some(brokers) = broker() else { return };
    let dir = TempDir::new("kafka-idle-worker");
    let input = dir.join("events.jsonl");
    generate(&input, 12_000); // 12 s of event time
    let lines: Vec<String> = std::fs::read_to_string(&input)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    let topic = unique("acme") + ".events.normalized";
    create_topic(&brokers, &topic, 2);
    produce_to_partition(&brokers, &topic, 0, &lines);

    let (from_file, _) = run(
        &dir,
        &format!(
            "[sources.events]\ntype = \"file\"\npath = \"{}\"\n{WINDOWS}",
            input.display()
        ),
        1,
    );
    let out = TempDir::new("kafka-idle-worker-out");
    let pipeline = out.join("pipeline.toml");
    let source = format!(
        "[sources.events]\ntype = \"kafka\"\nbrokers = \"{brokers}\"\ntopics = [\"{topic}\"]\ngroup = \"{}\"\nidle_timeout = \"1s\"\n",
        unique("g")
    );
    std::fs::write(&pipeline, (source + WINDOWS).replace("${OUT}", &out.display())).unwrap();
    let run = spawn_run(&pipeline);
    let rows = out.join("rows.jsonl");
    // The first two 5 s windows close once the watermark passes 10 s.
    wait_until(
        "windows despite the idle partition",
        std::time::Duration::from_secs(60),
        || std::fs::read_to_string(&rows).is_ok_and(|text| text.lines().count() >= 2 * from_file.len() / 3),
    );
    assert_eq!(terminate(run.take()), Some(0));
    let mut from_kafka = read_jsonl(&rows);
    sort_rows(&mut from_kafka);
    let closed: Vec<serde_json::Value> = from_file
        .iter()
        .filter(|row| from_kafka.iter().any(|k| k["window_start"] == row["window_start"]))
        .cloned()
        .collect();
    compare_rows(&closed, &from_kafka, "closed windows with an idle partition vs file").unwrap();
}

/// An unbounded run with a topic pattern reads a tenant's topic created while
/// it runs (and its empty second partition does not hold windows back): the
/// windows closed by the end equal what the events give, nothing late.
#[test]
fn a_running_source_picks_up_a_tenant_topic_created_after_it_started() {
    let Some(brokers) = broker() else { return };
    let dir = TempDir::new("kafka-discovery");
    let run_id = unique("d").replace('-', "_");
    let topic = |tenant: &str| format!("{tenant}_{run_id}.events.normalized");
    let produce = |tenant: &str, times: &[u64]| {
        let lines: Vec<String> = times
            .iter()
            .map(|ts| {
                format!(r#"{{"ts":{ts},"tenant":"{tenant}","source":"h1","kind":"metric","metric":"cpu","value":1}}"#)
            })
            .collect();
        produce_to_partition(&brokers, &topic(tenant), 0, &lines);
    };
    create_topic(&brokers, &topic("acme"), 2);
    produce("acme", &[1_000, 2_000, 3_000, 20_000]);

    let pipeline = dir.join("pipeline.toml");
    let source = format!(
        "[sources.events]\ntype = \"kafka\"\nbrokers = \"{brokers}\"\ntopic_pattern = \"^[a-z]+_{run_id}\\\\.events\\\\.normalized$\"\n\
         group = \"{}\"\nidle_timeout = \"1s\"\ndiscovery_interval = \"300ms\"\n\
         min_timestamp = 0\n",
        unique("g")
    );
    let late_sink = "\n[sinks.late]\ntype = \"file\"\ninputs = [\"events.late\"]\npath = \"${OUT}/late.jsonl\"\n";
    std::fs::write(
        &pipeline,
        (source + WINDOWS + late_sink).replace("${OUT}", &dir.display()),
    )
    .unwrap();
    let run = spawn_run(&pipeline);
    let rows_path = dir.join("rows.jsonl");
    let rows_with = |tenant: &str| {
        std::fs::read_to_string(&rows_path)
            .unwrap_or_default()
            .lines()
            .filter(|line| line.contains(&format!("\"tenant\":\"{tenant}\"")))
            .count()
    };
    wait_until("acme's first window", std::time::Duration::from_secs(60), || {
        rows_with("acme") >= 1
    });

    create_topic(&brokers, &topic("globex"), 2);
    produce("globex", &[30_000, 31_000, 32_000, 33_000, 34_000, 50_000]);
    wait_until("globex's window", std::time::Duration::from_secs(60), || {
        rows_with("globex") >= 1
    });
    assert_eq!(terminate(run.take()), Some(0));

    let windows: Vec<(String, u64, u64)> = read_jsonl(&rows_path)
        .iter()
        .map(|row| {
            (
                row["tenant"].as_str().unwrap().to_owned(),
                row["window_start"].as_u64().unwrap(),
                row["count"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        windows,
        vec![
            ("acme".to_owned(), 0, 3),
            ("acme".to_owned(), 20_000, 1),
            ("globex".to_owned(), 30_000, 5)
        ],
        "every window up to globex's last event, once; none after"
    );
    assert!(
        read_jsonl_if_exists(&dir.join("late.jsonl")).is_empty(),
        "no event is late"
    );
}

/// Starts `pulse run PIPELINE --workers 2`, killed if the test fails.
fn spawn_run(pipeline: &std::path::Path) -> KillOnDrop {
    KillOnDrop::new(
        std::process::Command::new(common::pulse_bin())
            .args(["run", &pipeline.display().to_string(), "--workers", "2"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    )
}

fn read_jsonl_if_exists(path: &std::path::Path) -> Vec<serde_json::Value> {
    if path.exists() { read_jsonl(path) } else { Vec::new() }
}

/// Deleting a topic an unbounded run reads (with Apache Kafka as the broker)
/// does not bring the run down: it goes on, and drains and exits 0 on SIGTERM.
/// (With tansu as the broker librdkafka crashed here: see the README.)
#[test]
fn deleting_a_topic_the_run_reads_leaves_the_run_up() {
    use rdkafka::admin::{AdminClient, AdminOptions};
    use rdkafka::client::DefaultClientContext;

    let Some(brokers) = broker() else { return };
    let dir = TempDir::new("kafka-delete-topic");
    let topic = unique("acme") + ".events.normalized";
    create_topic(&brokers, &topic, 1);
    let lines: Vec<String> = [1_000, 2_000, 20_000]
        .iter()
        .map(|ts| format!(r#"{{"ts":{ts},"tenant":"acme","source":"h1","kind":"metric","metric":"cpu","value":1}}"#))
        .collect();
    produce_to_partition(&brokers, &topic, 0, &lines);
    let pipeline = dir.join("pipeline.toml");
    let source = format!(
        "[sources.events]\ntype = \"kafka\"\nbrokers = \"{brokers}\"\ntopics = [\"{topic}\"]\ngroup = \"{}\"\nmin_timestamp = 0\n",
        unique("g")
    );
    std::fs::write(&pipeline, (source + WINDOWS).replace("${OUT}", &dir.display())).unwrap();
    let mut run = spawn_run(&pipeline);
    wait_until("the first window", std::time::Duration::from_secs(60), || {
        !read_jsonl_if_exists(&dir.join("rows.jsonl")).is_empty()
    });

    let admin: AdminClient<DefaultClientContext> = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .create()
        .unwrap();
    let deleted = futures_executor::block_on(admin.delete_topics(&[&topic], &AdminOptions::new())).unwrap();
    assert!(deleted.iter().all(Result::is_ok), "{deleted:?}");
    std::thread::sleep(std::time::Duration::from_secs(5));
    assert!(
        run.try_wait().unwrap().is_none(),
        "the run is still up after its topic was deleted"
    );
    assert_eq!(terminate(run.take()), Some(0), "and drains and exits 0 on SIGTERM");
}
