//! `pulse cluster`: a whole cluster on this machine, for trying one out and for tests.
//!
//! Starts `processes` copies of `pulse run FILE` on 127.0.0.1 (ports
//! `base_port`, `base_port + 1`, …, written to a hostfile), each in a process
//! group of its own so that a Ctrl-C reaches them once, through this
//! launcher, which forwards SIGINT and SIGTERM. Their log lines (stderr) are
//! prefixed with `[pI]`; their standard output (only process 0 writes a
//! `stdout` sink) passes through untouched. Exits with the first non-zero
//! status of any process (0 when all succeed); once one has failed, the
//! others get a grace period to notice and are then stopped.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// What `pulse cluster` starts.
#[derive(Clone, Debug)]
pub struct Launch {
    /// The `pulse` binary to run.
    pub program: PathBuf,
    /// The pipeline file.
    pub file: PathBuf,
    /// How many processes.
    pub processes: usize,
    /// Worker threads per process (default: the pipeline's `workers`).
    pub workers: Option<usize>,
    /// The port of process 0; process `i` listens on `base_port + i`.
    pub base_port: u16,
}

/// How long the other processes get to end by themselves after one failed.
const GRACE: Duration = Duration::from_secs(5);

/// Runs the cluster until every process has ended; returns the exit status
/// to report (the first non-zero one).
pub fn run(launch: &Launch) -> std::io::Result<i32> {
    if launch.processes == 0 {
        return Err(std::io::Error::other("--processes must be at least 1"));
    }
    let last_port = usize::from(launch.base_port) + launch.processes - 1;
    if launch.base_port == 0 || last_port > usize::from(u16::MAX) {
        return Err(std::io::Error::other(format!(
            "--base-port {} leaves no room for {} ports",
            launch.base_port, launch.processes
        )));
    }
    let dir = std::env::temp_dir().join(format!("pulse-cluster-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let hostfile = dir.join("hosts");
    let hosts: String = (0..launch.processes)
        .map(|i| format!("127.0.0.1:{}\n", usize::from(launch.base_port) + i))
        .collect();
    std::fs::write(&hostfile, hosts)?;
    let result = supervise(launch, &hostfile);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn supervise(launch: &Launch, hostfile: &Path) -> std::io::Result<i32> {
    let interrupt = Arc::new(AtomicBool::new(false));
    let terminate = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGINT, Arc::clone(&interrupt))?;
    signal_hook::flag::register(signal_hook::consts::SIGTERM, Arc::clone(&terminate))?;
    let mut children: Vec<(usize, Child)> = Vec::new();
    for process in 0..launch.processes {
        match start(launch, hostfile, process) {
            Ok(child) => children.push((process, child)),
            Err(error) => {
                for (_, child) in &mut children {
                    let _ = child.kill();
                    let _ = child.wait();
                }
                return Err(error);
            }
        }
    }
    tracing::info!(processes = launch.processes, hostfile = %hostfile.display(), "cluster started");
    let mut first_failure: Option<(usize, i32)> = None;
    let mut failed_at: Option<Instant> = None;
    let mut stopped_at: Option<Instant> = None;
    while !children.is_empty() {
        for (flag, signal) in [(&interrupt, "INT"), (&terminate, "TERM")] {
            if flag.swap(false, Ordering::SeqCst) {
                tracing::info!(signal, "forwarding to every process");
                for (_, child) in &children {
                    signal_child(child, signal);
                }
            }
        }
        let mut index = 0;
        while index < children.len() {
            let (process, child) = &mut children[index];
            match child.try_wait()? {
                Some(status) => {
                    let code = exit_code(status);
                    if code != 0 && first_failure.is_none() {
                        tracing::error!(process = *process, code, "process failed");
                        first_failure = Some((*process, code));
                        failed_at = Some(Instant::now());
                    }
                    children.swap_remove(index);
                }
                None => index += 1,
            }
        }
        // A failed process ends the others by itself (they lose their peer); if
        // they have not after the grace period, they are stopped, then killed.
        if let Some(at) = failed_at {
            if at.elapsed() > GRACE && stopped_at.is_none() {
                for (process, child) in &children {
                    tracing::warn!(process, "still running after a peer failed; stopping it");
                    signal_child(child, "TERM");
                }
                stopped_at = Some(Instant::now());
            }
            if stopped_at.is_some_and(|at| at.elapsed() > GRACE) {
                for (_, child) in &mut children {
                    let _ = child.kill();
                }
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(first_failure.map_or(0, |(_, code)| code))
}

/// Starts process `process` with its log lines prefixed.
fn start(launch: &Launch, hostfile: &Path, process: usize) -> std::io::Result<Child> {
    let mut command = Command::new(&launch.program);
    command
        .arg("run")
        .arg(&launch.file)
        .args(["--processes", &launch.processes.to_string()])
        .args(["--process", &process.to_string()])
        .arg("--hostfile")
        .arg(hostfile)
        .stdin(Stdio::null())
        .stdout(Stdio::inherit())
        .stderr(Stdio::piped())
        // Its own process group: a terminal's Ctrl-C reaches it once, forwarded.
        .process_group(0);
    if let Some(workers) = launch.workers {
        command.args(["--workers", &workers.to_string()]);
    }
    let mut child = command.spawn()?;
    let stderr = child.stderr.take().expect("stderr is piped");
    std::thread::Builder::new()
        .name(format!("pulse-log-{process}"))
        .spawn(move || {
            let prefix = format!("[p{process}] ");
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let mut out = std::io::stderr().lock();
                let _ = writeln!(out, "{prefix}{line}");
            }
        })?;
    Ok(child)
}

/// Sends `signal` (`INT`, `TERM`) to a child. `kill(1)` rather than a libc
/// call: the workspace forbids `unsafe`, and std has no way to send a signal
/// other than SIGKILL.
fn signal_child(child: &Child, signal: &str) {
    let sent = Command::new("kill")
        .args(["-s", signal, &child.id().to_string()])
        .stderr(Stdio::null())
        .status();
    if let Err(error) = sent {
        tracing::warn!(%error, pid = child.id(), "cannot signal a process");
    }
}

/// The status a shell would report: the exit code, or 128 + the signal.
fn exit_code(status: ExitStatus) -> i32 {
    status
        .code()
        .or_else(|| status.signal().map(|signal| 128 + signal))
        .unwrap_or(1)
}
