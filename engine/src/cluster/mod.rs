//! One pipeline over several processes: timely's cluster mode, started by
//! pulse's own connection code.
//!
//! Timely 0.32 connects its processes with no deadline, panics when anything
//! else connects to its port during start-up, never notices a frozen peer and
//! cannot take a restarted process back (`shared/notes/timely-cluster.md`).
//! So pulse opens the sockets itself ([`handshake`]): every process binds its
//! address, connects to the processes before it and accepts the ones after
//! it, and each pair compares a hash of the plan and the worker count before
//! timely gets the sockets; anything that does not speak the handshake is
//! turned away, and a peer that never answers fails the start within
//! `connect_timeout`, named. A second connection per pair stays with pulse
//! ([`links`]): heartbeats that end the cluster when a peer falls silent for
//! `stall_timeout` (and a process whose own worker has not stepped for as
//! long ends itself: [`liveness`]), a stop request that drains every process when one is
//! asked to stop, and, for Kafka sources, how far each process's sinks have
//! delivered and its session windows have settled, so that no process commits
//! what another has not written.
//!
//! Membership is fixed at start: a crashed process ends every other (one log
//! line naming it, a non-zero status), and the supervisor restarts the whole
//! cluster, which resumes from the committed Kafka offsets.

pub mod counted;
pub mod gather;
pub mod handshake;
pub mod launcher;
pub mod links;
pub mod liveness;
pub mod metrics_endpoint;

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::config::validate::{Problem, problem};
use crate::config::{ClusterConfig, PipelineConfig};

/// Exit status of a process whose peer crashed or closed its connection.
pub const EXIT_PEER_LOST: i32 = 70;
/// Exit status of a process whose peer sent nothing for `stall_timeout`.
pub const EXIT_PEER_STALLED: i32 = 75;

/// Cluster settings given on the command line; they override `[engine.cluster]`.
#[derive(Clone, Debug, Default)]
pub struct ClusterOverrides {
    /// `--processes N`.
    pub processes: Option<usize>,
    /// `--process I`.
    pub process: Option<usize>,
    /// `--hostfile HOSTS`: one `host:port` a line, process 0 first.
    pub hostfile: Option<PathBuf>,
}

/// This process's place in a cluster of two or more processes, resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterSettings {
    /// How many processes.
    pub processes: usize,
    /// This process's index.
    pub process: usize,
    /// Every process's `host:port`, process 0 first.
    pub addresses: Vec<String>,
    /// How long start-up waits for every peer.
    pub connect_timeout: Duration,
    /// How long a peer may be silent before the cluster ends.
    pub stall_timeout: Duration,
    /// How far in event time a source may lead what the cluster has taken
    /// in (zero: no limit).
    pub max_lead: Duration,
}

/// Why a cluster could not form or went on no longer.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The settings do not describe a cluster.
    #[error("cluster settings: {0}")]
    Settings(String),
    /// The hostfile cannot be read.
    #[error("cannot read the hostfile {path}: {error}")]
    Hostfile {
        /// The file.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// This process's own address cannot be listened on.
    #[error(
        "process {process} cannot listen on {address}: {error}{hint}",
        hint = if error.kind() == std::io::ErrorKind::AddrInUse {
            " (another program, or a process of an earlier run still alive, holds that port; stop it first)"
        } else { "" }
    )]
    Listen {
        /// This process.
        process: usize,
        /// Its address.
        address: String,
        /// Why.
        error: std::io::Error,
    },
    /// Peers did not connect before the deadline.
    #[error("no cluster after {timeout:?}: {}", .missing.join("; "))]
    NoAnswer {
        /// The deadline.
        timeout: Duration,
        /// Each peer that never answered, with what was last seen of it.
        missing: Vec<String>,
    },
    /// A peer runs another plan, worker count or cluster size.
    #[error("process {peer} ({address}) {mismatch}")]
    Mismatch {
        /// The peer.
        peer: usize,
        /// Its address.
        address: String,
        /// What differs, naming both sides.
        mismatch: String,
    },
    /// Something that is not a pulse process of this cluster answered at a peer's address.
    #[error("{address} (process {peer}) did not answer as a pulse process: {reason}")]
    NotPulse {
        /// The peer expected there.
        peer: usize,
        /// Its address.
        address: String,
        /// What came back.
        reason: String,
    },
    /// A peer left during start-up.
    #[error("process {peer} ({address}) left during start-up: {reason} (see its log)")]
    PeerLeft {
        /// The peer.
        peer: usize,
        /// Its address.
        address: String,
        /// What happened.
        reason: String,
    },
    /// Socket or thread set-up failed.
    #[error("cluster set-up failed: {0}")]
    Io(#[from] std::io::Error),
}

impl ClusterSettings {
    /// The cluster of `config` and the command line, or `None` for a run in
    /// one process (no cluster, or one of a single process).
    pub fn resolve(
        config: Option<&ClusterConfig>,
        overrides: &ClusterOverrides,
    ) -> Result<Option<ClusterSettings>, ClusterError> {
        let processes = overrides.processes.or(config.map(|c| c.processes));
        let Some(processes) = processes else {
            if overrides.process.is_some() || overrides.hostfile.is_some() {
                return Err(ClusterError::Settings(
                    "--process and --hostfile need --processes (or `[engine.cluster] processes`)".into(),
                ));
            }
            return Ok(None);
        };
        let process = overrides.process.or(config.map(|c| c.process)).unwrap_or(0);
        if processes == 0 {
            return Err(ClusterError::Settings("`processes` must be at least 1".into()));
        }
        if process >= processes {
            return Err(ClusterError::Settings(format!(
                "process index {process} is not below the number of processes, {processes} (indices start at 0)"
            )));
        }
        if processes == 1 {
            return Ok(None);
        }
        let addresses = match &overrides.hostfile {
            Some(path) => read_hostfile(path)?,
            None => config.map(|c| c.addresses.clone()).unwrap_or_default(),
        };
        if addresses.is_empty() {
            return Err(ClusterError::Settings(format!(
                "{processes} processes need their addresses: give --hostfile HOSTS or `[engine.cluster] addresses`"
            )));
        }
        if addresses.len() != processes {
            return Err(ClusterError::Settings(format!(
                "{} addresses for {processes} processes: give one `host:port` per process, process 0 first",
                addresses.len()
            )));
        }
        if let Some(bad) = addresses.iter().find(|a| !is_host_port(a)) {
            return Err(ClusterError::Settings(format!("`{bad}` is not `host:port`")));
        }
        let (connect_timeout, stall_timeout, max_lead) = config.map_or(
            (Duration::from_secs(60), Duration::from_secs(10), Duration::from_secs(2)),
            |c| {
                (
                    c.connect_timeout.to_std(),
                    c.stall_timeout.to_std(),
                    c.max_lead.to_std(),
                )
            },
        );
        Ok(Some(ClusterSettings {
            processes,
            process,
            addresses,
            connect_timeout,
            stall_timeout,
            max_lead,
        }))
    }

    /// The address of process `index`.
    pub fn address(&self, index: usize) -> &str {
        &self.addresses[index]
    }
}

/// Starts timely's workers on the connected sockets (`data`, by process;
/// `None` at `process`), `workers` threads in this process; like
/// `timely::execute`, returns once they run.
pub fn execute<F>(
    data: Vec<Option<std::net::TcpStream>>,
    process: usize,
    workers: usize,
    build: F,
) -> Result<timely::communication::WorkerGuards<()>, String>
where
    F: Fn(&mut timely::worker::Worker) + Send + Sync + 'static,
{
    use timely::communication::allocator::zero_copy::initialize::initialize_networking_from_sockets;
    use timely::communication::allocator::{AllocatorBuilder, ProcessBuilder};

    let hooks = timely::communication::Hooks::default();
    let local = ProcessBuilder::new_typed_vector(workers, hooks.refill.clone(), hooks.spill.clone());
    let data: Vec<Option<counted::CountedStream>> = data
        .into_iter()
        .enumerate()
        .map(|(peer, stream)| stream.map(|stream| counted::CountedStream::new(stream, peer)))
        .collect();
    let (builders, comms) = initialize_networking_from_sockets(local, data, process, workers, hooks)
        .map_err(|error| format!("failed to start the cluster's network threads: {error}"))?;
    let builders = builders.into_iter().map(AllocatorBuilder::Tcp).collect();
    let mut config = timely::WorkerConfig::default();
    config.set(
        pulse_sinks::runtime::LOCAL_WORKERS.to_owned(),
        pulse_sinks::runtime::LocalWorkers {
            first: process * workers,
            count: workers,
        },
    );
    timely::execute::execute_from(builders, Box::new(comms), config, build)
}

/// The lines of a hostfile that name an address (blank lines and `#` comments skipped).
fn read_hostfile(path: &Path) -> Result<Vec<String>, ClusterError> {
    let text = std::fs::read_to_string(path).map_err(|error| ClusterError::Hostfile {
        path: path.to_owned(),
        error,
    })?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(str::to_owned)
        .collect())
}

/// Whether `address` looks like `host:port` (the host is resolved only when connecting).
fn is_host_port(address: &str) -> bool {
    address
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok())
}

/// Checks `[engine.cluster]` as `pulse validate` does.
pub(crate) fn check_config(cluster: &ClusterConfig) -> Vec<Problem> {
    let mut problems = Vec::new();
    let at = |key: &'static str| ["engine", "cluster", key];
    if cluster.processes == 0 {
        problems.push(problem(
            &at("processes"),
            "`processes` must be at least 1".into(),
            "set it to the number of processes that run this pipeline".to_owned(),
        ));
    } else if cluster.process >= cluster.processes {
        problems.push(problem(
            &at("process"),
            format!(
                "`process` is {} but there are {} processes (indices start at 0)",
                cluster.process, cluster.processes
            ),
            "set `process = ${PULSE_PROCESS}` and give each process its index".to_owned(),
        ));
    }
    if !cluster.addresses.is_empty() && cluster.addresses.len() != cluster.processes {
        problems.push(problem(
            &at("addresses"),
            format!(
                "{} addresses for {} processes",
                cluster.addresses.len(),
                cluster.processes
            ),
            "give one \"host:port\" per process, process 0 first (or leave it out and pass --hostfile)".to_owned(),
        ));
    }
    for address in cluster.addresses.iter().filter(|a| !is_host_port(a)) {
        problems.push(problem(
            &at("addresses"),
            format!("`{address}` is not \"host:port\""),
            "e.g. \"10.0.0.5:2101\" or \"pulse-1.pulse:2101\"".to_owned(),
        ));
    }
    for (key, value) in [
        ("connect_timeout", cluster.connect_timeout),
        ("stall_timeout", cluster.stall_timeout),
    ] {
        if value.as_millis() == 0 {
            problems.push(problem(
                &at(key),
                format!("`{key}` must be greater than 0"),
                "e.g. \"60s\" for connect_timeout, \"10s\" for stall_timeout".to_owned(),
            ));
        }
    }
    problems
}

/// The hash every process of a cluster compares at start-up: of the resolved
/// pipeline (after `${VAR}` interpolation and defaults) with `workers` as this
/// run uses it, without `[engine.cluster]`, whose `process` differs by design
/// (and whose addresses may: a process may bind `0.0.0.0` where the others
/// connect to its name).
pub fn plan_hash(config: &PipelineConfig, workers: usize) -> u64 {
    let mut resolved = config.clone();
    resolved.engine.cluster = None;
    resolved.engine.workers = workers;
    // The parsed configuration holds only ordered maps, so its debug form is
    // the same text in every process built from the same source.
    fnv1a(format!("{resolved:?}").as_bytes())
}

/// 64-bit FNV-1a: stable across builds and platforms, unlike std's hasher.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Pipeline;

    fn parse(text: &str) -> PipelineConfig {
        Pipeline::parse(Path::new("p.toml"), text, &|_| None)
            .expect("a valid pipeline")
            .config
    }

    const PIPELINE: &str = r#"
[engine]
workers = 2
[engine.cluster]
processes = 3
process = 1
addresses = ["127.0.0.1:7001", "127.0.0.1:7002", "127.0.0.1:7003"]
[sources.s]
type = "generator"
[operators.w]
type = "window"
inputs = ["s"]
window = { tumbling = "10s" }
key = ["tenant"]
aggregates = ["count", "avg"]
[sinks.out]
type = "stdout"
inputs = ["w"]
"#;

    #[test]
    fn the_plan_hash_ignores_the_process_index_but_not_the_plan() {
        let one = parse(PIPELINE);
        let other_process = parse(&PIPELINE.replace("process = 1", "process = 2"));
        assert_eq!(plan_hash(&one, 2), plan_hash(&other_process, 2));
        assert_eq!(plan_hash(&one, 2), plan_hash(&parse(PIPELINE), 2), "stable");
        let other_window = parse(&PIPELINE.replace("\"10s\"", "\"5s\""));
        assert_ne!(plan_hash(&one, 2), plan_hash(&other_window, 2));
        assert_ne!(
            plan_hash(&one, 2),
            plan_hash(&one, 3),
            "the worker count is part of the plan"
        );
    }

    #[test]
    fn settings_come_from_the_file_and_the_command_line_overrides_them() {
        let config = parse(PIPELINE);
        let cluster = config.engine.cluster.as_ref();
        let settings = ClusterSettings::resolve(cluster, &ClusterOverrides::default())
            .unwrap()
            .unwrap();
        assert_eq!((settings.processes, settings.process), (3, 1));
        assert_eq!(settings.connect_timeout, Duration::from_secs(60));
        assert_eq!(settings.max_lead, Duration::from_secs(2));
        let dir = std::env::temp_dir().join(format!("pulse-hostfile-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let hostfile = dir.join("hosts");
        std::fs::write(&hostfile, "# three machines\na:1\n\nb:2\n").unwrap();
        let overrides = ClusterOverrides {
            processes: Some(2),
            process: Some(0),
            hostfile: Some(hostfile),
        };
        let settings = ClusterSettings::resolve(cluster, &overrides).unwrap().unwrap();
        assert_eq!(settings.addresses, ["a:1", "b:2"]);
        assert_eq!(settings.process, 0);
        std::fs::remove_dir_all(&dir).unwrap();
        let one = ClusterOverrides {
            processes: Some(1),
            ..ClusterOverrides::default()
        };
        assert_eq!(
            ClusterSettings::resolve(None, &one).unwrap(),
            None,
            "one process is no cluster"
        );
        let wrong = ClusterOverrides {
            process: Some(3),
            ..ClusterOverrides::default()
        };
        let error = ClusterSettings::resolve(cluster, &wrong).unwrap_err().to_string();
        assert!(error.contains("process index 3"), "{error}");
    }

    #[test]
    fn validation_names_each_bad_key() {
        let text = PIPELINE
            .replace("process = 1", "process = 3")
            .replace("\"127.0.0.1:7003\"", "\"nowhere\"");
        let error = Pipeline::parse(Path::new("p.toml"), &text, &|_| None)
            .unwrap_err()
            .to_string();
        assert!(error.contains("`process` is 3 but there are 3 processes"), "{error}");
        assert!(error.contains("`nowhere` is not \"host:port\""), "{error}");
    }
}
