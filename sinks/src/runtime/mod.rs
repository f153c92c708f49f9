//! The sink runtime: how every sink gets rows out of the dataflow without
//! blocking a timely worker (STYLE.md point 4; the shape of Materialize's
//! `sink_async`).
//!
//! ```text
//!  worker 0 ─ deliver ─┐  bounded channel            the sink's tokio task
//!  worker 1 ─ deliver ─┼──── batches, progress ───►  batch · retry · breaker · write
//!  worker N ─ deliver ─┘  (full: sources pause)      acknowledge ─► Delivered (Kafka commits)
//! ```
//!
//! - Rows leave the dataflow typed, as [`SinkRecord`]s; each sink turns them
//!   into its own format from their schema ([`BatchWriter`]).
//! - On every worker, the [`DeliverExt::deliver`] operator hands its records
//!   and its input frontier to the sink's task through one *bounded* channel.
//!   When the channel is full the operator keeps what it could not hand over
//!   and closes its [`Valve`](pulse_core::Valve): sources stop reading until
//!   the task catches up, so memory stays bounded and nothing is dropped.
//! - The task ([`start_sink`]) batches (by size and time), writes, retries
//!   failed writes with exponential backoff and jitter, runs a circuit breaker
//!   (open after N consecutive failures, one half-open probe after a pause)
//!   and *acknowledges*: the frontier before which every record of every
//!   worker is durably written goes to the sink's
//!   [`DeliveryTracker`](pulse_core::DeliveryTracker), which is what Kafka
//!   sources commit offsets by.
//! - A sink that can write in parallel ([`Delivery::Parallel`]) writes each
//!   worker's records as they come; one that needs one ordered writer
//!   ([`Delivery::Ordered`]: files, stdout) writes each completed timestamp's
//!   records in one batch, in time order, so its output is the same for any
//!   number of workers.
//! - Records a destination refuses for good (a value that does not fit a
//!   column) become dead letters with the reason; they never hold a batch up.
//! - The operator stays alive until its task has acknowledged everything, so
//!   a bounded run ends only when its output is written.
//!
//! Metrics, per sink (`component` label): `pulse_sink_written_records_total`,
//! `pulse_sink_retries_total`, `pulse_sink_errors_total` (batches given up on),
//! `pulse_sink_buffer_fill_ratio`, `pulse_sink_breaker_state` (0 closed,
//! 1 half-open, 2 open) and `pulse_sink_acknowledged_ms`; the breaker's state
//! also reaches `/health/ready` through the sink's health reporter.

mod breaker;
mod operator;
mod record;
mod task;
mod telemetry;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use pulse_core::{Backpressure, DeadLetter, DeliveryTracker, EventTime, HealthReporter, Shutdown};
use timely::scheduling::SyncActivator;
use tokio::sync::mpsc;

pub use breaker::{BreakerPolicy, BreakerState, RetryPolicy};
pub use operator::{DeliverExt, LOCAL_WORKERS, LocalWorkers};
pub use record::SinkRecord;

/// How a sink's writes relate to the workers that produce its records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// One writer, in time order: each completed timestamp's records (of all
    /// workers) in one batch, after every earlier one.
    Ordered,
    /// Records are written as they arrive, from every worker, in batches
    /// bounded by size and time.
    Parallel,
}

/// How a sink batches, buffers and retries; every sink has these, with defaults.
#[derive(Clone, Debug)]
pub struct SinkOptions {
    /// Ordered (one writer) or parallel.
    pub delivery: Delivery,
    /// Batches the channel from the workers holds before sources pause.
    pub buffer_batches: usize,
    /// A parallel sink writes once it holds this many records …
    pub max_batch_records: usize,
    /// … or once its oldest record has waited this long (zero: as soon as
    /// nothing more is waiting in the channel).
    pub max_batch_delay: Duration,
    /// Backoff between attempts.
    pub retry: RetryPolicy,
    /// When the breaker opens and how long it stays open.
    pub breaker: BreakerPolicy,
    /// How long a failing sink keeps retrying once the run is stopping.
    pub shutdown_grace: Duration,
}

impl SinkOptions {
    /// Defaults for a sink delivering as `delivery`.
    pub fn new(delivery: Delivery) -> Self {
        Self {
            delivery,
            buffer_batches: 64,
            max_batch_records: 10_000,
            max_batch_delay: Duration::from_millis(200),
            retry: RetryPolicy::default(),
            breaker: BreakerPolicy::default(),
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// Where records a sink refuses for good go, as dead letters.
pub type DeadLetterOutlet = Arc<dyn Fn(Vec<DeadLetter>) + Send + Sync>;

/// What a sink's task reports to and watches, from the engine.
#[derive(Clone)]
pub struct SinkContext {
    /// The sink's name (logs, metrics, dead letters).
    pub name: String,
    /// Unhealthy while writes fail; names the breaker's state.
    pub health: HealthReporter,
    /// Advanced to the acknowledged frontier: the trackers of the Kafka
    /// sources upstream, which commit by them (none: nothing waits for it).
    pub delivery: Vec<Arc<DeliveryTracker>>,
    /// Once triggered, a failing sink gives up after its shutdown grace.
    pub shutdown: Shutdown,
    /// Where refused records go.
    pub dead_letters: DeadLetterOutlet,
    /// Closed by the sink's operators while its buffer is full.
    pub pressure: Backpressure,
}

/// Why a write did not succeed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WriteError {
    /// The destination may take the batch later (a server down, a timeout):
    /// the first `written` records are written; the rest are tried again.
    #[error("{reason}")]
    Retry {
        /// Why.
        reason: String,
        /// How many leading records were written anyway.
        written: usize,
    },
    /// The batch cannot be written, now or later (a local I/O error): it is
    /// counted in `pulse_sink_errors_total` and nothing after it is
    /// acknowledged any more.
    #[error("{0}")]
    Fatal(String),
}

impl WriteError {
    /// A retryable error for a batch of which nothing was written.
    pub fn retry(reason: impl ToString) -> Self {
        Self::Retry {
            reason: reason.to_string(),
            written: 0,
        }
    }
}

/// What a successful write did besides writing.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Written {
    /// Records refused for good, by index in the batch, with the reason; they
    /// become dead letters.
    pub rejected: Vec<(usize, String)>,
}

/// A sink's writer, owned by its task: turns records into its destination's
/// format and writes them.
pub trait BatchWriter: Send + 'static {
    /// Prepares the destination before the first write (creates tables or
    /// topics); retried like a write while it fails with [`WriteError::Retry`].
    fn open(&mut self) -> impl Future<Output = Result<(), WriteError>> + Send {
        async { Ok(()) }
    }

    /// Writes `batch` durably: when it returns `Ok`, every record not
    /// rejected is at the destination. A retried batch is written again
    /// whole (less its written prefix), so writes must be idempotent or the
    /// sink at-least-once.
    fn write(&mut self, batch: &[SinkRecord]) -> impl Future<Output = Result<Written, WriteError>> + Send;

    /// Every record before `frontier` has been handed to [`BatchWriter::write`]
    /// (`EventTime::MAX`: every record). A writer that holds records back
    /// (Parquet files wait for their hour to end) writes what it now can and
    /// returns the frontier before which everything is durably written, which
    /// is what the task acknowledges. Retried like a write while it fails with
    /// [`WriteError::Retry`]. By default writes are durable when they return:
    /// `frontier` itself.
    fn advance(&mut self, frontier: EventTime) -> impl Future<Output = Result<EventTime, WriteError>> + Send {
        async move { Ok(frontier) }
    }
}

/// What the workers send a sink's task.
pub(crate) enum ToSink {
    /// Records of `worker` at `time`.
    Records {
        worker: usize,
        peers: usize,
        time: EventTime,
        records: Vec<SinkRecord>,
    },
    /// `worker` will send nothing more before `frontier`.
    Progress {
        worker: usize,
        peers: usize,
        frontier: EventTime,
    },
}

/// What a sink's task and its operators share.
pub(crate) struct Shared {
    /// The acknowledged frontier.
    acknowledged: AtomicU64,
    /// Set once the task has acknowledged everything (or given up, or ended):
    /// the operators may end.
    finished: AtomicBool,
    /// Wakes the operators when `finished` is set.
    wakers: Mutex<Vec<SyncActivator>>,
}

impl Shared {
    fn finish(&self) {
        self.finished.store(true, Ordering::Release);
        for waker in self.wakers.lock().unwrap_or_else(PoisonError::into_inner).iter() {
            // A worker that is gone has nothing left to wake.
            let _ = waker.activate();
        }
    }
}

/// A running sink: the sending end of its task's channel, cloned to every
/// worker's operator.
#[derive(Clone)]
pub struct SinkHandle {
    name: String,
    sender: mpsc::Sender<ToSink>,
    shared: Arc<Shared>,
    max_chunk: usize,
    pressure: Backpressure,
}

impl SinkHandle {
    /// The sink's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The frontier before which everything is written.
    pub fn acknowledged(&self) -> EventTime {
        self.shared.acknowledged.load(Ordering::Acquire)
    }

    /// Whether the task has acknowledged everything (or given up).
    pub fn is_finished(&self) -> bool {
        self.shared.finished.load(Ordering::Acquire)
    }
}

/// Starts the task of a sink writing with `writer` on `runtime`.
pub fn start_sink<W: BatchWriter>(
    runtime: &tokio::runtime::Handle,
    writer: W,
    options: SinkOptions,
    context: SinkContext,
) -> SinkHandle {
    let (sender, receiver) = mpsc::channel(options.buffer_batches.max(1));
    let shared = Arc::new(Shared {
        acknowledged: AtomicU64::new(0),
        finished: AtomicBool::new(false),
        wakers: Mutex::new(Vec::new()),
    });
    let handle = SinkHandle {
        name: context.name.clone(),
        sender,
        shared: Arc::clone(&shared),
        max_chunk: options.max_batch_records.clamp(1, 4_096),
        pressure: context.pressure.clone(),
    };
    runtime.spawn(task::run(writer, receiver, options, context, shared));
    handle
}
