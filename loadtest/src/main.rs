//! `pulse-loadtest`: drives load against a running pulse and reports what it
//! measured. Exits 1 when the run could not be made, 2 when it ran but failed
//! its checks (a client could not connect, or starved).

use std::process::ExitCode;

use clap::{Parser, Subcommand};
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
    /// Many WebSocket subscribers of `/ws`: delivery latency and fairness of the fan-out.
    Ws(ws::WsArgs),
}

fn main() -> ExitCode {
    match run(Cli::parse().command) {
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
        Command::Ws(args) => {
            let json = args.json;
            let report = ws::run(args)?;
            if json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                print!("{report}");
            }
            Ok(report.passed())
        }
    }
}
