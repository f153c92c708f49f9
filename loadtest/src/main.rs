//! `pulse-loadtest`: drives load against a running pulse and reports what it
//! measured. Exits 1 when the run could not be made (target down, refused,
//! not loopback, bad options), 2 when a `ws` run ran but failed its checks (a
//! client could not connect, or starved); a slow run is a report, not a failure.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use pulse_loadtest::report::{Report, compare};
use pulse_loadtest::scenario::{self, api, events, incidents, mixed};
use pulse_loadtest::ws;

/// Load tests for pulse.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Sensor events into Kafka (or POST /api/v1/events) at a rate, timed to their window results on /ws.
    Events(events::EventsArgs),
    /// KV reads and writes and analytics queries, at a rate or as fast as answered.
    Api(api::ApiArgs),
    /// Events, /ws subscribers and API requests at once.
    Mixed(mixed::MixedArgs),
    /// Many WebSocket subscribers of `/ws`: delivery latency and fairness of the fan-out.
    Ws(ws::WsArgs),
    /// Late cause events posted into open incidents, timed to the re-ranked version on `/ws`.
    Incidents(incidents::IncidentsArgs),
    /// The difference between two reports (`report.json` files or their directories).
    Compare {
        /// The earlier report.
        before: PathBuf,
        /// The later report.
        after: PathBuf,
    },
}

fn main() -> ExitCode {
    // clap exits 2 on a usage error; here 2 means "ran but failed its checks",
    // so bad options exit 1 like every other run that could not be done.
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            let _ = error.print();
            return if error.use_stderr() {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    match run(cli.command) {
        Ok(passed) if passed => ExitCode::SUCCESS,
        Ok(_) => ExitCode::from(2),
        Err(error) => {
            // `{:#}` gives the whole chain of causes on one line, without a backtrace.
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs `command`; `Ok(false)` when it ran but failed its checks.
fn run(command: Command) -> anyhow::Result<bool> {
    match command {
        Command::Events(args) => scenario::publish(&events::run(&args)?, &args.run).map(|()| true),
        Command::Api(args) => scenario::publish(&api::run(&args)?, &args.run).map(|()| true),
        Command::Mixed(args) => scenario::publish(&mixed::run(&args)?, &args.run).map(|()| true),
        Command::Incidents(args) => scenario::publish(&incidents::run(&args)?, &args.run).map(|()| true),
        Command::Ws(args) => {
            let (json, out) = (args.json, args.out.clone());
            let target = args.target.clone().unwrap_or_else(|| args.url.clone());
            let (report, recorder) = ws::run(args)?;
            if json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                print!("{report}");
            }
            if let Some(out) = out {
                for path in ws::common_report(&report, &recorder, &target).write(&out)? {
                    eprintln!("wrote {}", path.display());
                }
            }
            Ok(report.passed())
        }
        Command::Compare { before, after } => {
            print!("{}", compare::compare(&Report::read(&before)?, &Report::read(&after)?));
            Ok(true)
        }
    }
}
