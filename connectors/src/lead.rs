//! Flow control for a cluster: a source waits while it leads what the whole
//! cluster has taken in by more than a bound.
//!
//! Timely's queues between processes are unbounded, and the receiving
//! process's network thread reads whatever its peers send whether its workers
//! keep up or not. So a process that runs slower than its peers (a busy
//! machine, a long pause) collects their events in its own memory for as long
//! as it lags. A [`LeadLimit`] closes that loop through timely's own progress
//! tracking: the engine probes the streams just past each exchange (the
//! sources' outputs and every operator's output), whose frontier is held by
//! every record still in flight to any worker of any process, and a source
//! reads nothing while its own output time is more than `max_lead` of event
//! time ahead of that frontier. What one process can have queued for a slow
//! peer is then the events of at most `max_lead` of event time.
//!
//! It cannot deadlock: the probed frontier is never ahead of the least
//! source's output time, and operators hold capabilities only at or after
//! their input frontier (a window at its end), so once what is in flight has
//! been taken in, the source furthest behind is within the bound and reads on.

use std::fmt;

use pulse_core::EventTime;
use timely::dataflow::ProbeHandle;

/// Holds a source back while its output time leads the cluster's frontier
/// past the exchanges by more than `max_lead_ms` (see the module docs).
#[derive(Clone)]
pub struct LeadLimit {
    /// The frontier of the probed streams, over every worker of every process.
    probe: ProbeHandle<EventTime>,
    /// How far, in event-time milliseconds, a source may lead that frontier.
    max_lead_ms: u64,
}

impl fmt::Debug for LeadLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LeadLimit")
            .field("max_lead_ms", &self.max_lead_ms)
            .finish_non_exhaustive()
    }
}

impl LeadLimit {
    /// A limit of `max_lead_ms` over the frontier of `probe` (attach it with
    /// `probe_with` to the streams past the exchanges).
    pub fn new(probe: ProbeHandle<EventTime>, max_lead_ms: u64) -> Self {
        Self { probe, max_lead_ms }
    }

    /// The probe that the limit reads.
    pub fn probe(&self) -> &ProbeHandle<EventTime> {
        &self.probe
    }

    /// Whether a source whose output time is `output_time` must wait.
    pub fn holds_back(&self, output_time: EventTime) -> bool {
        self.probe.with_frontier(|frontier| {
            frontier
                .iter()
                .min()
                .is_some_and(|taken_in| output_time > taken_in.saturating_add(self.max_lead_ms))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use timely::dataflow::InputHandleVec;
    use timely::dataflow::operators::Probe;
    use timely::dataflow::operators::vec::Input;

    /// A real dataflow: the limit follows the probed frontier as the input advances.
    #[test]
    fn a_source_waits_while_it_leads_the_probed_frontier_by_more_than_the_bound() {
        timely::execute(timely::Config::thread(), |worker| {
            let mut input: InputHandleVec<EventTime, u64> = InputHandleVec::new();
            let probe = ProbeHandle::new();
            worker.dataflow(|scope| {
                scope.input_from(&mut input).probe_with(&probe);
            });
            let limit = LeadLimit::new(probe.clone(), 1_000);
            assert!(!limit.holds_back(1_000), "frontier 0: up to 1 s ahead may read");
            assert!(limit.holds_back(1_001));
            input.advance_to(5_000);
            while probe.less_than(&5_000) {
                worker.step();
            }
            assert!(!limit.holds_back(6_000));
            assert!(limit.holds_back(6_001));
            input.close();
            while !probe.done() {
                worker.step();
            }
            assert!(
                !limit.holds_back(EventTime::MAX),
                "a finished dataflow holds nothing back"
            );
        })
        .unwrap();
    }
}
