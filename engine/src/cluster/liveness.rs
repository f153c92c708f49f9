//! Whether this process's workers keep stepping: the half of the progress
//! watchdog that the heartbeats cannot see.
//!
//! A frozen or cut-off process stops its heartbeats too, and its peers end
//! the cluster after `stall_timeout` ([`super::links`]). A worker thread
//! stuck inside an operator (a bug, a call that never returns) while the
//! rest of its process runs holds every frontier of the cluster where it is,
//! yet its process's heartbeats go on. So each worker runs its own step loop
//! ([`run_worker`]) that parks for at most a fraction of `stall_timeout` and
//! records each step; the heartbeat thread ends the process when a worker
//! has not stepped for `stall_timeout`, and the peers follow as for a crash.
//! A frontier that stands still while every worker steps is not a stall:
//! windows hold it until they close, an idle Kafka partition until
//! `idle_timeout`, and a full sink buffer (back-pressure) until it drains.
//!
//! So no operator call may rightly take `stall_timeout` (default 10 s). What
//! can be slow is kept off the workers or cut into steps: sinks write on
//! their own runtime (a worker only queues, and a full queue pauses the
//! sources), Kafka reads and commits run on their own threads, forest
//! training runs on a training thread, model reloads on a watcher thread,
//! and ONNX scoring does at most `BATCHES_PER_STEP` batches of `max_batch`
//! rows per step (a backlog over several steps). What is left on a worker
//! without a bound is one close of every window or session that a frontier
//! passes at once (after a replay of hours of data, many windows close
//! together) and a differential
//! update of the incidents operator over a very large batch; a pipeline that
//! does that raises `stall_timeout`, as the watchdog's message says.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// When each local worker last stepped, in milliseconds since the clock's
/// start ([`NOT_RUNNING`] before its first step and after its last).
#[derive(Clone, Debug)]
pub struct WorkerSteps {
    started: Instant,
    last: Arc<Vec<AtomicU64>>,
}

/// A worker that has not started stepping, or has finished: never stalled.
const NOT_RUNNING: u64 = u64::MAX;

impl WorkerSteps {
    /// `workers` local workers, none running yet (the sources and sinks open
    /// before they start, which may take longer than `stall_timeout`).
    pub fn new(workers: usize) -> Self {
        Self {
            started: Instant::now(),
            last: Arc::new((0..workers).map(|_| AtomicU64::new(NOT_RUNNING)).collect()),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Local worker `local` is stepping now.
    pub fn stepped(&self, local: usize) {
        if let Some(last) = self.last.get(local) {
            last.store(self.now_ms(), Ordering::Relaxed);
        }
    }

    /// Local worker `local` has finished.
    fn finished(&self, local: usize) {
        if let Some(last) = self.last.get(local) {
            last.store(NOT_RUNNING, Ordering::Relaxed);
        }
    }

    /// The local worker that has gone longest without a step, and for how
    /// long, when that is `timeout` or more.
    pub fn stalled(&self, timeout: Duration) -> Option<(usize, Duration)> {
        let now = self.now_ms();
        let (local, last) = self
            .last
            .iter()
            .enumerate()
            .map(|(local, last)| (local, last.load(Ordering::Relaxed)))
            .filter(|(_, last)| *last != NOT_RUNNING)
            .min_by_key(|(_, last)| *last)?;
        let silent = Duration::from_millis(now.saturating_sub(last));
        (silent >= timeout).then_some((local, silent))
    }
}

/// Steps `worker` (local index `local`) until its dataflows are done,
/// parking at most `park` at a time and recording every step in `steps`.
pub fn run_worker(worker: &mut timely::worker::Worker, steps: &WorkerSteps, local: usize, park: Duration) {
    while worker.has_dataflows() {
        steps.stepped(local);
        worker.step_or_park(Some(park));
    }
    steps.finished(local);
}

#[cfg(test)]
mod tests {
    use super::*;
    use timely::dataflow::channels::pact::Pipeline;
    use timely::dataflow::operators::Operator;
    use timely::dataflow::operators::vec::ToStream;

    /// Two real timely workers: the one whose operator blocks for a second
    /// is reported while it blocks, the idle one never, and neither after.
    #[test]
    fn a_worker_blocked_in_an_operator_is_reported_and_an_idle_one_is_not() {
        let steps = WorkerSteps::new(2);
        let watched = steps.clone();
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let finished = Arc::clone(&done);
        let observed = std::thread::spawn(move || {
            let mut seen = Vec::new();
            while !finished.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(50));
                seen.push(watched.stalled(Duration::from_millis(400)).map(|(local, _)| local));
            }
            seen
        });
        let stepping = steps.clone();
        timely::execute(timely::Config::process(2), move |worker| {
            let local = worker.index();
            worker.dataflow::<u64, _, _>(|scope| {
                (0..1u64)
                    .to_stream(scope)
                    .sink(Pipeline, "blocks", move |(input, _frontier)| {
                        input.for_each(|_time, _data| {
                            if local == 1 {
                                std::thread::sleep(Duration::from_millis(1_000));
                            }
                        });
                    });
            });
            run_worker(worker, &stepping, local, Duration::from_millis(100));
        })
        .unwrap()
        .join();
        done.store(true, Ordering::SeqCst);
        let seen = observed.join().unwrap();
        assert!(seen.contains(&Some(1)), "worker 1 reported while it blocks: {seen:?}");
        assert!(!seen.contains(&Some(0)), "the idle worker 0 never: {seen:?}");
        assert_eq!(steps.stalled(Duration::from_millis(400)), None, "none once done");
    }
}
