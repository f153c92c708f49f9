//! `SAME_INCIDENT`: grouping one tenant's error signals into incidents.
//!
//! Errors are taken in event-time order. An error joins the open incident it
//! is related to — one of the incident's members shares a workload with it
//! (a Service or Deployment, see [`TenantGraph::anchors`]), their services
//! are one `CALLS` step apart, or they run on the same node within
//! a minute — and opens a new incident otherwise. So one fault that spreads
//! up a call chain stays one incident, and unrelated errors at the same time
//! stay apart. An incident closes after a quiet period without errors, or
//! when it reaches its longest duration.

use std::collections::{BTreeMap, BTreeSet};

use pulse_core::{EventTime, ResourceRef};
use serde::{Deserialize, Serialize};

use super::signal::Signal;
use super::topology::TenantGraph;

/// How errors are grouped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClusterSettings {
    /// An incident closes after this long without a new error (ms).
    pub quiet_ms: u64,
    /// An incident closes at the latest this long after it opened (ms).
    pub max_duration_ms: u64,
    /// Errors on the same node, or on services one `CALLS` step apart, are
    /// related only within this time of each other (ms): symptoms travel
    /// up a call chain in seconds, and an error minutes later next to an
    /// open incident is more likely a fault of its own.
    pub related_within_ms: u64,
    /// Errors on pods of one node are related only while the node itself
    /// had an event or a metric onset at most this long before (ms).
    pub node_signal_ms: u64,
}

impl Default for ClusterSettings {
    fn default() -> Self {
        Self {
            quiet_ms: 2 * 60_000,
            max_duration_ms: 30 * 60_000,
            related_within_ms: 60_000,
            node_signal_ms: 10 * 60_000,
        }
    }
}

/// What identifies an incident and what opened it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct IncidentHeader {
    /// Stable id: tenant-independent, from the opening error.
    pub id: String,
    /// Event time of the opening error.
    pub opened_at: EventTime,
    /// The resource of the opening error.
    pub symptom: ResourceRef,
    /// The opening error's reason.
    pub symptom_reason: String,
}

/// What grouping an error did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Grouping {
    /// A new incident opened; the resource is its first member.
    Opened(IncidentHeader),
    /// A resource became a member of an open incident.
    Joined {
        /// The incident.
        id: String,
        /// The new member.
        resource: ResourceRef,
    },
    /// Nothing new: the resource already was a member.
    Repeated,
}

#[derive(Debug)]
struct OpenIncident {
    header: IncidentHeader,
    members: BTreeSet<ResourceRef>,
    anchors: BTreeSet<ResourceRef>,
    /// Services one call step from a member's, and when that member last errored.
    services_near: BTreeMap<ResourceRef, EventTime>,
    nodes: BTreeMap<ResourceRef, EventTime>,
    last_error: EventTime,
}

/// Open incidents of one tenant.
#[derive(Debug, Default)]
pub struct IncidentTracker {
    settings: ClusterSettings,
    open: Vec<OpenIncident>,
    /// Nodes and the last time something was reported about them (an event, a metric onset).
    node_signals: BTreeMap<ResourceRef, EventTime>,
}

/// A short stable hash (FNV-1a) for incident ids.
fn fnv(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The id of an incident opened at `ts` by an error on `resource`.
pub fn incident_id(ts: EventTime, resource: &ResourceRef) -> String {
    let key = format!("{}/{}/{}", resource.kind, resource.namespace, resource.name);
    format!("inc-{ts}-{:08x}", fnv(&key) as u32)
}

impl IncidentTracker {
    /// A tracker with `settings`.
    pub fn new(settings: ClusterSettings) -> Self {
        Self {
            settings,
            open: Vec::new(),
            node_signals: BTreeMap::new(),
        }
    }

    /// Open incidents.
    pub fn open_count(&self) -> usize {
        self.open.len()
    }

    /// The header of an open incident.
    pub fn header(&self, id: &str) -> Option<&IncidentHeader> {
        self.open
            .iter()
            .find(|incident| incident.header.id == id)
            .map(|incident| &incident.header)
    }

    /// When an open incident closes: its last error plus the quiet period, or
    /// its opening plus the longest duration, whichever comes first.
    fn closes_at(&self, incident: &OpenIncident) -> EventTime {
        let quiet = incident.last_error.saturating_add(self.settings.quiet_ms);
        let longest = incident.header.opened_at.saturating_add(self.settings.max_duration_ms);
        quiet.min(longest)
    }

    /// Closes the incidents whose close time (see [`Self::closes_at`]) is
    /// before `now`; their headers and close times. The close time depends
    /// only on the incident, never on `now`, so batching changes nothing.
    pub fn close_until(&mut self, now: EventTime) -> Vec<(IncidentHeader, EventTime)> {
        let mut closing = Vec::new();
        let mut open = Vec::new();
        for incident in std::mem::take(&mut self.open) {
            let closes_at = self.closes_at(&incident);
            if closes_at < now {
                closing.push((incident.header, closes_at));
            } else {
                open.push(incident);
            }
        }
        self.open = open;
        closing
    }

    /// Keeps the open incidents `resource` is a member of open at least
    /// until `ts` plus the quiet period: a metric of it that opened or
    /// joined an incident is still far above its usual level, as an alert
    /// that is still firing.
    pub fn keep_open(&mut self, graph: &TenantGraph, resource: &ResourceRef, ts: EventTime) {
        let services: Vec<ResourceRef> = graph
            .anchors(resource)
            .into_iter()
            .filter(|anchor| anchor.kind == "Service")
            .collect();
        for incident in self
            .open
            .iter_mut()
            .filter(|incident| incident.members.contains(resource))
        {
            incident.last_error = incident.last_error.max(ts);
            // Its neighbours' errors are still related: it is still failing.
            for service in &services {
                for near in graph.call_neighbours(service, 1) {
                    let seen = incident.services_near.entry(near).or_insert(ts);
                    *seen = (*seen).max(ts);
                }
            }
        }
    }

    /// Notes a signal about a node: errors of pods on it may share a cause
    /// for a while (see [`ClusterSettings::node_signal_ms`]).
    pub fn note_node_signal(&mut self, node: &ResourceRef, ts: EventTime) {
        let seen = self.node_signals.entry(node.clone()).or_insert(ts);
        *seen = (*seen).max(ts);
    }

    /// Groups one error signal on `resource` (errors in event-time order).
    pub fn observe(&mut self, graph: &TenantGraph, resource: &ResourceRef, signal: &Signal) -> Grouping {
        let anchors = graph.anchors(resource);
        let nodes = graph.nodes_of(resource);
        let services: BTreeSet<ResourceRef> = anchors
            .iter()
            .filter(|anchor| anchor.kind == "Service")
            .cloned()
            .collect();
        let ts = signal.ts;
        let settings = self.settings;
        let node_signals = &self.node_signals;
        let related = self.open.iter_mut().find(|incident| {
            incident.members.contains(resource)
                || !incident.anchors.is_disjoint(&anchors)
                || services.iter().any(|service| {
                    incident
                        .services_near
                        .get(service)
                        .is_some_and(|&seen| ts.abs_diff(seen) <= settings.related_within_ms)
                })
                || nodes.iter().any(|node| {
                    // Pods sharing a node share a cause only if the node itself shows trouble.
                    let troubled = node_signals.get(node).is_some_and(|&seen| {
                        seen <= ts.saturating_add(settings.related_within_ms)
                            && ts <= seen.saturating_add(settings.node_signal_ms)
                    });
                    troubled
                        && incident
                            .nodes
                            .get(node)
                            .is_some_and(|&seen| ts.abs_diff(seen) <= settings.related_within_ms)
                })
        });
        let grow = |incident: &mut OpenIncident| {
            incident.last_error = incident.last_error.max(ts);
            for service in &services {
                for near in graph.call_neighbours(service, 1) {
                    let seen = incident.services_near.entry(near).or_insert(ts);
                    *seen = (*seen).max(ts);
                }
            }
            incident.anchors.extend(anchors.iter().cloned());
            for node in &nodes {
                incident.nodes.insert(node.clone(), ts);
            }
        };
        if let Some(incident) = related {
            grow(incident);
            if incident.members.insert(resource.clone()) {
                return Grouping::Joined {
                    id: incident.header.id.clone(),
                    resource: resource.clone(),
                };
            }
            return Grouping::Repeated;
        }
        let header = IncidentHeader {
            id: incident_id(ts, resource),
            opened_at: ts,
            symptom: resource.clone(),
            symptom_reason: signal.reason.clone(),
        };
        let mut incident = OpenIncident {
            header: header.clone(),
            members: BTreeSet::from([resource.clone()]),
            anchors: BTreeSet::new(),
            services_near: BTreeMap::new(),
            nodes: BTreeMap::new(),
            last_error: ts,
        };
        grow(&mut incident);
        self.open.push(incident);
        Grouping::Opened(header)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::incidents::signal::{Severity, SignalSource};
    use pulse_core::{TopologyChange, TopologyOp};

    fn r(kind: &str, name: &str) -> ResourceRef {
        ResourceRef {
            kind: kind.into(),
            namespace: "prod".into(),
            name: name.into(),
        }
    }

    fn error(ts: EventTime) -> Signal {
        Signal {
            ts,
            source: SignalSource::Log,
            reason: "upstream timeout".into(),
            severity: Severity::Error,
            message: String::new(),
        }
    }

    fn graph() -> TenantGraph {
        let mut graph = TenantGraph::default();
        for (from, relation, to) in [
            (r("Service", "web"), "SELECTS", r("Pod", "web-1")),
            (r("Service", "api"), "SELECTS", r("Pod", "api-1")),
            (r("Service", "db"), "SELECTS", r("Pod", "db-1")),
            (r("Service", "mail"), "SELECTS", r("Pod", "mail-1")),
            (r("Service", "web"), "CALLS", r("Service", "api")),
            (r("Service", "api"), "CALLS", r("Service", "db")),
        ] {
            graph.apply(&TopologyChange {
                from,
                to,
                relation: relation.into(),
                op: TopologyOp::Upsert,
            });
        }
        graph
    }

    #[test]
    fn a_fault_up_a_call_chain_is_one_incident_and_unrelated_errors_another() {
        let graph = graph();
        let mut tracker = IncidentTracker::default();
        let opened = tracker.observe(&graph, &r("Pod", "db-1"), &error(1_000));
        assert!(matches!(opened, Grouping::Opened(_)));
        assert!(matches!(
            tracker.observe(&graph, &r("Pod", "api-1"), &error(1_500)),
            Grouping::Joined { .. }
        ));
        assert!(matches!(
            tracker.observe(&graph, &r("Pod", "web-1"), &error(2_000)),
            Grouping::Joined { .. }
        ));
        assert_eq!(
            tracker.observe(&graph, &r("Pod", "db-1"), &error(2_500)),
            Grouping::Repeated
        );
        assert!(matches!(
            tracker.observe(&graph, &r("Pod", "mail-1"), &error(3_000)),
            Grouping::Opened(_)
        ));
        assert_eq!(tracker.open_count(), 2);
        assert!(tracker.close_until(3_000 + 60_000).is_empty());
        assert_eq!(tracker.close_until(3_000 + 2 * 60_000 + 1).len(), 2);
    }

    #[test]
    fn pods_of_one_node_group_only_while_the_node_shows_trouble() {
        let mut graph = graph();
        let node = ResourceRef {
            kind: "Node".into(),
            namespace: String::new(),
            name: "n1".into(),
        };
        for pod in ["web-1", "mail-1"] {
            graph.apply(&TopologyChange {
                from: r("Pod", pod),
                to: node.clone(),
                relation: "RUNS_ON".into(),
                op: TopologyOp::Upsert,
            });
        }
        // Unrelated services on a quiet node: two incidents.
        let mut tracker = IncidentTracker::default();
        tracker.observe(&graph, &r("Pod", "web-1"), &error(1_000));
        assert!(matches!(
            tracker.observe(&graph, &r("Pod", "mail-1"), &error(2_000)),
            Grouping::Opened(_)
        ));
        // The node reported trouble just before: one.
        let mut tracker = IncidentTracker::default();
        tracker.note_node_signal(&node, 500);
        tracker.observe(&graph, &r("Pod", "web-1"), &error(1_000));
        assert!(matches!(
            tracker.observe(&graph, &r("Pod", "mail-1"), &error(2_000)),
            Grouping::Joined { .. }
        ));
        // A caller's error minutes after the last error near it opens its own.
        let mut tracker = IncidentTracker::default();
        tracker.observe(&graph, &r("Pod", "db-1"), &error(1_000));
        assert!(matches!(
            tracker.observe(&graph, &r("Pod", "api-1"), &error(100_000)),
            Grouping::Opened(_)
        ));
    }
}
