//! Each incident's final report: its state once closed and settled.
//!
//! The incident collection changes while an incident is open (members
//! join, causes arrive, late causes re-rank) and for a while after it closes
//! (a cause that arrives late); later, the incident leaves the collection
//! altogether (see the retention in [`ingest`](super::ingest)). A file or
//! table wants one final line per incident: [`SettledExt::settled`] applies
//! the updates in time order and emits an incident's report once the
//! frontier passes its close time plus `settle_ms`.

use std::collections::{BTreeMap, HashMap, HashSet};

use differential_dataflow::VecCollection;
use pulse_core::EventTime;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::Stream;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::Capability;
use timely::dataflow::operators::generic::Operator;

use super::IncidentReport;

/// Final reports of an incident collection.
pub trait SettledExt<'scope> {
    /// One report per incident, as it stood `settle_ms` after it closed.
    fn settled(self, name: &str, settle_ms: u64) -> Stream<'scope, EventTime, Vec<IncidentReport>>;
}

impl<'scope> SettledExt<'scope> for VecCollection<'scope, EventTime, IncidentReport> {
    fn settled(self, name: &str, settle_ms: u64) -> Stream<'scope, EventTime, Vec<IncidentReport>> {
        self.inner
            .unary_frontier::<CapacityContainerBuilder<Vec<IncidentReport>>, _, _, _>(
                Pipeline,
                &format!("{name}.settled"),
                move |clock, _info| {
                    let mut clock: Option<Capability<EventTime>> = Some(clock);
                    let mut pending: BTreeMap<EventTime, Vec<(IncidentReport, isize)>> = BTreeMap::new();
                    // Per (tenant, id): the reports present and their counts.
                    let mut current: HashMap<(String, String), BTreeMap<IncidentReport, isize>> = HashMap::new();
                    // Incidents already reported: their later updates (expiry) are ignored.
                    let mut reported: HashSet<(String, String)> = HashSet::new();
                    move |(input, frontier), output| {
                        input.for_each(|_capability, batch| {
                            for (report, time, diff) in batch.drain(..) {
                                pending.entry(time).or_default().push((report, diff));
                            }
                        });
                        let now = frontier.frontier().first().copied().unwrap_or(EventTime::MAX);
                        let Some(capability) = clock.as_mut() else {
                            return;
                        };
                        let mut done = Vec::new();
                        let times: Vec<EventTime> = pending.range(..now).map(|(&time, _)| time).collect();
                        let mut emit_due =
                            |current: &mut HashMap<(String, String), BTreeMap<IncidentReport, isize>>,
                             reported: &mut HashSet<(String, String)>,
                             before: EventTime| {
                                current.retain(|key, reports: &mut BTreeMap<IncidentReport, isize>| {
                                    let due = reports.iter().find(|(report, count)| {
                                        **count > 0
                                            && report
                                                .closed_at
                                                .is_some_and(|closed| closed.saturating_add(settle_ms) < before)
                                    });
                                    match due {
                                        Some((report, _)) => {
                                            done.push(report.clone());
                                            reported.insert(key.clone());
                                            false
                                        }
                                        None => true,
                                    }
                                });
                            };
                        for time in times {
                            emit_due(&mut current, &mut reported, time);
                            for (report, diff) in pending.remove(&time).unwrap_or_default() {
                                let key = (report.tenant.clone(), report.incident_id.clone());
                                if reported.contains(&key) {
                                    continue;
                                }
                                let reports = current.entry(key).or_default();
                                let count = reports.entry(report.clone()).or_insert(0);
                                *count += diff;
                                if *count == 0 {
                                    reports.remove(&report);
                                }
                            }
                        }
                        emit_due(&mut current, &mut reported, now);
                        if now == EventTime::MAX {
                            // The input ended: what is left (closed or not) is final.
                            for reports in current.drain().map(|(_, reports)| reports) {
                                done.extend(reports.into_keys().take(1));
                            }
                        }
                        if !done.is_empty() {
                            done.sort_by(|a, b| (a.opened_at, &a.incident_id).cmp(&(b.opened_at, &b.incident_id)));
                            output.session(&*capability).give_iterator(done.into_iter());
                        }
                        if now == EventTime::MAX {
                            clock = None;
                        } else if now > *capability.time() {
                            capability.downgrade(&now);
                        }
                    }
                },
            )
    }
}
