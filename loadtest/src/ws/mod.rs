//! `pulse-loadtest ws`: many WebSocket subscribers of `/ws` at once, measuring
//! how long closed windows take from the hub to each client.
//!
//! A run connects every client (at most `--connect-concurrency` handshakes in
//! flight), waits `--warmup` seconds, then counts for `--duration` seconds:
//! each `window` message's latency is the receipt time minus its
//! `published_at_us` (the hub's stamp; client and server share the machine's
//! clock), recorded into an HdrHistogram series. With `--out DIR` the run
//! also writes the common `report.json` and SVG charts.

pub mod message;
pub mod report;

mod client;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::{Map, Value};
use tokio::sync::{Semaphore, watch};
use tokio_tungstenite::tungstenite::http::HeaderValue;

use crate::process::{self, NofileLimit, ProcessSample};
use crate::record::{Recorder, Series};
use crate::scenario::windows::WS_DELIVERY;
use crate::target::{Target, parse_duration};
use client::{ClientOutcome, ClientSettings};
use report::RunFacts;
pub use report::{ServerUsage, WsReport};

/// Descriptors kept free beyond one per client (runtime, stdio, resolver).
const SPARE_DESCRIPTORS: u64 = 64;

/// How often the connect ramp reports progress on stderr.
const PROGRESS_EVERY: Duration = Duration::from_secs(2);

/// Options of `pulse-loadtest ws`.
#[derive(Clone, Debug, clap::Args)]
pub struct WsArgs {
    /// The `/ws` endpoint.
    #[arg(long, default_value = "ws://127.0.0.1:8080/ws")]
    pub url: String,
    /// The gateway, `http://host:port` (its `/ws` replaces --url).
    #[arg(long)]
    pub target: Option<String>,
    /// Allow a target that is not on this machine.
    #[arg(long)]
    pub allow_remote: bool,
    /// Directory for `report.json` and the SVG charts (none written without it).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Access token, sent as `Authorization: Bearer` (or put `?token=` in --url).
    #[arg(long, env = "PULSE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Number of concurrent subscribers.
    #[arg(long, default_value_t = 100)]
    pub clients: usize,
    /// How long to measure: `30s`, `2m` (a plain number is seconds).
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Seconds after every client connected before measuring starts; nothing received then counts.
    #[arg(long, default_value_t = 5)]
    pub warmup: u64,
    /// The subscription filter, a JSON object such as '{"metric":"cpu"}'.
    #[arg(long, default_value = "{}", value_parser = parse_filter)]
    pub filter: Map<String, Value>,
    /// Handshakes (connect + subscribe) in flight at once.
    #[arg(long, default_value_t = 200)]
    pub connect_concurrency: usize,
    /// Seconds one client may take to connect and subscribe before it counts as failed.
    #[arg(long, default_value_t = 30)]
    pub connect_timeout: u64,
    /// The server's process id, to report its CPU use while measuring and its memory (Linux).
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Runtime worker threads (default: one per core).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Print the report as one JSON object.
    #[arg(long)]
    pub json: bool,
}

fn sample_server(pid: u32) -> anyhow::Result<ProcessSample> {
    ProcessSample::read(pid).with_context(|| format!("reading /proc/{pid} of --server-pid"))
}

fn parse_filter(text: &str) -> Result<Map<String, Value>, String> {
    match serde_json::from_str(text) {
        Ok(Value::Object(filter)) => Ok(filter),
        Ok(_) => Err("the filter must be a JSON object, e.g. '{\"metric\":\"cpu\"}'".into()),
        Err(error) => Err(format!("the filter is not JSON: {error}")),
    }
}

/// Where a run is; clients count messages only while it is [`Phase::Measuring`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Phase {
    /// Clients are connecting.
    Connecting = 0,
    /// Every client has connected or failed; not counting yet.
    WarmingUp = 1,
    /// Counting.
    Measuring = 2,
    /// Over; clients close.
    Done = 3,
}

/// What every client of a run shares.
pub(crate) struct RunState {
    pub(crate) settings: ClientSettings,
    pub(crate) connect_slots: Semaphore,
    pub(crate) connected: AtomicUsize,
    pub(crate) failed: AtomicUsize,
    pub(crate) latencies: Series,
    phase: AtomicU8,
}

impl RunState {
    pub(crate) fn phase(&self) -> Phase {
        match self.phase.load(Ordering::Relaxed) {
            0 => Phase::Connecting,
            1 => Phase::WarmingUp,
            2 => Phase::Measuring,
            _ => Phase::Done,
        }
    }

    fn set_phase(&self, phase: Phase) {
        self.phase.store(phase as u8, Ordering::Relaxed);
    }
}

/// Runs the load test described by `args` and reports what it measured.
pub fn run(mut args: WsArgs) -> anyhow::Result<(WsReport, Recorder)> {
    anyhow::ensure!(args.clients > 0, "--clients must be at least 1");
    anyhow::ensure!(!args.duration.is_zero(), "--duration must be more than zero");
    let target = Target::parse(args.target.as_deref().unwrap_or(&args.url))?;
    target.ensure_loopback(args.allow_remote)?;
    if args.target.is_some() {
        args.url = target.ws_url.clone();
    }
    let limit = process::raise_to_hard_limit().context("raising the open-file limit")?;
    limit.ensure(args.clients as u64 + SPARE_DESCRIPTORS)?;
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from))
        .max(1);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    runtime.block_on(drive(args, limit, threads))
}

async fn drive(args: WsArgs, limit: NofileLimit, threads: usize) -> anyhow::Result<(WsReport, Recorder)> {
    let recorder = Recorder::new();
    let authorization = args
        .token
        .as_deref()
        .map(|token| HeaderValue::from_str(&format!("Bearer {}", token.trim())))
        .transpose()
        .context("the token cannot be sent in a header")?;
    let run = Arc::new(RunState {
        settings: ClientSettings {
            url: args.url.clone(),
            authorization,
            subscribe: message::subscribe_request(&args.filter),
            connect_timeout: Duration::from_secs(args.connect_timeout),
        },
        connect_slots: Semaphore::new(args.connect_concurrency.max(1)),
        connected: AtomicUsize::new(0),
        failed: AtomicUsize::new(0),
        latencies: recorder.series(WS_DELIVERY),
        phase: AtomicU8::new(Phase::Connecting as u8),
    });
    eprintln!(
        "ws: {} clients -> {} (open-file limit {}, {threads} threads)",
        args.clients, args.url, limit.soft
    );
    let (stop, stop_rx) = watch::channel(false);
    let tasks: Vec<_> = (0..args.clients)
        .map(|_| tokio::spawn(client::run_client(run.clone(), stop_rx.clone())))
        .collect();

    let ramp = Instant::now();
    let mut last_progress = ramp;
    loop {
        let (connected, failed) = (
            run.connected.load(Ordering::Relaxed),
            run.failed.load(Ordering::Relaxed),
        );
        if connected + failed >= args.clients {
            break;
        }
        if last_progress.elapsed() >= PROGRESS_EVERY {
            eprintln!(
                "ws: {connected}/{} connected, {failed} failed after {:.0} s",
                args.clients,
                ramp.elapsed().as_secs_f64()
            );
            last_progress = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let connect_seconds = ramp.elapsed().as_secs_f64();
    let connected = run.connected.load(Ordering::Relaxed);
    eprintln!(
        "ws: {connected}/{} connected in {connect_seconds:.1} s; warming up {} s, then measuring {:?}",
        args.clients, args.warmup, args.duration
    );

    let (mut measured, mut cpu_while_measuring, mut server) = (Duration::ZERO, Duration::ZERO, None);
    if connected > 0 {
        run.set_phase(Phase::WarmingUp);
        tokio::time::sleep(Duration::from_secs(args.warmup)).await;
        let (started, cpu_before) = (Instant::now(), process::cpu_time()?);
        let server_before = args.server_pid.map(sample_server).transpose()?;
        run.set_phase(Phase::Measuring);
        tokio::time::sleep(args.duration).await;
        run.set_phase(Phase::Done);
        measured = started.elapsed();
        cpu_while_measuring = process::cpu_time()?.saturating_sub(cpu_before);
        if let (Some(pid), Some(before)) = (args.server_pid, server_before) {
            let after = sample_server(pid)?;
            server = Some(ServerUsage {
                cores: after.cpu.saturating_sub(before.cpu).as_secs_f64() / measured.as_secs_f64(),
                rss_mb: after.rss_bytes as f64 / (1024.0 * 1024.0),
            });
        }
    }
    run.set_phase(Phase::Done);
    // Clients wake on this and close; the receivers they hold keep the channel open.
    let _ = stop.send(true);

    let mut outcomes: Vec<ClientOutcome> = Vec::with_capacity(tasks.len());
    for task in tasks {
        outcomes.push(task.await.context("a client task panicked")?);
    }
    let facts = RunFacts {
        nofile_limit: limit,
        threads,
        connect_seconds,
        measured,
        cpu_while_measuring,
        server,
    };
    if connected == 0 {
        let reason = outcomes
            .iter()
            .find_map(|o| o.connect_error.clone())
            .unwrap_or_else(|| "no client connected".into());
        anyhow::bail!("no client could connect to {}: {reason}", args.url);
    }
    let report = WsReport::new(&args, facts, &outcomes, &run.latencies.snapshot().histogram);
    Ok((report, recorder))
}

/// The common report of a `ws` run: the delivery series, and the fan-out's
/// own figures (connections, starving clients, drops) as notes.
pub fn common_report(ws: &WsReport, recorder: &Recorder, target: &str) -> crate::report::Report {
    let seconds = ws.measurement_seconds.max(f64::MIN_POSITIVE);
    let mut notes = vec![format!(
        "{} clients requested, {} connected, {} failed to connect, {} disconnected, {} starving; \
         {} lagged notices, {} messages dropped; latency = receipt minus the hub's published_at_us",
        ws.clients_requested,
        ws.connected,
        ws.failed_to_connect,
        ws.disconnected,
        ws.starving,
        ws.lagged_messages,
        ws.dropped_total
    )];
    notes.extend(
        ws.connect_errors
            .iter()
            .map(|e| format!("connect error x {}: {}", e.clients, e.error)),
    );
    crate::report::Report {
        scenario: "ws".into(),
        target: target.to_owned(),
        started_at_ms: crate::scenario::unix_millis().saturating_sub((seconds * 1000.0) as u64),
        duration_seconds: ws.measurement_seconds,
        target_rate: None,
        machine: crate::report::Machine::detect(),
        series: recorder
            .all()
            .iter()
            .map(|series| crate::report::SeriesReport::of(&series.snapshot(), seconds))
            .collect(),
        notes,
    }
}
