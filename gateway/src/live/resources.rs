//! The resources of each tenant's clusters, for `GET /api/v1/resources` and
//! `GET /api/v1/resources/{kind}/{namespace}/{name}`: kept by
//! [`ResourceViews`] from the events an `incidents` operator reads.
//!
//! - `topology` events add and delete edges (`RUNS_ON`, `OWNS`, `SELECTS`,
//!   `CALLS`, `MOUNTS`, `USES`); a resource is listed while an edge touches it
//!   or it has recent events.
//! - `k8s_event` and `log` events are kept as the resource's recent events
//!   (the newest [`RECENT_EVENTS`]); `metric` samples labelled `pod`
//!   (+ `namespace`) or `node` keep the latest value of each metric.
//!
//! Memory is bounded: at most `max_per_tenant` resources per tenant. A
//! resource whose last edge is deleted and that has no events leaves the view;
//! past the bound, new resources are not added and `refused` counts them.
//! A deleted edge to an unknown resource, or an event about one, never fails.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use pulse_core::{Event, EventBody, ResourceRef, TopologyOp};
use serde::Serialize;
use serde_json::{Value, json};
use utoipa::ToSchema;

use crate::live::incidents::ResourceName;

/// Recent events kept per resource.
pub const RECENT_EVENTS: usize = 20;

/// Resources kept per tenant by default.
pub const DEFAULT_RESOURCES_PER_TENANT: usize = 50_000;

/// Distinct metrics kept per resource.
const METRICS_PER_RESOURCE: usize = 16;

#[derive(Default)]
struct Resource {
    /// `(relation, to)` of edges from this resource.
    out: BTreeSet<(String, ResourceName)>,
    /// `(relation, from)` of edges to it.
    incoming: BTreeSet<(String, ResourceName)>,
    /// Newest last.
    events: VecDeque<Value>,
    /// metric → (ts, value).
    metrics: BTreeMap<String, (u64, f64)>,
    last_seen: u64,
}

impl Resource {
    fn is_empty(&self) -> bool {
        self.out.is_empty() && self.incoming.is_empty() && self.events.is_empty() && self.metrics.is_empty()
    }
}

#[derive(Default)]
struct TenantResources {
    resources: HashMap<ResourceName, Resource>,
}

#[derive(Default)]
struct State {
    tenants: HashMap<String, TenantResources>,
    refused: u64,
}

/// One resource in a list.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct ResourceSummary {
    /// The resource.
    #[serde(flatten)]
    pub resource: ResourceName,
    /// Edges touching it.
    pub edges: usize,
    /// Recent events kept.
    pub recent_events: usize,
    /// Event time of the last thing seen about it, epoch ms.
    pub last_seen: u64,
}

/// One resource with its neighbours, recent events and latest metrics.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct ResourceDetail {
    /// The resource.
    #[serde(flatten)]
    pub resource: ResourceName,
    /// Neighbours: `relation`, `direction` (`out`: this resource → it; `in`: it → this) and `resource`.
    #[schema(value_type = Vec<Object>)]
    pub neighbours: Vec<Value>,
    /// The newest k8s events and log lines about it, newest first.
    #[schema(value_type = Vec<Object>)]
    pub recent_events: Vec<Value>,
    /// The latest sample of each metric about it: `{metric: {ts, value}}`.
    #[schema(value_type = Object)]
    pub metrics: Value,
    /// Event time of the last thing seen about it, epoch ms.
    pub last_seen: u64,
}

/// The resources of every tenant; cheap to clone (clones share them).
#[derive(Clone)]
pub struct ResourceViews {
    max_per_tenant: usize,
    state: Arc<Mutex<State>>,
}

fn name_of(resource: &ResourceRef) -> ResourceName {
    ResourceName {
        kind: resource.kind.clone(),
        namespace: resource.namespace.clone(),
        name: resource.name.clone(),
    }
}

impl ResourceViews {
    /// Views keeping at most `max_per_tenant` resources of each tenant.
    pub fn new(max_per_tenant: usize) -> Self {
        Self {
            max_per_tenant: max_per_tenant.max(1),
            state: Arc::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Applies a batch of events (in arrival order).
    ///
    /// # Examples
    /// ```
    /// use pulse_gateway::live::resources::ResourceViews;
    ///
    /// let views = ResourceViews::new(1_000);
    /// let edge: pulse_core::Event = serde_json::from_str(r#"{"ts":1,"tenant":"acme","source":"w","kind":"topology",
    ///     "from":{"kind":"Pod","namespace":"prod","name":"api-1"},"to":{"kind":"Node","namespace":"","name":"n1"},
    ///     "relation":"RUNS_ON","op":"upsert"}"#).unwrap();
    /// views.record(&[edge]);
    /// let node = views.get("acme", "Node", "", "n1").unwrap();
    /// assert_eq!(node.neighbours[0]["resource"]["name"], "api-1");
    /// assert!(views.get("globex", "Node", "", "n1").is_none());
    /// ```
    pub fn record(&self, events: &[Event]) {
        let mut state = self.lock();
        let state = &mut *state;
        for event in events {
            let tenant = state.tenants.entry(event.tenant.to_string()).or_default();
            let max = self.max_per_tenant;
            let refused = &mut state.refused;
            let mut touch = |tenant: &mut TenantResources, name: ResourceName| {
                touch(tenant, max, name, event.ts, refused);
            };
            match &event.body {
                EventBody::Topology(change) => {
                    let (from, to) = (name_of(&change.from), name_of(&change.to));
                    let relation = change.relation.clone();
                    match change.op {
                        TopologyOp::Upsert => {
                            touch(tenant, from.clone());
                            touch(tenant, to.clone());
                            if let Some(r) = tenant.resources.get_mut(&from) {
                                r.out.insert((relation.clone(), to.clone()));
                            }
                            if let Some(r) = tenant.resources.get_mut(&to) {
                                r.incoming.insert((relation, from));
                            }
                        }
                        TopologyOp::Delete => {
                            for (end, other, outgoing) in [(&from, &to, true), (&to, &from, false)] {
                                let Some(r) = tenant.resources.get_mut(end) else {
                                    continue;
                                };
                                let edge = (relation.clone(), other.clone());
                                if outgoing {
                                    r.out.remove(&edge)
                                } else {
                                    r.incoming.remove(&edge)
                                };
                                if r.is_empty() {
                                    tenant.resources.remove(end);
                                }
                            }
                        }
                    }
                }
                EventBody::K8sEvent(k8s) => {
                    let entry = json!({"ts": event.ts, "type": "k8s_event", "reason": k8s.reason,
                                       "severity": k8s.severity, "message": k8s.message});
                    let name = name_of(&k8s.resource);
                    touch(tenant, name.clone());
                    if let Some(r) = tenant.resources.get_mut(&name) {
                        push_recent(r, entry);
                    }
                }
                EventBody::Log(log) => {
                    let entry = json!({"ts": event.ts, "type": "log", "level": log.level, "message": log.message});
                    let name = name_of(&log.resource);
                    touch(tenant, name.clone());
                    if let Some(r) = tenant.resources.get_mut(&name) {
                        push_recent(r, entry);
                    }
                }
                EventBody::Metric(metric) => {
                    let about = match (metric.labels.get("pod"), metric.labels.get("node")) {
                        (Some(pod), _) => ResourceName {
                            kind: "Pod".into(),
                            namespace: metric.labels.get("namespace").cloned().unwrap_or_default(),
                            name: pod.clone(),
                        },
                        (None, Some(node)) => ResourceName {
                            kind: "Node".into(),
                            namespace: String::new(),
                            name: node.clone(),
                        },
                        (None, None) => continue,
                    };
                    // Metrics only describe resources the topology or events know.
                    if let Some(r) = tenant.resources.get_mut(&about)
                        && metric.value.is_finite()
                        && (r.metrics.len() < METRICS_PER_RESOURCE || r.metrics.contains_key(metric.metric.as_str()))
                    {
                        let newer = r
                            .metrics
                            .get(metric.metric.as_str())
                            .is_none_or(|(ts, _)| *ts <= event.ts);
                        if newer {
                            r.metrics.insert(metric.metric.to_string(), (event.ts, metric.value));
                        }
                    }
                }
            }
        }
    }

    /// The tenant's resources of `kind` and `namespace` (each when given), sorted by kind, namespace and name.
    pub fn list(&self, tenant: &str, kind: Option<&str>, namespace: Option<&str>) -> Vec<ResourceSummary> {
        let state = self.lock();
        let Some(kept) = state.tenants.get(tenant) else {
            return Vec::new();
        };
        let mut found: Vec<ResourceSummary> = kept
            .resources
            .iter()
            .filter(|(name, _)| kind.is_none_or(|k| name.kind == k) && namespace.is_none_or(|n| name.namespace == n))
            .map(|(name, r)| ResourceSummary {
                resource: name.clone(),
                edges: r.out.len() + r.incoming.len(),
                recent_events: r.events.len(),
                last_seen: r.last_seen,
            })
            .collect();
        found.sort_by(|a, b| a.resource.cmp(&b.resource));
        found
    }

    /// One resource of the tenant with its neighbours, recent events and metrics.
    pub fn get(&self, tenant: &str, kind: &str, namespace: &str, name: &str) -> Option<ResourceDetail> {
        let state = self.lock();
        let key = ResourceName {
            kind: kind.to_owned(),
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        };
        let r = state.tenants.get(tenant)?.resources.get(&key)?;
        let edge = |direction: &str, (relation, other): &(String, ResourceName)| json!({"relation": relation, "direction": direction, "resource": other});
        let neighbours = r
            .out
            .iter()
            .map(|e| edge("out", e))
            .chain(r.incoming.iter().map(|e| edge("in", e)))
            .collect();
        let metrics = r
            .metrics
            .iter()
            .map(|(metric, (ts, value))| (metric.clone(), json!({"ts": ts, "value": value})))
            .collect::<serde_json::Map<_, _>>();
        Some(ResourceDetail {
            resource: key,
            neighbours,
            recent_events: r.events.iter().rev().cloned().collect(),
            metrics: Value::Object(metrics),
            last_seen: r.last_seen,
        })
    }

    /// Resources not added because their tenant was at the bound.
    pub fn refused(&self) -> u64 {
        self.lock().refused
    }
}

impl Default for ResourceViews {
    fn default() -> Self {
        Self::new(DEFAULT_RESOURCES_PER_TENANT)
    }
}

/// Adds the resource (unless the tenant is at `max`: then counts it in
/// `refused`) and marks it seen at `ts`.
fn touch(tenant: &mut TenantResources, max: usize, name: ResourceName, ts: u64, refused: &mut u64) {
    if tenant.resources.len() >= max && !tenant.resources.contains_key(&name) {
        *refused += 1;
        return;
    }
    let resource = tenant.resources.entry(name).or_default();
    resource.last_seen = resource.last_seen.max(ts);
}

fn push_recent(resource: &mut Resource, entry: Value) {
    if resource.events.len() == RECENT_EVENTS {
        resource.events.pop_front();
    }
    resource.events.push_back(entry);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(json: &str) -> Event {
        serde_json::from_str(json).unwrap()
    }

    fn edge(tenant: &str, pod: &str, node: &str, op: &str) -> Event {
        event(&format!(
            r#"{{"ts":1,"tenant":"{tenant}","source":"w","kind":"topology","from":{{"kind":"Pod","namespace":"prod","name":"{pod}"}},"to":{{"kind":"Node","namespace":"","name":"{node}"}},"relation":"RUNS_ON","op":"{op}"}}"#
        ))
    }

    #[test]
    fn edges_events_and_metrics_build_the_resource_and_deletes_remove_it() {
        let views = ResourceViews::new(100);
        views.record(&[
            edge("acme", "api-1", "n1", "upsert"),
            event(r#"{"ts":5,"tenant":"acme","source":"k","kind":"k8s_event","resource":{"kind":"Pod","namespace":"prod","name":"api-1"},"reason":"OOMKilled","severity":"error","message":"killed"}"#),
            event(r#"{"ts":6,"tenant":"acme","source":"p","kind":"metric","metric":"memory_usage_ratio","value":0.99,"labels":{"pod":"api-1","namespace":"prod"}}"#),
            event(r#"{"ts":7,"tenant":"acme","source":"p","kind":"metric","metric":"cpu","value":0.5,"labels":{"pod":"unknown","namespace":"prod"}}"#),
        ]);
        let pod = views.get("acme", "Pod", "prod", "api-1").unwrap();
        assert_eq!(pod.neighbours[0]["direction"], "out");
        assert_eq!(pod.recent_events[0]["reason"], "OOMKilled");
        assert_eq!(pod.metrics["memory_usage_ratio"]["value"], 0.99);
        assert_eq!(views.list("acme", Some("Node"), None).len(), 1);
        assert!(
            views.get("acme", "Pod", "prod", "unknown").is_none(),
            "metrics alone add nothing"
        );
        views.record(&[
            edge("acme", "api-1", "n1", "delete"),
            edge("acme", "ghost", "n9", "delete"),
        ]);
        assert!(
            views.get("acme", "Node", "", "n1").is_none(),
            "the node has no edge left"
        );
        assert!(
            views.get("acme", "Pod", "prod", "api-1").is_some(),
            "the pod still has events"
        );
        assert!(views.list("globex", None, None).is_empty());
    }

    #[test]
    fn resources_are_bounded_per_tenant_and_recent_events_per_resource() {
        let views = ResourceViews::new(4);
        let edges: Vec<Event> = (0..5).map(|i| edge("acme", &format!("p{i}"), "n", "upsert")).collect();
        views.record(&edges);
        assert_eq!(views.list("acme", None, None).len(), 4);
        assert!(views.refused() > 0);
        let logs: Vec<Event> = (0..30)
            .map(|i| event(&format!(r#"{{"ts":{i},"tenant":"acme","source":"v","kind":"log","resource":{{"kind":"Pod","namespace":"prod","name":"p0"}},"level":"info","message":"m{i}"}}"#)))
            .collect();
        views.record(&logs);
        let pod = views.get("acme", "Pod", "prod", "p0").unwrap();
        assert_eq!(pod.recent_events.len(), RECENT_EVENTS);
        assert_eq!(pod.recent_events[0]["message"], "m29");
    }
}
