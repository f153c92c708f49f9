//! Incident correlation and root-cause analysis, in differential dataflow.
//!
//! [`IncidentsExt::incidents`] turns a stream of events of any tenants into a
//! differential collection of [`IncidentReport`]s: the current answer, which
//! changes by retraction and insertion when a late cause arrives, an edge
//! changes or an incident closes. The parts:
//!
//! - [`ingest`]: the front, per tenant in event-time order — the resource
//!   graph ([`topology`]), metric onsets and signals ([`signal`]), and
//!   incident grouping ([`cluster`]) — emitting updates of four collections.
//! - Here, differential dataflow: the graph's walks arranged by
//!   `(tenant, resource)`; from each incident member, walks of up to three
//!   steps (joins against that arrangement) reduced to the fewest steps,
//!   the deepest and shallowest call-graph positions and how many members
//!   (and whether the opening one) reach it, per (incident, resource); those joined
//!   with the signals arranged by `(tenant, resource)` within the look-back;
//!   and a reduction per incident that ranks the candidates ([`rank`]).
//! - [`settled`]: each incident's final report, once it is closed and settled.

pub mod cluster;
pub mod ingest;
pub mod rank;
pub mod settled;
pub mod signal;
pub mod topology;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use differential_dataflow::{AsCollection, VecCollection};
use pulse_core::{Event, EventTime, ResourceRef};
use serde::{Deserialize, Serialize};
use timely::dataflow::Stream;
use timely::dataflow::operators::vec::Map;

use cluster::{ClusterSettings, IncidentHeader};
use ingest::{HeaderState, Ingested, ResourceKey};
use rank::{Candidate, IncidentContext, RankedCause, Ranker};
use topology::Direction;

/// What an incident operator runs with.
#[derive(Clone, Debug, PartialEq)]
pub struct IncidentsConfig {
    /// How far before an incident's first error causes are looked for (ms).
    pub lookback_ms: u64,
    /// How long after the first error a signal still counts (clock skew, slow sources; ms).
    pub horizon_ms: u64,
    /// Clock skew allowed between sources (ms): a cause this much after the first error is still "before".
    pub skew_ms: u64,
    /// How errors group into incidents.
    pub cluster: ClusterSettings,
    /// How long a deleted edge is still walked (ms).
    pub edge_grace_ms: u64,
    /// How long a closed incident stays in the collections (ms).
    pub retain_closed_ms: u64,
    /// How long after closing an incident's report is final (ms).
    pub settle_ms: u64,
    /// The ranker whose causes the reports list first.
    pub ranker: Ranker,
}

impl Default for IncidentsConfig {
    fn default() -> Self {
        Self {
            lookback_ms: 15 * 60_000,
            horizon_ms: 60_000,
            skew_ms: 5_000,
            cluster: ClusterSettings::default(),
            edge_grace_ms: 30 * 60_000,
            retain_closed_ms: 10 * 60_000,
            settle_ms: 60_000,
            ranker: Ranker::Causal,
        }
    }
}

impl IncidentsConfig {
    /// How long a signal stays: long enough for any incident that may rank it to close and settle.
    pub fn signal_retention_ms(&self) -> u64 {
        self.lookback_ms + self.cluster.max_duration_ms + self.cluster.quiet_ms + self.retain_closed_ms
    }
}

/// What the operator counted (also exported as `pulse_incidents_*_total`).
#[derive(Debug, Default)]
pub struct IncidentCounters {
    /// Events dropped as exact repeats.
    pub duplicates: AtomicU64,
    /// Upserts of edges already present.
    pub repeated_upserts: AtomicU64,
    /// Deletes of edges never seen.
    pub unknown_deletes: AtomicU64,
    /// Signals about resources no edge touches.
    pub unknown_resources: AtomicU64,
    /// Metric onsets found.
    pub onsets: AtomicU64,
    /// Incidents opened.
    pub opened: AtomicU64,
    /// Incidents closed.
    pub closed: AtomicU64,
}

impl IncidentCounters {
    /// Adds `n` to one counter.
    pub fn count(&self, counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// A counter's value.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// One incident and its ranked causes: a record of the operator's output.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct IncidentReport {
    /// The tenant.
    pub tenant: String,
    /// Stable id.
    pub incident_id: String,
    /// Event time of the opening error.
    pub opened_at: EventTime,
    /// Event time it closed at, once closed.
    pub closed_at: Option<EventTime>,
    /// The resource of the opening error.
    pub symptom: ResourceRef,
    /// The opening error's reason.
    pub symptom_reason: String,
    /// Causes by the configured ranker, best first, at most ten.
    pub causes: Vec<RankedCause>,
    /// Causes by the baseline formula, for comparison.
    pub baseline_causes: Vec<RankedCause>,
}

/// A walk from a member: its incident, the member's [`resource_hash`], the
/// steps taken and the call position reached.
type Walk = (IncidentHeader, u64, u8, i8);

/// How an incident's members reach one resource, over all their walks.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
struct Reach {
    /// Fewest steps from any member.
    hops: u8,
    /// Deepest call position (steps towards dependencies minus steps towards callers).
    deepest: i8,
    /// Shallowest call position.
    shallowest: i8,
    /// Members at or above it, by their fewest steps to it (0 to 3).
    members_at: [u8; 4],
    /// Whether the member whose error opened the incident reaches it, at or above it.
    from_opener: bool,
}

impl Reach {
    /// Summarises walks `(member, steps, call position)`; `opener` is the
    /// opening member's [`resource_hash`].
    fn of(walks: &[(u64, u8, i8)], opener: u64) -> Self {
        let hops = walks.iter().map(|(_, hops, _)| *hops).min().unwrap_or(0);
        let deepest = walks.iter().map(|(_, _, depth)| *depth).max().unwrap_or(0);
        let shallowest = walks.iter().map(|(_, _, depth)| *depth).min().unwrap_or(0);
        // Per member: its fewest steps and its shallowest position.
        let mut by_member: BTreeMap<u64, (u8, i8)> = BTreeMap::new();
        for &(member, hops, depth) in walks {
            let entry = by_member.entry(member).or_insert((hops, depth));
            *entry = (entry.0.min(hops), entry.1.min(depth));
        }
        let mut members_at = [0u8; 4];
        let mut from_opener = false;
        for (member, (hops, depth)) in by_member {
            if depth >= 0 {
                let slot = &mut members_at[usize::from(hops.min(3))];
                *slot = slot.saturating_add(1);
                from_opener |= member == opener;
            }
        }
        Self {
            hops,
            deepest,
            shallowest,
            members_at,
            from_opener,
        }
    }
}

/// A stable 64-bit hash (FNV-1a) of a resource, to tell members apart in walks.
fn resource_hash(resource: &ResourceRef) -> u64 {
    [
        resource.kind.as_bytes(),
        b"/",
        resource.namespace.as_bytes(),
        b"/",
        resource.name.as_bytes(),
    ]
    .into_iter()
    .flatten()
    .fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Incident correlation on a stream of events.
pub trait IncidentsExt<'scope> {
    /// The current incidents and their ranked causes, as a differential collection.
    ///
    /// # Examples
    /// ```
    /// use std::sync::Arc;
    /// use pulse_core::Event;
    /// use pulse_operators::incidents::{IncidentCounters, IncidentsConfig, IncidentsExt};
    /// use timely::dataflow::operators::capture::{Capture, Extract};
    /// use timely::dataflow::operators::ToStream;
    ///
    /// let lines = [
    ///     r#"{"ts":1000,"tenant":"acme","source":"w","kind":"topology","from":{"kind":"Service","namespace":"prod","name":"web"},"to":{"kind":"Pod","namespace":"prod","name":"web-1"},"relation":"SELECTS","op":"upsert"}"#,
    ///     r#"{"ts":2000,"tenant":"acme","source":"w","kind":"k8s_event","resource":{"kind":"Pod","namespace":"prod","name":"web-1"},"reason":"OOMKilled","severity":"warning","message":"killed"}"#,
    ///     r#"{"ts":3000,"tenant":"acme","source":"v","kind":"log","resource":{"kind":"Pod","namespace":"prod","name":"web-1"},"level":"error","message":"restarting"}"#,
    /// ];
    /// let events: Vec<Event> = lines.iter().map(|l| Event::from_json(l.as_bytes()).unwrap()).collect();
    /// let counters = Arc::new(IncidentCounters::default());
    /// let captured = timely::example(move |scope| {
    ///     let reports = events.to_stream(scope).incidents("rca", &IncidentsConfig::default(), &counters);
    ///     reports.inner.capture()
    /// });
    /// let updates: Vec<_> = captured.extract().into_iter().flat_map(|(_, batch)| batch).collect();
    /// let report = &updates.iter().find(|(r, _, diff)| *diff > 0 && r.closed_at.is_some()).unwrap().0;
    /// assert_eq!(report.symptom.name, "web-1");
    /// assert_eq!(report.causes[0].reason, "OOMKilled");
    /// ```
    fn incidents(
        self,
        name: &str,
        config: &IncidentsConfig,
        counters: &Arc<IncidentCounters>,
    ) -> VecCollection<'scope, EventTime, IncidentReport>;
}

impl<'scope> IncidentsExt<'scope> for Stream<'scope, EventTime, Vec<Event>> {
    fn incidents(
        self,
        name: &str,
        config: &IncidentsConfig,
        counters: &Arc<IncidentCounters>,
    ) -> VecCollection<'scope, EventTime, IncidentReport> {
        let updates = ingest::ingest(self, name, config, counters);
        let walks = updates
            .clone()
            .flat_map(|update| match update {
                Ingested::Walk(data, time, diff) => Some((data, time, diff)),
                _ => None,
            })
            .as_collection();
        let signals = updates
            .clone()
            .flat_map(|update| match update {
                Ingested::Signal(data, time, diff) => Some((data, time, diff)),
                _ => None,
            })
            .as_collection();
        let headers = updates
            .clone()
            .flat_map(|update| match update {
                Ingested::Header(data, time, diff) => Some((data, time, diff)),
                _ => None,
            })
            .as_collection();
        let members = updates
            .flat_map(|update| match update {
                Ingested::Member(data, time, diff) => Some((data, time, diff)),
                _ => None,
            })
            .as_collection();

        // The resource graph, arranged once and walked three times.
        let graph = walks.distinct().arrange_by_key_named(&format!("{name}.graph"));
        let start = members.map(|(key, header): (ResourceKey, IncidentHeader)| {
            let member = resource_hash(&key.1);
            (key, (header, member, 0u8, 0i8))
        });
        let step = |walk: VecCollection<'scope, EventTime, (ResourceKey, Walk)>| {
            walk.join_core(
                graph.clone(),
                |(tenant, _), (header, member, hops, depth), (to, direction)| {
                    let (hops, depth) = match direction {
                        Direction::Down => (hops + 1, depth.saturating_add(1)),
                        Direction::Up => (hops + 1, depth.saturating_sub(1)),
                        Direction::Owner => (*hops, depth.saturating_add(1)),
                        Direction::Structural => (hops + 1, *depth),
                    };
                    Some(((tenant.clone(), to.clone()), (header.clone(), *member, hops, depth)))
                },
            )
        };
        let one = step(start.clone());
        let two = step(one.clone());
        let three = step(two.clone());
        let reach = start
            .concat(one)
            .concat(two)
            .concat(three)
            .map(|((tenant, resource), (header, member, hops, depth))| {
                ((tenant, header, resource), (member, hops, depth))
            })
            .reduce_named(&format!("{name}.reach"), |(_, header, _), walks, output| {
                let walks: Vec<(u64, u8, i8)> = walks.iter().map(|(walk, _)| **walk).collect();
                output.push((Reach::of(&walks, resource_hash(&header.symptom)), 1));
            })
            .map(
                |((tenant, header, resource), reach): ((String, IncidentHeader, ResourceRef), Reach)| {
                    ((tenant, resource), (header, reach))
                },
            );

        // Signals near each incident, within its look-back.
        let signals = signals.arrange_by_key_named(&format!("{name}.signals"));
        let (lookback, horizon) = (config.lookback_ms, config.horizon_ms);
        let candidates = reach.join_core(signals, move |(tenant, resource), (header, reach), signal| {
            let from = header.opened_at.saturating_sub(lookback);
            let to = header.opened_at.saturating_add(horizon);
            (from..=to).contains(&signal.ts).then(|| {
                let candidate = Candidate {
                    resource: resource.clone(),
                    signal: signal.clone(),
                    hops: reach.hops,
                    depth: reach.deepest,
                    shallowest: reach.shallowest,
                    members_at: reach.members_at,
                    from_opener: reach.from_opener,
                };
                ((tenant.clone(), header.clone()), candidate)
            })
        });

        let ranking = {
            let config = config.clone();
            candidates.reduce_named(&format!("{name}.rank"), move |(_, header), candidates, output| {
                let candidates: Vec<&Candidate> = candidates.iter().map(|(candidate, _)| *candidate).collect();
                let context = IncidentContext {
                    opened_at: header.opened_at,
                    symptom: &header.symptom,
                    lookback_ms: config.lookback_ms,
                    skew_ms: config.skew_ms,
                };
                let baseline = rank::rank(Ranker::Baseline, &context, &candidates);
                let primary = match config.ranker {
                    Ranker::Baseline => baseline.clone(),
                    Ranker::Causal => rank::rank(Ranker::Causal, &context, &candidates),
                };
                output.push(((primary, baseline), 1));
            })
        };
        let ranking = ranking.map(|((tenant, header), causes)| ((tenant, header.id), causes));
        headers.join_map(ranking, |(tenant, id), state: &HeaderState, (causes, baseline)| {
            IncidentReport {
                tenant: tenant.clone(),
                incident_id: id.clone(),
                opened_at: state.header.opened_at,
                closed_at: state.closed_at,
                symptom: state.header.symptom.clone(),
                symptom_reason: state.header.symptom_reason.clone(),
                causes: causes.clone(),
                baseline_causes: baseline.clone(),
            }
        })
    }
}
