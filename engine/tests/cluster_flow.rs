//! Flow control in a cluster: a process that runs slower than its peer does
//! not collect the peer's events in its memory.
//!
//! Two `pulse` processes of one worker each on loopback generate events as
//! fast as they can into session windows (which exchange the events
//! themselves) while the test stops and continues process 1 so that it runs
//! 10 % of the time (SIGSTOP 180 ms, SIGCONT 20 ms). Process 0 produces far
//! faster than process 1 takes in what it is sent; with `max_lead` its
//! source waits instead, so process 1's memory stays near where it was, and
//! once the throttling ends the cluster writes the rows of one process.

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::cluster::{Logged, hostfile, run_cluster};
use common::process::free_port;
use common::{TempDir, compare_rows, read_jsonl, sort_rows};

/// Events generated, one per millisecond of event time (`rate = 0`: as fast
/// as the workers can).
const EVENTS: u64 = 1_500_000;

/// How long process 1 is throttled while its memory is watched.
const THROTTLE: Duration = Duration::from_secs(8);

/// The most process 1's resident memory may grow while throttled. Measured
/// (debug build, 2 M events, 10 s throttled): +209 MB without flow control
/// (`max_lead = "0s"`: process 0 sent it ~50 MB of events it could not take
/// in yet), +17 MB with `max_lead = "1s"`, where at most about 1 000 events
/// of event time may be on their way.
const MAX_GROWTH_KB: u64 = 60 * 1024;

const PIPELINE: &str = r#"
[engine]
workers = 1
dead_letter_path = "${OUT}/dead-letter.jsonl"

[engine.cluster]
processes = ${PROCESSES}
max_lead = "1s"

[sources.events]
type = "generator"
rate = 0
events = ${EVENTS}
start = 1700000000000
max_out_of_orderness = "1s"

[operators.sessions]
type = "window"
inputs = ["events"]
window = { session = "1s" }
key = ["tenant", "source", "metric"]
aggregates = ["count", "sum", "max"]

[sinks.rows]
type = "file"
inputs = ["sessions"]
path = "${OUT}/sessions.jsonl"
"#;

/// Resident memory of process `pid`, in kB.
fn rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|line| line.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Sends `signal` (`STOP`, `CONT`) to `pid`.
fn signal(pid: u32, signal: &str) {
    let _ = Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status();
}

/// Runs `pid` 10 % of the time until `done`, and lets it run at the end.
fn throttle(pid: u32, done: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        while !done.load(Ordering::SeqCst) {
            signal(pid, "STOP");
            std::thread::sleep(Duration::from_millis(180));
            signal(pid, "CONT");
            std::thread::sleep(Duration::from_millis(20));
        }
        signal(pid, "CONT");
    })
}

/// Starts process `process` of the flow pipeline.
fn start(pipeline: &Path, hosts: &Path, process: usize, vars: &[(&str, &str)]) -> Logged {
    let mut command = Command::new(common::pulse_bin());
    command
        .arg("run")
        .arg(pipeline)
        .args(["--process", &process.to_string(), "--hostfile"])
        .arg(hosts)
        .envs(vars.iter().copied())
        .env("PROCESSES", "2");
    Logged::spawn(command)
}

#[test]
fn a_slow_process_does_not_collect_its_peers_events_and_the_output_is_that_of_one_process() {
    let dir = TempDir::new("cluster-flow");
    let pipeline = dir.join("flow.toml");
    std::fs::write(&pipeline, PIPELINE).unwrap();
    let events = EVENTS.to_string();

    let one = TempDir::new("cluster-flow-one");
    let vars = [("EVENTS", events.as_str()), ("OUT", &one.display()), ("PROCESSES", "1")];
    run_cluster(&pipeline, &vars, 1, 1);

    let out = TempDir::new("cluster-flow-two");
    let out_dir = out.display();
    let vars = [("EVENTS", events.as_str()), ("OUT", out_dir.as_str())];
    let hosts = hostfile(&dir, &[free_port(), free_port()]);
    let mut first = start(&pipeline, &hosts, 0, &vars);
    let mut second = start(&pipeline, &hosts, 1, &vars);
    second.wait_for("cluster formed", Duration::from_secs(60));
    let pid = second.child.id();
    let before = rss_kb(pid);
    let done = Arc::new(AtomicBool::new(false));
    let throttling = throttle(pid, Arc::clone(&done));
    let started = Instant::now();
    let mut most = before;
    while started.elapsed() < THROTTLE {
        most = most.max(rss_kb(pid));
        std::thread::sleep(Duration::from_millis(100));
    }
    done.store(true, Ordering::SeqCst);
    throttling.join().unwrap();
    let grown = most.saturating_sub(before);
    eprintln!("process 1: {before} kB before, at most {most} kB while throttled (+{grown} kB)");
    assert!(
        grown <= MAX_GROWTH_KB,
        "process 1 grew by {grown} kB while throttled (bound {MAX_GROWTH_KB} kB):\n{}",
        first.log()
    );

    let (code, log) = first.exits_within(Duration::from_secs(300));
    assert_eq!(code, Some(0), "{log}");
    let (code, second_log) = second.exits_within(Duration::from_secs(30));
    assert_eq!(code, Some(0), "{second_log}");
    let waited = log
        .lines()
        .find_map(|line| line.split("held_back_ms=").nth(1))
        .and_then(|rest| rest.split_whitespace().next()?.parse::<u64>().ok());
    assert!(
        waited.is_some_and(|ms| ms > 0),
        "process 0's source waited for process 1: {log}"
    );

    let mut want = read_jsonl(&one.join("sessions.jsonl"));
    let mut got = read_jsonl(&out.join("sessions.jsonl"));
    let counted: u64 = want.iter().map(|row| row["count"].as_u64().unwrap()).sum();
    assert_eq!(counted, EVENTS, "every event in one session: {} sessions", want.len());
    sort_rows(&mut want);
    sort_rows(&mut got);
    compare_rows(&want, &got, "sessions of the throttled 2×1 against 1×1")
        .unwrap_or_else(|difference| panic!("{difference}"));
    assert!(!out.join("dead-letter.jsonl").exists(), "no late events: {log}");
}
