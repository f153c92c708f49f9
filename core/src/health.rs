//! Whether each component of a running pipeline can reach what it talks to.
//!
//! A source or sink that depends on a server (a Kafka broker) reports itself
//! unhealthy while the server fails it, and healthy again when it recovers;
//! it keeps retrying meanwhile. The engine watches the board and turns it
//! into logs, the gateway's readiness and `pulse_component_up{component}`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// The health of every component that reports one.
#[derive(Clone, Debug, Default)]
pub struct HealthBoard {
    problems: Arc<Mutex<BTreeMap<String, Option<String>>>>,
}

impl HealthBoard {
    /// An empty board: healthy.
    pub fn new() -> Self {
        Self::default()
    }

    /// A reporter for `component`, healthy to begin with.
    pub fn reporter(&self, component: &str) -> HealthReporter {
        self.lock().entry(component.to_owned()).or_insert(None);
        HealthReporter {
            board: self.clone(),
            component: component.to_owned(),
        }
    }

    /// Every reporting component, in name order, with its problem if it has one.
    pub fn statuses(&self) -> Vec<(String, Option<String>)> {
        self.lock().iter().map(|(c, p)| (c.clone(), p.clone())).collect()
    }

    /// The unhealthy components with why, in name order; empty when all are well.
    pub fn problems(&self) -> Vec<(String, String)> {
        self.statuses()
            .into_iter()
            .filter_map(|(component, problem)| Some((component, problem?)))
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Option<String>>> {
        self.problems.lock().unwrap_or_else(|p| p.into_inner())
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
        self.board.lock().insert(self.component.clone(), None);
    }

    /// The component fails for `problem` (and keeps retrying).
    pub fn unhealthy(&self, problem: impl Into<String>) {
        self.board.lock().insert(self.component.clone(), Some(problem.into()));
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
}
