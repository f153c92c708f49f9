//! Sending on schedule: an open loop at a target rate, where operation `i` is
//! due at `start + i / rate` whether or not earlier ones have answered, and
//! its latency is measured from that intended time (so a stalled server is
//! charged for every request it delayed: no coordinated omission); or, without
//! a rate, a closed loop of workers sending as fast as answers come back.
//! Either way a run stops at its duration or its operation count, whichever
//! comes first — or at Ctrl-C ([`stop_on_ctrl_c`]), so that a long run
//! interrupted still gets its report.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

/// Set by the first Ctrl-C: every schedule stops sending.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Whether Ctrl-C stopped the run.
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::Relaxed)
}

/// Makes the first Ctrl-C stop every schedule (the run then reports what it
/// measured) and a second one exit at once (status 130). Call inside a tokio runtime.
pub fn stop_on_ctrl_c() {
    tokio::spawn(async {
        if tokio::signal::ctrl_c().await.is_err() {
            return;
        }
        INTERRUPTED.store(true, Ordering::Relaxed);
        eprintln!("\ninterrupted: finishing the report (Ctrl-C again to quit at once)");
        if tokio::signal::ctrl_c().await.is_ok() {
            std::process::exit(130);
        }
    });
}

/// How operations are sent.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Schedule {
    /// Operations per second; `None`: as fast as `concurrency` workers go.
    pub rate: Option<f64>,
    /// How long to send.
    pub duration: Duration,
    /// At most this many operations, if given.
    pub count: Option<u64>,
    /// Operations in flight at most (open loop), or workers (closed loop).
    pub concurrency: usize,
}

/// The intended send times of an open loop.
pub struct Pacer {
    start: tokio::time::Instant,
    interval_secs: f64,
    deadline: tokio::time::Instant,
    limit: Option<u64>,
    sent: u64,
}

impl Pacer {
    /// Operation `i` due at `now + i / rate`, until `duration` has passed or `limit` were due.
    pub fn new(rate: f64, duration: Duration, limit: Option<u64>) -> Self {
        let start = tokio::time::Instant::now();
        Self {
            start,
            interval_secs: 1.0 / rate,
            deadline: start + duration,
            limit,
            sent: 0,
        }
    }

    /// The intended time of operation `index`.
    pub fn due(&self, index: u64) -> tokio::time::Instant {
        self.start + Duration::from_secs_f64(self.interval_secs * index as f64)
    }

    /// Waits until the next operation is due and returns its index and intended
    /// time; `None` once the run is over. Late callers get past times at once.
    pub async fn next(&mut self) -> Option<(u64, Instant)> {
        if self.limit.is_some_and(|limit| self.sent >= limit) || interrupted() {
            return None;
        }
        let due = self.due(self.sent);
        if due >= self.deadline {
            return None;
        }
        tokio::time::sleep_until(due).await;
        if interrupted() {
            return None;
        }
        let index = self.sent;
        self.sent += 1;
        Some((index, due.into_std()))
    }
}

/// Runs `operation(index, intended_start)` on `schedule` and waits for every
/// one to finish; returns how many were started. The operation records its
/// own outcome, timing it from `intended_start`.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use std::time::Duration;
/// use pulse_loadtest::pace::{Schedule, drive};
///
/// let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
/// let done = Arc::new(AtomicU64::new(0));
/// let counter = done.clone();
/// let schedule = Schedule { rate: Some(200.0), duration: Duration::from_millis(100), count: None, concurrency: 4 };
/// let started = runtime.block_on(drive(schedule, move |_, _| {
///     let counter = counter.clone();
///     async move { counter.fetch_add(1, Ordering::Relaxed); }
/// }));
/// assert_eq!(started, 20, "200/s for 0.1 s");
/// assert_eq!(done.load(Ordering::Relaxed), 20);
/// ```
pub async fn drive<F, Fut>(schedule: Schedule, operation: F) -> u64
where
    F: Fn(u64, Instant) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let concurrency = schedule.concurrency.max(1);
    let mut tasks = JoinSet::new();
    let started = match schedule.rate {
        Some(rate) => {
            let slots = Arc::new(Semaphore::new(concurrency));
            let mut pacer = Pacer::new(rate, schedule.duration, schedule.count);
            let mut started = 0;
            while let Some((index, intended)) = pacer.next().await {
                // Waiting for a slot delays the send, not the clock it is timed by.
                let Ok(slot) = slots.clone().acquire_owned().await else {
                    break;
                };
                let run = operation(index, intended);
                tasks.spawn(async move {
                    run.await;
                    drop(slot);
                });
                started += 1;
                // Reap finished tasks as we go, so a long run does not hold them all.
                while tasks.try_join_next().is_some() {}
            }
            started
        }
        None => {
            let deadline = Instant::now() + schedule.duration;
            let next = Arc::new(AtomicU64::new(0));
            let limit = schedule.count.unwrap_or(u64::MAX);
            for _ in 0..concurrency {
                let (operation, next) = (operation.clone(), next.clone());
                tasks.spawn(async move {
                    while Instant::now() < deadline && !interrupted() {
                        let index = next.fetch_add(1, Ordering::Relaxed);
                        if index >= limit {
                            break;
                        }
                        operation(index, Instant::now()).await;
                    }
                });
            }
            while tasks.join_next().await.is_some() {}
            next.load(Ordering::Relaxed).min(limit)
        }
    };
    while tasks.join_next().await.is_some() {}
    started
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap()
    }

    #[test]
    fn a_stalled_operation_does_not_delay_the_intended_times_of_later_ones() {
        // At 20/s each operation is due 50 ms after the previous one; the third
        // stalls for 300 ms with one slot, so the next ones start late but keep
        // their intended times: their latency includes the stall.
        let runtime = runtime();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let schedule = Schedule {
            rate: Some(20.0),
            duration: Duration::from_millis(500),
            count: None,
            concurrency: 1,
        };
        runtime.block_on(async move {
            let origin = Instant::now();
            drive(schedule, move |index, intended| {
                let log = log.clone();
                async move {
                    let started = Instant::now();
                    if index == 2 {
                        tokio::time::sleep(Duration::from_millis(300)).await;
                    }
                    log.lock().unwrap().push((index, intended - origin, started - origin));
                }
            })
            .await;
        });
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 10);
        for (index, intended, started) in seen.iter() {
            let due = Duration::from_millis(50 * index);
            assert!(
                intended.abs_diff(due) < Duration::from_millis(2),
                "{index}: intended {intended:?}"
            );
            if (3..=7).contains(index) {
                // Operation 2 started at 100 ms and held the slot until 400 ms.
                assert!(
                    *started >= Duration::from_millis(400),
                    "{index} waited for the stalled one: {started:?}"
                );
            }
        }
    }

    #[test]
    fn the_count_bounds_both_loops() {
        let runtime = runtime();
        for rate in [Some(1000.0), None] {
            let schedule = Schedule {
                rate,
                duration: Duration::from_secs(60),
                count: Some(25),
                concurrency: 3,
            };
            let started = runtime.block_on(drive(schedule, |_, _| async {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }));
            assert_eq!(started, 25, "rate {rate:?}");
        }
    }
}
