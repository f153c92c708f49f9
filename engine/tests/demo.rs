//! The README's promises: its two commands, and the demo they start.
//!
//! The demo is run the way a newcomer runs it (the `pulse` binary with
//! `run pipelines/demo.toml`): it must print a live table of window results,
//! and on Ctrl-C (SIGINT) drain and exit 0.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::process::wait_with_timeout;

/// The body of `GET path` on `address`, over plain HTTP/1.1.
fn http_get(address: &str, path: &str) -> String {
    let mut stream = std::net::TcpStream::connect(address).expect("the gateway listens");
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("a response");
    response
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_owned()
}

#[test]
fn readme_gives_the_two_commands_first_and_ci_runs_the_test_command() {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let first_block = readme.split("```").nth(1).expect("README has a code block");
    assert!(
        first_block.contains("cargo run --release -- run pipelines/demo.toml"),
        "{first_block}"
    );
    assert!(first_block.contains("./scripts/test.sh"), "{first_block}");
    let ci = std::fs::read_to_string(repo().join(".ci/run")).unwrap();
    let commands: Vec<&str> = ci
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .collect();
    assert_eq!(commands.len(), 1, ".ci/run runs exactly one command: {commands:?}");
    assert!(commands[0].contains("scripts/test.sh"), "{}", commands[0]);
}

#[test]
fn demo_prints_live_windows_and_exits_0_on_ctrl_c() {
    let out_dir = std::env::temp_dir().join(format!("pulse-demo-test-{}", std::process::id()));
    // A free port, so the test can read /metrics.
    let listen = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string();
    let mut child = Command::new(env!("CARGO_BIN_EXE_pulse"))
        .args(["run", "pipelines/demo.toml"])
        .current_dir(repo())
        .env("PULSE_OUT_DIR", &out_dir)
        .env("PULSE_LISTEN", &listen)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("pulse starts");

    // Read stdout on a thread so the test can time out instead of hanging.
    let (lines_tx, lines) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut table = Vec::new();
    while Instant::now() < deadline && table.iter().filter(|l: &&String| l.contains(" cpu ")).count() < 3 {
        if let Ok(line) = lines.recv_timeout(Duration::from_millis(200)) {
            table.push(line);
        }
    }
    // Every source and sink of the demo reports that it is up (issue 25, point 7).
    let metrics = http_get(&listen, "/metrics");
    for component in ["sensors", "console", "history", "live", "late"] {
        let up = format!("pulse_component_up{{component=\"{component}\"}} 1");
        assert!(metrics.contains(&up), "no {up:?} in /metrics:\n{metrics}");
    }
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = wait_with_timeout(&mut child, Duration::from_secs(30));
    drop(lines);
    reader.join().unwrap();

    let header = table
        .iter()
        .find(|l| l.starts_with("── console ──"))
        .unwrap_or_else(|| panic!("no table: {table:#?}"));
    assert!(header.ends_with("rows"), "{header}");
    let columns = table.iter().find(|l| l.contains("window_start")).expect("a header row");
    for column in ["window_end", "tenant", "metric", "count", "avg", "min", "max", "p95"] {
        assert!(columns.contains(column), "missing column {column}: {columns}");
    }
    for tenant in ["demo", "acme", "globex"] {
        assert!(
            table.iter().any(|l| l.contains(tenant)),
            "no rows for {tenant}: {table:#?}"
        );
    }
    assert_eq!(exit, Some(0), "pulse exits 0 after Ctrl-C");
    let history = std::fs::read_to_string(out_dir.join("windows.jsonl")).unwrap();
    assert!(history.lines().count() >= 3, "the history sink wrote rows");
    std::fs::remove_dir_all(&out_dir).ok();
}
