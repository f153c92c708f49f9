//! Clusters of `pulse` child processes on loopback for the tests: free
//! ports, hostfiles, a whole run with `pulse cluster`, and one process of a
//! cluster whose log is collected as it comes.

use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::TempDir;
use super::process::{KillOnDrop, free_port, wait_with_timeout};

/// `count` consecutive ports that are free right now.
pub fn free_ports(count: usize) -> u16 {
    loop {
        let base = free_port();
        if usize::from(base) + count > usize::from(u16::MAX) {
            continue;
        }
        let free = (0..count as u16).all(|i| TcpListener::bind(("127.0.0.1", base + i)).is_ok());
        if free {
            return base;
        }
    }
}

/// Writes a hostfile of `ports` on 127.0.0.1.
pub fn hostfile(dir: &TempDir, ports: &[u16]) -> PathBuf {
    let path = dir.join("hosts");
    let lines: String = ports.iter().map(|port| format!("127.0.0.1:{port}\n")).collect();
    std::fs::write(&path, lines).unwrap();
    path
}

/// Runs `pipeline` with `pulse cluster` (or `pulse run` for one process) and
/// `vars` in its environment; fails the test unless it succeeds within a minute.
pub fn run_cluster(pipeline: &Path, vars: &[(&str, &str)], processes: usize, workers: usize) -> Output {
    let mut command = Command::new(super::pulse_bin());
    match processes {
        1 => command.arg("run").arg(pipeline),
        _ => command
            .arg("cluster")
            .arg(pipeline)
            .args(["--processes", &processes.to_string()])
            .args(["--base-port", &free_ports(processes).to_string()]),
    };
    command
        .args(["--workers", &workers.to_string()])
        .envs(vars.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let started = Instant::now();
    let output = command.output().unwrap();
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{processes}×{workers} failed ({:?}):\n{log}",
        output.status
    );
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "{processes}×{workers} took {:?}",
        started.elapsed()
    );
    output
}

/// A `pulse` child process whose log (stderr) is collected as it comes.
pub struct Logged {
    /// The process.
    pub child: KillOnDrop,
    log: Arc<Mutex<Vec<u8>>>,
}

impl Logged {
    pub fn spawn(mut command: Command) -> Logged {
        let mut child = command.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
        let mut stderr = child.stderr.take().unwrap();
        let log: Arc<Mutex<Vec<u8>>> = Arc::default();
        let tail = Arc::clone(&log);
        std::thread::spawn(move || {
            let mut chunk = [0u8; 4096];
            while let Ok(n) = stderr.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                tail.lock().unwrap().extend_from_slice(&chunk[..n]);
            }
        });
        Logged {
            child: KillOnDrop::new(child),
            log,
        }
    }

    /// What it has logged so far.
    pub fn log(&self) -> String {
        String::from_utf8_lossy(&self.log.lock().unwrap()).into_owned()
    }

    /// Waits until it has logged `line`.
    pub fn wait_for(&self, line: &str, within: Duration) {
        let deadline = Instant::now() + within;
        while !self.log().contains(line) {
            assert!(
                Instant::now() < deadline,
                "no `{line}` within {within:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits for it to exit within `within`; its code and its whole log.
    pub fn exits_within(&mut self, within: Duration) -> (Option<i32>, String) {
        let code = wait_with_timeout(&mut self.child, within);
        // The log reader ends with the process; give it a moment for the last lines.
        std::thread::sleep(Duration::from_millis(100));
        let log = self.log();
        assert!(code.is_some(), "still running after {within:?}:\n{log}");
        (code, log)
    }
}

/// Starts `pulse run` as process `process` of `pipeline` with the hostfile `hosts`.
pub fn start_process(pipeline: &Path, hosts: &Path, process: usize, out: &TempDir, extra: &[&str]) -> Logged {
    let mut command = Command::new(super::pulse_bin());
    command
        .arg("run")
        .arg(pipeline)
        .args(["--process", &process.to_string(), "--hostfile"])
        .arg(hosts)
        .args(extra)
        .env("OUT", out.display());
    Logged::spawn(command)
}
