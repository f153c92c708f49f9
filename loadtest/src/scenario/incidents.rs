//! `pulse-loadtest incidents`: how long a late cause takes to re-rank its
//! incident, from the moment it is posted to the moment a subscriber of the
//! `/ws` topic `incidents` receives the version whose causes include it.
//!
//! The target runs a pipeline with an `http` source into an `incidents`
//! operator (e.g. `pipelines/bench-rca-latency.toml`). While background
//! metrics (`--rate` events/s, about `--background-pods` pods) flow, stamped
//! with the wall clock so that the watermark advances with it, the harness
//! opens incidents one after another: each a small application of its own
//! (a service calling a database, pods, a node, a config map, a volume) whose
//! API pod logs an error. Once the incident's first version arrives, it posts
//! late causes into it one at a time (an OOM kill of the database pod, disk
//! pressure on the node, a rollout, a config map change), each stamped with
//! its arrival time, and times each until the version ranking it arrives.
//! `--count` causes are timed in all (default 100), at most
//! `--causes-per-incident` per incident and only within 45 s of its first
//! error (the operator looks 60 s past it for causes).
//!
//! Series: `incidents.cause_to_ranking` (POST of the cause → the version
//! with it received), `incidents.open` (POST of the first error → the
//! incident's first version received) and `incidents.background` (each
//! background batch's POST → 202). A version that does not come within
//! `--wait` counts as the error `timeout`.

use std::time::{Duration, Instant};

use anyhow::Context;
use futures_util::StreamExt;
use hyper::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::Message;

use super::windows::{self, Subscription};
use super::{Run, RunArgs, ingest, unix_millis};
use crate::http::GatewayClient;
use crate::pace;
use crate::record::Series;
use crate::report::Report;
use crate::target::parse_duration;

/// The series of cause-to-ranking latency.
pub const CAUSE_TO_RANKING: &str = "incidents.cause_to_ranking";

/// The series of error-to-incident latency.
pub const OPEN: &str = "incidents.open";

/// The series of background posts.
pub const BACKGROUND: &str = "incidents.background";

/// How long after an incident's first error causes are still posted into it
/// (the operator ranks signals up to 60 s after it).
const CAUSE_WINDOW_MS: u64 = 45_000;

/// Options of `pulse-loadtest incidents`.
#[derive(Clone, Debug, clap::Args)]
pub struct IncidentsArgs {
    /// `--rate`: background events per second (default 1000); `--count`:
    /// causes to time (default 100); `--duration`: the most the run may take.
    #[command(flatten)]
    pub run: RunArgs,
    /// Causes posted into one incident before the next is opened (1 to 4).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=4))]
    pub causes_per_incident: u64,
    /// Pods the background metrics are about.
    #[arg(long, default_value_t = 200)]
    pub background_pods: u32,
    /// How long to wait for a version before counting a `timeout`.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub wait: Duration,
}

/// One version of an incident, as received.
#[derive(Clone, Debug, PartialEq)]
pub struct Version {
    /// When it was received.
    pub received: Instant,
    /// The incident.
    pub incident_id: String,
    /// Name of the resource whose error opened it.
    pub symptom: String,
    /// Its causes as (resource name, event time).
    pub causes: Vec<(String, u64)>,
}

/// The version an `incident` message carries; `None` for any other message.
///
/// # Examples
///
/// ```
/// use std::time::Instant;
/// use pulse_loadtest::scenario::incidents::version_of;
///
/// let text = r#"{"type":"incident","incident_id":"acme-1","symptom":{"kind":"Pod","namespace":"bench","name":"api-1-0"},
///     "causes":[{"resource":{"kind":"Pod","namespace":"bench","name":"db-1-0"},"event_ts":1700}]}"#;
/// let version = version_of(text, Instant::now()).unwrap();
/// assert_eq!((version.incident_id.as_str(), version.symptom.as_str()), ("acme-1", "api-1-0"));
/// assert_eq!(version.causes, [("db-1-0".to_owned(), 1700)]);
/// assert!(version_of(r#"{"type":"stats"}"#, Instant::now()).is_none());
/// ```
pub fn version_of(text: &str, received: Instant) -> Option<Version> {
    let message: Value = serde_json::from_str(text).ok()?;
    if message["type"] != "incident" {
        return None;
    }
    let causes = message["causes"]
        .as_array()?
        .iter()
        .filter_map(|cause| {
            Some((
                cause["resource"]["name"].as_str()?.to_owned(),
                cause["event_ts"].as_u64()?,
            ))
        })
        .collect();
    Some(Version {
        received,
        incident_id: message["incident_id"].as_str()?.to_owned(),
        symptom: message["symptom"]["name"].as_str()?.to_owned(),
        causes,
    })
}

/// The small application incident `index` of run `run` is about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct App {
    api: String,
    api_pod: String,
    db: String,
    db_pod: String,
    node: String,
}

/// The namespace of every resource of the incidents.
const NAMESPACE: &str = "bench";

fn resource(kind: &str, name: &str) -> Value {
    let namespace = if kind == "Node" { "" } else { NAMESPACE };
    json!({"kind": kind, "namespace": namespace, "name": name})
}

impl App {
    /// Application `index` of run `run` (names unique to the run).
    pub fn new(run: u64, index: u64) -> Self {
        let api = format!("api-{run}-{index}");
        let db = format!("db-{run}-{index}");
        Self {
            api_pod: format!("{api}-0"),
            db_pod: format!("{db}-0"),
            node: format!("node-{run}-{index}"),
            api,
            db,
        }
    }

    /// The pod whose error opens the incident.
    pub fn symptom(&self) -> &str {
        &self.api_pod
    }

    /// Its topology and the API pod's error, all at `ts`.
    ///
    /// # Examples
    ///
    /// ```
    /// use pulse_loadtest::scenario::incidents::App;
    ///
    /// let events = App::new(7, 1).opening(1_000);
    /// assert!(events.iter().all(|e| e["ts"] == 1_000));
    /// assert_eq!(events.last().unwrap()["level"], "error");
    /// ```
    pub fn opening(&self, ts: u64) -> Vec<Value> {
        let edge = |from: Value, relation: &str, to: Value| {
            json!({"ts": ts, "source": "state-watcher", "kind": "topology", "from": from, "to": to,
                   "relation": relation, "op": "upsert"})
        };
        let (api_pod, db_pod) = (resource("Pod", &self.api_pod), resource("Pod", &self.db_pod));
        let replica_set = resource("ReplicaSet", &format!("{}-rs", self.api));
        vec![
            edge(resource("Service", &self.api), "SELECTS", api_pod.clone()),
            edge(resource("Service", &self.db), "SELECTS", db_pod.clone()),
            edge(resource("Service", &self.api), "CALLS", resource("Service", &self.db)),
            edge(resource("Deployment", &self.api), "OWNS", replica_set.clone()),
            edge(replica_set, "OWNS", api_pod.clone()),
            edge(api_pod.clone(), "RUNS_ON", resource("Node", &self.node)),
            edge(db_pod, "RUNS_ON", resource("Node", &self.node)),
            edge(
                api_pod.clone(),
                "USES",
                resource("ConfigMap", &format!("{}-config", self.api)),
            ),
            json!({"ts": ts, "source": "vector", "kind": "log", "resource": api_pod, "level": "error",
                   "message": format!("connection refused calling {}", self.db)}),
        ]
    }

    /// The late causes it takes, in the order they are posted: (resource, reason, severity).
    pub fn causes(&self) -> [(Value, &'static str, &'static str); 4] {
        [
            (resource("Pod", &self.db_pod), "OOMKilled", "warning"),
            (resource("Node", &self.node), "NodeHasDiskPressure", "warning"),
            (resource("Deployment", &self.api), "ScalingReplicaSet", "info"),
            (
                resource("ConfigMap", &format!("{}-config", self.api)),
                "Updated",
                "info",
            ),
        ]
    }
}

/// A cause event at `ts`.
fn cause_event(resource: &Value, reason: &str, severity: &str, ts: u64) -> Value {
    json!({"ts": ts, "source": "kubelet", "kind": "k8s_event", "resource": resource, "reason": reason,
           "severity": severity, "message": format!("{reason} (benchmark cause)")})
}

/// Posts `events`; the error kind when they were not all accepted.
async fn post(client: &GatewayClient, events: &[Value]) -> Result<(), String> {
    let reply = client
        .call(Method::POST, ingest::PATH, Some(&Value::from(events.to_vec())))
        .await
        .map_err(|error| error.kind().to_owned())?;
    if reply.status != StatusCode::ACCEPTED {
        return Err(crate::http::status_kind(reply.status));
    }
    match reply.json()["accepted"].as_u64() {
        Some(accepted) if accepted == events.len() as u64 => Ok(()),
        _ => Err("events_rejected".into()),
    }
}

/// Reads incident versions off `socket` into `versions` until `stop`.
async fn read_versions(
    mut socket: Subscription,
    versions: mpsc::UnboundedSender<Version>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let frame = tokio::select! {
            biased;
            _ = stop.wait_for(|stopped| *stopped) => break,
            frame = socket.next() => frame,
        };
        match frame {
            Some(Ok(Message::Text(text))) => {
                if let Some(version) = version_of(text.as_str(), Instant::now())
                    && versions.send(version).is_err()
                {
                    break;
                }
            }
            Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
            Some(Ok(_)) => {}
        }
    }
    let _ = socket.close(None).await;
}

/// The first version received within `wait` that `matches`; earlier ones are dropped.
async fn wait_for(
    versions: &mut mpsc::UnboundedReceiver<Version>,
    wait: Duration,
    matches: impl Fn(&Version) -> bool,
) -> Option<Version> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, versions.recv()).await {
            Ok(Some(version)) if matches(&version) => return Some(version),
            Ok(Some(_)) => continue,
            Ok(None) | Err(_) => return None,
        }
    }
}

/// Background metrics: every 100 ms, a tenth of `rate` samples of pods'
/// CPU, stamped over the last 100 ms; returns the events posted and accepted.
async fn post_background(
    client: GatewayClient,
    rate: f64,
    pods: u32,
    series: Series,
    mut stop: watch::Receiver<bool>,
) -> (u64, u64) {
    const TICK: Duration = Duration::from_millis(100);
    let per_tick = (rate * TICK.as_secs_f64()).round().max(1.0) as u64;
    let mut ticks = tokio::time::interval(TICK);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let (mut sent, mut accepted, mut n) = (0u64, 0u64, 0u64);
    let (done_tx, mut done) = mpsc::unbounded_channel::<u64>();
    loop {
        tokio::select! {
            biased;
            _ = stop.wait_for(|stopped| *stopped) => break,
            _ = ticks.tick() => {}
        }
        while let Ok(count) = done.try_recv() {
            accepted += count;
        }
        let now = unix_millis();
        let events: Vec<Value> = (0..per_tick)
            .map(|i| {
                n += 1;
                let pod = n % u64::from(pods.max(1));
                // A steady level with noise: onsets are rare, as in a healthy fleet.
                let value = 0.3 + 0.05 * (((n * 7919) % 100) as f64 / 100.0);
                json!({"ts": now.saturating_sub(100 - 100 * i / per_tick), "source": "prometheus", "kind": "metric",
                       "metric": "cpu_usage", "value": value,
                       "labels": {"namespace": "bench-background", "pod": format!("bg-{pod}")}})
            })
            .collect();
        sent += per_tick;
        let (client, series, done_tx) = (client.clone(), series.clone(), done_tx.clone());
        tokio::spawn(async move {
            let started = Instant::now();
            match post(&client, &events).await {
                Ok(()) => {
                    series.record_ok(started.elapsed());
                    let _ = done_tx.send(events.len() as u64);
                }
                Err(kind) => series.record_error(&kind),
            }
        });
    }
    drop(done_tx);
    // Posts still in flight finish within the client's timeout.
    while let Ok(Some(count)) = tokio::time::timeout(Duration::from_secs(15), done.recv()).await {
        accepted += count;
    }
    (sent, accepted)
}

/// What the timing loop did.
struct Timed {
    incidents: u64,
    causes: u64,
}

/// Opens incidents one after another and times late causes into them.
async fn time_causes(
    client: &GatewayClient,
    versions: &mut mpsc::UnboundedReceiver<Version>,
    args: &IncidentsArgs,
    run: &Run,
) -> Timed {
    let (open, ranked) = (run.recorder.series(OPEN), run.recorder.series(CAUSE_TO_RANKING));
    let wanted = args.run.count.unwrap_or(100);
    let deadline = Instant::now() + args.run.duration;
    let run_id = unix_millis() % 1_000_000;
    let mut timed = Timed {
        incidents: 0,
        causes: 0,
    };
    let mut index = 0;
    while timed.causes < wanted && Instant::now() < deadline && !pace::interrupted() {
        index += 1;
        let app = App::new(run_id, index);
        let opened_at = unix_millis();
        let posted = Instant::now();
        if let Err(kind) = post(client, &app.opening(opened_at)).await {
            open.record_error(&kind);
            continue;
        }
        let Some(first) = wait_for(versions, args.wait, |v| v.symptom == app.symptom()).await else {
            open.record_error("timeout");
            continue;
        };
        open.record_ok(first.received.saturating_duration_since(posted));
        timed.incidents += 1;
        let causes = app.causes();
        for (resource, reason, severity) in causes.iter().take(args.causes_per_incident as usize) {
            let ts = unix_millis();
            if ts > opened_at + CAUSE_WINDOW_MS || timed.causes >= wanted || pace::interrupted() {
                break;
            }
            let name = resource["name"].as_str().unwrap_or_default().to_owned();
            let sent = Instant::now();
            if let Err(kind) = post(client, &[cause_event(resource, reason, severity, ts)]).await {
                ranked.record_error(&kind);
                continue;
            }
            let id = first.incident_id.as_str();
            let with_cause =
                |v: &Version| v.incident_id == id && v.causes.iter().any(|(cause, at)| *cause == name && *at == ts);
            match wait_for(versions, args.wait, with_cause).await {
                Some(version) => ranked.record_ok(version.received.saturating_duration_since(sent)),
                None => ranked.record_error("timeout"),
            }
            timed.causes += 1;
        }
    }
    timed
}

/// Runs `pulse-loadtest incidents` and returns its report.
pub fn run(args: &IncidentsArgs) -> anyhow::Result<Report> {
    let target = args.run.checked_target()?;
    let rate = args.run.rate.unwrap_or(1000.0);
    super::runtime()?.block_on(async {
        let client = super::signed_in_client(&args.run, &target).await?;
        ingest::ensure_ingest(&client).await?;
        let credential = client.credential().cloned().context("signed in without a credential")?;
        let socket = windows::subscribe_to(&target.ws_url, &credential, args.run.timeout, "incidents").await?;
        let mut run = Run::start(args.run.duration);
        let (stop, stopped) = watch::channel(false);
        let (versions_tx, mut versions) = mpsc::unbounded_channel();
        tokio::spawn(read_versions(socket, versions_tx, stopped.clone()));
        let background = tokio::spawn(post_background(
            client.clone(),
            rate,
            args.background_pods,
            run.recorder.series(BACKGROUND),
            stopped,
        ));
        // A few seconds of background first: the watermark moves with the wall clock.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let timed = time_causes(&client, &mut versions, args, &run).await;
        let _ = stop.send(true);
        let (sent, accepted) = background.await.context("the background task panicked")?;
        run.notes.push(format!(
            "{} causes timed in {} incidents, up to {} per incident, one at a time, each stamped with its \
             arrival time; latency = the version listing it received over /ws (topic incidents) minus its POST",
            timed.causes, timed.incidents, args.causes_per_incident
        ));
        run.notes.push(format!(
            "background: {rate} metric events/s about {} pods, stamped with the wall clock; {sent} posted, \
             {accepted} accepted",
            args.background_pods
        ));
        Ok(run.finish("incidents", &args.run))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_cause_is_on_a_resource_of_its_own_within_three_steps_of_the_symptom() {
        let app = App::new(1, 2);
        let opening = app.opening(5);
        let touched: Vec<&Value> = opening
            .iter()
            .filter(|e| e["kind"] == "topology")
            .flat_map(|e| [&e["from"], &e["to"]])
            .collect();
        let causes = app.causes();
        for (resource, _, _) in &causes {
            assert!(touched.contains(&resource), "{resource} is in the topology");
        }
        let mut names: Vec<&str> = causes.iter().map(|(r, _, _)| r["name"].as_str().unwrap()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(
            names.len(),
            4,
            "one cause per resource: the ranking keeps one per resource"
        );
        assert_ne!(App::new(1, 2), App::new(1, 3));
        assert_eq!(app.symptom(), "api-1-2-0");
    }

    #[test]
    fn a_node_cause_has_the_empty_namespace_and_its_own_time() {
        let event = cause_event(&resource("Node", "n"), "NodeHasDiskPressure", "warning", 42);
        assert_eq!(event["resource"]["namespace"], "");
        assert_eq!(event["ts"], 42);
    }
}
