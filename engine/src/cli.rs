//! The `pulse` command line.

use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use pulse_connectors::generator::{GeneratorSettings, SensorsConfig, Synthetic};
use pulse_core::DurationSpec;

use crate::config::Pipeline;
use crate::run::{RunOptions, run};
use crate::telemetry;

/// pulse: a stream-processing dataflow engine.
#[derive(Debug, Parser)]
#[command(name = "pulse", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a pipeline until its sources end or Ctrl-C, then drain and exit.
    Run {
        /// The pipeline file (TOML).
        file: PathBuf,
        /// Worker threads (overrides `[engine] workers`).
        #[arg(long)]
        workers: Option<usize>,
    },
    /// Check a pipeline file without running it; non-zero exit on any error.
    Validate {
        /// The pipeline file (TOML).
        file: PathBuf,
    },
    /// Write synthetic events as JSON lines, for load tests and benchmarks.
    Generate {
        /// The model.
        #[arg(long, value_enum, default_value_t = Profile::Sensors)]
        profile: Profile,
        /// How many events.
        #[arg(long)]
        events: u64,
        /// Output file (default: standard output).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Events per second of event time (0: one per millisecond).
        #[arg(long, default_value_t = 10_000)]
        rate: u64,
        /// Event time of the first event, epoch ms.
        #[arg(long, default_value_t = 1_700_000_000_000)]
        start: u64,
        /// Random seed.
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Number of tenants.
        #[arg(long, default_value_t = 3)]
        tenants: u32,
        /// Hosts per tenant.
        #[arg(long, default_value_t = 20)]
        hosts_per_tenant: u32,
        /// Period of the seasonal pattern.
        #[arg(long, default_value = "1d")]
        season_period: DurationSpec,
    },
}

/// Generator models.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Profile {
    /// Hosts reporting cpu, mem, disk, net and temp.
    Sensors,
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    telemetry::init_logging();
    match cli.command {
        Command::Validate { file } => match Pipeline::load(&file, &env) {
            Ok(pipeline) => {
                let c = &pipeline.config;
                println!(
                    "{}: ok ({} sources, {} operators, {} sinks)",
                    file.display(),
                    c.sources.len(),
                    c.operators.len(),
                    c.sinks.len()
                );
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("{error}");
                ExitCode::FAILURE
            }
        },
        Command::Run { file, workers } => {
            let pipeline = match Pipeline::load(&file, &env) {
                Ok(pipeline) => pipeline,
                Err(error) => {
                    eprintln!("{error}");
                    return ExitCode::FAILURE;
                }
            };
            telemetry::install_recorder();
            match run(
                &pipeline,
                RunOptions {
                    workers,
                    handle_signals: true,
                    ..RunOptions::default()
                },
            ) {
                Ok(report) if report.sink_errors > 0 => {
                    eprintln!(
                        "error: {} sink writes failed; output is incomplete (see the log above)",
                        report.sink_errors
                    );
                    ExitCode::FAILURE
                }
                Ok(_) => ExitCode::SUCCESS,
                Err(error) => {
                    eprintln!("error: {error}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Generate {
            profile: Profile::Sensors,
            events,
            out,
            rate,
            start,
            seed,
            tenants,
            hosts_per_tenant,
            season_period,
        } => {
            let sensors = SensorsConfig {
                tenants,
                hosts_per_tenant,
                seed,
                season_period,
                ..SensorsConfig::default()
            };
            if let Err(message) = sensors.validate() {
                eprintln!("error: {message}");
                return ExitCode::FAILURE;
            }
            let settings = GeneratorSettings {
                sensors,
                rate,
                events: Some(events),
                start,
            };
            match generate(settings, events, out) {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    eprintln!("error: {error}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

fn generate(settings: GeneratorSettings, events: u64, out: Option<PathBuf>) -> std::io::Result<()> {
    let sink: Box<dyn Write> = match &out {
        Some(path) => Box::new(std::fs::File::create(path)?),
        None => Box::new(std::io::stdout().lock()),
    };
    let mut writer = BufWriter::with_capacity(1 << 20, sink);
    let mut synthetic = Synthetic::new(settings);
    for index in 0..events {
        serde_json::to_writer(&mut writer, &synthetic.event(index))?;
        writer.write_all(b"\n")?;
    }
    writer.flush()
}
