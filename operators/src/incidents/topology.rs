//! The resource graph of one tenant, as the incident operator sees it.
//!
//! [`TenantGraph`] keeps the edges that are present and turns `topology`
//! upserts and deletes into edge insertions and removals
//! ([`TenantGraph::apply`]): an upsert of an edge already there and a
//! delete of an edge never seen change nothing and are counted, so the
//! differential collection built from the answers never holds an edge twice
//! or a negative edge. It also answers the questions incident clustering
//! asks ([`TenantGraph::anchors`], [`TenantGraph::call_neighbours`],
//! [`TenantGraph::nodes_of`]).

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};

use pulse_core::{ResourceRef, TopologyChange, TopologyOp};
use serde::{Deserialize, Serialize};

/// One edge of the resource graph: `from` `relation` `to` (e.g. Pod RUNS_ON Node).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Edge {
    /// Tail.
    pub from: ResourceRef,
    /// `RUNS_ON`, `OWNS`, `SELECTS`, `CALLS`, `MOUNTS`, `USES`, ...
    pub relation: String,
    /// Head.
    pub to: ResourceRef,
}

/// What a topology change did to the graph.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EdgeChange {
    /// The edge appeared.
    Added(Edge),
    /// The edge went away.
    Removed(Edge),
    /// An upsert of an edge already present: nothing changes.
    AlreadyPresent,
    /// A delete of an edge that is not present: nothing changes.
    UnknownEdge,
}

/// How a walk from one resource to its neighbour relates to the call graph.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Direction {
    /// Along `CALLS` from a caller to its callee, or from a pod to the node,
    /// volume or configuration it depends on (towards dependencies).
    Down,
    /// Against `CALLS`: from a callee to its caller (towards those affected).
    Up,
    /// From a resource to its owner (a pod to its ReplicaSet, that to its
    /// Deployment): towards what defines it, which is part of the same
    /// workload, so the step costs no distance.
    Owner,
    /// Any other relation (from an owner to what it owns, selection).
    Structural,
}

/// The edges of one tenant and their indexes.
#[derive(Debug, Default)]
pub struct TenantGraph {
    edges: HashSet<Edge>,
    outgoing: HashMap<ResourceRef, Vec<(String, ResourceRef)>>,
    incoming: HashMap<ResourceRef, Vec<(String, ResourceRef)>>,
}

/// Relations followed when looking for a resource's workload.
const WORKLOAD_RELATIONS: [&str; 2] = ["OWNS", "SELECTS"];

impl TenantGraph {
    /// Applies one change.
    pub fn apply(&mut self, change: &TopologyChange) -> EdgeChange {
        let edge = Edge {
            from: change.from.clone(),
            relation: change.relation.clone(),
            to: change.to.clone(),
        };
        match change.op {
            TopologyOp::Upsert => {
                if !self.edges.insert(edge.clone()) {
                    return EdgeChange::AlreadyPresent;
                }
                let link = |map: &mut HashMap<ResourceRef, Vec<(String, ResourceRef)>>, a: &ResourceRef, b| {
                    map.entry(a.clone()).or_default().push((edge.relation.clone(), b));
                };
                link(&mut self.outgoing, &edge.from, edge.to.clone());
                link(&mut self.incoming, &edge.to, edge.from.clone());
                EdgeChange::Added(edge)
            }
            TopologyOp::Delete => {
                if !self.edges.remove(&edge) {
                    return EdgeChange::UnknownEdge;
                }
                let unlink = |map: &mut HashMap<ResourceRef, Vec<(String, ResourceRef)>>, a: &ResourceRef, b| {
                    if let Some(list) = map.get_mut(a) {
                        list.retain(|(relation, other)| !(relation == &edge.relation && other == b));
                        if list.is_empty() {
                            map.remove(a);
                        }
                    }
                };
                unlink(&mut self.outgoing, &edge.from, &edge.to);
                unlink(&mut self.incoming, &edge.to, &edge.from);
                EdgeChange::Removed(edge)
            }
        }
    }

    /// Edges present.
    pub fn edge_count(&self) -> usize {
        self.edges.len()
    }

    /// Whether any edge touches `resource`.
    pub fn knows(&self, resource: &ResourceRef) -> bool {
        self.outgoing.contains_key(resource) || self.incoming.contains_key(resource)
    }

    fn out_of<'a>(&'a self, resource: &ResourceRef) -> impl Iterator<Item = &'a (String, ResourceRef)> {
        self.outgoing.get(resource).into_iter().flatten()
    }

    fn into_<'a>(&'a self, resource: &ResourceRef) -> impl Iterator<Item = &'a (String, ResourceRef)> {
        self.incoming.get(resource).into_iter().flatten()
    }

    /// The workloads a resource belongs to: the Services and Deployments
    /// within three ownership/selection steps (either way), the resource
    /// itself, and for a volume, config or secret the workloads of the pods
    /// that mount or use it.
    pub fn anchors(&self, resource: &ResourceRef) -> BTreeSet<ResourceRef> {
        let mut starts = vec![resource.clone()];
        if resource.kind != "Pod" {
            starts.extend(
                self.into_(resource)
                    .filter(|(relation, _)| relation == "MOUNTS" || relation == "USES")
                    .map(|(_, pod)| pod.clone()),
            );
        }
        let mut anchors = BTreeSet::from([resource.clone()]);
        let mut seen: HashSet<ResourceRef> = starts.iter().cloned().collect();
        let mut queue: VecDeque<(ResourceRef, u8)> = starts.into_iter().map(|r| (r, 0)).collect();
        while let Some((at, depth)) = queue.pop_front() {
            if at.kind == "Service" || at.kind == "Deployment" || at.kind == "StatefulSet" {
                anchors.insert(at.clone());
            }
            if depth == 3 {
                continue;
            }
            let steps = self.out_of(&at).chain(self.into_(&at));
            for (_, next) in steps.filter(|(relation, _)| WORKLOAD_RELATIONS.contains(&relation.as_str())) {
                if seen.insert(next.clone()) {
                    queue.push_back((next.clone(), depth + 1));
                }
            }
        }
        anchors
    }

    /// The services within `hops` `CALLS` steps of `service`, either way (itself included).
    pub fn call_neighbours(&self, service: &ResourceRef, hops: u8) -> BTreeSet<ResourceRef> {
        let mut seen = BTreeSet::from([service.clone()]);
        let mut frontier = vec![service.clone()];
        for _ in 0..hops {
            let mut next = Vec::new();
            for at in &frontier {
                let steps = self.out_of(at).chain(self.into_(at));
                for (_, other) in steps.filter(|(relation, _)| relation == "CALLS") {
                    if seen.insert(other.clone()) {
                        next.push(other.clone());
                    }
                }
            }
            frontier = next;
        }
        seen
    }

    /// The nodes a resource runs on (a node is its own).
    pub fn nodes_of(&self, resource: &ResourceRef) -> BTreeSet<ResourceRef> {
        if resource.kind == "Node" {
            return BTreeSet::from([resource.clone()]);
        }
        self.out_of(resource)
            .filter(|(relation, _)| relation == "RUNS_ON")
            .map(|(_, node)| node.clone())
            .collect()
    }
}

/// The walks an edge offers the cause search, from each end, as
/// `(from, to, direction)`. Placement, mounts and use are walked only from
/// the pod (to its node, volume or config), never back, so that a walk does
/// not wander from one workload to every other on the same node.
pub fn walks(edge: &Edge) -> Vec<(ResourceRef, ResourceRef, Direction)> {
    let (from, to) = (edge.from.clone(), edge.to.clone());
    match edge.relation.as_str() {
        "CALLS" => vec![(from.clone(), to.clone(), Direction::Down), (to, from, Direction::Up)],
        // A pod depends on its node, volume and configuration as a caller on its callee.
        "RUNS_ON" | "MOUNTS" | "USES" => vec![(from, to, Direction::Down)],
        "OWNS" => vec![
            (to.clone(), from.clone(), Direction::Owner),
            (from, to, Direction::Structural),
        ],
        _ => vec![
            (from.clone(), to.clone(), Direction::Structural),
            (to, from, Direction::Structural),
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(kind: &str, name: &str) -> ResourceRef {
        ResourceRef {
            kind: kind.into(),
            namespace: if kind == "Node" { String::new() } else { "prod".into() },
            name: name.into(),
        }
    }

    fn change(from: ResourceRef, relation: &str, to: ResourceRef, op: TopologyOp) -> TopologyChange {
        TopologyChange {
            from,
            to,
            relation: relation.into(),
            op,
        }
    }

    #[test]
    fn duplicates_and_unknown_deletes_change_nothing() {
        let mut graph = TenantGraph::default();
        let up = change(r("Pod", "a"), "RUNS_ON", r("Node", "n"), TopologyOp::Upsert);
        assert!(matches!(graph.apply(&up), EdgeChange::Added(_)));
        assert_eq!(graph.apply(&up), EdgeChange::AlreadyPresent);
        let unknown = change(r("Pod", "b"), "RUNS_ON", r("Node", "n"), TopologyOp::Delete);
        assert_eq!(graph.apply(&unknown), EdgeChange::UnknownEdge);
        let delete = change(r("Pod", "a"), "RUNS_ON", r("Node", "n"), TopologyOp::Delete);
        assert!(matches!(graph.apply(&delete), EdgeChange::Removed(_)));
        assert_eq!(graph.edge_count(), 0);
        assert!(!graph.knows(&r("Pod", "a")));
    }

    #[test]
    fn anchors_find_the_workload_and_calls_link_services() {
        let mut graph = TenantGraph::default();
        for (from, relation, to) in [
            (r("Deployment", "api"), "OWNS", r("ReplicaSet", "api-1")),
            (r("ReplicaSet", "api-1"), "OWNS", r("Pod", "api-1-x")),
            (r("Service", "api"), "SELECTS", r("Pod", "api-1-x")),
            (r("Service", "web"), "CALLS", r("Service", "api")),
            (r("Pod", "api-1-x"), "MOUNTS", r("PersistentVolumeClaim", "data")),
        ] {
            graph.apply(&change(from, relation, to, TopologyOp::Upsert));
        }
        let anchors = graph.anchors(&r("Pod", "api-1-x"));
        assert!(anchors.contains(&r("Deployment", "api")) && anchors.contains(&r("Service", "api")));
        assert!(
            graph
                .anchors(&r("PersistentVolumeClaim", "data"))
                .contains(&r("Service", "api"))
        );
        assert!(
            graph
                .call_neighbours(&r("Service", "api"), 1)
                .contains(&r("Service", "web"))
        );
    }
}
