//! A sink's tokio task: receives what the workers send, batches it, writes
//! with retries behind a circuit breaker, and acknowledges.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use pulse_core::EventTime;
use pulse_core::dead_letter::{DeadLetter, Position};
use tokio::sync::mpsc::Receiver;
use tokio::sync::mpsc::error::TryRecvError;

use super::breaker::{Breaker, BreakerState};
use super::telemetry::SinkMetrics;
use super::{BatchWriter, Delivery, Shared, SinkContext, SinkOptions, SinkRecord, ToSink, WriteError};

/// Marks the sink finished however the task ends (a panic included), so
/// that its operators never wait for it forever.
struct FinishOnDrop(Arc<Shared>);

impl Drop for FinishOnDrop {
    fn drop(&mut self) {
        self.0.finish();
    }
}

/// The task's view of the workers' progress and of what it holds.
struct Progress {
    /// Each worker's input frontier as last reported (0 until it reports).
    frontiers: Vec<EventTime>,
    /// Ordered sinks: records by time, until every worker has passed it.
    by_time: BTreeMap<EventTime, Vec<SinkRecord>>,
    /// Parallel sinks: records to write next, and since when.
    buffer: Vec<SinkRecord>,
    buffered_since: Option<Instant>,
    /// Parallel sinks: frontiers reported after records now in `buffer`, to
    /// apply once it is written.
    waiting: Vec<(usize, EventTime)>,
    /// Parallel sinks: each worker's acknowledged frontier.
    written: Vec<EventTime>,
}

impl Progress {
    fn absorb(&mut self, message: ToSink, delivery: Delivery) {
        match message {
            ToSink::Records {
                worker,
                peers,
                time,
                mut records,
            } => {
                self.know_peers(peers);
                let _ = worker;
                match delivery {
                    Delivery::Ordered => self.by_time.entry(time).or_default().append(&mut records),
                    Delivery::Parallel => {
                        self.buffered_since.get_or_insert_with(Instant::now);
                        self.buffer.append(&mut records);
                    }
                }
            }
            ToSink::Progress {
                worker,
                peers,
                frontier,
            } => {
                self.know_peers(peers);
                self.frontiers[worker] = self.frontiers[worker].max(frontier);
                if self.buffer.is_empty() {
                    self.written[worker] = self.written[worker].max(frontier);
                } else {
                    self.waiting.push((worker, frontier));
                }
            }
        }
    }

    fn know_peers(&mut self, peers: usize) {
        if self.frontiers.len() < peers {
            self.frontiers.resize(peers, 0);
            self.written.resize(peers, 0);
        }
    }

    /// The frontier every worker has passed (0 before any has reported).
    fn complete(&self) -> EventTime {
        self.frontiers.iter().copied().min().unwrap_or(0)
    }

    /// The buffer is written: the frontiers reported after it count now.
    fn buffer_written(&mut self) {
        for (worker, frontier) in self.waiting.drain(..) {
            self.written[worker] = self.written[worker].max(frontier);
        }
    }

    fn all_ended(&self) -> bool {
        !self.frontiers.is_empty() && self.frontiers.iter().all(|f| *f == EventTime::MAX)
    }
}

/// The task: runs until every worker has ended and everything is written (or
/// given up on), or the channel closes.
pub(crate) async fn run<W: BatchWriter>(
    mut writer: W,
    mut receiver: Receiver<ToSink>,
    options: SinkOptions,
    context: SinkContext,
    shared: Arc<Shared>,
) {
    let _finish = FinishOnDrop(Arc::clone(&shared));
    let mut sink = Attempts {
        breaker: Breaker::new(options.breaker, options.retry),
        metrics: SinkMetrics::new(&context.name),
        context,
        options,
        failed: false,
        stopping_since: None,
    };
    let capacity = receiver.max_capacity() as f64;
    let mut progress = Progress {
        frontiers: Vec::new(),
        by_time: BTreeMap::new(),
        buffer: Vec::new(),
        buffered_since: None,
        waiting: Vec::new(),
        written: Vec::new(),
    };
    sink.show_breaker(BreakerState::Closed);
    sink.open(&mut writer).await;
    let delivery = sink.options.delivery;
    let mut closed = false;
    loop {
        // Wait for the next message, or until the buffer is due.
        let due = progress
            .buffered_since
            .map(|since| since + sink.options.max_batch_delay);
        // `None`: the channel is closed; `Some(None)`: the buffer is due.
        let received: Option<Option<ToSink>> = match due {
            _ if closed => None,
            Some(due) => match tokio::time::timeout_at(due.into(), receiver.recv()).await {
                Ok(message) => message.map(Some),
                Err(_) => Some(None),
            },
            None => receiver.recv().await.map(Some),
        };
        match received {
            Some(Some(message)) => progress.absorb(message, delivery),
            Some(None) => {}
            None => closed = true,
        }
        let mut drained = false;
        while !closed && progress.buffer.len() < sink.options.max_batch_records {
            match receiver.try_recv() {
                Ok(message) => progress.absorb(message, delivery),
                Err(TryRecvError::Empty) => {
                    drained = true;
                    break;
                }
                Err(TryRecvError::Disconnected) => closed = true,
            }
        }
        sink.metrics.buffer_fill.set(receiver.len() as f64 / capacity);

        match delivery {
            Delivery::Ordered => {
                let complete = progress.complete();
                while let Some(entry) = progress.by_time.first_entry() {
                    if *entry.key() >= complete && !closed {
                        break;
                    }
                    let batch = entry.remove();
                    sink.write(&mut writer, batch).await;
                }
                let durable = sink.advance(&mut writer, complete).await;
                sink.acknowledge(&shared, durable);
            }
            Delivery::Parallel => {
                let ended = progress.all_ended() || closed;
                let due = progress
                    .buffered_since
                    .is_some_and(|since| since.elapsed() >= sink.options.max_batch_delay);
                let full = progress.buffer.len() >= sink.options.max_batch_records;
                let eager = sink.options.max_batch_delay.is_zero() && drained;
                if !progress.buffer.is_empty() && (full || due || eager || ended) {
                    let batch = std::mem::take(&mut progress.buffer);
                    progress.buffered_since = None;
                    sink.write(&mut writer, batch).await;
                }
                if progress.buffer.is_empty() {
                    progress.buffered_since = None;
                    progress.buffer_written();
                }
                let written = progress.written.iter().copied().min().unwrap_or(0);
                let durable = sink.advance(&mut writer, written).await;
                sink.acknowledge(&shared, durable);
            }
        }
        let everything_written = progress.by_time.is_empty() && progress.buffer.is_empty();
        if (progress.all_ended() || closed) && everything_written {
            if !closed {
                let durable = sink.advance(&mut writer, EventTime::MAX).await;
                sink.acknowledge(&shared, durable);
            }
            return;
        }
    }
}

/// Writing with retries, and what follows from each attempt.
struct Attempts {
    breaker: Breaker,
    metrics: SinkMetrics,
    context: SinkContext,
    options: SinkOptions,
    /// A batch was given up on: nothing is acknowledged any more.
    failed: bool,
    /// When the run began stopping, as far as this sink has noticed.
    stopping_since: Option<Instant>,
}

impl Attempts {
    /// Opens the destination, retrying as for a write.
    async fn open<W: BatchWriter>(&mut self, writer: &mut W) {
        loop {
            self.pause_for_breaker().await;
            match writer.open().await {
                Ok(()) => return self.recovered(),
                Err(WriteError::Retry { reason, .. }) => {
                    if self.retry_after_failure(&reason, 0).await.is_err() {
                        return self.give_up(&format!("cannot open: {reason}"), 0);
                    }
                }
                Err(WriteError::Fatal(reason)) => return self.give_up(&format!("cannot open: {reason}"), 0),
            }
        }
    }

    /// Writes `batch`, retrying until it is written, refused for good, or
    /// given up on at the end of the shutdown grace.
    async fn write<W: BatchWriter>(&mut self, writer: &mut W, mut batch: Vec<SinkRecord>) {
        while !batch.is_empty() {
            self.pause_for_breaker().await;
            match writer.write(&batch).await {
                Ok(written) => {
                    let refused = written.rejected.len();
                    if refused > 0 {
                        self.dead_letter(&batch, written.rejected);
                    }
                    self.metrics.written.increment((batch.len() - refused) as u64);
                    return self.recovered();
                }
                Err(WriteError::Retry { reason, written }) => {
                    let written = written.min(batch.len());
                    self.metrics.written.increment(written as u64);
                    batch.drain(..written);
                    if self.retry_after_failure(&reason, batch.len()).await.is_err() {
                        return self.give_up(&reason, batch.len());
                    }
                }
                Err(WriteError::Fatal(reason)) => return self.give_up(&reason, batch.len()),
            }
        }
    }

    /// Tells the writer everything before `frontier` was handed to it, retrying
    /// as for a write; the frontier before which everything is durable (0 once
    /// given up on: nothing more is acknowledged).
    async fn advance<W: BatchWriter>(&mut self, writer: &mut W, frontier: EventTime) -> EventTime {
        let mut retried = false;
        loop {
            // Writers that hold nothing back succeed at once: they leave the
            // breaker and the health as their writes set them.
            if retried {
                self.pause_for_breaker().await;
            }
            match writer.advance(frontier).await {
                Ok(durable) => {
                    if retried {
                        self.recovered();
                    }
                    return durable.min(frontier);
                }
                Err(WriteError::Retry { reason, .. }) => {
                    retried = true;
                    if self.retry_after_failure(&reason, 0).await.is_err() {
                        self.give_up(&reason, 0);
                        return 0;
                    }
                }
                Err(WriteError::Fatal(reason)) => {
                    self.give_up(&reason, 0);
                    return 0;
                }
            }
        }
    }

    async fn pause_for_breaker(&mut self) {
        let wait = self.breaker.wait_before_attempt(Instant::now());
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
            self.breaker.wait_before_attempt(Instant::now());
        }
        self.show_breaker(self.breaker.state());
    }

    /// The breaker's state on `/metrics` and in the sink's health (`/health/ready`).
    fn show_breaker(&self, state: BreakerState) {
        self.metrics.breaker(state);
        self.context.health.breaker(state.name());
    }

    fn recovered(&mut self) {
        if self.breaker.failures() > 0 {
            tracing::info!(sink = %self.context.name, "writes succeed again");
        }
        self.breaker.succeeded();
        self.show_breaker(BreakerState::Closed);
        self.context.health.healthy();
    }

    /// Counts a failed attempt and waits before the next; `Err` when the run
    /// is stopping and the grace is over.
    async fn retry_after_failure(&mut self, reason: &str, records: usize) -> Result<(), ()> {
        self.metrics.retries.increment(1);
        let wait = self.breaker.failed(Instant::now(), rand::random::<f64>());
        let state = self.breaker.state();
        self.show_breaker(state);
        let failures = self.breaker.failures();
        let problem = match state {
            BreakerState::Open { .. } => format!("circuit breaker open after {failures} failed writes: {reason}"),
            _ => format!("write failed ({failures} in a row), retrying: {reason}"),
        };
        if failures == 1 || matches!(state, BreakerState::Open { .. }) {
            tracing::warn!(sink = %self.context.name, records, failures, %reason, "sink write failed; retrying");
        }
        self.context.health.unhealthy(problem);
        if self.context.shutdown.is_triggered() {
            let since = *self.stopping_since.get_or_insert_with(Instant::now);
            if since.elapsed() >= self.options.shutdown_grace {
                return Err(());
            }
        }
        let wait = match self.stopping_since {
            Some(since) => wait.min(self.options.shutdown_grace.saturating_sub(since.elapsed())),
            None => wait,
        };
        tokio::time::sleep(wait.max(Duration::from_millis(1))).await;
        Ok(())
    }

    fn give_up(&mut self, reason: &str, records: usize) {
        self.metrics.errors.increment(1);
        self.failed = true;
        tracing::error!(sink = %self.context.name, error = %reason, records, "sink write failed; the batch is lost and nothing after it counts as delivered");
    }

    fn dead_letter(&mut self, batch: &[SinkRecord], rejected: Vec<(usize, String)>) {
        let letters: Vec<DeadLetter> = rejected
            .into_iter()
            .filter_map(|(index, reason)| {
                let record = batch.get(index)?;
                Some(DeadLetter {
                    component: self.context.name.clone(),
                    reason,
                    position: Position::Sink {
                        sink: self.context.name.clone(),
                    },
                    raw: record.to_json_line(),
                })
            })
            .collect();
        self.metrics.dead_letters.increment(letters.len() as u64);
        tracing::warn!(sink = %self.context.name, records = letters.len(), first = %letters.first().map_or("", |l| l.reason.as_str()), "records refused by the sink's destination: written as dead letters");
        (self.context.dead_letters)(letters);
    }

    /// Everything before `frontier` is written.
    fn acknowledge(&mut self, shared: &Shared, frontier: EventTime) {
        let before = shared.acknowledged.fetch_max(frontier, Ordering::AcqRel);
        if frontier <= before {
            return;
        }
        if frontier != EventTime::MAX {
            self.metrics.acknowledged.set(frontier as f64);
        }
        if !self.failed {
            for delivery in &self.context.delivery {
                delivery.advance(frontier);
            }
        }
    }
}
