//! `pulse eval ...`: quality measured by the binary itself, on public benchmark files.
//!
//! - [`nab_score`]: the Numenta Anomaly Benchmark scorer (`pulse eval nab-score`).
//! - [`nab`]: streams a NAB corpus through the anomaly detector (`pulse eval nab`).
//! - [`csv`]: NAB's CSV files, with errors that name the file and the line.
//! - [`forecast`]: `pulse eval forecast`, a rolling-origin backtest of the forecaster.
//! - [`rca`]: `pulse eval rca` and `pulse eval rca-scenario`, root-cause analysis on labelled scenarios.
//! - [`series_csv`]: reading `timestamp,value` CSV files for the backtest.

pub mod csv;
pub mod forecast;
pub mod nab;
pub mod nab_score;
pub mod rca;
pub mod series_csv;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;
use nab_score::Subset;

/// The `pulse eval` subcommands.
#[derive(Debug, Subcommand)]
pub enum EvalCommand {
    /// Stream every CSV of a NAB-layout directory through the anomaly detector and
    /// write NAB results (`RESULTS/<category>/pulse_<file>.csv`).
    Nab {
        /// The data directory: `data/<category>/<file>.csv` (and, to score,
        /// `labels/combined_windows.json`, `config/profiles.json`).
        #[arg(long)]
        data: PathBuf,
        /// Where to write the results.
        #[arg(long)]
        out: PathBuf,
        /// An `AnomalyConfig` TOML file (default: the built-in configuration).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Also score the results (as `pulse eval nab-score`).
        #[arg(long)]
        score: bool,
        /// Which files to score (the development discipline's halves).
        #[arg(long, value_enum, default_value_t = Subset::All)]
        subset: Subset,
    },
    /// Score NAB results against a data directory's labels: the three profiles'
    /// normalised scores, with one corpus-wide threshold per profile.
    NabScore {
        /// The data directory (`data/`, `labels/`, `config/`).
        #[arg(long)]
        data: PathBuf,
        /// The results directory: `<category>/<detector>_<file>.csv`.
        #[arg(long)]
        results: PathBuf,
        /// The detector's file-name prefix.
        #[arg(long, default_value = "pulse")]
        detector: String,
        /// Which files to score (the development discipline's halves).
        #[arg(long, value_enum, default_value_t = Subset::All)]
        subset: Subset,
    },
    /// Backtest the forecaster on `timestamp,value` CSV files (rolling origin over the
    /// last 40 % of each file) and print MASE, sMAPE and interval coverage beside
    /// seasonal naive.
    Forecast(forecast::ForecastArgs),
    /// Replay an events file through the incident operator, write the final incidents
    /// and, with an answer key, print accuracy@1/3/5, mean rank and incident precision.
    Rca(rca::RcaArgs),
    /// Write a labelled Kubernetes scenario (the `k8s` generator profile) and its answer key.
    RcaScenario(rca::ScenarioArgs),
}

impl EvalCommand {
    /// Runs the subcommand, printing its report; the exit code says whether it worked.
    pub fn run(self) -> ExitCode {
        let outcome = match self {
            EvalCommand::Nab {
                data,
                out,
                config,
                score,
                subset,
            } => nab::run(&data, &out, config.as_deref(), score, subset),
            EvalCommand::NabScore {
                data,
                results,
                detector,
                subset,
            } => nab_score::score_results(&data, &results, &detector, subset)
                .map(|scores| print!("{}", format_scores(&detector, &scores)))
                .map_err(|error| error.to_string()),
            EvalCommand::Forecast(args) => forecast::run(&args, &mut std::io::stdout().lock())
                .map(drop)
                .map_err(|error| format!("{error:#}")),
            EvalCommand::Rca(args) => rca::run(&args),
            EvalCommand::RcaScenario(args) => rca::write_scenario(&args),
        };
        match outcome {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("error: {error}");
                ExitCode::FAILURE
            }
        }
    }
}

/// The scores as printed: one line per profile, then a summary line
/// `<detector> standard=<s> reward_low_FP_rate=<s> reward_low_FN_rate=<s>`.
pub fn format_scores(detector: &str, scores: &[nab_score::ProfileScore]) -> String {
    use std::fmt::Write as _;
    let mut text = String::new();
    for score in scores {
        let _ = writeln!(
            text,
            "{:<20} {:>7.2}  threshold={:.4} raw={:.3} null={:.1} perfect={:.1} windows={}/{} false_positives={}",
            score.profile.name,
            score.normalised(),
            score.threshold,
            score.raw,
            score.null,
            score.perfect,
            score.detected_windows,
            score.windows,
            score.false_positives
        );
    }
    let _ = write!(text, "{detector}");
    for score in scores {
        let _ = write!(text, " {}={:.2}", score.profile.name, score.normalised());
    }
    text.push('\n');
    text
}
