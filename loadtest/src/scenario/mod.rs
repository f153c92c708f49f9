//! The scenarios that share the report format: [`api`] (KV and analytics
//! requests), [`events`] (sensor events into Kafka or, through [`ingest`],
//! the gateway's `POST /api/v1/events`, timed to their window results on `/ws`), [`mixed`] (both, plus WebSocket subscribers) and
//! [`incidents`] (late causes timed to the re-ranked incident on `/ws`), all with
//! the options of [`RunArgs`]. Each checks that the target is loopback (unless
//! `--allow-remote`), up and accepts the credential before any load is sent:
//! a run that cannot be done is an error, a slow one is a report.

pub mod api;
pub mod events;
pub mod incidents;
pub mod ingest;
pub mod mixed;
pub mod windows;

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;

use crate::http::{AuthArgs, GatewayClient, sign_in};
use crate::pace::Schedule;
use crate::progress::LiveProgress;
use crate::record::Recorder;
use crate::report::{Machine, Report, SeriesReport};
use crate::target::{Target, parse_duration};

/// Options every scenario takes.
#[derive(Clone, Debug, clap::Args)]
pub struct RunArgs {
    /// The gateway, `http://host:port`.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub target: String,
    /// How long to send load: `30s`, `2m`, `1h`.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Operations per second, sent open-loop (latency from the intended send time);
    /// omitted: as fast as --concurrency workers go.
    #[arg(long, value_parser = parse_rate)]
    pub rate: Option<f64>,
    /// Stop after this many operations even if the duration is not over.
    #[arg(long)]
    pub count: Option<u64>,
    /// Operations in flight at most (with --rate) or workers (without).
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// How long one request may take before it counts as a `timeout` error.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Directory for `report.json` and the SVG charts.
    #[arg(long, default_value = "loadtest-report")]
    pub out: PathBuf,
    /// Allow a target (or broker) that is not on this machine.
    #[arg(long)]
    pub allow_remote: bool,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub auth: AuthArgs,
}

/// Parses a positive, finite rate.
pub(crate) fn parse_rate(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(rate) if rate.is_finite() && rate > 0.0 => Ok(rate),
        _ => Err(format!("{text:?} is not a positive number of operations per second")),
    }
}

impl RunArgs {
    /// The target, checked to be loopback unless `--allow-remote`.
    pub fn checked_target(&self) -> anyhow::Result<Target> {
        let target = Target::parse(&self.target)?;
        target.ensure_loopback(self.allow_remote)?;
        Ok(target)
    }

    /// The schedule these options describe.
    pub fn schedule(&self) -> Schedule {
        Schedule {
            rate: self.rate,
            duration: self.duration,
            count: self.count,
            concurrency: self.concurrency,
        }
    }
}

/// Unix milliseconds now.
pub fn unix_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The tokio runtime a scenario runs on.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")
}

/// A gateway client signed in with `args`' credential, after checking that the target is up.
pub async fn signed_in_client(args: &RunArgs, target: &Target) -> anyhow::Result<GatewayClient> {
    let client = GatewayClient::new(&target.http_base, args.timeout);
    Ok(sign_in(&client, &args.auth).await?)
}

/// A run in progress: its recorder, its live progress line and its notes.
pub struct Run {
    /// Where every series is recorded.
    pub recorder: Recorder,
    /// Notes for the report.
    pub notes: Vec<String>,
    started_at_ms: u64,
    progress: LiveProgress,
}

impl Run {
    /// Starts the clock and the progress line of a run of `duration` (inside a tokio runtime).
    pub fn start(duration: Duration) -> Self {
        crate::pace::stop_on_ctrl_c();
        let recorder = Recorder::new();
        Self {
            progress: LiveProgress::start(recorder.clone(), duration),
            recorder,
            notes: Vec::new(),
            started_at_ms: unix_millis(),
        }
    }

    /// Stops the progress line and builds the report.
    pub fn finish(mut self, scenario: &str, args: &RunArgs) -> Report {
        self.progress.finish();
        if crate::pace::interrupted() {
            self.notes
                .push("interrupted by Ctrl-C before the duration was over".into());
        }
        let elapsed = self.recorder.started().elapsed().as_secs_f64();
        // Rates are per second of sending: the drain after it (answers still
        // coming, the last windows closing) would otherwise dilute them.
        let seconds = elapsed.min(args.duration.as_secs_f64());
        Report {
            scenario: scenario.to_owned(),
            target: args.target.clone(),
            started_at_ms: self.started_at_ms,
            duration_seconds: elapsed,
            target_rate: args.rate,
            machine: Machine::detect(),
            series: self
                .recorder
                .all()
                .iter()
                .map(|series| SeriesReport::of(&series.snapshot(), seconds))
                .collect(),
            notes: self.notes,
        }
    }
}

/// Writes `report` into `--out` and prints its summary and the files on stderr.
pub fn publish(report: &Report, args: &RunArgs) -> anyhow::Result<()> {
    let written = report.write(&args.out)?;
    eprint!("{}", report.summary());
    for path in written {
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}
