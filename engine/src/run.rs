//! Running a pipeline: workers, signals, and the report at the end.

use std::sync::Arc;
use std::time::{Duration, Instant};

use pulse_core::{HealthBoard, Shutdown};
use pulse_gateway::live::DEFAULT_ANOMALIES_PER_TENANT;
use pulse_gateway::{LiveServices, Readiness};
use pulse_live::{AnalyticsViews, LiveHub, WindowViews};
use pulse_sinks::LiveOutputs;

use crate::cluster::handshake::{self, Identity};
use crate::cluster::links::{DeliveryLink, Links};
use crate::cluster::liveness::WorkerSteps;
use crate::cluster::{self, ClusterError, ClusterOverrides, ClusterSettings};
use crate::config::{Pipeline, PipelineConfig};
use crate::plan::{self, LivePlan, PlanError, Resources};
use crate::serve::GatewayServer;
use crate::sink_plan::SinkPlacement;
use crate::telemetry;

/// Options of one run that are not in the pipeline file.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Overrides `[engine] workers`.
    pub workers: Option<usize>,
    /// Whether SIGINT/SIGTERM stop the run (the binary: yes; tests: no).
    pub handle_signals: bool,
    /// Stops the run when triggered (also fired by signals).
    pub shutdown: Shutdown,
}

/// What a finished run did.
#[derive(Clone, Debug)]
pub struct RunReport {
    /// Worker threads used.
    pub workers: usize,
    /// Wall time from start to the last flush.
    pub elapsed: Duration,
    /// Whether it ended because it was asked to stop.
    pub interrupted: bool,
    /// Failed sink writes (0 when no metrics recorder is installed).
    pub sink_errors: u64,
}

/// Commits the end of what bounded Kafka sources read, now that every window
/// has been emitted and every sink flushed. An interrupted run adds nothing to
/// what its readers committed while it ran: its open windows were discarded,
/// so their events must be read again.
fn commit_kafka_offsets(resources: &Resources, interrupted: bool) {
    if interrupted {
        return;
    }
    for plan in resources.kafka_sources() {
        let Some(group) = &plan.final_commit else { continue };
        let offsets = plan.ended.lock().unwrap_or_else(|p| p.into_inner()).clone();
        match group.commit(&offsets) {
            Ok(()) => {
                tracing::info!(source = %plan.settings.component, partitions = offsets.len(), "committed offsets")
            }
            Err(error) => tracing::error!(source = %plan.settings.component, %error, "committing offsets failed"),
        }
    }
}

/// The run's counters for `GET /api/v1/stats`: a summary a dashboard can show
/// as is (events read by the sources, window rows closed, late events, dead
/// letters, sink errors) and every counter, totalled per metric and per component.
fn pipeline_stats(config: &PipelineConfig) -> impl Fn() -> serde_json::Value + Send + Sync + 'static {
    let sources: Vec<String> = config.sources.keys().cloned().collect();
    let windows: Vec<String> = config
        .operators
        .iter()
        .filter(|(_, operator)| operator.as_window().is_some())
        .map(|(name, _)| name.clone())
        .collect();
    move || {
        let totals = telemetry::counter_totals();
        let total = |name: &str| totals.get(name).copied().unwrap_or(0);
        let sum = |metric: &str, components: &[String]| -> u64 {
            components.iter().map(|c| total(&format!("{metric}{{{c}}}"))).sum()
        };
        serde_json::json!({
            "events_in_total": sum("pulse_component_sent_events_total", &sources),
            "windows_out_total": sum("pulse_component_sent_events_total", &windows),
            "late_events_total": total("pulse_late_events_total"),
            "dead_letters_total": total("pulse_dead_letters_total"),
            "sink_errors_total": total("pulse_sink_errors_total"),
            "counters": totals,
        })
    }
}

/// Watches the run from a thread of its own until it ends (`ended`): logs
/// components that become unhealthy or recover, keeps
/// `pulse_component_up{component}`, and, with a gateway, reports not ready
/// while a component is unhealthy and from the moment `shutdown` fires (while
/// the pipeline drains).
fn watch_health(health: HealthBoard, readiness: Option<Readiness>, shutdown: Shutdown, ended: Shutdown) {
    // Set once before the thread runs, so even a run shorter than one round reports it.
    set_up_gauges(&health.statuses());
    let watcher = std::thread::Builder::new().name("pulse-health".into()).spawn(move || {
        let mut last: Vec<(String, Option<String>)> = Vec::new();
        while !ended.is_triggered() {
            let statuses = health.statuses();
            for (component, problem) in &statuses {
                let before = last.iter().find(|(c, _)| c == component).and_then(|(_, p)| p.as_ref());
                match (before, problem) {
                    (None, Some(problem)) => tracing::warn!(%component, %problem, "unhealthy; retrying"),
                    (Some(problem), None) => tracing::info!(%component, was = %problem, "recovered"),
                    _ => {}
                }
            }
            set_up_gauges(&statuses);
            let healthy = statuses.iter().all(|(_, problem)| problem.is_none());
            if let Some(readiness) = &readiness {
                if shutdown.is_triggered() {
                    readiness.set_shutting_down();
                }
                readiness.set_pipeline_ready(healthy);
            }
            last = statuses;
            std::thread::sleep(Duration::from_millis(200));
        }
    });
    if let Err(error) = watcher {
        tracing::warn!(%error, "cannot watch the run's health");
    }
}

/// Sets `pulse_component_up{component}` to 1 or 0 for every reporting
/// component; a `sink:topic` part also counts for `sink`, which is up only
/// while all its parts are.
fn set_up_gauges(statuses: &[(String, Option<String>)]) {
    let mut up: std::collections::BTreeMap<&str, bool> = std::collections::BTreeMap::new();
    for (component, problem) in statuses {
        let healthy = problem.is_none();
        *up.entry(component).or_insert(true) &= healthy;
        if let Some((whole, _topic)) = component.split_once(':') {
            *up.entry(whole).or_insert(true) &= healthy;
        }
    }
    for (component, healthy) in up {
        metrics::gauge!("pulse_component_up", "component" => component.to_owned()).set(if healthy { 1.0 } else { 0.0 });
    }
}

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The pipeline could not start.
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// Signal handlers could not be installed.
    #[error("cannot install signal handlers: {0}")]
    Signals(std::io::Error),
    /// The timely runtime failed (a worker panicked, or workers could not start).
    #[error("the dataflow failed: {0}")]
    Dataflow(String),
    /// A source could not read on (e.g. an I/O error in the middle of a
    /// file): its results would be incomplete.
    #[error("{}", .0.join("; "))]
    Source(Vec<String>),
    /// The pipeline's gateway could not start.
    #[error("the gateway cannot start: {0}")]
    Gateway(#[from] pulse_gateway::GatewayError),
    /// The cluster could not form, or lost a peer before its end.
    #[error(transparent)]
    Cluster(#[from] ClusterError),
}

/// Runs `pipeline` until its sources end or it is stopped, then drains it
/// (in a cluster when its `[engine.cluster]` says so).
pub fn run(pipeline: &Pipeline, options: RunOptions) -> Result<RunReport, RunError> {
    run_in_cluster(pipeline, options, &ClusterOverrides::default())
}

/// A process's part of a cluster, joined before anything opens.
struct Member {
    settings: ClusterSettings,
    data: Vec<Option<std::net::TcpStream>>,
    links: Links,
    /// When each local worker last stepped, watched by `links`.
    steps: WorkerSteps,
}

/// [`run`], with the cluster settings of the command line (`--processes`,
/// `--process`, `--hostfile`) over those of the pipeline file.
pub fn run_in_cluster(
    pipeline: &Pipeline,
    options: RunOptions,
    overrides: &ClusterOverrides,
) -> Result<RunReport, RunError> {
    let workers = options.workers.unwrap_or(pipeline.config.engine.workers).max(1);
    let shutdown = options.shutdown.clone();
    let cluster = ClusterSettings::resolve(pipeline.config.engine.cluster.as_ref(), overrides)?;
    if options.handle_signals {
        for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            // A second signal while draining exits at once.
            signal_hook::flag::register_conditional_shutdown(signal, 130, shutdown.flag())
                .map_err(RunError::Signals)?;
            signal_hook::flag::register(signal, shutdown.flag()).map_err(RunError::Signals)?;
        }
    }
    // The handshake comes first: a process that would run another plan
    // opens no file and no connection.
    let member = match cluster {
        Some(settings) => Some(join(&settings, &pipeline.config, workers, &shutdown)?),
        None => None,
    };
    let process = member.as_ref().map_or(0, |m| m.settings.process);
    let (gateway, live) = match &pipeline.config.gateway {
        Some(config) => {
            let outputs = LiveOutputs {
                hub: LiveHub::new(config.live.clone()),
                views: WindowViews::new(&config.retention),
            };
            let analytics = AnalyticsViews::new(DEFAULT_ANOMALIES_PER_TENANT);
            let incidents = crate::live_incidents::IncidentOutputs::default();
            let services = LiveServices::new(
                outputs.hub.clone(),
                outputs.views.clone(),
                pipeline_stats(&pipeline.config),
            )
            .with_analytics(analytics.clone())
            .with_incidents(incidents.incidents.clone(), incidents.resources.clone());
            let pipeline = pipeline
                .path
                .file_stem()
                .map_or_else(|| "pipeline".to_owned(), |stem| stem.to_string_lossy().into_owned());
            // Process 0 serves the gateway; the others publish nothing (their
            // live rows go to worker 0) but build the same dataflow.
            let server = match process {
                0 => Some(GatewayServer::start(config.clone(), Some(services))?),
                _ => {
                    // The other processes serve their own metrics only.
                    let address = cluster::metrics_endpoint::address_of(config.listen, process);
                    match address.map(cluster::metrics_endpoint::serve) {
                        Some(Ok(())) => {}
                        Some(Err(error)) => tracing::warn!(%error, "cannot serve /metrics of this process"),
                        None => tracing::warn!("no port for /metrics of this process"),
                    }
                    None
                }
            };
            (
                server,
                Some(LivePlan {
                    pipeline,
                    outputs,
                    analytics,
                    incidents,
                }),
            )
        }
        None => (None, None),
    };
    let config = Arc::new(pipeline.config.clone());
    let placement = match &member {
        Some(_) => SinkPlacement {
            gather: true,
            writes_gathered: process == 0,
        },
        None => SinkPlacement::ONE_PROCESS,
    };
    let mut resources = Resources::prepare_placed(config, shutdown.clone(), live, placement)?;
    if let Some(member) = &member {
        resources.limit_lead(member.settings.max_lead);
    }
    let resources = Arc::new(resources);
    if let Some(member) = &member {
        let remote = (0..member.settings.processes)
            .map(|peer| (peer != process).then(|| resources.register_remote_delivery()))
            .collect();
        let remote_sessions = (0..member.settings.processes)
            .map(|peer| (peer != process).then(|| resources.register_remote_sessions()))
            .collect();
        member.links.attach_delivery(DeliveryLink {
            local: resources.kafka_delivered(),
            remote,
            sessions: resources.kafka_sessions(),
            remote_sessions,
        });
        member.links.attach_health(resources.health().clone());
    }
    if let (Some(server), Some(queue)) = (&gateway, resources.ingest_queue()) {
        server.attach_ingest(queue.clone())?;
        tracing::info!(
            source = queue.component(),
            capacity = queue.capacity(),
            "accepting events at POST /api/v1/events"
        );
    }
    if let (Some(server), Some(ml)) = (&gateway, &pipeline.config.ml) {
        server.attach_models(Arc::new(crate::ml_service::RegistryModels::new(ml)))?;
        tracing::info!(models_dir = %ml.registry_dir().display(), "serving the model API at /api/v1/ml");
    }
    tracing::info!(pipeline = %pipeline.path.display(), workers, "starting");
    let started = Instant::now();
    let worker_resources = Arc::clone(&resources);
    // In a cluster each worker runs its own step loop, so that one stuck
    // inside an operator is noticed (`cluster::liveness`).
    let stepping = member.as_ref().map(|member| {
        let park = (member.settings.stall_timeout / 5).clamp(Duration::from_millis(10), Duration::from_secs(1));
        (member.steps.clone(), member.settings.process * workers, park)
    });
    let build = move |worker: &mut timely::worker::Worker| {
        worker.dataflow::<pulse_core::EventTime, _, _>(|scope| plan::build(scope, &worker_resources));
        if let Some((steps, first, park)) = &stepping {
            let local = worker.index() - first;
            cluster::liveness::run_worker(worker, steps, local, *park);
        }
    };
    let (guards, links) = match member {
        Some(member) => (
            cluster::execute(member.data, member.settings.process, workers, build),
            Some(member.links),
        ),
        None => (timely::execute(timely::Config::process(workers), build), None),
    };
    let guards = guards.map_err(RunError::Dataflow)?;
    // Sources and sinks were opened by `prepare`, and the workers run.
    let ended = Shutdown::new();
    let readiness = gateway.as_ref().map(GatewayServer::readiness);
    if let Some(readiness) = &readiness {
        readiness.show_components(resources.health().clone());
        readiness.set_pipeline_ready(true);
    }
    watch_health(
        resources.health().clone(),
        readiness.clone(),
        shutdown.clone(),
        ended.clone(),
    );
    let joined: Result<Vec<()>, String> = guards.join().into_iter().collect();
    ended.trigger();
    if let Some(links) = &links {
        links.finish();
    }
    if let Some(readiness) = &readiness {
        readiness.set_pipeline_ready(false);
    }
    if let Some(server) = gateway {
        server.stop();
    }
    joined.map_err(RunError::Dataflow)?;
    let failures = resources.source_failures();
    if !failures.is_empty() {
        // Nothing read after the failure was delivered: commit nothing either.
        return Err(RunError::Source(failures));
    }
    if let Some(links) = &links
        && resources.kafka_sources().any(|plan| plan.final_commit.is_some())
        && !shutdown.is_triggered()
    {
        // What this process read is written by the sinks of every process
        // (gathered on process 0, or exchanged by key): commit only once they are done.
        links
            .wait_for_peers(process, Duration::from_secs(60))
            .map_err(|why| RunError::Source(vec![format!("offsets not committed: {why}")]))?;
    }
    commit_kafka_offsets(&resources, shutdown.is_triggered());
    let totals = telemetry::counter_totals();
    let total = |name: &str| totals.get(name).copied().unwrap_or(0);
    let report = RunReport {
        workers,
        elapsed: started.elapsed(),
        interrupted: shutdown.is_triggered(),
        sink_errors: total("pulse_sink_errors_total"),
    };
    if let Some((rows, p50, p99)) = telemetry::histogram_summary("pulse_window_result_delay_seconds") {
        tracing::info!(
            rows,
            p50_ms = format!("{:.1}", p50 * 1e3),
            p99_ms = format!("{:.1}", p99 * 1e3),
            "window results: wall-clock delay after the window end"
        );
    }
    if links.is_some() {
        tracing::info!(
            sent_bytes = total("pulse_cluster_sent_bytes_total"),
            received_bytes = total("pulse_cluster_received_bytes_total"),
            held_back_ms = total("pulse_source_held_back_milliseconds_total"),
            "exchanged with the other processes (held_back_ms: how long sources waited for slower processes)"
        );
    }
    tracing::info!(
        elapsed_s = format!("{:.3}", report.elapsed.as_secs_f64()),
        late_events = total("pulse_late_events_total"),
        dead_letters = total("pulse_dead_letters_total"),
        discarded_windows = total("pulse_window_discarded_windows_total"),
        sink_errors = report.sink_errors,
        interrupted = report.interrupted,
        "finished"
    );
    Ok(report)
}

/// Forms the cluster: the handshake with every peer, then the control links
/// and the panic hook that turn a lost peer into one line and an exit.
fn join(
    settings: &ClusterSettings,
    config: &PipelineConfig,
    workers: usize,
    shutdown: &Shutdown,
) -> Result<Member, ClusterError> {
    let me = Identity {
        process: settings.process,
        processes: settings.processes,
        workers,
        plan: cluster::plan_hash(config, workers),
    };
    tracing::info!(
        process = me.process,
        processes = me.processes,
        address = settings.address(me.process),
        plan = format!("{:016x}", me.plan),
        "joining the cluster"
    );
    let connected = handshake::connect(settings, me)?;
    cluster::links::install_panic_hook(settings);
    let steps = WorkerSteps::new(workers);
    let links = Links::start(settings, connected.control, shutdown.clone(), steps.clone())?;
    tracing::info!(process = me.process, processes = me.processes, "cluster formed");
    Ok(Member {
        settings: settings.clone(),
        data: connected.data,
        links,
        steps,
    })
}
