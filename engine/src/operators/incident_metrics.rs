//! The Prometheus series of an `incidents` operator, labelled by
//! `component` (the operator's name) and registered when it is built, so that
//! each exists at 0 before its first incident (an alert on
//! `increase(pulse_incidents_opened_total[5m])` then sees the first one too):
//!
//! - `pulse_incidents_opened_total`, `pulse_incidents_closed_total` and the
//!   gauge `pulse_incidents_open`: incidents as the operator's grouping opens
//!   and closes them;
//! - `pulse_incidents_reranked_total`: new versions of an incident whose
//!   ranked causes differ from the version they replace (a late cause, a new
//!   member, a changed edge), i.e. the re-rankings consumers are sent;
//! - bad input the operator survives: `pulse_incidents_duplicate_events_total`,
//!   `pulse_incidents_unknown_deletes_total` (deletes of edges never seen),
//!   `pulse_incidents_unknown_resource_signals_total` (signals about resources
//!   no edge touches), and `pulse_incidents_metric_onsets_total`.
//!
//! No `tenant` label: tenants are unbounded (a series each, forever, in every
//! scrape), and a tenant's first incident would create its series at 1, which
//! `increase()` does not count. Per-tenant incidents are on the API.
//!
//! The operator's grouping counts into [`IncidentCounters`] (atomics, per
//! worker); this stage adds what they gained to the series each time it runs,
//! which is whenever the operator's output or its frontier moves. Re-rankings
//! are read from the output itself: all versions of one incident are on one
//! worker, and a changed version is the retraction of the old one and the
//! insertion of the new one at the same time, so each completed time's
//! updates are compared per incident.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use metrics::{Counter, Gauge};
use pulse_core::EventTime;
use pulse_operators::incidents::{IncidentCounters, IncidentReport};
use timely::dataflow::Stream;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::Operator;

/// Which of the operator's counters a series follows.
type CounterOf = fn(&IncidentCounters) -> &AtomicU64;

/// A version of an incident retracted and one inserted, at one time.
type Change<'a> = (Option<&'a IncidentReport>, Option<&'a IncidentReport>);

/// The series of one operator on one worker, and what of the counters they hold already.
struct IncidentSeries {
    counters: Arc<IncidentCounters>,
    /// `(series, counter, value already added)`.
    totals: Vec<(Counter, CounterOf, u64)>,
    open: Gauge,
    reranked: Counter,
}

impl IncidentSeries {
    fn register(component: &str, counters: Arc<IncidentCounters>) -> Self {
        let labels = [("component", component.to_owned())];
        let total = |name: &'static str, counter: CounterOf| (metrics::counter!(name, &labels), counter, 0);
        let totals = vec![
            total("pulse_incidents_opened_total", |c| &c.opened),
            total("pulse_incidents_closed_total", |c| &c.closed),
            total("pulse_incidents_duplicate_events_total", |c| &c.duplicates),
            total("pulse_incidents_unknown_deletes_total", |c| &c.unknown_deletes),
            total("pulse_incidents_unknown_resource_signals_total", |c| {
                &c.unknown_resources
            }),
            total("pulse_incidents_metric_onsets_total", |c| &c.onsets),
        ];
        Self {
            counters,
            totals,
            // Shared by the workers: each adds its own incidents.
            open: metrics::gauge!("pulse_incidents_open", &labels),
            reranked: metrics::counter!("pulse_incidents_reranked_total", &labels),
        }
    }

    /// Adds what the counters gained since the last call.
    fn catch_up(&mut self) {
        let mut gained = [0u64; 2];
        for (index, (series, counter, added)) in self.totals.iter_mut().enumerate() {
            let now = IncidentCounters::get(counter(&self.counters));
            let delta = now.saturating_sub(*added);
            if delta > 0 {
                series.increment(delta);
                *added = now;
            }
            if let Some(slot) = gained.get_mut(index) {
                *slot = delta;
            }
        }
        let [opened, closed] = gained;
        self.open.increment(opened as f64);
        self.open.decrement(closed as f64);
    }
}

/// How many incidents of one completed time's updates were re-ranked: those
/// with a version retracted and one inserted whose causes differ.
fn rerankings(updates: &[(IncidentReport, isize)]) -> u64 {
    let mut by_incident: HashMap<(&str, &str), Change<'_>> = HashMap::new();
    for (report, diff) in updates {
        let entry = by_incident
            .entry((report.tenant.as_str(), report.incident_id.as_str()))
            .or_default();
        match diff.signum() {
            -1 => entry.0 = Some(report),
            1 => entry.1 = Some(report),
            _ => {}
        }
    }
    by_incident
        .values()
        .filter(|(old, new)| matches!((old, new), (Some(old), Some(new)) if old.causes != new.causes))
        .count() as u64
}

/// Registers the series of incidents operator `component` and keeps them up
/// to date from its `counters` and its output `reports` (the updates of its
/// differential collection).
pub fn export_incident_metrics<'scope>(
    reports: Stream<'scope, EventTime, Vec<(IncidentReport, EventTime, isize)>>,
    component: &str,
    counters: Arc<IncidentCounters>,
) {
    let mut series = IncidentSeries::register(component, counters);
    let mut pending: BTreeMap<EventTime, Vec<(IncidentReport, isize)>> = BTreeMap::new();
    reports.sink(Pipeline, &format!("{component}.metrics"), move |(input, frontier)| {
        input.for_each(|_capability, batch| {
            for (report, time, diff) in batch.drain(..) {
                pending.entry(time).or_default().push((report, diff));
            }
        });
        let now = frontier.frontier().first().copied().unwrap_or(EventTime::MAX);
        let done: Vec<EventTime> = pending.range(..now).map(|(&time, _)| time).collect();
        for time in done {
            if let Some(updates) = pending.remove(&time) {
                series.reranked.increment(rerankings(&updates));
            }
        }
        series.catch_up();
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use pulse_core::ResourceRef;
    use pulse_operators::incidents::rank::RankedCause;

    fn report(id: &str, causes: &[&str], closed_at: Option<EventTime>) -> IncidentReport {
        let resource = |name: &str| ResourceRef {
            kind: "Pod".into(),
            namespace: "prod".into(),
            name: name.into(),
        };
        IncidentReport {
            tenant: "acme".into(),
            incident_id: id.into(),
            opened_at: 10,
            closed_at,
            symptom: resource("api-1"),
            symptom_reason: "BackOff".into(),
            causes: causes
                .iter()
                .map(|name| RankedCause {
                    resource: resource(name),
                    event_ts: 5,
                    reason: "OOMKilled".into(),
                    confidence_milli: 900,
                    explanation: "limit hit".into(),
                })
                .collect(),
            baseline_causes: Vec::new(),
        }
    }

    #[test]
    fn a_changed_ranking_is_a_re_ranking_and_opening_or_closing_is_not() {
        let opened = report("a", &["api-1"], None);
        let reranked = report("a", &["db-1", "api-1"], None);
        let closed = report("a", &["db-1", "api-1"], Some(99));
        assert_eq!(rerankings(&[(opened.clone(), 1)]), 0, "an opening");
        assert_eq!(rerankings(&[(opened.clone(), -1), (reranked.clone(), 1)]), 1);
        assert_eq!(
            rerankings(&[(reranked.clone(), -1), (closed, 1)]),
            0,
            "closing keeps the causes"
        );
        assert_eq!(rerankings(&[(reranked, -1)]), 0, "forgotten after its retention");
        let other = report("b", &["x"], None);
        let other_reranked = report("b", &["y"], None);
        assert_eq!(
            rerankings(&[
                (report("a", &["api-1"], None), -1),
                (other, -1),
                (report("a", &["z"], None), 1),
                (other_reranked, 1),
            ]),
            2,
            "per incident"
        );
    }
}
