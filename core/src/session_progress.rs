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
//!
//! In a cluster the sessions of the events one process reads may be open in
//! another, whose reporters this process cannot see. So each process sends
//! its peers what its own reporters have settled ([`SessionProgress::local_settled`],
//! over the cluster's control connections), each Kafka source keeps what it
//! heard from every peer ([`SessionProgress::register_peer`] on its own
//! [`SessionProgress::for_source`] view), and [`SessionProgress::settled`] is
//! the minimum over this process's reporters and every peer's last word.

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
    /// What each peer process of a cluster last said it has settled (none
    /// outside a cluster).
    peers: Arc<Mutex<Vec<EventTime>>>,
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

    /// A view of the same reporters with peers of its own (none yet): one per
    /// Kafka source, since each hears from the peers how far they have
    /// settled at that source's delivered frontier.
    pub fn for_source(&self) -> SessionProgress {
        SessionProgress {
            reporters: Arc::clone(&self.reporters),
            peers: Arc::default(),
        }
    }

    /// Adds a peer process of a cluster, settled nowhere until it says so
    /// ([`PeerSettled::advance`]).
    pub fn register_peer(&self) -> PeerSettled {
        let mut peers = self.peers.lock().unwrap_or_else(|p| p.into_inner());
        peers.push(0);
        PeerSettled {
            peers: Arc::clone(&self.peers),
            slot: peers.len() - 1,
        }
    }

    /// The time before which every event's sessions have been delivered, once
    /// the sinks have delivered everything before `delivered`, over this
    /// process's reporters and every peer's word: 0 before any reporter
    /// registered, while one has not reported at a delivered frontier yet,
    /// or while a peer has said nothing.
    pub fn settled(&self, delivered: EventTime) -> EventTime {
        let local = self.local_settled(delivered);
        let peers = self.peers.lock().unwrap_or_else(|p| p.into_inner());
        peers.iter().copied().fold(local, EventTime::min)
    }

    /// [`SessionProgress::settled`] over this process's reporters only: what
    /// it tells its peers (not what it heard from them, which would make two
    /// processes wait on each other's first word forever).
    pub fn local_settled(&self, delivered: EventTime) -> EventTime {
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

/// What one peer process last said it has settled, for one source.
#[derive(Debug)]
pub struct PeerSettled {
    peers: Arc<Mutex<Vec<EventTime>>>,
    slot: usize,
}

impl PeerSettled {
    /// The peer says every event before `settled` went into sessions that
    /// it has delivered; that stays true, so an older word never lowers it.
    pub fn advance(&self, settled: EventTime) {
        let mut peers = self.peers.lock().unwrap_or_else(|p| p.into_inner());
        let known = &mut peers[self.slot];
        *known = (*known).max(settled);
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
    fn in_a_cluster_every_peer_must_have_settled_too() {
        let progress = SessionProgress::new();
        let reporter = progress.register();
        reporter.report(5_000, EventTime::MAX);
        let source = progress.for_source();
        let peer = source.register_peer();
        assert_eq!(source.local_settled(5_000), 5_000);
        assert_eq!(source.settled(5_000), 0, "the peer has said nothing yet");
        assert_eq!(progress.settled(5_000), 5_000, "other views have no peers");
        peer.advance(3_000);
        assert_eq!(source.settled(5_000), 3_000);
        peer.advance(2_000);
        assert_eq!(source.settled(5_000), 3_000, "an older word does not lower it");
        peer.advance(9_000);
        assert_eq!(
            source.settled(5_000),
            5_000,
            "nor does the peer raise it past this process"
        );
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
