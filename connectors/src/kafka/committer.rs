//! Committing a worker's resume points on a thread of its own.
//!
//! A commit is two round trips (the resume log, then the group offset), so it
//! must not run on the consumer thread: while it waits, nothing is fetched.
//! The worker hands commit requests to a [`Committer`]; its thread commits the
//! newest point of each partition, keeps what failed for the next round, and
//! commits what is left when the worker drops it — before the drop returns, so
//! that a bounded run's final commit (made after its workers end) is the last.

use std::collections::BTreeMap;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::thread::JoinHandle;
use std::time::Duration;

use super::KafkaConnectorError;
use super::ledger::ResumePoint;
use super::offsets::{GroupOffsets, TopicPartition};
use super::source::KafkaSourceSettings;

/// How long a failed commit waits before it is tried again.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// Commit points waiting to be committed, by partition.
type Points = BTreeMap<TopicPartition, ResumePoint>;

/// The sending side: dropping it commits what is pending, ends the thread
/// and waits for it.
pub(crate) struct Committer {
    requests: Option<Sender<Points>>,
    thread: Option<JoinHandle<()>>,
}

impl Committer {
    /// Starts the commit thread for `settings`' group.
    pub(crate) fn start(settings: &KafkaSourceSettings, worker: usize) -> Result<Self, KafkaConnectorError> {
        let group = GroupOffsets::connect(settings)?;
        let (requests, received) = channel();
        let component = settings.component.clone();
        let thread = std::thread::Builder::new()
            .name(format!("pulse-commit-{component}-{worker}"))
            .spawn(move || commit_until_closed(&group, &component, &received))?;
        Ok(Self {
            requests: Some(requests),
            thread: Some(thread),
        })
    }

    /// Asks for `points` to be committed (newer points of a partition replace older ones).
    pub(crate) fn request(&self, points: Points) {
        // The thread only ends when this side is dropped.
        if let Some(requests) = &self.requests {
            let _ = requests.send(points);
        }
    }
}

impl Drop for Committer {
    fn drop(&mut self) {
        // Closing the channel lets the thread commit what is pending and end;
        // a late commit of an older point must not land after the final one.
        drop(self.requests.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn commit_until_closed(group: &GroupOffsets, component: &str, requests: &Receiver<Points>) {
    let mut pending = Points::new();
    let mut open = true;
    while open || !pending.is_empty() {
        // Wait for a request, or (with something pending) at most until the retry.
        let wait = if pending.is_empty() { Duration::MAX } else { RETRY_AFTER };
        match requests.recv_timeout(wait) {
            Ok(points) => pending.extend(points),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => open = false,
        }
        pending.extend(requests.try_iter().flatten());
        if pending.is_empty() {
            continue;
        }
        match group.commit(&pending) {
            Ok(()) => pending.clear(),
            Err(error) if open => {
                tracing::warn!(%component, %error, "committing offsets failed; retrying");
            }
            Err(error) => {
                tracing::error!(%component, %error, "committing offsets failed at the end; the next run resumes from an earlier commit");
                return;
            }
        }
    }
}
