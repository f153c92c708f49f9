//! How far session windows have settled: what lets a source commit input that
//! went into session windows.
//!
//! A tumbling or hopping window's end follows from an event's time, so a
//! source knows when an event's output is due the moment it reads it. A
//! session's end does not: the session grows for as long as its key keeps
//! sending. So every worker of every session-window operator reports, each
//! time its input frontier advances to `F`, the time
//! `S = min(F, earliest start of its open sessions)`: every event before `S`
//! went into a session that closed, and was emitted, before `F`. (No event
//! before `F` is still on its way to the operator, and an event of an open
//! session is at or after that session's start.)
//!
//! [`SessionProgress::settled`] turns a delivered frontier into the time
//! before which every event's sessions are delivered: per reporter, the `S`
//! of its latest report made at an `F` the sinks have delivered, and the
//! minimum over reporters. `S` never goes back: a session that opens after a
//! report starts at or after that report's `F`.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use crate::EventTime;

/// Most reports kept per reporter; beyond it the oldest are forgotten, which
/// only makes [`SessionProgress::settled`] answer less (never wrongly).
const MAX_REPORTS: usize = 4_096;

/// One report: at input frontier `frontier`, everything before `settled` was in closed sessions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Report {
    frontier: EventTime,
    settled: EventTime,
}

/// The session-window operators of a pipeline and how far each has settled;
/// cheap to clone (clones share the reports).
#[derive(Clone, Debug, Default)]
pub struct SessionProgress {
    reporters: Arc<Mutex<Vec<VecDeque<Report>>>>,
}

impl PartialEq for SessionProgress {
    /// The same shared progress (not equal contents).
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.reporters, &other.reporters)
    }
}

impl SessionProgress {
    /// No reporters yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a reporter (one worker of one session-window operator), settled nowhere yet.
    pub fn register(&self) -> SessionReporter {
        let mut reporters = self.reporters.lock().unwrap_or_else(|p| p.into_inner());
        reporters.push(VecDeque::new());
        SessionReporter {
            reporters: Arc::clone(&self.reporters),
            slot: reporters.len() - 1,
        }
    }

    /// The time before which every event's sessions have been delivered, once
    /// the sinks have delivered everything before `delivered`: 0 before any
    /// reporter registered, or while one has not reported at a delivered
    /// frontier yet.
    pub fn settled(&self, delivered: EventTime) -> EventTime {
        let mut reporters = self.reporters.lock().unwrap_or_else(|p| p.into_inner());
        reporters
            .iter_mut()
            .map(|reports| {
                // Only the latest report at a delivered frontier matters, now and later.
                while reports.len() > 1 && reports[1].frontier <= delivered {
                    reports.pop_front();
                }
                reports
                    .front()
                    .filter(|report| report.frontier <= delivered)
                    .map_or(0, |report| report.settled)
            })
            .min()
            .unwrap_or(0)
    }
}

/// One reporter's handle.
#[derive(Debug)]
pub struct SessionReporter {
    reporters: Arc<Mutex<Vec<VecDeque<Report>>>>,
    slot: usize,
}

impl SessionReporter {
    /// Reports that at input frontier `frontier` (after closing what ends
    /// before it) the earliest open session starts at `earliest_open_start`
    /// ([`EventTime::MAX`] when none is open).
    pub fn report(&self, frontier: EventTime, earliest_open_start: EventTime) {
        let settled = frontier.min(earliest_open_start);
        let mut reporters = self.reporters.lock().unwrap_or_else(|p| p.into_inner());
        let reports = &mut reporters[self.slot];
        if reports.back().is_some_and(|last| last.settled >= settled) {
            return; // nothing new: an earlier frontier already settled as much
        }
        if reports.len() >= MAX_REPORTS {
            reports.pop_front();
        }
        reports.push_back(Report { frontier, settled });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_reporters_nothing_is_settled() {
        assert_eq!(SessionProgress::new().settled(EventTime::MAX), 0);
    }

    #[test]
    fn a_report_counts_once_its_frontier_is_delivered() {
        let progress = SessionProgress::new();
        let reporter = progress.register();
        assert_eq!(progress.settled(10_000), 0, "nothing reported yet");
        reporter.report(1_000, 400); // a session open since 400
        reporter.report(2_000, 1_500); // it closed; another is open since 1,500
        reporter.report(3_000, EventTime::MAX); // none open: settled up to the frontier
        assert_eq!(progress.settled(999), 0);
        assert_eq!(progress.settled(1_000), 400);
        assert_eq!(progress.settled(2_500), 1_500);
        assert_eq!(progress.settled(3_000), 3_000);
    }

    #[test]
    fn the_least_settled_reporter_decides() {
        let progress = SessionProgress::new();
        let (a, b) = (progress.register(), progress.register());
        a.report(5_000, EventTime::MAX);
        assert_eq!(progress.settled(5_000), 0, "b has not reported");
        b.report(5_000, 2_000);
        assert_eq!(progress.settled(5_000), 2_000);
        a.report(6_000, 6_000); // a frontier that settles nothing new is not kept
        b.report(6_000, 6_000);
        assert_eq!(progress.settled(6_000), 6_000);
    }

    #[test]
    fn forgetting_old_reports_only_answers_less() {
        let progress = SessionProgress::new();
        let reporter = progress.register();
        for n in 1..=(MAX_REPORTS as u64 + 10) {
            reporter.report(n * 10, n * 10 - 5);
        }
        assert_eq!(progress.settled(50), 0, "the report at 50 was forgotten");
        let last = MAX_REPORTS as u64 + 10;
        assert_eq!(progress.settled(last * 10), last * 10 - 5);
    }
}
