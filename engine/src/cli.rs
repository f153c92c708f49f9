//! The `pulse` command line.

use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use pulse_connectors::generator::{GeneratorSettings, SensorsConfig, Synthetic};
use pulse_connectors::kafka;
use pulse_core::DurationSpec;

use crate::config::Pipeline;
use crate::run::{RunOptions, run_in_cluster};
use crate::serve::GatewayServer;
use crate::telemetry::{self, Exposition};
use pulse_gateway::{GatewayConfig, JwtSecret, Scope, StoreConfig, TenantId, issue_token};

/// The command line of `pulse`; its help is what users read.
#[derive(Debug, Parser)]
#[command(
    name = "pulse",
    version,
    about = "Runs streaming pipelines: event-time windows over generated, file or Kafka events, with a live dashboard and API.",
    after_help = "Start with the demo: `pulse run pipelines/demo.toml`. Pipeline files are described in README.md."
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Runs a pipeline until its sources end or Ctrl-C, then writes what is complete and exits.
    Run {
        /// The pipeline file to run (TOML), e.g. pipelines/demo.toml.
        file: PathBuf,
        /// How many worker threads to use (overrides `[engine] workers`).
        #[arg(long)]
        workers: Option<usize>,
        /// Run as one of N processes of a cluster (overrides `[engine.cluster] processes`).
        #[arg(long)]
        processes: Option<usize>,
        /// This process's index in the cluster, 0..N (overrides `[engine.cluster] process`).
        #[arg(long)]
        process: Option<usize>,
        /// The cluster's addresses: one `host:port` a line, process 0 first
        /// (overrides `[engine.cluster] addresses`).
        #[arg(long)]
        hostfile: Option<PathBuf>,
    },
    /// Runs a pipeline as a cluster of N local processes (127.0.0.1), their
    /// logs prefixed with `[pI]`; Ctrl-C stops them all; exits with the first
    /// non-zero status.
    Cluster {
        /// The pipeline file to run (TOML).
        file: PathBuf,
        /// How many processes to start.
        #[arg(long)]
        processes: usize,
        /// Worker threads per process (overrides `[engine] workers`).
        #[arg(long)]
        workers: Option<usize>,
        /// Process I listens on 127.0.0.1:(P + I).
        #[arg(long, default_value_t = 2101)]
        base_port: u16,
    },
    /// Checks a pipeline file without running it and prints every problem with its line and a fix.
    Validate {
        /// The pipeline file to check (TOML).
        file: PathBuf,
    },
    /// Writes synthetic sensor events as JSON lines, e.g. as input for a file source.
    Generate {
        /// Which synthetic model to draw events from.
        #[arg(long, value_enum, default_value_t = Profile::Sensors)]
        profile: Profile,
        /// How many events to write.
        #[arg(long)]
        events: u64,
        /// The file to write (its directory is created); standard output when left out.
        #[arg(long)]
        out: Option<PathBuf>,
        /// How many events per second of event time (0: one per millisecond).
        #[arg(long, default_value_t = 10_000)]
        rate: u64,
        /// The event time of the first event, in epoch milliseconds.
        #[arg(long, default_value_t = 1_700_000_000_000)]
        start: u64,
        /// The random seed; the same seed writes the same events.
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// How many tenants the events belong to.
        #[arg(long, default_value_t = 3)]
        tenants: u32,
        /// How many hosts each tenant has.
        #[arg(long, default_value_t = 20)]
        hosts_per_tenant: u32,
        /// How long one cycle of the seasonal pattern lasts, e.g. 1d or 10m.
        #[arg(long, default_value = "1d")]
        season_period: DurationSpec,
    },
    /// Publishes generated events, or a file's lines, to a Kafka topic as an agent would.
    Produce {
        /// The Kafka brokers to connect to, host:port[,host:port…].
        #[arg(long, default_value = "127.0.0.1:9092")]
        brokers: String,
        /// The topic to publish to (it must exist).
        #[arg(long)]
        topic: String,
        /// Publish the lines of this JSONL file as they are, instead of generated events.
        #[arg(long, conflicts_with = "events")]
        file: Option<PathBuf>,
        /// Which synthetic model to draw events from.
        #[arg(long, value_enum, default_value_t = Profile::Sensors)]
        profile: Profile,
        /// How many events to generate.
        #[arg(long, required_unless_present = "file")]
        events: Option<u64>,
        /// How many events to publish per second of wall-clock time (0: as fast as
        /// possible); generated events are as far apart in event time (0: 1 ms).
        #[arg(long, default_value_t = 0)]
        rate: u64,
        /// The event time of the first generated event, in epoch milliseconds (default: now).
        #[arg(long)]
        start: Option<u64>,
        /// The random seed of the generator.
        #[arg(long, default_value_t = 42)]
        seed: u64,
    },
    /// Serves the HTTP gateway (auth, KV API, dashboard) without a pipeline until Ctrl-C.
    Serve {
        /// The address to listen on, host:port.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: std::net::SocketAddr,
        /// The directory where the embedded store keeps its data.
        #[arg(long, default_value = "data/gateway")]
        data_dir: PathBuf,
        /// Keep users, keys and rate-limit state in this Redis (`redis://host:port`)
        /// instead of the embedded store.
        #[arg(long)]
        redis: Option<String>,
        /// Sign tokens with an ephemeral secret when `PULSE_JWT_SECRET` is unset.
        #[arg(long)]
        demo: bool,
    },
    /// Prints an access token for a tenant, signed with the secret in PULSE_JWT_SECRET.
    Token {
        /// The tenant id: a registered user's UUID, or a name such as `demo`.
        #[arg(long)]
        tenant: TenantId,
        /// Comma-separated scopes: read, write, admin.
        #[arg(long, default_value = "read")]
        scopes: String,
        /// How long the token stays valid, e.g. 30m or 12h.
        #[arg(long, default_value = "30m")]
        ttl: DurationSpec,
    },
    /// Measures quality on benchmark files: NAB anomaly detection (`pulse eval nab`,
    /// `pulse eval nab-score`) and forecasting (`pulse eval forecast`).
    Eval {
        /// What to evaluate.
        #[command(subcommand)]
        command: crate::eval::EvalCommand,
    },
    /// Creates or lists Kafka topics.
    Topics {
        /// What to do.
        #[command(subcommand)]
        action: TopicsCommand,
    },
}

/// `pulse topics` actions.
#[derive(Debug, Subcommand)]
pub enum TopicsCommand {
    /// Creates topics; topics that exist already are left as they are.
    Create {
        /// The Kafka brokers to connect to, host:port[,host:port…].
        #[arg(long, default_value = "127.0.0.1:9092")]
        brokers: String,
        /// How many partitions each new topic gets.
        #[arg(long, default_value_t = 1)]
        partitions: i32,
        /// The names of the topics to create.
        #[arg(required = true)]
        topics: Vec<String>,
    },
    /// Lists the topics of a broker with their partition counts.
    List {
        /// The Kafka brokers to connect to, host:port[,host:port…].
        #[arg(long, default_value = "127.0.0.1:9092")]
        brokers: String,
    },
}

/// Generator models.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Profile {
    /// Hosts of several tenants reporting cpu, mem, disk, net and temp.
    Sensors,
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    telemetry::init_logging();
    match cli.command {
        Command::Eval { command } => command.run(),
        Command::Validate { file } => match Pipeline::load(&file, &env) {
            Ok(pipeline) => {
                if let Some(warnings) = pipeline.warnings_report() {
                    eprintln!("{warnings}");
                }
                let c = &pipeline.config;
                println!(
                    "{}: ok ({} sources, {} operators, {} sinks{})",
                    file.display(),
                    c.sources.len(),
                    c.operators.len(),
                    c.sinks.len(),
                    match pipeline.warnings.len() {
                        0 => String::new(),
                        1 => "; 1 warning".to_owned(),
                        n => format!("; {n} warnings"),
                    }
                );
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("{error}");
                ExitCode::FAILURE
            }
        },
        Command::Cluster {
            file,
            processes,
            workers,
            base_port,
        } => {
            let program = match std::env::current_exe() {
                Ok(program) => program,
                Err(error) => {
                    eprintln!("error: cannot find the pulse binary: {error}");
                    return ExitCode::FAILURE;
                }
            };
            let launch = crate::cluster::launcher::Launch {
                program,
                file,
                processes,
                workers,
                base_port,
            };
            match crate::cluster::launcher::run(&launch) {
                Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
                Err(error) => {
                    eprintln!("error: {error}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Run {
            file,
            workers,
            processes,
            process,
            hostfile,
        } => {
            let cluster = crate::cluster::ClusterOverrides {
                processes,
                process,
                hostfile,
            };
            let pipeline = match Pipeline::load(&file, &env) {
                Ok(pipeline) => pipeline,
                Err(error) => {
                    eprintln!("{error}");
                    return ExitCode::FAILURE;
                }
            };
            if let Some(warnings) = pipeline.warnings_report() {
                eprintln!("{warnings}");
            }
            // Only a pipeline with a gateway serves `/metrics`.
            telemetry::install_recorder(match pipeline.config.gateway {
                Some(_) => Exposition::Prometheus,
                None => Exposition::InProcess,
            });
            match run_in_cluster(
                &pipeline,
                RunOptions {
                    workers,
                    handle_signals: true,
                    ..RunOptions::default()
                },
                &cluster,
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
        Command::Produce {
            brokers,
            topic,
            file,
            profile: Profile::Sensors,
            events,
            rate,
            start,
            seed,
        } => report(produce(&brokers, &topic, file, events, rate, start, seed)),
        Command::Topics {
            action:
                TopicsCommand::Create {
                    brokers,
                    partitions,
                    topics,
                },
        } => report(kafka::create_topics(&brokers, &topics, partitions).map_err(|e| e.to_string())),
        Command::Topics {
            action: TopicsCommand::List { brokers },
        } => report(
            kafka::list_topics(&brokers)
                .map(|topics| {
                    topics
                        .iter()
                        .for_each(|(name, partitions)| println!("{name}\t{partitions}"))
                })
                .map_err(|e| e.to_string()),
        ),
        Command::Serve {
            listen,
            data_dir,
            redis,
            demo,
        } => {
            telemetry::install_recorder(Exposition::Prometheus);
            let store = match redis {
                Some(url) => StoreConfig::Redis {
                    url,
                    key_prefix: String::new(),
                },
                None => StoreConfig::Embedded,
            };
            let config = GatewayConfig {
                listen,
                data_dir,
                store,
                demo,
                ..GatewayConfig::default()
            };
            report(serve_until_stopped(config).map_err(|e| e.to_string()))
        }
        Command::Token { tenant, scopes, ttl } => {
            let token = Scope::parse_list(&scopes).and_then(|scopes| {
                let secret = JwtSecret::from_env(|name| std::env::var(name).ok(), false)?;
                Ok(issue_token(&secret, tenant, &scopes, ttl.to_std()))
            });
            match token {
                Ok(token) => {
                    println!("{token}");
                    ExitCode::SUCCESS
                }
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
            let destination = out
                .as_ref()
                .map_or_else(|| "standard output".to_owned(), |path| path.display().to_string());
            match generate(settings, events, out.as_deref()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    eprintln!("error: cannot write {destination}: {error}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// Serves the gateway until SIGINT or SIGTERM.
fn serve_until_stopped(config: GatewayConfig) -> anyhow::Result<()> {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, std::sync::Arc::clone(&stop))?;
    }
    let server = GatewayServer::start(config, None)?;
    // No pipeline: ready as soon as the store is.
    server.readiness().set_pipeline_ready(true);
    tracing::info!(address = %server.address(), "serving the gateway; Ctrl-C stops it");
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    server.stop();
    Ok(())
}

fn report(result: Result<(), String>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

fn produce(
    brokers: &str,
    topic: &str,
    file: Option<PathBuf>,
    events: Option<u64>,
    rate: u64,
    start: Option<u64>,
    seed: u64,
) -> Result<(), String> {
    let sent = match file {
        Some(path) => {
            let reader =
                std::io::BufReader::new(std::fs::File::open(&path).map_err(|e| format!("{}: {e}", path.display()))?);
            let records = std::io::BufRead::lines(reader)
                .filter(|line| line.as_ref().map_or(true, |l| !l.trim().is_empty()))
                .map(|line| {
                    line.map(kafka::Record::of_line)
                        .map_err(kafka::KafkaConnectorError::from)
                });
            kafka::publish(brokers, topic, records, rate)
        }
        None => {
            let events = events.unwrap_or_default();
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64);
            let sensors = SensorsConfig {
                seed,
                ..SensorsConfig::default()
            };
            let mut synthetic = Synthetic::new(GeneratorSettings {
                sensors,
                rate,
                events: Some(events),
                start: start.unwrap_or(now),
            });
            let records = (0..events).map(move |i| Ok(kafka::Record::of_event(&synthetic.event(i))));
            kafka::publish(brokers, topic, records, rate)
        }
    }
    .map_err(|e| e.to_string())?;
    eprintln!("published {sent} messages to {topic}");
    Ok(())
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// Writes `events` generated events to `out` (its directory is created, as a
/// file sink's is), or to standard output.
fn generate(settings: GeneratorSettings, events: u64, out: Option<&std::path::Path>) -> std::io::Result<()> {
    let sink: Box<dyn Write> = match out {
        Some(path) => {
            if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)?;
            }
            Box::new(std::fs::File::create(path)?)
        }
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

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    /// Checks that `text` reads as a sentence for users.
    fn assert_sentence(text: Option<&clap::builder::StyledStr>, what: &str) {
        let text = text.map(ToString::to_string).unwrap_or_default();
        assert!(
            text.len() > 15 && text.starts_with(char::is_uppercase),
            "{what}: {text:?} is not a sentence for users"
        );
        for internal in ["planner", "`pulse` binary", "The subcommands", "What to do"] {
            assert!(!text.contains(internal), "{what}: {text:?} is internal text");
        }
    }

    fn check(command: &clap::Command, path: &str) {
        for argument in command.get_arguments() {
            if ["help", "version"].contains(&argument.get_id().as_str()) {
                continue;
            }
            assert_sentence(argument.get_help(), &format!("{path} --{}", argument.get_id()));
        }
        for sub in command.get_subcommands().filter(|sub| sub.get_name() != "help") {
            let path = format!("{path} {}", sub.get_name());
            assert_sentence(sub.get_about(), &path);
            check(sub, &path);
        }
    }

    /// `pulse --help` and every subcommand's help speak to users, not about the code.
    #[test]
    fn every_command_and_option_has_help_for_users() {
        let mut command = Cli::command();
        command.build();
        assert_sentence(command.get_about(), "pulse");
        check(&command, "pulse");
        let help = command.render_help().to_string();
        assert!(help.contains("pulse run pipelines/demo.toml"), "{help}");
    }
}
