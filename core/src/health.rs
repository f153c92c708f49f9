//! Whether each component of a running pipeline can reach what it talks to.
//!
//! A source or sink that depends on a server (a Kafka broker) reports itself
//! unhealthy while the server fails it, and healthy again when it recovers;
//! it keeps retrying meanwhile; a sink also shows its circuit breaker's
//! state. The engine watches the board and turns it into logs, the gateway's
//! readiness (`/health/ready` lists every component) and
//! `pulse_component_up{component}`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// One component's health: its problem while it fails and, for a sink, the
/// state of its circuit breaker.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ComponentHealth {
    /// Why it fails (`None`: it works).
    pub problem: Option<String>,
    /// A sink's circuit breaker: `closed`, `half_open` or `open` (`None` for
    /// components without one).
    pub breaker: Option<&'static str>,
}

/// The health of every component that reports one.
#[derive(Clone, Debug, Default)]
pub struct HealthBoard {
    components: Arc<Mutex<BTreeMap<String, ComponentHealth>>>,
}

impl HealthBoard {
    /// An empty board: healthy.
    pub fn new() -> Self {
        Self::default()
    }

    /// A reporter for `component`, healthy to begin with.
    pub fn reporter(&self, component: &str) -> HealthReporter {
        self.lock().entry(component.to_owned()).or_default();
        HealthReporter {
            board: self.clone(),
            component: component.to_owned(),
        }
    }

    /// Every reporting component, in name order, with its problem if it has one.
    pub fn statuses(&self) -> Vec<(String, Option<String>)> {
        self.lock()
            .iter()
            .map(|(c, h)| (c.clone(), h.problem.clone()))
            .collect()
    }

    /// Every reporting component, in name order, with its whole health.
    pub fn components(&self) -> Vec<(String, ComponentHealth)> {
        self.lock().iter().map(|(c, h)| (c.clone(), h.clone())).collect()
    }

    /// The unhealthy components with why, in name order; empty when all are well.
    pub fn problems(&self) -> Vec<(String, String)> {
        self.statuses()
            .into_iter()
            .filter_map(|(component, problem)| Some((component, problem?)))
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, ComponentHealth>> {
        self.components.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// One component's handle on the board.
#[derive(Clone, Debug)]
pub struct HealthReporter {
    board: HealthBoard,
    component: String,
}

impl HealthReporter {
    /// The component works.
    pub fn healthy(&self) {
        self.update(|health| health.problem = None);
    }

    /// The component fails for `problem` (and keeps retrying).
    pub fn unhealthy(&self, problem: impl Into<String>) {
        let problem = problem.into();
        self.update(|health| health.problem = Some(problem));
    }

    /// The state of the component's circuit breaker (`closed`, `half_open`, `open`).
    pub fn breaker(&self, state: &'static str) {
        self.update(|health| health.breaker = Some(state));
    }

    fn update(&self, change: impl FnOnce(&mut ComponentHealth)) {
        change(self.board.lock().entry(self.component.clone()).or_default());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_component_is_unhealthy_until_it_recovers() {
        let board = HealthBoard::new();
        let (source, sink) = (board.reporter("events"), board.reporter("out"));
        assert!(board.problems().is_empty());
        source.unhealthy("broker unreachable");
        source.unhealthy("broker unreachable");
        assert_eq!(
            board.problems(),
            vec![("events".to_owned(), "broker unreachable".to_owned())]
        );
        sink.healthy();
        source.healthy();
        assert!(board.problems().is_empty());
    }

    #[test]
    fn a_sink_shows_its_breaker_beside_its_problem() {
        let board = HealthBoard::new();
        let sink = board.reporter("history");
        sink.breaker("open");
        sink.unhealthy("circuit breaker open after 5 failed writes: connection refused");
        let (name, health) = board.components().remove(0);
        assert_eq!(name, "history");
        assert_eq!(health.breaker, Some("open"));
        assert!(health.problem.unwrap().starts_with("circuit breaker open"));
        sink.healthy();
        sink.breaker("closed");
        assert_eq!(
            board.components()[0].1,
            ComponentHealth {
                problem: None,
                breaker: Some("closed")
            }
        );
    }
}
