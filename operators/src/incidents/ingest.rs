//! The incident operator's front: events in, differential updates out.
//!
//! Events are exchanged by tenant, held until the frontier passes their time,
//! then taken in event-time order (topology first at equal times). Each
//! tenant's [`TenantGraph`] turns topology changes into edge walks, its
//! [`OnsetDetector`] turns metric samples into onset signals, and its
//! [`IncidentTracker`] groups error signals and latency/error-rate onsets
//! into incidents (a series still far above its usual level keeps the
//! incidents it is a member of open, as a firing alert would). What comes out
//! are updates `(data, time, diff)` of four collections ([`Ingested`]):
//! walks of the resource graph, signals, incident headers and memberships.
//!
//! Updates carry their own time, so a fact that expires is retracted in
//! the same breath as it is asserted, at a later time: a signal after the
//! retention, a deleted edge after `edge_grace` (so incidents about the
//! deleted pod still see where it ran), a closed incident after
//! `retain_closed`. State stays bounded by event time, not by history.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use pulse_core::{Event, EventBody, EventTime, ResourceRef};
use serde::{Deserialize, Serialize};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::Stream;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::Capability;
use timely::dataflow::operators::generic::Operator;

use super::cluster::{Grouping, IncidentHeader, IncidentTracker};
use super::signal::{OnsetDetector, Signal, event_signal, metric_resource, reports_outcome};
use super::topology::{Direction, EdgeChange, TenantGraph, walks};
use super::{IncidentCounters, IncidentsConfig};

/// A tenant and a resource: the key of walks, signals and memberships.
pub type ResourceKey = (String, ResourceRef);
/// A tenant and an incident id.
pub type IncidentKey = (String, String);

/// An incident as the collections hold it: its header and, once closed, when.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct HeaderState {
    /// What opened it.
    pub header: IncidentHeader,
    /// Event time it closed at (its last error plus the quiet period), if closed.
    pub closed_at: Option<EventTime>,
}

/// An update of one of the four collections the front produces.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Ingested {
    /// A walk from a resource to a neighbour.
    Walk((ResourceKey, (ResourceRef, Direction)), EventTime, isize),
    /// A signal about a resource.
    Signal((ResourceKey, Signal), EventTime, isize),
    /// An incident's header.
    Header((IncidentKey, HeaderState), EventTime, isize),
    /// A resource that is a member of an incident.
    Member((ResourceKey, IncidentHeader), EventTime, isize),
}

/// One tenant's state.
struct TenantState {
    graph: TenantGraph,
    onsets: OnsetDetector,
    tracker: IncidentTracker,
    /// Members of each open incident, to retract when it closes.
    members: HashMap<String, Vec<ResourceRef>>,
    /// Fingerprints of recent events, to drop duplicates.
    seen: HashSet<u64>,
    seen_order: VecDeque<(EventTime, u64)>,
    /// Latency and error-rate onsets not yet sustained for [`ALERT_FOR_MS`].
    pending_alerts: HashMap<(ResourceRef, String), Signal>,
}

/// How long a latency or error-rate series must stay far above its usual
/// level before its onset opens or joins an incident (an alert rule's
/// `for`): a single noisy sample is not an outage.
const ALERT_FOR_MS: u64 = 60_000;

/// How long a fingerprint is remembered (ms of event time).
const DUPLICATE_HORIZON_MS: u64 = 5 * 60_000;

fn fingerprint(event: &Event) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    event.ts.hash(&mut hasher);
    match &event.body {
        EventBody::Metric(metric) => {
            metric.metric.hash(&mut hasher);
            metric.value.to_bits().hash(&mut hasher);
            metric.labels.hash(&mut hasher);
        }
        EventBody::K8sEvent(k8s) => {
            (&k8s.resource, &k8s.reason, &k8s.severity, &k8s.message).hash(&mut hasher);
        }
        EventBody::Log(log) => (&log.resource, &log.level, &log.message).hash(&mut hasher),
        EventBody::Topology(change) => (&change.from, &change.relation, &change.to).hash(&mut hasher),
    }
    hasher.finish()
}

impl TenantState {
    fn new(config: &IncidentsConfig) -> Self {
        Self {
            graph: TenantGraph::default(),
            onsets: OnsetDetector::default(),
            tracker: IncidentTracker::new(config.cluster),
            members: HashMap::new(),
            seen: HashSet::new(),
            seen_order: VecDeque::new(),
            pending_alerts: HashMap::new(),
        }
    }

    /// Whether the event was seen within the duplicate horizon (and remembers it).
    fn duplicate(&mut self, event: &Event) -> bool {
        if matches!(event.body, EventBody::Topology(_)) {
            // The graph itself ignores repeated upserts and deletes.
            return false;
        }
        while let Some(&(ts, print)) = self.seen_order.front() {
            if ts.saturating_add(DUPLICATE_HORIZON_MS) >= event.ts {
                break;
            }
            self.seen.remove(&print);
            self.seen_order.pop_front();
        }
        let print = fingerprint(event);
        if !self.seen.insert(print) {
            return true;
        }
        self.seen_order.push_back((event.ts, print));
        false
    }
}

fn tenant_route(event: &Event) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    event.tenant.as_str().hash(&mut hasher);
    hasher.finish()
}

/// Order of kinds at equal times: the graph first, then what it explains.
fn kind_order(event: &Event) -> u8 {
    match event.body {
        EventBody::Topology(_) => 0,
        EventBody::Metric(_) => 1,
        EventBody::K8sEvent(_) | EventBody::Log(_) => 2,
    }
}

/// Builds the front operator over `events`.
pub fn ingest<'scope>(
    events: Stream<'scope, EventTime, Vec<Event>>,
    name: &str,
    config: &IncidentsConfig,
    counters: &Arc<IncidentCounters>,
) -> Stream<'scope, EventTime, Vec<Ingested>> {
    let config = config.clone();
    let counters = Arc::clone(counters);
    events.unary_frontier::<CapacityContainerBuilder<Vec<Ingested>>, _, _, _>(
        Exchange::new(tenant_route),
        &format!("{name}.ingest"),
        move |clock, _info| {
            let mut clock: Option<Capability<EventTime>> = Some(clock);
            let mut held: BTreeMap<EventTime, Vec<Event>> = BTreeMap::new();
            let mut tenants: HashMap<String, TenantState> = HashMap::new();
            move |(input, frontier), output| {
                input.for_each(|_capability, batch| {
                    for event in batch.drain(..) {
                        held.entry(event.ts).or_default().push(event);
                    }
                });
                let now = frontier.frontier().first().copied().unwrap_or(EventTime::MAX);
                let Some(capability) = clock.as_mut() else {
                    return;
                };
                let mut updates = Vec::new();
                // Timely times are coarsened event times, never later than the data's ts
                // rounded down; everything held strictly before `now` is complete.
                let ready: Vec<EventTime> = held.range(..now).map(|(&ts, _)| ts).collect();
                let mut batch: Vec<Event> = Vec::new();
                for ts in ready {
                    batch.extend(held.remove(&ts).unwrap_or_default());
                }
                // A total order, so that the grouping does not depend on how
                // the events were split across workers or batches.
                batch.sort_by_cached_key(|event| (event.ts, kind_order(event), fingerprint(event)));
                let floor = *capability.time();
                for event in batch {
                    let state = tenants
                        .entry(event.tenant.to_string())
                        .or_insert_with(|| TenantState::new(&config));
                    absorb(&config, &counters, state, event, floor, &mut updates);
                }
                for (tenant, state) in &mut tenants {
                    close(&config, &counters, tenant, state, now, floor, &mut updates);
                }
                if !updates.is_empty() {
                    output.session(&*capability).give_iterator(updates.into_iter());
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

/// Takes one event of a tenant; `floor` is the earliest time updates may carry.
fn absorb(
    config: &IncidentsConfig,
    counters: &IncidentCounters,
    state: &mut TenantState,
    event: Event,
    floor: EventTime,
    updates: &mut Vec<Ingested>,
) {
    if state.duplicate(&event) {
        counters.count(&counters.duplicates, 1);
        return;
    }
    let tenant = event.tenant.to_string();
    let at = event.ts.max(floor);
    match &event.body {
        EventBody::Topology(change) => match state.graph.apply(change) {
            EdgeChange::Added(edge) => {
                for (from, to, direction) in walks(&edge) {
                    updates.push(Ingested::Walk(((tenant.clone(), from), (to, direction)), at, 1));
                }
            }
            EdgeChange::Removed(edge) => {
                let gone = at.saturating_add(config.edge_grace_ms);
                for (from, to, direction) in walks(&edge) {
                    updates.push(Ingested::Walk(((tenant.clone(), from), (to, direction)), gone, -1));
                }
            }
            EdgeChange::AlreadyPresent => counters.count(&counters.repeated_upserts, 1),
            EdgeChange::UnknownEdge => counters.count(&counters.unknown_deletes, 1),
        },
        EventBody::Metric(metric) => {
            let Some(resource) = metric_resource(&metric.labels) else {
                return;
            };
            let onset = state.onsets.observe(&resource, &metric.metric, event.ts, metric.value);
            if let Some(signal) = onset {
                counters.count(&counters.onsets, 1);
                if resource.kind == "Node" {
                    state.tracker.note_node_signal(&resource, event.ts);
                }
                if signal.opens_incidents() {
                    state
                        .pending_alerts
                        .insert((resource.clone(), metric.metric.to_string()), signal.clone());
                }
                push_signal(config, updates, tenant, resource, signal, at);
            } else if reports_outcome(&metric.metric) {
                let key = (resource.clone(), metric.metric.to_string());
                if !state.onsets.elevated(&resource, &metric.metric) {
                    state.pending_alerts.remove(&key);
                    return;
                }
                match state.pending_alerts.get(&key) {
                    Some(onset) if event.ts >= onset.ts.saturating_add(ALERT_FOR_MS) => {
                        // Sustained: the alert fires, as of its onset.
                        let onset = onset.clone();
                        state.pending_alerts.remove(&key);
                        group(config, counters, &tenant, state, &resource, &onset, floor, updates);
                        state.tracker.keep_open(&state.graph, &resource, event.ts);
                    }
                    Some(_) => {}
                    None => {
                        close(config, counters, &tenant, state, event.ts, floor, updates);
                        state.tracker.keep_open(&state.graph, &resource, event.ts);
                    }
                }
            }
        }
        EventBody::K8sEvent(_) | EventBody::Log(_) => {
            let Some((resource, signal)) = event_signal(&event) else {
                return;
            };
            if !state.graph.knows(&resource) {
                counters.count(&counters.unknown_resources, 1);
            }
            if resource.kind == "Node" {
                state.tracker.note_node_signal(&resource, event.ts);
            }
            if signal.opens_incidents() {
                group(config, counters, &tenant, state, &resource, &signal, floor, updates);
            }
            push_signal(config, updates, tenant, resource, signal, at);
        }
    }
}

/// Groups a signal that opens or joins incidents (an error, or an onset of
/// a metric that reports what requests experience).
#[allow(clippy::too_many_arguments)]
fn group(
    config: &IncidentsConfig,
    counters: &IncidentCounters,
    tenant: &str,
    state: &mut TenantState,
    resource: &ResourceRef,
    signal: &Signal,
    floor: EventTime,
    updates: &mut Vec<Ingested>,
) {
    let at = signal.ts.max(floor);
    // Incidents quiet since before this signal close first, whatever the
    // frontier: a batch that spans minutes groups as one event at a time does.
    close(config, counters, tenant, state, signal.ts, floor, updates);
    match state.tracker.observe(&state.graph, resource, signal) {
        Grouping::Opened(header) => {
            counters.count(&counters.opened, 1);
            let id = header.id.clone();
            let header_state = HeaderState {
                header: header.clone(),
                closed_at: None,
            };
            updates.push(Ingested::Header(((tenant.to_owned(), id.clone()), header_state), at, 1));
            updates.push(Ingested::Member(((tenant.to_owned(), resource.clone()), header), at, 1));
            state.members.insert(id, vec![resource.clone()]);
        }
        Grouping::Joined { id, resource: member } => {
            if let Some(members) = state.members.get_mut(&id) {
                members.push(member.clone());
            }
            if let Some(header) = state.tracker.header(&id) {
                updates.push(Ingested::Member(((tenant.to_owned(), member), header.clone()), at, 1));
            }
        }
        Grouping::Repeated => {}
    }
}

fn push_signal(
    config: &IncidentsConfig,
    updates: &mut Vec<Ingested>,
    tenant: String,
    resource: ResourceRef,
    signal: Signal,
    at: EventTime,
) {
    let expires = at.saturating_add(config.signal_retention_ms());
    let key = (tenant, resource);
    updates.push(Ingested::Signal((key.clone(), signal.clone()), at, 1));
    updates.push(Ingested::Signal((key, signal), expires, -1));
}

/// Closes a tenant's incidents quiet before `now`.
fn close(
    config: &IncidentsConfig,
    counters: &IncidentCounters,
    tenant: &str,
    state: &mut TenantState,
    now: EventTime,
    floor: EventTime,
    updates: &mut Vec<Ingested>,
) {
    for (header, closed_at) in state.tracker.close_until(now) {
        counters.count(&counters.closed, 1);
        let at = closed_at.max(floor);
        let gone = at.saturating_add(config.retain_closed_ms);
        let key = (tenant.to_owned(), header.id.clone());
        let open = HeaderState {
            header: header.clone(),
            closed_at: None,
        };
        let closed = HeaderState {
            header: header.clone(),
            closed_at: Some(closed_at),
        };
        updates.push(Ingested::Header((key.clone(), open), at, -1));
        updates.push(Ingested::Header((key.clone(), closed.clone()), at, 1));
        updates.push(Ingested::Header((key, closed), gone, -1));
        for member in state.members.remove(&header.id).unwrap_or_default() {
            updates.push(Ingested::Member(
                ((tenant.to_owned(), member), header.clone()),
                gone,
                -1,
            ));
        }
    }
}
