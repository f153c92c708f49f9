//! `pulse eval`: quality measured by the binary itself, on public benchmark files.
//!
//! - [`forecast`]: `pulse eval forecast`, a rolling-origin backtest of the forecaster.
//! - [`series_csv`]: reading `timestamp,value` CSV files.

pub mod forecast;
pub mod series_csv;

use std::process::ExitCode;

use clap::Subcommand;

/// `pulse eval` benchmarks.
#[derive(Debug, Subcommand)]
pub enum EvalCommand {
    /// Backtest the forecaster on `timestamp,value` CSV files (rolling origin over the
    /// last 40 % of each file) and print MASE, sMAPE and interval coverage beside
    /// seasonal naive.
    Forecast(forecast::ForecastArgs),
}

/// Runs an `eval` subcommand.
pub fn run(command: EvalCommand) -> ExitCode {
    let result = match command {
        EvalCommand::Forecast(args) => forecast::run(&args, &mut std::io::stdout().lock()),
    };
    match result {
        Ok(_) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
