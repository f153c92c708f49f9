//! One pipeline over several processes on loopback: the same output as one
//! process for every shape (processes × workers), and failures that end the
//! run promptly and name their cause: a peer that never starts, another plan
//! or worker count, a stray connection during start-up, a port in use, a
//! crashed peer (kill -9) and a frozen one (SIGSTOP).
//!
//! Every process is a `pulse` child process (`pulse cluster` or
//! `pulse run --processes`), on 127.0.0.1 ports free at the time.

mod common;

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::cluster::{Logged, free_ports, hostfile, run_cluster, start_process};
use common::process::free_port;
use common::{TempDir, compare_rows, read_jsonl, sort_rows};
use serde_json::Value;

/// Events in the window workload: 20 s of event time at 1000 events/s.
const EVENTS: u64 = 20_000;

/// Tumbling and hopping windows with quantiles, and session windows (whose
/// events themselves cross processes); dead letters to a file.
const WINDOW_PIPELINE: &str = r#"
[engine]
dead_letter_path = "${OUT}/dead-letter.jsonl"

[sources.events]
type = "file"
path = "${INPUT}"
max_out_of_orderness = "1s"

[operators.tumbling_5s]
type = "window"
inputs = ["events"]
window = { tumbling = "5s" }
key = ["tenant", "metric"]
aggregates = ["count", "sum", "min", "max", "avg", "stddev", "p50", "p95", "p99"]

[operators.hopping_4s]
type = "window"
inputs = ["events"]
window = { hopping = "4s", slide = "1s" }
key = ["tenant", "labels.region", "metric"]
aggregates = ["count", "avg", "p95"]

[operators.sessions_50ms]
type = "window"
inputs = ["events"]
window = { session = "50ms" }
key = ["tenant", "source"]
aggregates = ["count", "sum", "max"]

[sinks.tumbling]
type = "file"
inputs = ["tumbling_5s"]
path = "${OUT}/tumbling.jsonl"

[sinks.hopping]
type = "file"
inputs = ["hopping_4s"]
path = "${OUT}/hopping.jsonl"

[sinks.sessions]
type = "file"
inputs = ["sessions_50ms"]
path = "${OUT}/sessions.jsonl"
"#;

/// An endless generator into a window, for the failure tests: the cluster
/// runs until something ends it. `${CLUSTER}` is replaced (by the test, not
/// interpolated) with more `[engine.cluster]` keys.
const ENDLESS_PIPELINE: &str = r#"
[engine]
workers = 1
[engine.cluster]
processes = 2
${CLUSTER}

[sources.sensors]
type = "generator"
rate = 2000

[operators.per_second]
type = "window"
inputs = ["sensors"]
window = { tumbling = "1s" }
key = ["tenant", "metric"]
aggregates = ["count"]

[sinks.out]
type = "file"
inputs = ["per_second"]
path = "${OUT}/out.jsonl"
"#;

/// `pulse generate` input for the window workload.
fn generate(path: &Path) {
    let output = Command::new(common::pulse_bin())
        .args(["generate", "--events", &EVENTS.to_string(), "--rate", "1000"])
        .args(["--start", "1700000000000", "--out", &path.display().to_string()])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
}

/// The rows of each file in `names` under `dir`, sorted.
fn sorted_outputs(dir: &Path, names: &[&str]) -> Vec<(String, Vec<Value>)> {
    names
        .iter()
        .map(|name| {
            let path = dir.join(name);
            assert!(path.is_file(), "{} was not written", path.display());
            let mut rows = read_jsonl(&path);
            sort_rows(&mut rows);
            (name.to_string(), rows)
        })
        .collect()
}

#[test]
fn every_shape_of_cluster_writes_the_rows_of_one_process() {
    let dir = TempDir::new("cluster-shapes");
    let input = dir.join("events.jsonl");
    generate(&input);
    let pipeline = dir.join("windows.toml");
    std::fs::write(&pipeline, WINDOW_PIPELINE).unwrap();
    let input = input.display().to_string();
    let files = ["tumbling.jsonl", "hopping.jsonl", "sessions.jsonl"];
    let mut expected = None;
    for (processes, workers) in [(1, 1), (1, 2), (2, 1), (2, 2), (3, 1)] {
        let out = TempDir::new(&format!("cluster-{processes}x{workers}"));
        let vars = [("INPUT", input.as_str()), ("OUT", &out.display())];
        run_cluster(&pipeline, &vars, processes, workers);
        assert!(
            !out.join("dead-letter.jsonl").exists(),
            "no dead letters in a clean input"
        );
        let rows = sorted_outputs(out.path(), &files);
        let Some(expected) = &expected else {
            assert!(
                rows.iter().all(|(_, rows)| rows.len() > 50),
                "a real workload: {rows:?}"
            );
            expected = Some(rows);
            continue;
        };
        for ((name, want), (_, got)) in expected.iter().zip(&rows) {
            compare_rows(want, got, &format!("{name} of {processes}×{workers} against 1×1"))
                .unwrap_or_else(|difference| panic!("{difference}"));
        }
    }
}

/// The golden cases (window, anomaly, forecast, dead letters, late data,
/// label keys) as 2 processes of one worker: the files of one process.
#[test]
fn the_golden_pipelines_write_their_expected_files_as_a_cluster() {
    let golden = common::package_dir().join("tests/golden");
    for case in [
        "tumbling_basic",
        "dead_letter",
        "late_data",
        "key_by_label_and_null",
        "unread_dead_letters",
        "anomaly_and_forecast",
        "hopping_and_session",
    ] {
        let case_dir = golden.join(case);
        let out = TempDir::new(&format!("cluster-golden-{case}"));
        let case_path = case_dir.display().to_string();
        let vars = [("CASE", case_path.as_str()), ("OUT", &out.display())];
        run_cluster(&case_dir.join("pipeline.toml"), &vars, 2, 1);
        let expected_dir = case_dir.join("expected");
        for entry in std::fs::read_dir(&expected_dir).unwrap() {
            let name = entry.unwrap().file_name().to_string_lossy().into_owned();
            let text = std::fs::read_to_string(out.join(&name))
                .unwrap_or_else(|e| panic!("{case}: {name} was not written: {e}"))
                .replace(&out.display(), "${OUT}")
                .replace(&case_path, "${CASE}");
            let mut got = common::parse_jsonl(&text, &name);
            let mut want = read_jsonl(&expected_dir.join(&name));
            sort_rows(&mut got);
            sort_rows(&mut want);
            compare_rows(&want, &got, &format!("{case}/{name} from 2 processes"))
                .unwrap_or_else(|difference| panic!("{difference}"));
        }
    }
}

/// Writes the endless pipeline with `cluster` (lines of `[engine.cluster]`) as `name`.
fn endless(dir: &TempDir, name: &str, cluster: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, ENDLESS_PIPELINE.replace("${CLUSTER}", cluster)).unwrap();
    path
}

/// Waits until the endless pipeline has written a few windows.
fn wait_for_windows(dir: &TempDir) {
    common::process::wait_until("windows written", Duration::from_secs(30), || {
        std::fs::read_to_string(dir.join("out.jsonl")).is_ok_and(|text| text.lines().count() >= 3)
    });
}

#[test]
fn a_peer_that_never_starts_fails_the_start_naming_it() {
    let dir = TempDir::new("cluster-absent");
    let ports = [free_port(), free_port()];
    let hosts = hostfile(&dir, &ports);
    let pipeline = endless(&dir, "absent.toml", "connect_timeout = \"2s\"");
    let started = Instant::now();
    let mut alone = start_process(&pipeline, &hosts, 0, &dir, &[]);
    let (code, log) = alone.exits_within(Duration::from_secs(10));
    assert_eq!(code, Some(1), "{log}");
    assert!(started.elapsed() >= Duration::from_secs(2), "not before the timeout");
    let named = format!("process 1 (127.0.0.1:{}) never connected", ports[1]);
    assert!(log.contains("no cluster after 2s") && log.contains(&named), "{log}");
    assert!(
        !dir.join("out.jsonl").exists(),
        "nothing opened before the cluster formed"
    );
}

#[test]
fn another_plan_or_worker_count_is_refused_naming_both() {
    let dir = TempDir::new("cluster-mismatch");
    let pipeline = endless(&dir, "one.toml", "");
    let other = dir.join("other.toml");
    std::fs::write(
        &other,
        std::fs::read_to_string(&pipeline).unwrap().replace("\"1s\"", "\"2s\""),
    )
    .unwrap();
    for (second, workers, expected) in [
        (&other, "1", "runs another plan: its plan hash is"),
        (&pipeline, "2", "`workers` must be the same in every process"),
    ] {
        let hosts = hostfile(&dir, &[free_port(), free_port()]);
        let mut first = start_process(&pipeline, &hosts, 0, &dir, &[]);
        let mut second = start_process(second, &hosts, 1, &dir, &["--workers", workers]);
        for child in [&mut first, &mut second] {
            let (code, log) = child.exits_within(Duration::from_secs(10));
            assert_eq!(code, Some(1), "{log}");
            assert!(log.contains(expected), "{log}");
        }
    }
    assert!(!dir.join("out.jsonl").exists(), "nothing opened");
}

#[test]
fn a_stray_connection_during_start_up_is_turned_away() {
    let dir = TempDir::new("cluster-stray");
    let pipeline = endless(&dir, "stray.toml", "");
    let ports = [free_port(), free_port()];
    let hosts = hostfile(&dir, &ports);
    let first = start_process(&pipeline, &hosts, 0, &dir, &[]);
    // A health check and a port scan before the peer comes.
    let address = ("127.0.0.1", ports[0]);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut http = loop {
        match TcpStream::connect(address) {
            Ok(stream) => break stream,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            Err(error) => panic!("process 0 never listened: {error}"),
        }
    };
    http.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    drop(TcpStream::connect(address).unwrap());
    first.wait_for("turned away a connection", Duration::from_secs(10));
    let mut second = start_process(&pipeline, &hosts, 1, &dir, &[]);
    first.wait_for("cluster formed", Duration::from_secs(20));
    wait_for_windows(&dir);
    assert_eq!(
        second.child.try_wait().unwrap(),
        None,
        "process 1 still runs:\n{}",
        second.log()
    );
}

#[test]
fn a_port_in_use_is_reported_at_once() {
    let dir = TempDir::new("cluster-port");
    let holder = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = holder.local_addr().unwrap().port();
    let hosts = hostfile(&dir, &[port, free_port()]);
    let pipeline = endless(&dir, "port.toml", "");
    let mut first = start_process(&pipeline, &hosts, 0, &dir, &[]);
    let (code, log) = first.exits_within(Duration::from_secs(5));
    assert_eq!(code, Some(1), "{log}");
    let expected = format!("process 0 cannot listen on 127.0.0.1:{port}");
    assert!(log.contains(&expected) && log.contains("holds that port"), "{log}");
}

#[test]
fn a_crashed_peer_ends_the_other_within_a_second_with_one_line() {
    let dir = TempDir::new("cluster-crash");
    let pipeline = endless(&dir, "crash.toml", "");
    let ports = [free_port(), free_port()];
    let hosts = hostfile(&dir, &ports);
    let mut first = start_process(&pipeline, &hosts, 0, &dir, &[]);
    let mut second = start_process(&pipeline, &hosts, 1, &dir, &[]);
    wait_for_windows(&dir);
    second.child.kill().unwrap();
    let killed = Instant::now();
    let (code, log) = first.exits_within(Duration::from_secs(5));
    let took = killed.elapsed();
    assert_eq!(code, Some(70), "{log}");
    assert!(
        took < Duration::from_millis(1500),
        "process 0 took {took:?} to end:\n{log}"
    );
    let named = format!("process 1 (127.0.0.1:{}) is gone", ports[1]);
    assert!(log.contains(&named), "{log}");
    assert_eq!(
        log.matches("ending this process").count(),
        1,
        "one line says why:\n{log}"
    );
    assert!(!log.contains("panicked"), "no panic storm:\n{log}");
}

#[test]
fn a_frozen_peer_ends_the_cluster_after_the_stall_timeout() {
    let dir = TempDir::new("cluster-frozen");
    let pipeline = endless(&dir, "frozen.toml", "stall_timeout = \"2s\"");
    let ports = [free_port(), free_port()];
    let hosts = hostfile(&dir, &ports);
    let mut first = start_process(&pipeline, &hosts, 0, &dir, &[]);
    let second = start_process(&pipeline, &hosts, 1, &dir, &[]);
    wait_for_windows(&dir);
    let stopped = Command::new("kill")
        .args(["-STOP", &second.child.id().to_string()])
        .status()
        .unwrap();
    assert!(stopped.success());
    let frozen = Instant::now();
    let (code, log) = first.exits_within(Duration::from_secs(8));
    let took = frozen.elapsed();
    assert_eq!(code, Some(75), "{log}");
    assert!(
        took >= Duration::from_millis(1500),
        "not before the stall timeout: {took:?}"
    );
    let named = format!("process 1 (127.0.0.1:{}) has sent nothing for 2s", ports[1]);
    assert!(log.contains(&named), "{log}");
    assert_eq!(
        log.matches("ending this process").count(),
        1,
        "one line says why:\n{log}"
    );
    // Dropping `second` kills it: SIGKILL ends a stopped process too.
}

#[test]
fn a_stop_signal_to_one_process_drains_the_whole_cluster() {
    let dir = TempDir::new("cluster-stop");
    let pipeline = endless(&dir, "stop.toml", "");
    let hosts = hostfile(&dir, &[free_port(), free_port()]);
    let mut first = start_process(&pipeline, &hosts, 0, &dir, &[]);
    let mut second = start_process(&pipeline, &hosts, 1, &dir, &[]);
    wait_for_windows(&dir);
    let sent = Command::new("kill")
        .args(["-TERM", &second.child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    for child in [&mut second, &mut first] {
        let (code, log) = child.exits_within(Duration::from_secs(20));
        assert_eq!(code, Some(0), "{log}");
        assert!(log.contains("interrupted=true"), "{log}");
    }
    first.wait_for("draining the whole cluster", Duration::ZERO);
}

#[test]
fn every_process_serves_its_metrics() {
    let dir = TempDir::new("cluster-metrics");
    let port = free_ports(2);
    let gateway = format!(
        "\n[gateway]\nlisten = \"127.0.0.1:{port}\"\ndata_dir = \"{}/gateway\"\n",
        dir.display()
    );
    let pipeline = dir.join("metrics.toml");
    std::fs::write(&pipeline, ENDLESS_PIPELINE.replace("${CLUSTER}", "") + &gateway).unwrap();
    let hosts = hostfile(&dir, &[free_port(), free_port()]);
    let secret = ["PULSE_JWT_SECRET", "cluster-test-secret-of-enough-length"];
    let start = |process: usize| {
        let mut command = Command::new(common::pulse_bin());
        command
            .arg("run")
            .arg(&pipeline)
            .args(["--process", &process.to_string(), "--hostfile"])
            .arg(&hosts)
            .env("OUT", dir.display())
            .env(secret[0], secret[1]);
        Logged::spawn(command)
    };
    let (first, second) = (start(0), start(1));
    wait_for_windows(&dir);
    for (process, port) in [(0, port), (1, port + 1)] {
        let address = ([127, 0, 0, 1], port).into();
        let mut scrape = String::new();
        common::process::wait_until("bytes counted", Duration::from_secs(10), || {
            let answer = common::process::request(address, "GET", "/metrics", &[], "");
            scrape = answer.body.as_str().unwrap_or_default().to_owned();
            answer.status == 200 && scrape.contains("pulse_cluster_sent_bytes_total{peer=")
        });
        assert!(
            scrape.contains("pulse_component_sent_events_total{component=\"sensors\"}"),
            "process {process} counts its own source's events:\n{scrape}"
        );
    }
    drop((first, second));
}

#[test]
fn process_0_reports_the_health_of_every_process() {
    let dir = TempDir::new("cluster-health");
    let port = free_ports(2);
    // A Redis sink at a port nothing listens on: unhealthy in each process
    // that has rows to write, and each process has some (keys are spread).
    let extra = format!(
        "\n[sinks.cache]\ntype = \"redis\"\ninputs = [\"per_second\"]\nurl = \"redis://127.0.0.1:{}\"\n\
         \n[gateway]\nlisten = \"127.0.0.1:{port}\"\ndata_dir = \"{}/gateway\"\n",
        free_port(),
        dir.display()
    );
    let pipeline = dir.join("health.toml");
    std::fs::write(&pipeline, ENDLESS_PIPELINE.replace("${CLUSTER}", "") + &extra).unwrap();
    let hosts = hostfile(&dir, &[free_port(), free_port()]);
    let start = |process: usize| {
        let mut command = Command::new(common::pulse_bin());
        command
            .arg("run")
            .arg(&pipeline)
            .args(["--process", &process.to_string(), "--hostfile"])
            .arg(&hosts)
            .env("OUT", dir.display())
            .env("PULSE_JWT_SECRET", "cluster-test-secret-of-enough-length");
        Logged::spawn(command)
    };
    let (first, second) = (start(0), start(1));
    let address = ([127, 0, 0, 1], port).into();
    let mut ready = Value::Null;
    common::process::wait_until("process 1's sink on process 0's board", Duration::from_secs(30), || {
        let answer = common::process::request(address, "GET", "/health/ready", &[], "");
        ready = answer.body.clone();
        let components = ready["components"].as_array().cloned().unwrap_or_default();
        answer.status == 503
            && components
                .iter()
                .any(|c| c["name"] == "process1/cache" && c["healthy"] == false && c["problem"].is_string())
    });
    let names: Vec<&str> = ready["components"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    for name in ["sensors", "cache", "process1/sensors", "process1/cache"] {
        assert!(names.contains(&name), "{name} listed: {ready}");
    }
    assert_eq!(ready["status"], "not_ready", "{ready}");
    drop((first, second));
}
