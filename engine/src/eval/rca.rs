//! `pulse eval rca`: replays an events file through the incident operator,
//! writes the final incidents and, given an answer key, scores the ranked
//! causes (accuracy@1/3/5, mean rank, incident precision, per fault type)
//! for the causal ranker and the baseline formula.
//!
//! The file may mix tenants and be a few seconds out of order: events are
//! replayed in event-time order, each at its own (coarsened) event time, so
//! the run is the one a pipeline makes once its watermark has passed them.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::Args;
use pulse_connectors::generator::k8s::{AnswerKey, FaultAnswer};
use pulse_core::{Event, ResourceRef};
use pulse_operators::incidents::rank::RankedCause;
use pulse_operators::incidents::settled::SettledExt;
use pulse_operators::incidents::{IncidentCounters, IncidentReport, IncidentsConfig, IncidentsExt};
use serde_json::json;
use timely::dataflow::InputHandle;
use timely::dataflow::operators::capture::{Capture, Extract};
use timely::dataflow::operators::{Input, Probe};

/// Arguments of `pulse eval rca`.
#[derive(Debug, Args)]
pub struct RcaArgs {
    /// The events, one JSON event per line.
    pub events: PathBuf,
    /// Where to write the final incidents, one JSON object per line.
    #[arg(long)]
    pub out: PathBuf,
    /// An answer key (`pulse generate --profile k8s --answers`) to score against.
    #[arg(long)]
    pub answers: Option<PathBuf>,
    /// With `--answers`: also print each fault the causal ranker missed (no
    /// incident, or its cause not first) and what the incidents said instead.
    #[arg(long)]
    pub misses: bool,
    /// A pipeline file whose `type = "incidents"` operator's settings (look-back,
    /// quiet period, skew, ranker) the replay uses instead of the defaults.
    #[arg(long)]
    pub pipeline: Option<PathBuf>,
    /// With `--pipeline`: which incidents operator, when the file has several.
    #[arg(long)]
    pub operator: Option<String>,
}

/// The settings of the incidents operator of a pipeline file: the one named
/// `operator`, or the only one.
pub fn pipeline_config(path: &Path, operator: Option<&str>) -> Result<IncidentsConfig, String> {
    use crate::config::{OperatorConfig, Pipeline};
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let env = |name: &str| std::env::var(name).ok();
    let pipeline = Pipeline::parse(path, &text, &env).map_err(|e| e.to_string())?;
    let incidents: Vec<(&String, &crate::operators::incidents::IncidentsOperator)> = pipeline
        .config
        .operators
        .iter()
        .filter_map(|(name, config)| match config {
            OperatorConfig::Incidents(incidents) => Some((name, incidents)),
            _ => None,
        })
        .collect();
    let names = || incidents.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>().join(", ");
    let chosen = match operator {
        Some(wanted) => incidents
            .iter()
            .find(|(name, _)| name.as_str() == wanted)
            .ok_or_else(|| {
                format!(
                    "{} has no incidents operator `{wanted}` (it has: {})",
                    path.display(),
                    names()
                )
            })?,
        None => match incidents.as_slice() {
            [only] => only,
            [] => return Err(format!("{} has no operator of type \"incidents\"", path.display())),
            _ => {
                return Err(format!(
                    "{} has several incidents operators ({}); name one with --operator",
                    path.display(),
                    names()
                ));
            }
        },
    };
    Ok(chosen.1.config())
}

/// Event-time granule of the replay, ms.
const GRANULE_MS: u64 = 1_000;

/// Reads the events; lines that do not decode are counted and reported, not fatal.
fn read_events(path: &Path) -> Result<(Vec<Event>, usize), String> {
    let file = std::fs::File::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let mut events = Vec::new();
    let mut refused = 0;
    for (number, line) in BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        match Event::from_json(line.as_bytes()) {
            Ok(event) => events.push(event),
            Err(error) => {
                refused += 1;
                if refused <= 5 {
                    eprintln!("{}:{}: skipped: {error}", path.display(), number + 1);
                }
            }
        }
    }
    Ok((events, refused))
}

/// Runs the operator over `events`; the final reports and the counters.
pub fn replay(mut events: Vec<Event>, config: &IncidentsConfig) -> (Vec<IncidentReport>, Arc<IncidentCounters>) {
    events.sort_by_key(|event| event.ts);
    let counters = Arc::new(IncidentCounters::default());
    let config = config.clone();
    let shared = Arc::clone(&counters);
    let captured = timely::execute_directly(move |worker| {
        let mut input = InputHandle::new();
        let (captured, probe) = worker.dataflow(|scope| {
            let reports = scope.input_from(&mut input).incidents("eval-rca", &config, &shared);
            let settled = reports.settled("eval-rca", config.settle_ms);
            let (probe, settled) = settled.probe();
            (settled.capture(), probe)
        });
        let mut sent = 0usize;
        for event in events {
            let time = pulse_core::time::coarsen(event.ts, GRANULE_MS);
            if time > *input.time() {
                input.advance_to(time);
                if sent >= 20_000 {
                    sent = 0;
                    while probe.less_than(input.time()) {
                        worker.step();
                    }
                }
            }
            input.send(event);
            sent += 1;
        }
        input.close();
        while worker.step() {}
        captured
    });
    let reports = captured.extract().into_iter().flat_map(|(_, batch)| batch).collect();
    (reports, counters)
}

/// The JSON line of one final incident, in the documented format.
pub fn prediction_line(report: &IncidentReport) -> String {
    let causes: Vec<serde_json::Value> = report
        .causes
        .iter()
        .map(|cause| {
            json!({
                "resource": resource_json(&cause.resource),
                "event_ts": cause.event_ts,
                "reason": cause.reason,
                "confidence": cause.confidence(),
                "explanation": cause.explanation,
            })
        })
        .collect();
    json!({
        "tenant": report.tenant,
        "incident_id": report.incident_id,
        "opened_at": report.opened_at,
        "symptom": resource_json(&report.symptom),
        "causes": causes,
    })
    .to_string()
}

fn resource_json(resource: &ResourceRef) -> serde_json::Value {
    json!({"kind": resource.kind, "namespace": resource.namespace, "name": resource.name})
}

/// How a ranker did on a set of faults.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Accuracy {
    /// Faults scored.
    pub faults: usize,
    /// Faults with a matching incident.
    pub detected: usize,
    /// Faults whose root cause ranked first, in the top 3, in the top 5.
    pub at: [usize; 3],
    /// Sum of the ranks found (1-based), and how many were found.
    pub rank_sum: usize,
    /// Faults whose root cause was ranked at all.
    pub ranked: usize,
}

impl Accuracy {
    fn add(&mut self, rank: Option<Option<usize>>) {
        self.faults += 1;
        let Some(rank) = rank else {
            return;
        };
        self.detected += 1;
        if let Some(rank) = rank {
            for (slot, k) in [1, 3, 5].into_iter().enumerate() {
                if rank <= k {
                    self.at[slot] += 1;
                }
            }
            self.rank_sum += rank;
            self.ranked += 1;
        }
    }

    fn ratio(&self, count: usize) -> f64 {
        count as f64 / self.faults.max(1) as f64
    }

    fn line(&self) -> String {
        let mean = if self.ranked == 0 {
            f64::NAN
        } else {
            self.rank_sum as f64 / self.ranked as f64
        };
        format!(
            "A@1={:.3} A@3={:.3} A@5={:.3} mean_rank={mean:.2} detected={}/{}",
            self.ratio(self.at[0]),
            self.ratio(self.at[1]),
            self.ratio(self.at[2]),
            self.detected,
            self.faults
        )
    }
}

/// Whether an incident is about a fault: same tenant, opened while the fault
/// was showing, on one of its symptoms or its cause.
fn matches(report: &IncidentReport, fault: &FaultAnswer) -> bool {
    report.tenant == fault.tenant
        && report.opened_at + 60_000 >= fault.start
        && report.opened_at <= fault.end + 5_000
        && (fault.symptoms.contains(&report.symptom) || fault.accepted.contains(&report.symptom))
}

fn rank_of(causes: &[RankedCause], fault: &FaultAnswer) -> Option<usize> {
    causes
        .iter()
        .position(|cause| fault.accepted.contains(&cause.resource))
        .map(|index| index + 1)
}

/// The score report: per fault type and overall, both rankers, and incident precision.
pub fn score(reports: &[IncidentReport], key: &AnswerKey) -> String {
    let mut by_type: BTreeMap<&str, (Accuracy, Accuracy, usize)> = BTreeMap::new();
    let mut overall = (Accuracy::default(), Accuracy::default());
    for fault in &key.faults {
        let matching: Vec<&IncidentReport> = reports.iter().filter(|r| matches(r, fault)).collect();
        let first = matching.iter().min_by_key(|r| (r.opened_at, &r.incident_id));
        let causal = first.map(|r| rank_of(&r.causes, fault));
        let baseline = first.map(|r| rank_of(&r.baseline_causes, fault));
        let entry = by_type.entry(fault.fault_type.as_str()).or_default();
        entry.0.add(causal);
        entry.1.add(baseline);
        entry.2 += matching.len();
        overall.0.add(causal);
        overall.1.add(baseline);
    }
    let matched = reports
        .iter()
        .filter(|r| key.faults.iter().any(|fault| matches(r, fault)))
        .count();
    let mut text = String::new();
    for (fault_type, (causal, baseline, incidents)) in &by_type {
        let _ = writeln!(text, "{fault_type:<14} causal   {}", causal.line());
        let _ = writeln!(text, "{:<14} baseline {}  incidents={incidents}", "", baseline.line());
    }
    let _ = writeln!(text, "{:<14} causal   {}", "all", overall.0.line());
    let _ = writeln!(text, "{:<14} baseline {}", "", overall.1.line());
    let _ = writeln!(
        text,
        "incident precision={:.3} ({matched} of {} incidents match a fault)",
        matched as f64 / reports.len().max(1) as f64,
        reports.len()
    );
    text
}

/// One line per fault whose root cause the causal ranker did not put first:
/// why (no incident of its own, not ranked, ranked low), with what the
/// incidents near it said instead.
pub fn misses(reports: &[IncidentReport], key: &AnswerKey) -> String {
    let name = |r: &ResourceRef| format!("{}/{}/{}", r.kind, r.namespace, r.name);
    let mut text = String::new();
    for fault in &key.faults {
        let first = reports
            .iter()
            .filter(|r| matches(r, fault))
            .min_by_key(|r| (r.opened_at, &r.incident_id));
        let head = format!(
            "{} {} {} cause={} start={}",
            fault.fault_type,
            fault.tenant,
            fault.start,
            name(&fault.root_cause),
            fault.start
        );
        match first {
            None => {
                let near: Vec<String> = reports
                    .iter()
                    .filter(|r| {
                        r.tenant == fault.tenant && r.opened_at + 600_000 >= fault.start && r.opened_at <= fault.end
                    })
                    .map(|r| {
                        format!(
                            "{}@{:+}s",
                            name(&r.symptom),
                            (r.opened_at as i64 - fault.start as i64) / 1000
                        )
                    })
                    .collect();
                let _ = writeln!(
                    text,
                    "NO-INCIDENT {head} symptoms={} end={:+}s near=[{}]",
                    fault.symptoms.len(),
                    (fault.end as i64 - fault.start as i64) / 1000,
                    near.join(", ")
                );
            }
            Some(report) => {
                let rank = rank_of(&report.causes, fault);
                if rank == Some(1) {
                    continue;
                }
                let top: Vec<String> = report
                    .causes
                    .iter()
                    .take(3)
                    .map(|c| {
                        format!(
                            "{} {} {:.2} ({})",
                            name(&c.resource),
                            c.reason,
                            c.confidence(),
                            c.explanation
                        )
                    })
                    .collect();
                let _ = writeln!(
                    text,
                    "RANK={rank:?} {head} symptom={} opened={:+}s top=[{}]",
                    name(&report.symptom),
                    (report.opened_at as i64 - fault.start as i64) / 1000,
                    top.join(" | ")
                );
            }
        }
    }
    text
}

/// Runs `pulse eval rca`.
pub fn run(args: &RcaArgs) -> Result<(), String> {
    let started = std::time::Instant::now();
    let (events, refused) = read_events(&args.events)?;
    let count = events.len();
    let config = match &args.pipeline {
        Some(path) => pipeline_config(path, args.operator.as_deref())?,
        None => IncidentsConfig::default(),
    };
    let (reports, counters) = replay(events, &config);
    let out = std::fs::File::create(&args.out).map_err(|e| format!("cannot write {}: {e}", args.out.display()))?;
    let mut out = BufWriter::new(out);
    for report in &reports {
        writeln!(out, "{}", prediction_line(report))
            .map_err(|e| format!("cannot write {}: {e}", args.out.display()))?;
    }
    out.flush()
        .map_err(|e| format!("cannot write {}: {e}", args.out.display()))?;
    let get = IncidentCounters::get;
    println!(
        "{count} events ({refused} refused) → {} incidents in {:.1}s; duplicates={} unknown_edge_deletes={} repeated_upserts={} unknown_resources={} metric_onsets={}",
        reports.len(),
        started.elapsed().as_secs_f64(),
        get(&counters.duplicates),
        get(&counters.unknown_deletes),
        get(&counters.repeated_upserts),
        get(&counters.unknown_resources),
        get(&counters.onsets),
    );
    if let Some(path) = &args.answers {
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let key: AnswerKey = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        if args.misses {
            print!("{}", misses(&reports, &key));
        }
        print!("{}", score(&reports, &key));
    }
    Ok(())
}

/// Arguments of `pulse eval rca-scenario`.
#[derive(Debug, Args)]
pub struct ScenarioArgs {
    /// Where to write the events, one JSON event per line.
    #[arg(long)]
    pub out: PathBuf,
    /// Where to write the answer key (JSON).
    #[arg(long)]
    pub answers: PathBuf,
    /// The random seed; the same seed writes the same scenario.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// How many tenants.
    #[arg(long, default_value_t = 3)]
    pub tenants: u32,
    /// Faults per tenant (about 9 minutes of event time each).
    #[arg(long, default_value_t = 30)]
    pub faults: u32,
    /// Leave out the hard cases (warnings as causes, skew, decoys, concurrency, loss).
    #[arg(long)]
    pub easy: bool,
}

/// Runs `pulse eval rca-scenario`: the `k8s` generator profile to a file and its answer key.
pub fn write_scenario(args: &ScenarioArgs) -> Result<(), String> {
    use pulse_connectors::generator::k8s::{K8sConfig, generate};
    let config = K8sConfig {
        tenants: args.tenants,
        faults_per_tenant: args.faults,
        seed: args.seed,
        hard: !args.easy,
        ..K8sConfig::default()
    };
    let (events, key) = generate(&config);
    let write_error = |path: &Path, e: std::io::Error| format!("cannot write {}: {e}", path.display());
    let file = std::fs::File::create(&args.out).map_err(|e| write_error(&args.out, e))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    for event in &events {
        serde_json::to_writer(&mut out, event).map_err(|e| format!("cannot write {}: {e}", args.out.display()))?;
        out.write_all(b"\n").map_err(|e| write_error(&args.out, e))?;
    }
    out.flush().map_err(|e| write_error(&args.out, e))?;
    let key_text = serde_json::to_string_pretty(&key).map_err(|e| e.to_string())?;
    std::fs::write(&args.answers, key_text).map_err(|e| write_error(&args.answers, e))?;
    println!("{} events, {} faults", events.len(), key.faults.len());
    Ok(())
}
